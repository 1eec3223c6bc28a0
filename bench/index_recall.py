"""pgvector's HNSW ranking against the exact scan (ADR 0114), for the search benchmarks: per
query, recall@10 of the passages and of the documents (each by its best passage), each
ranking's time, and which scans answered the index's statement."""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, select, text

from base.models.documents import DocumentVector
from services import hnsw_index, search
from services.deps import ServiceDeps

RECALL_AT = 10


EF_SEARCHES = (40, 100, 200, 400)


async def index_recall(deps: ServiceDeps, workspace_id: uuid.UUID, queries: Sequence[str]) -> None:
    """Print the index's recall@10 against the exact scan over `queries` at several
    `hnsw.ef_search` values, and the times."""
    exact = _choosing(deps, "exact")
    deps = _choosing(deps, "hnsw")
    recalls: dict[tuple[str, int], list[float]] = {}
    times: dict[tuple[str, int | None], list[float]] = {}
    vectors = [await search.embed_query(deps, query) for query in queries]

    async def ranked(
        which: ServiceDeps, vector: Any, per_document: bool, ef: int | None
    ) -> set[uuid.UUID]:
        async with which.read() as session:
            if ef is not None:
                await session.execute(text(f"SET hnsw.ef_search = {int(ef)}"))
            began = time.perf_counter()
            hits = await search.semantic_hits(
                which,
                session,
                workspace_id,
                vector,
                None,
                limit=RECALL_AT,
                per_document=per_document,
            )
            elapsed = time.perf_counter() - began
            if ef is not None:
                await session.execute(text("RESET hnsw.ef_search"))
        name = "documents" if per_document else "passages"
        times.setdefault((name, ef), []).append(elapsed)
        return {h.chunk_id for h in hits}

    for vector in vectors:
        for per_document in (False, True):
            name = "documents" if per_document else "passages"
            truth = await ranked(exact, vector, per_document, None)
            for ef in EF_SEARCHES:
                found = await ranked(deps, vector, per_document, ef)
                recalls.setdefault((name, ef), []).append(len(found & truth) / len(truth))
    depths = await _depths(deps, exact, workspace_id, vectors)
    plan = await index_plan(deps, workspace_id, vectors[0])
    print(f"\n== pgvector HNSW against the exact scan, {len(queries)} queries")
    print(f"  plan of a passages ranking: {plan}")
    for (name, ef), values in recalls.items():
        print(
            f"  {name:<9} ef_search {ef:>3}: recall@{RECALL_AT} "
            f"mean {statistics.mean(values):.3f}, "
            f"min {min(values):.2f}, queries under 1: {sum(v < 1 for v in values):>2}; "
            f"median {1000 * statistics.median(times[(name, ef)]):6.2f} ms a ranking"
        )
    for name in ("passages", "documents"):
        exact_ms = 1000 * statistics.median(times[(name, None)])
        print(f"  {name:<9} exact scan (the cache): median {exact_ms:6.2f} ms a ranking")
    print(f"  the Search screen's ranking ({SEARCH_DEPTH} documents) by passages asked at most:")
    for line in depths:
        print(line)
    await related_recall(exact, workspace_id)


RELATED_SAMPLE = 50


async def related_recall(deps: ServiceDeps, workspace_id: uuid.UUID) -> None:
    """Related documents (ADR 0116) of RELATED_SAMPLE documents by the documents' index and by
    their vectors streamed, against the exact scan of the cache: recall@5 and median times."""
    async with deps.read() as session:
        sample = list(
            await session.scalars(
                select(DocumentVector.document_id)
                .where(DocumentVector.workspace_id == workspace_id)
                .order_by(DocumentVector.document_id)
                .limit(RELATED_SAMPLE)
            )
        )
    ways = {
        "exact scan (the cache)": deps,
        "documents' vectors streamed": dataclasses.replace(
            deps,
            settings=deps.settings.model_copy(
                update={"search_vector_index": "exact", "search_vector_cache_mb": 0}
            ),
        ),
        "documents' HNSW index": _choosing(deps, "hnsw"),
    }
    found: dict[str, list[set[uuid.UUID]]] = {name: [] for name in ways}
    times: dict[str, list[float]] = {name: [] for name in ways}
    await search.related_documents(deps, ids=sample[:1])  # loads the cache
    for document_id in sample:
        for name, which in ways.items():
            began = time.perf_counter()
            related = await search.related_documents(which, ids=[document_id])
            times[name].append(time.perf_counter() - began)
            found[name].append({r.document.id for r in related[0]})
    truth = found["exact scan (the cache)"]
    print(f"  related documents of {len(sample)} documents:")
    for name in ways:
        recall = statistics.mean(
            len(f & t) / len(t) for f, t in zip(found[name], truth, strict=True) if t
        )
        print(
            f"    {name:<28} recall@5 {recall:.3f}, median "
            f"{1000 * statistics.median(times[name]):7.2f} ms"
        )


def _choosing(deps: ServiceDeps, index: str) -> ServiceDeps:
    """`deps` whose semantic rankings go through the index (`hnsw`) or the exact scan."""
    return dataclasses.replace(
        deps, settings=deps.settings.model_copy(update={"search_vector_index": index})
    )


SEARCH_DEPTH = 200
ASKED_CAPS = (400, 1000, 2000, 6400)


async def _depths(
    deps: ServiceDeps, exact: ServiceDeps, workspace_id: uuid.UUID, vectors: Sequence[Any]
) -> list[str]:
    """What-if: the documents ranking at the Search screen's depth with other caps on the
    passages asked of the index (hnsw_index.MAX_PASSAGES_ASKED): time, documents listed, and
    recall of the exact ranking's first 10 and 25 documents."""
    truths = []
    for vector in vectors:
        async with exact.read() as session:
            hits = await search.semantic_hits(
                exact, session, workspace_id, vector, None, limit=SEARCH_DEPTH, per_document=True
            )
        truths.append([h.document_id for h in hits])
    adopted = hnsw_index.MAX_PASSAGES_ASKED
    lines = []
    try:
        for cap in ASKED_CAPS:
            hnsw_index.MAX_PASSAGES_ASKED = cap
            elapsed, listed, at10, at25 = [], [], [], []
            for vector, truth in zip(vectors, truths, strict=True):
                async with deps.read() as session:
                    began = time.perf_counter()
                    hits = await search.semantic_hits(
                        deps,
                        session,
                        workspace_id,
                        vector,
                        None,
                        limit=SEARCH_DEPTH,
                        per_document=True,
                    )
                    elapsed.append(time.perf_counter() - began)
                found = {h.document_id for h in hits}
                listed.append(len(hits))
                at10.append(len(found & set(truth[:10])) / len(truth[:10]))
                at25.append(len(found & set(truth[:25])) / len(truth[:25]))
            lines.append(
                f"    {cap:>5}{' (adopted)' if cap == adopted else '':<10} median "
                f"{1000 * statistics.median(elapsed):7.2f} ms, documents listed median "
                f"{statistics.median(listed):.0f}, recall of the exact first 10 "
                f"{statistics.mean(at10):.3f}, first 25 {statistics.mean(at25):.3f}"
            )
    finally:
        hnsw_index.MAX_PASSAGES_ASKED = adopted
    return lines


async def index_plan(deps: ServiceDeps, workspace_id: uuid.UUID, vector: Any) -> str:
    """Which scans answer the index's ranking of passages (EXPLAIN of the statement it sent)."""
    deps = _choosing(deps, "hnsw")
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "<=>" in statement:
            sent.append((statement, parameters))

    async with deps.read() as session:
        engine = session.get_bind().engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            await search.semantic_hits(
                deps, session, workspace_id, vector, None, limit=RECALL_AT, per_document=False
            )
        finally:
            event.remove(engine, "before_cursor_execute", record)
        connection = await session.connection()
        rows = await connection.exec_driver_sql(f"EXPLAIN {sent[0][0]}", sent[0][1])
        return " / ".join(
            line.strip() for line in rows.scalars() if "Scan" in line or "Sort" in line
        )
