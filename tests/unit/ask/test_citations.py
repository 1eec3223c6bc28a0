"""Reading citations leniently and checking them against real passages (ADR 0071)."""

import pytest

from services.chunking import chunk
from services.citations import (
    MIN_QUOTE_CHARS,
    CitationMark,
    DropReason,
    Origin,
    check_answer,
    check_citations,
    find_quote,
    match_sentences,
    normalise,
    read_citations,
    sentences,
    shared_run,
)
from services.extraction import extract
from tests.support.corpus import VENV_HTML


@pytest.fixture(scope="module")
def venv_passages() -> dict[int, str]:
    """Chunks 3 and 4 of the venv page, numbered 1 and 2 as a prompt would."""
    extracted = extract(VENV_HTML.read_bytes(), "venv.html")
    chunks = chunk(extracted.text, extracted.headings)
    return {1: chunks[2].text, 2: chunks[3].text}


def test_markers_with_quotes_after_before_and_none():
    answer = (
        'Run the venv module [1] "python3 -m venv /path/to/new/virtual/environment". '
        "It writes “a pyvenv.cfg file” [2]. It is quick [Passage 2]."
    )
    one, two, last = answer.index("[1]"), answer.index("[2]"), answer.index("[Passage 2]")
    assert read_citations(answer) == [
        CitationMark(
            1, "python3 -m venv /path/to/new/virtual/environment", Origin.QUOTED, one, one + 3
        ),
        CitationMark(2, "a pyvenv.cfg file", Origin.QUOTED, two, two + 3),
        CitationMark(2, "It is quick", Origin.MARKED, last, last + 11),
    ]


def test_a_marker_naming_several_passages_gives_one_citation_each():
    marks = read_citations('Use venv [1, 2; 3] "creates the target directory".')
    assert [(m.number, m.quote) for m in marks] == [
        (1, "creates the target directory"),
        (2, "creates the target directory"),
        (3, "creates the target directory"),
    ]


def test_the_same_passage_and_quote_twice_is_one_citation():
    marks = read_citations('A [1] "pyvenv.cfg file". B [1] "pyvenv.cfg file".')
    assert [(m.number, m.quote) for m in marks] == [(1, "pyvenv.cfg file")]


def test_no_markers_no_citations():
    assert read_citations("Virtual environments isolate packages (see the docs).") == []


def test_normalise_folds_case_width_and_punctuation_and_maps_back():
    text, origin = normalise("  Pyvenv.CFG — ﬁle!")
    assert text == "pyvenv cfg file"
    assert [origin[0], origin[-1]] == [2, 17]


def test_an_exact_quote_is_found_with_its_range(venv_passages: dict[int, str]):
    passage = venv_passages[2]
    found = find_quote("places a pyvenv.cfg file in it", passage)
    assert found is not None and found.score == 1.0
    assert passage[found.start : found.end] == "places a pyvenv.cfg file in it"


def test_case_spaces_and_punctuation_do_not_matter(venv_passages: dict[int, str]):
    passage = venv_passages[1]
    found = find_quote("PYTHON3 -m venv  /path/to/new/virtual/environment.", passage)
    assert found is not None and found.score == 1.0
    assert passage[found.start : found.end] == "python3 -m venv /path/to/new/virtual/environment"


def test_a_quote_with_a_word_changed_still_matches(venv_passages: dict[int, str]):
    # "target folder" for "target directory": one word in a 60-character quote.
    found = find_quote("Running this command creates the target folder", venv_passages[2])
    assert found is not None
    assert 0.85 <= found.score < 1.0
    assert venv_passages[2][found.start : found.end].startswith("Running this command creates")


def test_words_the_passage_does_not_hold_do_not_match(venv_passages: dict[int, str]):
    assert find_quote("The capital of Australia is Canberra", venv_passages[2]) is None
    assert find_quote("pip installs packages from the index", venv_passages[2]) is None


def test_a_short_quote_never_matches(venv_passages: dict[int, str]):
    assert len(normalise("venv")[0]) < MIN_QUOTE_CHARS
    assert find_quote("venv", venv_passages[1]) is None


def test_check_keeps_supported_citations_and_says_why_the_others_fail(
    venv_passages: dict[int, str],
):
    answer = (
        'Create one with venv [1] "python3 -m venv /path/to/new/virtual/environment". '
        'It makes a config file [2] "places a pyvenv.cfg file in it". '
        'Passage 7 [7] "python3 -m venv". '
        'Short [1] "venv". '
        'Invented [2] "installs Django automatically into the environment".'
    )
    check = check_citations(read_citations(answer), venv_passages)
    assert [(c.number, c.origin, c.found.score) for c in check.kept] == [
        (1, Origin.QUOTED, 1.0),
        (2, Origin.QUOTED, 1.0),
    ]
    assert [(d.mark.number, d.reason) for d in check.dropped] == [
        (7, DropReason.UNKNOWN_PASSAGE),
        (1, DropReason.QUOTE_TOO_SHORT),
        (2, DropReason.QUOTE_NOT_FOUND),
    ]


def test_without_a_quote_the_sentence_must_share_a_run_of_words(venv_passages: dict[int, str]):
    answer = (
        "You make one because creation of virtual environments is done by executing venv [1]. "
        "Virtual environments come with Django preinstalled [1]."
    )
    check = check_citations(read_citations(answer), venv_passages)
    [kept] = check.kept
    assert (kept.number, kept.origin) == (1, Origin.MARKED)
    quote = venv_passages[1][kept.found.start : kept.found.end]
    assert quote == "Creation of virtual environments is done by executing"
    assert [(d.mark.quote, d.reason) for d in check.dropped] == [
        ("Virtual environments come with Django preinstalled", DropReason.QUOTE_NOT_FOUND)
    ]


def test_a_run_needs_four_words_and_twenty_four_characters(venv_passages: dict[int, str]):
    assert shared_run("It places a pyvenv.cfg file there", venv_passages[2]) is not None
    assert shared_run("the target directory is made", venv_passages[2]) is None  # 3 words
    assert shared_run("in it with a", venv_passages[2]) is None  # 4 short words


def test_unmarked_sentences_are_matched_to_the_passage_they_copy(venv_passages: dict[int, str]):
    answer = (
        "To start, run python3 -m venv /path/to/new/virtual/environment in a shell.\n"
        "It places a pyvenv.cfg file in it with a home key.\n"
        "Then install Django."
    )
    matched = match_sentences(answer, venv_passages)
    assert [(c.number, c.origin) for c in matched] == [(1, Origin.MATCHED), (2, Origin.MATCHED)]
    assert venv_passages[1][matched[0].found.start : matched[0].found.end] == (
        "python3 -m venv /path/to/new/virtual/environment"
    )
    assert venv_passages[2][matched[1].found.start : matched[1].found.end] == (
        "places a pyvenv.cfg file in it with a home key"
    )


def test_check_answer_orders_citations_and_shows_each_range_once(venv_passages: dict[int, str]):
    answer = (
        'It places a pyvenv.cfg file in it [2] "places a pyvenv.cfg file in it". '
        "Run python3 -m venv /path/to/new/virtual/environment first. "
        'Again [2] "places a pyvenv.cfg file in it". Unknown [9] "whatever words".'
    )
    check = check_answer(answer, venv_passages)
    assert [(c.number, c.origin) for c in check.kept] == [
        (2, Origin.QUOTED),
        (1, Origin.MATCHED),
    ]
    assert [(d.mark.number, d.reason) for d in check.dropped] == [(9, DropReason.UNKNOWN_PASSAGE)]


def test_sentences_split_at_ends_and_lines():
    assert sentences("One. Two!\nThree\n\n  Four?") == [
        (0, "One."),
        (5, "Two!"),
        (10, "Three"),
        (19, "Four?"),
    ]


def test_a_lower_threshold_accepts_looser_quotes(venv_passages: dict[int, str]):
    loose = "Running the command makes the target directory and a pyvenv file"
    assert find_quote(loose, venv_passages[2]) is None
    assert find_quote(loose, venv_passages[2], threshold=0.6) is not None
