"""A subscription answered whole before is sent again from memory (ADR 0131), end to end: a
real uvicorn with Redis, graphql-transport-ws clients on `websockets`, and runs written from this
process by a `RunStore` (as a worker writes them), so a test decides when a run ends.

Which path answered is read from the server's own `/metrics` (`kd_socket_operations_total`,
by answer); what each client receives is compared whole, message by message.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from strawberry import relay

from base.db.engine import build_engine, build_sessionmaker
from base.events.bus import RedisBus
from base.models.runs import RunStatus
from base.settings import Settings
from services.model_check import CHECK_MODELS
from services.run_store import RunStore
from tests.e2e.runs_support import RUN_PROGRESS, graphql_ws
from tests.support.databases import fresh_database
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.live_server import live_server
from tests.support.metrics import Samples, delta, scrape
from tests.support.runs import create_workspace_run
from tests.support.team import Team, set_up_team

pytestmark = pytest.mark.timeout(180)

JWT_SECRET = "replays-e2e-jwt-secret-0123456789abcdef"
NOT_FOUND = ("No such run.", "NOT_FOUND")


@dataclass
class Served:
    base_url: str
    settings: Settings  # what this process writes runs with: the server's database and Redis

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/graphql"


@pytest.fixture
def served(postgres_url: str, redis_url: str) -> Iterator[Served]:
    """A server of its own per test (the team's personas have fixed addresses)."""
    with fresh_database(postgres_url, "replays") as database:
        env = {
            "APP_ENV": "test",
            "DATABASE_URL": database,
            "REDIS_URL": redis_url,
            "RUN_EXECUTION": "queue",  # nothing executes there: this process writes the runs
            "JWT_SECRET": JWT_SECRET,
            "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
            # Every opening asks again, so a removal is seen by the next subscription.
            "ACCESS_RECHECK_SECONDS": "0",
            "LOG_LEVEL": "WARNING",
        }
        settings = Settings(
            app_env="test", database_url=database, redis_url=redis_url, jwt_secret=JWT_SECRET
        )
        with live_server(env) as base_url:
            yield Served(base_url, settings)


@pytest.fixture
async def http(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as client:
        yield client


@pytest.fixture
async def store(served: Served) -> AsyncIterator[RunStore]:
    bus = RedisBus(served.settings.redis_url or "")
    await bus.start()
    engine = build_engine(served.settings)
    try:
        yield RunStore(build_sessionmaker(engine), bus, f"test:{uuid.uuid4().hex[:6]}", 600)
    finally:
        await bus.close()
        await engine.dispose()


async def started_run(store: RunStore, team: Team) -> tuple[uuid.UUID, str]:
    """A model check of the team's workspace, claimed by `store`: (id, global id)."""
    run_id = await create_workspace_run(
        store.db,
        CHECK_MODELS,
        workspace_id=uuid_of(team.workspace_id),
        triggered_by=uuid_of(team.owner.user_id),
        label="replays",
    )
    assert await store.claim(run_id) is not None
    return run_id, str(relay.GlobalID("Run", str(run_id)))


async def step(store: RunStore, run_id: uuid.UUID, name: str) -> None:
    await store.step_event(run_id, name, "STEP_STARTED", message=f"{name} started")
    await store.step_event(
        run_id, name, "STEP_SUCCEEDED", message=f"{name} done", output={"value": name}
    )


async def finish(store: RunStore, run_id: uuid.UUID) -> None:
    for name in CHECK_MODELS.steps:
        await step(store, run_id, name)
    outputs = {name: {"value": name} for name in CHECK_MODELS.steps}
    await store.finish(run_id, RunStatus.SUCCEEDED, output_summary="checked", outputs=outputs)


def answers_between(before: Samples, after: Samples) -> dict[str, float]:
    """The socket operations the server answered between two scrapes, by how it answered."""
    return {
        answer: delta(before, after, "kd_socket_operations_total", answer=answer)
        for answer in ("executed", "replayed")
    }


async def answered(
    http: httpx.AsyncClient, served: Served, token: str, variables: dict[str, Any], op_id: str
) -> tuple[list[str], dict[str, float]]:
    """Subscribe on a new socket and read to `complete` or `error`: (the raw messages, the
    server's executed / replayed counts added meanwhile)."""
    before = await scrape(http)
    async with graphql_ws(served.ws_url, token) as conn:
        await conn.subscribe(op_id, RUN_PROGRESS, variables)
        messages = [str(await conn.ws.recv())]
        while json.loads(messages[-1])["type"] == "next":
            messages.append(str(await conn.ws.recv()))
    return messages, answers_between(before, await scrape(http))


def events_of(messages: list[str]) -> list[list[tuple[str, str]]]:
    """Each `next` message's events as (cursor, type), and the last message's type."""
    return [
        [(e["cursor"], e["type"]) for e in json.loads(m)["payload"]["data"]["runProgress"]]
        for m in messages
        if json.loads(m)["type"] == "next"
    ]


def refusal(messages: list[str]) -> list[tuple[str, str]]:
    """The errors of a stream refused when it opened: a `next` without data, then `complete`."""
    refused, complete = (json.loads(m) for m in messages)
    assert (refused["type"], refused["payload"]["data"], complete["type"]) == (
        "next",
        None,
        "complete",
    ), messages
    return [(e["message"], e["extensions"]["code"]) for e in refused["payload"]["errors"]]


EXECUTED = {"executed": 1, "replayed": 0}
REPLAYED = {"executed": 0, "replayed": 1}


async def test_a_finished_runs_replay_is_sent_again_from_memory_and_only_to_members(
    served: Served, http: httpx.AsyncClient, store: RunStore
) -> None:
    client = GraphQLClient(http)
    team = await set_up_team(client, served.settings, "viewer", "outsider")
    owner, viewer, outsider = team.owner, team.viewer, team.outsider
    run_id, run_gid = await started_run(store, team)
    await finish(store, run_id)
    whole = {"runId": run_gid}

    first, counted = await answered(http, served, owner.token, whole, "a")
    assert counted == EXECUTED
    [log] = events_of(first)
    assert log[0] == ("1", "RUN_QUEUED") and log[-1][1] == "RUN_SUCCEEDED"
    assert [int(cursor) for cursor, _ in log] == list(range(1, len(log) + 1))
    assert json.loads(first[-1]) == {"id": "a", "type": "complete"}

    # The same document and variables: the same bytes from memory, under the new operation id.
    again, counted = await answered(http, served, owner.token, whole, "b")
    assert counted == REPLAYED
    assert again == [m.replace('"id":"a"', '"id":"b"', 1) for m in first]
    viewed, counted = await answered(http, served, viewer.token, whole, "a")
    assert (viewed, counted) == (first, REPLAYED)

    # An outsider is refused as for a missing run, by the executed operation.
    refused, counted = await answered(http, served, outsider.token, whole, "a")
    assert (refusal(refused), counted) == ([NOT_FOUND], EXECUTED)

    # Other variables are another answer: executed once, then kept too.
    later = {"runId": run_gid, "after": "3"}
    tail, counted = await answered(http, served, viewer.token, later, "t")
    assert (events_of(tail), counted) == ([log[3:]], EXECUTED)
    assert (await answered(http, served, owner.token, later, "t")) == (tail, REPLAYED)

    # A member removed since is refused, although the answer is kept.
    removed = await client.op(
        "RemoveMember", {"input": {"memberId": viewer.member_id}}, token=owner.token
    )
    assert removed["removeMember"]["errors"] == [], removed
    refused, counted = await answered(http, served, viewer.token, whole, "a")
    assert (refusal(refused), counted) == ([NOT_FOUND], EXECUTED)
    assert (await answered(http, served, owner.token, whole, "a")) == (first, REPLAYED)


async def test_only_a_first_message_that_ends_the_run_is_kept(
    served: Served, http: httpx.AsyncClient, store: RunStore
) -> None:
    """A stream that followed the run live ends with a message holding only the final event:
    that is no whole answer, so the next subscriber is executed (and gets the whole log)."""
    client = GraphQLClient(http)
    team = await set_up_team(client, served.settings)
    run_id, run_gid = await started_run(store, team)
    await step(store, run_id, CHECK_MODELS.steps[0])
    whole = {"runId": run_gid}
    before = await scrape(http)
    async with graphql_ws(served.ws_url, team.owner.token) as conn:
        await conn.subscribe("live", RUN_PROGRESS, whole)
        stored = await conn.recv()
        assert [e["type"] for e in stored["payload"]["data"]["runProgress"]] == [
            "RUN_QUEUED",
            "RUN_STARTED",
            "STEP_STARTED",
            "STEP_SUCCEEDED",
        ]
        await finish(store, run_id)
        live = [await conn.recv()]
        while live[-1]["type"] == "next":
            live.append(await conn.recv())
    assert live[-1] == {"id": "live", "type": "complete"}
    assert live[-2]["payload"]["data"]["runProgress"][-1]["type"] == "RUN_SUCCEEDED"
    assert all(len(m["payload"]["data"]["runProgress"]) == 1 for m in live[:-1])
    assert answers_between(before, await scrape(http)) == EXECUTED

    whole_log, counted = await answered(http, served, team.owner.token, whole, "a")
    assert counted == EXECUTED  # not the live stream's last message
    streamed = [
        (e["cursor"], e["type"])
        for m in [stored, *live[:-1]]
        for e in m["payload"]["data"]["runProgress"]
    ]
    assert events_of(whole_log) == [streamed]  # one message now: the run had ended
    assert (await answered(http, served, team.owner.token, whole, "a")) == (whole_log, REPLAYED)


async def test_an_operation_id_is_free_again_once_its_replay_completed(
    served: Served, http: httpx.AsyncClient, store: RunStore
) -> None:
    client = GraphQLClient(http)
    team = await set_up_team(client, served.settings)
    run_id, run_gid = await started_run(store, team)
    await finish(store, run_id)
    first, _ = await answered(http, served, team.owner.token, {"runId": run_gid}, "x")
    before = await scrape(http)
    async with graphql_ws(served.ws_url, team.owner.token) as conn:
        for _ in range(3):  # the same id, one after another on one socket
            await conn.subscribe("x", RUN_PROGRESS, {"runId": run_gid})
            assert [await conn.recv(), await conn.recv()] == [json.loads(m) for m in first]
    assert answers_between(before, await scrape(http)) == {"executed": 0, "replayed": 3}
