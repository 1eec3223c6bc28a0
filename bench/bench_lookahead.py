"""Benchmark: what a resolver's look at the fields selected below it costs (lookahead).

    uv run --frozen python bench/bench_lookahead.py [--rounds N]

A script, not a test: it prints figures and asserts nothing about time. No server: the screens'
own operations (graphql/operations/*.graphql) are parsed, and the names selected below each root
field (and below DocumentDetail's `runs { edges { node } }`, where its runs' loader looks) are
read two ways, in turns:

  baseline  Strawberry's `Info.selected_fields` (it converts the field's whole subtree, every
            argument and directive included), then the names at the path (how the resolvers
            read them before)
  app       `resolvers.core.lookahead.selected_names`, which walks graphql-core's nodes along the
            path only

Each figure is the median over `--rounds` of the process's CPU per look; the names found both
ways are checked equal first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `services`, ... importable
    sys.path.insert(0, str(ROOT))

from graphql import FieldNode, FragmentDefinitionNode, OperationDefinitionNode, parse  # noqa: E402
from strawberry.types.nodes import SelectedField, Selection, convert_selections  # noqa: E402

from resolvers.core.lookahead import selected_names  # noqa: E402

OPERATIONS = ROOT / "graphql" / "operations"
LOOKS = [
    ("DocumentsList", ("documents",), ("edges", "node")),
    ("Dashboard", (), ()),
    ("DocumentDetail", (), ()),
    ("DocumentDetail", ("runs",), ("edges", "node")),
]


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:
            yield from _fields(selection.selections)


def baseline_names(raw: Any, path: tuple[str, ...]) -> set[str]:
    """The resolvers' walk before: Strawberry's conversion of the subtree, then the path."""
    selected = convert_selections(raw, raw.field_nodes)
    level = [child for field in selected for child in field.selections]
    for name in path:
        level = [c for f in _fields(level) if f.name == name for c in f.selections]
    return {f.name for f in _fields(level)}


def info_at(operation: str, below: tuple[str, ...]) -> Any:
    """What a resolver's `info` holds that the lookahead reads, at the operation's root field
    or at `below` under it: its field nodes, the document's fragments and the variables."""
    document = parse((OPERATIONS / f"{operation}.graphql").read_text())
    definition = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    nodes = [s for s in definition.selection_set.selections if isinstance(s, FieldNode)][:1]
    for name in below:
        nodes = [
            s
            for n in nodes
            for s in (n.selection_set.selections if n.selection_set else ())
            if isinstance(s, FieldNode) and s.name.value == name
        ]
    variables = {v.variable.name.value: None for v in definition.variable_definitions or ()}
    raw = SimpleNamespace(field_nodes=nodes, fragments=fragments, variable_values=variables)
    return SimpleNamespace(_raw_info=raw, selected_fields=None)


def cpu_per_look(work: Callable[[], Any], repeats: int = 2000) -> float:
    began = time.process_time()
    for _ in range(repeats):
        work()
    return (time.process_time() - began) / repeats * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"CPU per look, median of {args.rounds} rounds of 2,000:")
    for operation, below, path in LOOKS:
        info = info_at(operation, below)
        raw = info._raw_info

        def baseline(raw: Any = raw, path: tuple[str, ...] = path) -> set[str]:
            return baseline_names(raw, path)

        def app(info: Any = info, path: tuple[str, ...] = path) -> set[str]:
            return selected_names(info, *path)

        assert baseline() == app() and app(), (operation, below, path)
        before, after = [], []
        for _ in range(args.rounds):  # in turns, so drift hits both alike
            before.append(cpu_per_look(baseline))
            after.append(cpu_per_look(app))
        b, a = statistics.median(before), statistics.median(after)
        where = ".".join((operation, *below)) + ("/" + "/".join(path) if path else "")
        print(f"  {where:<38} baseline {b:7.1f} µs  app {a:6.1f} µs  (x{a / b:.2f})")


if __name__ == "__main__":
    main()
