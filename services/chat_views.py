"""What the Ask services hand back (screen 9): frozen views, as in `services.views`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from services.views import RunView, View


class ConversationView(View):
    id: uuid.UUID
    workspace_id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    message_count: int
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime


class ScopeView(View):
    """A question's scope: a collection, chosen documents, or (neither) the whole workspace."""

    collection_id: uuid.UUID | None = None
    document_ids: list[uuid.UUID] | None = None


class PassageView(View):
    """A passage retrieved for an answer, as it was then. `number` is the one the prompt gave
    it (None: retrieved, but not in the prompt)."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    collection_id: uuid.UUID
    document_title: str
    text: str
    heading_path: list[str] = Field(default_factory=list)
    char_start: int
    char_end: int
    score: float
    cosine: float | None = None
    number: int | None = None


class MessageView(View):
    id: uuid.UUID
    conversation_id: uuid.UUID
    workspace_id: uuid.UUID
    seq: int
    role: str
    text: str
    created_at: datetime
    scope: ScopeView | None = None  # questions
    question_id: uuid.UUID | None = None  # answers, from here on
    replaces_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    state: str | None = None
    finished_at: datetime | None = None
    passages: list[PassageView] = Field(default_factory=list)
    top_cosine: float | None = None
    retrieval_degraded: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dropped_citations: int = 0
    error_message: str | None = None


class CitationView(View):
    message_id: uuid.UUID
    position: int
    number: int
    origin: str
    document_id: uuid.UUID | None
    chunk_id: uuid.UUID | None
    document_title: str
    passage_text: str
    heading_path: list[Any]
    passage_start: int
    passage_end: int
    quote_start: int
    quote_end: int
    quote: str
    match_score: float


class FeedbackView(View):
    message_id: uuid.UUID
    user_id: uuid.UUID
    rating: str
    reason: str | None
    created_at: datetime
    updated_at: datetime


class AskResult(View):
    """A question asked (or an answer regenerated): the messages and the run writing it."""

    question: MessageView
    answer: MessageView
    run: RunView
