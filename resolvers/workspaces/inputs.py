"""Inputs of the workspace mutations (screens 1 and 11)."""

import strawberry

from resolvers.workspaces.types import Role


@strawberry.input(description="Join a workspace with an invite token from an invite link.")
class AcceptInviteInput:
    token: str = strawberry.field(description="The token at the end of the invite link.")


@strawberry.input(description="Invite someone by email with a role.")
class InviteMemberInput:
    workspace_id: strawberry.ID = strawberry.field(description="The workspace.")
    email: str = strawberry.field(description="Their email address.")
    role: Role = strawberry.field(description="Role on accepting; OWNER only by an OWNER.")


@strawberry.input(description="Revoke an invite that has not been accepted.")
class RevokeInviteInput:
    invite_id: strawberry.ID = strawberry.field(description="The invite (an Invite id).")


@strawberry.input(description="Change a member's role.")
class ChangeMemberRoleInput:
    member_id: strawberry.ID = strawberry.field(description="The member (a Member id).")
    role: Role = strawberry.field(description="The new role.")


@strawberry.input(description="Remove a member, or leave (your own Member id).")
class RemoveMemberInput:
    member_id: strawberry.ID = strawberry.field(description="The member (a Member id).")


@strawberry.input(description="Delete a workspace and everything in it.")
class DeleteWorkspaceInput:
    workspace_id: strawberry.ID = strawberry.field(description="The workspace.")
    name: str = strawberry.field(
        description="Its name, typed again to confirm (NAME_MISMATCH otherwise)."
    )


@strawberry.input(description="Rename a workspace.")
class RenameWorkspaceInput:
    workspace_id: strawberry.ID = strawberry.field(description="The workspace.")
    name: str = strawberry.field(description="New name, 1 to 200 characters.")


@strawberry.input(description="Choose the chat model of a workspace.")
class SetWorkspaceChatModelInput:
    workspace_id: strawberry.ID = strawberry.field(description="The workspace.")
    chat_model: str | None = strawberry.field(
        description="A chat model the model server offers (a name from `models.offered`), or "
        "null for the deployment's default (`models.defaultChatModel`)."
    )
