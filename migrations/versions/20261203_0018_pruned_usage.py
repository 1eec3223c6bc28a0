"""pruned_usage: what the runs deleted by retention had used, per workspace and month

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03

Retention adds a batch's runs and their steps' tokens here in the transaction that deletes
them, so the Usage tab's month stays exact whatever RUN_RETENTION_DAYS is (ADR 0126). Runs
deleted before this revision are not recovered.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pruned_usage",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("embedding_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace_id", "month"),
    )


def downgrade() -> None:
    op.drop_table("pruned_usage")
