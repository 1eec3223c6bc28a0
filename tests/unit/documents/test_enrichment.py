"""What SUMMARIZING and TAGGING keep of a model's reply: cleaning to the limits of people's edits,
de-duplication, invalid entities dropped, one retry of an invalid reply, the extractive
fallbacks, and the bounded sample of the text the model sees."""

from __future__ import annotations

import json
from typing import Any

import pytest

from base.models.documents import (
    MAX_ENTITY_NAME,
    MAX_TAG,
    DocumentField,
    EntityKind,
    FieldSource,
)
from services import enrichment, llm
from services.chunking import chunk, estimate_tokens
from services.documents import MAX_ENTITIES, MAX_KEY_POINT, MAX_KEY_POINTS, MAX_SUMMARY, MAX_TAGS
from services.extraction import extract
from tests.support import corpus

VENV = extract(corpus.read(corpus.VENV_HTML), "venv.html")
VENV_PASSAGES = [c.text for c in chunk(VENV.text, VENV.headings)]


# -- cleaning ---------------------------------------------------------------------------------


def test_text_is_one_line_without_control_characters_cut_at_a_space() -> None:
    assert enrichment.clean_text("  a\tb\n\n c\x00d\u200be\x1b  ", 100) == "a b cde"
    assert enrichment.clean_text("one two three four", 13) == "one two three"
    assert enrichment.clean_text("aaaa bbbb cccc dddd", 17) == "aaaa bbbb cccc"
    # No space near the end: cut at the limit.
    assert enrichment.clean_text("one two threefour", 13) == "one two three"
    assert enrichment.clean_text("x" * 30, 10) == "x" * 10
    assert enrichment.clean_text("${model} stays", 100) == "${model} stays"


def test_summary_and_key_points_are_cut_to_the_edit_limits() -> None:
    reply = enrichment.LooseSummary(
        summary="word " * 5000,
        key_points=["Point", "point", "", "  ", 3, None, "x " * 400, *[f"p{n}" for n in range(30)]],
    )
    summary = enrichment.read_summary(reply, VENV_PASSAGES, [])
    assert summary.source == "model"
    assert summary.sources == {
        DocumentField.SUMMARY: FieldSource.MODEL,
        DocumentField.KEY_POINTS: FieldSource.MODEL,
    }
    assert 0 < len(summary.summary) <= MAX_SUMMARY
    assert summary.key_points[:2] == ["Point", ("x " * 400)[:MAX_KEY_POINT].strip()]
    assert len(summary.key_points) == MAX_KEY_POINTS
    assert all(len(p) <= MAX_KEY_POINT for p in summary.key_points)


def test_tags_lose_their_hash_repeats_and_excess() -> None:
    tags = enrichment.clean_tags(
        ["#Python", "python", " venv ", "", "#", 7, "t" * 300, *[f"tag {n}" for n in range(40)]]
    )
    assert tags[:3] == ["Python", "venv", "t" * MAX_TAG]
    assert len(tags) == MAX_TAGS
    assert len({t.casefold() for t in tags}) == len(tags)


def test_entities_without_a_name_or_a_known_kind_are_dropped() -> None:
    entities = enrichment.clean_entities(
        [
            {"name": "Python Software Foundation", "kind": "ORGANIZATION"},
            {"name": "python software foundation", "kind": "OTHER"},  # a repeat
            {"name": "Guido", "kind": "person"},  # kinds in any case
            {"name": "Mars", "kind": "PLANET"},
            {"name": "", "kind": "PLACE"},
            {"name": 3, "kind": "PLACE"},
            {"kind": "PLACE"},
            "Linux",
            {"name": "n" * 500, "kind": "PRODUCT"},
            *[{"name": f"e{n}", "kind": "OTHER"} for n in range(100)],
        ]
    )
    assert entities[:3] == [
        enrichment.Entity("Python Software Foundation", EntityKind.ORGANIZATION),
        enrichment.Entity("Guido", EntityKind.PERSON),
        enrichment.Entity("n" * MAX_ENTITY_NAME, EntityKind.PRODUCT),
    ]
    assert len(entities) == MAX_ENTITIES


# -- fallbacks --------------------------------------------------------------------------------


def test_no_reply_falls_back_to_extractive_values_of_the_text() -> None:
    headings = [h.title for h in VENV.headings]
    summary = enrichment.read_summary(None, VENV_PASSAGES, headings)
    assert summary.source == "extractive"
    assert summary.sources == {
        DocumentField.SUMMARY: FieldSource.TEXT,
        DocumentField.KEY_POINTS: FieldSource.TEXT,
    }
    assert summary.summary.startswith("New in version 3.3. The venv module supports creating")
    assert len(summary.summary) <= enrichment.EXTRACTIVE_SUMMARY_CHARS
    assert summary.key_points == headings[1:6]
    tags = enrichment.read_tags(None, VENV_PASSAGES)
    assert tags.source == "extractive"
    # No reply, no entities: nothing wrote them.
    assert tags.sources == {DocumentField.TAGS: FieldSource.TEXT, DocumentField.ENTITIES: None}
    assert tags.tags == ["environment", "virtual", "python", "context", "directory"]
    assert tags.entities == []
    # The same input gives the same values.
    assert enrichment.read_tags(None, VENV_PASSAGES) == tags


def test_an_empty_part_of_a_reply_is_filled_by_its_fallback() -> None:
    reply = enrichment.LooseSummary(summary=" \n ", key_points=["Venv makes environments."])
    summary = enrichment.read_summary(reply, VENV_PASSAGES, [])
    assert summary.source == "extractive"
    # Each part says who wrote it: the model's key points stay the model's.
    assert summary.sources == {
        DocumentField.SUMMARY: FieldSource.TEXT,
        DocumentField.KEY_POINTS: FieldSource.MODEL,
    }
    assert summary.key_points == ["Venv makes environments."]
    assert summary.summary == enrichment.extractive_summary(VENV_PASSAGES)
    tags = enrichment.read_tags(
        enrichment.LooseTags(tags=["", "#"], entities=[{"name": "Python", "kind": "PRODUCT"}]),
        VENV_PASSAGES,
    )
    assert (tags.source, tags.entities) == (
        "extractive",
        [enrichment.Entity("Python", EntityKind.PRODUCT)],
    )
    assert tags.sources == {
        DocumentField.TAGS: FieldSource.TEXT,
        DocumentField.ENTITIES: FieldSource.MODEL,
    }


def test_key_points_without_headings_are_first_sentences() -> None:
    passages = ["First one. Second one.", "Another passage here! More.", "Third."]
    assert enrichment.extractive_key_points(["Only the title"], passages) == [
        "First one.",
        "Another passage here!",
        "Third.",
    ]


# -- the model's input ------------------------------------------------------------------------


def test_a_short_document_is_shown_whole() -> None:
    assert enrichment.sample_passages(["a b", "c d"], 100) == ["a b", "c d"]


def test_a_long_document_is_sampled_from_start_to_end_within_the_budget() -> None:
    budget = 600
    sample = enrichment.sample_passages(VENV_PASSAGES, budget)
    assert sum(estimate_tokens(p) for p in sample) <= budget
    assert sample[0] == VENV_PASSAGES[0]
    assert sample[-1] == VENV_PASSAGES[-1]
    positions = [VENV_PASSAGES.index(p) for p in sample]
    assert positions == sorted(positions)
    # Spread over the document, not its first passages only.
    assert positions[len(positions) // 2] > len(VENV_PASSAGES) // 4
    assert 2 < len(sample) < len(VENV_PASSAGES)


def test_a_first_passage_over_the_budget_is_cut() -> None:
    long = "word " * 1000
    [head] = enrichment.sample_passages([long, "tail"], 50)
    assert long.startswith(head)
    assert estimate_tokens(head) <= 50 < estimate_tokens(head + "word ")


# -- asking -----------------------------------------------------------------------------------


def reply(text: str) -> llm.ChatResult:
    return llm.ChatResult(
        text=text, model="m", done_reason="stop", prompt_tokens=10, completion_tokens=5
    )


class FakeChat:
    """Answers with the given texts in turn and records what it was sent (unit tests only)."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, messages: Any, **kwargs: Any) -> llm.ChatResult:
        self.calls.append({"messages": list(messages), **kwargs})
        return reply(self.texts.pop(0))


async def ask(chat: FakeChat) -> tuple[Any, llm.Usage]:
    return await enrichment.ask(
        enrichment.messages_for("venv", VENV_PASSAGES[:2], enrichment.SUMMARY_TASK),
        enrichment.SummaryAnswer,
        enrichment.LooseSummary,
        model="m",
        config=llm.LLMConfig(host="http://127.0.0.1:9"),
        max_output_tokens=300,
        chat=chat,
    )


async def test_an_invalid_reply_is_shown_back_once_then_given_up() -> None:
    chat = FakeChat('{"summary": "cut sh', '{"key_points": []}')
    value, usage = await ask(chat)
    assert value is None
    assert (usage.prompt_tokens, usage.completion_tokens) == (20, 10)
    assert len(chat.calls) == 2
    retry = chat.calls[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"summary": "cut sh'}
    assert retry[-1]["content"].startswith("That reply is not valid")
    assert chat.calls[0]["format"] == enrichment.SummaryAnswer.model_json_schema()
    assert chat.calls[0]["options"] == {"temperature": 0, "num_predict": 300}


async def test_a_valid_second_reply_is_read_leniently() -> None:
    chat = FakeChat("not json", json.dumps({"summary": "S.", "key_points": ["A", 1], "x": 2}))
    value, _ = await ask(chat)
    assert value == enrichment.LooseSummary(summary="S.", key_points=["A", 1])
    assert enrichment.read_summary(value, [], []).key_points == ["A"]


def test_the_schemas_sent_as_format_bound_what_is_asked() -> None:
    summary = enrichment.SummaryAnswer.model_json_schema()
    assert summary["required"] == ["summary", "key_points"]
    assert summary["properties"]["key_points"]["maxItems"] == enrichment.ASKED_KEY_POINTS
    assert summary["properties"]["summary"]["maxLength"] == enrichment.ASKED_SUMMARY_CHARS
    assert (
        summary["properties"]["key_points"]["items"]["maxLength"]
        == enrichment.ASKED_KEY_POINT_CHARS
    )
    tags = enrichment.TagsAnswer.model_json_schema()
    assert tags["properties"]["tags"]["items"]["maxLength"] == enrichment.ASKED_TAG_CHARS
    assert tags["properties"]["tags"]["maxItems"] == enrichment.ASKED_TAGS
    assert tags["properties"]["entities"]["maxItems"] == enrichment.ASKED_ENTITIES
    assert tags["$defs"]["EntityAnswer"]["properties"]["name"]["maxLength"] == (
        enrichment.ASKED_ENTITY_CHARS
    )
    assert tags["$defs"]["EntityKind"]["enum"] == [k.value for k in EntityKind]


@pytest.mark.parametrize("budget", [100, 1000])
def test_messages_hold_the_title_the_sample_and_the_task(budget: int) -> None:
    sample = enrichment.sample_passages(VENV_PASSAGES, budget)
    [system, user] = enrichment.messages_for("venv ${x}", sample, enrichment.TAGS_TASK)
    assert system["role"] == "system"
    assert user["content"].startswith("Title: venv ${x}\n\nDocument:\n" + sample[0])
    assert user["content"].endswith(enrichment.TAGS_TASK)
