"""User flow: viewer denied admin actions (docs/user_flows/viewer_denied_admin_action/README.md).

Each `# Step N` below is the step of the same number in that README. Every denied step is
checked twice: the exact payload error, and the database unchanged (members, roles, invites and
the workspace row compared in full before and after).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from strawberry import relay

from base.models import Invite, Membership, RefreshToken, User, Workspace
from base.models.documents import Document
from base.models.runs import Run
from base.settings import Settings
from tests.support.app_fixtures import blob_files
from tests.support.corpus import VENV_HTML
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.team import Team, member_roles, set_up_team
from tests.support.uploads import corpus_file, upload

NEEDS_ADMIN = "This needs the ADMIN role or higher; you are {role}."
NEEDS_EDITOR = "This needs the EDITOR role or higher; you are {role}."
OWNER_ROLE_ONLY = "Only an OWNER can grant or take away the OWNER role."
LAST_OWNER = "A workspace needs an OWNER: make someone else OWNER first."


def error(code: str, message: str, field: str | None = None) -> list[dict[str, Any]]:
    return [{"code": code, "message": message, "field": field}]


async def snapshot(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that a member-management action could touch, in full."""
    async with db() as s:
        return {
            "memberships": sorted(
                tuple(r)
                for r in await s.execute(
                    select(
                        Membership.id,
                        Membership.workspace_id,
                        Membership.user_id,
                        Membership.role,
                        Membership.joined_at,
                    )
                )
            ),
            "invites": sorted(
                tuple(r)
                for r in await s.execute(
                    select(
                        Invite.id,
                        Invite.workspace_id,
                        Invite.email,
                        Invite.role,
                        Invite.token_hash,
                        Invite.expires_at,
                        Invite.accepted_at,
                        Invite.accepted_by_id,
                    )
                )
            ),
            "workspaces": sorted(
                tuple(r)
                for r in await s.execute(
                    select(Workspace.id, Workspace.name, Workspace.created_at, Workspace.updated_at)
                )
            ),
            "users": sorted(
                tuple(r) for r in await s.execute(select(User.id, User.email, User.name))
            ),
            "refresh_tokens": sorted(
                tuple(r) for r in await s.execute(select(RefreshToken.id, RefreshToken.revoked_at))
            ),
        }


async def roles(client: GraphQLClient, team: Team) -> list[tuple[str, str]]:
    return await member_roles(client, team.workspace_id, team.owner.token)


async def test_viewer_is_denied_every_admin_action(
    client: GraphQLClient, db: Any, settings: Settings
) -> None:
    # Step 1 — the team: Olivia (OWNER), Adam (ADMIN), Erin (EDITOR), Victor (VIEWER).
    team = await set_up_team(client, settings, "admin", "editor", "viewer")
    victor = team.viewer

    # Step 2 — WorkspaceMembers as Victor: a VIEWER may read the members.
    seen = await client.op(
        "WorkspaceMembers", {"workspaceId": team.workspace_id}, token=victor.token
    )
    assert seen["workspace"]["viewerRole"] == "VIEWER"
    assert seen["workspace"]["members"]["totalCount"] == 4
    before = await snapshot(db)
    forbidden = error("FORBIDDEN", NEEDS_ADMIN.format(role="VIEWER"))

    # Step 3 — InviteMember as Victor: FORBIDDEN, no invite, no link.
    invited = await client.op(
        "InviteMember",
        {
            "input": {
                "workspaceId": team.workspace_id,
                "email": "friend@example.com",
                "role": "VIEWER",
            }
        },
        token=victor.token,
    )
    assert invited["inviteMember"] == {"invite": None, "inviteLink": None, "errors": forbidden}
    assert await snapshot(db) == before

    # Step 4 — ChangeMemberRole as Victor: demote the owner, promote himself; both FORBIDDEN.
    for member_id, role in [(team.owner.member_id, "VIEWER"), (victor.member_id, "ADMIN")]:
        changed = await client.op(
            "ChangeMemberRole", {"input": {"memberId": member_id, "role": role}}, token=victor.token
        )
        assert changed["changeMemberRole"] == {"member": None, "errors": forbidden}, role
    assert await snapshot(db) == before

    # Step 5 — RemoveMember as Victor on Erin: FORBIDDEN, Erin stays.
    removed = await client.op(
        "RemoveMember", {"input": {"memberId": team.editor.member_id}}, token=victor.token
    )
    assert removed["removeMember"] == {"removedMemberId": None, "errors": forbidden}
    assert await snapshot(db) == before

    # Step 6 — RenameWorkspace as Victor: FORBIDDEN, the name stays.
    renamed = await client.op(
        "RenameWorkspace",
        {"input": {"workspaceId": team.workspace_id, "name": "Victor's now"}},
        token=victor.token,
    )
    assert renamed["renameWorkspace"] == {"workspace": None, "errors": forbidden}

    # Step 7 — the same as Erin (EDITOR): InviteMember is FORBIDDEN too.
    by_editor = await client.op(
        "InviteMember",
        {
            "input": {
                "workspaceId": team.workspace_id,
                "email": "friend@example.com",
                "role": "VIEWER",
            }
        },
        token=team.editor.token,
    )
    assert by_editor["inviteMember"]["errors"] == error(
        "FORBIDDEN", NEEDS_ADMIN.format(role="EDITOR")
    )

    # Step 8 — nothing changed: database rows and the members screen are as before.
    assert await snapshot(db) == before
    assert await roles(client, team) == [
        ("Olivia Owner", "OWNER"),
        ("Adam Admin", "ADMIN"),
        ("Erin Editor", "EDITOR"),
        ("Victor Viewer", "VIEWER"),
    ]
    shell = await client.op("AppShell", token=team.owner.token)
    assert shell["workspaces"]["edges"][0]["node"]["name"] == "Olivia Owner's workspace"


async def test_admin_cannot_touch_the_owner_and_the_last_owner_cannot_leave(
    client: GraphQLClient, db: Any, settings: Settings
) -> None:
    # Step 1 — the team.
    team = await set_up_team(client, settings, "admin", "editor", "viewer")
    adam, olivia = team.admin, team.owner
    before = await snapshot(db)

    # Step 9 — Adam (ADMIN) demotes Olivia, removes her, makes Erin OWNER, invites an OWNER.
    demoted = await client.op(
        "ChangeMemberRole",
        {"input": {"memberId": olivia.member_id, "role": "ADMIN"}},
        token=adam.token,
    )
    assert demoted["changeMemberRole"] == {
        "member": None,
        "errors": error("FORBIDDEN", OWNER_ROLE_ONLY, "role"),
    }
    removed = await client.op(
        "RemoveMember", {"input": {"memberId": olivia.member_id}}, token=adam.token
    )
    assert removed["removeMember"] == {
        "removedMemberId": None,
        "errors": error("FORBIDDEN", "Only an OWNER can remove an OWNER."),
    }
    promoted = await client.op(
        "ChangeMemberRole",
        {"input": {"memberId": team.editor.member_id, "role": "OWNER"}},
        token=adam.token,
    )
    assert promoted["changeMemberRole"] == {
        "member": None,
        "errors": error("FORBIDDEN", OWNER_ROLE_ONLY, "role"),
    }
    invited = await client.op(
        "InviteMember",
        {"input": {"workspaceId": team.workspace_id, "email": "boss@example.com", "role": "OWNER"}},
        token=adam.token,
    )
    assert invited["inviteMember"] == {
        "invite": None,
        "inviteLink": None,
        "errors": error("FORBIDDEN", "Only an OWNER can invite another OWNER.", "role"),
    }
    assert await snapshot(db) == before

    # Step 10 — Olivia, the last OWNER, demotes herself or leaves: LAST_OWNER both times.
    for role in ("ADMIN", "VIEWER"):
        self_demoted = await client.op(
            "ChangeMemberRole",
            {"input": {"memberId": olivia.member_id, "role": role}},
            token=olivia.token,
        )
        assert self_demoted["changeMemberRole"] == {
            "member": None,
            "errors": error("LAST_OWNER", LAST_OWNER),
        }
    left = await client.op(
        "RemoveMember", {"input": {"memberId": olivia.member_id}}, token=olivia.token
    )
    assert left["removeMember"] == {
        "removedMemberId": None,
        "errors": error("LAST_OWNER", LAST_OWNER),
    }
    assert await snapshot(db) == before

    # Step 11 — with a second OWNER the rule lets go: Olivia makes Adam OWNER, then leaves.
    made_owner = await client.op(
        "ChangeMemberRole",
        {"input": {"memberId": adam.member_id, "role": "OWNER"}},
        token=olivia.token,
    )
    assert made_owner["changeMemberRole"]["errors"] == []
    assert made_owner["changeMemberRole"]["member"]["role"] == "OWNER"
    left = await client.op(
        "RemoveMember", {"input": {"memberId": olivia.member_id}}, token=olivia.token
    )
    assert left["removeMember"] == {"removedMemberId": olivia.member_id, "errors": []}
    # Adam is now the last OWNER: he cannot leave either.
    adam_leaves = await client.op(
        "RemoveMember", {"input": {"memberId": adam.member_id}}, token=adam.token
    )
    assert adam_leaves["removeMember"]["errors"] == error("LAST_OWNER", LAST_OWNER)
    members = await client.op(
        "WorkspaceMembers", {"workspaceId": team.workspace_id}, token=adam.token
    )
    assert [
        (e["node"]["user"]["name"], e["node"]["role"])
        for e in members["workspace"]["members"]["edges"]
    ] == [
        ("Adam Admin", "OWNER"),
        ("Erin Editor", "EDITOR"),
        ("Victor Viewer", "VIEWER"),
    ]


async def test_an_outsiders_ids_behave_as_missing(
    client: GraphQLClient, db: Any, settings: Settings
) -> None:
    # Step 1 — the team, and Mallory, who signs up on her own and belongs to none of it.
    team = await set_up_team(client, settings, "admin", "editor", "viewer", "outsider")
    token = team.outsider.token
    before = await snapshot(db)

    async def attempts(workspace_id: str, member_id: str, user_id: str) -> dict[str, Any]:
        return {
            "workspaceMembers": await client.op(
                "WorkspaceMembers", {"workspaceId": workspace_id}, token=token
            ),
            "nodeWorkspace": await client.op("Node", {"id": workspace_id}, token=token),
            "nodeMember": await client.op("Node", {"id": member_id}, token=token),
            "nodeUser": await client.op("Node", {"id": user_id}, token=token),
            "inviteMember": await client.op(
                "InviteMember",
                {
                    "input": {
                        "workspaceId": workspace_id,
                        "email": "mallory@example.com",
                        "role": "OWNER",
                    }
                },
                token=token,
            ),
            "changeMemberRole": await client.op(
                "ChangeMemberRole",
                {"input": {"memberId": member_id, "role": "VIEWER"}},
                token=token,
            ),
            "removeMember": await client.op(
                "RemoveMember", {"input": {"memberId": member_id}}, token=token
            ),
            "renameWorkspace": await client.op(
                "RenameWorkspace",
                {"input": {"workspaceId": workspace_id, "name": "Mine"}},
                token=token,
            ),
        }

    # Step 12 — Mallory with the team's real ids: null for the queries, NOT_FOUND for mutations.
    foreign = await attempts(team.workspace_id, team.owner.member_id, team.owner.user_id)
    no_workspace = error("NOT_FOUND", "No such workspace.", "workspaceId")
    no_member = error("NOT_FOUND", "No such member.", "memberId")
    assert foreign == {
        "workspaceMembers": {"workspace": None},
        "nodeWorkspace": {"node": None},
        "nodeMember": {"node": None},
        "nodeUser": {"node": None},
        "inviteMember": {
            "inviteMember": {"invite": None, "inviteLink": None, "errors": no_workspace}
        },
        "changeMemberRole": {"changeMemberRole": {"member": None, "errors": no_member}},
        "removeMember": {"removeMember": {"removedMemberId": None, "errors": no_member}},
        "renameWorkspace": {"renameWorkspace": {"workspace": None, "errors": no_workspace}},
    }
    # Exactly what ids that exist nowhere give: nothing tells Mallory the team exists.
    missing = await attempts(
        str(relay.GlobalID("Workspace", str(uuid.uuid4()))),
        str(relay.GlobalID("Member", str(uuid.uuid4()))),
        str(relay.GlobalID("User", str(uuid.uuid4()))),
    )
    assert foreign == missing
    assert await snapshot(db) == before


async def test_any_member_may_leave(client: GraphQLClient, db: Any, settings: Settings) -> None:
    # Step 1 — the team.
    team = await set_up_team(client, settings, "admin", "editor", "viewer")
    victor = team.viewer

    # Step 13 — RemoveMember with his own member id: Victor (VIEWER) leaves the workspace.
    left = await client.op(
        "RemoveMember", {"input": {"memberId": victor.member_id}}, token=victor.token
    )
    assert left["removeMember"] == {"removedMemberId": victor.member_id, "errors": []}
    shell = await client.op("AppShell", token=victor.token)
    assert [e["node"]["name"] for e in shell["workspaces"]["edges"]] == [
        "Victor Viewer's workspace"
    ]
    assert await client.op(
        "WorkspaceMembers", {"workspaceId": team.workspace_id}, token=victor.token
    ) == {"workspace": None}
    assert await roles(client, team) == [
        ("Olivia Owner", "OWNER"),
        ("Adam Admin", "ADMIN"),
        ("Erin Editor", "EDITOR"),
    ]
    async with db() as s:
        victor_uuid = uuid_of(victor.user_id)
        rows = (
            (await s.execute(select(Membership).where(Membership.user_id == victor_uuid)))
            .scalars()
            .all()
        )
    assert [m.role.value for m in rows] == ["OWNER"]  # only his own personal workspace is left


async def test_a_viewer_cannot_upload(
    client: GraphQLClient, app: Any, db: Any, settings: Settings, blob_root: Any
) -> None:
    # Step 1 — the team, and a collection Olivia made.
    team = await set_up_team(client, settings, "viewer")
    victor = team.viewer
    created = await client.op(
        "CreateCollection",
        {"input": {"workspaceId": team.workspace_id, "name": "Handbook"}},
        token=team.owner.token,
    )
    collection = created["createCollection"]["collection"]["id"]

    # Step 14 — Victor drops a page and pastes a note: FORBIDDEN both times, nothing written.
    async def documents_and_runs() -> tuple[int, int]:
        async with db() as s:
            return (
                (await s.execute(select(func.count(Document.id)))).scalar_one(),
                (await s.execute(select(func.count(Run.id)))).scalar_one(),
            )

    before = await documents_and_runs(), blob_files(blob_root)
    forbidden = error("FORBIDDEN", NEEDS_EDITOR.format(role="VIEWER"))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        uploaded = await upload(http, collection, [corpus_file(VENV_HTML)], token=victor.token)
    assert uploaded == {"files": None, "errors": forbidden}
    pasted = await client.op(
        "CreateTextDocument",
        {"input": {"collectionId": collection, "title": "Note", "text": "A note."}},
        token=victor.token,
    )
    assert pasted["createTextDocument"] == {
        "document": None,
        "run": None,
        "duplicateOf": None,
        "errors": forbidden,
    }
    assert (await documents_and_runs(), blob_files(blob_root)) == before == ((0, 0), [])
