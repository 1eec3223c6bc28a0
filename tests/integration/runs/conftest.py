"""Helpers for run tests: start a model check, queue a run of a test's own kind, and read a run
(subscriptions: `subscribe`, from tests/support/app_fixtures.py)."""

from __future__ import annotations

import uuid
from typing import Any

from services import runs
from services.deps import ServiceDeps
from tests.support.graphql import GraphQLClient, first_workspace, sign_up, uuid_of
from tests.support.runs import create_workspace_run

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


async def queued_run(
    deps: ServiceDeps,
    client: GraphQLClient,
    kind: runs.RunKind,
    *,
    label: str,
    params: dict[str, Any],
) -> uuid.UUID:
    """A QUEUED run of `kind` about a new owner's workspace, written as the service writes it
    (no launcher: the test executes it)."""
    owner = await sign_up(client, "Olivia Owner", "owner@example.com")
    workspace_id = uuid_of((await first_workspace(client, owner["accessToken"]))["id"])
    return await create_workspace_run(
        deps.db,
        kind,
        workspace_id=workspace_id,
        triggered_by=uuid_of(owner["user"]["id"]),
        label=label,
        params=params,
    )
