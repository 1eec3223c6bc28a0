"""The Dashboard's one subscription: workspaceEvents carries each active run's progress
(RUN_PROGRESS, live only, throttled per run by WORKSPACE_PROGRESS_INTERVAL_SECONDS), then the
stored RUN_FINISHED; on PostgreSQL with Redis, and on SQLite with the in-process bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app import migrate
from app.main import create_app
from base.settings import Settings
from tests.integration.runs.conftest import check_models, event_log
from tests.support.app_fixtures import Subscribe, changed, until_listening
from tests.support.graphql import GraphQLClient
from tests.support.team import set_up_team

RUN_ENDS_WITHIN = 60.0
STEPS = 4  # CONNECT, LIST_MODELS, CHAT, EMBED
QUERY = (
    "subscription($w: ID!) { workspaceEvents(workspaceId: $w) "
    "{ cursor type runStatus runId percent step run { id } } }"
)


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> str | None:
    """None for PostgreSQL with Redis, or the URL of a fresh, migrated SQLite file."""
    if request.param == "postgresql":
        return None
    url = f"sqlite+aiosqlite:///{tmp_path / 'kd.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
async def target(
    backend: str | None, app: FastAPI, client: GraphQLClient, settings: Settings
) -> AsyncIterator[tuple[FastAPI, GraphQLClient, Settings]]:
    if backend is None:
        yield app, client, settings
        return
    lite = changed(settings, database_url=backend, redis_url=None)
    application = create_app(lite)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield application, GraphQLClient(http), lite


async def _watch_one_run(
    target: tuple[FastAPI, GraphQLClient, Settings], subscribe: Subscribe
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    on, client, settings = target
    team = await set_up_team(client, settings)
    stream = await subscribe(QUERY, {"w": team.workspace_id}, team.owner.user_id, on=on)
    received: list[dict[str, Any]] = []

    async def collect() -> None:
        async for result in stream:
            assert result.errors is None, result.errors
            received.append(result.data["workspaceEvents"])
            if received[-1]["type"] == "RUN_FINISHED":
                return

    listening = on.state.deps.bus.subscriber_count
    collector = asyncio.create_task(collect())
    await until_listening(on, listening)
    run_id = (await check_models(client, team.owner.token, team.workspace_id))["run"]["id"]
    await asyncio.wait_for(collector, RUN_ENDS_WITHIN)
    return run_id, received, await event_log(client, team.owner.token, run_id)


def _check_stream(run_id: str, received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The progress messages of a stream that must read: queued, started, progress, finished."""
    assert [e["type"] for e in received[:2]] == ["RUN_QUEUED", "RUN_STARTED"]
    assert (received[-1]["type"], received[-1]["runStatus"]) == ("RUN_FINISHED", "SUCCEEDED")
    progress = received[2:-1]
    assert progress and {e["type"] for e in progress} == {"RUN_PROGRESS"}
    assert {e["runId"] for e in progress} == {run_id}
    assert {e["run"] for e in progress} == {None}  # a live message costs no read
    percents = [e["percent"] for e in progress]
    assert percents == sorted(percents)
    assert all(0 <= p <= 99 for p in percents) and percents[-1] > 0
    # No cursor of their own: that of the last stored event, so a reconnect misses nothing.
    assert {e["cursor"] for e in progress} == {received[1]["cursor"]}
    assert int(received[-1]["cursor"]) > int(received[1]["cursor"])
    assert {e["step"] for e in progress} == {"CONNECT", "LIST_MODELS", "CHAT", "EMBED"}
    return progress


@pytest.mark.settings(workspace_progress_interval_seconds=0)
async def test_without_throttling_every_step_event_is_on_the_workspace_stream(
    target: tuple[FastAPI, GraphQLClient, Settings], subscribe: Subscribe
) -> None:
    run_id, received, log = await _watch_one_run(target, subscribe)
    progress = _check_stream(run_id, received)
    step_events = [e for e in log if e["type"].startswith("STEP_")]
    assert len(progress) == len(step_events)
    assert [e["percent"] for e in progress] == [e["percent"] for e in step_events]


@pytest.mark.settings(workspace_progress_interval_seconds=60)
async def test_progress_within_a_step_is_throttled_per_run(
    target: tuple[FastAPI, GraphQLClient, Settings], subscribe: Subscribe
) -> None:
    run_id, received, log = await _watch_one_run(target, subscribe)
    progress = _check_stream(run_id, received)
    # Each step's start and end go; progress within steps at most once per run per interval
    # (the run lasts a few seconds): at most 2 per step + 1, however many STEP_PROGRESS.
    transitions = [e for e in log if e["type"] in ("STEP_STARTED", "STEP_SUCCEEDED")]
    in_step = sum(e["type"] == "STEP_PROGRESS" for e in log)
    assert len(transitions) == 2 * STEPS
    assert len(progress) == len(transitions) + min(in_step, 1) <= 2 * STEPS + 1
