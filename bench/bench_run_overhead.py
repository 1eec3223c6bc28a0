"""Benchmark: per-run overhead of the run machinery (rows, events, bus) for a 6-step no-op
workflow, versus the same workflow run bare on the Kailash runtime, in the same run.

    uv run --frozen python bench/bench_run_overhead.py [--full] [--iterations N] [--warmup N]
        [--db sqlite|postgres|both] [--show-sql]

A script, not a test: it prints figures and asserts nothing about time. It declares, in this
process only, a kind of run (services.runs.RunKind "bench_noop_6") of six no-op async service
functions and its workflow (workflows.declare.run_workflow, which makes a service node per
step with nodes.services.service_node), and hands it to the Executor. Per database
(a throwaway SQLite file and a throwaway PostgreSQL server, both migrated) it signs a user up
through the services and measures, interleaved within every iteration (rotating which goes
first):

* bare: AsyncLocalRuntime   - runtime.execute_workflow_async(workflow, inputs), the SDK's own
                              runtime with the app's caps; the baseline of the ratios.
* EventRuntime, no scope    - the app's runtime subclass without a RunScope (what API calls pay
                              for the node hooks).
* EventRuntime.execute_run  - with a RunScope whose sink drops every node event.
* full: LocalBus / RedisBus - services.runs.create_run in a transaction, commit, publish the
                              outbox, then Executor.execute(run_id): claim (lease), the workflow on
                              the EventRuntime, each STEP_STARTED / STEP_SUCCEEDED written and
                              published by the step recorder, finish, publish. What one run costs
                              the process that executes it, end to end.

It prints per-run p50 / p99 / mean, ratios to the bare runtime, the machinery's extra time per
run and per step, and the SQL statements of one full run (a before_cursor_execute listener on
the engine), grouped by kind (--show-sql lists them). By default a quick run (50 timed runs
per path); `--full` gives the 200 of the recorded figures. PostgreSQL, Redis and the temporary
SQLite file are removed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `app`, `nodes`, ... importable
    sys.path.insert(0, str(ROOT))

from kailash.runtime.async_local import AsyncLocalRuntime  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import migrate  # noqa: E402
from base.auth.principal import Principal  # noqa: E402
from base.db.engine import build_engine, build_sessionmaker  # noqa: E402
from base.events.bus import EventBus, LocalBus, RedisBus  # noqa: E402
from base.models.runs import Run, RunEvent, RunStatus, SubjectType  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench import common  # noqa: E402
from bench.common import add_size_flag, apply_sizes, measure, sql_trace  # noqa: E402
from nodes.services import ServiceCall  # noqa: E402
from runtime.events import RunScope  # noqa: E402
from runtime.executor import Executor  # noqa: E402
from runtime.runner import build_runtime  # noqa: E402
from services import accounts, runs, workspaces  # noqa: E402
from services.deps import ServiceDeps  # noqa: E402
from services.ratelimit import AttemptLimiter  # noqa: E402
from services.run_log import Outbox  # noqa: E402
from services.run_store import RunStore  # noqa: E402
from workflows.declare import run_workflow  # noqa: E402

BENCH_SECRET = "bench-run-overhead-secret-0123456789abcdef"
PASSWORD = "a long bench pass phrase"
STEP_COUNT = 6


def noop_step(position: int) -> Callable[..., Awaitable[None]]:
    """A bench-only service function that does nothing; one per step, as a real kind has (the
    node class is named after the function: BenchRunOverheadNoopStep1Node, ...)."""

    async def step(deps: ServiceDeps, **kwargs: Any) -> None:
        return None

    step.__module__ = "bench.bench_run_overhead"
    step.__name__ = step.__qualname__ = f"noop_step_{position}"
    return step


KIND = runs.RunKind(
    name="bench_noop_6",
    steps=tuple(f"STEP_{i}" for i in range(1, STEP_COUNT + 1)),
    summarize=lambda values: f"{len(values)} no-op steps",
)
SPEC = run_workflow(KIND, {step: noop_step(i) for i, step in enumerate(KIND.steps, 1)})

BARE = "bare: AsyncLocalRuntime"
EVENT_NO_SCOPE = "EventRuntime, no RunScope"
EVENT_SCOPE = "EventRuntime.execute_run, drop sink"
FULL_LOCAL = "full: create + Executor, LocalBus"
FULL_REDIS = "full: create + Executor, RedisBus"


def percentile(values: list[int], p: float) -> float:
    """Nearest-rank percentile of nanosecond samples, in milliseconds."""
    return common.percentile(values, p, scale=1e6)


def statement_kind(statement: str) -> str:
    """'UPDATE runs', 'SELECT run_steps', 'INSERT run_events', ... for grouping."""
    if "pg_advisory_xact_lock" in statement:
        return "SELECT pg_advisory_xact_lock"
    words = statement.split()
    upper = [w.upper() for w in words]
    verb = upper[0] if upper else "?"
    table = "?"
    if verb == "UPDATE" and len(words) > 1:
        table = words[1]
    elif verb == "INSERT" and len(words) > 2:
        table = words[2]
    elif "FROM" in upper and upper.index("FROM") + 1 < len(words):
        table = words[upper.index("FROM") + 1]
    lock = " FOR UPDATE" if "FOR UPDATE" in statement.upper() else ""
    table = table.strip('"')
    return f"{verb} {table}{lock}"


def bench_settings(database_url: str, redis_url: str | None) -> Settings:
    return Settings(
        app_env="development",
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=BENCH_SECRET,
        log_level="WARNING",
        run_execution="inline",
    )


async def bench_database(
    database_url: str, redis_url: str | None, args: argparse.Namespace
) -> tuple[dict[str, list[int]], dict[str, list[str]], dict[str, list[int]]]:
    settings = bench_settings(database_url, redis_url)
    engine = build_engine(settings)
    db = build_sessionmaker(engine)
    limiter = AttemptLimiter.build(settings)
    buses: dict[str, EventBus] = {FULL_LOCAL: LocalBus()}
    if redis_url:
        buses[FULL_REDIS] = RedisBus(redis_url)
    for bus in buses.values():
        await bus.start()
    runtime = build_runtime(settings)  # the app's EventRuntime, with the app's caps
    bare_runtime = AsyncLocalRuntime(
        max_concurrent_nodes=settings.workflow_max_concurrent_nodes,
        thread_pool_size=settings.workflow_thread_pool_size,
        execution_timeout=settings.workflow_execution_timeout_seconds,
    )
    executors: dict[str, Executor] = {}
    try:
        base = ServiceDeps(settings=settings, db=db, attempts=limiter)
        me = await accounts.sign_up(
            base, name="Ada", email=f"ada-{uuid.uuid4().hex[:8]}@example.com", password=PASSWORD
        )
        as_me = base.for_principal(Principal(user_id=me.user.id))
        [own] = (await workspaces.list_my_workspaces(as_me)).edges
        workspace_id, user_id = own.node.id, me.user.id
        for label, bus in buses.items():
            deps = ServiceDeps(settings=settings, db=db, attempts=limiter, bus=bus)
            store = RunStore(db, bus, f"bench:{label}:{os.getpid()}", settings.run_lease_seconds)
            executors[label] = Executor(
                deps=deps,
                runtime=runtime,
                workflows={SPEC.name: SPEC},
                store=store,
                lease_seconds=settings.run_lease_seconds,
                capacity=settings.worker_concurrency,
            )
            await executors[label].start(sweep=False)  # listens for cancels, as a worker does
        call = ServiceCall(as_me)
        inputs = {step: {"call": call} for step in KIND.steps}
        create_ns: dict[str, list[int]] = {label: [] for label in buses}
        last_run: dict[str, uuid.UUID] = {}

        async def bare() -> None:
            await bare_runtime.execute_workflow_async(SPEC.workflow, inputs)

        async def event_no_scope() -> None:
            await runtime.execute_workflow_async(SPEC.workflow, inputs)

        async def event_scope() -> None:
            await runtime.execute_run(SPEC.workflow, inputs, RunScope(sink=lambda _e: None))

        def full(label: str) -> Callable[[], Awaitable[None]]:
            executor = executors[label]
            bus = buses[label]

            async def run_once() -> None:
                started = time.perf_counter_ns()
                outbox = Outbox()
                async with db.begin() as session:
                    run = await runs.create_run(
                        session,
                        outbox,
                        workspace_id=workspace_id,
                        kind=KIND,
                        subject_type=SubjectType.WORKSPACE,
                        subject_id=workspace_id,
                        subject_label="bench",
                        triggered_by_id=user_id,
                    )
                await outbox.publish(bus)
                create_ns[label].append(time.perf_counter_ns() - started)
                await executor.execute(run.id)
                last_run[label] = run.id

            return run_once

        paths: dict[str, Callable[[], Awaitable[Any]]] = {
            BARE: bare,
            EVENT_NO_SCOPE: event_no_scope,
            EVENT_SCOPE: event_scope,
        }
        for label in buses:
            paths[label] = full(label)

        # Correctness first: a full run ends SUCCEEDED with the expected event log.
        statements: dict[str, list[str]] = {}
        for label in buses:
            with sql_trace(engine) as trace:
                await paths[label]()
            statements[label] = trace["statements"]
            statements[f"{label} transactions"] = [str(len(trace["transactions"]))]
            async with db() as session:
                run = await session.get(Run, last_run[label])
                types = (
                    (
                        await session.execute(
                            select(RunEvent.type)
                            .where(RunEvent.run_id == last_run[label])
                            .order_by(RunEvent.seq)
                        )
                    )
                    .scalars()
                    .all()
                )
            expected = ["RUN_QUEUED", "RUN_STARTED"]
            expected += ["STEP_STARTED", "STEP_SUCCEEDED"] * STEP_COUNT + ["RUN_SUCCEEDED"]
            if run is None or run.status is not RunStatus.SUCCEEDED or list(types) != expected:
                raise RuntimeError(f"{label}: unexpected run {run and run.status} {types}")
        create_ns = {label: [] for label in buses}
        samples = await measure(paths, args.iterations, args.warmup)
        async with db() as session:
            total = (await session.execute(select(func.count()).select_from(Run))).scalar_one()
        print(f"  {total} runs in the database at the end")
        return samples, statements, create_ns
    finally:
        for executor in executors.values():
            await executor.close()
        await runtime.cleanup()
        await bare_runtime.cleanup()
        for bus in buses.values():
            await bus.close()
        await engine.dispose()


def print_results(
    database: str,
    samples: dict[str, list[int]],
    statements: dict[str, list[str]],
    create_ns: dict[str, list[int]],
    args: argparse.Namespace,
) -> None:
    print(
        f"\n{database}: ms per run of the {STEP_COUNT}-step no-op workflow; {args.iterations} "
        f"timed runs per path, interleaved, after {args.warmup} warm-up rounds; ratios to the "
        "bare runtime"
    )
    header = f"  {'path':<38} {'p50':>7} {'p99':>7} {'mean':>7} {'p50 ratio':>9} {'p99 ratio':>9}"
    rule = "  " + "-" * (len(header) - 2)
    print(header)
    print(rule)
    base = samples[BARE]
    for label, values in samples.items():
        ratio = ""
        if label != BARE:
            ratio = (
                f"{percentile(values, 50) / percentile(base, 50):8.1f}x "
                f"{percentile(values, 99) / percentile(base, 99):8.1f}x"
            )
        print(
            f"  {label:<38} {percentile(values, 50):7.2f} {percentile(values, 99):7.2f} "
            f"{sum(values) / len(values) / 1e6:7.2f} {ratio}"
        )
    print(rule)
    for label, values in create_ns.items():
        if not values:
            continue
        extra = percentile(samples[label], 50) - percentile(base, 50)
        print(
            f"  {label}: machinery adds {extra:.2f} ms per run at p50 "
            f"({extra / STEP_COUNT:.2f} ms per step); of which create_run + commit + publish "
            f"p50 {percentile(values, 50):.2f} ms"
        )
    for label in (FULL_LOCAL, FULL_REDIS):
        if label not in statements:
            continue
        listed = statements[label]
        transactions = statements[f"{label} transactions"][0]
        kinds = Counter(statement_kind(s) for s in listed)
        print(
            f"  SQL per run ({label}): {len(listed)} statements in {transactions} "
            f"transactions: " + ", ".join(f"{n} x {kind}" for kind, n in kinds.most_common())
        )
        if args.show_sql:
            for n, statement in enumerate(listed, 1):
                print(f"    {n}. {statement[:160]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--iterations", type=int, help="timed runs per path")
    parser.add_argument("--warmup", type=int, help="untimed runs per path first")
    add_size_flag(
        parser, quick={"iterations": 50, "warmup": 5}, full={"iterations": 200, "warmup": 20}
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--show-sql", action="store_true", help="list the statements of a run")
    args = apply_sizes(parser.parse_args(argv))
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be at least 1 and --warmup at least 0")
    from tests.support.services import postgres_server, redis_server

    started = time.monotonic()
    print(
        f"Run overhead benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    results = []
    with redis_server() as redis_url:
        if args.db in ("sqlite", "both"):
            print("\n== SQLite")
            with tempfile.TemporaryDirectory(prefix="kd-bench-runs-") as tmp:
                url = bench_settings(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", None)
                migrate.upgrade(url.database_url)
                results.append(
                    ("SQLite", *asyncio.run(bench_database(url.database_url, redis_url, args)))
                )
        if args.db in ("postgres", "both"):
            print("\n== PostgreSQL")
            with postgres_server() as postgres_url:
                url = bench_settings(postgres_url, None)
                migrate.upgrade(url.database_url)
                results.append(
                    ("PostgreSQL", *asyncio.run(bench_database(url.database_url, redis_url, args)))
                )
    for database, samples, statements, create_ns in results:
        print_results(database, samples, statements, create_ns, args)
    print(
        f"\nload average {os.getloadavg()[0]:.2f} at the end; "
        f"total wall time {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
