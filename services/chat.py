"""Conversations (screen 9): list, create, rename, delete; ask, stop, rate and regenerate.

A conversation is its owner's: only the member who started it sees it, and only while they
belong to its workspace; for anyone else its id (and its messages' ids) behave as missing ones
(NOT_FOUND). Any member may ask (the spec's roles table: VIEWER reads, searches and asks).

Asking stores the question and a PENDING answer, and queues the `answer_question` run that
writes the answer (`services.answers`); the answer streams over `answerStream`. One answer is
written at a time per conversation: asking or regenerating while one is being written is
ANSWER_IN_PROGRESS.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from base.db.engine import lock_for_write
from base.db.types import utcnow
from base.errors import Conflict, DomainError, Invalid, NotFound
from base.models.accounts import Role
from base.models.chat import (
    MAX_CONVERSATION_TITLE,
    AnswerFeedback,
    AnswerState,
    Citation,
    Conversation,
    Message,
    MessageRole,
    Rating,
)
from base.models.documents import Collection, Document
from base.models.runs import Run, RunStatus, SubjectType
from services import runs
from services.access import VIEWER, VIEWER_WORKSPACE_IDS, require_role
from services.answers import ANSWER_QUESTION, announce_finished
from services.chat_views import (
    AskResult,
    CitationView,
    ConversationView,
    FeedbackView,
    MessageView,
    PassageView,
    ScopeView,
)
from services.deps import ServiceDeps
from services.pagination import PageRequest, SortKey, pages_by_parent, paginate_by_parent
from services.run_log import Outbox
from services.validation import clean_name, clean_paragraphs
from services.views import Page, RunView

DEFAULT_TITLE = "New conversation"
MAX_QUESTION_CHARS = 4000
MAX_SCOPE_DOCUMENTS = 100
MAX_REASON_CHARS = 1000
TITLE_FROM_QUESTION_CHARS = 80


@dataclass(frozen=True)
class AskScope:
    """Where to look: one collection, chosen documents, or (neither) the whole workspace."""

    collection_id: uuid.UUID | None = None
    document_ids: tuple[uuid.UUID, ...] | None = None


def conversation_not_found(field: str | None = "conversationId") -> NotFound:
    return NotFound("No such conversation.", field=field)


def answer_not_found(field: str | None = "messageId") -> NotFound:
    return NotFound("No such answer.", field=field)


# Ids of the caller's (`:viewer`) own conversations in workspaces they still belong to.
_VIEWER_CONVERSATION_IDS = select(Conversation.id).where(
    Conversation.owner_id == VIEWER, Conversation.workspace_id.in_(VIEWER_WORKSPACE_IDS)
)
_VIEWER_CONVERSATIONS = select(Conversation).where(Conversation.id.in_(_VIEWER_CONVERSATION_IDS))
_VIEWER_MESSAGES = select(Message).where(Message.conversation_id.in_(_VIEWER_CONVERSATION_IDS))


def _visible_conversations(user_id: uuid.UUID) -> Any:
    """Ids of the caller's own conversations in workspaces they still belong to."""
    return _VIEWER_CONVERSATION_IDS.params(viewer=user_id)


def conversation_view(conversation: Conversation) -> ConversationView:
    return ConversationView.model_validate(conversation)


def message_view(message: Message) -> MessageView:
    scope = None
    if message.role is MessageRole.USER:
        stored = message.scope or {}
        scope = ScopeView(
            collection_id=stored.get("collection_id"), document_ids=stored.get("document_ids")
        )
    return MessageView(
        id=message.id,
        conversation_id=message.conversation_id,
        workspace_id=message.workspace_id,
        seq=message.seq,
        role=message.role.value,
        text=message.text,
        created_at=message.created_at,
        scope=scope,
        question_id=message.question_id,
        replaces_id=message.replaces_id,
        run_id=message.run_id,
        state=message.state.value if message.state else None,
        finished_at=message.finished_at,
        passages=[PassageView.model_validate(p) for p in message.passages or []],
        top_cosine=message.top_cosine,
        retrieval_degraded=message.retrieval_degraded,
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
        dropped_citations=message.dropped_citations,
        error_message=message.error_message,
    )


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationsQuery:
    """One page of the caller's conversations in a workspace, last message first."""

    workspace_id: uuid.UUID | None
    first: int | None = None
    after: str | None = None


CONVERSATIONS_ORDER = SortKey(
    "conversations", [Conversation.last_message_at, Conversation.id], descending=True
)


async def list_conversations(
    deps: ServiceDeps, *, queries: Sequence[ConversationsQuery]
) -> list[Page[ConversationView] | DomainError]:
    """A page of the caller's conversations per workspace; two statements per distinct page."""
    user_id = deps.principal.require_user()

    async def load(
        _query: ConversationsQuery, page: PageRequest, workspace_ids: list[Any]
    ) -> dict[Any, Page[ConversationView]]:
        return await paginate_by_parent(
            session,
            _VIEWER_CONVERSATIONS,
            params={"viewer": user_id},
            parent=Conversation.workspace_id,
            parent_ids=workspace_ids,
            sort=CONVERSATIONS_ORDER,
            page=page,
            to_node=lambda r: conversation_view(r[0]),
            sort_values=lambda r: (r[0].last_message_at, r[0].id),
        )

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="workspace_id", load=load)


async def conversations_by_ids(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[ConversationView | None]:
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = (
            await session.execute(
                select(Conversation).where(
                    Conversation.id.in_(ids), Conversation.id.in_(_visible_conversations(user_id))
                )
            )
        ).scalars()
        found = {c.id: conversation_view(c) for c in rows}
    return [found.get(i) for i in ids]


@dataclass(frozen=True)
class MessagesQuery:
    """One page of a conversation's messages, oldest first."""

    conversation_id: uuid.UUID | None
    first: int | None = None
    after: str | None = None


MESSAGES_ORDER = SortKey("messages", [Message.seq])


async def list_messages(
    deps: ServiceDeps, *, queries: Sequence[MessagesQuery]
) -> list[Page[MessageView] | DomainError]:
    """A page of each conversation's messages in order; a conversation the caller may not see
    has none (it would not have resolved)."""
    user_id = deps.principal.require_user()

    async def load(
        _query: MessagesQuery, page: PageRequest, conversation_ids: list[Any]
    ) -> dict[Any, Page[MessageView]]:
        return await paginate_by_parent(
            session,
            _VIEWER_MESSAGES,
            params={"viewer": user_id},
            parent=Message.conversation_id,
            parent_ids=conversation_ids,
            sort=MESSAGES_ORDER,
            page=page,
            to_node=lambda r: message_view(r[0]),
            sort_values=lambda r: (r[0].seq,),
            few_per_parent=True,
        )

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="conversation_id", load=load)


async def messages_by_ids(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[MessageView | None]:
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = (
            await session.execute(
                select(Message).where(
                    Message.id.in_(ids),
                    Message.conversation_id.in_(_visible_conversations(user_id)),
                )
            )
        ).scalars()
        found = {m.id: message_view(m) for m in rows}
    return [found.get(i) for i in ids]


async def citations_by_message_ids(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[list[CitationView]]:
    """Each answer's checked citations, in the order the answer makes them."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = (
            await session.execute(
                select(Citation)
                .join(Message, Message.id == Citation.message_id)
                .where(
                    Citation.message_id.in_(ids),
                    Message.conversation_id.in_(_visible_conversations(user_id)),
                )
                .order_by(Citation.message_id, Citation.position)
            )
        ).scalars()
        grouped: dict[uuid.UUID, list[CitationView]] = {i: [] for i in ids}
        for citation in rows:
            grouped[citation.message_id].append(CitationView.model_validate(citation))
    return [grouped[i] for i in ids]


async def my_feedback_by_message_ids(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[FeedbackView | None]:
    """The caller's own rating of each answer, if any."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = (
            await session.execute(
                select(AnswerFeedback).where(
                    AnswerFeedback.message_id.in_(ids), AnswerFeedback.user_id == user_id
                )
            )
        ).scalars()
        found = {f.message_id: FeedbackView.model_validate(f) for f in rows}
    return [found.get(i) for i in ids]


async def require_answer(deps: ServiceDeps, *, message_id: uuid.UUID) -> None:
    """NotFound unless the message is an answer the caller may see (for `answerStream`)."""
    [view] = await messages_by_ids(deps, ids=[message_id])
    if view is None or view.role != MessageRole.ASSISTANT.value:
        raise answer_not_found()


# -- conversations ---------------------------------------------------------------------------


async def create_conversation(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, title: str | None = None
) -> ConversationView:
    """A new, empty conversation of the caller's (any member)."""
    user_id = deps.principal.require_user()
    cleaned = _title(title) if title is not None else DEFAULT_TITLE
    async with deps.db.begin() as session:
        await require_role(session, user_id, workspace_id, Role.VIEWER)
        now = utcnow()
        conversation = Conversation(
            workspace_id=workspace_id,
            owner_id=user_id,
            title=cleaned,
            message_count=0,
            last_seq=0,
            created_at=now,
            updated_at=now,
            last_message_at=now,
        )
        session.add(conversation)
        await session.flush()
        return conversation_view(conversation)


def _title(value: str) -> str:
    return clean_name(value, field="title", max_length=MAX_CONVERSATION_TITLE)


async def _locked_conversation(
    session: AsyncSession, user_id: uuid.UUID, conversation_id: uuid.UUID, field: str
) -> Conversation:
    await lock_for_write(session)
    conversation = (
        await session.execute(
            select(Conversation)
            .where(
                Conversation.id == conversation_id,
                Conversation.id.in_(_visible_conversations(user_id)),
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if conversation is None:
        raise conversation_not_found(field)
    return conversation


async def rename_conversation(
    deps: ServiceDeps, *, conversation_id: uuid.UUID, title: str
) -> ConversationView:
    user_id = deps.principal.require_user()
    cleaned = _title(title)
    async with deps.db.begin() as session:
        conversation = await _locked_conversation(session, user_id, conversation_id, "id")
        conversation.title = cleaned
        conversation.updated_at = utcnow()
        return conversation_view(conversation)


async def delete_conversation(deps: ServiceDeps, *, conversation_id: uuid.UUID) -> uuid.UUID:
    """Delete it with its messages; an answer being written is stopped first."""
    user_id = deps.principal.require_user()
    outbox = Outbox()
    running: list[uuid.UUID] = []
    async with deps.db.begin() as session:
        conversation = await _locked_conversation(session, user_id, conversation_id, "id")
        active = (
            (
                await session.execute(
                    select(Run)
                    .join(Message, Message.run_id == Run.id)
                    .where(
                        Message.conversation_id == conversation.id,
                        Run.status.in_((RunStatus.QUEUED, RunStatus.RUNNING)),
                    )
                    .with_for_update(of=Run)
                )
            )
            .scalars()
            .all()
        )
        for run in active:
            await runs.request_cancel(session, outbox, run)
            if run.status is RunStatus.RUNNING:
                running.append(run.id)
        await session.delete(conversation)
    await outbox.publish(deps.bus)
    for run_id in running:
        await runs.signal_cancel(deps, run_id)
    return conversation_id


# -- asking ----------------------------------------------------------------------------------


def clean_question(value: str) -> str:
    text = clean_paragraphs(value, field="question", max_length=MAX_QUESTION_CHARS)
    if not text:
        raise Invalid("Ask a question.", code="REQUIRED", field="question")
    return text


async def _checked_scope(
    session: AsyncSession, workspace_id: uuid.UUID, scope: AskScope
) -> dict[str, Any]:
    """The scope as stored, once every id in it is found in the conversation's workspace (an
    id of another workspace is NOT_FOUND, as a missing one)."""
    if scope.collection_id is not None and scope.document_ids is not None:
        raise Invalid("Scope a question to a collection or to documents, not both.", field="scope")
    if scope.collection_id is not None:
        found = await session.scalar(
            select(Collection.id).where(
                Collection.id == scope.collection_id, Collection.workspace_id == workspace_id
            )
        )
        if found is None:
            raise NotFound("No such collection.", field="scope.collectionId")
        return {"collection_id": str(scope.collection_id)}
    if scope.document_ids is not None:
        wanted = list(dict.fromkeys(scope.document_ids))
        if not wanted:
            raise Invalid(
                "Choose at least one document.", code="REQUIRED", field="scope.documentIds"
            )
        if len(wanted) > MAX_SCOPE_DOCUMENTS:
            raise Invalid(
                f"Choose at most {MAX_SCOPE_DOCUMENTS} documents.",
                code="TOO_LONG",
                field="scope.documentIds",
            )
        found_ids = set(
            (
                await session.execute(
                    select(Document.id).where(
                        Document.id.in_(wanted), Document.workspace_id == workspace_id
                    )
                )
            ).scalars()
        )
        if len(found_ids) != len(wanted):
            raise NotFound("No such document.", field="scope.documentIds")
        return {"document_ids": [str(i) for i in wanted]}
    return {}


async def _refuse_if_answering(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    busy = await session.scalar(
        select(Message.id)
        .where(
            Message.conversation_id == conversation_id,
            Message.state.in_((AnswerState.PENDING, AnswerState.STREAMING)),
        )
        .limit(1)
    )
    if busy is not None:
        raise Conflict(
            "An answer is still being written in this conversation; stop it or wait for it.",
            code="ANSWER_IN_PROGRESS",
        )


def _scope_summary(scope: dict[str, Any]) -> str:
    if "collection_id" in scope:
        return "scope: one collection"
    if "document_ids" in scope:
        count = len(scope["document_ids"])
        return f"scope: {count} document" + ("s" if count != 1 else "")
    return "scope: the workspace"


async def _queue_answer(
    session: AsyncSession,
    outbox: Outbox,
    conversation: Conversation,
    question: Message,
    *,
    user_id: uuid.UUID,
    replaces: Message | None = None,
) -> tuple[Message, Run]:
    """A PENDING answer to `question` and the QUEUED run that writes it."""
    now = utcnow()
    conversation.last_seq += 1
    answer = Message(
        conversation_id=conversation.id,
        workspace_id=conversation.workspace_id,
        seq=conversation.last_seq,
        role=MessageRole.ASSISTANT,
        text="",
        created_at=now,
        scope={},
        question_id=question.id,
        replaces_id=replaces.id if replaces else None,
        state=AnswerState.PENDING,
        passages=[],
    )
    session.add(answer)
    await session.flush()
    conversation.message_count += 1
    conversation.last_message_at = now
    conversation.updated_at = now
    # The runs monitor is every member's: it names neither the conversation nor the question.
    run = await runs.create_run(
        session,
        outbox,
        workspace_id=conversation.workspace_id,
        kind=ANSWER_QUESTION,
        subject_type=SubjectType.CONVERSATION,
        subject_id=conversation.id,
        subject_label="a conversation",
        triggered_by_id=user_id,
        params={"message_id": str(answer.id)},
        input_summary=f"question of {len(question.text)} characters; "
        + _scope_summary(question.scope or {}),
    )
    answer.run_id = run.id
    await session.flush()
    return answer, run


async def ask_question(
    deps: ServiceDeps, *, conversation_id: uuid.UUID, question: str, scope: AskScope
) -> AskResult:
    """Store the question and a PENDING answer, queue the run that writes it; at once."""
    user_id = deps.principal.require_user()
    text = clean_question(question)
    outbox = Outbox()
    async with deps.db.begin() as session:
        conversation = await _locked_conversation(
            session, user_id, conversation_id, "conversationId"
        )
        stored_scope = await _checked_scope(session, conversation.workspace_id, scope)
        await _refuse_if_answering(session, conversation.id)
        now = utcnow()
        if conversation.message_count == 0 and conversation.title == DEFAULT_TITLE:
            conversation.title = _title_from(text)
        conversation.last_seq += 1
        asked = Message(
            conversation_id=conversation.id,
            workspace_id=conversation.workspace_id,
            seq=conversation.last_seq,
            role=MessageRole.USER,
            text=text,
            created_at=now,
            scope=stored_scope,
            passages=[],
        )
        session.add(asked)
        await session.flush()
        conversation.message_count += 1
        answer, run = await _queue_answer(session, outbox, conversation, asked, user_id=user_id)
        result = AskResult(
            question=message_view(asked),
            answer=message_view(answer),
            run=RunView.model_validate(run),
        )
    await runs.launch(deps, outbox, [run.id])
    return result


def _title_from(question: str) -> str:
    line = " ".join(question.split())
    if len(line) <= TITLE_FROM_QUESTION_CHARS:
        return line
    cut = line[:TITLE_FROM_QUESTION_CHARS].rsplit(" ", 1)[0]
    return cut + "…"


async def _locked_answer(
    session: AsyncSession, user_id: uuid.UUID, message_id: uuid.UUID
) -> tuple[Conversation, Message]:
    """The answer and its conversation (locked), or NOT_FOUND (also for a question's id)."""
    await lock_for_write(session)
    conversation = (
        await session.execute(
            select(Conversation)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.id == message_id, Conversation.id.in_(_visible_conversations(user_id)))
            .with_for_update(of=Conversation)
        )
    ).scalar_one_or_none()
    answer = await session.get(Message, message_id) if conversation else None
    if conversation is None or answer is None or answer.role is not MessageRole.ASSISTANT:
        raise answer_not_found()
    return conversation, answer


async def regenerate_answer(deps: ServiceDeps, *, message_id: uuid.UUID) -> AskResult:
    """A new answer to the question of the conversation's last answer, by a new run; the
    earlier answer stays in the history."""
    user_id = deps.principal.require_user()
    outbox = Outbox()
    async with deps.db.begin() as session:
        conversation, previous = await _locked_answer(session, user_id, message_id)
        await _refuse_if_answering(session, conversation.id)
        if previous.seq != conversation.last_seq:
            raise Conflict(
                "Only the last answer of a conversation can be regenerated.",
                code="NOT_LAST_ANSWER",
            )
        asked = await session.get(Message, previous.question_id)
        assert asked is not None  # deleting a question deletes its answers
        answer, run = await _queue_answer(
            session, outbox, conversation, asked, user_id=user_id, replaces=previous
        )
        result = AskResult(
            question=message_view(asked),
            answer=message_view(answer),
            run=RunView.model_validate(run),
        )
    await runs.launch(deps, outbox, [run.id])
    return result


async def stop_answer(deps: ServiceDeps, *, message_id: uuid.UUID) -> MessageView:
    """Stop an answer being written: its run is cancelled, and the answer ends STOPPED with the
    text written so far (at once if it had not started)."""
    user_id = deps.principal.require_user()
    outbox = Outbox()
    async with deps.db.begin() as session:
        _conversation, answer = await _locked_answer(session, user_id, message_id)
        if answer.state is None or answer.state.is_final:
            state = answer.state.value if answer.state else "none"
            raise Conflict(f"The answer has already ended ({state}).", code="ANSWER_FINISHED")
        run = (
            await session.execute(select(Run).where(Run.id == answer.run_id).with_for_update())
        ).scalar_one_or_none()
        running = False
        if run is not None and not run.status.is_terminal:
            await runs.request_cancel(session, outbox, run)
            running = run.status is RunStatus.RUNNING
        if not running:  # never started (or its run is gone): nothing else will end it
            answer.state = AnswerState.STOPPED
            answer.finished_at = utcnow()
        view = message_view(answer)
    await outbox.publish(deps.bus)
    if running and run is not None:
        await runs.signal_cancel(deps, run.id)
    elif view.state == AnswerState.STOPPED.value:
        await announce_finished(deps, message_id)
    return view


async def rate_answer(
    deps: ServiceDeps, *, message_id: uuid.UUID, rating: Rating, reason: str | None = None
) -> FeedbackView:
    """The caller's thumbs up or down on a finished answer (a second rating replaces it)."""
    user_id = deps.principal.require_user()
    cleaned = clean_paragraphs(reason or "", field="reason", max_length=MAX_REASON_CHARS) or None
    async with deps.db.begin() as session:
        _conversation, answer = await _locked_answer(session, user_id, message_id)
        if answer.state is None or not answer.state.is_final:
            raise Conflict(
                "The answer is still being written; rate it once it has ended.",
                code="ANSWER_IN_PROGRESS",
            )
        now = utcnow()
        feedback = await session.get(AnswerFeedback, (answer.id, user_id))
        if feedback is None:
            feedback = AnswerFeedback(
                message_id=answer.id,
                user_id=user_id,
                rating=rating,
                reason=cleaned,
                created_at=now,
                updated_at=now,
            )
            session.add(feedback)
        else:
            feedback.rating, feedback.reason, feedback.updated_at = rating, cleaned, now
        await session.flush()
        return FeedbackView.model_validate(feedback)
