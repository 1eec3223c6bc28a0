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

Then, for the PDFs, what an upload adds per PDF before storing it (ADR 0035): type detection
(`detect_type`, in-process, what every upload did before) and the open check
(`check_pdf_isolated`: a fresh child that opens the PDF and counts its pages), against the
isolated extraction of the same file measured in the same loop.
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
    check_pdf_isolated,
    detect_type,
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

    print()
    print(
        "| PDF | detect_type p50 ms | open check p50 / p95 ms | isolated extraction p50 ms "
        "| check / extraction |"
    )
    for path, hint in FILES:
        if not hint.endswith(".pdf"):
            continue
        data = read(path)

        async def detect(data: bytes = data, hint: str = hint) -> str:
            return detect_type(data, hint)

        async def check(data: bytes = data) -> int:
            return await check_pdf_isolated(
                data, timeout_s=DEFAULT_TIMEOUT_S, memory_mb=DEFAULT_MEMORY_MB
            )

        async def extraction(data: bytes = data, hint: str = hint) -> Extracted:
            reply = await run_child(CHILD_MODULE, data, hint, DEFAULT_TIMEOUT_S, DEFAULT_MEMORY_MB)
            return Extracted.from_json(reply)

        samples = await measure(
            {"detect": detect, "check": check, "extraction": extraction},
            args.iterations,
            args.warmup,
        )
        ms = 1e6
        d, c, e = (percentile(samples[k], 50, scale=ms) for k in ("detect", "check", "extraction"))
        print(
            f"| {Path(path).name} | {d:.2f} | {c:.1f} / "
            f"{percentile(samples['check'], 95, scale=ms):.1f} | {e:.1f} | {c / e:.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
