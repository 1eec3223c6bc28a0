"""The full-text index of chunks (INDEXING), one implementation per database (ADR 0050).

PostgreSQL: a `tsvector` per chunk (`POSTGRESQL_TEXT_CONFIG`: English stemming, stop words kept)
with the heading path at weight A and the text at weight B, under a GIN index, and where each of
the text's positions lies in the text (for highlights, ADR 0141). SQLite: an FTS5
table (Porter stemming over unicode61) with the same two columns. `base.models.search`
describes the tables.

The index is built from the `chunks` rows inside the database, so the text is not sent back and
forth, and indexing a document replaces whatever an earlier run indexed for it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, cast

from sqlalchemy import CursorResult, Uuid, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from base.models.search import POSTGRESQL_TEXT_CONFIG

# PostgreSQL's parser reads a dotted or slashed name ("os.path.join", "getpass.GetPassWarning",
# "/usr/lib") as one host or file token, so "join" would not find "os.path.join". The indexed
# text and the query both go through translate(x, './', '  '), which turns '.' and '/' into
# spaces so that every part is a word. FTS5's unicode61 tokenizer splits there already.
_POSTGRESQL_INDEX = f"""
INSERT INTO chunk_search (chunk_id, document_id, workspace_id, search_vector)
SELECT c.id, c.document_id, c.workspace_id,
       setweight(to_tsvector('{POSTGRESQL_TEXT_CONFIG}', translate(coalesce(
           (SELECT string_agg(h, ' ') FROM json_array_elements_text(c.heading_path) AS h), ''
       ), './', '  ')), 'A')
       || setweight(to_tsvector('{POSTGRESQL_TEXT_CONFIG}', translate(c.text, './', '  ')), 'B')
FROM chunks AS c
WHERE c.document_id = :document_id
"""

# PostgreSQL's parser's token types (ts_token_type('default')) that the configuration does not
# map, so `to_tsvector` gives them no position: blank, tag, protocol, entity.
UNMAPPED_TOKEN_TYPES = "(12, 13, 14, 23)"
# Compound tokens, whose parts follow them as tokens of their own: url, numhword, asciihword,
# hword. Each takes a position; its parts take the next ones and cover its text.
COMPOUND_TOKEN_TYPES = "(5, 15, 16, 17)"
# A token `to_tsvector` skips for its length (its MAXSTRLEN), in bytes.
_LONGEST_INDEXED_TOKEN = 2047

# Where each of a chunk's text positions in `search_vector` starts and ends in the chunk's text
# (ADR 0141): PostgreSQL's own parser (`ts_parse`, the one `to_tsvector` uses) splits the text,
# a position per token of a mapped type (`_POSITIONED`), in order; the tokens other than compound
# ones cover the text, so each one's offset is the sum of the lengths before it. A compound token
# gets -1: `ts_headline` marks its parts, not it. The text's positions follow the headings'
# (`||` numbers the right operand after the left's last position), so their count is kept.
_POSITIONED = (
    f"tokid NOT IN {UNMAPPED_TOKEN_TYPES} AND octet_length(token) <= {_LONGEST_INDEXED_TOKEN}"
)
_POSTGRESQL_WORD_OFFSETS = f"""
INSERT INTO chunk_word_offsets (chunk_id, document_id, heading_positions, starts, ends)
SELECT c.id, c.document_id,
       (SELECT count(*) FROM ts_parse('default', translate(coalesce(
           (SELECT string_agg(h, ' ') FROM json_array_elements_text(c.heading_path) AS h), ''
       ), './', '  ')) AS t(tokid, token) WHERE {_POSITIONED}),
       coalesce(w.starts, '{{}}'), coalesce(w.ends, '{{}}')
FROM chunks AS c
LEFT JOIN LATERAL (
    SELECT array_agg(CASE WHEN tokid IN {COMPOUND_TOKEN_TYPES} THEN -1 ELSE start END
                     ORDER BY ord) AS starts,
           array_agg(CASE WHEN tokid IN {COMPOUND_TOKEN_TYPES} THEN -1
                          ELSE start + length(token) END ORDER BY ord) AS ends
    FROM (
        SELECT tokid, token, ord,
               coalesce(sum(length(token)) FILTER (WHERE tokid NOT IN {COMPOUND_TOKEN_TYPES})
                   OVER (ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                   0)::int AS start
        FROM ts_parse('default', translate(c.text, './', '  '))
            WITH ORDINALITY AS p(tokid, token, ord)
    ) AS tokens
    WHERE {_POSITIONED}
) AS w ON true
WHERE c.document_id = :document_id
"""
_SQLITE_KEYS = """
INSERT INTO chunk_search (chunk_id, document_id, workspace_id)
SELECT id, document_id, workspace_id FROM chunks WHERE document_id = :document_id
ORDER BY position
"""

_SQLITE_INDEX = """
INSERT INTO chunk_fts (rowid, headings, text)
SELECT s.id,
       coalesce((SELECT group_concat(value, ' ') FROM json_each(c.heading_path)), ''),
       c.text
FROM chunk_search AS s JOIN chunks AS c ON c.id = s.chunk_id
WHERE s.document_id = :document_id
"""

_POSTGRESQL_MATCH = f"""
SELECT s.chunk_id
FROM chunk_search AS s,
     websearch_to_tsquery('{POSTGRESQL_TEXT_CONFIG}', translate(:query, './', '  ')) AS q
WHERE s.workspace_id = :workspace_id AND s.search_vector @@ q
ORDER BY ts_rank_cd(s.search_vector, q) DESC, s.chunk_id
LIMIT :limit
"""

_SQLITE_MATCH = """
SELECT s.chunk_id
FROM chunk_fts JOIN chunk_search AS s ON s.id = chunk_fts.rowid
WHERE chunk_fts MATCH :query AND s.workspace_id = :workspace_id
ORDER BY chunk_fts.rank, s.chunk_id
LIMIT :limit
"""

_WORD = re.compile(r"\w+")


def _dialect(session: AsyncSession) -> str:
    return str(session.get_bind().dialect.name)


def _with_ids(sql: str, **ids: uuid.UUID) -> TextClause:
    """`sql` with its uuid parameters bound as uuids (CHAR(32) hex on SQLite, uuid on PG)."""
    return text(sql).bindparams(*(bindparam(k, v, type_=Uuid) for k, v in ids.items()))


async def clear_document(session: AsyncSession, document_id: uuid.UUID) -> None:
    """Drop the document's rows (on SQLite a trigger drops their FTS5 rows with them)."""
    await session.execute(
        _with_ids("DELETE FROM chunk_search WHERE document_id = :d", d=document_id)
    )
    if _dialect(session) == "postgresql":
        await session.execute(
            _with_ids("DELETE FROM chunk_word_offsets WHERE document_id = :d", d=document_id)
        )


async def index_document(session: AsyncSession, document_id: uuid.UUID) -> int:
    """Index the document's chunks as they are now, replacing earlier rows; how many."""
    await clear_document(session, document_id)
    if _dialect(session) == "postgresql":
        inserted = await session.execute(_with_ids(_POSTGRESQL_INDEX, document_id=document_id))
        await session.execute(_with_ids(_POSTGRESQL_WORD_OFFSETS, document_id=document_id))
    else:
        inserted = await session.execute(_with_ids(_SQLITE_KEYS, document_id=document_id))
        await session.execute(_with_ids(_SQLITE_INDEX, document_id=document_id))
    return cast(CursorResult[Any], inserted).rowcount


def fts5_query(words: str) -> str:
    """Every word of `words` as a quoted FTS5 term, all required: user text never reaches the
    FTS5 query syntax (operators, column filters) as syntax."""
    return " ".join(f'"{word}"' for word in _WORD.findall(words))


async def matching_chunk_ids(
    session: AsyncSession, *, workspace_id: uuid.UUID, query: str, limit: int = 10
) -> list[uuid.UUID]:
    """The workspace's chunks that contain every word of `query` (stemmed), best first.

    The keyword half of search (screen 8) builds on this query shape."""
    if _dialect(session) == "postgresql":
        sql, terms = _POSTGRESQL_MATCH, query
    else:
        sql, terms = _SQLITE_MATCH, fts5_query(query)
        if not terms:
            return []
    statement = (
        text(sql)
        .bindparams(
            bindparam("workspace_id", workspace_id, type_=Uuid),
            bindparam("query", terms),
            bindparam("limit", limit),
        )
        .columns(chunk_id=Uuid)
    )
    return list((await session.execute(statement)).scalars())
