"""Payloads of the workspace mutations."""

import strawberry

from resolvers.core.errors import UserError
from resolvers.workspaces.types import Invite, Member, Workspace

_ERRORS = "Expected failures, empty on success."


@strawberry.type(description="Result of acceptInvite.")
class AcceptInvitePayload:
    workspace: Workspace | None = strawberry.field(
        default=None, description="The joined workspace."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of inviteMember.")
class InviteMemberPayload:
    invite: Invite | None = strawberry.field(default=None, description="The pending invite.")
    invite_link: str | None = strawberry.field(
        default=None, description="The link to send; it holds the single-use token."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of revokeInvite.")
class RevokeInvitePayload:
    invite: Invite | None = strawberry.field(
        default=None, description="The invite as it was; its link no longer works."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of changeMemberRole.")
class ChangeMemberRolePayload:
    member: Member | None = strawberry.field(default=None, description="The member, updated.")
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of removeMember.")
class RemoveMemberPayload:
    removed_member_id: strawberry.ID | None = strawberry.field(
        default=None, description="Id of the removed member."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of deleteWorkspace.")
class DeleteWorkspacePayload:
    deleted_workspace_id: strawberry.ID | None = strawberry.field(
        default=None, description="Id of the deleted workspace."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of renameWorkspace.")
class RenameWorkspacePayload:
    workspace: Workspace | None = strawberry.field(default=None, description="The workspace.")
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of setWorkspaceChatModel.")
class SetWorkspaceChatModelPayload:
    workspace: Workspace | None = strawberry.field(
        default=None, description="The workspace; read `models` for the model now in use."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)
