"""Conversations (screen 9) on PostgreSQL and SQLite: create, list, rename, delete; whose they
are; bad input; another member's or another workspace's conversation behaves as a missing one."""

from typing import Any

from sqlalchemy import func, select

from base.models.accounts import Membership, Role
from base.models.chat import Conversation, Message
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.seed import global_id, uuid_of


async def _people(client: GraphQLClient, app: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An owner's workspace with a VIEWER, and an outsider with a workspace of their own."""
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    viewer = await sign_up(client, "Viewer", "viewer@example.com")
    async with app.state.deps.db.begin() as session:
        session.add(
            Membership(
                workspace_id=uuid_of(workspace["id"]),
                user_id=uuid_of(viewer["user"]["id"]),
                role=Role.VIEWER,
            )
        )
    outsider = await sign_up(client, "Outsider", "outsider@example.com")
    return workspace, {"owner": owner, "viewer": viewer, "outsider": outsider}


async def _rows(db: Any) -> tuple[int, int]:
    async with db() as session:
        conversations = await session.scalar(select(func.count()).select_from(Conversation))
        messages = await session.scalar(select(func.count()).select_from(Message))
    return conversations or 0, messages or 0


def _errors(code: str, message: str, field: str | None) -> list[dict[str, Any]]:
    return [{"code": code, "message": message, "field": field}]


async def _create(client: GraphQLClient, token: str, workspace_id: str, title: Any = None) -> Any:
    variables: dict[str, Any] = {"workspaceId": workspace_id}
    if title is not None:
        variables["title"] = title
    data = await client.op("CreateConversation", {"input": variables}, token=token)
    return data["createConversation"]


async def _list(client: GraphQLClient, token: str, workspace_id: str, **page: Any) -> Any:
    data = await client.op("Conversations", {"workspaceId": workspace_id, **page}, token=token)
    return data["workspace"]


async def test_a_viewer_creates_lists_renames_and_deletes_conversations(
    any_db_client: GraphQLClient, any_db_app: Any
):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _people(client, any_db_app)
    viewer = people["viewer"]["accessToken"]

    first = await _create(client, viewer, workspace["id"])
    assert first["errors"] == []
    assert (first["conversation"]["title"], first["conversation"]["messageCount"]) == (
        "New conversation",
        0,
    )
    second = await _create(client, viewer, workspace["id"], "  ${jndi:ldap://x} plans ")
    assert second["conversation"]["title"] == "${jndi:ldap://x} plans"

    listed = await _list(client, viewer, workspace["id"])
    # Last message first; empty ones by creation.
    assert [e["node"]["id"] for e in listed["conversations"]["edges"]] == [
        second["conversation"]["id"],
        first["conversation"]["id"],
    ]
    assert listed["conversations"]["totalCount"] == 2
    paged = await _list(client, viewer, workspace["id"], first=1)
    assert paged["conversations"]["pageInfo"]["hasNextPage"] is True
    rest = await _list(
        client,
        viewer,
        workspace["id"],
        first=1,
        after=paged["conversations"]["pageInfo"]["endCursor"],
    )
    assert [e["node"]["id"] for e in rest["conversations"]["edges"]] == [
        first["conversation"]["id"]
    ]

    renamed = await client.op(
        "RenameConversation",
        {"input": {"id": first["conversation"]["id"], "title": "Virtual environments"}},
        token=viewer,
    )
    assert renamed["renameConversation"]["errors"] == []
    assert renamed["renameConversation"]["conversation"]["title"] == "Virtual environments"

    deleted = await client.op(
        "DeleteConversation", {"input": {"id": second["conversation"]["id"]}}, token=viewer
    )
    assert deleted["deleteConversation"] == {
        "deletedConversationId": second["conversation"]["id"],
        "errors": [],
    }
    assert await _rows(db) == (1, 0)
    shown = await client.op("Conversation", {"id": first["conversation"]["id"]}, token=viewer)
    assert shown["conversation"]["title"] == "Virtual environments"
    assert shown["conversation"]["messages"] == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [],
    }


async def test_titles_must_be_one_to_two_hundred_plain_characters(
    any_db_client: GraphQLClient, any_db_app: Any
):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _people(client, any_db_app)
    owner = people["owner"]["accessToken"]
    assert (await _create(client, owner, workspace["id"], "   "))["errors"] == _errors(
        "REQUIRED", "This cannot be empty.", "title"
    )
    assert (await _create(client, owner, workspace["id"], "x" * 201))["errors"] == _errors(
        "TOO_LONG", "Use at most 200 characters.", "title"
    )
    assert (await _create(client, owner, workspace["id"], "a\x00b"))["errors"] == _errors(
        "INVALID", "This contains control characters.", "title"
    )
    assert await _rows(db) == (0, 0)


async def test_another_members_or_workspaces_conversation_is_missing(
    any_db_client: GraphQLClient, any_db_app: Any
):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _people(client, any_db_app)
    owner, viewer, outsider = (people[k]["accessToken"] for k in ("owner", "viewer", "outsider"))
    mine = (await _create(client, viewer, workspace["id"], "Mine"))["conversation"]
    missing = global_id("Conversation", uuid_of(workspace["id"]))  # well formed, no such row

    # The outsider cannot start one in the workspace: the workspace is missing to them.
    assert (await _create(client, outsider, workspace["id"]))["errors"] == _errors(
        "NOT_FOUND", "No such workspace.", "workspaceId"
    )
    for token in (owner, outsider):  # the owner of the workspace does not see a member's either
        assert (await client.op("Conversation", {"id": mine["id"]}, token=token)) == {
            "conversation": None
        }
        assert (await client.op("Node", {"id": mine["id"]}, token=token)) == {"node": None}
        for name, variables in (
            ("RenameConversation", {"id": mine["id"], "title": "Theirs"}),
            ("DeleteConversation", {"id": mine["id"]}),
            ("AskQuestion", {"conversationId": mine["id"], "question": "What is venv?"}),
        ):
            refused = await client.op(name, {"input": variables}, token=token)
            [payload] = refused.values()
            field = "conversationId" if name == "AskQuestion" else "id"
            assert payload["errors"] == _errors("NOT_FOUND", "No such conversation.", field), name
        # ... exactly as a conversation that does not exist at all.
        refused = await client.op(
            "AskQuestion",
            {"input": {"conversationId": missing, "question": "What is venv?"}},
            token=token,
        )
        assert refused["askQuestion"]["errors"] == _errors(
            "NOT_FOUND", "No such conversation.", "conversationId"
        )
    owner_list = await _list(client, owner, workspace["id"])
    assert owner_list["conversations"]["totalCount"] == 0
    outsider_view = await client.op(
        "Conversations", {"workspaceId": workspace["id"]}, token=outsider
    )
    assert outsider_view == {"workspace": None}
    assert await _rows(db) == (1, 0)
    shown = await client.op("Conversation", {"id": mine["id"]}, token=viewer)
    assert shown["conversation"]["title"] == "Mine"


async def test_a_member_who_leaves_no_longer_sees_their_conversations(
    any_db_client: GraphQLClient, any_db_app: Any
):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _people(client, any_db_app)
    viewer = people["viewer"]["accessToken"]
    mine = (await _create(client, viewer, workspace["id"], "Mine"))["conversation"]
    async with db.begin() as session:
        membership = await session.scalar(
            select(Membership).where(
                Membership.user_id == uuid_of(people["viewer"]["user"]["id"]),
                Membership.workspace_id == uuid_of(workspace["id"]),
            )
        )
        await session.delete(membership)
    assert await client.op("Conversation", {"id": mine["id"]}, token=viewer) == {
        "conversation": None
    }
