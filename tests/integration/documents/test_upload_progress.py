"""The upload screen's one subscription (UploadProgress) and the cap on runs executing at once in
the API process (RUN_INLINE_CONCURRENCY), with real files, real runs and the Redis bus."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from strawberry import relay

from base.auth.principal import Principal
from base.settings import Settings
from resolvers.core.context import Context
from tests.integration.documents.test_uploads import NO_MODEL, _collection, _http, settle
from tests.support.app_fixtures import Subscribe
from tests.support.corpus import pdf_with_content
from tests.support.graphql import GraphQLClient, operation, uuid_of
from tests.support.team import set_up_team
from tests.support.uploads import upload
from tests.support.waiting import eventually

ORDER = {"QUEUED": 0, "PROCESSING": 1, "READY": 2, "FAILED": 2}


# Files an upload accepts and whose runs fail at EXTRACTING (what an upload can tell from the
# bytes, or by opening a PDF, it refuses: tests/e2e/test_upload_e2e.py).
PARSE_LIMITS = {"extraction_timeout_seconds": 1.0}


def failing_files() -> list[tuple[str, bytes]]:
    return [
        # A page of lines and no text, as a scan without OCR is.
        ("scan.pdf", pdf_with_content(b"0 0 m 100 100 l 300 50 l S")),
        # HTML nested 200,000 deep: the parser needs far longer than PARSE_LIMITS allow.
        ("nested.html", b"<html><body>" + b"<div>" * 200_000 + b"x" + b"</div>" * 200_000),
    ]


async def _rows(stream: Any) -> list[dict[str, Any]]:
    rows = []
    async for result in stream:
        assert result.errors is None, result.errors
        rows.append(result.data["uploadProgress"])
    return rows


def _check_moves_forward(rows: list[dict[str, Any]], document_id: str) -> None:
    mine = [r for r in rows if r["documentId"] == document_id]
    assert [ORDER[r["status"]] for r in mine] == sorted(ORDER[r["status"]] for r in mine)
    assert [r["percent"] for r in mine] == sorted(r["percent"] for r in mine)
    assert [r["done"] for r in mine].count(True) == 1 and mine[-1]["done"] is True


@pytest.mark.settings(**PARSE_LIMITS)
async def test_one_subscription_follows_every_file_to_its_end(
    client: GraphQLClient, app: FastAPI, settings: Settings, subscribe: Subscribe
):
    team = await set_up_team(client, settings, "editor", "viewer", "outsider")
    erin = team.editor
    collection = await _collection(client, {"id": team.workspace_id}, erin.token, "Scans")
    async with await _http(app) as http:
        payload = await upload(http, collection, failing_files(), token=erin.token)
    ids = [f["document"]["id"] for f in payload["files"]]
    variables = {"workspaceId": team.workspace_id, "documentIds": ids}

    rows = await asyncio.wait_for(
        _rows(await subscribe("UploadProgress", variables, erin.user_id)), 120
    )
    # Where each file is first (in the order asked), then its changes, to its end.
    assert [r["documentId"] for r in rows[:2]] == ids
    for document_id in ids:
        _check_moves_forward(rows, document_id)
    finals = {r["documentId"]: r for r in rows if r["done"]}
    runs = [f["run"]["id"] for f in payload["files"]]
    assert finals[ids[0]] == {
        "documentId": ids[0],
        "fileName": "scan.pdf",
        "status": "FAILED",
        "stage": "EXTRACTING",
        "percent": 0,
        "runId": runs[0],
        "errorCode": "NO_TEXT",
        "errorMessage": "The document contains no text.",
        "done": True,
    }
    assert finals[ids[1]]["errorCode"] == "EXTRACTION_TIMEOUT"
    assert (finals[ids[1]]["stage"], finals[ids[1]]["fileName"]) == ("EXTRACTING", "nested.html")

    # Subscribing again once all is done replays the end state and ends at once; a VIEWER may.
    again = await _rows(await subscribe("UploadProgress", variables, team.viewer.user_id))
    assert again == [finals[ids[0]], finals[ids[1]]]

    # Another workspace's view: a foreign document id is exactly a missing one.
    missing = relay.to_base64("Document", str(uuid.uuid4()))
    for user, asked in (
        (team.outsider.user_id, variables),
        (erin.user_id, {**variables, "documentIds": [ids[0], missing]}),
    ):
        refused = await subscribe("UploadProgress", asked, user)
        results = [r async for r in refused] if hasattr(refused, "__aiter__") else [refused]
        [error] = results[0].errors
        assert error.extensions["code"] == "NOT_FOUND"
    await settle(app)


@pytest.mark.settings(run_inline_concurrency=1, **NO_MODEL)
async def test_runs_wait_for_a_slot_in_the_api_process(
    client: GraphQLClient, app: FastAPI, settings: Settings
):
    team = await set_up_team(client, settings, "editor")
    collection = await _collection(client, {"id": team.workspace_id}, team.editor.token, "Notes")
    notes = [
        (f"note {i}.md", f"# Note {i}\n\nThe [venv](x) module, part {i}.\n".encode())
        for i in range(4)
    ]
    executor = app.state.runs.executor
    async with await _http(app) as http:
        payload = await upload(http, collection, notes, token=team.editor.token)
    assert [f["error"] for f in payload["files"]] == [None] * 4
    most = 0

    async def idle() -> bool:
        nonlocal most
        most = max(most, executor.in_slot, len(executor.running))
        return executor.waiting == 0 and executor.in_slot == 0

    await eventually(idle, within=120, what="every run to end", every=0.005)
    assert most == 1
    statuses = await client.op(
        "RunsMonitor", {"workspaceId": team.workspace_id}, token=team.editor.token
    )
    ended = [e["node"]["status"] for e in statuses["workspace"]["runs"]["edges"]]
    assert len(ended) == 4 and "QUEUED" not in ended and "RUNNING" not in ended


@pytest.mark.settings(**PARSE_LIMITS)
async def test_the_rows_on_both_databases(any_db_client: GraphQLClient, any_db_app: FastAPI):
    """The rows of finished uploads, replayed on PostgreSQL and SQLite: the subscription sends
    each document's end state and completes."""
    client = any_db_client
    team = await set_up_team(client, any_db_app.state.settings, "editor")
    erin = team.editor
    collection = await _collection(client, {"id": team.workspace_id}, erin.token, "Scans")
    async with await _http(any_db_app) as http:
        payload = await upload(http, collection, failing_files(), token=erin.token)
    await settle(any_db_app)
    ids = [f["document"]["id"] for f in payload["files"]]
    deps = any_db_app.state.deps.for_principal(Principal(user_id=uuid_of(erin.user_id)))
    context = Context(deps=deps, runner=any_db_app.state.runner)
    stream = await any_db_app.state.schema.subscribe(
        operation("UploadProgress"),
        variable_values={"workspaceId": team.workspace_id, "documentIds": ids},
        context_value=context,
    )
    rows = await _rows(stream)
    assert [(r["fileName"], r["status"], r["stage"], r["errorCode"], r["done"]) for r in rows] == [
        ("scan.pdf", "FAILED", "EXTRACTING", "NO_TEXT", True),
        ("nested.html", "FAILED", "EXTRACTING", "EXTRACTION_TIMEOUT", True),
    ]
