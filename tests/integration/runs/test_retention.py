"""Retention (ADR 0088): old finished runs go with their steps and events, except the newest of
each subject; progress events of runs finished long ago go; old workspace events go, except the
newest of each workspace. On PostgreSQL and SQLite, with the seeded runs of 2026-11-24."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from app.main import create_app
from base.db.engine import build_engine, build_sessionmaker
from base.models import Run, RunEvent, RunStep, WorkspaceEvent
from base.models.runs import RunStatus
from services.retention import Pruned, prune
from tests.support.app_fixtures import sqlite_settings
from tests.support.graphql import GraphQLClient, first_workspace, sign_up, uuid_of
from tests.support.live_server import REPO_ROOT
from tests.support.seed import T0, add_events, add_runs, add_workspace_events
from tests.support.waiting import eventually

RETENTION = {
    "run_retention_days": 1,
    "run_keep_per_subject": 3,
    "run_progress_retention_days": 1,
    "workspace_event_retention_days": 1,
    "workspace_events_kept": 100,
}


async def rows(db: Any, column: Any) -> list[Any]:
    async with db() as session:
        return list((await session.execute(select(column))).scalars())


async def seed(client: GraphQLClient, db: Any) -> dict[str, Any]:
    """Six model checks of the workspace (the oldest still RUNNING, then five finished, a minute
    apart), two ingestions of a document and a retry of the oldest finished model check; progress
    and final events; each run's workspace events, and 150 older workspace events."""
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace_id = uuid_of((await first_workspace(client, owner["accessToken"]))["id"])
    owner_id = uuid_of(owner["user"]["id"])
    checks = await add_runs(db, workspace_id, [owner_id], 5)
    [running] = await add_runs(db, workspace_id, [owner_id], 1, status=RunStatus.RUNNING)
    document = uuid.uuid4()
    ingestions = await add_runs(db, workspace_id, [owner_id], 2, document_id=document)
    [retry] = await add_runs(
        db, workspace_id, [owner_id], 1, retry_of=checks[0], document_id=document
    )
    async with db.begin() as session:
        # The running one is the oldest of the workspace's runs; the retry the newest ingestion.
        await session.execute(
            update(Run).where(Run.id == running).values(created_at=T0 - timedelta(days=1))
        )
        await session.execute(
            update(Run).where(Run.id == retry).values(created_at=T0 + timedelta(hours=1))
        )
    for run_id in (checks[0], checks[4], running):
        await add_events(db, run_id, 3)  # STEP_PROGRESS 1..3
    async with db.begin() as session:
        session.add(
            RunEvent(
                run_id=checks[4],
                seq=4,
                type="RUN_SUCCEEDED",
                status=RunStatus.SUCCEEDED,
                step="CHAT",
                percent=100,
                message="done",
                at=T0,
            )
        )
    run_events = await add_workspace_events(db, workspace_id, checks, owner_id)
    async with db.begin() as session:
        older = [
            WorkspaceEvent(
                workspace_id=workspace_id,
                type="COLLECTION_CREATED",
                actor_id=owner_id,
                message=f"created collection C{i}",
                at=T0 - timedelta(days=2, minutes=150 - i),
            )
            for i in range(150)
        ]
        session.add_all(older)
        await session.flush()
        older_ids = [e.id for e in older]
    return {
        "checks": checks,
        "running": running,
        "ingestions": ingestions,
        "retry": retry,
        "run_events": run_events,
        "older_events": older_ids,
    }


@pytest.mark.settings(**RETENTION)
async def test_old_rows_go_and_the_newest_of_each_subject_stay(
    any_db_client: GraphQLClient, any_db_app: FastAPI
) -> None:
    deps = any_db_app.state.deps
    db = deps.db
    seeded = await seed(any_db_client, db)
    checks = seeded["checks"]
    before_events = len(await rows(db, WorkspaceEvent.id))

    pruned = await prune(deps)

    # The workspace's model checks: the three newest finished ones and the running one stay.
    kept_runs = {*checks[2:], seeded["running"], *seeded["ingestions"], seeded["retry"]}
    assert set(await rows(db, Run.id)) == kept_runs
    assert set(await rows(db, RunStep.run_id)) == kept_runs
    # The retry of a deleted run stays, no longer linked to it.
    async with db() as session:
        retry = await session.get(Run, seeded["retry"])
        assert retry is not None and retry.retry_of_id is None
    # Progress events of finished runs went (with checks[0], the run itself); the running run's
    # and the final event stay.
    async with db() as session:
        events = (await session.execute(select(RunEvent.run_id, RunEvent.seq, RunEvent.type))).all()
    assert sorted((str(r), s, t) for r, s, t in events) == sorted(
        [(str(seeded["running"]), seq, "STEP_PROGRESS") for seq in (1, 2, 3)]
        + [(str(checks[4]), 4, "RUN_SUCCEEDED")]
    )
    # Workspace events: those of the deleted runs went with them (4), then of the rest, all
    # older than a day, the newest 100 stay.
    remaining = await rows(db, WorkspaceEvent.id)
    newest = sorted([*seeded["run_events"][4:], *seeded["older_events"]], reverse=True)[:100]
    # The sign-up wrote no event, so these are all the workspace's events.
    assert sorted(remaining) == sorted(newest)
    assert pruned == Pruned(runs=2, progress_events=3, workspace_events=before_events - 4 - 100)
    # A second pass finds nothing.
    assert await prune(deps) == Pruned()


@pytest.mark.settings(**RETENTION, retention_interval_seconds=1)
async def test_the_api_process_prunes_by_itself_in_the_embedded_default(
    any_db_client: GraphQLClient, any_db_app: FastAPI
) -> None:
    db = any_db_app.state.deps.db
    seeded = await seed(any_db_client, db)

    async def progress_events() -> int:
        async with db() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(RunEvent)
                    .where(RunEvent.type == "STEP_PROGRESS")
                )
                or 0
            )

    async def pruned() -> bool:
        # A pass deletes old runs, then old progress events, each in its own transactions:
        # wait for the end of the pass, not just its first part.
        runs_gone = seeded["checks"][0] not in await rows(db, Run.id)
        return runs_gone and await progress_events() == 3

    await eventually(pruned, within=30, what="the old runs and progress events to be pruned")
    assert len(await rows(db, Run.id)) == 7
    assert await progress_events() == 3  # the running run's


async def test_an_operator_prunes_from_the_command_line(tmp_path: Path, blob_root: Path) -> None:
    """`python -m app prune` on the embedded default's SQLite file: one pass, what it deleted."""
    settings = await asyncio.to_thread(sqlite_settings, tmp_path, blob_root)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            seeded = await seed(GraphQLClient(http), app.state.deps.db)
    env = {
        "DATABASE_URL": settings.database_url,
        "APP_ENV": "test",
        "JWT_SECRET": settings.jwt_secret,
        **{name.upper(): str(value) for name, value in RETENTION.items()},
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "prune"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # 2 runs (and their 4 workspace events); 3 progress events; of the 156 workspace events
    # left, all but the newest 100.
    assert (done.returncode, done.stdout) == (
        0,
        "deleted 2 runs, 3 progress events, 56 workspace events\n",
    ), done.stderr
    engine = build_engine(settings)
    try:
        assert seeded["checks"][0] not in await rows(build_sessionmaker(engine), Run.id)
    finally:
        await engine.dispose()
