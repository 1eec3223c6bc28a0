"""Runs executed in-process on live PostgreSQL and Redis: success, failure and retry, cancel,
permissions, and the runProgress / workspaceEvents streams."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from base.models import Run, RunEvent
from base.settings import Settings
from tests.integration.runs.conftest import check_models, event_log, get_run
from tests.support.app_fixtures import Subscribe, other_api, queued_runs, until_listening
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.metrics import delta, scrape
from tests.support.team import set_up_team
from tests.support.waiting import eventually

STEPS = ["CONNECT", "LIST_MODELS", "CHAT", "EMBED"]
# Bounds of waits for a run to end: only a hang reaches them (no test asserts how long it took).
RUN_ENDS_WITHIN = 60.0


async def test_model_check_run_succeeds_with_a_complete_event_log(
    client: GraphQLClient, app: FastAPI, settings: Settings
) -> None:
    team = await set_up_team(client, settings)
    token = team.owner.token
    started = await check_models(client, token, team.workspace_id)
    assert started["errors"] == []
    assert started["run"]["status"] == "QUEUED"
    await app.state.runs.launcher.wait_idle()

    run = await get_run(client, token, started["run"]["id"])
    assert (run["status"], run["percent"], run["errorCode"]) == ("SUCCEEDED", 100, None)
    assert [s["name"] for s in run["steps"]] == STEPS
    assert {s["status"] for s in run["steps"]} == {"SUCCEEDED"}
    assert run["outputSummary"].endswith("embedding model gives 384 dimensions.")
    events = await event_log(client, token, started["run"]["id"])
    assert [int(e["cursor"]) for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events if e["type"] != "STEP_PROGRESS"]
    assert types == ["RUN_QUEUED", "RUN_STARTED"] + [
        t for step in STEPS for t in ("STEP_STARTED", "STEP_SUCCEEDED")
    ] + ["RUN_SUCCEEDED"]
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents) and percents[-1] == 100


async def test_failed_run_is_retried_from_the_step_that_failed(
    client: GraphQLClient, app: FastAPI, settings: Settings
) -> None:
    team = await set_up_team(client, settings)
    token = team.owner.token
    # The same database, served by an API whose chat model the server does not have.
    async with other_api(settings, chat_model="missing:latest") as (broken, broken_client):
        failed = await check_models(broken_client, token, team.workspace_id)
        await broken.state.runs.launcher.wait_idle()
    run = await get_run(client, token, failed["run"]["id"])
    assert run["status"] == "FAILED"
    assert run["errorCode"] == "MODEL_UNAVAILABLE"
    assert "missing:latest" in run["errorMessage"]
    assert [(s["name"], s["status"]) for s in run["steps"]] == [
        ("CONNECT", "SUCCEEDED"),
        ("LIST_MODELS", "FAILED"),
        ("CHAT", "CANCELLED"),
        ("EMBED", "CANCELLED"),
    ]

    retried = await client.execute(
        "mutation($r: ID!) { retryRun(input: {runId: $r}) { run { id attempt status } "
        "errors { code } } }",
        {"r": failed["run"]["id"]},
        token=token,
    )
    new = retried["data"]["retryRun"]
    assert new["errors"] == [] and new["run"]["attempt"] == 2
    await app.state.runs.launcher.wait_idle()
    second = await get_run(client, token, new["run"]["id"])
    assert second["status"] == "SUCCEEDED"
    assert second["retryOf"] == {"id": failed["run"]["id"]}
    assert [(s["name"], s["status"], s["attempts"]) for s in second["steps"]] == [
        ("CONNECT", "REUSED", 0),
        ("LIST_MODELS", "SUCCEEDED", 1),
        ("CHAT", "SUCCEEDED", 1),
        ("EMBED", "SUCCEEDED", 1),
    ]
    again = await client.execute(
        "mutation($r: ID!) { retryRun(input: {runId: $r}) { run { id } errors { code message } } }",
        {"r": new["run"]["id"]},
        token=token,
    )
    assert again["data"]["retryRun"] == {
        "run": None,
        "errors": [
            {
                "code": "RUN_NOT_RETRYABLE",
                "message": "Only a FAILED run can be retried; this one is SUCCEEDED.",
            }
        ],
    }


async def test_cancel_ends_a_running_run(
    client: GraphQLClient, app: FastAPI, settings: Settings, slow_ollama_host: str
) -> None:
    team = await set_up_team(client, settings)
    token = team.owner.token
    before = await scrape(client.http)
    # An API that reaches the model over a slow link (tests/support/slow_link.py): its run is
    # still in its CHAT step seconds after the first token, whatever the model answers.
    slow = other_api(settings, ollama_host=slow_ollama_host, model_check_max_tokens=500)
    async with slow as (long_app, long_client):
        run_id = (await check_models(long_client, token, team.workspace_id))["run"]["id"]

        async def chat_streams() -> bool:
            events = await event_log(long_client, token, run_id)
            return any(e["type"] == "STEP_PROGRESS" for e in events)

        await eventually(chat_streams, within=30, what="the CHAT step to stream tokens")
        cancelled = await long_client.execute(
            "mutation($r: ID!) { cancelRun(input: {runId: $r}) "
            "{ run { status cancelRequested } errors { code } } }",
            {"r": run_id},
            token=token,
        )
        assert cancelled["data"]["cancelRun"] == {
            "run": {"status": "RUNNING", "cancelRequested": True},
            "errors": [],
        }
        await asyncio.wait_for(long_app.state.runs.launcher.wait_idle(), RUN_ENDS_WITHIN)
    run = await get_run(client, token, run_id)
    assert run["status"] == "CANCELLED"
    assert [(s["name"], s["status"]) for s in run["steps"]] == [
        ("CONNECT", "SUCCEEDED"),
        ("LIST_MODELS", "SUCCEEDED"),
        ("CHAT", "CANCELLED"),
        ("EMBED", "CANCELLED"),
    ]
    events = await event_log(client, token, run_id)
    assert events[-1]["type"] == "RUN_CANCELLED"
    finished = await client.execute(
        "mutation($r: ID!) { cancelRun(input: {runId: $r}) { run { id } errors { code } } }",
        {"r": run_id},
        token=token,
    )
    assert finished["data"]["cancelRun"] == {"run": None, "errors": [{"code": "RUN_FINISHED"}]}
    # The time from the request to the end, recorded when the run ended (ADR 0087).
    after = await scrape(client.http)
    cancel = "kd_run_cancel_seconds"
    assert delta(before, after, f"{cancel}_count", workflow="check_models") == 1
    assert 0 < delta(before, after, f"{cancel}_sum", workflow="check_models") < RUN_ENDS_WITHIN


async def test_a_run_has_its_own_execution_limit(
    client: GraphQLClient, settings: Settings, slow_ollama_host: str
) -> None:
    """API calls are held to WORKFLOW_EXECUTION_TIMEOUT_SECONDS, runs to
    RUN_EXECUTION_TIMEOUT_SECONDS: a run outlives the first, and is stopped at the second."""
    team = await set_up_team(client, settings)
    token = team.owner.token
    # Over the slow link the CHAT step alone takes at least 1.2 s (10 tokens or more at 0.12 s).
    slow = {"ollama_host": slow_ollama_host, "workflow_execution_timeout_seconds": 1}
    async with other_api(settings, **slow, run_execution_timeout_seconds=0) as (long_app, api):
        run_id = (await check_models(api, token, team.workspace_id))["run"]["id"]
        await asyncio.wait_for(long_app.state.runs.launcher.wait_idle(), RUN_ENDS_WITHIN)
        outlived = (await api.op("RunDetail", {"runId": run_id}, token=token))["run"]
    assert (outlived["status"], outlived["errorCode"]) == ("SUCCEEDED", None)
    assert outlived["durationMs"] > 1000  # longer than any API call may take here

    async with other_api(settings, **slow, run_execution_timeout_seconds=1) as (long_app, api):
        run_id = (await check_models(api, token, team.workspace_id))["run"]["id"]
        await asyncio.wait_for(long_app.state.runs.launcher.wait_idle(), RUN_ENDS_WITHIN)
        stopped = (await api.op("RunDetail", {"runId": run_id}, token=token))["run"]
    assert (stopped["status"], stopped["errorCode"], stopped["errorMessage"]) == (
        "FAILED",
        "RUN_TIMED_OUT",
        "The run took longer than its limit (1 s).",
    )
    assert "RUNNING" not in {s["status"] for s in stopped["steps"]}
    assert (await event_log(client, token, run_id))[-1]["type"] == "RUN_FAILED"


@pytest.mark.settings(run_execution="queue")  # runs wait in the Redis queue: no worker runs
async def test_who_may_cancel_and_retry(
    client: GraphQLClient, app: FastAPI, db: Any, settings: Settings
) -> None:
    team = await set_up_team(client, settings, "viewer", "editor", "outsider")
    owner, viewer, editor, outsider = team.owner, team.viewer, team.editor, team.outsider
    # A queued run of the owner's: with no worker to take it, it stays QUEUED, so cancellable.
    run_id = (await check_models(client, owner.token, team.workspace_id))["run"]["id"]

    async def cancel(token: str) -> dict[str, Any]:
        result = await client.execute(
            "mutation($r: ID!) { cancelRun(input: {runId: $r}) "
            "{ run { status } errors { code message } } }",
            {"r": run_id},
            token=token,
        )
        return result["data"]["cancelRun"]

    async def events_count() -> int:
        async with db() as s:
            return (await s.execute(select(func.count()).select_from(RunEvent))).scalar_one()

    before = await events_count()
    assert await cancel(viewer.token) == {
        "run": None,
        "errors": [
            {
                "code": "FORBIDDEN",
                "message": "This needs the EDITOR role or higher; you are VIEWER.",
            }
        ],
    }
    assert await cancel(editor.token) == {
        "run": None,
        "errors": [
            {
                "code": "FORBIDDEN",
                "message": "An EDITOR can cancel or retry only the runs they started.",
            }
        ],
    }
    assert await cancel(outsider.token) == {
        "run": None,
        "errors": [{"code": "NOT_FOUND", "message": "No such run."}],
    }
    assert await events_count() == before
    async with db() as s:
        assert (await s.execute(select(Run.status))).scalar_one().value == "QUEUED"
    # An EDITOR may cancel their own run; the OWNER any run.
    own = (await check_models(client, editor.token, team.workspace_id))["run"]["id"]
    mine = await client.execute(
        "mutation($r: ID!) { cancelRun(input: {runId: $r}) { run { status } errors { code } } }",
        {"r": own},
        token=editor.token,
    )
    assert mine["data"]["cancelRun"] == {"run": {"status": "CANCELLED"}, "errors": []}
    assert await cancel(owner.token) == {"run": {"status": "CANCELLED"}, "errors": []}
    # Both runs went to the queue, and nothing took them from it.
    assert await queued_runs(settings) == [uuid_of(run_id), uuid_of(own)]
    # A viewer cannot start a model check either, and an outsider's workspace id is not found.
    denied = await check_models(client, viewer.token, team.workspace_id)
    assert denied["errors"][0]["code"] == "FORBIDDEN"
    hidden = await check_models(client, outsider.token, team.workspace_id)
    assert hidden["errors"] == [
        {"code": "NOT_FOUND", "message": "No such workspace.", "field": "workspaceId"}
    ]


async def test_run_progress_replays_after_the_cursor_then_follows_live(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings)
    token = team.owner.token
    query = (
        "subscription($r: ID!, $a: String) { runProgress(runId: $r, after: $a) "
        "{ cursor type percent } }"
    )
    run_id = (await check_models(client, token, team.workspace_id))["run"]["id"]
    # Follow it live from the start...
    live = await subscribe(query, {"r": run_id, "a": None}, team.owner.user_id)
    seen = [e async for r in live for e in r.data["runProgress"]]
    assert [int(e["cursor"]) for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["type"] == "RUN_SUCCEEDED"
    # ...and replay it after a cursor once it has ended: exactly the rest, in one message, then
    # the stream ends.
    replay = await subscribe(query, {"r": run_id, "a": "3"}, team.owner.user_id)
    messages = [r.data["runProgress"] async for r in replay]
    assert messages == [seen[3:]]


async def test_run_progress_of_another_workspace_is_not_found(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings, "outsider")
    outsider = team.outsider
    run_id = (await check_models(client, team.owner.token, team.workspace_id))["run"]["id"]
    await app.state.runs.launcher.wait_idle()
    query = "subscription($r: ID!) { runProgress(runId: $r) { cursor } }"
    foreign = await subscribe(query, {"r": run_id}, outsider.user_id)
    missing_id = "UnVuOjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA=="
    missing = await subscribe(query, {"r": missing_id}, outsider.user_id)
    answers = []
    for stream in (foreign, missing):
        results = [r async for r in stream] if hasattr(stream, "__aiter__") else [stream]
        answers.append([(e.message, e.extensions["code"]) for r in results for e in r.errors])
    assert answers[0] == answers[1] == [("No such run.", "NOT_FOUND")]


async def test_workspace_events_tell_each_run_start_and_end(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings)
    token = team.owner.token
    query = (
        "subscription($w: ID!, $a: String) { workspaceEvents(workspaceId: $w, after: $a) "
        "{ cursor type runStatus run { workflow status } actor { name } } }"
    )
    stream = await subscribe(query, {"w": team.workspace_id, "a": None}, team.owner.user_id)
    received: list[dict[str, Any]] = []

    async def collect() -> None:
        async for result in stream:
            received.append(result.data["workspaceEvents"])
            if result.data["workspaceEvents"]["type"] == "RUN_FINISHED":
                return

    listening = app.state.deps.bus.subscriber_count
    collector = asyncio.create_task(collect())
    await until_listening(app, listening)  # before the run starts
    await check_models(client, token, team.workspace_id)
    await asyncio.wait_for(collector, RUN_ENDS_WITHIN)
    # RUN_PROGRESS messages (live only) come between: tests/integration/runs/test_dashboard_progress
    received = [e for e in received if e["type"] != "RUN_PROGRESS"]
    assert [(e["type"], e["runStatus"]) for e in received] == [
        ("RUN_QUEUED", "QUEUED"),
        ("RUN_STARTED", "RUNNING"),
        ("RUN_FINISHED", "SUCCEEDED"),
    ]
    assert {e["actor"]["name"] for e in received} == {"Olivia Owner"}
    cursors = [int(e["cursor"]) for e in received]
    assert cursors == sorted(cursors)
    replay = await subscribe(
        query, {"w": team.workspace_id, "a": str(cursors[0])}, team.owner.user_id
    )
    first_two = []
    async for result in replay:
        first_two.append(result.data["workspaceEvents"]["type"])
        if len(first_two) == 2:
            break
    assert first_two == ["RUN_STARTED", "RUN_FINISHED"]


async def test_a_failed_run_is_retried_once_and_a_finished_replay_ends(
    client: GraphQLClient, app: FastAPI, settings: Settings, db: Any, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings)
    token = team.owner.token
    async with other_api(settings, chat_model="missing:latest") as (broken, broken_client):
        failed = await check_models(broken_client, token, team.workspace_id)
        await broken.state.runs.launcher.wait_idle()
    retry = (
        "mutation($r: ID!) { retryRun(input: {runId: $r}) { run { id } errors { code message } } }"
    )
    results = await asyncio.gather(
        *[client.execute(retry, {"r": failed["run"]["id"]}, token=token) for _ in range(3)]
    )
    payloads = [r["data"]["retryRun"] for r in results]
    assert len([p for p in payloads if p["errors"] == []]) == 1
    assert [p["errors"] for p in payloads if p["errors"]] == [
        [{"code": "RUN_NOT_RETRYABLE", "message": "This run has been retried already."}]
    ] * 2
    async with db() as s:
        retries = (
            await s.execute(
                select(func.count())
                .select_from(Run)
                .where(Run.retry_of_id == uuid_of(failed["run"]["id"]))
            )
        ).scalar_one()
    assert retries == 1
    # A client that already saw the final event and reconnects with its cursor gets nothing more.
    log = await event_log(client, token, failed["run"]["id"])
    query = "subscription($r: ID!, $a: String) { runProgress(runId: $r, after: $a) { cursor } }"
    stream = await subscribe(
        query, {"r": failed["run"]["id"], "a": log[-1]["cursor"]}, team.owner.user_id
    )
    assert [r async for r in stream] == []


@pytest.mark.settings(access_recheck_seconds=0)  # re-check access before every live event
async def test_a_removed_member_stops_receiving_workspace_events(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings, "viewer")
    owner, viewer = team.owner, team.viewer
    query = "subscription($w: ID!) { workspaceEvents(workspaceId: $w) { type } }"
    stream = await subscribe(query, {"w": team.workspace_id}, viewer.user_id)
    listening = app.state.deps.bus.subscriber_count
    first = asyncio.create_task(stream.__anext__())
    await until_listening(app, listening)
    await check_models(client, owner.token, team.workspace_id)
    assert (await asyncio.wait_for(first, 10)).data == {"workspaceEvents": {"type": "RUN_QUEUED"}}
    await app.state.runs.launcher.wait_idle()
    await client.op("RemoveMember", {"input": {"memberId": viewer.member_id}}, token=owner.token)
    await check_models(client, owner.token, team.workspace_id)
    after_removal = await asyncio.wait_for(stream.__anext__(), 10)
    assert after_removal.data is None
    assert [(e.message, e.extensions["code"]) for e in after_removal.errors] == [
        ("No such workspace.", "NOT_FOUND")
    ]
