"""search: the full-text index keyed by workspace first (PostgreSQL only)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

Every keyword statement names its workspace. With the GIN index on `search_vector` alone,
PostgreSQL found the passages of every workspace holding the query's words and dropped the other
workspaces' ones after reading them, so a search slowed with the whole database, not with the
workspace searched (ADR 0120: at ten workspaces of 50,000 passages the ranking took five times
as long as at one). A GIN index on `(workspace_id, search_vector)`, through `btree_gin`, finds
one workspace's matches. It replaces the old index: no statement searches across workspaces.

`btree_gin` ships with PostgreSQL (contrib) and is a trusted extension, which the database's
owner may create, as `pg_trgm` of migration 0007. The index is built in the migration's
transaction, which holds off writes to `chunk_search` (ingestion's INDEXING step) meanwhile;
searches go on. On a large database, build it beforehand with `CREATE INDEX CONCURRENTLY` under
the same name (docs/operations.md): this migration then keeps it.
"""

from collections.abc import Sequence

from alembic import op

from base.models.search import FULL_TEXT_INDEX

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WORDS_ONLY_INDEX = "ix_chunk_search_search_vector"  # migration 0004's


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.execute(
        f"CREATE INDEX IF NOT EXISTS {FULL_TEXT_INDEX} ON chunk_search "
        "USING gin (workspace_id, search_vector)"
    )
    op.execute(f"DROP INDEX IF EXISTS {_WORDS_ONLY_INDEX}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX {_WORDS_ONLY_INDEX} ON chunk_search USING gin (search_vector)")
    op.execute(f"DROP INDEX {FULL_TEXT_INDEX}")
    # The extension stays: other objects of the database may use it.
