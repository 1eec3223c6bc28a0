"""documents: a trigram index on lower(title) for the list's titleContains (PostgreSQL only)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

from base.models.documents import TITLE_TRIGRAM_INDEX

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite has no trigram index; its LIKE scans the workspace's rows as before (ADR 0078).
    if op.get_bind().dialect.name != "postgresql":
        return
    # pg_trgm is a trusted extension: the database's owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        f"CREATE INDEX {TITLE_TRIGRAM_INDEX} ON documents USING gin (lower(title) gin_trgm_ops)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX {TITLE_TRIGRAM_INDEX}")
    # The extension stays: other objects of the database may use it.
