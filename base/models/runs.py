"""Workflow runs, their steps, their events (the replay log) and the workspace activity log."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Enum,
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


class RunStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class StepStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REUSED = "REUSED"  # carried over from the failed attempt a retry resumed


class SubjectType(enum.StrEnum):
    """What a run works on, or what a workspace event is about (runs use the first three)."""

    WORKSPACE = "WORKSPACE"
    DOCUMENT = "DOCUMENT"
    CONVERSATION = "CONVERSATION"
    COLLECTION = "COLLECTION"
    USER = "USER"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=16)


class Run(UUIDPrimaryKey, Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_workspace_created", "workspace_id", "created_at", "id"),
        Index("ix_runs_status_lease", "status", "lease_expires_at"),
        Index("ix_runs_subject", "subject_type", "subject_id"),
        Index("ix_runs_retry_of_id", "retry_of_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    workflow: Mapped[str] = mapped_column(String(100))
    subject_type: Mapped[SubjectType] = mapped_column(_enum(SubjectType, "run_subject_type"))
    subject_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    subject_label: Mapped[str] = mapped_column(String(300))
    triggered_by_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL")
    )
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    percent: Mapped[int] = mapped_column(Integer, default=0)
    current_step: Mapped[str | None] = mapped_column(String(100), default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    retry_of_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="SET NULL"), default=None
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    input_summary: Mapped[str] = mapped_column(String(500), default="")
    output_summary: Mapped[str | None] = mapped_column(String(1000), default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(String(1000), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Who executes it now: the lease makes execution exclusive and lets a sweeper find the dead.
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    executions: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class RunStep(UUIDPrimaryKey, Base):
    __tablename__ = "run_steps"
    __table_args__ = (UniqueConstraint("run_id", "position"),)

    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[StepStatus] = mapped_column(_enum(StepStatus, "run_step_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    error_message: Mapped[str | None] = mapped_column(String(1000), default=None)
    # The node's output, kept so that a retry can resume after this step.
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class RunEvent(Base):
    """One entry of a run's replay log; `seq` (1, 2, 3, ... per run) is the cursor."""

    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_event_status"))
    step: Mapped[str | None] = mapped_column(String(100), default=None)
    percent: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkspaceEvent(Base):
    """The workspace's activity log (dashboard feed, toasts); `id` is the cursor."""

    __tablename__ = "workspace_events"
    __table_args__ = (
        Index("ix_workspace_events_workspace_id", "workspace_id", "id"),
        Index("ix_workspace_events_run_id", "run_id"),
        # A user's finished runs after a position per workspace (myRunEvents, ADR 0086).
        Index("ix_workspace_events_actor", "actor_id", "type", "workspace_id", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # The actor's name then: the feed names people who have left since (`actor_id` is kept, but
    # users are visible only to those who share a workspace with them).
    actor_name: Mapped[str | None] = mapped_column(String(200), default=None)
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), default=None
    )
    run_status: Mapped[RunStatus | None] = mapped_column(
        _enum(RunStatus, "workspace_event_run_status"), default=None
    )
    # What the event is about (for run events, the run's subject), as named at the time: the
    # feed still reads well after the object is renamed or deleted.
    subject_type: Mapped[SubjectType | None] = mapped_column(
        _enum(SubjectType, "workspace_event_subject_type"), default=None
    )
    subject_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    subject_label: Mapped[str | None] = mapped_column(String(300), default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PrunedUsage(Base):
    """What the runs that retention deleted had used, per workspace and calendar month (UTC): the
    Usage tab adds it to the sums over the runs kept (ADR 0126). A run counts in the month it was
    created, a step's tokens in the month the step finished."""

    __tablename__ = "pruned_usage"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # its first day
    runs: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    embedding_tokens: Mapped[int] = mapped_column(BigInteger)
