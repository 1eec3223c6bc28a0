"""What the metrics of an HTTP GraphQL request need: its operation's name and its outcome.

The router opens a `RequestMeasure` per HTTP request (`measuring`); the schema hands it the
request's execution context when it starts executing (no extension hook, so no per-field or
per-result cost), and the router records the outcome and the time (ADR 0087).
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

from graphql import OperationDefinitionNode, parse
from strawberry.types import ExecutionContext

OTHER = "other"


class RequestMeasure:
    __slots__ = ("execution", "outcome")

    def __init__(self) -> None:
        self.execution: ExecutionContext | None = None
        self.outcome = "ok"

    def operation(self, named: frozenset[str]) -> str:
        """The operation's name when it is one of the frontend's documents, else `other`:
        a label never carries a name a client made up."""
        name = self.execution.operation_name if self.execution is not None else None
        return name if name in named else OTHER


# The measure of the HTTP request being answered (None on sockets and outside requests).
measuring: ContextVar[RequestMeasure | None] = ContextVar("measuring", default=None)


def named_operations(directory: Path) -> frozenset[str]:
    """The names of the operations in the frontend's documents (graphql/operations/*.graphql)."""
    names: set[str] = set()
    for path in sorted(directory.glob("*.graphql")):
        for definition in parse(path.read_text()).definitions:
            if isinstance(definition, OperationDefinitionNode) and definition.name:
                names.add(definition.name.value)
    return frozenset(names)
