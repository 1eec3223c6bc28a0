"""EventRuntime on a tiny workflow: the node events a run's sink receives, reuse of a finished
node, and the kailash internals it overrides (so an SDK upgrade that moves them fails here).

No services: the nodes are plain AsyncNodes (and one sync Node) defined in this file.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
from typing import Any

import kailash
import pytest
from kailash.nodes.base import Node, NodeParameter, register_node
from kailash.nodes.base_async import AsyncNode
from kailash.runtime.async_local import AsyncLocalRuntime
from kailash.workflow.builder import WorkflowBuilder

from runtime.events import EventRuntime, RunScope, report_progress

PINNED_KAILASH = "2.65.0"
OVERRIDDEN = ("_execute_node_async", "_execute_sync_node_async")


class Boom(Exception):
    """What the failing node raises."""


def _params(*names: str) -> dict[str, NodeParameter]:
    return {
        name: NodeParameter(name=name, type=object, required=False, description=name)
        for name in names
    }


@register_node()
class ErtCountNode(AsyncNode):
    """Reports progress 1/3, 2/3, 3/3, then returns its `seed` plus 3."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return _params("seed", "previous")

    async def async_run(self, **inputs: Any) -> dict[str, Any]:
        for i in range(1, 4):
            report_progress(i, 3, f"{i} of 3")
        return {"value": (inputs.get("seed") or 0) + 3}


@register_node()
class ErtDoubleNode(AsyncNode):
    """Returns twice the result of the previous node."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return _params("previous")

    async def async_run(self, **inputs: Any) -> dict[str, Any]:
        return {"value": inputs["previous"] * 2}


@register_node()
class ErtFailNode(AsyncNode):
    def get_parameters(self) -> dict[str, NodeParameter]:
        return _params("previous")

    async def async_run(self, **inputs: Any) -> dict[str, Any]:
        raise Boom(f"failed after {inputs.get('previous')}")


@register_node()
class ErtSyncAddNode(Node):
    """A sync node: the runtime runs it through `_execute_sync_node_async` in a thread."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return _params("previous")

    def run(self, **inputs: Any) -> dict[str, Any]:
        report_progress(1, 1, "added")
        return {"value": inputs["previous"] + 100}


@register_node()
class ErtSleepNode(AsyncNode):
    """Sleeps `seconds`, then returns them."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return _params("seconds")

    async def async_run(self, **inputs: Any) -> dict[str, Any]:
        await asyncio.sleep(inputs["seconds"])
        return {"value": inputs["seconds"]}


def chain(*nodes: tuple[str, type[Node]]) -> Any:
    # Outputs are named "value": in kailash 2.65 a connection from an output named "result"
    # delivers the node's whole output dict, not the value under "result".
    builder = WorkflowBuilder()
    previous = None
    for node_id, cls in nodes:
        builder.add_node(cls.__name__, node_id, {})
        if previous is not None:
            builder.add_connection(previous, "value", node_id, "previous")
        previous = node_id
    return builder.build()


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Events as comparable tuples; outputs and errors are checked separately."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e["type"] == "progress":
            out.append(("progress", e["node"], e["current"], e["total"], e["message"]))
        else:
            out.append((e["type"], e["node"]))
    return out


@pytest.fixture
async def runtime():
    async with EventRuntime() as rt:
        yield rt


async def test_started_progress_succeeded_then_failed_in_order(runtime: EventRuntime) -> None:
    workflow = chain(("count", ErtCountNode), ("double", ErtDoubleNode), ("fail", ErtFailNode))
    events: list[dict[str, Any]] = []

    with pytest.raises(Exception) as raised:
        await runtime.execute_run(workflow, {"count": {"seed": 1}}, RunScope(sink=events.append))

    assert shape(events) == [
        ("started", "count"),
        ("progress", "count", 1, 3, "1 of 3"),
        ("progress", "count", 2, 3, "2 of 3"),
        ("progress", "count", 3, 3, "3 of 3"),
        ("succeeded", "count"),
        ("started", "double"),
        ("succeeded", "double"),
        ("started", "fail"),
        ("failed", "fail"),
    ]
    assert events[4]["output"] == {"value": 4}
    assert events[6]["output"] == {"value": 8}
    error = events[8]["error"]
    assert isinstance(error, Exception)
    # The node's own exception is what failed, whatever the SDK wraps it in on the way out.
    chain_of: list[BaseException] = []
    current: BaseException | None = raised.value
    while current is not None and current not in chain_of:
        chain_of.append(current)
        current = current.__cause__ or current.__context__
    assert any(isinstance(e, Boom) and str(e) == "failed after 8" for e in chain_of), chain_of


async def test_a_reused_node_is_skipped_and_its_output_feeds_the_next(
    runtime: EventRuntime,
) -> None:
    workflow = chain(("count", ErtCountNode), ("double", ErtDoubleNode))
    events: list[dict[str, Any]] = []

    results = await runtime.execute_run(
        workflow,
        {"count": {"seed": 1}},
        RunScope(sink=events.append, reuse={"count": {"value": 50}}),
    )

    # No started/progress/succeeded for the reused node; the next one got its stored output.
    assert shape(events) == [("started", "double"), ("succeeded", "double")]
    assert events[1]["output"] == {"value": 100}
    assert results["count"] == {"value": 50}
    assert results["double"] == {"value": 100}


async def test_a_sync_node_reports_through_the_sync_path(runtime: EventRuntime) -> None:
    workflow = chain(("count", ErtCountNode), ("add", ErtSyncAddNode))
    events: list[dict[str, Any]] = []

    results = await runtime.execute_run(workflow, {"count": {"seed": 0}}, RunScope(events.append))

    assert shape(events) == [
        ("started", "count"),
        ("progress", "count", 1, 3, "1 of 3"),
        ("progress", "count", 2, 3, "2 of 3"),
        ("progress", "count", 3, 3, "3 of 3"),
        ("succeeded", "count"),
        ("started", "add"),
        ("progress", "add", 1, 1, "added"),
        ("succeeded", "add"),
    ]
    assert results["add"]["value"] == 103


async def test_plain_executions_report_to_no_sink(runtime: EventRuntime) -> None:
    """Outside execute_run (API calls share the runtime) no scope is set and nothing leaks."""
    workflow = chain(("count", ErtCountNode), ("double", ErtDoubleNode))
    events: list[dict[str, Any]] = []
    await runtime.execute_run(workflow, {"count": {"seed": 0}}, RunScope(events.append))
    before = len(events)

    results, _ = await runtime.execute_workflow_async(workflow, {"count": {"seed": 2}})

    assert results["double"] == {"value": 10}
    assert len(events) == before


async def test_runs_have_their_own_execution_limit() -> None:
    """An API call is held to `execution_timeout`; a run (execute_run) to `run_timeout` only,
    so it may outlive an API call's limit, and is still stopped at its own."""
    sleep = chain(("sleep", ErtSleepNode))
    async with EventRuntime(execution_timeout=1, run_timeout=3) as rt:
        assert rt.execution_timeout == 1  # outside a run
        with pytest.raises(TimeoutError):
            await rt.execute_workflow_async(sleep, {"sleep": {"seconds": 1.5}})
        results = await rt.execute_run(sleep, {"sleep": {"seconds": 1.5}}, RunScope([].append))
        assert results["sleep"] == {"value": 1.5}
    async with EventRuntime(execution_timeout=60, run_timeout=1) as rt:
        with pytest.raises(TimeoutError):
            await rt.execute_run(sleep, {"sleep": {"seconds": 1.5}}, RunScope([].append))
        results, _ = await rt.execute_workflow_async(sleep, {"sleep": {"seconds": 1.5}})
        assert results["sleep"] == {"value": 1.5}
    async with EventRuntime(execution_timeout=1) as rt:  # run_timeout 0: no limit
        results = await rt.execute_run(sleep, {"sleep": {"seconds": 1.5}}, RunScope([].append))
        assert results["sleep"] == {"value": 1.5}


def test_event_runtime_overrides_methods_that_exist_on_the_pinned_sdk() -> None:
    for name in OVERRIDDEN:
        assert name in EventRuntime.__dict__, f"EventRuntime no longer overrides {name}"
        base = getattr(AsyncLocalRuntime, name, None)
        assert base is not None, f"kailash's AsyncLocalRuntime has no {name} any more"
        assert inspect.iscoroutinefunction(base), name
        assert list(inspect.signature(base).parameters)[:5] == [
            "self",
            "workflow",
            "node_id",
            "tracker",
            "context",
        ], (name, inspect.signature(base))


def test_kailash_is_the_pinned_version() -> None:
    version = getattr(kailash, "__version__", None) or importlib.metadata.version("kailash")
    assert version == PINNED_KAILASH
    assert importlib.metadata.version("kailash") == PINNED_KAILASH
