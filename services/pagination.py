"""Keyset pagination: the one implementation behind every connection.

A cursor is the sort key of a row (opaque base64 of JSON); the next page starts strictly after
it, so pages stay stable while rows are inserted and cost the same at any depth.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, SQLColumnExpression, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from base.errors import Invalid
from services.views import Edge, Page

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    first: int = DEFAULT_PAGE_SIZE
    after: str | None = None

    @classmethod
    def of(cls, first: int | None, after: str | None) -> PageRequest:
        if first is None:
            first = DEFAULT_PAGE_SIZE
        if first < 0:
            raise Invalid("`first` must be 0 or more.", code="BAD_USER_INPUT", field="first")
        return cls(first=min(first, MAX_PAGE_SIZE), after=after)


@dataclass(frozen=True)
class SortKey:
    """Columns that order a connection; the last one must be unique (normally the id)."""

    columns: Sequence[SQLColumnExpression[Any]]
    descending: bool = False


def _encode(values: Sequence[Any]) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, datetime):
            return ["dt", v.isoformat()]
        if isinstance(v, uuid.UUID):
            return ["uuid", str(v)]
        return v

    raw = json.dumps([plain(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, width: int) -> list[Any]:
    def typed(v: Any) -> Any:
        if isinstance(v, list) and len(v) == 2 and v[0] == "dt":
            return datetime.fromisoformat(v[1])
        if isinstance(v, list) and len(v) == 2 and v[0] == "uuid":
            return uuid.UUID(v[1])
        if isinstance(v, str | int | float):
            return v
        raise ValueError("bad cursor value")

    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != width:
            raise ValueError("bad cursor width")
        return [typed(v) for v in values]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise Invalid(
            "This cursor is not valid here.", code="INVALID_CURSOR", field="after"
        ) from exc


async def paginate(
    session: AsyncSession,
    stmt: Select[*tuple[Any, ...]],
    sort: SortKey,
    page: PageRequest,
    to_node: Callable[[Any], T],
    sort_values: Callable[[Any], Sequence[Any]],
) -> Page[T]:
    """Run one page query and one count query for `stmt` (a SELECT with its filters applied)."""
    total = (
        await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))
    ).scalar_one()
    key = tuple_(*sort.columns)
    paged = stmt
    if page.after is not None:
        after = tuple_(*_decode(page.after, len(sort.columns)))
        paged = paged.where(key < after if sort.descending else key > after)
    order = [c.desc() if sort.descending else c.asc() for c in sort.columns]
    rows = (await session.execute(paged.order_by(*order).limit(page.first + 1))).all()
    edges: list[Edge[T]] = [
        Edge(cursor=_encode(sort_values(r)), node=to_node(r)) for r in rows[: page.first]
    ]
    return Page(
        edges=edges,
        total_count=total,
        has_next_page=len(rows) > page.first,
        has_previous_page=page.after is not None,
    )
