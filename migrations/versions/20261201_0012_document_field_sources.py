"""documents: who or what wrote each field's value (document_field_sources)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

Existing documents get what can be known (ADR 0103): the title's source from how the document
came (a file name: FILE; pasted text: PERSON); the summary, key points and tags from the newest
finished SUMMARIZING and TAGGING steps of their ingestion runs, whose output said `model` or
`extractive` for a step as a whole; entities are the model's wherever a document has any.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIELDS = ("TITLE", "SUMMARY", "KEY_POINTS", "TAGS", "ENTITIES")
_SOURCES = ("PERSON", "MODEL", "TEXT", "FILE")
# A step's output source, for the fields it writes.
_STEP_FIELDS = {"SUMMARIZING": ("SUMMARY", "KEY_POINTS"), "TAGGING": ("TAGS",)}
_STEP_SOURCES = {"model": "MODEL", "extractive": "TEXT"}


def upgrade() -> None:
    op.create_table(
        "document_field_sources",
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column(
            "field",
            sa.Enum(*_FIELDS, name="document_field", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.Enum(*_SOURCES, name="field_source", native_enum=False, length=16),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_field_sources_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", "field", name=op.f("pk_document_field_sources")),
    )
    _backfill(op.get_bind())


def _backfill(connection: sa.Connection) -> None:
    documents = sa.table(
        "documents", sa.column("id", sa.Uuid()), sa.column("original_filename", sa.String())
    )
    entities = sa.table("document_entities", sa.column("document_id", sa.Uuid()))
    runs = sa.table(
        "runs",
        sa.column("id", sa.Uuid()),
        sa.column("subject_id", sa.Uuid()),
        sa.column("subject_type", sa.String()),
        sa.column("workflow", sa.String()),
    )
    steps = sa.table(
        "run_steps",
        sa.column("run_id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("status", sa.String()),
        sa.column("finished_at", sa.DateTime()),
        sa.column("output", sa.JSON()),
    )
    sources = sa.table(
        "document_field_sources",
        sa.column("document_id", sa.Uuid()),
        sa.column("field", sa.String()),
        sa.column("source", sa.String()),
    )
    found: dict[tuple[object, str], str] = {}
    for row in connection.execute(sa.select(documents.c.id, documents.c.original_filename)):
        found[(row.id, "TITLE")] = "FILE" if row.original_filename is not None else "PERSON"
    for (document_id,) in connection.execute(sa.select(entities.c.document_id).distinct()):
        found[(document_id, "ENTITIES")] = "MODEL"
    newest_first = (
        sa.select(runs.c.subject_id, steps.c.name, steps.c.output)
        .join(steps, steps.c.run_id == runs.c.id)
        .where(
            runs.c.subject_type == "DOCUMENT",
            runs.c.workflow == "ingest_document",
            steps.c.name.in_(list(_STEP_FIELDS)),
            steps.c.status == "SUCCEEDED",
        )
        .order_by(steps.c.finished_at.desc())
    )
    seen: set[tuple[object, str]] = set()
    for row in connection.execute(newest_first):
        if (row.subject_id, row.name) in seen:
            continue
        seen.add((row.subject_id, row.name))
        source = _STEP_SOURCES.get((row.output or {}).get("source"))
        if source is None:  # every field was a person's: the edit marks say so
            continue
        for field in _STEP_FIELDS[row.name]:
            found[(row.subject_id, field)] = source
    # Only rows of documents that still exist (a run outlives its deleted document).
    existing = {key[0] for key in found if key[1] == "TITLE"}
    rows = [
        {"document_id": d, "field": f, "source": s} for (d, f), s in found.items() if d in existing
    ]
    if rows:
        connection.execute(sources.insert(), rows)


def downgrade() -> None:
    op.drop_table("document_field_sources")
