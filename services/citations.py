"""Citations in an answer: read leniently from what the model wrote, then checked (ADR 0071).

The prompt asks for a marker and a quote after each claim: `[2] "python -m venv"`. A small model
follows that loosely, so reading is tolerant: `[2]`, `[2, 3]`, `[Passage 2]` and `[source 2]`
are markers; the quote may follow the marker or come just before it, in straight, curly or
angle quotes. There are three kinds of citation:

- QUOTED: a marker with a quote. It counts when the quote is found in passage n: both are
  normalised (Unicode NFKC, case-folded, every run of characters that are not letters or digits
  made one space); the quote must hold at least `MIN_QUOTE_CHARS` characters, and be a
  substring of the passage or else match a window of the passage of its own length with a
  difflib ratio of at least `threshold` (0.85 by default: a word changed in a quote of ten
  still passes, another sentence does not).
- MARKED: a marker without a quote, which cites the sentence it closes. It counts when that
  sentence and passage n share a run of at least `MIN_RUN_WORDS` consecutive words (and
  `MIN_RUN_CHARS` characters) once normalised; the longest such run is its quote.
- MATCHED: a sentence of the answer with no marker at all that shares such a run with a
  numbered passage (the longest run wins). Nobody claimed it, so it is never dropped; it shows
  which passage the words came from.

In all three the quote shown is the passage's own text, found in the passage: a citation never
shows words its passage does not hold. A QUOTED or MARKED citation whose number names no
passage retrieved for this answer, or whose quote or sentence is not found, is dropped and
counted with the reason.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

DEFAULT_THRESHOLD = 0.85
MIN_QUOTE_CHARS = 12
MAX_QUOTE_CHARS = 600
MIN_RUN_WORDS = 4
MIN_RUN_CHARS = 24

# [2]  [2, 3]  [Passage 2]  [source 2; 3]  [#2]
_MARKER = re.compile(
    r"\[\s*(?:passages?|sources?|p\.?|#)?\s*(\d{1,3}(?:\s*(?:,|;|and|&)\s*\d{1,3})*)\s*\]",
    re.IGNORECASE,
)
_QUOTE = re.compile(r'"([^"\n]{1,600})"|“([^”\n]{1,600})”|«([^»\n]{1,600})»|„([^“”\n]{1,600})[“”]')
_NUMBER = re.compile(r"\d{1,3}")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
# How far a quote may sit from its marker (a colon, a space, a dash).
_NEAR = 4


class Origin(enum.StrEnum):
    QUOTED = "QUOTED"  # the model wrote [n] and a quote
    MARKED = "MARKED"  # the model wrote [n] after a sentence, without a quote
    MATCHED = "MATCHED"  # the model wrote no marker; the sentence's words were found


class DropReason(enum.StrEnum):
    UNKNOWN_PASSAGE = "UNKNOWN_PASSAGE"  # no passage of that number was retrieved
    QUOTE_TOO_SHORT = "QUOTE_TOO_SHORT"
    QUOTE_NOT_FOUND = "QUOTE_NOT_FOUND"


@dataclass(frozen=True)
class CitationMark:
    """A citation the model wrote: the passage number, its quote (or the sentence it closes),
    and where the marker is in the answer."""

    number: int
    quote: str
    origin: Origin
    marker_start: int
    marker_end: int


@dataclass(frozen=True)
class Found:
    """Where a quote is in a passage: [start, end) of the passage's own text, and how well it
    matched (QUOTED: 1.0 found exactly after normalising, else the ratio; MARKED and MATCHED:
    the share of the sentence's words in the run)."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class CheckedCitation:
    number: int
    origin: Origin
    found: Found
    answer_start: int  # where in the answer the citation is (its marker, or its sentence)


@dataclass(frozen=True)
class DroppedCitation:
    mark: CitationMark
    reason: DropReason


@dataclass(frozen=True)
class CitationCheck:
    kept: list[CheckedCitation]  # in the order of the answer
    dropped: list[DroppedCitation]


def read_citations(answer: str) -> list[CitationMark]:
    """Every citation the model wrote, in order; a marker naming several passages gives one
    per passage, and the same passage with the same quote is given once."""
    quotes = [
        (m.start(), m.end(), next(g for g in m.groups() if g is not None))
        for m in _QUOTE.finditer(answer)
    ]
    marks: list[CitationMark] = []
    seen: set[tuple[int, str]] = set()
    previous_end = 0
    for marker in _MARKER.finditer(answer):
        quote = _quote_near(answer, quotes, marker.start(), marker.end())
        origin = Origin.QUOTED
        if quote is None:
            quote, origin = _sentence_before(answer, previous_end, marker.start()), Origin.MARKED
        previous_end = marker.end()
        for number in dict.fromkeys(int(n) for n in _NUMBER.findall(marker.group(1))):
            if (number, quote) in seen:
                continue
            seen.add((number, quote))
            marks.append(CitationMark(number, quote, origin, marker.start(), marker.end()))
    return marks


def _quote_near(
    answer: str, quotes: Sequence[tuple[int, int, str]], start: int, end: int
) -> str | None:
    """The quote right after the marker, else the one right before it."""
    for q_start, _q_end, text in quotes:
        if end <= q_start <= end + _NEAR and not answer[end:q_start].strip(" :-–—"):
            return text
    for _q_start, q_end, text in reversed(quotes):
        if start - _NEAR <= q_end <= start and not answer[q_end:start].strip(" :-–—,"):
            return text
    return None


def _sentence_before(answer: str, floor: int, marker_start: int) -> str:
    """The text from the last sentence end (or the previous marker) up to the marker."""
    window = answer[floor:marker_start]
    ends = list(_SENTENCE_END.finditer(window.rstrip(" .!?")))
    start = ends[-1].end() if ends else 0
    return _MARKER.sub(" ", window[start:]).strip()


def sentences(answer: str) -> list[tuple[int, str]]:
    """The answer's sentences (and lines) with where each starts."""
    found: list[tuple[int, str]] = []
    start = 0
    for end in _SENTENCE_END.finditer(answer):
        piece = answer[start : end.end()]
        if piece.strip():
            found.append((start + len(piece) - len(piece.lstrip()), piece.strip()))
        start = end.end()
    if answer[start:].strip():
        rest = answer[start:]
        found.append((start + len(rest) - len(rest.lstrip()), rest.strip()))
    return found


def normalise(text: str) -> tuple[str, list[int]]:
    """The text NFKC-normalised and case-folded, each run of characters that are not letters
    or digits made one space, trimmed; with, for each character of the result, the index in
    `text` of the character it came from."""
    out: list[str] = []
    origin: list[int] = []
    pending_space = False
    for index, char in enumerate(text):
        for folded in unicodedata.normalize("NFKC", char).casefold():
            if folded.isalnum():
                if pending_space and out:
                    out.append(" ")
                    origin.append(index)
                pending_space = False
                out.append(folded)
                origin.append(index)
            else:
                pending_space = True
    return "".join(out), origin


def find_quote(quote: str, passage: str, *, threshold: float = DEFAULT_THRESHOLD) -> Found | None:
    """Where a QUOTED citation's quote is in `passage`, or None."""
    wanted, _ = normalise(quote[:MAX_QUOTE_CHARS])
    if len(wanted) < MIN_QUOTE_CHARS:
        return None
    text, origin = normalise(passage)
    if not text:
        return None
    at = text.find(wanted)
    if at >= 0:
        return Found(origin[at], origin[at + len(wanted) - 1] + 1, 1.0)
    best_score, best_at = 0.0, -1
    matcher = SequenceMatcher(None, wanted, text, autojunk=False)
    tried: set[int] = set()
    for block in matcher.get_matching_blocks():
        if block.size == 0:
            continue
        # Align the quote on the block, as rapidfuzz's partial_ratio does.
        begin = min(max(0, block.b - block.a), max(0, len(text) - len(wanted)))
        if begin in tried:
            continue
        tried.add(begin)
        window = text[begin : begin + len(wanted)]
        score = SequenceMatcher(None, wanted, window, autojunk=False).ratio()
        if score > best_score:
            best_score, best_at = score, begin
    if best_at < 0 or best_score < threshold:
        return None
    end = min(best_at + len(wanted), len(text)) - 1
    return Found(origin[best_at], origin[end] + 1, round(best_score, 4))


def _words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The normalised words of `text`, each with its [start, end) in `text`."""
    normal, origin = normalise(text)
    words, spans = [], []
    for match in re.finditer(r"\S+", normal):
        words.append(match.group())
        spans.append((origin[match.start()], origin[match.end() - 1] + 1))
    return words, spans


def shared_run(sentence: str, passage: str) -> Found | None:
    """The longest run of consecutive words the sentence and the passage share, if it holds
    at least MIN_RUN_WORDS words and MIN_RUN_CHARS characters."""
    mine, _ = _words(sentence[: MAX_QUOTE_CHARS * 2])
    theirs, spans = _words(passage)
    if len(mine) < MIN_RUN_WORDS or not theirs:
        return None
    match = SequenceMatcher(None, mine, theirs, autojunk=False).find_longest_match(
        0, len(mine), 0, len(theirs)
    )
    if match.size < MIN_RUN_WORDS:
        return None
    run = mine[match.a : match.a + match.size]
    if sum(len(w) for w in run) + len(run) - 1 < MIN_RUN_CHARS:
        return None
    start, end = spans[match.b][0], spans[match.b + match.size - 1][1]
    return Found(start, end, round(match.size / len(mine), 4))


def check_citations(
    marks: Sequence[CitationMark],
    passages: Mapping[int, str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> CitationCheck:
    """Keep the model's citations whose passage was retrieved (`passages`: text by number) and
    holds their quote or shares a run of words with their sentence; drop the rest."""
    kept: list[CheckedCitation] = []
    dropped: list[DroppedCitation] = []
    for mark in marks:
        passage = passages.get(mark.number)
        if passage is None:
            dropped.append(DroppedCitation(mark, DropReason.UNKNOWN_PASSAGE))
            continue
        if mark.origin is Origin.QUOTED:
            if len(normalise(mark.quote[:MAX_QUOTE_CHARS])[0]) < MIN_QUOTE_CHARS:
                dropped.append(DroppedCitation(mark, DropReason.QUOTE_TOO_SHORT))
                continue
            found = find_quote(mark.quote, passage, threshold=threshold)
        else:
            found = shared_run(mark.quote, passage)
        if found is None:
            dropped.append(DroppedCitation(mark, DropReason.QUOTE_NOT_FOUND))
        else:
            kept.append(CheckedCitation(mark.number, mark.origin, found, mark.marker_start))
    return CitationCheck(kept, dropped)


def match_sentences(answer: str, passages: Mapping[int, str]) -> list[CheckedCitation]:
    """MATCHED citations: for each sentence with no marker, the numbered passage sharing the
    longest run of words with it, if any (ties go to the lower number)."""
    found: list[CheckedCitation] = []
    for start, sentence in sentences(answer):
        if _MARKER.search(sentence):
            continue
        best: tuple[int, Found] | None = None
        for number in sorted(passages):
            run = shared_run(sentence, passages[number])
            if run is not None and (
                best is None or run.end - run.start > best[1].end - best[1].start
            ):
                best = (number, run)
        if best is not None:
            found.append(CheckedCitation(best[0], Origin.MATCHED, best[1], start))
    return found


def check_answer(
    answer: str, passages: Mapping[int, str], *, threshold: float = DEFAULT_THRESHOLD
) -> CitationCheck:
    """All the citations of an answer: the model's, checked, and the matched ones; each
    passage range shown once, in the order of the answer."""
    checked = check_citations(read_citations(answer), passages, threshold=threshold)
    candidates = sorted(
        [*checked.kept, *match_sentences(answer, passages)], key=lambda c: c.answer_start
    )
    kept: list[CheckedCitation] = []
    shown: set[tuple[int, int, int]] = set()
    for citation in candidates:
        key = (citation.number, citation.found.start, citation.found.end)
        if key not in shown:
            shown.add(key)
            kept.append(citation)
    return CitationCheck(kept, checked.dropped)
