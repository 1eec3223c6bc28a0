"""Search (screen 8), related documents (screen 7) and the retrieval behind them and behind Ask.

`retrieve_passages` is the retrieval entry point: passages of one workspace ranked by keyword
(the database's full-text index, `services.keyword_index`), by meaning (cosine similarity of
embeddings, `services.vector_index`), or both fused by their scaled scores (`services.fusion`,
ADR 0104).
`search` ranks documents the same ways, each represented by its best passage, and pages them.

Every caller must be a member of the workspace (any role); an id of another workspace behaves
as a missing one. Tenant scoping and the filters are conditions of the SQL and masks of the
vector scan, never filters applied to a larger result afterwards.

When the embedding model is unavailable (down, missing, slower than
SEARCH_EMBED_TIMEOUT_SECONDS), SEMANTIC raises ModelUnavailable and HYBRID answers keyword
results flagged `degraded`. After a failure, searches skip the model for
SEARCH_MODEL_RETRY_SECONDS, so a dead server costs one timeout, not one per search.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import LargeBinary, Select, String, bindparam, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from base.errors import Invalid, ModelUnavailable
from base.models.accounts import Role
from base.models.documents import MAX_TAG, Chunk, Collection, Document, DocumentTag
from base.models.retrieval import VectorVersion
from base.settings import Settings
from services import document_vectors, hnsw_index, keyword_index, llm, vector_index
from services.access import in_ids, require_role
from services.collections import COLLECTION_OF_DOCUMENT, collection_of_document
from services.deps import ServiceDeps
from services.documents import DOCUMENT_COLUMNS, VIEWER_SEES_DOCUMENT_IDS
from services.fusion import linear_fusion
from services.pagination import PageRequest, invalid_cursor, offset_after, offset_cursor
from services.search_text import embedded_text, query_terms, require_query
from services.validation import clean_filter_text
from services.views import (
    CollectionView,
    DocumentView,
    Edge,
    Page,
    PassageView,
    RelatedDocumentView,
    SearchHitView,
    SearchResultsView,
    view_of_row,
)

# Candidates each ranking contributes to a fused HYBRID list of passages.
MIN_PASSAGE_CANDIDATES = 50
MAX_PASSAGES = 100
RELATED_DOCUMENTS = 5


class SearchMode(enum.StrEnum):
    KEYWORD = "KEYWORD"
    SEMANTIC = "SEMANTIC"
    HYBRID = "HYBRID"


@dataclass(frozen=True)
class Passage:
    """One chunk as retrieved. `score` orders the passages of one retrieval (BM25 or ts_rank
    for KEYWORD, cosine for SEMANTIC, the fused reciprocal-rank score for HYBRID); `cosine` is
    the chunk's cosine similarity to the query when semantic ranking found it among its
    candidates. `matches` are (start, end) character offsets into `text` of the words the
    full-text index matched (empty when it matched none)."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    collection_id: uuid.UUID
    document_title: str
    text: str
    heading_path: list[str]
    char_start: int
    char_end: int
    score: float
    cosine: float | None
    matches: list[tuple[int, int]] = field(default_factory=list)
    position: int = 0


@dataclass(frozen=True)
class Retrieval:
    """Passages best first. `degraded`: semantic ranking was asked for (HYBRID) but the
    embedding model was unavailable, so these are keyword results only. `top_cosine`: the best
    cosine similarity of any allowed passage to the query (None without semantic ranking),
    which tells how well the workspace can answer at all."""

    passages: list[Passage]
    degraded: bool = False
    top_cosine: float | None = None
    # retrieve_in_conversation: the best cosine of the question together with the one before it.
    context_cosine: float | None = None


# Ask: a question after another in one conversation is ranked alone and together with the
# questions it leans on ("and how do I activate it?" names nothing to find), the two rankings
# fused with this share for the pair (ADRs 0122 and 0123, bench/bench_follow_ups.py).
IN_CONVERSATION_SHARE = 0.5

# HYBRID (documents for Search, passages for Ask): the keyword ranking's share of a linear fusion
# of the two rankings' scaled scores, per full-text engine (ADR 0104, measured on both question
# sets of bench/quality).
# PostgreSQL's ts_rank weighs every word alike (no inverse document frequency), so its scores
# say less than FTS5's BM25 about a long question in a user's own words.
KEYWORD_SHARE = {"sqlite": 0.35, "postgresql": 0.2}


def _hybrid(
    dialect: str, keyword: list[tuple[uuid.UUID, float]], semantic: list[tuple[uuid.UUID, float]]
) -> list[tuple[uuid.UUID, float]]:
    """HYBRID's fusion of a keyword and a semantic ranking, (id, score) best first each."""
    share = KEYWORD_SHARE[dialect]
    return linear_fusion([keyword, semantic], weights=[share, 1.0 - share])


# -- the query's embedding ------------------------------------------------------------------

_QUERY_VECTORS: OrderedDict[tuple[str, str, str], vector_index.Floats] = OrderedDict()
_QUERY_VECTORS_KEPT = 512
_MODEL_DOWN_UNTIL: dict[tuple[str, str], float] = {}


async def embed_query(deps: ServiceDeps, text: str) -> vector_index.Floats:
    """The query's normalised vector from the embedding model the passages were embedded with.

    Kept for the process's last 512 queries (the next page of a search does not ask again).
    ModelUnavailable when the model fails or takes longer than SEARCH_EMBED_TIMEOUT_SECONDS,
    and for SEARCH_MODEL_RETRY_SECONDS after such a failure."""
    settings = deps.settings
    model, host = settings.embed_model, settings.ollama_host
    key = (host, model, embedded_text(text))
    found = _QUERY_VECTORS.get(key)
    if found is not None:
        _QUERY_VECTORS.move_to_end(key)
        return found
    if time.monotonic() < _MODEL_DOWN_UNTIL.get((host, model), 0.0):
        raise ModelUnavailable(f"The embedding model {model!r} failed moments ago.")
    timeout = settings.search_embed_timeout_seconds
    config = llm.LLMConfig(
        host=host,
        timeout_seconds=timeout,
        connect_timeout_seconds=min(timeout, settings.llm_connect_timeout_seconds),
        max_retries=0,
    )
    try:
        async with asyncio.timeout(timeout):
            [vector] = await llm.embed([key[2]], model=model, config=config)
    except (ModelUnavailable, llm.LLMError, TimeoutError) as exc:
        _MODEL_DOWN_UNTIL[(host, model)] = time.monotonic() + settings.search_model_retry_seconds
        if isinstance(exc, ModelUnavailable):
            raise
        raise ModelUnavailable(f"The embedding model {model!r} could not embed the query.") from exc
    _MODEL_DOWN_UNTIL.pop((host, model), None)
    normalised = vector_index.normalised(vector)
    _QUERY_VECTORS[key] = normalised
    while len(_QUERY_VECTORS) > _QUERY_VECTORS_KEPT:
        _QUERY_VECTORS.popitem(last=False)
    return normalised


# -- scope ----------------------------------------------------------------------------------


def allowed_documents(
    workspace_id: uuid.UUID,
    *,
    collection_ids: Sequence[uuid.UUID] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    tags: Sequence[str] | None = None,
) -> Select[Any] | None:
    """A subquery of the workspace's documents that pass the filters (any of the collections,
    any of the documents, any of the tags; the kinds combined with AND), or None without any
    filter. An empty list is no filter; an id of another workspace matches nothing."""
    cleaned_tags = [
        clean_filter_text(t, field="filter.tags", max_length=MAX_TAG)
        for t in tags or ()
        if t.strip()
    ]
    if not collection_ids and not document_ids and not cleaned_tags:
        return None
    stmt = select(Document.id).where(Document.workspace_id == workspace_id)
    if collection_ids:
        stmt = stmt.where(Document.collection_id.in_(list(collection_ids)))
    if document_ids:
        stmt = stmt.where(Document.id.in_(list(document_ids)))
    if cleaned_tags:
        tagged = select(DocumentTag.document_id).where(DocumentTag.tag.in_(cleaned_tags))
        stmt = stmt.where(Document.id.in_(tagged))
    return stmt


async def allowed_document_ids(session: AsyncSession, documents: Select[Any]) -> bytes:
    """The ids `documents` selects, 16 bytes each, one after another, read as one value: a
    collection's thousand ids as rows cost about 1.5 ms more of the API's CPU a search (ADR
    0152). SQLite keeps a uuid as 32 hex digits."""
    ids = documents.subquery()
    if session.get_bind().dialect.name == "postgresql":
        packed = func.string_agg(
            func.uuid_send(ids.c[0]), literal(b"", LargeBinary), type_=LargeBinary
        )
        value = (await session.execute(select(packed))).scalar_one()
        return bytes(value or b"")
    hexes = func.group_concat(ids.c[0].cast(String), "")
    return bytes.fromhex((await session.execute(select(hexes))).scalar_one() or "")


# -- semantic ranking -----------------------------------------------------------------------


async def semantic_hits(
    deps: ServiceDeps,
    session: AsyncSession,
    workspace_id: uuid.UUID,
    query: vector_index.Floats,
    documents: Select[Any] | None,
    *,
    limit: int,
    per_document: bool,
) -> list[vector_index.VectorHit]:
    """The workspace's best passages by cosine similarity (or each best document's best
    passage), among `documents` when given. The exact scan of the process's cache when the
    workspace fits it (ADR 0061); else pgvector's index where the database has one for the
    query's dimension (ADR 0114), else the vectors streamed from the database.
    SEARCH_VECTOR_INDEX `hnsw` takes the index whenever there is one, `exact` never."""
    settings = deps.settings
    model = settings.embed_model
    choice = settings.search_vector_index
    indexed = choice != "exact" and len(query) in await hnsw_index.indexed_dimensions(session)

    async def through_index() -> list[vector_index.VectorHit]:
        return await hnsw_index.scan(
            session,
            workspace_id,
            model,
            query,
            documents=documents,
            limit=limit,
            per_document=per_document,
        )

    if indexed and choice == "hnsw":
        return await through_index()
    cache = vector_index.vector_cache(settings.search_vector_cache_mb * 1024 * 1024)
    vectors, state = await cache.vectors(session, settings.database_url, workspace_id, model)
    if state is None:
        return []
    if vectors is None:  # too many for the cache: the index, or streamed with the filter in SQL
        if indexed:
            return await through_index()
        return await vector_index.stream_scan(
            session,
            workspace_id,
            model,
            state,
            query,
            documents=documents,
            limit=limit,
            per_document=per_document,
        )
    if vectors.dimension != len(query):
        return []
    allowed = None
    if documents is not None:
        allowed = vectors.allowed_rows(await allowed_document_ids(session, documents))
    return await vector_index.scan(
        vectors,
        query,
        allowed=allowed,
        limit=limit,
        per_document=per_document,
        partitioning=cache.partitioning_for(vectors, _partitioning(settings)),
    )


def _partitioning(settings: Settings) -> vector_index.Partitioning | None:
    """Whether and how a large workspace's rankings go through a partitioned index (ADR 0147):
    not when SEARCH_VECTOR_INDEX asks for exact rankings or the minimum is 0."""
    if settings.search_vector_index == "exact" or settings.search_partitions_min_passages == 0:
        return None
    return vector_index.Partitioning(
        settings.search_partitions_min_passages, settings.search_partitions_probed
    )


# -- passages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PageRead:
    """One statement reading chunks by their keys with their documents: `plain`, and `marked`
    with the chunks' matched bounds as a column (PostgreSQL; see
    `keyword_index.matched_bounds_column`)."""

    plain: Select[Any]
    marked: Select[Any]

    @classmethod
    def of(cls, *columns: Any, with_collection: bool = False) -> _PageRead:
        plain = select(
            Chunk.id.label("chunk_id"), Chunk.workspace_id.label("chunk_workspace"), *columns
        ).join_from(Chunk, Document, Document.id == Chunk.document_id)
        if with_collection:
            plain = plain.add_columns(*COLLECTION_OF_DOCUMENT).outerjoin(
                Collection, Collection.id == Document.collection_id
            )
        plain = plain.where(in_ids(Chunk.id))
        return cls(plain, plain.add_columns(keyword_index.matched_bounds_column()))


async def _read_page(
    session: AsyncSession,
    read: _PageRead,
    workspace_id: uuid.UUID,
    terms: list[str],
    chunk_ids: Sequence[uuid.UUID],
) -> tuple[dict[uuid.UUID, Any], dict[uuid.UUID, list[tuple[int, int]]]]:
    """The rows of `read` for `chunk_ids` by chunk id, and each chunk's matched ranges of
    `terms`: on PostgreSQL from the same statement, on SQLite from FTS5's `highlight()`, which
    needs a MATCH of its own."""
    marked_here = bool(terms) and session.get_bind().dialect.name == "postgresql"
    params: dict[str, Any] = {"ids": list(chunk_ids)}
    if marked_here:
        params |= keyword_index.highlight_values(terms)
    rows: dict[uuid.UUID, Any] = {}
    matches: dict[uuid.UUID, list[tuple[int, int]]] = {}
    for row in await session.execute(read.marked if marked_here else read.plain, params):
        # The ids come from rankings scoped to the workspace; the check here is a second one.
        # It is not a SQL condition because SQLite would then read every chunk of the workspace
        # through its workspace index instead of the 25 by their keys (66 ms against 0.2 ms at
        # 50,000).
        if row.chunk_workspace != workspace_id:
            continue
        rows[row.chunk_id] = row
        if marked_here and (ranges := keyword_index.ranges_of(row)):
            matches[row.chunk_id] = ranges
    if not marked_here:
        matches = await keyword_index.highlights(session, terms, chunk_ids)
    return rows, matches


# Ask's passages, and a page of search results (each passage with its whole document).
_PASSAGES = _PageRead.of(
    Chunk.document_id,
    Chunk.position,
    Chunk.text,
    Chunk.heading_path,
    Chunk.char_start,
    Chunk.char_end,
    Document.collection_id,
    Document.title,
)
_HITS = _PageRead.of(
    *DOCUMENT_COLUMNS,
    Chunk.position,
    Chunk.text,
    Chunk.heading_path,
    Chunk.char_start,
    Chunk.char_end,
    with_collection=True,
)


def _candidates(limit: int) -> int:
    return max(limit, MIN_PASSAGE_CANDIDATES)


async def _rank_passages(
    deps: ServiceDeps,
    session: AsyncSession,
    workspace_id: uuid.UUID,
    mode: SearchMode,
    keyword: list[keyword_index.KeywordHit],
    vector: vector_index.Floats | None,
    documents: Select[Any] | None,
    depth: int,
) -> tuple[list[tuple[uuid.UUID, float]], list[vector_index.VectorHit]]:
    """(chunk id, score) best first, and the semantic hits it used."""
    semantic: list[vector_index.VectorHit] = []
    if vector is not None:
        semantic = await semantic_hits(
            deps, session, workspace_id, vector, documents, limit=depth, per_document=False
        )
    if mode is SearchMode.KEYWORD or vector is None:
        return [(hit.chunk_id, hit.score) for hit in keyword], semantic
    if mode is SearchMode.SEMANTIC:
        return [(hit.chunk_id, hit.cosine) for hit in semantic], semantic
    fused = _hybrid(
        session.get_bind().dialect.name,
        [(h.chunk_id, h.score) for h in keyword],
        [(h.chunk_id, h.cosine) for h in semantic],
    )
    return fused, semantic


@dataclass(frozen=True)
class _Ranking:
    """One query's passages, best first, with what Retrieval reports of them."""

    ranked: list[tuple[uuid.UUID, float]]  # (chunk id, score)
    cosines: dict[uuid.UUID, float]
    degraded: bool
    top_cosine: float | None


async def _rank(
    deps: ServiceDeps,
    session: AsyncSession,
    workspace_id: uuid.UUID,
    text: str,
    mode: SearchMode,
    documents: Select[Any] | None,
    depth: int,
    embedding: _QueryVector,
) -> _Ranking:
    """The `depth` best passages for `text`, the caller's membership already checked."""
    keyword: list[keyword_index.KeywordHit] = []
    if mode is not SearchMode.SEMANTIC:
        keyword = await keyword_index.best_chunks(
            session, workspace_id, query_terms(text), documents=documents, limit=depth
        )
    vector, degraded = await embedding.result()
    ranked, semantic = await _rank_passages(
        deps, session, workspace_id, mode, keyword, vector, documents, depth
    )
    return _Ranking(
        ranked=ranked,
        cosines={hit.chunk_id: hit.cosine for hit in semantic},
        degraded=degraded,
        top_cosine=semantic[0].cosine if semantic else None,
    )


async def _passages(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    ranked: list[tuple[uuid.UUID, float]],
    terms: list[str],
    cosines: dict[uuid.UUID, float],
) -> list[Passage]:
    """The ranked passages with their text and their matches of `terms`, in order; a passage
    deleted since it was ranked is left out."""
    rows, matches = await _read_page(
        session, _PASSAGES, workspace_id, terms, [chunk_id for chunk_id, _ in ranked]
    )
    return [
        Passage(
            chunk_id=chunk_id,
            document_id=row.document_id,
            collection_id=row.collection_id,
            document_title=row.title,
            text=row.text,
            heading_path=[str(h) for h in row.heading_path or []],
            char_start=row.char_start,
            char_end=row.char_end,
            score=float(score),
            cosine=cosines.get(chunk_id),
            matches=matches.get(chunk_id, []),
            position=row.position,
        )
        for chunk_id, score in ranked
        if (row := rows.get(chunk_id)) is not None
    ]


async def _retrieve(
    deps: ServiceDeps,
    user_id: uuid.UUID,
    workspace_id: uuid.UUID,
    texts: Sequence[str],
    mode: SearchMode,
    documents: Select[Any] | None,
    limit: int,
    weights: Sequence[float] = (1.0,),
) -> tuple[list[_Ranking], list[Passage]]:
    """The caller's membership checked once, then each of `texts` ranked, all at once (the first
    in the read session, each other in a session of its own), their rankings fused by `weights`
    when there are several, and the page's passages read once, with the matches of the last
    text's words and each passage's cosine to the first text that found it."""
    limit = max(0, min(limit, MAX_PASSAGES))
    depth = _candidates(limit) if mode is SearchMode.HYBRID else limit
    vectors = [_QueryVector(deps, text, mode) for text in texts]

    async def rank(session: AsyncSession, text: str, vector: _QueryVector) -> _Ranking:
        return await _rank(deps, session, workspace_id, text, mode, documents, depth, vector)

    async def in_own_session(text: str, vector: _QueryVector) -> _Ranking:
        async with deps.db() as own:
            return await rank(own, text, vector)

    try:
        async with deps.read() as session:
            await require_role(session, user_id, workspace_id, Role.VIEWER)
            rankings = list(
                await asyncio.gather(
                    rank(session, texts[0], vectors[0]),
                    *(in_own_session(t, v) for t, v in zip(texts[1:], vectors[1:], strict=True)),
                )
            )
            if len(rankings) == 1:
                page = rankings[0].ranked[:limit]
            else:
                page = linear_fusion([r.ranked[:limit] for r in rankings], weights=weights)[:limit]
            cosines: dict[uuid.UUID, float] = {}
            for ranking in reversed(rankings):
                cosines |= ranking.cosines
            passages = await _passages(session, workspace_id, page, query_terms(texts[-1]), cosines)
    finally:
        for vector in vectors:
            vector.close()
    return rankings, passages


async def retrieve_passages(
    deps: ServiceDeps,
    *,
    workspace_id: uuid.UUID,
    query: str,
    mode: SearchMode = SearchMode.HYBRID,
    collection_ids: Sequence[uuid.UUID] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    tags: Sequence[str] | None = None,
    limit: int = 20,
) -> Retrieval:
    """The workspace's best `limit` passages (at most 100) for `query`.

    The caller must be a member of the workspace (any role): NOT_FOUND otherwise, as for a
    missing workspace. Filters combine as in `allowed_documents`. An empty or blank query is
    Invalid(REQUIRED, field "query"). SEMANTIC with the embedding model unavailable raises
    ModelUnavailable; HYBRID then answers with keyword passages and `degraded=True`.
    """
    user_id = deps.principal.require_user()
    text = require_query(query)
    documents = allowed_documents(
        workspace_id, collection_ids=collection_ids, document_ids=document_ids, tags=tags
    )
    [ranking], passages = await _retrieve(
        deps, user_id, workspace_id, [text], mode, documents, limit
    )
    return Retrieval(passages=passages, degraded=ranking.degraded, top_cosine=ranking.top_cosine)


def in_conversation_query(question: str, context: Sequence[str]) -> str:
    """The query of a question with the earlier questions it leans on (newest first): the
    question first, so that long questions before it can neither push its words out of the
    keyword terms (MAX_QUERY_TERMS) nor its text past the embedding model's window."""
    return "\n".join([question, *context])


async def retrieve_in_conversation(
    deps: ServiceDeps,
    *,
    workspace_id: uuid.UUID,
    question: str,
    context: Sequence[str] = (),
    collection_ids: Sequence[uuid.UUID] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    limit: int = 20,
) -> Retrieval:
    """Ask's retrieval (HYBRID) of a question of a conversation, given the earlier questions
    it leans on, newest first (`answers.question_context` picks them). Without any (the
    conversation's first question) it is `retrieve_passages` of the question. Else the question
    is ranked alone and together with them (`in_conversation_query`), at once, and the two
    rankings are fused (IN_CONVERSATION_SHARE for the pair): a follow-up finds its subject, a
    new subject is still found by its own words. The fused page's passages are read once, with
    the matches of the pair's words (the question's first). `top_cosine` is the question's
    alone, `context_cosine` the pair's."""
    if not context:
        return await retrieve_passages(
            deps,
            workspace_id=workspace_id,
            query=question,
            mode=SearchMode.HYBRID,
            collection_ids=collection_ids,
            document_ids=document_ids,
            limit=limit,
        )
    user_id = deps.principal.require_user()
    text = require_query(question)
    documents = allowed_documents(
        workspace_id, collection_ids=collection_ids, document_ids=document_ids
    )
    [alone, together], passages = await _retrieve(
        deps,
        user_id,
        workspace_id,
        [text, in_conversation_query(text, context)],
        SearchMode.HYBRID,
        documents,
        limit,
        weights=[1.0 - IN_CONVERSATION_SHARE, IN_CONVERSATION_SHARE],
    )
    return Retrieval(
        passages=passages,
        degraded=alone.degraded or together.degraded,
        top_cosine=alone.top_cosine,
        context_cosine=together.top_cosine,
    )


class _QueryVector:
    """The query's embedding, asked for at once and awaited where it is needed, so the model's
    time overlaps the membership check and the keyword ranking (a KEYWORD search asks for
    none). `close()` drops a request whose answer is no longer wanted."""

    def __init__(self, deps: ServiceDeps, text: str, mode: SearchMode) -> None:
        self._mode = mode
        self._task = (
            None if mode is SearchMode.KEYWORD else asyncio.ensure_future(embed_query(deps, text))
        )

    async def result(self) -> tuple[vector_index.Floats | None, bool]:
        """The vector (None without one), and whether HYBRID had to go without it; SEMANTIC
        without it raises ModelUnavailable."""
        if self._task is None:
            return None, False
        try:
            return await self._task, False
        except ModelUnavailable:
            if self._mode is SearchMode.SEMANTIC:
                raise
            return None, True

    def close(self) -> None:
        if self._task is None:
            return
        if not self._task.done():
            self._task.cancel()
        elif not self._task.cancelled():
            self._task.exception()  # retrieved: an unused failure is not logged as lost


# -- search (screen 8) ----------------------------------------------------------------------


def _list_name(
    workspace_id: uuid.UUID,
    text: str,
    mode: SearchMode,
    collection_ids: Sequence[uuid.UUID],
    tags: Sequence[str],
) -> str:
    """The name of one search's result list, in its cursors: a digest of everything that
    decides the ranking, so a cursor of another query, mode or filter is refused."""
    identity = json.dumps(
        [
            str(workspace_id),
            " ".join(text.split()),
            mode.value,
            sorted(str(c) for c in collection_ids),
            sorted(t.strip() for t in tags if t.strip()),
        ]
    )
    return "search." + hashlib.sha256(identity.encode()).hexdigest()[:24]


def _named(name: str, degraded: bool) -> str:
    """A degraded HYBRID ranking (keyword alone) is another list than the full one."""
    return name + ".keyword-only" if degraded else name


def _position_after(name: str, cursor: str | None) -> tuple[int, bool]:
    """Where the page after `cursor` starts, and whether the cursor came from a degraded
    ranking; INVALID_CURSOR for a cursor of any other list."""
    try:
        return offset_after(name, cursor), False
    except Invalid as not_full:
        try:
            return offset_after(_named(name, True), cursor), True
        except Invalid:
            raise not_full from None


# Related documents by their keys, with their collections (the tab shows their names).
_RELATED_OF_IDS = (
    select(*DOCUMENT_COLUMNS, *COLLECTION_OF_DOCUMENT)
    .outerjoin(Collection, Collection.id == Document.collection_id)
    .where(in_ids(Document.id))
)


def _collection_of(row: Any) -> CollectionView | None:
    """The collection read beside a document by an outer join (COLLECTION_OF_DOCUMENT)."""
    return collection_of_document(row) if row._mapping["collection_name"] is not None else None


@dataclass(frozen=True)
class _Shown:
    """A result of the page: its document, the passage it shows and that passage's cosine."""

    document_id: uuid.UUID
    chunk_id: uuid.UUID
    score: float
    cosine: float | None


async def search(
    deps: ServiceDeps,
    *,
    workspace_id: uuid.UUID,
    query: str,
    mode: SearchMode = SearchMode.HYBRID,
    collection_ids: Sequence[uuid.UUID] | None = None,
    tags: Sequence[str] | None = None,
    first: int | None = None,
    after: str | None = None,
) -> SearchResultsView:
    """A page of the workspace's documents that best answer `query`, each with its best
    passage and that passage's matched ranges.

    The ranking covers the best SEARCH_MAX_RESULTS documents; it is computed afresh for each
    page, and a cursor is a position in it, valid only for the same query, mode and filters
    (INVALID_CURSOR otherwise). KEYWORD lists the documents with any of the query's words;
    SEMANTIC and HYBRID list every embedded document, nearest first. Quoted phrases narrow
    every mode: a document without a passage holding each of them is not listed.
    """
    user_id = deps.principal.require_user()
    text = require_query(query)
    page = PageRequest.of(first, after)
    name = _list_name(workspace_id, text, mode, collection_ids or (), tags or ())
    offset, after_degraded = _position_after(name, page.after)
    terms = query_terms(text)
    documents = allowed_documents(workspace_id, collection_ids=collection_ids, tags=tags)
    depth = deps.settings.search_max_results
    embedding = _QueryVector(deps, text, mode)
    try:
        async with deps.read() as session:
            await require_role(session, user_id, workspace_id, Role.VIEWER)
            keyword: list[keyword_index.KeywordHit] = []
            semantic: list[vector_index.VectorHit] = []
            if mode is not SearchMode.SEMANTIC:
                keyword = await keyword_index.best_documents(
                    session,
                    workspace_id,
                    terms,
                    documents=documents,
                    limit=depth,
                    ranked_alone=mode is SearchMode.KEYWORD,
                )
            vector, degraded = await embedding.result()
            if page.after is not None and after_degraded != degraded:
                # The model came or went between pages: the ranking changed under the cursor.
                raise invalid_cursor()
            if vector is not None:
                with_phrases = keyword_index.documents_with_phrases(
                    session, workspace_id, terms, documents
                )
                semantic = await semantic_hits(
                    deps,
                    session,
                    workspace_id,
                    vector,
                    documents if with_phrases is None else with_phrases,
                    limit=depth,
                    per_document=True,
                )
            dialect = session.get_bind().dialect.name
            ranking = _rank_documents(keyword, semantic, mode, vector is not None, dialect)
            ranking = ranking[:depth]
            close_match = None
            if vector is not None:
                top = semantic[0].cosine if semantic else None
                close_match = close_enough(top, deps.settings.ask_min_cosine)
            shown = await _shown(
                session,
                workspace_id,
                terms,
                ranking[offset : offset + page.first],
                keyword,
                semantic,
            )
            hits = await _hits(session, workspace_id, terms, shown)
    finally:
        embedding.close()
    edges = [
        Edge(cursor=offset_cursor(_named(name, degraded), offset + n), node=hit)
        for n, hit in enumerate(hits)
    ]
    return SearchResultsView(
        page=Page(
            edges=edges,
            total_count=len(ranking),
            has_next_page=len(ranking) > offset + page.first,
            has_previous_page=page.after is not None,
        ),
        degraded=degraded,
        close_match=close_match,
    )


def close_enough(top_cosine: float | None, min_cosine: float) -> bool:
    """Whether anything in scope is close to the query by meaning: the best passage's cosine
    (None: nothing embedded in scope) is at least `min_cosine`. Ask abstains below it (ADR
    0072); Search says so (`closeMatch`), since ranking by meaning lists the nearest documents
    however far they are."""
    return top_cosine is not None and top_cosine >= min_cosine


def _rank_documents(
    keyword: list[keyword_index.KeywordHit],
    semantic: list[vector_index.VectorHit],
    mode: SearchMode,
    has_vector: bool,
    dialect: str,
) -> list[tuple[uuid.UUID, float]]:
    """The documents (id, score), best first. Which passage each shows is chosen for the page
    alone (`_shown`): the ranking is only counted and cut beyond it."""
    if mode is SearchMode.KEYWORD or not has_vector:
        return [(h.document_id, h.score) for h in keyword]
    if mode is SearchMode.SEMANTIC:
        return [(h.document_id, h.cosine) for h in semantic]
    return _hybrid(
        dialect,
        [(h.document_id, h.score) for h in keyword],
        [(h.document_id, h.cosine) for h in semantic],
    )


async def _shown(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    terms: list[str],
    page: list[tuple[uuid.UUID, float]],
    keyword: list[keyword_index.KeywordHit],
    semantic: list[vector_index.VectorHit],
) -> list[_Shown]:
    """The page's documents, each with the passage it shows: for a document the keyword ranking
    found, its best passage by text (whose words are highlighted), or its best-ranked one when
    only its headings match; else its nearest passage by meaning. A passage's cosine is given
    when it is the one the semantic ranking found."""
    by_keyword = {h.document_id: h.chunk_id for h in keyword}
    nearest = {h.document_id: h for h in semantic}
    wanted = [document_id for document_id, _ in page if document_id in by_keyword]
    by_text = await keyword_index.text_passages(session, workspace_id, terms, keyword, wanted)
    shown = []
    for document_id, score in page:
        chunk_id = by_text.get(document_id) or by_keyword.get(document_id)
        hit = nearest.get(document_id)
        if chunk_id is None:
            assert hit is not None  # ranked by meaning alone
            chunk_id = hit.chunk_id
        cosine = hit.cosine if hit is not None and hit.chunk_id == chunk_id else None
        shown.append(_Shown(document_id, chunk_id, score, cosine))
    return shown


async def _hits(
    session: AsyncSession, workspace_id: uuid.UUID, terms: list[str], shown: list[_Shown]
) -> list[SearchHitView]:
    if not shown:
        return []
    rows, matches = await _read_page(
        session, _HITS, workspace_id, terms, [r.chunk_id for r in shown]
    )
    hits = []
    for r in shown:
        row = rows.get(r.chunk_id)
        if row is None:  # deleted since it was ranked
            continue
        column = row._mapping  # a column by key, not by attribute (ADR 0139)
        hits.append(
            SearchHitView(
                document=view_of_row(DocumentView, row),
                collection=_collection_of(row),
                score=r.score,
                passage=PassageView(
                    chunk_id=r.chunk_id,
                    position=column["position"],
                    text=column["text"],
                    heading_path=[str(h) for h in column["heading_path"] or []],
                    char_start=column["char_start"],
                    char_end=column["char_end"],
                    matches=matches.get(r.chunk_id, []),
                    cosine=r.cosine,
                ),
            )
        )
    return hits


# -- related documents (screen 7) -----------------------------------------------------------


# Which of the ids the caller may see, each with its workspace and that workspace's vector state
# for the model: the cache needs the state first, and one statement reads both.
_VISIBLE_DOCUMENTS_AND_STATE = (
    select(Document.id, Document.workspace_id, VectorVersion.version, VectorVersion.deletions)
    .outerjoin(
        VectorVersion,
        (VectorVersion.workspace_id == Document.workspace_id)
        & (VectorVersion.model == bindparam("model")),
    )
    .where(VIEWER_SEES_DOCUMENT_IDS)
)


async def related_documents(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[list[RelatedDocumentView]]:
    """For each document, the RELATED_DOCUMENTS documents of its workspace nearest to it: the
    cosine similarity of the mean vectors of their passages (with the embedding model in the
    settings), best first. Empty for a document without vectors or one the caller may not see.

    Computed as semantic search ranks (SEARCH_VECTOR_INDEX): from the process's cache when the
    workspace fits it; else from the documents' own vectors (ADR 0116), by pgvector's index
    where there is one, else read block by block. `hnsw` takes the index whenever there is one."""
    user_id = deps.principal.require_user()
    settings = deps.settings
    model = settings.embed_model
    choice = settings.search_vector_index
    cache = vector_index.vector_cache(settings.search_vector_cache_mb * 1024 * 1024)
    found: dict[uuid.UUID, list[tuple[uuid.UUID, float]]] = {}
    async with deps.read() as session:
        visible = (
            await session.execute(
                _VISIBLE_DOCUMENTS_AND_STATE, {"viewer": user_id, "ids": ids, "model": model}
            )
        ).all()
        by_workspace: dict[uuid.UUID, list[uuid.UUID]] = {}
        states: dict[uuid.UUID, vector_index.IndexState | None] = {}
        for document_id, workspace_id, version, deletions in visible:
            by_workspace.setdefault(workspace_id, []).append(document_id)
            states[workspace_id] = (
                None if version is None else vector_index.IndexState(version, deletions)
            )
        # The database's indexes are looked up only when they may be used: a workspace the
        # cache holds costs no statement more under `auto`.
        indexed = (
            await hnsw_index.indexed_dimensions(session, documents=True)
            if choice == "hnsw"
            else frozenset()
        )
        for workspace_id, document_ids in by_workspace.items():
            vectors = None
            if not indexed:
                vectors, state = await cache.vectors_at(
                    session, settings.database_url, workspace_id, model, states[workspace_id]
                )
                if state is None:
                    continue
                if vectors is None and choice == "auto":
                    indexed = await hnsw_index.indexed_dimensions(session, documents=True)
            if vectors is None:  # too large for the cache, or SEARCH_VECTOR_INDEX=hnsw
                if indexed:
                    for document_id in document_ids:
                        found[document_id] = await hnsw_index.related(
                            session, document_id, model, indexed, RELATED_DOCUMENTS
                        )
                else:
                    found.update(
                        await document_vectors.nearest_streamed(
                            session, workspace_id, model, document_ids, RELATED_DOCUMENTS
                        )
                    )
                continue
            for document_id in document_ids:
                nearest = await vector_index.nearest_documents(
                    vectors, document_id, RELATED_DOCUMENTS
                )
                if nearest is not None:
                    found[document_id] = nearest
        related_ids = {d for pairs in found.values() for d, _ in pairs}
        rows = (
            (await session.execute(_RELATED_OF_IDS, {"ids": list(related_ids)})).all()
            if related_ids
            else []
        )
        views = {row.id: (view_of_row(DocumentView, row), _collection_of(row)) for row in rows}
    return [
        [
            RelatedDocumentView(document=views[d][0], collection=views[d][1], score=score)
            for d, score in found.get(i, [])
            if d in views
        ]
        for i in ids
    ]
