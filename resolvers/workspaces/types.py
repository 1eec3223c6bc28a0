"""GraphQL types of workspaces: Role, Workspace, Member, Invite."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay

from base.models.accounts import Role as DomainRole
from base.models.runs import RunStatus as DomainRunStatus
from resolvers.accounts.types import User
from resolvers.core.context import Context
from resolvers.core.relay import PAGE_ARGS_DESCRIPTION, After, Connection, First, load_nodes
from resolvers.runs.types import Run, RunStatus
from services.runs import RunsQuery
from services.views import InviteView, MemberView, WorkspaceView
from services.workspaces import MembersQuery

Info = strawberry.Info[Context, None]


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
        )
        page = await info.context.loaders.runs_page.load(query)
        return Connection.from_page(page, Run.of)

    @classmethod
    def of(cls, view: WorkspaceView) -> Workspace:
        return cls(
            id=str(view.id),
            name=view.name,
            created_at=view.created_at,
            updated_at=view.updated_at,
            viewer_role=Role.of(view.viewer_role),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # Node overloads it on `required`
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Workspace | None]:
        return await load_nodes(
            info.context.loaders.workspace_by_id.load_many, list(node_ids), cls.of
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


@strawberry.type(description="A pending invitation to join a workspace.")
class Invite:
    id: strawberry.ID = strawberry.field(description="Invite id.")
    email: str = strawberry.field(description="The address it was sent to.")
    role: Role = strawberry.field(description="The role the invitee gets on accepting.")
    created_at: datetime = strawberry.field(description="When it was made (UTC).")
    expires_at: datetime = strawberry.field(description="When it stops working (UTC).")

    @classmethod
    def of(cls, view: InviteView) -> Invite:
        return cls(
            id=strawberry.ID(str(relay.GlobalID("Invite", str(view.id)))),
            email=view.email,
            role=Role.of(view.role),
            created_at=view.created_at,
            expires_at=view.expires_at,
        )
