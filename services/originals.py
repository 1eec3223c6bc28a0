"""Originals: the uploaded files behind documents (ADR 0035).

A blob is shared by every document with the same content (whatever its collection or
workspace) and lives as long as one of them references it. Writing a blob and inserting its
first reference, and checking that nothing references it and deleting it, each happen under one
lock per digest, so an upload and a delete of the same content never interleave: on
PostgreSQL a transaction-scoped advisory lock, on SQLite the database's write lock.

A process killed between writing a blob and committing its first reference leaves a blob that
nothing references, and one killed mid-write a temporary file: `sweep_blobs` removes both (at
each API process's start, and from `python -m app sweep-blobs`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from base.db.engine import lock_for_write
from base.models.documents import Document
from services.blobs import blob_store
from services.deps import ServiceDeps

log = logging.getLogger("knowledge_desk.documents")

# Media types of the four detected types (services/extraction.py's ContentType): what uploads
# and ingestion store as a document's content type.
MEDIA_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
}
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "text/html": ".html",
    "text/markdown": ".md",
    "text/plain": ".txt",
}
_OCTET_STREAM = "application/octet-stream"
_SEPARATORS = re.compile(r"[\\/]")
MAX_DOWNLOAD_NAME = 150


def media_type_of(content_type: str) -> str:
    """A document's stored content type as a media type ("html" and "text/html" alike);
    anything unknown is served as opaque bytes."""
    if content_type in MEDIA_TYPES:
        return MEDIA_TYPES[content_type]
    return content_type if content_type in _EXTENSIONS else _OCTET_STREAM


async def lock_blob(session: AsyncSession, digest: str) -> None:
    """Serialise work on one blob until the transaction ends. SQLite: the caller took the write
    lock (`lock_for_write`), which serialises everything already."""
    await lock_blobs(session, [digest])


# Volatile functions of the select list run after the sort, so the locks are taken in order.
_LOCK_BLOBS = text(
    "SELECT pg_advisory_xact_lock(hashtext('blob:' || k)) "
    "FROM unnest(CAST(:keys AS text[])) AS t(k) ORDER BY k"
)


async def lock_blobs(session: AsyncSession, digests: Sequence[str]) -> None:
    """`lock_blob` for many blobs in one statement, in sorted order (two callers locking
    overlapping sets cannot deadlock)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_LOCK_BLOBS, {"keys": sorted(digests)})


# Which of :digests some document references (the sweep's first pass, many digests at a time).
_REFERENCED = (
    select(Document.content_sha256)
    .where(Document.content_sha256.in_(bindparam("digests", expanding=True)))
    .distinct()
)
_SWEEP_BATCH = 500
# Blobs released per transaction: each holds its blobs' locks until it ends.
RELEASE_BATCH = 100
# A temporary file untouched this long is an abandoned write: a write of the largest upload
# takes well under a second.
ABANDONED_WRITE_SECONDS = 3600.0


async def release_unreferenced(deps: ServiceDeps, digests: Iterable[str]) -> list[str]:
    """Delete each blob that no document references any more; the digests deleted.

    Called after the transaction that removed (or failed to add) the references has ended.
    Works in batches of RELEASE_BATCH digests, each in one transaction holding their locks
    (`lock_blobs`): one transaction per digest took 2.5 ms each, 11 s for a workspace of 4,270
    originals (bench/bench_delete_workspace.py).
    Never raises: a blob left behind wastes space (the sweep takes it later), while an error
    here would report a delete that did happen as failed."""
    store = blob_store(deps.settings.blob_root)
    deleted = []
    unique = list(dict.fromkeys(digests))
    for start in range(0, len(unique), RELEASE_BATCH):
        batch = sorted(unique[start : start + RELEASE_BATCH])
        try:
            async with deps.db.begin() as session:
                await lock_for_write(session)
                await lock_blobs(session, batch)
                found = await session.execute(_REFERENCED, {"digests": batch})
                referenced = set(found.scalars())
                for digest in batch:
                    if digest not in referenced:
                        await store.delete(digest)
                        deleted.append(digest)
        except Exception:
            log.warning("could not release blobs %s..", batch[0], exc_info=True)
    return deleted


@dataclass(frozen=True)
class BlobSweep:
    released: list[str]  # blobs no document referenced, deleted
    temporary_removed: int  # abandoned partial writes, removed


async def sweep_blobs(
    deps: ServiceDeps, *, temporary_grace_seconds: float = ABANDONED_WRITE_SECONDS
) -> BlobSweep:
    """Delete the blobs no document references and the temporary files older than the grace
    (a younger one may be a write in progress). Each candidate blob is checked again and
    deleted under its lock (`release_unreferenced`), so an upload of the same content at that
    moment either commits its reference first or writes the blob again after."""
    store = blob_store(deps.settings.blob_root)
    contents = await store.contents(temporary_before=time.time() - temporary_grace_seconds)
    removed = await store.remove_temporary(contents.stale_temporary)
    unreferenced: list[str] = []
    async with deps.db() as session:
        for start in range(0, len(contents.digests), _SWEEP_BATCH):
            batch = contents.digests[start : start + _SWEEP_BATCH]
            found = await session.execute(_REFERENCED, {"digests": batch})
            referenced = set(found.scalars())
            unreferenced += [d for d in batch if d not in referenced]
    released = await release_unreferenced(deps, unreferenced)
    if released or removed:
        log.info("blob sweep: %d unreferenced blobs, %d temporary files", len(released), removed)
    return BlobSweep(released=released, temporary_removed=removed)


def base_name(filename: str) -> str:
    """The last component of a (possibly path-like) file name: `../../etc/passwd` -> `passwd`."""
    return _SEPARATORS.split(filename)[-1].strip()


def download_name(document: Document) -> str:
    """The file name a download is saved as: the uploaded name's last component, or the title
    (pasted text) with the extension of its type; never a path, never empty."""
    media_type = media_type_of(document.content_type)
    name = base_name(document.original_filename or "")
    if not name.strip(". "):
        title = _SEPARATORS.sub(" ", document.title).strip(". ") or "document"
        name = title + _EXTENSIONS.get(media_type, "")
    name = "".join(c for c in unicodedata.normalize("NFC", name) if _printable(c))
    if len(name) > MAX_DOWNLOAD_NAME:
        stem, dot, extension = name.rpartition(".")
        keep = f".{extension}" if dot and 0 < len(extension) <= 10 else ""
        name = name[: MAX_DOWNLOAD_NAME - len(keep)] + keep
    return name


def _printable(character: str) -> bool:
    return unicodedata.category(character)[0] != "C"


@dataclass(frozen=True)
class OriginalFile:
    """A document's original, ready to stream."""

    chunks: AsyncIterator[bytes]
    media_type: str
    filename: str
    size_bytes: int


async def release_after(deps: ServiceDeps, digests: Iterable[str]) -> None:
    """`release_unreferenced`, finished even if the caller is cancelled meanwhile."""
    await asyncio.shield(release_unreferenced(deps, list(digests)))
