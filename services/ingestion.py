"""Ingestion: the `ingest_document` run that turns an uploaded original into a READY document.

EXTRACTING -> CHUNKING -> INDEXING -> EMBEDDING -> SUMMARIZING -> TAGGING, one step function
each, so the uploader watches every stage. Steps hand work to each other through the database
(the document's text, its chunks), never through step outputs, so a retry that reuses the
steps that succeeded resumes at the failed one. Each step is idempotent: it replaces what an
earlier attempt of the same step wrote.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from base.db.types import utcnow
from base.errors import DomainError, NotFound
from base.models.documents import Chunk, Document, DocumentStage, DocumentStatus
from base.models.runs import Run, SubjectType
from services import chunking, runs
from services.blobs import blob_store
from services.deps import ServiceDeps
from services.extraction import extract_isolated
from services.run_log import Outbox

STEPS = tuple(stage.value for stage in DocumentStage)


def _summarize(results: dict[str, Any]) -> str:
    chunked = results.get("CHUNKING") or {}
    return f"{chunked.get('chunks', 0)} chunks"


INGEST_DOCUMENT = runs.RunKind("ingest_document", STEPS, summarize=_summarize)


async def queue_ingestion(
    session: AsyncSession,
    outbox: Outbox,
    document: Document,
    *,
    triggered_by_id: uuid.UUID | None,
) -> Run:
    """A QUEUED `ingest_document` run for `document`, inside the caller's transaction; the
    document is QUEUED with no error. The caller commits, then `runs.launch`es the run."""
    document.status = DocumentStatus.QUEUED
    document.stage = None
    document.error_code = document.error_message = None
    document.updated_at = utcnow()
    return await runs.create_run(
        session,
        outbox,
        workspace_id=document.workspace_id,
        kind=INGEST_DOCUMENT,
        subject_type=SubjectType.DOCUMENT,
        subject_id=document.id,
        subject_label=document.title,
        triggered_by_id=triggered_by_id,
        params={"document_id": str(document.id)},
        input_summary=document.original_filename or document.title,
    )


async def _set_stage(
    deps: ServiceDeps, document_id: uuid.UUID, stage: DocumentStage | None, **values: Any
) -> None:
    async with deps.db.begin() as session:
        result = await session.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(stage=stage, updated_at=utcnow(), **values)
        )
        if result.rowcount == 0:  # deleted while ingesting: the run fails, nothing is written
            raise NotFound("The document was deleted.", field="documentId")


@asynccontextmanager
async def _stage(
    deps: ServiceDeps, document_id: uuid.UUID, stage: DocumentStage
) -> AsyncIterator[None]:
    """The document shows `stage` while the step runs; a domain failure marks it FAILED with the
    step's code (the run records the same code)."""
    await _set_stage(
        deps,
        document_id,
        stage,
        status=DocumentStatus.PROCESSING,
        error_code=None,
        error_message=None,
    )
    try:
        yield
    except DomainError as exc:
        await asyncio.shield(
            _set_stage(
                deps,
                document_id,
                stage,
                status=DocumentStatus.FAILED,
                error_code=exc.code,
                error_message=str(exc)[:1000],
            )
        )
        raise


async def _document(session: AsyncSession, document_id: uuid.UUID) -> Document:
    document = await session.get(Document, document_id)
    if document is None:
        raise NotFound("The document was deleted.", field="documentId")
    return document


async def extracting(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    doc_id = uuid.UUID(document_id)
    async with _stage(deps, doc_id, DocumentStage.EXTRACTING):
        async with deps.db() as session:
            document = await _document(session, doc_id)
            digest, filename = document.content_sha256, document.original_filename
        data = await blob_store(deps.settings.blob_root).read(digest)
        deps.progress(0, 1, "extracting text")
        extracted = await extract_isolated(
            data,
            filename,
            timeout_s=deps.settings.extraction_timeout_seconds,
            memory_mb=deps.settings.extraction_memory_mb,
        )
        async with deps.db.begin() as session:
            document = await _document(session, doc_id)
            document.text = extracted.text
            document.content_type = extracted.content_type
            document.word_count = extracted.word_count
            document.language = extracted.language
        deps.progress(1, 1, f"{extracted.word_count} words")
    return {"words": extracted.word_count, "language": extracted.language}


async def chunking_step(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    raise NotImplementedError


async def indexing(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    raise NotImplementedError


async def embedding(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    raise NotImplementedError


async def summarizing(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    raise NotImplementedError


async def tagging(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    raise NotImplementedError
