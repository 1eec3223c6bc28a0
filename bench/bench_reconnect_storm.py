"""Benchmark: a reconnect storm on ONE API process: N clients (1,000 with --full) connect and
subscribe at once to a FINISHED run's `runProgress` with `after` omitted, so each replays the
whole log from the database and completes.

    uv run --frozen python bench/bench_reconnect_storm.py [--full] [--clients N] [--events N]
        [--procs N]

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
first `next` - the start instant; done = `complete` - the start instant; total = the last
client's done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

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
    raise_open_files,
    run_global_id,
    server_env,
    server_process,
    server_warnings,
    split,
    subscribe_message,
    tree_usage,
)
from bench.common import add_size_flag, apply_sizes, percentile  # noqa: E402
from services.model_check import CHECK_MODELS  # noqa: E402
from services.run_store import RunStore  # noqa: E402

GOAL_P99_MS = 1000.0


async def _client(spec: dict[str, Any], start_ns: int) -> tuple[int | None, int | None, int, str]:
    """(first event ns, complete ns, events received, error) of one client."""
    from websockets.asyncio.client import connect

    first = done = None
    received = 0
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
            await ws.send(init_message(spec["token"]))
            ack = json.loads(await ws.recv())
            if ack.get("type") != "connection_ack":
                return None, None, 0, f"no connection_ack: {ack}"[:200]
            await ws.send(subscribe_message(spec["run_gid"]))
            async for raw in ws:
                now = time.time_ns()
                message = json.loads(raw)
                if message.get("type") == "next":
                    if message["payload"].get("errors"):
                        return first, None, received, str(message["payload"]["errors"])[:200]
                    first = first or now
                    received += 1
                elif message.get("type") == "complete":
                    done = now
                    break
                elif message.get("type") == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
    except Exception as exc:
        return first, done, received, f"{type(exc).__name__}: {exc}"[:200]
    return (
        (first - start_ns) if first else None,
        (done - start_ns) if done else None,
        received,
        "",
    )


async def _clients_main(spec: dict[str, Any]) -> list[tuple[int | None, int | None, int, str]]:
    delay = (spec["start_ns"] - time.time_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
    return list(
        await asyncio.gather(*(_client(spec, spec["start_ns"]) for _ in range(spec["count"])))
    )


def _clients_process(conn: Any, spec: dict[str, Any]) -> None:
    raise_open_files(spec["count"] * 2 + 256)
    import websockets.asyncio.client  # noqa: F401  # imported before the start instant

    conn.send("ready")
    spec = {**spec, "start_ns": conn.recv()}
    try:
        conn.send(asyncio.run(_clients_main(spec)))
    except Exception as exc:
        conn.send([(None, None, 0, f"process failed: {exc}")] * spec["count"])
    finally:
        conn.close()


def storm(spec: dict[str, Any], clients: int, procs: int) -> list[tuple[Any, ...]]:
    """`clients` clients over `procs` spawned processes, all starting at one instant once every
    process has started."""
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
    for parent, proc in zip(pipes, children, strict=True):
        results.extend(parent.recv())
        proc.join(timeout=10)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, help="clients in the storm")
    add_size_flag(parser, quick={"clients": 200}, full={"clients": 1000})
    parser.add_argument("--events", type=int, default=20, help="step events in the log (20)")
    parser.add_argument("--procs", type=int, default=2, help="client processes (2)")
    args = apply_sizes(parser.parse_args(argv))
    if args.clients < 1 or args.events < 4 or args.procs < 1:
        parser.error("need --clients >= 1, --events >= 4, --procs >= 1")
    limit = raise_open_files(args.clients * 3 + 1024)
    from tests.support.live_server import live_server
    from tests.support.services import postgres_server, redis_server

    started = time.monotonic()
    expected = args.events + 3  # RUN_QUEUED, RUN_STARTED, the step events, RUN_SUCCEEDED
    print(
        f"reconnect storm: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at start, open-files limit {limit}, {args.clients} clients in "
        f"{args.procs} processes, a finished run of {expected} events, after omitted"
    )
    with redis_server() as redis_url, postgres_server() as postgres_url:
        settings = bench_settings(postgres_url, redis_url)
        migrate.upgrade(settings.database_url)
        with live_server(server_env(settings)) as base_url:
            server = server_process(int(base_url.rsplit(":", 1)[1]))
            run_gid, token = asyncio.run(finished_run(settings, args.events))
            spec = {
                "ws_url": base_url.replace("http://", "ws://", 1) + "/graphql",
                "token": token,
                "run_gid": run_gid,
            }
            report("one client (baseline)", storm(spec, 1, 1), expected)
            rss_before, cpu_before = tree_usage(server)
            figures = report("storm", storm(spec, args.clients, args.procs), expected)
            rss_after, cpu_after = tree_usage(server)
            print(
                f"  API process: {(cpu_after - cpu_before) * 1e3:.0f} ms CPU over the storm, RSS "
                f"{rss_before:.0f} -> {rss_after:.0f} MiB"
            )
            for line in server_warnings(server)[:5]:
                print(f"  server: {line}")
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
