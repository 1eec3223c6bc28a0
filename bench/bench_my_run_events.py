"""Benchmark: myRunEvents (ADR 0086), the shell's toast over all of a user's workspaces.

    uv run --frozen python bench/bench_my_run_events.py [--full] [--events N] [--runs N]

A script, not a test: it prints figures and asserts nothing. It starts a throwaway PostgreSQL
(tests/support/services), migrates a fresh database and seeds 20 workspaces whose members are
Olivia (every workspace), Uma (every workspace) and Una (one workspace). Olivia writes
--events workspace events per workspace (RUN_QUEUED / RUN_STARTED / RUN_FINISHED in turn); Uma
and Una each finished five runs in each of their workspaces first, so their positions are old.

1. The read (`run_log.my_run_events_after`), Uma's idle re-read at her positions in 20
   workspaces (nothing new): EXPLAIN (ANALYZE, BUFFERS) and the mean time of 200 reads, through
   ix_workspace_events_actor (migration 0010) and without it (dropped, then made again); and the
   statements of a stream's opening.
2. The live path: the process's CPU per published message while Olivia's --runs runs go through
   the real writers in the 20 workspaces (per run: RUN_QUEUED, RUN_STARTED, 8 RUN_PROGRESS
   messages, RUN_FINISHED: 11 messages, 3 stored), round robin, on the in-process bus, with one
   toast stream open for Uma (20 workspaces) or Una (1), in two designs:
   - `user topic` (built): `live.my_run_events`, woken only by the user's own RUN_FINISHED;
   - `workspace topics` (not built): one `replay_then_tail` per workspace of the user on its
     workspace topic, reading the user's RUN_FINISHED after each stored event it hears and
     dropping everything else (what subscribing to each workspace's topic costs; without the
     membership re-checks it would also need, so it is a lower bound);
   and with no stream at all (the baseline, same run). A last RUN_FINISHED of the user ends each
   round once the stream has delivered it. CPU is this process's (`time.process_time`); the
   database server's work shows in the statements counted.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `app`, `bench`, ... importable
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from app.main import create_app  # noqa: E402
from base.auth.principal import Principal  # noqa: E402
from base.db.types import utcnow  # noqa: E402
from base.events.bus import workspace_topic  # noqa: E402
from base.events.stream import replay_then_tail  # noqa: E402
from base.models.accounts import Membership, Role, User, Workspace  # noqa: E402
from base.models.runs import Run, RunStatus, SubjectType, WorkspaceEvent  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench.common import add_size_flag, apply_sizes, sql_trace  # noqa: E402
from services import live  # noqa: E402
from services.deps import ServiceDeps  # noqa: E402
from services.run_log import (  # noqa: E402
    Outbox,
    append_workspace_event,
    my_run_events_after,
    my_workspaces,
    publish_transient,
    run_progress_message,
)
from tests.support.databases import fresh_database  # noqa: E402
from tests.support.services import postgres_server  # noqa: E402
from tests.support.waiting import eventually  # noqa: E402

WORKSPACES = 20
OWN_RUNS = 5  # finished runs of Uma and Una per workspace, before everyone else's events
PROGRESS_PER_RUN = 8
READS = 200
REPEATS = 3


async def seed(deps: ServiceDeps, events: int) -> dict[str, Any]:
    def person(name: str) -> User:
        return User(
            id=uuid.uuid4(), email=f"{name}@example.com", name=name, password_hash="not used"
        )

    olivia, uma, una = person("olivia"), person("uma"), person("una")
    workspaces = [
        Workspace(id=uuid.uuid4(), name=f"workspace {i}", created_by_id=olivia.id)
        for i in range(WORKSPACES)
    ]
    async with deps.db.begin() as session:
        session.add_all([olivia, uma, una])
        await session.flush()
        session.add_all(workspaces)
        await session.flush()
        for i, w in enumerate(workspaces):
            session.add(Membership(workspace_id=w.id, user_id=olivia.id, role=Role.OWNER))
            session.add(Membership(workspace_id=w.id, user_id=uma.id, role=Role.EDITOR))
            if i == 0:
                session.add(Membership(workspace_id=w.id, user_id=una.id, role=Role.EDITOR))
        for w in workspaces:
            for actor in (uma, una):
                for _ in range(OWN_RUNS):
                    session.add(
                        WorkspaceEvent(
                            workspace_id=w.id, type="RUN_FINISHED", actor_id=actor.id, message="x"
                        )
                    )
        await session.flush()
        for w in workspaces:
            await session.execute(
                text(
                    "INSERT INTO workspace_events (workspace_id, type, actor_id, message, at) "
                    "SELECT :w, (ARRAY['RUN_QUEUED','RUN_STARTED','RUN_FINISHED'])[1 + g % 3], "
                    ":actor, 'x', now() FROM generate_series(1, :n) g"
                ),
                {"w": w.id, "actor": olivia.id, "n": events},
            )
    async with deps.db() as session:
        await session.execute(text("ANALYZE"))
    return {
        "olivia": olivia.id,
        "uma": uma.id,
        "una": una.id,
        "workspaces": [w.id for w in workspaces],
    }


async def read_figures(deps: ServiceDeps, uma: uuid.UUID) -> None:
    engine = deps.db.kw["bind"]
    async with deps.db() as session:
        mine = await my_workspaces(session, uma)
        positions = {
            w: (
                await session.execute(
                    select(func.max(WorkspaceEvent.id)).where(
                        WorkspaceEvent.workspace_id == w, WorkspaceEvent.actor_id == uma
                    )
                )
            ).scalar_one()
            for w in mine.latest
        }
    statement = None

    def remember(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        nonlocal statement
        statement = (sql, params)

    from sqlalchemy import event

    event.listen(engine.sync_engine, "before_cursor_execute", remember)
    async with deps.db() as session:
        assert await my_run_events_after(session, uma, positions) == []
    event.remove(engine.sync_engine, "before_cursor_execute", remember)
    assert statement is not None
    sql, params = statement

    async def explain(label: str) -> None:
        raw = await engine.raw_connection()
        try:
            connection = raw.driver_connection
            plan = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params)
        finally:
            raw.close()
        print(f"\n-- the idle re-read, {label}:")
        for row in plan:
            print("   ", row[0])

        async def one_read() -> None:
            async with deps.db() as session:
                await my_run_events_after(session, uma, positions)

        for _ in range(20):
            await one_read()
        started = time.perf_counter()
        for _ in range(READS):
            await one_read()
        mean = (time.perf_counter() - started) / READS * 1000
        print(f"   mean of {READS} reads (session, statement, rows): {mean:.3f} ms")

    await explain("through ix_workspace_events_actor")
    async with deps.db.begin() as session:
        await session.execute(text("DROP INDEX ix_workspace_events_actor"))
    async with deps.db() as session:
        await session.execute(text("ANALYZE workspace_events"))
    await explain("without ix_workspace_events_actor")
    async with deps.db.begin() as session:
        await session.execute(
            text(
                "CREATE INDEX ix_workspace_events_actor ON workspace_events "
                "(actor_id, type, workspace_id, id)"
            )
        )
    async with deps.db() as session:
        await session.execute(text("ANALYZE workspace_events"))

    with sql_trace(engine) as trace:
        async with deps.db() as session:
            mine = await my_workspaces(session, uma)
            await my_run_events_after(session, uma, dict(mine.latest))
    print(
        f"\n-- a stream's opening for Uma ({len(mine.latest)} workspaces): "
        f"{len(trace['statements'])} statements (memberships with each newest id, the newest id "
        "of all, the read); workspaceEvents in each workspace instead: 2 per workspace "
        f"({2 * len(mine.latest)}) plus one access check each"
    )


async def own_run(deps: ServiceDeps, workspace: uuid.UUID, by: uuid.UUID) -> Run:
    run = Run(
        id=uuid.uuid4(),
        workspace_id=workspace,
        workflow="check_models",
        subject_type=SubjectType.WORKSPACE,
        subject_id=workspace,
        subject_label="bench",
        triggered_by_id=by,
        status=RunStatus.RUNNING,
        params={},
        input_summary="",
        last_seq=0,
    )
    async with deps.db.begin() as session:
        session.add(run)
    return run


async def write(deps: ServiceDeps, run: Run, kind: str) -> None:
    outbox = Outbox()
    async with deps.db.begin() as session:
        merged = await session.get(Run, run.id)
        assert merged is not None
        if kind == "RUN_FINISHED":
            merged.status = RunStatus.SUCCEEDED
        await append_workspace_event(
            session,
            outbox,
            merged.workspace_id,
            kind,
            message=kind,
            actor_id=merged.triggered_by_id,
            run=merged,
        )
    await outbox.publish(deps.bus)


async def traffic(deps: ServiceDeps, seeded: dict[str, Any], runs: int, ids: Iterator[int]) -> int:
    """Olivia's runs, round robin over the workspaces, as their writers publish them (the rows
    are not written: every read finds nothing new, as for any run but the user's own); the
    number of events published (the user topic's copies not counted)."""
    published = 0
    for i in range(runs):
        run = Run(
            id=uuid.uuid4(),
            workspace_id=seeded["workspaces"][i % WORKSPACES],
            workflow="check_models",
            triggered_by_id=seeded["olivia"],
            status=RunStatus.QUEUED,
            percent=0,
            current_step=None,
        )
        for kind, status in (
            ("RUN_QUEUED", RunStatus.QUEUED),
            ("RUN_STARTED", RunStatus.RUNNING),
            *[("RUN_PROGRESS", RunStatus.RUNNING)] * PROGRESS_PER_RUN,
            ("RUN_FINISHED", RunStatus.SUCCEEDED),
        ):
            run.status = status
            if kind == "RUN_PROGRESS":
                run.percent += 10
                message = run_progress_message(run)
                await publish_transient(deps.bus, workspace_topic(run.workspace_id), message)
            else:
                outbox = Outbox()
                outbox.workspace_events.append(
                    WorkspaceEvent(
                        id=next(ids),
                        workspace_id=run.workspace_id,
                        type=kind,
                        actor_id=run.triggered_by_id,
                        run_id=run.id,
                        run_status=status,
                        message=kind,
                        at=utcnow(),
                    )
                )
                await outbox.publish(deps.bus)
            published += 1
            await asyncio.sleep(0)  # messages arrive over time, not in one burst
    return published


def user_topic_stream(deps: ServiceDeps) -> AsyncIterator[dict[str, Any]]:
    return live.my_run_events(deps, after=None)


async def workspace_topics_stream(deps: ServiceDeps) -> AsyncIterator[dict[str, Any]]:
    """The design not built: a stream per workspace topic, merged, keeping the user's ends."""
    user = deps.principal.require_user()
    async with deps.db() as session:
        mine = await my_workspaces(session, user)
    merged: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def follow(workspace: uuid.UUID, start: int) -> None:
        async def fetch(after: int) -> list[dict[str, Any]]:
            async with deps.db() as session:
                return await my_run_events_after(session, user, {workspace: after})

        async for event in replay_then_tail(
            deps.bus,
            workspace_topic(workspace),
            start,
            fetch,
            contiguous=False,
            idle_seconds=deps.settings.event_stream_idle_seconds,
        ):
            if event["type"] == "RUN_FINISHED" and event["actor_id"] == str(user):
                await merged.put(event)

    tasks = [asyncio.create_task(follow(w, start)) for w, start in mine.latest.items()]
    try:
        while True:
            yield await merged.get()
    finally:
        for task in tasks:
            task.cancel()


Design = Callable[[ServiceDeps], AsyncIterator[dict[str, Any]]] | None


async def one_round(
    deps: ServiceDeps,
    seeded: dict[str, Any],
    who: str,
    design: Design,
    runs: int,
    ids: Iterator[int],
) -> tuple[float, int, int]:
    """(CPU seconds, statements, messages published) of one round of traffic."""
    engine = deps.db.kw["bind"]
    user = seeded[who]
    mine = deps.for_principal(Principal(user_id=user))
    delivered: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reader = None
    if design is not None:
        before = deps.bus.subscriber_count
        stream = design(mine)

        async def read() -> None:
            async for event in stream:
                await delivered.put(event)

        reader = asyncio.create_task(read())
        await eventually(
            lambda: deps.bus.subscriber_count > before, within=30, what="the stream to listen"
        )
        await asyncio.sleep(0.2)
    last = await own_run(deps, seeded["workspaces"][0], user)
    with sql_trace(engine) as trace:
        cpu = time.process_time()
        published = await traffic(deps, seeded, runs, ids)
        await write(deps, last, "RUN_FINISHED")
        published += 1
        if reader is not None:
            event = await asyncio.wait_for(delivered.get(), 60)
            assert event["run_id"] == str(last.id), event
            assert delivered.empty()
        await asyncio.sleep(0.3)  # stragglers (idle: no CPU)
        cpu = time.process_time() - cpu
    if reader is not None:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return cpu, len(trace["statements"]), published


async def live_figures(deps: ServiceDeps, seeded: dict[str, Any], runs: int) -> None:
    designs: dict[str, Design] = {
        "no stream (baseline)": None,
        "user topic (built)": user_topic_stream,
        "workspace topics": workspace_topics_stream,
    }
    ids = itertools.count(10**12)  # above every stored id: no read finds them
    await one_round(deps, seeded, "una", user_topic_stream, max(runs // 10, 2), ids)  # warm-up
    print(
        f"\n-- the live path: {runs} runs of Olivia ({runs * (3 + PROGRESS_PER_RUN)} events), "
        f"round robin over {WORKSPACES} workspaces; median of {REPEATS} rounds"
    )
    header = f"{'user':<22}{'design':<24}{'CPU/event':>12}{'stream CPU/event':>18}"
    print(f"   {header}{'statements':>12}")
    for who, label in (("una", "Una (1 workspace)"), ("uma", "Uma (20 workspaces)")):
        samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in designs}
        for _ in range(REPEATS):  # interleaved, so that drift hits every design alike
            for name, design in designs.items():
                samples[name].append(await one_round(deps, seeded, who, design, runs, ids))
        cpu = {
            name: statistics.median(c / n for c, _s, n in rounds)
            for name, rounds in samples.items()
        }
        for name, rounds in samples.items():
            statements = statistics.median(s for _c, s, _n in rounds)
            print(
                f"   {label:<22}{name:<24}{cpu[name] * 1e6:>9.1f} µs"
                f"{(cpu[name] - cpu['no stream (baseline)']) * 1e6:>15.1f} µs{statements:>12.0f}"
            )


async def bench(url: str, args: argparse.Namespace) -> None:
    settings = Settings(
        app_env="test", database_url=url, jwt_secret="x" * 32, run_execution="inline"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        deps: ServiceDeps = app.state.deps
        seeded = await seed(deps, args.events)
        total = WORKSPACES * (args.events + 2 * OWN_RUNS)
        print(f"{total:,} workspace events in {WORKSPACES} workspaces")
        await read_figures(deps, seeded["uma"])
        await live_figures(deps, seeded, args.runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=None, help="Olivia's events per workspace")
    parser.add_argument("--runs", type=int, default=None, help="Olivia's runs per round")
    add_size_flag(parser, quick={"events": 2_000, "runs": 40}, full={"events": 10_000, "runs": 100})
    args = apply_sizes(parser.parse_args())
    with postgres_server() as server, fresh_database(server, "bench_toast") as url:
        asyncio.run(bench(url, args))


if __name__ == "__main__":
    main()
