"""Each document's own vector, for related documents (ADR 0116).

A document's vector is the normalised mean of its passages' unit vectors of one model: the
vector the exact scan of the cache (`vector_index.IndexedVectors.centroids`) computes for every
document of a workspace. Stored in `document_vectors`, one row per document and model, it lets
related documents be found without reading every passage of the workspace: by pgvector's index
where migration 0015 made one, else by streaming one row per document instead of one per
passage (about 13 times fewer on the 10,000-document set).

EMBEDDING writes a document's row when the last of its passages has its vector; cutting the
passages again deletes it (the passages' vectors go with them), and deleting the document
cascades. Bulk loads that write `chunk_vectors` themselves call `refresh` for what they wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

import numpy as np
from sqlalchemy import ColumnElement, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from base.models.documents import ChunkVector, DocumentVector
from services.vector_index import Floats, normalised

# Passage vectors read per round trip when refreshing a whole workspace.
_READ_ROWS = 4096


def mean_vector(vectors: Floats) -> Floats:
    """The normalised mean of the rows' unit vectors."""
    return normalised(normalised(vectors).sum(axis=0, dtype=np.float32))


async def refresh(
    session: AsyncSession,
    model: str,
    *,
    documents: Collection[uuid.UUID] | None = None,
    workspace_id: uuid.UUID | None = None,
) -> int:
    """Write again the `model` vectors of `documents`, or of every document of the workspace,
    from their passages' stored vectors; a document without any loses its row. Returns the
    rows written. The caller's transaction holds the change."""
    if (documents is None) == (workspace_id is None):
        raise ValueError("refresh takes either documents or a workspace")

    def within(table: type[ChunkVector] | type[DocumentVector]) -> ColumnElement[bool]:
        if documents is not None:
            return table.document_id.in_(list(documents))
        return table.workspace_id == workspace_id

    await session.execute(
        delete(DocumentVector).where(within(DocumentVector), DocumentVector.model == model)
    )
    rows = await session.stream(
        select(
            ChunkVector.document_id,
            ChunkVector.workspace_id,
            ChunkVector.dimension,
            ChunkVector.vector,
        )
        .where(within(ChunkVector), ChunkVector.model == model)
        .order_by(ChunkVector.document_id, ChunkVector.chunk_id)
        .execution_options(yield_per=_READ_ROWS)
    )
    written: list[dict[str, object]] = []
    current: list[bytes] = []
    last: tuple[uuid.UUID, uuid.UUID, int] | None = None

    def flush() -> None:
        if last is None or not current:
            return
        document_id, workspace, dimension = last
        matrix = np.frombuffer(b"".join(current), "<f4").reshape(len(current), dimension)
        written.append(
            {
                "document_id": document_id,
                "model": model,
                "workspace_id": workspace,
                "dimension": dimension,
                "vector": mean_vector(matrix).astype("<f4").tobytes(),
            }
        )

    async for document_id, workspace, dimension, vector in rows:
        if last is None or last[0] != document_id:
            flush()
            last, current = (document_id, workspace, dimension), []
        if dimension == last[2]:  # one model gives one dimension; a stray row is left out
            current.append(vector)
    flush()
    for start in range(0, len(written), 1000):
        await session.execute(insert(DocumentVector), written[start : start + 1000])
    return len(written)


async def forget(session: AsyncSession, document_id: uuid.UUID) -> None:
    """Delete the document's vectors of every model (its passages are being cut again)."""
    await session.execute(delete(DocumentVector).where(DocumentVector.document_id == document_id))


async def nearest_streamed(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    model: str,
    document_ids: Collection[uuid.UUID],
    limit: int,
) -> dict[uuid.UUID, list[tuple[uuid.UUID, float]]]:
    """For each of `document_ids` (of the workspace) that has a `model` vector, the `limit`
    other documents of the workspace nearest to it by cosine, best first: exact, the workspace's
    document vectors read block by block, so memory holds a block, not the workspace."""
    own = (
        await session.execute(
            select(
                DocumentVector.document_id, DocumentVector.dimension, DocumentVector.vector
            ).where(
                DocumentVector.document_id.in_(list(document_ids)),
                DocumentVector.workspace_id == workspace_id,
                DocumentVector.model == model,
            )
        )
    ).all()
    if not own or limit <= 0:
        return {}
    dimension = own[0].dimension  # one model, one dimension
    targets = [r.document_id for r in own if r.dimension == dimension]
    queries = np.frombuffer(
        b"".join(r.vector for r in own if r.dimension == dimension), "<f4"
    ).reshape(len(targets), dimension)
    best_ids: list[list[uuid.UUID]] = [[] for _ in targets]
    best_scores = [np.empty(0, np.float32) for _ in targets]
    result = await session.stream(
        select(DocumentVector.document_id, DocumentVector.vector)
        .where(
            DocumentVector.workspace_id == workspace_id,
            DocumentVector.model == model,
            DocumentVector.dimension == dimension,
        )
        .execution_options(yield_per=_READ_ROWS)
    )
    async for block in result.partitions(_READ_ROWS):
        ids = [r.document_id for r in block]
        scores = (
            np.frombuffer(b"".join(r.vector for r in block), "<f4").reshape(len(block), dimension)
            @ queries.T
        )
        for t, target in enumerate(targets):
            candidates = best_ids[t] + ids
            merged = np.concatenate([best_scores[t], scores[:, t]])
            merged[[i for i, d in enumerate(candidates) if d == target]] = -np.inf
            keep = np.argsort(-merged, kind="stable")[:limit]
            keep = keep[np.isfinite(merged[keep])]
            best_ids[t] = [candidates[int(i)] for i in keep]
            best_scores[t] = merged[keep]
    return {
        target: [(d, float(v)) for d, v in zip(best_ids[t], best_scores[t].tolist(), strict=True)]
        for t, target in enumerate(targets)
    }
