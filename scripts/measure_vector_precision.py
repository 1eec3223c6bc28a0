"""float32 or float16 for stored chunk vectors (ADR 0051): what float16 costs in ranking.

Embeds chunks of real Python documentation pages with the model server (the local one is started
when OLLAMA_HOST does not answer), then for every chunk taken as the query ranks all the others
by cosine similarity twice: with the float32 vectors and with the same vectors rounded to float16
(what would be stored). Prints the agreement of the top 10, the largest change of a score, the
bytes per vector and the time to pack and unpack one vector with `struct`.

    .venv/bin/python scripts/measure_vector_precision.py [--chunks 120] [--model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402  (a dependency of py3langid; used by this script only)

from base.settings import Settings  # noqa: E402
from services import llm  # noqa: E402
from services.chunking import chunk  # noqa: E402
from services.extraction import extract  # noqa: E402
from tests.support import corpus  # noqa: E402
from tests.support.model_server import answers, model_server  # noqa: E402

PAGES = ["library/venv.html", "library/bisect.html", "library/glob.html", "library/secrets.html"]


def corpus_chunks(count: int) -> list[str]:
    texts: list[str] = []
    for page in PAGES:
        path = corpus.HTML_ROOT / page
        extracted = extract(path.read_bytes(), path.name)
        texts += [c.text for c in chunk(extracted.text, extracted.headings)]
    return texts[:count]


def top(matrix: np.ndarray, k: int) -> list[set[int]]:
    scores = matrix @ matrix.T
    np.fill_diagonal(scores, -np.inf)
    return [set(np.argsort(-row)[:k]) for row in scores]


async def measure(host: str, model: str, count: int) -> None:
    texts = corpus_chunks(count)
    config = llm.LLMConfig(host=host, timeout_seconds=600)
    started = time.perf_counter()
    vectors = await llm.embed(texts, model=model, config=config, batch_size=16)
    seconds = time.perf_counter() - started
    await llm.aclose_clients()
    full = np.asarray(vectors, dtype=np.float32)
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    half = full.astype(np.float16).astype(np.float32)
    dimension = full.shape[1]
    k = 10
    agree = [len(a & b) / k for a, b in zip(top(full, k), top(half, k), strict=True)]
    score_change = np.abs(full @ full.T - half @ half.T).max()

    one = vectors[0]
    rounds = 10_000
    timings = {}
    for code in ("f", "e"):
        layout = f"<{dimension}{code}"
        t = time.perf_counter()
        for _ in range(rounds):
            packed = struct.pack(layout, *one)
        timings[f"pack {code}"] = (time.perf_counter() - t) / rounds * 1e6
        t = time.perf_counter()
        for _ in range(rounds):
            struct.unpack(layout, packed)
        timings[f"unpack {code}"] = (time.perf_counter() - t) / rounds * 1e6
        t = time.perf_counter()
        for _ in range(rounds):
            np.frombuffer(packed, dtype="<f4" if code == "f" else "<f2")
        timings[f"numpy {code}"] = (time.perf_counter() - t) / rounds * 1e6

    print(f"model {model}: {len(texts)} chunks, {dimension} dimensions, in {seconds:.1f} s")
    print(f"top-{k} agreement float16 vs float32: mean {np.mean(agree):.4f}, min {min(agree):.2f}")
    print(f"largest cosine change: {score_change:.2e}")
    print(f"bytes per vector: float32 {4 * dimension}, float16 {2 * dimension}")
    for name, micros in timings.items():
        print(f"{name}: {micros:.1f} µs per vector")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=120)
    parser.add_argument("--model", default=Settings().embed_model)
    args = parser.parse_args()
    configured = os.environ.get("OLLAMA_HOST")
    if configured and answers(configured):
        asyncio.run(measure(configured, args.model, args.chunks))
        return
    with model_server() as host:
        asyncio.run(measure(host, args.model, args.chunks))


if __name__ == "__main__":
    main()
