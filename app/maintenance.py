"""Upkeep: what an operator runs by hand or from a scheduler, and what the API process keeps
up by itself in the embedded default."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from base.db.engine import analyse_sqlite, build_engine, build_sessionmaker
from base.models.documents import Document
from base.settings import Settings
from services.deps import ServiceDeps
from services.hnsw_index import create_missing_indexes
from services.originals import BlobSweep, sweep_blobs
from services.ratelimit import AttemptLimiter
from services.reembedding import queue_reembedding
from services.retention import Pruned, prune

log = logging.getLogger("knowledge_desk.maintenance")
T = TypeVar("T")

_DOCUMENT_COUNT = select(func.count()).select_from(Document)
# How often the embedded default looks whether its statistics are out of date.
STATISTICS_CHECK_SECONDS = 300.0


@contextlib.asynccontextmanager
async def _own_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A command's engine, disposed of when it is done."""
    engine = build_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _once(settings: Settings, work: Callable[[ServiceDeps], Awaitable[T]]) -> T:
    """A command's one pass of `work`, with services on an engine of its own."""
    async with _own_engine(settings) as engine:
        deps = ServiceDeps(
            settings=settings,
            db=build_sessionmaker(engine),
            attempts=AttemptLimiter.build(settings),
        )
        return await work(deps)


async def sweep_blobs_once(settings: Settings) -> BlobSweep:
    """`python -m app sweep-blobs`: one sweep of the store of originals."""
    return await _once(settings, sweep_blobs)


async def prune_once(settings: Settings) -> Pruned:
    """`python -m app prune`: one pass of the retention rules (`services.retention`)."""
    return await _once(settings, prune)


async def create_vector_indexes(settings: Settings) -> list[str]:
    """`python -m app vector-indexes`: pgvector's HNSW index of each stored dimension that has
    none (`services.hnsw_index.create_missing_indexes`), on an engine of its own."""
    async with _own_engine(settings) as engine:
        return await create_missing_indexes(engine)


class Upkeep:
    """A process's background upkeep jobs. A job that has started runs to its end: stopping only
    cuts the waits between runs. (Cancelling a job halfway left an aiosqlite connect in flight
    whose thread answered after the event loop had closed.) `stop` waits up to its grace for
    the jobs in progress, then cancels what is left."""

    def __init__(self) -> None:
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def once(self, what: str, work: Callable[[], Awaitable[object]]) -> None:
        """`work` once, now; a failure is logged (the next start tries again)."""
        self._start(what, self._run(what, work))

    def every(
        self, what: str, seconds: float, work: Callable[[], Awaitable[object]], *, now: bool
    ) -> None:
        """`work` every `seconds`, from now or from one interval after now; a failure is logged
        and the next run comes an interval later."""
        self._start(what, self._repeat(what, seconds, work, now))

    async def stop(self, grace_seconds: float = 10.0) -> None:
        self._stopping.set()
        if not self._tasks:
            return
        _, late = await asyncio.wait(self._tasks, timeout=grace_seconds)
        for task in late:
            log.warning("%s still running after %.0f s; cancelled", task.get_name(), grace_seconds)
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, what: str, job: Coroutine[object, object, None]) -> None:
        self._tasks.append(asyncio.create_task(job, name=what))

    async def _run(self, what: str, work: Callable[[], Awaitable[object]]) -> None:
        try:
            await work()
        except Exception:
            log.warning("%s failed; trying again later", what, exc_info=True)

    async def _repeat(
        self, what: str, seconds: float, work: Callable[[], Awaitable[object]], now: bool
    ) -> None:
        if not now and await self._stopped_within(seconds):
            return
        while not self._stopping.is_set():
            await self._run(what, work)
            if await self._stopped_within(seconds):
                return

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()


def start_upkeep(deps: ServiceDeps, engine: AsyncEngine) -> Upkeep:
    """The API process's upkeep. `deps` must have the process's run launcher (re-embedding
    queues runs). The first retention and re-embedding passes wait one interval: a process that
    has just started has better things to do, and the others have done them meanwhile."""
    settings = deps.settings
    upkeep = Upkeep()
    upkeep.once("the blob sweep", lambda: sweep_blobs(deps))
    if settings.is_sqlite:
        upkeep.every(
            "ANALYZE", STATISTICS_CHECK_SECONDS, SqliteStatistics(engine).refresh, now=True
        )
    if settings.runs_inline:  # otherwise the workers prune
        upkeep.every(
            "pruning", settings.retention_interval_seconds, lambda: prune_and_log(deps), now=False
        )
    upkeep.every(
        "the check for documents to re-embed",
        settings.reembed_check_seconds,
        lambda: queue_reembedding_and_log(deps),
        now=False,
    )
    return upkeep


async def prune_and_log(deps: ServiceDeps) -> None:
    """One pass of the retention rules (`services.retention`), logged when it deleted rows."""
    pruned = await prune(deps)
    if pruned.total:
        log.info(
            "pruned %d runs, %d progress events and %d workspace events",
            pruned.runs,
            pruned.progress_events,
            pruned.workspace_events,
        )


async def queue_reembedding_and_log(deps: ServiceDeps) -> None:
    """A re-embedding run for each workspace with documents that have no vectors of
    EMBED_MODEL (`services.reembedding`)."""
    queued = await queue_reembedding(deps)
    if queued:
        log.info("queued %d re-embedding run(s) for %s", len(queued), deps.settings.embed_model)


def statistics_outdated(analysed_with: int | None, documents: int) -> bool:
    """Whether the number of documents moved enough since the last ANALYZE (a quarter, and at
    least 100) for the planner's estimates to be off; always before the first."""
    if analysed_with is None:
        return True
    return abs(documents - analysed_with) > max(100, analysed_with // 4)


class SqliteStatistics:
    """SQLite: ANALYZE at start and whenever the documents have grown or shrunk by a quarter,
    checked every STATISTICS_CHECK_SECONDS (ADR 0082). Without statistics SQLite's planner took
    the workspace's index for a collection filter and read all 10,000 documents (12 ms) instead
    of the collection's 1,000 (1.5 ms). PostgreSQL's autovacuum does this by itself."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._analysed_with: int | None = None

    async def refresh(self) -> None:
        async with self._engine.connect() as connection:
            documents = (await connection.execute(_DOCUMENT_COUNT)).scalar_one()
        if statistics_outdated(self._analysed_with, documents):
            await analyse_sqlite(self._engine)
            self._analysed_with = documents
            log.info("ANALYZE with %d documents", documents)
