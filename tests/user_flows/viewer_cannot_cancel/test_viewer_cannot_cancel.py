"""User flow: a viewer cannot cancel, retry or start runs, but can watch them.

The flow is docs/user_flows/viewer_cannot_cancel/README.md; each `# Step N` below is the step of
the same number there. Every denied step is checked twice: the exact payload error, and the
database unchanged (the runs, their steps, their event logs and the workspace's activity).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from base.models import Run, RunEvent, RunStep, WorkspaceEvent
from base.settings import Settings
from tests.support.app_fixtures import Subscribe, other_api
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.team import Person, set_up_team

NEEDS_EDITOR = "This needs the EDITOR role or higher; you are VIEWER."


def forbidden() -> list[dict[str, Any]]:
    return [{"code": "FORBIDDEN", "message": NEEDS_EDITOR, "field": None}]


async def snapshot(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that starting, cancelling or retrying a run could touch, in full."""
    async with db() as s:
        return {
            "runs": sorted(
                tuple(r)
                for r in await s.execute(
                    select(
                        Run.id,
                        Run.status,
                        Run.cancel_requested_at,
                        Run.percent,
                        Run.current_step,
                        Run.attempt,
                        Run.retry_of_id,
                        Run.last_seq,
                        Run.lease_owner,
                        Run.lease_expires_at,
                        Run.finished_at,
                        Run.error_code,
                    )
                )
            ),
            "run_steps": sorted(
                tuple(r)
                for r in await s.execute(
                    select(RunStep.run_id, RunStep.position, RunStep.status, RunStep.attempts)
                )
            ),
            "run_events": sorted(
                tuple(r)
                for r in await s.execute(select(RunEvent.run_id, RunEvent.seq, RunEvent.type))
            ),
            "workspace_events": sorted(
                tuple(r) for r in await s.execute(select(WorkspaceEvent.id, WorkspaceEvent.type))
            ),
        }


async def run_row(db: Any, run_id: str) -> tuple[str, bool, int]:
    """(status, cancel requested, number of events) of a run, read from the database."""
    async with db() as s:
        run = await s.get(Run, uuid_of(run_id))
        events = (await s.execute(select(RunEvent.seq).where(RunEvent.run_id == run.id))).scalars()
        return run.status.value, run.cancel_requested_at is not None, len(list(events))


async def cancel(client: GraphQLClient, person: Person, run_id: str) -> dict[str, Any]:
    return (await client.op("CancelRun", {"input": {"runId": run_id}}, token=person.token))[
        "cancelRun"
    ]


async def retry(client: GraphQLClient, person: Person, run_id: str) -> dict[str, Any]:
    return (await client.op("RetryRun", {"input": {"runId": run_id}}, token=person.token))[
        "retryRun"
    ]


async def test_viewer_cannot_start_cancel_or_retry_but_can_watch(
    client: GraphQLClient, app: FastAPI, db: Any, settings: Settings, subscribe: Subscribe
) -> None:
    # Step 1 — the team: SignUp ×2, InviteMember, AcceptInvite, WorkspaceMembers.
    team = await set_up_team(client, settings, "viewer")
    olivia, victor = team.owner, team.viewer

    # Step 2 — Victor starts a model check (CheckModels): FORBIDDEN, no run.
    denied = await client.op(
        "CheckModels", {"input": {"workspaceId": team.workspace_id}}, token=victor.token
    )
    assert denied["checkModels"] == {"run": None, "errors": forbidden()}
    assert await snapshot(db) == {
        "runs": [],
        "run_steps": [],
        "run_events": [],
        "workspace_events": [(1, "MEMBER_INVITED"), (2, "MEMBER_JOINED")],  # Victor's arrival
    }

    # Step 3 — Olivia starts one while no worker takes runs: it waits QUEUED.
    queue_api = other_api(settings, address="203.0.113.9", run_execution="queue")
    async with queue_api as (_queue_app, queue_client):
        started = await queue_client.op(
            "CheckModels", {"input": {"workspaceId": team.workspace_id}}, token=olivia.token
        )
    assert started["checkModels"]["errors"] == []
    queued_id = started["checkModels"]["run"]["id"]
    assert await run_row(db, queued_id) == ("QUEUED", False, 1)
    before = await snapshot(db)

    # Step 4 — Victor cancels it (CancelRun): FORBIDDEN, nothing changes.
    assert await cancel(client, victor, queued_id) == {"run": None, "errors": forbidden()}
    assert await run_row(db, queued_id) == ("QUEUED", False, 1)
    assert await snapshot(db) == before

    # Step 5 — Victor retries it (RetryRun): FORBIDDEN, nothing changes.
    assert await retry(client, victor, queued_id) == {"run": None, "errors": forbidden()}
    assert await snapshot(db) == before

    # Step 6 — Victor watches it: RunDetail, RunProgress, RunsMonitor and Dashboard.
    detail = (await client.op("RunDetail", {"runId": queued_id}, token=victor.token))["run"]
    assert (detail["status"], detail["percent"], detail["cancelRequested"]) == ("QUEUED", 0, False)
    assert detail["triggeredBy"] == {"id": olivia.user_id, "name": "Olivia Owner"}
    assert [(s["name"], s["status"]) for s in detail["steps"]] == [
        ("CONNECT", "PENDING"),
        ("LIST_MODELS", "PENDING"),
        ("CHAT", "PENDING"),
        ("EMBED", "PENDING"),
    ]
    stream = await subscribe("RunProgress", {"runId": queued_id}, victor.user_id)
    first = await anext(stream)
    await stream.aclose()
    assert first.errors is None, first.errors
    assert [(e["cursor"], e["type"]) for e in first.data["runProgress"]] == [("1", "RUN_QUEUED")]
    monitor = await client.op("RunsMonitor", {"workspaceId": team.workspace_id}, token=victor.token)
    assert [e["node"]["id"] for e in monitor["workspace"]["runs"]["edges"]] == [queued_id]
    dashboard = await client.op("Dashboard", {"workspaceId": team.workspace_id}, token=victor.token)
    assert dashboard["workspace"]["activeRuns"]["totalCount"] == 1
    assert await snapshot(db) == before

    # Step 7 — Olivia (OWNER) cancels it: CANCELLED at once.
    assert await cancel(client, olivia, queued_id) == {
        "run": {"id": queued_id, "status": "CANCELLED", "cancelRequested": True},
        "errors": [],
    }
    assert await run_row(db, queued_id) == ("CANCELLED", True, 2)


async def test_viewer_cannot_retry_a_failed_run_but_can_watch_it(
    client: GraphQLClient, app: FastAPI, db: Any, settings: Settings, subscribe: Subscribe
) -> None:
    # Step 1 — the team.
    team = await set_up_team(client, settings, "viewer")
    olivia, victor = team.owner, team.viewer

    # Step 8 — Olivia's model check fails: that API's chat model is missing.
    broken = other_api(settings, address="203.0.113.9", chat_model="missing:latest")
    async with broken as (broken_api, broken_client):
        started = await broken_client.op(
            "CheckModels", {"input": {"workspaceId": team.workspace_id}}, token=olivia.token
        )
        failed_id = started["checkModels"]["run"]["id"]
        await broken_api.state.runs.launcher.wait_idle()
    assert await run_row(db, failed_id) == ("FAILED", False, 7)
    before = await snapshot(db)

    # Step 9 — Victor retries and cancels it: FORBIDDEN both times, nothing changes.
    assert await retry(client, victor, failed_id) == {"run": None, "errors": forbidden()}
    assert await cancel(client, victor, failed_id) == {"run": None, "errors": forbidden()}
    assert await run_row(db, failed_id) == ("FAILED", False, 7)
    assert await snapshot(db) == before

    # Step 10 — Victor watches it: RunProgress replays the whole log and ends; RunDetail.
    stream = await subscribe("RunProgress", {"runId": failed_id}, victor.user_id)
    messages = []
    async for result in stream:
        assert result.errors is None, result.errors
        messages.append(result.data["runProgress"])
    [events] = messages  # the whole log, in one message
    assert [(e["cursor"], e["type"], e["step"]) for e in events] == [
        ("1", "RUN_QUEUED", None),
        ("2", "RUN_STARTED", None),
        ("3", "STEP_STARTED", "CONNECT"),
        ("4", "STEP_SUCCEEDED", "CONNECT"),
        ("5", "STEP_STARTED", "LIST_MODELS"),
        ("6", "STEP_FAILED", "LIST_MODELS"),
        ("7", "RUN_FAILED", "LIST_MODELS"),
    ]
    detail = (await client.op("RunDetail", {"runId": failed_id}, token=victor.token))["run"]
    assert (detail["status"], detail["errorCode"]) == ("FAILED", "MODEL_UNAVAILABLE")
    assert detail["errorMessage"].startswith("The server lacks missing:latest; it offers ")
    assert [(s["name"], s["status"], s["error"]) for s in detail["steps"]] == [
        ("CONNECT", "SUCCEEDED", None),
        ("LIST_MODELS", "FAILED", detail["errorMessage"]),
        ("CHAT", "CANCELLED", None),
        ("EMBED", "CANCELLED", None),
    ]
    assert [e["node"]["type"] for e in detail["events"]["edges"]] == [e["type"] for e in events]
    assert await snapshot(db) == before

    # Step 11 — Olivia (OWNER) may retry it: a second attempt.
    retried = await retry(client, olivia, failed_id)
    assert retried["errors"] == []
    assert (retried["run"]["attempt"], retried["run"]["retryOf"]) == (2, {"id": failed_id})
    await app.state.runs.launcher.wait_idle()
