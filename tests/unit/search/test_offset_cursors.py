"""Cursors of ranked lists computed afresh per page: a position tied to the list's name."""

import base64
import json

import pytest

from base.errors import Invalid
from services.pagination import offset_after, offset_cursor


def test_a_cursor_continues_after_its_position():
    assert offset_after("search.abc", None) == 0
    assert offset_after("search.abc", offset_cursor("search.abc", 0)) == 1
    assert offset_after("search.abc", offset_cursor("search.abc", 24)) == 25


def _raw(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        offset_cursor("search.other", 3),  # another query's list
        "not base64 at all!",
        _raw(["search.abc"]),
        _raw(["search.abc", -1]),
        _raw(["search.abc", "3"]),
        _raw(["search.abc", True]),
        _raw(["search.abc", 2**40]),
        _raw(["search.abc", 3, 4]),
        _raw({"name": "search.abc"}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_any_other_cursor_is_invalid(cursor):
    with pytest.raises(Invalid) as raised:
        offset_after("search.abc", cursor)
    assert (raised.value.code, raised.value.field) == ("INVALID_CURSOR", "after")
