"""The process's Prometheus metrics, declared once (ADR 0087).

Every metric lives in this process's memory and Prometheus scrapes each process (API processes
on `GET /metrics`, workers on `WORKER_METRICS_PORT`); one uvicorn process per container, so no
multiprocess mode. Labels are low-cardinality by construction: operation names from
graphql/operations (others are `other`), workflow names, statuses and error codes; never ids
or user input.

Counters and histograms are module-level and recorded where things happen (`record_*`). The
gauges that describe the process's state (subscribers, pool, queue) are read when scraped,
by `ProcessGauges`, so they cost nothing between scrapes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import redis.asyncio as redis
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:  # the bus counts its publishes here
    from base.events.bus import EventBus

log = logging.getLogger("knowledge_desk.metrics")

# Only this module's metrics (and the standard process_* and python_* collectors): not the
# default registry, which libraries may fill with their own.
REGISTRY = CollectorRegistry()
for _standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_standard)

# A scrape reads the run queue within this; past it (or when Redis fails) kd_run_queue_up is 0.
QUEUE_READ_TIMEOUT_SECONDS = 1.0

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RUN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

GRAPHQL_REQUESTS = Counter(
    "kd_graphql_requests",
    "HTTP GraphQL requests by operation name and outcome (ok, or the first error's code).",
    ["operation", "outcome"],
    registry=REGISTRY,
)
GRAPHQL_REQUEST_SECONDS = Histogram(
    "kd_graphql_request_seconds",
    "Time to answer an HTTP GraphQL request, by operation name.",
    ["operation"],
    buckets=_REQUEST_BUCKETS,
    registry=REGISTRY,
)
SOCKET_OPERATIONS = Counter(
    "kd_socket_operations",
    "Operations started over graphql-transport-ws, by how they were answered: executed, or "
    "replayed (the whole answer to an ended run's runProgress, sent again from memory).",
    ["answer"],
    registry=REGISTRY,
)
SOCKET_OPERATIONS_EXECUTED = SOCKET_OPERATIONS.labels("executed")
SOCKET_OPERATIONS_REPLAYED = SOCKET_OPERATIONS.labels("replayed")
RUNS_FINISHED = Counter(
    "kd_runs_finished",
    "Runs that ended, by workflow and final status.",
    ["workflow", "status"],
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "kd_run_seconds",
    "Time from a run's creation (QUEUED) to its end, by workflow.",
    ["workflow"],
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
RUN_QUEUED_SECONDS = Histogram(
    "kd_run_queued_seconds",
    "Time a run spent QUEUED, from its creation to its start, by workflow.",
    ["workflow"],
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
RUN_CANCEL_SECONDS = Histogram(
    "kd_run_cancel_seconds",
    "Time from a cancel request to the run's end as CANCELLED, by workflow.",
    ["workflow"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
ANSWER_FIRST_TOKEN_SECONDS = Histogram(
    "kd_answer_first_token_seconds",
    "Time to an answer's first token: since the question was asked (what the asker waits: "
    "queue, retrieval, prompt, model) or since the prompt went to the model (the model alone).",
    ["since"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0),
    registry=REGISTRY,
)
RUNS_RESUMED = Counter(
    "kd_runs_resumed",
    "Runs resumed (RUN_RESUMED) after their previous executor stopped, by workflow.",
    ["workflow"],
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    "kd_events_published",
    "Messages this process published on the event bus (run and workspace events, progress, "
    "answer text, cancel requests).",
    registry=REGISTRY,
)
SIGN_IN_REFUSALS = Counter(
    "kd_sign_in_refusals",
    "Sign-in attempts refused by the rate limits (RATE_LIMITED).",
    registry=REGISTRY,
)
LLM_REQUESTS = Counter(
    "kd_llm_requests",
    "Calls to the model server by kind (chat, embed) and outcome (ok, unavailable, error, "
    "cancelled); retries inside one call are not counted apart.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
LLM_SECONDS = Histogram(
    "kd_llm_seconds",
    "Time of a call to the model server, retries included, by kind.",
    ["kind"],
    buckets=_LLM_BUCKETS,
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "kd_llm_tokens",
    "Tokens the model server reported, by kind and direction (prompt, completion).",
    ["kind", "direction"],
    registry=REGISTRY,
)

LlmKind = Literal["chat", "embed"]


def record_graphql_request(operation: str, outcome: str, seconds: float) -> None:
    GRAPHQL_REQUESTS.labels(operation, outcome).inc()
    GRAPHQL_REQUEST_SECONDS.labels(operation).observe(seconds)


def record_run_finished(workflow: str, status: str, seconds: float) -> None:
    RUNS_FINISHED.labels(workflow, status).inc()
    RUN_SECONDS.labels(workflow).observe(max(seconds, 0.0))


def record_run_started(workflow: str, queued_seconds: float) -> None:
    RUN_QUEUED_SECONDS.labels(workflow).observe(max(queued_seconds, 0.0))


def record_run_cancelled(workflow: str, seconds_since_request: float) -> None:
    RUN_CANCEL_SECONDS.labels(workflow).observe(max(seconds_since_request, 0.0))


def record_answer_first_token(since_question: float, since_prompt: float) -> None:
    ANSWER_FIRST_TOKEN_SECONDS.labels("question").observe(max(since_question, 0.0))
    ANSWER_FIRST_TOKEN_SECONDS.labels("prompt").observe(max(since_prompt, 0.0))


def record_run_resumed(workflow: str) -> None:
    RUNS_RESUMED.labels(workflow).inc()


def record_llm_call(kind: LlmKind, outcome: str, seconds: float) -> None:
    LLM_REQUESTS.labels(kind, outcome).inc()
    LLM_SECONDS.labels(kind).observe(seconds)


def record_llm_tokens(kind: LlmKind, prompt: int, completion: int) -> None:
    if prompt:
        LLM_TOKENS.labels(kind, "prompt").inc(prompt)
    if completion:
        LLM_TOKENS.labels(kind, "completion").inc(completion)


class RunQueueProbe:
    """Reads the run queue's consumer group: messages waiting (not yet delivered to any worker)
    and pending (delivered, not yet acknowledged: runs in progress, or lost with their worker)."""

    def __init__(self, url: str, stream: str, group: str) -> None:
        self.stream = stream
        self.group = group
        timeout = QUEUE_READ_TIMEOUT_SECONDS / 2
        self._client = redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )

    async def read(self) -> tuple[int | None, int]:
        """(waiting, pending); waiting is None when Redis cannot tell (entries deleted)."""
        try:
            groups: list[dict[Any, Any]] = await self._client.xinfo_groups(self.stream)
        except redis.ResponseError as exc:
            if "no such key" not in str(exc).lower():
                raise
            return (0, 0)  # nothing was ever queued (or Redis restarted empty)
        for group in groups:
            name = group.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                lag = group.get("lag")
                return (int(lag) if lag is not None else None, int(group.get("pending") or 0))
        # No worker has created the group yet: every message waits.
        return (int(await self._client.xlen(self.stream)), 0)

    async def aclose(self) -> None:
        await self._client.aclose()


class ProcessGauges:
    """The gauges read at scrape time from this process's bus, engine and run queue."""

    def __init__(
        self,
        *,
        bus: EventBus | None = None,
        engine: AsyncEngine | None = None,
        queue: RunQueueProbe | None = None,
    ) -> None:
        self.bus = bus
        self.engine = engine
        self.queue = queue

    async def read(self) -> list[Metric]:
        """Never raises and never waits longer than QUEUE_READ_TIMEOUT_SECONDS."""
        families: list[Metric] = []
        if self.bus is not None:
            families.append(
                GaugeMetricFamily(
                    "kd_event_bus_subscribers",
                    "Subscriptions listening on this process's event bus.",
                    value=self.bus.subscriber_count,
                )
            )
        checked_out = getattr(self.engine.pool, "checkedout", None) if self.engine else None
        if checked_out is not None:
            families.append(
                GaugeMetricFamily(
                    "kd_db_pool_checked_out",
                    "Database connections of this process's pool in use now.",
                    value=checked_out(),
                )
            )
        if self.queue is not None:
            families.extend(await self._queue_families(self.queue))
        return families

    async def _queue_families(self, queue: RunQueueProbe) -> list[Metric]:
        up = GaugeMetricFamily(
            "kd_run_queue_up", "1 when the last scrape read the run queue in Redis, else 0."
        )
        try:
            async with asyncio.timeout(QUEUE_READ_TIMEOUT_SECONDS):
                waiting, pending = await queue.read()
        except (TimeoutError, redis.RedisError, OSError) as exc:
            log.warning("metrics: could not read the run queue (%s)", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        messages = GaugeMetricFamily(
            "kd_run_queue_messages",
            "Messages of the run queue (the Redis stream kd:runs) by state: waiting (not yet "
            "delivered to a worker) and pending (delivered, not yet acknowledged).",
            labels=["state"],
        )
        if waiting is not None:
            messages.add_metric(["waiting"], waiting)
        messages.add_metric(["pending"], pending)
        return [up, messages]

    async def aclose(self) -> None:
        if self.queue is not None:
            await self.queue.aclose()


class _Snapshot(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class _Shared(Collector):
    def collect(self) -> Iterator[Metric]:
        return iter(REGISTRY.collect())


def exposition(gauges: Iterable[Metric]) -> bytes:
    """The Prometheus text of every metric of the process, with the gauges read for this scrape."""
    registry = CollectorRegistry()
    registry.register(_Shared())
    registry.register(_Snapshot(gauges))
    return generate_latest(registry)


class LoopGauges(Collector):
    """`ProcessGauges` for a scrape served on another thread (prometheus_client's own HTTP
    server): the gauges are read on the event loop that owns the bus, engine and Redis client."""

    def __init__(self, gauges: ProcessGauges, loop: asyncio.AbstractEventLoop) -> None:
        self.gauges = gauges
        self.loop = loop

    def collect(self) -> Iterator[Metric]:
        future = asyncio.run_coroutine_threadsafe(self.gauges.read(), self.loop)
        try:
            families = future.result(timeout=QUEUE_READ_TIMEOUT_SECONDS + 1)
        except Exception as exc:  # a loop too busy to answer: serve the counters anyway
            future.cancel()
            log.warning("metrics: could not read the gauges (%s)", exc)
            families = []
        return iter(families)


def worker_registry(gauges: ProcessGauges, loop: asyncio.AbstractEventLoop) -> CollectorRegistry:
    """What a worker's metrics port serves: the shared metrics and its gauges."""
    registry = CollectorRegistry()
    registry.register(_Shared())
    registry.register(LoopGauges(gauges, loop))
    return registry
