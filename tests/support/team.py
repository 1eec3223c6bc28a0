"""The people of the tests and their team, made through the frontend's own operations.

Every test that needs members uses the same personas: Olivia (OWNER), Adam (ADMIN), Erin
(EDITOR), Victor (VIEWER), and Mallory, an outsider who belongs to none of it.
`set_up_team(client, settings, "admin", "viewer", "outsider")` signs them up, invites each member
and has them accept (InviteMember, AcceptInvite), then checks the members screen
(WorkspaceMembers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from base.settings import Settings
from tests.support.graphql import GraphQLClient, first_workspace, sign_up

# key -> (name, role in the team's workspace); the email is `<key>@example.com`.
PERSONAS: dict[str, tuple[str, str | None]] = {
    "owner": ("Olivia Owner", "OWNER"),
    "admin": ("Adam Admin", "ADMIN"),
    "editor": ("Erin Editor", "EDITOR"),
    "viewer": ("Victor Viewer", "VIEWER"),
    "outsider": ("Mallory Outsider", None),
}


@dataclass
class Person:
    name: str
    email: str
    token: str  # access token
    user_id: str  # global id
    member_id: str | None = None  # global id of their membership in the team's workspace


@dataclass
class Team:
    workspace_id: str
    people: dict[str, Person]

    @property
    def owner(self) -> Person:
        return self.people["owner"]

    @property
    def admin(self) -> Person:
        return self.people["admin"]

    @property
    def editor(self) -> Person:
        return self.people["editor"]

    @property
    def viewer(self) -> Person:
        return self.people["viewer"]

    @property
    def outsider(self) -> Person:
        return self.people["outsider"]


async def sign_up_persona(client: GraphQLClient, key: str) -> Person:
    """SignUp as the persona `key` of PERSONAS."""
    name, _role = PERSONAS[key]
    email = f"{key}@example.com"
    session = await sign_up(client, name, email)
    return Person(name, email, session["accessToken"], session["user"]["id"])


def invite_token(link: str, public_web_url: str) -> str:
    """The token of an invite link, after checking the link is {public_web_url}/invite/<token>."""
    base = re.escape(public_web_url.rstrip("/"))
    match = re.fullmatch(base + r"/invite/([\w-]+)", link)
    assert match, f"not an invite link of {public_web_url}: {link}"
    return match.group(1)


async def invite(
    client: GraphQLClient,
    settings: Settings,
    workspace_id: str,
    email: str,
    role: str,
    *,
    by: str,
) -> str:
    """InviteMember as the holder of access token `by`; the token of the invite link."""
    invited = await client.op(
        "InviteMember",
        {"input": {"workspaceId": workspace_id, "email": email, "role": role}},
        token=by,
    )
    assert invited["inviteMember"]["errors"] == [], invited
    return invite_token(invited["inviteMember"]["inviteLink"], settings.public_web_url)


async def invite_and_accept(
    client: GraphQLClient,
    settings: Settings,
    workspace_id: str,
    role: str,
    *,
    by: str,
    email: str,
    invitee: str,
) -> dict[str, Any]:
    """InviteMember `email` as `role` (access token `by`), then AcceptInvite with the link's token
    as the invitee (access token `invitee`); the workspace AcceptInvite returns."""
    token = await invite(client, settings, workspace_id, email, role, by=by)
    accepted = await client.op("AcceptInvite", {"input": {"token": token}}, token=invitee)
    assert accepted["acceptInvite"]["errors"] == [], accepted
    workspace: dict[str, Any] = accepted["acceptInvite"]["workspace"]
    assert (workspace["id"], workspace["viewerRole"]) == (workspace_id, role), accepted
    return workspace


async def member_roles(
    client: GraphQLClient, workspace_id: str, token: str
) -> list[tuple[str, str]]:
    """(name, role) of each member on the members screen (WorkspaceMembers), in its order."""
    data = await client.op("WorkspaceMembers", {"workspaceId": workspace_id}, token=token)
    return [
        (e["node"]["user"]["name"], e["node"]["role"])
        for e in data["workspace"]["members"]["edges"]
    ]


async def set_up_team(client: GraphQLClient, settings: Settings, *keys: str) -> Team:
    """SignUp × (1 + len(keys)), InviteMember and AcceptInvite per member, WorkspaceMembers.

    Olivia owns the workspace (her first one); each persona of `keys` with a role joins it with
    that role, in the order given; an outsider only signs up. Every member's `member_id` is set.
    """
    assert "owner" not in keys and len(set(keys)) == len(keys), keys
    people = {"owner": await sign_up_persona(client, "owner")}
    for key in keys:
        people[key] = await sign_up_persona(client, key)
    owner = people["owner"]
    workspace_id = (await first_workspace(client, owner.token))["id"]
    for key in keys:
        role = PERSONAS[key][1]
        if role is not None:
            await invite_and_accept(
                client,
                settings,
                workspace_id,
                role,
                by=owner.token,
                email=people[key].email,
                invitee=people[key].token,
            )
    data = await client.op("WorkspaceMembers", {"workspaceId": workspace_id}, token=owner.token)
    edges = [e["node"] for e in data["workspace"]["members"]["edges"]]
    members = ["owner", *(k for k in keys if PERSONAS[k][1] is not None)]
    assert [(m["user"]["name"], m["role"]) for m in edges] == [
        (people[k].name, PERSONAS[k][1]) for k in members
    ]
    by_user = {m["user"]["id"]: m["id"] for m in edges}
    for key in members:
        people[key].member_id = by_user[people[key].user_id]
    return Team(workspace_id, people)
