"""Pending invites on the members screen: listed for ADMIN and OWNER, revoked so that their link
stops working; denied paths change nothing. On PostgreSQL and SQLite."""

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from base.db.types import utcnow
from base.models import Invite
from base.models.runs import WorkspaceEvent
from tests.support.databases import count_statements
from tests.support.graphql import GraphQLClient, operation, sign_up
from tests.support.seed import global_id
from tests.support.team import invite, set_up_team


async def _pending(client: GraphQLClient, workspace_id: str, token: str, **page: Any) -> dict:
    data = await client.op("PendingInvites", {"workspaceId": workspace_id, **page}, token=token)
    invites: dict = data["workspace"]["invites"]
    return invites


async def _revoke(client: GraphQLClient, invite_id: str, token: str) -> dict:
    data = await client.op("RevokeInvite", {"input": {"inviteId": invite_id}}, token=token)
    payload: dict = data["revokeInvite"]
    return payload


async def _invite_rows(db: Any) -> list[tuple[str, bool]]:
    """(email, accepted) of every invite row, by email."""
    async with db() as session:
        rows = await session.execute(
            select(Invite.email, Invite.accepted_at).order_by(Invite.email)
        )
        return [(email, accepted is not None) for email, accepted in rows]


async def _revoked_events(db: Any) -> list[str]:
    async with db() as session:
        rows = await session.execute(
            select(WorkspaceEvent.message)
            .where(WorkspaceEvent.type == "INVITE_REVOKED")
            .order_by(WorkspaceEvent.id)
        )
        return list(rows.scalars())


async def test_admins_list_and_revoke_pending_invites(any_db_client: GraphQLClient, any_db_app):
    client, db, settings = any_db_client, any_db_app.state.deps.db, any_db_app.state.deps.settings
    team = await set_up_team(client, settings, "admin", "editor", "outsider")
    workspace_id, owner, admin = team.workspace_id, team.owner.token, team.admin.token
    tokens = {
        "ann@example.com": await invite(
            client, settings, workspace_id, "ann@example.com", "EDITOR", by=owner
        ),
        "bob@example.com": await invite(
            client, settings, workspace_id, "bob@example.com", "VIEWER", by=owner
        ),
        "cy@example.com": await invite(
            client, settings, workspace_id, "cy@example.com", "ADMIN", by=admin
        ),
    }
    tokens["old@example.com"] = await invite(
        client, settings, workspace_id, "old@example.com", "VIEWER", by=owner
    )
    async with db.begin() as session:  # an invite past its time is not pending
        expired = (
            await session.execute(select(Invite).where(Invite.email == "old@example.com"))
        ).scalar_one()
        expired.expires_at = utcnow() - timedelta(seconds=1)
        expired_id = expired.id

    # Oldest first, without the accepted invites of the team nor the expired one; in pages.
    with count_statements(any_db_app.state.engine) as statements:
        first = await _pending(client, workspace_id, admin, first=2)
    # the workspace with the caller's role; the caller's roles; the page with its count
    assert len(statements) == 3, statements
    assert first["totalCount"] == 3
    assert [(e["node"]["email"], e["node"]["role"]) for e in first["edges"]] == [
        ("ann@example.com", "EDITOR"),
        ("bob@example.com", "VIEWER"),
    ]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await _pending(client, workspace_id, owner, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["email"] for e in rest["edges"]] == ["cy@example.com"]
    assert rest["pageInfo"]["hasNextPage"] is False
    ids = {e["node"]["email"]: e["node"]["id"] for e in first["edges"] + rest["edges"]}
    rows_before = await _invite_rows(db)
    assert rows_before == [
        ("admin@example.com", True),
        ("ann@example.com", False),
        ("bob@example.com", False),
        ("cy@example.com", False),
        ("editor@example.com", True),
        ("old@example.com", False),
    ]

    # An EDITOR may not see the addresses; an outsider does not see the workspace at all.
    denied = await client.execute(
        operation("PendingInvites"), {"workspaceId": workspace_id}, token=team.editor.token
    )
    assert denied["data"] == {"workspace": None}
    [error] = denied["errors"]
    assert (error["path"], error["extensions"]["code"]) == (["workspace", "invites"], "FORBIDDEN")
    assert error["message"] == "Only an ADMIN or OWNER sees the invites; you are EDITOR."
    hidden = await client.op(
        "PendingInvites", {"workspaceId": workspace_id}, token=team.outsider.token
    )
    assert hidden == {"workspace": None}

    # Denied revocations change nothing.
    refused = await _revoke(client, ids["bob@example.com"], team.editor.token)
    assert refused["invite"] is None
    assert [(e["code"], e["field"]) for e in refused["errors"]] == [("FORBIDDEN", None)]
    for token, invite_id in (
        (team.outsider.token, ids["bob@example.com"]),  # another workspace's invite
        (admin, team.admin.member_id),  # a Member id is not an Invite id
        (admin, "not-an-id"),
    ):
        missing = await _revoke(client, invite_id, token)
        assert [(e["code"], e["field"]) for e in missing["errors"]] == [("NOT_FOUND", "inviteId")]
    async with db() as session:
        accepted_id = (
            await session.execute(select(Invite.id).where(Invite.email == "admin@example.com"))
        ).scalar_one()
    used = await _revoke(client, global_id("Invite", accepted_id), owner)
    assert [(e["code"], e["field"]) for e in used["errors"]] == [("INVITE_USED", "inviteId")]
    assert await _invite_rows(db) == rows_before
    assert await _revoked_events(db) == []

    # An ADMIN revokes an OWNER's invite: the link no longer works, the list no longer has it.
    revoked = await _revoke(client, ids["bob@example.com"], admin)
    assert revoked == {
        "invite": {"id": ids["bob@example.com"], "email": "bob@example.com", "role": "VIEWER"},
        "errors": [],
    }
    assert await _accept(client, tokens["bob@example.com"], "Bob") == ["INVITE_INVALID"]
    after = await _pending(client, workspace_id, owner)
    assert [e["node"]["email"] for e in after["edges"]] == ["ann@example.com", "cy@example.com"]
    assert after["totalCount"] == 2
    again = await _revoke(client, ids["bob@example.com"], admin)
    assert [e["code"] for e in again["errors"]] == ["NOT_FOUND"]

    # An expired invite can be revoked too, to clear it; the others still work.
    cleared = await _revoke(client, global_id("Invite", expired_id), owner)
    assert cleared["errors"] == []
    assert cleared["invite"]["email"] == "old@example.com"
    assert await _accept(client, tokens["old@example.com"], "Old") == ["INVITE_INVALID"]
    assert [email for email, _accepted in await _invite_rows(db)] == [
        "admin@example.com",
        "ann@example.com",
        "cy@example.com",
        "editor@example.com",
    ]
    assert await _revoked_events(db) == [
        "revoked an invite to join as VIEWER",
        "revoked an invite to join as VIEWER",
    ]
    assert await _accept(client, tokens["ann@example.com"], "Ann") == ["EDITOR"]
    async with db() as session:
        total = (await session.execute(select(func.count()).select_from(Invite))).scalar_one()
    assert total == 4


async def _accept(client: GraphQLClient, token: str, name: str) -> list[str]:
    """SignUp as `name` (the invite's address), then AcceptInvite: its error codes, or on
    success the role it gave."""
    session = await sign_up(client, name, f"{name.lower()}@example.com")
    data = await client.op(
        "AcceptInvite", {"input": {"token": token}}, token=session["accessToken"]
    )
    codes = [e["code"] for e in data["acceptInvite"]["errors"]]
    joined = data["acceptInvite"]["workspace"]
    assert (joined is None) == bool(codes)
    return codes or [joined["viewerRole"]]


async def test_a_revoke_and_an_accept_at_once_cannot_both_succeed(
    any_db_client: GraphQLClient, any_db_app
):
    client, db, settings = any_db_client, any_db_app.state.deps.db, any_db_app.state.deps.settings
    team = await set_up_team(client, settings)
    workspace_id, owner = team.workspace_id, team.owner.token
    for round_ in range(3):
        name = f"Racer{round_}"
        email = f"{name.lower()}@example.com"
        token = await invite(client, settings, workspace_id, email, "EDITOR", by=owner)
        [pending] = (await _pending(client, workspace_id, owner))["edges"]
        racer = await sign_up(client, name, email)
        revoked, accepted = await asyncio.gather(
            _revoke(client, pending["node"]["id"], owner),
            client.op("AcceptInvite", {"input": {"token": token}}, token=racer["accessToken"]),
        )
        revoke_codes = [e["code"] for e in revoked["errors"]]
        accept_codes = [e["code"] for e in accepted["acceptInvite"]["errors"]]
        # Exactly one wins, and the loser says why.
        assert (revoke_codes, accept_codes) in ((["INVITE_USED"], []), ([], ["INVITE_INVALID"]))
        async with db() as session:
            rows = (
                await session.execute(select(Invite.accepted_at).where(Invite.email == email))
            ).all()
        assert len(rows) == (1 if accept_codes == [] else 0)


async def test_an_invite_is_a_node_for_admins_and_a_new_one_replaces_it(
    any_db_client: GraphQLClient, any_db_app
):
    client, settings = any_db_client, any_db_app.state.deps.settings
    team = await set_up_team(client, settings, "admin", "editor", "outsider")
    workspace_id, owner = team.workspace_id, team.owner.token
    first_link = await invite(client, settings, workspace_id, "dee@example.com", "VIEWER", by=owner)
    [first] = [e["node"] for e in (await _pending(client, workspace_id, owner))["edges"]]

    async def node(invite_id: str, token: str) -> dict | None:
        found: dict | None = (await client.op("Node", {"id": invite_id}, token=token))["node"]
        return found

    seen = {"id": first["id"], "__typename": "Invite", "email": "dee@example.com", "role": "VIEWER"}
    assert await node(first["id"], owner) == seen
    assert await node(first["id"], team.admin.token) == seen
    assert await node(first["id"], team.editor.token) is None
    assert await node(first["id"], team.outsider.token) is None

    # Inviting the address again (here with another role) is a resend: one pending invite, the
    # new link and role; the first link no longer works.
    second_link = await invite(
        client, settings, workspace_id, "dee@example.com", "EDITOR", by=team.admin.token
    )
    pending = await _pending(client, workspace_id, owner)
    assert pending["totalCount"] == 1
    [second] = [e["node"] for e in pending["edges"]]
    assert (second["email"], second["role"]) == ("dee@example.com", "EDITOR")
    assert second["id"] != first["id"]
    assert await node(first["id"], owner) is None
    session = await sign_up(client, "Dee", "dee@example.com")

    async def accept(link_token: str) -> list[str]:
        data = await client.op(
            "AcceptInvite", {"input": {"token": link_token}}, token=session["accessToken"]
        )
        return [e["code"] for e in data["acceptInvite"]["errors"]]

    assert await accept(first_link) == ["INVITE_INVALID"]
    assert await accept(second_link) == []
    # Accepted: no longer pending, still a node for the admins (who see it was used).
    assert (await _pending(client, workspace_id, owner))["totalCount"] == 0
    assert (await node(second["id"], owner) or {}).get("role") == "EDITOR"
