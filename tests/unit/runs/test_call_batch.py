"""CallBatch: the reads queued in one turn of the event loop run as one workflow execution of
their own nodes, and each caller gets its own result or error (ADR 0110).

The services are plain async functions of this file, declared by hand (not through
`workflows.declare`, whose list the declaration tests check)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kailash.workflow.builder import WorkflowBuilder

from base.errors import DomainError, NotFound
from nodes.services import service_node
from runtime.events import EventRuntime
from runtime.runner import ApiWorkflow, WorkflowRunner

STARTED: list[str] = []


def _declare(fn: Any) -> ApiWorkflow[..., Any]:
    fn.__module__ = "services.callbatchtest"
    builder = WorkflowBuilder()
    builder.add_node(service_node(fn).__name__, "call", {})
    return ApiWorkflow(fn, builder.build(workflow_id=f"callbatchtest.{fn.__name__}"))


async def doubled(deps: Any, *, ids: list[int]) -> list[int]:
    STARTED.append("doubled")
    return [i * 2 for i in ids]


async def negated(deps: Any, *, ids: list[int]) -> list[int]:
    STARTED.append("negated")
    return [-i for i in ids]


async def refused(deps: Any, *, ids: list[int]) -> list[int]:
    STARTED.append("refused")
    raise NotFound(f"no {ids}")


async def broken(deps: Any, *, ids: list[int]) -> list[int]:
    raise ZeroDivisionError("broken")


async def slow(deps: Any, *, ids: list[int]) -> list[int]:
    await asyncio.sleep(0.05)
    STARTED.append("slow")
    return ids


DOUBLED, NEGATED, REFUSED, BROKEN, SLOW = map(_declare, (doubled, negated, refused, broken, slow))


class CountingRuntime(EventRuntime):
    """The runtime, recording the id of each workflow it executes."""

    def __init__(self) -> None:
        super().__init__()
        self.executed: list[str] = []

    async def execute_workflow_async(self, workflow: Any, inputs: Any, *a: Any, **k: Any) -> Any:
        self.executed.append(str(workflow.workflow_id))
        return await super().execute_workflow_async(workflow, inputs, *a, **k)


@pytest.fixture
async def runner():
    STARTED.clear()
    async with CountingRuntime() as runtime:
        yield WorkflowRunner(runtime)


def _executed(runner: WorkflowRunner) -> list[str]:
    runtime = runner.runtime
    assert isinstance(runtime, CountingRuntime)
    return runtime.executed


async def test_calls_of_one_turn_run_as_one_workflow_each_with_its_result(runner):
    batch = runner.batch()
    results = await asyncio.gather(
        batch.call(DOUBLED, None, ids=[1, 2]),
        batch.call(NEGATED, None, ids=[3]),
        batch.call(DOUBLED, None, ids=[5]),
    )
    assert results == [[2, 4], [-3], [10]]
    assert _executed(runner) == [
        "together:callbatchtest.doubled+callbatchtest.negated+callbatchtest.doubled"
    ]
    assert sorted(STARTED) == ["doubled", "doubled", "negated"]


async def test_a_lone_call_runs_its_own_workflow_and_later_turns_run_apart(runner):
    batch = runner.batch()
    assert await batch.call(DOUBLED, None, ids=[4]) == [8]
    assert await batch.call(NEGATED, None, ids=[4]) == [-4]
    assert _executed(runner) == ["callbatchtest.doubled", "callbatchtest.negated"]


async def test_one_calls_error_reaches_its_caller_alone(runner):
    batch = runner.batch()
    results = await asyncio.gather(
        batch.call(DOUBLED, None, ids=[1]),
        batch.call(REFUSED, None, ids=[7]),
        batch.call(BROKEN, None, ids=[1]),
        batch.call(NEGATED, None, ids=[1]),
        return_exceptions=True,
    )
    assert results[0] == [2] and results[3] == [-1]
    assert isinstance(results[1], DomainError)
    assert (results[1].code, results[1].message) == ("NOT_FOUND", "no [7]")
    assert isinstance(results[2], ZeroDivisionError) and str(results[2]) == "broken"
    assert len(_executed(runner)) == 1


async def test_a_cancelled_caller_leaves_the_others_their_results(runner):
    batch = runner.batch()
    gone = asyncio.ensure_future(batch.call(SLOW, None, ids=[1]))
    kept = asyncio.ensure_future(batch.call(SLOW, None, ids=[2]))
    await asyncio.sleep(0.01)  # both queued and running together
    gone.cancel()
    assert await kept == [2]
    assert gone.cancelled()
    assert STARTED == ["slow", "slow"]  # the cancelled caller's read still finished, unread
    assert len(_executed(runner)) == 1


async def test_workflows_of_several_calls_are_built_once_per_combination(runner):
    batch = runner.batch()
    for _ in range(3):
        await asyncio.gather(batch.call(DOUBLED, None, ids=[1]), batch.call(NEGATED, None, ids=[1]))
    await asyncio.gather(batch.call(NEGATED, None, ids=[1]), batch.call(DOUBLED, None, ids=[1]))
    assert len(runner._together_cache) == 2
    assert len(_executed(runner)) == 4
