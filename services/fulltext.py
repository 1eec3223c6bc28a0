"""The full-text index of chunks (INDEXING), one implementation per database (ADR 0050).

PostgreSQL: a `tsvector` per chunk (`POSTGRESQL_TEXT_CONFIG`: English stemming, stop words kept)
with the heading path at weight A and the text at weight B, under a GIN index. SQLite: an FTS5
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


async def index_document(session: AsyncSession, document_id: uuid.UUID) -> int:
    """Index the document's chunks as they are now, replacing earlier rows; how many."""
    await clear_document(session, document_id)
    if _dialect(session) == "postgresql":
        inserted = await session.execute(_with_ids(_POSTGRESQL_INDEX, document_id=document_id))
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
