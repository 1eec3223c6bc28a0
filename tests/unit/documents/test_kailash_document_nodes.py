"""What the Kailash SDK's own document nodes do with the real corpus (the evidence of ADR 0033).

These tests pin the SDK's behaviour (kailash 2.65.0) that made us write services.extraction and
services.chunking instead of using the nodes. If an upgrade changes it, a test here fails, and
ADR 0033 is to be revisited.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kailash.nodes.data.readers import DocumentProcessorNode, TextReaderNode
from kailash.nodes.data.vector_db import TextSplitterNode
from kailash.nodes.transform.chunkers import HierarchicalChunkerNode, SemanticChunkerNode
from kailash.sdk_exceptions import NodeExecutionError
from kailash.security import SecurityConfig, get_security_config, set_security_config

from services.extraction import parse
from tests.support import corpus


@pytest.fixture
def pdf_allowed(tmp_path: Path) -> Iterator[Path]:
    """The SDK's global security config, with .pdf allowed in tmp_path, restored after."""
    saved = get_security_config()
    allowed = SecurityConfig(
        allowed_directories=[str(tmp_path)],
        allowed_file_extensions=[*saved.allowed_file_extensions, ".pdf"],
    )
    set_security_config(allowed)
    try:
        yield tmp_path
    finally:
        set_security_config(saved)


def test_document_processor_refuses_pdf_and_the_installed_docs(tmp_path: Path) -> None:
    pdf = tmp_path / "manual.pdf"
    pdf.write_bytes(corpus.read(corpus.BZIP2_PDF))
    result = DocumentProcessorNode().execute(file_path=str(pdf))
    assert result["error"] == "Document processing failed: File extension not allowed: .pdf"
    assert result["content"] == ""
    # /usr is on the SDK's list of "sensitive" directories.
    result = DocumentProcessorNode().execute(file_path=str(corpus.VENV_HTML))
    assert result["error"].startswith("Document processing failed: Path traversal attempt")


def test_document_processor_pdf_is_a_placeholder_with_made_up_metadata(pdf_allowed: Path) -> None:
    pdf = pdf_allowed / "manual.pdf"
    pdf.write_bytes(corpus.read(corpus.BZIP2_PDF))
    result = DocumentProcessorNode().execute(file_path=str(pdf))
    assert result["content"] == f"[PDF Content from {pdf}]"
    metadata = result["metadata"]
    assert (metadata["title"], metadata["author"], metadata["page_count"]) == (
        "Document Title",
        "Document Author",
        1,  # the manual has 38 pages
    )
    # The type comes from the name: /bin/ls renamed .pdf gets the same placeholder.
    binary = pdf_allowed / "ls.pdf"
    shutil.copyfile("/bin/ls", binary)
    result = DocumentProcessorNode().execute(file_path=str(binary))
    assert result["content"] == f"[PDF Content from {binary}]"
    assert result["document_format"] == "pdf"


def test_document_processor_html_keeps_navigation_and_entities(tmp_path: Path) -> None:
    page = tmp_path / "venv.html"
    shutil.copyfile(corpus.VENV_HTML, page)
    result = DocumentProcessorNode().execute(file_path=str(page))
    assert result["content"].startswith(
        "venv — Creation of virtual environments &#8212; Python 3.11.2 documentation"
        " Table of Contents venv — Creation of virtual environments Creating virtual environments"
    )
    assert "Previous topic" in result["content"] and "Report a Bug" in result["content"]
    assert "\n" not in result["content"]  # paragraphs and code blocks flattened to one line
    headings = [s for s in result["sections"] if s["type"] == "heading"]
    # The <h1> and <h2> have inline markup, which its regex skips; the sidebar's <h3>/<h4> stay.
    assert [(h["level"], h["title"]) for h in headings] == 2 * [
        (4, "Previous topic"),
        (4, "Next topic"),
        (3, "This Page"),
        (3, "Navigation"),
    ]
    # Its positions index the HTML source, not the text.
    assert headings[0]["start_position"] == 5491


def test_document_processor_markdown_is_the_raw_source(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_bytes(corpus.read(corpus.POSTGRES_README_MD))
    result = DocumentProcessorNode().execute(file_path=str(readme))
    assert result["content"].startswith(
        "Multi-Version/Multi-Cluster PostgreSQL architecture\n"
        "===================================================\n"
    )
    # Setext headings (=== and ---) are not seen; only the ### ones are.
    assert [s["title"] for s in result["sections"]][:2] == [
        "Configuration hierarchy",
        "Per-version files and programs",
    ]


def test_text_readers_do_not_detect_charsets(tmp_path: Path) -> None:
    legacy = tmp_path / "messages.txt"
    legacy.write_bytes(corpus.apt_messages("de", 10).encode("cp1252"))
    with pytest.raises(NodeExecutionError, match="'utf-8' codec can't decode"):
        TextReaderNode().execute(file_path=str(legacy))
    result = DocumentProcessorNode().execute(file_path=str(legacy))
    assert result["content"] == ""
    assert "'utf-8' codec can't decode" in result["metadata"]["error"]


def test_hierarchical_chunker_ignores_headings_offsets_and_its_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    extracted = parse(corpus.read(corpus.VENV_HTML), "venv.html")
    result = HierarchicalChunkerNode().execute(
        documents=[{"id": "venv", "title": extracted.title, "content": extracted.text}],
        chunk_size=200,
    )
    assert capsys.readouterr().out == "Debug Chunker: received 1 documents\n"
    chunks = result["chunks"]
    assert len(chunks) == 42
    assert set(chunks[0]) == {
        "chunk_id",
        "document_id",
        "document_title",
        "chunk_index",
        "content",
        "hierarchy_level",
    }  # no offsets, no heading path
    assert {c["hierarchy_level"] for c in chunks} == {"paragraph"}
    assert max(len(c["content"]) for c in chunks) == 8660  # chunk_size=200 characters
    # A chunk runs across the "Creating virtual environments" heading.
    assert "information.\n\nCreating virtual environments\n\nCreation of" in chunks[2]["content"]
    # It splits on ". " and adds ". " back: the last chunk is not a slice of the text.
    assert chunks[-1]["content"].endswith("available for download online..")


def test_semantic_chunker_and_text_splitter_lose_the_text_layout() -> None:
    extracted = parse(corpus.read(corpus.VENV_HTML), "venv.html")
    semantic = SemanticChunkerNode().execute(text=extracted.text)["chunks"]
    assert len(semantic) == 19
    assert "char_start" not in semantic[0] and "start_sentence" in semantic[0]
    # Sentences are re-joined with spaces: 17 of 19 chunks are not slices of the text.
    assert sum(c["content"] not in extracted.text for c in semantic) == 17
    splitter = TextSplitterNode().execute({"text": extracted.text})
    assert splitter["chunk_metadata"][0] == {
        "chunk_index": 0,
        "chunk_size": 1000,
        "total_chunks": 33,
    }
    # "recursive" is a fixed 1,000-character window with 200 of overlap, cut inside words.
    assert splitter["chunks"][0] == extracted.text[:1000]
    assert splitter["chunks"][1] == extracted.text[800:1800]
    assert splitter["chunks"][0].endswith("wasm32-emscripten and wasm32-")
