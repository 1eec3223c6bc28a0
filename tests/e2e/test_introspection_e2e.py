"""Tools load the schema: graphql-js's getIntrospectionQuery(), with every option, answers from a
real server and buildClientSchema accepts the result (web/e2e/introspect.mjs, the `graphql` npm
package). In production introspection is off unless GRAPHQL_INTROSPECTION=true."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import build_client_schema, introspection_from_schema

from base.settings import Settings
from resolvers.schema import build_schema
from tests.support.live_server import live_server

ROOT = Path(__file__).resolve().parents[2]
NODE = "/usr/bin/node"
SCRIPT = ROOT / "web" / "e2e" / "introspect.mjs"
SECRET = "introspection-e2e-test-secret-0123456789abcdef"
EVERY_OPTION = {
    "descriptions": True,
    "specifiedByUrl": True,
    "directiveIsRepeatable": True,
    "schemaDescription": True,
    "inputValueDeprecation": True,
    "experimentalDirectiveDeprecation": True,
    "oneOf": True,
}


def introspect(base_url: str, options: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NODE, str(SCRIPT), "--url", f"{base_url}/graphql", "--options", json.dumps(options)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def expected_summary() -> dict[str, Any]:
    """What the script prints for this schema, worked out in Python from the same schema."""
    schema = build_schema(Settings(jwt_secret=SECRET))._schema
    client = build_client_schema(introspection_from_schema(schema))
    return {
        "queryFields": sorted(schema.query_type.fields),
        "types": len(client.type_map),
        "directives": sorted(d.name for d in client.directives),
        "description": None,
    }


@pytest.fixture(scope="module")
def development(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("introspection") / "dev.sqlite3"
    env = {"APP_ENV": "development", "DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    with live_server(env) as base_url:
        yield base_url


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "options",
    [
        {},
        EVERY_OPTION,
        {**EVERY_OPTION, "descriptions": False},
        {**EVERY_OPTION, "typeDepth": 30},
    ],
    ids=["default", "every-option", "every-option-no-descriptions", "every-option-type-depth-30"],
)
def test_get_introspection_query_builds_a_client_schema_in_development(
    development: str, options: dict[str, Any]
) -> None:
    done = introspect(development, options)
    assert (done.returncode, done.stderr) == (0, "")
    summary = json.loads(done.stdout)
    assert summary == expected_summary()
    assert summary["queryFields"] == [
        "collection",
        "conversation",
        "document",
        "me",
        "myRunEventsCursor",
        "node",
        "run",
        "search",
        "workspace",
        "workspaces",
    ]


@pytest.mark.timeout(120)
def test_introspection_is_off_in_production_unless_enabled(tmp_path: Path) -> None:
    base = {
        "APP_ENV": "production",
        "JWT_SECRET": SECRET,
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'prod.sqlite3'}",
    }
    with live_server(base) as base_url:
        refused = introspect(base_url, EVERY_OPTION)
    assert refused.returncode == 2
    error = json.loads(refused.stderr)
    assert error["status"] == 200
    [only] = error["errors"]
    assert only["message"] == "Introspection is disabled on this server (`__schema`)."
    assert only["extensions"]["code"] == "INTROSPECTION_DISABLED"

    with live_server({**base, "GRAPHQL_INTROSPECTION": "true"}) as base_url:
        allowed = introspect(base_url, EVERY_OPTION)
    assert (allowed.returncode, allowed.stderr) == (0, "")
    assert json.loads(allowed.stdout) == expected_summary()
