"""The pure rules of uploads and downloads: file names, titles, Content-Disposition, the capped
multipart parser and the body limit of a multipart request."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.downloads import content_disposition
from app.http import BodySizeLimit
from base.errors import Invalid
from resolvers.core.multipart import CappedMultiPartParser
from services import uploads
from services.originals import base_name, media_type_of
from services.uploads import MAX_FILE_NAME, clean_file_name, title_from
from tests.support import corpus


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("venv.html", "venv.html"),
        ("../../etc/passwd", "../../etc/passwd"),
        ("  notes.md  ", "notes.md"),
        ("re\u0301sume\u0301.txt", "r\u00e9sum\u00e9.txt"),  # NFC
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # a right-to-left override removed
        ("line\nbreak\x00.txt", "linebreak.txt"),
        ("C:\\Users\\a\\report.pdf", "C:\\Users\\a\\report.pdf"),
    ],
)
def test_file_names_are_kept_for_display_without_invisible_characters(raw: str, kept: str):
    assert clean_file_name(raw, field="files.0") == kept


def test_a_very_long_name_is_cut_keeping_its_extension():
    name = clean_file_name("x" * 1000 + ".html", field="files.0")
    assert len(name) == MAX_FILE_NAME == 255
    assert name == "x" * 250 + ".html"
    assert clean_file_name("y" * 300, field="files.0") == "y" * 255


@pytest.mark.parametrize("raw", [None, "", "   ", "..", "../..", "/", "\\", "\u202e", "./."])
def test_a_name_with_nothing_usable_is_refused(raw: str | None):
    with pytest.raises(Invalid) as refused:
        clean_file_name(raw, field="files.3")
    assert (refused.value.code, refused.value.field) == ("INVALID_FILE_NAME", "files.3")


def test_titles_and_base_names():
    assert title_from("../../etc/passwd") == "passwd"
    assert title_from("C:\\docs\\Quarterly report.final.pdf") == "Quarterly report.final"
    assert title_from(".bashrc") == ".bashrc"
    assert title_from("${jndi:x}.txt") == "${jndi:x}"
    assert base_name("a/b\\c.txt") == "c.txt"


def test_media_types_of_stored_content_types():
    assert [media_type_of(t) for t in ("html", "text/html", "pdf", "markdown", "text")] == [
        "text/html",
        "text/html",
        "application/pdf",
        "text/markdown",
        "text/plain",
    ]
    assert media_type_of("image/svg+xml") == "application/octet-stream"


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("manual.pdf", "attachment; filename=\"manual.pdf\"; filename*=UTF-8''manual.pdf"),
        (
            "r\u00e9sum\u00e9 (v2).html",
            'attachment; filename="resume (v2).html"; '
            "filename*=UTF-8''r%C3%A9sum%C3%A9%20%28v2%29.html",
        ),
        (
            'a"b;c\r\nd.txt',
            "attachment; filename=\"a_b_c__d.txt\"; filename*=UTF-8''a%22b%3Bc%0D%0Ad.txt",
        ),
        (
            "\u65e5\u672c.md",
            "attachment; filename=\"download.md\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.md",
        ),
        (".bashrc", "attachment; filename=\"download.bashrc\"; filename*=UTF-8''.bashrc"),
        ("..x.txt", "attachment; filename=\"x.txt\"; filename*=UTF-8''..x.txt"),
        ("\u65e5\u672c", "attachment; filename=\"download\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC"),
    ],
)
def test_content_disposition_is_safe_and_exact(name: str, header: str):
    assert content_disposition(name) == header


async def _parse(body: bytes, boundary: str, **limits: int):
    async def stream():
        for start in range(0, len(body), 7):  # small chunks: limits hold across chunk edges
            yield body[start : start + 7]

    headers = Headers({"content-type": f"multipart/form-data; boundary={boundary}"})
    return await CappedMultiPartParser(headers, stream(), **limits).parse()


def _multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def test_the_parser_keeps_a_file_only_one_byte_past_the_limit():
    body = _multipart(
        "xyz",
        [("operations", None, b"{}"), ("0", "big.txt", b"a" * 100), ("1", "ok.txt", b"b" * 10)],
    )
    form = await _parse(body, "xyz", max_file_bytes=20, max_files=3, max_fields=5)
    big, ok = form["0"], form["1"]
    assert (await big.read(), await ok.read()) == (b"a" * 21, b"b" * 10)
    assert form["operations"] == "{}"
    await form.close()


async def test_the_body_limit_of_a_multipart_request_is_its_own():
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"read": len(await request.body())})

    app = BodySizeLimit(Starlette(routes=[Route("/", echo, methods=["POST"])]), 100, 1000)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        json_body = await client.post(
            "/", content=b"x" * 500, headers={"content-type": "application/json"}
        )
        form = await client.post(
            "/", content=b"x" * 500, headers={"content-type": "multipart/form-data; boundary=b"}
        )
        too_big = await client.post(
            "/", content=b"x" * 1001, headers={"content-type": "multipart/form-data; boundary=b"}
        )
    assert json_body.status_code == 413
    assert json_body.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert (form.status_code, form.json()) == (200, {"read": 500})
    assert too_big.status_code == 413
    assert too_big.json()["errors"][0]["message"] == "The request body is larger than 1000 bytes."


def test_a_row_read_again_never_moves_back_while_its_run_goes_on():
    import uuid

    from base.models.documents import DocumentStatus
    from services.live import _not_backwards
    from services.uploads import FileProgress

    run = uuid.uuid4()
    shown = FileProgress(uuid.uuid4(), "a.html", DocumentStatus.PROCESSING, "EMBEDDING", 52, run)
    stale = FileProgress(shown.document_id, "a.html", DocumentStatus.QUEUED, "CHUNKING", 33, run)
    assert _not_backwards(shown, stale) == shown
    later = FileProgress(shown.document_id, "a.html", DocumentStatus.PROCESSING, "TAGGING", 90, run)
    assert _not_backwards(shown, later) == later
    other_run = FileProgress(
        shown.document_id, "a.html", DocumentStatus.QUEUED, None, 0, uuid.uuid4()
    )
    assert _not_backwards(shown, other_run) == other_run  # a reprocess starts over
    failed = FileProgress(
        shown.document_id, "a.html", DocumentStatus.FAILED, "EMBEDDING", 50, run, "X", "x"
    )
    assert _not_backwards(shown, failed) == failed


async def test_type_detection_runs_off_the_event_loop() -> None:
    """Detection decodes the whole file (and guesses a legacy charset): on the event loop it
    would hold every other request for as long. Another task must get turns while it runs."""
    text = corpus.apt_messages("de", 400).encode("cp1252")
    turns = 0
    detecting = True

    async def other_request() -> None:
        nonlocal turns
        while detecting:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_request())
    await asyncio.sleep(0)  # its first turn
    kind = await uploads._detect(text, "messages.txt", field="files.0")
    detecting = False
    await task
    assert kind == "text"
    assert turns > 1  # it ran again while the file was being detected
