"""User flow: an admin picks the workspace's chat model
(docs/user_flows/admin_picks_chat_model/README.md).

Each `# Step N` below is the step of the same number in that README. The model server is the
test session's local one; the second chat model name is a copy made through Ollama's /api/copy
and removed at the end.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, select

from base.models.accounts import Workspace
from base.models.runs import WorkspaceEvent
from base.settings import Settings
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.model_server import chat_model_copy
from tests.support.team import set_up_team
from tests.support.waiting import eventually

COPY = "desk-writer:v1"
STEPS = ["CONNECT", "LIST_MODELS", "CHAT", "EMBED"]


async def choose(client: GraphQLClient, token: str, gid: str, model: str | None) -> dict[str, Any]:
    data = await client.op(
        "SetWorkspaceChatModel", {"input": {"workspaceId": gid, "chatModel": model}}, token=token
    )
    payload: dict[str, Any] = data["setWorkspaceChatModel"]
    return payload


async def models_tab(client: GraphQLClient, token: str, gid: str) -> dict[str, Any]:
    models: dict[str, Any] = (
        await client.op("WorkspaceModels", {"workspaceId": gid}, token=token)
    )["workspace"]["models"]
    return models


async def stored(app: FastAPI, gid: str) -> tuple[str | None, int]:
    """The workspace's stored choice and how many CHAT_MODEL_CHANGED events it has."""
    async with app.state.deps.db() as session:
        chosen = await session.scalar(
            select(Workspace.chat_model).where(Workspace.id == uuid_of(gid))
        )
        events = await session.scalar(
            select(func.count()).where(
                WorkspaceEvent.workspace_id == uuid_of(gid),
                WorkspaceEvent.type == "CHAT_MODEL_CHANGED",
            )
        )
    return chosen, int(events or 0)


async def test_an_admin_picks_the_chat_model_checks_it_and_goes_back(
    client: GraphQLClient, app: FastAPI, ollama_host: str
):
    settings: Settings = app.state.deps.settings
    default, embed = settings.chat_model, settings.embed_model
    # Step 1 — the team; the server offers a second name for its chat model.
    team = await set_up_team(client, settings, "admin", "editor", "viewer")
    gid, adam = team.workspace_id, team.admin.token
    async with chat_model_copy(ollama_host, default, COPY):
        # Step 2 — Victor reads the Models tab.
        tab = await models_tab(client, team.viewer.token, gid)
        assert (tab["chatModel"], tab["chatModelChosen"], tab["defaultChatModel"]) == (
            default,
            False,
            default,
        )
        assert tab["serverReachable"] is True
        can = {m["name"]: m["capabilities"] for m in tab["offered"]}
        assert (can[COPY], can[default], can[f"{embed}:latest"]) == (
            ["completion"],
            ["completion"],
            ["embedding"],
        )

        # Step 3 — Erin and Victor may not choose.
        for person, role in ((team.editor, "EDITOR"), (team.viewer, "VIEWER")):
            denied = await choose(client, person.token, gid, COPY)
            assert denied == {
                "workspace": None,
                "errors": [
                    {
                        "code": "FORBIDDEN",
                        "message": f"This needs the ADMIN role or higher; you are {role}.",
                        "field": None,
                    }
                ],
            }
        assert await stored(app, gid) == (None, 0)

        # Step 4 — a model the server does not offer.
        missing = await choose(client, adam, gid, "llama3:70b")
        assert missing == {
            "workspace": None,
            "errors": [
                {
                    "code": "MODEL_NOT_OFFERED",
                    "message": "The model server does not offer llama3:70b. Pick one of the "
                    "offered models.",
                    "field": "chatModel",
                }
            ],
        }
        # Step 5 — the embedding model.
        embedding = await choose(client, adam, gid, embed)
        assert [(e["code"], e["field"]) for e in embedding["errors"]] == [
            ("MODEL_CANNOT_CHAT", "chatModel")
        ]
        assert embedding["workspace"] is None
        assert await stored(app, gid) == (None, 0)

        # Step 6 — Adam picks the copy; Victor sees it.
        picked = await choose(client, adam, gid, COPY)
        assert picked == {
            "workspace": {
                "id": gid,
                "models": {
                    "chatModel": COPY,
                    "chatModelChosen": True,
                    "defaultChatModel": default,
                    "chatModelOffered": True,
                },
            },
            "errors": [],
        }
        assert (await models_tab(client, team.viewer.token, gid))["chatModel"] == COPY

        # Step 7 — the activity names the change.
        dashboard = await client.op("Dashboard", {"workspaceId": gid}, token=team.viewer.token)
        newest = dashboard["workspace"]["activity"][0]
        assert (newest["type"], newest["actorName"], newest["message"], newest["subject"]) == (
            "CHAT_MODEL_CHANGED",
            team.admin.name,
            f"set the chat model to {COPY}, was {default}",
            {"type": "WORKSPACE", "id": gid, "label": f"{team.owner.name}'s workspace"},
        )

        # Step 8 — the model check asks the copy.
        started = await client.op("CheckModels", {"input": {"workspaceId": gid}}, token=adam)
        run_id = started["checkModels"]["run"]["id"]

        async def ended() -> dict[str, Any] | None:
            data = await client.op("RunDetail", {"runId": run_id, "first": 5}, token=adam)
            run: dict[str, Any] = data["run"]
            return run if run["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") else None

        run = await eventually(ended, within=120, what="the model check to end")
        assert (run["status"], run["inputSummary"]) == (
            "SUCCEEDED",
            f"chat {COPY}, embeddings {embed}",
        )
        assert [(s["name"], s["status"]) for s in run["steps"]] == [
            (name, "SUCCEEDED") for name in STEPS
        ]

        # Step 9 — back to the deployment's default.
        back = await choose(client, adam, gid, None)
        assert back["errors"] == []
        assert back["workspace"]["models"] == {
            "chatModel": default,
            "chatModelChosen": False,
            "defaultChatModel": default,
            "chatModelOffered": True,
        }
        dashboard = await client.op("Dashboard", {"workspaceId": gid}, token=adam)
        assert dashboard["workspace"]["activity"][0]["message"] == (
            f"set the chat model to {default} (the deployment's default), was {COPY}"
        )
        assert await stored(app, gid) == (None, 2)
