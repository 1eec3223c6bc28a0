"""The activity feed names who changed which member, collection or document (Dashboard's
`activity`, and live on `workspaceEvents`), on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from base.models import WorkspaceEvent
from base.settings import Settings
from tests.support.app_fixtures import Subscribe, until_listening
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.seed import add_documents, global_id
from tests.support.team import Team, set_up_team

FEED = (
    "subscription($w: ID!) { workspaceEvents(workspaceId: $w) "
    "{ cursor type message actorName actor { name } subject { type id label } } }"
)


def entry(event: dict[str, Any]) -> tuple[Any, ...]:
    """(type, who then, message, subject) of an event."""
    subject = event["subject"]
    return (
        event["type"],
        event["actorName"],
        event["message"],
        (subject["type"], subject["id"], subject["label"]) if subject else None,
    )


def current_actors(events: list[dict[str, Any]]) -> list[str | None]:
    return [e["actor"]["name"] if e["actor"] else None for e in events]


async def ok(client: GraphQLClient, operation: str, token: str, **input: Any) -> dict[str, Any]:
    data = await client.op(operation, {"input": input}, token=token)
    payload = next(iter(data.values()))
    assert payload["errors"] == [], payload["errors"]
    return payload


async def feed_rows(app: FastAPI) -> int:
    async with app.state.deps.db() as session:
        return (
            await session.execute(select(func.count()).select_from(WorkspaceEvent))
        ).scalar_one()


async def test_each_shared_change_is_in_the_feed_with_who_and_what(
    any_db_client: GraphQLClient,
    any_db_app: FastAPI,
    any_db_settings: Settings,
    subscribe: Subscribe,
) -> None:
    client = any_db_client
    team: Team = await set_up_team(client, any_db_settings, "admin", "editor", "viewer")
    owner, admin, editor, viewer = team.owner, team.admin, team.editor, team.viewer
    workspace = team.workspace_id

    stream = await subscribe(FEED, {"w": workspace}, owner.user_id, on=any_db_app)
    live: list[dict[str, Any]] = []

    async def follow() -> None:
        async for result in stream:
            assert result.errors is None, result.errors
            live.append(result.data["workspaceEvents"])
            if live[-1]["type"] == "MEMBER_REMOVED":
                return

    listening = any_db_app.state.deps.bus.subscriber_count
    follower = asyncio.create_task(follow())
    await until_listening(any_db_app, listening)

    guides = (
        await ok(client, "CreateCollection", editor.token, workspaceId=workspace, name="Guides")
    )["collection"]["id"]
    drafts = (
        await ok(client, "CreateCollection", editor.token, workspaceId=workspace, name="Drafts")
    )["collection"]["id"]
    await ok(
        client, "UpdateCollection", editor.token, id=guides, name="Tutorials", description="Steps"
    )
    # Unchanged values change nothing and are not news.
    await ok(client, "UpdateCollection", editor.token, id=drafts, name="Drafts")
    docs = [
        global_id("Document", d)
        for d in await add_documents(
            any_db_app.state.deps.db,
            uuid_of(workspace),
            [uuid_of(drafts)],
            [uuid_of(editor.user_id)],
            4,
        )
    ]
    await ok(
        client, "UpdateDocument", editor.token, id=docs[0], title="venv", summary="Virtual envs."
    )
    await ok(client, "UpdateDocument", editor.token, id=docs[0], title="venv")
    await ok(client, "MoveDocuments", editor.token, ids=docs[:3], collectionId=guides)
    await ok(client, "MoveDocuments", editor.token, ids=docs[:1], collectionId=guides)
    await ok(client, "DeleteDocuments", editor.token, ids=[docs[2], docs[3], docs[1]])
    await ok(client, "DeleteDocuments", editor.token, ids=[docs[0]])
    await ok(client, "DeleteCollection", editor.token, id=drafts)
    await ok(client, "RenameWorkspace", owner.token, workspaceId=workspace, name="Docs team")
    await ok(client, "ChangeMemberRole", admin.token, memberId=viewer.member_id, role="EDITOR")
    await ok(client, "RemoveMember", viewer.token, memberId=viewer.member_id)
    await ok(client, "RemoveMember", admin.token, memberId=editor.member_id)
    await asyncio.wait_for(follower, 30)

    user = lambda p: ("USER", p.user_id, p.name)  # noqa: E731
    expected = [
        ("MEMBER_INVITED", owner.name, "invited a new member as ADMIN", None),
        ("MEMBER_JOINED", admin.name, "joined as ADMIN", user(admin)),
        ("MEMBER_INVITED", owner.name, "invited a new member as EDITOR", None),
        ("MEMBER_JOINED", editor.name, "joined as EDITOR", user(editor)),
        ("MEMBER_INVITED", owner.name, "invited a new member as VIEWER", None),
        ("MEMBER_JOINED", viewer.name, "joined as VIEWER", user(viewer)),
        # What happened while the owner followed live:
        ("COLLECTION_CREATED", editor.name, "created collection Guides",
         ("COLLECTION", guides, "Guides")),
        ("COLLECTION_CREATED", editor.name, "created collection Drafts",
         ("COLLECTION", drafts, "Drafts")),
        ("COLLECTION_UPDATED", editor.name,
         "renamed collection Guides to Tutorials; edited the description of collection Tutorials",
         ("COLLECTION", guides, "Tutorials")),
        ("DOCUMENT_UPDATED", editor.name, "edited the title and summary of venv",
         ("DOCUMENT", docs[0], "venv")),
        ("DOCUMENTS_MOVED", editor.name, "moved 3 documents to Tutorials",
         ("COLLECTION", guides, "Tutorials")),
        ("DOCUMENTS_DELETED", editor.name,
         "deleted 3 documents: doc 002, doc 003, doc 001", None),
        ("DOCUMENTS_DELETED", editor.name, "deleted venv", ("DOCUMENT", docs[0], "venv")),
        ("COLLECTION_DELETED", editor.name, "deleted collection Drafts",
         ("COLLECTION", drafts, "Drafts")),
        ("WORKSPACE_RENAMED", owner.name,
         "renamed the workspace from Olivia Owner's workspace to Docs team",
         ("WORKSPACE", workspace, "Docs team")),
        ("MEMBER_ROLE_CHANGED", admin.name,
         "changed the role of Victor Viewer from VIEWER to EDITOR", user(viewer)),
        ("MEMBER_LEFT", viewer.name, "left the workspace", user(viewer)),
        ("MEMBER_REMOVED", admin.name, "removed Erin Editor", user(editor)),
    ]  # fmt: skip
    assert [entry(e) for e in live] == expected[6:]
    cursors = [int(e["cursor"]) for e in live]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)

    # Each live event's `actor` is read when it is sent: Victor had left (he shares no workspace
    # with the owner any more) when his MEMBER_LEFT went out; `actorName` still names him.
    assert current_actors(live) == [e[1] for e in expected[6:-2]] + [None, admin.name]

    dashboard = await client.op("Dashboard", {"workspaceId": workspace}, token=owner.token)
    activity = dashboard["workspace"]["activity"]
    assert [entry(e) for e in activity] == expected[::-1]
    # Read later, `actor` (which the Dashboard leaves out) is as people are now: Victor and Erin
    # have gone.
    later = await client.execute(
        "query($w: ID!) { workspace(id: $w) { activity(first: 20) { actor { name } } } }",
        {"w": workspace},
        token=owner.token,
    )
    gone = {viewer.name, editor.name}
    assert current_actors(later["data"]["workspace"]["activity"]) == [
        None if e[1] in gone else e[1] for e in expected[::-1]
    ]
    assert [e["cursor"] for e in activity[: len(live)]] == [e["cursor"] for e in live[::-1]]
    # Unchanged values and repeated moves wrote nothing.
    assert await feed_rows(any_db_app) == len(expected)


async def test_refused_actions_leave_no_entry(
    any_db_client: GraphQLClient, any_db_app: FastAPI, any_db_settings: Settings
) -> None:
    client = any_db_client
    team = await set_up_team(client, any_db_settings, "editor", "viewer")
    workspace = team.workspace_id
    full = (
        await ok(client, "CreateCollection", team.editor.token, workspaceId=workspace, name="Full")
    )["collection"]["id"]
    await add_documents(
        any_db_app.state.deps.db,
        uuid_of(workspace),
        [uuid_of(full)],
        [uuid_of(team.editor.user_id)],
        1,
    )
    before = await feed_rows(any_db_app)

    viewer, editor = team.viewer.token, team.editor.token
    refused = [
        ("CreateCollection", viewer, {"workspaceId": workspace, "name": "X"}, "FORBIDDEN"),
        ("DeleteCollection", editor, {"id": full}, "COLLECTION_NOT_EMPTY"),
        ("RenameWorkspace", editor, {"workspaceId": workspace, "name": "Y"}, "FORBIDDEN"),
        ("RemoveMember", editor, {"memberId": team.viewer.member_id}, "FORBIDDEN"),
        ("CreateCollection", editor, {"workspaceId": workspace, "name": "Full"}, "NAME_TAKEN"),
    ]
    for name, token, input, code in refused:
        data = await client.op(name, {"input": input}, token=token)
        errors = next(iter(data.values()))["errors"]
        assert [e["code"] for e in errors] == [code], (name, errors)

    assert await feed_rows(any_db_app) == before
