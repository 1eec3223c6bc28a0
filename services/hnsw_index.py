"""Semantic ranking inside PostgreSQL through pgvector's HNSW index (ADR 0114).

Where migration 0014 found pgvector, `chunk_vectors.embedding` holds each stored vector as
pgvector's type and an HNSW index (cosine) covers the rows of one dimension. A search then asks
the database for the nearest passages of the workspace, the workspace a condition of the same
statement: no vector is loaded into the API process. `services.search.semantic_hits` decides
when (SEARCH_VECTOR_INDEX).

The index is approximate. The connection's `hnsw.iterative_scan` lets it go on past
`hnsw.ef_search` candidates when other workspaces' rows crowd them out (up to pgvector's
`hnsw.max_scan_tuples`); when it still gives fewer passages than asked for, the same ranking
runs exactly in SQL, by an expression the index does not cover, over the few rows left. A
filtered ranking (collections, tags, documents) is ranked exactly in SQL from the start. A
ranking of documents (the Search screen's) asks for 32 passages per document wanted (1,000 at
most) and ranks the documents they come from: its depth is the index's, not the workspace's.

Related documents (`related`) rank the documents' own vectors (`document_vectors`, migration
0015, ADR 0116) through their own index the same way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased

from base.db.types import PgVector
from base.models.documents import (
    DOCUMENT_PGVECTOR_INDEX_PREFIX,
    PGVECTOR_COLUMN,
    PGVECTOR_INDEX_PREFIX,
    ChunkVector,
    DocumentVector,
)
from services.vector_index import Floats, VectorHit

# How long a process trusts what it found about a database's HNSW indexes: they appear and go
# only with a migration, which API processes are restarted after anyway.
INDEX_RECHECK_SECONDS = 60.0
# A best-documents search asks the index for this many passages per document wanted and ranks
# the documents those passages come from. A document's passages cluster near each other: on the
# 300-page corpus (22 passages a page) 8 a document found 0.77 of the exact 10 best documents,
# 16 found 0.90, 32 found 0.98-1.00 (ADR 0114).
PASSAGES_PER_DOCUMENT = 32
# ...but never more than this many: the index's cost grows with the rows it gives, and the
# Search screen ranks 200 documents (6,400 passages: 155-192 ms a ranking at 50,000 passages,
# 28-32 ms for 1,000, the exact scan 7.5-8.5 ms). Deeper pages list these passages' documents.
MAX_PASSAGES_ASKED = 1000

_indexes: dict[tuple[str, str], tuple[float, frozenset[int]]] = {}

# This schema's indexes whose names start with :prefix, and whether each is valid.
_INDEXES = text(
    "SELECT c.relname, i.indisvalid FROM pg_index AS i "
    "JOIN pg_class AS c ON c.oid = i.indexrelid "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND starts_with(c.relname, :prefix)"
)


@asynccontextmanager
async def _ordered_by_the_index(session: AsyncSession) -> AsyncIterator[None]:
    """The index's statements planned with sorting priced out, so that the index orders them
    whatever the statistics say. The app asks the index only for workspaces it judged too large
    to rank exactly (or when SEARCH_VECTOR_INDEX=hnsw says always); the planner judges by its
    statistics, and for a workspace ingested since the last ANALYZE they say one row. It then
    read the workspace's 50,000 passages by their btree index and sorted them: 1.34 s a ranking
    against 3-5 ms through the HNSW index (docs/testing.md).

    A setting of the session, not `SET LOCAL`: a request's reads run without a transaction
    (ADR 0076), where `SET LOCAL` does nothing. Their connection is the request's alone, and
    inside a transaction (behind PgBouncer, ADR 0118) a rollback undoes the setting too."""
    await session.execute(text("SET enable_sort = off"))
    try:
        yield
    finally:
        await session.execute(text("RESET enable_sort"))


async def indexed_dimensions(session: AsyncSession, *, documents: bool = False) -> frozenset[int]:
    """The vector dimensions this database has an HNSW index for: of the passages, or (with
    `documents`) of the documents' own vectors. None but on PostgreSQL with pgvector after
    migrations 0014 and 0015."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return frozenset()
    prefix = DOCUMENT_PGVECTOR_INDEX_PREFIX if documents else PGVECTOR_INDEX_PREFIX
    key = (str(bind.engine.url), prefix)
    now = time.monotonic()
    seen = _indexes.get(key)
    if seen is not None and now - seen[0] < INDEX_RECHECK_SECONDS:
        return seen[1]
    rows = await session.execute(_INDEXES, {"prefix": prefix})
    # An index a failed concurrent build left invalid answers nothing (ADR 0121).
    suffixes = (name[len(prefix) :] for name, valid in rows if valid)
    dimensions = frozenset(int(s) for s in suffixes if s.isdigit())
    _indexes[key] = (now, dimensions)
    return dimensions


def _cosine_distance(dimension: int, *, indexed: bool) -> ColumnElement[float]:
    """pgvector's cosine distance of each row to the `query` parameter (a vector as text). The
    indexed form is the index's own expression, `embedding::vector(N)`; the other one the
    index does not cover, so the planner ranks the rows exactly."""
    column: ColumnElement[Any] = literal_column(f"chunk_vectors.{PGVECTOR_COLUMN}")
    query = cast(cast(bindparam("query"), Text), PgVector(dimension if indexed else None))
    embedding = cast(column, PgVector(dimension)) if indexed else column
    return embedding.op("<=>", return_type=Float)(query)


def _nearest(
    workspace_id: uuid.UUID, model: str, dimension: int, documents: Any, *, indexed: bool
) -> Any:
    distance = _cosine_distance(dimension, indexed=indexed).label("distance")
    stmt = select(ChunkVector.chunk_id, ChunkVector.document_id, distance).where(
        ChunkVector.workspace_id == workspace_id,
        ChunkVector.model == model,
        # A literal, so that every plan (generic ones too) can use the index's predicate.
        ChunkVector.dimension == literal_column(str(int(dimension))),
    )
    if documents is not None:
        stmt = stmt.where(ChunkVector.document_id.in_(documents))
    return stmt


def _as_text(query: Floats) -> str:
    return "[" + ",".join(repr(v) for v in query.tolist()) + "]"


def _hits(rows: Any) -> list[VectorHit]:
    return [VectorHit(r.chunk_id.bytes, r.document_id, 1.0 - float(r.distance)) for r in rows]


async def scan(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    model: str,
    query: Floats,
    *,
    documents: Any,
    limit: int,
    per_document: bool,
) -> list[VectorHit]:
    """The `limit` best passages of the workspace, or (`per_document`) the best passage of each
    document among the index's `limit x PASSAGES_PER_DOCUMENT` (at most MAX_PASSAGES_ASKED)
    nearest passages, best first: at most `limit` documents, fewer when those passages come from
    fewer. Among `documents` (a subquery of allowed document ids), when given, ranked exactly."""
    if limit <= 0:
        return []
    # A filter (collections, tags, documents) leaves a share of the workspace that the index
    # cannot see ahead: at 50,000 passages with one collection of ten, the index searched on
    # through the other nine (1.85 s p50 at concurrency 8). Filtered rows are ranked exactly.
    if documents is None:
        found = await _through_index(session, workspace_id, model, query, limit, per_document)
        if found is not None:
            return found
    # Fewer than asked (the workspace has fewer passages, or the index's iterative scan gave up
    # at hnsw.max_scan_tuples), or a filter: few enough rows to rank exactly.
    return await _exact(session, workspace_id, model, query, documents, limit, per_document)


async def _through_index(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    model: str,
    query: Floats,
    limit: int,
    per_document: bool,
) -> list[VectorHit] | None:
    """`scan` by the index; None when it gave fewer passages than asked for."""
    params = {"query": _as_text(query)}
    distance: ColumnElement[Any] = literal_column("distance")
    indexed = _nearest(workspace_id, model, len(query), None, indexed=True)
    asked = min(limit * PASSAGES_PER_DOCUMENT, MAX_PASSAGES_ASKED) if per_document else limit
    nearest = indexed.order_by(distance).limit(asked)
    if per_document:
        # Each document's best passage among the nearest, picked by the database, with how many
        # passages the index gave (a window over the nearest rows, before DISTINCT ON).
        given_rows = nearest.subquery()
        best = (
            select(given_rows, func.count().over().label("given"))
            .ext(distinct_on(given_rows.c.document_id))
            .order_by(given_rows.c.document_id, given_rows.c.distance)
            .subquery()
        )
        async with _ordered_by_the_index(session):
            rows = (
                await session.execute(select(best).order_by(best.c.distance).limit(limit), params)
            ).all()
        given = rows[0].given if rows else 0
    else:
        async with _ordered_by_the_index(session):
            rows = (await session.execute(nearest, params)).all()
        given = len(rows)
    return _hits(rows) if given == asked else None


async def _exact(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    model: str,
    query: Floats,
    documents: Any,
    limit: int,
    per_document: bool,
) -> list[VectorHit]:
    """`scan` ranked exactly by the database, without the index."""
    stmt = _nearest(workspace_id, model, len(query), documents, indexed=False)
    distance: ColumnElement[Any] = literal_column("distance")
    if per_document:
        best = (
            stmt.ext(distinct_on(ChunkVector.document_id))
            .order_by(ChunkVector.document_id, distance)
            .subquery()
        )
        stmt = select(best.c.chunk_id, best.c.document_id, best.c.distance)
        distance = best.c.distance
    rows = await session.execute(stmt.order_by(distance).limit(limit), {"query": _as_text(query)})
    return _hits(rows.all())


# -- related documents ----------------------------------------------------------------------


async def related(
    session: AsyncSession,
    document_id: uuid.UUID,
    model: str,
    indexed: frozenset[int],
    limit: int,
) -> list[tuple[uuid.UUID, float]]:
    """The `limit` documents of the document's workspace whose own vectors (`document_vectors`,
    ADR 0116) are nearest to its own, with their cosine similarity, best first: by the index
    when the document's dimension is in `indexed`, ranked exactly in SQL when it is not or when
    the index gives fewer than asked. Empty for a document without a vector of `model`."""
    own = (
        await session.execute(
            select(DocumentVector.workspace_id, DocumentVector.dimension).where(
                DocumentVector.document_id == document_id, DocumentVector.model == model
            )
        )
    ).one_or_none()
    if own is None or limit <= 0:
        return []
    workspace_id, dimension = own
    if dimension in indexed:
        async with _ordered_by_the_index(session):
            nearest = (
                await session.execute(
                    _related(document_id, workspace_id, model, dimension, limit, indexed=True)
                )
            ).all()
        found = [(r.document_id, 1.0 - float(r.distance)) for r in nearest]
        if len(found) == limit:
            return found
    rows = await session.execute(
        _related(document_id, workspace_id, model, dimension, limit, indexed=False)
    )
    return [(r.document_id, 1.0 - float(r.distance)) for r in rows]


def _related(
    document_id: uuid.UUID,
    workspace_id: uuid.UUID,
    model: str,
    dimension: int,
    limit: int,
    *,
    indexed: bool,
) -> Any:
    """The nearest other documents' statement. The document's own vector is a scalar subquery
    (an InitPlan, evaluated once), which the index can order by; the exact form compares the
    columns as they are, which the index does not cover."""
    column: ColumnElement[Any] = literal_column(f"document_vectors.{PGVECTOR_COLUMN}")
    own = aliased(DocumentVector, name="own")
    own_column: ColumnElement[Any] = literal_column(f"own.{PGVECTOR_COLUMN}")
    if indexed:
        column = cast(column, PgVector(dimension))
        own_column = cast(own_column, PgVector(dimension))
    query = (
        select(own_column)
        .where(own.document_id == document_id, own.model == model)
        .scalar_subquery()
    )
    distance = column.op("<=>", return_type=Float)(query).label("distance")
    return (
        select(DocumentVector.document_id, distance)
        .where(
            DocumentVector.workspace_id == workspace_id,
            DocumentVector.model == model,
            DocumentVector.dimension == literal_column(str(int(dimension))),
            DocumentVector.document_id != document_id,
        )
        .order_by(literal_column("distance"))
        .limit(limit)
    )


# pgvector's HNSW index takes vectors of at most this many dimensions (its `vector` type).
MAX_INDEXED_DIMENSION = 2000


async def create_missing_indexes(engine: AsyncEngine) -> list[str]:
    """`python -m app vector-indexes`: pgvector's HNSW index (cosine) for every dimension of the
    passages' and the documents' stored vectors that has none, as migrations 0014 and 0015 make
    the 384-dimension ones: after a change to an embedding model of another dimension, whose
    vectors are otherwise ranked exactly (ADR 0121). Each is built with CREATE INDEX
    CONCURRENTLY, so ingestion goes on writing meanwhile; one left invalid by a build that
    failed is dropped and built again. The names built, in order; none on SQLite or without
    pgvector (migration 0014 found none), and none for more than MAX_INDEXED_DIMENSION
    dimensions."""
    built: list[str] = []
    if engine.dialect.name != "postgresql":
        return built
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        has_column = await autocommit.scalar(
            text(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = 'chunk_vectors' AND column_name = :column"
            ),
            {"column": PGVECTOR_COLUMN},
        )
        if not has_column:
            return built
        for table, prefix in (
            (ChunkVector.__tablename__, PGVECTOR_INDEX_PREFIX),
            (DocumentVector.__tablename__, DOCUMENT_PGVECTOR_INDEX_PREFIX),
        ):
            rows = await autocommit.execute(_INDEXES, {"prefix": prefix})
            valid: dict[str, bool] = dict(rows.all())
            stored = await autocommit.scalars(text(f"SELECT DISTINCT dimension FROM {table}"))
            for dimension in sorted(int(d) for d in stored):
                name = f"{prefix}{dimension}"
                if valid.get(name) or dimension > MAX_INDEXED_DIMENSION:
                    continue
                if name in valid:
                    await autocommit.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                await autocommit.execute(
                    text(
                        f"CREATE INDEX CONCURRENTLY {name} ON {table} USING hnsw "
                        f"(({PGVECTOR_COLUMN}::vector({dimension})) vector_cosine_ops) "
                        f"WHERE dimension = {dimension}"
                    )
                )
                built.append(name)
    if built:
        forget_indexes()
    return built


def forget_indexes() -> None:
    """Forget what this process found about the databases' HNSW indexes: the next ranking looks
    them up again."""
    _indexes.clear()
