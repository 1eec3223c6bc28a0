"""User flow: invite a member and accept (docs/user_flows/invite_member_and_accept/README.md).

Each `# Step N` below is the step of the same number in that README.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from base.models import Invite, Membership, Role, User
from base.settings import Settings
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.team import invite_token


def utc(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


async def memberships(db) -> list[tuple[Any, ...]]:
    async with db() as s:
        rows = await s.execute(
            select(Membership.workspace_id, User.email, Membership.role)
            .join(User, User.id == Membership.user_id)
            .order_by(Membership.joined_at, Membership.id)
        )
        return [tuple(r) for r in rows]


async def invites(db) -> list[tuple[Any, ...]]:
    async with db() as s:
        rows = await s.execute(
            select(
                Invite.id, Invite.email, Invite.role, Invite.accepted_at, Invite.accepted_by_id
            ).order_by(Invite.created_at, Invite.id)
        )
        return [tuple(r) for r in rows]


def error(code: str, message: str, field: str | None = "token") -> list[dict[str, Any]]:
    return [{"code": code, "message": message, "field": field}]


async def test_invite_member_and_accept(client: GraphQLClient, db, settings: Settings):
    # Step 1 — SignUp (owner) and AppShell: Olivia owns her personal workspace.
    olivia = await sign_up(client, "Olivia Owner", "olivia@example.com")
    owner_token = olivia["accessToken"]
    workspace = await first_workspace(client, owner_token)
    workspace_id = workspace["id"]
    assert workspace["viewerRole"] == "OWNER"

    # Step 2 — InviteMember: an EDITOR invite by email; the link holds the token.
    before = datetime.now(UTC)
    invited = await client.op(
        "InviteMember",
        {
            "input": {
                "workspaceId": workspace_id,
                "email": " Eddie.Editor@Example.com ",
                "role": "EDITOR",
            }
        },
        token=owner_token,
    )
    payload = invited["inviteMember"]
    assert payload["errors"] == []
    invite = payload["invite"]
    assert invite["email"] == "eddie.editor@example.com"
    assert invite["role"] == "EDITOR"
    created_at, expires_at = utc(invite["createdAt"]), utc(invite["expiresAt"])
    assert before - timedelta(seconds=1) <= created_at <= datetime.now(UTC)
    # Valid for invite_ttl_seconds (7 days by default), to within the time of the request.
    ttl = timedelta(seconds=settings.invite_ttl_seconds)
    assert abs(expires_at - created_at - ttl) < timedelta(seconds=1)
    token = invite_token(payload["inviteLink"], settings.public_web_url)
    assert payload["inviteLink"] == f"{settings.public_web_url.rstrip('/')}/invite/{token}"
    assert len(token) >= 32
    async with db() as s:
        stored = (await s.execute(select(Invite))).scalar_one()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()  # only the hash is kept
    assert (stored.email, stored.role, stored.accepted_at) == (
        "eddie.editor@example.com",
        Role.EDITOR,
        None,
    )
    assert await memberships(db) == [(stored.workspace_id, "olivia@example.com", Role.OWNER)]
    ws_uuid = stored.workspace_id

    # Step 3 — SignUp (invitee) with the invited email; not a member of Olivia's workspace yet.
    eddie = await sign_up(client, "Eddie Editor", "eddie.editor@example.com")
    invitee_token = eddie["accessToken"]
    not_yet = await client.op(
        "WorkspaceMembers", {"workspaceId": workspace_id}, token=invitee_token
    )
    assert not_yet == {"workspace": None}

    # Step 4 — AcceptInvite with the token from the link: joins as EDITOR.
    accepted = await client.op("AcceptInvite", {"input": {"token": token}}, token=invitee_token)
    assert accepted["acceptInvite"] == {
        "workspace": {
            "id": workspace_id,
            "name": "Olivia Owner's workspace",
            "viewerRole": "EDITOR",
        },
        "errors": [],
    }

    # Step 5 — AppShell (invitee): their own workspace as OWNER, then Olivia's as EDITOR.
    shell = await client.op("AppShell", token=invitee_token)
    assert shell["me"]["email"] == "eddie.editor@example.com"
    assert shell["workspaces"]["totalCount"] == 2
    assert [(e["node"]["name"], e["node"]["viewerRole"]) for e in shell["workspaces"]["edges"]] == [
        ("Eddie Editor's workspace", "OWNER"),
        ("Olivia Owner's workspace", "EDITOR"),
    ]

    # Step 6 — WorkspaceMembers (owner): two members with the right roles, oldest first.
    members = await client.op("WorkspaceMembers", {"workspaceId": workspace_id}, token=owner_token)
    connection = members["workspace"]["members"]
    assert connection["totalCount"] == 2
    assert [
        (e["node"]["user"]["email"], e["node"]["user"]["name"], e["node"]["role"])
        for e in connection["edges"]
    ] == [
        ("olivia@example.com", "Olivia Owner", "OWNER"),
        ("eddie.editor@example.com", "Eddie Editor", "EDITOR"),
    ]
    async with db() as s:
        stored = (await s.execute(select(Invite))).scalar_one()
        eddie_id = (
            await s.execute(select(User.id).where(User.email == "eddie.editor@example.com"))
        ).scalar_one()
    assert stored.accepted_at is not None and stored.accepted_by_id == eddie_id
    joined = await memberships(db)

    # Step 7 — AcceptInvite with the same token again: INVITE_USED, nothing changes.
    again = await client.op("AcceptInvite", {"input": {"token": token}}, token=invitee_token)
    assert again["acceptInvite"] == {
        "workspace": None,
        "errors": error("INVITE_USED", "This invite has already been used."),
    }
    assert await memberships(db) == joined

    # Step 8 — InviteMember for Eddie again: ALREADY_MEMBER, no invite made.
    invites_before = await invites(db)
    dup = await client.op(
        "InviteMember",
        {
            "input": {
                "workspaceId": workspace_id,
                "email": "EDDIE.editor@example.com",
                "role": "VIEWER",
            }
        },
        token=owner_token,
    )
    assert dup["inviteMember"] == {
        "invite": None,
        "inviteLink": None,
        "errors": error("ALREADY_MEMBER", "This person is already a member.", "email"),
    }
    assert await invites(db) == invites_before

    # Step 9 — InviteMember for Dana; Carol (other email) uses Dana's link: INVITE_EMAIL_MISMATCH.
    for_dana = await client.op(
        "InviteMember",
        {"input": {"workspaceId": workspace_id, "email": "dana@example.com", "role": "VIEWER"}},
        token=owner_token,
    )
    assert for_dana["inviteMember"]["errors"] == []
    dana_token = invite_token(for_dana["inviteMember"]["inviteLink"], settings.public_web_url)
    carol = await sign_up(client, "Carol Crasher", "carol@example.com")
    carol_token = carol["accessToken"]
    invites_before = await invites(db)
    mismatch = await client.op("AcceptInvite", {"input": {"token": dana_token}}, token=carol_token)
    assert mismatch["acceptInvite"] == {
        "workspace": None,
        "errors": error("INVITE_EMAIL_MISMATCH", "This invite was sent to another email address."),
    }
    # Carol was not added, and Dana's invite is still open for Dana.
    assert (
        await client.op("WorkspaceMembers", {"workspaceId": workspace_id}, token=carol_token)
    ) == {"workspace": None}
    carol_shell = await client.op("AppShell", token=carol_token)
    assert [e["node"]["name"] for e in carol_shell["workspaces"]["edges"]] == [
        "Carol Crasher's workspace"
    ]
    assert (ws_uuid, "carol@example.com", Role.VIEWER) not in await memberships(db)
    assert [m for m in await memberships(db) if m[0] == ws_uuid] == [
        m for m in joined if m[0] == ws_uuid
    ]
    assert await invites(db) == invites_before

    # Step 10 — Carol tries Eddie's spent token and a made-up one: INVITE_USED, INVITE_INVALID.
    used = await client.op("AcceptInvite", {"input": {"token": token}}, token=carol_token)
    assert used["acceptInvite"]["errors"] == error(
        "INVITE_USED", "This invite has already been used."
    )
    made_up = await client.op(
        "AcceptInvite", {"input": {"token": "not-a-real-invite-token"}}, token=carol_token
    )
    assert made_up["acceptInvite"] == {
        "workspace": None,
        "errors": error("INVITE_INVALID", "This invite link is not valid."),
    }
    assert [m for m in await memberships(db) if m[0] == ws_uuid] == [
        m for m in joined if m[0] == ws_uuid
    ]

    # Step 11 — Dana's invite expires before she uses it: INVITE_EXPIRED, she is not added.
    async with db.begin() as s:
        await s.execute(
            update(Invite)
            .where(Invite.email == "dana@example.com")
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    dana = await sign_up(client, "Dana Late", "dana@example.com")
    expired = await client.op(
        "AcceptInvite", {"input": {"token": dana_token}}, token=dana["accessToken"]
    )
    assert expired["acceptInvite"] == {
        "workspace": None,
        "errors": error("INVITE_EXPIRED", "This invite has expired; ask for a new one."),
    }
    assert [m for m in await memberships(db) if m[0] == ws_uuid] == [
        m for m in joined if m[0] == ws_uuid
    ]


async def test_accept_invite_needs_a_signed_in_user(client: GraphQLClient, db, settings: Settings):
    # Step 1 — SignUp (owner); Step 2 — InviteMember.
    olivia = await sign_up(client, "Olivia Owner", "olivia@example.com")
    workspace = await first_workspace(client, olivia["accessToken"])
    invited = await client.op(
        "InviteMember",
        {"input": {"workspaceId": workspace["id"], "email": "new@example.com", "role": "EDITOR"}},
        token=olivia["accessToken"],
    )
    token = invite_token(invited["inviteMember"]["inviteLink"], settings.public_web_url)

    # Step 4 (without Step 3) — AcceptInvite with no session: UNAUTHENTICATED, invite stays open.
    anonymous = await client.op("AcceptInvite", {"input": {"token": token}})
    assert anonymous["acceptInvite"] == {
        "workspace": None,
        "errors": [{"code": "UNAUTHENTICATED", "message": "Sign in to do this.", "field": None}],
    }
    [(_id, email, role, accepted_at, accepted_by)] = await invites(db)
    assert (email, role, accepted_at, accepted_by) == ("new@example.com", Role.EDITOR, None, None)
    assert len(await memberships(db)) == 1


async def test_a_mistaken_invite_is_revoked_and_a_resend_replaces_the_link(
    client: GraphQLClient, db, settings: Settings
):
    # Step 1 — SignUp (owner).
    olivia = await sign_up(client, "Olivia Owner", "olivia@example.com")
    owner_token = olivia["accessToken"]
    workspace_id = (await first_workspace(client, owner_token))["id"]

    async def invite(email: str, role: str) -> str:
        invited = await client.op(
            "InviteMember",
            {"input": {"workspaceId": workspace_id, "email": email, "role": role}},
            token=owner_token,
        )
        assert invited["inviteMember"]["errors"] == []
        return invite_token(invited["inviteMember"]["inviteLink"], settings.public_web_url)

    async def pending() -> list[tuple[str, str]]:
        data = await client.op("PendingInvites", {"workspaceId": workspace_id}, token=owner_token)
        return [
            (e["node"]["email"], e["node"]["role"]) for e in data["workspace"]["invites"]["edges"]
        ]

    # Step 12 — InviteMember to a mistyped address, then PendingInvites: it is listed.
    typo_link = await invite("frnak@example.com", "ADMIN")
    assert await pending() == [("frnak@example.com", "ADMIN")]
    data = await client.op("PendingInvites", {"workspaceId": workspace_id}, token=owner_token)
    typo_id = data["workspace"]["invites"]["edges"][0]["node"]["id"]

    # Step 13 — RevokeInvite: the payload names it; the list is empty; its link no longer works.
    revoked = await client.op("RevokeInvite", {"input": {"inviteId": typo_id}}, token=owner_token)
    assert revoked["revokeInvite"] == {
        "invite": {"id": typo_id, "email": "frnak@example.com", "role": "ADMIN"},
        "errors": [],
    }
    assert await pending() == []
    assert await invites(db) == []
    frnak = await sign_up(client, "Whoever Got It", "frnak@example.com")
    refused = await client.op(
        "AcceptInvite", {"input": {"token": typo_link}}, token=frnak["accessToken"]
    )
    assert refused["acceptInvite"] == {
        "workspace": None,
        "errors": error("INVITE_INVALID", "This invite link is not valid."),
    }

    # Step 14 — InviteMember to the right address, then again with another role: one pending
    # invite, the newer one.
    first_link = await invite("frank@example.com", "VIEWER")
    second_link = await invite("frank@example.com", "EDITOR")
    assert await pending() == [("frank@example.com", "EDITOR")]

    # Step 15 — Frank signs up; the first link is dead, the second joins him as EDITOR.
    frank = await sign_up(client, "Frank", "frank@example.com")
    dead = await client.op(
        "AcceptInvite", {"input": {"token": first_link}}, token=frank["accessToken"]
    )
    assert dead["acceptInvite"]["errors"] == error(
        "INVITE_INVALID", "This invite link is not valid."
    )
    joined = await client.op(
        "AcceptInvite", {"input": {"token": second_link}}, token=frank["accessToken"]
    )
    assert joined["acceptInvite"]["errors"] == []
    assert joined["acceptInvite"]["workspace"]["viewerRole"] == "EDITOR"
    assert await pending() == []
    assert [(email, role) for _w, email, role in await memberships(db)][-1] == (
        "frank@example.com",
        Role.EDITOR,
    )
