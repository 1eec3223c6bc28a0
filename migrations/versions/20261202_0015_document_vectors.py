"""search: each document's own vector, for related documents

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

`document_vectors` holds one vector per document and embedding model: the normalised mean of its
passages' unit vectors, the vector related documents compare (ADR 0116). Related documents of a
workspace too large for the search cache then read one row per document instead of every
passage, and where migration 0014 found pgvector the rows get the same `embedding` column,
trigger and HNSW index as `chunk_vectors`, so the nearest documents are found by the index.

Existing passage vectors are averaged here, document by document. The downgrade drops the table.
"""

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED_DIMENSION = 384  # as migration 0014: the default embedding model's

# Made before the backfill (the trigger fills the column), the index after it.
POSTGRESQL_PGVECTOR = (
    "ALTER TABLE document_vectors ADD COLUMN embedding vector",
    """
    CREATE FUNCTION document_vectors_embedding() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.embedding := float32le_to_vector(NEW.vector);
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER document_vectors_embedding BEFORE INSERT OR UPDATE OF vector
    ON document_vectors FOR EACH ROW EXECUTE FUNCTION document_vectors_embedding()
    """,
)
POSTGRESQL_PGVECTOR_INDEX = f"""
    CREATE INDEX ix_document_vectors_embedding_{INDEXED_DIMENSION} ON document_vectors
    USING hnsw ((embedding::vector({INDEXED_DIMENSION})) vector_cosine_ops)
    WHERE dimension = {INDEXED_DIMENSION}
"""


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _backfill(bind: sa.Connection, table: sa.Table) -> None:
    """Average the stored passage vectors of each document and model, in document order."""
    passages = sa.table(
        "chunk_vectors",
        sa.column("document_id", sa.Uuid()),
        sa.column("model", sa.String()),
        sa.column("workspace_id", sa.Uuid()),
        sa.column("dimension", sa.Integer()),
        sa.column("vector", sa.LargeBinary()),
    )
    c = passages.c
    rows = bind.execute(
        sa.select(c.document_id, c.model, c.workspace_id, c.dimension, c.vector)
        .order_by(c.document_id, c.model)
        .execution_options(yield_per=4096)  # on the statement: on `bind` it would outlive it
    )
    key = None
    parts: list[bytes] = []
    meta: tuple = ()
    batch: list[dict] = []

    def flush() -> None:
        if not parts:
            return
        document_id, model, workspace_id, dimension = meta
        # float64: a stored float32 near its largest value squares past float32's range.
        matrix = np.frombuffer(b"".join(parts), "<f4").reshape(len(parts), dimension)
        mean = _unit_rows(_unit_rows(matrix.astype(np.float64)).sum(axis=0))
        batch.append(
            {
                "document_id": document_id,
                "model": model,
                "workspace_id": workspace_id,
                "dimension": dimension,
                "vector": mean.astype("<f4").tobytes(),
            }
        )

    for document_id, model, workspace_id, dimension, vector in rows:
        if (document_id, model) != key:
            flush()
            key, parts, meta = (
                (document_id, model),
                [],
                (document_id, model, workspace_id, dimension),
            )
        if dimension == meta[3]:
            parts.append(vector)
        if len(batch) >= 1000:
            bind.execute(table.insert(), batch)
            batch.clear()
    flush()
    if batch:
        bind.execute(table.insert(), batch)


def upgrade() -> None:
    table = op.create_table(
        "document_vectors",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id", "model"),
    )
    op.create_index(
        "ix_document_vectors_workspace_model", "document_vectors", ["workspace_id", "model"]
    )
    bind = op.get_bind()
    # pgvector's column and index where migration 0014 made the function that fills them.
    pgvector = bind.dialect.name == "postgresql" and bool(
        bind.scalar(sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'float32le_to_vector'"))
    )
    for statement in POSTGRESQL_PGVECTOR if pgvector else ():
        op.execute(statement)
    assert table is not None
    _backfill(bind, table)
    if pgvector:
        op.execute(POSTGRESQL_PGVECTOR_INDEX)


def downgrade() -> None:
    op.drop_index("ix_document_vectors_workspace_model", table_name="document_vectors")
    op.drop_table("document_vectors")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS document_vectors_embedding()")
