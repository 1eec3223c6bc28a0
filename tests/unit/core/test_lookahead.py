"""selected_names sees through fragments and aliases; now_or_later answers at once when loaded."""

import inspect

import strawberry
from strawberry.dataloader import DataLoader

from resolvers.core.lookahead import now_or_later, selected_names


@strawberry.type
class Item:
    name: str
    size: int


@strawberry.type
class Edge:
    node: Item


@strawberry.type
class Page:
    edges: list[Edge]


SEEN: list[set[str]] = []


@strawberry.type
class Query:
    @strawberry.field
    def page(self, info: strawberry.Info) -> Page:
        SEEN.append(selected_names(info, "edges", "node"))
        return Page(edges=[Edge(node=Item(name="a", size=1))])


SCHEMA = strawberry.Schema(query=Query)


def _selected(query: str) -> set[str]:
    SEEN.clear()
    result = SCHEMA.execute_sync(query)
    assert result.errors is None, result.errors
    [names] = SEEN
    return names


def test_plain_selection():
    assert _selected("{ page { edges { node { name } } } }") == {"name"}


def test_fragments_inline_fragments_and_aliases():
    query = """
      query { page { edges { node { ...Sized ... on Item { label: name } } } } }
      fragment Sized on Item { size }
    """
    assert _selected(query) == {"name", "size"}


def test_the_path_itself_may_run_through_fragments():
    query = """
      query { page { ...Edges edges { ... on Edge { node { name } } } } }
      fragment Edges on Page { edges { node { size } } }
    """
    assert _selected(query) == {"name", "size"}


def test_other_paths_are_not_mixed_in():
    assert _selected("{ page { edges { __typename } } }") == set()


async def test_now_or_later_answers_at_once_when_loaded():
    async def load(keys: list[int]) -> list[int]:
        return [k * 10 for k in keys]

    loader: DataLoader[int, int] = DataLoader(load_fn=load)
    later = now_or_later(loader, 1, lambda v: v + 1)
    assert inspect.isawaitable(later)
    assert await later == 11  # type: ignore[misc]
    assert now_or_later(loader, 1, lambda v: v + 1) == 11  # loaded: a value, not an awaitable
