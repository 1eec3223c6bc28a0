"""search: the GIN indexes write each entry into place, with no pending list (PostgreSQL only)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06

By default a GIN index appends new entries to a pending list, which every search reads in full
and rechecks, until VACUUM, autoanalyze or the list's 4 MB limit moves it into the index. While
ingestion writes passages, the full-text index's list held thousands of them: at 10,000
documents the keyword ranking took 10.4-12.0 ms with 2,495 pending passages and 5.9-6.1 ms
without (ADR 0149). With `fastupdate = off` each insert goes straight into the index: about 5 ms
more per document of 20 passages at INDEXING, and no search pays for a list. The titles'
trigram index (documents list, title filter) gets the same. The lists pending now are moved
into the indexes here: turning the option off does not empty them.
"""

from collections.abc import Sequence

from alembic import op

from base.models.documents import TITLE_TRIGRAM_INDEX
from base.models.search import FULL_TEXT_INDEX

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GIN_INDEXES = (FULL_TEXT_INDEX, TITLE_TRIGRAM_INDEX)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's FTS5 merges its own segments
    for index in _GIN_INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in _GIN_INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
