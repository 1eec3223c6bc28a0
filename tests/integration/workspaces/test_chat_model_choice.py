"""An admin chooses the workspace's chat model (screen 11, Models; ADR 0124) against the real
model server: a second name for its chat model made with Ollama's /api/copy, used by the model
check, SUMMARIZING, TAGGING and GENERATING from then on; every refusal (roles, foreign ids, names
the server does not offer, an embedding model, bad names, the server down) changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from base.models.accounts import Workspace
from base.models.runs import WorkspaceEvent
from base.settings import Settings
from services import ingestion
from tests.support.app_fixtures import other_api
from tests.support.ask import VENV_PAGES, searchable
from tests.support.graphql import GraphQLClient, first_workspace, uuid_of
from tests.support.ingest import finished_run, step_outputs
from tests.support.model_server import chat_model_copy
from tests.support.seed import add_collection
from tests.support.team import Team, set_up_team

pytestmark = pytest.mark.slow(seconds=70)

ALIAS = "desk-writer:v1"
VENV_QUESTION = "How do I create a virtual environment?"


async def set_chat_model(
    client: GraphQLClient, token: str, workspace_gid: str, model: str | None
) -> dict[str, Any]:
    data = await client.op(
        "SetWorkspaceChatModel",
        {"input": {"workspaceId": workspace_gid, "chatModel": model}},
        token=token,
    )
    payload: dict[str, Any] = data["setWorkspaceChatModel"]
    return payload


async def models_of(client: GraphQLClient, token: str, workspace_gid: str) -> dict[str, Any]:
    data = await client.op("WorkspaceModels", {"workspaceId": workspace_gid}, token=token)
    models: dict[str, Any] = data["workspace"]["models"]
    return models


async def stored_choice(app: FastAPI, workspace_gid: str) -> tuple[str | None, list[str]]:
    """The stored chat model and the messages of the workspace's CHAT_MODEL_CHANGED events."""
    async with app.state.deps.db() as session:
        chosen = await session.scalar(
            select(Workspace.chat_model).where(Workspace.id == uuid_of(workspace_gid))
        )
        messages = (
            await session.scalars(
                select(WorkspaceEvent.message)
                .where(
                    WorkspaceEvent.workspace_id == uuid_of(workspace_gid),
                    WorkspaceEvent.type == "CHAT_MODEL_CHANGED",
                )
                .order_by(WorkspaceEvent.id)
            )
        ).all()
    return chosen, list(messages)


async def refused(
    client: GraphQLClient, app: FastAPI, team: Team, token: str, model: str | None, gid: str = ""
) -> list[tuple[str, str | None]]:
    """The error codes and fields of a refused choice, after checking that nothing changed."""
    before = await stored_choice(app, team.workspace_id)
    payload = await set_chat_model(client, token, gid or team.workspace_id, model)
    assert payload["workspace"] is None
    assert await stored_choice(app, team.workspace_id) == before
    return [(e["code"], e["field"]) for e in payload["errors"]]


async def test_an_admin_chooses_the_chat_model_and_every_model_request_uses_it(
    client: GraphQLClient, app: FastAPI
):
    deps = app.state.deps
    settings: Settings = deps.settings
    team = await set_up_team(client, settings, "admin", "editor", "viewer", "outsider")
    gid, admin = team.workspace_id, team.admin.token
    async with chat_model_copy(settings.ollama_host, settings.chat_model, ALIAS):
        # Refused, each with nothing changed: roles, a foreign id, names, models.
        for person in (team.editor, team.viewer):
            assert await refused(client, app, team, person.token, ALIAS) == [("FORBIDDEN", None)]
        outsider = await refused(client, app, team, team.outsider.token, ALIAS)
        assert outsider == [("NOT_FOUND", "workspaceId")]
        foreign_gid = (await first_workspace(client, team.outsider.token))["id"]
        foreign = await refused(client, app, team, admin, ALIAS, gid=foreign_gid)
        assert foreign == [("NOT_FOUND", "workspaceId")]
        assert await stored_choice(app, foreign_gid) == (None, [])
        assert await refused(client, app, team, admin, "no-such-model:7b") == [
            ("MODEL_NOT_OFFERED", "chatModel")
        ]
        assert await refused(client, app, team, admin, settings.embed_model) == [
            ("MODEL_CANNOT_CHAT", "chatModel")
        ]
        for bad, code in (
            ("   ", "REQUIRED"),
            ("x" * 201, "TOO_LONG"),
            ("two words", "INVALID"),
            ("${HOME}", "INVALID"),
            ("../../etc/passwd", "INVALID"),
            ("model\x00", "INVALID"),
        ):
            assert await refused(client, app, team, admin, bad) == [(code, "chatModel")], bad
        assert await stored_choice(app, gid) == (None, [])

        # Chosen: the tab says so, the activity records it.
        payload = await set_chat_model(client, admin, gid, ALIAS.upper())
        assert payload["errors"] == []
        assert payload["workspace"]["models"] == {
            "chatModel": ALIAS.upper(),  # as the admin wrote it; Ollama names ignore case
            "chatModelChosen": True,
            "defaultChatModel": settings.chat_model,
            "chatModelOffered": True,
        }
        assert await stored_choice(app, gid) == (
            ALIAS.upper(),
            [f"set the chat model to {ALIAS.upper()}, was {settings.chat_model}"],
        )
        payload = await set_chat_model(client, admin, gid, ALIAS)
        assert (await models_of(client, team.viewer.token, gid))["chatModel"] == ALIAS
        activity = await client.op("Dashboard", {"workspaceId": gid}, token=team.viewer.token)
        newest = activity["workspace"]["activity"][0]
        assert (newest["type"], newest["actorName"], newest["message"]) == (
            "CHAT_MODEL_CHANGED",
            team.admin.name,
            f"set the chat model to {ALIAS}, was {ALIAS.upper()}",
        )
        assert newest["subject"] == {
            "type": "WORKSPACE",
            "id": gid,
            "label": f"{team.owner.name}'s workspace",
        }

        # The model check, a document's summary and tags, and an answer all ask the copy.
        checked = await client.op("CheckModels", {"input": {"workspaceId": gid}}, token=admin)
        run_id = uuid_of(checked["checkModels"]["run"]["id"])
        run = await finished_run(deps, run_id)
        assert (run.status.value, run.input_summary) == (
            "SUCCEEDED",
            f"chat {ALIAS}, embeddings {settings.embed_model}",
        )
        assert (await step_outputs(deps, run_id))["CHAT"]["model"] == ALIAS

        workspace_id = uuid_of(gid)
        owner_id = uuid_of(team.owner.user_id)
        guides = await add_collection(deps.db, workspace_id, "Python guides", owner_id)
        page = VENV_PAGES[1]  # the tutorial's page, which answers VENV_QUESTION
        document_id = await searchable(deps, workspace_id, guides, owner_id, page)
        summary = await ingestion.summarizing(deps, document_id=str(document_id))
        tags = await ingestion.tagging(deps, document_id=str(document_id))
        assert (summary["model"], tags["model"]) == (ALIAS, ALIAS)
        assert summary["completion_tokens"] > 0 and tags["completion_tokens"] > 0

        conversation = await client.op(
            "CreateConversation", {"input": {"workspaceId": gid}}, token=team.viewer.token
        )
        asked = await client.op(
            "AskQuestion",
            {
                "input": {
                    "conversationId": conversation["createConversation"]["conversation"]["id"],
                    "question": VENV_QUESTION,
                }
            },
            token=team.viewer.token,
        )
        answer_run = uuid_of(asked["askQuestion"]["run"]["id"])
        assert (await finished_run(deps, answer_run)).status.value == "SUCCEEDED"
        assert (await step_outputs(deps, answer_run))["GENERATING"]["model"] == ALIAS

    # The copy removed from the server: the tab warns, and the check names the missing model.
    models = await models_of(client, admin, gid)
    assert (models["chatModel"], models["chatModelOffered"]) == (ALIAS, False)
    missing = await client.op("CheckModels", {"input": {"workspaceId": gid}}, token=admin)
    missing_run = await finished_run(deps, uuid_of(missing["checkModels"]["run"]["id"]))
    assert (missing_run.status.value, missing_run.error_code) == ("FAILED", "MODEL_UNAVAILABLE")
    assert missing_run.error_message is not None and ALIAS in missing_run.error_message

    # Back to the deployment's default; choosing it again records nothing more.
    payload = await set_chat_model(client, admin, gid, None)
    assert payload["errors"] == []
    assert payload["workspace"]["models"] == {
        "chatModel": settings.chat_model,
        "chatModelChosen": False,
        "defaultChatModel": settings.chat_model,
        "chatModelOffered": True,
    }
    assert (await set_chat_model(client, team.owner.token, gid, None))["errors"] == []
    chosen, messages = await stored_choice(app, gid)
    assert chosen is None
    assert messages[2:] == [
        f"set the chat model to {settings.chat_model} (the deployment's default), was {ALIAS}"
    ]
    check = await client.op("CheckModels", {"input": {"workspaceId": gid}}, token=admin)
    default_run = uuid_of(check["checkModels"]["run"]["id"])
    assert (await finished_run(deps, default_run)).status.value == "SUCCEEDED"
    outputs = await step_outputs(deps, default_run)
    assert outputs["CHAT"]["model"] == settings.chat_model


async def test_with_the_server_down_a_choice_is_refused_and_going_back_is_not(
    client: GraphQLClient, app: FastAPI
):
    settings: Settings = app.state.deps.settings
    team = await set_up_team(client, settings)
    gid, owner = team.workspace_id, team.owner.token
    async with app.state.deps.db.begin() as session:  # chosen earlier, while the server was up
        workspace = await session.get(Workspace, uuid_of(gid))
        assert workspace is not None
        workspace.chat_model = settings.chat_model
    async with other_api(
        settings, ollama_host="http://127.0.0.1:9", llm_connect_timeout_seconds=1.0
    ) as (_other, down):
        assert await refused(down, app, team, owner, settings.chat_model) == [
            ("MODEL_UNAVAILABLE", None)
        ]
        models = await models_of(down, owner, gid)
        assert (models["chatModel"], models["chatModelChosen"], models["serverReachable"]) == (
            settings.chat_model,
            True,
            False,
        )
        payload = await set_chat_model(down, owner, gid, None)  # nothing to check: allowed
        assert payload["errors"] == []
        assert payload["workspace"]["models"]["chatModelChosen"] is False
    assert await stored_choice(app, gid) == (
        None,
        [
            f"set the chat model to {settings.chat_model} (the deployment's default), "
            f"was {settings.chat_model}"
        ],
    )


async def test_the_choice_is_stored_and_shown_on_both_databases(
    any_db_client: GraphQLClient, any_db_app: FastAPI, ollama_host: str
):
    settings: Settings = any_db_app.state.deps.settings
    team = await set_up_team(any_db_client, settings, "viewer")
    gid = team.workspace_id
    # The SQLite app's settings name no model server: the same database through an API that does.
    async with other_api(settings, ollama_host=ollama_host) as (_app, client):
        chosen = await set_chat_model(client, team.owner.token, gid, settings.chat_model)
        assert chosen["errors"] == []
        assert chosen["workspace"]["models"]["chatModelChosen"] is True
        seen = await models_of(client, team.viewer.token, gid)
        assert (seen["chatModel"], seen["chatModelChosen"], seen["defaultChatModel"]) == (
            settings.chat_model,
            True,
            settings.chat_model,
        )
        assert await stored_choice(any_db_app, gid) == (
            settings.chat_model,
            [f"set the chat model to {settings.chat_model}, was {settings.chat_model}"],
        )
        back = await set_chat_model(client, team.owner.token, gid, None)
        assert back["workspace"]["models"]["chatModelChosen"] is False
    assert await stored_choice(any_db_app, gid) == (
        None,
        [
            f"set the chat model to {settings.chat_model}, was {settings.chat_model}",
            f"set the chat model to {settings.chat_model} (the deployment's default), "
            f"was {settings.chat_model}",
        ],
    )
