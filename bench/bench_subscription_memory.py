"""Benchmark: memory of the API process across runProgress subscribe/disconnect cycles (10,000
with --full).

    uv run --frozen python bench/bench_subscription_memory.py [--full] [--rounds N]
        [--concurrency N] [--warmup N] [--replay N] [--report-every N] [--plain-app]

A script, not a test: it prints figures and asserts nothing. It starts throwaway PostgreSQL and
Redis servers and a real uvicorn (tests/support/live_server) with REDIS_URL and
RUN_EXECUTION=queue. This process signs a user up through the services, creates a run of the
CHECK_MODELS kind (services.runs.create_run), claims it (RunStore.claim: RUNNING) and records a
few step events (RunStore.step_event), so that the run's log holds --replay events and never
ends.

Then --rounds rounds of --concurrency concurrent WebSocket clients: each connects, sends
connection_init with the bearer token, subscribes to runProgress (the frontend's RunProgress
document), reads the replay, and disconnects: odd clients just close the socket (a tab closed),
even ones send `complete` first (a component unmounted), so both of the server's clean-up paths
run. By default a quick run (20 rounds x 50 = 1,000 cycles); `--full` gives the 100 x 100 =
10,000 cycles of the recorded figures.

RSS (psutil, on the uvicorn pid) is read after a warm-up of --warmup rounds (the start), after
every --report-every cycles, and at the end, one second after the last disconnect. By
default the server is `bench.bench_subscription_memory:create_bench_app`, the real app plus
GET /bench/introspect, which reports the bus's local subscriptions, asyncio tasks, and live
objects of the classes a leak would keep (bus Subscriptions, graphql-transport-ws Operations,
WebSocket protocols), after a gc.collect(); --plain-app serves app.main:create_app and reads RSS
only. Redis's `PUBSUB NUMSUB kd:events` counts bus connections: one per process, however many
subscribers. Finally one more subscriber checks that live events still arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `app`, `bench`, ... importable
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import redis.asyncio as redis  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from app import migrate  # noqa: E402
from base.events.bus import RedisBus  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench.bench_run_fanout import (  # noqa: E402
    REPLAYED,
    STEPS,
    WS_PROTOCOL,
    bench_settings,
    build_deps,
    create_claimed_run,
    init_message,
    raise_open_files,
    run_global_id,
    seed_user,
    server_env,
    server_process,
    subscribe_message,
)
from bench.common import add_size_flag, apply_sizes, percentile  # noqa: E402
from services.run_store import RunStore  # noqa: E402

GOAL_GROWTH = 0.10


# --- the bench app (the real app plus GET /bench/introspect) -----------------------------------


def _count_instances(names: set[str]) -> dict[str, int]:
    counts = dict.fromkeys(sorted(names), 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts:
            counts[name] += 1
    return counts


def create_bench_app() -> FastAPI:
    from app.main import create_app

    app = create_app(Settings())

    @app.get("/bench/introspect", include_in_schema=False)
    async def introspect() -> JSONResponse:
        collected = gc.collect()
        bus = app.state.deps.bus
        return JSONResponse(
            {
                "local_subscriptions": bus.subscriber_count,
                "topics": len(bus._subscribers),
                "tasks": len(asyncio.all_tasks()),
                "gc_collected": collected,
                "objects": _count_instances(
                    {"Subscription", "Operation", "WebSocketsSansIOProtocol", "Context"}
                ),
            }
        )

    return app


# --- the cycles --------------------------------------------------------------------------------


@dataclass
class Cycle:
    ok: bool
    seconds: float
    error: str | None = None


async def one_cycle(ws_url: str, token: str, run_gid: str, replay: int, complete: bool) -> Cycle:
    started = time.perf_counter()
    try:
        async with connect(
            ws_url, subprotocols=[WS_PROTOCOL], open_timeout=60, ping_interval=None, close_timeout=5
        ) as ws:
            await ws.send(init_message(token))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"no connection_ack: {ack}")
            await ws.send(subscribe_message(run_gid, "p"))
            cursors = []
            while len(cursors) < replay:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if message.get("type") != "next" or message["payload"].get("errors"):
                    raise RuntimeError(f"unexpected: {message}")
                cursors += [int(e["cursor"]) for e in message["payload"]["data"]["runProgress"]]
            if cursors != list(range(1, replay + 1)):
                raise RuntimeError(f"replay out of order: {cursors}")
            if complete:
                await ws.send(json.dumps({"id": "p", "type": "complete"}))
        return Cycle(True, time.perf_counter() - started)
    except Exception as exc:
        return Cycle(False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"[:200])


async def run_round(
    ws_url: str, token: str, run_gid: str, replay: int, concurrency: int, first: int
) -> list[Cycle]:
    return list(
        await asyncio.gather(
            *(
                one_cycle(ws_url, token, run_gid, replay, complete=(first + i) % 2 == 0)
                for i in range(concurrency)
            )
        )
    )


async def live_check(
    ws_url: str, token: str, run_gid: str, replay: int, store: RunStore, run_id: uuid.UUID
) -> str:
    """One more subscriber: after the replay, a new event must arrive live."""
    async with connect(ws_url, subprotocols=[WS_PROTOCOL], ping_interval=None) as ws:
        await ws.send(init_message(token))
        await asyncio.wait_for(ws.recv(), 30)
        await ws.send(subscribe_message(run_gid, "live"))
        replayed = 0
        while replayed < replay:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            replayed += len(message["payload"]["data"]["runProgress"])
        await store.step_event(run_id, STEPS[-1], "STEP_PROGRESS", message="live", fraction=0.5)
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        [event] = message["payload"]["data"]["runProgress"]
        cursor = int(event["cursor"])
        return "delivered" if cursor == replay + 1 else f"WRONG cursor {cursor}"


@dataclass
class Sample:
    cycles: int
    rss_mib: float
    introspect: dict[str, Any] | None
    cycles_per_second: float | None = None


async def bench(args: argparse.Namespace, settings: Settings, base_url: str) -> None:
    server = server_process(int(base_url.rsplit(":", 1)[1]))
    bus = RedisBus(settings.redis_url or "")
    await bus.start()
    deps, engine = build_deps(settings, bus)
    raw = redis.from_url(settings.redis_url or "")
    ws_url = base_url.replace("http://", "ws://", 1) + "/graphql"
    try:
        store = RunStore(deps.db, bus, f"bench:{os.getpid()}", lease_seconds=3600)
        user_id, workspace_id, token = await seed_user(deps)
        run_id = await create_claimed_run(deps, store, workspace_id, user_id)
        for k in range(args.replay - REPLAYED):  # a few recorded steps: a longer replay
            step = STEPS[min(k // 3, len(STEPS) - 1)]
            kind = "STEP_STARTED" if k % 3 == 0 else "STEP_PROGRESS"
            await store.step_event(run_id, step, kind, message=f"{kind} {k}", fraction=0.3)
        run_gid = run_global_id(run_id)

        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:

            async def sample(cycles: int, rate: float | None) -> Sample:
                info = None
                if not args.plain_app:
                    info = (await http.get("/bench/introspect")).json()
                return Sample(cycles, server.memory_info().rss / 2**20, info, rate)

            before_warmup = await sample(0, None)
            for r in range(args.warmup):
                await run_round(ws_url, token, run_gid, args.replay, args.concurrency, r)
            await asyncio.sleep(1)
            start = await sample(0, None)
            samples = [start]
            errors: dict[str, int] = {}
            latencies: list[float] = []
            done = 0
            mark = time.perf_counter()
            total_started = mark
            for r in range(args.rounds):
                for cycle in await run_round(
                    ws_url, token, run_gid, args.replay, args.concurrency, r
                ):
                    latencies.append(cycle.seconds * 1e3)
                    if not cycle.ok:
                        key = (cycle.error or "?").split(":")[0]
                        errors[key] = errors.get(key, 0) + 1
                done += args.concurrency
                if done % args.report_every == 0 and r != args.rounds - 1:
                    rate = args.report_every / (time.perf_counter() - mark)
                    await asyncio.sleep(0.5)  # the server handles the last closes first
                    samples.append(await sample(done, rate))
                    mark = time.perf_counter()
            pauses = 0.5 * (len(samples) - 1)
            total_seconds = time.perf_counter() - total_started - pauses
            await asyncio.sleep(1)  # let the last disconnects be processed
            end = await sample(done, None)
            samples.append(end)
            [(_, bus_connections)] = await raw.pubsub_numsub("kd:events")
            live = await live_check(ws_url, token, run_gid, args.replay, store, run_id)

        print_report(
            args, before_warmup, samples, errors, latencies, total_seconds, bus_connections, live
        )
    finally:
        await raw.aclose()
        await bus.close()
        await engine.dispose()


def print_report(
    args: argparse.Namespace,
    before_warmup: Sample,
    samples: list[Sample],
    errors: dict[str, int],
    latencies: list[float],
    total_seconds: float,
    bus_connections: int,
    live: str,
) -> None:
    cycles = args.rounds * args.concurrency
    start, end = samples[0], samples[-1]
    print(
        f"\nAPI process memory across {cycles} runProgress subscribe/disconnect cycles "
        f"({args.rounds} rounds x {args.concurrency} concurrent WebSockets, each replaying "
        f"{args.replay} events of a RUNNING run, then closing; half send `complete` first). "
        f"RSS {before_warmup.rss_mib:.1f} MiB before a warm-up of {args.warmup} rounds."
    )
    header = f"  {'point':<12} {'cycles':>7} {'RSS MiB':>8} {'vs start':>9} {'cycles/s':>9}"
    if not args.plain_app:
        header += f" {'local subs':>10} {'tasks':>6} {'Subscription':>12} {'Operation':>9} "
        header += f"{'WS protocols':>12}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for i, s in enumerate(samples):
        point = "start" if i == 0 else "end" if i == len(samples) - 1 else "after"
        growth = (s.rss_mib - start.rss_mib) / start.rss_mib
        rate = f"{s.cycles_per_second:9.0f}" if s.cycles_per_second else f"{'':>9}"
        line = f"  {point:<12} {s.cycles:7d} {s.rss_mib:8.1f} {growth:+9.1%} {rate}"
        if s.introspect is not None:
            objects = s.introspect["objects"]
            line += (
                f" {s.introspect['local_subscriptions']:10d} {s.introspect['tasks']:6d} "
                f"{objects['Subscription']:12d} {objects['Operation']:9d} "
                f"{objects['WebSocketsSansIOProtocol']:12d}"
            )
        print(line)
    print(
        f"  {cycles} cycles in {total_seconds:.1f} s ({cycles / total_seconds:.0f}/s); "
        f"one cycle (connect, init, subscribe, replay, close) p50 "
        f"{percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms with "
        f"{args.concurrency} at once; failed cycles: {sum(errors.values())} {errors or ''}"
    )
    print(
        f"  Redis PUBSUB NUMSUB kd:events = {bus_connections} (the API process and this one: "
        f"one bus connection per process, whatever the number of subscribers)"
    )
    print(f"  live event to a new subscriber after the cycles: {live}")
    growth = (end.rss_mib - start.rss_mib) / start.rss_mib
    print(
        f"\ngoal: RSS back within {GOAL_GROWTH:.0%} of the start - {growth:+.1%} "
        f"{'met' if abs(growth) <= GOAL_GROWTH else 'MISSED'} (reported, not asserted)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, help="rounds of clients")
    parser.add_argument("--concurrency", type=int, help="clients per round")
    parser.add_argument("--warmup", type=int, help="untimed rounds first")
    parser.add_argument("--replay", type=int, default=10, help="events in the run's log (10)")
    parser.add_argument("--report-every", type=int, help="cycles between RSS readings")
    add_size_flag(
        parser,
        quick={"rounds": 20, "concurrency": 50, "warmup": 2, "report_every": 250},
        full={"rounds": 100, "concurrency": 100, "warmup": 3, "report_every": 2000},
    )
    parser.add_argument(
        "--plain-app", action="store_true", help="serve app.main:create_app (RSS only)"
    )
    args = apply_sizes(parser.parse_args(argv))
    if args.rounds < 1 or args.concurrency < 1 or args.replay < REPLAYED or args.warmup < 0:
        parser.error(f"need --rounds >= 1, --concurrency >= 1, --replay >= {REPLAYED}")
    if args.report_every % args.concurrency:
        parser.error("--report-every must be a multiple of --concurrency")
    limit = raise_open_files(args.concurrency * 4 + 1024)
    from tests.support.live_server import live_server
    from tests.support.services import postgres_server, redis_server

    started = time.monotonic()
    print(
        f"Subscription memory benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} "
        f"CPUs, load average {os.getloadavg()[0]:.2f} at start, open-files limit {limit}"
    )
    with redis_server() as redis_url, postgres_server() as postgres_url:
        settings = bench_settings(postgres_url, redis_url)
        migrate.upgrade(settings.database_url)
        app = (
            "app.main:create_app"
            if args.plain_app
            else "bench.bench_subscription_memory:create_bench_app"
        )
        with live_server(server_env(settings), app=app) as base_url:
            asyncio.run(bench(args, settings, base_url))
    print(
        f"\nload average {os.getloadavg()[0]:.2f} at the end; "
        f"total wall time {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
