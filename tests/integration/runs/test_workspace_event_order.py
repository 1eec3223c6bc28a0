"""Workspace-event ids are a cursor, so one workspace's ids must commit in id order: on
PostgreSQL a writer waits for the workspace's advisory lock while another writer's event is
uncommitted (services/run_log.py `append_workspace_event`). Two real writers on live PostgreSQL;
a writer of another workspace does not wait."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import FastAPI
from sqlalchemy import select

from base.models.runs import WorkspaceEvent
from services.deps import ServiceDeps
from services.run_log import Outbox, append_workspace_event
from tests.support.graphql import GraphQLClient, first_workspace, sign_up, uuid_of

# How long the second writer is given to get ahead, were it not made to wait.
HEAD_START_SECONDS = 0.5


async def _workspace(client: GraphQLClient, name: str) -> uuid.UUID:
    owner = await sign_up(client, name, f"{name.lower()}@example.com")
    return uuid_of((await first_workspace(client, owner["accessToken"]))["id"])


async def _committed(deps: ServiceDeps, workspace_id: uuid.UUID) -> list[str]:
    async with deps.db() as session:
        rows = await session.scalars(
            select(WorkspaceEvent.message)
            .where(WorkspaceEvent.workspace_id == workspace_id, WorkspaceEvent.type == "NOTE")
            .order_by(WorkspaceEvent.id)
        )
        return list(rows)


async def test_two_writers_of_one_workspace_commit_in_id_order(
    client: GraphQLClient, app: FastAPI
) -> None:
    deps: ServiceDeps = app.state.deps
    workspace_id = await _workspace(client, "Olivia")
    other_workspace_id = await _workspace(client, "Mallory")
    first_written, release_first = asyncio.Event(), asyncio.Event()
    ids: dict[str, int] = {}

    async def write(name: str, workspace: uuid.UUID, hold: asyncio.Event | None = None) -> None:
        async with deps.db.begin() as session:
            event = await append_workspace_event(session, Outbox(), workspace, "NOTE", message=name)
            ids[name] = event.id
            if hold is not None:
                first_written.set()
                await hold.wait()  # the first writer's event stays uncommitted meanwhile

    first = asyncio.create_task(write("first", workspace_id, release_first))
    await first_written.wait()
    second = asyncio.create_task(write("second", workspace_id))
    elsewhere = asyncio.create_task(write("elsewhere", other_workspace_id))
    await asyncio.wait_for(elsewhere, 10)  # another workspace's writer does not wait
    await asyncio.sleep(HEAD_START_SECONDS)
    # The second writer waits for the lock: it has no id yet, and nothing of it is committed.
    assert not second.done()
    assert "second" not in ids
    assert await _committed(deps, workspace_id) == []

    release_first.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert ids["first"] < ids["second"]
    assert await _committed(deps, workspace_id) == ["first", "second"]
    assert await _committed(deps, other_workspace_id) == ["elsewhere"]
