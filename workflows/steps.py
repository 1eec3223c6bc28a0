"""Builder for run workflows: a chain of service nodes, one per user-facing step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kailash.nodes.base_async import AsyncNode
from kailash.workflow.builder import WorkflowBuilder

from workflows import WorkflowSpec, register


def step_workflow(
    name: str,
    steps: Sequence[tuple[str, type[AsyncNode]]],
    summarize: Callable[[dict[str, Any]], str],
) -> WorkflowSpec:
    builder = WorkflowBuilder()
    previous: str | None = None
    for step, node in steps:
        builder.add_node(node.__name__, step, {})
        if previous is not None:
            builder.add_connection(previous, "result", step, "previous")
        previous = step
    ids = tuple(step for step, _ in steps)
    return register(
        WorkflowSpec(
            name=name,
            workflow=builder.build(workflow_id=name),
            entry_node=ids[0],
            output_node=ids[-1],
            steps=ids,
            summarize=summarize,
        )
    )
