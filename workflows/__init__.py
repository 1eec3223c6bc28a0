"""The workflow registry: every workflow built once at import, addressed by name.

Resolvers and the worker run workflows only through `REGISTRY[name]`, so a name is the stable
contract between the API layer and the Kailash layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kailash.workflow import Workflow


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    workflow: Workflow
    entry_node: str  # receives the ServiceCall
    output_node: str  # its `result` is the workflow's result
    steps: tuple[str, ...]  # user-facing stages, in order (node ids)
    # Runs only: the output summary from each step's result.
    summarize: Callable[[dict[str, Any]], str] | None = None


REGISTRY: dict[str, WorkflowSpec] = {}


def register(spec: WorkflowSpec) -> WorkflowSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"workflow {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


def _load_all() -> None:
    # Importing a module registers its workflows.
    from workflows import accounts, check_models, runs  # noqa: F401


_load_all()
