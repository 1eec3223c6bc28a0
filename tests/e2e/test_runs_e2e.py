"""Runs end to end on loopback: two API processes and two workers on PostgreSQL and Redis.

The API processes run with RUN_EXECUTION=queue, so they only enqueue; runs execute on workers
(`uv run --frozen python -m app worker`). A run is started through one API and watched through
the other, over real WebSockets with a Python client (websockets) and the frontend's library
(the `graphql-ws` npm client, web/e2e/subscribe.mjs). Then runs are cancelled, and their
workers SIGKILLed and SIGTERMed, mid-run.

The module has its own database (`e2e_runs_<random>`) and Redis database 10: the Taskiq stream
`kd:runs` is a key, so it is per database, but the pub/sub channel `kd:events` is global to the
Redis server. Events on it are addressed by topic (run:<uuid>, workspace:<uuid>, control with a
run id), so another suite's processes on the same server only receive events for topics nobody
here subscribes to, and a CANCEL for a run id no local executor holds is ignored. The one
assertion that counts subscribers of the channel server-wide is therefore made only when the
Redis server is this session's own (no TEST_REDIS_URL); the per-process count is exact anyway.

The model: SmolLM2-135M ends its answer to the model-check prompt after 10-50 tokens, so on its
own a run lasts about a second. The workers reach it through `slow_link`
(tests/support/slow_link.py), which passes the real model's streamed reply on at one token per
TOKEN_DELAY seconds, so the CHAT step lasts several seconds and can be cancelled, killed or
interrupted mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from strawberry import relay

from tests.e2e import runs_support as rs
from tests.support.databases import fresh_database
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.live_server import live_server
from tests.support.slow_link import SlowLink, slow_link
from tests.support.waiting import eventually

JWT_SECRET = "e2e-runs-live-jwt-secret-0123456789abcde"  # 40 characters
assert len(JWT_SECRET) == 40

LEASE_SECONDS = 3.0  # RUN_LEASE_SECONDS of the workers
GRACE_SECONDS = 1.5  # WORKER_SHUTDOWN_GRACE_SECONDS
REDELIVER_SECONDS = 60.0  # RUN_REDELIVER_AFTER_SECONDS: the default, longer than any test here
MAX_TOKENS = 500  # MODEL_CHECK_MAX_TOKENS: the prompt at 500 gets the model's longest answer
TOKEN_DELAY = 0.12  # seconds per streamed token on the slow link
STEPS = ["CONNECT", "LIST_MODELS", "CHAT", "EMBED"]
PASSWORD = "a long pass phrase"

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow(seconds=170)]


# --- services and processes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs_database(postgres_url: str) -> Iterator[str]:
    """A fresh, migrated database of its own on the live PostgreSQL; dropped afterwards."""
    with fresh_database(postgres_url, "e2e_runs") as url:
        yield url


@pytest.fixture(scope="module")
def runs_redis(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    return urlunsplit((parts.scheme, parts.netloc, "/10", parts.query, parts.fragment))


@pytest.fixture(scope="module")
def slow_model(ollama_host: str) -> Iterator[SlowLink]:
    with slow_link(ollama_host, TOKEN_DELAY) as link:
        yield link


@dataclass
class Cluster:
    apis: list[str]
    api_pids: list[int]
    database_url: str
    redis_url: str
    worker_env: dict[str, str]
    log_dir: Path
    model_link: SlowLink
    workers: list[rs.WorkerProcess] = field(default_factory=list)

    @property
    def ws(self) -> list[str]:
        return [u.replace("http://", "ws://", 1) + "/graphql" for u in self.apis]

    def ensure_workers(self, count: int = 2, **env: str) -> list[rs.WorkerProcess]:
        """Exactly `count` live workers (dead ones are forgotten, new ones started)."""
        self.workers = [w for w in self.workers if w.alive]
        fresh = [self.new_worker(**env).launch() for _ in range(count - len(self.workers))]
        self.workers += [w.wait_ready() for w in fresh]  # started together, waited in turn
        return self.workers

    def new_worker(self, **env: str) -> rs.WorkerProcess:
        n = len(list(self.log_dir.glob("worker-*.log"))) + 1
        log = self.log_dir / f"worker-{n}.log"
        log.touch()
        return rs.WorkerProcess(name=f"worker-{n}", env={**self.worker_env, **env}, log=log)

    def worker_by_owner(self, owner: str) -> rs.WorkerProcess:
        [worker] = [w for w in self.workers if w.owner == owner]
        return worker


@pytest.fixture(scope="module")
def cluster(runs_database: str, runs_redis: str, slow_model: SlowLink) -> Iterator[Cluster]:
    common = {
        "APP_ENV": "test",
        "DATABASE_URL": runs_database,
        "REDIS_URL": runs_redis,
        "JWT_SECRET": JWT_SECRET,
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
        "OLLAMA_HOST": slow_model.url,
        "RUN_EXECUTION": "queue",
        "RUN_LEASE_SECONDS": str(LEASE_SECONDS),
        "RUN_REDELIVER_AFTER_SECONDS": str(REDELIVER_SECONDS),
        "MODEL_CHECK_MAX_TOKENS": str(MAX_TOKENS),
    }
    worker_env = {
        **common,
        "WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "WORKER_CONCURRENCY": "4",
        "LOG_LEVEL": "INFO",  # the worker logs "worker <owner> ready"
    }
    with contextlib.ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kd-runs-e2e-")))
        apis = [
            stack.enter_context(live_server({**common, "LOG_LEVEL": "WARNING"})) for _ in range(2)
        ]
        pids = [rs.pid_listening_on(urlsplit(u).port or 80) for u in apis]
        cluster = Cluster(apis, pids, runs_database, runs_redis, worker_env, log_dir, slow_model)
        stack.callback(lambda: [w.stop() for w in cluster.workers])
        cluster.ensure_workers()
        yield cluster


# --- helpers --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def graphql(base_url: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield GraphQLClient(http)


@dataclass
class Member:
    token: str
    user_id: str
    workspace_id: str


async def sign_up(api: GraphQLClient, name: str) -> Member:
    email = f"{name.lower()}-{uuid.uuid4().hex[:12]}@example.com"
    data = await api.execute(
        "mutation($i: SignUpInput!) { signUp(input: $i) { session { accessToken user { id } } "
        "errors { code message } } }",
        {"i": {"name": name, "email": email, "password": PASSWORD}},
    )
    session = data["data"]["signUp"]["session"]
    assert session, data
    shell = await api.execute(
        "{ workspaces(first: 1) { edges { node { id } } } }", token=session["accessToken"]
    )
    workspace = shell["data"]["workspaces"]["edges"][0]["node"]["id"]
    return Member(session["accessToken"], session["user"]["id"], workspace)


async def check_models(api: GraphQLClient, member: Member) -> str:
    data = await api.execute(
        "mutation($w: ID!) { checkModels(input: {workspaceId: $w}) "
        "{ run { id status } errors { code message } } }",
        {"w": member.workspace_id},
        token=member.token,
    )
    payload = data["data"]["checkModels"]
    assert payload["errors"] == [] and payload["run"]["status"] == "QUEUED", data
    return payload["run"]["id"]


async def cancel_run(api: GraphQLClient, member: Member, run_id: str) -> dict[str, Any]:
    data = await api.execute(
        "mutation($r: ID!) { cancelRun(input: {runId: $r}) "
        "{ run { status cancelRequested } errors { code message } } }",
        {"r": run_id},
        token=member.token,
    )
    return data["data"]["cancelRun"]


def chat_is_streaming(event: dict[str, Any]) -> bool:
    return event["type"] == "STEP_PROGRESS" and event["step"] == "CHAT"


async def lease_owner_while_running(cluster: Cluster, run_id: uuid.UUID) -> str:
    async def owner() -> str | None:
        row = await rs.run_row(cluster.database_url, run_id)
        return row["lease_owner"] if row["status"] == "RUNNING" else None

    return await eventually(owner, within=10, what="the run to be RUNNING under a lease")


def assert_one_log(log: list[tuple[Any, ...]], *streams: list[tuple[Any, ...]]) -> None:
    """Every stream is exactly the run's event log: cursors 1..N, nothing missing or repeated."""
    assert [e[0] for e in log] == list(range(1, len(log) + 1)), "the log itself has gaps"
    for stream in streams:
        assert stream == log


def without_request_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_request_ids(v) for k, v in value.items() if k != "requestId"}
    if isinstance(value, list):
        return [without_request_ids(v) for v in value]
    return value


def measured(what: str, value: float) -> None:
    """Print a timing for the record (ADR 0013); no test asserts one."""
    print(f"\nMEASURED {what}: {value:.3f} s")


# --- watching, reconnecting, cancelling -----------------------------------------------------------


async def test_a_run_started_on_api_1_runs_on_a_worker_and_streams_to_api_2_clients(
    cluster: Cluster,
) -> None:
    """Python and graphql-ws clients on API 2 each get the whole log in order without gaps;
    clients that leave after a few events and come back with their last cursor get exactly the
    rest, and their leaving cancels nothing."""
    cluster.ensure_workers()
    async with graphql(cluster.apis[0]) as api1:
        alice = await sign_up(api1, "Alice")
        run_gid = await check_models(api1, alice)
    run_id = uuid_of(run_gid)
    ws2 = cluster.ws[1]
    rest_started: dict[str, int] = {}

    async def leave_and_come_back(client: str) -> tuple[list[dict], list[dict]]:
        if client == "python":
            first, end = await rs.py_run_progress(ws2, alice.token, run_gid, limit=4)
            assert end is None
        else:
            first, code, err = await rs.node_run_progress(ws2, alice.token, run_gid, limit=4)
            assert code == 0, err
        assert len(first) >= 4  # the message that brought the fourth may hold more
        # Stay away while the run goes on, then come back with the last cursor seen.
        await eventually(
            lambda: _has_event_after(cluster, run_id, int(first[-1]["cursor"]) + 3),
            within=20,
            what="events to happen while the client is away",
        )
        rest_started[client] = (await rs.run_row(cluster.database_url, run_id))["last_seq"]
        if client == "python":
            rest, end = await rs.py_run_progress(
                ws2, alice.token, run_gid, after=first[-1]["cursor"]
            )
            assert end == {"id": "p", "type": "complete"}, end
        else:
            rest, code, err = await rs.node_run_progress(
                ws2, alice.token, run_gid, after=first[-1]["cursor"]
            )
            assert code == 0, err
        return first, rest

    owner = asyncio.create_task(lease_owner_while_running(cluster, run_id))
    (py_all, py_end), (node_all, node_code, node_err), py_parts, node_parts = await asyncio.gather(
        rs.py_run_progress(ws2, alice.token, run_gid),
        rs.node_run_progress(ws2, alice.token, run_gid),
        leave_and_come_back("python"),
        leave_and_come_back("node"),
    )
    assert py_end == {"id": "p", "type": "complete"}, py_end
    assert node_code == 0, node_err

    log = rs.rows_as_log(await rs.run_log(cluster.database_url, run_id))
    assert_one_log(
        log,
        rs.as_log(py_all),
        rs.as_log(node_all),
        rs.as_log(py_parts[0] + py_parts[1]),
        rs.as_log(node_parts[0] + node_parts[1]),
    )
    # Each returning client was away while events happened, and got those first.
    for client, (first, rest) in (("python", py_parts), ("node", node_parts)):
        assert int(rest[0]["cursor"]) == int(first[-1]["cursor"]) + 1
        assert int(rest[-1]["cursor"]) > rest_started[client] >= int(first[-1]["cursor"]) + 3
    assert {e["runId"] for e in py_all} == {run_gid} == {e["runId"] for e in node_all}

    types = [e[1] for e in log if e[1] != "STEP_PROGRESS"]
    assert types == ["RUN_QUEUED", "RUN_STARTED"] + [
        t for _ in STEPS for t in ("STEP_STARTED", "STEP_SUCCEEDED")
    ] + ["RUN_SUCCEEDED"]
    assert sum(1 for e in log if e[1] == "STEP_PROGRESS" and e[3] == "CHAT") >= 5
    # The failure tests below need CHAT to stream for seconds (see the module docstring).
    chat = [e[6] for e in log if e[3] == "CHAT" and e[1] in ("STEP_STARTED", "STEP_SUCCEEDED")]
    assert (chat[1] - chat[0]).total_seconds() >= 3.0, (
        f"CHAT streamed for {chat[1] - chat[0]} only: raise TOKEN_DELAY or MAX_TOKENS"
    )
    row = await rs.run_row(cluster.database_url, run_id)
    assert (row["status"], row["executions"], row["cancel_requested_at"]) == ("SUCCEEDED", 1, None)
    # Executed by a worker, not by either API process (they run with RUN_EXECUTION=queue).
    assert (await owner) in {w.owner for w in cluster.workers}


async def _has_event_after(cluster: Cluster, run_id: uuid.UUID, seq: int) -> bool:
    return (await rs.run_row(cluster.database_url, run_id))["last_seq"] >= seq


async def test_cancel_through_api_1_ends_the_run_on_its_worker(
    cluster: Cluster,
) -> None:
    cluster.ensure_workers()
    async with graphql(cluster.apis[0]) as api1:
        bob = await sign_up(api1, "Bob")
        run_gid = await check_models(api1, bob)
        run_id = uuid_of(run_gid)
        streaming = asyncio.Event()
        arrived: dict[str, float] = {}

        async def on_event(event: dict[str, Any]) -> None:
            arrived[event["type"]] = time.monotonic()
            if chat_is_streaming(event):
                streaming.set()

        watch = asyncio.create_task(
            rs.py_run_progress(cluster.ws[1], bob.token, run_gid, on_event=on_event)
        )
        await asyncio.wait_for(streaming.wait(), 20)
        asked = time.monotonic()
        answer = await cancel_run(api1, bob, run_gid)
        events, end = await asyncio.wait_for(watch, 20)

    took = arrived["RUN_CANCELLED"] - asked
    measured("cancel -> RUN_CANCELLED on the other API's subscription", took)
    assert answer == {"run": {"status": "RUNNING", "cancelRequested": True}, "errors": []}
    assert end == {"id": "p", "type": "complete"}
    row = await rs.run_row(cluster.database_url, run_id)
    assert row["status"] == "CANCELLED" and row["error_code"] == "CANCELLED"
    assert row["cancel_requested_at"] <= row["finished_at"]
    assert [(s["name"], s["status"]) for s in await rs.run_steps(cluster.database_url, run_id)] == [
        ("CONNECT", "SUCCEEDED"),
        ("LIST_MODELS", "SUCCEEDED"),
        ("CHAT", "CANCELLED"),
        ("EMBED", "CANCELLED"),
    ]
    log = rs.rows_as_log(await rs.run_log(cluster.database_url, run_id))
    assert_one_log(log, rs.as_log(events))
    assert log[-1][1] == "RUN_CANCELLED"


async def test_another_workspaces_run_errors_exactly_like_a_missing_run(cluster: Cluster) -> None:
    cluster.ensure_workers()
    async with graphql(cluster.apis[0]) as api1:
        carol = await sign_up(api1, "Carol")
        mallory = await sign_up(api1, "Mallory")
        run_gid = await check_models(api1, carol)
    missing_gid = str(relay.GlobalID("Run", str(uuid.uuid4())))
    ws2 = cluster.ws[1]

    py = [await rs.py_run_progress(ws2, mallory.token, gid) for gid in (run_gid, missing_gid)]
    node = [await rs.node_run_progress(ws2, mallory.token, gid) for gid in (run_gid, missing_gid)]

    (foreign_events, foreign_end), (missing_events, missing_end) = py
    assert foreign_events == missing_events == []
    assert foreign_end is not None and missing_end is not None
    # Identical but for the request id, which every request has its own of.
    assert without_request_ids(foreign_end) == without_request_ids(missing_end), py
    assert foreign_end == {
        "id": "p",
        "type": "next",
        "payload": {
            "data": None,
            "errors": [
                {
                    "message": "No such run.",
                    "extensions": {
                        "code": "NOT_FOUND",
                        "field": "runId",
                        "requestId": foreign_end["payload"]["errors"][0]["extensions"]["requestId"],
                    },
                }
            ],
        },
    }
    (f_events, f_code, f_err), (m_events, m_code, m_err) = node
    assert f_events == m_events == []
    assert f_code == m_code == 2, node
    f_errors, m_errors = json.loads(f_err), json.loads(m_err)
    assert without_request_ids(f_errors) == without_request_ids(m_errors), node
    assert without_request_ids(f_errors["errors"]) == without_request_ids(
        foreign_end["payload"]["errors"]
    ), node
    # Carol's own client sees her run.
    events, _ = await rs.py_run_progress(ws2, carol.token, run_gid)
    assert events[0]["type"] == "RUN_QUEUED"


async def test_subscribers_that_leave_cancel_nothing_and_leave_nothing_behind(
    cluster: Cluster,
) -> None:
    """Many subscribers share one Redis subscription per process; leaving (complete, close, or
    a dropped socket) removes their server side connections and never touches the run. The
    model link is held from the start, so the run stays in its CHAT step (its reply streams,
    the line that ends it waits) until the leaving has been checked, however fast the machine."""
    cluster.ensure_workers()
    private_redis = not os.environ.get("TEST_REDIS_URL")
    processes = [*cluster.api_pids, *(w.pid for w in cluster.workers)]
    for pid in processes:
        assert len(await rs.pubsub_connections_of(cluster.redis_url, pid)) == 1, pid
    channel_before = await rs.numsub(cluster.redis_url)
    if private_redis:
        assert channel_before == len(processes)

    api2_pid, api2_port = cluster.api_pids[1], urlsplit(cluster.apis[1]).port
    cluster.model_link.hold()
    try:
        async with graphql(cluster.apis[0]) as api1:
            dave = await sign_up(api1, "Dave")
            run_gid = await check_models(api1, dave)
        run_id = uuid_of(run_gid)
        activity = (
            "subscription($w: ID!) { workspaceEvents(workspaceId: $w) { cursor type runStatus } }"
        )
        async with contextlib.AsyncExitStack() as stack:
            conns = [
                await stack.enter_async_context(rs.graphql_ws(cluster.ws[1], dave.token))
                for _ in range(24)
            ]
            for i, conn in enumerate(conns):
                await conn.subscribe("p", rs.RUN_PROGRESS, {"runId": run_gid, "after": None})
                if i % 3 == 0:
                    await conn.subscribe("w", activity, {"w": dave.workspace_id})
            for conn in conns:  # every subscription is live: it replayed the first event
                while (first := await conn.recv())["id"] != "p":
                    assert first["type"] == "next", first
                assert first["type"] == "next", first
                assert first["payload"]["data"]["runProgress"][0]["type"] == "RUN_QUEUED", first
            ports = {c.client_port for c in conns}
            assert ports <= rs.established_peer_ports(api2_pid, api2_port)
            # Still one subscription to Redis per process, however many subscribers.
            assert len(await rs.pubsub_connections_of(cluster.redis_url, api2_pid)) == 1
            assert await rs.numsub(cluster.redis_url) == channel_before

            # Leave mid-run, three ways.
            async def until_chat(conn: rs.GraphQLWs) -> None:
                while True:
                    message = await conn.recv()
                    if message["id"] == "p" and any(
                        chat_is_streaming(e) for e in message["payload"]["data"]["runProgress"]
                    ):
                        return

            await until_chat(conns[0])
            assert (await rs.run_row(cluster.database_url, run_id))["status"] == "RUNNING"
            for i, conn in enumerate(conns):
                if i % 3 == 0:
                    await conn.complete("p")
                    await conn.complete("w")
                    await conn.ws.close()
                elif i % 3 == 1:
                    await conn.ws.close()
                else:
                    conn.drop()
        left_at = time.monotonic()

        async def gone() -> bool:
            return not (ports & rs.established_peer_ports(api2_pid, api2_port))

        await eventually(gone, within=10, what="API 2 to let go of the connections")
        measured(
            "24 subscribers left -> API 2 holds none of their connections",
            time.monotonic() - left_at,
        )
        assert len(await rs.pubsub_connections_of(cluster.redis_url, api2_pid)) == 1
        assert await rs.numsub(cluster.redis_url) == channel_before
        row = await rs.run_row(cluster.database_url, run_id)
        steps = await rs.run_steps(cluster.database_url, run_id)
        assert row["status"] == "RUNNING", (row, steps, [w.tail() for w in cluster.workers])
    finally:
        cluster.model_link.release()

    # The run went on to its end; a new subscriber replays all of it.
    events, end = await rs.py_run_progress(cluster.ws[1], dave.token, run_gid)
    assert end == {"id": "p", "type": "complete"}
    row = await rs.run_row(cluster.database_url, run_id)
    assert (row["status"], row["cancel_requested_at"]) == ("SUCCEEDED", None)
    assert_one_log(
        rs.rows_as_log(await rs.run_log(cluster.database_url, run_id)), rs.as_log(events)
    )
    for pid in processes:
        assert len(await rs.pubsub_connections_of(cluster.redis_url, pid)) == 1, pid


# --- workers that die or stop mid-run -------------------------------------------------------------


async def _start_and_wait_for_chat(
    cluster: Cluster, name: str
) -> tuple[Member, str, asyncio.Task[Any], list[dict[str, Any]]]:
    """Start a run through API 1 and follow it on API 2 until its CHAT step streams."""
    async with graphql(cluster.apis[0]) as api1:
        member = await sign_up(api1, name)
        run_gid = await check_models(api1, member)
    streaming = asyncio.Event()
    seen: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        event["_received"] = time.monotonic()
        seen.append(event)
        if chat_is_streaming(event):
            streaming.set()

    watch = asyncio.create_task(
        rs.py_run_progress(cluster.ws[1], member.token, run_gid, on_event=on_event, within=60)
    )
    await asyncio.wait_for(streaming.wait(), 20)
    return member, run_gid, watch, seen


def _received_at(seen: list[dict[str, Any]], kind: str) -> float:
    [at] = [e["_received"] for e in seen if e["type"] == kind]
    return at


async def _assert_resumed_once(cluster: Cluster, run_id: uuid.UUID, events: list[dict]) -> None:
    for event in events:
        event.pop("_received", None)
    log = rs.rows_as_log(await rs.run_log(cluster.database_url, run_id))
    assert_one_log(log, rs.as_log(events))
    kinds = [e[1] for e in log]
    assert kinds.count("RUN_STARTED") == 1
    assert kinds.count("RUN_RESUMED") == 1
    assert kinds.count("RUN_SUCCEEDED") == 1 and kinds[-1] == "RUN_SUCCEEDED"
    assert not {"RUN_FAILED", "RUN_CANCELLED"} & set(kinds)
    row = await rs.run_row(cluster.database_url, run_id)
    assert (row["status"], row["executions"]) == ("SUCCEEDED", 2)
    # Steps finished before the stop are not run again; the interrupted one is.
    assert [
        (s["name"], s["status"], s["attempts"])
        for s in await rs.run_steps(cluster.database_url, run_id)
    ] == [
        ("CONNECT", "SUCCEEDED", 1),
        ("LIST_MODELS", "SUCCEEDED", 1),
        ("CHAT", "SUCCEEDED", 2),
        ("EMBED", "SUCCEEDED", 1),
    ]
    resumed = kinds.index("RUN_RESUMED")
    assert kinds[resumed + 1 : resumed + 2] == ["STEP_STARTED"] and log[resumed + 1][3] == "CHAT"
    assert [e[1] for e in log[:resumed] if e[1] == "STEP_SUCCEEDED"] == ["STEP_SUCCEEDED"] * 2


async def test_a_worker_killed_mid_run_is_resumed_by_the_other_once_its_lease_expired(
    cluster: Cluster,
) -> None:
    cluster.ensure_workers()
    member, run_gid, watch, seen = await _start_and_wait_for_chat(cluster, "Erin")
    run_id = uuid_of(run_gid)
    owner = await lease_owner_while_running(cluster, run_id)
    victim = cluster.worker_by_owner(owner)
    survivor = next(w for w in cluster.workers if w is not victim)
    # The victim's lease as it stands before the kill (it can only have renewed it since).
    lease = await rs.run_row(cluster.database_url, run_id)
    assert (lease["status"], lease["lease_owner"]) == ("RUNNING", owner)

    killed_at = victim.signal(signal.SIGKILL)
    killed_wall = datetime.now(UTC)
    await victim.wait_exit(5)
    events, end = await asyncio.wait_for(watch, 60)

    assert end == {"id": "p", "type": "complete"}
    measured(
        "SIGKILL -> RUN_RESUMED on the subscription", _received_at(seen, "RUN_RESUMED") - killed_at
    )
    measured("SIGKILL -> RUN_SUCCEEDED", _received_at(seen, "RUN_SUCCEEDED") - killed_at)
    await _assert_resumed_once(cluster, run_id, events)
    log = await rs.run_log(cluster.database_url, run_id)
    resumed = next(r for r in log if r["type"] == "RUN_RESUMED")
    # Not before the lease expired: nobody took the run from a worker that might be alive.
    assert resumed["at"] > lease["lease_expires_at"], (resumed["at"], lease["lease_expires_at"])
    # Nothing was written for the run between the kill and the resume.
    between = [r for r in log if killed_wall < r["at"] < resumed["at"]]
    assert between == [], between
    assert survivor.alive
    assert resumed["message"] == "resumed after its previous executor stopped (execution 2)"


@dataclass
class GracefulStop:
    run_id: uuid.UUID
    worker: rs.WorkerProcess
    asked_at: float  # monotonic
    asked_wall: datetime
    exited_at: float  # monotonic
    events: list[dict[str, Any]]
    end: dict[str, Any] | None
    seen: list[dict[str, Any]]


async def _sigterm_mid_run(cluster: Cluster, name: str) -> GracefulStop:
    """SIGTERM the worker executing a run mid-CHAT; follow the run on API 2 to its end."""
    cluster.ensure_workers()
    _member, run_gid, watch, seen = await _start_and_wait_for_chat(cluster, name)
    run_id = uuid_of(run_gid)
    stopping = cluster.worker_by_owner(await lease_owner_while_running(cluster, run_id))
    asked_at = stopping.signal(signal.SIGTERM)
    asked_wall = datetime.now(UTC)
    exited_at = await stopping.wait_exit(GRACE_SECONDS + 15)
    events, end = await asyncio.wait_for(watch, 60)
    return GracefulStop(run_id, stopping, asked_at, asked_wall, exited_at, events, end, seen)


async def test_sigterm_lets_runs_finish_for_the_grace_then_releases_them_to_another_worker(
    cluster: Cluster,
) -> None:
    stop = await _sigterm_mid_run(cluster, "Frank")

    assert stop.end == {"id": "p", "type": "complete"}
    measured("SIGTERM -> worker exited", stop.exited_at - stop.asked_at)
    resumed_after = _received_at(stop.seen, "RUN_RESUMED") - (stop.asked_at + GRACE_SECONDS)
    measured("SIGTERM + grace -> RUN_RESUMED", resumed_after)
    # It had its grace: the run went on after the SIGTERM, streaming tokens...
    log = await rs.run_log(cluster.database_url, stop.run_id)
    resumed = next(r for r in log if r["type"] == "RUN_RESUMED")
    during_grace = [
        r for r in log if stop.asked_wall < r["at"] < resumed["at"] and r["type"] == "STEP_PROGRESS"
    ]
    assert len(during_grace) >= 3, during_grace
    # ...then released its lease, so the other worker took over without waiting it out.
    assert "worker stopped; released 1 run(s)" in stop.worker.output(), stop.worker.tail()
    await _assert_resumed_once(cluster, stop.run_id, stop.events)


async def test_a_worker_stopped_mid_run_logs_no_errors(cluster: Cluster) -> None:
    """A deploy (SIGTERM with a run in progress) is routine: the worker's log says what it did
    at INFO and WARNING, with no ERROR and no traceback for operators to chase."""
    stop = await _sigterm_mid_run(cluster, "Heidi")

    assert stop.end == {"id": "p", "type": "complete"}
    assert stop.events[-1]["type"] == "RUN_SUCCEEDED"
    output = stop.worker.output()
    assert "worker stopped; released 1 run(s)" in output
    errors = [line for line in output.splitlines() if " ERROR " in line or "Traceback" in line]
    assert errors == [], output


async def test_a_stopping_worker_takes_no_new_runs(cluster: Cluster) -> None:
    """SIGTERM "stops taking runs" (app/worker.py): a run queued during the grace waits for
    another worker instead of being started, interrupted and resumed."""
    workers = cluster.ensure_workers()
    spare = workers[1]
    spare.signal(signal.SIGTERM)  # idle: it exits at once
    await spare.wait_exit(15)
    cluster.ensure_workers(1)
    [alone] = cluster.workers
    member, first_gid, watch, _ = await _start_and_wait_for_chat(cluster, "Grace")

    alone.signal(signal.SIGTERM)
    async with graphql(cluster.apis[1]) as api2:
        second_gid = await check_models(api2, member)
    second_id = uuid_of(second_gid)
    await alone.wait_exit(GRACE_SECONDS + 15)
    during = await rs.run_row(cluster.database_url, second_id)
    deliveries = alone.output().split("worker stopping", 1)[1].count("Executing task")
    queued = await rs.xlen(cluster.redis_url)
    cluster.ensure_workers(2)  # fresh workers resume the first run and start the second
    await asyncio.wait_for(watch, 60)
    events, end = await rs.py_run_progress(cluster.ws[0], member.token, second_gid)

    assert end == {"id": "p", "type": "complete"}
    assert events[-1]["type"] == "RUN_SUCCEEDED"
    kinds = [e["type"] for e in events]
    assert (during["status"], during["executions"]) == ("QUEUED", 0), (
        f"the stopping worker started a run queued after its SIGTERM: {during['status']}, "
        f"executions {during['executions']}; its events: {kinds}"
    )
    assert "RUN_RESUMED" not in kinds
    assert (await rs.run_row(cluster.database_url, second_id))["executions"] == 1
    # Handing the run back must not loop: a stopping worker that still reads the queue gets
    # its own hand-back at once, hands it back again, and so on for the whole grace.
    print(f"\nMEASURED deliveries to the stopping worker in its grace: {deliveries}; XLEN {queued}")
    assert deliveries <= 2, (
        f"the stopping worker was handed the run {deliveries} times in its "
        f"{GRACE_SECONDS} s grace; the stream kd:runs grew to {queued} entries"
    )


async def test_a_worker_stopped_right_after_it_started_exits(cluster: Cluster) -> None:
    """SIGTERM at any moment stops a worker (a deploy may replace a pod that just started).

    A cancellation that lands while the Taskiq receiver's first XREADGROUP is opening its Redis
    connection is swallowed by redis-py 8.1.0 (the command returns [] instead of raising
    CancelledError), and taskiq-redis 1.2.4's `listen` loop takes [] for "no messages" and polls
    again. app/worker.py therefore cancels the receiver until it has ended (`_stop_receiving`);
    a worker that waited on one cancel would never exit.
    """
    fresh = cluster.new_worker().start(poll=0.005)
    cluster.workers.append(fresh)
    asked_at = fresh.signal(signal.SIGTERM)
    try:
        exited_at = await fresh.wait_exit(6)
    except AssertionError:
        fresh.signal(signal.SIGKILL)
        await fresh.wait_exit(10)
        raise AssertionError(
            "a worker sent SIGTERM right after it logged ready did not exit within 6 s:\n"
            + fresh.output()
        ) from None
    measured("SIGTERM right after ready -> worker exited", exited_at - asked_at)
    assert "worker stopped; released 0 run(s)" in fresh.output()
