"""The content-addressed store of uploaded originals: a file per distinct content, named by its
SHA-256, under `BLOB_ROOT` (ADR 0035).

Writes go to a temporary file in the same directory and are renamed into place, so a reader
never sees half a file and a crash leaves only a temporary file. What a crash can leave (those
files, and blobs whose upload never committed) is removed by `services.originals.sweep_blobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from base.errors import NotFound

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_TEMPORARY_PREFIX = ".tmp-"


@dataclass(frozen=True)
class StoreContents:
    """What a store holds: its blobs' digests, and its temporary files last written before a
    given time (abandoned writes; a younger one may be a write in progress)."""

    digests: list[str]
    stale_temporary: list[Path]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BlobStore:
    root: Path

    def path_of(self, digest: str) -> Path:
        if not _DIGEST.fullmatch(digest):  # never a path built from anything but a digest
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    async def put(self, data: bytes) -> str:
        """Store `data` (idempotent) and return its digest."""
        digest = sha256_of(data)
        await asyncio.to_thread(self._write, digest, data)
        return digest

    def _write(self, digest: str, data: bytes) -> None:
        target = self.path_of(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=_TEMPORARY_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def read(self, digest: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_of(digest).read_bytes)
        except FileNotFoundError:
            raise NotFound("The original file is missing from the store.") from None

    async def open_chunks(self, digest: str, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks, for streaming a download; NotFound (before any chunk is
        produced) when it is missing. An S3-compatible store answers this with a ranged GET."""
        try:
            handle = await asyncio.to_thread(self.path_of(digest).open, "rb")
        except FileNotFoundError:
            raise NotFound("The original file is missing from the store.") from None
        return _chunks(handle, chunk_size)

    async def exists(self, digest: str) -> bool:
        return await asyncio.to_thread(self.path_of(digest).exists)

    async def delete(self, digest: str) -> None:
        await asyncio.to_thread(self.path_of(digest).unlink, True)

    async def contents(self, *, temporary_before: float) -> StoreContents:
        """The blobs, and the temporary files last modified before `temporary_before` (a
        timestamp)."""
        return await asyncio.to_thread(self._contents, temporary_before)

    def _contents(self, temporary_before: float) -> StoreContents:
        digests: list[str] = []
        stale: list[Path] = []
        if not self.root.is_dir():
            return StoreContents(digests, stale)
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                for entry in entries:
                    if _DIGEST.fullmatch(entry.name) and entry.name.startswith(folder.name):
                        digests.append(entry.name)
                    elif entry.name.startswith(_TEMPORARY_PREFIX):
                        with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                            if entry.stat().st_mtime < temporary_before:
                                stale.append(Path(entry.path))
        return StoreContents(sorted(digests), stale)

    async def remove_temporary(self, paths: list[Path]) -> int:
        """Remove those temporary files; how many were still there."""

        def remove() -> int:
            removed = 0
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
            return removed

        return await asyncio.to_thread(remove)


async def _chunks(handle: BinaryIO, chunk_size: int) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        handle.close()


def blob_store(root: str) -> BlobStore:
    return BlobStore(Path(root))
