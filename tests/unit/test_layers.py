"""Import rules that keep the layers apart (see docs/architecture.md)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def _top_level(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in names}


def test_the_worker_never_loads_the_graphql_layer():
    # import-linter sees imports; this also catches anything a dependency loads at run time.
    loaded = _loaded_after_import("app.worker")
    assert {"app.worker", "workflows", "nodes", "runtime.executor"} <= loaded
    assert _top_level(loaded, ("resolvers", "strawberry")) == set()


def test_workflows_load_no_graphql_layer():
    loaded = _loaded_after_import("workflows")
    assert _top_level(loaded, ("resolvers", "strawberry", "fastapi", "app")) == set()


def test_services_load_neither_kailash_nor_anything_above_them():
    loaded = _loaded_after_import("services.runs, services.workspaces, services.model_check")
    above = (
        "kailash",
        "strawberry",
        "fastapi",
        "resolvers",
        "workflows",
        "nodes",
        "runtime",
        "app",
    )
    assert _top_level(loaded, above) == set()
