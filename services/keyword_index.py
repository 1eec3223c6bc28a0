"""Keyword retrieval over the full-text index of chunks (ADR 0050 built it; ADR 0062 queries it).

One statement per question, per database: PostgreSQL ranks with `ts_rank` over the GIN-indexed
`tsvector`; SQLite ranks with FTS5's `bm25()`. The workspace and any filter (a subquery of the
allowed document ids) are conditions of that statement, never applied to its result. Scores
are returned "higher is better" on both (FTS5's bm25 is negated).

Highlights come from the index's own matching: FTS5 `highlight()` marks every matched word of a
passage and `search_text.marked_ranges` turns the marks into offsets; on PostgreSQL the matched
words' positions in `search_vector` are looked up in `chunk_word_offsets` (ADR 0141), which
gives the ranges `ts_headline` with HighlightAll would mark, without parsing the text again.
"""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    Float,
    Integer,
    Select,
    Text,
    Uuid,
    any_,
    bindparam,
    case,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause, ColumnElement

from base import compact_json
from base.models.search import POSTGRESQL_TEXT_CONFIG
from services.access import in_ids
from services.search_text import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    add_span,
    fts5_match,
    fts5_match_rarer_first,
    marked_ranges,
    phrases_of,
    tsquery_text,
)

_search = table(
    "chunk_search",
    column("id", Integer),
    column("chunk_id", Uuid),
    column("document_id", Uuid),
    column("workspace_id", Uuid),
    column("search_vector", Text),
)
_fts = table("chunk_fts", column("rowid", Integer), column("headings", Text), column("text", Text))
_chunks = table("chunks", column("id", Uuid), column("text", Text))
_FTS: ColumnClause[Any] = literal_column("chunk_fts")
_CONFIG: ColumnClause[Any] = literal_column(f"'{POSTGRESQL_TEXT_CONFIG}'::regconfig")

# (headings, text): a word of the headings a passage sits under counts twice a word of its text,
# as FTS5 bm25()'s column weights and as ts_rank's label weights (headings are A, text B). On
# PostgreSQL 2:1 in place of ts_rank's default 2.5:1 found an answering page first for 3 more of
# 107 questions in KEYWORD, HYBRID unchanged (ADR 0106; measured in docs/testing.md).
HEADING_WEIGHTS = (2.0, 1.0)
# ts_rank normalisation 0: no length normalisation. Passages are already of bounded length
# (ADR 0032); dividing by 1 + log(length) (1) or by the length (2) ranked worse on the question
# set (docs/testing.md, "Search quality").
TS_RANK_NORMALIZATION = 0


# A word that at least this share of the passages hold is common: while the query has a rarer
# word, only passages holding a rarer word are ranked (ts_rank scoring every passage that holds
# a common word cost most of a keyword search). On both question sets 5% ranked better than
# matching every word, and better than 2, 3, 7 and 10% (ADR 0119).
COMMON_WORD_SHARE = 0.05
# Below this many passages (the planner's estimate) no word is common: shares of a small table
# say little, and ranking every match is cheap there.
COMMON_WORDS_MIN_PASSAGES = 1_000

# The query's words whose lexemes are not all common, OR-ed into a tsquery (NULL when none is
# left). The common lexemes come from the planner's statistics of the index: ANALYZE keeps a
# tsvector column's most common lexemes and the share of rows holding each, in pg_stats; until
# it has run (or after a TRUNCATE, which makes the row estimate unknown) no lexeme is common.
_UNCOMMON_WORDS = (
    text(
        f"""
    SELECT to_tsquery('{POSTGRESQL_TEXT_CONFIG}', string_agg(word, ' | '))
    FROM unnest(CAST(:words AS text[])) AS word
    WHERE NOT tsvector_to_array(to_tsvector('{POSTGRESQL_TEXT_CONFIG}', word)) <@ (
        SELECT coalesce(array_agg(common.lexeme), '{{}}')
        FROM pg_stats AS s,
            unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)
                AS common(lexeme, share)
        WHERE s.schemaname = current_schema() AND s.tablename = 'chunk_search'
            AND s.attname = 'search_vector' AND common.share >= {COMMON_WORD_SHARE}
            AND (SELECT reltuples FROM pg_class WHERE oid = to_regclass('chunk_search'))
                >= {COMMON_WORDS_MIN_PASSAGES}
    )
    """
    )
    .bindparams(bindparam("words", type_=ARRAY(Text)))
    .columns(column("uncommon", Text))
)


# SQLite's counterpart, for a keyword ranking shown alone (ADR 0119's amendment of 2026-12-06):
# the query's words (the JSON array `words`) that at least COMMON_WORD_SHARE of the passages
# hold. FTS5 keeps no statistics to read that from, so each word's passages are counted, but
# only up to that share: a common word costs the cap's rows of its list, not all of them (0.16
# ms for "python", in 10,837 of 50,000 passages). FTS5's docsize table has a small row a passage.
_COMMON_WORDS_FTS5 = text(
    f"""
    WITH cap(n) AS MATERIALIZED (
        SELECT max(1, CAST(count(*) * {COMMON_WORD_SHARE} AS INTEGER)) FROM chunk_fts_docsize
        HAVING count(*) >= {COMMON_WORDS_MIN_PASSAGES}
    )
    SELECT word.value FROM json_each(:words) AS word, cap
    WHERE (
        SELECT count(*) FROM (
            SELECT 1 FROM chunk_fts WHERE chunk_fts MATCH '"' || word.value || '"'
            LIMIT (SELECT n FROM cap)
        )
    ) >= cap.n
    """
).columns(column("value", Text))


class QueryStyle(enum.StrEnum):
    """How the words become a PostgreSQL tsquery: ANY word (OR, the default) or websearch
    syntax (every word required, quotes as phrases); kept to measure one against the other."""

    ANY = "ANY"
    WEBSEARCH = "WEBSEARCH"


class KeywordHit(NamedTuple):
    """A ranked passage (a tuple: a ranking makes hundreds, ADR 0153)."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    score: float
    # The document's best chunk by its text alone, on SQLite (see text_passages); None when
    # only the document's headings match, and on PostgreSQL.
    text_chunk_id: uuid.UUID | None = None


def _dialect(session: AsyncSession) -> str:
    return str(session.get_bind().dialect.name)


def _tsquery(style: QueryStyle) -> Any:
    """The tsquery of the parameter `tsq` (`tsquery_text(terms)`) or, in websearch style, of
    `raw`, as a scalar subquery, which PostgreSQL computes once per statement (an InitPlan) and
    can give the GIN index. As a function call or a joined subquery it is folded to a constant
    only in a plan made for the given value; asyncpg prepares each statement, and after five
    runs PostgreSQL may keep a generic plan, which parsed the tsquery again for every row: a
    common-word search took 122 ms instead of 27 ms (ADR 0096)."""
    if style is QueryStyle.WEBSEARCH:
        text_ = func.translate(bindparam("raw", type_=Text), "./", "  ")
        query = func.websearch_to_tsquery(_CONFIG, text_)
    else:
        query = func.to_tsquery(_CONFIG, bindparam("tsq", type_=Text))
    return select(query).scalar_subquery()


def _values(workspace_id: uuid.UUID, terms: list[str], raw: str = "") -> dict[str, Any]:
    """The named parameters of the ranking statements (each statement takes the ones it has)."""
    return {
        "workspace_id": workspace_id,
        "tsq": tsquery_text(terms),
        "words": terms,
        "raw": raw,
        "match": fts5_match(terms),
    }


def _rarer_words_first(terms: list[str], style: QueryStyle) -> bool:
    """Whether a passage must hold a word that is not common to be ranked (ADR 0119): for the
    OR of words, not for phrases or the websearch style."""
    return style is QueryStyle.ANY and not phrases_of(terms)


async def _fts5_match(
    session: AsyncSession, terms: list[str], style: QueryStyle, ranked_alone: bool
) -> tuple[str, int]:
    """SQLite: the MATCH expression of the ranking, and how many times it names each term (its
    scores are divided by that). For a ranking shown alone (Search's KEYWORD mode), while the
    query has a rarer word, only the passages holding one are matched: bm25() scores every
    passage MATCH yields, and a common word yields thousands that rank low. The expression
    names every word twice, so the passages kept are scored and ordered as `fts5_match(terms)`
    would. A fused ranking matches every word: there, passages found by common words alone
    found an answer the rule loses (ADR 0119's amendments)."""
    if not ranked_alone or len(terms) < 2 or not _rarer_words_first(terms, style):
        return fts5_match(terms), 1
    found = await session.execute(_COMMON_WORDS_FTS5, {"words": compact_json.dumps(terms)})
    common = set(found.scalars())
    rarer = [term for term in terms if term not in common]
    if not common or not rarer:
        return fts5_match(terms), 1
    return fts5_match_rarer_first(rarer, [term for term in terms if term in common]), 2


@functools.lru_cache(maxsize=64)
def _chunk_ranking_of_shape(
    dialect: str,
    style: QueryStyle,
    rarer_words_first: bool,
    weights: tuple[float, float],
    normalization: int,
) -> tuple[Select[Any], Any]:
    """SELECT chunk_id, document_id, score of every matching chunk of the workspace, and the
    score column (higher is better); the values are named parameters (`_values`), so each shape
    is built, and its cache key computed, once."""
    workspace = _search.c.workspace_id == bindparam("workspace_id", type_=Uuid)
    if dialect == "postgresql":
        query = _tsquery(style)
        vector: ColumnClause[Any] = literal_column("chunk_search.search_vector")
        score: ColumnElement[float] = func.ts_rank(
            _label_weights(*weights), vector, query, normalization, type_=Float
        )
        matched = _matched_by_uncommon_words(query) if rarer_words_first else query
        stmt = select(_search.c.chunk_id, _search.c.document_id, score.label("score")).where(
            workspace, vector.op("@@")(matched)
        )
        return stmt, score
    head, body = weights
    score = -func.bm25(_FTS, head, body, type_=Float)
    stmt = (
        select(_search.c.chunk_id, _search.c.document_id, score.label("score"))
        .select_from(_fts.join(_search, _search.c.id == _fts.c.rowid))
        .where(_FTS.op("MATCH")(bindparam("match", type_=Text)), workspace)
    )
    return stmt, score


def _chunk_ranking(
    dialect: str,
    terms: list[str],
    documents: Any,
    *,
    style: QueryStyle,
    weights: tuple[float, float] = HEADING_WEIGHTS,
    normalization: int = TS_RANK_NORMALIZATION,
) -> tuple[Select[Any], Any]:
    """`_chunk_ranking_of_shape` for `terms`, among `documents` (a SELECT of document ids) when
    given: a filtered ranking is built per call, as its filter holds its own values."""
    stmt, score = _chunk_ranking_of_shape(
        dialect, style, _rarer_words_first(terms, style), weights, normalization
    )
    if documents is not None:
        stmt = stmt.where(_allowed(dialect, documents))
    return stmt, score


def _matched_by_uncommon_words(query: Any) -> Any:
    """PostgreSQL: the tsquery a passage must match to be ranked: the OR of the query's words
    (the parameter `words`) that are not common (ADR 0119), or `query` itself when every word is
    common. The ranking still scores with `query`, so a common word adds to the score of the
    passages a rarer word found. An InitPlan: evaluated once per statement."""
    return select(func.coalesce(_UNCOMMON_WORDS.scalar_subquery(), query)).scalar_subquery()


def _label_weights(headings: float, text: float) -> ColumnClause[Any]:
    """ts_rank's weights of labels {D, C, B, A}: the index labels text B and headings A. Each
    must be within 0-1, so both are scaled to the larger (a common factor ranks alike)."""
    top = max(headings, text)
    return literal_column(f"'{{0, 0, {text / top}, {headings / top}}}'::float4[]")


def _allowed(dialect: str, documents: Any) -> ColumnElement[bool]:
    """`chunk_search.document_id` among `documents` (a SELECT of document ids).

    On PostgreSQL the ids are gathered once into an array (an InitPlan): with `IN (subquery)`
    the planner, when its row estimates are off (after a bulk upload, before autovacuum has
    analysed), loops over the allowed documents and scans the GIN index once per document: 3.5
    s for a filtered keyword search of 1,000 documents (EXPLAIN ANALYZE in docs/testing.md)."""
    if dialect != "postgresql":
        return _search.c.document_id.in_(documents)
    allowed = documents.subquery("allowed")
    # The cast makes it an array expression: `= ANY (SELECT ...)` would compare each row.
    ids = cast(select(func.array_agg(allowed.c.id)).scalar_subquery(), ARRAY(Uuid))
    return _search.c.document_id == any_(ids)


async def best_chunks(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    terms: list[str],
    *,
    documents: Any = None,
    limit: int,
    style: QueryStyle = QueryStyle.ANY,
    raw: str = "",
    weights: tuple[float, float] = HEADING_WEIGHTS,
    normalization: int = TS_RANK_NORMALIZATION,
) -> list[KeywordHit]:
    """The workspace's `limit` best-matching chunks (among `documents`, a subquery of document
    ids, when given), best first. `style`, `raw`, `weights` and `normalization` exist to
    measure alternatives (bench/bench_search_quality.py); the defaults are the measured best."""
    if not terms and style is QueryStyle.ANY:
        return []
    stmt = _ranking_statement(
        _best_chunks_of, _dialect(session), terms, documents, style, weights, normalization
    )
    params = _values(workspace_id, terms, raw) | {"limit": limit}
    rows = await session.execute(stmt, params)
    # By position, not by attribute: a Row's attribute costs about 1 µs (ADR 0139).
    return [
        KeywordHit(chunk_id, document_id, float(score)) for chunk_id, document_id, score in rows
    ]


def _best_chunks_of(_dialect: str, stmt: Select[Any], score: Any) -> Select[Any]:
    return stmt.order_by(score.desc(), _search.c.chunk_id).limit(_LIMIT)


Finish = Callable[[str, Select[Any], Any], Select[Any]]


def _ranking_statement(
    finish: Finish,
    dialect: str,
    terms: list[str],
    documents: Any,
    style: QueryStyle,
    weights: tuple[float, float],
    normalization: int,
) -> Select[Any]:
    """`finish(dialect, ranking, score)` of the chunk ranking of `terms`' shape: built once per
    shape without a filter, per call among `documents` (its filter holds its own values)."""
    shape = (dialect, style, _rarer_words_first(terms, style), weights, normalization)
    if documents is None:
        return _ranking_statement_of_shape(finish, *shape)
    stmt, score = _chunk_ranking_of_shape(*shape)
    return finish(dialect, stmt.where(_allowed(dialect, documents)), score)


@functools.lru_cache(maxsize=128)
def _ranking_statement_of_shape(finish: Finish, dialect: str, *shape: Any) -> Select[Any]:
    return finish(dialect, *_chunk_ranking_of_shape(dialect, *shape))


# The number of rows a ranking statement returns, and PostgreSQL's window of best chunks.
_LIMIT = bindparam("limit", type_=Integer)
_WINDOW = bindparam("window", type_=Integer)


def documents_with_phrases(
    session: AsyncSession, workspace_id: uuid.UUID, terms: list[str], documents: Any
) -> Select[Any] | None:
    """A SELECT of the ids of `documents` (all of the workspace's when None) with a passage
    that holds every quoted phrase of `terms`, as the keyword ranking requires them; None when
    `terms` has no phrase. Ranking by meaning takes it as its documents, so that quotes narrow
    every mode alike. Its values are bound in it (it runs inside other statements)."""
    phrases = phrases_of(terms)
    if not phrases:
        return None
    stmt, _score = _chunk_ranking(_dialect(session), phrases, documents, style=QueryStyle.ANY)
    matches = stmt.params(_values(workspace_id, phrases)).subquery("phrase_matches")
    return select(matches.c.document_id).distinct()


async def best_documents(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    terms: list[str],
    *,
    documents: Any = None,
    limit: int,
    style: QueryStyle = QueryStyle.ANY,
    raw: str = "",
    weights: tuple[float, float] = HEADING_WEIGHTS,
    normalization: int = TS_RANK_NORMALIZATION,
    window: int | None = None,
    ranked_alone: bool = False,
) -> list[KeywordHit]:
    """The `limit` best documents, each with its best chunk and that chunk's score, best
    first. On SQLite each hit also carries its best chunk by text alone (see `text_passages`).
    `window`: PostgreSQL's first window of best chunks (tests make it small). `ranked_alone`:
    the ranking is shown as it is, not fused with another (see `_fts5_match`)."""
    if not terms and style is QueryStyle.ANY:
        return []
    dialect = _dialect(session)
    stmt = _ranking_statement(
        _best_documents_of, dialect, terms, documents, style, weights, normalization
    )
    params = _values(workspace_id, terms, raw) | {"limit": limit}
    if dialect != "postgresql":
        params["match"], repeats = await _fts5_match(session, terms, style, ranked_alone)
        rows = await session.execute(stmt, params)
        return [
            KeywordHit(chunk_id, document_id, float(score) / repeats, text)
            for document_id, chunk_id, score, text in rows
        ]
    return await _documents_in_windows(session, stmt, params, window or max(limit * 8, 256))


async def _documents_in_windows(
    session: AsyncSession, stmt: Select[Any], params: dict[str, Any], window: int
) -> list[KeywordHit]:
    """PostgreSQL: the rows of `_best_documents_of`, the window widened until they are exact."""
    while True:
        rows = (await session.execute(stmt, params | {"window": window})).all()
        complete = not rows or rows[0].in_window < window
        if complete or (len(rows) == params["limit"] and rows[-1].score > rows[0].floor):
            return [
                KeywordHit(chunk_id, document_id, float(score))
                for document_id, chunk_id, score, _in_window, _floor in rows
            ]
        window *= 4


def _best_documents_of(dialect: str, stmt: Select[Any], score: Any) -> Select[Any]:
    """The documents of a chunk ranking, each with its best chunk, best first (`limit` rows).

    PostgreSQL: each document's best chunk, found among the best chunks only. `ts_rank` has to
    score every match, but sorting every match by document to keep each one's best (DISTINCT
    ON) was a third of the statement when a common word matches 20,000 of 50,000 passages. So
    the statement keeps the `window` best chunks (a top-N sort), and takes each document's best
    among them. That is exact when the window holds every match, or when the last document kept
    scores above the window's lowest chunk: any document left out has no chunk above that
    floor; `best_documents` runs it again with a window four times wider otherwise (each row
    carries `in_window` and `floor` to tell).

    SQLite takes the bare chunk_id of a max() aggregate from the row that has it: each
    document's best chunk in one pass. bm25() only works in the query that MATCHes, so the
    matches are a materialised CTE (not flattened into the GROUP BY). The chunk's score by its
    text alone (headings weigh 0) rides along (`text`) for text_passages."""
    if dialect == "postgresql":
        top = (
            stmt.order_by(score.desc(), _search.c.chunk_id)
            .limit(_WINDOW)
            .cte("top")
            .prefix_with("MATERIALIZED")
        )
        best = (
            select(top.c.document_id, top.c.chunk_id, top.c.score)
            .ext(distinct_on(top.c.document_id))
            .order_by(top.c.document_id, top.c.score.desc(), top.c.chunk_id)
            .subquery("best")
        )
        in_window = select(func.count()).select_from(top).scalar_subquery()
        floor = select(func.min(top.c.score)).scalar_subquery()
        return (
            select(best, in_window.label("in_window"), floor.label("floor"))
            .order_by(best.c.score.desc(), best.c.document_id)
            .limit(_LIMIT)
        )
    text_score = -func.bm25(_FTS, 0.0, 1.0, type_=Float)
    matches = (
        stmt.add_columns(text_score.label("text_score")).cte("matches").prefix_with("MATERIALIZED")
    )
    best = _best_by_max(matches, matches.c.score, "best")
    by_text = _best_by_max(matches, matches.c.text_score, "best_text")
    return (
        select(
            best.c.document_id,
            best.c.chunk_id,
            best.c.score,
            case((by_text.c.score > 0, by_text.c.chunk_id)).label("text"),
        )
        .join_from(best, by_text, by_text.c.document_id == best.c.document_id)
        .order_by(best.c.score.desc(), best.c.document_id)
        .limit(_LIMIT)
    )


def _best_by_max(matches: Any, score: Any, name: str) -> Any:
    """SQLite: each document's chunk with the highest `score`, by the bare column of max()."""
    return (
        select(matches.c.document_id, matches.c.chunk_id, func.max(score).label("score"))
        .group_by(matches.c.document_id)
        .subquery(name)
    )


async def text_passages(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    terms: list[str],
    hits: Sequence[KeywordHit],
    document_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, uuid.UUID]:
    """For each of `document_ids` (among `hits`, from best_documents), its chunk whose text
    (headings left out) matches `terms` best: the passage to show, whose matched words can be
    highlighted. The ranking counts headings too, so a document's best-ranked chunk can be a
    short one that matches by its headings alone. Documents whose text matches nothing are left
    out.

    Where each database pays differently: SQLite's bm25() counts each word's matches over the
    whole index in every statement that scores, so the ranking statement scored the text too
    and the hits carry it (a statement of its own took 48 of the 98 ms of a KEYWORD search at
    50,000 passages); PostgreSQL's ts_rank costs per row it scores, so the text is scored here
    for the page's documents alone (scoring every match twice in the ranking took KEYWORD's
    p95 at concurrency 8 from 419 to 795 ms)."""
    ids = list(dict.fromkeys(document_ids))
    if not terms or not ids:
        return {}
    wanted = set(ids)
    if _dialect(session) != "postgresql":
        return {
            h.document_id: h.text_chunk_id
            for h in hits
            if h.document_id in wanted and h.text_chunk_id is not None
        }
    params = {"workspace_id": workspace_id, "ids": ids, "tsq": tsquery_text(terms)}
    return {row.document_id: row.chunk_id for row in await session.execute(_BEST_BY_TEXT, params)}


def _best_by_text() -> Select[Any]:
    """PostgreSQL: each of the documents `ids`' chunk whose text alone matches `tsq` best."""
    query = _tsquery(QueryStyle.ANY)
    vector: ColumnClause[Any] = literal_column("chunk_search.search_vector")
    score: ColumnElement[float] = func.ts_rank(
        _label_weights(0.0, 1.0), vector, query, TS_RANK_NORMALIZATION, type_=Float
    )
    ranked = (
        select(_search.c.document_id, _search.c.chunk_id, score.label("score"))
        .where(
            _search.c.workspace_id == bindparam("workspace_id", type_=Uuid),
            in_ids(_search.c.document_id),
            vector.op("@@")(query),
        )
        .ext(distinct_on(_search.c.document_id))
        .order_by(_search.c.document_id, score.desc(), _search.c.chunk_id)
        .subquery("best")
    )
    return select(ranked.c.document_id, ranked.c.chunk_id).where(ranked.c.score > 0)


_BEST_BY_TEXT = _best_by_text()


# PostgreSQL: the bounds of a chunk's matched words in its text, [start, end, start, end, ...]
# in text order (-1, -1 for a compound word's own position, whose parts carry the match): the
# positions in its text (weight B) of the query's lexemes, looked up in its word offsets. The
# lexemes are the words' own under the index's configuration, so a word matches here exactly
# where it matches the tsquery of the same words (ADR 0141). Correlated to `chunks.id`: a
# column of a statement over the `chunks` table, unaliased.
_MATCHED_BOUNDS = (
    text(
        f"""
    SELECT array_agg(bound ORDER BY pos, side)
    FROM chunk_word_offsets AS o
    JOIN chunk_search AS s ON s.chunk_id = o.chunk_id,
        unnest(ts_filter(s.search_vector, '{{b}}')) AS v,
        unnest(v.positions) AS pos,
        unnest(ARRAY[o.starts[pos - o.heading_positions], o.ends[pos - o.heading_positions]])
            WITH ORDINALITY AS b(bound, side)
    WHERE o.chunk_id = chunks.id AND v.lexeme = ANY(CAST((
        SELECT tsvector_to_array(to_tsvector('{POSTGRESQL_TEXT_CONFIG}', :highlight_words))
    ) AS text[]))
    """
    )
    .bindparams(bindparam("highlight_words", type_=Text))
    .columns(column("bounds", ARRAY(Integer)))
)


def matched_bounds_column() -> ColumnElement[Any]:
    """PostgreSQL: each chunk's matched bounds (`_MATCHED_BOUNDS`) as the column
    `matched_bounds` of a statement over `chunks`; its parameters are `highlight_values`."""
    return _MATCHED_BOUNDS.scalar_subquery().label("matched_bounds")


def highlight_values(terms: list[str]) -> dict[str, Any]:
    """The parameters of `matched_bounds_column` for the query's `terms`."""
    return {"highlight_words": " ".join(terms)}


def ranges_of(row: Any) -> list[tuple[int, int]]:
    """The matched (start, end) offsets of a row holding `matched_bounds`, in order, adjacent
    spans merged (as `marked_ranges` gives them)."""
    bounds = row.matched_bounds or []
    ranges: list[tuple[int, int]] = []
    for start, end in zip(bounds[::2], bounds[1::2], strict=True):
        if start is None or end is None or start < 0:
            continue
        add_span(ranges, start, end)
    return ranges


_HIGHLIGHTS_OF_IDS = select(_chunks.c.id.label("chunk_id"), matched_bounds_column()).where(
    in_ids(_chunks.c.id)
)


async def highlights(
    session: AsyncSession,
    terms: list[str],
    chunk_ids: Sequence[uuid.UUID],
) -> dict[uuid.UUID, list[tuple[int, int]]]:
    """For each chunk, the (start, end) offsets in its text of the words the index matches for
    `terms` (chunks matching none are left out)."""
    if not terms or not chunk_ids:
        return {}
    ids = list(dict.fromkeys(chunk_ids))
    found: dict[uuid.UUID, list[tuple[int, int]]] = {}
    if _dialect(session) == "postgresql":
        params = {"ids": ids, **highlight_values(terms)}
        for bounds in await session.execute(_HIGHLIGHTS_OF_IDS, params):
            if ranges := ranges_of(bounds):
                found[bounds.chunk_id] = ranges
        return found
    stmt = (
        select(
            _search.c.chunk_id,
            _fts.c.text.label("text"),
            func.highlight(_FTS, 1, HIGHLIGHT_START, HIGHLIGHT_END).label("m"),
        )
        .select_from(_fts.join(_search, _search.c.id == _fts.c.rowid))
        .where(
            _FTS.op("MATCH")(bindparam("match", fts5_match(terms), type_=Text)),
            # By rowid on the FTS5 table: a seek per passage, not a walk of every match
            # (1.4 ms against 72 ms for a common word at 50,000 passages).
            _fts.c.rowid.in_(select(_search.c.id).where(_search.c.chunk_id.in_(ids))),
        )
    )
    for row in await session.execute(stmt):
        if ranges := marked_ranges(row.m, row.text):
            found[row.chunk_id] = ranges
    return found
