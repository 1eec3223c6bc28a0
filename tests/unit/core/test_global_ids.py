"""Global ids written as strings: the same text as Strawberry's GlobalID, and read back by it."""

from __future__ import annotations

import uuid

import pytest
from strawberry import relay

from base.errors import NotFound
from resolvers.core.relay import decode_id, global_id

VALUE = uuid.UUID("0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9")


def test_a_global_id_is_the_text_of_strawberrys_global_id() -> None:
    for type_name in ("Document", "Run", "Workspace", "Collection"):
        assert global_id(type_name, VALUE) == str(relay.GlobalID(type_name, str(VALUE)))
        assert global_id(type_name, str(VALUE)) == global_id(type_name, VALUE)


def test_a_global_id_decodes_to_its_value_and_only_as_its_type() -> None:
    assert global_id("Run", VALUE) == "UnVuOjBiMWMyZDNlLTRmNTAtNDYxNy04MjkzLWE0YjVjNmQ3ZThmOQ=="
    assert decode_id(global_id("Run", VALUE), "Run", field="id") == VALUE
    with pytest.raises(NotFound):  # another type's id reads as a missing one
        decode_id(global_id("Run", VALUE), "Document", field="id")
