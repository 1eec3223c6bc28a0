"""CHUNKING: the extracted text cut into pieces that fit the embedding model (ADR 0032).

A chunk never crosses a heading, except that a heading with no text of its own before the
next heading stays with what follows it. Inside a section, whole paragraphs (separated by a
blank line) are packed into a chunk while it fits `max_tokens`; a paragraph too long on its
own is cut at line ends, then sentence ends, then spaces, and a run of characters with no space
at all at a character boundary.

Every chunk is an exact slice of the text: `text[chunk.char_start:chunk.char_end] == chunk.text`,
with no whitespace at either end. Chunks are in text order and do not overlap.

Token counts are estimated (`estimate_tokens`), calibrated against the WordPiece tokenizer of
all-MiniLM-L6-v2 so that the estimate is rarely below the real count; pass `count_tokens` to
use a real tokenizer instead.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from base.errors import Invalid
from services.extraction import Heading

DEFAULT_MAX_TOKENS = 200

_UNIT = re.compile(r"[^\W\d_]+|\d+|\S")


def estimate_tokens(text: str) -> int:
    """About the number of word pieces all-MiniLM-L6-v2's tokenizer makes of `text`.

    Like BERT's pre-tokenizer, every punctuation mark or symbol is one token. A run of letters
    counts one per 4 letters (at least 1); a mixed-case ASCII run (an identifier such as
    PyExc_TypeError) one per 3; other scripts one per 2 letters, and CJK one per character; a
    run of digits one per 2. On the corpus of ADR 0032 the real count is 0.86 of this estimate
    at the median, and above it in 1 window of 100 by at most 5.5%.
    """
    count = 0
    for unit in _UNIT.findall(text):
        first = unit[0]
        if first.isdigit():
            count += math.ceil(len(unit) / 2)
        elif first.isalpha():
            if unit.isascii():
                mixed = len(unit) > 1 and not unit[1:].islower() and not unit.isupper()
                count += math.ceil(len(unit) / 3) if mixed else math.ceil(len(unit) / 4)
            elif unicodedata.east_asian_width(first) in ("W", "F"):
                count += len(unit)
            else:
                count += math.ceil(len(unit) / 2)
        else:
            count += 1
    return count


# The heading path put before a passage's text for the embedding model is cut to the tokens
# left in all-MiniLM-L6-v2's 256-token window ([CLS] and [SEP] included) by a passage at the
# chunk budget, so the model never cuts off the passage's end (ADR 0113).
EMBEDDING_WINDOW_TOKENS = 256
EMBEDDING_HEADER_MAX_TOKENS = EMBEDDING_WINDOW_TOKENS - 2 - DEFAULT_MAX_TOKENS
# A passage shorter than this (the tail of a section, "into the terminal.") is embedded alone:
# with the header its vector would be mostly the header's, and it would rank as the section.
EMBEDDING_HEADER_MIN_PASSAGE_TOKENS = 16


def embedding_text(heading_path: Sequence[str], text: str) -> str:
    """What the embedding model reads of a passage: the titles of the headings it sits under,
    then its text (ADR 0113). A passage on its own often never names what it is about ("Returns
    the same as lru_cache(maxsize=None)"); its page and section titles do."""
    if estimate_tokens(text) < EMBEDDING_HEADER_MIN_PASSAGE_TOKENS:
        return text
    words = " > ".join(title.strip() for title in heading_path if title.strip()).split()
    while words and estimate_tokens(" ".join(words)) > EMBEDDING_HEADER_MAX_TOKENS:
        words.pop()
    return f"{' '.join(words)}\n\n{text}" if words else text


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the extracted text: its place in the order of chunks, its text (an exact
    slice), the titles of the headings it sits under (outermost first), and its token count."""

    position: int
    text: str
    char_start: int
    char_end: int
    heading_path: tuple[str, ...]
    token_count: int


@dataclass(frozen=True, slots=True)
class _Section:
    start: int
    end: int
    path: tuple[str, ...]
    body_start: int  # where the text after the heading line starts (== start when no heading)


def chunk(
    text: str,
    headings: Sequence[Heading],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    count_tokens: Callable[[str], int] = estimate_tokens,
) -> list[Chunk]:
    """Cut `text` into chunks of at most `max_tokens` (as `count_tokens` counts them).

    `headings` are those of `extraction.Extracted`, with offsets into `text`, in order.
    Raises Invalid(INVALID) for a `max_tokens` under 16 or headings out of order or outside
    the text.
    """
    if max_tokens < 16:
        raise Invalid("max_tokens must be at least 16.", field="max_tokens")
    previous = 0
    for heading in headings:
        if not previous <= heading.offset <= len(text):
            raise Invalid("Headings must be in order and inside the text.", field="headings")
        previous = heading.offset
    pieces: list[tuple[int, int, tuple[str, ...]]] = []
    carried: tuple[int, tuple[str, ...]] | None = None  # a heading with nothing under it yet
    for section in _sections(text, headings):
        start = carried[0] if carried is not None else section.start
        carried = None
        if not text[section.body_start : section.end].strip():
            carried = (start, section.path)
            continue
        for piece_start, piece_end in _pack(text, start, section.end, max_tokens, count_tokens):
            pieces.append((piece_start, piece_end, section.path))
    if carried is not None:  # headings at the very end, with no text after them
        start, path = carried
        for piece_start, piece_end in _pack(text, start, len(text), max_tokens, count_tokens):
            pieces.append((piece_start, piece_end, path))
    chunks: list[Chunk] = []
    for start, end, path in pieces:
        start, end = _trim(text, start, end)
        if start < end:
            body = text[start:end]
            chunks.append(
                Chunk(
                    position=len(chunks),
                    text=body,
                    char_start=start,
                    char_end=end,
                    heading_path=path,
                    token_count=count_tokens(body),
                )
            )
    return chunks


def _sections(text: str, headings: Sequence[Heading]) -> Iterator[_Section]:
    """The text before the first heading, then one section per heading, each with the path of
    headings it sits under (a heading closes every open heading of its level or deeper)."""
    first = headings[0].offset if headings else len(text)
    if first > 0:
        yield _Section(start=0, end=first, path=(), body_start=0)
    stack: list[Heading] = []
    for index, heading in enumerate(headings):
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        end = headings[index + 1].offset if index + 1 < len(headings) else len(text)
        line_end = text.find("\n", heading.offset, end)
        body_start = end if line_end < 0 else line_end
        yield _Section(
            start=heading.offset,
            end=end,
            path=tuple(h.title for h in stack),
            body_start=body_start,
        )


_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LINE = re.compile(r"\n")
# After a sentence's end mark, and after a closing quote or bracket that follows one.
_SENTENCE = re.compile(r"(?:(?<=[.!?…:;])|(?<=[.!?…:;][\"')\]]))\s+")
_SPACE = re.compile(r"\s+")


def _pack(
    text: str, start: int, end: int, max_tokens: int, count: Callable[[str], int]
) -> Iterator[tuple[int, int]]:
    """Greedy packing of the paragraphs of text[start:end] into spans within the budget."""
    if count(text[start:end]) <= max_tokens:
        yield (start, end)
    else:
        yield from _pack_level(text, start, end, max_tokens, count, level=0)


_SEPARATORS = (_PARAGRAPH, _LINE, _SENTENCE, _SPACE)


def _pack_level(
    text: str, start: int, end: int, max_tokens: int, count: Callable[[str], int], level: int
) -> Iterator[tuple[int, int]]:
    """Pack the parts of text[start:end] split at `_SEPARATORS[level]`; a part too big on its
    own is packed at the next level. Counts are summed over parts (exact for
    `estimate_tokens`, whose units never span whitespace) and each span is checked whole."""
    if level == len(_SEPARATORS):
        yield from _cut_characters(text, start, end, max_tokens, count)
        return
    span: list[tuple[int, int]] = []
    span_tokens = 0
    for part in _split(text, start, end, _SEPARATORS[level]):
        tokens = count(text[part[0] : part[1]])
        if span and span_tokens + tokens <= max_tokens:
            span.append(part)
            span_tokens += tokens
            continue
        if span:
            yield from _checked(text, span[0][0], span[-1][1], max_tokens, count, level)
        if tokens <= max_tokens:
            span, span_tokens = [part], tokens
        else:
            span, span_tokens = [], 0
            yield from _pack_level(text, part[0], part[1], max_tokens, count, level + 1)
    if span:
        yield from _checked(text, span[0][0], span[-1][1], max_tokens, count, level)


def _checked(
    text: str, start: int, end: int, max_tokens: int, count: Callable[[str], int], level: int
) -> Iterator[tuple[int, int]]:
    if count(text[start:end]) <= max_tokens:
        yield (start, end)
    else:  # a counter that is not additive over whitespace: cut finer
        yield from _pack_level(text, start, end, max_tokens, count, level + 1)


def _split(
    text: str, start: int, end: int, separator: re.Pattern[str]
) -> Iterator[tuple[int, int]]:
    """The parts of text[start:end] between matches of `separator` (each part keeps its own
    characters only; the separators fall between parts)."""
    position = start
    for match in separator.finditer(text, start, end):
        if match.start() > position:
            yield (position, match.start())
        position = match.end()
    if position < end:
        yield (position, end)


def _cut_characters(
    text: str, start: int, end: int, max_tokens: int, count: Callable[[str], int]
) -> Iterator[tuple[int, int]]:
    """A run with no break at all: the longest prefixes that fit, found by bisection."""
    while start < end:
        low, high = start + 1, end
        while low < high:
            middle = (low + high + 1) // 2
            if count(text[start:middle]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        yield (start, low)
        start = low


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
