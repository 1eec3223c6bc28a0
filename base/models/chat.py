"""Conversations (screen 9): questions, answers, their checked citations and feedback.

A conversation belongs to the member who started it, inside one workspace. Its messages are
numbered in order (`seq`, the cursor of the list). A question is a USER message; each answer is
an ASSISTANT message that names the question it answers (`question_id`) and the run that writes
it. Regenerating adds another answer to the same question; the earlier one stays.

An answer keeps what it was built from: the passages retrieved for it (`passages`, a snapshot,
so a citation still shows its passage after the document changed), and the numbers the prompt
gave them. Its citations are the ones that passed the check (ADR 0071); the others are counted
in `dropped_citations`.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from base.db.base import Base, UUIDPrimaryKey
from base.db.types import UTCDateTime, utcnow

MAX_CONVERSATION_TITLE = 200


class MessageRole(enum.StrEnum):
    USER = "USER"
    ASSISTANT = "ASSISTANT"


class AnswerState(enum.StrEnum):
    """Where an answer is; the last five are final."""

    PENDING = "PENDING"  # queued, retrieving or building the prompt
    STREAMING = "STREAMING"  # the model is writing it
    ANSWERED = "ANSWERED"
    NOT_IN_DOCUMENTS = "NOT_IN_DOCUMENTS"  # abstained: nothing relevant, or the model said so
    MODEL_UNAVAILABLE = "MODEL_UNAVAILABLE"  # no model reachable; `passages` are the best found
    STOPPED = "STOPPED"  # stopped by the asker; the text so far is kept
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self not in (AnswerState.PENDING, AnswerState.STREAMING)


class Rating(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=20)


class Conversation(UUIDPrimaryKey, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # The list: a member's conversations in a workspace, last message first.
        Index("ix_conversations_owner_last", "workspace_id", "owner_id", "last_message_at", "id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(MAX_CONVERSATION_TITLE))
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The time of its last message; its creation until it has one.
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(UUIDPrimaryKey, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq"),
        # The dashboard's "questions asked in the last 7 days".
        Index("ix_messages_workspace_role_created", "workspace_id", "role", "created_at"),
        Index("ix_messages_run_id", "run_id"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[MessageRole] = mapped_column(_enum(MessageRole, "message_role"))
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A question's scope: {"collection_id": "..."} or {"document_ids": [...]}; {} = workspace.
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Answers only ------------------------------------------------------------------------
    question_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), default=None
    )
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="SET NULL"), default=None
    )
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="SET NULL"), default=None
    )
    state: Mapped[AnswerState | None] = mapped_column(
        _enum(AnswerState, "answer_state"), default=None
    )
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Retrieved passages, best first: [{chunk_id, document_id, collection_id, document_title,
    # text, heading_path, char_start, char_end, score, cosine, number}], `number` set for the
    # passages the prompt numbered (only those can be cited).
    passages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    top_cosine: Mapped[float | None] = mapped_column(Float, default=None)
    retrieval_degraded: Mapped[bool] = mapped_column(default=False)
    # The prompt's messages, kept for GENERATING (and for looking into an answer later).
    prompt: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    dropped_citations: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(String(1000), default=None)


class Citation(UUIDPrimaryKey, Base):
    """A citation of an answer that passed the check, with a snapshot of its passage."""

    __tablename__ = "citations"
    __table_args__ = (UniqueConstraint("message_id", "position"),)

    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)  # order in the answer
    number: Mapped[int] = mapped_column(Integer)  # the passage's number in the prompt
    # QUOTED or MARKED (the model wrote [n]), MATCHED (found by its words; ADR 0071).
    origin: Mapped[str] = mapped_column(String(16))
    # The document may be deleted later; the snapshot below still shows what was cited.
    document_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("documents.id", ondelete="SET NULL")
    )
    chunk_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("chunks.id", ondelete="SET NULL")
    )
    document_title: Mapped[str] = mapped_column(String(300))
    passage_text: Mapped[str] = mapped_column(Text)
    heading_path: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Where the passage is in its document's text, and the quote in the passage.
    passage_start: Mapped[int] = mapped_column(Integer)
    passage_end: Mapped[int] = mapped_column(Integer)
    quote_start: Mapped[int] = mapped_column(Integer)
    quote_end: Mapped[int] = mapped_column(Integer)
    quote: Mapped[str] = mapped_column(Text)
    match_score: Mapped[float] = mapped_column(Float)


class AnswerFeedback(Base):
    """A member's thumbs up or down on an answer (one per member and answer; the latest)."""

    __tablename__ = "answer_feedback"

    message_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    rating: Mapped[Rating] = mapped_column(_enum(Rating, "answer_rating"))
    reason: Mapped[str | None] = mapped_column(String(1000), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
