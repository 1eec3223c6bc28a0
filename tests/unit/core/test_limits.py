"""The document limits measure depth and size in linear time, fragments included."""

import time

from graphql import parse

from resolvers.core.limits import Shape, measure


def test_measure_counts_depth_fields_and_aliases_through_fragments():
    document = parse(
        """
        query { me { id ...U } a: workspaces { edges { node { id } } } }
        fragment U on User { name b: email }
        """
    )
    assert measure(document) == Shape(depth=4, fields=8, aliases=2)


def test_exponential_fragment_spreads_are_measured_quickly():
    # F_i spreads F_{i-1} twice: expanded size doubles per level (2**40 fields at the top).
    levels = 40
    fragments = ["fragment F0 on User { id }"] + [
        f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    document = parse(f"query {{ me {{ ...F{levels} }} }}\n" + "\n".join(fragments))
    started = time.perf_counter()
    shape = measure(document)
    elapsed = time.perf_counter() - started
    assert shape.fields == 1 + 2**levels
    assert shape.depth == 2
    assert elapsed < 1.0  # linear in the document; the naive walk would never finish


def test_cyclic_fragments_do_not_recurse_forever():
    document = parse(
        "query { me { ...A } } fragment A on User { ...B } fragment B on User { ...A }"
    )
    assert measure(document).depth == 1
