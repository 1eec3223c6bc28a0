"""User flow: a run's toast in another workspace
(docs/user_flows/run_toast_in_another_workspace/README.md).

Each `# Step N` below is the step of the same number in that README. The app runs as a real
uvicorn server on the test's PostgreSQL and Redis, executing runs in its own process on the local
model; each person's app shell holds one graphql-transport-ws socket with the MyRunEvents
document. The in-process app only sets up the team, on the same database.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from base.models.runs import WorkspaceEvent
from base.settings import Settings
from tests.support.graphql import GraphQLClient, operation, uuid_of
from tests.support.live_server import live_server
from tests.support.team import set_up_team

pytestmark = pytest.mark.timeout(900)

# A bound on waiting for a toast: only a hang reaches it (no test asserts how long it took).
TOAST_WITHIN = 300.0


@pytest.fixture
async def server(app: FastAPI, settings: Settings, ollama_host: str) -> AsyncIterator[str]:
    """The app as a real server on the same database and Redis (after `app` emptied them)."""
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "JWT_SECRET": settings.jwt_secret,
        "OLLAMA_HOST": ollama_host,
        "RUN_EXECUTION": "inline",
        "LOG_LEVEL": "WARNING",
    }
    with live_server(env) as base_url:
        yield base_url


@pytest.fixture
async def api(server: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server, timeout=120) as http:
        yield GraphQLClient(http)


def position(cursor: str) -> dict[uuid.UUID, int]:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    return {uuid.UUID(w): i for w, i in json.loads(raw).items()}


class Shell:
    """One person's app shell: a socket holding MyRunEvents, and the toasts it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.toasts: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, server: str, token: str, after: str | None) -> Shell:
        url = server.replace("http://", "ws://", 1) + "/graphql"
        ws = await connect(url, subprotocols=["graphql-transport-ws"])
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "toasts",
                    "type": "subscribe",
                    "payload": {
                        "query": operation("MyRunEvents"),
                        "operationName": "MyRunEvents",
                        "variables": {"after": after},
                    },
                }
            )
        )
        return cls(ws)

    async def next_toast(self) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), TOAST_WITHIN))
        assert message["id"] == "toasts", message
        assert message["type"] == "next" and "errors" not in message["payload"], message
        toast: dict[str, Any] = message["payload"]["data"]["myRunEvents"]
        self.toasts.append(toast)
        return toast

    async def close(self) -> None:
        await self.ws.close()


async def test_a_run_started_in_one_workspace_toasts_its_starter_in_another(
    client: GraphQLClient, api: GraphQLClient, server: str, db: Any, settings: Settings
) -> None:
    # Step 1 — the team: Olivia owns A; Erin joins it as EDITOR and owns B (her first workspace).
    team = await set_up_team(client, settings, "editor")
    olivia, erin = team.owner, team.editor
    shell = await api.op("AppShell", token=erin.token)
    workspaces = {e["node"]["name"]: e["node"]["id"] for e in shell["workspaces"]["edges"]}
    assert workspaces == {
        "Olivia Owner's workspace": team.workspace_id,
        "Erin Editor's workspace": workspaces["Erin Editor's workspace"],
    }
    a, b = team.workspace_id, workspaces["Erin Editor's workspace"]

    # Step 2 — each opens the app: AppShell, then one MyRunEvents socket each, after the
    # shell's `myRunEventsCursor` (where each of their workspaces stands now).
    olivias_shell = await api.op("AppShell", token=olivia.token)
    assert set(position(shell["myRunEventsCursor"])) == {uuid_of(a), uuid_of(b)}
    assert set(position(olivias_shell["myRunEventsCursor"])) == {uuid_of(a)}
    erins = await Shell.open(server, erin.token, shell["myRunEventsCursor"])
    olivias = await Shell.open(server, olivia.token, olivias_shell["myRunEventsCursor"])
    try:
        # Step 3 — Erin, in A, starts a model check.
        started = await api.op("CheckModels", {"input": {"workspaceId": a}}, token=erin.token)
        assert started["checkModels"]["errors"] == []
        in_a = started["checkModels"]["run"]["id"]

        # Step 4 — she switches to B: its dashboard shows nothing of the run.
        dashboard = await api.op("Dashboard", {"workspaceId": b}, token=erin.token)
        assert dashboard["workspace"]["activeRuns"] == {"totalCount": 0, "edges": []}
        assert dashboard["workspace"]["activity"] == []

        # Step 5 — the toast reaches her in B: the run in A succeeded.
        toast = await erins.next_toast()
        assert {k: v for k, v in toast.items() if k not in ("cursor", "at")} == {
            "type": "RUN_FINISHED",
            "message": "check_models succeeded for Olivia Owner's workspace",
            "runStatus": "SUCCEEDED",
            "runId": in_a,
            "workspaceId": a,
            "actor": {"id": erin.user_id, "name": "Erin Editor"},
            "run": {
                "id": in_a,
                "workflow": "check_models",
                "status": "SUCCEEDED",
                "subject": {"label": "Olivia Owner's workspace"},
                "triggeredBy": {"id": erin.user_id},
            },
        }
        async with db() as s:
            [finished_in_a] = (
                await s.execute(
                    select(WorkspaceEvent.id)
                    .where(WorkspaceEvent.run_id == uuid_of(in_a))
                    .where(WorkspaceEvent.type == "RUN_FINISHED")
                )
            ).scalars()
        assert position(toast["cursor"]) == {uuid_of(a): finished_in_a, uuid_of(b): 0}

        # Step 6 — Olivia, who shares A but did not start the run, got nothing from it: the
        # first toast on her socket is the end of her own run, started after Erin's ended.
        own = await api.op("CheckModels", {"input": {"workspaceId": a}}, token=olivia.token)
        olivias_run = own["checkModels"]["run"]["id"]
        await olivias.next_toast()
        assert [(t["runId"], t["workspaceId"], t["actor"]["name"]) for t in olivias.toasts] == [
            (olivias_run, a, "Olivia Owner")
        ]

        # Step 7 — Erin, still in B, starts a model check there: her next toast is that run's
        # end; Olivia's run in A, which ended before it, never reached her.
        in_b = (await api.op("CheckModels", {"input": {"workspaceId": b}}, token=erin.token))[
            "checkModels"
        ]["run"]["id"]
        await erins.next_toast()
        assert [(t["runId"], t["workspaceId"], t["runStatus"]) for t in erins.toasts] == [
            (in_a, a, "SUCCEEDED"),
            (in_b, b, "SUCCEEDED"),
        ]
    finally:
        await erins.close()
        await olivias.close()

    # Step 8 — Erin reloads the page: her shell resubscribes with the first toast's cursor and
    # gets exactly the one after it, then nothing it already showed.
    again = await Shell.open(server, erin.token, erins.toasts[0]["cursor"])
    try:
        resumed = await again.next_toast()
    finally:
        await again.close()
    assert (resumed["runId"], resumed["cursor"]) == (in_b, erins.toasts[1]["cursor"])
