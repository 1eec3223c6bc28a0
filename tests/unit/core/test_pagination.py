"""Cursor codec and page-size rules of services.pagination."""

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Uuid, select
from sqlalchemy.dialects import postgresql, sqlite

from base.db.types import UTCDateTime, like_literal
from base.errors import Invalid
from services.pagination import (
    PageRequest,
    SortKey,
    _cursor_text,
    _decode,
    _encode,
    _parent_page_statements,
)
from services.runs import RUN_EVENTS_ORDER, RUNS_ORDER
from services.workspaces import MEMBERS_ORDER

TABLE = Table(
    "things",
    MetaData(),
    Column("at", UTCDateTime),
    Column("id", Uuid),
    Column("title", String),
    Column("n", Integer),
    Column("big", BigInteger),
)
EVERY_TYPE = SortKey("things", [TABLE.c.at, TABLE.c.id, TABLE.c.title, TABLE.c.n, TABLE.c.big])


def raw(*values: object) -> str:
    """A well-formed cursor holding exactly `values` (JSON, base64url without padding)."""
    text = json.dumps(list(values), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_cursor_round_trips_typed_values():
    values = [datetime(2026, 11, 24, 10, 0, 1, 5, tzinfo=UTC), uuid.UUID(int=7), "title", 3, 2**40]
    assert _decode(EVERY_TYPE, _encode(EVERY_TYPE, values)) == values


@pytest.mark.parametrize("title", ["Überblick – 概要", 'quotes " and \\ backslashes', ""])
def test_cursor_round_trips_any_text(title: str) -> None:
    values = [datetime(2026, 12, 6, tzinfo=UTC), uuid.UUID(int=9), title, -1, -(2**40)]
    assert _decode(EVERY_TYPE, _encode(EVERY_TYPE, values)) == values


def test_values_orjson_refuses_are_written_by_the_standard_encoder() -> None:
    values = ["a lone surrogate \ud800", 2**70]
    text = _cursor_text(values)
    decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    assert decoded == b'["a lone surrogate \\ud800",1180591620717411303424]'
    assert json.loads(decoded) == values


AT = ["dt", "2026-11-24T10:00:00+00:00"]
ID = ["uuid", str(uuid.UUID(int=7))]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm90IGpzb24",  # base64 of "not json"
        raw("things"),  # too few values
        raw("things", AT, ID, "t", 1, 2, 3),  # too many
        raw("other", AT, ID, "t", 1, 2),  # another list's name
        raw(AT, ID, "t", 1, 2, 3),  # no name at all
        raw("things", "2026-11-24", ID, "t", 1, 2),  # a datetime column given a plain string
        raw("things", ["dt", "2026-11-24T10:00:00"], ID, "t", 1, 2),  # a naive datetime
        raw("things", ["dt", "yesterday"], ID, "t", 1, 2),
        raw("things", ["dt", 5], ID, "t", 1, 2),
        raw("things", AT, 7, "t", 1, 2),  # a uuid column given a number
        raw("things", AT, ["uuid", "not-a-uuid"], "t", 1, 2),
        raw("things", AT, ID, 3, 1, 2),  # a string column given a number
        raw("things", AT, ID, "t", "1", 2),  # an integer column given a string
        raw("things", AT, ID, "t", 1.5, 2),
        raw("things", AT, ID, "t", True, 2),
        raw("things", AT, ID, "t", 2**31, 2),  # beyond INTEGER
        raw("things", AT, ID, "t", 1, 2**63),  # beyond BIGINT
        raw("things", AT, ID, "t", None, 2),
        raw("things", AT, ID, "t", {"a": 1}, 2),
    ],
)
def test_bad_cursors_are_invalid_cursor_errors(cursor):
    with pytest.raises(Invalid) as caught:
        _decode(EVERY_TYPE, cursor)
    assert (caught.value.code, caught.value.field) == ("INVALID_CURSOR", "after")


def test_a_cursor_of_one_list_is_refused_by_another_of_the_same_shape():
    # Runs and members both sort by (a UTC time, a uuid): only the name tells them apart.
    values = [datetime(2026, 11, 24, tzinfo=UTC), uuid.UUID(int=1)]
    assert _decode(RUNS_ORDER, _encode(RUNS_ORDER, values)) == values
    with pytest.raises(Invalid) as caught:
        _decode(MEMBERS_ORDER, _encode(RUNS_ORDER, values))
    assert caught.value.code == "INVALID_CURSOR"
    with pytest.raises(Invalid):
        _decode(RUN_EVENTS_ORDER, raw("run_events", 2**31))
    assert _decode(RUN_EVENTS_ORDER, raw("run_events", 2**31 - 1)) == [2**31 - 1]


def test_page_size_defaults_to_25_and_is_capped_at_100():
    assert PageRequest.of(None, None).first == 25
    assert PageRequest.of(100, None).first == 100
    assert PageRequest.of(10_000, "c").first == 100
    assert PageRequest.of(0, None).first == 0
    with pytest.raises(Invalid) as caught:
        PageRequest.of(-1, None)
    assert (caught.value.code, caught.value.field) == ("BAD_USER_INPUT", "first")


def test_like_literal_escapes_the_wildcards_and_the_escape_character():
    assert like_literal("a%b_c/d") == "a/%b/_c//d"
    assert like_literal("${x}") == "${x}"


def test_page_statements_are_built_once_per_shape():
    stmt = select(TABLE)
    sort = SortKey("things", [TABLE.c.at, TABLE.c.id])
    first = _parent_page_statements(stmt, TABLE.c.n, sort, single=False, after=True, count=True)
    again = _parent_page_statements(stmt, TABLE.c.n, sort, single=False, after=True, count=True)
    assert first[0] is again[0] and first[1] is again[1]
    uncounted = _parent_page_statements(
        stmt, TABLE.c.n, sort, single=True, after=False, count=False
    )
    assert uncounted[0] is None
    # The values arrive as parameters: nothing of a request is baked into a kept statement.
    compiled = first[1].compile()
    assert {"page_parent_ids", "page_limit", "page_after_0", "page_after_1"} <= set(compiled.params)
    assert all(compiled.params[k] is None for k in ("page_limit", "page_after_0", "page_after_1"))


def test_one_parent_is_one_value_and_several_are_one_array_on_postgresql():
    """PostgreSQL plans `= ANY(array)` for any number of values: with one parent it would sort
    every row of the parent instead of reading its index in order up to the LIMIT."""
    stmt = select(TABLE)
    sort = SortKey("things", [TABLE.c.at, TABLE.c.id])
    postgres = postgresql.asyncpg.dialect()
    _, single = _parent_page_statements(stmt, TABLE.c.n, sort, single=True, after=False, count=True)
    _, several = _parent_page_statements(
        stmt, TABLE.c.n, sort, single=False, after=False, count=True
    )
    single_sql = str(single.compile(dialect=postgres))
    assert "things.n = $1::INTEGER" in single_sql and "ANY" not in single_sql
    assert "things.n = ANY ($1::INTEGER[])" in str(several.compile(dialect=postgres))
    # SQLite: an expanding IN for several parents.
    assert "things.n IN (__[POSTCOMPILE_page_parent_ids])" in str(
        several.compile(dialect=sqlite.dialect())
    )


def test_one_parents_page_carries_its_count_and_keeps_it_for_an_empty_page():
    """The COUNT of one parent's rows is a column of its page (computed once for the statement:
    uncorrelated, so it counts the parent's rows, not the row beside it); the COUNT alone is
    kept for a page that a cursor leaves empty. Several parents keep the grouped COUNT."""
    stmt = select(TABLE)
    sort = SortKey("things", [TABLE.c.at, TABLE.c.id])
    counted, page = _parent_page_statements(
        stmt, TABLE.c.n, sort, single=True, after=True, count=True
    )
    assert counted is not None
    sql = " ".join(str(page.compile(dialect=sqlite.dialect())).split())
    assert "(SELECT count(*) AS count_1 FROM things WHERE things.n = ?) AS total" in sql, sql
    assert sql.count("FROM things") == 2, sql
    _, several = _parent_page_statements(
        stmt, TABLE.c.n, sort, single=False, after=True, count=True
    )
    assert "count(" not in str(several.compile(dialect=sqlite.dialect()))
