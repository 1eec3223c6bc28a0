"""The contract in graphql/ matches the code: the SDL is current and every operation validates."""

from pathlib import Path

import pytest
from graphql import build_schema as parse_sdl
from graphql import parse, validate

from base.settings import Settings
from resolvers.schema import build_schema

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = sorted((ROOT / "graphql" / "operations").glob("*.graphql"))


def test_exported_schema_matches_the_committed_sdl():
    exported = build_schema(Settings()).as_str() + "\n"
    committed = (ROOT / "graphql" / "schema.graphql").read_text()
    assert exported == committed, "the schema changed: run `make schema` and commit the diff"


@pytest.mark.parametrize("path", OPERATIONS, ids=lambda p: p.stem)
def test_operation_validates_and_is_named_after_its_file(path: Path):
    schema = parse_sdl((ROOT / "graphql" / "schema.graphql").read_text())
    document = parse(path.read_text())
    assert validate(schema, document) == []
    names = [d.name.value for d in document.definitions if getattr(d, "name", None)]
    assert names == [path.stem]


def test_every_type_field_and_argument_is_described():
    schema = build_schema(Settings())._schema
    missing = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not graphql_type.description:
            missing.append(name)
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for arg_name, arg in getattr(field, "args", {}).items():
                if not arg.description:
                    missing.append(f"{name}.{field_name}({arg_name})")
        for value_name, value in getattr(graphql_type, "values", {}).items():
            if not value.description:
                missing.append(f"{name}.{value_name}")
    assert missing == []
