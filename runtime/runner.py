"""Runs declared workflows on the process's one AsyncLocalRuntime.

The runtime is created inside the running event loop (its semaphore binds to the first loop that
waits on it) with caps sized for a server: the SDK defaults (10 nodes, 4 threads) are
runtime-wide and would queue concurrent requests behind each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from kailash.workflow import Workflow
from kailash.workflow.builder import WorkflowBuilder

from base.errors import DomainError
from base.settings import Settings
from nodes.services import Boxed, ServiceCall
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
        self._together_cache: dict[tuple[str, ...], Workflow] = {}

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

    def batch(self) -> CallBatch:
        return CallBatch(self)

    async def run_together(self, calls: Sequence[_BatchedCall]) -> None:
        """Execute `calls` as one workflow: a spec's own when alone, else one whose nodes are
        their specs' nodes, unconnected, so the runtime runs them concurrently. Each call's
        future gets its own result or error."""
        if len(calls) == 1:
            workflow, node_ids = calls[0].spec.workflow, [calls[0].spec.node_id]
        else:
            workflow = self._together(tuple(c.spec for c in calls))
            node_ids = [f"call{i}" for i in range(len(calls))]
        inputs = {node_id: {"call": c.call} for node_id, c in zip(node_ids, calls, strict=True)}
        try:
            results, _run_id = await self.runtime.execute_workflow_async(workflow, inputs)
        except BaseException as exc:
            error = domain_cause(exc) or exc
            for c in calls:
                c.settle(error=error)
            raise
        for node_id, c in zip(node_ids, calls, strict=True):
            boxed: Boxed = results[node_id]["result"]
            c.settle(value=boxed.value, error=boxed.error)

    # Workflows of several calls, by their specs in order; a screen's query makes the same few
    # combinations, so the bound is only a guard.
    _TOGETHER_MAX = 512

    def _together(self, specs: tuple[ApiWorkflow[..., Any], ...]) -> Workflow:
        cache = self._together_cache
        key = tuple(spec.name for spec in specs)
        workflow = cache.get(key)
        if workflow is None:
            builder = WorkflowBuilder()
            for i, spec in enumerate(specs):
                builder.add_node(spec.workflow.nodes[spec.node_id].node_type, f"call{i}", {})
            workflow = builder.build(workflow_id="together:" + "+".join(key))
            if len(cache) >= self._TOGETHER_MAX:
                cache.clear()
            cache[key] = workflow
        return workflow


@dataclass(frozen=True)
class _BatchedCall:
    spec: ApiWorkflow[..., Any]
    call: ServiceCall
    future: asyncio.Future[Any]

    def settle(self, *, value: Any = None, error: BaseException | None = None) -> None:
        if self.future.done():  # its caller was cancelled
            return
        if isinstance(error, asyncio.CancelledError):
            self.future.cancel()
        elif error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(value)


class CallBatch:
    """One request's reads made in the same turn of the event loop, executed as one workflow
    (ADR 0110).

    The dataloaders of a screen fire together (a document's tags, annotations, collection,
    chunks and runs), and each used to be a workflow execution of its own, about 0.2 ms of
    Kailash per call. Calls queued here wait for the end of the turn; then the runner executes
    them as one workflow of their own nodes, about half that per call."""

    def __init__(self, runner: WorkflowRunner) -> None:
        self._runner = runner
        self._queued: list[_BatchedCall] = []
        self._running: set[asyncio.Task[None]] = set()

    async def call(
        self,
        spec: ApiWorkflow[P, R],
        deps: ServiceDeps,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        call = ServiceCall(deps, args, kwargs, errors_as_result=True)
        self._queued.append(_BatchedCall(spec, call, future))
        if len(self._queued) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        calls, self._queued = self._queued, []
        task = asyncio.ensure_future(self._runner.run_together(calls))
        self._running.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # each caller got it already; retrieved so it is not logged
