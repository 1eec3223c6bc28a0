"""What services hand back: frozen pydantic views, and pages of them (frozen dataclasses).

Services return these instead of ORM rows, which would leak sessions; a node boxes whatever its
service returns (`nodes.services.Boxed`), since Kailash wants outputs it can serialise.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from base.models.accounts import Role

T = TypeVar("T")


class View(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


V = TypeVar("V", bound=View)
_FIELD_NAMES: dict[type[View], tuple[str, ...]] = {}


def view_of_row(view: type[V], row: Any) -> V:
    """`view` made from a Core row holding each of its fields as a column of the same name (a
    row of `view_columns`): what `view.model_validate(row)` makes, for less than half the CPU.
    Validating from attributes reads each field as an attribute of the row, and a Row's
    attribute costs about 1 µs (SQLAlchemy looks for a class attribute of that name first); its
    mapping gives a column in about 0.15 µs (ADR 0139)."""
    names = _FIELD_NAMES.get(view)
    if names is None:
        names = _FIELD_NAMES[view] = tuple(view.model_fields)
    mapping = row._mapping
    return view.model_validate({name: mapping[name] for name in names})


def view_columns(view: type[View], model: type[Any]) -> tuple[Any, ...]:
    """The columns of `model` that `view` is made of, by name, to select as Core rows.

    A view made from a row of just these columns is the one made from the mapped object, and
    the read costs less: no object, no identity map, nothing loaded the view drops (ADR 0133;
    bench/bench_id_lists.py: 0.06 ms a read of one row, 0.11 ms of 25)."""
    return tuple(getattr(model, name) for name in view.model_fields)


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
    chat_model: str | None = None  # an admin's choice; None: the deployment's CHAT_MODEL


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


# A page and its edges are built by pagination from views already made, so they are plain frozen
# dataclasses: validating them again as pydantic models cost 160-180 µs a page of 25 (of a
# screen's 10-20 ms on a slow day), a dataclass 40. Pydantic views hold them as they are.
@dataclass(frozen=True, slots=True)
class Edge(Generic[T]):
    cursor: str
    node: T


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    edges: list[Edge[T]]
    total_count: int | None  # None: not counted (the caller shows no total)
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


@dataclass(frozen=True, slots=True)
class RunsPage(Page[RunView]):
    """A page of runs with each run's steps in order, read in the same call as the page when
    its query asked for them (`with_steps`): a screen that shows them waits for no read more."""

    steps: dict[uuid.UUID, list[RunStepView]] = field(default_factory=dict)


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


class CollectionView(View):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    description: str
    created_by_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    # Its totals, None when read without them (`collections_by_ids`: a screen that names a
    # document's collection does not count the collection's documents; see CollectionTotalsView).
    document_count: int | None
    # The latest of the collection's and its documents' updated_at.
    last_updated_at: datetime | None


class CollectionTotalsView(View):
    id: uuid.UUID
    document_count: int
    last_updated_at: datetime


class DocumentView(View):
    id: uuid.UUID
    workspace_id: uuid.UUID
    collection_id: uuid.UUID
    owner_id: uuid.UUID | None
    title: str
    status: str
    stage: str | None
    error_code: str | None
    error_message: str | None
    content_type: str
    original_filename: str | None
    size_bytes: int
    word_count: int | None
    language: str | None
    summary: str | None
    key_points: list[str]
    created_at: datetime
    updated_at: datetime


class ListedDocumentView(View):
    """A document with its collection, read in the same statement (a page of documents, a
    document by id)."""

    document: DocumentView
    collection: CollectionView


class DocumentByIdView(ListedDocumentView):
    """A document read by id, with its collection and its owner in the same statement (a detail
    shows both)."""

    owner: UserView | None  # None: no owner, or one the caller may not see


class EntityView(View):
    name: str
    kind: str


class FieldEditView(View):
    field: str
    edited_by_id: uuid.UUID | None
    edited_at: datetime


class FieldSourceView(View):
    """Who or what wrote the value a document's field holds (ADR 0103)."""

    field: str
    source: str


class ChunkView(View):
    id: uuid.UUID
    document_id: uuid.UUID
    position: int
    text: str
    heading_path: list[str]
    char_start: int
    char_end: int
    token_count: int


class TagCountView(View):
    """A tag of a workspace's documents and how many of them carry it."""

    tag: str
    documents: int


class WorkspaceCountsView(View):
    """What the dashboard counts of a workspace: its documents by status, its collections, and
    the questions its members asked in the last 7 days."""

    queued: int = 0
    processing: int = 0
    ready: int = 0
    failed: int = 0
    total: int = 0
    collections: int = 0
    questions_last_7_days: int = 0


class OfferedModelView(View):
    """A model the server offers (Ollama's /api/tags) and what it can do (its /api/show: None
    when the server did not say)."""

    name: str
    size_bytes: int
    modified_at: datetime | None
    capabilities: list[str] | None


class ModelsView(View):
    """The models a workspace uses (its chosen chat model or the deployment's, the deployment's
    embedding model) and what the server offers now. The `*_offered` flags are None when the
    server does not answer."""

    chat_model: str
    chat_model_chosen: bool
    default_chat_model: str
    embed_model: str
    reachable: bool
    offered: list[OfferedModelView]
    chat_model_offered: bool | None
    embed_model_offered: bool | None


class UsageView(View):
    """A workspace's stored documents, and its runs, chat tokens and embedding tokens `since`
    (this month)."""

    since: datetime
    documents: int
    bytes_stored: int
    runs: int
    prompt_tokens: int
    completion_tokens: int
    embedding_tokens: int


class ItemError(View):
    """An expected failure of one item of a bulk mutation (`field` is e.g. "ids.3")."""

    code: str
    message: str
    field: str


class MovedDocuments(View):
    documents: list[DocumentView]
    errors: list[ItemError]


class DeletedDocuments(View):
    ids: list[uuid.UUID]
    errors: list[ItemError]


class ReprocessedDocuments(View):
    """The documents queued again (each with its new run, in the same order) and the others'
    errors."""

    documents: list[DocumentView]
    runs: list[RunView]
    errors: list[ItemError]


class PassageView(View):
    """The passage that represents a search result: a chunk's text, where it sits, and the
    (start, end) offsets into `text` of the words the full-text index matched."""

    chunk_id: uuid.UUID
    position: int
    text: str
    heading_path: list[str]
    char_start: int
    char_end: int
    matches: list[tuple[int, int]]
    cosine: float | None


class SearchHitView(View):
    document: DocumentView
    score: float
    passage: PassageView
    # The document's collection, read with the page (the results show its name).
    collection: CollectionView | None = None


class SearchResultsView(View):
    """A page of search results; `degraded`: semantic ranking was wanted (HYBRID) but the
    embedding model was unavailable, so these are keyword results alone."""

    page: Page[SearchHitView]
    degraded: bool
    # Whether the nearest document by meaning is at least ASK_MIN_COSINE similar to the query
    # (Ask's bar for NOT_IN_DOCUMENTS); None without ranking by meaning (KEYWORD, degraded).
    close_match: bool | None = None


class RelatedDocumentView(View):
    document: DocumentView
    score: float
    # The document's collection, read with it (the tab shows its name).
    collection: CollectionView | None = None
