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
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


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
