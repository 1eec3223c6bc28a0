"""Screen 11's Models tab against the real model server (stopped, and one that accepts and
never answers, too), and its Usage tab on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import functools
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from base.models.accounts import Workspace
from base.models.documents import Document
from base.models.runs import PrunedUsage, Run, RunStatus, RunStep, StepStatus, SubjectType
from runtime.executor import stored_output
from services.llm import same_model
from services.retention import prune
from services.usage import month_start
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


async def _add_run(
    db: Any,
    workspace: uuid.UUID,
    created: datetime,
    steps: list[tuple[datetime, dict[str, Any]]],
    subject: uuid.UUID | None = None,
) -> uuid.UUID:
    """A finished run of `subject` (the workspace by default) as the executor leaves it: each
    step SUCCEEDED at its time with its service function's output."""
    async with db.begin() as session:
        row = Run(
            id=uuid.uuid4(),
            workspace_id=workspace,
            workflow="check_models",
            subject_type=SubjectType.WORKSPACE if subject is None else SubjectType.DOCUMENT,
            subject_id=subject or workspace,
            subject_label="usage",
            triggered_by_id=None,
            status=RunStatus.SUCCEEDED,
            percent=100,
            params={},
            created_at=created,
            finished_at=max([created, *(at for at, _ in steps)]),
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
        return row.id


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

    run = functools.partial(_add_run, db)

    tokens = {"prompt_tokens": 120, "completion_tokens": 30}
    embedded = {"embedding_tokens": 900, "model_seconds": 1.5}  # an EMBEDDING step's output
    await run(workspace_id, now, [(now, tokens), (now, embedded), (now, tokens)])
    await run(workspace_id, before, [(before, embedded), (now, {"prompt_tokens": 7})])
    await run(workspace_id, before, [(now, {"embedding_tokens": 45})])  # a re-embedding
    await run(elsewhere, now, [(now, tokens)])  # another workspace's run counts there only

    with count_statements(any_db_app.state.engine) as statements:
        usage = await _usage(client, team.workspace_id, team.viewer.token)
    # the workspace; documents; runs; tokens; what retention deleted this month
    assert len(statements) == 5, statements
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


@pytest.mark.settings(run_retention_days=1, run_keep_per_subject=1)
async def test_a_months_usage_survives_retention(any_db_client, any_db_app):
    """ADR 0126: retention deletes all but the newest run of each subject, and the tab reads the
    same month; a second pass adds to the month's row; the rows go with their workspace."""
    client, deps = any_db_client, any_db_app.state.deps
    team = await set_up_team(client, deps.settings, "viewer", "outsider")
    workspace_id = uuid_of(team.workspace_id)
    shell = await client.op("AppShell", token=team.outsider.token)
    elsewhere_gid = shell["workspaces"]["edges"][0]["node"]["id"]
    elsewhere = uuid_of(elsewhere_gid)
    now = datetime.now(UTC)
    start = month_start(now)
    last_month = start - timedelta(seconds=1)
    this_month = start.date()

    def at(seconds: int) -> datetime:
        return start + timedelta(seconds=seconds)  # this month, in the order the runs were made

    run = functools.partial(_add_run, deps.db)
    document = uuid.uuid4()
    await run(
        workspace_id,
        at(1),
        [
            (at(1), {"prompt_tokens": 120, "completion_tokens": 30}),
            (at(2), {"embedding_tokens": 900}),
        ],
    )
    # Made last month, its second step finished this month: the run and the first step's tokens
    # belong to last month, the second step's to this one.
    await run(
        workspace_id,
        last_month,
        [(last_month, {"embedding_tokens": 50}), (at(3), {"prompt_tokens": 7})],
    )
    kept_check = await run(
        workspace_id, at(5), [(at(5), {"prompt_tokens": 120, "completion_tokens": 30})]
    )
    kept_document = await run(workspace_id, at(4), [(at(4), {"embedding_tokens": 45})], document)
    await run(elsewhere, at(1), [(at(1), {"prompt_tokens": 11})])
    kept_elsewhere = await run(elsewhere, at(2), [(at(2), {"prompt_tokens": 13})])

    expected = {
        "since": start.isoformat(),
        "documents": 0,
        "bytesStored": 0.0,
        "runs": 3,  # not last month's
        "promptTokens": 247.0,
        "completionTokens": 60.0,
        "embeddingTokens": 945.0,
    }
    elsewhere_expected = {**expected, "runs": 2, "promptTokens": 24.0}
    elsewhere_expected.update(completionTokens=0.0, embeddingTokens=0.0)
    assert await _usage(client, team.workspace_id, team.viewer.token) == expected
    assert await _usage(client, elsewhere_gid, team.outsider.token) == elsewhere_expected

    pruned = await prune(deps, now=now + timedelta(days=2))

    assert pruned.runs == 3
    async with deps.db() as session:
        left = set((await session.execute(select(Run.id))).scalars())
    assert left == {kept_check, kept_document, kept_elsewhere}
    assert await _usage(client, team.workspace_id, team.viewer.token) == expected
    assert await _usage(client, elsewhere_gid, team.outsider.token) == elsewhere_expected
    assert await _pruned_rows(deps.db) == {
        (workspace_id, this_month): (1, 127, 30, 900),
        (workspace_id, month_start(last_month).date()): (1, 0, 0, 50),
        (elsewhere, this_month): (1, 11, 0, 0),
    }

    # A newer model check: the next pass deletes the one kept so far and adds to the month.
    await run(workspace_id, at(6), [(at(6), {"prompt_tokens": 10, "completion_tokens": 2})])
    assert (await prune(deps, now=now + timedelta(days=2))).runs == 1
    expected.update(runs=4, promptTokens=257.0, completionTokens=62.0)
    assert await _usage(client, team.workspace_id, team.viewer.token) == expected
    rows = await _pruned_rows(deps.db)
    assert rows[(workspace_id, this_month)] == (2, 247, 60, 900)

    # A workspace's rows go with it; another's stay.
    async with deps.db() as session:
        name = await session.scalar(select(Workspace.name).where(Workspace.id == workspace_id))
    deleted = await client.op(
        "DeleteWorkspace",
        {"input": {"workspaceId": team.workspace_id, "name": name}},
        token=team.owner.token,
    )
    assert deleted["deleteWorkspace"]["errors"] == []
    assert await _pruned_rows(deps.db) == {(elsewhere, this_month): (1, 11, 0, 0)}


async def _pruned_rows(db: Any) -> dict[tuple[uuid.UUID, date], tuple[int, int, int, int]]:
    async with db() as session:
        rows = await session.execute(select(PrunedUsage))
        return {
            (u.workspace_id, u.month): (
                u.runs,
                u.prompt_tokens,
                u.completion_tokens,
                u.embedding_tokens,
            )
            for u in rows.scalars()
        }
