"""Re-embedding after a change of embedding model (ADR 0089).

Search reads the vectors of the current `EMBED_MODEL` only, so after a change the documents
embedded before it are missing from SEMANTIC results until they have vectors of the new model.
`queue_reembedding` (run every REEMBED_CHECK_SECONDS by each API process) finds the READY
documents with a passage that has no vector of the current model and queues, per workspace,
one `reembed_workspace` run; its one step embeds those documents one by one, with progress, and
leaves their status, text and enrichment alone. Documents that an ingestion run holds are left
to it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select

from base.db.engine import take_turn
from base.db.types import utcnow
from base.errors import DomainError
from base.models.accounts import Workspace
from base.models.documents import Chunk, ChunkVector, Document, DocumentStatus
from base.models.runs import Run, RunStatus, SubjectType
from services import runs
from services.deps import ServiceDeps
from services.ingestion import ACTIVE, INGEST_DOCUMENT, embed_passages
from services.run_log import Outbox

log = logging.getLogger("knowledge_desk.reembedding")

DOCUMENTS_PER_READ = 20
_LOCK_KEY = "kd:reembedding"


def _summarize(results: dict[str, Any]) -> str:
    done = results.get("EMBEDDING") or {}
    return f"re-embedded {done.get('documents', 0)} documents with {done.get('model', '?')}" + (
        f"; {done['skipped']} skipped" if done.get("skipped") else ""
    )


REEMBED_WORKSPACE = runs.RunKind("reembed_workspace", ("EMBEDDING",), summarize=_summarize)


def _stale(model: str) -> Any:
    """READY documents with a passage lacking a vector of `model`, not held by an ingestion."""
    passage_without_vector = (
        select(Chunk.id)
        .outerjoin(ChunkVector, and_(ChunkVector.chunk_id == Chunk.id, ChunkVector.model == model))
        .where(Chunk.document_id == Document.id, ChunkVector.chunk_id.is_(None))
    )
    ingesting = select(Run.id).where(
        Run.subject_type == SubjectType.DOCUMENT,
        Run.subject_id == Document.id,
        Run.workflow == INGEST_DOCUMENT.name,
        Run.status.in_(ACTIVE),
    )
    return and_(
        Document.status == DocumentStatus.READY,
        exists(passage_without_vector),
        ~exists(ingesting),
    )


async def queue_reembedding(deps: ServiceDeps) -> list[uuid.UUID]:
    """One `reembed_workspace` run per workspace that has stale documents and neither such a run
    queued or running nor one that failed or was cancelled (by an admin, who may want the
    machine's time back) within REEMBED_RETRY_SECONDS; the runs' ids."""
    model = deps.settings.embed_model
    stale_by_workspace = (
        select(Document.workspace_id, func.count())
        .where(_stale(model))
        .group_by(Document.workspace_id)
    )
    # Read first without the write lock: nearly always nothing is stale (the read takes 90 ms
    # on PostgreSQL and 300 ms on SQLite at 10,000 documents, and SQLite's lock would hold up
    # every writer meanwhile).
    async with deps.db() as session:
        if not (await session.execute(stale_by_workspace.limit(1))).first():
            return []
    outbox = Outbox()
    queued: list[uuid.UUID] = []
    async with deps.db.begin() as session:
        if not await take_turn(session, _LOCK_KEY):
            return []
        stale = (await session.execute(stale_by_workspace)).all()
        if not stale:
            return []
        retry_after = utcnow() - timedelta(seconds=deps.settings.reembed_retry_seconds)
        busy = set(
            (
                await session.execute(
                    select(Run.workspace_id).where(
                        Run.workflow == REEMBED_WORKSPACE.name,
                        Run.workspace_id.in_([w for w, _ in stale]),
                        (Run.status.in_(ACTIVE))
                        | (
                            Run.status.in_((RunStatus.FAILED, RunStatus.CANCELLED))
                            & (Run.created_at > retry_after)
                        ),
                    )
                )
            ).scalars()
        )
        names = dict(
            (
                await session.execute(
                    select(Workspace.id, Workspace.name).where(
                        Workspace.id.in_([w for w, _ in stale])
                    )
                )
            ).all()
        )
        for workspace_id, count in stale:
            if workspace_id in busy:
                continue
            run = await runs.create_run(
                session,
                outbox,
                workspace_id=workspace_id,
                kind=REEMBED_WORKSPACE,
                subject_type=SubjectType.WORKSPACE,
                subject_id=workspace_id,
                subject_label=names[workspace_id],
                triggered_by_id=None,
                params={"workspace_id": str(workspace_id)},
                input_summary=f"{count} documents without vectors of {model}",
            )
            queued.append(run.id)
    if queued:
        await runs.launch(deps, outbox, queued)
    return queued


async def _next_stale(
    deps: ServiceDeps, workspace_id: uuid.UUID, model: str, tried: set[uuid.UUID]
) -> list[uuid.UUID]:
    async with deps.db() as session:
        found = (
            await session.execute(
                select(Document.id)
                .where(Document.workspace_id == workspace_id, _stale(model))
                .order_by(Document.id)
                .limit(DOCUMENTS_PER_READ + len(tried))
            )
        ).scalars()
        return [d for d in found if d not in tried][:DOCUMENTS_PER_READ]


async def reembedding(deps: ServiceDeps, *, workspace_id: str, **_: Any) -> dict[str, Any]:
    """The step: embed the workspace's stale documents with the current model, one by one.

    A document deleted, re-chunked or taken by an ingestion meanwhile is skipped (its own run
    embeds it); a model failure fails the run, and what was embedded stays."""
    workspace = uuid.UUID(workspace_id)
    model = deps.settings.embed_model
    async with deps.db() as session:
        total = (
            await session.execute(
                select(func.count()).where(Document.workspace_id == workspace, _stale(model))
            )
        ).scalar_one()
    deps.progress(0, total, f"re-embedding {total} documents with {model}")
    tried: set[uuid.UUID] = set()
    done = skipped = tokens = 0
    model_seconds = 0.0
    while batch := await _next_stale(deps, workspace, model, tried):
        for document_id in batch:
            tried.add(document_id)
            try:
                embedded = await embed_passages(deps, document_id, model)
            except DomainError as exc:
                if exc.code not in ("DOCUMENT_DELETED", "DOCUMENT_CHANGED"):
                    raise
                skipped += 1
                continue
            model_seconds += embedded.model_seconds
            tokens += embedded.tokens
            done += 1
            deps.progress(
                done, max(total, done), f"re-embedded {done} of {max(total, done)} documents"
            )
    return {
        "documents": done,
        "skipped": skipped,
        "model": model,
        "embedding_tokens": tokens,  # the Usage tab sums them
        "model_seconds": round(model_seconds, 3),
    }
