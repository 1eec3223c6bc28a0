"""GraphQL types of Ask (screen 9): conversations, messages, citations, the answer stream."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry import relay

from resolvers.core.context import Info
from resolvers.core.relay import (
    PAGE_ARGS_DESCRIPTION,
    After,
    Connection,
    First,
    global_id,
    load_nodes,
)
from resolvers.documents.types import Collection, Document
from resolvers.runs.types import Run
from services.chat import MessagesQuery
from services.chat_views import (
    CitationView,
    ConversationView,
    FeedbackView,
    MessageView,
    PassageView,
    ScopeView,
)


@strawberry.enum(description="Who wrote a message.")
class MessageRole(enum.Enum):
    USER = strawberry.enum_value("USER", description="A question, by the conversation's owner.")
    ASSISTANT = strawberry.enum_value("ASSISTANT", description="An answer, by the model.")


@strawberry.enum(description="Where an answer is. Everything after STREAMING is final.")
class AnswerState(enum.Enum):
    PENDING = strawberry.enum_value(
        "PENDING", description="Queued, or finding passages and building the prompt."
    )
    STREAMING = strawberry.enum_value(
        "STREAMING", description="The model is writing it: follow answerStream."
    )
    ANSWERED = strawberry.enum_value(
        "ANSWERED", description="Answered; `citations` are those that passed the check."
    )
    NOT_IN_DOCUMENTS = strawberry.enum_value(
        "NOT_IN_DOCUMENTS",
        description="Abstained: nothing in scope is relevant enough, or the model said the "
        "passages do not answer. No citations.",
    )
    MODEL_UNAVAILABLE = strawberry.enum_value(
        "MODEL_UNAVAILABLE",
        description="No language model answered; `passages` are the best matches found.",
    )
    STOPPED = strawberry.enum_value(
        "STOPPED", description="Stopped by the asker; the text written so far is kept."
    )
    FAILED = strawberry.enum_value("FAILED", description="Failed; see `errorMessage`.")


@strawberry.enum(description="Thumbs up or down.")
class Rating(enum.Enum):
    UP = strawberry.enum_value("UP", description="Helpful.")
    DOWN = strawberry.enum_value("DOWN", description="Not helpful.")


@strawberry.enum(description="How a citation was made (all three are checked, ADR 0071).")
class CitationOrigin(enum.Enum):
    QUOTED = strawberry.enum_value(
        "QUOTED", description="The answer wrote [n] with a quote, found in passage n."
    )
    MARKED = strawberry.enum_value(
        "MARKED",
        description="The answer wrote [n] after a sentence that shares a run of words with "
        "passage n (the run is the quote).",
    )
    MATCHED = strawberry.enum_value(
        "MATCHED",
        description="The answer wrote no marker, but a sentence shares a run of words with "
        "passage n (the run is the quote).",
    )


@strawberry.enum(description="Where a question looked.")
class ScopeKind(enum.Enum):
    WORKSPACE = strawberry.enum_value("WORKSPACE", description="The whole workspace.")
    COLLECTION = strawberry.enum_value("COLLECTION", description="One collection.")
    DOCUMENTS = strawberry.enum_value("DOCUMENTS", description="Chosen documents.")


@strawberry.enum(description="What an answerStream event carries.")
class AnswerStreamEventType(enum.Enum):
    TEXT = strawberry.enum_value(
        "TEXT", description="More of the answer's text: append `text`; `cursor` is its end."
    )
    FINISHED = strawberry.enum_value(
        "FINISHED",
        description="The answer has ended: `message` is final (state, text, citations). The "
        "stream ends with it.",
    )


@strawberry.type(description="Where a question looked.")
class AskScope:
    kind: ScopeKind = strawberry.field(description="Workspace, collection or documents.")
    view: strawberry.Private[ScopeView]

    @strawberry.field(description="The collection, for COLLECTION (null if it was deleted).")
    async def collection(self, info: Info) -> Collection | None:
        if self.view.collection_id is None:
            return None
        view = await info.context.loaders.collection_by_id.load(self.view.collection_id)
        return Collection.of(view) if view else None

    @strawberry.field(description="The documents, for DOCUMENTS (those that still exist).")
    async def documents(self, info: Info) -> list[Document]:
        views = await info.context.loaders.document_by_id.load_many(self.view.document_ids or [])
        return [Document.of(v) for v in views if v is not None]

    @classmethod
    def of(cls, view: ScopeView) -> AskScope:
        if view.collection_id is not None:
            kind = ScopeKind.COLLECTION
        elif view.document_ids is not None:
            kind = ScopeKind.DOCUMENTS
        else:
            kind = ScopeKind.WORKSPACE
        return cls(kind=kind, view=view)


@strawberry.type(description="Where a citation points: the quoted words in the document.")
class CitationTarget:
    document_id: strawberry.ID | None = strawberry.field(
        description="The document (null if it was deleted since)."
    )
    char_start: int = strawberry.field(
        description="Offset of the quote's first character in the document's text."
    )
    char_end: int = strawberry.field(description="Offset just after the quote's last character.")


def _document_gid(document_id: uuid.UUID | None) -> strawberry.ID | None:
    return global_id("Document", document_id) if document_id else None


async def _document(info: Info, document_id: uuid.UUID | None) -> Document | None:
    if document_id is None:
        return None
    view = await info.context.loaders.document_by_id.load(document_id)
    return Document.of(view) if view else None


@strawberry.type(
    description="A citation of an answer that passed the check: its passage was retrieved for "
    "this answer and holds the quote. Shown under the answer as a source."
)
class Citation:
    number: int = strawberry.field(description="The cited passage's number in the prompt.")
    origin: CitationOrigin = strawberry.field(description="How the citation was made.")
    document_title: str = strawberry.field(description="The document's title when cited.")
    passage: str = strawberry.field(description="The cited passage, as it was when cited.")
    heading_path: list[str] = strawberry.field(
        description="The headings the passage sits under, outermost first."
    )
    quote: str = strawberry.field(description="The quoted words, as the passage writes them.")
    quote_start: int = strawberry.field(
        description="Offset of the quote in `passage` (for highlighting)."
    )
    quote_end: int = strawberry.field(description="Offset just after the quote in `passage`.")
    match_score: float = strawberry.field(
        description="1 when the quote was found exactly (ignoring case, spaces and "
        "punctuation); otherwise how closely it matched, at least the threshold."
    )
    target: CitationTarget = strawberry.field(description="Where to link: the quote's place.")
    view: strawberry.Private[CitationView]

    @strawberry.field(description="The document; null if it was deleted since.")
    async def document(self, info: Info) -> Document | None:
        return await _document(info, self.view.document_id)

    @classmethod
    def of(cls, view: CitationView) -> Citation:
        return cls(
            number=view.number,
            origin=CitationOrigin[view.origin],
            document_title=view.document_title,
            passage=view.passage_text,
            heading_path=[str(h) for h in view.heading_path],
            quote=view.quote,
            quote_start=view.quote_start,
            quote_end=view.quote_end,
            match_score=view.match_score,
            target=CitationTarget(
                document_id=_document_gid(view.document_id),
                char_start=view.passage_start + view.quote_start,
                char_end=view.passage_start + view.quote_end,
            ),
            view=view,
        )


@strawberry.type(description="A passage retrieved for an answer, as it was then.")
class RetrievedPassage:
    number: int | None = strawberry.field(
        description="Its number in the prompt; null if it was retrieved but did not fit."
    )
    document_title: str = strawberry.field(description="The document's title.")
    text: str = strawberry.field(description="The passage.")
    heading_path: list[str] = strawberry.field(description="Its headings, outermost first.")
    score: float = strawberry.field(description="Its retrieval score (higher is better).")
    cosine: float | None = strawberry.field(
        description="Its similarity to the question by meaning; null without vectors."
    )
    target: CitationTarget = strawberry.field(description="Where it is in its document.")
    view: strawberry.Private[PassageView]

    @strawberry.field(description="The document; null if it was deleted since.")
    async def document(self, info: Info) -> Document | None:
        return await _document(info, self.view.document_id)

    @classmethod
    def of(cls, view: PassageView) -> RetrievedPassage:
        return cls(
            number=view.number,
            document_title=view.document_title,
            text=view.text,
            heading_path=view.heading_path,
            score=view.score,
            cosine=view.cosine,
            target=CitationTarget(
                document_id=_document_gid(view.document_id),
                char_start=view.char_start,
                char_end=view.char_end,
            ),
            view=view,
        )


@strawberry.type(description="Your thumbs up or down on an answer.")
class Feedback:
    rating: Rating = strawberry.field(description="Up or down.")
    reason: str | None = strawberry.field(description="Why, if you said.")
    updated_at: datetime = strawberry.field(description="When you last rated it (UTC).")

    @classmethod
    def of(cls, view: FeedbackView) -> Feedback:
        return cls(rating=Rating[view.rating], reason=view.reason, updated_at=view.updated_at)


@strawberry.type(description="A question or an answer in a conversation.")
class Message(relay.Node):
    id: relay.NodeID[str]
    role: MessageRole = strawberry.field(description="Question (USER) or answer (ASSISTANT).")
    text: str = strawberry.field(
        description="The text. While an answer streams this is what was stored when read; "
        "answerStream gives it as written. Answers carry [n] markers for their citations."
    )
    created_at: datetime = strawberry.field(description="When it was asked or queued (UTC).")
    state: AnswerState | None = strawberry.field(
        description="An answer's state; null for a question."
    )
    finished_at: datetime | None = strawberry.field(description="When an answer ended (UTC).")
    dropped_citation_count: int = strawberry.field(
        description="Citations the answer made that failed the check (not shown as sources)."
    )
    prompt_tokens: int = strawberry.field(description="Tokens the model read for an answer.")
    completion_tokens: int = strawberry.field(description="Tokens the model wrote.")
    error_message: str | None = strawberry.field(
        description="Why an answer failed or why no model answered."
    )
    view: strawberry.Private[MessageView]

    @strawberry.field(description="Where a question looked; null for an answer.")
    def scope(self) -> AskScope | None:
        return AskScope.of(self.view.scope) if self.view.scope is not None else None

    @strawberry.field(description="The question an answer answers; null for a question.")
    async def question(self, info: Info) -> Message | None:
        return await _message(info, self.view.question_id)

    @strawberry.field(description="The earlier answer a regenerated answer replaces.")
    async def replaces(self, info: Info) -> Message | None:
        return await _message(info, self.view.replaces_id)

    @strawberry.field(description="The run writing (or that wrote) an answer.")
    async def run(self, info: Info) -> Run | None:
        if self.view.run_id is None:
            return None
        view = await info.context.loaders.run_by_id.load(self.view.run_id)
        return Run.of(view) if view else None

    @strawberry.field(description="An answer's citations that passed the check, in order.")
    async def citations(self, info: Info) -> list[Citation]:
        if self.view.role != "ASSISTANT":
            return []
        views = await info.context.loaders.citations_by_message_id.load(self.view.id)
        return [Citation.of(v) for v in views]

    @strawberry.field(
        description="The passages retrieved for an answer, best first: the sources to show "
        "when no model answered (MODEL_UNAVAILABLE). At most `first` (default 5, at most 20)."
    )
    def passages(
        self,
        first: Annotated[int, strawberry.argument(description="How many.")] = 5,
    ) -> list[RetrievedPassage]:
        return [RetrievedPassage.of(p) for p in self.view.passages[: max(0, min(first, 20))]]

    @strawberry.field(description="Your rating of an answer, if you rated it.")
    async def my_feedback(self, info: Info) -> Feedback | None:
        if self.view.role != "ASSISTANT":
            return None
        view = await info.context.loaders.my_feedback_by_message_id.load(self.view.id)
        return Feedback.of(view) if view else None

    @strawberry.field(description="The conversation it is in.")
    async def conversation(self, info: Info) -> Conversation | None:
        view = await info.context.loaders.conversation_by_id.load(self.view.conversation_id)
        return Conversation.of(view) if view else None

    @classmethod
    def of(cls, view: MessageView) -> Message:
        return cls(
            id=str(view.id),
            role=MessageRole[view.role],
            text=view.text,
            created_at=view.created_at,
            state=AnswerState[view.state] if view.state else None,
            finished_at=view.finished_at,
            dropped_citation_count=view.dropped_citations,
            prompt_tokens=view.prompt_tokens,
            completion_tokens=view.completion_tokens,
            error_message=view.error_message,
            view=view,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # Node overloads it on `required`
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Message | None]:
        return await load_nodes(
            info.context.loaders.message_by_id.load_many, list(node_ids), cls.of
        )


async def _message(info: Info, message_id: uuid.UUID | None) -> Message | None:
    if message_id is None:
        return None
    view = await info.context.loaders.message_by_id.load(message_id)
    return Message.of(view) if view else None


@strawberry.type(description="A conversation of yours: questions and their answers.")
class Conversation(relay.Node):
    id: relay.NodeID[str]
    title: str = strawberry.field(
        description="Its title: the first question until renamed (or what it was created with)."
    )
    message_count: int = strawberry.field(description="Questions and answers in it.")
    created_at: datetime = strawberry.field(description="When it was started (UTC).")
    updated_at: datetime = strawberry.field(description="When it last changed (UTC).")
    last_message_at: datetime = strawberry.field(
        description="When its last message was written (UTC); its creation while empty."
    )
    view: strawberry.Private[ConversationView]

    @strawberry.field(description=f"Its messages, oldest first. {PAGE_ARGS_DESCRIPTION}")
    async def messages(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[Message]:
        query = MessagesQuery(conversation_id=self.view.id, first=first, after=after)
        page = await info.context.loaders.messages_page.load(query)
        return Connection.from_page(page, Message.of)

    @classmethod
    def of(cls, view: ConversationView) -> Conversation:
        return cls(
            id=str(view.id),
            title=view.title,
            message_count=view.message_count,
            created_at=view.created_at,
            updated_at=view.updated_at,
            last_message_at=view.last_message_at,
            view=view,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # Node overloads it on `required`
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Conversation | None]:
        return await load_nodes(
            info.context.loaders.conversation_by_id.load_many, list(node_ids), cls.of
        )


@strawberry.type(description="One event of answerStream; pass `cursor` as `after` to resume.")
class AnswerStreamEvent:
    cursor: str = strawberry.field(
        description="How many characters of the answer's text you have after this event."
    )
    type: AnswerStreamEventType = strawberry.field(description="TEXT or FINISHED.")
    text: str = strawberry.field(description="TEXT: the characters that follow your cursor.")
    message_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="FINISHED: the final answer; null for TEXT.")
    async def message(self, info: Info) -> Message | None:
        if self.type is not AnswerStreamEventType.FINISHED:
            return None
        return await _message(info, self.message_id)

    @classmethod
    def of(cls, message_id: uuid.UUID, event: dict[str, Any]) -> AnswerStreamEvent:
        return cls(
            cursor=str(event["cursor"]),
            type=AnswerStreamEventType[event["type"]],
            text=event.get("text", ""),
            message_id=message_id,
        )
