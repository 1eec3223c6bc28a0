"""Benchmark: deleting a workspace of N documents on PostgreSQL (ADR 0108).

    uv run --frozen python bench/bench_delete_workspace.py [--full] [--documents N]

Quick by default (2,000 documents); `--full` deletes a workspace of 10,000 (the documents
screens' benchmark workspace: its members, collections, documents with tags, entities, edit
marks and about 13 passages each, runs and activity, seeded by bench_documents.seed). A script,
not a test: it prints figures and asserts nothing.

Two identical workspaces are seeded in one throwaway PostgreSQL. The first is deleted by the
service (`services.workspaces.delete_workspace`, as `deleteWorkspace` runs it: role check, locks,
the documents' rows, the workspace's cascade, then the originals released one by one under
their locks); the second by the same rows' DELETE statements written by hand in one
transaction, with nothing else (the baseline), and then its originals released as the service
releases them, timed alone. Printed: the time of each, the service's time less the release (its
transaction: the write lock is held that long), and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from app import migrate  # noqa: E402
from base.auth.principal import Principal  # noqa: E402
from base.db.engine import build_engine, build_sessionmaker  # noqa: E402
from base.models.accounts import Workspace  # noqa: E402
from base.models.documents import Chunk, Document  # noqa: E402
from bench.bench_documents import bench_settings, seed  # noqa: E402
from bench.common import add_size_flag, apply_sizes  # noqa: E402
from services import originals, workspaces  # noqa: E402
from services.deps import ServiceDeps  # noqa: E402
from services.ratelimit import AttemptLimiter  # noqa: E402

# The rows of a workspace's documents, then the workspace (the rest cascades), as hand-written
# SQL: the same statements the service's transaction runs, without its checks and locks.
_OF_THE_DOCUMENTS = "WHERE document_id IN (SELECT id FROM documents WHERE workspace_id = :w)"
BASELINE = [
    f"DELETE FROM {table} {_OF_THE_DOCUMENTS}"
    for table in (
        "chunks",
        "document_tags",
        "document_entities",
        "document_field_edits",
        "document_field_sources",
    )
] + [
    "DELETE FROM documents WHERE workspace_id = :w",
    "DELETE FROM workspaces WHERE id = :w",
]


async def run(documents: int, database_url: str) -> None:
    settings = bench_settings(database_url)
    engine = build_engine(settings)
    try:
        first = await seed(engine, documents, settings)
        second = await seed(engine, documents, settings)
        db = build_sessionmaker(engine)
        async with db() as session:
            chunks = (
                await session.execute(
                    select(func.count())
                    .select_from(Chunk)
                    .join(Document, Document.id == Chunk.document_id)
                    .where(Document.workspace_id == first.workspace_id)
                )
            ).scalar_one()
            name = (await session.get(Workspace, first.workspace_id)).name  # type: ignore[union-attr]
            await session.execute(text("ANALYZE"))
            await session.commit()
        print(f"  each workspace: {documents} documents, {chunks} passages")

        deps = ServiceDeps(
            settings=settings,
            db=db,
            attempts=AttemptLimiter.build(settings),
            principal=Principal(user_id=first.owner_id),
        )
        began = time.perf_counter()
        await workspaces.delete_workspace(deps, workspace_id=first.workspace_id, name=name)
        service = time.perf_counter() - began

        async with db() as session:
            digests = list(
                (
                    await session.execute(
                        select(Document.content_sha256)
                        .where(Document.workspace_id == second.workspace_id)
                        .distinct()
                    )
                ).scalars()
            )
        began = time.perf_counter()
        async with engine.begin() as connection:
            for statement in BASELINE:
                await connection.execute(text(statement), {"w": second.workspace_id})
        baseline = time.perf_counter() - began
        # What the service does after its commit, measured on the twin's originals (the same
        # number of digests, now unreferenced): one short transaction per digest, under its lock.
        began = time.perf_counter()
        await originals.release_unreferenced(deps, digests)
        after_commit = time.perf_counter() - began

        print(
            f"  deleteWorkspace (service): {service:.2f} s in all; of it about "
            f"{after_commit:.2f} s releasing {len(digests)} originals after the commit "
            f"(measured on the twin), so about {service - after_commit:.2f} s in the transaction"
        )
        print(f"  hand-written DELETEs in one transaction (baseline): {baseline:.2f} s")
        print(
            f"  ratio: {service / baseline:.2f}x in all, "
            f"{(service - after_commit) / baseline:.2f}x for the transaction"
        )
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--documents", type=int, help="documents in each workspace")
    add_size_flag(parser, quick={"documents": 2000}, full={"documents": 10_000})
    args = apply_sizes(parser.parse_args())
    from tests.support.services import postgres_server

    with postgres_server() as url:
        migrate.upgrade(bench_settings(url).database_url)
        print(f"deleting a workspace on PostgreSQL, {args.documents} documents")
        asyncio.run(run(args.documents, bench_settings(url).database_url))


if __name__ == "__main__":
    main()
