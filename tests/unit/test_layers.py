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


def test_the_worker_never_imports_the_graphql_layer():
    loaded = _loaded_after_import("app.worker")
    assert "app.worker" in loaded and "workflows" in loaded and "nodes" in loaded
    assert {m for m in loaded if m.split(".")[0] in ("resolvers", "strawberry")} == set()


def test_services_nodes_and_workflows_do_not_import_the_graphql_layer():
    loaded = _loaded_after_import("app.services.runs, app.services.workspaces, workflows")
    assert {m for m in loaded if m.split(".")[0] in ("resolvers", "strawberry", "fastapi")} == set()
