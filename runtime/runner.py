"""Runs declared workflows on the process's one AsyncLocalRuntime.

The runtime is created inside the running event loop (its semaphore binds to the first loop that
waits on it) with caps sized for a server: the SDK defaults (10 nodes, 4 threads) are
runtime-wide and would queue concurrent requests behind each other.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Concatenate, Generic, ParamSpec, TypeVar

from kailash.workflow import Workflow

from base.errors import DomainError
from base.settings import Settings
from nodes.services import ServiceCall
from runtime.events import EventRuntime
from services.deps import ServiceDeps
from services.runs import RunKind

P = ParamSpec("P")
R = TypeVar("R")

# Per-node INFO lines would cost time on every request and say nothing our own logs don't.
for _name in ("kailash", "kailash.runtime", "kailash.nodes", "kailash.workflow"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class ApiWorkflow(Generic[P, R]):
    """A service function declared to run as a one-node Kailash workflow (`workflows.declare`).

    Typed by the function it wraps, so a caller's arguments and result are checked statically.
    """

    service: Callable[Concatenate[ServiceDeps, P], Awaitable[R]]
    workflow: Workflow
    node_id: str = "call"

    @property
    def name(self) -> str:
        return str(self.workflow.workflow_id)


@dataclass(frozen=True)
class RunWorkflow:
    """A kind of run declared as a chain of Kailash nodes, one per step, in the kind's order."""

    kind: RunKind
    workflow: Workflow

    @property
    def name(self) -> str:
        return self.kind.name


def build_runtime(settings: Settings) -> EventRuntime:
    """The process's one runtime: serves API calls and executes runs (it only reports node
    events for runs, which set a RunScope)."""
    return EventRuntime(
        max_concurrent_nodes=settings.workflow_max_concurrent_nodes,
        thread_pool_size=settings.workflow_thread_pool_size,
        execution_timeout=settings.workflow_execution_timeout_seconds,
        run_timeout=settings.run_execution_timeout_seconds,
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
    def __init__(self, runtime: EventRuntime) -> None:
        self.runtime = runtime

    async def call(
        self,
        spec: ApiWorkflow[P, R],
        deps: ServiceDeps,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run `spec` with one service call; re-raise the domain error a node raised."""
        inputs = {spec.node_id: {"call": ServiceCall(deps, args, kwargs)}}
        try:
            results, _run_id = await self.runtime.execute_workflow_async(spec.workflow, inputs)
        except Exception as exc:
            cause = domain_cause(exc)
            if cause is not None:
                raise cause from None
            raise
        result: R = results[spec.node_id]["result"].value
        return result

    async def close(self) -> None:
        await self.runtime.cleanup()
