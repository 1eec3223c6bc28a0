"""Measurement helpers shared by the benchmarks.

The scripts run as `python bench/<name>.py`: each puts the repository root on sys.path and
imports this module as `bench.common`, so the bench apps that uvicorn loads by module path
(`bench.<name>:create_bench_app`, from the repository root) can import it too.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextlib.contextmanager
def plain_fields_off(schema: Any) -> Iterator[None]:
    """What-if for a comparison in one run: while inside, every field of the Strawberry schema
    `schema` takes graphql-core's own path, as before plain fields were read directly
    (resolvers/core/execution.py)."""
    from resolvers.core import execution

    graphql_schema = schema._schema
    saved = execution.plain_fields(graphql_schema)
    execution._by_schema[graphql_schema] = {}
    try:
        yield
    finally:
        execution._by_schema[graphql_schema] = saved


@contextlib.contextmanager
def calls_run_alone() -> Iterator[None]:
    """What-if for a comparison in one run: while inside, each read a request's loaders queue
    on their CallBatch runs as a workflow execution of its own, as before ADR 0110."""
    from runtime.runner import CallBatch

    flush = CallBatch._flush

    def alone(batch: CallBatch) -> None:
        queued = batch._queued
        for call in queued:
            batch._queued = [call]
            flush(batch)

    CallBatch._flush = alone  # type: ignore[method-assign]
    try:
        yield
    finally:
        CallBatch._flush = flush  # type: ignore[method-assign]


@contextlib.contextmanager
def counted_executions(runtime: Any) -> Iterator[list[int]]:
    """While inside, [n]: the workflow executions `runtime` (the app's one) has started."""
    count = [0]
    execute = runtime.execute_workflow_async

    async def counting(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return await execute(*args, **kwargs)

    runtime.execute_workflow_async = counting
    try:
        yield count
    finally:
        del runtime.execute_workflow_async


async def cpu_against(
    what_if: Callable[[], contextlib.AbstractContextManager[Any]],
    run: Callable[[], Awaitable[Any]],
    calls: int,
    rounds: int = 4,
) -> tuple[float, float]:
    """CPU ms per call of `run` (which makes `calls` requests) as the code is and inside
    `what_if()`, alternating in `rounds`: the median of each."""
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(rounds):
        for as_is in (True, False) if round_ % 2 == 0 else (False, True):
            with contextlib.nullcontext() if as_is else what_if():
                started = time.process_time()
                await run()
                cpu[as_is].append((time.process_time() - started) / calls * 1e3)
    return statistics.median(cpu[True]), statistics.median(cpu[False])


async def plain_fields_cpu(
    schema: Any, run: Callable[[], Awaitable[Any]], calls: int, rounds: int = 4
) -> tuple[float, float]:
    """CPU ms per call of `run` (which makes `calls` requests) with plain fields read directly
    and through graphql-core's path, alternating in `rounds`: the median of each."""
    return await cpu_against(lambda: plain_fields_off(schema), run, calls, rounds)


def add_size_flag(
    parser: argparse.ArgumentParser, quick: dict[str, Any], full: dict[str, Any]
) -> None:
    """`--full`: the sizes of the recorded figures; without it, a quick run (what `make bench`
    does). Options named in `quick` / `full` must default to None; a value given wins."""
    parser.add_argument(
        "--full",
        action="store_true",
        help=f"full size ({_describe(full)}); default quick ({_describe(quick)})",
    )
    parser.set_defaults(_sizes=(quick, full))


def apply_sizes(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the size options left unset from the quick or the full sizes (see add_size_flag)."""
    quick, full = args._sizes
    for name, value in (full if args.full else quick).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _describe(sizes: dict[str, Any]) -> str:
    return ", ".join(f"--{name.replace('_', '-')} {value}" for name, value in sizes.items())


def percentile(values: list[Any], p: float, *, scale: float = 1.0) -> float:
    """Nearest-rank percentile of `values`, divided by `scale` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] / scale


async def measure(
    paths: dict[str, Callable[[], Awaitable[Any]]], iterations: int, warmup: int
) -> dict[str, list[int]]:
    """Nanoseconds per call of each path, interleaved so that drift hits every path alike."""
    names = list(paths)
    for _ in range(warmup):
        for name in names:
            await paths[name]()
    samples: dict[str, list[int]] = {name: [] for name in names}
    gc.collect()
    clock = time.perf_counter_ns
    for i in range(iterations):
        shift = i % len(names)  # rotate: every path runs first, second, ... equally often
        for name in names[shift:] + names[:shift]:
            started = clock()
            await paths[name]()
            samples[name].append(clock() - started)
    return samples


@contextlib.contextmanager
def sql_trace(engine: AsyncEngine) -> Iterator[dict[str, list[Any]]]:
    """Statements (before_cursor_execute), pool checkouts and transactions while open."""
    trace: dict[str, list[Any]] = {"statements": [], "checkouts": [], "transactions": []}
    sync_engine = engine.sync_engine

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        trace["statements"].append(" ".join(statement.split()))

    def on_checkout(*_: Any) -> None:
        trace["checkouts"].append(1)

    def on_begin(*_: Any) -> None:
        trace["transactions"].append(1)

    hooks = [
        (sync_engine, "before_cursor_execute", on_statement),
        (sync_engine.pool, "checkout", on_checkout),
        (sync_engine, "begin", on_begin),
    ]
    for target, name, fn in hooks:
        event.listen(target, name, fn)
    try:
        yield trace
    finally:
        for target, name, fn in hooks:
            event.remove(target, name, fn)


# -- the load generator ---------------------------------------------------------------------------

CLIENTS = ("aiohttp", "httpx")


class LoadClient:
    """HTTP/1.1 keep-alive client that sends the benchmarks' requests to one server.

    It stands for browsers on other machines but runs on the server's machine, so its CPU is
    taken from the server's: aiohttp's client costs about a sixth of httpx's own per request
    (0.17 against 1.0 ms for a 10 KB answer at concurrency 8), 1-1.5 ms less per documents
    screen with the JSON decoding (docs/testing.md). httpx stays selectable to compare with the
    figures recorded before.
    """

    def __init__(self, kind: str, base_url: str, headers: dict[str, str], timeout: float) -> None:
        self.kind = kind
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.timeout = timeout
        self._client: Any = None

    async def __aenter__(self) -> LoadClient:
        if self.kind == "httpx":
            import httpx

            limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=self.headers, timeout=self.timeout, limits=limits
            )
        elif self.kind == "aiohttp":
            import aiohttp

            self._client = aiohttp.ClientSession(
                headers=self.headers,
                connector=aiohttp.TCPConnector(limit=32),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        else:
            raise ValueError(f"unknown client {self.kind!r}: one of {', '.join(CLIENTS)}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.kind == "httpx":
            await self._client.aclose()
        else:
            await self._client.close()

    async def post_json(self, path: str, payload: Any) -> tuple[int, Any]:
        """POST `payload` as JSON to `path`: the status and the decoded JSON answer."""
        if self.kind == "httpx":
            response = await self._client.post(path, json=payload)
            return response.status_code, response.json()
        async with self._client.post(self.base_url + path, json=payload) as response:
            return response.status, await response.json(content_type=None)


# -- cProfile summaries ---------------------------------------------------------------------------

PACKAGES = (
    "kailash",
    "strawberry",
    "graphql",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "numpy",
    "pydantic",
    "starlette",
    "fastapi",
    "httpx",
    "asyncio",
    "json",
)
ROOT = Path(__file__).resolve().parents[1]


def _package(filename: str) -> str:
    parts = Path(filename).parts
    for name in PACKAGES:
        if name in parts:
            return name
    if str(ROOT) in filename and ".venv" not in filename:
        return "app (" + Path(filename).relative_to(ROOT).parts[0] + ")"
    return "other" if filename.startswith(("/", "<")) and filename != "~" else "builtins"


def print_profile_stats(profiler: Any, requests: int, top: int = 20) -> None:
    """A cProfile's own time per request, by package, and its `top` functions."""
    import pstats

    raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = {}
    rows = []
    for (filename, line, fn), (_cc, calls, tottime, cumtime, _c) in raw.items():
        group = _package(filename)
        by_package[group] = by_package.get(group, 0.0) + tottime
        rows.append((tottime, cumtime, calls, f"{filename}:{line} {fn}"))
    total = sum(by_package.values())
    print(f" ({total / requests * 1e3:.2f} ms of profiled own time); by package:")
    for group, seconds in sorted(by_package.items(), key=lambda kv: -kv[1]):
        print(f"    {seconds / requests * 1e3:7.3f} ms  {seconds / total:5.1%}  {group}")
    print("    top functions by own time (ms per request, calls per request):")
    for tottime, cumtime, calls, where in sorted(rows, reverse=True)[:top]:
        short = where.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        print(
            f"    {tottime / requests * 1e3:7.3f} own {cumtime / requests * 1e3:7.3f} "
            f"cum {calls / requests:7.1f}x  {short}"
        )
