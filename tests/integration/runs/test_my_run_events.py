"""myRunEvents, the shell's toast (ADR 0086): the ends of the caller's runs in every workspace
the caller belongs to, with a position per workspace as the cursor. On PostgreSQL (with Redis)
and SQLite (events in memory).

Two people: Olivia owns workspace A, Sam owns workspace B, and each is an EDITOR in the other's.
Events are written by the real writers (`append_workspace_event`, then `Outbox.publish`), or as
rows only where a test replays them. The last test runs real model checks, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from base.auth.principal import Principal
from base.models.accounts import Membership, Role
from base.models.runs import Run, RunStatus
from base.settings import Settings
from resolvers.core.context import Context
from services.run_log import Outbox, append_workspace_event
from tests.integration.runs.conftest import check_models
from tests.support.app_fixtures import Subscribe, other_api, until_listening
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.seed import add_runs, global_id, uuid_of
from tests.support.team import set_up_team

QUERY = """
subscription($after: String) {
  myRunEvents(after: $after) { cursor type message runStatus workspaceId actor { name } }
}
"""


@dataclass
class Pair:
    olivia: uuid.UUID
    sam: uuid.UUID
    a: uuid.UUID  # Olivia's workspace
    b: uuid.UUID  # Sam's workspace


@pytest.fixture
async def pair(any_db_client: GraphQLClient, any_db_app: FastAPI) -> Pair:
    olivia = await sign_up(any_db_client, "Olivia", "olivia@example.com")
    sam = await sign_up(any_db_client, "Sam", "sam@example.com")
    a = uuid_of((await first_workspace(any_db_client, olivia["accessToken"]))["id"])
    b = uuid_of((await first_workspace(any_db_client, sam["accessToken"]))["id"])
    team = Pair(uuid_of(olivia["user"]["id"]), uuid_of(sam["user"]["id"]), a, b)
    async with any_db_app.state.deps.db.begin() as session:
        session.add(Membership(workspace_id=b, user_id=team.olivia, role=Role.EDITOR))
        session.add(Membership(workspace_id=a, user_id=team.sam, role=Role.EDITOR))
    return team


@pytest.fixture
async def toasts_of(any_db_app: FastAPI) -> AsyncIterator[Any]:
    """myRunEvents as a user through the real schema, one context per stream (as a socket)."""
    streams: list[Any] = []

    async def subscribe(user_id: uuid.UUID, after: str | None = None) -> Any:
        deps = any_db_app.state.deps.for_principal(Principal(user_id=user_id))
        context = Context(deps=deps, runner=any_db_app.state.runner)
        stream = await any_db_app.state.schema.subscribe(
            QUERY, variable_values={"after": after}, context_value=context
        )
        streams.append(stream)
        return stream

    yield subscribe
    for stream in streams:
        await stream.aclose()


def positions(**by_workspace: int) -> str:
    """A cursor by hand: base64url JSON {workspace uuid: last id}."""
    body = json.dumps({str(uuid.UUID(w)): i for w, i in by_workspace.items()})
    return base64.urlsafe_b64encode(body.encode()).decode()


def decoded(cursor: str) -> dict[uuid.UUID, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return {uuid.UUID(w): i for w, i in json.loads(raw).items()}


async def new_run(app: FastAPI, workspace: uuid.UUID, by: uuid.UUID) -> uuid.UUID:
    [run_id] = await add_runs(app.state.deps.db, workspace, [by], 1, status=RunStatus.RUNNING)
    return run_id


async def write(
    app: FastAPI, run_id: uuid.UUID, kind: str = "RUN_FINISHED", *, publish: bool = True
) -> int:
    """A workspace event of the run by its writer, published after commit (unless not); its id."""
    deps = app.state.deps
    outbox = Outbox()
    async with deps.db.begin() as session:
        run = await session.get(Run, run_id)
        assert run is not None
        if kind == "RUN_FINISHED":
            run.status = RunStatus.SUCCEEDED
        event = await append_workspace_event(
            session,
            outbox,
            run.workspace_id,
            kind,
            message=f"{run.subject_label} of {run.workspace_id.hex[:4]} {kind}",
            actor_id=run.triggered_by_id,
            run=run,
        )
        event_id = event.id
    if publish:
        await outbox.publish(deps.bus)
    return event_id


async def next_toast(stream: Any) -> dict[str, Any]:
    result = await asyncio.wait_for(stream.__anext__(), 10)
    assert result.errors is None, result.errors
    return result.data["myRunEvents"]


async def listening(app: FastAPI, stream: Any) -> asyncio.Task[Any]:
    """The stream's next result as a task, once the stream listens on the bus."""
    before = app.state.deps.bus.subscriber_count
    task = asyncio.ensure_future(stream.__anext__())
    await until_listening(app, before)
    return task


async def test_a_replay_after_a_cursor_spans_both_workspaces_and_resumes_without_gap_or_repeat(
    any_db_app: FastAPI, pair: Pair, toasts_of: Any
) -> None:
    app = any_db_app
    a1, a2 = await new_run(app, pair.a, pair.olivia), await new_run(app, pair.a, pair.olivia)
    b1, sams = await new_run(app, pair.b, pair.olivia), await new_run(app, pair.a, pair.sam)
    # Rows only, interleaved across the workspaces; only Olivia's RUN_FINISHED are hers to see.
    queued = await write(app, a1, "RUN_QUEUED", publish=False)
    first = await write(app, a1, publish=False)
    await write(app, sams, publish=False)
    second = await write(app, b1, publish=False)
    third = await write(app, a2, publish=False)

    stream = await toasts_of(pair.olivia, positions(**{str(pair.a): queued, str(pair.b): 0}))
    got = [await next_toast(stream), await next_toast(stream)]
    assert [(t["workspaceId"], t["type"], t["runStatus"]) for t in got] == [
        (global_id("Workspace", pair.a), "RUN_FINISHED", "SUCCEEDED"),
        (global_id("Workspace", pair.b), "RUN_FINISHED", "SUCCEEDED"),
    ]
    assert {t["actor"]["name"] for t in got} == {"Olivia"}
    # Each cursor is the whole position after its event.
    assert [decoded(t["cursor"]) for t in got] == [
        {pair.a: first, pair.b: 0},
        {pair.a: first, pair.b: second},
    ]
    await stream.aclose()

    # Back with the last cursor: exactly what follows it, then live ones.
    again = await toasts_of(pair.olivia, got[-1]["cursor"])
    rest = await next_toast(again)
    assert decoded(rest["cursor"]) == {pair.a: third, pair.b: second}
    fourth = await write(app, b1)  # it listens already: it has sent an event
    assert decoded((await next_toast(again))["cursor"]) == {pair.a: third, pair.b: fourth}


async def test_live_toasts_are_the_callers_own_runs_only(
    any_db_app: FastAPI, pair: Pair, toasts_of: Any
) -> None:
    app = any_db_app
    olivias = await new_run(app, pair.b, pair.olivia)  # in Sam's workspace
    sams = await new_run(app, pair.b, pair.sam)
    olivia = await toasts_of(pair.olivia)  # no cursor: live ones only
    sam = await toasts_of(pair.sam)
    olivia_next = await listening(app, olivia)
    sam_next = await listening(app, sam)

    await write(app, sams, "RUN_QUEUED")
    sams_end = await write(app, sams)
    await write(app, olivias, "RUN_QUEUED")
    olivias_end = await write(app, olivias)

    # Each hears the end of their own run, and nothing before it.
    mine = (await asyncio.wait_for(olivia_next, 10)).data["myRunEvents"]
    theirs = (await asyncio.wait_for(sam_next, 10)).data["myRunEvents"]
    assert (decoded(mine["cursor"])[pair.b], mine["actor"]) == (olivias_end, {"name": "Olivia"})
    assert (decoded(theirs["cursor"])[pair.b], theirs["actor"]) == (sams_end, {"name": "Sam"})
    # Live without a cursor: the other workspace starts at its newest event (none: 0).
    assert decoded(mine["cursor"]) == {pair.a: 0, pair.b: olivias_end}


@pytest.mark.settings(access_recheck_seconds=0)  # re-check memberships before every delivery
async def test_leaving_a_workspace_stops_its_toasts_and_joining_one_starts_them(
    any_db_app: FastAPI, any_db_client: GraphQLClient, pair: Pair, toasts_of: Any
) -> None:
    app = any_db_app
    in_a, in_b = await new_run(app, pair.a, pair.olivia), await new_run(app, pair.b, pair.olivia)
    stream = await toasts_of(pair.olivia)
    first = await listening(app, stream)
    b_first = await write(app, in_b)
    assert decoded((await asyncio.wait_for(first, 10)).data["myRunEvents"]["cursor"]) == {
        pair.a: 0,
        pair.b: b_first,
    }

    # Sam removes Olivia from B; her run there still ends, and only A's end reaches her.
    async with app.state.deps.db.begin() as session:
        await session.execute(
            delete(Membership).where(
                Membership.workspace_id == pair.b, Membership.user_id == pair.olivia
            )
        )
    gone = await new_run(app, pair.b, pair.olivia)
    await write(app, gone)
    a_end = await write(app, in_a)
    toast = await next_toast(stream)
    assert (toast["workspaceId"], decoded(toast["cursor"])) == (
        global_id("Workspace", pair.a),
        {pair.a: a_end},
    )

    # A cursor naming B is no use to her either: B is ignored, A read from its position.
    replay = await toasts_of(pair.olivia, positions(**{str(pair.a): 0, str(pair.b): 0}))
    assert decoded((await next_toast(replay))["cursor"]) == {pair.a: a_end}

    # A third workspace she joins while the stream runs: followed from then on.
    carol = await sign_up(any_db_client, "Carol", "carol@example.com")
    c = uuid_of((await first_workspace(any_db_client, carol["accessToken"]))["id"])
    async with app.state.deps.db.begin() as session:
        session.add(Membership(workspace_id=c, user_id=pair.olivia, role=Role.EDITOR))
    in_c = await new_run(app, c, pair.olivia)
    nudge = await write(app, await new_run(app, pair.a, pair.olivia))  # the check runs on it
    c_end = await write(app, in_c)
    # C starts at the newest id of all at the check before she joined (A's end).
    assert decoded((await next_toast(stream))["cursor"]) == {pair.a: nudge, c: a_end}
    assert decoded((await next_toast(stream))["cursor"]) == {pair.a: nudge, c: c_end}


@pytest.mark.parametrize(
    "after",
    [
        "not a cursor!",
        "12",  # a workspaceEvents cursor
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"not-a-uuid": 1}').decode(),
        positions(**{str(uuid.UUID(int=1)): "1"}),  # type: ignore[arg-type]
        positions(**{str(uuid.UUID(int=1)): -1}),
        positions(**{str(uuid.UUID(int=1)): True}),  # type: ignore[arg-type]
        positions(**{str(uuid.UUID(int=1)): 2**63}),
        base64.urlsafe_b64encode(b"[" * 40_000).decode()[:60_000],
    ],
)
async def test_a_cursor_that_is_not_a_position_per_workspace_is_invalid(
    any_db_app: FastAPI, pair: Pair, toasts_of: Any, after: str
) -> None:
    stream = await toasts_of(pair.olivia, after)
    result = await asyncio.wait_for(stream.__anext__(), 10)
    assert result.data is None
    assert [(e.message, e.extensions["code"], e.extensions["field"]) for e in result.errors] == [
        ("This cursor is not valid here.", "INVALID_CURSOR", "after")
    ]


async def test_an_admin_retrying_my_failed_run_toasts_the_admin_not_me(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    """PostgreSQL, real runs: a retry is the run of whoever retried it (ADR 0086)."""
    team = await set_up_team(client, settings, "admin", "editor")
    adam, erin = team.admin, team.editor
    async with other_api(settings, chat_model="missing:latest") as (broken, broken_client):
        failed = await check_models(broken_client, erin.token, team.workspace_id)
        await broken.state.runs.launcher.wait_idle()
    retried = await client.op(
        "RetryRun", {"input": {"runId": failed["run"]["id"]}}, token=adam.token
    )
    assert retried["retryRun"]["errors"] == []
    retry = retried["retryRun"]["run"]["id"]
    await app.state.runs.launcher.wait_idle()

    from_the_start = positions(**{str(uuid_of(team.workspace_id)): 0})
    query = "subscription($a: String) { myRunEvents(after: $a) { runId runStatus actor { name } } }"
    adams = await subscribe(query, {"a": from_the_start}, adam.user_id)
    erins = await subscribe(query, {"a": from_the_start}, erin.user_id)
    try:
        assert (await asyncio.wait_for(adams.__anext__(), 10)).data["myRunEvents"] == {
            "runId": retry,
            "runStatus": "SUCCEEDED",
            "actor": {"name": "Adam Admin"},
        }
        # Erin: her run's failure, then her next run; the retry's end is not hers.
        assert (await asyncio.wait_for(erins.__anext__(), 10)).data["myRunEvents"] == {
            "runId": failed["run"]["id"],
            "runStatus": "FAILED",
            "actor": {"name": "Erin Editor"},
        }
        again = await check_models(client, erin.token, team.workspace_id)
        assert (await asyncio.wait_for(erins.__anext__(), 300)).data["myRunEvents"] == {
            "runId": again["run"]["id"],
            "runStatus": "SUCCEEDED",
            "actor": {"name": "Erin Editor"},
        }
    finally:
        await adams.aclose()
        await erins.aclose()


async def signed_in(client: GraphQLClient, email: str) -> str:
    data = await client.op("SignIn", {"input": {"email": email, "password": "a long pass phrase"}})
    token: str = data["signIn"]["session"]["accessToken"]
    return token


async def test_the_shells_cursor_brings_a_run_that_ended_before_the_subscription(
    any_db_app: FastAPI, any_db_client: GraphQLClient, pair: Pair, toasts_of: Any
) -> None:
    """AppShell's `myRunEventsCursor`, then a run ends, then the shell subscribes with it: the
    toast still comes (live only, it would not)."""
    app = any_db_app
    earlier = await write(app, await new_run(app, pair.a, pair.olivia))
    token = await signed_in(any_db_client, "olivia@example.com")
    shell = await any_db_client.op("AppShell", {}, token=token)
    assert decoded(shell["myRunEventsCursor"]) == {pair.a: earlier, pair.b: 0}

    ended = await write(app, await new_run(app, pair.b, pair.olivia))  # before subscribing
    stream = await toasts_of(pair.olivia, shell["myRunEventsCursor"])
    toast = await next_toast(stream)
    assert (toast["workspaceId"], decoded(toast["cursor"])) == (
        global_id("Workspace", pair.b),
        {pair.a: earlier, pair.b: ended},
    )
    # Sam's cursor names his own workspaces only.
    sams = await signed_in(any_db_client, "sam@example.com")
    his = await any_db_client.op("AppShell", {}, token=sams)
    assert set(decoded(his["myRunEventsCursor"])) == {pair.a, pair.b}
