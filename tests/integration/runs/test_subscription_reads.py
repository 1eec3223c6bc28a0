"""Each subscription event, and each operation sent over a socket, is executed with fresh
loaders: what it shows is read when it is executed, not when the socket opened. On PostgreSQL
and SQLite.

The events are written to the workspace's log and replayed (`after: "0"`), so the test decides
exactly when each one is executed: when it asks the stream for the next result.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, update

from base.auth.principal import Principal
from base.models.accounts import Membership, User
from base.models.runs import Run, RunStatus, WorkspaceEvent
from resolvers.core.context import Context
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.seed import T0, add_members, add_runs, global_id, uuid_of

QUERY = """
subscription($w: ID!) {
  workspaceEvents(workspaceId: $w, after: "0") {
    type
    actor { name }
    run { id status triggeredBy { name } }
  }
}
"""


@pytest.fixture
async def events_of(any_db_app) -> AsyncIterator[Any]:
    """Subscribe to a workspace's replayed events as a user, through the real schema, with one
    context for the whole subscription (as a WebSocket has)."""
    streams: list[Any] = []

    async def subscribe(workspace: str, user: str) -> Any:
        deps = any_db_app.state.deps.for_principal(Principal(user_id=uuid_of(user)))
        context = Context(deps=deps, runner=any_db_app.state.runner)
        stream = await any_db_app.state.schema.subscribe(
            QUERY, variable_values={"w": workspace}, context_value=context
        )
        streams.append(stream)
        return stream

    yield subscribe
    for stream in streams:
        await stream.aclose()


async def write_events(
    db: Any, workspace_id: uuid.UUID, run_id: uuid.UUID, actors: list[uuid.UUID]
) -> None:
    async with db.begin() as session:
        session.add_all(
            WorkspaceEvent(
                workspace_id=workspace_id,
                type="RUN_QUEUED" if i == 0 else "RUN_FINISHED",
                actor_id=actor,
                run_id=run_id,
                run_status=RunStatus.QUEUED if i == 0 else RunStatus.SUCCEEDED,
                message=f"event {i}",
                at=T0,
            )
            for i, actor in enumerate(actors)
        )


async def next_event(stream: Any) -> dict[str, Any]:
    result = await stream.__anext__()
    assert result.errors is None, result.errors
    return result.data["workspaceEvents"]


async def test_a_renamed_user_and_a_changed_run_show_as_they_are_now(
    any_db_client: GraphQLClient, any_db_app, events_of
):
    db = any_db_app.state.deps.db
    owner = await sign_up(any_db_client, "Owner", "owner@example.com")
    workspace = await first_workspace(any_db_client, owner["accessToken"])
    workspace_id, owner_id = uuid_of(workspace["id"]), uuid_of(owner["user"]["id"])
    [run_id] = await add_runs(db, workspace_id, [owner_id], 1, status=RunStatus.RUNNING)
    await write_events(db, workspace_id, run_id, [owner_id, owner_id])
    stream = await events_of(workspace["id"], owner["user"]["id"])

    run = {"id": global_id("Run", run_id), "status": "RUNNING", "triggeredBy": {"name": "Owner"}}
    assert await next_event(stream) == {
        "type": "RUN_QUEUED",
        "actor": {"name": "Owner"},
        "run": run,
    }
    async with db.begin() as session:
        await session.execute(update(User).where(User.id == owner_id).values(name="Olga"))
        await session.execute(
            update(Run).where(Run.id == run_id).values(status=RunStatus.SUCCEEDED)
        )
    assert await next_event(stream) == {
        "type": "RUN_FINISHED",
        "actor": {"name": "Olga"},
        "run": {**run, "status": "SUCCEEDED", "triggeredBy": {"name": "Olga"}},
    }


async def test_a_user_removed_since_the_last_event_is_no_longer_shown(
    any_db_client: GraphQLClient, any_db_app, events_of
):
    db = any_db_app.state.deps.db
    owner = await sign_up(any_db_client, "Owner", "owner@example.com")
    workspace = await first_workspace(any_db_client, owner["accessToken"])
    workspace_id = uuid_of(workspace["id"])
    [mia] = await add_members(db, workspace_id, 1, prefix="mia")
    [run_id] = await add_runs(db, workspace_id, [mia], 1)
    await write_events(db, workspace_id, run_id, [mia, mia])
    stream = await events_of(workspace["id"], owner["user"]["id"])

    first = await next_event(stream)
    assert (first["actor"], first["run"]["triggeredBy"]) == ({"name": "Mia 0"}, {"name": "Mia 0"})
    # Mia leaves: she shares no workspace with the owner any more, so she is not shown.
    async with db.begin() as session:
        await session.execute(delete(Membership).where(Membership.user_id == mia))
    second = await next_event(stream)
    assert (second["actor"], second["run"]["triggeredBy"]) == (None, None)


async def test_a_query_sent_again_over_the_same_socket_reads_afresh(
    any_db_client: GraphQLClient, any_db_app
):
    owner = await sign_up(any_db_client, "Owner", "owner@example.com")
    owner_id = uuid_of(owner["user"]["id"])
    deps = any_db_app.state.deps.for_principal(Principal(user_id=owner_id))
    socket = Context(deps=deps, runner=any_db_app.state.runner)  # one context per socket
    # `node(id:)` reads through the user loader.
    query = "query($id: ID!) { node(id: $id) { ... on User { name } } }"
    variables = {"id": owner["user"]["id"]}
    first = await any_db_app.state.schema.execute(query, variables, context_value=socket)
    assert (first.errors, first.data) == (None, {"node": {"name": "Owner"}})
    async with any_db_app.state.deps.db.begin() as session:
        await session.execute(update(User).where(User.id == owner_id).values(name="Olga"))
    again = await any_db_app.state.schema.execute(query, variables, context_value=socket)
    assert (again.errors, again.data) == (None, {"node": {"name": "Olga"}})
