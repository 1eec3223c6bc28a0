"""User flow: an analyst uploads a mixed batch
(docs/user_flows/analyst_uploads_mixed_batch/README.md).

Each `# Step N` below is the step of the same number in that README. The server is a real
uvicorn process on its own PostgreSQL database, Redis and blob store, ingesting with the local
model server; uploads are HTTP multipart requests and the upload screen's subscription runs
over a real WebSocket.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from base.settings import Settings
from tests.support import ingest_server
from tests.support.app_fixtures import blob_files
from tests.support.corpus import (
    BZIP2_PDF,
    CONTROLFLOW_HTML,
    HTML_ROOT,
    MIME_SPEC_PDF,
    POSTGRES_README_MD,
    VENV_HTML,
    encrypted,
    pdf_with_content,
)
from tests.support.graphql import GraphQLClient
from tests.support.ingest_server import check_rows
from tests.support.team import set_up_team
from tests.support.uploads import corpus_file, upload, watch_uploads

# The timeout is a bound on a hang: ingestion with the model.
pytestmark = [pytest.mark.timeout(3000), pytest.mark.slow(seconds=640)]

# The API process that ingests with the local model (tests/support/ingest_server.py).
flow_database, blobs = ingest_server.flow_database, ingest_server.blobs
server, http = ingest_server.server, ingest_server.http

JSON_HTML = HTML_ROOT / "library" / "json.html"
# The issue's larger batch: 30 real pages of the Python documentation, in two requests.
BATCH_PAGES = 30
BATCH_SIZE = 15


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_analyst_uploads_a_mixed_batch_and_watches_each_file(
    http: httpx.AsyncClient, server: str, blobs: Path
) -> None:
    client = GraphQLClient(http)
    ws_url = server.replace("http://", "ws://", 1) + "/graphql"
    # Step 1 — the team and a collection.
    team = await set_up_team(client, Settings(), "editor", "viewer")
    erin = team.editor
    created = await client.op(
        "CreateCollection",
        {"input": {"workspaceId": team.workspace_id, "name": "Python guides"}},
        token=team.owner.token,
    )
    collection = created["createCollection"]["collection"]["id"]

    # Step 2 — Erin drops nine files.
    venv, controlflow, json_page = (
        corpus_file(p) for p in (VENV_HTML, CONTROLFLOW_HTML, JSON_HTML)
    )
    spec, readme = corpus_file(MIME_SPEC_PDF), corpus_file(POSTGRES_README_MD)
    manual = corpus_file(BZIP2_PDF)
    scan = ("scan.pdf", pdf_with_content(b"0 0 m 100 100 l 300 50 l S"))  # lines, no text
    locked = ("manual-locked.pdf", encrypted(manual[1], user_password="open sesame"))
    cut = ("manual-part.pdf", manual[1][: len(manual[1]) // 3])
    files = [venv, controlflow, json_page, spec, readme, scan, locked, cut, venv]
    payload = await upload(http, collection, files, token=erin.token)
    assert payload["errors"] == []
    outcomes = payload["files"]
    documents = [o["document"] for o in outcomes[:6]]
    assert [(d["title"], d["status"], d["contentType"]) for d in documents] == [
        ("venv", "QUEUED", "text/html"),
        ("controlflow", "QUEUED", "text/html"),
        ("json", "QUEUED", "text/html"),
        ("shared-mime-info-spec", "QUEUED", "application/pdf"),
        ("README", "QUEUED", "text/markdown"),
        ("scan", "QUEUED", "application/pdf"),
    ]
    assert [(o["run"]["workflow"], o["error"]) for o in outcomes[:6]] == [
        ("ingest_document", None)
    ] * 6
    assert outcomes[6] == {
        "index": 6,
        "fileName": "manual-locked.pdf",
        "document": None,
        "run": None,
        "error": {
            "code": "PDF_ENCRYPTED",
            "message": "The PDF is protected by a password.",
            "field": "files.6",
        },
        "duplicateOf": None,
    }
    assert outcomes[7] == {
        "index": 7,
        "fileName": "manual-part.pdf",
        "document": None,
        "run": None,
        "error": {
            "code": "PDF_BROKEN",
            "message": "The PDF is damaged or incomplete. (it ends before its end-of-file marker)",
            "field": "files.7",
        },
        "duplicateOf": None,
    }
    assert outcomes[8] == {
        "index": 8,
        "fileName": "venv.html",
        "document": None,
        "run": None,
        "error": {
            "code": "DUPLICATE_DOCUMENT",
            "message": "The collection already holds this content as “venv”.",
            "field": "files.8",
        },
        "duplicateOf": {"id": documents[0]["id"], "title": "venv"},
    }
    assert blob_files(blobs) == sorted(f"{sha256(c)[:2]}/{sha256(c)}" for _n, c in files[:6])

    # Step 3 — Erin watches every row on one subscription, to its end.
    ids = [d["id"] for d in documents]
    rows = await watch_uploads(ws_url, erin.token, team.workspace_id, ids, within=1800)
    finals = check_rows(rows, ids)
    for good in ids[:5]:
        assert (finals[good]["status"], finals[good]["percent"], finals[good]["errorCode"]) == (
            "READY",
            100,
            None,
        ), finals[good]
    assert finals[ids[5]] == {
        "documentId": ids[5],
        "fileName": "scan.pdf",
        "status": "FAILED",
        "stage": "EXTRACTING",
        "percent": 0,
        "runId": outcomes[5]["run"]["id"],
        "errorCode": "NO_TEXT",
        "errorMessage": "The document contains no text.",
        "done": True,
    }
    # Live rows came between the first and the last (the stages were seen moving).
    assert len(rows) > 2 * len(ids)

    # Step 4 — the documents list.
    listed = await client.op(
        "DocumentsList",
        {"workspaceId": team.workspace_id, "filter": {"collectionId": collection}, "first": 25},
        token=erin.token,
    )
    statuses = sorted(e["node"]["status"] for e in listed["workspace"]["documents"]["edges"])
    assert listed["workspace"]["documents"]["totalCount"] == 6
    assert statuses == ["FAILED", "READY", "READY", "READY", "READY", "READY"]

    # Step 5 — a document's page.
    detail = (await client.op("DocumentDetail", {"id": ids[0]}, token=erin.token))["document"]
    assert (detail["status"], detail["contentType"], detail["originalFilename"]) == (
        "READY",
        "text/html",
        "venv.html",
    )
    assert detail["wordCount"] > 500 and detail["language"] == "en"
    assert detail["chunks"]["totalCount"] > 0

    # Step 6 — Victor downloads the PDF.
    answer = await http.get(
        documents[3]["downloadUrl"], headers={"authorization": f"Bearer {team.viewer.token}"}
    )
    assert answer.status_code == 200 and answer.content == spec[1]
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.headers["content-disposition"].startswith(
        'attachment; filename="shared-mime-info-spec.pdf"'
    )


def thirty_pages() -> list[Path]:
    """30 real pages of the Python documentation (10-20 KB of HTML, the indexes left out), the
    same ones every run: sorted by path, evenly spread over all of them. The shorter pages keep
    the model's share of the flow small: it reads at most INGEST_LLM_INPUT_TOKENS of each page,
    and a short page has fewer tokens to read and fewer passages to embed."""
    pages = sorted(
        p
        for p in HTML_ROOT.rglob("*.html")
        if 10_000 <= p.stat().st_size <= 20_000 and not p.name.startswith("genindex")
    )
    chosen = pages[:: len(pages) // BATCH_PAGES][:BATCH_PAGES]
    assert len(chosen) == BATCH_PAGES
    return chosen


async def test_analyst_uploads_thirty_pages_in_batches(
    http: httpx.AsyncClient, server: str
) -> None:
    client = GraphQLClient(http)
    ws_url = server.replace("http://", "ws://", 1) + "/graphql"
    team = await set_up_team(client, Settings(), "editor")
    erin = team.editor
    created = await client.op(
        "CreateCollection",
        {"input": {"workspaceId": team.workspace_id, "name": "Library reference"}},
        token=erin.token,
    )
    collection = created["createCollection"]["collection"]["id"]
    pages = [corpus_file(p) for p in thirty_pages()]
    ids: list[str] = []
    for start in range(0, BATCH_PAGES, BATCH_SIZE):
        payload = await upload(
            http, collection, pages[start : start + BATCH_SIZE], token=erin.token
        )
        assert [f["error"] for f in payload["files"]] == [None] * BATCH_SIZE
        ids += [f["document"]["id"] for f in payload["files"]]
    rows = await watch_uploads(ws_url, erin.token, team.workspace_id, ids, within=2400)
    finals = check_rows(rows, ids)
    assert len(finals) == BATCH_PAGES
    for final in finals.values():
        assert final["status"] in ("READY", "FAILED")
        if final["status"] == "FAILED":
            assert final["errorCode"] and final["errorMessage"], final
        else:
            assert (final["percent"], final["errorCode"]) == (100, None)
    listed = await client.op(
        "DocumentsList",
        {"workspaceId": team.workspace_id, "filter": {"collectionId": collection}},
        token=erin.token,
    )
    assert listed["workspace"]["documents"]["totalCount"] == BATCH_PAGES
    ready = sum(1 for f in finals.values() if f["status"] == "READY")
    print(f"\n{ready} of {BATCH_PAGES} pages READY, {BATCH_PAGES - ready} FAILED with their codes")
