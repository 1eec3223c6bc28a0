"""search: passage vectors made again from their heading path and text

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

EMBEDDING now gives the model a passage's heading path before its text (ADR 0113). The vectors
made before embed the text alone; they are deleted so that a workspace never mixes the two, and
the re-embedding check (ADR 0089) gives every READY document new ones in the background. Until
then SEMANTIC search leaves those documents out and HYBRID finds them by their words. The
downgrade keeps the new vectors: they are vectors of the same model and dimension.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM chunk_vectors")


def downgrade() -> None:
    pass
