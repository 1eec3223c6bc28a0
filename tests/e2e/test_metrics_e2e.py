"""Metrics end to end (ADR 0087): a real API process (uvicorn) and a real worker
(`python -m app worker` with WORKER_METRICS_PORT), scraped over HTTP after a model check ran on
the worker through the Redis queue.

Both processes are fresh, so the counters are asserted as exact values. The module has its own
database and Redis database 11 (the queue `kd:runs` is a key, per database).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from tests.e2e import runs_support as rs
from tests.support.databases import fresh_database
from tests.support.graphql import GraphQLClient, operation
from tests.support.live_server import live_server
from tests.support.metrics import Samples, value
from tests.support.metrics import scrape as scrape_app
from tests.support.services import free_port
from tests.support.waiting import eventually

JWT_SECRET = "e2e-metrics-live-jwt-secret-0123456789ab"
TOKEN = "e2e-metrics-token-0123456789"

pytestmark = pytest.mark.timeout(240)


@dataclass
class Processes:
    api: str
    worker: rs.WorkerProcess
    worker_metrics: str


@pytest.fixture(scope="module")
def processes(postgres_url: str, redis_url: str, ollama_host: str) -> Iterator[Processes]:
    parts = urlsplit(redis_url)
    redis_11 = urlunsplit((parts.scheme, parts.netloc, "/11", parts.query, parts.fragment))
    flushed = redis.Redis.from_url(redis_11)
    flushed.flushdb()
    flushed.close()
    port = free_port()
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(fresh_database(postgres_url, "e2e_metrics"))
        common = {
            "APP_ENV": "test",
            "DATABASE_URL": database,
            "REDIS_URL": redis_11,
            "JWT_SECRET": JWT_SECRET,
            "OLLAMA_HOST": ollama_host,
            "RUN_EXECUTION": "queue",
            "MODEL_CHECK_MAX_TOKENS": "8",
        }
        api = stack.enter_context(
            live_server({**common, "METRICS_TOKEN": TOKEN, "LOG_LEVEL": "WARNING"})
        )
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kd-metrics-")))
        (log_dir / "worker.log").touch()
        worker = rs.WorkerProcess(
            name="worker",
            env={**common, "WORKER_METRICS_PORT": str(port), "LOG_LEVEL": "INFO"},
            log=log_dir / "worker.log",
        )
        stack.callback(worker.stop)
        worker.start()
        yield Processes(api, worker, f"http://127.0.0.1:{port}")


async def scrape(url: str, token: str | None = None) -> Samples:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await scrape_app(http, token)


async def test_a_model_check_shows_on_the_api_and_on_the_worker(processes: Processes) -> None:
    async with httpx.AsyncClient(base_url=processes.api, timeout=60) as http:
        assert (await http.get("/metrics")).status_code == 401
        api = GraphQLClient(http)
        session = (
            await api.op(
                "SignUp",
                {"input": {"name": "Ops", "email": "ops@example.com", "password": "a long phrase"}},
            )
        )["signUp"]["session"]
        token = session["accessToken"]
        shell = await api.op("AppShell", token=token)
        workspace = shell["workspaces"]["edges"][0]["node"]["id"]
        started = await api.op("CheckModels", {"input": {"workspaceId": workspace}}, token=token)
        run_id = started["checkModels"]["run"]["id"]

        async def finished() -> str | None:
            result = await api.execute(
                "query($id: ID!) { run(id: $id) { status } }", {"id": run_id}, token=token
            )
            status: str = result["data"]["run"]["status"]
            return status if status in ("SUCCEEDED", "FAILED", "CANCELLED") else None

        assert await eventually(finished, within=120, what="the model check to end") == "SUCCEEDED"
        refused = await api.execute(operation("AppShell"))
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # The worker acknowledges the message once the run has ended.
    async def acknowledged() -> bool:
        samples = await scrape(processes.api, TOKEN)
        return value(samples, "kd_run_queue_messages", state="pending") == 0

    await eventually(
        acknowledged,
        within=30,
        what="the run's message to be acknowledged",
    )
    on_api = await scrape(processes.api, TOKEN)
    requests = "kd_graphql_requests_total"
    assert value(on_api, requests, operation="SignUp", outcome="ok") == 1
    assert value(on_api, requests, operation="AppShell", outcome="ok") == 1
    assert value(on_api, requests, operation="AppShell", outcome="UNAUTHENTICATED") == 1
    assert value(on_api, requests, operation="CheckModels", outcome="ok") == 1
    assert value(on_api, "kd_run_queue_up") == 1
    assert value(on_api, "kd_run_queue_messages", state="waiting") == 0
    # The API only queued the run: it executed nothing and called no model.
    assert value(on_api, "kd_runs_finished_total", workflow="check_models", status="SUCCEEDED") == 0
    assert value(on_api, "kd_llm_requests_total", kind="chat", outcome="ok") == 0

    # The worker's port: no token, loopback only.
    on_worker = await scrape(processes.worker_metrics)
    finished_runs = "kd_runs_finished_total"
    assert value(on_worker, finished_runs, workflow="check_models", status="SUCCEEDED") == 1
    assert value(on_worker, "kd_run_seconds_count", workflow="check_models") == 1
    assert value(on_worker, "kd_llm_requests_total", kind="chat", outcome="ok") == 1
    assert value(on_worker, "kd_llm_requests_total", kind="embed", outcome="ok") == 1
    assert value(on_worker, "kd_run_queue_up") == 1
    assert value(on_worker, "kd_event_bus_subscribers") >= 0
    assert ("kd_db_pool_checked_out", frozenset()) in on_worker
    assert not any(name == requests for name, _labels in on_worker)  # no GraphQL on a worker
    assert rs.pid_listening_on(int(urlsplit(processes.worker_metrics).port or 0)) == (
        processes.worker.pid
    )
