"""Builder for the one-step workflows that serve API calls."""

from __future__ import annotations

from kailash.nodes.base_async import AsyncNode
from kailash.workflow.builder import WorkflowBuilder

from workflows import WorkflowSpec, register


def call_workflow(name: str, node: type[AsyncNode]) -> WorkflowSpec:
    builder = WorkflowBuilder()
    builder.add_node(node.__name__, "call", {})
    return register(
        WorkflowSpec(
            name=name,
            workflow=builder.build(workflow_id=name),
            entry_node="call",
            output_node="call",
            steps=("call",),
        )
    )
