"""A view made from a Core row by its mapping (services.views.view_of_row) is the view pydantic
makes from the row's attributes: the same values, the same coercions, the same refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import JSON, Row, create_engine, literal, select

from base.models.documents import Chunk
from services.views import ChunkView, UserView, view_columns, view_of_row

ENGINE = create_engine("sqlite://")
CHUNK_ID = uuid.UUID("7b0c2f52-3c53-4a37-9a3f-29a5b1b0d8f1")
DOCUMENT_ID = uuid.UUID("0d5e6f70-8a9b-4c1d-8e2f-3a4b5c6d7e8f")


def _row(**columns: Any) -> Row[Any]:
    with ENGINE.connect() as connection:
        return connection.execute(
            select(*(literal(value).label(name) for name, value in columns.items()))
        ).one()


# ChunkView's columns as the chunk table gives them (heading_path is JSON).
CHUNK: dict[str, Any] = {
    "id": CHUNK_ID,
    "document_id": DOCUMENT_ID,
    "position": 3,
    "text": "Creating virtual environments ${HOME}",
    "heading_path": ["venv", "Creating virtual environments"],
    "char_start": 120,
    "char_end": 158,
    "token_count": 9,
}


def _chunk_row(**changes: Any) -> Row[Any]:
    """A row of ChunkView's columns, plus one the view does not hold."""
    columns = CHUNK | {"run_id": uuid.UUID(int=5)} | changes
    heading_path = columns.pop("heading_path")
    with ENGINE.connect() as connection:
        return connection.execute(
            select(
                *(literal(value).label(name) for name, value in columns.items()),
                literal(heading_path, JSON).label("heading_path"),
            )
        ).one()


def test_the_view_holds_what_validating_from_attributes_gives() -> None:
    row = _chunk_row()
    view = view_of_row(ChunkView, row)
    assert view == ChunkView.model_validate(row)
    assert view.model_dump() == CHUNK


def test_values_are_coerced_as_from_attributes() -> None:
    created = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    row = _row(id=str(CHUNK_ID), email="ana@example.org", name="Ana", created_at=created)
    view = view_of_row(UserView, row)
    assert view == UserView.model_validate(row)
    assert view.id == CHUNK_ID  # the text of a UUID, as SQLite gives it, becomes a UUID


@pytest.mark.parametrize(
    "changes",
    [{"position": "third"}, {"token_count": None}, {"heading_path": "venv"}],
    ids=["a value the type refuses", "a null where the view has none", "text for a list"],
)
def test_a_value_the_view_refuses_is_refused_alike(changes: dict[str, Any]) -> None:
    row = _chunk_row(**changes)
    with pytest.raises(ValidationError) as by_mapping:
        view_of_row(ChunkView, row)
    with pytest.raises(ValidationError) as by_attributes:
        ChunkView.model_validate(row)
    assert [(e["loc"], e["type"]) for e in by_mapping.value.errors()] == [
        (e["loc"], e["type"]) for e in by_attributes.value.errors()
    ]


def test_a_row_without_a_field_of_the_view_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        view_of_row(UserView, _row(id=str(CHUNK_ID), email="ana@example.org", name="Ana"))


def test_the_views_columns_are_its_fields() -> None:
    assert [c.key for c in view_columns(ChunkView, Chunk)] == list(ChunkView.model_fields)
