"""`graphql/` is the contract, not a package: it must never shadow graphql-core."""

import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_graphql_resolves_to_graphql_core():
    graphql = importlib.import_module("graphql")
    assert "site-packages" in str(Path(graphql.__file__))
    assert hasattr(graphql, "graphql_sync")


def test_our_packages_resolve_to_the_repository():
    for name in ("app", "resolvers", "nodes", "workflows"):
        module = importlib.import_module(name)
        assert Path(module.__file__).resolve().parent == ROOT / name, name


def test_graphql_folder_holds_no_python():
    assert list((ROOT / "graphql").rglob("*.py")) == []
    assert not (ROOT / "graphql" / "__init__.py").exists()
