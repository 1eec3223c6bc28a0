"""The sweep of the store of originals on PostgreSQL and SQLite: what a crashed upload leaves
(a blob whose document never committed, a half-written temporary file) is removed; blobs that
documents reference, and temporary files young enough to be a write in progress, stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from base.models.documents import Document
from services.blobs import blob_store
from services.originals import BlobSweep, sweep_blobs
from tests.integration.documents.test_collections import _team
from tests.integration.documents.test_uploads import (
    NO_MODEL,
    _blob_path,
    _collection,
    _http,
    settle,
)
from tests.support.app_fixtures import blob_files
from tests.support.corpus import POSTGRES_README_MD, VENV_HTML, read
from tests.support.graphql import GraphQLClient
from tests.support.uploads import corpus_file, upload

pytestmark = pytest.mark.settings(**NO_MODEL)


def _temporary(root: Path, folder: str, name: str, *, age_seconds: float) -> str:
    """A temporary file as the store's writer names them, last written `age_seconds` ago."""
    path = root / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"<!DOCTYPE html><html><head><title>venv")  # the start of a write
    written = time.time() - age_seconds
    os.utime(path, (written, written))
    return f"{folder}/{name}"


async def test_the_sweep_removes_what_a_crashed_upload_left_and_nothing_else(
    any_db_client: GraphQLClient, any_db_app: FastAPI, blob_root: Path
):
    client, deps = any_db_client, any_db_app.state.deps
    workspace, people = await _team(client, any_db_app)
    editor = people["editor"]["accessToken"]
    collection = await _collection(client, workspace, editor, "Manuals")
    async with await _http(any_db_app) as http:
        uploaded = await upload(http, collection, [corpus_file(VENV_HTML)], token=editor)
    [made] = uploaded["files"]
    assert made["error"] is None
    await settle(any_db_app)
    async with deps.db() as session:
        [kept] = (await session.execute(select(Document.content_sha256))).scalars().all()
    # What a crash leaves: the blob an upload wrote before it died, uncommitted (the same
    # bytes the store's writer puts there), and a write cut off an hour and a half ago. A
    # write of a moment ago may be another process's upload in progress.
    orphan = await blob_store(str(blob_root)).put(read(POSTGRES_README_MD))
    abandoned = _temporary(blob_root, orphan[:2], ".tmp-abandoned", age_seconds=5400)
    in_progress = _temporary(blob_root, kept[:2], ".tmp-in-progress", age_seconds=5)
    assert blob_files(blob_root) == sorted(
        [_blob_path(kept), _blob_path(orphan), abandoned, in_progress]
    )

    swept = await sweep_blobs(deps)

    assert (swept.released, swept.temporary_removed) == ([orphan], 1)
    assert blob_files(blob_root) == sorted([_blob_path(kept), in_progress])
    # Sweeping again finds nothing; the temporary file goes once it is as old as the grace.
    assert await sweep_blobs(deps) == BlobSweep(released=[], temporary_removed=0)
    assert await sweep_blobs(deps, temporary_grace_seconds=1) == BlobSweep(
        released=[], temporary_removed=1
    )
    assert blob_files(blob_root) == [_blob_path(kept)]
    # The document's original is still served.
    async with await _http(any_db_app) as http:
        response = await http.get(
            made["document"]["downloadUrl"], headers={"authorization": f"Bearer {editor}"}
        )
    assert (response.status_code, response.content) == (200, read(VENV_HTML))


async def test_the_sweep_of_a_store_not_created_yet_does_nothing(any_db_app: FastAPI):
    # No upload yet: BLOB_ROOT does not exist (as on a fresh install, when the API starts).
    swept = await sweep_blobs(any_db_app.state.deps)
    assert (swept.released, swept.temporary_removed) == ([], 0)
