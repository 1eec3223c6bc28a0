"""Benchmark: what the parser's isolation costs per file (ADR 0031).

    uv run --frozen python bench/bench_extraction.py [--iterations N] [--warmup N]

A script, not a test: it prints figures and asserts nothing about time. For each real file it
measures, interleaved within every iteration:

* in-process: services.extraction.parse(data, hint), the parser in this process;
* isolated:   services.extraction.run_child(CHILD_MODULE, ...) + Extracted.from_json, the same
              parser in a fresh child process (interpreter start, imports of that type's
              libraries, limits, fork, JSON both ways).

Language detection is left out of both: it runs in the calling process either way. It prints
p50 / p95 per path and the isolation's extra time per file (p50 of isolated minus p50 of
in-process), and chunking's time for the same text.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from common import measure, percentile  # noqa: E402

from services.chunking import chunk  # noqa: E402
from services.extraction import (  # noqa: E402
    CHILD_MODULE,
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    Extracted,
    parse,
    run_child,
)

FILES = [
    ("/usr/share/doc/python3.11-doc/html/library/venv.html", "venv.html"),
    ("/usr/share/doc/postgresql-common/README.md.gz", "README.md"),
    ("/usr/share/doc/bzip2/manual.pdf.gz", "manual.pdf"),
    ("/usr/share/doc/valgrind/valgrind_manual.pdf.gz", "valgrind_manual.pdf"),
]


def read(path: str) -> bytes:
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if path.endswith(".gz") else raw


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    print(
        "| file | size | in-process p50 / p95 ms | isolated p50 / p95 ms "
        "| isolation overhead p50 ms | chunking ms |"
    )
    for path, hint in FILES:
        data = read(path)

        async def in_process(data: bytes = data, hint: str = hint) -> Extracted:
            return parse(data, hint)

        async def isolated(data: bytes = data, hint: str = hint) -> Extracted:
            reply = await run_child(CHILD_MODULE, data, hint, DEFAULT_TIMEOUT_S, DEFAULT_MEMORY_MB)
            return Extracted.from_json(reply)

        assert await isolated() == await in_process()
        samples = await measure(
            {"in-process": in_process, "isolated": isolated}, args.iterations, args.warmup
        )
        extracted = parse(data, hint)
        started = time.perf_counter()
        chunk(extracted.text, extracted.headings)
        chunk_ms = (time.perf_counter() - started) * 1000
        a, b = samples["in-process"], samples["isolated"]
        ms = 1e6
        print(
            f"| {Path(path).name} | {len(data) // 1024} KiB "
            f"| {percentile(a, 50, scale=ms):.1f} / {percentile(a, 95, scale=ms):.1f} "
            f"| {percentile(b, 50, scale=ms):.1f} / {percentile(b, 95, scale=ms):.1f} "
            f"| {percentile(b, 50, scale=ms) - percentile(a, 50, scale=ms):.1f} "
            f"| {chunk_ms:.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
