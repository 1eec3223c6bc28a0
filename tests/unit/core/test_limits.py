"""The document limits: depth, size, aliases and cost, measured in linear time.

Linear time is asserted by counting the selections the walk looks at (`Shape.visits`): each
selection of the document once, however often its fragment is spread.
"""

from pathlib import Path

import pytest
from graphql import build_client_schema, get_introspection_query, parse

from base.settings import Settings
from resolvers.core.limits import UNPAGED_LIST_ITEMS, Shape, measure
from resolvers.schema import build_schema

ROOT = Path(__file__).resolve().parents[3]
SECRET = "limits-unit-test-secret-0123456789abcdef"
SCHEMA = build_schema(Settings(app_env="test", jwt_secret=SECRET))
GRAPHQL_SCHEMA = SCHEMA._schema
NESTED = (
    "{ workspaces(first: 100) { edges { node { runs(first: 100) { edges { node {"
    " events(first: 100) { edges { node { cursor } } } } } } } } } }"
)
EVERY_INTROSPECTION_OPTION = {
    "descriptions": True,
    "specified_by_url": True,
    "directive_is_repeatable": True,
    "schema_description": True,
    "input_value_deprecation": True,
    "experimental_directive_deprecation": True,
    "one_of": True,
}


def selections_in(document: str) -> int:
    """Fields, inline fragments and spreads written in the document."""
    count = 0
    stack = [d.selection_set for d in parse(document).definitions]
    while stack:
        selection_set = stack.pop()
        for selection in selection_set.selections:
            count += 1
            if getattr(selection, "selection_set", None) is not None:
                stack.append(selection.selection_set)
    return count


def test_measure_counts_depth_fields_and_aliases_through_fragments():
    document = parse(
        """
        query { me { id ...U } a: workspaces { edges { node { id } } } }
        fragment U on User { name b: email }
        """
    )
    assert measure(document) == Shape(depth=4, fields=8, aliases=2, cost=8, visits=9)


def test_exponential_fragment_spreads_are_measured_in_linear_work():
    # F_i spreads F_{i-1} twice: expanded size doubles per level (2**40 fields at the top).
    levels = 40
    fragments = ["fragment F0 on User { id }"] + [
        f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    text = f"query {{ me {{ ...F{levels} }} }}\n" + "\n".join(fragments)
    shape = measure(parse(text), GRAPHQL_SCHEMA)
    assert shape.fields == 1 + 2**levels
    assert shape.cost == 1 + 2**levels
    assert shape.depth == 2
    assert shape.visits == selections_in(text) == 2 + 1 + 2 * levels


def test_a_long_chain_of_fragments_is_measured_without_recursion():
    # Deeper than Python's recursion limit: the walk keeps its own stack.
    length = 1500
    fragments = [f"fragment F{i} on User {{ ...F{i + 1} }}" for i in range(length)]
    text = "{ me { ...F0 } }\n" + "\n".join(fragments) + f"\nfragment F{length} on User {{ id }}"
    shape = measure(parse(text), GRAPHQL_SCHEMA)
    assert (shape.depth, shape.fields, shape.cost) == (2, 2, 2)
    assert shape.visits == selections_in(text) == length + 3


def test_cyclic_fragments_do_not_recurse_forever():
    document = parse(
        "query { me { ...A } } fragment A on User { ...B } fragment B on User { ...A }"
    )
    assert measure(document).depth == 1


def test_nested_page_sizes_multiply():
    # events: 1 + edges 1 + 100 x (node, cursor) = 202; a run node 203; runs 1 + 1 + 100 x 203;
    # a workspace node 20,303; workspaces 1 + 1 + 100 x 20,303.
    assert measure(parse(NESTED), GRAPHQL_SCHEMA) == Shape(
        depth=10, fields=10, aliases=0, cost=2_030_302, visits=10
    )


@pytest.mark.parametrize(
    ("document", "variables", "cost"),
    [
        # totalCount and pageInfo are not multiplied; the edges' items are.
        ("{ workspaces(first: 10) { totalCount edges { node { id name } } } }", {}, 33),
        # Omitted: 25, as PageRequest reads it.
        ("{ workspaces { edges { node { id } } } }", {}, 52),
        # Over 100: capped as PageRequest caps it. Negative: no items (and BAD_USER_INPUT).
        ("{ workspaces(first: 5000) { edges { node { id } } } }", {}, 202),
        ("{ workspaces(first: -3) { edges { node { id } } } }", {}, 2),
        ("query($n: Int) { workspaces(first: $n) { edges { node { id } } } }", {"n": 4}, 10),
        ("query($n: Int = 7) { workspaces(first: $n) { edges { node { id } } } }", {}, 16),
        ("query($n: Int) { workspaces(first: $n) { edges { node { id } } } }", {"n": None}, 52),
        # A value that coercion will refuse counts as the default.
        ("query($n: Int) { workspaces(first: $n) { edges { node { id } } } }", {"n": "x"}, 52),
        # A list without page size counts UNPAGED_LIST_ITEMS items: 1 + 10 x (name, status).
        ("query($id: ID!) { run(id: $id) { steps { name status } } }", {}, 22),
        # The connection's list is found through a fragment on the connection type.
        (
            "{ workspaces(first: 3) { ...W } } "
            "fragment W on WorkspaceConnection { totalCount edges { node { id } } }",
            {},
            9,
        ),
    ],
)
def test_cost_counts_the_page_size_each_list_asks_for(document, variables, cost):
    assert measure(parse(document), GRAPHQL_SCHEMA, variables).cost == cost


def test_unpaged_lists_count_a_fixed_number_of_items():
    assert UNPAGED_LIST_ITEMS == 10


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        ({}, 220),
        (EVERY_INTROSPECTION_OPTION, 232),
        ({**EVERY_INTROSPECTION_OPTION, "type_depth": 30}, 610),
    ],
    ids=["default", "every-option", "every-option-type-depth-30"],
)
def test_introspection_adds_no_depth_and_multiplies_nothing(options, fields):
    document = parse(get_introspection_query(**options))
    shape = measure(document, GRAPHQL_SCHEMA)
    assert (shape.depth, shape.fields, shape.cost) == (1, fields, fields)
    assert shape.visits == selections_in(get_introspection_query(**options))


def test_every_operation_of_the_contract_is_within_the_limits_at_the_largest_page():
    settings = Settings(jwt_secret=SECRET)
    costs = {}
    for path in sorted((ROOT / "graphql" / "operations").glob("*.graphql")):
        shape = measure(parse(path.read_text()), GRAPHQL_SCHEMA, {"first": 100})
        assert shape.depth <= settings.graphql_max_depth, path.name
        assert shape.fields <= settings.graphql_max_fields, path.name
        assert shape.aliases <= settings.graphql_max_aliases, path.name
        costs[path.stem] = shape.cost
    # Conversation pages its messages 25 at a time (a literal `first`), each answer with its
    # citations counted as 10 items and its `passages(first: 5)` as 5.
    assert max(costs.values()) == costs["Conversation"] == 4711
    # fieldSources: a list without `first`, counted as 10 items of 2 fields (ADR 0103).
    assert costs["DocumentDetail"] == 2851
    assert costs["DocumentsList"] == 1709
    assert costs["RunsMonitor"] == 1708
    # `search(first: 100)`: its payload's `results` connection holds 100 edges.
    assert costs["Search"] == 3740
    assert costs["RunDetail"] == 902
    # `tags(first: 100)`: a plain list with a `first` of its own holds that many.
    assert costs["TagChoices"] == 203
    assert settings.graphql_max_cost == 10_000


class Untouchable:
    """A context whose every use fails the test: a refused document must not execute."""

    request_id = "limits-test"

    def __getattr__(self, name):
        raise AssertionError(f"the refused document reached execution ({name})")


async def test_a_costly_document_is_refused_before_execution():
    result = await SCHEMA.execute(NESTED, context_value=Untouchable())
    assert result.data is None
    [error] = result.errors
    assert error.message == (
        "Query is too costly: estimated cost 2030302 exceeds 10000 "
        "(lists count their page size, nested lists multiply)."
    )
    assert error.extensions == {
        "code": "QUERY_TOO_COSTLY",
        "limit": "cost",
        "max": 10_000,
        "requestId": "limits-test",
    }


@pytest.mark.parametrize(
    ("document", "limit", "maximum", "message"),
    [
        ("query Deep " + "{ a " * 13 + "}" * 13, "depth", 12, "depth 13 exceeds 12."),
        (
            "{ " + " ".join(f"a{i}: __typename" for i in range(101)) + " }",
            "aliases",
            100,
            "101 aliases exceed 100.",
        ),
        (
            "{ " + "__typename " * 2001 + "}",
            "fields",
            2000,
            "2001 fields (fragments expanded) exceed 2000.",
        ),
    ],
    ids=["depth", "aliases", "fields"],
)
async def test_each_shape_limit_has_its_code(document, limit, maximum, message):
    result = await SCHEMA.execute(document, context_value=Untouchable())
    [error] = result.errors
    assert error.message == f"Query is too complex: {message}"
    assert error.extensions == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": limit,
        "max": maximum,
        "requestId": "limits-test",
    }


async def test_the_token_limit_has_its_code():
    result = await SCHEMA.execute("{ " + "__typename " * 5001 + "}", context_value=Untouchable())
    [error] = result.errors
    assert error.message == (
        "Syntax Error: Document contains more than 5000 tokens. Parsing aborted."
    )
    assert error.extensions == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": "tokens",
        "max": 5000,
        "requestId": "limits-test",
    }


async def test_the_depth_limit_still_holds_next_to_introspection():
    too_deep = "{ __schema { queryType { name } } " + "me { a " * 12 + "}" * 12 + " }"
    result = await SCHEMA.execute(too_deep, context_value=Untouchable())
    assert [e.extensions["code"] for e in result.errors] == ["QUERY_TOO_COMPLEX"]
    assert result.errors[0].message == "Query is too complex: depth 13 exceeds 12."


async def test_nested_introspection_lists_are_still_refused_by_validation():
    # Exempt from depth, but graphql-core's MaxIntrospectionDepthRule bounds the costly shape.
    nested = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    assert measure(parse(nested), GRAPHQL_SCHEMA).depth == 1
    result = await SCHEMA.execute(nested, context_value=Untouchable())
    assert [(e.message, e.extensions["code"]) for e in result.errors] == [
        ("Maximum introspection depth exceeded", "GRAPHQL_VALIDATION_FAILED")
    ]


@pytest.mark.parametrize(
    "options",
    [{}, EVERY_INTROSPECTION_OPTION, {**EVERY_INTROSPECTION_OPTION, "type_depth": 30}],
    ids=["default", "every-option", "every-option-type-depth-30"],
)
async def test_introspection_answers_outside_production(options):
    result = await SCHEMA.execute(get_introspection_query(**options), context_value=Untouchable())
    assert result.errors is None
    schema = build_client_schema(result.data)
    assert "workspaces" in schema.query_type.fields


async def test_introspection_is_off_in_production_unless_enabled():
    production = Settings(app_env="production", jwt_secret=SECRET)
    assert production.introspection_enabled is False
    result = await build_schema(production).execute(
        get_introspection_query(), context_value=Untouchable()
    )
    assert [(e.message, e.extensions) for e in result.errors] == [
        (
            "Introspection is disabled on this server (`__schema`).",
            {"code": "INTROSPECTION_DISABLED", "requestId": "limits-test"},
        )
    ]
    typename = await build_schema(production).execute("{ __typename }")
    assert (typename.data, typename.errors) == ({"__typename": "Query"}, None)

    enabled = production.model_copy(update={"graphql_introspection": True})
    assert enabled.introspection_enabled is True
    result = await build_schema(enabled).execute(
        get_introspection_query(**EVERY_INTROSPECTION_OPTION), context_value=Untouchable()
    )
    assert result.errors is None
    assert Settings(jwt_secret=SECRET, graphql_introspection=False).introspection_enabled is False


SEARCH_PAGE = """
query($first: Int) {
  search(workspaceId: "w", query: "q", first: $first) {
    degraded
    errors { code message }
    results { totalCount edges { cursor node { score } } }
  }
}
"""


@pytest.mark.parametrize(("first", "cost"), [(1, 29), (10, 56), (100, 326)])
def test_a_payloads_connection_takes_the_page_size_of_the_field_above(first, cost):
    # search 1 + degraded 1 + errors (1 + 10 x 2) + results (1 + totalCount 1 + edges 1 +
    # first x (cursor, node, score: 3)): the errors list is not paged by `first`.
    shape = measure(parse(SEARCH_PAGE), GRAPHQL_SCHEMA, {"first": first})
    assert shape.cost == cost == 26 + 3 * first


@pytest.mark.parametrize(("first", "cost"), [(1, 4), (5, 12), (50, 102)])
def test_a_list_with_its_own_first_holds_that_many_items(first, cost):
    document = f"""
    query {{ node(id: "m") {{ ... on Message {{ passages(first: {first}) {{ number text }} }} }} }}
    """
    shape = measure(parse(document), GRAPHQL_SCHEMA)
    # node 1 + passages 1 + first x (number, text)
    assert shape.cost == cost == 2 + 2 * first
