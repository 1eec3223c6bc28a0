"""GET /metrics (ADR 0087): real requests, runs and queue states, then exact deltas in a scrape.

The metrics are process-wide and other tests of the session move them too, so each test reads
a scrape before and after what it does and compares the two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis
from fastapi import FastAPI

from app.main import create_app
from base.metrics import QUEUE_READ_TIMEOUT_SECONDS
from base.settings import Settings
from tests.integration.runs.conftest import check_models, get_run
from tests.support.app_fixtures import changed, sqlite_settings
from tests.support.graphql import GraphQLClient, operation
from tests.support.metrics import scrape, value
from tests.support.services import own_redis_server
from tests.support.team import set_up_team
from tests.support.waiting import eventually

TOKEN = "metrics-token-0123456789"


async def test_graphql_requests_are_counted_by_operation_and_outcome(
    client: GraphQLClient, settings: Settings
) -> None:
    team = await set_up_team(client, settings)
    before = await scrape(client.http)

    for _ in range(2):
        await client.op("AppShell", token=team.owner.token)
    refused = await client.execute(operation("AppShell"))  # no token
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    made_up = await client.execute("query Mine { __typename }")  # a name no document has
    assert made_up == {"data": {"__typename": "Query"}}
    unparsable = await client.execute("query AppShell {", None)
    assert unparsable["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    no_preflight = await client.http.get("/graphql", params={"query": "{ __typename }"})
    assert no_preflight.json()["errors"][0]["extensions"]["code"] == "PREFLIGHT_REQUIRED"

    after = await scrape(client.http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "kd_graphql_requests_total"
    assert delta(requests, operation="AppShell", outcome="ok") == 2
    assert delta(requests, operation="AppShell", outcome="UNAUTHENTICATED") == 1
    assert delta(requests, operation="other", outcome="ok") == 1
    # A document that does not parse names no operation, whatever its text says.
    assert delta(requests, operation="other", outcome="GRAPHQL_PARSE_FAILED") == 1
    assert delta(requests, operation="other", outcome="PREFLIGHT_REQUIRED") == 1
    assert delta("kd_graphql_request_seconds_count", operation="AppShell") == 3
    assert delta("kd_graphql_request_seconds_count", operation="other") == 3
    assert not any(labels and dict(labels).get("operation") == "Mine" for _name, labels in after), (
        "a made-up operation name became a label"
    )


async def test_a_model_check_counts_one_finished_run_and_its_model_calls(
    client: GraphQLClient, app: FastAPI, settings: Settings
) -> None:
    team = await set_up_team(client, settings)
    before = await scrape(client.http)

    started = await check_models(client, team.owner.token, team.workspace_id)
    await app.state.runs.launcher.wait_idle()
    assert (await get_run(client, team.owner.token, started["run"]["id"]))["status"] == "SUCCEEDED"
    after = await scrape(client.http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    finished = "kd_runs_finished_total"
    assert delta(finished, workflow="check_models", status="SUCCEEDED") == 1
    assert delta(finished, workflow="check_models", status="FAILED") == 0
    assert delta("kd_run_seconds_count", workflow="check_models") == 1
    assert delta("kd_run_queued_seconds_count", workflow="check_models") == 1
    assert delta("kd_runs_resumed_total", workflow="check_models") == 0
    # Its CHAT step streams one answer and its EMBED step embeds one text.
    assert delta("kd_llm_requests_total", kind="chat", outcome="ok") == 1
    assert delta("kd_llm_requests_total", kind="embed", outcome="ok") == 1
    assert delta("kd_llm_seconds_count", kind="chat") == 1
    assert delta("kd_llm_tokens_total", kind="chat", direction="completion") > 0


async def test_bus_and_sign_in_counters_and_the_gauges_of_the_process(
    client: GraphQLClient, app: FastAPI, settings: Settings
) -> None:
    bus = app.state.deps.bus
    before = await scrape(client.http)
    await bus.publish("metrics-test", {"type": "PING"})
    await bus.publish("metrics-test", {"type": "PING"})
    async with bus.subscribe("metrics-test"), bus.subscribe("metrics-test"):
        during = await scrape(client.http)
    after = await scrape(client.http)
    assert value(during, "kd_events_published_total") - value(
        before, "kd_events_published_total"
    ) == (2)
    assert value(during, "kd_event_bus_subscribers") == bus.subscriber_count + 2
    assert value(after, "kd_event_bus_subscribers") == bus.subscriber_count

    async with app.state.engine.connect(), app.state.engine.connect():
        held = await scrape(client.http)
    assert value(held, "kd_db_pool_checked_out") >= 2
    await eventually(
        lambda: app.state.engine.pool.checkedout() == 0, within=10, what="the pool to be idle"
    )
    assert value(await scrape(client.http), "kd_db_pool_checked_out") == 0


@pytest.mark.settings(sign_in_attempts_per_account="2/5minutes")
async def test_a_refused_sign_in_is_counted(client: GraphQLClient) -> None:
    before = await scrape(client.http)
    codes = []
    for _ in range(3):
        data = await client.op(
            "SignIn", {"input": {"email": "ada@example.com", "password": "not her pass phrase"}}
        )
        codes.append(data["signIn"]["errors"][0]["code"])
    assert codes == ["INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "RATE_LIMITED"]
    after = await scrape(client.http)
    assert value(after, "kd_sign_in_refusals_total") - value(
        before, "kd_sign_in_refusals_total"
    ) == (1)


@pytest.mark.settings(metrics_token=TOKEN)
async def test_the_token_is_required_when_set(client: GraphQLClient) -> None:
    for headers in (
        {},
        {"authorization": "Bearer wrong-token-0123456789"},
        {"authorization": TOKEN},
    ):
        refused = await client.http.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert "kd_" not in refused.text
    samples = await scrape(client.http, token=TOKEN)
    assert ("kd_run_queue_up", frozenset()) in samples


@pytest.mark.settings(metrics_enabled=False)
async def test_no_metrics_path_when_disabled(client: GraphQLClient) -> None:
    response = await client.http.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.settings(run_execution="queue")
async def test_the_queue_gauge_reads_waiting_and_pending_messages(
    client: GraphQLClient, settings: Settings
) -> None:
    team = await set_up_team(client, settings)
    samples = await scrape(client.http)
    assert value(samples, "kd_run_queue_up") == 1
    assert value(samples, "kd_run_queue_messages", state="waiting") == 0
    assert value(samples, "kd_run_queue_messages", state="pending") == 0

    await check_models(client, team.owner.token, team.workspace_id)  # no worker: it waits
    samples = await scrape(client.http)
    assert value(samples, "kd_run_queue_messages", state="waiting") == 1
    assert value(samples, "kd_run_queue_messages", state="pending") == 0

    # A consumer of the workers' group takes it and has not acknowledged it yet.
    queue = redis.from_url(settings.redis_url or "")
    try:
        await queue.xgroup_create("kd:runs", "kd-workers", id="0")
        taken = await queue.xreadgroup("kd-workers", "test-consumer", {"kd:runs": ">"}, count=1)
        assert len(taken[0][1]) == 1
    finally:
        await queue.aclose()
    samples = await scrape(client.http)
    assert value(samples, "kd_run_queue_messages", state="waiting") == 0
    assert value(samples, "kd_run_queue_messages", state="pending") == 1


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield application, http


async def test_a_scrape_with_redis_stopped_says_the_queue_is_down(settings: Settings) -> None:
    with own_redis_server() as server:
        async with app_client(changed(settings, redis_url=server.url)) as (_app, http):
            assert value(await scrape(http), "kd_run_queue_up") == 1
            server.stop()
            async with asyncio.timeout(QUEUE_READ_TIMEOUT_SECONDS + 10):  # a hang fails here
                samples = await scrape(http)
            assert value(samples, "kd_run_queue_up") == 0
            assert ("kd_run_queue_messages", frozenset({("state", "waiting")})) not in samples


@pytest.fixture
def embedded_settings(tmp_path: Path, blob_root: Path) -> Settings:
    return sqlite_settings(tmp_path, blob_root)  # migrates: outside the test's event loop


async def test_no_queue_gauge_without_redis(embedded_settings: Settings) -> None:
    async with app_client(embedded_settings) as (_app, http):
        samples = await scrape(http)
    assert ("kd_run_queue_up", frozenset()) not in samples
    assert value(samples, "kd_event_bus_subscribers") == 0
