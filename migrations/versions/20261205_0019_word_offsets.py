"""search: where each indexed word lies in its chunk's text, for highlights (PostgreSQL only)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05

`ts_headline` parsed every passage of a page again to mark the query's words: 4.4-6.8 ms of a
KEYWORD search's page statement at 10,000 documents. The index already holds each matched
word's position; this table holds where each position lies in the text, so a passage's ranges
are its matched positions looked up (ADR 0141). Every indexed chunk gets its row here, computed
by PostgreSQL's own parser as INDEXING computes it (`services.fulltext`).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# services.fulltext's offsets as of this revision, for every indexed chunk.
_POSITIONED = "tokid NOT IN (12, 13, 14, 23) AND octet_length(token) <= 2047"
_COMPOUND = "(5, 15, 16, 17)"
_BACKFILL = f"""
INSERT INTO chunk_word_offsets (chunk_id, document_id, heading_positions, starts, ends)
SELECT c.id, c.document_id,
       (SELECT count(*) FROM ts_parse('default', translate(coalesce(
           (SELECT string_agg(h, ' ') FROM json_array_elements_text(c.heading_path) AS h), ''
       ), './', '  ')) AS t(tokid, token) WHERE {_POSITIONED}),
       coalesce(w.starts, '{{}}'), coalesce(w.ends, '{{}}')
FROM chunks AS c
JOIN chunk_search AS s ON s.chunk_id = c.id
LEFT JOIN LATERAL (
    SELECT array_agg(CASE WHEN tokid IN {_COMPOUND} THEN -1 ELSE start END
                     ORDER BY ord) AS starts,
           array_agg(CASE WHEN tokid IN {_COMPOUND} THEN -1
                          ELSE start + length(token) END ORDER BY ord) AS ends
    FROM (
        SELECT tokid, token, ord,
               coalesce(sum(length(token)) FILTER (WHERE tokid NOT IN {_COMPOUND})
                   OVER (ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                   0)::int AS start
        FROM ts_parse('default', translate(c.text, './', '  '))
            WITH ORDINALITY AS p(tokid, token, ord)
    ) AS tokens
    WHERE {_POSITIONED}
) AS w ON true
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's FTS5 marks its matches itself (highlight())
    op.execute(
        """
        CREATE TABLE chunk_word_offsets (
            chunk_id uuid PRIMARY KEY
                CONSTRAINT fk_chunk_word_offsets_chunk_id_chunks
                REFERENCES chunks (id) ON DELETE CASCADE,
            document_id uuid NOT NULL
                CONSTRAINT fk_chunk_word_offsets_document_id_documents
                REFERENCES documents (id) ON DELETE CASCADE,
            heading_positions integer NOT NULL,
            starts integer[] NOT NULL,
            ends integer[] NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_chunk_word_offsets_document_id ON chunk_word_offsets (document_id)")
    op.execute(_BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE chunk_word_offsets")
