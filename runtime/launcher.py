"""Handing committed runs to execution.

InlineLauncher executes in this process (the embedded default, and the integration tests).
QueueLauncher puts the run id on the Redis-backed Taskiq queue; workers execute it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from runtime.executor import Executor


class InlineLauncher:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def enqueue(self, run_id: uuid.UUID) -> None:
        # The executor owns the task, so closing it at shutdown also stops and awaits this run.
        await self.executor.spawn(run_id)

    async def wait_idle(self) -> None:
        """For tests: wait until every run handed to this launcher has ended."""
        await self.executor.wait_spawned()


class QueueLauncher:
    def __init__(self, enqueue: Callable[[uuid.UUID], Awaitable[None]]) -> None:
        self._enqueue = enqueue

    async def enqueue(self, run_id: uuid.UUID) -> None:
        await self._enqueue(run_id)
