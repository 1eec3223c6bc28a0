"""workspace_events: what each event is about (type, id and name at the time), and the actor's
name at the time; indexes on the columns that refer to a run, for deleting runs (retention)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("subject_type", "subject_id", "subject_label")
_RUN_REFERENCES = (("workspace_events", "run_id"), ("runs", "retry_of_id"), ("messages", "run_id"))


def upgrade() -> None:
    with op.batch_alter_table("workspace_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "subject_type",
                sa.Enum(
                    "WORKSPACE",
                    "DOCUMENT",
                    "CONVERSATION",
                    "COLLECTION",
                    "USER",
                    name="workspace_event_subject_type",
                    native_enum=False,
                    length=16,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("subject_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("subject_label", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("actor_name", sa.String(length=200), nullable=True))
    # Until now only runs wrote events: their subject is the run's.
    for column in _COLUMNS:
        op.execute(
            f"UPDATE workspace_events SET {column} = "
            f"(SELECT runs.{column} FROM runs WHERE runs.id = workspace_events.run_id) "
            "WHERE run_id IS NOT NULL"
        )
    # Deleting a run (retention, ADR 0088) makes the database find what refers to it: without
    # these each deleted run read the whole of workspace_events, runs and messages.
    for table, column in _RUN_REFERENCES:
        op.create_index(f"ix_{table}_{column}", table, [column])
    op.execute(
        "UPDATE workspace_events SET actor_name = "
        "(SELECT users.name FROM users WHERE users.id = workspace_events.actor_id) "
        "WHERE actor_id IS NOT NULL"
    )


def downgrade() -> None:
    for table, column in _RUN_REFERENCES:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
    with op.batch_alter_table("workspace_events", schema=None) as batch_op:
        for column in ("actor_name", *reversed(_COLUMNS)):
            batch_op.drop_column(column)
