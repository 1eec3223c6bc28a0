"""Per-request dataloaders: one workflow run per batch of keys, never one per key, and the
batches that fire together in one workflow execution (`runtime.runner.CallBatch`).

Nested connections load through them too: `Workspace.runs` of fifty workspaces is one
`LIST_RUNS` run (two SQL statements), not fifty.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterable, Sequence
from functools import cached_property
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from base.errors import DomainError
from runtime.runner import ApiWorkflow, WorkflowRunner
from services.chat import ConversationsQuery, MessagesQuery
from services.chat_views import CitationView, ConversationView, FeedbackView, MessageView
from services.collections import CollectionsQuery
from services.deps import ServiceDeps
from services.documents import ChunksQuery, DocumentAnnotations, DocumentsQuery, TagsQuery
from services.runs import ActivityQuery, RunEventsQuery, RunsQuery, SubjectRunsQuery
from services.views import (
    ChunkView,
    CollectionTotalsView,
    CollectionView,
    DocumentByIdView,
    DocumentView,
    InviteView,
    ListedDocumentView,
    MemberView,
    ModelsView,
    Page,
    RelatedDocumentView,
    RunEventView,
    RunStepView,
    RunView,
    TagCountView,
    UsageView,
    UserView,
    WorkspaceCountsView,
    WorkspaceView,
)
from services.workspaces import InvitesQuery, MembersQuery
from workflows.accounts import (
    LIST_INVITES,
    LIST_MEMBERS,
    LOAD_INVITES,
    LOAD_MEMBERS,
    LOAD_MODELS,
    LOAD_USAGE,
    LOAD_USERS,
    LOAD_WORKSPACE_COUNTS,
    LOAD_WORKSPACES,
)
from workflows.chat import (
    LIST_CONVERSATIONS,
    LIST_MESSAGES,
    LOAD_CITATIONS,
    LOAD_CONVERSATIONS,
    LOAD_MESSAGES,
    LOAD_MY_FEEDBACK,
)
from workflows.documents import (
    LIST_CHUNKS,
    LIST_COLLECTIONS,
    LIST_DOCUMENTS,
    LOAD_COLLECTION_TOTALS,
    LOAD_COLLECTIONS,
    LOAD_DOCUMENT_ANNOTATIONS,
    LOAD_DOCUMENT_TAGS,
    LOAD_DOCUMENTS,
    LOAD_TAG_COUNTS,
)
from workflows.runs import (
    LIST_ACTIVITY,
    LIST_RUN_EVENTS,
    LIST_RUNS,
    LIST_SUBJECT_RUNS,
    LOAD_RUN_STEPS,
    LOAD_RUNS,
)
from workflows.search import LOAD_RELATED_DOCUMENTS

V = TypeVar("V")
Q = TypeVar("Q", bound=Hashable)


class Loaders:
    def __init__(self, runner: WorkflowRunner, deps: ServiceDeps) -> None:
        # The loaders that fire in the same turn of the event loop run as one workflow.
        self._calls = runner.batch()
        self._deps = deps

    def _loader(self, workflow: ApiWorkflow[..., list[V]]) -> DataLoader[uuid.UUID, V]:
        async def load(ids: list[uuid.UUID]) -> list[V]:
            return await self._calls.call(workflow, self._deps, ids=list(ids))

        return DataLoader(load_fn=load)

    def _page_loader(
        self, workflow: ApiWorkflow[..., list[Page[V] | DomainError]]
    ) -> DataLoader[Q, Page[V]]:
        """Pages of a nested connection, by (parent, filters, page); a refused page raises."""

        async def load(queries: list[Q]) -> Sequence[Page[V] | BaseException]:
            return await self._calls.call(workflow, self._deps, queries=list(queries))

        return DataLoader(load_fn=load)

    @cached_property
    def user_by_id(self) -> DataLoader[uuid.UUID, UserView | None]:
        return self._loader(LOAD_USERS)

    @cached_property
    def workspace_by_id(self) -> DataLoader[uuid.UUID, WorkspaceView | None]:
        return self._loader(LOAD_WORKSPACES)

    @cached_property
    def member_by_id(self) -> DataLoader[uuid.UUID, MemberView | None]:
        return self._loader(LOAD_MEMBERS)

    @cached_property
    def run_by_id(self) -> DataLoader[uuid.UUID, RunView | None]:
        return self._loader(LOAD_RUNS)

    @cached_property
    def steps_by_run_id(self) -> DataLoader[uuid.UUID, list[RunStepView]]:
        return self._loader(LOAD_RUN_STEPS)

    @cached_property
    def runs_page(self) -> DataLoader[RunsQuery, Page[RunView]]:
        return self._page_loader(LIST_RUNS)

    @cached_property
    def subject_runs_page(self) -> DataLoader[SubjectRunsQuery, Page[RunView]]:
        return self._page_loader(LIST_SUBJECT_RUNS)

    @cached_property
    def members_page(self) -> DataLoader[MembersQuery, Page[MemberView]]:
        return self._page_loader(LIST_MEMBERS)

    @cached_property
    def usage_by_workspace_id(self) -> DataLoader[uuid.UUID, UsageView]:
        return self._loader(LOAD_USAGE)

    @cached_property
    def models(self) -> DataLoader[str, ModelsView]:
        """The models in use and offered, keyed by a workspace's chosen chat model ("" for
        none): the server is asked once per request, whatever the number of workspaces."""

        async def load(keys: list[str]) -> list[ModelsView]:
            found: list[ModelsView] = await self._calls.call(LOAD_MODELS, self._deps, chosen=keys)
            return found

        return DataLoader(load_fn=load)

    @cached_property
    def invite_by_id(self) -> DataLoader[uuid.UUID, InviteView | None]:
        return self._loader(LOAD_INVITES)

    @cached_property
    def invites_page(self) -> DataLoader[InvitesQuery, Page[InviteView]]:
        return self._page_loader(LIST_INVITES)

    @cached_property
    def run_events_page(self) -> DataLoader[RunEventsQuery, Page[RunEventView]]:
        return self._page_loader(LIST_RUN_EVENTS)

    @cached_property
    def activity_page(self) -> DataLoader[ActivityQuery, Page[dict[str, Any]]]:
        return self._page_loader(LIST_ACTIVITY)

    @cached_property
    def collection_by_id(self) -> DataLoader[uuid.UUID, CollectionView | None]:
        return self._loader(LOAD_COLLECTIONS)

    @cached_property
    def collection_totals_by_id(self) -> DataLoader[uuid.UUID, CollectionTotalsView | None]:
        return self._loader(LOAD_COLLECTION_TOTALS)

    @cached_property
    def collections_page(self) -> DataLoader[CollectionsQuery, Page[CollectionView]]:
        return self._page_loader(LIST_COLLECTIONS)

    def prime_collections(self, collections: Iterable[CollectionView | None]) -> None:
        """Collections read together with their documents (a page of documents, a document,
        search hits, related documents): `Document.collection` finds them in the collection
        loader, with no batch of their own."""
        loader = self.collection_by_id
        for collection in collections:
            if collection is not None:
                loader.prime(collection.id, collection)

    @cached_property
    def document_by_id(self) -> DataLoader[uuid.UUID, DocumentView | None]:
        """Documents by id, their collections and owners read with them and primed."""

        async def load(ids: list[uuid.UUID]) -> list[DocumentView | None]:
            found: list[DocumentByIdView | None] = await self._calls.call(
                LOAD_DOCUMENTS, self._deps, ids=list(ids)
            )
            self.prime_collections(v.collection for v in found if v is not None)
            self.user_by_id.prime_many(
                {v.document.owner_id: v.owner for v in found if v and v.document.owner_id}
            )
            return [None if v is None else v.document for v in found]

        return DataLoader(load_fn=load)

    @cached_property
    def documents_page(self) -> DataLoader[DocumentsQuery, Page[ListedDocumentView]]:
        """Pages of documents, their collections read with them and primed."""

        async def load(
            queries: list[DocumentsQuery],
        ) -> list[Page[ListedDocumentView] | DomainError]:
            pages: list[Page[ListedDocumentView] | DomainError] = await self._calls.call(
                LIST_DOCUMENTS, self._deps, queries=list(queries)
            )
            for page in pages:
                if isinstance(page, Page):
                    self.prime_collections(e.node.collection for e in page.edges)
            return pages

        return DataLoader(load_fn=load)

    @cached_property
    def tags_by_document_id(self) -> DataLoader[uuid.UUID, list[str]]:
        return self._loader(LOAD_DOCUMENT_TAGS)

    @cached_property
    def annotations_by_document_id(self) -> DataLoader[uuid.UUID, DocumentAnnotations]:
        return self._loader(LOAD_DOCUMENT_ANNOTATIONS)

    @cached_property
    def chunks_page(self) -> DataLoader[ChunksQuery, Page[ChunkView]]:
        return self._page_loader(LIST_CHUNKS)

    @cached_property
    def related_by_document_id(self) -> DataLoader[uuid.UUID, list[RelatedDocumentView]]:
        return self._loader(LOAD_RELATED_DOCUMENTS)

    @cached_property
    def counts_by_workspace_id(self) -> DataLoader[uuid.UUID, WorkspaceCountsView]:
        return self._loader(LOAD_WORKSPACE_COUNTS)

    @cached_property
    def conversation_by_id(self) -> DataLoader[uuid.UUID, ConversationView | None]:
        return self._loader(LOAD_CONVERSATIONS)

    @cached_property
    def conversations_page(self) -> DataLoader[ConversationsQuery, Page[ConversationView]]:
        return self._page_loader(LIST_CONVERSATIONS)

    @cached_property
    def message_by_id(self) -> DataLoader[uuid.UUID, MessageView | None]:
        return self._loader(LOAD_MESSAGES)

    @cached_property
    def messages_page(self) -> DataLoader[MessagesQuery, Page[MessageView]]:
        return self._page_loader(LIST_MESSAGES)

    @cached_property
    def citations_by_message_id(self) -> DataLoader[uuid.UUID, list[CitationView]]:
        return self._loader(LOAD_CITATIONS)

    @cached_property
    def my_feedback_by_message_id(self) -> DataLoader[uuid.UUID, FeedbackView | None]:
        return self._loader(LOAD_MY_FEEDBACK)

    @cached_property
    def tags_by_query(self) -> DataLoader[TagsQuery, list[TagCountView]]:
        async def load(queries: list[TagsQuery]) -> list[list[TagCountView]]:
            return await self._calls.call(LOAD_TAG_COUNTS, self._deps, queries=list(queries))

        return DataLoader(load_fn=load)
