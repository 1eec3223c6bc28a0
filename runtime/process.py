"""Wiring the run machinery into a process: the API (inline or queue) or a worker."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.events import EventRuntime
from runtime.executor import Executor
from runtime.launcher import InlineLauncher, QueueLauncher
from runtime.queue import build_broker, kicker
from runtime.runner import RunWorkflow
from services.deps import RunLauncher, ServiceDeps
from services.run_store import RunStore


def owner_name(kind: str) -> str:
    """Names the lease holder in the runs table: which host and process executes a run."""
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class RunMachinery:
    launcher: RunLauncher
    executor: Executor | None = None
    broker: Any = None

    async def close(self) -> None:
        if self.executor is not None:
            await self.executor.close()
        if self.broker is not None:
            await self.broker.shutdown()


def build_executor(
    deps: ServiceDeps, runtime: EventRuntime, workflows: Mapping[str, RunWorkflow], kind: str
) -> Executor:
    settings = deps.settings
    # The API process executes inline runs beside its requests: at most RUN_INLINE_CONCURRENCY
    # at once. A worker's own loop bounds what it takes (WORKER_CONCURRENCY).
    inline = kind == "api"
    store = RunStore(
        deps.db,
        deps.bus,
        owner_name(kind),
        settings.run_lease_seconds,
        progress_interval=settings.workspace_progress_interval_seconds,
    )
    return Executor(
        deps=deps,
        runtime=runtime,
        workflows=workflows,
        store=store,
        lease_seconds=settings.run_lease_seconds,
        capacity=settings.run_inline_concurrency if inline else settings.worker_concurrency,
        stale_queued_seconds=settings.stale_queued_seconds,
        spawn_limit=settings.run_inline_concurrency if inline else None,
    )


async def start_api_runs(
    deps: ServiceDeps, runtime: EventRuntime, workflows: Mapping[str, RunWorkflow]
) -> RunMachinery:
    """Inline: this process executes its runs. Queue: it only enqueues; workers execute."""
    if deps.settings.runs_inline:
        executor = build_executor(deps, runtime, workflows, "api")
        launcher = InlineLauncher(executor)
        executor.resume = launcher.enqueue
        await executor.start(sweep=True)
        return RunMachinery(launcher=launcher, executor=executor)
    broker = build_broker(deps.settings)
    await broker.startup()  # declares the consumer group, so nothing enqueued is lost
    return RunMachinery(launcher=QueueLauncher(kicker(broker)), broker=broker)
