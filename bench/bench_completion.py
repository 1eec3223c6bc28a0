"""Benchmark: what GraphQL's completion of a page of search results costs the API's CPU (ADR 0094).

    uv run --frozen python bench/bench_completion.py [--rounds N] [--calls N] [--ranges N]

A script, not a test: it prints figures and asserts nothing about time. No database: a root
field returns 25 of the app's `SearchPassage` objects (resolvers/search/types.py), each with
`--ranges` highlight ranges, and the Search screen's selection of a passage is executed on the
parsed document through four execution contexts, which must give the same data:

  graphql-core  Strawberry's own (every field through graphql-core's per-field machinery)
  field by field  PlainFieldExecution with its one-step completions switched off: each plain
                leaf read directly, every object and list item through graphql-core (ADR 0094)
  one level     an object whose selected fields are all plain leaves in one step, a list of
                such objects in one loop; an object holding objects through graphql-core (ADR
                0138 as it first landed: the ranges in one step, each passage field by field)
  one step      PlainFieldExecution as the app runs it: objects read by attribute inside such
                objects are read through their selection too (ADR 0138's amendment: each
                passage with its ranges in one step)

Each variant runs `--calls` executions per round, the variants take turns within a round, and
the figure is the median over `--rounds` of the process's CPU per execution; ratios are to
graphql-core.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `resolvers`, ... importable
    sys.path.insert(0, str(ROOT))

import strawberry  # noqa: E402
from graphql import ExecutionResult, parse  # noqa: E402
from graphql import execute as graphql_execute  # noqa: E402
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext  # noqa: E402

from resolvers.core.execution import PlainField, PlainFieldExecution, PlainFields  # noqa: E402
from resolvers.search.types import SearchPassage, TextRange  # noqa: E402

# The passage's selection in graphql/operations/Search.graphql.
DOCUMENT = parse(
    "{ passages { text headingPath position charStart charEnd matches { start end } cosine } }"
)


_LEAVES: dict[int, PlainFields] = {}  # id(schema) -> its plain fields without object fields


class OneLevel(PlainFieldExecution):
    """PlainFieldExecution that reads no object field by attribute: an object holding an
    object takes graphql-core's path (ADR 0138 before its amendment)."""

    def _plain_by_type(self) -> PlainFields:
        if self._plain is None:
            every = super()._plain_by_type()
            leaves = _LEAVES.get(id(self.schema))
            if leaves is None:
                leaves = _LEAVES[id(self.schema)] = {
                    name: {f: p for f, p in fields.items() if isinstance(p, PlainField)}
                    for name, fields in every.items()
                }
            self._plain = leaves
        return self._plain


class FieldByField(OneLevel):
    """PlainFieldExecution without its one-step completions (how the app completed before)."""

    def execute_fields(self, *args: Any) -> Any:
        return StrawberryGraphQLCoreExecutionContext.execute_fields(self, *args)

    def complete_list_value(self, *args: Any) -> Any:
        return StrawberryGraphQLCoreExecutionContext.complete_list_value(self, *args)


def schema_for(passages: list[SearchPassage], execution: type | None) -> strawberry.Schema:
    @strawberry.type
    class Query:
        @strawberry.field
        def passages(self) -> list[SearchPassage]:
            return passages

    if execution is None:
        return strawberry.Schema(query=Query)
    return strawberry.Schema(query=Query, execution_context_class=execution)


def execute(schema: strawberry.Schema) -> ExecutionResult:
    # Strawberry's own execution on a parsed, validated document, as a request after its first.
    result = graphql_execute(
        schema._schema,
        DOCUMENT,
        executor_class=schema.execution_context_class,
    )
    assert isinstance(result, ExecutionResult)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--ranges", type=int, default=10, help="highlight ranges per passage")
    args = parser.parse_args()
    passages = [
        SearchPassage(
            text="venv creates virtual environments " * 12,
            heading_path=["venv", "Creating virtual environments"],
            position=i,
            char_start=i * 400,
            char_end=i * 400 + 400,
            matches=[TextRange(start=j * 12, end=j * 12 + 4) for j in range(args.ranges)],
            cosine=0.5 if i % 2 else None,
        )
        for i in range(25)
    ]
    variants = {
        "graphql-core": schema_for(passages, None),
        "field by field": schema_for(passages, FieldByField),
        "one level": schema_for(passages, OneLevel),
        "one step": schema_for(passages, PlainFieldExecution),
    }
    expected = execute(variants["graphql-core"])
    assert expected.errors is None
    for schema in variants.values():
        assert execute(schema).data == expected.data
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, schema in variants.items():
            started = time.process_time()
            for _ in range(args.calls):
                execute(schema)
            cpu[name].append((time.process_time() - started) / args.calls * 1e3)
    base = statistics.median(cpu["graphql-core"])
    print(f"25 passages x {args.ranges} ranges, median of {args.rounds} rounds of {args.calls}:")
    for name, values in cpu.items():
        median = statistics.median(values)
        print(f"  {name:<15} {median:7.3f} ms per execution  x{median / base:.2f}")


if __name__ == "__main__":
    main()
