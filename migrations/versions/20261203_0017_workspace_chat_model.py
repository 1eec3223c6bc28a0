"""workspaces: the chat model an admin chose for the workspace

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

`workspaces.chat_model`: the name of the chat model (Ollama's `name:tag`) that writes the
workspace's summaries, tags and answers; null means the deployment's CHAT_MODEL (ADR 0124).
Existing workspaces keep the deployment's model.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("chat_model", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("chat_model")
