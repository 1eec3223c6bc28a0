"""documents: an index on (workspace_id, collection_id, id), for a filter's document ids

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06

A search or an answer filtered to collections reads the ids of the workspace's documents in
them (`services.search.allowed_documents`). The collection's own index holds neither the
workspace nor the id, so each of a collection's documents was read from the table: 1,000
documents took 2.0 ms on PostgreSQL (981 heap pages). This index answers it alone (an
index-only scan, 0.19 ms), and the keyword ranking's filter with it (ADR 0154).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_documents_workspace_collection",
        "documents",
        ["workspace_id", "collection_id", "id"],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_documents_workspace_collection", table_name="documents")
