"""EXTRACTING on real documents, hostile ones, and in the isolated child (ADR 0030, 0031)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from base.errors import Invalid
from services.extraction import (
    ERROR_CODES,
    Extracted,
    Heading,
    check_pdf_isolated,
    decode_text,
    detect_type,
    extract,
    extract_isolated,
    parse,
    run_child,
)
from tests.support import corpus


def heading_at(text: str, heading: Heading) -> bool:
    """The heading's title starts at its offset (whitespace collapsed, as in titles)."""
    return " ".join(
        text[heading.offset : heading.offset + 3 * len(heading.title)].split()
    ).startswith(heading.title)


def letters(text: str) -> str:
    return "".join(ch for ch in text[:400] if ch.isalnum()).lower()


# --- HTML ------------------------------------------------------------------------------------


def test_venv_page_title_headings_and_text() -> None:
    result = extract(corpus.read(corpus.VENV_HTML), "venv.html")
    assert result.content_type == "html"
    assert result.title == "venv — Creation of virtual environments — Python 3.11.2 documentation"
    assert result.headings == (
        Heading(level=1, title="venv — Creation of virtual environments", offset=0),
        Heading(level=2, title="Creating virtual environments", offset=1055),
        Heading(level=2, title="How venvs work", offset=5380),
        Heading(level=2, title="API", offset=8995),
        Heading(level=2, title="An example of extending EnvBuilder", offset=16538),
    )
    for heading in result.headings:
        assert result.text[heading.offset :].startswith(heading.title + "\n\n")
    assert result.text.startswith(
        "venv — Creation of virtual environments\n\nNew in version 3.3.\n\n"
        "Source code: Lib/venv/\n\n"
    )
    assert result.language == "en"
    assert result.encoding == "utf-8"
    assert result.page_count is None
    assert result.word_count == 3396


def test_venv_page_keeps_prose_and_code_and_drops_navigation() -> None:
    text = extract(corpus.read(corpus.VENV_HTML), "venv.html").text
    # A sentence split over inline elements comes out whole; the command block keeps its spaces.
    assert (
        "\n\nCreation of virtual environments is done by executing the command venv:\n\n"
        "python3 -m venv /path/to/new/virtual/environment\n\n"
    ) in text
    # Entities are decoded; the Sphinx permalink signs are gone.
    assert "&#8212;" not in text and "¶" not in text
    for chrome in ("Previous topic", "Next topic", "Report a Bug", "Show Source", "Navigation"):
        assert chrome not in text
    assert "Please donate" not in text and "Last updated on" not in text
    assert text.endswith("This script is also available for download online.")


def test_tutorial_headings_in_order_with_their_sections() -> None:
    result = extract(corpus.read(corpus.CONTROLFLOW_HTML), "controlflow.html")
    assert result.title == "4. More Control Flow Tools — Python 3.11.2 documentation"
    assert [(h.level, h.title) for h in result.headings[:5]] == [
        (1, "4. More Control Flow Tools"),
        (2, "4.1. if Statements"),
        (2, "4.2. for Statements"),
        (2, "4.3. The range() Function"),
        (2, "4.4. break and continue Statements, and else Clauses on Loops"),
    ]
    assert len(result.headings) == 23
    offsets = [h.offset for h in result.headings]
    assert offsets == sorted(offsets)
    heading = result.headings[4]
    assert result.text[heading.offset :].startswith(
        "4.4. break and continue Statements, and else Clauses on Loops\n\n"
        "The break statement, like in C, breaks out of the innermost enclosing for or while loop."
    )


def test_every_python_doc_page_extracts_without_chrome_or_script_text() -> None:
    pages = corpus.html_pages()
    with_headings = 0
    for page in pages:
        result = parse(page.read_bytes(), page.name)
        assert result.content_type == "html"
        assert "Report a Bug" not in result.text, page
        assert "documentation_options" not in result.text.lower(), page
        assert "\n\n\n" not in result.text and result.text == result.text.strip(), page
        for heading in result.headings:
            assert heading_at(result.text, heading), (page, heading)
        with_headings += bool(result.headings)
    assert with_headings >= 520


def test_scripts_styles_and_event_handlers_never_reach_the_text() -> None:
    page = corpus.read(corpus.VENV_HTML).decode()
    hostile = page.replace(
        "<p>Creation of",
        '<script>alert("script-body")</script>'
        "<style>.x{color:red} /* style-body */</style>"
        "<noscript>noscript-body</noscript>"
        '<img src="x" onerror="alert(\'onerror-attr\')">'
        '<svg><script>alert("svg-script")</script><text>svg-text</text></svg>'
        '<iframe srcdoc="&lt;b&gt;iframe-doc&lt;/b&gt;"></iframe>'
        "<p onclick=\"alert('onclick-attr')\"><a href=\"javascript:alert('js-url')\">"
        "Click here</a> to continue.</p>"
        "<p>Creation of",
        1,
    )
    text = extract(hostile.encode(), "venv.html").text
    assert "\n\nClick here to continue.\n\n" in text
    for leaked in (
        "script-body",
        "style-body",
        "noscript-body",
        "onerror",
        "svg-script",
        "svg-text",
        "iframe-doc",
        "onclick",
        "javascript:",
        "alert(",
        "<script",
        "<a href",
    ):
        assert leaked not in text


def test_a_page_with_only_scripts_has_no_text() -> None:
    with pytest.raises(Invalid) as caught:
        extract(b"<!DOCTYPE html><html><body><script>document.write('hi')</script></body></html>")
    assert caught.value.code == "NO_TEXT"
    assert caught.value.message == "The document contains no text."


def test_html_in_a_legacy_charset_declared_by_meta() -> None:
    german = corpus.apt_messages("de", 20)
    page = (
        '<html><head><meta charset="windows-1252"><title>Meldungen</title></head>'
        f"<body><h1>Meldungen</h1><p>{german}</p></body></html>"
    )
    result = extract(page.encode("cp1252"), "page.html")
    assert result.encoding == "cp1252"
    assert result.text == "Meldungen\n\n" + " ".join(german.split())
    assert result.language == "de"


# --- PDF -------------------------------------------------------------------------------------


def test_bzip2_manual_text_matches_the_page_read_by_eye() -> None:
    result = extract(corpus.read(corpus.BZIP2_PDF), "manual.pdf")
    assert result.content_type == "pdf"
    assert result.page_count == 38
    assert len(result.page_offsets) == 38
    assert result.title == "bzip2 and libbzip2, version 1.0.8"  # no metadata title: 1st line
    assert result.headings == ()  # the PDF has no outline
    assert result.language == "en"
    assert result.encoding is None
    page5 = result.text[result.page_offsets[4] : result.page_offsets[5]]
    assert page5.startswith(
        "2. How to use bzip2\nTable of Contents\n2.1. NAME … 2\n2.2. SYNOPSIS … 2\n"
    )
    assert (
        "This chapter contains a copy of the bzip2 man page, and nothing else.\n"
        "2.1. NAME\n"
        "• bzip2, bunzip2 - a block-sorting file compressor, v1.0.8\n"
        "• bzcat - decompresses files to stdout\n"
        "• bzip2recover - recovers data from damaged bzip2 files\n"
        "2.2. SYNOPSIS\n"
        "• bzip2 [ -cdfkqstvzVL123456789 ] [ filenames ... ]\n"
    ) in page5


def test_pdf_outline_becomes_headings_at_their_lines() -> None:
    result = extract(corpus.read(corpus.MIME_SPEC_PDF))
    assert result.page_count == 17
    assert result.title == "Shared MIME-info Database"
    assert result.headings[:5] == (
        Heading(level=1, title="1. Introduction", offset=109),
        Heading(level=2, title="1.1. Version", offset=125),
        Heading(level=2, title="1.2. What is this spec?", offset=236),
        Heading(level=2, title="1.3. Language used in this specification", offset=1429),
        Heading(level=1, title="2. Unified system", offset=1674),
    )
    assert len(result.headings) == 24
    # The outline says "2.13. Nonregular files", the page "2.13. Non-regular files".
    assert result.headings[17] == Heading(level=2, title="2.13. Nonregular files", offset=29716)
    assert result.text.startswith("2.13. Non-regular files\n", 29716)
    for heading in result.headings:
        assert letters(result.text[heading.offset :]).startswith(letters(heading.title)), heading


def test_an_encrypted_pdf_is_refused() -> None:
    locked = corpus.encrypted(corpus.read(corpus.BZIP2_PDF), user_password="secret")
    with pytest.raises(Invalid) as caught:
        extract(locked, "manual.pdf")
    assert caught.value.code == "PDF_ENCRYPTED"
    assert caught.value.message == "The PDF is protected by a password."


def test_a_pdf_with_only_an_owner_password_opens() -> None:
    restricted = corpus.encrypted(corpus.read(corpus.BZIP2_PDF), user_password="")
    result = extract(restricted, "manual.pdf")
    assert result.page_count == 38
    assert result.text == extract(corpus.read(corpus.BZIP2_PDF)).text


def test_a_truncated_pdf_is_broken() -> None:
    pdf = corpus.read(corpus.BZIP2_PDF)
    with pytest.raises(Invalid) as caught:
        extract(pdf[: len(pdf) // 2], "manual.pdf")
    assert caught.value.code == "PDF_BROKEN"
    assert caught.value.message == (
        "The PDF is damaged or incomplete. (it ends before its end-of-file marker)"
    )
    # Cut in the middle, with an end marker glued on: PDFium cannot load it either.
    with pytest.raises(Invalid) as caught:
        extract(pdf[: len(pdf) // 2] + b"\n%%EOF\n", "manual.pdf")
    assert caught.value.code == "PDF_BROKEN"


def test_a_truncated_pdf_is_refused_by_type_detection_alone() -> None:
    """An upload detects the type in the API process, which never parses a PDF: the cut is
    seen from the bytes, so the file is refused before anything is stored."""
    pdf = corpus.read(corpus.BZIP2_PDF)
    assert detect_type(pdf, "manual.pdf") == "pdf"
    assert detect_type(pdf + b"\r\n\n", "manual.pdf") == "pdf"
    with pytest.raises(Invalid) as caught:
        detect_type(pdf[: len(pdf) // 2], "manual.pdf")
    assert (caught.value.code, caught.value.message) == (
        "PDF_BROKEN",
        "The PDF is damaged or incomplete. (it ends before its end-of-file marker)",
    )


def test_a_pdf_without_text_has_no_text() -> None:
    with pytest.raises(Invalid) as caught:
        extract(corpus.pdf_with_content(b"0 0 m 100 100 l S"))
    assert caught.value.code == "NO_TEXT"


# --- Markdown and plain text -----------------------------------------------------------------


def test_markdown_readme_headings_and_text() -> None:
    result = extract(corpus.read(corpus.POSTGRES_README_MD), "README.md")
    assert result.content_type == "markdown"
    assert result.title == "Multi-Version/Multi-Cluster PostgreSQL architecture"
    assert result.headings[:6] == (
        Heading(level=1, title="Multi-Version/Multi-Cluster PostgreSQL architecture", offset=0),
        Heading(level=2, title="Solving a problem", offset=88),
        Heading(level=2, title="General Architecture idea", offset=1489),
        Heading(level=2, title="Detailed structure", offset=2950),
        Heading(level=3, title="Configuration hierarchy", offset=2970),
        Heading(level=3, title="Per-version files and programs", offset=3837),
    )
    assert result.text.startswith(
        "Multi-Version/Multi-Cluster PostgreSQL architecture\n\n"
        "2004, Oliver Elphick, Martin Pitt\n\nSolving a problem\n\n"
        "When a new major version of PostgreSQL is released, it is necessary to dump and\n"
    )
    # Markup is gone: no setext underlines, no "###", no code spans' backticks.
    assert "=====" not in result.text and "###" not in result.text
    assert "`pg_wrapper`" not in result.text and "pg_wrapper program" in result.text
    assert "source packages postgresql-8.1 and postgresql-8.3" in " ".join(result.text.split())
    assert result.language == "en"


def test_markdown_drops_raw_html_scripts_and_keeps_template_syntax() -> None:
    data = (
        b"# Notes\n\nUse `${HOME}` and ${model} as they are.\n\n"
        b'<div onclick="steal()">\n<script>alert(1)</script>\n<b>kept</b>\n</div>\n\n'
        b"Inline <script>alert(2)</script>after.\n"
    )
    result = extract(data, "notes.md")
    assert result.text == "Notes\n\nUse ${HOME} and ${model} as they are.\n\nkept\n\nInline after."
    assert result.headings == (Heading(level=1, title="Notes", offset=0),)


def test_plain_text_is_kept_verbatim_but_for_line_ends_and_trailing_space() -> None:
    data = b"Title line\r\n\r\n\r\n  indented ${VAR} {{ x }} $1\t \r\nlast\r\n\r\n"
    result = extract(data, "notes.txt")
    assert result.content_type == "text"
    assert result.text == "Title line\n\n  indented ${VAR} {{ x }} $1\nlast"
    assert result.title == "Title line"
    assert result.headings == ()
    assert result.word_count == 7


@pytest.mark.parametrize(
    ("language", "encoding", "python_codec"),
    [("de", "cp1252", "cp1252"), ("ru", "cp1251", "cp1251"), ("pl", "cp1250", "cp1250")],
)
def test_legacy_charsets_are_detected_and_decoded_exactly(
    language: str, encoding: str, python_codec: str
) -> None:
    text = corpus.apt_messages(language, 40)
    result = extract(text.encode(encoding), "messages.txt")
    assert result.encoding == python_codec
    assert result.text == text
    assert result.language == language


def test_utf8_with_a_stray_byte_keeps_its_text_and_marks_the_byte() -> None:
    text = corpus.apt_messages("de", 40)
    cut = len(text) // 2
    data = text[:cut].encode() + b"\xff" + text[cut:].encode()
    result = extract(data, "messages.txt")
    assert result.encoding == "utf-8"
    assert result.text == text[:cut] + "\ufffd" + text[cut:]
    assert result.language == "de"


def test_utf8_with_a_pasted_legacy_charset_line_is_read_as_utf8() -> None:
    german = corpus.apt_messages("de", 40)
    pasted = "Größe der Datei: über 20 MB"  # the same language, saved as cp1252
    data = german.encode() + b"\n" + pasted.encode("cp1252")
    result = extract(data, "messages.txt")
    assert result.encoding == "utf-8"
    # Each of the line's three cp1252 letters is one invalid sequence; nothing else changes.
    assert result.text == german + "\nGr\ufffd\ufffde der Datei: \ufffdber 20 MB"


def test_a_genuine_replacement_character_is_not_counted_as_invalid() -> None:
    # One well-formed U+FFFD and one well-formed "é" against one invalid byte: 2 > 1.
    text, encoding = decode_text("caf\u00e9 \ufffd ".encode() + b"\xe9 tea")
    assert (text, encoding) == ("caf\u00e9 \ufffd \ufffd tea", "utf-8")


def test_undecodable_bytes_are_refused() -> None:
    with pytest.raises(Invalid) as caught:
        extract(bytes(range(128, 256)) * 3, "notes.txt")
    assert caught.value.code == "UNDECODABLE_TEXT"


def test_whitespace_only_has_no_text_and_zero_bytes_are_empty() -> None:
    with pytest.raises(Invalid) as caught:
        extract(b" \n\n\t \r\n", "blank.txt")
    assert caught.value.code == "NO_TEXT"
    with pytest.raises(Invalid) as caught:
        extract(b"", "blank.txt")
    assert caught.value.code == "EMPTY_FILE"


def test_a_renamed_binary_is_unsupported() -> None:
    with pytest.raises(Invalid) as caught:
        extract(Path("/bin/ls").read_bytes(), "report.pdf")
    assert caught.value.code == "UNSUPPORTED_TYPE"


def test_short_text_has_no_language() -> None:
    assert extract(b"ok 42", "a.txt").language is None


def test_every_code_has_a_message() -> None:
    assert sorted(ERROR_CODES) == [
        "EMPTY_FILE",
        "EXTRACTION_FAILED",
        "EXTRACTION_TIMEOUT",
        "EXTRACTION_TOO_LARGE",
        "NO_TEXT",
        "PDF_BROKEN",
        "PDF_ENCRYPTED",
        "UNDECODABLE_TEXT",
        "UNSUPPORTED_TYPE",
    ]


# --- isolation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        (corpus.VENV_HTML, "venv.html"),
        (corpus.BZIP2_PDF, "manual.pdf"),
        (corpus.POSTGRES_README_MD, "README.md"),
    ],
)
async def test_isolated_extraction_equals_in_process(path: Path, hint: str) -> None:
    data = corpus.read(path)
    assert await extract_isolated(data, hint) == extract(data, hint)


async def test_isolated_errors_keep_their_codes() -> None:
    pdf = corpus.read(corpus.BZIP2_PDF)
    cases = [
        (b"", "EMPTY_FILE"),
        (LS_BYTES, "UNSUPPORTED_TYPE"),
        (pdf[: len(pdf) // 2], "PDF_BROKEN"),
        (corpus.encrypted(pdf, user_password="secret"), "PDF_ENCRYPTED"),
        (b"<html><body><script>x()</script></body></html>", "NO_TEXT"),
    ]
    for data, code in cases:
        with pytest.raises(Invalid) as caught:
            await extract_isolated(data, "upload.pdf")
        assert caught.value.code == code
        assert caught.value.field == "file"


async def test_the_upload_check_opens_a_pdf_in_the_child() -> None:
    """What an upload refuses before storing a PDF, and what it lets through to its run."""
    pdf = corpus.read(corpus.BZIP2_PDF)
    limits = {"timeout_s": 10.0, "memory_mb": 1024}
    assert await check_pdf_isolated(pdf, **limits) == 38
    assert await check_pdf_isolated(corpus.read(corpus.MIME_SPEC_PDF), **limits) == 17
    # An owner password only (permissions): it opens, and extracts, without a password.
    assert await check_pdf_isolated(corpus.encrypted(pdf, user_password=""), **limits) == 38
    damaged = pdf[: len(pdf) // 2] + b"\n%%EOF\n"  # ends well, but half its objects are gone
    for data, code, message in [
        (
            corpus.encrypted(pdf, user_password="secret"),
            "PDF_ENCRYPTED",
            "The PDF is protected by a password.",
        ),
        (
            damaged,
            "PDF_BROKEN",
            "The PDF is damaged or incomplete. (Failed to load document (PDFium: Data format "
            "error).)",
        ),
    ]:
        with pytest.raises(Invalid) as caught:
            await check_pdf_isolated(data, **limits)
        assert (caught.value.code, caught.value.message, caught.value.field) == (
            code,
            message,
            "file",
        )
    # A bomb opens (its pages are not loaded here): its run fails at EXTRACTING instead.
    assert await check_pdf_isolated(corpus.pdf_bomb(), **limits) == 1


@pytest.mark.slow
async def test_a_pdf_bomb_hits_the_memory_limit() -> None:
    bomb = corpus.pdf_bomb()
    assert len(bomb) < 1_000_000
    with pytest.raises(Invalid) as caught:
        await extract_isolated(bomb, "bomb.pdf", memory_mb=300, timeout_s=60)
    assert caught.value.code == "EXTRACTION_TOO_LARGE"
    assert caught.value.message == (
        "Reading the document needed more than the 300 MB of memory allowed."
    )


@pytest.mark.slow
async def test_a_pdf_bomb_with_room_to_grow_hits_the_deadline() -> None:
    with pytest.raises(Invalid) as caught:
        await extract_isolated(corpus.pdf_bomb(), "bomb.pdf", memory_mb=8192, timeout_s=1.0)
    assert caught.value.code == "EXTRACTION_TIMEOUT"
    assert caught.value.message == "Reading the document took too long. (limit 1 s)"


async def test_a_deeply_nested_page_hits_the_deadline() -> None:
    # Lexbor's parse time grows faster than the nesting depth (100,000 levels: about 20 s).
    nested = b"<html><body>" + b"<div>" * 200_000 + b"x" + b"</div>" * 200_000
    with pytest.raises(Invalid) as caught:
        await extract_isolated(nested, "nested.html", timeout_s=1.0)
    assert caught.value.code == "EXTRACTION_TIMEOUT"


HOSTILE = "tests.support.hostile_child"
LS_BYTES = Path("/bin/ls").read_bytes()


async def test_a_parser_that_hangs_is_killed_at_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(Invalid) as caught:
        await run_child(HOSTILE, b"x", "sleep", 0.5, 512)
    assert caught.value.code == "EXTRACTION_TIMEOUT"
    # killed at the deadline, not before it (an upper bound would be a timed assertion)
    assert time.monotonic() - started >= 0.5


async def test_a_parser_that_crashes_is_reported() -> None:
    with pytest.raises(Invalid) as caught:
        await run_child(HOSTILE, b"x", "segfault", 10, 512)
    assert caught.value.code == "EXTRACTION_FAILED"
    assert caught.value.message == "The document could not be read (the parser SIGSEGV)."


async def test_a_parser_that_allocates_without_end_is_stopped_by_the_limit() -> None:
    with pytest.raises(Invalid) as caught:
        await run_child(HOSTILE, b"x", "allocate", 30, 256)
    assert caught.value.code == "EXTRACTION_TOO_LARGE"


async def test_what_a_parser_prints_does_not_corrupt_the_reply() -> None:
    assert await run_child(HOSTILE, b"payload", "noisy", 10, 512) == {"echo": "payload"}


def test_extracted_round_trips_through_json() -> None:
    result = extract(corpus.read(corpus.MIME_SPEC_PDF))
    assert Extracted.from_json(result.to_json()) == result


def test_the_schema_lists_every_reading_failure_code() -> None:
    """errorCode is a string (reading a file has codes of its own): the schema's description is
    where a frontend finds them, so it must name each one."""
    from resolvers.documents.types import FAILURE_CODES

    named = set(FAILURE_CODES.replace(",", " ").replace(".", " ").split())
    assert set(ERROR_CODES) <= named
    assert {"MODEL_UNAVAILABLE", "NOT_FOUND", "CANCELLED", "INTERNAL"} <= named
