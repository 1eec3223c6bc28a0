"""The search benchmarks' corpus: pages of the Python documentation ingested by the ingestion's
own step functions into a database, kept between runs.

    pages = corpus_pages(count)            # every page the questions name, then distractors
    async with corpus_database(pages, ollama_host=...) as corpus: ...

Ingestion runs EXTRACTING, CHUNKING, INDEXING and EMBEDDING (services.ingestion) for each page,
and skips SUMMARIZING and TAGGING: search reads neither, and the chat model would add an hour.
The ingested SQLite file is kept under var/bench-search/ (named after the page set, the
embedding model and the chunk size), so a second run measures without embedding again;
`copy_to` puts the same documents, passages and vectors into another database and runs the
INDEXING step there (PostgreSQL's full-text index is built by that database itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from app import migrate
from base.auth.principal import Principal
from base.db.engine import build_engine, build_sessionmaker
from base.models.accounts import Membership, Role, User, Workspace
from base.models.documents import Chunk, ChunkVector, Collection, Document, DocumentStatus
from base.settings import Settings
from services import chunking, document_vectors, ingestion, reembedding
from services.blobs import blob_store
from services.deps import ServiceDeps
from services.ratelimit import AttemptLimiter

ROOT = Path(__file__).resolve().parents[1]
HTML_ROOT = Path("/usr/share/doc/python3.11-doc/html")
QUESTIONS = ROOT / "bench" / "quality" / "questions.json"
CACHE = ROOT / "var" / "bench-search"
SECRET = "bench-search-secret-0123456789abcdef0123"
USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
WORKSPACE_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
COLLECTION_ID = uuid.UUID("00000000-0000-4000-8000-000000000003")


def questions(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    """A question set (bench/quality/*.json). The corpus is chosen by QUESTIONS alone, so every
    set is asked of the same pages."""
    loaded: list[dict[str, Any]] = json.loads(path.read_text())["questions"]
    return loaded


def corpus_pages(count: int) -> list[str]:
    """Every page a question names, then the smallest other pages up to `count` pages in all
    (relative paths, sorted). Small distractors keep the embedding time of a run in minutes on
    a 2-core machine; all 530 pages with `count` 530."""
    named = {page for q in questions() for page in q.get("pages", [])}
    others = sorted(
        (p.stat().st_size, str(p.relative_to(HTML_ROOT)))
        for p in HTML_ROOT.rglob("*.html")
        if str(p.relative_to(HTML_ROOT)) not in named
    )
    chosen = named | {page for _, page in others[: max(0, count - len(named))]}
    return sorted(chosen)


def settings_for(database_url: str, ollama_host: str, blob_root: Path, **changes: Any) -> Settings:
    """The benchmarks' settings: a query's embedding may take 30 s (the figures measure
    rankings and the database, and the model server is shared with other work)."""
    fields: dict[str, Any] = {
        "app_env": "test",
        "database_url": database_url,
        "jwt_secret": SECRET,
        "ollama_host": ollama_host,
        "blob_root": str(blob_root),
        "run_execution": "inline",
        "search_embed_timeout_seconds": 30.0,
        **changes,
    }
    return Settings(**fields)


def deps_for(settings: Settings) -> tuple[ServiceDeps, Any]:
    engine = build_engine(settings)
    deps = ServiceDeps(
        settings=settings,
        db=build_sessionmaker(engine),
        attempts=AttemptLimiter.build(settings),
        principal=Principal(user_id=USER_ID),
    )
    return deps, engine


@dataclass
class Corpus:
    deps: ServiceDeps
    pages: dict[uuid.UUID, str]  # document id -> page path
    path: Path

    @property
    def ids_of(self) -> dict[str, uuid.UUID]:
        return {page: doc for doc, page in self.pages.items()}


async def _owner_rows(db: async_sessionmaker[Any]) -> None:
    async with db.begin() as session:
        if await session.get(User, USER_ID) is not None:
            return
        session.add(User(id=USER_ID, email="bench@example.com", name="Bench", password_hash="-"))
        await session.flush()
        session.add(Workspace(id=WORKSPACE_ID, name="Python docs", created_by_id=USER_ID))
        await session.flush()
        session.add(Membership(workspace_id=WORKSPACE_ID, user_id=USER_ID, role=Role.OWNER))
        session.add(
            Collection(
                id=COLLECTION_ID,
                workspace_id=WORKSPACE_ID,
                name="Python 3.11",
                description="",
                created_by_id=USER_ID,
            )
        )


async def _ingest_page(deps: ServiceDeps, page: str) -> uuid.UUID:
    data = (HTML_ROOT / page).read_bytes()
    digest = await blob_store(deps.settings.blob_root).put(data)
    document = Document(
        id=uuid.uuid5(WORKSPACE_ID, page),
        workspace_id=WORKSPACE_ID,
        collection_id=COLLECTION_ID,
        owner_id=USER_ID,
        title=page,
        status=DocumentStatus.QUEUED,
        content_type="text/html",
        original_filename=page.rsplit("/", 1)[-1],
        size_bytes=len(data),
        content_sha256=digest,
    )
    async with deps.db.begin() as session:
        await session.execute(delete(Document).where(Document.id == document.id))
        session.add(document)
    step = {"document_id": str(document.id)}
    await ingestion.extracting(deps, **step)
    await ingestion.chunking_step(deps, **step)
    await ingestion.indexing(deps, **step)
    await ingestion.embedding(deps, **step)
    async with deps.db.begin() as session:
        stored = await session.get(Document, document.id)
        assert stored is not None
        stored.status, stored.stage = DocumentStatus.READY, None
    return document.id


async def _ready(db: async_sessionmaker[Any]) -> dict[uuid.UUID, str]:
    async with db() as session:
        rows = await session.execute(
            select(Document.id, Document.original_filename, Document.content_sha256).where(
                Document.status == DocumentStatus.READY
            )
        )
        return {row[0]: row[1] for row in rows}


@asynccontextmanager
async def corpus_database(
    pages: list[str], *, ollama_host: str, embed_model: str, chunk_max_tokens: int = 200
) -> AsyncIterator[Corpus]:
    """The pages ingested into a SQLite file of var/bench-search (reused when it has them)."""
    # The passage's text for the embedding model is part of the key: a file made with another
    # recipe (the text alone, before ADR 0113) is not reused.
    recipe = chunking.embedding_text(["heading"], " ".join(["passage"] * 20))
    key = hashlib.sha256(
        json.dumps([pages, embed_model, chunk_max_tokens, recipe]).encode()
    ).hexdigest()[:12]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"corpus-{len(pages)}-{key}.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(migrate.upgrade, url)  # alembic runs its own event loop
    settings = settings_for(
        url,
        ollama_host,
        CACHE / "blobs",
        embed_model=embed_model,
        chunk_max_tokens=chunk_max_tokens,
    )
    deps, engine = deps_for(settings)
    try:
        await _owner_rows(deps.db)
        done = {uuid.uuid5(WORKSPACE_ID, p) for p in pages} & set(await _ready(deps.db))
        todo = [p for p in pages if uuid.uuid5(WORKSPACE_ID, p) not in done]
        began = time.perf_counter()
        for n, page in enumerate(todo, 1):
            await _ingest_page(deps, page)
            if n % 10 == 0 or n == len(todo):
                elapsed = time.perf_counter() - began
                print(f"  ingested {n}/{len(todo)} pages in {elapsed:.0f} s", flush=True)
        # A migration may have dropped vectors (0013 did): the product's re-embedding step
        # makes them again.
        again = await reembedding.reembedding(deps, workspace_id=str(WORKSPACE_ID))
        if again["documents"]:
            print(f"  embedded again the passages of {again['documents']} documents", flush=True)
        ids = {uuid.uuid5(WORKSPACE_ID, p): p for p in pages}
        yield Corpus(deps=deps, pages=ids, path=path)
    finally:
        await engine.dispose()


async def corpus_counts(deps: ServiceDeps) -> dict[str, int]:
    async with deps.db() as session:
        return {
            "documents": (
                await session.execute(text("SELECT count(*) FROM documents"))
            ).scalar_one(),
            "chunks": (await session.execute(text("SELECT count(*) FROM chunks"))).scalar_one(),
            "vectors": (
                await session.execute(text("SELECT count(*) FROM chunk_vectors"))
            ).scalar_one(),
        }


@asynccontextmanager
async def postgres_copy(
    source: ServiceDeps, ollama_host: str, *, embed_model: str, pgvector: bool = False
) -> AsyncIterator[ServiceDeps]:
    """A throwaway PostgreSQL (with pgvector when asked, where every semantic ranking goes
    through its index, ADR 0114), migrated and holding a copy of `source`'s corpus; its deps."""
    from tests.support.services import pgvector_postgres_server, postgres_server

    server = pgvector_postgres_server if pgvector else postgres_server
    with server() as url:
        settings = settings_for(
            url,
            ollama_host,
            source.settings.blob_root,
            embed_model=embed_model,
            search_vector_index="hnsw" if pgvector else "auto",
        )
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
        target, engine = deps_for(settings)
        try:
            await copy_to(source, target)
            yield target
        finally:
            await engine.dispose()


async def copy_to(source: ServiceDeps, target: ServiceDeps) -> None:
    """The owner, workspace, collection, documents, chunks and vectors of `source` written into
    `target` (emptied of them first), then the INDEXING step run there for every document."""
    await _owner_rows(target.db)
    async with target.db.begin() as session:
        await session.execute(delete(Document).where(Document.workspace_id == WORKSPACE_ID))
    tables = (Document.__table__, Chunk.__table__, ChunkVector.__table__)
    for table in tables:
        columns = [c for c in table.columns if c.name != "seq"]
        async with source.db() as session:
            rows = [dict(r._mapping) for r in await session.execute(select(*columns))]
        for start in range(0, len(rows), 2000):
            async with target.db.begin() as session:
                await session.execute(insert(table), rows[start : start + 2000])
    ready = list(await _ready(target.db))
    for document_id in ready:
        await ingestion.indexing(target, document_id=str(document_id))
    async with target.db.begin() as session:
        await session.execute(
            update(Document)
            .where(Document.id.in_(ready))
            .values(status=DocumentStatus.READY, stage=None)
        )
        # Each document's own vector, as EMBEDDING writes it (ADR 0116).
        await document_vectors.refresh(
            session, target.settings.embed_model, workspace_id=WORKSPACE_ID
        )
    # The planner's statistics, as autovacuum gathers them after a bulk insert: without them it
    # takes the new workspace for an empty one (for pgvector's index, ADR 0114, that meant
    # sorting every passage instead of asking the index).
    async with target.db() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("ANALYZE"))
            await session.commit()


def run(coro: Any) -> Any:
    return asyncio.run(coro)
