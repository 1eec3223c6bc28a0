"""A step whose output JSON cannot hold, on both databases: the step is FAILED with a message that
says so, and the run ends FAILED (`INTERNAL`) instead of storing the value's `repr` for a retry
to hand on (todos/runs-defects.md)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from kailash.workflow.builder import WorkflowBuilder
from sqlalchemy import select

from base.models.runs import Run, RunStatus, RunStep, StepStatus
from nodes.services import service_node
from runtime.executor import UNSTORABLE_MESSAGE, UnstorableOutput, stored_output
from runtime.process import build_executor
from runtime.runner import RunWorkflow
from services import runs
from services.deps import ServiceDeps
from tests.integration.runs.conftest import queued_run
from tests.support.graphql import GraphQLClient

UNSTORABLE = runs.RunKind("test_unstorable_output", ("COUNT", "MAKE", "NEXT"))


async def count_documents(deps: ServiceDeps, **_: Any) -> dict[str, int]:
    return {"documents": 0}


async def make_a_set(deps: ServiceDeps, **_: Any) -> set[str]:
    return {"not", "json"}


async def next_step(deps: ServiceDeps, **_: Any) -> str:
    return "done"


def _workflow() -> RunWorkflow:
    builder = WorkflowBuilder()
    functions = (count_documents, make_a_set, next_step)
    for step, function in zip(UNSTORABLE.steps, functions, strict=True):
        builder.add_node(service_node(function).__name__, step, {})
    return RunWorkflow(UNSTORABLE, builder.build(workflow_id=UNSTORABLE.name))


def test_only_json_is_stored() -> None:
    assert stored_output({"documents": 3}) == {"value": {"documents": 3}}
    assert stored_output(None) == {"value": None}
    for value in ({"a", "b"}, object(), {"when": uuid.uuid4()}, b"bytes"):
        with pytest.raises(UnstorableOutput):
            stored_output(value)


async def test_a_step_that_returns_what_json_cannot_hold_fails_the_run(
    any_db_client: GraphQLClient, any_db_app: FastAPI
) -> None:
    deps: ServiceDeps = any_db_app.state.deps
    run_id = await queued_run(deps, any_db_client, UNSTORABLE, label="unstorable", params={})
    executor = build_executor(
        deps, any_db_app.state.runner.runtime, {UNSTORABLE.name: _workflow()}, "api"
    )
    try:
        await executor.spawn(run_id)
        await executor.wait_spawned()
    finally:
        await executor.close()

    async with deps.db() as session:
        ended = await session.get(Run, run_id)
        steps = (
            await session.scalars(
                select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.position)
            )
        ).all()
    assert ended is not None
    assert (ended.status, ended.error_code, ended.error_message) == (
        RunStatus.FAILED,
        "INTERNAL",
        "The run failed unexpectedly.",
    )
    by_name = {s.name: s for s in steps}
    assert by_name["COUNT"].status == StepStatus.SUCCEEDED
    assert by_name["COUNT"].output == {"value": {"documents": 0}}
    assert by_name["MAKE"].status == StepStatus.FAILED
    assert by_name["MAKE"].error_message == UNSTORABLE_MESSAGE
    assert by_name["MAKE"].output is None  # no repr of the set stored for a retry
    assert StepStatus.RUNNING not in {s.status for s in steps}
