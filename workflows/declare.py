"""Declaring workflows: one statement makes a service function (or a chain of them) a Kailash
workflow, and callers hold the declared object, so a wrong name fails at import."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

from kailash.workflow.builder import WorkflowBuilder

from nodes.services import ServiceFunction, service_name, service_node
from runtime.runner import ApiWorkflow, RunWorkflow
from services.deps import ServiceDeps
from services.runs import RunKind

P = ParamSpec("P")
R = TypeVar("R")

# Every declaration, in the order made (tests check each is used and each is sound).
API_WORKFLOWS: list[ApiWorkflow[..., Any]] = []
RUN_WORKFLOWS: dict[str, RunWorkflow] = {}


def api_workflow(
    service: Callable[Concatenate[ServiceDeps, P], Awaitable[R]],
) -> ApiWorkflow[P, R]:
    """`service` as a one-node workflow named after it (`runs.list_runs`); its node calls it with
    the caller's deps."""
    builder = WorkflowBuilder()
    builder.add_node(service_node(service).__name__, "call", {})
    workflow = builder.build(workflow_id=service_name(service))
    spec: ApiWorkflow[P, R] = ApiWorkflow(service, workflow)
    if any(declared.name == spec.name for declared in API_WORKFLOWS):
        raise ValueError(f"workflow {spec.name!r} is declared twice")
    API_WORKFLOWS.append(spec)
    return spec


def run_workflow(kind: RunKind, steps: Mapping[str, ServiceFunction]) -> RunWorkflow:
    """A run of `kind`: one node per step, connected in the kind's order so they run in turn."""
    if tuple(steps) != kind.steps:
        raise ValueError(f"{kind.name}: steps {tuple(steps)} differ from {kind.steps}")
    if kind.name in RUN_WORKFLOWS:
        raise ValueError(f"run workflow {kind.name!r} is declared twice")
    builder = WorkflowBuilder()
    previous: str | None = None
    for step, service in steps.items():
        builder.add_node(service_node(service).__name__, step, {})
        if previous is not None:
            builder.add_connection(previous, "result", step, "previous")
        previous = step
    spec = RunWorkflow(kind, builder.build(workflow_id=kind.name))
    RUN_WORKFLOWS[kind.name] = spec
    return spec
