"""Documents ingested the way an upload will: the original in the blob store, a QUEUED document
row, an `ingest_document` run queued in the same transaction and launched after it.

    document_id = await add_document(deps, workspace_id, collection_id, owner_id, data, "x.html")
    run_id = await start_ingestion(deps, document_id, owner_id)
    run = await finished_run(deps, run_id)
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Uuid, bindparam, func, select, text
from sqlalchemy.orm import undefer

from base.models.documents import (
    Chunk,
    ChunkVector,
    Document,
    DocumentField,
    DocumentStatus,
    FieldSource,
)
from base.models.runs import Run, RunStep
from services import runs
from services.blobs import blob_store
from services.deps import ServiceDeps
from services.documents import record_sources
from services.ingestion import queue_ingestion
from services.run_log import Outbox
from tests.support import corpus
from tests.support.waiting import eventually

STAGES = ("EXTRACTING", "CHUNKING", "INDEXING", "EMBEDDING", "SUMMARIZING", "TAGGING")

# Small real files, so that each test's work for the model stays small on a CPU.
GETPASS_HTML = corpus.HTML_ROOT / "library" / "getpass.html"
TTY_HTML = corpus.HTML_ROOT / "library" / "tty.html"

# Load options for a document row with the columns every other read leaves out.
WITH_EXTRACTED_TEXT = [undefer(Document.text), undefer(Document.headings)]


def pdf_pages(path: Path, count: int) -> bytes:
    """The first `count` pages of a real PDF, written again by pypdf (a smaller real PDF)."""
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(corpus.read(path)))
    writer = pypdf.PdfWriter()
    for page in reader.pages[:count]:
        writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def add_document(
    deps: ServiceDeps,
    workspace_id: uuid.UUID,
    collection_id: uuid.UUID,
    owner_id: uuid.UUID,
    data: bytes,
    filename: str | None,
    *,
    title: str | None = None,
) -> uuid.UUID:
    """A QUEUED document whose original `data` is in the blob store; its title is the file
    name unless given (as an upload names a file before its text is read)."""
    digest = await blob_store(deps.settings.blob_root).put(data)
    document = Document(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        collection_id=collection_id,
        owner_id=owner_id,
        title=title or filename or "Pasted text",
        status=DocumentStatus.QUEUED,
        content_type="application/octet-stream",
        original_filename=filename,
        size_bytes=len(data),
        content_sha256=digest,
    )
    async with deps.db.begin() as session:
        session.add(document)
        await session.flush()
        source = FieldSource.FILE if filename else FieldSource.PERSON
        await record_sources(session, document.id, {DocumentField.TITLE: source})
    return document.id


async def start_ingestion(
    deps: ServiceDeps, document_id: uuid.UUID, triggered_by: uuid.UUID
) -> uuid.UUID:
    """Queue an ingestion run for the document and launch it; the run's id."""
    outbox = Outbox()
    async with deps.db.begin() as session:
        document = await session.get(Document, document_id)
        assert document is not None
        run = await queue_ingestion(session, outbox, document, triggered_by_id=triggered_by)
    await runs.launch(deps, outbox, [run.id])
    return run.id


async def finished_run(deps: ServiceDeps, run_id: uuid.UUID, *, within: float = 600) -> Run:
    """The run once it has ended (succeeded, failed or cancelled)."""

    async def ended() -> Run | None:
        async with deps.db() as session:
            run = await session.get(Run, run_id)
            return run if run is not None and run.status.is_terminal else None

    return await eventually(ended, within=within, what=f"run {run_id} to end", every=0.1)


async def step_statuses(deps: ServiceDeps, run_id: uuid.UUID) -> dict[str, str]:
    async with deps.db() as session:
        rows = await session.execute(
            select(RunStep.name, RunStep.status)
            .where(RunStep.run_id == run_id)
            .order_by(RunStep.position)
        )
        return {name: str(status) for name, status in rows}


async def step_outputs(deps: ServiceDeps, run_id: uuid.UUID) -> dict[str, Any]:
    async with deps.db() as session:
        rows = await session.execute(
            select(RunStep.name, RunStep.output)
            .where(RunStep.run_id == run_id)
            .order_by(RunStep.position)
        )
        return {name: (output or {}).get("value") for name, output in rows}


async def counts(deps: ServiceDeps, document_id: uuid.UUID) -> dict[str, int]:
    """Chunks and vectors of the document."""
    async with deps.db() as session:
        chunks = await session.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.document_id == document_id)
        )
        vectors = await session.scalar(
            select(func.count())
            .select_from(ChunkVector)
            .where(ChunkVector.document_id == document_id)
        )
    return {"chunks": chunks or 0, "vectors": vectors or 0}


async def full_text_rows(db: Any, document_id: uuid.UUID) -> int:
    """The document's rows in the full-text index (`chunk_search`, on either database)."""
    async with db() as session:
        statement = text("SELECT count(*) FROM chunk_search WHERE document_id = :d").bindparams(
            bindparam("d", document_id, type_=Uuid)
        )
        return int((await session.execute(statement)).scalar_one())
