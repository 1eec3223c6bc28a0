"""ingestion: the documents' headings, the full-text index of chunks (per database), chunk vectors

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

The full-text index has one shape per database (ADR 0050): a tsvector column with a GIN index on
PostgreSQL, an FTS5 table on SQLite, both keyed through `chunk_search`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRESQL_FULL_TEXT = (
    """
    CREATE TABLE chunk_search (
        chunk_id uuid PRIMARY KEY
            CONSTRAINT fk_chunk_search_chunk_id_chunks REFERENCES chunks (id) ON DELETE CASCADE,
        document_id uuid NOT NULL
            CONSTRAINT fk_chunk_search_document_id_documents
            REFERENCES documents (id) ON DELETE CASCADE,
        workspace_id uuid NOT NULL
            CONSTRAINT fk_chunk_search_workspace_id_workspaces
            REFERENCES workspaces (id) ON DELETE CASCADE,
        search_vector tsvector NOT NULL
    )
    """,
    "CREATE INDEX ix_chunk_search_document_id ON chunk_search (document_id)",
    "CREATE INDEX ix_chunk_search_search_vector ON chunk_search USING gin (search_vector)",
)

# sa.Uuid is CHAR(32) (hex, no dashes) on SQLite, as in chunks.id.
SQLITE_FULL_TEXT = (
    """
    CREATE TABLE chunk_search (
        id INTEGER PRIMARY KEY,
        chunk_id CHAR(32) NOT NULL UNIQUE REFERENCES chunks (id) ON DELETE CASCADE,
        document_id CHAR(32) NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        workspace_id CHAR(32) NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX ix_chunk_search_document_id ON chunk_search (document_id)",
    """
    CREATE VIRTUAL TABLE chunk_fts USING fts5(
        headings, text, tokenize = 'porter unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER chunk_search_delete AFTER DELETE ON chunk_search BEGIN
        DELETE FROM chunk_fts WHERE rowid = old.id;
    END
    """,
)


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headings", sa.JSON(), nullable=True))

    op.create_table(
        "chunk_vectors",
        sa.Column("chunk_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["chunks.id"],
            name=op.f("fk_chunk_vectors_chunk_id_chunks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_chunk_vectors_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_chunk_vectors_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chunk_id", name=op.f("pk_chunk_vectors")),
    )
    with op.batch_alter_table("chunk_vectors", schema=None) as batch_op:
        batch_op.create_index("ix_chunk_vectors_document_id", ["document_id"], unique=False)
        batch_op.create_index(
            "ix_chunk_vectors_workspace_model", ["workspace_id", "model"], unique=False
        )

    statements = (
        POSTGRESQL_FULL_TEXT if op.get_bind().dialect.name == "postgresql" else SQLITE_FULL_TEXT
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE chunk_search")
    else:
        op.execute("DROP TRIGGER chunk_search_delete")
        op.execute("DROP TABLE chunk_fts")
        op.execute("DROP TABLE chunk_search")

    with op.batch_alter_table("chunk_vectors", schema=None) as batch_op:
        batch_op.drop_index("ix_chunk_vectors_workspace_model")
        batch_op.drop_index("ix_chunk_vectors_document_id")
    op.drop_table("chunk_vectors")

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("headings")
