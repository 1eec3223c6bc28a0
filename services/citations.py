"""Citations in an answer: read leniently from what the model wrote, then checked (ADR 0071).

The prompt asks for a marker and a quote after each claim: `[2] "python -m venv"`. A small model
follows that loosely, so reading is tolerant: `[2]`, `[2, 3]`, `[Passage 2]` and `[source 2]`
are markers; the quote may follow the marker or come just before it, in straight, curly or
angle quotes. A marker with no quote next to it cites the sentence it closes.

A citation counts only when
1. its number names a passage that was retrieved for this answer, and
2. its quote (or, without one, its sentence) is found in that passage: both are normalised
   (Unicode NFKC, case-folded, every run of characters that are not letters or digits made one
   space), then the quote must be a substring of the passage, or else match a window of the
   passage of its own length with a difflib ratio of at least `threshold` (0.85 by default:
   a dropped or changed word in a quote of ten still passes, another sentence does not), and
3. the quote holds at least `MIN_QUOTE_CHARS` characters once normalised (a word or two would
   match almost any passage).
Everything else is dropped and counted, with the reason.
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

# [2]  [2, 3]  [Passage 2]  [source 2; 3]  [#2]
_MARKER = re.compile(
    r"\[\s*(?:passages?|sources?|p\.?|#)?\s*(\d{1,3}(?:\s*(?:,|;|and|&)\s*\d{1,3})*)\s*\]",
    re.IGNORECASE,
)
_QUOTE = re.compile(r'"([^"\n]{1,600})"|“([^”\n]{1,600})”|«([^»\n]{1,600})»|„([^“”\n]{1,600})[“”]')
_NUMBER = re.compile(r"\d{1,3}")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)|\n")
# How far a quote may sit from its marker (a colon, a space, a dash).
_NEAR = 4


class DropReason(enum.StrEnum):
    UNKNOWN_PASSAGE = "UNKNOWN_PASSAGE"  # no passage of that number was retrieved
    QUOTE_TOO_SHORT = "QUOTE_TOO_SHORT"
    QUOTE_NOT_FOUND = "QUOTE_NOT_FOUND"


@dataclass(frozen=True)
class CitationMark:
    """A citation as written: the passage number, its quote (or the sentence it closes), and
    where the marker is in the answer."""

    number: int
    quote: str
    quoted: bool  # False: `quote` is the sentence the marker closes
    marker_start: int
    marker_end: int


@dataclass(frozen=True)
class Found:
    """Where a quote is in a passage: [start, end) of the passage's own text, and how well it
    matched (1.0: exactly, after normalising)."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class CheckedCitation:
    mark: CitationMark
    found: Found


@dataclass(frozen=True)
class DroppedCitation:
    mark: CitationMark
    reason: DropReason


@dataclass(frozen=True)
class CitationCheck:
    kept: list[CheckedCitation]
    dropped: list[DroppedCitation]


def read_citations(answer: str) -> list[CitationMark]:
    """Every citation the answer makes, in order; a marker naming several passages gives one
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
        quoted = quote is not None
        if quote is None:
            quote = _sentence_before(answer, previous_end, marker.start())
        previous_end = marker.end()
        for number in dict.fromkeys(int(n) for n in _NUMBER.findall(marker.group(1))):
            key = (number, quote)
            if key in seen:
                continue
            seen.add(key)
            marks.append(CitationMark(number, quote, quoted, marker.start(), marker.end()))
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
    """Where `quote` is in `passage` under the matching rule, or None."""
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


def check_citations(
    marks: Sequence[CitationMark],
    passages: Mapping[int, str],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> CitationCheck:
    """Keep the citations whose passage was retrieved (`passages`: text by number) and holds
    their quote; drop the rest with the reason."""
    kept: list[CheckedCitation] = []
    dropped: list[DroppedCitation] = []
    for mark in marks:
        passage = passages.get(mark.number)
        if passage is None:
            dropped.append(DroppedCitation(mark, DropReason.UNKNOWN_PASSAGE))
            continue
        if len(normalise(mark.quote[:MAX_QUOTE_CHARS])[0]) < MIN_QUOTE_CHARS:
            dropped.append(DroppedCitation(mark, DropReason.QUOTE_TOO_SHORT))
            continue
        found = find_quote(mark.quote, passage, threshold=threshold)
        if found is None:
            dropped.append(DroppedCitation(mark, DropReason.QUOTE_NOT_FOUND))
        else:
            kept.append(CheckedCitation(mark, found))
    return CitationCheck(kept, dropped)
