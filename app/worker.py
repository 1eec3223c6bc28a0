"""`python -m app worker`: executes runs taken from the Redis queue.

Any number of workers may run. Each executes up to WORKER_CONCURRENCY runs at once on its own
Kailash runtime, renews the leases of its runs, and sweeps for runs whose worker died. SIGTERM or
SIGINT stops fetching runs (one delivered meanwhile goes back onto the queue), gives running ones
WORKER_SHUTDOWN_GRACE_SECONDS to finish, then interrupts them and releases their leases so
another worker resumes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from taskiq.receiver import Receiver
from taskiq_redis import RedisStreamBroker

from app.maintenance import Upkeep, prune_and_log
from base.db.engine import build_engine, build_sessionmaker
from base.events.bus import build_bus
from base.metrics import ProcessGauges, RunQueueProbe, worker_registry
from base.settings import Settings
from runtime.process import build_executor
from runtime.queue import (
    GROUP,
    QUEUE,
    TASK_NAME,
    build_broker,
    declare_group,
    kicker,
    trim_delivered,
)
from runtime.runner import build_runtime
from services.deps import ServiceDeps
from services.llm import aclose_clients
from services.ratelimit import AttemptLimiter
from services.vector_index import limit_scan_threads
from workflows import RUN_WORKFLOWS

log = logging.getLogger("knowledge_desk.worker")

RECEIVER_RESTART_SECONDS = 1.0


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    if not settings.redis_url:
        raise SystemExit("The worker needs REDIS_URL: runs reach workers through the Redis queue.")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    limit_scan_threads(settings.search_scan_threads)  # Ask's retrieval scans here
    engine = build_engine(settings)
    bus = build_bus(settings.redis_url)
    await bus.start()
    runtime = build_runtime(settings)
    deps = ServiceDeps(
        settings=settings,
        db=build_sessionmaker(engine),
        attempts=AttemptLimiter.build(settings),
        bus=bus,
    )
    gauges = ProcessGauges(
        bus=bus, engine=engine, queue=RunQueueProbe(settings.redis_url, QUEUE, GROUP)
    )
    metrics_server = _serve_metrics(settings, gauges, loop)
    executor = build_executor(deps, runtime, RUN_WORKFLOWS, "worker")
    broker = build_broker(settings)
    executor.handoff = kicker(broker)

    async def execute_run(run_id: str) -> None:
        await executor.execute(uuid.UUID(run_id))

    broker.register_task(execute_run, task_name=TASK_NAME)
    await broker.startup()
    await executor.start(sweep=True)
    upkeep = _start_upkeep(deps, broker)
    finish = asyncio.Event()  # set: the receiver stops fetching, then ends when its tasks have
    listening = asyncio.create_task(_receive(broker, settings, finish))
    log.info("worker %s ready", executor.store.owner)
    await stop.wait()

    executor.stopping = True  # a run delivered from now on goes back onto the queue
    finish.set()
    log.info("worker stopping: %d run(s) in progress", len(executor.running))
    grace = settings.worker_shutdown_grace_seconds
    await asyncio.gather(upkeep.stop(grace), executor.wait_finished(seconds=grace))
    interrupted = await executor.interrupt_all()  # released: another worker resumes them
    await _stop_receiving(listening)
    await executor.close()
    if metrics_server is not None:
        server, thread = metrics_server
        server.shutdown()
        thread.join(timeout=5)
    await gauges.aclose()
    await broker.shutdown()
    await runtime.cleanup()
    await aclose_clients()  # the LLM clients the runs shared (services/llm.py)
    await bus.close()
    await engine.dispose()
    log.info("worker stopped; released %d run(s)", len(interrupted))


def _start_upkeep(deps: ServiceDeps, broker: RedisStreamBroker) -> Upkeep:
    """Retention, and with it the trimming of the queue's messages every worker is done with;
    the first pass one interval after the start."""
    every = deps.settings.retention_interval_seconds
    upkeep = Upkeep()
    upkeep.every("pruning", every, lambda: prune_and_log(deps), now=False)
    upkeep.every("trimming the run queue", every, lambda: _trim_and_log(broker), now=False)
    return upkeep


async def _trim_and_log(broker: RedisStreamBroker) -> None:
    trimmed = await trim_delivered(broker)
    if trimmed:
        log.info("trimmed %d delivered messages from the run queue", trimmed)


def _serve_metrics(
    settings: Settings, gauges: ProcessGauges, loop: asyncio.AbstractEventLoop
) -> tuple[WSGIServer, threading.Thread] | None:
    """prometheus_client's HTTP server on WORKER_METRICS_PORT, in a thread of its own; it has
    no token check, so it binds WORKER_METRICS_HOST (loopback by default). Start-up fails if
    the port is taken."""
    if settings.worker_metrics_port is None:
        return None
    served = start_http_server(
        settings.worker_metrics_port,
        addr=settings.worker_metrics_host,
        registry=worker_registry(gauges, loop),
    )
    log.info(
        "worker metrics on http://%s:%d/metrics",
        settings.worker_metrics_host,
        settings.worker_metrics_port,
    )
    return served


async def _receive(broker: RedisStreamBroker, settings: Settings, finish: asyncio.Event) -> None:
    """Take runs from the queue until `finish`; start again when Redis fails under the receiver.

    Taskiq's receiver ends at the first failed read (Redis stopped or restarted). The runs it had
    started go on; a new receiver takes new runs once Redis answers and the consumer group
    exists again (a Redis restarted without its data has lost it). Meanwhile the sweeper still
    takes runs left QUEUED."""
    while not finish.is_set():
        receiver = Receiver(broker, max_async_tasks=settings.worker_concurrency, run_startup=False)
        try:
            await receiver.listen(finish)
            return
        except Exception as exc:
            log.warning("the queue receiver stopped (%s); starting it again", exc)
        while not finish.is_set():
            await asyncio.sleep(RECEIVER_RESTART_SECONDS)
            try:
                await declare_group(broker)
                break
            except Exception as exc:
                log.warning("the run queue is unreachable (%s)", exc)


async def _stop_receiving(listening: asyncio.Task[None]) -> None:
    """Wait for the receiver to end; cancel it if it does not, until it has ended.

    A cancel can be swallowed while the broker opens its Redis connection (the read then just
    returns empty), so one cancel is not enough and no wait is unbounded.
    """
    done, _ = await asyncio.wait({listening}, timeout=5)
    while not done:
        listening.cancel()
        done, _ = await asyncio.wait({listening}, timeout=1)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        listening.result()
