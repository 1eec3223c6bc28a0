"""Many clients replaying one finished run at once (a reconnect storm) share its reads: each gets
its whole log after its own cursor, in order and once, from one read of the database."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import FastAPI

from base.settings import Settings
from tests.integration.runs.conftest import check_models, event_log
from tests.support.app_fixtures import Subscribe
from tests.support.databases import count_statements
from tests.support.graphql import GraphQLClient
from tests.support.team import set_up_team

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
    return [r.data["runProgress"] for r in results]


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
    assert replays == [expected] * SUBSCRIBERS
    # One read of the run's status and log for all of them (and an access check each).
    tables = [tables_read(s) for s in statements]
    assert sorted(tables) == ["run_events"] + ["runs"] * (SUBSCRIBERS + 1), statements

    # Later replays, at any cursor, read no more of the run: its log can no longer change.
    with count_statements(app.state.engine) as statements:
        later = await replay(subscribe, run_id, owner.user_id, "2")
    assert later == expected[2:]
    assert [tables_read(s) for s in statements] == ["runs"]  # the access check


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
    whole = replays[0]
    assert [int(e["cursor"]) for e in whole] == list(range(1, len(whole) + 1))
    assert replays == [whole, whole, whole[1:], whole[3:], []] * 4
