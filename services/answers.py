"""The `answer_question` run: RETRIEVING -> PROMPTING -> GENERATING -> CHECKING -> STORING.

One step function per stage, so the asker (and the runs monitor) sees each. Steps hand work to
each other through the answer's row (its passages, its prompt, its text), never through step
outputs, so a run resumed after a crash re-runs only what had not finished. Within one execution
RETRIEVING and PROMPTING also hand the answer as they wrote it to the next step in memory
(`_hand_over`), which then need not read it back: nothing else writes an answer while its run
executes (stopping it or deleting its conversation cancels the run first).

Every step ends the answer when something stops it (`_answering`):
- the asker stopped it (the run was cancelled): STOPPED, with the text written so far and its
  citations checked;
- no model answered (ModelUnavailable): MODEL_UNAVAILABLE, keeping the retrieved passages;
- anything else: FAILED.
Abstaining is a state too (ADR 0072): NOT_IN_DOCUMENTS when no passage in scope is relevant
enough (RETRIEVING), or when the model says the passages do not answer (STORING).

The text streams to subscribers while it is written (ADR 0073): `TextStreamer` appends it to
the bus's text store and publishes each piece with its character offsets, and the answer's row
gets the whole text when generation ends or stops. `announce_finished` tells subscribers that
the row holds the final answer.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from base.db.types import utcnow
from base.errors import DomainError, ModelUnavailable, NotFound
from base.events.bus import EventBus, answer_text_key, answer_topic
from base.metrics import record_answer_first_token
from base.models.accounts import Workspace
from base.models.chat import AnswerState, Citation, Conversation, Message, MessageRole
from base.models.documents import Document
from base.models.runs import Run
from services import llm, runs, search
from services.answer_prompt import (
    NOT_IN_DOCUMENTS_REPLY,
    PassageText,
    PromptBudget,
    Turn,
    build_prompt,
)
from services.citations import CitationCheck, check_answer, normalise
from services.deps import ServiceDeps
from services.search_text import query_terms, query_words
from services.workspace_settings import chat_model_in_use

log = logging.getLogger("knowledge_desk.answers")

STEPS = ("RETRIEVING", "PROMPTING", "GENERATING", "CHECKING", "STORING")

NOT_IN_DOCUMENTS_TEXT = "The documents in scope do not answer this question."
MODEL_UNAVAILABLE_TEXT = (
    "No language model is available right now, so this question was not answered. "
    "The passages that match it best are listed with this message."
)
INTERRUPTED_TEXT = "The answer was interrupted; regenerate it."
FAILED_TEXT = "The answer failed unexpectedly."
HISTORY_QUESTIONS = 10  # earlier questions read for the prompt (the budget picks the last few)
PROGRESS_EVERY_TOKENS = 8

# How a model says the passages do not answer: the reply the rules ask for, or an answer that
# opens with one of these (after normalising).
_ABSTAIN_OPENINGS = (
    "the documents do not",
    "the documents don t",
    "the passages do not",
    "the passages don t",
    "i cannot answer",
    "i can t answer",
    "there is no information",
    "no information",
    "not in the documents",
    "not in the passages",
)


def _summarize(results: dict[str, Any]) -> str:
    checked = results.get("CHECKING") or {}
    stored = results.get("STORING") or {}
    return (
        f"{stored.get('state', 'ended')}: {checked.get('kept', 0)} citations kept, "
        f"{checked.get('dropped', 0)} dropped"
    )


ANSWER_QUESTION = runs.RunKind("answer_question", STEPS, summarize=_summarize)


# -- rules (pure) ----------------------------------------------------------------------------


# Without vectors, a passage must hold more than half of the question's words (ADR 0072).
MIN_KEYWORD_COVERAGE = 0.55
_STEM = 5  # words compared by their first letters: "environment" and "environments" agree


def keyword_coverage(passage: search.Passage, terms: list[str]) -> float:
    """The share of the question's words (`search_text.query_terms`) that the full-text index
    matched in the passage."""
    if not terms:
        return 0.0
    matched = {passage.text[start:end].casefold()[:_STEM] for start, end in passage.matches}
    wanted = {word[:_STEM] for word in query_words(terms)}  # a phrase counts by its words
    return len(wanted & matched) / len(wanted)


def relevant_enough(
    passages: list[search.Passage],
    top_cosine: float | None,
    *,
    min_cosine: float,
    terms: list[str],
    context_cosine: float | None = None,
    follow_up_min_cosine: float | None = None,
) -> bool:
    """Whether retrieval found something worth answering from (ADR 0072): with vectors, a
    passage at least `min_cosine` similar to the question; without them (the embedding model is
    down), a passage holding more than half of the question's words.

    A later question of a conversation (ADR 0122) also passes when, together with the question
    before it, a passage is `min_cosine` similar (`context_cosine`) and alone it reaches
    `follow_up_min_cosine`: "and how do I activate it?" names too little to be close to
    anything alone, while a question on a subject the documents lack stays far from them
    alone, whatever came before it."""
    if not passages:
        return False
    if top_cosine is not None:
        if search.close_enough(top_cosine, min_cosine):
            return True
        return (
            context_cosine is not None
            and follow_up_min_cosine is not None
            and search.close_enough(context_cosine, min_cosine)
            and top_cosine >= follow_up_min_cosine
        )
    return any(keyword_coverage(p, terms) >= MIN_KEYWORD_COVERAGE for p in passages)


# At most this many earlier questions go with a question of a conversation (ADR 0123).
MOST_CONTEXT_QUESTIONS = 3


def question_context(earlier: list[tuple[str, float | None]], *, min_cosine: float) -> list[str]:
    """The earlier questions a question of a conversation is retrieved with, newest first
    (ADR 0123), from the conversation's earlier questions, newest first, each with its own top
    cosine (its retrieval alone; None when not known): the question just before it, and further
    back while the last one taken leaned on what came before it (alone it stayed under
    `min_cosine`), at most MOST_CONTEXT_QUESTIONS. A question that stood on its own began its
    subject: what came before it was about something else."""
    context: list[str] = []
    for text, own_cosine in earlier[:MOST_CONTEXT_QUESTIONS]:
        context.append(text)
        if own_cosine is not None and search.close_enough(own_cosine, min_cosine):
            break
    return context


def model_abstained(text: str) -> bool:
    """Whether the model said the passages do not answer (the rules' reply, or an opening such
    as "The passages do not...")."""
    said, _ = normalise(text)
    if normalise(NOT_IN_DOCUMENTS_REPLY)[0] in said:
        return True
    return said.startswith(_ABSTAIN_OPENINGS)


# -- streaming the text ----------------------------------------------------------------------


class TextStreamer:
    """Sends an answer's text to the bus while the model writes it: the first piece at once,
    then at most once per `interval`, each send carrying all that came since the last one.

    If a send fails, sending stops (the stored text stays an exact prefix of the answer);
    subscribers then get the rest from the answer's row when it ends."""

    def __init__(self, bus: EventBus, message_id: uuid.UUID, interval: float) -> None:
        self.bus = bus
        self.topic = answer_topic(message_id)
        self.key = answer_text_key(message_id)
        self.interval = interval
        self.parts: list[str] = []
        self.sent = 0  # characters handed to the bus
        self.sends = 0
        self.broken = False
        self._last = -math.inf
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"answer-text-{message_id}")

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def feed(self, piece: str) -> None:
        self.parts.append(piece)
        self._wake.set()

    async def close(self) -> None:
        """Send what is left, then stop."""
        self._closing = True
        self._wake.set()
        await self._task

    def abort(self) -> None:
        """Stop sending at once (the answer was stopped: its row gets the text)."""
        self._task.cancel()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._closing:
                wait = self._last + self.interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._wake.clear()
            await self._send()
            if self._closing and self.sent == len(self.text):
                return

    async def _send(self) -> None:
        text = self.text
        if self.broken or len(text) == self.sent:
            return
        try:
            await self.bus.append_text(self.topic, self.key, self.sent, text[self.sent :])
        except Exception:
            log.warning("could not stream an answer's text; sending no more", exc_info=True)
            self.broken = True
            return
        self.sent = len(text)
        self.sends += 1
        self._last = time.monotonic()


# -- the answer's row ------------------------------------------------------------------------


class _AnswerEnded(Exception):
    """The answer was ended (stopped, its conversation deleted) while GENERATING began."""


@dataclass
class _Answer:
    id: uuid.UUID
    conversation_id: uuid.UUID
    workspace_id: uuid.UUID
    run_id: uuid.UUID | None
    state: AnswerState
    text: str
    passages: list[dict[str, Any]]
    prompt: list[dict[str, str]] | None
    question_id: uuid.UUID
    question: str
    question_seq: int
    scope: dict[str, Any]
    asked_at: datetime  # the answer's row is written with its question
    chat_model: str  # the workspace's, when the answer was loaded


async def _load(deps: ServiceDeps, message_id: uuid.UUID) -> _Answer:
    """The answer with its question and its workspace's chosen chat model, in one statement."""
    asked = aliased(Message)
    async with deps.db() as session:
        row = (
            await session.execute(
                select(Message, asked.text, asked.seq, asked.scope, Workspace.chat_model)
                .join(asked, asked.id == Message.question_id)
                .join(Workspace, Workspace.id == Message.workspace_id)
                .where(Message.id == message_id)
            )
        ).one_or_none()
        if row is None or row[0].state is None:
            raise NotFound("The conversation was deleted.", field="messageId")
        answer, question, question_seq, scope, chosen_model = row
        assert answer.question_id is not None
        return _Answer(
            id=answer.id,
            conversation_id=answer.conversation_id,
            workspace_id=answer.workspace_id,
            run_id=answer.run_id,
            state=answer.state,
            text=answer.text,
            passages=list(answer.passages or []),
            prompt=answer.prompt,
            question_id=answer.question_id,
            question=question,
            question_seq=question_seq,
            scope=dict(scope or {}),
            asked_at=answer.created_at,
            chat_model=chat_model_in_use(chosen_model, deps.settings),
        )


async def _update(deps: ServiceDeps, message_id: uuid.UUID, **values: Any) -> bool:
    """Change an answer still being written (a final one is left alone); False when final."""
    async with deps.db.begin() as session:
        return await _update_in(session, message_id, **values)


async def _update_in(session: AsyncSession, message_id: uuid.UUID, **values: Any) -> bool:
    # An UPDATE returns a CursorResult (with rowcount); mypy picks the generic overload.
    changed: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
        update(Message)
        .where(
            Message.id == message_id,
            Message.state.in_((AnswerState.PENDING, AnswerState.STREAMING)),
        )
        .values(**values)
    )
    return changed.rowcount == 1


def _citation_rows(
    message_id: uuid.UUID, check: CitationCheck, numbered: dict[int, dict[str, Any]]
) -> list[Citation]:
    rows = []
    for position, kept in enumerate(check.kept):
        passage = numbered[kept.number]
        rows.append(
            Citation(
                message_id=message_id,
                position=position,
                number=kept.number,
                origin=kept.origin.value,
                document_id=uuid.UUID(passage["document_id"]),
                chunk_id=uuid.UUID(passage["chunk_id"]),
                document_title=passage["document_title"][:300],
                passage_text=passage["text"],
                heading_path=list(passage.get("heading_path") or []),
                passage_start=passage["char_start"],
                passage_end=passage["char_end"],
                quote_start=kept.found.start,
                quote_end=kept.found.end,
                quote=passage["text"][kept.found.start : kept.found.end],
                match_score=kept.found.score,
            )
        )
    return rows


def numbered_passages(passages: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The passages the prompt numbered (the only ones an answer may cite), by number."""
    return {p["number"]: p for p in passages if p.get("number")}


def checked(text: str, passages: list[dict[str, Any]], *, threshold: float) -> CitationCheck:
    """The citations of `text` against the passages the prompt numbered (ADR 0071)."""
    numbered = numbered_passages(passages)
    return check_answer(text, {n: p["text"] for n, p in numbered.items()}, threshold=threshold)


async def _store_citations(
    deps: ServiceDeps, message_id: uuid.UUID, text: str, passages: list[dict[str, Any]]
) -> CitationCheck:
    check = checked(text, passages, threshold=deps.settings.ask_citation_threshold)
    rows = _citation_rows(message_id, check, numbered_passages(passages))
    async with deps.db.begin() as session:
        present = await session.scalar(
            select(Message.id).where(Message.id == message_id).with_for_update()
        )
        if present is None:  # its conversation was deleted meanwhile
            return check
        await session.execute(delete(Citation).where(Citation.message_id == message_id))
        session.add_all(rows)
        await session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(dropped_citations=len(check.dropped))
        )
    return check


async def _finish(
    deps: ServiceDeps,
    message_id: uuid.UUID,
    state: AnswerState,
    *,
    text: str | None = None,
    error_message: str | None = None,
    drop_citations: bool = False,
) -> bool:
    """End the answer in `state` (once: False if it had ended already), then tell its
    subscribers."""
    now = utcnow()
    async with deps.db.begin() as session:
        answer = (
            await session.execute(select(Message).where(Message.id == message_id).with_for_update())
        ).scalar_one_or_none()
        if answer is None or answer.state is None or answer.state.is_final:
            return False
        answer.state = state
        answer.finished_at = now
        if text is not None:
            answer.text = text
        if error_message is not None:
            answer.error_message = error_message[:1000]
        if drop_citations:
            await session.execute(delete(Citation).where(Citation.message_id == message_id))
        await session.execute(
            update(Conversation)
            .where(Conversation.id == answer.conversation_id)
            .values(updated_at=now)
        )
    await announce_finished(deps, message_id)
    return True


async def announce_finished(deps: ServiceDeps, message_id: uuid.UUID) -> None:
    """After the final answer is stored: forget its streamed text and tell subscribers (best
    effort; a subscriber that misses it reads the row when its stream idles)."""
    try:
        await deps.bus.drop_text(answer_text_key(message_id))
        await deps.bus.publish(answer_topic(message_id), {"type": "FINISHED"})
    except Exception:
        log.warning("could not announce the end of answer %s", message_id, exc_info=True)


async def _stop_requested(deps: ServiceDeps, run_id: uuid.UUID | None) -> bool:
    if run_id is None:
        return False
    async with deps.db() as session:
        requested = await session.scalar(select(Run.cancel_requested_at).where(Run.id == run_id))
    return requested is not None


@dataclass
class _Step:
    answer: _Answer | None  # None: the answer has ended already; the step does nothing
    streamer: TextStreamer | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    handed_over: bool = False  # the previous step of this execution passed the answer on


def _hand_over(deps: ServiceDeps, answer: _Answer) -> None:
    """Pass the answer, as this step left it, to the next step of the same execution."""
    if deps.run_state is not None:
        deps.run_state[f"answer:{answer.id}"] = answer


def _handed_over(deps: ServiceDeps, message_id: uuid.UUID) -> _Answer | None:
    if deps.run_state is None:
        return None
    answer: _Answer | None = deps.run_state.pop(f"answer:{message_id}", None)
    return answer


@asynccontextmanager
async def _answering(deps: ServiceDeps, message_id: str) -> AsyncIterator[_Step]:
    """One step of writing the answer; whatever stops the step ends the answer (see module)."""
    answer = _handed_over(deps, uuid.UUID(message_id))
    handed_over = answer is not None
    if answer is None:
        answer = await _load(deps, uuid.UUID(message_id))
    if answer.state.is_final:
        yield _Step(answer=None)
        return
    step = _Step(answer=answer, handed_over=handed_over)
    try:
        yield step
    except asyncio.CancelledError:
        if step.streamer is not None:
            step.streamer.abort()
        # A cancelled run was stopped by someone; otherwise this process is shutting down and
        # the run will be resumed elsewhere, so the answer is left as it is.
        if await asyncio.shield(_stop_requested(deps, answer.run_id)):
            partial = step.streamer.text if step.streamer else answer.text
            await asyncio.shield(_stop(deps, answer, partial))
        raise
    except ModelUnavailable as exc:
        partial = step.streamer.text if step.streamer else ""
        if step.streamer is not None:
            step.streamer.abort()
        await asyncio.shield(
            _finish(
                deps,
                answer.id,
                AnswerState.MODEL_UNAVAILABLE,
                text=partial or MODEL_UNAVAILABLE_TEXT,
                error_message=exc.message,
            )
        )
        raise
    except DomainError as exc:
        await asyncio.shield(_fail(deps, answer, step, exc.message))
        raise
    except Exception:
        await asyncio.shield(_fail(deps, answer, step, FAILED_TEXT))
        raise


async def _stop(deps: ServiceDeps, answer: _Answer, partial: str) -> None:
    if partial:
        await _store_citations(deps, answer.id, partial, answer.passages)
    await _finish(deps, answer.id, AnswerState.STOPPED, text=partial)


async def _fail(deps: ServiceDeps, answer: _Answer, step: _Step, message: str) -> None:
    if step.streamer is not None:
        step.streamer.abort()
    partial = step.streamer.text if step.streamer else ""
    await _finish(
        deps, answer.id, AnswerState.FAILED, text=partial or message, error_message=message
    )


# -- the steps -------------------------------------------------------------------------------

StepFunction = Callable[..., Awaitable[dict[str, Any]]]


def _timed(step: StepFunction) -> StepFunction:
    """Adds when the step began (epoch seconds) and how long it took (ms) to its output, which
    the run's step keeps (RunStep.output): the latency breakdown of bench/bench_ask_ttft.py."""

    @functools.wraps(step)
    async def timed(deps: ServiceDeps, **kwargs: Any) -> dict[str, Any]:
        began = time.time()
        result = await step(deps, **kwargs)
        return {**result, "began": round(began, 4), "ms": round((time.time() - began) * 1000, 1)}

    return timed


def _passage_dict(passage: search.Passage) -> dict[str, Any]:
    return {
        "chunk_id": str(passage.chunk_id),
        "document_id": str(passage.document_id),
        "collection_id": str(passage.collection_id),
        "document_title": passage.document_title,
        "text": passage.text,
        "heading_path": [str(h) for h in passage.heading_path],
        "char_start": passage.char_start,
        "char_end": passage.char_end,
        "score": passage.score,
        "cosine": passage.cosine,
        "number": None,
    }


async def _only_in_workspace(
    session: AsyncSession, workspace_id: uuid.UUID, passages: list[search.Passage]
) -> list[search.Passage]:
    """Retrieval is scoped in its SQL; this checks it again, so that a passage of another
    workspace can never reach a prompt or a citation."""
    if not passages:
        return passages
    ours = set(
        (
            await session.execute(
                select(Document.id).where(
                    Document.id.in_({p.document_id for p in passages}),
                    Document.workspace_id == workspace_id,
                )
            )
        ).scalars()
    )
    kept = [p for p in passages if p.document_id in ours]
    if len(kept) != len(passages):
        log.error("retrieval returned %d passages of another workspace", len(passages) - len(kept))
    return kept


def _scope_filters(
    scope: dict[str, Any],
) -> tuple[list[uuid.UUID] | None, list[uuid.UUID] | None]:
    collections = [uuid.UUID(scope["collection_id"])] if scope.get("collection_id") else None
    documents = [uuid.UUID(d) for d in scope["document_ids"]] if scope.get("document_ids") else None
    return collections, documents


@_timed
async def retrieving(deps: ServiceDeps, *, message_id: str, **_: Any) -> dict[str, Any]:
    async with _answering(deps, message_id) as step:
        if step.answer is None:
            return {"skipped": True}
        answer = step.answer
        collections, documents = _scope_filters(answer.scope)
        context = await _question_context(deps, answer)
        # The question is never blank (asking refuses that), which is all retrieval refuses.
        retrieval = await search.retrieve_in_conversation(
            deps,
            workspace_id=answer.workspace_id,
            question=answer.question,
            context=context,
            collection_ids=collections,
            document_ids=documents,
            limit=deps.settings.ask_retrieve_passages,
        )
        async with deps.db.begin() as session:
            passages = await _only_in_workspace(session, answer.workspace_id, retrieval.passages)
            stored = [_passage_dict(p) for p in passages]
            await _update_in(
                session,
                answer.id,
                passages=stored,
                top_cosine=retrieval.top_cosine,
                retrieval_degraded=retrieval.degraded,
            )
        answer.passages = stored
        relevant = relevant_enough(
            passages,
            retrieval.top_cosine,
            min_cosine=deps.settings.ask_min_cosine,
            terms=query_terms(answer.question),
            context_cosine=retrieval.context_cosine,
            follow_up_min_cosine=deps.settings.ask_follow_up_min_cosine,
        )
        if relevant:
            _hand_over(deps, answer)
        else:
            await _finish(deps, answer.id, AnswerState.NOT_IN_DOCUMENTS, text=NOT_IN_DOCUMENTS_TEXT)
        return {
            "passages": len(passages),
            "top_cosine": retrieval.top_cosine,
            "context_cosine": retrieval.context_cosine,
            "context_questions": len(context),
            "degraded": retrieval.degraded,
            "relevant": relevant,
        }


async def _question_context(deps: ServiceDeps, answer: _Answer) -> list[str]:
    """`question_context` of the question being answered: the conversation's questions before
    it, however they were answered (what a follow-up leans on is what the user asked, not what
    we replied), each with the top cosine of its latest answer's retrieval."""
    if answer.question_seq == 1:
        return []
    reply = aliased(Message)
    own_cosine = (  # the conversation's key comes first: messages has no index on question_id
        select(reply.top_cosine)
        .where(reply.conversation_id == Message.conversation_id, reply.question_id == Message.id)
        .order_by(reply.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    async with deps.db() as session:
        rows = await session.execute(
            select(Message.text, own_cosine)
            .where(
                Message.conversation_id == answer.conversation_id,
                Message.role == MessageRole.USER,
                Message.seq < answer.question_seq,
            )
            .order_by(Message.seq.desc())
            .limit(MOST_CONTEXT_QUESTIONS)
        )
        earlier = [(text, cosine) for text, cosine in rows]
    return question_context(earlier, min_cosine=deps.settings.ask_min_cosine)


async def _history(deps: ServiceDeps, answer: _Answer) -> list[Turn]:
    """Earlier questions of the conversation with their latest ANSWERED answer, oldest first."""
    if answer.question_seq == 1:  # the conversation's first question: nothing came before
        return []
    async with deps.db() as session:
        rows = (
            (
                await session.execute(
                    select(Message)
                    .where(
                        Message.conversation_id == answer.conversation_id,
                        Message.seq < answer.question_seq,
                    )
                    .order_by(Message.seq)
                )
            )
            .scalars()
            .all()
        )
    answered: dict[uuid.UUID, str] = {}
    for row in rows:
        if row.role is MessageRole.ASSISTANT and row.state is AnswerState.ANSWERED:
            assert row.question_id is not None
            answered[row.question_id] = row.text
    turns = [
        Turn(question=row.text, answer=answered[row.id])
        for row in rows
        if row.role is MessageRole.USER and row.id in answered
    ]
    return turns[-HISTORY_QUESTIONS:]


def budget_of(settings: Any) -> PromptBudget:
    return PromptBudget(
        context_tokens=settings.ask_context_tokens,
        answer_tokens=settings.ask_answer_tokens,
        history_tokens=settings.ask_history_tokens,
        max_passages=settings.ask_max_passages,
    )


def passage_text(passage: dict[str, Any]) -> PassageText:
    return PassageText(
        title=passage["document_title"],
        section=" › ".join(str(h) for h in passage.get("heading_path") or []),
        text=passage["text"],
    )


@_timed
async def prompting(deps: ServiceDeps, *, message_id: str, **_: Any) -> dict[str, Any]:
    async with _answering(deps, message_id) as step:
        if step.answer is None:
            return {"skipped": True}
        answer = step.answer
        history = await _history(deps, answer)
        prompt = build_prompt(
            answer.question,
            [passage_text(p) for p in answer.passages],
            history,
            budget_of(deps.settings),
        )
        passages = [dict(p, number=None) for p in answer.passages]
        for number, index in enumerate(prompt.numbered, start=1):
            passages[index]["number"] = number
        await _update(deps, answer.id, prompt=prompt.messages, passages=passages)
        answer.prompt, answer.passages = prompt.messages, passages
        _hand_over(deps, answer)
        return {
            "passages": len(prompt.numbered),
            "turns": prompt.turns,
            "estimated_tokens": prompt.estimated_tokens,
        }


def chat_options(settings: Any) -> dict[str, Any]:
    return {
        "num_predict": settings.ask_answer_tokens,
        "num_ctx": settings.ask_context_tokens,
        "temperature": settings.ask_temperature,
    }


@_timed
async def generating(deps: ServiceDeps, *, message_id: str, **_: Any) -> dict[str, Any]:
    async with _answering(deps, message_id) as step:
        if step.answer is None:
            return {"skipped": True}
        answer = step.answer
        if not answer.prompt:
            raise RuntimeError("GENERATING found no prompt")
        streamed = None
        if not step.handed_over:  # resumed here: an earlier execution may have streamed some
            try:
                streamed = await deps.bus.read_text(answer_text_key(answer.id))
            except Exception:
                streamed = None
        if streamed:
            # An earlier attempt streamed part of this answer and then died: subscribers have
            # seen that text, and a new generation would not continue it.
            await _finish(
                deps, answer.id, AnswerState.FAILED, text=streamed, error_message=INTERRUPTED_TEXT
            )
            return {"interrupted": True}
        # Marked STREAMING while the model reads the prompt, not before: off the first token's
        # path. The mark is conditional, so it never undoes an end written meanwhile, and it
        # tells whether one was (`ended`): then no token is streamed.
        marking = asyncio.create_task(_update(deps, answer.id, state=AnswerState.STREAMING))

        def ended() -> bool:
            return (
                marking.done()
                and not marking.cancelled()
                and marking.exception() is None
                and marking.result() is False
            )

        settings = deps.settings
        step.streamer = streamer = TextStreamer(
            deps.bus, answer.id, settings.answer_stream_batch_seconds
        )
        written = 0
        began = time.time()
        first_token_at = 0.0

        def on_token(piece: str) -> None:
            nonlocal written, first_token_at
            if ended():
                raise _AnswerEnded
            streamer.feed(piece)
            written += 1
            if written == 1:
                first_token_at = time.time()
                record_answer_first_token(
                    first_token_at - answer.asked_at.timestamp(), first_token_at - began
                )
            if written % PROGRESS_EVERY_TOKENS == 0:
                deps.progress(written, settings.ask_answer_tokens, f"{written} tokens")

        try:
            result = await llm.chat_stream(
                answer.prompt,
                model=answer.chat_model,
                config=llm.LLMConfig.from_settings(settings),
                on_token=on_token,
                options=chat_options(settings),
            )
        except _AnswerEnded:
            result = None
        finally:
            await asyncio.wait([marking])
        if result is None or ended():
            streamer.abort()
            return {"ended": True}
        await streamer.close()
        await _update(
            deps,
            answer.id,
            text=streamer.text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
        )
        return {  # prompt_tokens and completion_tokens: the Usage tab sums them
            "model": answer.chat_model,
            "tokens": result.completion_tokens,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "sends": streamer.sends,
            "first_token_ms": round((first_token_at - began) * 1000, 1) if written else None,
        }


@_timed
async def checking(deps: ServiceDeps, *, message_id: str, **_: Any) -> dict[str, Any]:
    async with _answering(deps, message_id) as step:
        if step.answer is None:
            return {"skipped": True}
        answer = step.answer
        check = await _store_citations(deps, answer.id, answer.text, answer.passages)
        reasons = collections.Counter(d.reason.value for d in check.dropped)
        return {"kept": len(check.kept), "dropped": len(check.dropped), "reasons": dict(reasons)}


@_timed
async def storing(deps: ServiceDeps, *, message_id: str, **_: Any) -> dict[str, Any]:
    async with _answering(deps, message_id) as step:
        if step.answer is None:
            return {"skipped": True}
        answer = step.answer
        abstained = model_abstained(answer.text)
        state = AnswerState.NOT_IN_DOCUMENTS if abstained else AnswerState.ANSWERED
        await _finish(deps, answer.id, state, drop_citations=abstained)
        return {"state": state.value}
