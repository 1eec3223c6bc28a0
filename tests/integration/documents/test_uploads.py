"""Uploads (screen 6) on PostgreSQL and SQLite, over the GraphQL multipart request, with real
files of the corpus: per-file outcomes, duplicates, rejections that leave nothing behind, shared
blobs and their release, pasted text, and the download of originals."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from strawberry import relay

from base.auth.tokens import issue_download_token
from base.models.documents import Document, DocumentField, DocumentFieldSource
from base.models.runs import Run
from tests.integration.documents.test_collections import _team
from tests.support.app_fixtures import blob_files
from tests.support.corpus import BZIP2_PDF, POSTGRES_README_MD, VENV_HTML, encrypted, read
from tests.support.graphql import GraphQLClient, operation, uuid_of
from tests.support.seed import global_id
from tests.support.uploads import corpus_file, post_upload, upload

# These tests are about uploads, not ingestion: the runs they start meet no model (a closed
# loopback port, no retries), so they end quickly at EMBEDDING with MODEL_UNAVAILABLE and each
# test can wait for them (`settle`) before its app stops.
NO_MODEL = {"ollama_host": "http://127.0.0.1:9", "llm_max_retries": 0}
pytestmark = pytest.mark.settings(**NO_MODEL)

MARKDOWN_NOTE = "# Notes\n\nSee [venv](https://docs.python.org/3/library/venv.html).\n"
PNG = Path("/usr/share/doc/python3.11-doc/html/_images/logging_flow.png")


async def settle(app: FastAPI) -> None:
    """Wait until the runs the uploads started have ended, so none is cut off mid-step when the
    app stops (an extraction child killed that way leaves its pipes to the garbage collector)."""
    await app.state.runs.launcher.wait_idle()


async def _counts(db: Any) -> tuple[int, int]:
    async with db() as session:
        documents = (await session.execute(select(func.count(Document.id)))).scalar_one()
        runs = (await session.execute(select(func.count(Run.id)))).scalar_one()
    return documents, runs


async def _title_sources(db: Any) -> dict[str, str]:
    """Each document's recorded title source, by its global id."""
    async with db() as session:
        rows = await session.execute(
            select(DocumentFieldSource.document_id, DocumentFieldSource.source).where(
                DocumentFieldSource.field == DocumentField.TITLE
            )
        )
        return {global_id("Document", d): str(s) for d, s in rows}


async def _collection(client: GraphQLClient, workspace: dict[str, Any], token: str, name: str):
    created = await client.op(
        "CreateCollection",
        {"input": {"workspaceId": workspace["id"], "name": name}},
        token=token,
    )
    return created["createCollection"]["collection"]["id"]


async def _http(app: FastAPI):
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _blob_path(digest: str) -> str:
    return f"{digest[:2]}/{digest}"


async def test_a_mixed_batch_gets_one_outcome_per_file(
    any_db_client: GraphQLClient, any_db_app: FastAPI, blob_root: Path
):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _team(client, any_db_app)
    editor = people["editor"]["accessToken"]
    collection = await _collection(client, workspace, editor, "Manuals")
    html, markdown, pdf = (
        corpus_file(VENV_HTML),
        corpus_file(POSTGRES_README_MD),
        corpus_file(BZIP2_PDF),
    )
    files = [
        html,
        ("empty.txt", b""),
        markdown,
        ("manual.pdf", read(PNG)),  # a picture renamed .pdf
        pdf,
        ("venv copy.html", html[1]),  # the same content again
        ("../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
        # Opened by the isolated parser before anything is stored (ADR 0035).
        ("locked.pdf", encrypted(pdf[1], user_password="secret")),
        ("damaged.pdf", pdf[1][: len(pdf[1]) // 2] + b"\n%%EOF\n"),
    ]
    async with await _http(any_db_app) as http:
        payload = await upload(http, collection, files, token=editor)
    assert payload["errors"] == []
    outcomes = payload["files"]
    assert [(f["index"], f["fileName"]) for f in outcomes] == [
        (0, "venv.html"),
        (1, "empty.txt"),
        (2, "README.md"),
        (3, "manual.pdf"),
        (4, "manual.pdf"),
        (5, "venv copy.html"),
        (6, "../../etc/passwd"),
        (7, "locked.pdf"),
        (8, "damaged.pdf"),
    ]
    made = {f["index"]: f["document"] for f in outcomes if f["document"]}
    assert sorted(made) == [0, 2, 4, 6]
    assert [(d["title"], d["status"], d["contentType"], d["sizeBytes"]) for d in made.values()] == [
        ("venv", "QUEUED", "text/html", len(html[1])),
        ("README", "QUEUED", "text/markdown", len(markdown[1])),
        ("manual", "QUEUED", "application/pdf", len(pdf[1])),
        ("passwd", "QUEUED", "text/plain", 32),
    ]
    # The name is kept as sent, for display; it is never used as a path.
    assert made[6]["originalFilename"] == "../../etc/passwd"
    assert made[0]["downloadUrl"] == (
        "/documents/"
        + made[0]["id"].replace("=", "%3D").replace("/", "%2F").replace("+", "%2B")
        + "/original"
    )
    assert all(f["run"]["workflow"] == "ingest_document" for f in outcomes if f["document"])
    errors = {f["index"]: f["error"] for f in outcomes if f["error"]}
    assert errors == {
        1: {"code": "EMPTY_FILE", "message": "The file is empty.", "field": "files.1"},
        3: {
            "code": "UNSUPPORTED_TYPE",
            "message": "This is not a PDF, HTML, Markdown or text file.",
            "field": "files.3",
        },
        5: {
            "code": "DUPLICATE_DOCUMENT",
            "message": "The collection already holds this content as “venv”.",
            "field": "files.5",
        },
        7: {
            "code": "PDF_ENCRYPTED",
            "message": "The PDF is protected by a password.",
            "field": "files.7",
        },
        8: {
            "code": "PDF_BROKEN",
            "message": "The PDF is damaged or incomplete. "
            "(Failed to load document (PDFium: Data format error).)",
            "field": "files.8",
        },
    }
    assert outcomes[5]["duplicateOf"] == {"id": made[0]["id"], "title": "venv"}
    assert all(f["run"] is None and f["document"] is None for f in outcomes if f["error"])
    assert await _counts(db) == (4, 4)
    # A title from a file is the file's (ADR 0103); refused files left no source behind.
    assert await _title_sources(db) == {d["id"]: "FILE" for d in made.values()}
    stored = [html[1], markdown[1], pdf[1], files[6][1]]
    assert blob_files(blob_root) == sorted(_blob_path(_sha(b)) for b in stored)
    for content in stored:
        assert (blob_root / _blob_path(_sha(content))).read_bytes() == content
    await settle(any_db_app)


async def test_refused_uploads_leave_nothing_behind(
    any_db_client: GraphQLClient, any_db_app: FastAPI, blob_root: Path
):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _team(client, any_db_app)
    editor, viewer = people["editor"]["accessToken"], people["viewer"]["accessToken"]
    outsider = people["outsider"]["accessToken"]
    collection = await _collection(client, workspace, editor, "Manuals")
    page = corpus_file(VENV_HTML)
    before = await _counts(db), blob_files(blob_root)
    async with await _http(any_db_app) as http:
        # A VIEWER may not upload.
        denied = await upload(http, collection, [page], token=viewer)
        assert denied == {
            "files": None,
            "errors": [
                {
                    "code": "FORBIDDEN",
                    "message": "This needs the EDITOR role or higher; you are VIEWER.",
                    "field": None,
                }
            ],
        }
        # Another workspace's collection is answered exactly like one that does not exist.
        foreign = await upload(http, collection, [page], token=outsider)
        missing_id = relay.to_base64("Collection", str(uuid.uuid4()))
        missing = await upload(http, missing_id, [page], token=editor)
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
        # 21 files: the request is refused whole.
        many = [(f"note {i}.txt", f"note number {i}\n".encode()) for i in range(21)]
        too_many = await upload(http, collection, many, token=editor)
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
        # More than one too many is refused before execution, with the same code.
        refused = await post_upload(http, collection, [*many, *many], token=editor)
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_FILES"
        # Multipart is form-like: without the preflight header it is refused (CSRF, ADR 0020).
        no_preflight = await post_upload(http, collection, [page], token=editor, preflight=False)
        assert no_preflight.status_code == 400
        assert no_preflight.json()["errors"][0]["extensions"]["code"] == "PREFLIGHT_REQUIRED"
        # No file at all (a JSON request: without files there is no multipart body).
        nothing = await client.op(
            "UploadDocuments", {"input": {"collectionId": collection, "files": []}}, token=editor
        )
        assert nothing["uploadDocuments"] == {
            "files": None,
            "errors": [
                {"code": "REQUIRED", "message": "Choose at least one file.", "field": "files"}
            ],
        }
        # JSON values where files belong (the Upload scalar takes whatever variables hold).
        not_files = await client.op(
            "UploadDocuments",
            {"input": {"collectionId": collection, "files": ["venv.html", {"a": 1}]}},
            token=editor,
        )
        assert [f["error"]["code"] for f in not_files["uploadDocuments"]["files"]] == [
            "NOT_A_FILE",
            "NOT_A_FILE",
        ]
        # Every file refused alone.
        bad = await upload(
            http,
            collection,
            [("", b"text"), ("..", b"text"), ("nul.txt", b"a\x00b\x00c\x00" * 100)],
            token=editor,
        )
    # (A part without a file name is a form field, not a file.)
    assert [f["error"]["code"] for f in bad["files"]] == [
        "NOT_A_FILE",
        "INVALID_FILE_NAME",
        "UNSUPPORTED_TYPE",
    ]
    assert (await _counts(db), blob_files(blob_root)) == before
    await settle(any_db_app)


@pytest.mark.settings(upload_max_file_bytes=50_000, **NO_MODEL)
async def test_a_file_over_the_limit_is_refused_alone(
    any_db_client: GraphQLClient, any_db_app: FastAPI, blob_root: Path
):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _team(client, any_db_app)
    editor = people["editor"]["accessToken"]
    collection = await _collection(client, workspace, editor, "Manuals")
    large, small = corpus_file(VENV_HTML), ("small.md", b"# Small\n\nA short note.\n")
    assert len(large[1]) > 50_000
    async with await _http(any_db_app) as http:
        payload = await upload(http, collection, [large, small], token=editor)
    assert payload["files"][0]["error"] == {
        "code": "FILE_TOO_LARGE",
        "message": "The file is larger than the limit of 50,000 bytes.",
        "field": "files.0",
    }
    assert payload["files"][1]["document"]["title"] == "small"
    assert await _counts(db) == (1, 1)
    assert blob_files(blob_root) == [_blob_path(_sha(small[1]))]
    await settle(any_db_app)


async def test_same_content_elsewhere_shares_one_blob_until_the_last_document_goes(
    any_db_client: GraphQLClient, any_db_app: FastAPI, blob_root: Path
):
    client = any_db_client
    workspace, people = await _team(client, any_db_app)
    editor = people["editor"]["accessToken"]
    manuals = await _collection(client, workspace, editor, "Manuals")
    archive = await _collection(client, workspace, editor, "Archive")
    page = corpus_file(VENV_HTML)
    async with await _http(any_db_app) as http:
        first = await upload(http, manuals, [page], token=editor)
        second = await upload(http, archive, [page], token=editor)
    ids = [first["files"][0]["document"]["id"], second["files"][0]["document"]["id"]]
    assert second["files"][0]["error"] is None
    assert blob_files(blob_root) == [_blob_path(_sha(page[1]))]
    await any_db_app.state.runs.launcher.wait_idle()  # the runs read the blob

    deleted = await client.op("DeleteDocuments", {"input": {"ids": ids[:1]}}, token=editor)
    assert deleted["deleteDocuments"] == {"deletedIds": ids[:1], "errors": []}
    assert blob_files(blob_root) == [_blob_path(_sha(page[1]))]  # still referenced
    deleted = await client.op("DeleteDocuments", {"input": {"ids": ids[1:]}}, token=editor)
    assert deleted["deleteDocuments"] == {"deletedIds": ids[1:], "errors": []}
    assert blob_files(blob_root) == []
    await settle(any_db_app)


async def test_pasted_text_is_stored_verbatim(
    any_db_client: GraphQLClient, any_db_app: FastAPI, blob_root: Path
):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _team(client, any_db_app)
    editor, viewer = people["editor"]["accessToken"], people["viewer"]["accessToken"]
    collection = await _collection(client, workspace, editor, "Notes")
    text = "Notes on ${jndi:ldap://x} and #{7*7}\n\nThe venv module creates environments.\n"
    variables = {"input": {"collectionId": collection, "title": "${title} notes", "text": text}}
    created = (await client.op("CreateTextDocument", variables, token=editor))["createTextDocument"]
    assert created["errors"] == []
    document = created["document"]
    assert (document["title"], document["contentType"], document["originalFilename"]) == (
        "${title} notes",
        "text/plain",
        None,
    )
    assert document["sizeBytes"] == len(text.encode())
    assert await _title_sources(db) == {document["id"]: "PERSON"}  # typed with the paste
    assert (blob_root / _blob_path(_sha(text.encode()))).read_bytes() == text.encode()
    again = (await client.op("CreateTextDocument", variables, token=editor))["createTextDocument"]
    assert again["document"] is None
    assert again["duplicateOf"] == {"id": document["id"], "title": "${title} notes"}
    assert [e["code"] for e in again["errors"]] == ["DUPLICATE_DOCUMENT"]
    before = await _counts(db), blob_files(blob_root)
    denied = (
        await client.op(
            "CreateTextDocument",
            {"input": {**variables["input"], "text": "something else"}},
            token=viewer,
        )
    )["createTextDocument"]
    assert [e["code"] for e in denied["errors"]] == ["FORBIDDEN"]
    empty = (
        await client.op(
            "CreateTextDocument", {"input": {**variables["input"], "text": "  \n"}}, token=editor
        )
    )["createTextDocument"]
    assert empty["errors"] == [{"code": "REQUIRED", "message": "Paste some text.", "field": "text"}]
    assert (await _counts(db), blob_files(blob_root)) == before
    assert await _title_sources(db) == {document["id"]: "PERSON"}
    await settle(any_db_app)


async def test_a_download_link_works_without_the_header_for_its_document_only(
    any_db_client: GraphQLClient, any_db_app: FastAPI, blob_root: Path
):
    client = any_db_client
    settings = any_db_app.state.settings
    workspace, people = await _team(client, any_db_app)
    editor, viewer = people["editor"]["accessToken"], people["viewer"]["accessToken"]
    collection = await _collection(client, workspace, editor, "Pages")
    original = read(VENV_HTML)

    async def create_link(document_id: str, token: str | None) -> dict[str, Any]:
        data = await client.execute(
            operation("CreateDownloadLink"), {"input": {"id": document_id}}, token=token
        )
        payload: dict[str, Any] = data["data"]["createDownloadLink"]
        return payload

    def code(answer: httpx.Response) -> tuple[int, str]:
        return answer.status_code, answer.json()["errors"][0]["extensions"]["code"]

    async with await _http(any_db_app) as http:
        files = await upload(
            http, collection, [("venv.html", original), ("notes.txt", b"plain notes")], token=editor
        )
        venv, notes = (f["document"] for f in files["files"])
        asked = datetime.now(UTC)
        link = await create_link(venv["id"], viewer)
        assert link["errors"] == []
        path, _, query = link["url"].partition("?")
        assert path == venv["downloadUrl"] and query.startswith("token=")
        expires = datetime.fromisoformat(link["expiresAt"])
        expected = asked + timedelta(seconds=settings.download_link_ttl_seconds)
        assert abs((expires - expected).total_seconds()) < 5

        # A plain GET, no header: the original, with the headers of every download.
        answer = await http.get(link["url"])
        assert answer.status_code == 200 and answer.content == original
        assert answer.headers["content-disposition"].startswith('attachment; filename="venv.html"')
        assert answer.headers["referrer-policy"] == "no-referrer"
        # The link's token is for its document only, and it is not an access token.
        token = query.removeprefix("token=")
        assert code(await http.get(f"{notes['downloadUrl']}?token={token}")) == (
            401,
            "TOKEN_INVALID",
        )
        as_bearer = await client.execute(operation("AppShell"), {"first": 5}, token=token)
        assert as_bearer["errors"][0]["extensions"]["code"] == "TOKEN_INVALID"
        assert code(await http.get(f"{path}?token={viewer}")) == (401, "TOKEN_INVALID")
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        assert code(await http.get(f"{path}?token={tampered}")) == (401, "TOKEN_INVALID")
        assert code(await http.get(f"{path}?token=")) == (401, "TOKEN_INVALID")
        # Past its expiry (a token issued an hour ago, signed with the app's secret).
        expired, _ = issue_download_token(
            uuid_of(people["viewer"]["user"]["id"]),
            uuid_of(venv["id"]),
            secret=settings.jwt_secret,
            now=datetime.now(UTC) - timedelta(hours=1),
            ttl_seconds=settings.download_link_ttl_seconds,
        )
        answer = await http.get(f"{path}?token={expired}")
        assert code(answer) == (401, "TOKEN_EXPIRED")
        assert answer.json()["errors"][0]["message"] == (
            "The download link has expired: ask for a new one."
        )

        # Who may ask: any member; another workspace's document is a missing one.
        not_found = {
            "url": None,
            "expiresAt": None,
            "errors": [{"code": "NOT_FOUND", "message": "No such document.", "field": "id"}],
        }
        assert await create_link(venv["id"], people["outsider"]["accessToken"]) == not_found
        missing = relay.to_base64("Document", str(uuid.uuid4()))
        assert await create_link(missing, viewer) == not_found
        assert (await create_link("not-an-id", viewer))["errors"][0]["code"] == "NOT_FOUND"
        assert await create_link(venv["id"], None) == {
            "url": None,
            "expiresAt": None,
            "errors": [
                {"code": "UNAUTHENTICATED", "message": "Sign in to do this.", "field": None}
            ],
        }

        # The link is its member's: once they leave, it is a missing document.
        members = await client.op(
            "WorkspaceMembers", {"workspaceId": workspace["id"]}, token=viewer
        )
        me = next(
            m["node"]["id"]
            for m in members["workspace"]["members"]["edges"]
            if m["node"]["user"]["id"] == people["viewer"]["user"]["id"]
        )
        left = await client.op("RemoveMember", {"input": {"memberId": me}}, token=viewer)
        assert left["removeMember"]["errors"] == []
        assert code(await http.get(link["url"])) == (404, "NOT_FOUND")
        # The editor's own link still works.
        theirs = await create_link(venv["id"], editor)
        assert (await http.get(theirs["url"])).content == original


async def test_download_of_the_original(
    any_db_client: GraphQLClient, any_db_app: FastAPI, blob_root: Path
):
    client = any_db_client
    workspace, people = await _team(client, any_db_app)
    editor, viewer = people["editor"]["accessToken"], people["viewer"]["accessToken"]
    collection = await _collection(client, workspace, editor, "Pages")
    hostile = b"<html><body><script>alert(1)</script><p onclick='x()'>Hi</p></body></html>"
    name = "../../r\u00e9sum\u00e9 final;.html"
    async with await _http(any_db_app) as http:
        payload = await upload(http, collection, [(name, hostile)], token=editor)
        document = payload["files"][0]["document"]
        url = document["downloadUrl"]
        answer = await http.get(url, headers={"authorization": f"Bearer {viewer}"})
        assert answer.status_code == 200
        assert answer.content == hostile
        assert {k: v for k, v in answer.headers.items() if k != "date"} == {
            "content-type": "text/html",
            "content-length": str(len(hostile)),
            "content-disposition": 'attachment; filename="resume final_.html"; '
            "filename*=UTF-8''r%C3%A9sum%C3%A9%20final%3B.html",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
            "cache-control": "private, no-store",
            "cross-origin-resource-policy": "same-origin",
            "referrer-policy": "no-referrer",
            "vary": "Origin",
        }
        not_found = {
            "errors": [
                {
                    "message": "No such document.",
                    "extensions": {"code": "NOT_FOUND", "requestId": ...},
                }
            ]
        }
        outsider = await http.get(
            url, headers={"authorization": f"Bearer {people['outsider']['accessToken']}"}
        )
        missing_id = relay.to_base64("Document", str(uuid.uuid4()))
        missing = await http.get(
            f"/documents/{missing_id}/original", headers={"authorization": f"Bearer {viewer}"}
        )
        garbage = await http.get(
            "/documents/not-an-id/original", headers={"authorization": f"Bearer {viewer}"}
        )
        for refused in (outsider, missing, garbage):
            assert refused.status_code == 404
            body = refused.json()
            not_found["errors"][0]["extensions"]["requestId"] = body["errors"][0]["extensions"][
                "requestId"
            ]
            assert body == not_found
        anonymous = await http.get(url)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        forged = await http.get(url, headers={"authorization": "Bearer not.a.token"})
        assert forged.status_code == 401
        assert forged.json()["errors"][0]["extensions"]["code"] == "TOKEN_INVALID"
    assert uuid_of(document["id"])  # a real document id
    pasted = (
        await client.op(
            "CreateTextDocument",
            {"input": {"collectionId": collection, "title": "a/b: notes", "text": MARKDOWN_NOTE}},
            token=editor,
        )
    )["createTextDocument"]["document"]
    async with await _http(any_db_app) as http:
        answer = await http.get(
            pasted["downloadUrl"], headers={"authorization": f"Bearer {viewer}"}
        )
    assert answer.headers["content-disposition"] == (
        "attachment; filename=\"a b_ notes.md\"; filename*=UTF-8''a%20b%3A%20notes.md"
    )
    assert answer.headers["content-type"] == "text/markdown"
    await settle(any_db_app)


async def test_pdf_text_file_names_are_never_read_from_the_type_given(
    any_db_client: GraphQLClient, any_db_app: FastAPI
):
    """The declared type and the extension do not decide: a PDF named .txt is a PDF."""
    client = any_db_client
    workspace, people = await _team(client, any_db_app)
    editor = people["editor"]["accessToken"]
    collection = await _collection(client, workspace, editor, "Mixed")
    async with await _http(any_db_app) as http:
        payload = await upload(http, collection, [("notes.txt", read(BZIP2_PDF))], token=editor)
    assert payload["files"][0]["document"]["contentType"] == "application/pdf"
    await settle(any_db_app)
