"""The run store's lease on PostgreSQL and SQLite: the database's clock decides when a lease has
expired, a writer whose lease ran out records nothing, and no finished run keeps an open step.

These tests drive `RunStore` directly (no executor, no sweeper) on a database of their own, so
nothing else claims the run while a lease is expired on purpose.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker

from app import migrate
from base.db.engine import build_engine, build_sessionmaker
from base.events.bus import LocalBus
from base.models import Run, RunEvent
from base.models.accounts import User, Workspace
from base.models.runs import RunStatus, RunStep, SubjectType
from base.settings import Settings
from services.model_check import CHECK_MODELS
from services.run_log import Outbox
from services.run_store import LeaseLost, RunStore
from services.runs import create_run
from tests.support.waiting import eventually

LEASE = 3.0  # seconds; the fence's margin (and PostgreSQL's idle limit) is a quarter of it
STEPS = list(CHECK_MODELS.steps)
OUTPUTS = {step: {"value": step.lower()} for step in STEPS}


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("migrated_postgres"))
    url = f"sqlite+aiosqlite:///{tmp_path / 'leases.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Any]:
    engine = build_engine(Settings(database_url=database_url))
    try:
        yield build_sessionmaker(engine)
    finally:
        await engine.dispose()


async def _queued_run(db: async_sessionmaker[Any]) -> uuid.UUID:
    async with db.begin() as session:
        user = User(email=f"{uuid.uuid4().hex}@example.com", name="Owner", password_hash="x")
        session.add(user)
        await session.flush()
        workspace = Workspace(name="Leases", created_by_id=user.id)
        session.add(workspace)
        await session.flush()
        run = await create_run(
            session,
            Outbox(),
            workspace_id=workspace.id,
            kind=CHECK_MODELS,
            subject_type=SubjectType.WORKSPACE,
            subject_id=workspace.id,
            subject_label=workspace.name,
            triggered_by_id=user.id,
        )
        return run.id


def _store(db: async_sessionmaker[Any], owner: str) -> RunStore:
    return RunStore(db, LocalBus(), owner, LEASE)


async def _events(db: async_sessionmaker[Any], run_id: uuid.UUID) -> list[tuple[str, str | None]]:
    async with db() as session:
        rows = await session.execute(
            select(RunEvent.type, RunEvent.step)
            .where(RunEvent.run_id == run_id)
            .order_by(RunEvent.seq)
        )
        return [(kind, step if kind.startswith("STEP_") else None) for kind, step in rows.all()]


async def _steps(db: async_sessionmaker[Any], run_id: uuid.UUID) -> list[tuple[str, str, int]]:
    async with db() as session:
        rows = await session.execute(
            select(RunStep.name, RunStep.status, RunStep.attempts)
            .where(RunStep.run_id == run_id)
            .order_by(RunStep.position)
        )
        return [(name, status.value, attempts) for name, status, attempts in rows.all()]


async def _run(db: async_sessionmaker[Any], run_id: uuid.UUID) -> Run:
    async with db() as session:
        return (await session.execute(select(Run).where(Run.id == run_id))).scalar_one()


async def _until_expired(store: RunStore, run_id: uuid.UUID) -> None:
    """Until the database's clock says the lease is over (the sweeper's own query)."""

    async def expired() -> bool:
        return run_id in await store.stale(queued_for_seconds=3600)

    await eventually(expired, within=10, what="the lease to expire")


async def test_a_writer_whose_lease_ran_out_records_nothing_and_the_next_claim_resumes(db):
    run_id = await _queued_run(db)
    first, second = _store(db, "first"), _store(db, "second")
    claim = await first.claim(run_id)
    assert claim is not None and claim.execution == 1
    assert await second.claim(run_id) is None  # held
    await first.step_event(run_id, "CONNECT", "STEP_STARTED")
    assert await first.renew(run_id) == (True, False)

    await _until_expired(first, run_id)
    last_seq = (await _run(db, run_id)).last_seq
    with pytest.raises(LeaseLost):
        await first.step_event(run_id, "CONNECT", "STEP_SUCCEEDED", output=OUTPUTS["CONNECT"])
    with pytest.raises(LeaseLost):
        await first.finish(run_id, RunStatus.SUCCEEDED, outputs=OUTPUTS)
    assert await first.renew(run_id) == (False, False)  # an expired lease is not revived
    assert (await _run(db, run_id)).last_seq == last_seq

    resumed = await second.claim(run_id)
    assert resumed is not None and resumed.execution == 2
    with pytest.raises(LeaseLost):
        await first.step_event(run_id, "CHAT", "STEP_PROGRESS", fraction=0.5)
    await second.finish(run_id, RunStatus.SUCCEEDED, output_summary="ok", outputs=OUTPUTS)

    assert await _events(db, run_id) == [
        ("RUN_QUEUED", None),
        ("RUN_STARTED", None),
        ("STEP_STARTED", "CONNECT"),
        ("RUN_RESUMED", None),
        # The executor that finished never recorded these steps one by one: the finish did.
        *[("STEP_SUCCEEDED", step) for step in STEPS],
        ("RUN_SUCCEEDED", None),
    ]
    assert await _steps(db, run_id) == [
        ("CONNECT", "SUCCEEDED", 1),
        ("LIST_MODELS", "SUCCEEDED", 1),
        ("CHAT", "SUCCEEDED", 1),
        ("EMBED", "SUCCEEDED", 1),
    ]
    run = await _run(db, run_id)
    assert (run.status, run.percent, run.lease_owner, run.lease_expires_at) == (
        RunStatus.SUCCEEDED,
        100,
        None,
        None,
    )


async def test_a_run_cannot_succeed_without_every_steps_output(db):
    run_id = await _queued_run(db)
    store = _store(db, "only")
    await store.claim(run_id)
    await store.step_event(run_id, "CONNECT", "STEP_STARTED")
    with pytest.raises(ValueError, match="no output for step"):
        await store.finish(run_id, RunStatus.SUCCEEDED, outputs={"CONNECT": OUTPUTS["CONNECT"]})
    assert (await _run(db, run_id)).status is RunStatus.RUNNING
    assert await _events(db, run_id) == [
        ("RUN_QUEUED", None),
        ("RUN_STARTED", None),
        ("STEP_STARTED", "CONNECT"),
    ]


async def test_a_failed_run_closes_its_running_step_as_failed(db):
    run_id = await _queued_run(db)
    store = _store(db, "only")
    await store.claim(run_id)
    await store.step_event(run_id, "CONNECT", "STEP_STARTED")
    await store.step_event(run_id, "CONNECT", "STEP_SUCCEEDED", output=OUTPUTS["CONNECT"])
    await store.step_event(run_id, "LIST_MODELS", "STEP_STARTED")
    # Its STEP_FAILED was never recorded (say the run timed out inside it).
    await store.finish(
        run_id, RunStatus.FAILED, error_code="INTERNAL", error_message="The run failed."
    )
    assert await _steps(db, run_id) == [
        ("CONNECT", "SUCCEEDED", 1),
        ("LIST_MODELS", "FAILED", 1),
        ("CHAT", "CANCELLED", 0),
        ("EMBED", "CANCELLED", 0),
    ]
    assert (await _events(db, run_id))[-1] == ("RUN_FAILED", None)


async def test_a_transition_written_twice_is_recorded_once(db):
    """A retried write whose first commit went through is not recorded a second time."""
    run_id = await _queued_run(db)
    store = _store(db, "only")
    await store.claim(run_id)
    for _ in range(2):
        await store.step_event(run_id, "CONNECT", "STEP_STARTED")
    for _ in range(2):
        await store.step_event(run_id, "CONNECT", "STEP_SUCCEEDED", output=OUTPUTS["CONNECT"])
    assert await _events(db, run_id) == [
        ("RUN_QUEUED", None),
        ("RUN_STARTED", None),
        ("STEP_STARTED", "CONNECT"),
        ("STEP_SUCCEEDED", "CONNECT"),
    ]
    assert (await _steps(db, run_id))[0] == ("CONNECT", "SUCCEEDED", 1)


async def test_postgresql_ends_a_write_left_idle_longer_than_the_margin(migrated_postgres: str):
    """An executor frozen inside a write transaction cannot commit it after its lease: the
    transaction is ended (and its row lock released) once idle for the fence's margin."""
    engine = build_engine(Settings(database_url=migrated_postgres))
    db = build_sessionmaker(engine)
    try:
        run_id = await _queued_run(db)
        store = _store(db, "only")
        await store.claim(run_id)
        with pytest.raises(DBAPIError):
            async with store._transaction() as session:
                await session.execute(select(Run.id).where(Run.id == run_id).with_for_update())
                await asyncio.sleep(store.margin.total_seconds() + 0.5)  # the freeze
                await session.execute(select(Run.id))
        # The lock is gone: another transaction takes it at once.
        async with db.begin() as session:
            await session.execute(
                select(Run.id).where(Run.id == run_id).with_for_update(nowait=True)
            )
    finally:
        await engine.dispose()
