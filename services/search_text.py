"""User text made safe for the full-text indexes, and their highlights turned into offsets.

Whatever a user types is searched as words (ADR 0062): the query is cut into word tokens here and
each token reaches the index as a quoted term (FTS5) or a bare word of only letters, digits and
underscores (PostgreSQL's `to_tsquery`), so quotes, `*`, `NEAR`, `:`, `&`, `|`, `!`,
parentheses, `${...}` and the like are never query syntax. Terms are OR-ed: a passage needs
any of them, and ranking (BM25 on SQLite, `ts_rank` on PostgreSQL) puts the ones with more and
rarer terms first, which finds far more answers to long natural questions than requiring every
word (measured in docs/testing.md). The one thing a user's quotes mean is a phrase: two or more
words between a pair of double quotes must appear together, in that order (ADR 0091).

The indexes mark what they matched with two private-use characters (`HIGHLIGHT_START`,
`HIGHLIGHT_END`); `marked_ranges` turns a marked text into character offsets of the original.
"""

from __future__ import annotations

import re

from base.errors import Invalid

# Longer queries are searched by their first terms: a pasted page must not become a query of
# thousands of OR-ed terms.
MAX_QUERY_TERMS = 32
# What reaches the embedding model (its window is a few hundred word-pieces anyway).
MAX_EMBEDDED_CHARS = 2000

# Marks around each match in FTS5 `highlight()` output (and `ts_headline`'s, which the tests
# compare PostgreSQL's ranges with, ADR 0141); private-use characters, which extracted text
# does not contain (a text that does gets no ranges).
HIGHLIGHT_START = "\ue000"
HIGHLIGHT_END = "\ue001"

# A quoted phrase: the text between a pair of double quotes, straight or typographic. A quote
# without its pair means nothing.
_QUOTED = re.compile(r'["\u201c\u201d]([^"\u201c\u201d]*)["\u201c\u201d]')

# A word: letters and digits, joined by underscores (`lru_cache` stays one term; FTS5 and
# PostgreSQL search it as the phrase "lru cache", as they index it).
_WORD = re.compile(r"[^\W_]+(?:_+[^\W_]+)*")

# PostgreSQL's English stop words (tsearch_data/english.stop, from Snowball). Both indexes keep
# them (FTS5 has no stop words; PostgreSQL's configuration is built without them, ADR 0100), so
# "with" or "not in" can be found; they are dropped here when the query has other words, or
# "how do I" would match every passage of the workspace (slow, and no better ranked).
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing a an
    the and but if or because as until while of at by for with about against between into through
    during before after above below to from up down in out on off over under again further then
    once here there when where why how all any both each few more most other some such no nor not
    only own same so than too very s t can will just don should now
    """.split()  # noqa: SIM905  (read as the list it is copied from)
)


def require_query(text: str) -> str:
    """The query with surrounding blanks removed; Invalid(REQUIRED, field query) when nothing
    is left."""
    stripped = text.strip()
    if not stripped:
        raise Invalid("Type something to search for.", code="REQUIRED", field="query")
    return stripped


def query_terms(text: str) -> list[str]:
    """The query's terms, at most MAX_QUERY_TERMS: first each quoted phrase of two or more words
    (its first MAX_QUERY_TERMS lower-cased words joined by one space, stop words kept: the user
    quoted them), then the distinct lower-cased words outside quotes, in order, stop words left
    out unless the query has nothing else. A quoted single word is a word."""
    phrases: list[str] = []

    def take_phrase(quoted: re.Match[str]) -> str:
        words = [w.lower() for w in _WORD.findall(quoted.group(1))][:MAX_QUERY_TERMS]
        if len(words) < 2:
            return f" {quoted.group(1)} "  # a word in quotes stays where it is
        phrases.append(" ".join(words))
        return " "

    outside = _QUOTED.sub(take_phrase, text)
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(outside)))
    content = [w for w in words if w not in STOP_WORDS]
    if not content and not phrases:
        content = words
    return list(dict.fromkeys(phrases + content))[:MAX_QUERY_TERMS]


def query_words(terms: list[str]) -> list[str]:
    """The words of `terms`, phrases split, each once."""
    return list(dict.fromkeys(word for term in terms for word in term.split(" ")))


def phrases_of(terms: list[str]) -> list[str]:
    """The terms that are quoted phrases (two or more words)."""
    return [term for term in terms if " " in term]


def fts5_match(terms: list[str]) -> str:
    """An FTS5 MATCH expression: every term a quoted string (a phrase when it has several
    words), OR-ed; each phrase is also required. A term holds no `"` (only word characters and
    single spaces), so it cannot close its string."""
    if not terms:
        return ""
    any_term = " OR ".join(f'"{term}"' for term in terms)
    phrases = phrases_of(terms)
    if not phrases:
        return any_term
    return " AND ".join([*(f'"{phrase}"' for phrase in phrases), f"({any_term})"])


def fts5_match_rarer_first(rarer: list[str], common: list[str]) -> str:
    """An FTS5 MATCH of the passages that hold any of `rarer` (words, no phrase), naming every
    term of `rarer` and `common` exactly twice. FTS5's bm25() adds a term's share once for each
    time the expression names it, so a passage's score is twice what `fts5_match` of the same
    terms gives it, and the order of the passages kept is that one's."""
    return f"({fts5_match(rarer)}) AND ({fts5_match(rarer + common + common)})"


def tsquery_text(terms: list[str]) -> str:
    """Input for PostgreSQL's `to_tsquery` (under `POSTGRESQL_TEXT_CONFIG`): the terms OR-ed, a
    phrase's words joined by `<->` (followed by); each phrase is also required. A term holds only
    letters, digits, underscores and single spaces, none of which is tsquery syntax; `to_tsquery`
    stems each word, stop words included."""
    if not terms:
        return ""

    def ts(term: str) -> str:
        return " <-> ".join(term.split(" "))

    any_term = " | ".join(ts(term) for term in terms)
    phrases = phrases_of(terms)
    if not phrases:
        return any_term
    return " & ".join([*(f"({ts(phrase)})" for phrase in phrases), f"({any_term})"])


def embedded_text(text: str) -> str:
    """What of the query goes to the embedding model."""
    return " ".join(text.split())[:MAX_EMBEDDED_CHARS]


def add_span(ranges: list[tuple[int, int]], start: int, end: int) -> None:
    """Append (start, end) to `ranges` (in text order), merged into the last span when it ends
    where this one starts: adjacent matched words read as one highlight."""
    if ranges and ranges[-1][1] == start:
        ranges[-1] = (ranges[-1][0], end)
    else:
        ranges.append((start, end))


def marked_ranges(marked: str, original: str) -> list[tuple[int, int]]:
    """(start, end) offsets into `original` of the spans that `marked` (the original with
    HIGHLIGHT_START/HIGHLIGHT_END inserted around matches) marks, in order, adjacent spans
    merged. Empty when `marked` is not `original` plus marks (a text that itself contains a mark
    character, or a highlighter that changed the text)."""
    ranges: list[tuple[int, int]] = []
    plain: list[str] = []
    offset = 0
    start: int | None = None
    for part in re.split(f"([{HIGHLIGHT_START}{HIGHLIGHT_END}])", marked):
        if part == HIGHLIGHT_START:
            if start is not None:
                return []
            start = offset
        elif part == HIGHLIGHT_END:
            if start is None:
                return []
            if offset > start:
                add_span(ranges, start, offset)
            start = None
        else:
            plain.append(part)
            offset += len(part)
    if start is not None or "".join(plain) != original:
        return []
    return ranges
