"""full text on PostgreSQL: index stop words too (a text search configuration without them dropped)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

PostgreSQL's `english` configuration leaves its stop words out of every tsvector, so a search
for "with", "is not" or "for" (Python keywords, in a corpus of Python documentation) found
nothing on PostgreSQL while SQLite's FTS5 found them. `english_with_stop_words` is `english`
with the same Snowball stemmer and no stop-word list; the queries still leave stop words out
unless the user typed nothing else or quoted them (services.search_text), so other searches
rank as before. Every indexed chunk is indexed again here (ADR 0100).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The index expression of services.fulltext, with the configuration to build it under.
_REINDEX = """
UPDATE chunk_search AS s
SET search_vector =
       setweight(to_tsvector('{config}', translate(coalesce(
           (SELECT string_agg(h, ' ') FROM json_array_elements_text(c.heading_path) AS h), ''
       ), './', '  ')), 'A')
       || setweight(to_tsvector('{config}', translate(c.text, './', '  ')), 'B')
FROM chunks AS c
WHERE c.id = s.chunk_id
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # FTS5's porter tokenizer has no stop words
    op.execute(
        "CREATE TEXT SEARCH DICTIONARY english_stem_all_words "
        "(TEMPLATE = snowball, Language = english)"
    )
    op.execute("CREATE TEXT SEARCH CONFIGURATION english_with_stop_words (COPY = english)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION english_with_stop_words "
        "ALTER MAPPING REPLACE english_stem WITH english_stem_all_words"
    )
    op.execute(_REINDEX.format(config="english_with_stop_words"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_REINDEX.format(config="english"))
    op.execute("DROP TEXT SEARCH CONFIGURATION english_with_stop_words")
    op.execute("DROP TEXT SEARCH DICTIONARY english_stem_all_words")
