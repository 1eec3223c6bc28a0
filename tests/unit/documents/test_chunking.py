"""CHUNKING on the real corpus: budgets, heading paths and exact offsets (ADR 0032)."""

from __future__ import annotations

import pytest

from base.errors import Invalid
from services.chunking import (
    EMBEDDING_HEADER_MAX_TOKENS,
    EMBEDDING_HEADER_MIN_PASSAGE_TOKENS,
    Chunk,
    chunk,
    embedding_text,
    estimate_tokens,
)
from services.extraction import Extracted, Heading, parse
from tests.support import corpus


def check_invariants(extracted: Extracted, chunks: list[Chunk], max_tokens: int) -> None:
    """Exact slices in order, within the budget, and nothing but whitespace left out."""
    text = extracted.text
    previous_end = 0
    for position, piece in enumerate(chunks):
        assert piece.position == position
        assert text[piece.char_start : piece.char_end] == piece.text
        assert piece.text == piece.text.strip() and piece.text
        assert piece.char_start >= previous_end
        assert text[previous_end : piece.char_start].strip() == ""
        assert piece.token_count == estimate_tokens(piece.text) <= max_tokens
        previous_end = piece.char_end
    assert text[previous_end:].strip() == ""


def test_venv_page_chunks() -> None:
    extracted = parse(corpus.read(corpus.VENV_HTML), "venv.html")
    chunks = chunk(extracted.text, extracted.headings)
    check_invariants(extracted, chunks, 200)
    assert len(chunks) == 50
    assert chunks[0].heading_path == ("venv — Creation of virtual environments",)
    assert (chunks[0].char_start, chunks[0].char_end, chunks[0].token_count) == (0, 712, 199)
    assert chunks[2] == Chunk(
        position=2,
        text=(
            "Creating virtual environments\n\n"
            "Creation of virtual environments is done by executing the command venv:\n\n"
            "python3 -m venv /path/to/new/virtual/environment"
        ),
        char_start=1055,
        char_end=1207,
        heading_path=("venv — Creation of virtual environments", "Creating virtual environments"),
        token_count=45,
    )
    assert chunks[-1].heading_path == (
        "venv — Creation of virtual environments",
        "An example of extending EnvBuilder",
    )
    assert chunks[-1].text.endswith("This script is also available for download online.")


def test_a_chunk_never_crosses_a_heading() -> None:
    extracted = parse(corpus.read(corpus.CONTROLFLOW_HTML), "controlflow.html")
    chunks = chunk(extracted.text, extracted.headings)
    check_invariants(extracted, chunks, 200)
    starts = {h.offset for h in extracted.headings}
    for piece in chunks:
        inside = [o for o in starts if piece.char_start < o < piece.char_end]
        assert inside == [], piece
    paths = [c.heading_path for c in chunks if "The break statement" in c.text]
    assert paths == [
        (
            "4. More Control Flow Tools",
            "4.4. break and continue Statements, and else Clauses on Loops",
        )
    ]


def test_a_heading_with_nothing_under_it_stays_with_what_follows() -> None:
    extracted = parse(corpus.read(corpus.POSTGRES_README_MD), "README.md")
    chunks = chunk(extracted.text, extracted.headings)
    check_invariants(extracted, chunks, 200)
    merged = [c for c in chunks if c.text.startswith("Detailed structure")]
    assert len(merged) == 1
    assert merged[0].text.startswith("Detailed structure\n\nConfiguration hierarchy\n\n")
    assert merged[0].heading_path == (
        "Multi-Version/Multi-Cluster PostgreSQL architecture",
        "Detailed structure",
        "Configuration hierarchy",
    )


def test_pdf_chunks_follow_the_outline() -> None:
    extracted = parse(corpus.read(corpus.MIME_SPEC_PDF))
    chunks = chunk(extracted.text, extracted.headings)
    check_invariants(extracted, chunks, 200)
    assert len(chunks) == 75
    assert chunks[0].heading_path == ()  # the title page, before the first outline entry
    assert chunks[1].heading_path == ("1. Introduction", "1.1. Version")
    assert chunks[1].text.startswith("1. Introduction\n1.1. Version\nThis is version 0.21 of")
    nonregular = [c for c in chunks if c.text.startswith("2.13. Non-regular files")]
    assert [(c.char_start, c.heading_path) for c in nonregular] == [
        (29716, ("2. Unified system", "2.13. Nonregular files"))
    ]


def test_a_pdf_without_outline_is_cut_by_lines_within_the_budget() -> None:
    extracted = parse(corpus.read(corpus.BZIP2_PDF))
    chunks = chunk(extracted.text, extracted.headings)
    check_invariants(extracted, chunks, 200)
    assert {c.heading_path for c in chunks} == {()}
    assert any(
        "This chapter contains a copy of the bzip2 man page, and nothing else." in c.text
        for c in chunks
    )


def test_every_python_doc_page_chunks_within_the_budget() -> None:
    count = 0
    for page in corpus.html_pages():
        extracted = parse(page.read_bytes(), page.name)
        chunks = chunk(extracted.text, extracted.headings)
        check_invariants(extracted, chunks, 200)
        count += len(chunks)
    assert count > 20_000


def test_a_long_paragraph_is_cut_at_sentence_ends() -> None:
    extracted = parse(corpus.read(corpus.VENV_HTML), "venv.html")
    start = extracted.text.index("Running this command creates the target directory")
    end = extracted.text.index("\n\n", start)
    paragraph = extracted.text[start:end]
    assert estimate_tokens(paragraph) == 198  # four sentences: 80, 57, 42 and 19
    pieces = chunk(paragraph, [], max_tokens=100)
    assert [p.token_count for p in pieces] == [80, 99, 19]
    for piece in pieces:
        assert piece.text.endswith(".")
    assert " ".join(p.text for p in pieces) == " ".join(paragraph.split())


def test_a_run_without_spaces_is_cut_by_characters() -> None:
    blob = "QUJD" * 3000  # like base64 pasted into a document
    pieces = chunk(f"Header line\n\n{blob}\n\nTrailer", [], max_tokens=50)
    assert "".join(p.text for p in pieces[1:-1]) == blob
    assert all(p.token_count <= 50 for p in pieces)
    assert pieces[0].text == "Header line" and pieces[-1].text == "Trailer"


def test_template_syntax_is_kept_verbatim() -> None:
    text = "Set ${HOME} and ${model}.\n\nThen {{ name }} and $PATH."
    [only] = chunk(text, [])
    assert only.text == text


def test_a_real_tokenizer_can_replace_the_estimate() -> None:
    extracted = parse(corpus.read(corpus.VENV_HTML), "venv.html")

    def words(text: str) -> int:
        return len(text.split())

    chunks = chunk(extracted.text, extracted.headings, max_tokens=50, count_tokens=words)
    assert all(c.token_count == words(c.text) <= 50 for c in chunks)
    assert "".join(c.text for c in chunks).replace("\n", "").replace(" ", "") == (
        extracted.text.replace("\n", "").replace(" ", "")
    )


def test_estimate_tokens_values() -> None:
    assert estimate_tokens("Hello, world!") == 6  # the tokenizer makes 4
    assert estimate_tokens("PyExc_TypeError") == 6  # the tokenizer makes 8
    assert estimate_tokens("東京都") == 3
    assert estimate_tokens("12345") == 3  # the tokenizer makes 2
    assert estimate_tokens("") == 0


def test_empty_text_has_no_chunks_and_bad_arguments_are_refused() -> None:
    assert chunk("", []) == []
    assert chunk(" \n\n ", []) == []
    with pytest.raises(Invalid) as caught:
        chunk("text", [], max_tokens=8)
    assert caught.value.field == "max_tokens"
    with pytest.raises(Invalid) as caught:
        chunk("text", [Heading(level=1, title="x", offset=10)])
    assert caught.value.field == "headings"


def test_the_embedding_model_reads_the_heading_path_then_the_text() -> None:
    """ADR 0113: a passage is embedded under the titles it sits under."""
    extracted = parse(corpus.read(corpus.VENV_HTML), "venv.html")
    chunks = chunk(extracted.text, extracted.headings)
    assert embedding_text(chunks[2].heading_path, chunks[2].text) == (
        "venv — Creation of virtual environments > Creating virtual environments\n\n"
        "Creating virtual environments\n\n"
        "Creation of virtual environments is done by executing the command venv:\n\n"
        "python3 -m venv /path/to/new/virtual/environment"
    )
    # Text before any heading has no path: the text alone, unchanged.
    plain = "A paragraph before the first heading, long enough to be embedded with one."
    assert embedding_text((), plain) == plain
    assert embedding_text(("  ", ""), plain) == plain
    # A section's short tail is embedded alone: with the header it would rank as the section.
    tutorial = parse(corpus.read(corpus.HTML_ROOT / "tutorial" / "venv.html"), "venv.html")
    tail = next(c for c in chunk(tutorial.text, tutorial.headings) if c.token_count < 16)
    assert (tail.text, tail.heading_path) == (
        "into the terminal.",
        (
            "12. Virtual Environments and Packages",
            "12.2. Creating Virtual Environments",
        ),
    )
    assert estimate_tokens(tail.text) < EMBEDDING_HEADER_MIN_PASSAGE_TOKENS == 16
    assert embedding_text(tail.heading_path, tail.text) == "into the terminal."


def test_a_long_heading_path_is_cut_so_the_passage_fits_the_window() -> None:
    """The header keeps its first words up to EMBEDDING_HEADER_MAX_TOKENS (estimated, as chunk
    budgets are): with a passage at the budget (200) it fits all-MiniLM-L6-v2's 256 tokens."""
    path = tuple(f"Section {n} of a deeply nested reference manual" for n in range(12))
    text = ("word " * 150).strip()
    header, _, rest = embedding_text(path, text).partition("\n\n")
    assert rest == text
    assert EMBEDDING_HEADER_MAX_TOKENS == 54
    assert estimate_tokens(header) <= 54 < estimate_tokens(" > ".join(path))
    assert header == (
        "Section 0 of a deeply nested reference manual > Section 1 of a deeply nested "
        "reference manual > Section 2 of a deeply nested reference manual > Section 3 of a "
        "deeply nested"
    )
    # A path within the limit is kept whole.
    assert embedding_text(path[:2], text).partition("\n\n")[0] == " > ".join(path[:2])
