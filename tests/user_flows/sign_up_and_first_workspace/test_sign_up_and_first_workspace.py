"""User flow: sign up and first workspace (docs/user_flows/sign_up_and_first_workspace/README.md).

Each `# Step N` below is the step of the same number in that README.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from base.models import Membership, RefreshToken, Role, User, Workspace
from tests.support.graphql import GraphQLClient, operation

PASSWORD = "correct horse battery staple"


def utc(value: str) -> datetime:
    """An ISO 8601 timestamp of the API, checked to be in UTC."""
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


async def counts(db) -> dict[str, int]:
    async with db() as s:
        return {
            model.__tablename__: (
                await s.execute(select(func.count()).select_from(model))
            ).scalar_one()
            for model in (User, Workspace, Membership, RefreshToken)
        }


async def test_sign_up_and_first_workspace(client: GraphQLClient, db):
    # Step 1 — SignUp: a user, a personal workspace they own, and a signed-in session.
    before_sign_up = datetime.now(UTC)
    data = await client.op(
        "SignUp",
        {
            "input": {
                "name": "  Grace Brewster Hopper ",
                "email": "Grace.Hopper@Example.com",
                "password": PASSWORD,
            }
        },
    )
    assert data["signUp"]["errors"] == []
    session = data["signUp"]["session"]
    me = session["user"]
    assert me["name"] == "Grace Brewster Hopper"
    assert me["email"] == "grace.hopper@example.com"
    assert me["initials"] == "GH"
    assert session["accessToken"] and session["refreshToken"]
    assert session["accessToken"] != session["refreshToken"]
    access_expires = utc(session["accessTokenExpiresAt"])
    refresh_expires = utc(session["refreshTokenExpiresAt"])
    assert before_sign_up + timedelta(seconds=890) < access_expires
    assert access_expires <= datetime.now(UTC) + timedelta(seconds=900)
    assert refresh_expires > access_expires + timedelta(days=29)
    async with db() as s:
        user = (await s.execute(select(User))).scalar_one()
        workspace = (await s.execute(select(Workspace))).scalar_one()
        membership = (await s.execute(select(Membership))).scalar_one()
    assert user.email == "grace.hopper@example.com"
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert workspace.created_by_id == user.id
    assert (membership.workspace_id, membership.user_id, membership.role) == (
        workspace.id,
        user.id,
        Role.OWNER,
    )
    assert await counts(db) == {"users": 1, "workspaces": 1, "memberships": 1, "refresh_tokens": 1}
    token = session["accessToken"]

    # Step 2 — AppShell: the signed-in user and exactly one workspace, as OWNER.
    shell = await client.op("AppShell", token=token)
    assert shell["me"] == me
    assert shell["workspaces"]["totalCount"] == 1
    [edge] = shell["workspaces"]["edges"]
    assert shell["workspaces"]["pageInfo"] == {"hasNextPage": False, "endCursor": edge["cursor"]}
    assert edge["node"]["name"] == "Grace Brewster Hopper's workspace"
    assert edge["node"]["viewerRole"] == "OWNER"
    workspace_id = edge["node"]["id"]

    # Step 3 — WorkspaceMembers: exactly one member, the user themself, as OWNER.
    members = await client.op("WorkspaceMembers", {"workspaceId": workspace_id}, token=token)
    ws = members["workspace"]
    assert (ws["id"], ws["name"], ws["viewerRole"]) == (
        workspace_id,
        "Grace Brewster Hopper's workspace",
        "OWNER",
    )
    assert ws["members"]["totalCount"] == 1
    assert ws["members"]["pageInfo"]["hasNextPage"] is False
    [member_edge] = ws["members"]["edges"]
    member = member_edge["node"]
    assert member["role"] == "OWNER"
    assert member["user"] == me
    assert before_sign_up - timedelta(seconds=1) <= utc(member["joinedAt"]) <= datetime.now(UTC)

    # Step 4 — RenameWorkspace: the new name (trimmed) is saved and returned.
    renamed = await client.op(
        "RenameWorkspace",
        {"input": {"workspaceId": workspace_id, "name": "  Hopper Lab  "}},
        token=token,
    )
    assert renamed["renameWorkspace"]["errors"] == []
    assert renamed["renameWorkspace"]["workspace"]["id"] == workspace_id
    assert renamed["renameWorkspace"]["workspace"]["name"] == "Hopper Lab"
    updated_at = utc(renamed["renameWorkspace"]["workspace"]["updatedAt"])
    async with db() as s:
        stored = (await s.execute(select(Workspace))).scalar_one()
    assert stored.name == "Hopper Lab"
    assert stored.updated_at == updated_at
    assert stored.updated_at > stored.created_at

    # Step 5 — RenameWorkspace with a blank name: REQUIRED, and the name stays.
    blank = await client.op(
        "RenameWorkspace", {"input": {"workspaceId": workspace_id, "name": "   "}}, token=token
    )
    assert blank["renameWorkspace"] == {
        "workspace": None,
        "errors": [{"code": "REQUIRED", "message": "This cannot be empty.", "field": "name"}],
    }
    async with db() as s:
        assert (await s.execute(select(Workspace.name))).scalar_one() == "Hopper Lab"

    # Step 6 — Node: the workspace, the user and the membership refetched by their global ids.
    assert (await client.op("Node", {"id": workspace_id}, token=token))["node"] == {
        "id": workspace_id,
        "__typename": "Workspace",
        "name": "Hopper Lab",
        "viewerRole": "OWNER",
    }
    assert (await client.op("Node", {"id": me["id"]}, token=token))["node"] == {
        "id": me["id"],
        "__typename": "User",
        "name": "Grace Brewster Hopper",
        "initials": "GH",
    }
    assert (await client.op("Node", {"id": member["id"]}, token=token))["node"] == {
        "id": member["id"],
        "__typename": "Member",
        "role": "OWNER",
        "user": {"name": "Grace Brewster Hopper"},
    }
    shell = await client.op("AppShell", token=token)
    assert shell["workspaces"]["edges"][0]["node"]["name"] == "Hopper Lab"

    # Step 7 — SignUp again with the same email (other case): EMAIL_TAKEN, nothing created.
    again = await client.op(
        "SignUp",
        {"input": {"name": "Impostor", "email": "GRACE.HOPPER@example.com", "password": PASSWORD}},
    )
    assert again["signUp"] == {
        "session": None,
        "errors": [
            {
                "code": "EMAIL_TAKEN",
                "message": "An account with this email exists.",
                "field": "email",
            }
        ],
    }
    assert await counts(db) == {"users": 1, "workspaces": 1, "memberships": 1, "refresh_tokens": 1}


async def test_app_shell_without_a_token_is_unauthenticated(client: GraphQLClient, db):
    # Step 0 — AppShell before signing up or in: top-level UNAUTHENTICATED, no data.
    result = await client.execute(operation("AppShell"))
    assert result["data"] is None
    [error] = result["errors"]
    assert error["message"] == "Sign in to do this."
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["extensions"]["requestId"]
    assert await counts(db) == {"users": 0, "workspaces": 0, "memberships": 0, "refresh_tokens": 0}
