"""Deleting a workspace: the OWNER alone, its name typed again; everything in it goes, another
workspace keeps what it shares. On PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import func, select, update

import base.models  # noqa: F401  (every table registered on Base.metadata)
from base.db.base import Base
from base.models.documents import Document
from base.models.runs import Run, RunStatus
from services.blobs import blob_store
from tests.integration.runs.conftest import check_models, event_log
from tests.support.app_fixtures import other_api
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.seed import add_collection, add_documents, add_events, add_runs
from tests.support.team import invite, set_up_team
from tests.support.waiting import eventually


async def _rows_of(db: Any, workspace_id: uuid.UUID, documents: list[uuid.UUID]) -> dict[str, int]:
    """Per table, the rows that belong to the workspace: by `workspace_id`, by `document_id`
    among `documents`, or the workspace row itself."""
    counts: dict[str, int] = {}
    async with db() as session:
        for table in Base.metadata.sorted_tables:
            columns = table.c
            if table.name == "workspaces":
                where = columns.id == workspace_id
            elif "workspace_id" in columns:
                where = columns.workspace_id == workspace_id
            elif "document_id" in columns:
                where = columns.document_id.in_(documents)
            elif "run_id" in columns:
                runs = select(Run.id).where(Run.workspace_id == workspace_id)
                where = columns.run_id.in_(runs)
            else:
                continue
            found = await session.execute(select(func.count()).select_from(table).where(where))
            counts[table.name] = found.scalar_one()
    return counts


async def _delete(client: GraphQLClient, workspace_id: str, name: str, token: str) -> dict:
    data = await client.op(
        "DeleteWorkspace", {"input": {"workspaceId": workspace_id, "name": name}}, token=token
    )
    payload: dict = data["deleteWorkspace"]
    return payload


async def test_the_owner_deletes_a_workspace_and_everything_in_it(
    any_db_client: GraphQLClient, any_db_app
):
    client, db, settings = any_db_client, any_db_app.state.deps.db, any_db_app.state.deps.settings
    team = await set_up_team(client, settings, "admin", "editor", "outsider")
    workspace_id = uuid_of(team.workspace_id)
    owner_id = uuid_of(team.owner.user_id)
    theirs = (await client.op("AppShell", token=team.outsider.token))["workspaces"]["edges"]
    their_workspace = uuid_of(theirs[0]["node"]["id"])
    collection = await add_collection(db, workspace_id, "Specs", owner_id)
    ours = await add_documents(db, workspace_id, [collection], [owner_id], 3, tags=("a",), chunks=2)
    their_collection = await add_collection(db, their_workspace, "Theirs", owner_id)
    [their_document] = await add_documents(db, their_workspace, [their_collection], [owner_id], 1)
    # Originals: one only ours, one shared with the other workspace (content-addressed).
    store = blob_store(settings.blob_root)
    only_ours, shared = await store.put(b"only ours\n"), await store.put(b"shared\n")
    async with db.begin() as session:
        for document_id, digest in (
            (ours[0], only_ours),
            (ours[1], shared),
            (their_document, shared),
        ):
            await session.execute(
                update(Document).where(Document.id == document_id).values(content_sha256=digest)
            )
    finished = await add_runs(db, workspace_id, [owner_id], 2)
    await add_events(db, finished[0], 3)
    [running] = await add_runs(db, workspace_id, [owner_id], 1, status=RunStatus.RUNNING)
    await invite(
        client, settings, team.workspace_id, "new@example.com", "VIEWER", by=team.owner.token
    )
    conversation = await client.op(
        "CreateConversation",
        {"input": {"workspaceId": team.workspace_id, "title": "Notes"}},
        token=team.editor.token,
    )
    assert conversation["createConversation"]["errors"] == []
    name = (await client.op("AppShell", token=team.owner.token))["workspaces"]["edges"][0]["node"][
        "name"
    ]

    before = await _rows_of(db, workspace_id, ours)
    theirs_before = await _rows_of(db, their_workspace, [their_document])
    for table, least in {
        "workspaces": 1,
        "memberships": 3,
        "invites": 3,
        "collections": 1,
        "documents": 3,
        "chunks": 6,
        "document_tags": 3,
        "document_entities": 6,
        "runs": 3,
        "run_steps": 6,
        "run_events": 3,
        "workspace_events": 1,
        "conversations": 1,
    }.items():
        assert before[table] >= least, (table, before[table])

    # Refused, and nothing changes: an ADMIN, an EDITOR, an outsider, the owner with a wrong name.
    needs_owner = "This needs the OWNER role or higher; you are {}."
    for token, role in ((team.admin.token, "ADMIN"), (team.editor.token, "EDITOR")):
        refused = await _delete(client, team.workspace_id, name, token)
        assert refused == {
            "deletedWorkspaceId": None,
            "errors": [{"code": "FORBIDDEN", "message": needs_owner.format(role), "field": None}],
        }
    hidden = await _delete(client, team.workspace_id, name, team.outsider.token)
    assert [(e["code"], e["field"]) for e in hidden["errors"]] == [("NOT_FOUND", "workspaceId")]
    for wrong in (name.upper(), "", f"{name}!"):
        mismatch = await _delete(client, team.workspace_id, wrong, team.owner.token)
        assert mismatch["errors"] == [
            {
                "code": "NAME_MISMATCH",
                "message": "Type the workspace's name exactly to delete it.",
                "field": "name",
            }
        ], wrong
    assert await _rows_of(db, workspace_id, ours) == before
    assert await store.exists(only_ours) and await store.exists(shared)

    deleted = await _delete(client, team.workspace_id, f"  {name} ", team.owner.token)
    assert deleted == {"deletedWorkspaceId": team.workspace_id, "errors": []}
    assert set((await _rows_of(db, workspace_id, ours)).values()) == {0}
    assert await _rows_of(db, their_workspace, [their_document]) == theirs_before
    assert await store.exists(only_ours) is False
    assert await store.exists(shared) is True  # the other workspace's document still holds it
    async with db() as session:
        assert await session.get(Run, running) is None

    for person in (team.owner, team.admin, team.editor):
        shell = await client.op("AppShell", token=person.token)
        assert team.workspace_id not in [e["node"]["id"] for e in shell["workspaces"]["edges"]]
        members = await client.op(
            "WorkspaceMembers", {"workspaceId": team.workspace_id}, token=person.token
        )
        assert members == {"workspace": None}
    again = await _delete(client, team.workspace_id, name, team.owner.token)
    assert [e["code"] for e in again["errors"]] == ["NOT_FOUND"]


async def test_a_running_run_stops_when_its_workspace_is_deleted(
    client: GraphQLClient, db, settings, slow_ollama_host: str
):
    """A real model check, its CHAT step streaming over a slow link, when the OWNER deletes the
    workspace: the run is told to stop, writes nothing more, and its executor goes idle."""
    team = await set_up_team(client, settings)
    token = team.owner.token
    workspace_id = uuid_of(team.workspace_id)
    name = (await client.op("AppShell", token=token))["workspaces"]["edges"][0]["node"]["name"]
    slow = other_api(settings, ollama_host=slow_ollama_host, model_check_max_tokens=500)
    async with slow as (long_app, long_client):
        run_id = (await check_models(long_client, token, team.workspace_id))["run"]["id"]

        async def chat_streams() -> bool:
            events = await event_log(long_client, token, run_id)
            return any(e["type"] == "STEP_PROGRESS" for e in events)

        await eventually(chat_streams, within=30, what="the CHAT step to stream tokens")
        deleted = await _delete(long_client, team.workspace_id, name, token)
        assert deleted["errors"] == []
        await asyncio.wait_for(long_app.state.runs.launcher.wait_idle(), 60.0)
    assert set((await _rows_of(db, workspace_id, [])).values()) == {0}
