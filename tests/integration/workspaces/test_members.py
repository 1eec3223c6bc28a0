"""Members: pagination, node refetch, and the last-OWNER rule under concurrency."""

import asyncio
from typing import Any

from sqlalchemy import select

from base.models import Membership, Role
from base.settings import Settings
from tests.support.graphql import GraphQLClient, first_workspace, sign_up, uuid_of
from tests.support.team import invite_and_accept


async def _join(
    client: GraphQLClient,
    settings: Settings,
    owner: dict[str, Any],
    workspace_id: str,
    email: str,
    role: str,
) -> dict[str, Any]:
    """Sign up as `email`, invited to the workspace with `role`, and accept; the session."""
    session = await sign_up(client, email.split("@")[0].title(), email)
    await invite_and_accept(
        client,
        settings,
        workspace_id,
        role,
        by=owner["accessToken"],
        email=email,
        invitee=session["accessToken"],
    )
    return session


async def test_members_page_through_with_cursors(client: GraphQLClient, settings: Settings):
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    for i in range(4):
        await _join(client, settings, owner, workspace["id"], f"m{i}@example.com", "VIEWER")

    seen, after = [], None
    while True:
        data = await client.op(
            "WorkspaceMembers",
            {"workspaceId": workspace["id"], "first": 2, "after": after},
            token=owner["accessToken"],
        )
        members = data["workspace"]["members"]
        assert members["totalCount"] == 5
        seen += [e["node"]["user"]["email"] for e in members["edges"]]
        if not members["pageInfo"]["hasNextPage"]:
            break
        after = members["pageInfo"]["endCursor"]
    assert seen == ["owner@example.com"] + [f"m{i}@example.com" for i in range(4)]


async def test_node_refetches_members_and_users_but_not_foreign_ones(client: GraphQLClient):
    owner = await sign_up(client, "Owner", "owner@example.com")
    outsider = await sign_up(client, "Outsider", "out@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    data = await client.op(
        "WorkspaceMembers", {"workspaceId": workspace["id"]}, token=owner["accessToken"]
    )
    member = data["workspace"]["members"]["edges"][0]["node"]

    mine = await client.op("Node", {"id": member["id"]}, token=owner["accessToken"])
    assert mine["node"] == {
        "id": member["id"],
        "__typename": "Member",
        "role": "OWNER",
        "user": {"name": "Owner"},
    }
    for foreign in (member["id"], workspace["id"], member["user"]["id"]):
        theirs = await client.op("Node", {"id": foreign}, token=outsider["accessToken"])
        assert theirs == {"node": None}
    own_user = await client.op(
        "Node", {"id": outsider["user"]["id"]}, token=outsider["accessToken"]
    )
    assert own_user["node"]["name"] == "Outsider"


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: GraphQLClient, db: Any, settings: Settings
):
    first = await sign_up(client, "First", "first@example.com")
    workspace = await first_workspace(client, first["accessToken"])
    second = await _join(client, settings, first, workspace["id"], "second@example.com", "OWNER")
    data = await client.op(
        "WorkspaceMembers", {"workspaceId": workspace["id"]}, token=first["accessToken"]
    )
    ids = {
        e["node"]["user"]["email"]: e["node"]["id"] for e in data["workspace"]["members"]["edges"]
    }

    async def demote(actor: dict, target: str) -> dict:
        result = await client.op(
            "ChangeMemberRole",
            {"input": {"memberId": ids[target], "role": "ADMIN"}},
            token=actor["accessToken"],
        )
        return result["changeMemberRole"]

    results = await asyncio.gather(
        demote(first, "second@example.com"), demote(second, "first@example.com")
    )
    codes = sorted(e["code"] for r in results for e in r["errors"])
    # Whichever ran second either hit LAST_OWNER or, having been demoted, lost the right to act.
    assert codes in (["LAST_OWNER"], ["FORBIDDEN"])
    workspace_uuid = uuid_of(workspace["id"])
    async with db() as s:
        roles = (
            (
                await s.execute(
                    select(Membership.role).where(Membership.workspace_id == workspace_uuid)
                )
            )
            .scalars()
            .all()
        )
    assert sorted(roles) == sorted([Role.OWNER, Role.ADMIN])
