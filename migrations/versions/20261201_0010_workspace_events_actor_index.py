"""workspace_events: an index on (actor_id, type, workspace_id, id), for a user's finished runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # myRunEvents reads the caller's RUN_FINISHED events after a position per workspace, every
    # idle interval per open app shell. Through (workspace_id, id) it read every event of each
    # workspace since the caller's last finished run there (ADR 0086 has the figures); through
    # this index each workspace is one exact range.
    op.create_index(
        "ix_workspace_events_actor",
        "workspace_events",
        ["actor_id", "type", "workspace_id", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_workspace_events_actor", table_name="workspace_events")
