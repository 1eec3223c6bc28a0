"""An API process that shuts down while one of its runs executes a statement, on both databases.

The run is stopped with one cancel and left to its lease, and the shutdown ends. A second cancel
(shutdown cancelled both the run's task and the task that awaits it, which cancelled the run
again) could land while the cancelled statement's connection was closing: aiosqlite then waited
forever, and a SQLite server (and the test session that caught it) never finished stopping
(ADR 0077).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from kailash.workflow.builder import WorkflowBuilder
from sqlalchemy import select, text

from base.models.runs import Run, RunStatus, RunStep, StepStatus
from nodes.services import service_node
from runtime.process import build_executor
from runtime.runner import RunWorkflow
from services import runs
from services.deps import ServiceDeps
from tests.integration.runs.conftest import queued_run
from tests.support.graphql import GraphQLClient

SLOW_STATEMENT = runs.RunKind("test_slow_statement", ("QUERY",))
# A statement that keeps the database busy for seconds: the shutdown lands in the middle of it.
SLOW_SQL = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000)"
    " SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(30)",
}
_statement_started: dict[str, asyncio.Event] = {}


async def slow_statement(deps: ServiceDeps, *, dialect: str, **_: Any) -> None:
    async with deps.db() as session:
        _statement_started[dialect].set()
        await session.execute(text(SLOW_SQL[dialect]))


def _workflow() -> RunWorkflow:
    builder = WorkflowBuilder()
    builder.add_node(service_node(slow_statement).__name__, "QUERY", {})
    return RunWorkflow(SLOW_STATEMENT, builder.build(workflow_id=SLOW_STATEMENT.name))


def _task_named(name: str) -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == name]
    return task


async def test_shutting_down_mid_statement_stops_the_run_once_and_ends(
    any_db_client: GraphQLClient, any_db_app: FastAPI
) -> None:
    deps: ServiceDeps = any_db_app.state.deps
    dialect = "sqlite" if deps.settings.is_sqlite else "postgresql"
    run_id = await queued_run(
        deps, any_db_client, SLOW_STATEMENT, label="slow statement", params={"dialect": dialect}
    )
    executor = build_executor(
        deps, any_db_app.state.runner.runtime, {SLOW_STATEMENT.name: _workflow()}, "api"
    )
    _statement_started[dialect] = asyncio.Event()
    before = asyncio.all_tasks()
    await executor.spawn(run_id)
    async with asyncio.timeout(60):
        await _statement_started[dialect].wait()
    await asyncio.sleep(0.2)  # the statement is on the database now
    run_task = _task_named(f"run-{run_id}")

    async with asyncio.timeout(120):
        await executor.close()

    assert executor.running == set()
    assert run_task.done()
    assert run_task.cancelling() == 1  # 2 before the fix
    # Nothing it started is left behind (a connection's close, say).
    left_behind = asyncio.all_tasks() - before - {asyncio.current_task()}
    if left_behind:
        _, pending = await asyncio.wait(left_behind, timeout=60)
        assert pending == set()
    async with deps.db() as session:
        left = await session.get(Run, run_id)
        steps = (await session.scalars(select(RunStep).where(RunStep.run_id == run_id))).all()
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    # Stopped, not ended: the run keeps its lease, so a sweeper resumes it elsewhere.
    assert left is not None
    assert left.status == RunStatus.RUNNING
    assert left.lease_owner is not None and left.lease_owner.startswith("api:")
    assert [(s.name, s.status) for s in steps] == [("QUERY", StepStatus.RUNNING)]
