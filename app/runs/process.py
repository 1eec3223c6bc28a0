"""Wiring the run machinery into a process: the API (inline or queue) or a worker."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from app.runs.executor import Executor
from app.runs.launcher import InlineLauncher, QueueLauncher
from app.runs.queue import build_broker, kicker
from app.runs.runtime import EventRuntime
from app.runs.store import RunStore
from app.services.deps import RunLauncher, ServiceDeps


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


def build_executor(deps: ServiceDeps, runtime: EventRuntime, kind: str) -> Executor:
    settings = deps.settings
    store = RunStore(deps.db, deps.bus, owner_name(kind), settings.run_lease_seconds)
    return Executor(
        deps=deps,
        runtime=runtime,
        store=store,
        lease_seconds=settings.run_lease_seconds,
        capacity=settings.worker_concurrency,
    )


async def start_api_runs(deps: ServiceDeps, runtime: EventRuntime) -> RunMachinery:
    """Inline: this process executes its runs. Queue: it only enqueues; workers execute."""
    if deps.settings.runs_inline:
        executor = build_executor(deps, runtime, "api")
        launcher = InlineLauncher(executor)
        executor.resume = launcher.enqueue
        await executor.start(sweep=True)
        return RunMachinery(launcher=launcher, executor=executor)
    broker = build_broker(deps.settings)
    await broker.startup()  # declares the consumer group, so nothing enqueued is lost
    return RunMachinery(launcher=QueueLauncher(kicker(broker)), broker=broker)
