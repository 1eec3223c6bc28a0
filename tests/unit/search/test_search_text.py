"""User text as search terms, and highlight marks as offsets."""

import pytest

from base.errors import Invalid
from services.search_text import (
    HIGHLIGHT_END as E,
)
from services.search_text import (
    HIGHLIGHT_START as S,
)
from services.search_text import (
    MAX_QUERY_TERMS,
    embedded_text,
    fts5_match,
    fts5_match_rarer_first,
    marked_ranges,
    query_terms,
    query_words,
    require_query,
    tsquery_text,
)

# Every character or word that means something to FTS5 or to PostgreSQL's tsquery parsers.
OPERATOR_QUERIES = [
    '"virtual environment"',
    'virtual"environment',
    '"',
    '""',
    "venv*",
    "*",
    "NEAR(virtual environment)",
    "NEAR/2",
    "headings:venv",
    "text : venv",
    "{headings text}: venv",
    "^venv",
    "venv & pip",
    "venv | pip",
    "!venv",
    "venv <-> pip",
    "venv <2> pip",
    "(venv OR pip) AND NOT conda",
    "venv:*",
    "venv:AB",
    "'venv'",
    "-venv +pip",
    "${workspace}",
    "$(rm -rf /)",
    "\\",
    "venv\\",
    "%_",
]


@pytest.mark.parametrize("query", OPERATOR_QUERIES)
def test_operator_syntax_becomes_plain_words(query):
    terms = query_terms(query)
    for term in terms:
        assert all(word.replace("_", "").isalnum() for word in term.split(" ")), term
    match = fts5_match(terms)
    assert all(f'"{t}"' in match for t in terms)
    operators = match
    for term in terms:
        operators = operators.replace(f'"{term}"', "")
    assert set(operators) <= set(" ORAND()"), match  # only what fts5_match itself writes
    tsquery = tsquery_text(terms)
    assert set(tsquery) <= set("abcdefghijklmnopqrstuvwxyz0123456789_ |&()<->"), tsquery


def test_a_quoted_phrase_is_one_term_and_required():
    terms = query_terms('"Context Manager" exceptions with')
    assert terms == ["context manager", "exceptions"]
    assert fts5_match(terms) == '"context manager" AND ("context manager" OR "exceptions")'
    assert tsquery_text(terms) == "(context <-> manager) & (context <-> manager | exceptions)"
    assert query_words(terms) == ["context", "manager", "exceptions"]


def test_rarer_words_first_requires_a_rarer_word_and_names_every_word_twice():
    match = fts5_match_rarer_first(["lru_cache", "maxsize"], ["function"])
    assert match == (
        '("lru_cache" OR "maxsize") AND ("lru_cache" OR "maxsize" OR "function" OR "function")'
    )
    for word in ("lru_cache", "maxsize", "function"):
        assert match.count(f'"{word}"') == 2


def test_a_pasted_page_in_quotes_is_cut_like_any_long_query():
    words = [f"word{i}" for i in range(3000)]
    terms = query_terms('"' + " ".join(words) + '"')
    assert terms == [" ".join(words[:MAX_QUERY_TERMS])]


def test_quotes_in_phrases_keep_stop_words_and_typographic_quotes_count():
    assert query_terms("\u201cthe with statement\u201d") == ["the with statement"]
    assert query_terms('"to be" or not') == ["to be"]  # the phrase is content enough
    assert query_terms('say "venv" pip') == ["say", "venv", "pip"]  # a quoted word is a word
    assert query_terms('an "unpaired quote') == ["unpaired", "quote"]
    assert query_terms('"a b" "a b" c') == ["a b", "c"]
    terms = query_terms('"lru_cache maxsize" "typed dict"')
    assert fts5_match(terms) == (
        '"lru_cache maxsize" AND "typed dict" AND ("lru_cache maxsize" OR "typed dict")'
    )


def test_terms_are_distinct_lowercase_words_in_order_without_stop_words():
    assert query_terms("How do I create a Virtual environment? virtual!") == [
        "create",
        "virtual",
        "environment",
    ]
    assert query_terms("NEAR(virtual environment)") == ["near", "virtual", "environment"]
    assert query_terms("lru_cache __init__ os.path.join") == [
        "lru_cache",
        "init",
        "os",
        "path",
        "join",
    ]
    assert query_terms("Ünïcödé naïve café") == ["ünïcödé", "naïve", "café"]


def test_a_query_of_stop_words_only_keeps_them():
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]


def test_no_words_means_no_terms():
    assert query_terms("*** ::: ((( )))") == []
    assert fts5_match([]) == ""
    assert tsquery_text([]) == ""


def test_long_queries_keep_their_first_terms():
    text = " ".join(f"word{i}" for i in range(5000))
    assert len(text) > 10_000
    terms = query_terms(text)
    assert terms == [f"word{i}" for i in range(MAX_QUERY_TERMS)]
    assert len(embedded_text(text)) == 2000


def test_blank_queries_are_required():
    for blank in ("", " ", "\n\t  "):
        with pytest.raises(Invalid) as raised:
            require_query(blank)
        assert (raised.value.code, raised.value.field) == ("REQUIRED", "query")
    assert require_query("  venv \n") == "venv"


def test_fts5_and_tsquery_forms():
    assert fts5_match(["virtual", "environment"]) == '"virtual" OR "environment"'
    assert tsquery_text(["virtual", "environment"]) == "virtual | environment"


def test_marks_become_offsets_into_the_original():
    original = "Create a virtual environment with venv."
    marked = f"Create a {S}virtual{E} {S}environment{E} with {S}venv{E}."
    assert marked_ranges(marked, original) == [(9, 16), (17, 28), (34, 38)]
    assert [original[s:e] for s, e in marked_ranges(marked, original)] == [
        "virtual",
        "environment",
        "venv",
    ]


def test_adjacent_marks_merge_and_empty_ones_vanish():
    assert marked_ranges(f"{S}lru{E}{S}_cache{E} x{S}{E}", "lru_cache x") == [(0, 9)]


def test_no_marks_no_ranges():
    assert marked_ranges("plain text", "plain text") == []


@pytest.mark.parametrize(
    "marked, original",
    [
        (f"{S}a{E}b", "xb"),  # the highlighter changed the text
        (f"{S}a{S}b{E}", "ab"),  # nested start
        (f"a{E}b", "ab"),  # end without start
        (f"{S}ab", "ab"),  # start never ended
        (f"{S}{S}{E}a{E}", f"{S}a"),  # the text itself holds a mark character
    ],
)
def test_marks_that_do_not_fit_the_text_give_no_ranges(marked, original):
    assert marked_ranges(marked, original) == []


def test_offsets_count_characters_not_bytes():
    original = "Ünïcödé café ☕ venv"
    marked = f"Ünïcödé {S}café{E} ☕ {S}venv{E}"
    assert [original[s:e] for s, e in marked_ranges(marked, original)] == ["café", "venv"]


def test_terms_are_lowered_as_the_indexes_lower_words() -> None:
    """casefold() would turn "Straße" into "strasse", a word neither index holds (both keep ß
    and lower-case letters one by one); the terms must be what the index stored."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='unicode61')")
    db.execute("INSERT INTO t VALUES ('Die Straße ist lang'), ('ein Wort')")
    terms = query_terms("STRASSE Straße")
    assert terms == ["strasse", "straße"]
    found = db.execute("SELECT body FROM t WHERE t MATCH ?", (fts5_match(["straße"]),)).fetchall()
    assert found == [("Die Straße ist lang",)]
    missed = db.execute("SELECT body FROM t WHERE t MATCH ?", (fts5_match(["strasse"]),))
    assert missed.fetchall() == []
