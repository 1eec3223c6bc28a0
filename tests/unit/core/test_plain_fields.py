"""Plain fields read directly (resolvers/core/execution.py) give exactly what graphql-core's own
path gives: values, nulls, errors and their paths."""

from __future__ import annotations

import enum
from typing import Any

import pytest
import strawberry
from strawberry import relay
from strawberry.extensions import SchemaExtension

from resolvers.core.execution import (
    NOT_LOADED,
    PlainFieldExecution,
    PlainObjectField,
    plain_fields,
    prefetched,
)
from resolvers.documents.types import Document
from resolvers.schema import build_schema


@strawberry.enum
class Colour(enum.Enum):
    RED = "RED"
    BLUE = "BLUE"


@strawberry.type
class Item:
    count: int
    name: str | None
    colour: Colour
    words: list[str]
    ratio: float
    flag: bool
    ref: strawberry.ID

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return (self.name or "").upper() * times


class Size(enum.IntEnum):
    LARGE = 9


class Label(str):
    pass


def _item(**changes: Any) -> Item:
    values: dict[str, Any] = {
        "count": 3,
        "name": "pipe",
        "colour": Colour.BLUE,
        "words": ["a", "b"],
        "ratio": 0.5,
        "flag": True,
        "ref": "r1",
    }
    values.update(changes)
    return Item(**values)


@strawberry.type
class Fruit(relay.Node):
    code: relay.NodeID[str]
    name: str


@strawberry.type
class Pear(Fruit):  # Fruit's own `id`, and a field of its own
    ripe: bool


@strawberry.type
class Plum(relay.Node):
    code: relay.NodeID[str]

    @classmethod
    def resolve_id(cls, root: Plum, *, info: strawberry.Info) -> str:
        return root.code.upper()


@strawberry.type
class Basket:  # objects of Item read by attribute
    label: str
    first: Item
    maybe: Item | None
    all: list[Item]
    some: list[Item] | None


@strawberry.type
class Crate:  # nodes by attribute, and fields a caller may have loaded
    label: str
    fruit: Fruit  # a node: Strawberry checks each value's class
    fruits: list[Fruit]
    loaded_tally: strawberry.Private[int | None] = NOT_LOADED
    loaded_best: strawberry.Private[Fruit | None] = NOT_LOADED

    @strawberry.field(metadata=prefetched("loaded_tally"))
    def tally(self) -> int | None:
        RESOLVED_BY_RESOLVER.append(f"{self.label}.tally")
        return self.loaded_tally if self.loaded_tally is not NOT_LOADED else len(self.fruits)

    @strawberry.field(metadata=prefetched("loaded_best"))
    def best(self) -> Fruit | None:
        RESOLVED_BY_RESOLVER.append(f"{self.label}.best")
        return self.loaded_best if self.loaded_best is not NOT_LOADED else self.fruit

    @strawberry.field(metadata=prefetched("loaded_tally"))
    def solid_tally(self) -> int:  # not null: a null loaded takes the resolver's path
        RESOLVED_BY_RESOLVER.append(f"{self.label}.solid_tally")
        return self.loaded_tally if self.loaded_tally is not NOT_LOADED else len(self.fruits)  # type: ignore[return-value]

    @strawberry.field(metadata=prefetched("loaded_tally"))
    def tally_times(self, times: int = 1) -> int:  # arguments: never read directly
        return len(self.fruits) * times


RESOLVED_BY_RESOLVER: list[str] = []
APPLE, QUINCE = Fruit(code="7", name="apple"), Fruit(code="8", name="quince")


def _crates(case: str) -> list[Crate]:
    pear = Pear(code="9", name="pear", ripe=True)
    return {
        "loaded": [
            Crate(
                label="a", fruit=APPLE, fruits=[APPLE, QUINCE], loaded_tally=2, loaded_best=QUINCE
            ),
            Crate(label="b", fruit=QUINCE, fruits=[], loaded_tally=None, loaded_best=None),
        ],
        "not loaded": [Crate(label="c", fruit=APPLE, fruits=[QUINCE])],
        "a subclass where the node is due": [
            Crate(label="d", fruit=pear, fruits=[APPLE, pear], loaded_tally=1, loaded_best=pear)
        ],
        "a null loaded where the type has none": [
            Crate(label="e", fruit=APPLE, fruits=[], loaded_tally=None)
        ],
    }[case]


CRATE_CASES = [
    "loaded",
    "not loaded",
    "a subclass where the node is due",
    "a null loaded where the type has none",
]
CRATES_DOCUMENT = (
    "query($case: String!) { crates(case: $case) { label fruit { id name } "
    "fruits { id name __typename } tally best { id name } } }"
)
SOLID_TALLY_DOCUMENT = "query($case: String!) { crates(case: $case) { label solidTally } }"


ITEMS: dict[str, list[Item]] = {}
FRUITS: dict[str, list[Fruit]] = {
    "fruits": [Fruit(code="7", name="apple"), Fruit(code="a b/é", name="quince")],
    "an instance of a subclass": [Pear(code="9", name="pear", ripe=True)],
    "a null id": [Fruit(code=None, name="none")],  # type: ignore[arg-type]
}


@strawberry.type
class Query:
    @strawberry.field
    def items(self, case: str) -> list[Item | None]:
        return ITEMS[case]

    @strawberry.field
    def solid_items(self, case: str) -> list[Item]:  # items that are not null
        return ITEMS[case]  # type: ignore[return-value]

    @strawberry.field
    def baskets(self, case: str) -> list[Basket]:
        items = ITEMS[case]
        return [
            Basket(label=case, first=items[0], maybe=items[-1], all=items, some=items),
            Basket(label="empty", first=items[-1], maybe=None, all=[], some=None),
        ]

    @strawberry.field
    def fruits(self, case: str) -> list[Fruit | None]:
        return FRUITS[case]

    @strawberry.field
    def plums(self) -> list[Plum]:
        return [Plum(code="p1")]

    @strawberry.field
    def crates(self, case: str) -> list[Crate]:
        return _crates(case)

    @strawberry.field
    def fruit_list(self) -> list[Fruit]:  # a resolver's list of non-null nodes
        return [APPLE, QUINCE]


ITEMS.update(
    {
        "plain": [_item(), _item(count=0, name=None, colour=Colour.RED, words=[], ratio=2)],
        "null in a non-null field": [_item(), _item(count=None)],
        "a value the type refuses": [_item(count="many")],
        "an int too large": [_item(count=2**40)],
        "a null item in a list of non-null": [_item(words=["a", None])],
        "not an enum value": [_item(colour="GREEN")],
        "a string where a list is due": [_item(words="ab")],
        "a missing attribute": [_item()],
        # Built-in scalars given values at their bounds or of other Python types: read directly,
        # they are what graphql-core coerces them to.
        "ints at the 32-bit bounds": [_item(count=2**31 - 1), _item(count=-(2**31))],
        "an int just past the bounds": [_item(count=2**31), _item(count=-(2**31) - 1)],
        "a bool where an int is due": [_item(count=True)],
        "a float where an int is due": [_item(count=3.0), _item(count=2.5)],
        "an int enum where an int is due": [_item(count=Size.LARGE)],
        "a str subclass and an int where strings are due": [_item(name=Label("x"), words=["a", 5])],
        "an int where a boolean is due": [_item(flag=1), _item(flag=0.0)],
        "an int where an id is due": [_item(ref=7), _item(ref=Label("r2"))],
    }
)
del ITEMS["a missing attribute"][0].ratio

DOCUMENT = (
    "query($case: String!) { items(case: $case) { count name colour words ratio flag ref shout } }"
)

FRUITS_DOCUMENT = "query($case: String!) { fruits(case: $case) { id name } plums { id } }"

direct = strawberry.Schema(query=Query, types=[Pear], execution_context_class=PlainFieldExecution)
through_graphql_core = strawberry.Schema(query=Query, types=[Pear])


def _result(schema: strawberry.Schema, case: str, document: str = DOCUMENT) -> dict[str, Any]:
    result = schema.execute_sync(document, variable_values={"case": case})
    return {
        "data": result.data,
        "errors": [(e.message, e.path) for e in result.errors or []],
    }


def test_the_plain_fields_are_the_attribute_scalars_and_enums_without_arguments() -> None:
    found = plain_fields(direct._schema)
    assert sorted(found["Item"]) == ["colour", "count", "flag", "name", "ratio", "ref", "words"]
    assert found["Item"]["words"].is_list is True
    assert found["Item"]["count"].is_list is False
    assert "Query" not in found  # `items` has a resolver and arguments
    assert sorted(found["Fruit"]) == ["id", "name"]
    assert found["Fruit"]["id"].source_type is Fruit
    assert found["Pear"]["id"].source_type is Pear
    assert "Plum" not in found  # its own resolve_id


@pytest.mark.parametrize("case", sorted(FRUITS))
def test_node_ids_read_directly_are_what_strawberry_gives(case: str) -> None:
    assert _result(direct, case, FRUITS_DOCUMENT) == _result(
        through_graphql_core, case, FRUITS_DOCUMENT
    )


def test_node_ids_are_global_ids_of_the_type_name_and_node_id() -> None:
    data = _result(direct, "fruits", FRUITS_DOCUMENT)["data"]
    assert [relay.GlobalID.from_id(f["id"]) for f in data["fruits"]] == [
        relay.GlobalID("Fruit", "7"),
        relay.GlobalID("Fruit", "a b/é"),
    ]
    assert data["plums"] == [{"id": str(relay.GlobalID("Plum", "P1"))}]
    null = _result(direct, "a null id", FRUITS_DOCUMENT)
    assert null["data"]["fruits"] == [None]
    assert [path for _message, path in null["errors"]] == [["fruits", 0, "id"]]


@pytest.mark.parametrize("case", sorted(ITEMS))
def test_reading_directly_gives_what_graphql_core_gives(case: str) -> None:
    assert _result(direct, case) == _result(through_graphql_core, case)


def test_each_case_reads_as_expected() -> None:
    assert _result(direct, "plain") == {
        "data": {
            "items": [
                {
                    "count": 3,
                    "name": "pipe",
                    "colour": "BLUE",
                    "words": ["a", "b"],
                    "ratio": 0.5,
                    "flag": True,
                    "ref": "r1",
                    "shout": "PIPE",
                },
                {
                    "count": 0,
                    "name": None,
                    "colour": "RED",
                    "words": [],
                    "ratio": 2.0,
                    "flag": True,
                    "ref": "r1",
                    "shout": "",
                },
            ]
        },
        "errors": [],
    }
    refused = _result(direct, "a value the type refuses")
    assert refused["data"] == {"items": [None]}
    assert refused["errors"] == [
        ("Int cannot represent non-integer value: 'many'", ["items", 0, "count"])
    ]
    null = _result(direct, "null in a non-null field")
    assert null["data"]["items"][1] is None
    assert null["errors"] == [
        ("Cannot return null for non-nullable field Item.count.", ["items", 1, "count"])
    ]


def test_the_app_schema_reads_its_plain_fields_directly() -> None:
    found = plain_fields(build_schema()._schema)
    assert sorted(found["TextRange"]) == ["end", "start"]
    assert {"text", "headingPath", "position", "charStart", "charEnd", "cosine"} <= set(
        found["SearchPassage"]
    )
    assert {"title", "status", "sizeBytes", "wordCount", "updatedAt"} <= set(found["Document"])
    assert found["Document"]["id"].source_type is not None  # Strawberry's global id
    # Read directly once a page's loads found them (load_document_fields).
    for name, attribute in (("collection", "loaded_collection"), ("owner", "loaded_owner")):
        loaded = found["Document"][name]
        assert isinstance(loaded, PlainObjectField) and loaded.attribute == attribute
    assert found["Document"]["tags"].attribute == "loaded_tags"
    assert "entities" not in found["Document"]  # through a loader, always
    # Objects read by attribute: plain where their selection is.
    matches = found["SearchPassage"]["matches"]
    assert isinstance(matches, PlainObjectField)
    assert (matches.object_type.name, matches.is_list) == ("TextRange", True)
    passage = found["SearchResult"]["passage"]
    assert isinstance(passage, PlainObjectField)
    assert (passage.object_type.name, passage.is_list) == ("SearchPassage", False)
    node = found["DocumentEdge"]["node"]  # a Node: read when of exactly its class
    assert isinstance(node, PlainObjectField) and node.exact_type is Document


class CountingExecution(PlainFieldExecution):
    """Counts the fields that took graphql-core's path (each builds a ResolveInfo)."""

    resolved: list[str] = []  # noqa: RUF012

    def build_resolve_info(self, field_def: Any, field_nodes: Any, *args: Any) -> Any:
        self.resolved.append(field_nodes[0].name.value)
        return super().build_resolve_info(field_def, field_nodes, *args)


class UpperCase(SchemaExtension):
    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        return _next(root, info, *args, **kwargs)


def test_only_the_fields_that_are_not_plain_take_graphql_cores_path() -> None:
    schema = strawberry.Schema(query=Query, types=[Pear], execution_context_class=CountingExecution)
    CountingExecution.resolved.clear()
    assert schema.execute_sync(DOCUMENT, variable_values={"case": "plain"}).errors is None
    assert CountingExecution.resolved == ["items", "shout", "shout"]


def test_with_an_extension_that_wraps_resolvers_every_field_takes_graphql_cores_path() -> None:
    schema = strawberry.Schema(
        query=Query,
        types=[Pear],
        execution_context_class=CountingExecution,
        extensions=[UpperCase],
    )
    CountingExecution.resolved.clear()
    assert schema.execute_sync(DOCUMENT, variable_values={"case": "plain"}).errors is None
    assert sorted(CountingExecution.resolved) == sorted(
        ["items"] + 2 * ["count", "name", "colour", "words", "ratio", "flag", "ref", "shout"]
    )


def test_built_in_scalars_read_as_graphql_core_coerces_them() -> None:
    bounds = _result(direct, "ints at the 32-bit bounds")["data"]["items"]
    assert [item["count"] for item in bounds] == [2**31 - 1, -(2**31)]
    past = _result(direct, "an int just past the bounds")
    assert past["data"] == {"items": [None, None]}
    assert [path for _message, path in past["errors"]] == [
        ["items", 0, "count"],
        ["items", 1, "count"],
    ]
    [as_bool] = _result(direct, "a bool where an int is due")["data"]["items"]
    assert type(as_bool["count"]) is int and as_bool["count"] == 1
    [as_enum] = _result(direct, "an int enum where an int is due")["data"]["items"]
    assert type(as_enum["count"]) is int and as_enum["count"] == 9
    [strings] = _result(direct, "a str subclass and an int where strings are due")["data"]["items"]
    assert (strings["name"], strings["words"]) == ("x", ["a", "5"])
    flags = _result(direct, "an int where a boolean is due")["data"]["items"]
    assert [item["flag"] for item in flags] == [True, False]
    refs = _result(direct, "an int where an id is due")["data"]["items"]
    assert [item["ref"] for item in refs] == ["7", "r2"]


# Every selected field plain: each item is completed in one step (PlainFieldExecution's
# execute_fields), with an alias, a field selected twice, and `__typename` (not plain) beside.
PLAIN_ONLY_DOCUMENTS = {
    "plain fields only": "query($case: String!) { items(case: $case) "
    "{ count name colour words ratio flag ref } }",
    "an alias and a field twice": "query($case: String!) { items(case: $case) "
    "{ n: count count name colour n: count } }",
    "with __typename": "query($case: String!) { items(case: $case) { count __typename } }",
    # A list of non-null objects: completed in one loop (PlainFieldExecution's
    # complete_list_value), or the whole list through graphql-core when an item needs it.
    "a list of non-null objects": "query($case: String!) { solidItems(case: $case) "
    "{ count name colour words ratio flag ref } }",
    "a list of non-null objects with a field that is not plain": "query($case: String!) "
    "{ solidItems(case: $case) { count shout } }",
    # Objects read by attribute, and lists of them, inside objects: read through their own
    # selection when it is plain in turn (PlainFieldExecution's _read_objects).
    "objects of plain fields in objects": "query($case: String!) { baskets(case: $case) "
    "{ label first { count name words } maybe { colour ratio } all { flag ref } "
    "some { count __typename } __typename } }",
    "an object with a field that is not plain in an object": "query($case: String!) "
    "{ baskets(case: $case) { label first { count shout } all { count } } }",
}


@pytest.mark.parametrize("document", sorted(PLAIN_ONLY_DOCUMENTS))
@pytest.mark.parametrize("case", sorted(ITEMS))
def test_objects_of_plain_fields_only_give_what_graphql_core_gives(
    case: str, document: str
) -> None:
    text = PLAIN_ONLY_DOCUMENTS[document]
    assert _result(direct, case, text) == _result(through_graphql_core, case, text)


def test_objects_of_plain_fields_only_are_completed_in_one_step() -> None:
    schema = strawberry.Schema(query=Query, types=[Pear], execution_context_class=CountingExecution)
    CountingExecution.resolved.clear()
    result = schema.execute_sync(
        PLAIN_ONLY_DOCUMENTS["an alias and a field twice"], variable_values={"case": "plain"}
    )
    assert result.errors is None
    assert result.data == {
        "items": [
            {"n": 3, "count": 3, "name": "pipe", "colour": "BLUE"},
            {"n": 0, "count": 0, "name": None, "colour": "RED"},
        ]
    }
    assert CountingExecution.resolved == ["items"]
    CountingExecution.resolved.clear()
    typename = schema.execute_sync(
        PLAIN_ONLY_DOCUMENTS["with __typename"], variable_values={"case": "plain"}
    )
    assert typename.data == {
        "items": [{"count": 3, "__typename": "Item"}, {"count": 0, "__typename": "Item"}]
    }
    assert CountingExecution.resolved == ["items"]
    CountingExecution.resolved.clear()
    solid = schema.execute_sync(
        PLAIN_ONLY_DOCUMENTS["a list of non-null objects"], variable_values={"case": "plain"}
    )
    assert solid.errors is None and solid.data is not None
    assert [item["count"] for item in solid.data["solidItems"]] == [3, 0]
    assert CountingExecution.resolved == ["solidItems"]
    # A subclass's instance where the node's own class is due takes graphql-core's path, as
    # does a node with its own resolve_id (Plum).
    CountingExecution.resolved.clear()
    fruits = schema.execute_sync(
        FRUITS_DOCUMENT, variable_values={"case": "an instance of a subclass"}
    )
    assert fruits.errors is None
    assert CountingExecution.resolved == ["fruits", "id", "plums", "id"]


def test_objects_in_objects_are_read_through_their_selection() -> None:
    schema = strawberry.Schema(query=Query, types=[Pear], execution_context_class=CountingExecution)
    CountingExecution.resolved.clear()
    result = schema.execute_sync(
        '{ baskets(case: "plain") { label first { count } maybe { name } '
        "some { count __typename } } }"
    )
    assert result.errors is None
    assert result.data == {
        "baskets": [
            {
                "label": "plain",
                "first": {"count": 3},
                "maybe": {"name": None},
                "some": [
                    {"count": 3, "__typename": "Item"},
                    {"count": 0, "__typename": "Item"},
                ],
            },
            {"label": "empty", "first": {"count": 0}, "maybe": None, "some": None},
        ]
    }
    assert CountingExecution.resolved == ["baskets"]
    # A field that is not plain in an inner object sends that object (and the objects around
    # it) through graphql-core; the other objects are still read through their selection.
    CountingExecution.resolved.clear()
    mixed = schema.execute_sync(
        '{ baskets(case: "plain") { label first { count shout } all { count } } }'
    )
    assert mixed.errors is None
    assert CountingExecution.resolved == ["baskets", "first", "shout", "first", "shout"]
    # A null where the inner type has none: the whole list through graphql-core, located.
    CountingExecution.resolved.clear()
    null = schema.execute_sync(
        '{ baskets(case: "null in a non-null field") { label all { count } } }'
    )
    assert null.data is None
    assert [(e.message, e.path) for e in null.errors or []] == [
        ("Cannot return null for non-nullable field Item.count.", ["baskets", 0, "all", 1, "count"])
    ]


def test_nodes_and_prefetched_fields_are_found_plain_in_the_schema() -> None:
    crate = plain_fields(direct._schema)["Crate"]
    assert sorted(crate) == ["best", "fruit", "fruits", "label", "solidTally", "tally"]
    fruit, fruits, best = crate["fruit"], crate["fruits"], crate["best"]
    assert isinstance(fruit, PlainObjectField) and fruit.exact_type is Fruit
    assert isinstance(fruits, PlainObjectField) and fruits.is_list and fruits.exact_type is Fruit
    assert isinstance(best, PlainObjectField) and (best.attribute, best.nullable) == (
        "loaded_best",
        True,
    )
    assert crate["tally"].attribute == "loaded_tally"


@pytest.mark.parametrize("document", [CRATES_DOCUMENT, SOLID_TALLY_DOCUMENT])
@pytest.mark.parametrize("case", CRATE_CASES)
def test_nodes_and_prefetched_fields_give_what_graphql_core_gives(case: str, document: str) -> None:
    assert _result(direct, case, document) == _result(through_graphql_core, case, document)


def test_prefetched_fields_are_read_without_their_resolvers_once_loaded() -> None:
    schema = strawberry.Schema(query=Query, types=[Pear], execution_context_class=CountingExecution)
    CountingExecution.resolved.clear()
    RESOLVED_BY_RESOLVER.clear()
    loaded = schema.execute_sync(CRATES_DOCUMENT, variable_values={"case": "loaded"})
    apple, quince = (
        {"id": str(relay.GlobalID("Fruit", code)), "name": name}
        for code, name in (("7", "apple"), ("8", "quince"))
    )
    assert loaded.errors is None
    assert loaded.data == {
        "crates": [
            {
                "label": "a",
                "fruit": apple,
                "fruits": [{**apple, "__typename": "Fruit"}, {**quince, "__typename": "Fruit"}],
                "tally": 2,
                "best": quince,
            },
            {"label": "b", "fruit": quince, "fruits": [], "tally": None, "best": None},
        ]
    }
    assert (CountingExecution.resolved, RESOLVED_BY_RESOLVER) == (["crates"], [])
    # Not loaded: each prefetched field through its resolver.
    CountingExecution.resolved.clear()
    not_loaded = schema.execute_sync(CRATES_DOCUMENT, variable_values={"case": "not loaded"})
    assert not_loaded.data is not None
    assert (not_loaded.data["crates"][0]["tally"], not_loaded.data["crates"][0]["best"]) == (
        1,
        apple,
    )
    assert CountingExecution.resolved == ["crates", "tally", "best"]
    assert RESOLVED_BY_RESOLVER == ["c.tally", "c.best"]
    # An instance of a subclass where the node is due is checked by Strawberry, on
    # graphql-core's path; the crate's other fields are still read directly.
    CountingExecution.resolved.clear()
    RESOLVED_BY_RESOLVER.clear()
    subclass = schema.execute_sync(
        CRATES_DOCUMENT, variable_values={"case": "a subclass where the node is due"}
    )
    assert subclass.errors is None and subclass.data is not None
    assert subclass.data["crates"][0]["tally"] == 1
    assert CountingExecution.resolved == [
        *("crates", "fruit", "id", "fruits", "id", "__typename", "best", "id")
    ]
    assert RESOLVED_BY_RESOLVER == ["d.best"]


def test_a_resolvers_list_of_nodes_is_read_in_one_loop() -> None:
    schema = strawberry.Schema(query=Query, types=[Pear], execution_context_class=CountingExecution)
    CountingExecution.resolved.clear()
    result = schema.execute_sync("{ fruitList { id name } }")
    assert result.data == {
        "fruitList": [
            {"id": str(relay.GlobalID("Fruit", "7")), "name": "apple"},
            {"id": str(relay.GlobalID("Fruit", "8")), "name": "quince"},
        ]
    }
    assert CountingExecution.resolved == ["fruitList"]
