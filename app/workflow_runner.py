"""Runs registered workflows on the process's one AsyncLocalRuntime.

The runtime is created inside the running event loop (its semaphore binds to the first loop that
waits on it) with caps sized for a server: the SDK defaults (10 nodes, 4 threads) are
runtime-wide and would queue concurrent requests behind each other.
"""

from __future__ import annotations

import logging
from typing import Any

from kailash.runtime.async_local import AsyncLocalRuntime

from app.runs.runtime import EventRuntime
from app.services.deps import ServiceDeps
from app.services.errors import DomainError
from app.settings import Settings
from nodes.services import ServiceCall
from workflows import REGISTRY

# Per-node INFO lines would cost time on every request and say nothing our own logs don't.
for _name in ("kailash", "kailash.runtime", "kailash.nodes", "kailash.workflow"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def build_runtime(settings: Settings) -> EventRuntime:
    """The process's one runtime: serves API calls and executes runs (it only reports node
    events for runs, which set a RunScope)."""
    return EventRuntime(
        max_concurrent_nodes=settings.workflow_max_concurrent_nodes,
        thread_pool_size=settings.workflow_thread_pool_size,
        execution_timeout=settings.workflow_execution_timeout_seconds,
    )


def domain_cause(exc: BaseException) -> DomainError | None:
    """The DomainError a node raised, found through the SDK's exception wrapping."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DomainError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class WorkflowRunner:
    def __init__(self, runtime: AsyncLocalRuntime) -> None:
        self.runtime = runtime

    async def call(self, workflow: str, deps: ServiceDeps, /, **kwargs: Any) -> Any:
        """Run `workflow` with one service call; re-raise the domain error a node raised."""
        spec = REGISTRY[workflow]
        inputs = {spec.entry_node: {"call": ServiceCall(deps, kwargs)}}
        try:
            results, _run_id = await self.runtime.execute_workflow_async(spec.workflow, inputs)
        except Exception as exc:
            cause = domain_cause(exc)
            if cause is not None:
                raise cause from None
            raise
        return results[spec.output_node]["result"].value

    async def close(self) -> None:
        await self.runtime.cleanup()
