"""Runs executed in-process on live PostgreSQL and Redis: success, failure and retry, cancel,
permissions, and the runProgress / workspaceEvents streams."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from app.main import create_app
from base.models import Run, RunEvent
from tests.e2e.runs_support import slow_link
from tests.integration.runs.conftest import check_models, event_log, get_run, uuid_of
from tests.support.graphql import GraphQLClient, first_workspace, sign_up

STEPS = ["CONNECT", "LIST_MODELS", "CHAT", "EMBED"]


async def _owner(client: GraphQLClient) -> tuple[dict, dict]:
    session = await sign_up(client, "Owner", "owner@example.com")
    return session, await first_workspace(client, session["accessToken"])


async def test_model_check_run_succeeds_with_a_complete_event_log(client: GraphQLClient, app):
    session, workspace = await _owner(client)
    token = session["accessToken"]
    started = await check_models(client, token, workspace["id"])
    assert started["errors"] == []
    assert started["run"]["status"] == "QUEUED"
    await app.state.runs.launcher.wait_idle()

    run = await get_run(client, token, started["run"]["id"])
    assert (run["status"], run["percent"], run["errorCode"]) == ("SUCCEEDED", 100, None)
    assert [s["name"] for s in run["steps"]] == STEPS
    assert {s["status"] for s in run["steps"]} == {"SUCCEEDED"}
    assert run["outputSummary"].endswith("embedding model gives 576 dimensions.")
    events = await event_log(client, token, started["run"]["id"])
    assert [int(e["cursor"]) for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events if e["type"] != "STEP_PROGRESS"]
    assert types == ["RUN_QUEUED", "RUN_STARTED"] + [
        t for step in STEPS for t in ("STEP_STARTED", "STEP_SUCCEEDED")
    ] + ["RUN_SUCCEEDED"]
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents) and percents[-1] == 100


async def test_failed_run_is_retried_from_the_step_that_failed(
    client: GraphQLClient, app, settings
):
    session, workspace = await _owner(client)
    token = session["accessToken"]
    # The same database, served by an API whose chat model the server does not have.
    broken = create_app(settings.model_copy(update={"chat_model": "missing:latest"}))
    async with broken.router.lifespan_context(broken):
        from httpx import ASGITransport, AsyncClient

        async with AsyncClient(transport=ASGITransport(app=broken), base_url="http://b") as http:
            failed = await check_models(GraphQLClient(http), token, workspace["id"])
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


async def _cancel_mid_chat(
    client: GraphQLClient, token: str, workspace_id: str, long_settings
) -> tuple[str, float]:
    """Start a model check on an app with `long_settings`, cancel it once CHAT streams; the run
    id and the seconds from the cancel to the run's end."""
    long_app = create_app(long_settings)
    async with long_app.router.lifespan_context(long_app):
        from httpx import ASGITransport, AsyncClient

        async with AsyncClient(transport=ASGITransport(app=long_app), base_url="http://l") as http:
            long_client = GraphQLClient(http)
            run_id = (await check_models(long_client, token, workspace_id))["run"]["id"]
            for _ in range(300):  # until tokens stream
                if any(
                    e["type"] == "STEP_PROGRESS"
                    for e in await event_log(long_client, token, run_id)
                ):
                    break
                await asyncio.sleep(0.05)
            asked = time.monotonic()
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
            await long_app.state.runs.launcher.wait_idle()
            took = time.monotonic() - asked
    return run_id, took


async def test_cancel_stops_a_running_run_within_a_second(client: GraphQLClient, app, db, settings):
    session, workspace = await _owner(client)
    token = session["accessToken"]
    # The model ends its answer after 10-50 tokens (well under a second), so without the slow
    # link the cancel could land after CHAT had ended (tests/e2e/runs_support.py says more).
    with slow_link(settings.ollama_host, 0.12) as slow_model:
        long_settings = settings.model_copy(
            update={"model_check_max_tokens": 3000, "ollama_host": slow_model}
        )
        run_id, took = await _cancel_mid_chat(client, token, workspace["id"], long_settings)
    run = await get_run(client, token, run_id)
    assert run["status"] == "CANCELLED"
    assert took < 1.0, took
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


async def test_who_may_cancel_and_retry(client: GraphQLClient, app, db):
    owner, workspace = await _owner(client)
    members = {}
    for role in ("VIEWER", "EDITOR"):
        invited = await client.op(
            "InviteMember",
            {
                "input": {
                    "workspaceId": workspace["id"],
                    "email": f"{role.lower()}@example.com",
                    "role": role,
                }
            },
            token=owner["accessToken"],
        )
        members[role] = await sign_up(client, role.title(), f"{role.lower()}@example.com")
        link = invited["inviteMember"]["inviteLink"]
        await client.op(
            "AcceptInvite",
            {"input": {"token": link.rsplit("/", 1)[1]}},
            token=members[role]["accessToken"],
        )
    outsider = await sign_up(client, "Outsider", "outsider@example.com")
    # A queued run of the owner's, held back from execution so it stays cancellable.
    launcher = app.state.runs.launcher
    held = []

    async def hold(run_id):
        held.append(run_id)

    launcher.enqueue = hold
    run_id = (await check_models(client, owner["accessToken"], workspace["id"]))["run"]["id"]

    async def cancel(token: str) -> dict:
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
    assert await cancel(members["VIEWER"]["accessToken"]) == {
        "run": None,
        "errors": [
            {
                "code": "FORBIDDEN",
                "message": "This needs the EDITOR role or higher; you are VIEWER.",
            }
        ],
    }
    assert await cancel(members["EDITOR"]["accessToken"]) == {
        "run": None,
        "errors": [
            {
                "code": "FORBIDDEN",
                "message": "An EDITOR can cancel or retry only the runs they started.",
            }
        ],
    }
    assert await cancel(outsider["accessToken"]) == {
        "run": None,
        "errors": [{"code": "NOT_FOUND", "message": "No such run."}],
    }
    assert await events_count() == before
    async with db() as s:
        assert (await s.execute(select(Run.status))).scalar_one().value == "QUEUED"
    # An EDITOR may cancel their own run; the OWNER any run.
    own = (await check_models(client, members["EDITOR"]["accessToken"], workspace["id"]))["run"][
        "id"
    ]
    mine = await client.execute(
        "mutation($r: ID!) { cancelRun(input: {runId: $r}) { run { status } errors { code } } }",
        {"r": own},
        token=members["EDITOR"]["accessToken"],
    )
    assert mine["data"]["cancelRun"] == {"run": {"status": "CANCELLED"}, "errors": []}
    assert await cancel(owner["accessToken"]) == {"run": {"status": "CANCELLED"}, "errors": []}
    assert len(held) == 2
    # A viewer cannot start a model check either, and an outsider's workspace id is not found.
    denied = await check_models(client, members["VIEWER"]["accessToken"], workspace["id"])
    assert denied["errors"][0]["code"] == "FORBIDDEN"
    hidden = await check_models(client, outsider["accessToken"], workspace["id"])
    assert hidden["errors"] == [
        {"code": "NOT_FOUND", "message": "No such workspace.", "field": "workspaceId"}
    ]


async def test_run_progress_replays_after_the_cursor_then_follows_live(client, app, subscribe):
    session, workspace = await _owner(client)
    token = session["accessToken"]
    query = (
        "subscription($r: ID!, $a: String) { runProgress(runId: $r, after: $a) "
        "{ cursor type percent } }"
    )
    run_id = (await check_models(client, token, workspace["id"]))["run"]["id"]
    # Follow it live from the start...
    live = await subscribe(query, {"r": run_id, "a": None}, session["user"]["id"])
    seen = [r.data["runProgress"] async for r in live]
    assert [int(e["cursor"]) for e in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["type"] == "RUN_SUCCEEDED"
    # ...and replay it after a cursor once it has ended: exactly the rest, then the stream ends.
    replay = await subscribe(query, {"r": run_id, "a": "3"}, session["user"]["id"])
    rest = [r.data["runProgress"] async for r in replay]
    assert rest == seen[3:]


async def test_run_progress_of_another_workspace_is_not_found(client, app, subscribe):
    session, workspace = await _owner(client)
    outsider = await sign_up(client, "Outsider", "outsider@example.com")
    run_id = (await check_models(client, session["accessToken"], workspace["id"]))["run"]["id"]
    await app.state.runs.launcher.wait_idle()
    query = "subscription($r: ID!) { runProgress(runId: $r) { cursor } }"
    foreign = await subscribe(query, {"r": run_id}, outsider["user"]["id"])
    missing_id = "UnVuOjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA=="
    missing = await subscribe(query, {"r": missing_id}, outsider["user"]["id"])
    answers = []
    for stream in (foreign, missing):
        results = [r async for r in stream] if hasattr(stream, "__aiter__") else [stream]
        answers.append([(e.message, e.extensions["code"]) for r in results for e in r.errors])
    assert answers[0] == answers[1] == [("No such run.", "NOT_FOUND")]


async def test_workspace_events_tell_each_run_start_and_end(client, app, subscribe):
    session, workspace = await _owner(client)
    token = session["accessToken"]
    query = (
        "subscription($w: ID!, $a: String) { workspaceEvents(workspaceId: $w, after: $a) "
        "{ cursor type runStatus run { workflow status } actor { name } } }"
    )
    stream = await subscribe(query, {"w": workspace["id"], "a": None}, session["user"]["id"])
    received = []

    async def collect():
        async for result in stream:
            received.append(result.data["workspaceEvents"])
            if result.data["workspaceEvents"]["type"] == "RUN_FINISHED":
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.2)  # the subscription is listening before the run starts
    await check_models(client, token, workspace["id"])
    await asyncio.wait_for(collector, 30)
    assert [(e["type"], e["runStatus"]) for e in received] == [
        ("RUN_QUEUED", "QUEUED"),
        ("RUN_STARTED", "RUNNING"),
        ("RUN_FINISHED", "SUCCEEDED"),
    ]
    assert {e["actor"]["name"] for e in received} == {"Owner"}
    cursors = [int(e["cursor"]) for e in received]
    assert cursors == sorted(cursors)
    replay = await subscribe(
        query, {"w": workspace["id"], "a": str(cursors[0])}, session["user"]["id"]
    )
    first_two = []
    async for result in replay:
        first_two.append(result.data["workspaceEvents"]["type"])
        if len(first_two) == 2:
            break
    assert first_two == ["RUN_STARTED", "RUN_FINISHED"]
    _ = uuid_of


async def test_a_failed_run_is_retried_once_and_a_finished_replay_ends(
    client, app, settings, db, subscribe
):
    session, workspace = await _owner(client)
    token = session["accessToken"]
    broken = create_app(settings.model_copy(update={"chat_model": "missing:latest"}))
    async with broken.router.lifespan_context(broken):
        from httpx import ASGITransport, AsyncClient

        async with AsyncClient(transport=ASGITransport(app=broken), base_url="http://b") as http:
            failed = await check_models(GraphQLClient(http), token, workspace["id"])
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
        query, {"r": failed["run"]["id"], "a": log[-1]["cursor"]}, session["user"]["id"]
    )
    assert [r async for r in stream] == []


async def test_a_removed_member_stops_receiving_workspace_events(
    client, app, subscribe, monkeypatch
):
    from services import live

    monkeypatch.setattr(live, "ACCESS_RECHECK_SECONDS", 0.0)  # re-check before every delivery
    owner, workspace = await _owner(client)
    invited = await client.op(
        "InviteMember",
        {"input": {"workspaceId": workspace["id"], "email": "v@example.com", "role": "VIEWER"}},
        token=owner["accessToken"],
    )
    viewer = await sign_up(client, "Vera", "v@example.com")
    token = invited["inviteMember"]["inviteLink"].rsplit("/", 1)[1]
    await client.op("AcceptInvite", {"input": {"token": token}}, token=viewer["accessToken"])
    query = "subscription($w: ID!) { workspaceEvents(workspaceId: $w) { type } }"
    stream = await subscribe(query, {"w": workspace["id"]}, viewer["user"]["id"])
    first = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0.2)
    await check_models(client, owner["accessToken"], workspace["id"])
    assert (await asyncio.wait_for(first, 10)).data == {"workspaceEvents": {"type": "RUN_QUEUED"}}
    await app.state.runs.launcher.wait_idle()
    members = await client.op(
        "WorkspaceMembers", {"workspaceId": workspace["id"]}, token=owner["accessToken"]
    )
    [member] = [
        e["node"]["id"]
        for e in members["workspace"]["members"]["edges"]
        if e["node"]["user"]["id"] == viewer["user"]["id"]
    ]
    await client.op("RemoveMember", {"input": {"memberId": member}}, token=owner["accessToken"])
    await check_models(client, owner["accessToken"], workspace["id"])
    after_removal = await asyncio.wait_for(stream.__anext__(), 10)
    assert after_removal.data is None
    assert [(e.message, e.extensions["code"]) for e in after_removal.errors] == [
        ("No such workspace.", "NOT_FOUND")
    ]
