"""Cheap limits on what one document may ask for, checked before graphql-core validates it.

Depth and size are computed in one pass with each fragment measured once (memoised), so a small
document of fragments that spread each other many times costs linear time here. Strawberry's own
QueryDepthLimiter and MaxAliasesLimiter re-walk every spread, which is exponential for such input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension, ValidationCache


@dataclass(frozen=True)
class Shape:
    depth: int
    fields: int  # fields selected once every fragment spread is expanded
    aliases: int


def measure(document: DocumentNode) -> Shape:
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, Shape] = {}
    in_progress: set[str] = set()

    def of_set(selection_set: SelectionSetNode | None) -> Shape:
        depth = fields = aliases = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                inner = of_set(selection.selection_set)
                depth = max(depth, 1 + inner.depth)
                fields += 1 + inner.fields
                aliases += inner.aliases + (1 if selection.alias else 0)
            elif isinstance(selection, InlineFragmentNode | FragmentSpreadNode):
                inner = (
                    of_set(selection.selection_set)
                    if isinstance(selection, InlineFragmentNode)
                    else of_fragment(selection)
                )
                depth = max(depth, inner.depth)
                fields += inner.fields
                aliases += inner.aliases
        return Shape(depth, fields, aliases)

    def of_fragment(spread: FragmentSpreadNode) -> Shape:
        name = spread.name.value
        if name in memo:
            return memo[name]
        definition = fragments.get(name)
        if definition is None or name in in_progress:  # unknown or cyclic: validation reports it
            return Shape(0, 0, 0)
        in_progress.add(name)
        memo[name] = of_set(definition.selection_set)
        in_progress.discard(name)
        return memo[name]

    shapes = [
        of_set(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    return Shape(
        depth=max((s.depth for s in shapes), default=0),
        fields=sum(s.fields for s in shapes),
        aliases=sum(s.aliases for s in shapes),
    )


class DocumentLimits(SchemaExtension):
    def __init__(self, *, max_depth: int, max_fields: int = 2000, max_aliases: int = 100) -> None:
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.max_aliases = max_aliases

    def on_validate(self) -> Iterator[None]:
        document = self.execution_context.graphql_document
        if document is not None and self.execution_context.pre_execution_errors is None:
            problem = self._problem(measure(document))
            if problem:
                # Setting errors here makes Strawberry skip graphql-core's validation entirely.
                self.execution_context.pre_execution_errors = [
                    GraphQLError(f"Query is too complex: {problem}.")
                ]
        yield

    def _problem(self, shape: Shape) -> str | None:
        if shape.depth > self.max_depth:
            return f"depth {shape.depth} exceeds {self.max_depth}"
        if shape.fields > self.max_fields:
            return f"{shape.fields} fields (fragments expanded) exceed {self.max_fields}"
        if shape.aliases > self.max_aliases:
            return f"{shape.aliases} aliases exceed {self.max_aliases}"
        return None


class ValidationCacheAfterLimits(ValidationCache):
    """graphql-core validation cached by document, keeping an error DocumentLimits already set.

    Stock ValidationCache overwrites `pre_execution_errors` unconditionally, which would erase
    the "too complex" refusal and validate the very document it refused.
    """

    def on_validate(self) -> Iterator[None]:
        if self.execution_context.pre_execution_errors:
            yield
            return
        yield from super().on_validate()
