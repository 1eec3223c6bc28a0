"""Benchmark: a reconnect storm on ONE API process: N clients (1,000 with --full) connect and
subscribe at once to a FINISHED run's `runProgress` with `after` omitted, so each replays the
whole log and completes.

    uv run --frozen python bench/bench_reconnect_storm.py [--full] [--clients N] [--events N]
        [--procs N] [--client aiohttp|websockets] [--profile [--cprofile]] [--floor]
        [--uvicorn-log-level LEVEL]

By default a quick run: 200 clients (what `make bench` does); `--full` gives 1,000. A script,
not a test: it prints figures and asserts nothing. Goal (reported): every event delivered to
every client and first-event p99 under 1 s.

Like bench_run_fanout (whose helpers it uses): throwaway PostgreSQL and Redis, a user signed up
through the services, a real uvicorn with RUN_EXECUTION=queue. The run is a check_models run
written as the executor writes it (RunStore.claim, --events step events, RunStore.finish), so
its log holds --events + 3 events when the clients arrive. First, ONE client alone (the
baseline), then the storm: the clients, in --procs child processes, all start at one wall-clock
instant; each connects (graphql-transport-ws, connection_init with the bearer token), subscribes
with the frontend's RunProgress document and reads to `complete`. Per client: first event =
first `next` (it holds the whole replay since ADR 0130) - the start instant; done = `complete`
- the start instant; total = the last client's done. The clients speak through aiohttp's
WebSocket client (`--client websockets` for the figures recorded before 2026-12-04).

`--profile` serves this module's `create_bench_app` (the real app, POST /bench/control from
bench_run_fanout, and POST /bench/phases) and samples the API's event loop every 0.5 ms over
the storm (`PhaseSampler`): each sample counts for the first of `PHASES` with a frame on the
stack (WebSocket handshake and frames, connection_init, the access check, the replay read,
executing and sending each event, ...), and the busy samples are scaled to the API's CPU time
per client. For the larger phases it also names the calls below them. The sampler takes the GIL
when the loop releases it, so calls that release it (file writes, os.urandom) are
over-sampled; `--cprofile` adds cProfile's own time by package and function. The client
processes' CPU is reported too: they share the 2 CPUs with the API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fastapi import Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from app import migrate  # noqa: E402
from base.events.bus import RedisBus  # noqa: E402
from base.models.runs import RunStatus  # noqa: E402
from bench.bench_run_fanout import (  # noqa: E402
    WS_PROTOCOL,
    bench_settings,
    build_deps,
    create_claimed_run,
    event_plan,
    init_message,
    print_profile,
    raise_open_files,
    run_global_id,
    server_env,
    server_process,
    server_warnings,
    split,
    subscribe_message,
    tree_usage,
    tree_usage_split,
)
from bench.common import add_size_flag, apply_sizes, percentile  # noqa: E402
from services.model_check import CHECK_MODELS  # noqa: E402
from services.run_store import RunStore  # noqa: E402

GOAL_P99_MS = 1000.0


@dataclass
class _Seen:
    """What one client saw, in wall-clock ns."""

    first: int | None = None  # the first `next`
    done: int | None = None  # `complete`
    received: int = 0  # events

    def result(self, start_ns: int, error: str = "") -> tuple[int | None, int | None, int, str]:
        """(first event, complete, events received, error), the times after `start_ns`."""
        first = None if self.first is None else self.first - start_ns
        done = None if self.done is None else self.done - start_ns
        return first, done, self.received, error[:200]


async def _exchange(
    send: Callable[[str], Awaitable[Any]],
    texts: AsyncIterator[str],
    spec: dict[str, Any],
    seen: _Seen,
) -> str:
    """One client's graphql-transport-ws exchange on an open socket: connection_init, then
    (unless `floor`) the subscription read to `complete`. '' or what went wrong."""
    await send(init_message(spec["token"]))
    ack = json.loads(await anext(texts))
    if ack.get("type") != "connection_ack":
        return f"no connection_ack: {ack}"
    if spec.get("floor"):  # the handshake and connection_init only, no subscription
        seen.first = seen.done = time.time_ns()
        return ""
    await send(subscribe_message(spec["run_gid"]))
    async for raw in texts:
        now = time.time_ns()
        message = json.loads(raw)
        if message.get("type") == "next":
            if message["payload"].get("errors"):
                return str(message["payload"]["errors"])
            seen.first = seen.first or now
            seen.received += len(message["payload"]["data"]["runProgress"])
        elif message.get("type") == "complete":
            seen.done = now
            return ""
        elif message.get("type") == "ping":
            await send(json.dumps({"type": "pong"}))
    return "closed before complete"


async def _client(spec: dict[str, Any], start_ns: int) -> tuple[int | None, int | None, int, str]:
    """(first event ns, complete ns, events received, error) of one client over websockets'
    client."""
    from websockets.asyncio.client import connect

    seen = _Seen()
    try:
        async with connect(
            spec["ws_url"],
            subprotocols=[WS_PROTOCOL],
            compression="deflate",  # as browsers offer it
            open_timeout=120,
            ping_interval=None,
            close_timeout=2,
            max_queue=None,
        ) as ws:
            error = await _exchange(ws.send, aiter(ws), spec, seen)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return seen.result(start_ns, error)


async def _client_aiohttp(
    session: Any, spec: dict[str, Any], start_ns: int
) -> tuple[int | None, int | None, int, str]:
    """`_client` over aiohttp's WebSocket client: the same exchange for 20-30% less client
    CPU than websockets' (docs/testing.md), so less of the machine the API shares."""
    import aiohttp

    async def texts(ws: Any) -> AsyncIterator[str]:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"unexpected frame {frame.type}")
            yield frame.data

    seen = _Seen()
    try:
        async with session.ws_connect(
            spec["ws_url"],
            protocols=[WS_PROTOCOL],
            compress=15,  # per-message deflate offered, as browsers offer it
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2),
            autoping=True,
            heartbeat=None,
            max_msg_size=0,
        ) as ws:
            error = await _exchange(ws.send_str, texts(ws), spec, seen)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return seen.result(start_ns, error)


async def _clients_main(spec: dict[str, Any]) -> list[tuple[int | None, int | None, int, str]]:
    if spec["client"] == "aiohttp":
        import aiohttp

        # One session per process, as one browser has one: no connection limit for sockets.
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await _wait_until(spec["start_ns"])
            return list(
                await asyncio.gather(
                    *(
                        _client_aiohttp(session, spec, spec["start_ns"])
                        for _ in range(spec["count"])
                    )
                )
            )
    await _wait_until(spec["start_ns"])
    return list(
        await asyncio.gather(*(_client(spec, spec["start_ns"]) for _ in range(spec["count"])))
    )


async def _wait_until(start_ns: int) -> None:
    delay = (start_ns - time.time_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


def _clients_process(conn: Any, spec: dict[str, Any]) -> None:
    raise_open_files(spec["count"] * 2 + 256)
    import aiohttp  # noqa: F401  # imported before the start instant
    import websockets.asyncio.client  # noqa: F401

    conn.send("ready")
    spec = {**spec, "start_ns": conn.recv()}
    cpu_before = time.process_time()
    try:
        results = asyncio.run(_clients_main(spec))
    except Exception as exc:
        results = [(None, None, 0, f"process failed: {exc}")] * spec["count"]
    try:
        conn.send((results, time.process_time() - cpu_before))
    finally:
        conn.close()


CLIENT_CPU: list[float] = []  # CPU seconds of the client processes, per storm


def storm(spec: dict[str, Any], clients: int, procs: int) -> list[tuple[Any, ...]]:
    """`clients` clients over `procs` spawned processes, all starting at one instant once every
    process has started. The client processes' CPU time is appended to CLIENT_CPU."""
    ctx = multiprocessing.get_context("spawn")
    pipes, children = [], []
    for count in split(clients, procs):
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_clients_process,
            args=(child, {**spec, "count": count}),
            daemon=True,
        )
        proc.start()
        child.close()
        pipes.append(parent)
        children.append(proc)
    for parent in pipes:
        parent.recv()  # "ready"
    start_ns = time.time_ns() + 200_000_000
    for parent in pipes:
        parent.send(start_ns)
    results: list[tuple[Any, ...]] = []
    cpu = 0.0
    for parent, proc in zip(pipes, children, strict=True):
        received, seconds = parent.recv()
        results.extend(received)
        cpu += seconds
        proc.join(timeout=10)
    CLIENT_CPU.append(cpu)
    return results


def report(label: str, results: list[tuple[Any, ...]], expected: int) -> dict[str, float]:
    firsts = [r[0] for r in results if r[0] is not None]
    dones = [r[1] for r in results if r[1] is not None]
    complete = sum(r[2] == expected and r[1] is not None for r in results)
    errors = [r[3] for r in results if r[3]]
    figures = {
        "p50": percentile(firsts, 50, scale=1e6),
        "p99": percentile(firsts, 99, scale=1e6),
        "max": percentile(firsts, 100, scale=1e6),
        "done_p99": percentile(dones, 99, scale=1e6),
        "total": max(dones, default=0) / 1e6,
    }
    print(
        f"  {label:<22} clients {len(results):5d}  first event p50 {figures['p50']:7.1f} ms  "
        f"p99 {figures['p99']:7.1f} ms  max {figures['max']:7.1f} ms  complete p99 "
        f"{figures['done_p99']:7.1f} ms  total {figures['total']:7.1f} ms  "
        f"events {sum(r[2] for r in results)}/{expected * len(results)} "
        f"({complete} clients got all {expected})"
    )
    for error in sorted(set(errors))[:5]:
        print(f"    error x{errors.count(error)}: {error}")
    return figures


async def finished_run(settings: Any, events: int) -> tuple[str, str]:
    """A check_models run with its whole log written and ended: (run global id, token)."""
    from bench.bench_run_fanout import seed_user

    bus = RedisBus(settings.redis_url or "")
    await bus.start()
    deps, engine = build_deps(settings, bus)
    try:
        store = RunStore(deps.db, bus, f"bench:{os.getpid()}", lease_seconds=600)
        user_id, workspace_id, token = await seed_user(deps)
        run_id = await create_claimed_run(deps, store, workspace_id, user_id)
        for step, kind, fraction in event_plan(events):
            await store.step_event(
                run_id,
                step,
                kind,
                message=f"{step} {kind.lower()}",
                fraction=fraction,
                output={"value": None} if kind == "STEP_SUCCEEDED" else None,
            )
        outputs = {step: {"value": None} for step in CHECK_MODELS.steps}
        await store.finish(run_id, RunStatus.SUCCEEDED, output_summary="bench", outputs=outputs)
        return run_global_id(run_id), token
    finally:
        await bus.close()
        await engine.dispose()


# --- phases (only with --profile) -------------------------------------------------------------

# Where the API's event loop is, sampled: each sample goes to the first phase (in this order)
# that has a frame on the stack. cProfile cannot split by phase: a coroutine's cumulative time
# spans its awaits, and SQLAlchemy runs its sync code in greenlets whose stacks end at the
# greenlet (the sampler continues them from the frame that switched in, noted by a greenlet
# trace hook).
PHASES: list[tuple[str, list[tuple[str, str]]]] = [
    ("replay read: SQL", [("services/run_log.py", "run_events_after")]),
    ("access check: SQL", [("services/runs.py", "runs_by_ids")]),
    ("access check: Kailash workflow around it", [("resolvers/core/context.py", "run")]),
    ("bus subscribe", [("base/events/bus.py", "subscribe")]),
    ("run status read + stream", [("services/live.py", "")]),
    ("RunEvent.of", [("resolvers/runs/types.py", "of")]),
    ("executing each event (graphql-core)", [("graphql/execution/execute.py", "callback")]),
    ("sending: JSON encoding", [("json/", ""), ("starlette/websockets.py", "send_json")]),
    ("sending: uvicorn frame + write", [("uvicorn/protocols/", "send")]),
    ("sending: other", [("graphql_transport_ws/handlers.py", "send_message")]),
    ("strawberry per-event result", [("strawberry/schema/schema.py", "_handle_execution_result")]),
    ("connection_init (JWT)", [("graphql_transport_ws/handlers.py", "handle_connection_init")]),
    ("subscribe: strawberry pre-execution", [("strawberry/schema/", "_prepare_operation_async")]),
    ("subscribe: graphql-core subscribe", [("graphql/execution/", "subscribe")]),
    (
        "subscribe: other",
        [
            ("graphql_transport_ws/handlers.py", "run_operation"),
            ("graphql_transport_ws/handlers.py", "handle_subscribe"),
        ],
    ),
    ("graphql-ws messages (decode, dispatch)", [("strawberry/", "")]),
    ("ASGI (starlette, fastapi)", [("starlette/", ""), ("fastapi/", "")]),
    # uvloop runs the loop in C: a stack whose innermost frame is asyncio.run waits for I/O.
    ("idle (waiting for I/O)", [("selectors.py", "select")]),
    ("WebSocket transport (handshake, frames)", [("uvicorn/protocols/", ""), ("/websockets/", "")]),
]
OTHER = "event loop, other"
IDLE = "idle (waiting for I/O)"


def _where(code: Any) -> str:
    if code is None:
        return "-"
    return f"{'/'.join(code.co_filename.rsplit('/', 2)[-2:])}:{code.co_name}"


class PhaseSampler:
    """Samples the main thread's stack every `interval` seconds from a thread of its own."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.counts: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._running = False
        self._anchor: Any = None  # the frame that switched into the running SQLAlchemy greenlet
        self._phase_of_code: dict[Any, int | None] = {}

    def _switched(self, _event: str, args: tuple[Any, Any]) -> None:
        origin, target = args
        self._anchor = None if target.parent is None else origin.gr_frame

    def _phase(self, frame: Any) -> tuple[str, str, str]:
        """(phase, the frame the phase's outermost marker called, the innermost frame)."""
        best: int | None = None
        below = None  # the frame called by the phase's frame found last
        anchor = self._anchor
        innermost = frame.f_code if frame is not None else None
        previous = None
        while frame is not None:
            code = frame.f_code
            if code not in self._phase_of_code:
                found = None
                for index, (_label, markers) in enumerate(PHASES):
                    if any(
                        f in code.co_filename and (not fn or fn == code.co_name)
                        for f, fn in markers
                    ):
                        found = index
                        break
                self._phase_of_code[code] = found
            index = self._phase_of_code[code]
            if index is not None and (best is None or index <= best):
                best, below = index, previous
            previous = code
            frame = frame.f_back
            if frame is None and anchor is not None:
                frame, anchor = anchor, None
        if innermost is not None and innermost.co_filename.endswith("asyncio/runners.py"):
            return IDLE, "", ""
        return (
            OTHER if best is None else PHASES[best][0],
            _where(below),
            _where(innermost),
        )

    def _run(self, thread_id: int) -> None:
        while self._running:
            time.sleep(self.interval)
            frame = sys._current_frames().get(thread_id)
            key = "\t".join(self._phase(frame))
            self.counts[key] = self.counts.get(key, 0) + 1

    def start(self) -> None:
        import greenlet

        self.counts = {}
        self._running = True
        # The sampler needs the GIL: while the loop runs Python, it gets it at each switch
        # interval, so a shorter interval gives more samples of the busy time.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(self.interval)
        greenlet.settrace(self._switched)
        self._thread = threading.Thread(
            target=self._run, args=(threading.get_ident(),), daemon=True
        )
        self._thread.start()

    def stop(self) -> dict[str, int]:
        import greenlet

        self._running = False
        if self._thread is not None:
            self._thread.join()
        greenlet.settrace(None)
        sys.setswitchinterval(self._switch_interval)
        return self.counts


def create_bench_app() -> Any:
    """bench_run_fanout's bench app (the real app, POST /bench/control) plus POST
    /bench/phases?action=start|stop: the phase sampler."""
    from bench.bench_run_fanout import create_bench_app as fanout_bench_app

    app = fanout_bench_app()
    sampler = PhaseSampler()

    @app.post("/bench/phases", include_in_schema=False)
    async def phases(request: Request) -> JSONResponse:
        if request.query_params.get("action") == "start":
            sampler.start()
            return JSONResponse({})
        return JSONResponse(sampler.stop())

    return app


def control(base_url: str, route: str = "control", **params: str) -> Any:
    import httpx

    answer = httpx.post(f"{base_url}/bench/{route}", params=params, timeout=120)
    answer.raise_for_status()
    return answer.json()


def socket_operations(base_url: str) -> dict[str, float]:
    """The API's `kd_socket_operations_total` by answer (executed, replayed), from /metrics."""
    import httpx

    from tests.support.metrics import parse, value

    samples = parse(httpx.get(f"{base_url}/metrics", timeout=30).text)
    return {
        answer: value(samples, "kd_socket_operations_total", answer=answer)
        for answer in ("executed", "replayed")
    }


def print_phases(samples: dict[str, int], api_cpu: float, clients: int) -> None:
    """The sampled split, scaled to the API's CPU time (idle samples left out); for the larger
    phases, what their frames called and the innermost frames."""
    counts: dict[str, int] = {}
    callees: dict[str, dict[str, int]] = {}
    innermost: dict[str, dict[str, int]] = {}
    for key, n in samples.items():
        phase, below, inner = key.split("\t")
        counts[phase] = counts.get(phase, 0) + n
        for table, where in ((callees, below), (innermost, inner)):
            table.setdefault(phase, {})
            table[phase][where] = table[phase].get(where, 0) + n
    busy = sum(n for phase, n in counts.items() if phase != IDLE)
    print(
        f"\n  API event loop by phase ({sum(counts.values())} samples, {busy} busy; the busy "
        f"share scaled to the {api_cpu:.2f} s of CPU, per client):"
    )
    order = [label for label, _ in PHASES]
    for phase in sorted(counts, key=lambda p: order.index(p) if p in order else len(order)):
        n = counts[phase]
        if phase == IDLE:
            print(f"    {phase:<44} {n:6d} samples")
            continue
        print(
            f"    {phase:<44} {n:6d} samples {n / busy:6.1%}  "
            f"{api_cpu * n / busy / clients * 1e3:6.2f} ms"
        )
        if n / busy >= 0.05:
            for label, table in (("calls", callees), ("innermost", innermost)):
                top = sorted(table[phase].items(), key=lambda kv: -kv[1])[:4]
                print(f"      {label}: " + ", ".join(f"{w} {c / n:.0%}" for w, c in top))


def log_length(events: int) -> int:
    """The finished run's events: RUN_QUEUED, RUN_STARTED, the planned step events, a
    STEP_SUCCEEDED that RunStore.finish adds for each step the plan left without one (fewer
    than two events a step), and RUN_SUCCEEDED."""
    plan = event_plan(events)
    succeeded = {step for step, kind, _ in plan if kind == "STEP_SUCCEEDED"}
    return 3 + len(plan) + len(set(CHECK_MODELS.steps) - succeeded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, help="clients in the storm")
    add_size_flag(parser, quick={"clients": 200}, full={"clients": 1000})
    parser.add_argument("--events", type=int, default=20, help="step events in the log (20)")
    parser.add_argument("--procs", type=int, default=2, help="client processes (2)")
    parser.add_argument(
        "--client",
        choices=("aiohttp", "websockets"),
        default="aiohttp",
        help="the clients' WebSocket library (aiohttp; websockets as recorded before "
        "2026-12-04, 20-30%% more client CPU)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the API's event loop by phase"
    )
    parser.add_argument(
        "--cprofile", action="store_true", help="with --profile: cProfile the API as well"
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="after the storm, the same clients doing only the WebSocket handshake and "
        "connection_init (to connection_ack), for the API's CPU per client without the "
        "subscription",
    )
    parser.add_argument(
        "--uvicorn-log-level",
        help="what-if: uvicorn's log level (deployed: its default, info, which logs three lines "
        "per WebSocket)",
    )
    args = apply_sizes(parser.parse_args(argv))
    if args.clients < 1 or args.events < 4 or args.procs < 1:
        parser.error("need --clients >= 1, --events >= 4, --procs >= 1")
    limit = raise_open_files(args.clients * 3 + 1024)
    from tests.support.live_server import live_server
    from tests.support.services import postgres_server, redis_server

    started = time.monotonic()
    expected = log_length(args.events)
    print(
        f"reconnect storm: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at start, open-files limit {limit}, {args.clients} clients in "
        f"{args.procs} processes ({args.client}), a finished run of {expected} events, after "
        "omitted"
    )
    app = "bench.bench_reconnect_storm:create_bench_app" if args.profile else "app.main:create_app"
    with (
        tempfile.TemporaryDirectory(prefix="kd-bench-storm-") as tmp,
        redis_server() as redis_url,
        postgres_server() as postgres_url,
    ):
        settings = bench_settings(postgres_url, redis_url)
        migrate.upgrade(settings.database_url)
        profile_to = Path(tmp) / "api.prof"
        env = server_env(settings)
        if args.uvicorn_log_level:
            env["UVICORN_LOG_LEVEL"] = args.uvicorn_log_level
        with live_server(env, app=app) as base_url:
            server = server_process(int(base_url.rsplit(":", 1)[1]))
            run_gid, token = asyncio.run(finished_run(settings, args.events))
            spec = {
                "ws_url": base_url.replace("http://", "ws://", 1) + "/graphql",
                "token": token,
                "run_gid": run_gid,
                "client": args.client,
            }
            report("one client (baseline)", storm(spec, 1, 1), expected)
            if args.profile:
                control(base_url, "phases", action="start")
                if args.cprofile:
                    control(base_url, action="start", profile="1")
            operations_before = socket_operations(base_url)
            rss_before, user_before, system_before = tree_usage_split(server)
            figures = report("storm", storm(spec, args.clients, args.procs), expected)
            rss_after, user_after, system_after = tree_usage_split(server)
            operations = {
                answer: count - operations_before[answer]
                for answer, count in socket_operations(base_url).items()
            }
            phases = {}
            if args.profile:
                phases = control(base_url, "phases", action="stop")
                if args.cprofile:
                    control(base_url, action="stop", path=str(profile_to))
            api_user, api_system = user_after - user_before, system_after - system_before
            api_cpu = api_user + api_system
            print(
                f"  API process: {api_cpu * 1e3:.0f} ms CPU over the storm "
                f"({api_cpu / args.clients * 1e3:.2f} ms per client: user "
                f"{api_user / args.clients * 1e3:.2f}, system "
                f"{api_system / args.clients * 1e3:.2f}), RSS "
                f"{rss_before:.0f} -> {rss_after:.0f} MiB; client processes: "
                f"{CLIENT_CPU[-1] * 1e3:.0f} ms CPU"
            )
            print(
                f"  subscriptions executed {operations.get('executed', 0):.0f}, replayed from "
                f"memory {operations.get('replayed', 0):.0f} (ADR 0131)"
            )
            if args.floor:
                cpu_before = tree_usage(server)[1]
                report(
                    "floor: connect + init",
                    storm({**spec, "floor": True}, args.clients, args.procs),
                    0,
                )
                floor_cpu = tree_usage(server)[1] - cpu_before
                print(
                    f"  API process: {floor_cpu * 1e3:.0f} ms CPU for the handshakes and "
                    f"connection_inits ({floor_cpu / args.clients * 1e3:.2f} ms per client, "
                    f"{floor_cpu / api_cpu:.0%} of the storm's)"
                )
            for line in server_warnings(server)[:5]:
                print(f"  server: {line}")
        if phases:
            print_phases(phases, api_cpu, args.clients)
        if args.cprofile and profile_to.exists():
            print_profile(profile_to, expected, args.clients)
    print(
        f"  goal: first-event p99 under {GOAL_P99_MS:.0f} ms - "
        f"{'met' if figures['p99'] < GOAL_P99_MS else 'MISSED'} (reported, not asserted)"
    )
    print(
        f"\nload average {os.getloadavg()[0]:.2f} at the end; "
        f"total wall time {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
