"""Cursor codec and page-size rules of services.pagination."""

import uuid
from datetime import UTC, datetime

import pytest

from base.errors import Invalid
from services.pagination import PageRequest, _decode, _encode


def test_cursor_round_trips_typed_values():
    values = [datetime(2026, 11, 24, 10, 0, 1, 5, tzinfo=UTC), uuid.UUID(int=7), "title", 3]
    assert _decode(_encode(values), 4) == values


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", _encode([1]), _encode([{"a": 1}, 2])])
def test_bad_cursors_are_invalid_cursor_errors(cursor):
    with pytest.raises(Invalid) as caught:
        _decode(cursor, 2)
    assert (caught.value.code, caught.value.field) == ("INVALID_CURSOR", "after")


def test_page_size_defaults_to_25_and_is_capped_at_100():
    assert PageRequest.of(None, None).first == 25
    assert PageRequest.of(100, None).first == 100
    assert PageRequest.of(10_000, "c").first == 100
    assert PageRequest.of(0, None).first == 0
    with pytest.raises(Invalid) as caught:
        PageRequest.of(-1, None)
    assert (caught.value.code, caught.value.field) == ("BAD_USER_INPUT", "first")
