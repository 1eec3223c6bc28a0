"""Benchmark: what measuring an HTTP GraphQL request costs (ADR 0087).

    uv run --frozen python bench/bench_metrics_overhead.py [--iterations N] [--warmup N]
        [--operation AppShell|DocumentsList]

A script, not a test: it prints figures and asserts nothing about time. It builds two apps in
this process on one fresh SQLite file, the same but for METRICS_ENABLED (the router measures
requests only in a process that serves its metrics), signs up a user, and sends the operation
through httpx.ASGITransport to each, interleaved and rotating which goes first. Per request it
records the process's CPU time (`time.process_time_ns`, every thread of the process) and the
wall time. It then times the measuring code alone (a RequestMeasure, the name lookup and the
two prometheus_client updates) over many calls, since its cost is below the noise of one
request.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `app`, `resolvers`, ... importable
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from app import migrate  # noqa: E402
from app.main import create_app  # noqa: E402
from base.metrics import record_graphql_request  # noqa: E402
from base.settings import Settings  # noqa: E402
from resolvers.core.measure import RequestMeasure, measuring, named_operations  # noqa: E402

OPERATIONS = ROOT / "graphql" / "operations"


async def main(args: argparse.Namespace, tmp: str, url: str) -> None:
    base = {"database_url": url, "blob_root": f"{tmp}/blobs", "log_level": "WARNING"}
    apps = {
        "measured": create_app(Settings(**base, metrics_enabled=True)),
        "unmeasured": create_app(Settings(**base, metrics_enabled=False)),
    }
    async with (
        apps["measured"].router.lifespan_context(apps["measured"]),
        apps["unmeasured"].router.lifespan_context(apps["unmeasured"]),
    ):
        clients = {
            name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
            for name, app in apps.items()
        }
        try:
            await _run(clients, args)
        finally:
            for client in clients.values():
                await client.aclose()
    _time_the_measuring_code()


async def _run(clients: dict[str, httpx.AsyncClient], args: argparse.Namespace) -> None:
    any_client = clients["measured"]
    signed = await _post(
        any_client,
        (OPERATIONS / "SignUp.graphql").read_text(),
        {"input": {"name": "Bench", "email": "bench@example.com", "password": "a long phrase"}},
    )
    token = signed["data"]["signUp"]["session"]["accessToken"]
    query = (OPERATIONS / f"{args.operation}.graphql").read_text()
    variables: dict[str, Any] = {}
    if args.operation == "DocumentsList":
        shell = await _post(any_client, (OPERATIONS / "AppShell.graphql").read_text(), {}, token)
        workspace = shell["data"]["workspaces"]["edges"][0]["node"]["id"]
        variables = {"workspaceId": workspace}

    def request(client: httpx.AsyncClient) -> Callable[[], Awaitable[Any]]:
        async def send() -> Any:
            result = await _post(client, query, variables, token)
            assert "errors" not in result, result

        return send

    paths = {name: request(client) for name, client in clients.items()}
    names = list(paths)
    for _ in range(args.warmup):
        for name in names:
            await paths[name]()
    cpu: dict[str, list[int]] = {name: [] for name in names}
    wall: dict[str, list[int]] = {name: [] for name in names}
    gc.collect()
    for i in range(args.iterations):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            cpu_start, wall_start = time.process_time_ns(), time.perf_counter_ns()
            await paths[name]()
            cpu[name].append(time.process_time_ns() - cpu_start)
            wall[name].append(time.perf_counter_ns() - wall_start)
    print(f"{args.operation}: {args.iterations} requests per app, interleaved")
    for name in names:
        print(
            f"  {name:10}  CPU mean {statistics.fmean(cpu[name]) / 1000:8.1f} us  "
            f"median {statistics.median(cpu[name]) / 1000:8.1f} us   "
            f"wall mean {statistics.fmean(wall[name]) / 1000:8.1f} us  "
            f"median {statistics.median(wall[name]) / 1000:8.1f} us"
        )
    for label, samples in (("CPU", cpu), ("wall", wall)):
        mean = statistics.fmean(samples["measured"]) - statistics.fmean(samples["unmeasured"])
        median = statistics.median(samples["measured"]) - statistics.median(samples["unmeasured"])
        print(
            f"  measured - unmeasured, {label}: mean {mean / 1000:+.1f} us, median "
            f"{median / 1000:+.1f} us"
        )


async def _post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _time_the_measuring_code(calls: int = 200_000) -> None:
    """What the router adds per request, alone: open a measure, look the name up, record."""
    named = named_operations(OPERATIONS)

    class Execution:  # what the schema hands the measure: only its operation name is read
        operation_name = "AppShell"

    execution: Any = Execution()
    started = time.process_time_ns()
    for _ in range(calls):
        measure = RequestMeasure()
        token = measuring.set(measure)
        measure.execution = execution
        clock = time.perf_counter()
        measuring.reset(token)
        record_graphql_request(
            measure.operation(named), measure.outcome, time.perf_counter() - clock
        )
    per_call = (time.process_time_ns() - started) / calls / 1000
    print(f"the measuring code alone: {per_call:.2f} us of CPU per request ({calls} calls)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--operation", choices=["AppShell", "DocumentsList"], default="AppShell")
    with tempfile.TemporaryDirectory(prefix="kd-bench-metrics-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/kd.sqlite3"
        migrate.upgrade(url)  # outside the event loop: alembic runs its own
        asyncio.run(main(parser.parse_args(), tmp, url))
