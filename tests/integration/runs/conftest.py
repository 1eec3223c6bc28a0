"""Helpers for run tests: start a model check and read a run (subscriptions: `subscribe`, from
tests/support/app_fixtures.py)."""

from __future__ import annotations

from typing import Any

from tests.support.graphql import GraphQLClient

RUN_FIELDS = """
  id status percent currentStep attempt errorCode errorMessage outputSummary cancelRequested
  retryOf { id }
  steps { name status attempts error }
"""


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
