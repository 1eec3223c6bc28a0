"""GraphQL types of workspaces: Role, Workspace, Member, Invite."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay

from base.errors import NotFound
from base.models.accounts import Role as DomainRole
from base.models.documents import DocumentStatus as DomainDocumentStatus
from base.models.runs import RunStatus as DomainRunStatus
from resolvers.accounts.types import User
from resolvers.chat.types import Conversation
from resolvers.core.context import Info
from resolvers.core.relay import (
    PAGE_ARGS_DESCRIPTION,
    After,
    Connection,
    First,
    decode_id,
    load_nodes,
)
from resolvers.documents.inputs import DocumentsFilter, DocumentsSort
from resolvers.documents.types import (
    Collection,
    Document,
    DocumentCounts,
    SortDirection,
    TagCount,
    load_document_fields,
)
from resolvers.runs.types import (
    Run,
    RunStatus,
    WorkspaceEvent,
    load_event_fields,
    load_run_fields,
    selects_steps,
)
from services.chat import ConversationsQuery
from services.collections import CollectionsQuery
from services.documents import DocumentSortField as DomainSortField
from services.documents import DocumentsQuery, TagsQuery
from services.runs import ActivityQuery, RunsQuery
from services.views import InviteView, MemberView, ModelsView, UsageView, WorkspaceView
from services.workspaces import InvitesQuery, MembersQuery


@strawberry.enum(description="A member's role in a workspace, from least to most rights.")
class Role(enum.Enum):
    VIEWER = strawberry.enum_value("VIEWER", description="Reads, searches and asks.")
    EDITOR = strawberry.enum_value(
        "EDITOR", description="Also uploads and edits documents and manages collections."
    )
    ADMIN = strawberry.enum_value("ADMIN", description="Also manages members and settings.")
    OWNER = strawberry.enum_value("OWNER", description="Also deletes or hands over the workspace.")

    @classmethod
    def of(cls, role: DomainRole) -> Role:
        return cls[role.value]

    def to_domain(self) -> DomainRole:
        return DomainRole(self.name)  # the inverse of `of`: names here are the domain's values


@strawberry.type(description="A team's space: its members, documents and settings.")
class Workspace(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Workspace name.")
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    updated_at: datetime = strawberry.field(description="When it was last changed (UTC).")
    viewer_role: Role = strawberry.field(description="The signed-in user's role here.")
    chosen_chat_model: strawberry.Private[str | None] = None

    @strawberry.field(description=f"Members, oldest first. {PAGE_ARGS_DESCRIPTION}")
    async def members(
        self,
        info: Info,
        first: First = None,
        after: After = None,
    ) -> Connection[Member]:
        query = MembersQuery(workspace_id=uuid.UUID(self.id), first=first, after=after)
        page = await info.context.loaders.members_page.load(query)
        return Connection.from_page(page, Member.of)

    @strawberry.field(
        description="Screen 11, Models: the models in use and what the model server offers "
        "(the server is asked once per request). Any member may read it."
    )
    async def models(self, info: Info) -> WorkspaceModels:
        view = await info.context.loaders.models.load(self.chosen_chat_model or "")
        return WorkspaceModels.of(view)

    @strawberry.field(
        description="Screen 11, Usage: documents and bytes stored, and runs, chat tokens and "
        "embedding tokens this month. Any member may read it."
    )
    async def usage(self, info: Info) -> WorkspaceUsage:
        view = await info.context.loaders.usage_by_workspace_id.load(uuid.UUID(self.id))
        return WorkspaceUsage.of(view)

    @strawberry.field(
        description="Invites not accepted and not expired, oldest first; for ADMIN and OWNER "
        f"(FORBIDDEN for a lower role). {PAGE_ARGS_DESCRIPTION}"
    )
    async def invites(
        self,
        info: Info,
        first: First = None,
        after: After = None,
    ) -> Connection[Invite]:
        query = InvitesQuery(workspace_id=uuid.UUID(self.id), first=first, after=after)
        page = await info.context.loaders.invites_page.load(query)
        return Connection.from_page(page, Invite.of)

    @strawberry.field(
        description=f"Workflow runs, newest first, filtered by status and workflow. "
        f"{PAGE_ARGS_DESCRIPTION}"
    )
    async def runs(
        self,
        info: Info,
        status: Annotated[
            list[RunStatus] | None, strawberry.argument(description="Only these statuses.")
        ] = None,
        workflow: Annotated[
            str | None, strawberry.argument(description="Only this workflow.")
        ] = None,
        first: First = None,
        after: After = None,
    ) -> Connection[Run]:
        query = RunsQuery(
            workspace_id=uuid.UUID(self.id),
            statuses=tuple(DomainRunStatus(s.name) for s in status or ()),
            workflow=workflow,
            first=first,
            after=after,
            with_steps=selects_steps(info),
        )
        page = await info.context.loaders.runs_page.load(query)
        run = await load_run_fields(info, page, "edges", "node")
        return Connection.from_page(page, run)

    @strawberry.field(description=f"Collections, by name. {PAGE_ARGS_DESCRIPTION}")
    async def collections(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[Collection]:
        query = CollectionsQuery(workspace_id=uuid.UUID(self.id), first=first, after=after)
        page = await info.context.loaders.collections_page.load(query)
        return Connection.from_page(page, Collection.of)

    @strawberry.field(
        description="Documents, filtered and sorted (default: last updated first; the id "
        f"breaks ties). {PAGE_ARGS_DESCRIPTION}"
    )
    async def documents(
        self,
        info: Info,
        filter: Annotated[
            DocumentsFilter | None, strawberry.argument(description="Which documents.")
        ] = None,
        sort: Annotated[
            DocumentsSort | None, strawberry.argument(description="Their order.")
        ] = None,
        first: First = None,
        after: After = None,
    ) -> Connection[Document]:
        query = _documents_query(uuid.UUID(self.id), filter, sort, first, after)
        page = await info.context.loaders.documents_page.load(query)
        views = [e.node.document for e in page.edges]
        document = await load_document_fields(info, views, "edges", "node")
        return Connection.from_page(page, lambda v: document(v.document))

    @strawberry.field(
        description="Its latest events, newest first: the dashboard's activity feed (who did "
        "what, when). Stored events only (never RUN_PROGRESS). Pass the first one's `cursor` "
        "as `after` to `workspaceEvents` to follow on live with no gap and no repeat."
    )
    async def activity(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description="How many: 20 by default, at most 100.")
        ] = 20,
    ) -> list[WorkspaceEvent]:
        query = ActivityQuery(workspace_id=uuid.UUID(self.id), first=first)
        page = await info.context.loaders.activity_page.load(query)
        events = [e.node for e in page.edges]
        await load_event_fields(info, events)
        return [WorkspaceEvent.of(event) for event in events]

    @strawberry.field(description="The 5 most recently updated documents, newest first.")
    async def recent_documents(self, info: Info) -> list[Document]:
        query = DocumentsQuery(workspace_id=uuid.UUID(self.id), first=5, counted=False)
        page = await info.context.loaders.documents_page.load(query)
        documents = [e.node.document for e in page.edges]
        document = await load_document_fields(info, documents)
        return [document(v) for v in documents]

    @strawberry.field(description="How many documents it holds, by status.")
    async def document_counts(self, info: Info) -> DocumentCounts:
        view = await info.context.loaders.counts_by_workspace_id.load(uuid.UUID(self.id))
        return DocumentCounts.of(view)

    @strawberry.field(
        description="Its documents' tags, most used first, for the tag filters of the "
        "documents list and search (a filter matches a tag exactly, as written here)."
    )
    async def tags(
        self,
        info: Info,
        starts_with: Annotated[
            str | None,
            strawberry.argument(
                description="Only tags that begin with this, ignoring case (% and _ are "
                "letters here; at most 100 characters, TOO_LONG)."
            ),
        ] = None,
        first: Annotated[
            int, strawberry.argument(description="At most this many: 0-100 (BAD_USER_INPUT).")
        ] = 20,
    ) -> list[TagCount]:
        query = TagsQuery(uuid.UUID(self.id), starts_with or "", first)
        return [TagCount.of(v) for v in await info.context.loaders.tags_by_query.load(query)]

    @strawberry.field(description="How many collections it has.")
    async def collection_count(self, info: Info) -> int:
        view = await info.context.loaders.counts_by_workspace_id.load(uuid.UUID(self.id))
        return view.collections

    @strawberry.field(
        description=f"Your conversations here, last message first. {PAGE_ARGS_DESCRIPTION}"
    )
    async def conversations(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[Conversation]:
        query = ConversationsQuery(workspace_id=uuid.UUID(self.id), first=first, after=after)
        page = await info.context.loaders.conversations_page.load(query)
        return Connection.from_page(page, Conversation.of)

    @strawberry.field(description="Questions its members asked in the last 7 days.")
    async def questions_asked_last_7_days(self, info: Info) -> int:
        view = await info.context.loaders.counts_by_workspace_id.load(uuid.UUID(self.id))
        return view.questions_last_7_days

    @classmethod
    def of(cls, view: WorkspaceView) -> Workspace:
        return cls(
            id=str(view.id),
            name=view.name,
            created_at=view.created_at,
            updated_at=view.updated_at,
            viewer_role=Role.of(view.viewer_role),
            chosen_chat_model=view.chat_model,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # Node overloads it on `required`
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Workspace | None]:
        return await load_nodes(
            info.context.loaders.workspace_by_id.load_many, list(node_ids), cls.of
        )


@strawberry.type(description="A model the model server offers.")
class OfferedModel:
    name: str = strawberry.field(description="Its name, as the server lists it (name:tag).")
    size_bytes: float = strawberry.field(
        description="Its size in bytes (a Float: GraphQL's Int is 32 bits)."
    )
    modified_at: datetime | None = strawberry.field(
        description="When the server last changed it (UTC), when it says."
    )
    capabilities: list[str] | None = strawberry.field(
        description="What it can do, as the server says (Ollama's `completion` for chat, "
        "`embedding`, `tools`, `vision`, ...): a chat model to pick in setWorkspaceChatModel "
        "has `completion`. Null when the server does not say."
    )


@strawberry.type(
    description="Screen 11, Models: the models in use and the ones the model server offers. The "
    "chat model is the one an admin chose for the workspace (setWorkspaceChatModel), else the "
    "deployment's CHAT_MODEL; the embedding model is the deployment's EMBED_MODEL."
)
class WorkspaceModels:
    chat_model: str = strawberry.field(
        description="The chat model in use: summaries, tags, answers."
    )
    chat_model_chosen: bool = strawberry.field(
        description="Whether an admin chose it; false: the deployment's default."
    )
    default_chat_model: str = strawberry.field(
        description="The deployment's chat model (CHAT_MODEL), used unless an admin chooses one."
    )
    embed_model: str = strawberry.field(
        description="The embedding model: passages and questions are embedded with it."
    )
    server_reachable: bool = strawberry.field(
        description="Whether the model server answered now (within LLM_CONNECT_TIMEOUT_SECONDS)."
    )
    offered: list[OfferedModel] = strawberry.field(
        description="The models the server offers, as it lists them; empty when it does not answer."
    )
    chat_model_offered: bool | None = strawberry.field(
        description="Whether the server offers the chat model; null when it does not answer."
    )
    embed_model_offered: bool | None = strawberry.field(
        description="Whether the server offers the embedding model; null when it does not answer."
    )

    @classmethod
    def of(cls, view: ModelsView) -> WorkspaceModels:
        return cls(
            chat_model=view.chat_model,
            chat_model_chosen=view.chat_model_chosen,
            default_chat_model=view.default_chat_model,
            embed_model=view.embed_model,
            server_reachable=view.reachable,
            offered=[
                OfferedModel(
                    name=m.name,
                    size_bytes=m.size_bytes,
                    modified_at=m.modified_at,
                    capabilities=m.capabilities,
                )
                for m in view.offered
            ],
            chat_model_offered=view.chat_model_offered,
            embed_model_offered=view.embed_model_offered,
        )


@strawberry.type(
    description="Screen 11, Usage: what the workspace stores now, and what it used since the "
    "start of this month (UTC), exact whatever the retention of runs (RUN_RETENTION_DAYS): what "
    "deleted runs had used is kept."
)
class WorkspaceUsage:
    since: datetime = strawberry.field(description="The start of this month (UTC).")
    documents: int = strawberry.field(description="Documents stored, in any state.")
    bytes_stored: float = strawberry.field(
        description="The documents' original sizes in bytes, summed (a Float: GraphQL's Int is "
        "32 bits)."
    )
    runs: int = strawberry.field(description="Runs started since `since`, of any workflow.")
    prompt_tokens: float = strawberry.field(
        description="Chat-model tokens read since `since` (summaries, tags, answers, checks)."
    )
    completion_tokens: float = strawberry.field(
        description="Chat-model tokens written since `since`."
    )
    embedding_tokens: float = strawberry.field(
        description="Embedding-model tokens since `since`: the passages embedded by ingestion "
        "and by re-embedding after a model change (search queries are not counted)."
    )

    @classmethod
    def of(cls, view: UsageView) -> WorkspaceUsage:
        return cls(
            since=view.since,
            documents=view.documents,
            bytes_stored=view.bytes_stored,
            runs=view.runs,
            prompt_tokens=view.prompt_tokens,
            completion_tokens=view.completion_tokens,
            embedding_tokens=view.embedding_tokens,
        )


@strawberry.type(description="A person's membership of a workspace.")
class Member(relay.Node):
    id: relay.NodeID[str]
    role: Role = strawberry.field(description="Their role in the workspace.")
    joined_at: datetime = strawberry.field(description="When they joined (UTC).")
    user: User = strawberry.field(description="The person.")

    @classmethod
    def of(cls, view: MemberView) -> Member:
        return cls(
            id=str(view.id),
            role=Role.of(view.role),
            joined_at=view.joined_at,
            user=User.of(view.user),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # Node overloads it on `required`
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Member | None]:
        return await load_nodes(info.context.loaders.member_by_id.load_many, list(node_ids), cls.of)


@strawberry.type(
    description="An invitation to join a workspace; seen by the workspace's ADMIN and OWNER."
)
class Invite(relay.Node):
    id: relay.NodeID[str]
    email: str = strawberry.field(description="The address it was sent to.")
    role: Role = strawberry.field(description="The role the invitee gets on accepting.")
    created_at: datetime = strawberry.field(description="When it was made (UTC).")
    expires_at: datetime = strawberry.field(description="When it stops working (UTC).")

    @classmethod
    def of(cls, view: InviteView) -> Invite:
        return cls(
            id=str(view.id),
            email=view.email,
            role=Role.of(view.role),
            created_at=view.created_at,
            expires_at=view.expires_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # Node overloads it on `required`
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Invite | None]:
        return await load_nodes(info.context.loaders.invite_by_id.load_many, list(node_ids), cls.of)


_NOTHING = uuid.UUID(int=0)  # no row has it: a filter by an id that does not decode matches none


def _filter_id(value: strawberry.ID | None, type_name: str) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return decode_id(value, type_name, field="filter")
    except NotFound:
        return _NOTHING


def _documents_query(
    workspace_id: uuid.UUID,
    filter: DocumentsFilter | None,
    sort: DocumentsSort | None,
    first: int | None,
    after: str | None,
) -> DocumentsQuery:
    filter = filter or DocumentsFilter()
    sort = sort or DocumentsSort()
    return DocumentsQuery(
        workspace_id=workspace_id,
        collection_id=_filter_id(filter.collection_id, "Collection"),
        status=DomainDocumentStatus[filter.status.name] if filter.status else None,
        tag=filter.tag,
        owner_id=_filter_id(filter.owner_id, "User"),
        title_contains=filter.title_contains,
        sort=DomainSortField[sort.field.name],
        descending=sort.direction is SortDirection.DESC,
        first=first,
        after=after,
    )
