"""The full-text index of chunks on both databases (ADR 0050): how long indexing takes, what it
stores, how fast a keyword match is, and what the dotted-name rule changes.

    .venv/bin/python scripts/measure_fulltext.py [--pages 530]

Not part of the app or the tests. It migrates a fresh SQLite file and a throwaway PostgreSQL
(tests/support), writes the chunks of the Python docs' pages (extracted and chunked as
ingestion does; one document per page) and indexes each document with
`services.fulltext.index_document`. Then it prints, per database: indexing time per chunk, the
index's size next to the chunks table's, the p50 / p95 of `matching_chunk_ids` for a set of
queries (one word, two words, a dotted name) and how many chunks each finds; and, on
PostgreSQL, how many chunks `join` finds with and without splitting dotted names.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from app import migrate  # noqa: E402
from base.db.engine import build_sessionmaker  # noqa: E402
from base.models.accounts import User, Workspace  # noqa: E402
from base.models.documents import Chunk, Collection, Document, DocumentStatus  # noqa: E402
from base.models.search import FULL_TEXT_INDEX  # noqa: E402
from base.settings import Settings  # noqa: E402
from services import fulltext  # noqa: E402
from services.chunking import chunk  # noqa: E402
from services.extraction import extract  # noqa: E402
from tests.support import corpus  # noqa: E402
from tests.support.services import postgres_server  # noqa: E402

# "with": a stop word, found on PostgreSQL since migration 0011 (ADR 0100).
QUERIES = [
    "virtual environment",
    "join",
    "os.path.join",
    "asyncio event loop",
    "password",
    "with",
]


def pages(count: int) -> list[tuple[str, str, list]]:
    found = []
    for path in corpus.html_pages()[:count]:
        extracted = extract(path.read_bytes(), path.name)
        found.append((path.name, extracted.text, chunk(extracted.text, extracted.headings)))
    return found


async def measure(url: str, documents: list[tuple[str, str, list]]) -> None:
    engine = create_async_engine(url)
    db = build_sessionmaker(engine)
    dialect = engine.dialect.name
    workspace_id, user_id, collection_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with db.begin() as session:
        session.add(User(id=user_id, email="m@example.com", name="M", password_hash="x"))
        session.add(Workspace(id=workspace_id, name="W", created_by_id=user_id))
        await session.flush()
        session.add(Collection(id=collection_id, workspace_id=workspace_id, name="C"))
    ids = []
    for name, body, pieces in documents:
        document_id = uuid.uuid4()
        ids.append(document_id)
        async with db.begin() as session:
            session.add(
                Document(
                    id=document_id,
                    workspace_id=workspace_id,
                    collection_id=collection_id,
                    title=name,
                    status=DocumentStatus.READY,
                    content_type="text/html",
                    content_sha256=uuid.uuid4().hex * 2,
                    text=body,
                )
            )
            await session.flush()
            if pieces:
                await session.execute(
                    insert(Chunk),
                    [
                        {
                            "id": uuid.uuid4(),
                            "document_id": document_id,
                            "workspace_id": workspace_id,
                            "position": p.position,
                            "text": p.text,
                            "heading_path": list(p.heading_path),
                            "char_start": p.char_start,
                            "char_end": p.char_end,
                            "token_count": p.token_count,
                        }
                        for p in pieces
                    ],
                )
    chunks = sum(len(p) for _, _, p in documents)
    before = await _sqlite_bytes(db) if dialect == "sqlite" else 0
    started = time.perf_counter()
    for document_id in ids:
        async with db.begin() as session:
            await fulltext.index_document(session, document_id)
    seconds = time.perf_counter() - started
    print(
        f"{dialect}: {len(documents)} documents, {chunks} chunks indexed in {seconds:.2f} s "
        f"({seconds / chunks * 1000:.2f} ms per chunk)"
    )
    async with db() as session:
        if dialect == "postgresql":
            sizes = {
                t: (await session.execute(text(f"SELECT pg_total_relation_size('{t}')"))).scalar()
                for t in ("chunks", "chunk_search")
            }
            index = (
                await session.execute(text(f"SELECT pg_relation_size('{FULL_TEXT_INDEX}')"))
            ).scalar()
            print(
                f"  bytes: chunks {sizes['chunks']:,}, chunk_search {sizes['chunk_search']:,} "
                f"(GIN index {index:,})"
            )
        else:
            after = await _sqlite_bytes(db)
            print(
                f"  database file {before:,} bytes before indexing, {after:,} after "
                f"(the index: {after - before:,})"
            )
    for query in QUERIES:
        timings, found = [], 0
        for _ in range(30):
            async with db() as session:
                began = time.perf_counter()
                result = await fulltext.matching_chunk_ids(
                    session, workspace_id=workspace_id, query=query, limit=10
                )
                timings.append((time.perf_counter() - began) * 1000)
                found = len(result)
        timings.sort()
        print(
            f"  {query!r}: p50 {statistics.median(timings):.2f} ms, "
            f"p95 {timings[int(len(timings) * 0.95) - 1]:.2f} ms, top-10 found {found}"
        )
    if dialect == "postgresql":
        async with db() as session:
            for label, expression in (
                ("as indexed (dots split)", "s.search_vector @@ to_tsquery('english', 'join')"),
                (
                    "without splitting",
                    "to_tsvector('english', c.text) @@ to_tsquery('english', 'join')",
                ),
            ):
                count = (
                    await session.execute(
                        text(
                            "SELECT count(*) FROM chunk_search s "
                            f"JOIN chunks c ON c.id = s.chunk_id WHERE {expression}"
                        )
                    )
                ).scalar()
                print(f"  chunks matching 'join' {label}: {count}")
    await engine.dispose()


async def _sqlite_bytes(db) -> int:  # type: ignore[no-untyped-def]
    async with db() as session:
        page_size = (await session.execute(text("PRAGMA page_size"))).scalar()
        page_count = (await session.execute(text("PRAGMA page_count"))).scalar()
    return int(page_size * page_count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=530)
    args = parser.parse_args()
    documents = pages(args.pages)
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite+aiosqlite:///{workdir}/fts.sqlite3"
        migrate.upgrade(url)
        asyncio.run(measure(url, documents))
    with postgres_server() as raw:
        url = Settings(database_url=raw).database_url
        migrate.upgrade(url)
        asyncio.run(measure(url, documents))


if __name__ == "__main__":
    main()
