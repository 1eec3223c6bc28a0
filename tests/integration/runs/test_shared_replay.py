"""Many clients replaying one finished run at once (a reconnect storm) share its reads: each gets
its whole log after its own cursor, in order and once, in one message, from one read of the
database."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from fastapi import FastAPI

from base.settings import Settings
from tests.integration.runs.conftest import check_models, event_log
from tests.support.app_fixtures import Subscribe
from tests.support.databases import count_statements
from tests.support.graphql import GraphQLClient
from tests.support.team import invite_and_accept, set_up_team

QUERY = (
    "subscription($r: ID!, $a: String) { runProgress(runId: $r, after: $a) "
    "{ cursor type percent message } }"
)
SUBSCRIBERS = 20


def tables_read(statement: str) -> str:
    """The table a SELECT reads first ("runs" for `SELECT ... FROM runs WHERE ...`)."""
    found = re.search(r"\bFROM\s+(\w+)", statement)
    return found.group(1) if found else statement


async def finished_run(client: GraphQLClient, app: FastAPI, token: str, workspace_id: str) -> str:
    run_id: str = (await check_models(client, token, workspace_id))["run"]["id"]
    await app.state.runs.launcher.wait_idle()
    return run_id


async def replay(subscribe: Subscribe, run_id: str, user_id: str, after: str | None) -> Any:
    stream = await subscribe(QUERY, {"r": run_id, "a": after}, user_id)
    if not hasattr(stream, "__aiter__"):
        return [(e.message, e.extensions["code"]) for e in stream.errors]
    results = [r async for r in stream]
    if results and results[-1].errors:
        return [(e.message, e.extensions["code"]) for e in results[-1].errors]
    return [r.data["runProgress"] for r in results]  # the messages, each a list of events


async def test_concurrent_replays_of_a_finished_run_each_get_the_whole_log_once(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings)
    owner = team.owner
    run_id = await finished_run(client, app, owner.token, team.workspace_id)
    log = await event_log(client, owner.token, run_id)
    expected = [
        {k: e[k] for k in ("cursor", "type", "percent", "message")} for e in log
    ]  # the stored log, read through the query
    assert expected[-1]["type"] == "RUN_SUCCEEDED"

    with count_statements(app.state.engine) as statements:
        replays = await asyncio.gather(
            *[replay(subscribe, run_id, owner.user_id, None) for _ in range(SUBSCRIBERS)]
        )
    assert replays == [[expected]] * SUBSCRIBERS  # one message each
    # One access check of the owner, and one read of the run's status and log, for all of them.
    assert [tables_read(s) for s in statements] == ["runs", "runs", "run_events"], statements

    # Later replays, at any cursor, read no more of the run: its log can no longer change.
    with count_statements(app.state.engine) as statements:
        later = await replay(subscribe, run_id, owner.user_id, "2")
    assert later == [expected[2:]]
    assert statements == []  # and the owner's access was checked less than 5 s ago


async def test_concurrent_replays_from_different_cursors_each_get_only_what_follows_theirs(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings)
    owner = team.owner
    run_id = await finished_run(client, app, owner.token, team.workspace_id)
    cursors = [None, "0", "1", "3", str(len(await event_log(client, owner.token, run_id)))]

    replays = await asyncio.gather(
        *[replay(subscribe, run_id, owner.user_id, after) for after in cursors * 4]
    )
    [whole] = replays[0]
    assert [int(e["cursor"]) for e in whole] == list(range(1, len(whole) + 1))
    assert replays == [[whole], [whole], [whole[1:]], [whole[3:]], []] * 4


NOT_FOUND = [("No such run.", "NOT_FOUND")]


async def test_an_outsider_is_refused_while_members_share_their_checks(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings, "viewer", "outsider")
    owner, viewer, outsider = team.owner, team.viewer, team.outsider
    run_id = await finished_run(client, app, owner.token, team.workspace_id)
    [whole] = await replay(subscribe, run_id, owner.user_id, None)

    users = [owner, outsider, viewer, outsider] * 5
    with count_statements(app.state.engine) as statements:
        replays = await asyncio.gather(
            *[replay(subscribe, run_id, user.user_id, None) for user in users]
        )
    assert replays == [[whole], NOT_FOUND, [whole], NOT_FOUND] * 5
    # The owner's check is recent; one check of the viewer's and one of the outsider's answer
    # each user's concurrent replays (never another user's).
    assert [tables_read(s) for s in statements] == ["runs", "runs"]


async def test_a_refusal_is_asked_again_so_a_new_member_is_let_in_at_once(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings, "outsider")
    owner, outsider = team.owner, team.outsider
    run_id = await finished_run(client, app, owner.token, team.workspace_id)
    assert await replay(subscribe, run_id, outsider.user_id, None) == NOT_FOUND
    await invite_and_accept(
        client,
        settings,
        team.workspace_id,
        "VIEWER",
        by=owner.token,
        email=outsider.email,
        invitee=outsider.token,
    )
    replayed = await replay(subscribe, run_id, outsider.user_id, None)
    assert replayed == await replay(subscribe, run_id, owner.user_id, None)
    assert replayed[-1][-1]["type"] == "RUN_SUCCEEDED"


@pytest.mark.settings(access_recheck_seconds=0)  # no answer is reused once it has come
async def test_a_removed_member_is_refused_while_others_replay(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings, "viewer")
    owner, viewer = team.owner, team.viewer
    run_id = await finished_run(client, app, owner.token, team.workspace_id)
    [whole] = await replay(subscribe, run_id, viewer.user_id, None)
    assert whole[-1]["type"] == "RUN_SUCCEEDED"
    await client.op("RemoveMember", {"input": {"memberId": viewer.member_id}}, token=owner.token)

    replays = await asyncio.gather(
        *[replay(subscribe, run_id, user.user_id, None) for user in [owner, viewer] * 5]
    )
    assert replays == [[whole], NOT_FOUND] * 5


async def test_an_opening_after_an_allowing_check_reads_nothing_and_a_refusal_is_asked_again(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    """The check (a workflow of `require_run`) runs once per user and run for every opening in
    ACCESS_RECHECK_SECONDS while it allows; a refusal is never reused, and no user's answer
    serves another."""
    team = await set_up_team(client, settings, "outsider")
    owner, outsider = team.owner, team.outsider
    run_id = await finished_run(client, app, owner.token, team.workspace_id)
    [whole] = await replay(subscribe, run_id, owner.user_id, None)
    assert await replay(subscribe, run_id, outsider.user_id, None) == NOT_FOUND
    with count_statements(app.state.engine) as statements:
        assert await replay(subscribe, run_id, owner.user_id, None) == [whole]
    assert statements == []
    with count_statements(app.state.engine) as statements:
        assert await replay(subscribe, run_id, outsider.user_id, None) == NOT_FOUND
    assert [tables_read(s) for s in statements] == ["runs"]  # asked again


@pytest.mark.settings(access_recheck_seconds=0)
async def test_with_no_recheck_interval_every_opening_runs_its_check(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
) -> None:
    team = await set_up_team(client, settings)
    owner = team.owner
    run_id = await finished_run(client, app, owner.token, team.workspace_id)
    await replay(subscribe, run_id, owner.user_id, None)
    with count_statements(app.state.engine) as statements:
        await replay(subscribe, run_id, owner.user_id, None)
    assert [tables_read(s) for s in statements] == ["runs"]  # the check's query, again
