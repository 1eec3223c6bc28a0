"""Benchmark: what a search's rankings cost to hand over as Python objects (ADR 0153).

    uv run --frozen python bench/bench_ranked_hits.py [--rounds N] [--hits N] [--shown N]

A script, not a test: it prints figures and asserts nothing about time. No server, no database:
a workspace's cached vectors (50,000 rows of 10,000 documents, as the search benchmark's) give a
vector ranking of `--hits` rows, and a keyword ranking of as many rows comes as (chunk id,
document id, score) tuples, as SQLAlchemy hands them over. Each is turned into hits two ways, in
turns:

  baseline  a frozen dataclass per hit, the vector hit's chunk id made a `uuid.UUID` at once
            (how the services did it before)
  app       the services' own: `Rows.hits` (named tuples keeping the chunk id's 16 bytes) and
            `KeywordHit` (a named tuple)

Both ways then read the chunk ids of the first `--shown` hits, as a page of results does. Each
figure is the median over `--rounds` of the process's CPU per ranking; the chunk ids, document
ids and scores made both ways are checked equal first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `services`, ... importable
    sys.path.insert(0, str(ROOT))

from services.keyword_index import KeywordHit  # noqa: E402
from services.vector_index import WorkspaceVectors  # noqa: E402


@dataclass(frozen=True)
class FrozenVectorHit:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    cosine: float


@dataclass(frozen=True)
class FrozenKeywordHit:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    score: float
    text_chunk_id: uuid.UUID | None = None


def cached_vectors(rows: int = 50_000, documents: int = 10_000) -> WorkspaceVectors:
    rng = np.random.default_rng(5)
    vectors = WorkspaceVectors(8)
    doc_ids = [uuid.uuid4() for _ in range(documents)]
    vectors.append(
        list(range(1, rows + 1)),
        [uuid.uuid4() for _ in range(rows)],
        [doc_ids[i % documents] for i in range(rows)],
        rng.standard_normal((rows, 8)).astype(np.float32),
    )
    return vectors


def baseline_vector_hits(rows: Any, chosen: Any, scores: Any) -> list[FrozenVectorHit]:
    chunk_ids, doc_ids, row_docs = rows.chunk_ids, rows.doc_ids, rows.row_docs
    return [
        FrozenVectorHit(
            chunk_id=uuid.UUID(bytes=chunk_ids[row].tobytes()),
            document_id=doc_ids[row_docs[row]],
            cosine=cosine,
        )
        for row, cosine in zip(chosen.tolist(), scores.tolist(), strict=True)
    ]


def cpu_per_ranking(work: Callable[[], Any], rounds: int, repeats: int = 200) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.process_time()
        for _ in range(repeats):
            work()
        times.append((time.process_time() - began) / repeats * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--hits", type=int, default=200, help="hits a ranking hands over (200)")
    parser.add_argument("--shown", type=int, default=25, help="chunk ids then read (25)")
    args = parser.parse_args()
    rows = cached_vectors().snapshot()
    chosen = np.random.default_rng(6).choice(len(rows.seqs), args.hits, replace=False)
    scores = np.sort(np.random.default_rng(7).random(args.hits).astype(np.float32))[::-1]
    keyword_rows = [(uuid.uuid4(), uuid.uuid4(), float(s)) for s in scores.tolist()]
    shown = args.shown

    def vector_baseline() -> list[uuid.UUID]:
        return [h.chunk_id for h in baseline_vector_hits(rows, chosen, scores)[:shown]]

    def vector_app() -> list[uuid.UUID]:
        return [h.chunk_id for h in rows.hits(chosen, scores)[:shown]]

    def keyword_baseline() -> list[uuid.UUID]:
        hits = [FrozenKeywordHit(c, d, float(s)) for c, d, s in keyword_rows]
        return [h.chunk_id for h in hits[:shown]]

    def keyword_app() -> list[uuid.UUID]:
        hits = [KeywordHit(c, d, float(s)) for c, d, s in keyword_rows]
        return [h.chunk_id for h in hits[:shown]]

    ours, theirs = rows.hits(chosen, scores), baseline_vector_hits(rows, chosen, scores)
    assert [(h.chunk_id, h.document_id, h.cosine) for h in ours] == [
        (h.chunk_id, h.document_id, h.cosine) for h in theirs
    ]
    assert keyword_baseline() == keyword_app()
    print(
        f"CPU per ranking of {args.hits} hits, {shown} chunk ids read, median of "
        f"{args.rounds} rounds of 200:"
    )
    for name, baseline, app in (
        ("vector ranking ", vector_baseline, vector_app),
        ("keyword ranking", keyword_baseline, keyword_app),
    ):
        before, after = [], []
        for _ in range(args.rounds):  # in turns, so drift hits both alike
            before += cpu_per_ranking(baseline, 1)
            after += cpu_per_ranking(app, 1)
        b, a = statistics.median(before), statistics.median(after)
        print(f"  {name}  baseline {b:.3f} ms  app {a:.3f} ms  (x{a / b:.2f})")


if __name__ == "__main__":
    main()
