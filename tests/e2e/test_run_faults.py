"""Runs under real faults: Redis stopped and started again, PostgreSQL restarted or down for
longer than a lease, a worker frozen past its lease, an API process killed mid-run and between a
mutation's commit and its publish.

Nothing is patched or mocked: the module has a PostgreSQL server and a Redis server of its own
(tests/support/services.py) that it stops, restarts and freezes, and each test starts its own
API processes (uvicorn) and workers (`python -m app worker`), which it signals. Every test
checks the same promises:

* the run reaches a terminal state, with no step left RUNNING;
* every subscription ends, with exactly the run's event log (cursors 1..N, nothing missing or
  repeated), even when the bus lost the final event;
* a mutation whose transaction committed reports success;
* the exact sequence of step and run events, where the fault makes it deterministic.

The model answers through `slow_link` (runs_support.py) so that the CHAT step streams for
several seconds, long enough to inject a fault into.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from strawberry import relay

from tests.e2e import runs_support as rs
from tests.e2e.test_runs_e2e import (
    JWT_SECRET,
    MAX_TOKENS,
    STEPS,
    TOKEN_DELAY,
    Member,
    assert_one_log,
    chat_is_streaming,
    check_models,
    graphql,
    measured,
    sign_up,
    uuid_of,
)
from tests.support.databases import fresh_database
from tests.support.live_server import live_server
from tests.support.services import (
    PostgresServer,
    RedisServer,
    own_postgres_server,
    own_redis_server,
)
from tests.support.slow_link import slow_link
from tests.support.waiting import eventually

LEASE_SECONDS = 3.0  # RUN_LEASE_SECONDS
SWEEP_SECONDS = LEASE_SECONDS / 2  # how often an executor sweeps
STALE_QUEUED_SECONDS = 4.0  # RUN_STALE_QUEUED_SECONDS: a lost enqueue is recovered after this
IDLE_SECONDS = 1.0  # EVENT_STREAM_IDLE_SECONDS: a quiet subscription re-reads its log

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow(seconds=260)]

NORMAL = [
    ("RUN_QUEUED", None),
    ("RUN_STARTED", None),
    *[(kind, step) for step in STEPS for kind in ("STEP_STARTED", "STEP_SUCCEEDED")],
    ("RUN_SUCCEEDED", None),
]
# Stopped in CHAT, then resumed by another execution: CHAT starts again, the rest follows.
RESUMED_IN_CHAT = [
    ("RUN_QUEUED", None),
    ("RUN_STARTED", None),
    ("STEP_STARTED", "CONNECT"),
    ("STEP_SUCCEEDED", "CONNECT"),
    ("STEP_STARTED", "LIST_MODELS"),
    ("STEP_SUCCEEDED", "LIST_MODELS"),
    ("STEP_STARTED", "CHAT"),
    ("RUN_RESUMED", None),
    ("STEP_STARTED", "CHAT"),
    ("STEP_SUCCEEDED", "CHAT"),
    ("STEP_STARTED", "EMBED"),
    ("STEP_SUCCEEDED", "EMBED"),
    ("RUN_SUCCEEDED", None),
]


# --- servers and processes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with own_postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def database(pg: PostgresServer) -> Iterator[str]:
    with fresh_database(pg.url, "e2e_faults") as url:
        yield url


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with own_redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def slow_model(ollama_host: str) -> Iterator[str]:
    with slow_link(ollama_host, TOKEN_DELAY) as link:
        yield link.url


@pytest.fixture
def env(database: str, redis: RedisServer, slow_model: str) -> dict[str, str]:
    # A fault left behind by a failed test must not reach the next one.
    if redis.proc is None or redis.proc.poll() is not None:
        redis.start()
    redis.thaw()
    return {
        "APP_ENV": "test",
        "DATABASE_URL": database,
        "REDIS_URL": redis.url,
        "JWT_SECRET": JWT_SECRET,
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
        "OLLAMA_HOST": slow_model,
        "RUN_EXECUTION": "queue",
        "RUN_LEASE_SECONDS": str(LEASE_SECONDS),
        "RUN_STALE_QUEUED_SECONDS": str(STALE_QUEUED_SECONDS),
        "EVENT_STREAM_IDLE_SECONDS": str(IDLE_SECONDS),
        "RUN_REDELIVER_AFTER_SECONDS": "60",
        "MODEL_CHECK_MAX_TOKENS": str(MAX_TOKENS),
        "WORKER_CONCURRENCY": "4",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }


@dataclass
class Processes:
    apis: list[str]
    api_pids: list[int]
    database_url: str
    workers: list[rs.WorkerProcess] = field(default_factory=list)

    @property
    def ws(self) -> list[str]:
        return [u.replace("http://", "ws://", 1) + "/graphql" for u in self.apis]

    def worker_by_owner(self, owner: str) -> rs.WorkerProcess:
        [worker] = [w for w in self.workers if w.owner == owner]
        return worker

    def worker_output(self) -> str:
        return "\n".join(w.output() for w in self.workers)


@contextlib.contextmanager
def processes(env: dict[str, str], *, apis: int, workers: int, **extra: str) -> Iterator[Processes]:
    """`apis` API processes and `workers` workers on the module's servers; stopped on exit."""
    env = {**env, **extra}
    with contextlib.ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kd-faults-")))
        urls = [stack.enter_context(live_server(env)) for _ in range(apis)]
        pids = [rs.pid_listening_on(urlsplit(u).port or 80) for u in urls]
        procs = Processes(urls, pids, env["DATABASE_URL"])
        stack.callback(lambda: [w.stop() for w in procs.workers])
        started = [
            rs.WorkerProcess(name=f"worker-{n}", env=env, log=log_dir / f"worker-{n}.log").launch()
            for n in range(1, workers + 1)
        ]
        procs.workers = [w.wait_ready() for w in started]
        yield procs


# --- watching a run -------------------------------------------------------------------------------


@dataclass
class Watch:
    """A runProgress subscription followed to its end in the background."""

    run_gid: str
    task: asyncio.Task[tuple[list[dict[str, Any]], dict[str, Any] | None]]
    seen: list[dict[str, Any]]
    streaming: asyncio.Event

    @property
    def run_id(self) -> uuid.UUID:
        return uuid_of(self.run_gid)

    async def end(self, within: float = 90) -> list[dict[str, Any]]:
        """Wait for the subscription to complete; its events (the server must end it)."""
        events, end = await asyncio.wait_for(self.task, within)
        assert end == {"id": "p", "type": "complete"}, end
        return [{k: v for k, v in e.items() if k != "_received"} for e in events]

    def received_at(self, kind: str) -> float:
        [at] = [e["_received"] for e in self.seen if e["type"] == kind]
        return at


def watch(ws_url: str, member: Member, run_gid: str) -> Watch:
    seen: list[dict[str, Any]] = []
    streaming = asyncio.Event()

    async def on_event(event: dict[str, Any]) -> None:
        event["_received"] = time.monotonic()
        seen.append(event)
        if chat_is_streaming(event):
            streaming.set()

    task = asyncio.create_task(
        rs.py_run_progress(ws_url, member.token, run_gid, on_event=on_event, within=90)
    )
    return Watch(run_gid, task, seen, streaming)


async def start_and_wait_for_chat(
    procs: Processes, name: str, *, via: int = 0, watch_on: int = -1
) -> tuple[Member, Watch]:
    async with graphql(procs.apis[via]) as api:
        member = await sign_up(api, name)
        run_gid = await check_models(api, member)
    watching = watch(procs.ws[watch_on], member, run_gid)
    await asyncio.wait_for(watching.streaming.wait(), 30)
    return member, watching


WORKSPACE_EVENTS = (rs.ROOT / "graphql" / "operations" / "WorkspaceEvents.graphql").read_text()


async def toasts_until_finished(
    ws_url: str, member: Member, after: int, runs: set[uuid.UUID]
) -> list[tuple[int, str, uuid.UUID, str]]:
    """workspaceEvents (the shell's toasts) after `after`, read until every run in `runs` has
    its RUN_FINISHED: (cursor, type, run id, run status) of each event."""
    received: list[tuple[int, str, uuid.UUID, str]] = []
    finished: set[uuid.UUID] = set()
    async with rs.graphql_ws(ws_url, member.token) as conn:
        await conn.subscribe(
            "w", WORKSPACE_EVENTS, {"workspaceId": member.workspace_id, "after": str(after)}
        )
        while finished != runs:
            message = await conn.recv(within=60)
            assert message["type"] == "next" and "errors" not in message["payload"], message
            event = message["payload"]["data"]["workspaceEvents"]
            run_id = uuid_of(event["run"]["id"])
            received.append((int(event["cursor"]), event["type"], run_id, event["runStatus"]))
            if event["type"] == "RUN_FINISHED":
                finished.add(run_id)
    return received


async def workspace_log(
    database_url: str, workspace_id: uuid.UUID, after: int
) -> list[tuple[int, str, uuid.UUID, str]]:
    rows = await rs.fetch(
        database_url,
        "SELECT id, type, run_id, run_status FROM workspace_events "
        "WHERE workspace_id = $1 AND id > $2 ORDER BY id",
        workspace_id,
        after,
    )
    return [(r["id"], r["type"], r["run_id"], r["run_status"]) for r in rows]


async def last_workspace_event(database_url: str, workspace_id: uuid.UUID) -> int:
    [row] = await rs.fetch(
        database_url,
        "SELECT coalesce(max(id), 0) AS id FROM workspace_events WHERE workspace_id = $1",
        workspace_id,
    )
    return int(row["id"])


def milestones(log: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """The run's events but progress, with the step named for step events only."""
    return [
        (r["type"], r["step"] if r["type"].startswith("STEP_") else None)
        for r in log
        if r["type"] != "STEP_PROGRESS"
    ]


async def assert_ended_consistently(
    database_url: str,
    run_id: uuid.UUID,
    *streams: list[dict[str, Any]],
    executions: int,
    sequence: list[tuple[str, str | None]],
    chat_attempts: int,
) -> list[dict[str, Any]]:
    """SUCCEEDED, every step SUCCEEDED, the exact milestones, every stream the whole log."""
    row = await rs.run_row(database_url, run_id)
    assert (row["status"], row["executions"], row["lease_owner"]) == (
        "SUCCEEDED",
        executions,
        None,
    )
    steps = await rs.run_steps(database_url, run_id)
    assert [(s["name"], s["status"], s["attempts"]) for s in steps] == [
        ("CONNECT", "SUCCEEDED", 1),
        ("LIST_MODELS", "SUCCEEDED", 1),
        ("CHAT", "SUCCEEDED", chat_attempts),
        ("EMBED", "SUCCEEDED", 1),
    ]
    log = await rs.run_log(database_url, run_id)
    assert milestones(log) == sequence
    assert_one_log(rs.rows_as_log(log), *(rs.as_log(s) for s in streams))
    return log


def gap_seconds(row_at: datetime, received_wall: datetime) -> float:
    return (received_wall - row_at).total_seconds()


# --- Redis ----------------------------------------------------------------------------------------


async def test_redis_stopped_mid_run_and_started_again(
    env: dict[str, str], redis: RedisServer
) -> None:
    """With Redis gone, the run goes on and ends; its subscribers end on the final event, which
    nobody could publish; a run started meanwhile is accepted and executed by a sweeper. Redis
    comes back empty (no queue, no consumer group) and the workers take runs from it again."""
    with processes(env, apis=2, workers=2) as procs:
        member, first = await start_and_wait_for_chat(procs, "Rhea")
        workspace = uuid_of(member.workspace_id)
        toasts_after = await last_workspace_event(procs.database_url, workspace)

        redis.stop()
        async with graphql(procs.apis[0]) as api1:
            stopped_wall = datetime.now(UTC)
            second_gid = await check_models(api1, member)  # committed: success, QUEUED
        second = watch(procs.ws[1], member, second_gid)
        toasts = asyncio.create_task(
            toasts_until_finished(
                procs.ws[1], member, toasts_after, {first.run_id, uuid_of(second_gid)}
            )
        )
        first_events = await first.end()
        first_ended_wall = datetime.now(UTC)
        second_events = await second.end()
        toasted = await asyncio.wait_for(toasts, 30)
        assert redis.proc is not None and redis.proc.poll() is not None  # still stopped
        # The toasts: every activity row, none published, each once and in order.
        assert toasted == await workspace_log(procs.database_url, workspace, toasts_after)
        assert [(kind, status) for _, kind, run, status in toasted if run == first.run_id] == [
            ("RUN_FINISHED", "SUCCEEDED")
        ]
        assert [(kind, status) for _, kind, run, status in toasted if run == second.run_id] == [
            ("RUN_QUEUED", "QUEUED"),
            ("RUN_STARTED", "RUNNING"),
            ("RUN_FINISHED", "SUCCEEDED"),
        ]

        redis.start()
        async with graphql(procs.apis[0]) as api1:
            third_gid = await check_models(api1, member)
        third = watch(procs.ws[1], member, third_gid)
        third_events = await third.end()

        first_log = await assert_ended_consistently(
            procs.database_url,
            first.run_id,
            first_events,
            executions=1,
            sequence=NORMAL,
            chat_attempts=1,
        )
        second_log = await assert_ended_consistently(
            procs.database_url,
            second.run_id,
            second_events,
            executions=1,
            sequence=NORMAL,
            chat_attempts=1,
        )
        await assert_ended_consistently(
            procs.database_url,
            third.run_id,
            third_events,
            executions=1,
            sequence=NORMAL,
            chat_attempts=1,
        )
        output = procs.worker_output()
        # The second run, whose enqueue failed, was taken by a sweeper (both workers' sweepers
        # may offer it in the same instant; the claim lets one execute it: executions=1 above);
        # the third came through the queue again (Taskiq logs each delivery), so the receivers
        # recovered.
        assert output.count(f"handing out run {second.run_id} again") in (1, 2), output
        assert f"handing out run {third.run_id} again" not in output, output
        assert output.count("Executing task knowledge_desk.execute_run") == 2, output
        for worker in procs.workers:
            assert "the queue receiver stopped" in worker.output(), worker.tail()

    created = (await rs.run_row(procs.database_url, second.run_id))["created_at"]
    started = next(r["at"] for r in second_log if r["type"] == "RUN_STARTED")
    measured(
        "Redis down: enqueue lost -> RUN_STARTED by a sweeper", (started - created).total_seconds()
    )
    ended = first_log[-1]["at"]
    measured(
        "Redis down: RUN_SUCCEEDED committed -> its subscriber got it",
        gap_seconds(ended, first_ended_wall),
    )
    measured("Redis stopped -> first run ended", (ended - stopped_wall).total_seconds())


# --- PostgreSQL -----------------------------------------------------------------------------------


async def test_postgres_restarted_mid_run(env: dict[str, str], pg: PostgresServer) -> None:
    """A restart shorter than the lease: the executor keeps its lease, retries the writes that
    failed, and the run ends in its first execution with every step recorded in order."""
    with processes(env, apis=1, workers=2) as procs:
        _member, watching = await start_and_wait_for_chat(procs, "Paul", watch_on=0)
        restarting = time.monotonic()
        pg.restart(mode="fast")
        measured("pg_ctl restart -m fast", time.monotonic() - restarting)
        events = await watching.end()

        await assert_ended_consistently(
            procs.database_url,
            watching.run_id,
            events,
            executions=1,
            sequence=NORMAL,
            chat_attempts=1,
        )
        assert "lost the lease" not in procs.worker_output()


async def test_postgres_down_for_longer_than_the_lease(
    env: dict[str, str], pg: PostgresServer
) -> None:
    """The executor cannot renew: it stops the run when its lease runs out (by its own clock,
    which ends before the database's) and records nothing more; once PostgreSQL is back, a
    sweeper resumes the run from the step it was in. The subscriber rides out the outage."""
    with processes(env, apis=1, workers=2) as procs:
        _member, watching = await start_and_wait_for_chat(procs, "Petra", watch_on=0)
        owner = (await rs.run_row(procs.database_url, watching.run_id))["lease_owner"]
        holder = procs.worker_by_owner(owner)
        pg.stop(mode="fast")
        stopped_at = time.monotonic()

        async def lost() -> bool:
            return f"lost the lease of run {watching.run_id}; stopping it" in holder.output()

        await eventually(lost, within=LEASE_SECONDS + 5, what="the executor to give the run up")
        measured("PostgreSQL stopped -> executor gave the run up", time.monotonic() - stopped_at)
        pg.start()
        started_at = time.monotonic()
        events = await watching.end()

        await assert_ended_consistently(
            procs.database_url,
            watching.run_id,
            events,
            executions=2,
            sequence=RESUMED_IN_CHAT,
            chat_attempts=2,
        )
    measured(
        "PostgreSQL back -> RUN_RESUMED on the subscription",
        watching.received_at("RUN_RESUMED") - started_at,
    )


# --- a frozen worker ------------------------------------------------------------------------------


async def test_a_worker_frozen_past_its_lease_records_nothing_more(env: dict[str, str]) -> None:
    """SIGSTOP the only worker mid-CHAT until the database says its lease has expired, then
    SIGCONT it. On waking it must find its lease over before it writes anything: it stops the
    run, and the next thing in the run's log is its own sweeper resuming it (execution 2)."""
    with processes(env, apis=1, workers=1) as procs:
        [worker] = procs.workers
        _member, watching = await start_and_wait_for_chat(procs, "Fred", watch_on=0)
        run_id = watching.run_id
        frozen_at = worker.signal(signal.SIGSTOP)
        try:

            async def expired() -> bool:
                [row] = await rs.fetch(
                    procs.database_url,
                    "SELECT lease_expires_at < clock_timestamp() AS over FROM runs WHERE id = $1",
                    run_id,
                )
                return bool(row["over"])

            await eventually(
                expired,
                within=LEASE_SECONDS + 5,
                what="the lease to expire by the database's clock",
            )
            measured(
                "SIGSTOP -> lease expired by the database's clock", time.monotonic() - frozen_at
            )
            at_expiry = (await rs.run_row(procs.database_url, run_id))["last_seq"]
        finally:
            worker.signal(signal.SIGCONT)
        thawed_at = time.monotonic()
        events = await watching.end()

        log = await assert_ended_consistently(
            procs.database_url,
            run_id,
            events,
            executions=2,
            sequence=RESUMED_IN_CHAT,
            chat_attempts=2,
        )
        # Nothing recorded after the lease expired but the resumption by a new claim.
        after = log[at_expiry]
        assert (after["seq"], after["type"], after["message"]) == (
            at_expiry + 1,
            "RUN_RESUMED",
            "resumed after its previous executor stopped (execution 2)",
        )
        assert f"lost the lease of run {run_id}; stopping it" in worker.output()
    measured(
        "SIGCONT -> RUN_RESUMED on the subscription",
        watching.received_at("RUN_RESUMED") - thawed_at,
    )


# --- API processes killed -------------------------------------------------------------------------


async def test_an_api_killed_mid_run_leaves_it_to_another_api(env: dict[str, str]) -> None:
    """Inline execution: the API process executing a run is SIGKILLed mid-CHAT (whatever it had
    committed but not yet published is never published). The other API's sweeper resumes the
    run once the lease expires, and its subscribers end on the final event."""
    with processes(env, apis=2, workers=0, RUN_EXECUTION="inline") as procs:
        _member, watching = await start_and_wait_for_chat(procs, "Kim", via=0, watch_on=1)
        killed_at = time.monotonic()
        os.kill(procs.api_pids[0], signal.SIGKILL)
        events = await watching.end()

        await assert_ended_consistently(
            procs.database_url,
            watching.run_id,
            events,
            executions=2,
            sequence=RESUMED_IN_CHAT,
            chat_attempts=2,
        )
    measured(
        "API SIGKILL -> RUN_RESUMED on the other API",
        watching.received_at("RUN_RESUMED") - killed_at,
    )


async def test_an_api_killed_between_commit_and_publish(
    env: dict[str, str], redis: RedisServer
) -> None:
    """Redis is frozen, so checkModels on API 1 commits its run and then waits on its publish;
    API 1 is SIGKILLed right then: the run exists, QUEUED, and was never published nor handed
    to execution. The other API's sweeper takes it; its subscriber ends on the final event."""
    with processes(env, apis=2, workers=0, RUN_EXECUTION="inline") as procs:
        async with graphql(procs.apis[1]) as api2:
            member = await sign_up(api2, "Cleo")
        workspace = uuid_of(member.workspace_id)

        async def committed() -> list[dict[str, Any]]:
            return await rs.fetch(
                procs.database_url,
                "SELECT id, status, executions FROM runs WHERE workspace_id = $1",
                workspace,
            )

        redis.freeze()
        try:
            async with httpx.AsyncClient(base_url=procs.apis[0], timeout=30) as http:
                mutation = asyncio.create_task(
                    http.post(
                        "/graphql",
                        json={
                            "query": "mutation($w: ID!) { checkModels(input: {workspaceId: $w}) "
                            "{ run { id } errors { code } } }",
                            "variables": {"w": member.workspace_id},
                        },
                        headers={"Authorization": f"Bearer {member.token}"},
                    )
                )
                [row] = await eventually(committed, within=10, what="the run to commit", every=0.01)
                os.kill(procs.api_pids[0], signal.SIGKILL)
                with pytest.raises(httpx.HTTPError):
                    await mutation  # no answer: the process died inside the mutation
        finally:
            redis.thaw()
        killed_at = time.monotonic()
        # Never handed to execution: an inline launch would have claimed it at once.
        assert (row["status"], row["executions"]) == ("QUEUED", 0)
        run_id = row["id"]
        assert (await rs.run_row(procs.database_url, run_id))["executions"] == 0

        watching = watch(procs.ws[1], member, str(relay.GlobalID("Run", str(run_id))))
        events = await watching.end()

        log = await assert_ended_consistently(
            procs.database_url,
            run_id,
            events,
            executions=1,
            sequence=NORMAL,
            chat_attempts=1,
        )
    created = (await rs.run_row(procs.database_url, run_id))["created_at"]
    started = next(r["at"] for r in log if r["type"] == "RUN_STARTED")
    measured(
        "commit -> RUN_STARTED by the other API's sweeper", (started - created).total_seconds()
    )
    measured(
        "API SIGKILL -> RUN_SUCCEEDED on the other API",
        watching.received_at("RUN_SUCCEEDED") - killed_at,
    )
