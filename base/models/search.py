"""The full-text index of chunks, one shape per database (ADR 0050), created by migration 0004.

It lives outside the ORM because its columns differ by database; `services.fulltext` reads and
writes it, and Alembic's comparison skips these tables (`is_full_text_table`).

Both databases have `chunk_search`, one row per indexed chunk, keyed by the chunk and carrying
its document and workspace, every key deleted with its chunk, document or workspace (foreign
keys with ON DELETE CASCADE):

PostgreSQL
    chunk_search(chunk_id uuid PRIMARY KEY, document_id uuid, workspace_id uuid,
                 search_vector tsvector)   -- headings weight A, text weight B,
                                           -- POSTGRESQL_TEXT_CONFIG
    GIN index on (workspace_id, search_vector) through btree_gin (FULL_TEXT_INDEX, migration
    0016: every statement names its workspace, ADR 0120), with no pending list (fastupdate off,
    migration 0020, ADR 0149); b-tree on document_id.
    chunk_word_offsets(chunk_id uuid PRIMARY KEY, document_id uuid, heading_positions int,
                       starts int[], ends int[])   -- migration 0019, ADR 0141: where each of
                                           -- the text's positions in search_vector starts and
                                           -- ends in the chunk's text (-1 for a compound word,
                                           -- whose parts are marked), after the headings' ones

SQLite
    chunk_search(id INTEGER PRIMARY KEY, chunk_id UNIQUE, document_id, workspace_id)
    chunk_fts    FTS5(headings, text), tokenizer 'porter unicode61 remove_diacritics 2',
                 rowid = chunk_search.id
    A trigger deletes the FTS5 row with its chunk_search row (cascades included).

A chunk id, its document, workspace and collection are one join away on both:
`chunk_search.chunk_id -> chunks.id`, `chunk_search.document_id -> documents.id`
(whose `collection_id` is current even after a move).
"""

from __future__ import annotations

SEARCH_TABLE = "chunk_search"
WORD_OFFSETS_TABLE = "chunk_word_offsets"
# PostgreSQL's text search configuration for the index and its queries (migration 0011, ADR
# 0100): `english` (Snowball stemming) without its stop-word list, so that "with" or "not in"
# can be found; queries leave stop words out unless they are all the user typed, or quoted.
POSTGRESQL_TEXT_CONFIG = "english_with_stop_words"
# PostgreSQL's GIN index of the table, keyed by workspace, then word (migration 0016).
FULL_TEXT_INDEX = "ix_chunk_search_workspace_id_search_vector"
FTS_TABLE = "chunk_fts"
# FTS5 keeps its index in shadow tables named after the virtual table.
_FTS5_SHADOWS = ("data", "idx", "content", "docsize", "config")

FULL_TEXT_TABLES = {
    "postgresql": frozenset({SEARCH_TABLE, WORD_OFFSETS_TABLE}),
    "sqlite": frozenset({SEARCH_TABLE, FTS_TABLE, *(f"{FTS_TABLE}_{s}" for s in _FTS5_SHADOWS)}),
}


def is_full_text_table(name: str | None) -> bool:
    """A table of the full-text index (either database's), which the ORM does not describe."""
    return name is not None and any(name in tables for tables in FULL_TEXT_TABLES.values())
