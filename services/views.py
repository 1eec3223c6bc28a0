"""What services hand back: frozen pydantic views.

Kailash requires node outputs to be JSON-serialisable and accepts pydantic models as the one
exception, so services return these instead of ORM rows (which would also leak sessions).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from base.models.accounts import Role

T = TypeVar("T")


class View(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class UserView(View):
    id: uuid.UUID
    email: str
    name: str
    created_at: datetime


class WorkspaceView(View):
    id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime
    viewer_role: Role


class MemberView(View):
    id: uuid.UUID
    workspace_id: uuid.UUID
    role: Role
    joined_at: datetime
    user: UserView


class InviteView(View):
    id: uuid.UUID
    workspace_id: uuid.UUID
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime


class CreatedInvite(View):
    invite: InviteView
    link: str


class AuthSession(View):
    user: UserView
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime


class Edge(View, Generic[T]):
    cursor: str
    node: T


class Page(View, Generic[T]):
    edges: list[Edge[T]]
    total_count: int
    has_next_page: bool
    has_previous_page: bool


class RunView(View):
    id: uuid.UUID
    workspace_id: uuid.UUID
    workflow: str
    subject_type: str
    subject_id: uuid.UUID
    subject_label: str
    triggered_by_id: uuid.UUID | None
    status: str
    percent: int
    current_step: str | None
    attempt: int
    retry_of_id: uuid.UUID | None
    input_summary: str
    output_summary: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None


class RunStepView(View):
    position: int
    name: str
    status: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error_message: str | None


class RunEventView(View):
    run_id: uuid.UUID
    seq: int
    type: str
    status: str
    step: str | None
    percent: int
    message: str
    at: datetime


class WorkspaceEventView(View):
    id: int
    workspace_id: uuid.UUID
    type: str
    actor_id: uuid.UUID | None
    run_id: uuid.UUID | None
    run_status: str | None
    message: str
    at: datetime
