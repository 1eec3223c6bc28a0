"""search: an HNSW index of the passage vectors where PostgreSQL has pgvector

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

Where the server offers the `vector` extension (pgvector) and this role may create it (or it is
already there), `chunk_vectors` gets an `embedding vector` column beside the stored bytes, kept
equal to them by a trigger, and an HNSW index (cosine) over the 384-dimension rows: semantic
search then ranks inside the database (ADR 0114). Anywhere else (SQLite, a PostgreSQL without
the extension) nothing changes and search keeps its exact scan (ADR 0061).

The bytes stay the record: the column is derived from them by `float32le_to_vector`, so every
writer (ingestion, re-embedding, a bulk import) is covered without knowing the column exists.
Existing rows are filled in by the same function. The downgrade drops what this added but
leaves the extension, which other databases' objects may use.
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The one dimension indexed: the default embedding model's (all-minilm). Vectors of another
# dimension are stored and kept in the column but searched by the exact scan (ADR 0114).
INDEXED_DIMENSION = 384

# float32 little-endian words to their values, exactly (every float32 is a float8): the sign,
# the 8 exponent bits and the 23 fraction bits of each word; exponent 0 is a subnormal. The
# stored bytes are always finite (services/vectors.pack refuses the rest).
POSTGRESQL_CREATE = (
    """
    CREATE FUNCTION float32le_to_vector(packed bytea) RETURNS vector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT array_agg(
            (CASE WHEN sign = 1 THEN -1.0 ELSE 1.0 END)
            * (CASE WHEN exponent = 0 THEN fraction * power(2.0::float8, -149)
                    ELSE (8388608 + fraction) * power(2.0::float8, exponent - 150) END)
            ORDER BY i
        )::real[]::vector
        FROM (
            SELECT i, (word >> 31) AS sign, ((word >> 23) & 255) AS exponent,
                   (word & 8388607) AS fraction
            FROM (
                SELECT i, get_byte(packed, 4 * i)::bigint
                        | (get_byte(packed, 4 * i + 1)::bigint << 8)
                        | (get_byte(packed, 4 * i + 2)::bigint << 16)
                        | (get_byte(packed, 4 * i + 3)::bigint << 24) AS word
                FROM generate_series(0, length(packed) / 4 - 1) AS i
            ) AS words
        ) AS fields
    $$
    """,
    "ALTER TABLE chunk_vectors ADD COLUMN embedding vector",
    """
    CREATE FUNCTION chunk_vectors_embedding() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.embedding := float32le_to_vector(NEW.vector);
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER chunk_vectors_embedding BEFORE INSERT OR UPDATE OF vector ON chunk_vectors
    FOR EACH ROW EXECUTE FUNCTION chunk_vectors_embedding()
    """,
    "UPDATE chunk_vectors SET embedding = float32le_to_vector(vector)",
    f"""
    CREATE INDEX ix_chunk_vectors_embedding_{INDEXED_DIMENSION} ON chunk_vectors
    USING hnsw ((embedding::vector({INDEXED_DIMENSION})) vector_cosine_ops)
    WHERE dimension = {INDEXED_DIMENSION}
    """,
)

POSTGRESQL_DROP = (
    f"DROP INDEX IF EXISTS ix_chunk_vectors_embedding_{INDEXED_DIMENSION}",
    "DROP TRIGGER IF EXISTS chunk_vectors_embedding ON chunk_vectors",
    "DROP FUNCTION IF EXISTS chunk_vectors_embedding()",
    "ALTER TABLE chunk_vectors DROP COLUMN IF EXISTS embedding",
    "DROP FUNCTION IF EXISTS float32le_to_vector(bytea)",
)


def _has_pgvector() -> bool:
    """Whether the `vector` extension is installed, or can be by this role (tried in a
    savepoint: a refusal leaves the migration's transaction usable)."""
    bind = op.get_bind()
    if bind.scalar(text("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")):
        return True
    if not bind.scalar(text("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")):
        return False
    savepoint = bind.begin_nested()
    try:
        bind.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    except DBAPIError:  # no privilege to create it: the exact scan stays
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql" or not _has_pgvector():
        return
    for statement in POSTGRESQL_CREATE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in POSTGRESQL_DROP:
        op.execute(statement)
