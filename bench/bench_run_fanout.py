"""Benchmark: concurrent `runProgress` subscribers on ONE API process (1,000 with --full), for
one run that emits 100 events, versus raw Redis pub/sub measured in the same run as the floor.

    uv run --frozen python bench/bench_run_fanout.py [--full] [--subscribers N] [--events N]
        [--interval S] [--procs N] [--no-deflate] [--skip-floors] [--gc] [--profile]
        [--workers N]

By default a quick run: 200 subscribers and 20 events; `--full` gives the 1,000 subscribers
and 100 events of the recorded figures.

A script, not a test: it prints figures and asserts nothing about time. It starts throwaway
PostgreSQL and Redis servers, migrates, signs a user up through the services, and starts a real
uvicorn (tests/support/live_server) with REDIS_URL and RUN_EXECUTION=queue, so that the API
process executes nothing and only fans events out. Then, per mode:

* redis: N connections - N redis.asyncio clients, one pub/sub connection each, subscribed to one
  channel: what Redis itself costs to deliver a message N times (every subscriber parses it).
* redis: RedisBus - base.events.bus.RedisBus, the app's own transport without GraphQL: one Redis
  connection per client process, local fan-out by topic to N/procs Subscription queues.
* graphql: runProgress over WS - N WebSocket clients speaking graphql-transport-ws to the API
  (connection_init with the bearer token, the frontend's RunProgress document); the API holds
  one Redis connection and fans out to N subscriptions.

The run is real: a row created with services.runs.create_run (services.model_check's
CHECK_MODELS kind, 4 steps) and claimed with RunStore.claim, so each subscriber first replays
RUN_QUEUED and RUN_STARTED from the database. Once every subscriber has them, this process
writes the events the way the executor does (RunStore.step_event: --events spread over the
steps, each STEP_STARTED, STEP_PROGRESS..., STEP_SUCCEEDED, 25 per step with 100), then
RunStore.finish (RUN_SUCCEEDED, the terminal event), one every --interval seconds (0.1 s by
default: the executor records a step's progress at most every 0.1 s). Each write publishes on
the Redis bus after its commit; a RedisBus subclass notes the time just before each publish.
Every subscriber notes when each event reached it; latency = receipt - publish, on one machine
clock (time.time_ns) across processes. The floors publish the same envelopes at the same pace.

The subscribers run in --procs child processes (2 by default), so that client-side parsing does
not share the publisher's event loop. With 2 CPUs the clients, PostgreSQL, Redis and the API
compete for the same cores: read the ratios to the floors, measured the same way, more than the
absolute values.

uvicorn runs as tests/support/live_server starts it (as the app is deployed): no
--limit-concurrency, --backlog 2048, --ws-max-queue 32, pings every 20 s, and
--ws-per-message-deflate false. Browsers offer permessage-deflate, and so do these clients
unless --no-deflate.

`--profile` and `--gc` serve `bench.bench_run_fanout:create_bench_app`: the real app plus POST
/bench/control (cProfile on/off, GC pauses, an object census). `--workers N` runs N uvicorn
workers. The what-ifs of earlier versions (each run event executed once per process, gc.freeze()
after start-up) are the app's own code now; their figures are in adr/0015-event-bus.md.
PostgreSQL, Redis, the server and temporary files are removed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import math
import multiprocessing
import os
import pstats
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `app`, `resolvers`, ... importable
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis.asyncio as redis  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from strawberry import relay  # noqa: E402

from app import migrate  # noqa: E402
from base.auth.principal import Principal  # noqa: E402
from base.db.engine import build_engine, build_sessionmaker  # noqa: E402
from base.events.bus import EventBus, RedisBus, run_topic  # noqa: E402
from base.models.runs import RunStatus, SubjectType  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench.common import add_size_flag, apply_sizes, percentile  # noqa: E402
from services import accounts, runs, workspaces  # noqa: E402
from services.deps import ServiceDeps  # noqa: E402
from services.model_check import CHECK_MODELS  # noqa: E402
from services.ratelimit import AttemptLimiter  # noqa: E402
from services.run_log import Outbox  # noqa: E402
from services.run_store import RunStore  # noqa: E402

BENCH_SECRET = "bench-run-fanout-secret-0123456789abcdef"
PASSWORD = "a long bench pass phrase"
WS_PROTOCOL = "graphql-transport-ws"
RUN_PROGRESS = (ROOT / "graphql" / "operations" / "RunProgress.graphql").read_text()
STEPS = CHECK_MODELS.steps  # CONNECT, LIST_MODELS, CHAT, EMBED
REPLAYED = 2  # RUN_QUEUED (create_run) and RUN_STARTED (claim) are in the log before anyone joins
TERMINAL = "RUN_SUCCEEDED"
GOAL_P99_MS = 100.0
FLOOR_CHANNEL = "bench:floor"

MODE_CONNS = "redis: N connections"
MODE_BUS = "redis: RedisBus"
MODE_WS = "graphql: runProgress over WS"


# --- helpers shared with bench_subscription_memory ---------------------------------------------


def raise_open_files(wanted: int) -> int:
    """Raise the soft open-files limit towards `wanted` (each socket is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def bench_settings(database_url: str, redis_url: str | None) -> Settings:
    return Settings(
        app_env="development",
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=BENCH_SECRET,
        log_level="WARNING",
        run_execution="queue" if redis_url else "inline",
    )


def server_env(settings: Settings) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "RUN_EXECUTION": "queue",  # the API process executes nothing: it only fans out
        "JWT_SECRET": BENCH_SECRET,
        "LOG_LEVEL": "WARNING",
        "UVICORN_ACCESS_LOG": "false",  # uvicorn reads its flags from UVICORN_* too
    }


def server_process(port: int) -> psutil.Process:
    """The uvicorn child that live_server started on `port`."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = child.cmdline()
            if "uvicorn" in cmdline and str(port) in cmdline:
                return child
    raise RuntimeError(f"no uvicorn child process on port {port}")


def server_warnings(server: psutil.Process) -> list[str]:
    """WARNING / ERROR lines of the server's output (live_server sends it to a file)."""
    with contextlib.suppress(psutil.Error, OSError):
        for opened in server.open_files():
            if opened.path.endswith("server.log"):
                text = Path(opened.path).read_text(errors="replace")
                return [
                    line
                    for line in text.splitlines()
                    if " WARNING " in line or " ERROR " in line or "Error" in line
                ]
    return []


def tree_usage_split(server: psutil.Process) -> tuple[float, float, float]:
    """(RSS MiB, user CPU seconds, system CPU seconds) of the server and its worker processes;
    the system share is the kernel's work for them, mostly socket system calls."""
    rss = user = system = 0.0
    for proc in [server, *server.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            rss += proc.memory_info().rss / 2**20
            times = proc.cpu_times()
            user += times.user
            system += times.system
    return rss, user, system


def tree_usage(server: psutil.Process) -> tuple[float, float]:
    """(RSS MiB, user + system CPU seconds) of the server and its worker processes."""
    rss, user, system = tree_usage_split(server)
    return rss, user + system


def build_deps(settings: Settings, bus: EventBus) -> tuple[ServiceDeps, Any]:
    engine = build_engine(settings)
    deps = ServiceDeps(
        settings=settings,
        db=build_sessionmaker(engine),
        attempts=AttemptLimiter.build(settings),
        bus=bus,
    )
    return deps, engine


async def seed_user(deps: ServiceDeps) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A user and their own workspace, through the services: (user id, workspace id, token)."""
    tag = uuid.uuid4().hex[:8]
    me = await accounts.sign_up(
        deps, name="Ada Lovelace", email=f"ada-{tag}@example.com", password=PASSWORD
    )
    as_me = deps.for_principal(Principal(user_id=me.user.id))
    [own] = (await workspaces.list_my_workspaces(as_me)).edges
    return me.user.id, own.node.id, me.access_token


async def create_claimed_run(
    deps: ServiceDeps, store: RunStore, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> uuid.UUID:
    """A check_models run, committed (RUN_QUEUED) and claimed by `store` (RUN_STARTED)."""
    outbox = Outbox()
    async with deps.db.begin() as session:
        run = await runs.create_run(
            session,
            outbox,
            workspace_id=workspace_id,
            kind=CHECK_MODELS,
            subject_type=SubjectType.WORKSPACE,
            subject_id=workspace_id,
            subject_label="bench workspace",
            triggered_by_id=user_id,
        )
    await outbox.publish(deps.bus)
    claim = await store.claim(run.id)
    if claim is None:
        raise RuntimeError("could not claim the benchmark run")
    return run.id


def run_global_id(run_id: uuid.UUID) -> str:
    return str(relay.GlobalID("Run", str(run_id)))


def init_message(token: str) -> str:
    return json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})


def subscribe_message(run_gid: str, op_id: str = "1") -> str:
    return json.dumps(
        {
            "id": op_id,
            "type": "subscribe",
            "payload": {
                "query": RUN_PROGRESS,
                "operationName": "RunProgress",
                "variables": {"runId": run_gid},
            },
        }
    )


# --- the subscribers (child processes) ---------------------------------------------------------


@dataclass
class SubscriberLog:
    received: list[tuple[int, int]] = field(default_factory=list)  # (cursor, receipt ns)
    types: list[str] = field(default_factory=list)
    completed: bool = False  # graphql-transport-ws "complete" after the terminal event
    error: str | None = None


async def _ws_subscriber(
    spec: dict[str, Any], log: SubscriberLog, ready: asyncio.Event, gate: asyncio.Semaphore
) -> None:
    from websockets.asyncio.client import connect

    clock = time.time_ns
    async with gate:  # bounded concurrent handshakes
        ws = await connect(
            spec["ws_url"],
            subprotocols=[WS_PROTOCOL],
            compression="deflate" if spec["deflate"] else None,
            open_timeout=120,
            ping_interval=None,
            close_timeout=2,
            max_queue=None,
        )
        await ws.send(init_message(spec["token"]))
        ack = json.loads(await ws.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"no connection_ack: {ack}")
        await ws.send(subscribe_message(spec["run_gid"]))
    try:
        async for raw in ws:
            now = clock()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "next":
                payload = message["payload"]
                if payload.get("errors"):
                    raise RuntimeError(f"errors: {payload['errors']}")
                for event in payload["data"]["runProgress"]:  # one or more a message
                    cursor = int(event["cursor"])
                    log.received.append((cursor, now))
                    log.types.append(event["type"])
                    if cursor == REPLAYED:
                        ready.set()
            elif kind == "complete":
                log.completed = True
                return
            elif kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            else:
                raise RuntimeError(f"unexpected message: {message}")
    finally:
        await ws.close()


async def _redis_conn_subscriber(
    spec: dict[str, Any], log: SubscriberLog, ready: asyncio.Event, gate: asyncio.Semaphore
) -> None:
    clock = time.time_ns
    async with gate:
        client = redis.from_url(spec["redis_url"])
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(FLOOR_CHANNEL)
    ready.set()
    try:
        async for message in pubsub.listen():
            now = clock()
            if message.get("type") != "message":
                continue
            event = json.loads(message["data"])["event"]
            log.received.append((event["cursor"], now))
            log.types.append(event["type"])
            if event["type"] == TERMINAL:
                log.completed = True
                return
    finally:
        await pubsub.aclose()
        await client.aclose()


async def _bus_subscriber(
    bus: RedisBus, topic: str, log: SubscriberLog, ready: asyncio.Event
) -> None:
    clock = time.time_ns
    async with bus.subscribe(topic) as subscription:
        ready.set()
        while True:
            event = await subscription.get()
            now = clock()
            log.received.append((event["cursor"], now))
            log.types.append(event["type"])
            if event["type"] == TERMINAL:
                log.completed = True
                return


async def _subscribers_main(conn: Any, spec: dict[str, Any]) -> None:
    count, mode = spec["count"], spec["mode"]
    logs = [SubscriberLog() for _ in range(count)]
    readies = [asyncio.Event() for _ in range(count)]
    gate = asyncio.Semaphore(spec["connect_concurrency"])
    bus: RedisBus | None = None
    if mode == MODE_BUS:
        bus = RedisBus(spec["redis_url"])
        await bus.start()

    async def one(i: int) -> None:
        try:
            if mode == MODE_WS:
                await _ws_subscriber(spec, logs[i], readies[i], gate)
            elif mode == MODE_CONNS:
                await _redis_conn_subscriber(spec, logs[i], readies[i], gate)
            else:
                assert bus is not None
                await _bus_subscriber(bus, spec["topic"], logs[i], readies[i])
        except Exception as exc:  # reported per subscriber, never raised
            logs[i].error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            readies[i].set()

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), spec["ready_timeout"])
    failed = sum(log.error is not None for log in logs)
    conn.send(("ready", time.monotonic() - started, failed, time.process_time()))
    done, pending = await asyncio.wait(tasks, timeout=spec["finish_timeout"])
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for i, task in enumerate(tasks):
        if task in pending and logs[i].error is None:
            logs[i].error = "timed out before the terminal event"
    if bus is not None:
        await bus.close()
    cpu = time.process_time()
    conn.send(("done", [(log.received, log.types, log.completed, log.error) for log in logs], cpu))


def subscribers_process(conn: Any, spec: dict[str, Any]) -> None:
    """Child process entry: run `spec["count"]` subscribers of one mode, report over `conn`."""
    raise_open_files(spec["count"] * 2 + 256)
    try:
        asyncio.run(_subscribers_main(conn, spec))
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class SubscriberPool:
    """--procs child processes holding the subscribers of one mode."""

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns = []
        self.procs = []
        self.client_cpu = 0.0
        for spec in specs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=subscribers_process, args=(child, spec), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    async def _recv(self, conn: Any, seconds: float) -> Any:
        deadline = time.monotonic() + seconds
        while not conn.poll():
            if time.monotonic() > deadline:
                raise TimeoutError("a subscriber process did not answer in time")
            await asyncio.sleep(0.02)
        message = conn.recv()
        if message[0] == "failed":
            raise RuntimeError(f"a subscriber process failed: {message[1]}")
        return message

    async def ready(self, seconds: float) -> tuple[float, int]:
        answers = [await self._recv(c, seconds) for c in self.conns]
        self.client_cpu = -sum(a[3] for a in answers)
        return max(a[1] for a in answers), sum(a[2] for a in answers)

    async def results(self, seconds: float) -> list[tuple[Any, ...]]:
        """Every subscriber's log; also sets client_cpu (CPU seconds from ready to done)."""
        logs: list[tuple[Any, ...]] = []
        for conn in self.conns:
            answer = await self._recv(conn, seconds)
            logs.extend(answer[1])
            self.client_cpu += answer[2]
        return logs

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()


# --- the publisher (this process) --------------------------------------------------------------


class RecordingRedisBus(RedisBus):
    """RedisBus that notes the wall time just before each run event is published."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.published: dict[int, int] = {}  # cursor -> ns, for the topic being watched
        self.topic: str | None = None

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        if topic == self.topic:
            self.published[event["cursor"]] = time.time_ns()
        await super().publish(topic, event)


def event_plan(events: int) -> list[tuple[str, str, float]]:
    """(step, kind, fraction) of `events` step events over the workflow's steps, in order."""
    per_step = [events // len(STEPS) + (i < events % len(STEPS)) for i in range(len(STEPS))]
    plan: list[tuple[str, str, float]] = []
    for step, n in zip(STEPS, per_step, strict=True):
        if n == 0:
            continue
        progress = max(n - 2, 0)
        kinds = ["STEP_STARTED"] + ["STEP_PROGRESS"] * progress
        kinds += ["STEP_SUCCEEDED"] if n >= 2 else []
        for k, kind in enumerate(kinds):
            plan.append((step, kind, (k / (progress + 1)) if kind == "STEP_PROGRESS" else 0.0))
    return plan


def synthetic_event(run_id: uuid.UUID, cursor: int, kind: str, step: str | None) -> dict[str, Any]:
    """The shape of services.run_log.run_event_dict, for the floors."""
    return {
        "cursor": cursor,
        "run_id": str(run_id),
        "type": kind,
        "status": "RUNNING" if kind != TERMINAL else "SUCCEEDED",
        "step": step,
        "percent": min(99, cursor),
        "message": f"{step} progress {cursor}" if step else "done",
        "at": "2026-01-01T00:00:00+00:00",
    }


async def paced(count: int, interval: float) -> Any:
    """Yield 0..count-1, the k-th no earlier than start + k * interval (no drift)."""
    start = time.monotonic()
    for k in range(count):
        delay = start + k * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield k


@dataclass
class ModeResult:
    mode: str
    subscribers: int
    ready_seconds: float
    latencies_ms: list[float]  # every (subscriber, live event)
    last_ms: list[float]  # per event: the slowest subscriber
    last_by_cursor: dict[int, float]
    complete: int  # subscribers with every event, in order, once, then the end
    missing: int  # live events not received, summed over subscribers
    out_of_order: int
    errors: dict[str, int]
    error_samples: list[str] = field(default_factory=list)  # a few distinct messages
    server_log: list[str] = field(default_factory=list)  # its warnings and errors
    write_ms: list[float] = field(default_factory=list)  # per event, DB write + publish
    server_cpu_ms: float | None = None
    client_cpu_ms: float | None = None  # the subscriber processes, same window
    server_rss_mb: tuple[float, float] | None = None
    publish_seconds: float = 0.0  # first write to last write
    window_seconds: float = 0.0  # first write to the last subscriber's end


def analyse(
    mode: str,
    logs: list[tuple[Any, ...]],
    published: dict[int, int],
    expected: list[int],
    ready_seconds: float,
) -> ModeResult:
    live = set(published)
    latencies: list[float] = []
    worst: dict[int, float] = {}
    complete = missing = out_of_order = 0
    errors: dict[str, int] = {}
    samples: list[str] = []
    for received, types, completed, error in logs:
        cursors = [c for c, _ in received]
        if error:
            errors[error.split(":")[0]] = errors.get(error.split(":")[0], 0) + 1
            if len(samples) < 3 and error[:60] not in {e[:60] for e in samples}:
                samples.append(error)
        if cursors != sorted(cursors) or len(set(cursors)) != len(cursors):
            out_of_order += 1
        missing += len(set(expected) - set(cursors))
        if cursors == expected and completed and types and types[-1] == TERMINAL:
            complete += 1
        for cursor, at in received:
            if cursor in live:
                ms = (at - published[cursor]) / 1e6
                latencies.append(ms)
                worst[cursor] = max(worst.get(cursor, 0.0), ms)
    return ModeResult(
        mode=mode,
        subscribers=len(logs),
        ready_seconds=ready_seconds,
        latencies_ms=latencies,
        last_ms=list(worst.values()),
        last_by_cursor=worst,
        complete=complete,
        missing=missing,
        out_of_order=out_of_order,
        errors=errors,
        error_samples=samples,
    )


def split(total: int, parts: int) -> list[int]:
    """`total` subscribers over at most `parts` processes, none empty."""
    sizes = [total // parts + (i < total % parts) for i in range(parts)]
    return [n for n in sizes if n]


async def run_floor(
    mode: str, args: argparse.Namespace, redis_url: str, bus: RecordingRedisBus
) -> ModeResult:
    topic = run_topic(uuid.uuid4())
    fake_run = uuid.uuid4()
    base = {
        "mode": mode,
        "redis_url": redis_url,
        "topic": topic,
        "connect_concurrency": 100,
        "ready_timeout": 120,
        "finish_timeout": args.events * args.interval + 60,
    }
    pool = SubscriberPool([{**base, "count": n} for n in split(args.subscribers, args.procs)])
    publisher = redis.from_url(redis_url)
    try:
        ready_seconds, failed = await pool.ready(150)
        if mode == MODE_CONNS:
            for _ in range(100):  # every connection's SUBSCRIBE has landed
                [(_, subscribed)] = await publisher.pubsub_numsub(FLOOR_CHANNEL)
                if subscribed >= args.subscribers - failed:
                    break
                await asyncio.sleep(0.05)
        plan = event_plan(args.events) + [(None, TERMINAL, 0.0)]
        published: dict[int, int] = {}
        bus.topic = topic
        bus.published = published
        async for k in paced(len(plan), args.interval):
            step, kind, _ = plan[k]
            event = synthetic_event(fake_run, REPLAYED + 1 + k, kind, step)
            if mode == MODE_CONNS:
                envelope = json.dumps({"topic": topic, "event": event})
                published[event["cursor"]] = time.time_ns()
                await publisher.publish(FLOOR_CHANNEL, envelope)
            else:
                await bus.publish(topic, event)
        logs = await pool.results(args.events * args.interval + 90)
    finally:
        await publisher.aclose()
        pool.close()
    expected = list(range(REPLAYED + 1, REPLAYED + 2 + args.events))
    result = analyse(mode, logs, published, expected, ready_seconds)
    result.client_cpu_ms = pool.client_cpu * 1e3
    return result


async def run_graphql(
    args: argparse.Namespace,
    settings: Settings,
    base_url: str,
    server: psutil.Process,
    profile_to: Path | None,
    bench_app: bool,
) -> ModeResult:
    import httpx

    bus = RecordingRedisBus(settings.redis_url or "")
    await bus.start()
    deps, engine = build_deps(settings, bus)
    try:
        store = RunStore(deps.db, bus, f"bench:{os.getpid()}", lease_seconds=600)
        user_id, workspace_id, token = await seed_user(deps)
        run_id = await create_claimed_run(deps, store, workspace_id, user_id)
        bus.topic = run_topic(run_id)
        spec = {
            "mode": MODE_WS,
            "ws_url": base_url.replace("http://", "ws://", 1) + "/graphql",
            "token": token,
            "run_gid": run_global_id(run_id),
            "deflate": args.deflate,
            "connect_concurrency": 50,
            "ready_timeout": 150,
            "finish_timeout": args.events * args.interval + 60,
        }
        pool = SubscriberPool([{**spec, "count": n} for n in split(args.subscribers, args.procs)])
        try:
            ready_seconds, failed = await pool.ready(180)
            if failed:
                print(f"  {failed} subscribers failed to subscribe")
            if args.gc:
                async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
                    census = (await http.post("/bench/control", params={"action": "census"})).json()
                print(
                    f"  API process with {args.subscribers} subscriptions open: "
                    f"{census['gc_objects']} GC-tracked objects; most common types:"
                )
                for name, count in census["census"]:
                    print(f"    {count:8d}  {name}")
            rss_before, cpu_before = tree_usage(server)
            async with httpx.AsyncClient(base_url=base_url) as http:
                if bench_app:
                    answer = await http.post(
                        "/bench/control",
                        params={"action": "start", "profile": "1" if profile_to else "0"},
                    )
                    answer.raise_for_status()
                plan = event_plan(args.events)
                write_ms: list[float] = []
                started = time.monotonic()
                async for k in paced(len(plan) + 1, args.interval):
                    t0 = time.perf_counter()
                    if k < len(plan):
                        step, kind, fraction = plan[k]
                        await store.step_event(
                            run_id,
                            step,
                            kind,
                            message=f"{step} {kind.lower()} {k}",
                            fraction=fraction,
                            output={"value": None} if kind == "STEP_SUCCEEDED" else None,
                        )
                    else:
                        await store.finish(run_id, RunStatus.SUCCEEDED, output_summary="bench")
                    write_ms.append((time.perf_counter() - t0) * 1e3)
                publish_seconds = time.monotonic() - started
                logs = await pool.results(args.events * args.interval + 90)
                window = time.monotonic() - started
                rss_after, cpu_after = tree_usage(server)
                if bench_app:
                    answer = await http.post(
                        "/bench/control",
                        params={"action": "stop", "path": str(profile_to or "")},
                        timeout=60,
                    )
                    answer.raise_for_status()
                    print_control(answer.json())
        finally:
            pool.close()
        expected = list(range(1, REPLAYED + 2 + args.events))
        result = analyse(MODE_WS, logs, dict(bus.published), expected, ready_seconds)
        result.write_ms = write_ms
        result.server_cpu_ms = (cpu_after - cpu_before) * 1e3
        result.client_cpu_ms = pool.client_cpu * 1e3
        result.server_log = server_warnings(server)
        result.server_rss_mb = (rss_before, rss_after)
        result.publish_seconds = publish_seconds
        result.window_seconds = window
        return result
    finally:
        await bus.close()
        await engine.dispose()


async def run_floors(args: argparse.Namespace, redis_url: str) -> list[ModeResult]:
    bus = RecordingRedisBus(redis_url)
    await bus.start()
    try:
        return [await run_floor(mode, args, redis_url, bus) for mode in (MODE_CONNS, MODE_BUS)]
    finally:
        await bus.close()


# --- profiling (only with --profile) -----------------------------------------------------------


class GcPauses:
    """gc.callbacks: how often each generation was collected and how long it paused the loop."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.reset()
        gc.callbacks.append(self._callback)

    def reset(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.pauses[info["generation"]].append((time.perf_counter() - self.started) * 1e3)
            self.started = None

    def summary(self) -> dict[str, Any]:
        return {
            str(gen): {"count": len(ms), "total_ms": sum(ms), "max_ms": max(ms, default=0.0)}
            for gen, ms in self.pauses.items()
        }


def create_bench_app() -> FastAPI:
    """The real app (settings from the environment) plus POST /bench/control, which starts and
    stops cProfile, reports GC pauses and takes a census of the objects GC tracks."""
    from app.main import create_app

    app = create_app(Settings())
    profiler = cProfile.Profile()
    pauses = GcPauses()

    @app.post("/bench/control", include_in_schema=False)
    async def control(request: Request) -> JSONResponse:
        action = request.query_params.get("action")
        if action == "start":
            pauses.reset()
            if request.query_params.get("profile") == "1":
                profiler.enable()
        elif action == "stop":
            profiler.disable()
            if path := request.query_params.get("path"):
                profiler.dump_stats(path)
        elif action == "census":
            gc.collect()
            counts: dict[str, int] = {}
            for obj in gc.get_objects():
                kind = type(obj)
                name = f"{kind.__module__}.{kind.__qualname__}"
                counts[name] = counts.get(name, 0) + 1
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:25]
            return JSONResponse({"census": top, "gc_objects": len(gc.get_objects())})
        return JSONResponse(
            {
                "gc": pauses.summary(),
                "gc_objects": len(gc.get_objects()),
                "gc_frozen": gc.get_freeze_count(),
                "gc_threshold": gc.get_threshold(),
            }
        )

    return app


def print_control(answer: dict[str, Any]) -> None:
    pauses = ", ".join(
        f"gen{gen} {p['count']} x, {p['total_ms']:.0f} ms in all, longest {p['max_ms']:.0f} ms"
        for gen, p in answer["gc"].items()
    )
    print(
        f"  API process GC during the events: {pauses}; {answer['gc_objects']} tracked objects, "
        f"{answer['gc_frozen']} frozen, thresholds {answer['gc_threshold']}"
    )


def print_profile(path: Path, events: int, subscribers: int) -> None:
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    deliveries = events * subscribers
    print(
        f"\n  cProfile of the API process while the events were sent: {total:.2f} s of own time, "
        f"{total / deliveries * 1e6:.0f} us per delivered event (the profiler inflates calls)"
    )
    by_area: dict[str, float] = {}
    for (filename, _line, _fn), (_cc, _n, tottime, _cum, _callers) in raw.items():
        area = "other"
        for marker, name in (
            ("/websockets/", "websockets (frames, deflate)"),
            ("zlib", "zlib"),
            ("/strawberry/", "strawberry"),
            ("/graphql/", "graphql-core"),
            ("/uvicorn/", "uvicorn"),
            ("/starlette/", "starlette"),
            ("/asyncio/", "asyncio"),
            ("/json/", "json"),
            ("/redis/", "redis"),
            ("/sqlalchemy/", "sqlalchemy"),
            ("/kailash/", "kailash"),
        ):
            if marker in filename:
                area = name
                break
        ours = Path(filename).parts[len(ROOT.parts) :][:1]
        if filename.startswith(f"{ROOT}{os.sep}") and ours and ours[0] != ".venv":
            area = f"ours: {ours[0]}/"  # app/, resolvers/, runtime/, services/, base/, ...
        if filename == "~":
            area = "builtins (C)"
        by_area[area] = by_area.get(area, 0.0) + tottime
    print("  own time by package:")
    for area, seconds in sorted(by_area.items(), key=lambda kv: -kv[1]):
        print(f"    {area:<30} {seconds:7.2f} s {seconds / total:6.1%}")
    buffer = __import__("io").StringIO()
    pstats.Stats(str(path), stream=buffer).sort_stats("tottime").print_stats(20)
    print("  top 20 functions by own time:")
    for line in buffer.getvalue().splitlines()[6:]:
        if line.strip():
            print(f"    {line}")
    buffer = __import__("io").StringIO()
    pstats.Stats(str(path), stream=buffer).sort_stats("cumulative").print_stats(25)
    print("  top 25 by cumulative time:")
    for line in buffer.getvalue().splitlines()[6:]:
        if line.strip():
            print(f"    {line}")


# --- report ------------------------------------------------------------------------------------


def print_table(results: list[ModeResult], args: argparse.Namespace) -> None:
    live = args.events + 1
    print(
        f"\nFan-out of one run's {args.events} events + the terminal one to {args.subscribers} "
        f"subscribers, one every {args.interval * 1e3:g} ms; latency = receipt - publish, ms, "
        f"over every (subscriber, event); 'last' = the slowest subscriber of each event"
    )
    header = (
        f"  {'mode':<30} {'ready s':>7} {'complete':>10} {'missing':>7} {'p50':>7} {'p99':>7} "
        f"{'max':>7} {'last p50':>8} {'last p99':>8}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in results:
        print(
            f"  {r.mode:<30} {r.ready_seconds:7.1f} {f'{r.complete}/{r.subscribers}':>10} "
            f"{r.missing:7d} {percentile(r.latencies_ms, 50):7.2f} "
            f"{percentile(r.latencies_ms, 99):7.2f} {max(r.latencies_ms, default=math.nan):7.1f} "
            f"{percentile(r.last_ms, 50):8.2f} {percentile(r.last_ms, 99):8.2f}"
        )
        if r.errors or r.out_of_order:
            print(f"    errors: {r.errors}, out of order: {r.out_of_order}")
            for sample in r.error_samples:
                print(f"      e.g. {sample}")
        if r.server_log:
            print(f"    API process log: {len(r.server_log)} warning/error lines; first and last:")
            heads = [line for line in r.server_log if " WARNING " in line or " ERROR " in line]
            for line in [*heads[:3], *r.server_log[-3:]]:
                print(f"      {line[:220]}")
        slowest = sorted(r.last_by_cursor.items(), key=lambda kv: -kv[1])[:5]
        print(
            "    slowest events (cursor: ms to the last subscriber): "
            + ", ".join(f"{cursor}: {ms:.0f}" for cursor, ms in sorted(slowest))
        )
    print(
        "  subscriber processes' CPU from ready to done, per delivered message: "
        + ", ".join(
            f"{r.mode.split(': ')[-1]} {r.client_cpu_ms / max(len(r.latencies_ms), 1) * 1e3:.0f} us"
            for r in results
            if r.client_cpu_ms is not None
        )
    )
    ws = next((r for r in results if r.mode == MODE_WS), None)
    if ws is None:
        return
    for floor in results:
        if floor is ws:
            continue
        print(
            f"  ratio graphql / {floor.mode:<22} p50 "
            f"{percentile(ws.latencies_ms, 50) / percentile(floor.latencies_ms, 50):6.1f}x  "
            f"p99 {percentile(ws.latencies_ms, 99) / percentile(floor.latencies_ms, 99):6.1f}x"
        )
    delivered = ws.subscribers * live
    print(
        f"\n  graphql mode: {len(ws.latencies_ms)}/{delivered} live events delivered "
        f"({ws.complete}/{ws.subscribers} subscribers got cursors 1..{REPLAYED + live} in order, "
        f"once each, then 'complete'); writes (RunStore.step_event/finish, commit + publish): "
        f"p50 {percentile(ws.write_ms, 50):.2f} ms, p99 {percentile(ws.write_ms, 99):.2f} ms; "
        f"events sent over {ws.publish_seconds:.1f} s"
    )
    if ws.server_cpu_ms is not None and ws.server_rss_mb is not None:
        per_event = ws.server_cpu_ms / live
        print(
            f"  API process during the events: {ws.server_cpu_ms / 1e3:.2f} s CPU = "
            f"{per_event:.1f} ms per event = {per_event / ws.subscribers * 1e3:.0f} us per "
            f"delivered message; busy {ws.server_cpu_ms / 1e3 / ws.window_seconds:.0%} of one "
            f"CPU over the {ws.window_seconds:.1f} s until the last subscriber had everything; "
            f"RSS {ws.server_rss_mb[0]:.0f} -> {ws.server_rss_mb[1]:.0f} MiB with "
            f"{ws.subscribers} sockets open"
        )
    p99 = percentile(ws.latencies_ms, 99)
    everything = ws.complete == ws.subscribers == args.subscribers and ws.missing == 0
    print(
        f"\ngoal: p99 under {GOAL_P99_MS:g} ms - {p99:.1f} ms "
        f"{'met' if p99 < GOAL_P99_MS else 'MISSED'}; every event delivered to every subscriber "
        f"- {'met' if everything else 'MISSED'} (reported, not asserted)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--subscribers", type=int, help="subscribers")
    parser.add_argument("--events", type=int, help="step events before the end")
    add_size_flag(
        parser,
        quick={"subscribers": 200, "events": 20},
        full={"subscribers": 1000, "events": 100},
    )
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between events (0.1; 0 = burst)"
    )
    parser.add_argument("--procs", type=int, default=2, help="subscriber processes (2)")
    parser.add_argument(
        "--no-deflate",
        dest="deflate",
        action="store_false",
        help="clients do not offer permessage-deflate",
    )
    parser.add_argument("--skip-floors", action="store_true", help="only the GraphQL mode")
    parser.add_argument(
        "--gc", action="store_true", help="report the API process's GC pauses (bench app)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the API process")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (1: the brief's ONE API process; more to see scale-out)",
    )
    args = apply_sizes(parser.parse_args(argv))
    if args.subscribers < 1 or args.events < 4 or args.procs < 1 or args.interval < 0:
        parser.error("need --subscribers >= 1, --events >= 4, --procs >= 1, --interval >= 0")
    limit = raise_open_files(args.subscribers * 3 + 1024)
    from tests.support.live_server import live_server
    from tests.support.services import postgres_server, redis_server

    started = time.monotonic()
    print(
        f"runProgress fan-out benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start, open-files limit {limit}, "
        f"{args.procs} subscriber processes, permessage-deflate "
        f"{'offered' if args.deflate else 'off'}"
        + (f", {args.workers} uvicorn workers" if args.workers > 1 else "")
    )
    results: list[ModeResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="kd-bench-fanout-") as tmp,
        redis_server() as redis_url,
        postgres_server() as postgres_url,
    ):
        settings = bench_settings(postgres_url, redis_url)
        migrate.upgrade(settings.database_url)
        if not args.skip_floors:
            results += asyncio.run(run_floors(args, redis_url))
        bench_app = bool(args.profile or args.gc)
        app = "bench.bench_run_fanout:create_bench_app" if bench_app else "app.main:create_app"
        profile_to = Path(tmp) / "api.prof" if args.profile else None
        env = server_env(settings)
        if args.workers > 1:
            env["UVICORN_WORKERS"] = str(args.workers)
        with live_server(env, app=app) as base_url:
            server = server_process(int(base_url.rsplit(":", 1)[1]))
            results.append(
                asyncio.run(run_graphql(args, settings, base_url, server, profile_to, bench_app))
            )
        print_table(results, args)
        if profile_to is not None and profile_to.exists():
            print_profile(profile_to, args.events + 1, args.subscribers)
    print(
        f"\nload average {os.getloadavg()[0]:.2f} at the end; "
        f"total wall time {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
