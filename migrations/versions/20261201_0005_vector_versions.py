"""search: vector_versions and chunk_vectors.seq, kept current by triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Semantic search caches each workspace's vectors per process (ADR 0061) and needs to learn
cheaply what changed. `vector_versions` has a row per workspace and model: a trigger gives every
inserted vector `seq` = the incremented `version` (taken under the row's lock, so in commit
order), and another bumps `version` and `deletions` for every deleted vector, cascades included.
Vectors already stored are numbered here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Vectors stored before this migration: numbered per workspace and model.
NUMBER_EXISTING = (
    """
    UPDATE chunk_vectors SET seq = numbered.n
    FROM (
        SELECT chunk_id, row_number() OVER (
            PARTITION BY workspace_id, model ORDER BY chunk_id
        ) AS n
        FROM chunk_vectors
    ) AS numbered
    WHERE chunk_vectors.chunk_id = numbered.chunk_id
    """,
    """
    INSERT INTO vector_versions (workspace_id, model, version, deletions)
    SELECT workspace_id, model, count(*), 0 FROM chunk_vectors GROUP BY workspace_id, model
    """,
)

POSTGRESQL_TRIGGERS = (
    """
    CREATE FUNCTION chunk_vectors_number() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO vector_versions AS v (workspace_id, model, version, deletions)
        VALUES (NEW.workspace_id, NEW.model, 1, 0)
        ON CONFLICT (workspace_id, model) DO UPDATE SET version = v.version + 1
        RETURNING v.version INTO NEW.seq;
        RETURN NEW;
    END
    $$
    """,
    # An update that changes a vector in place (none does today) counts as a delete and an
    # insert, so a cache drops the old row and loads the new one.
    """
    CREATE FUNCTION chunk_vectors_renumber() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE vector_versions AS v SET version = v.version + 1, deletions = v.deletions + 1
        WHERE v.workspace_id = OLD.workspace_id AND v.model = OLD.model;
        INSERT INTO vector_versions AS v (workspace_id, model, version, deletions)
        VALUES (NEW.workspace_id, NEW.model, 1, 0)
        ON CONFLICT (workspace_id, model) DO UPDATE SET version = v.version + 1
        RETURNING v.version INTO NEW.seq;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE FUNCTION chunk_vectors_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE vector_versions AS v
        SET version = v.version + d.n, deletions = v.deletions + d.n
        FROM (
            SELECT workspace_id, model, count(*) AS n FROM deleted GROUP BY workspace_id, model
        ) AS d
        WHERE v.workspace_id = d.workspace_id AND v.model = d.model;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER chunk_vectors_number BEFORE INSERT ON chunk_vectors
    FOR EACH ROW EXECUTE FUNCTION chunk_vectors_number()
    """,
    """
    CREATE TRIGGER chunk_vectors_renumber BEFORE UPDATE OF
        chunk_id, document_id, workspace_id, model, dimension, vector ON chunk_vectors
    FOR EACH ROW EXECUTE FUNCTION chunk_vectors_renumber()
    """,
    """
    CREATE TRIGGER chunk_vectors_count_deleted AFTER DELETE ON chunk_vectors
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION chunk_vectors_count_deleted()
    """,
)

POSTGRESQL_DROP = (
    "DROP TRIGGER chunk_vectors_count_deleted ON chunk_vectors",
    "DROP TRIGGER chunk_vectors_renumber ON chunk_vectors",
    "DROP TRIGGER chunk_vectors_number ON chunk_vectors",
    "DROP FUNCTION chunk_vectors_count_deleted()",
    "DROP FUNCTION chunk_vectors_renumber()",
    "DROP FUNCTION chunk_vectors_number()",
)

# SQLite runs one writer at a time, so numbering inside the writer's transaction is in commit
# order by construction. The seq-only UPDATE of the first trigger does not fire the second
# (`UPDATE OF` lists every other column).
_SQLITE_BUMP = """
    INSERT INTO vector_versions (workspace_id, model, version, deletions)
    VALUES (NEW.workspace_id, NEW.model, 1, 0)
    ON CONFLICT (workspace_id, model) DO UPDATE SET version = version + 1;
    UPDATE chunk_vectors SET seq = (
        SELECT version FROM vector_versions
        WHERE workspace_id = NEW.workspace_id AND model = NEW.model
    ) WHERE chunk_id = NEW.chunk_id;
"""
_SQLITE_COUNT_DELETED = """
    UPDATE vector_versions SET version = version + 1, deletions = deletions + 1
    WHERE workspace_id = OLD.workspace_id AND model = OLD.model;
"""
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER chunk_vectors_number AFTER INSERT ON chunk_vectors BEGIN {_SQLITE_BUMP} END",
    f"""
    CREATE TRIGGER chunk_vectors_renumber AFTER UPDATE OF
        chunk_id, document_id, workspace_id, model, dimension, vector ON chunk_vectors
    BEGIN {_SQLITE_COUNT_DELETED} {_SQLITE_BUMP} END
    """,
    f"""
    CREATE TRIGGER chunk_vectors_count_deleted AFTER DELETE ON chunk_vectors
    BEGIN {_SQLITE_COUNT_DELETED} END
    """,
)

SQLITE_DROP = (
    "DROP TRIGGER chunk_vectors_count_deleted",
    "DROP TRIGGER chunk_vectors_renumber",
    "DROP TRIGGER chunk_vectors_number",
)


def upgrade() -> None:
    op.create_table(
        "vector_versions",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("deletions", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_vector_versions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "model", name=op.f("pk_vector_versions")),
    )
    with op.batch_alter_table("chunk_vectors", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.drop_index("ix_chunk_vectors_workspace_model")
        batch_op.create_index(
            "ix_chunk_vectors_workspace_model_seq", ["workspace_id", "model", "seq"], unique=False
        )
    for statement in NUMBER_EXISTING:
        op.execute(statement)
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_DROP if postgresql else SQLITE_DROP:
        op.execute(statement)
    with op.batch_alter_table("chunk_vectors", schema=None) as batch_op:
        batch_op.drop_index("ix_chunk_vectors_workspace_model_seq")
        batch_op.create_index(
            "ix_chunk_vectors_workspace_model", ["workspace_id", "model"], unique=False
        )
        batch_op.drop_column("seq")
    op.drop_table("vector_versions")
