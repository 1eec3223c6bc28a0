"""Uploads (screen 6): files and pasted text become documents, each with its own ingest run.

Every file is judged alone and in order: its name, its size (read no further than the limit),
its type (from the bytes, `extraction.detect_type`; never from the name or the declared type),
whether its collection already holds the same content. A file that passes is stored: its blob
is written, then its document and its QUEUED `ingest_document` run are inserted in one
transaction (under the blob's lock, `originals.lock_blob`). A file that fails leaves nothing:
no row, and no blob unless another document references the same content. The runs are handed
to execution after their rows have committed.

The upload screen then follows its files on one subscription (`services/live.upload_progress`),
built from `progress_of` and the workspace's event stream.
"""

from __future__ import annotations

import asyncio
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from base.db.engine import lock_for_write
from base.db.types import utcnow
from base.errors import DomainError, Invalid, NotFound
from base.models.accounts import Role
from base.models.documents import (
    MAX_TITLE,
    Collection,
    Document,
    DocumentField,
    DocumentStatus,
    FieldSource,
)
from base.models.runs import Run, RunStatus, SubjectType
from base.settings import Settings
from services import runs
from services.access import member_workspace_ids, require_role
from services.blobs import blob_store, sha256_of
from services.collections import collection_not_found
from services.deps import ServiceDeps
from services.documents import record_sources
from services.extraction import check_pdf_isolated, detect_type
from services.ingestion import INGEST_DOCUMENT, queue_ingestion
from services.originals import MEDIA_TYPES, base_name, lock_blob, release_after
from services.run_log import Outbox
from services.validation import clean_name
from services.views import DocumentView, ItemError, RunView

MAX_FILE_NAME = 255  # characters kept of a file name (most file systems' limit)
MAX_WATCHED = 100  # documents one progress subscription follows


class UploadSource(Protocol):
    """One uploaded file as the transport hands it over (Starlette's UploadFile is one)."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


class Duplicate(DomainError):
    """The collection already holds this content."""

    code = "DUPLICATE_DOCUMENT"

    def __init__(self, existing: DocumentView, *, field: str) -> None:
        super().__init__(
            f"The collection already holds this content as “{existing.title}”.", field=field
        )
        self.existing = existing


@dataclass(frozen=True)
class UploadedFile:
    """The outcome of one file: its document and run, or its error (and, for a duplicate, the
    document it duplicates)."""

    index: int
    filename: str | None
    document: DocumentView | None = None
    run: RunView | None = None
    error: ItemError | None = None
    duplicate_of: DocumentView | None = None


@dataclass(frozen=True)
class UploadResult:
    files: list[UploadedFile] = field(default_factory=list)


def _file_error(field_name: str, code: str, message: str) -> Invalid:
    return Invalid(message, code=code, field=field_name)


def clean_file_name(raw: str | None, *, field: str) -> str:
    """The name shown for an uploaded file: as sent, NFC-normalised, without control or
    format characters (which could hide or reorder what is displayed), at most MAX_FILE_NAME
    characters (the extension kept). It is only ever displayed: never a path here.

    INVALID_FILE_NAME when nothing nameable is left (no name, or only dots and slashes)."""
    name = "".join(
        c
        for c in unicodedata.normalize("NFC", raw or "")
        if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    ).strip()
    if not base_name(name).strip(". "):
        raise _file_error(
            field, "INVALID_FILE_NAME", "The file has no usable name; give it a file name."
        )
    if len(name) > MAX_FILE_NAME:
        stem, dot, extension = name.rpartition(".")
        keep = f".{extension}" if dot and 0 < len(extension) <= 10 else ""
        name = name[: MAX_FILE_NAME - len(keep)].rstrip() + keep
    return name


def title_from(file_name: str) -> str:
    """A first title (the ingestion may find a better one): the base name without extension."""
    name = base_name(file_name)
    stem, dot, _extension = name.rpartition(".")
    title = (stem if dot and stem.strip(". ") else name).strip()
    return title[:MAX_TITLE].strip() or "Untitled"


async def _read_capped(source: UploadSource, limit: int, *, field: str) -> bytes:
    """At most `limit` bytes of the file; FILE_TOO_LARGE when it holds more (never reads more
    than one byte past the limit)."""
    data = await source.read(limit + 1)
    if len(data) > limit:
        raise _file_error(
            field,
            "FILE_TOO_LARGE",
            f"The file is larger than the limit of {limit:,} bytes.",
        )
    return data


async def _editable_collection(
    session: AsyncSession, user_id: uuid.UUID, collection_id: uuid.UUID
) -> Collection:
    """The collection if the caller may add to it: NOT_FOUND when it is missing or in another
    workspace (exactly alike), FORBIDDEN below EDITOR."""
    collection = (
        await session.execute(
            select(Collection).where(
                Collection.id == collection_id,
                Collection.workspace_id.in_(member_workspace_ids(user_id)),
            )
        )
    ).scalar_one_or_none()
    if collection is None:
        raise collection_not_found()
    await require_role(session, user_id, collection.workspace_id, Role.EDITOR)
    return collection


async def _holder(
    session: AsyncSession, collection_id: uuid.UUID, digest: str
) -> DocumentView | None:
    existing = (
        await session.execute(
            select(Document).where(
                Document.collection_id == collection_id, Document.content_sha256 == digest
            )
        )
    ).scalar_one_or_none()
    return DocumentView.model_validate(existing) if existing else None


@dataclass(frozen=True)
class _NewDocument:
    title: str
    original_filename: str | None
    media_type: str
    data: bytes
    # FILE: from the file's name (EXTRACTING may find a better one); PERSON: typed with a paste.
    title_source: FieldSource


async def _store(
    deps: ServiceDeps,
    outbox: Outbox,
    user_id: uuid.UUID,
    collection_id: uuid.UUID,
    new: _NewDocument,
    *,
    field: str,
) -> tuple[DocumentView, RunView]:
    """Write the blob, then insert the document and its run in one transaction. On any failure
    nothing is left: the transaction rolls back and the blob goes unless referenced."""
    digest = sha256_of(new.data)
    own = Outbox()  # this file's events: published only if its transaction commits
    try:
        async with deps.db.begin() as session:
            await lock_for_write(session)
            await lock_blob(session, digest)
            # Checked again inside the transaction: the collection may have gone meanwhile.
            collection = await _editable_collection(session, user_id, collection_id)
            existing = await _holder(session, collection.id, digest)
            if existing is not None:
                raise Duplicate(existing, field=field)
            await blob_store(deps.settings.blob_root).put(new.data)
            now = utcnow()
            document = Document(
                workspace_id=collection.workspace_id,
                collection_id=collection.id,
                owner_id=user_id,
                title=new.title,
                status=DocumentStatus.QUEUED,
                content_type=new.media_type,
                original_filename=new.original_filename,
                size_bytes=len(new.data),
                content_sha256=digest,
                key_points=[],
                created_at=now,
                updated_at=now,
            )
            session.add(document)
            await session.flush()
            await record_sources(session, document.id, {DocumentField.TITLE: new.title_source})
            run = await queue_ingestion(session, own, document, triggered_by_id=user_id)
            collection.updated_at = now
            await session.flush()
            views = DocumentView.model_validate(document), RunView.model_validate(run)
    except IntegrityError:
        # The same content reached the collection in a concurrent transaction.
        await release_after(deps, [digest])
        async with deps.db() as session:
            existing = await _holder(session, collection_id, digest)
        if existing is None:
            raise
        raise Duplicate(existing, field=field) from None
    except BaseException:
        await release_after(deps, [digest])
        raise
    outbox.run_events.extend(own.run_events)
    outbox.workspace_events.extend(own.workspace_events)
    return views


async def upload_documents(
    deps: ServiceDeps, *, collection_id: uuid.UUID, files: Sequence[UploadSource | None]
) -> UploadResult:
    """Upload up to UPLOAD_MAX_FILES files into a collection (EDITOR or higher).

    Refused as a whole, with nothing written: a missing or foreign collection (NOT_FOUND), a
    role below EDITOR (FORBIDDEN), no file (REQUIRED) or too many (TOO_MANY_FILES). Otherwise
    each file has its outcome at its index: a document and its run, or an error whose `field`
    is `files.<index>` (INVALID_FILE_NAME, FILE_TOO_LARGE, EMPTY_FILE, UNSUPPORTED_TYPE,
    UNDECODABLE_TEXT, DUPLICATE_DOCUMENT, NOT_A_FILE). `files` holds None where the request sent
    something else than a file (a form field, a JSON value)."""
    user_id = deps.principal.require_user()
    settings = deps.settings
    async with deps.db() as session:
        await _editable_collection(session, user_id, collection_id)
    if not files:
        raise Invalid("Choose at least one file.", code="REQUIRED", field="files")
    if len(files) > settings.upload_max_files:
        raise Invalid(
            f"Upload at most {settings.upload_max_files} files at a time; this request has "
            f"{len(files)}.",
            code="TOO_MANY_FILES",
            field="files",
        )
    outbox = Outbox()
    outcomes: list[UploadedFile] = []
    for index, source in enumerate(files):
        where = f"files.{index}"
        raw_name = source.filename if source is not None else None
        try:
            if source is None:
                raise _file_error(where, "NOT_A_FILE", "This part of the request is not a file.")
            name = clean_file_name(raw_name, field=where)
            data = await _read_capped(source, settings.upload_max_file_bytes, field=where)
            kind = await _detect(data, name, field=where)
            if kind == "pdf":
                await _check_pdf(settings, data, field=where)
            new = _NewDocument(title_from(name), name, MEDIA_TYPES[kind], data, FieldSource.FILE)
            document, run = await _store(deps, outbox, user_id, collection_id, new, field=where)
            outcomes.append(UploadedFile(index, name, document=document, run=run))
        except Duplicate as duplicate:
            outcomes.append(
                UploadedFile(
                    index,
                    raw_name,
                    error=_item_error(duplicate, where),
                    duplicate_of=duplicate.existing,
                )
            )
        except NotFound:
            raise  # the collection went away meanwhile: the request as a whole is refused
        except DomainError as error:
            outcomes.append(UploadedFile(index, raw_name, error=_item_error(error, where)))
    await runs.launch(deps, outbox, [o.run.id for o in outcomes if o.run is not None])
    return UploadResult(files=outcomes)


async def _detect(data: bytes, name: str | None, *, field: str) -> str:
    """`detect_type` in a thread: it decodes the whole file, and a legacy charset's detection
    takes a quarter of a second per file, which would hold every other request."""
    try:
        return await asyncio.to_thread(detect_type, data, name)
    except DomainError as error:
        raise _file_error(field, error.code, error.message) from None


async def _check_pdf(settings: Settings, data: bytes, *, field: str) -> None:
    """A PDF is opened in the isolated parser before it is stored, so that one needing a
    password or too damaged to open is refused with nothing written (ADR 0035)."""
    try:
        await check_pdf_isolated(
            data,
            timeout_s=settings.upload_pdf_check_seconds,
            memory_mb=settings.extraction_memory_mb,
        )
    except DomainError as error:
        raise _file_error(field, error.code, error.message) from None


def _item_error(error: DomainError, field: str) -> ItemError:
    return ItemError(code=error.code, message=error.message, field=field)


@dataclass(frozen=True)
class CreatedDocument:
    document: DocumentView
    run: RunView


async def create_text_document(
    deps: ServiceDeps, *, collection_id: uuid.UUID, title: str, text: str
) -> CreatedDocument:
    """Pasted text as a document (EDITOR or higher): the same checks and storage as a file,
    the title as written, the type from the text itself (plain text, Markdown or HTML)."""
    user_id = deps.principal.require_user()
    async with deps.db() as session:
        await _editable_collection(session, user_id, collection_id)
    clean_title = clean_name(title, field="title", max_length=MAX_TITLE)
    if not text.strip():
        raise Invalid("Paste some text.", code="REQUIRED", field="text")
    data = text.encode("utf-8")
    limit = deps.settings.upload_max_file_bytes
    if len(data) > limit:
        raise Invalid(f"Paste at most {limit:,} bytes of text.", code="TOO_LONG", field="text")
    kind = await _detect(data, None, field="text")
    outbox = Outbox()
    new = _NewDocument(clean_title, None, MEDIA_TYPES[kind], data, FieldSource.PERSON)
    document, run = await _store(deps, outbox, user_id, collection_id, new, field="text")
    await runs.launch(deps, outbox, [run.id])
    return CreatedDocument(document=document, run=run)


# --- progress (screen 6's rows) ------------------------------------------------------------


@dataclass(frozen=True)
class FileProgress:
    """Where one uploaded document is: its row on the upload screen."""

    document_id: uuid.UUID
    file_name: str
    status: DocumentStatus
    stage: str | None
    percent: int
    run_id: uuid.UUID | None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def done(self) -> bool:
        return self.status in (DocumentStatus.READY, DocumentStatus.FAILED)


def _gone(document_id: uuid.UUID, previous: FileProgress | None) -> FileProgress:
    return FileProgress(
        document_id=document_id,
        file_name=previous.file_name if previous else "",
        status=DocumentStatus.FAILED,
        stage=previous.stage if previous else None,
        percent=previous.percent if previous else 0,
        run_id=previous.run_id if previous else None,
        error_code="NOT_FOUND",
        error_message="The document was deleted.",
    )


def _progress(document: Document, run: Run | None) -> FileProgress:
    """A row from the document and its latest ingest run. The run decides the end: SUCCEEDED is
    READY; FAILED or CANCELLED is FAILED with the document's error, else the run's."""
    status = DocumentStatus(document.status)
    error_code, error_message = document.error_code, document.error_message
    percent = 100 if status is DocumentStatus.READY else 0
    stage = document.stage.value if document.stage else None
    if run is not None:
        percent = run.percent
        stage = stage or run.current_step
        if run.status is RunStatus.SUCCEEDED:
            status, percent = DocumentStatus.READY, 100
        elif run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            status = DocumentStatus.FAILED
            error_code = error_code or run.error_code
            error_message = error_message or run.error_message
        elif status in (DocumentStatus.READY, DocumentStatus.FAILED):
            status = DocumentStatus.QUEUED  # a new run (reprocess) has not reported yet
    if status is not DocumentStatus.FAILED:
        error_code = error_message = None
    return FileProgress(
        document_id=document.id,
        file_name=document.original_filename or document.title,
        status=status,
        stage=None if status is DocumentStatus.QUEUED else stage,
        percent=percent,
        run_id=run.id if run else None,
        error_code=error_code,
        error_message=error_message,
    )


async def require_uploads(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, document_ids: list[uuid.UUID]
) -> None:
    """Allow following these documents: the caller is a member of the workspace and every id is
    one of its documents. NOT_FOUND otherwise, alike for missing and foreign ids."""
    user_id = deps.principal.require_user()
    if not document_ids:
        raise Invalid("Give at least one document.", code="REQUIRED", field="documentIds")
    if len(document_ids) > MAX_WATCHED:
        raise Invalid(
            f"Follow at most {MAX_WATCHED} documents at a time.",
            code="TOO_LONG",
            field="documentIds",
        )
    async with deps.db() as session:
        await require_role(session, user_id, workspace_id, Role.VIEWER)
        found = set(
            (
                await session.execute(
                    select(Document.id).where(
                        Document.id.in_(document_ids), Document.workspace_id == workspace_id
                    )
                )
            ).scalars()
        )
    if found != set(document_ids):
        raise NotFound("No such document.", field="documentIds")


async def progress_of(
    deps: ServiceDeps,
    *,
    workspace_id: uuid.UUID,
    document_ids: Sequence[uuid.UUID],
    previous: dict[uuid.UUID, FileProgress] | None = None,
) -> list[FileProgress]:
    """Each document's row now, in the order given (two statements); a document deleted since
    is FAILED with NOT_FOUND. Call after `require_uploads` allowed the caller."""
    async with deps.db() as session:
        documents = {
            d.id: d
            for d in (
                await session.execute(
                    select(Document).where(
                        Document.id.in_(document_ids), Document.workspace_id == workspace_id
                    )
                )
            ).scalars()
        }
        latest: dict[uuid.UUID, Run] = {}
        rows = await session.execute(
            select(Run)
            .where(
                Run.subject_type == SubjectType.DOCUMENT,
                Run.subject_id.in_(document_ids),
                Run.workflow == INGEST_DOCUMENT.name,
                Run.workspace_id == workspace_id,
            )
            .order_by(Run.created_at, Run.id)
        )
        for run in rows.scalars():
            latest[run.subject_id] = run
    previous = previous or {}
    return [
        _progress(documents[i], latest.get(i)) if i in documents else _gone(i, previous.get(i))
        for i in document_ids
    ]


async def subject_of_run(deps: ServiceDeps, *, run_id: uuid.UUID) -> uuid.UUID | None:
    """The document an ingest run is for (a reprocess or retry started while watching)."""
    async with deps.db() as session:
        row = (
            await session.execute(
                select(Run.subject_id).where(
                    Run.id == run_id,
                    Run.subject_type == SubjectType.DOCUMENT,
                    Run.workflow == INGEST_DOCUMENT.name,
                )
            )
        ).first()
    return row[0] if row else None
