"""A GraphQL client for tests that sends the frontend's own documents from graphql/operations."""

from __future__ import annotations

import collections
import contextlib
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from strawberry import relay

from resolvers.core.execution import PlainFieldExecution

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "graphql" / "operations"


@cache
def operation(name: str) -> str:
    return (OPERATIONS / f"{name}.graphql").read_text()


def uuid_of(global_id: str) -> uuid.UUID:
    """The uuid inside a global id (`base64("Type:uuid")`), for reading rows in the database."""
    return uuid.UUID(relay.GlobalID.from_id(global_id).node_id)


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, path: str = "/graphql") -> None:
        self.http = http
        self.path = path

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        operation_name: str | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        if operation_name is not None:
            body["operationName"] = operation_name
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.http.post(self.path, json=body, headers=headers)

    async def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """The whole JSON response of a request expected to be answered with HTTP 200."""
        response = await self.post(query, variables, token=token)
        assert response.status_code == 200, response.text
        return response.json()

    async def op(
        self, name: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """Run operation `name` and return its `data`, failing on any top-level error."""
        result = await self.execute(operation(name), variables, token=token)
        assert "errors" not in result, result
        return result["data"]


async def sign_up(
    client: GraphQLClient, name: str, email: str, password: str = "a long pass phrase"
) -> dict[str, Any]:
    """Sign up through the SignUp operation; the session (tokens and user)."""
    data = await client.op(
        "SignUp", {"input": {"name": name, "email": email, "password": password}}
    )
    assert data["signUp"]["errors"] == [], data
    return data["signUp"]["session"]


async def first_workspace(client: GraphQLClient, token: str) -> dict[str, Any]:
    data = await client.op("AppShell", token=token)
    return data["workspaces"]["edges"][0]["node"]


@contextlib.contextmanager
def fields_through_graphql_core() -> Iterator[collections.Counter[str]]:
    """Count, by type and field, the fields that build a ResolveInfo (graphql-core's path rather
    than a direct read) while the block runs."""
    counted: collections.Counter[str] = collections.Counter()
    original = PlainFieldExecution.build_resolve_info

    def counting(self: Any, field_def: Any, field_nodes: Any, parent_type: Any, path: Any) -> Any:
        counted[f"{parent_type.name}.{field_nodes[0].name.value}"] += 1
        return original(self, field_def, field_nodes, parent_type, path)

    PlainFieldExecution.build_resolve_info = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        PlainFieldExecution.build_resolve_info = original  # type: ignore[method-assign]


@contextlib.contextmanager
def executed_nodes(app: Any) -> Iterator[collections.Counter[str]]:
    """Count, by class name, the Kailash nodes the app's runtime completes while the block runs
    (through the runtime's own completion hook): one per service call a request makes."""
    counted: collections.Counter[str] = collections.Counter()
    unregister = app.state.runner.runtime.on_node_complete(
        lambda event: counted.update([event.node_type])
    )
    try:
        yield counted
    finally:
        unregister()
