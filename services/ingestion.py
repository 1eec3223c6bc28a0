"""Ingestion: the `ingest_document` run that turns an uploaded original into a READY document,
and reprocessing, which starts a fresh one (ADR 0053).

EXTRACTING -> CHUNKING -> INDEXING -> EMBEDDING -> SUMMARIZING -> TAGGING, one step function
each, so the uploader watches every stage. Steps hand work to each other through the database
(the document's text and headings, its chunks), never through step outputs, so a retry that
reuses the steps that succeeded resumes at the failed one. Each step is idempotent: it replaces
what an earlier attempt of the same step wrote, under a lock on the document row, so a
reprocess never duplicates chunks, index rows or vectors.

The document follows its run: QUEUED when the run is queued; PROCESSING with the stage while a
step runs (again when a retry resumes); READY at the end of TAGGING; FAILED with the step's
error code when a step fails (INTERNAL for an unexpected error, CANCELLED when stopped). A
document deleted during its run makes the step that notices fail with DOCUMENT_DELETED, and
nothing more is written for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from base.db.engine import lock_for_write
from base.db.types import utcnow
from base.errors import Conflict, DomainError, Invalid, NotFound
from base.models.documents import (
    MAX_TITLE,
    Chunk,
    ChunkVector,
    Document,
    DocumentEntity,
    DocumentField,
    DocumentFieldEdit,
    DocumentStage,
    DocumentStatus,
    DocumentTag,
)
from base.models.runs import Run, RunStatus, SubjectType
from services import chunking, document_vectors, enrichment, fulltext, llm, runs, vectors
from services.blobs import blob_store
from services.deps import ServiceDeps
from services.documents import (
    check_bulk,
    document_not_found,
    missing_item,
    record_sources,
    require_editor_everywhere,
    visible_documents_for_update,
)
from services.extraction import Heading, extract_isolated
from services.model_turns import ModelTurns
from services.originals import MEDIA_TYPES
from services.run_log import Outbox
from services.views import DocumentView, ItemError, ReprocessedDocuments, RunView
from services.workspace_settings import chat_model_of

log = logging.getLogger("knowledge_desk.ingestion")

STEPS = tuple(stage.value for stage in DocumentStage)
L = TypeVar("L", bound=BaseModel)  # the loose reading of a structured reply


def _summarize(results: dict[str, Any]) -> str:
    chunked = results.get("CHUNKING") or {}
    embedded = results.get("EMBEDDING") or {}
    parts = [f"{chunked.get('chunks', 0)} chunks"]
    if embedded.get("model"):
        parts.append(f"{embedded.get('vectors', 0)} vectors ({embedded['model']})")
    summary = results.get("SUMMARIZING") or {}
    if summary.get("source"):
        parts.append(f"summary by the {summary['source']} method")
    return ", ".join(parts)


INGEST_DOCUMENT = runs.RunKind("ingest_document", STEPS, summarize=_summarize)
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


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


# -- the document follows its run ---------------------------------------------------------------


def _deleted() -> NotFound:
    return NotFound(
        "The document was deleted while it was being processed.", code="DOCUMENT_DELETED"
    )


async def _set_state(deps: ServiceDeps, document_id: uuid.UUID, **values: Any) -> bool:
    """Update the document's status fields; False when it no longer exists."""
    async with deps.db.begin() as session:
        result = await session.execute(
            update(Document).where(Document.id == document_id).values(updated_at=utcnow(), **values)
        )
        return bool(result.rowcount)


async def _mark_failed(
    deps: ServiceDeps, document_id: uuid.UUID, stage: DocumentStage, code: str, message: str
) -> None:
    """Best effort: the run records the failure either way, and the original error must not be
    hidden by a second one (the database may be what failed)."""
    try:
        await _set_state(
            deps,
            document_id,
            stage=stage,
            status=DocumentStatus.FAILED,
            error_code=code,
            error_message=message[:1000],
        )
    except Exception:
        log.warning("could not mark document %s as failed", document_id, exc_info=True)


@asynccontextmanager
async def _stage(
    deps: ServiceDeps, document_id: uuid.UUID, stage: DocumentStage
) -> AsyncIterator[None]:
    """The document shows `stage` while the step runs; a failure marks it FAILED with the code
    the run records (the domain error's, INTERNAL for an unexpected one, CANCELLED)."""
    started = await _set_state(
        deps,
        document_id,
        stage=stage,
        status=DocumentStatus.PROCESSING,
        error_code=None,
        error_message=None,
    )
    if not started:
        raise _deleted()
    try:
        yield
    except DomainError as exc:
        await asyncio.shield(_mark_failed(deps, document_id, stage, exc.code, exc.message))
        raise
    except asyncio.CancelledError:
        await asyncio.shield(
            _mark_failed(
                deps, document_id, stage, "CANCELLED", "Processing stopped before it finished."
            )
        )
        raise
    except Exception:
        await asyncio.shield(
            _mark_failed(deps, document_id, stage, "INTERNAL", "Processing failed unexpectedly.")
        )
        raise


async def _locked(session: AsyncSession, document_id: uuid.UUID) -> Document:
    """The document, locked for this transaction's writes (a person's edit, a delete and another
    step wait for it); DOCUMENT_DELETED when it is gone."""
    await lock_for_write(session)
    document = (
        await session.execute(select(Document).where(Document.id == document_id).with_for_update())
    ).scalar_one_or_none()
    if document is None:
        raise _deleted()
    return document


async def _document(session: AsyncSession, document_id: uuid.UUID, *deferred: Any) -> Document:
    """The document's row, with those of its deferred columns (text, headings) given."""
    document = await session.get(Document, document_id, options=[undefer(c) for c in deferred])
    if document is None:
        raise _deleted()
    return document


async def _edited(session: AsyncSession, document_id: uuid.UUID) -> set[DocumentField]:
    rows = await session.execute(
        select(DocumentFieldEdit.field).where(DocumentFieldEdit.document_id == document_id)
    )
    return {DocumentField(field) for field in rows.scalars()}


async def _chunk_texts(session: AsyncSession, document_id: uuid.UUID) -> list[str]:
    rows = await session.execute(
        select(Chunk.text).where(Chunk.document_id == document_id).order_by(Chunk.position)
    )
    return list(rows.scalars())


def _config(deps: ServiceDeps) -> llm.LLMConfig:
    return llm.LLMConfig.from_settings(deps.settings)


# How long a document's turn at the model waits for its next request (ADR 0111): the step
# between SUMMARIZING and TAGGING takes milliseconds; a model request takes seconds.
KEEP_TURN_SECONDS = 2.0

_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, ModelTurns]] = (
    weakref.WeakKeyDictionary()
)


def _model_turn(
    deps: ServiceDeps, document_id: uuid.UUID, *, keep_for_next: bool = False
) -> AbstractAsyncContextManager[None]:
    """One of this process's `INGEST_LLM_CONCURRENCY` turns at the model (services.model_turns);
    `keep_for_next`: the document's next request follows, so the turn waits for it."""
    size = deps.settings.ingest_llm_concurrency
    per_loop = _turns.setdefault(asyncio.get_running_loop(), {})
    turns = per_loop.setdefault(size, ModelTurns(size, hold_seconds=KEEP_TURN_SECONDS))
    return turns.turn(document_id, keep_for_next=keep_for_next)


async def _ask_model(
    deps: ServiceDeps,
    model: str,
    document_id: uuid.UUID,
    title: str,
    sample: list[str],
    task: str,
    answer: type[BaseModel],
    loose: type[L],
    *,
    asks_again: bool,
) -> tuple[L | None, llm.Usage, float]:
    """One structured request of SUMMARIZING or TAGGING in a model turn: the reply read as
    `loose` (None when invalid twice), its usage, and the seconds spent in the model.
    `asks_again`: the document's next step asks about the same sample right after."""
    settings = deps.settings
    async with _model_turn(deps, document_id, keep_for_next=asks_again):
        began = time.perf_counter()
        reply, usage = await enrichment.ask(
            enrichment.messages_for(title, sample, task),
            answer,
            loose,
            model=model,
            config=_config(deps),
            max_output_tokens=settings.ingest_llm_output_tokens,
        )
        return reply, usage, time.perf_counter() - began


def _placeholder_titles(filename: str | None) -> set[str]:
    """Titles an upload gives before the text is read: the file's name, with or without its
    extension."""
    if not filename:
        return set()
    name = PurePosixPath(filename).name
    return {filename, name, PurePosixPath(name).stem}


# -- the steps -------------------------------------------------------------------------------


async def extracting(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    """The text, headings, type, word count and language, from the stored original."""
    doc_id = uuid.UUID(document_id)
    async with _stage(deps, doc_id, DocumentStage.EXTRACTING):
        async with deps.db() as session:
            document = await _document(session, doc_id)
            digest, filename = document.content_sha256, document.original_filename
        data = await blob_store(deps.settings.blob_root).read(digest)
        deps.progress(0, 1, "reading the text")
        extracted = await extract_isolated(
            data,
            filename,
            timeout_s=deps.settings.extraction_timeout_seconds,
            memory_mb=deps.settings.extraction_memory_mb,
        )
        async with deps.db.begin() as session:
            document = await _locked(session, doc_id)
            document.text = extracted.text
            document.headings = [[h.level, h.title, h.offset] for h in extracted.headings]
            document.content_type = MEDIA_TYPES[extracted.content_type]
            document.word_count = extracted.word_count
            document.language = extracted.language
            # The title the text gives replaces a file name used as a placeholder, never a
            # title a person wrote.
            if (
                extracted.title
                and document.title in _placeholder_titles(filename)
                and DocumentField.TITLE not in await _edited(session, doc_id)
            ):
                document.title = extracted.title[:MAX_TITLE]
        deps.progress(1, 1, f"{extracted.word_count} words")
    return {
        "words": extracted.word_count,
        "language": extracted.language,
        "content_type": MEDIA_TYPES[extracted.content_type],
        "headings": len(extracted.headings),
    }


async def chunking_step(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    """The text cut into passages (ADR 0032), replacing the earlier ones with their index rows
    and vectors (foreign keys cascade)."""
    doc_id = uuid.UUID(document_id)
    async with _stage(deps, doc_id, DocumentStage.CHUNKING):
        async with deps.db() as session:
            document = await _document(session, doc_id, Document.text, Document.headings)
            text, headings = document.text, document.headings
        if text is None:
            raise Invalid("The document's text has not been extracted.", code="NOT_EXTRACTED")
        deps.progress(0, 1, "cutting the text into passages")
        pieces = await asyncio.to_thread(
            chunking.chunk,
            text,
            [Heading(level, title, offset) for level, title, offset in headings or []],
            max_tokens=deps.settings.chunk_max_tokens,
        )
        async with deps.db.begin() as session:
            document = await _locked(session, doc_id)
            await session.execute(delete(Chunk).where(Chunk.document_id == doc_id))
            await document_vectors.forget(session, doc_id)
            if pieces:
                await session.execute(
                    insert(Chunk),
                    [
                        {
                            "id": uuid.uuid4(),
                            "document_id": doc_id,
                            "workspace_id": document.workspace_id,
                            "position": piece.position,
                            "text": piece.text,
                            "heading_path": list(piece.heading_path),
                            "char_start": piece.char_start,
                            "char_end": piece.char_end,
                            "token_count": piece.token_count,
                        }
                        for piece in pieces
                    ],
                )
        deps.progress(1, 1, f"{len(pieces)} passages")
    return {"chunks": len(pieces), "max_tokens": deps.settings.chunk_max_tokens}


async def indexing(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    """The full-text rows of every passage (ADR 0050), replacing the earlier ones."""
    doc_id = uuid.UUID(document_id)
    async with _stage(deps, doc_id, DocumentStage.INDEXING):
        deps.progress(0, 1, "indexing the passages for keyword search")
        async with deps.db.begin() as session:
            await _locked(session, doc_id)
            indexed = await fulltext.index_document(session, doc_id)
        deps.progress(1, 1, f"{indexed} passages indexed")
    return {"indexed": indexed}


@dataclass(frozen=True)
class Embedded:
    passages: int
    embedded_now: int
    dimension: int | None
    model_seconds: float
    tokens: int  # what the model server counted for the passages embedded now


async def embed_passages(
    deps: ServiceDeps,
    document_id: uuid.UUID,
    model: str,
    on_batch: Callable[[int, int], None] | None = None,
) -> Embedded:
    """Give every passage of the document a vector of `model` (ADR 0051), made from its
    heading path and text (`chunking.embedding_text`, ADR 0113).

    Vectors of another model are deleted first, so a document never mixes two models; passages
    that already have a vector of this model (an attempt that failed half-way) keep it. Each
    batch is written as it comes, so a retry continues where the failure stopped. `on_batch`
    hears (passages done, passages) before the first batch and after each."""
    async with deps.db.begin() as session:
        document = await _locked(session, document_id)
        workspace_id = document.workspace_id
        await session.execute(
            delete(ChunkVector).where(
                ChunkVector.document_id == document_id, ChunkVector.model != model
            )
        )
        await document_vectors.forget(session, document_id)
        passages = (
            await session.execute(
                select(Chunk.id, Chunk.heading_path, Chunk.text)
                .where(Chunk.document_id == document_id)
                .order_by(Chunk.position)
            )
        ).all()
        kept = (
            await session.execute(
                select(ChunkVector.chunk_id, ChunkVector.dimension).where(
                    ChunkVector.document_id == document_id
                )
            )
        ).all()
    embedded = {chunk_id for chunk_id, _ in kept}
    dimension = kept[0][1] if kept else None
    todo = [
        (chunk_id, chunking.embedding_text(heading_path, text))
        for chunk_id, heading_path, text in passages
        if chunk_id not in embedded
    ]
    total, done = len(passages), len(passages) - len(todo)
    if on_batch:
        on_batch(done, total)
    model_seconds = 0.0
    tokens = 0
    batch_size = deps.settings.embed_batch_size
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        async with _model_turn(deps, document_id):
            began = time.perf_counter()
            found, usage = await llm.embed_with_usage(
                [text for _, text in batch],
                model=model,
                config=_config(deps),
                batch_size=len(batch),
            )
            model_seconds += time.perf_counter() - began
            tokens += usage.prompt_tokens
        dimension, packed = vectors.pack_all(found)
        async with deps.db.begin() as session:
            await _locked(session, document_id)
            ids = [chunk_id for chunk_id, _ in batch]
            present = (await session.execute(select(Chunk.id).where(Chunk.id.in_(ids)))).scalars()
            if len(set(present)) != len(ids):  # re-chunked meanwhile by another run
                raise Conflict(
                    "The document's passages changed while they were being embedded.",
                    code="DOCUMENT_CHANGED",
                )
            await session.execute(
                insert(ChunkVector),
                [
                    {
                        "chunk_id": chunk_id,
                        "document_id": document_id,
                        "workspace_id": workspace_id,
                        "model": model,
                        "dimension": dimension,
                        "vector": data,
                    }
                    for chunk_id, data in zip(ids, packed, strict=True)
                ],
            )
        done += len(batch)
        if on_batch:
            on_batch(done, total)
    async with deps.db.begin() as session:  # every passage has its vector: the document's own
        await _locked(session, document_id)
        await document_vectors.refresh(session, model, documents=[document_id])
    return Embedded(total, len(todo), dimension, model_seconds, tokens)


async def embedding(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    """A vector per passage from the embedding model in the settings (`embed_passages`)."""
    doc_id = uuid.UUID(document_id)
    model = deps.settings.embed_model

    started = False

    def progress(done: int, total: int) -> None:
        nonlocal started
        message = (
            f"embedded {done} of {total} passages" if started else f"embedding {total} passages"
        )
        started = True
        deps.progress(done, total, message)

    async with _stage(deps, doc_id, DocumentStage.EMBEDDING):
        embedded = await embed_passages(deps, doc_id, model, progress)
    return {
        "vectors": embedded.passages,
        "model": model,
        "dimension": embedded.dimension,
        "embedded_now": embedded.embedded_now,
        "embedding_tokens": embedded.tokens,  # the Usage tab sums them
        "model_seconds": round(embedded.model_seconds, 3),
    }


async def summarizing(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    """Summary and key points by the chat model (ADR 0052); a field a person edited is kept."""
    doc_id = uuid.UUID(document_id)
    settings = deps.settings
    async with _stage(deps, doc_id, DocumentStage.SUMMARIZING):
        async with deps.db() as session:
            document = await _document(session, doc_id, Document.headings)
            title, headings = document.title, [h[1] for h in document.headings or []]
            edited = await _edited(session, doc_id) & {
                DocumentField.SUMMARY,
                DocumentField.KEY_POINTS,
            }
            passages = [] if len(edited) == 2 else await _chunk_texts(session, doc_id)
            model = await chat_model_of(session, document.workspace_id, settings)
        kept = sorted(field.value for field in edited)
        if len(edited) == 2:
            deps.progress(1, 1, "kept the summary and key points a person wrote")
            return {"source": None, "sources": {}, "kept": kept, "model_seconds": 0.0}
        sample = enrichment.sample_passages(passages, settings.ingest_llm_input_tokens)
        deps.progress(0, 1, "asking the model for a summary")
        reply, usage, model_seconds = await _ask_model(
            deps,
            model,
            doc_id,
            title,
            sample,
            enrichment.SUMMARY_TASK,
            enrichment.SummaryAnswer,
            enrichment.LooseSummary,
            asks_again=True,  # TAGGING, on the same prompt up to its task
        )
        result = enrichment.read_summary(reply, sample, headings)
        async with deps.db.begin() as session:
            document = await _locked(session, doc_id)
            edited = await _edited(session, doc_id)  # an edit made meanwhile wins
            if DocumentField.SUMMARY not in edited:
                document.summary = result.summary
            if DocumentField.KEY_POINTS not in edited:
                document.key_points = result.key_points
            written = {f: s for f, s in result.sources.items() if f not in edited}
            await record_sources(session, doc_id, written)
        deps.progress(1, 1, f"summary written ({result.source})")
    return {
        "source": result.source,
        "sources": {f.value: s.value for f, s in written.items()},
        "kept": kept,
        "model": model,
        "passages": len(sample),
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "model_seconds": round(model_seconds, 3),
    }


async def tagging(deps: ServiceDeps, *, document_id: str, **_: Any) -> dict[str, Any]:
    """Tags and entities by the chat model (ADR 0052), a field a person edited kept; then the
    document is READY."""
    doc_id = uuid.UUID(document_id)
    settings = deps.settings
    async with _stage(deps, doc_id, DocumentStage.TAGGING):
        async with deps.db() as session:
            document = await _document(session, doc_id)
            title = document.title
            edited = await _edited(session, doc_id) & {DocumentField.TAGS, DocumentField.ENTITIES}
            passages = [] if len(edited) == 2 else await _chunk_texts(session, doc_id)
            model = await chat_model_of(session, document.workspace_id, settings)
        kept = sorted(field.value for field in edited)
        result: enrichment.Tags | None = None
        usage = llm.Usage()
        model_seconds = 0.0
        if len(edited) < 2:
            sample = enrichment.sample_passages(passages, settings.ingest_llm_input_tokens)
            deps.progress(0, 1, "asking the model for tags and entities")
            tags_reply, usage, model_seconds = await _ask_model(
                deps,
                model,
                doc_id,
                title,
                sample,
                enrichment.TAGS_TASK,
                enrichment.TagsAnswer,
                enrichment.LooseTags,
                asks_again=False,
            )
            result = enrichment.read_tags(tags_reply, sample)
        async with deps.db.begin() as session:
            document = await _locked(session, doc_id)
            edited = await _edited(session, doc_id)  # an edit made meanwhile wins
            if result is not None and DocumentField.TAGS not in edited:
                await session.execute(delete(DocumentTag).where(DocumentTag.document_id == doc_id))
                session.add_all(
                    DocumentTag(document_id=doc_id, position=n, tag=tag)
                    for n, tag in enumerate(result.tags)
                )
            if result is not None and DocumentField.ENTITIES not in edited:
                await session.execute(
                    delete(DocumentEntity).where(DocumentEntity.document_id == doc_id)
                )
                session.add_all(
                    DocumentEntity(document_id=doc_id, position=n, name=e.name, kind=e.kind)
                    for n, e in enumerate(result.entities)
                )
            written = {f: s for f, s in result.sources.items() if f not in edited} if result else {}
            await record_sources(session, doc_id, written)
            document.status = DocumentStatus.READY
            document.stage = None
            document.error_code = document.error_message = None
            document.updated_at = utcnow()
        deps.progress(1, 1, "ready")
    return {
        "source": result.source if result else None,
        "sources": {f.value: s.value if s else None for f, s in written.items()},
        "kept": kept,
        "model": model if result else None,
        "tags": len(result.tags) if result else None,
        "entities": len(result.entities) if result else None,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "model_seconds": round(model_seconds, 3),
    }


# -- reprocessing ------------------------------------------------------------------------------


def _busy(index: int) -> ItemError:
    return ItemError(
        code="DOCUMENT_BUSY",
        message="The document is already queued or being processed.",
        field=f"ids.{index}",
    )


async def reprocess_documents(
    deps: ServiceDeps, *, ids: Sequence[uuid.UUID | None]
) -> ReprocessedDocuments:
    """Start a fresh ingestion run for every allowed document (EDITOR or higher).

    `ids` holds None for an id that did not decode. A missing or foreign id is reported as
    NOT_FOUND at its index, a document with an ingestion run still queued or running as
    DOCUMENT_BUSY; the others are queued, each with its own run. A caller below EDITOR in a
    workspace of any of them is refused as a whole (FORBIDDEN) and nothing is queued. Fields a
    person edited keep their values through the new run."""
    user_id = deps.principal.require_user()
    check_bulk(ids)
    outbox = Outbox()
    async with deps.db.begin() as session:
        await lock_for_write(session)
        found = await visible_documents_for_update(session, user_id, ids)
        await require_editor_everywhere(session, user_id, {d.workspace_id for d in found.values()})
        busy = set(
            (
                await session.execute(
                    select(Run.subject_id).where(
                        Run.subject_type == SubjectType.DOCUMENT,
                        Run.subject_id.in_(list(found)),
                        Run.workflow == INGEST_DOCUMENT.name,
                        Run.status.in_(ACTIVE),
                    )
                )
            ).scalars()
        )
        errors: list[ItemError] = []
        queued: list[tuple[Document, Run]] = []
        seen: set[uuid.UUID] = set()
        for index, document_id in enumerate(ids):
            document = found.get(document_id) if document_id is not None else None
            if document is None:
                errors.append(missing_item(index))
            elif document.id in busy:
                errors.append(_busy(index))
            elif document.id not in seen:
                seen.add(document.id)
                run = await queue_ingestion(session, outbox, document, triggered_by_id=user_id)
                queued.append((document, run))
        await session.flush()
        result = ReprocessedDocuments(
            documents=[DocumentView.model_validate(d) for d, _ in queued],
            runs=[RunView.model_validate(r) for _, r in queued],
            errors=errors,
        )
    if queued:
        await runs.launch(deps, outbox, [r.id for _, r in queued])
    return result


@dataclass(frozen=True)
class Reprocessed:
    document: DocumentView
    run: RunView


async def reprocess_document(deps: ServiceDeps, *, document_id: uuid.UUID) -> Reprocessed:
    """`reprocess_documents` of one: its error, if any, is raised (field `id`)."""
    result = await reprocess_documents(deps, ids=[document_id])
    if result.errors:
        [error] = result.errors
        if error.code == "NOT_FOUND":
            raise document_not_found()
        raise Conflict(error.message, code=error.code, field="id")
    return Reprocessed(document=result.documents[0], run=result.runs[0])
