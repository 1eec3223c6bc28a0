"""Keyset pagination: the one implementation behind every connection.

A cursor is the name of its list and the sort key of a row (opaque base64 of JSON); the next
page starts strictly after it, so pages stay stable while rows are inserted and cost the same at
any depth. A cursor is checked before it reaches SQL: the list's name, the number of values
and each value's type against its column. Anything else is INVALID_CURSOR.

Nested connections (a page of runs for each of many workspaces) are read for all their parents
at once: one grouped COUNT and one page query that numbers each parent's rows
(`paginate_by_parent`), so their cost does not grow with the number of parents. A list with few
rows per parent (a document's chunks or runs) takes the total of its first page from the rows it
numbers, and a page of one parent (a screen's list) carries its total from a COUNT inside the
page's statement: one statement.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Select,
    String,
    Uuid,
    bindparam,
    func,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from base import compact_json
from base.db.types import in_list
from base.errors import DomainError, Invalid
from services.views import Edge, Page

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100

T = TypeVar("T")
AnySelect = Select[*tuple[Any, ...]]  # a SELECT of any columns or entities
K = TypeVar("K", bound=Hashable)
Q = TypeVar("Q", bound="PagedQuery")


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
    """Columns that order a connection; the last one must be unique within the list (normally
    the id; a run's event `seq` is unique within its run).

    `name` names the list in its cursors, so a cursor of another list is refused even when its
    values have the same types.
    """

    name: str
    columns: Sequence[ColumnElement[Any] | QueryableAttribute[Any]]
    descending: bool = False

    def __post_init__(self) -> None:
        # Mapped attributes (Run.created_at) become their columns, whose SQL type reads cursors.
        columns = tuple(
            c.expression if isinstance(c, QueryableAttribute) else c for c in self.columns
        )
        object.__setattr__(self, "columns", columns)


def invalid_cursor() -> Invalid:
    return Invalid("This cursor is not valid here.", code="INVALID_CURSOR", field="after")


def _encode(sort: SortKey, values: Sequence[Any]) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, datetime):
            return ["dt", v.isoformat()]
        if isinstance(v, uuid.UUID):
            return ["uuid", str(v)]
        return v

    return _cursor_text([sort.name, *(plain(v) for v in values)])


def _cursor_text(values: list[Any]) -> str:
    """Compact JSON of `values` in unpadded URL-safe base64 (a page encodes one per edge)."""
    return base64.urlsafe_b64encode(compact_json.dumps(values).encode()).decode().rstrip("=")


def _aware_datetime(value: Any) -> datetime:
    if isinstance(value, list) and len(value) == 2 and value[0] == "dt":
        parsed = datetime.fromisoformat(value[1])  # ValueError, or TypeError for a non-str
        if parsed.tzinfo is not None:
            return parsed
    raise ValueError("not an aware datetime")


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, list) and len(value) == 2 and value[0] == "uuid":
        return uuid.UUID(value[1])
    raise ValueError("not a uuid")


def _integer(bits: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if is_int and -(2**bits) <= value < 2**bits:
            return int(value)
        raise ValueError(f"not an integer of {bits + 1} bits")

    return check


def _string(value: Any) -> str:
    """Text a database can hold, as every name and title we sort by is: no NUL, which
    PostgreSQL's text refuses, and no lone surrogate (a JSON escape can make one), which no
    UTF-8 can encode; either reached the database before and failed as INTERNAL."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    if "\x00" in value:
        raise ValueError("a NUL character")
    value.encode()  # UnicodeEncodeError, a ValueError, for a lone surrogate
    return value


def _reader(column: ColumnElement[Any] | QueryableAttribute[Any]) -> Callable[[Any], Any]:
    """How to read a cursor value for `column`: its Python type, or ValueError."""
    sql_type: TypeEngine[Any] = column.expression.type
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    if isinstance(sql_type, DateTime):
        return _aware_datetime
    if isinstance(sql_type, Uuid):
        return _uuid
    if isinstance(sql_type, Integer):
        return _integer(63 if isinstance(sql_type, BigInteger) else 31)
    if isinstance(sql_type, String):
        return _string
    raise RuntimeError(f"no cursor rule for the column type {sql_type!r}")


def _decode(sort: SortKey, cursor: str) -> list[Any]:
    """The sort-key values in `cursor`, each of its column's type; INVALID_CURSOR otherwise."""
    readers = [_reader(c) for c in sort.columns]
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(readers) + 1:
            raise ValueError("not a cursor of this width")
        if values[0] != sort.name:
            raise ValueError("a cursor of another list")
        return [read(v) for read, v in zip(readers, values[1:], strict=True)]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid_cursor() from exc


def _order(sort: SortKey) -> list[Any]:
    return [c.desc() if sort.descending else c.asc() for c in sort.columns]


def _page(
    rows: Sequence[Any],
    total: int | None,
    sort: SortKey,
    page: PageRequest,
    to_node: Callable[[Any], T],
    sort_values: Callable[[Any], Sequence[Any]],
) -> Page[T]:
    edges = [
        Edge(cursor=_encode(sort, sort_values(r)), node=to_node(r)) for r in rows[: page.first]
    ]
    return Page(
        edges=edges,
        total_count=total,
        has_next_page=len(rows) > page.first,
        has_previous_page=page.after is not None,
    )


# The parameters paginate_by_parent adds to its caller's.
_PARENT_IDS = "page_parent_ids"  # several parents, bound as one list
_PARENT_ID = "page_parent_id"  # one parent
_LIMIT: BindParameter[int] = bindparam("page_limit", type_=Integer())


@functools.lru_cache(maxsize=512)
def _parent_page_statements(
    stmt: AnySelect,
    parent: ColumnElement[Any] | QueryableAttribute[Any],
    sort: SortKey,
    *,
    single: bool,
    after: bool,
    count: bool,
    few: bool = False,
    with_page: Callable[[AnySelect], AnySelect] | None = None,
) -> tuple[AnySelect | None, AnySelect]:
    """The COUNT and page statements of paginate_by_parent for one shape of request, built once
    and kept: `stmt` itself is built once by its caller, so a page costs SQLAlchemy no statement
    building or cache-key walk (ADR 0078). With `_counted_in_page` the COUNT is None and the
    page's rows carry their parent's total before the parent; with `_total_beside_page` they
    carry it too, and the COUNT is kept for an empty page after a cursor. `with_page` adds what
    only the page's rows read (their own joins and columns): the COUNT and the numbering go
    without."""
    in_page = _counted_in_page(count=count, few=few, after=after)
    shown = (lambda s: s) if with_page is None else with_page
    # One parent is compared as one value: PostgreSQL plans `= ANY(array)` for any number of
    # values, so it would sort every row of the parent instead of reading the index in order
    # up to the LIMIT (the dashboard's 5 recent documents: 7.0 ms instead of 0.5 at 10,000).
    scoped = stmt.where(parent == bindparam(_PARENT_ID) if single else in_list(parent, _PARENT_IDS))
    paged = scoped
    if after:
        key = tuple_(*sort.columns)
        values = tuple_(
            *(bindparam(f"page_after_{i}", type_=c.type) for i, c in enumerate(sort.columns))
        )
        paged = scoped.where(key < values if sort.descending else key > values)
    counted = None
    if count and not in_page:
        counted = scoped.with_only_columns(
            parent, func.count(), maintain_column_froms=True
        ).group_by(parent)
    if single and not in_page:
        rows = shown(paged)
        if counted is not None:
            # One parent's total rides on its page: the COUNT as an uncorrelated scalar
            # subquery, which the database computes once for the statement (an InitPlan).
            total = (
                scoped.with_only_columns(func.count(), maintain_column_froms=True)
                .correlate(None)
                .scalar_subquery()
            )
            rows = rows.add_columns(total.label("total"))
        return counted, rows.add_columns(parent).order_by(*_order(sort)).limit(_LIMIT)
    # The last sort column is unique within one parent's list (a run's event `seq`), so a row is
    # found again by it and its parent.
    unique = sort.columns[-1]
    number = func.row_number().over(partition_by=parent, order_by=_order(sort))
    columns = [parent.label("parent"), unique.label("key"), number.label("n")]
    if in_page:  # every row of the parent is numbered anyway: counting them costs nothing more
        columns.append(func.count().over(partition_by=parent).label("total"))
    ranked = paged.with_only_columns(*columns, maintain_column_froms=True).subquery()
    ordered = (
        shown(scoped)
        .add_columns(*([ranked.c.total] if in_page else []), parent)
        .join(ranked, (ranked.c.parent == parent) & (ranked.c.key == unique))
        .where(ranked.c.n <= _LIMIT)
        .order_by(parent, ranked.c.n)
    )
    return counted, ordered


def _counted_in_page(*, count: bool, few: bool, after: bool) -> bool:
    """Whether the total comes with the page: a first page (no cursor narrows the rows) of a
    list with few rows per parent. A long list keeps its COUNT, so that one parent's page can
    stop at LIMIT instead of numbering every row."""
    return count and few and not after


def _total_beside_page(*, single: bool, count: bool, in_page: bool) -> bool:
    """Whether one parent's rows carry its total from a COUNT run inside the page's statement
    (ADR 0136): one statement instead of two. An empty page carries nothing: after a cursor its
    total is counted alone, on a first page it is 0."""
    return single and count and not in_page


async def paginate_by_parent(
    session: AsyncSession,
    stmt: AnySelect,
    *,
    params: Mapping[str, Any] | None = None,
    parent: ColumnElement[K] | QueryableAttribute[K],
    parent_ids: Sequence[K],
    sort: SortKey,
    page: PageRequest,
    to_node: Callable[[Any], T],
    sort_values: Callable[[Any], Sequence[Any]],
    count: bool = True,
    few_per_parent: bool = False,
    with_page: Callable[[AnySelect], AnySelect] | None = None,
) -> dict[K, Page[T]]:
    """The same page of `stmt` for each parent, in two statements whatever their number (one
    for the first page of a list with few rows per parent, and for one parent's page).

    One COUNT grouped by `parent`, and one page query: each parent's rows after the cursor are
    numbered in sort order (ROW_NUMBER() OVER (PARTITION BY parent ...)) and the first
    `page.first + 1` of each are kept. With a single parent, a plain LIMIT does the same.
    `stmt` selects the rows with their filters, without ORDER BY; it is built once (a module
    constant or a cached builder: the statements derived from it are kept per `stmt`) and takes
    its values from `params`. With `count=False` (a caller that shows no total) the COUNT is not
    run and the pages' `total_count` is None. With `few_per_parent` (a document's chunks, a
    run's events: at most a few thousand rows each) a first page is one statement: the rows
    numbered for the page are counted too. `with_page` (a module-level function, so that the
    statements stay cached) adds joins and columns to the page's rows only.
    """
    ids = list(dict.fromkeys(parent_ids))
    values = dict(params or {})
    if len(ids) == 1:
        values[_PARENT_ID] = ids[0]
    else:
        values[_PARENT_IDS] = ids
    values["page_limit"] = page.first + 1
    if page.after is not None:  # the cursor is checked before any SQL runs
        values.update((f"page_after_{i}", v) for i, v in enumerate(_decode(sort, page.after)))
    after = page.after is not None
    counted, ordered = _parent_page_statements(
        stmt,
        parent,
        sort,
        single=len(ids) == 1,
        after=after,
        count=count,
        few=few_per_parent,
        with_page=with_page,
    )
    in_page = _counted_in_page(count=count, few=few_per_parent, after=after)
    beside = _total_beside_page(single=len(ids) == 1, count=count, in_page=in_page)
    totals: dict[K, int] | None = None
    if counted is not None and not beside:
        totals = dict((await session.execute(counted, values)).all())
    rows_of: dict[K, list[Any]] = {key: [] for key in ids}
    carried: dict[K, int] = {}  # a parent with no rows has none to carry its total: 0
    for row in (await session.execute(ordered, values)).all():
        rows_of[row[-1]].append(row)
        if in_page or beside:
            carried[row[-1]] = row[-2]
    if in_page:
        totals = carried
    elif beside:
        if carried or not after:
            totals = carried
        else:  # an empty page after a cursor: the rows before it still count
            assert counted is not None
            totals = dict((await session.execute(counted, values)).all())
    return {
        key: _page(
            rows_of[key],
            None if totals is None else totals.get(key, 0),
            sort,
            page,
            to_node,
            sort_values,
        )
        for key in ids
    }


async def pages_by_parent(
    queries: Sequence[Q],
    *,
    parent: str,
    load: Callable[[Q, PageRequest, list[Any]], Awaitable[Mapping[Any, Page[T] | DomainError]]],
) -> list[Page[T] | DomainError]:
    """Answer a batch of page requests (frozen dataclasses), one `load` per set of arguments.

    Requests that differ only in their `parent` field share one `load` with all their parents
    (a nested connection asks the same page of every parent). A group whose page arguments are
    refused gets that error; the other requests of the batch still get their pages. `load` may
    also refuse single parents (an error in place of a page).
    """
    groups: dict[Q, list[Q]] = {}
    for query in queries:
        groups.setdefault(replace(query, **{parent: None}), []).append(query)
    answers: dict[Q, Page[T] | DomainError] = {}
    for members in groups.values():
        sample = members[0]
        try:
            request = PageRequest.of(sample.first, sample.after)
            pages = await load(sample, request, [getattr(q, parent) for q in members])
        except DomainError as error:
            answers.update((q, error) for q in members)
            continue
        answers.update((q, pages[getattr(q, parent)]) for q in members)
    return [answers[q] for q in queries]


class PagedQuery(Protocol):
    """A request for one page of a nested connection: a frozen dataclass with its parent, its
    filters and these two."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def first(self) -> int | None: ...

    @property
    def after(self) -> str | None: ...


# -- offset cursors ---------------------------------------------------------------------------
# A ranked list that is computed afresh for every page (search results) has no sort key to
# continue after: its cursor is the position in the ranking, tied to the list's name, which
# names the query too, so a cursor of another query is INVALID_CURSOR.


def offset_cursor(name: str, offset: int) -> str:
    """The cursor of the item at `offset` (0-based) of the list called `name`."""
    return _cursor_text([name, offset])


def offset_after(name: str, cursor: str | None) -> int:
    """Where the page after `cursor` starts (0 without one); INVALID_CURSOR for a cursor of
    another list or one that does not decode."""
    if cursor is None:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(value, list) or len(value) != 2 or value[0] != name:
            raise ValueError("a cursor of another list")
        offset = _integer(31)(value[1])
        if offset < 0:
            raise ValueError("a negative position")
        return offset + 1
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid_cursor() from exc
