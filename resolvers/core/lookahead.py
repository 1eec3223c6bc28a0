"""What a query selects below the field being resolved, and values a loader already holds.

A list resolver that knows which nested fields its items will ask for can load them for the
whole page before returning (one batch per loader, as the items' own loads would make). The
items' fields then find their values loaded and resolve without an awaitable: at 25 rows and
three nested fields that spares graphql-core 75 tasks per page (ADR 0078).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionNode,
)
from strawberry.dataloader import DataLoader

from resolvers.core.context import Info

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")


def selected_names(info: Info, *path: str) -> set[str]:
    """Names of the fields selected at `path` below the current field (through fragments and
    aliases): `selected_names(info, "edges", "node")` on a connection field.

    It walks graphql-core's nodes along `path` only: Strawberry's `selected_fields` converts the
    field's whole subtree first (DocumentDetail's root: about 120 nodes, each asked for; ADR
    0155)."""
    raw = info._raw_info
    level: list[FieldNode] = list(raw.field_nodes)
    for name in path:
        level = [node for node in _children(raw, level) if node.name.value == name]
    return {node.name.value for node in _children(raw, level)}


def _children(raw: GraphQLResolveInfo[Any], fields: Iterable[FieldNode]) -> Iterator[FieldNode]:
    for field in fields:
        if field.selection_set is not None:
            yield from _field_nodes(raw, field.selection_set.selections)


def _field_nodes(
    raw: GraphQLResolveInfo[Any], selections: Iterable[SelectionNode]
) -> Iterator[FieldNode]:
    for selection in selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, FragmentSpreadNode):
            yield from _field_nodes(
                raw, raw.fragments[selection.name.value].selection_set.selections
            )
        elif isinstance(selection, InlineFragmentNode):
            yield from _field_nodes(raw, selection.selection_set.selections)


def now_or_later(loader: DataLoader[K, V], key: K, convert: Callable[[V], R]) -> R:
    """`convert` of the value `loader` holds for `key`, at once when it is already loaded;
    otherwise an awaitable of it, which graphql-core awaits as it would an async resolver's.

    Typed as the value so that a resolver keeps its GraphQL return type; Strawberry treats the
    resolver as synchronous either way.
    """
    future = cast("Any", loader.load(key))
    if future.done() and not future.cancelled() and future.exception() is None:
        return convert(future.result())
    return cast(R, _converted(future, convert))


async def _converted(value: Awaitable[V], convert: Callable[[V], R]) -> R:
    return convert(await value)


def loaded_values(
    load: Awaitable[list[V]] | None, keys: list[K], convert: Callable[[V], R]
) -> dict[K, R] | None:
    """A finished batch load's values by key, converted; None when it was not made or failed
    (the fields' own resolvers then load them and report the failure)."""
    if not isinstance(load, asyncio.Future) or load.cancelled() or load.exception() is not None:
        return None
    return {key: convert(value) for key, value in zip(keys, load.result(), strict=True)}


@dataclass(frozen=True)
class PageLoad(Generic[K, V, R]):
    """One loader's batch for a page of items, made when the query selects `field` on them."""

    field: str
    loader: DataLoader[K, V]
    keys: list[K]
    convert: Callable[[V], R]


async def load_selected(
    info: Info, path: tuple[str, ...], *loads: PageLoad[Any, Any, Any]
) -> list[dict[Any, Any] | None]:
    """Each of `loads` whose field the query selects at `path`, made together (one batch per
    loader), then its values by key, converted (`loaded_values`): None for one not selected or
    whose load failed, which the field's own resolver then loads and reports."""
    wanted = selected_names(info, *path)
    pending = [load.loader.load_many(load.keys) if load.field in wanted else None for load in loads]
    await asyncio.gather(*(p for p in pending if p is not None), return_exceptions=True)
    return [
        loaded_values(batch, load.keys, load.convert)
        for batch, load in zip(pending, loads, strict=True)
    ]
