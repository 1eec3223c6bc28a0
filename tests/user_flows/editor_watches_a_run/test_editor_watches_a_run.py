"""User flow: an editor watches a run (docs/user_flows/editor_watches_a_run/README.md).

Each `# Step N` below is the step of the same number in that README. The run executes in the
app's own process on the real local model; the subscriptions run through the real schema with
the documents of `graphql/operations/`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select

from base.models import Run, RunEvent, WorkspaceEvent
from base.settings import Settings
from tests.support.app_fixtures import Subscribe, until_listening
from tests.support.graphql import GraphQLClient
from tests.support.team import set_up_team

STEPS = ["CONNECT", "LIST_MODELS", "CHAT", "EMBED"]
# The log of a model check that succeeds, STEP_PROGRESS events left out (their number varies).
SUCCEEDED_LOG = [
    ("RUN_QUEUED", None, "QUEUED"),
    ("RUN_STARTED", None, "RUNNING"),
    *[(kind, step, "RUNNING") for step in STEPS for kind in ("STEP_STARTED", "STEP_SUCCEEDED")],
    ("RUN_SUCCEEDED", "EMBED", "SUCCEEDED"),
]


def without_progress(events: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    """(type, step, status) of each event, STEP_PROGRESS left out."""
    return [(e["type"], e["step"], e["status"]) for e in events if e["type"] != "STEP_PROGRESS"]


async def test_editor_starts_a_model_check_and_watches_it_to_the_end(
    client: GraphQLClient, app: FastAPI, db: Any, settings: Settings, subscribe: Subscribe
) -> None:
    # Step 1 — the team: SignUp ×2, InviteMember, AcceptInvite, WorkspaceMembers.
    team = await set_up_team(client, settings, "editor")
    erin = team.editor

    # Step 2 — Erin opens the dashboard: Dashboard, and the WorkspaceEvents feed (live only).
    dashboard = await client.op("Dashboard", {"workspaceId": team.workspace_id}, token=erin.token)
    assert dashboard["workspace"]["activeRuns"] == {"totalCount": 0, "edges": []}
    # The feed so far: Erin's arrival, newest first.
    arrival = [
        (e["type"], e["actorName"], e["message"], e["subject"], e["runId"])
        for e in dashboard["workspace"]["activity"]
    ]
    assert arrival == [
        (
            "MEMBER_JOINED",
            "Erin Editor",
            "joined as EDITOR",
            {"type": "USER", "id": erin.user_id, "label": "Erin Editor"},
            None,
        ),
        ("MEMBER_INVITED", "Olivia Owner", "invited a new member as EDITOR", None, None),
    ]
    feed = await subscribe("WorkspaceEvents", {"workspaceId": team.workspace_id}, erin.user_id)
    toasts: list[dict[str, Any]] = []

    async def read_feed() -> None:
        async for result in feed:
            assert result.errors is None, result.errors
            toasts.append(result.data["workspaceEvents"])
            if result.data["workspaceEvents"]["type"] == "RUN_FINISHED":
                return

    listening = app.state.deps.bus.subscriber_count
    feed_reader = asyncio.create_task(read_feed())
    await until_listening(app, listening)

    # Step 3 — Erin starts a model check: CheckModels.
    started = await client.op(
        "CheckModels", {"input": {"workspaceId": team.workspace_id}}, token=erin.token
    )
    assert started["checkModels"]["errors"] == []
    run = started["checkModels"]["run"]
    assert (run["status"], run["workflow"]) == ("QUEUED", "check_models")
    run_id = run["id"]

    # Step 4 — She watches it (RunProgress from the start) and closes the tab once 3 events
    # have come (each message holds one or more).
    first_tab = await subscribe("RunProgress", {"runId": run_id}, erin.user_id)
    seen: list[dict[str, Any]] = []
    async for result in first_tab:
        assert result.errors is None, result.errors
        assert result.data["runProgress"] != []
        seen.extend(result.data["runProgress"])
        if len(seen) >= 3:
            break
    await first_tab.aclose()
    assert [e["type"] for e in seen[:2]] == ["RUN_QUEUED", "RUN_STARTED"]

    # Step 5 — She comes back: RunProgress with `after` = the last cursor she saw.
    second_tab = await subscribe(
        "RunProgress", {"runId": run_id, "after": seen[-1]["cursor"]}, erin.user_id
    )
    async for result in second_tab:
        assert result.errors is None, result.errors
        assert result.data["runProgress"] != []
        seen.extend(result.data["runProgress"])
    # The stream ended by itself, after the final event.
    assert seen[-1]["type"] == "RUN_SUCCEEDED"
    assert [int(e["cursor"]) for e in seen] == list(range(1, len(seen) + 1))
    assert without_progress(seen) == SUCCEEDED_LOG
    assert {e["runId"] for e in seen} == {run_id}
    assert {e["step"] for e in seen if e["type"] == "STEP_PROGRESS"} <= {"CHAT"}
    percents = [e["percent"] for e in seen]
    assert percents == sorted(percents)
    assert percents[0] == 0 and percents[-1] == 100
    assert [e["percent"] for e in seen if e["type"] == "STEP_SUCCEEDED"] == [25, 50, 75, 99]
    async with db() as s:
        stored = (await s.execute(select(RunEvent.seq, RunEvent.type).order_by(RunEvent.seq))).all()
    assert [(str(seq), kind) for seq, kind in stored] == [(e["cursor"], e["type"]) for e in seen]

    # Step 6 — The toast: the feed told her the run was queued, started and finished.
    await asyncio.wait_for(feed_reader, 10)
    # (Between them, live RUN_PROGRESS messages move the dashboard's bar; the toast ignores them.)
    toasts = [t for t in toasts if t["type"] != "RUN_PROGRESS"]
    assert [(t["type"], t["runStatus"]) for t in toasts] == [
        ("RUN_QUEUED", "QUEUED"),
        ("RUN_STARTED", "RUNNING"),
        ("RUN_FINISHED", "SUCCEEDED"),
    ]
    assert {t["actor"]["name"] for t in toasts} == {"Erin Editor"}
    assert toasts[-1]["run"] == {
        "id": run_id,
        "workflow": "check_models",
        "status": "SUCCEEDED",
        "percent": 100,
        "subject": {"label": "Olivia Owner's workspace"},
        "triggeredBy": {"id": erin.user_id},
    }
    cursors = [int(t["cursor"]) for t in toasts]
    assert cursors == sorted(cursors)
    async with db() as s:
        feed_rows = (
            await s.execute(
                select(WorkspaceEvent.id, WorkspaceEvent.type).order_by(WorkspaceEvent.id)
            )
        ).all()
    # The stored log: Erin's arrival (before the subscription started), then what it sent.
    assert [(str(i), kind) for i, kind in feed_rows] == [
        ("1", "MEMBER_INVITED"),
        ("2", "MEMBER_JOINED"),
        *[(t["cursor"], t["type"]) for t in toasts],
    ]

    # Step 7 — The run's page: RunDetail.
    detail = (await client.op("RunDetail", {"runId": run_id}, token=erin.token))["run"]
    assert detail["status"] == "SUCCEEDED"
    assert (detail["percent"], detail["currentStep"], detail["attempt"]) == (100, "EMBED", 1)
    assert detail["retryOf"] is None
    assert detail["triggeredBy"] == {"id": erin.user_id, "name": "Erin Editor"}
    assert detail["subject"]["type"] == "WORKSPACE"
    assert detail["subject"]["id"] == team.workspace_id
    assert detail["inputSummary"] == (
        f"chat {settings.chat_model}, embeddings {settings.embed_model}"
    )
    assert detail["outputSummary"].startswith("Chat model answered ")
    assert detail["outputSummary"].endswith(" dimensions.")
    assert (detail["errorCode"], detail["errorMessage"], detail["cancelRequested"]) == (
        None,
        None,
        False,
    )
    created, started_at, finished = (
        datetime.fromisoformat(detail[k]) for k in ("createdAt", "startedAt", "finishedAt")
    )
    assert created <= started_at <= finished
    assert finished.utcoffset() == timedelta(0)
    assert [(s["position"], s["name"], s["status"], s["attempts"]) for s in detail["steps"]] == [
        (i, name, "SUCCEEDED", 1) for i, name in enumerate(STEPS)
    ]
    assert all(s["error"] is None and s["durationMs"] >= 0 for s in detail["steps"])
    log = detail["events"]
    assert log["totalCount"] == len(seen)
    assert [e["node"]["cursor"] for e in log["edges"]] == [e["cursor"] for e in seen[:25]]
    assert [e["node"]["type"] for e in log["edges"]] == [e["type"] for e in seen[:25]]

    # Step 8 — The lists: RunsMonitor shows the run; the dashboard has no active run left.
    monitor = await client.op("RunsMonitor", {"workspaceId": team.workspace_id}, token=erin.token)
    runs = monitor["workspace"]["runs"]
    assert runs["totalCount"] == 1
    row = runs["edges"][0]["node"]
    assert (row["id"], row["status"], row["percent"], row["workflow"]) == (
        run_id,
        "SUCCEEDED",
        100,
        "check_models",
    )
    assert row["triggeredBy"]["name"] == "Erin Editor"
    dashboard = await client.op("Dashboard", {"workspaceId": team.workspace_id}, token=erin.token)
    assert dashboard["workspace"]["activeRuns"]["totalCount"] == 0
    async with db() as s:
        assert (await s.execute(select(Run.status))).scalars().all() == ["SUCCEEDED"]
    # The activity feed holds the toasts' events, newest first, then Erin's arrival.
    activity = dashboard["workspace"]["activity"]
    assert [(e["cursor"], e["type"], e["runStatus"], e["message"]) for e in activity[:-2]] == [
        (t["cursor"], t["type"], t["runStatus"], t["message"]) for t in reversed(toasts)
    ]
    assert [e["type"] for e in activity[-2:]] == ["MEMBER_JOINED", "MEMBER_INVITED"]
    runs = activity[:-2]
    assert runs[0]["message"] == "check_models succeeded for Olivia Owner's workspace"
    assert {e["actorName"] for e in runs} == {"Erin Editor"}
    assert {e["runId"] for e in runs} == {run_id}
    # A run's events are about the run's subject.
    assert {(e["subject"]["type"], e["subject"]["id"]) for e in runs} == {
        ("WORKSPACE", team.workspace_id)
    }

    # Step 9 — Later, Erin opens the dashboard again and follows on from its feed: the newest
    # event's cursor as `after`. Olivia starts a model check; the feed brings its events and
    # nothing it already showed.
    newest = activity[0]["cursor"]
    again = await subscribe(
        "WorkspaceEvents", {"workspaceId": team.workspace_id, "after": newest}, erin.user_id
    )
    followed: list[dict[str, Any]] = []

    async def follow() -> None:
        async for result in again:
            assert result.errors is None, result.errors
            event = result.data["workspaceEvents"]
            if event["type"] != "RUN_PROGRESS":
                followed.append(event)
            if event["type"] == "RUN_FINISHED":
                return

    listening = app.state.deps.bus.subscriber_count
    follower = asyncio.create_task(follow())
    await until_listening(app, listening)
    second = await client.op(
        "CheckModels", {"input": {"workspaceId": team.workspace_id}}, token=team.owner.token
    )
    second_id = second["checkModels"]["run"]["id"]
    await asyncio.wait_for(follower, 300)
    assert [(int(e["cursor"]), e["type"]) for e in followed] == [
        (int(newest) + 1, "RUN_QUEUED"),
        (int(newest) + 2, "RUN_STARTED"),
        (int(newest) + 3, "RUN_FINISHED"),
    ]
    assert {e["run"]["id"] for e in followed} == {second_id}
    assert {e["actor"]["name"] for e in followed} == {"Olivia Owner"}
