"""Upkeep: what an operator runs by hand or from a scheduler, and what the API process keeps
up by itself in the embedded default."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from base.db.engine import analyse_sqlite, build_engine, build_sessionmaker
from base.models.documents import Document
from base.settings import Settings
from services.deps import ServiceDeps
from services.originals import BlobSweep, sweep_blobs
from services.ratelimit import AttemptLimiter
from services.reembedding import queue_reembedding
from services.retention import Pruned, prune

log = logging.getLogger("knowledge_desk.maintenance")
T = TypeVar("T")

_DOCUMENT_COUNT = select(func.count()).select_from(Document)
# How often the embedded default looks whether its statistics are out of date.
STATISTICS_CHECK_SECONDS = 300.0


async def _once(settings: Settings, work: Callable[[ServiceDeps], Awaitable[T]]) -> T:
    """A command's one pass of `work`, with services on an engine of its own."""
    engine = build_engine(settings)
    try:
        deps = ServiceDeps(
            settings=settings,
            db=build_sessionmaker(engine),
            attempts=AttemptLimiter.build(settings),
        )
        return await work(deps)
    finally:
        await engine.dispose()


async def sweep_blobs_once(settings: Settings) -> BlobSweep:
    """`python -m app sweep-blobs`: one sweep of the store of originals."""
    return await _once(settings, sweep_blobs)


async def prune_once(settings: Settings) -> Pruned:
    """`python -m app prune`: one pass of the retention rules (`services.retention`)."""
    return await _once(settings, prune)


async def prune_forever(deps: ServiceDeps) -> None:
    """Every RETENTION_INTERVAL_SECONDS, delete what is past its retention (workers, and the API
    process in the embedded default). It waits one interval first: a process that has just
    started has better things to do, and the others have pruned meanwhile."""
    while True:
        await asyncio.sleep(deps.settings.retention_interval_seconds)
        try:
            pruned = await prune(deps)
        except Exception:
            log.warning("pruning failed; trying again later", exc_info=True)
            continue
        if pruned.total:
            log.info(
                "pruned %d runs, %d progress events and %d workspace events",
                pruned.runs,
                pruned.progress_events,
                pruned.workspace_events,
            )


async def keep_embeddings_current(deps: ServiceDeps) -> None:
    """Every REEMBED_CHECK_SECONDS, queue a re-embedding run for each workspace with documents
    that have no vectors of EMBED_MODEL (`services.reembedding`); the first time one interval
    after the start. `deps` must have the process's run launcher."""
    while True:
        await asyncio.sleep(deps.settings.reembed_check_seconds)
        try:
            queued = await queue_reembedding(deps)
        except Exception:
            log.warning("the check for documents to re-embed failed", exc_info=True)
            continue
        if queued:
            log.info("queued %d re-embedding run(s) for %s", len(queued), deps.settings.embed_model)


async def sweep_blobs_at_start(deps: ServiceDeps) -> None:
    """Remove what a crashed upload left in the store (`services.originals.sweep_blobs`), in
    the background: a failure is logged, and the next start sweeps again."""
    try:
        await sweep_blobs(deps)
    except Exception:
        log.warning("the blob sweep failed; the next start tries again", exc_info=True)


def statistics_outdated(analysed_with: int | None, documents: int) -> bool:
    """Whether the number of documents moved enough since the last ANALYZE (a quarter, and at
    least 100) for the planner's estimates to be off; always before the first."""
    if analysed_with is None:
        return True
    return abs(documents - analysed_with) > max(100, analysed_with // 4)


async def keep_sqlite_statistics(
    engine: AsyncEngine, *, every_seconds: float = STATISTICS_CHECK_SECONDS
) -> None:
    """SQLite: ANALYZE at start and whenever the documents have grown or shrunk by a quarter,
    checked every `every_seconds` (ADR 0082). Without statistics SQLite's planner took the
    workspace's index for a collection filter and read all 10,000 documents (12 ms) instead of
    the collection's 1,000 (1.5 ms). PostgreSQL's autovacuum does this by itself."""
    analysed_with: int | None = None
    while True:
        try:
            async with engine.connect() as connection:
                documents = (await connection.execute(_DOCUMENT_COUNT)).scalar_one()
            if statistics_outdated(analysed_with, documents):
                await analyse_sqlite(engine)
                analysed_with = documents
                log.info("ANALYZE with %d documents", documents)
        except Exception:
            log.warning("ANALYZE failed; trying again later", exc_info=True)
        await asyncio.sleep(every_seconds)
