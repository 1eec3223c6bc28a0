"""User flow: an admin cancels and retries runs.

The flow is docs/user_flows/admin_cancels_and_retries/README.md; each `# Step N` below is the
step of the same number there. Runs are started through a second app on the same PostgreSQL
and Redis (another API process that executes its runs), so that one run is long enough to
cancel and another fails: a model check whose model answers over a slow link
(tests/support/slow_link.py), and a chat model that the model server does not have.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from base.models import Run, RunEvent
from base.settings import Settings
from tests.support.app_fixtures import Subscribe, other_api
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.team import set_up_team

STEPS = ["CONNECT", "LIST_MODELS", "CHAT", "EMBED"]
# A bound on waiting for a run to end: only a hang reaches it (no test asserts how long it took).
RUN_ENDS_WITHIN = 60.0


def error(code: str, message: str, field: str | None = None) -> list[dict[str, Any]]:
    return [{"code": code, "message": message, "field": field}]


def without_progress(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["step"]) for e in events if e["type"] != "STEP_PROGRESS"]


async def run_detail(client: GraphQLClient, token: str, run_id: str) -> dict[str, Any]:
    return (await client.op("RunDetail", {"runId": run_id, "first": 100}, token=token))["run"]


async def test_admin_cancels_a_running_model_check(
    client: GraphQLClient,
    app: FastAPI,
    db: Any,
    settings: Settings,
    subscribe: Subscribe,
    slow_ollama_host: str,
) -> None:
    # Step 1 — the team: SignUp ×3, InviteMember ×2, AcceptInvite ×2, WorkspaceMembers.
    team = await set_up_team(client, settings, "admin", "editor")
    adam, erin = team.admin, team.editor

    slow = other_api(settings, ollama_host=slow_ollama_host, model_check_max_tokens=500)
    async with slow as (long_api, long_client):
        # Step 2 — Erin starts a long model check (on the other API, which executes it).
        started = await long_client.op(
            "CheckModels", {"input": {"workspaceId": team.workspace_id}}, token=erin.token
        )
        assert started["checkModels"]["errors"] == []
        run_id = started["checkModels"]["run"]["id"]

        # Step 3 — Adam watches it on this API (RunProgress) until the chat streams tokens.
        stream = await subscribe("RunProgress", {"runId": run_id}, adam.user_id)
        streamed: list[dict[str, Any]] = []
        chatting = asyncio.Event()

        async def watch() -> None:
            async for result in stream:
                assert result.errors is None, result.errors
                for event in result.data["runProgress"]:
                    streamed.append(event)
                    if event["type"] == "STEP_PROGRESS" and event["step"] == "CHAT":
                        chatting.set()

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(chatting.wait(), 60)

        # Step 4 — Adam cancels Erin's run (CancelRun, on this API).
        cancelled = await client.op("CancelRun", {"input": {"runId": run_id}}, token=adam.token)
        assert cancelled["cancelRun"] == {
            "run": {"id": run_id, "status": "RUNNING", "cancelRequested": True},
            "errors": [],
        }

        # Step 5 — It ends CANCELLED; his stream ends with RUN_CANCELLED.
        await asyncio.wait_for(watcher, RUN_ENDS_WITHIN)
        last = streamed[-1]
        assert last["type"] == "RUN_CANCELLED"
        assert last["status"] == "CANCELLED"
        await long_api.state.runs.launcher.wait_idle()

    assert [int(e["cursor"]) for e in streamed] == list(range(1, len(streamed) + 1))
    assert without_progress(streamed) == [
        ("RUN_QUEUED", None),
        ("RUN_STARTED", None),
        ("STEP_STARTED", "CONNECT"),
        ("STEP_SUCCEEDED", "CONNECT"),
        ("STEP_STARTED", "LIST_MODELS"),
        ("STEP_SUCCEEDED", "LIST_MODELS"),
        ("STEP_STARTED", "CHAT"),
        ("RUN_CANCELLED", "CHAT"),
    ]
    assert last["message"] == "Cancelled by a user."
    assert last["percent"] < 75
    detail = await run_detail(client, adam.token, run_id)
    assert (detail["status"], detail["errorCode"], detail["errorMessage"]) == (
        "CANCELLED",
        "CANCELLED",
        "Cancelled by a user.",
    )
    assert detail["cancelRequested"] is True
    assert detail["finishedAt"] is not None and detail["outputSummary"] is None
    assert detail["triggeredBy"] == {"id": erin.user_id, "name": "Erin Editor"}
    assert [(s["name"], s["status"], s["attempts"]) for s in detail["steps"]] == [
        ("CONNECT", "SUCCEEDED", 1),
        ("LIST_MODELS", "SUCCEEDED", 1),
        ("CHAT", "CANCELLED", 1),
        ("EMBED", "CANCELLED", 0),
    ]
    assert [e["node"]["cursor"] for e in detail["events"]["edges"]] == [
        e["cursor"] for e in streamed
    ]

    # Step 6 — An ended run can be neither cancelled nor retried.
    again = await client.op("CancelRun", {"input": {"runId": run_id}}, token=adam.token)
    assert again["cancelRun"] == {
        "run": None,
        "errors": error("RUN_FINISHED", "The run has already ended (CANCELLED)."),
    }
    retry = await client.op("RetryRun", {"input": {"runId": run_id}}, token=adam.token)
    assert retry["retryRun"] == {
        "run": None,
        "errors": error(
            "RUN_NOT_RETRYABLE", "Only a FAILED run can be retried; this one is CANCELLED."
        ),
    }
    async with db() as s:
        assert (await s.execute(select(func.count()).select_from(Run))).scalar_one() == 1
        count = select(func.count()).where(RunEvent.run_id == uuid_of(run_id))
        assert (await s.execute(count)).scalar_one() == len(streamed)


async def test_admin_retries_a_failed_model_check(
    client: GraphQLClient, app: FastAPI, db: Any, settings: Settings, subscribe: Subscribe
) -> None:
    # Step 1 — the team.
    team = await set_up_team(client, settings, "admin", "editor")
    adam, erin = team.admin, team.editor

    # Step 7 — Erin starts a model check that fails: that API's chat model is missing.
    async with other_api(settings, chat_model="missing:latest") as (broken_api, broken_client):
        started = await broken_client.op(
            "CheckModels", {"input": {"workspaceId": team.workspace_id}}, token=erin.token
        )
        failed_id = started["checkModels"]["run"]["id"]
        await broken_api.state.runs.launcher.wait_idle()
    failed = await run_detail(client, adam.token, failed_id)
    assert (failed["status"], failed["errorCode"], failed["attempt"]) == (
        "FAILED",
        "MODEL_UNAVAILABLE",
        1,
    )
    assert failed["errorMessage"].startswith("The server lacks missing:latest; it offers ")
    assert [(s["name"], s["status"]) for s in failed["steps"]] == [
        ("CONNECT", "SUCCEEDED"),
        ("LIST_MODELS", "FAILED"),
        ("CHAT", "CANCELLED"),
        ("EMBED", "CANCELLED"),
    ]
    assert failed["steps"][1]["error"] == failed["errorMessage"]
    assert [e["node"]["type"] for e in failed["events"]["edges"]] == [
        "RUN_QUEUED",
        "RUN_STARTED",
        "STEP_STARTED",
        "STEP_SUCCEEDED",
        "STEP_STARTED",
        "STEP_FAILED",
        "RUN_FAILED",
    ]

    # Step 8 — Adam retries it (RetryRun): a new attempt, linked to the failed run.
    retried = await client.op("RetryRun", {"input": {"runId": failed_id}}, token=adam.token)
    assert retried["retryRun"]["errors"] == []
    second = retried["retryRun"]["run"]
    assert second["id"] != failed_id
    assert (second["status"], second["attempt"], second["retryOf"]) == (
        "QUEUED",
        2,
        {"id": failed_id},
    )

    # Step 9 — He watches the new attempt to its end (RunProgress): CONNECT is not run again.
    stream = await subscribe("RunProgress", {"runId": second["id"]}, adam.user_id)
    streamed = []
    async for result in stream:
        assert result.errors is None, result.errors
        streamed.extend(result.data["runProgress"])
    assert [int(e["cursor"]) for e in streamed] == list(range(1, len(streamed) + 1))
    assert without_progress(streamed) == [
        ("RUN_QUEUED", None),
        ("RUN_STARTED", None),
        *[(kind, step) for step in STEPS[1:] for kind in ("STEP_STARTED", "STEP_SUCCEEDED")],
        ("RUN_SUCCEEDED", "EMBED"),
    ]
    assert streamed[0]["message"] == f"attempt 2, retrying run {uuid_of(failed_id)}"
    assert streamed[-1]["percent"] == 100
    await app.state.runs.launcher.wait_idle()

    # Step 10 — RunDetail of the new attempt, and the failed one unchanged.
    detail = await run_detail(client, adam.token, second["id"])
    assert (detail["status"], detail["attempt"], detail["retryOf"]) == (
        "SUCCEEDED",
        2,
        {"id": failed_id},
    )
    assert detail["triggeredBy"] == {"id": adam.user_id, "name": "Adam Admin"}
    assert [(s["name"], s["status"], s["attempts"]) for s in detail["steps"]] == [
        ("CONNECT", "REUSED", 0),
        ("LIST_MODELS", "SUCCEEDED", 1),
        ("CHAT", "SUCCEEDED", 1),
        ("EMBED", "SUCCEEDED", 1),
    ]
    assert detail["outputSummary"].startswith("Chat model answered ")
    assert (await run_detail(client, adam.token, failed_id))["status"] == "FAILED"

    # Step 11 — A run that succeeded cannot be retried.
    again = await client.op("RetryRun", {"input": {"runId": second["id"]}}, token=adam.token)
    assert again["retryRun"] == {
        "run": None,
        "errors": error(
            "RUN_NOT_RETRYABLE", "Only a FAILED run can be retried; this one is SUCCEEDED."
        ),
    }

    # Step 12 — The runs monitor, filtered by status (RunsMonitor).
    async def monitor(status: list[str]) -> list[tuple[str, int | None]]:
        data = await client.op(
            "RunsMonitor",
            {"workspaceId": team.workspace_id, "status": status},
            token=adam.token,
        )
        return [(e["node"]["id"], e["node"]["percent"]) for e in data["workspace"]["runs"]["edges"]]

    assert [run for run, _ in await monitor(["FAILED"])] == [failed_id]
    assert await monitor(["SUCCEEDED"]) == [(second["id"], 100)]
    assert await monitor(["QUEUED", "RUNNING"]) == []
