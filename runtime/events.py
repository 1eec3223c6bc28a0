"""The Kailash runtime that runs workflow runs, reporting each node's start, end and progress.

AsyncLocalRuntime has no public node-started or node-failed hook, and its progress API
(`kailash.runtime.progress.report_progress`) is a no-op under the async runtime because nothing
sets the current node. This subclass wraps the two per-node executors (private methods of the
pinned kailash 2.65.0; tests/unit/runs/test_event_runtime.py fails if an upgrade moves them)
and routes events to the sink of the run being executed, through a ContextVar that each run's
task snapshots. It also lets a resumed run skip the steps it already finished, and gives runs
their own execution limit: the SDK has one `execution_timeout` per runtime, read as each
execution starts, and a run (long, cancellable) must not share the limit of an API call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kailash.runtime import progress as kailash_progress
from kailash.runtime.async_local import AsyncLocalRuntime

NodeEventSink = Callable[[dict[str, Any]], None]


@dataclass
class RunScope:
    """What the runtime needs to know about the run its current task executes."""

    sink: NodeEventSink
    reuse: dict[str, Any] = field(default_factory=dict)  # node id -> output to reuse


_SCOPE: contextvars.ContextVar[RunScope | None] = contextvars.ContextVar("run_scope", default=None)


def _emit(event: dict[str, Any]) -> None:
    scope = _SCOPE.get()
    if scope is not None:
        scope.sink(event)


class EventRuntime(AsyncLocalRuntime):
    def __init__(self, *, run_timeout: int = 0, **kwargs: Any) -> None:
        self.run_timeout = run_timeout  # seconds; 0: no limit
        super().__init__(**kwargs)
        # Without a completion subscriber, pure-sync workflows skip the per-node path entirely.
        self.on_node_complete(lambda _event: None)

    # The SDK reads this attribute as each execution starts (`execute_workflow_async`): inside
    # `execute_run` (a RunScope is set for the task) it is the run's limit, else the API call's.
    @property
    def execution_timeout(self) -> int:
        return self.run_timeout if _SCOPE.get() is not None else self._call_timeout

    @execution_timeout.setter
    def execution_timeout(self, seconds: int) -> None:
        self._call_timeout = seconds

    async def execute_run(
        self, workflow: Any, inputs: dict[str, Any], scope: RunScope
    ) -> dict[str, Any]:
        """Execute with node events going to `scope.sink`; other executions are unaffected."""
        registry = kailash_progress.ProgressRegistry()
        registry.register(
            lambda u: _emit(
                {
                    "type": "progress",
                    "node": u.node_id,
                    "current": u.current,
                    "total": u.total,
                    "message": u.message,
                }
            )
        )
        results: dict[str, Any]
        scope_token = _SCOPE.set(scope)
        registry_token = kailash_progress._current_progress_registry.set(registry)
        try:
            results, _run_id = await self.execute_workflow_async(workflow, inputs)
        finally:
            kailash_progress._current_progress_registry.reset(registry_token)
            _SCOPE.reset(scope_token)
        return results

    async def _wrapped(
        self,
        inner: Callable[..., Awaitable[None]],
        workflow: Any,
        node_id: str,
        tracker: Any,
        context: Any,
    ) -> None:
        scope = _SCOPE.get()
        if scope is not None and node_id in scope.reuse:
            await tracker.record_result(node_id, scope.reuse[node_id], 0.0)
            return
        _emit({"type": "started", "node": node_id})
        node_token = kailash_progress._current_node_id.set(node_id)
        try:
            await inner(workflow, node_id, tracker, context)
        except BaseException as exc:
            _emit({"type": "failed", "node": node_id, "error": exc})
            raise
        finally:
            kailash_progress._current_node_id.reset(node_token)
        _emit({"type": "succeeded", "node": node_id, "output": tracker.node_outputs.get(node_id)})

    async def _execute_node_async(
        self, workflow: Any, node_id: str, tracker: Any, context: Any
    ) -> None:
        await self._wrapped(super()._execute_node_async, workflow, node_id, tracker, context)

    async def _execute_sync_node_async(
        self, workflow: Any, node_id: str, tracker: Any, context: Any
    ) -> None:
        await self._wrapped(super()._execute_sync_node_async, workflow, node_id, tracker, context)


def report_progress(current: int, total: int | None = None, message: str = "") -> None:
    """Report in-step progress from a service function ("embedded 40 of 120 chunks")."""
    kailash_progress.report_progress(current, total, message)
