"""Workspace mutations: invites, roles, removal (screen 11) and accepting invites (screen 1)."""

from typing import Annotated, Any

import strawberry

from resolvers.core.context import Info
from resolvers.core.errors import as_payload
from resolvers.core.inputs import INPUT
from resolvers.core.relay import decode_id, global_id
from resolvers.workspaces.inputs import (
    AcceptInviteInput,
    ChangeMemberRoleInput,
    DeleteWorkspaceInput,
    InviteMemberInput,
    RemoveMemberInput,
    RenameWorkspaceInput,
    RevokeInviteInput,
    SetWorkspaceChatModelInput,
)
from resolvers.workspaces.payloads import (
    AcceptInvitePayload,
    ChangeMemberRolePayload,
    DeleteWorkspacePayload,
    InviteMemberPayload,
    RemoveMemberPayload,
    RenameWorkspacePayload,
    RevokeInvitePayload,
    SetWorkspaceChatModelPayload,
)
from resolvers.workspaces.types import Invite, Member, Workspace
from workflows.accounts import (
    ACCEPT_INVITE,
    CHANGE_MEMBER_ROLE,
    DELETE_WORKSPACE,
    INVITE_MEMBER,
    REMOVE_MEMBER,
    RENAME_WORKSPACE,
    REVOKE_INVITE,
    SET_CHAT_MODEL,
)

ADMIN_ONLY = " Needs the ADMIN or OWNER role."


@strawberry.type
class WorkspaceMutations:
    @strawberry.mutation(
        description="Join the invite's workspace with its role; the invite must be addressed to "
        "the signed-in user's email. Sign up first if needed."
    )
    async def accept_invite(
        self, info: Info, input: Annotated[AcceptInviteInput, INPUT]
    ) -> AcceptInvitePayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(ACCEPT_INVITE, token=input.token)
            return {"workspace": Workspace.of(view)}

        return await as_payload(AcceptInvitePayload, work())

    @strawberry.mutation(
        description="Invite someone by email; returns the invite link." + ADMIN_ONLY
    )
    async def invite_member(
        self, info: Info, input: Annotated[InviteMemberInput, INPUT]
    ) -> InviteMemberPayload:
        async def work() -> dict[str, Any]:
            created = await info.context.run(
                INVITE_MEMBER,
                workspace_id=decode_id(input.workspace_id, "Workspace", field="workspaceId"),
                email=input.email,
                role=input.role.to_domain(),
            )
            return {"invite": Invite.of(created.invite), "invite_link": created.link}

        return await as_payload(InviteMemberPayload, work())

    @strawberry.mutation(
        description="Revoke an invite that has not been accepted: its link stops working at "
        "once (accepting it then gives INVITE_INVALID). An accepted one gives INVITE_USED."
        + ADMIN_ONLY
    )
    async def revoke_invite(
        self, info: Info, input: Annotated[RevokeInviteInput, INPUT]
    ) -> RevokeInvitePayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                REVOKE_INVITE, invite_id=decode_id(input.invite_id, "Invite", field="inviteId")
            )
            return {"invite": Invite.of(view)}

        return await as_payload(RevokeInvitePayload, work())

    @strawberry.mutation(
        description="Change a member's role; only an OWNER grants or removes OWNER, and the last "
        "OWNER cannot be demoted." + ADMIN_ONLY
    )
    async def change_member_role(
        self, info: Info, input: Annotated[ChangeMemberRoleInput, INPUT]
    ) -> ChangeMemberRolePayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                CHANGE_MEMBER_ROLE,
                member_id=decode_id(input.member_id, "Member", field="memberId"),
                role=input.role.to_domain(),
            )
            return {"member": Member.of(view)}

        return await as_payload(ChangeMemberRolePayload, work())

    @strawberry.mutation(
        description="Remove a member (ADMIN or OWNER), or leave by passing your own member id. "
        "The last OWNER can do neither."
    )
    async def remove_member(
        self, info: Info, input: Annotated[RemoveMemberInput, INPUT]
    ) -> RemoveMemberPayload:
        async def work() -> dict[str, Any]:
            removed = await info.context.run(
                REMOVE_MEMBER, member_id=decode_id(input.member_id, "Member", field="memberId")
            )
            return {"removed_member_id": global_id("Member", removed)}

        return await as_payload(RemoveMemberPayload, work())

    @strawberry.mutation(description="Rename a workspace." + ADMIN_ONLY)
    async def rename_workspace(
        self, info: Info, input: Annotated[RenameWorkspaceInput, INPUT]
    ) -> RenameWorkspacePayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                RENAME_WORKSPACE,
                workspace_id=decode_id(input.workspace_id, "Workspace", field="workspaceId"),
                name=input.name,
            )
            return {"workspace": Workspace.of(view)}

        return await as_payload(RenameWorkspacePayload, work())

    @strawberry.mutation(
        description="Choose the chat model that writes the workspace's summaries, tags and "
        "answers, from the models the server offers (checked now: MODEL_NOT_OFFERED, "
        "MODEL_CANNOT_CHAT, or MODEL_UNAVAILABLE when the server does not answer); null goes back "
        "to the deployment's default. It applies from the next model request, also in runs "
        "already queued. Recorded in the activity as CHAT_MODEL_CHANGED." + ADMIN_ONLY
    )
    async def set_workspace_chat_model(
        self, info: Info, input: Annotated[SetWorkspaceChatModelInput, INPUT]
    ) -> SetWorkspaceChatModelPayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                SET_CHAT_MODEL,
                workspace_id=decode_id(input.workspace_id, "Workspace", field="workspaceId"),
                chat_model=input.chat_model,
            )
            return {"workspace": Workspace.of(view)}

        return await as_payload(SetWorkspaceChatModelPayload, work())

    @strawberry.mutation(
        description="Delete a workspace and everything in it: documents and their originals, "
        "collections, members, invites, runs (running ones are stopped), activity and "
        "conversations. OWNER only; the workspace's name typed again confirms it. Cannot be "
        "undone."
    )
    async def delete_workspace(
        self, info: Info, input: Annotated[DeleteWorkspaceInput, INPUT]
    ) -> DeleteWorkspacePayload:
        async def work() -> dict[str, Any]:
            deleted = await info.context.run(
                DELETE_WORKSPACE,
                workspace_id=decode_id(input.workspace_id, "Workspace", field="workspaceId"),
                name=input.name,
            )
            return {"deleted_workspace_id": global_id("Workspace", deleted)}

        return await as_payload(DeleteWorkspacePayload, work())
