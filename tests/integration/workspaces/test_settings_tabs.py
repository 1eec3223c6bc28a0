"""Screen 11's Models tab against the real model server (stopped, and one that accepts and
never answers, too), and its Usage tab on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from base.models.documents import Document
from base.models.runs import Run, RunStatus, RunStep, StepStatus, SubjectType
from runtime.executor import stored_output
from services.llm import same_model
from services.workspace_settings import month_start
from tests.support.app_fixtures import other_api
from tests.support.databases import count_statements
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.model_server import model_server
from tests.support.seed import add_collection, add_documents, global_id
from tests.support.team import set_up_team


async def _models(client: GraphQLClient, workspace_id: str, token: str) -> dict[str, Any]:
    data = await client.op("WorkspaceModels", {"workspaceId": workspace_id}, token=token)
    models: dict[str, Any] = data["workspace"]["models"]
    return models


async def _usage(client: GraphQLClient, workspace_id: str, token: str) -> dict[str, Any]:
    data = await client.op("WorkspaceUsage", {"workspaceId": workspace_id}, token=token)
    usage: dict[str, Any] = data["workspace"]["usage"]
    return usage


async def test_models_tab_lists_what_the_server_offers(client, app):
    settings = app.state.deps.settings
    team = await set_up_team(client, settings, "viewer", "outsider")
    async with httpx.AsyncClient(base_url=settings.ollama_host) as http:
        tags = (await http.get("/api/tags")).json()["models"]
    models = await _models(client, team.workspace_id, team.viewer.token)  # any member reads it
    assert (models["chatModel"], models["embedModel"]) == (
        settings.chat_model,
        settings.embed_model,
    )
    assert (models["chatModelChosen"], models["defaultChatModel"]) == (False, settings.chat_model)
    assert models["serverReachable"] is True
    assert [(m["name"], m["sizeBytes"]) for m in models["offered"]] == [
        (t["model"], float(t["size"])) for t in tags
    ]
    # What each can do, as /api/show says: the picker offers the ones that chat.
    can = {m["name"]: m["capabilities"] for m in models["offered"]}
    assert (can[settings.chat_model], can[f"{settings.embed_model}:latest"]) == (
        ["completion"],
        ["embedding"],
    )
    assert all(m["modifiedAt"] is not None for m in models["offered"])
    offered = [t["model"] for t in tags]
    assert any(same_model(settings.chat_model, name) for name in offered)
    assert (models["chatModelOffered"], models["embedModelOffered"]) == (True, True)
    outsider = await client.op(
        "WorkspaceModels", {"workspaceId": team.workspace_id}, token=team.outsider.token
    )
    assert outsider == {"workspace": None}


@asynccontextmanager
async def _silent_server() -> AsyncIterator[str]:
    """A real TCP server that accepts connections and never answers (a frozen model server)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the probe is closed


async def test_models_tab_when_the_server_is_down_or_silent(client, app):
    settings = app.state.deps.settings
    team = await set_up_team(client, settings)
    with model_server(own=True) as url:
        stopped = url
    down = {
        "chatModel": settings.chat_model,
        "chatModelChosen": False,
        "defaultChatModel": settings.chat_model,
        "embedModel": settings.embed_model,
        "serverReachable": False,
        "chatModelOffered": None,
        "embedModelOffered": None,
        "offered": [],
    }
    async with _silent_server() as silent:
        for host in (stopped, _closed_port(), silent):
            async with other_api(settings, ollama_host=host, llm_connect_timeout_seconds=1.0) as (
                _app,
                other,
            ):
                began = time.monotonic()
                assert await _models(other, team.workspace_id, team.owner.token) == down, host
                # Bounded by the connect timeout, not by the LLM timeout or retries.
                assert time.monotonic() - began < settings.llm_timeout_seconds, host


async def test_usage_tab_counts_this_month(any_db_client, any_db_app):
    client, db, settings = any_db_client, any_db_app.state.deps.db, any_db_app.state.deps.settings
    team = await set_up_team(client, settings, "viewer", "outsider")
    workspace_id = uuid_of(team.workspace_id)
    owner_id = uuid_of(team.owner.user_id)
    elsewhere = uuid_of(
        (await client.op("AppShell", token=team.outsider.token))["workspaces"]["edges"][0]["node"][
            "id"
        ]
    )
    collection = await add_collection(db, workspace_id, "Specs", owner_id)
    await add_documents(db, workspace_id, [collection], [owner_id], 3)
    now = datetime.now(UTC)
    start = month_start(now)
    before = start - timedelta(seconds=1)

    async def run(workspace: uuid.UUID, created: datetime, steps: list[tuple[datetime, dict]]):
        async with db.begin() as session:
            row = Run(
                id=uuid.uuid4(),
                workspace_id=workspace,
                workflow="check_models",
                subject_type=SubjectType.WORKSPACE,
                subject_id=workspace,
                subject_label="usage",
                triggered_by_id=None,
                status=RunStatus.SUCCEEDED,
                percent=100,
                params={},
                created_at=created,
                last_seq=0,
            )
            session.add(row)
            await session.flush()
            for position, (finished, output) in enumerate(steps):
                session.add(
                    RunStep(
                        run_id=row.id,
                        position=position,
                        name=f"STEP{position}",
                        status=StepStatus.SUCCEEDED,
                        attempts=1,
                        started_at=finished,
                        finished_at=finished,
                        output=stored_output(output),  # as the executor stores it
                    )
                )

    tokens = {"prompt_tokens": 120, "completion_tokens": 30}
    embedded = {"embedding_tokens": 900, "model_seconds": 1.5}  # an EMBEDDING step's output
    await run(workspace_id, now, [(now, tokens), (now, embedded), (now, tokens)])
    await run(workspace_id, before, [(before, embedded), (now, {"prompt_tokens": 7})])
    await run(workspace_id, before, [(now, {"embedding_tokens": 45})])  # a re-embedding
    await run(elsewhere, now, [(now, tokens)])  # another workspace's run counts there only

    with count_statements(any_db_app.state.engine) as statements:
        usage = await _usage(client, team.workspace_id, team.viewer.token)
    assert len(statements) == 4, statements  # the workspace; documents; runs; tokens
    async with db() as session:
        size = (
            await session.execute(
                select(func.sum(Document.size_bytes)).where(Document.workspace_id == workspace_id)
            )
        ).scalar_one()
    assert usage == {
        "since": start.isoformat(),
        "documents": 3,
        "bytesStored": float(size),
        "runs": 1,  # the runs of last month do not count; their steps finished this month do
        "promptTokens": 247.0,
        "completionTokens": 60.0,
        "embeddingTokens": 945.0,
    }
    assert size > 0
    outsider = await _usage(client, global_id("Workspace", elsewhere), team.outsider.token)
    assert (outsider["documents"], outsider["runs"], outsider["promptTokens"]) == (0, 1, 120.0)
    hidden = await client.op(
        "WorkspaceUsage", {"workspaceId": team.workspace_id}, token=team.outsider.token
    )
    assert hidden == {"workspace": None}
