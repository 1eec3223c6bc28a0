"""SUMMARIZING and TAGGING: what the chat model writes about a document, made safe (ADR 0052).

The model is asked for JSON by structured output (Ollama's `format` is the JSON schema of
`SummaryAnswer` or `TagsAnswer`, which the server turns into a grammar). Whatever comes back is
then read leniently and cleaned here, because a small local model's output is weak even when it
is well-formed: control characters and runs of whitespace collapse, every value is cut to the
limits people's edits have (`services.documents`), tags and key points are de-duplicated
ignoring case, and an entity without a name or with a kind outside the five is dropped.

A reply that is not JSON of the right shape is shown back to the model once with the errors;
if the second reply fails too, the step falls back to extractive values computed from the text
itself (`extractive_summary`, `extractive_key_points`, `keyword_tags`), so a weak model never
fails ingestion, and the step's output says which source was used.

The model sees a bounded sample of the document (`sample_passages`): its first passages and
then passages spread over the rest, within `INGEST_LLM_INPUT_TOKENS`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from base.models.documents import (
    MAX_ENTITY_NAME,
    MAX_TAG,
    DocumentField,
    EntityKind,
    FieldSource,
)
from services import llm
from services.chunking import estimate_tokens
from services.documents import (
    MAX_ENTITIES,
    MAX_KEY_POINT,
    MAX_KEY_POINTS,
    MAX_SUMMARY,
    MAX_TAGS,
)

# What the model is asked for: fewer than people may write, so a small model stays on topic.
ASKED_KEY_POINTS = 5
ASKED_TAGS = 8
ASKED_ENTITIES = 10
ASKED_TAG_CHARS = 40
# Every string the schemas ask for has a length limit, so the server's grammar closes the reply
# even when a small model repeats itself: the worst case of each answer fits in the default
# INGEST_LLM_OUTPUT_TOKENS (ADR 0112). A reply cut off at the token limit is invalid JSON, and
# each one cost a second try and the extractive fallback.
ASKED_SUMMARY_CHARS = 600  # 2 to 4 sentences
ASKED_KEY_POINT_CHARS = 160  # one sentence
ASKED_ENTITY_CHARS = 60
EXTRACTIVE_SENTENCES = 3
EXTRACTIVE_SUMMARY_CHARS = 600
KEYWORD_TAGS = 5
PASSAGE_SEPARATOR = "\n\n"

Source = Literal["model", "extractive"]


# -- what the model is asked for (their JSON schemas go to the server as `format`) ------------


class SummaryAnswer(BaseModel):
    summary: str = Field(
        max_length=ASKED_SUMMARY_CHARS, description="The document's summary in 2 to 4 sentences."
    )
    key_points: list[Annotated[str, StringConstraints(max_length=ASKED_KEY_POINT_CHARS)]] = Field(
        min_length=1, max_length=ASKED_KEY_POINTS, description="Its key points, one sentence each."
    )


class EntityAnswer(BaseModel):
    name: str = Field(
        max_length=ASKED_ENTITY_CHARS, description="The name as written in the document."
    )
    kind: EntityKind


class TagsAnswer(BaseModel):
    tags: list[Annotated[str, StringConstraints(max_length=ASKED_TAG_CHARS)]] = Field(
        min_length=1,
        max_length=ASKED_TAGS,
        description="Short topics of the document, one to three words each.",
    )
    entities: list[EntityAnswer] = Field(
        max_length=ASKED_ENTITIES,
        description="People, organizations, places and products the document names.",
    )


# -- what is accepted from it (anything of the right shape; cleaned afterwards) ---------------


class LooseSummary(BaseModel):
    model_config = ConfigDict(extra="ignore")
    summary: str
    key_points: list[Any] = []


class LooseTags(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tags: list[Any] = []
    entities: list[Any] = []


@dataclass(frozen=True)
class Summary:
    summary: str
    key_points: list[str]
    source: Source  # "model" only when the model wrote both parts
    # What wrote each part: the model, or the text (its fallback).
    sources: dict[DocumentField, FieldSource]


@dataclass(frozen=True)
class Entity:
    name: str
    kind: EntityKind


@dataclass(frozen=True)
class Tags:
    tags: list[str]
    entities: list[Entity]
    source: Source  # of the tags
    # What wrote each part; entities have no fallback, so none without a usable reply.
    sources: dict[DocumentField, FieldSource | None]


# -- cleaning -----------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def clean_text(value: str, max_length: int) -> str:
    """One line: control and format characters dropped, whitespace runs collapsed, trimmed, and
    cut to `max_length` characters (at a space when one is near the end)."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in value
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    text = _SPACE.sub(" ", kept).strip()
    if len(text) <= max_length:
        return text
    cut = text[:max_length]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_length * 0.8 else cut).rstrip()


def _distinct(values: Iterable[str], limit: int) -> list[str]:
    seen: set[str] = set()
    kept: list[str] = []
    for value in values:
        key = value.casefold()
        if value and key not in seen:
            seen.add(key)
            kept.append(value)
        if len(kept) == limit:
            break
    return kept


def clean_key_points(values: Sequence[Any]) -> list[str]:
    return _distinct(
        (clean_text(v, MAX_KEY_POINT) for v in values if isinstance(v, str)), MAX_KEY_POINTS
    )


def clean_tags(values: Sequence[Any]) -> list[str]:
    """Tags as chips: one line each, no leading '#', at most MAX_TAG characters, distinct."""
    return _distinct(
        (clean_text(v.lstrip().lstrip("#"), MAX_TAG) for v in values if isinstance(v, str)),
        MAX_TAGS,
    )


def _entity_kind(value: Any) -> EntityKind | None:
    if isinstance(value, str) and value.strip().upper() in EntityKind.__members__:
        return EntityKind[value.strip().upper()]
    return None


def clean_entities(values: Sequence[Any]) -> list[Entity]:
    """Entities with a name and one of the five kinds, distinct by name (ignoring case)."""
    entities: list[Entity] = []
    seen: set[str] = set()
    for value in values:
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            continue
        kind = _entity_kind(value.get("kind"))
        name = clean_text(value["name"], MAX_ENTITY_NAME)
        if kind is None or not name or name.casefold() in seen:
            continue
        seen.add(name.casefold())
        entities.append(Entity(name=name, kind=kind))
        if len(entities) == MAX_ENTITIES:
            break
    return entities


# -- extractive fallbacks (deterministic) ----------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]|[^\W\d_]")
# Words too common to be a topic (English; other languages fall back to frequency alone).
_STOP_WORDS = frozenset(
    """a about above after again against all also an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how if in into is it its
    itself just more most must my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up use used uses
    using very was we were what when where which while who whom why will with would you your
    yours yourself yourselves may might shall one two new see following example examples also
    however return returns value values default none true false""".split()  # noqa: SIM905
)


def sentences(text: str) -> list[str]:
    """The text's sentences: its lines cut after each end mark, one line each."""
    return [
        s
        for line in text.splitlines()
        for s in (clean_text(p, MAX_SUMMARY) for p in _SENTENCE_END.split(line))
        if s
    ]


def _is_sentence(text: str) -> bool:
    """Ends like a sentence: headings, captions and "Source code: Lib/venv/" do not."""
    return text.endswith((".", "!", "?", "…")) and len(text.split()) >= 3


def extractive_summary(passages: Sequence[str]) -> str:
    """The first sentences of the document (lines that do not end like one are skipped), within
    a short length."""
    found = [s for p in passages for s in sentences(p)]
    chosen: list[str] = []
    for sentence in [s for s in found if _is_sentence(s)] or found:
        if chosen and len(" ".join([*chosen, sentence])) > EXTRACTIVE_SUMMARY_CHARS:
            break
        chosen.append(sentence)
        if len(chosen) == EXTRACTIVE_SENTENCES:
            break
    return clean_text(" ".join(chosen), EXTRACTIVE_SUMMARY_CHARS)


def extractive_key_points(headings: Sequence[str], passages: Sequence[str]) -> list[str]:
    """The document's section headings (after its first, usually the title); without any, the
    first sentence of each of its first passages."""
    from_headings = clean_key_points(list(headings)[1:])[:ASKED_KEY_POINTS]
    if from_headings:
        return from_headings
    firsts = []
    for passage in passages:
        found = sentences(passage)
        complete = [s for s in found if _is_sentence(s)] or found
        if complete:
            firsts.append(complete[0])
    return clean_key_points(firsts)[:ASKED_KEY_POINTS]


def keyword_tags(text: str, limit: int = KEYWORD_TAGS) -> list[str]:
    """The most frequent words of the text that are not stop words (ties alphabetically)."""
    counts = Counter(
        word
        for word in (w.lower() for w in _WORD.findall(text))
        if len(word) >= 4 and word not in _STOP_WORDS
    )
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return clean_tags([word for word, _ in ranked[:limit]])


# -- the model's input ------------------------------------------------------------------------


def sample_passages(passages: Sequence[str], budget_tokens: int) -> list[str]:
    """Passages to show the model, in document order, within `budget_tokens` (estimated): all
    of them when they fit; otherwise the first, then passages spread evenly over the rest."""
    costs = [estimate_tokens(p) for p in passages]
    if sum(costs) <= budget_tokens:
        return list(passages)
    if costs[0] > budget_tokens:  # the beginning matters most: as much of it as fits
        return [_head(passages[0], budget_tokens)]
    chosen: set[int] = set()
    spent = 0
    count = len(passages)
    # Visit the first, the last, then midpoints of ever finer halves: an even spread for
    # whatever budget, without knowing in advance how many passages fit.
    order = [0, *_spread(count)]
    for index in order:
        if index in chosen or spent + costs[index] > budget_tokens:
            continue
        chosen.add(index)
        spent += costs[index]
    return [passages[i] for i in sorted(chosen)]


def _spread(count: int) -> list[int]:
    """0..count-1 ordered coarse to fine: count-1, then the midpoints of each halving."""
    if count <= 1:
        return []
    order = [count - 1]
    seen = {0, count - 1}
    step = count - 1
    while step > 1:
        step = (step + 1) // 2
        for index in range(step, count, step):
            if index not in seen:
                seen.add(index)
                order.append(index)
    order.extend(i for i in range(count) if i not in seen)
    return order


def _head(text: str, budget_tokens: int) -> str:
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(text[:middle]) <= budget_tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]


# -- asking -----------------------------------------------------------------------------------

SYSTEM = "You read documents and describe them. Reply with JSON only."
SUMMARY_TASK = (
    "Write a summary of the document above in 2 to 4 sentences, and list its key points "
    f"(at most {ASKED_KEY_POINTS}), one sentence each."
)
TAGS_TASK = (
    f"List up to {ASKED_TAGS} tags for the document above: short topics, one to three words "
    "each. Then list the named entities it mentions: people (PERSON), organizations "
    "(ORGANIZATION), places (PLACE), products (PRODUCT) and other named things (OTHER)."
)


def messages_for(title: str, passages: Sequence[str], task: str) -> list[dict[str, str]]:
    document = PASSAGE_SEPARATOR.join(passages)
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Title: {title}\n\nDocument:\n{document}\n\n{task}"},
    ]


L = TypeVar("L", bound=BaseModel)


async def ask(
    messages: Sequence[Mapping[str, Any]],
    answer: type[BaseModel],
    loose: type[L],
    *,
    model: str,
    config: llm.LLMConfig,
    max_output_tokens: int,
    attempts: int = 2,
    chat: Callable[..., Awaitable[llm.ChatResult]] = llm.chat,
) -> tuple[L | None, llm.Usage]:
    """One structured request with `answer`'s schema as the format, read as `loose`; an invalid
    reply is shown back once. Raises ModelUnavailable; None after `attempts` invalid replies.
    `chat` is `llm.chat` (its signature)."""
    schema = answer.model_json_schema()
    options = {"temperature": 0, "num_predict": max_output_tokens}
    usage = llm.Usage()

    async def one(conversation: list[llm.Message]) -> llm.ChatResult:
        nonlocal usage
        result = await chat(
            conversation, model=model, config=config, options=options, format=schema
        )
        usage += result.usage
        return result

    try:
        value, _ = await llm.structured_with(one, messages, loose, max_attempts=attempts)
    except llm.InvalidModelOutput:
        return None, usage
    return value, usage


def read_summary(
    reply: LooseSummary | None, passages: Sequence[str], headings: Sequence[str]
) -> Summary:
    """The cleaned reply; an empty or missing part is replaced by its extractive fallback."""
    summary = clean_text(reply.summary, MAX_SUMMARY) if reply else ""
    key_points = clean_key_points(reply.key_points) if reply else []
    source: Source = "model" if summary and key_points else "extractive"
    return Summary(
        summary=summary or extractive_summary(passages),
        key_points=key_points or extractive_key_points(headings, passages),
        source=source,
        sources={
            DocumentField.SUMMARY: FieldSource.MODEL if summary else FieldSource.TEXT,
            DocumentField.KEY_POINTS: FieldSource.MODEL if key_points else FieldSource.TEXT,
        },
    )


def read_tags(reply: LooseTags | None, passages: Sequence[str]) -> Tags:
    """The cleaned reply; no usable tag at all falls back to the text's most frequent words.
    Entities have no fallback: a document may name none."""
    tags = clean_tags(reply.tags) if reply else []
    entities = clean_entities(reply.entities) if reply else []
    source: Source = "model" if tags else "extractive"
    return Tags(
        tags=tags or keyword_tags(PASSAGE_SEPARATOR.join(passages)),
        entities=entities,
        source=source,
        sources={
            DocumentField.TAGS: FieldSource.MODEL if tags else FieldSource.TEXT,
            DocumentField.ENTITIES: FieldSource.MODEL if reply else None,
        },
    )
