"""Handing committed runs to execution.

InlineLauncher executes in this process (the embedded default, and the integration tests).
QueueLauncher puts the run id on the Redis-backed Taskiq queue; workers execute it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from runtime.executor import Executor


class InlineLauncher:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._tasks: set[asyncio.Task[None]] = set()

    async def enqueue(self, run_id: uuid.UUID) -> None:
        task = asyncio.create_task(self.executor.execute(run_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """For tests: wait until every run handed to this launcher has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class QueueLauncher:
    def __init__(self, enqueue: Callable[[uuid.UUID], Awaitable[None]]) -> None:
        self._enqueue = enqueue

    async def enqueue(self, run_id: uuid.UUID) -> None:
        await self._enqueue(run_id)
