"""Abstention rules (ADR 0072), a question's context in its conversation (ADRs 0122, 0123) and
the text streamer over the in-process bus (ADR 0073)."""

import asyncio
import uuid

from base.events.bus import LocalBus, answer_text_key, answer_topic
from services.answer_prompt import NOT_IN_DOCUMENTS_REPLY
from services.answers import (
    MOST_CONTEXT_QUESTIONS,
    TextStreamer,
    keyword_coverage,
    model_abstained,
    question_context,
    relevant_enough,
)
from services.search import Passage, in_conversation_query
from services.search_text import MAX_QUERY_TERMS, query_terms


def passage(cosine: float | None, matches: list[tuple[int, int]] | None = None) -> Passage:
    return Passage(
        chunk_id=uuid.uuid4(),
        document_id=uuid.uuid4(),
        collection_id=uuid.uuid4(),
        document_title="venv",
        text="python3 -m venv /path/to/new/virtual/environment",
        heading_path=[],
        char_start=0,
        char_end=49,
        score=1.0,
        cosine=cosine,
        matches=matches or [],
    )


TERMS = [
    "create",
    "virtual",
    "environment",
]  # query_terms("How do I create a virtual environment?")


def test_nothing_retrieved_is_not_relevant():
    assert relevant_enough([], None, min_cosine=0.4, terms=TERMS) is False
    assert relevant_enough([], 0.9, min_cosine=0.4, terms=TERMS) is False


def test_the_best_cosine_decides_when_there_are_vectors():
    assert relevant_enough([passage(0.39)], 0.39, min_cosine=0.4, terms=TERMS) is False
    assert relevant_enough([passage(0.4)], 0.4, min_cosine=0.4, terms=TERMS) is True


def test_a_follow_up_passes_with_the_question_before_it_above_a_floor_of_its_own():
    def relevant(alone: float, together: float | None) -> bool:
        return relevant_enough(
            [passage(alone)],
            alone,
            min_cosine=0.45,
            terms=TERMS,
            context_cosine=together,
            follow_up_min_cosine=0.37,
        )

    assert relevant(0.45, None) is True  # close enough alone, as a first question
    assert relevant(0.45, 0.10) is True  # a new subject the documents hold
    assert relevant(0.40, 0.60) is True  # "and how do I activate it?" after the venv question
    assert relevant(0.37, 0.45) is True  # both at their bars
    assert relevant(0.36, 0.80) is False  # a subject the documents lack, after one they hold
    assert relevant(0.44, 0.44) is False  # not close enough together either
    assert relevant(0.40, None) is False  # a first question below the bar
    assert relevant_enough([], 0.9, min_cosine=0.45, terms=TERMS, context_cosine=0.9) is False
    # Without a floor the pair's cosine counts for nothing.
    assert (
        relevant_enough([passage(0.4)], 0.4, min_cosine=0.45, terms=TERMS, context_cosine=0.9)
        is False
    )


def test_the_pairs_query_puts_the_question_first():
    """However long the question before it, the question's own words are the pair's first terms
    and the start of the text the embedding model sees."""
    before = " ".join(f"word{n}" for n in range(600))  # 600 distinct words: over both limits
    pair = in_conversation_query("How do I upgrade pip?", [before])
    assert pair.startswith("How do I upgrade pip?\n")
    terms = query_terms(pair)
    assert terms[:2] == ["upgrade", "pip"] and len(terms) == MAX_QUERY_TERMS


def test_the_pairs_query_lists_the_earlier_questions_newest_first():
    query = in_conversation_query("and how do I leave it?", ["how do I activate it?", "venv?"])
    assert query == "and how do I leave it?\nhow do I activate it?\nvenv?"


def test_a_question_leans_on_earlier_questions_until_one_stood_on_its_own():
    """Newest first: the question just before always; older ones while the one taken stayed
    under the bar alone (it leaned on what came before it); never more than the cap."""
    venv, activate, leave = "create a venv", "how do I activate it?", "and leave it?"
    assert question_context([], min_cosine=0.45) == []
    # "activate it" was a follow-up (0.30 alone): the venv question comes too.
    assert question_context([(activate, 0.30), (venv, 0.70)], min_cosine=0.45) == [
        activate,
        venv,
    ]
    # A question that stood on its own (0.62) began a subject: nothing before it.
    assert question_context([("gzip?", 0.62), (venv, 0.70)], min_cosine=0.45) == ["gzip?"]
    assert question_context([("gzip?", 0.45), (venv, 0.70)], min_cosine=0.45) == ["gzip?"]
    # Not known (the model was down, or no retrieval yet): taken as leaning.
    assert question_context([(activate, None), (venv, 0.70)], min_cosine=0.45) == [
        activate,
        venv,
    ]
    # A long chain of follow-ups stops at the cap.
    chain = [(f"and {n}?", 0.1) for n in range(MOST_CONTEXT_QUESTIONS + 2)]
    taken = question_context(chain, min_cosine=0.45)
    assert taken == [text for text, _ in chain[:MOST_CONTEXT_QUESTIONS]]
    assert question_context([(leave, 0.2)], min_cosine=0.45) == [leave]


def test_without_vectors_a_passage_must_hold_more_than_half_the_words():
    # "python3 -m venv /path/to/new/virtual/environment": "virtual" at 29, "environment" at 37.
    both = passage(None, [(29, 36), (37, 48)])
    one = passage(None, [(29, 36)])
    assert keyword_coverage(both, TERMS) == 2 / 3
    assert relevant_enough([one, both], None, min_cosine=0.4, terms=TERMS) is True
    assert relevant_enough([one], None, min_cosine=0.4, terms=TERMS) is False
    assert relevant_enough([passage(None)], None, min_cosine=0.4, terms=TERMS) is False
    half = ["virtual", "machine"]
    assert keyword_coverage(one, half) == 0.5
    assert relevant_enough([one], None, min_cosine=0.4, terms=half) is False


def test_the_model_abstains_with_the_rules_reply_or_an_opening_that_says_so():
    assert model_abstained(NOT_IN_DOCUMENTS_REPLY)
    assert model_abstained("the documents do not answer this question!")
    assert model_abstained("The passages do not mention sourdough bread.")
    assert model_abstained("I cannot answer that from these passages.")
    assert not model_abstained('Use venv [1] "python3 -m venv". The documents do not say more.')
    assert not model_abstained("Run python3 -m venv to create one.")


async def test_the_streamer_sends_every_piece_once_in_order_with_offsets():
    bus = LocalBus()
    message_id = uuid.uuid4()
    async with bus.subscribe(answer_topic(message_id)) as live:
        streamer = TextStreamer(bus, message_id, interval=60.0)
        for piece in ("Use", " venv", ": "):
            streamer.feed(piece)
        await asyncio.sleep(0)  # the first send goes at once, with all that came so far
        streamer.feed("python3 -m venv")
        streamer.feed(" DIR")
        await streamer.close()  # the rest, without waiting for the interval
        received = [live.queue.get_nowait() for _ in range(live.queue.qsize())]
    assert received == [
        {"type": "TEXT", "start": 0, "end": 10, "text": "Use venv: "},
        {"type": "TEXT", "start": 10, "end": 29, "text": "python3 -m venv DIR"},
    ]
    assert streamer.sends == 2
    assert await bus.read_text(answer_text_key(message_id)) == "Use venv: python3 -m venv DIR"


async def test_an_aborted_streamer_sends_nothing_more():
    bus = LocalBus()
    message_id = uuid.uuid4()
    streamer = TextStreamer(bus, message_id, interval=60.0)
    streamer.feed("partial")
    await asyncio.sleep(0)
    streamer.feed(" more")
    streamer.abort()
    await asyncio.sleep(0)
    assert await bus.read_text(answer_text_key(message_id)) == "partial"
    assert streamer.text == "partial more"
