"""Helpers for run tests: start a model check, wait for it, subscribe through the schema."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from base.auth.principal import Principal
from resolvers.core.context import Context
from tests.support.graphql import GraphQLClient

RUN_FIELDS = """
  id status percent currentStep attempt errorCode errorMessage outputSummary cancelRequested
  retryOf { id }
  steps { name status attempts error }
"""


def uuid_of(global_id: str) -> uuid.UUID:
    return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


async def check_models(client: GraphQLClient, token: str, workspace_id: str) -> dict[str, Any]:
    result = await client.execute(
        "mutation($w: ID!) { checkModels(input: {workspaceId: $w}) "
        "{ run { id status } errors { code message field } } }",
        {"w": workspace_id},
        token=token,
    )
    return result["data"]["checkModels"]


async def get_run(client: GraphQLClient, token: str, run_id: str) -> dict[str, Any]:
    result = await client.execute(
        f"query($id: ID!) {{ run(id: $id) {{ {RUN_FIELDS} }} }}", {"id": run_id}, token=token
    )
    assert "errors" not in result, result
    return result["data"]["run"]


async def event_log(client: GraphQLClient, token: str, run_id: str) -> list[dict[str, Any]]:
    result = await client.execute(
        "query($id: ID!) { run(id: $id) { events(first: 100) "
        "{ edges { node { cursor type step percent message } } } } }",
        {"id": run_id},
        token=token,
    )
    return [e["node"] for e in result["data"]["run"]["events"]["edges"]]


@pytest.fixture
def subscribe(app):
    """Run a subscription document through the real schema as the given user."""

    async def _subscribe(query: str, variables: dict[str, Any], user_global_id: str):
        deps = app.state.deps.for_principal(Principal(user_id=uuid_of(user_global_id)))
        context = Context(deps=deps, runner=app.state.runner)
        return await app.state.schema.subscribe(
            query, variable_values=variables, context_value=context
        )

    return _subscribe
