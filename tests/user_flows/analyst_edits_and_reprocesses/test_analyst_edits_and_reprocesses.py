"""User flow: an analyst edits a summary and reprocesses, and the edit survives
(docs/user_flows/analyst_edits_and_reprocesses/README.md).

Each `# Step N` below is the step of the same number in that README. The server is a real
uvicorn process on its own PostgreSQL database, Redis and blob store, ingesting with the local
model server; the upload is an HTTP multipart request, and the upload row and the reprocessing
run are followed over real WebSockets.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from base.settings import Settings
from tests.e2e.runs_support import py_run_progress
from tests.support import ingest_server
from tests.support.graphql import GraphQLClient
from tests.support.ingest import GETPASS_HTML, STAGES
from tests.support.ingest_server import check_rows
from tests.support.team import set_up_team
from tests.support.uploads import corpus_file, upload, watch_uploads

# The timeout is a bound on a hang: two ingestions with the model.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.slow(seconds=60)]

# The API process that ingests with the local model (tests/support/ingest_server.py).
flow_database, blobs = ingest_server.flow_database, ingest_server.blobs
server, http = ingest_server.server, ingest_server.http

ERINS_SUMMARY = (
    "How to read a password without echoing it: getpass(), and getuser() for the login name. "
    "${not_a_template}"
)
ERINS_TAGS = ["passwords", "terminal"]
VIEWER_REFUSED = [
    {
        "code": "FORBIDDEN",
        "message": "This needs the EDITOR role or higher; you are VIEWER.",
        "field": None,
    }
]


async def detail(client: GraphQLClient, document_id: str, token: str) -> dict[str, Any]:
    data = await client.op("DocumentDetail", {"id": document_id, "runsFirst": 10}, token=token)
    document: dict[str, Any] = data["document"]
    return document


async def test_analyst_edits_a_summary_reprocesses_and_the_edit_survives(
    http: httpx.AsyncClient, server: str
) -> None:
    client = GraphQLClient(http)
    ws_url = server.replace("http://", "ws://", 1) + "/graphql"
    # Step 1 — the team and a collection.
    team = await set_up_team(client, Settings(), "editor", "viewer")
    erin, victor = team.editor, team.viewer
    created = await client.op(
        "CreateCollection",
        {"input": {"workspaceId": team.workspace_id, "name": "Library reference"}},
        token=team.owner.token,
    )
    collection = created["createCollection"]["collection"]["id"]

    # Step 2 — Erin uploads getpass.html and watches it to READY.
    payload = await upload(http, collection, [corpus_file(GETPASS_HTML)], token=erin.token)
    assert payload["errors"] == []
    [outcome] = payload["files"]
    document_id, first_run = outcome["document"]["id"], outcome["run"]["id"]
    rows = await watch_uploads(ws_url, erin.token, team.workspace_id, [document_id], within=1200)
    final = check_rows(rows, [document_id])[document_id]
    assert (final["status"], final["percent"], final["errorCode"]) == ("READY", 100, None)

    # Step 3 — what the model wrote, read by Victor.
    before = await detail(client, document_id, victor.token)
    assert (before["status"], before["edits"]) == ("READY", [])
    # The page's own <title>, whose last part names the packaged Python version.
    assert before["title"].startswith("getpass — Portable password input — Python 3.11")
    assert before["summary"] and before["summary"] != ERINS_SUMMARY
    assert before["keyPoints"] and before["tags"] and before["tags"] != ERINS_TAGS
    # Who wrote what: the title from the file, the rest by the model or, where its reply was
    # unusable, taken from the text (labelled so on the screen).
    sources = {s["field"]: s["source"] for s in before["fieldSources"]}
    assert sources["TITLE"] == "FILE"
    assert {sources[f] for f in ("SUMMARY", "KEY_POINTS", "TAGS")} <= {"MODEL", "TEXT"}
    assert sources.get("ENTITIES", "MODEL") == "MODEL"
    assert before["runs"]["totalCount"] == 1
    assert [e["node"]["id"] for e in before["runs"]["edges"]] == [first_run]
    chunk_count = before["chunks"]["totalCount"]
    assert chunk_count > 0

    # Step 4 — Victor (VIEWER) may neither edit nor reprocess: refused, nothing changes.
    refused_edit = await client.op(
        "UpdateDocument",
        {"input": {"id": document_id, "summary": "Victor's summary."}},
        token=victor.token,
    )
    assert refused_edit == {"updateDocument": {"document": None, "errors": VIEWER_REFUSED}}
    refused_run = await client.op(
        "ReprocessDocument", {"input": {"id": document_id}}, token=victor.token
    )
    assert refused_run == {
        "reprocessDocument": {"document": None, "run": None, "errors": VIEWER_REFUSED}
    }
    assert await detail(client, document_id, victor.token) == before

    # Step 5 — Erin writes her own summary and tags.
    edited = (
        await client.op(
            "UpdateDocument",
            {"input": {"id": document_id, "summary": ERINS_SUMMARY, "tags": ERINS_TAGS}},
            token=erin.token,
        )
    )["updateDocument"]
    assert edited["errors"] == []
    assert (edited["document"]["summary"], edited["document"]["tags"]) == (
        ERINS_SUMMARY,
        ERINS_TAGS,
    )
    marks = [(e["field"], e["editedBy"]["name"]) for e in edited["document"]["edits"]]
    assert marks == [("SUMMARY", "Erin Editor"), ("TAGS", "Erin Editor")]
    edited_sources = {s["field"]: s["source"] for s in edited["document"]["fieldSources"]}
    assert edited_sources == {**sources, "SUMMARY": "PERSON", "TAGS": "PERSON"}

    # Step 6 — Erin reprocesses; asking again while it is queued or running is refused.
    queued = (
        await client.op("ReprocessDocument", {"input": {"id": document_id}}, token=erin.token)
    )["reprocessDocument"]
    assert queued["errors"] == []
    assert queued["document"]["id"] == document_id
    assert (queued["run"]["workflow"], queued["run"]["attempt"]) == ("ingest_document", 1)
    second_run = queued["run"]["id"]
    again = (
        await client.op("ReprocessDocument", {"input": {"id": document_id}}, token=erin.token)
    )["reprocessDocument"]
    assert again == {
        "document": None,
        "run": None,
        "errors": [
            {
                "code": "DOCUMENT_BUSY",
                "message": "The document is already queued or being processed.",
                "field": "id",
            }
        ],
    }

    # Step 7 — Erin follows the new run (RunProgress) to its end.
    events, ending = await py_run_progress(ws_url, erin.token, second_run, within=1200)
    assert ending == {"id": "p", "type": "complete"}
    assert [e["runId"] for e in events] == [second_run] * len(events)
    started = [e["step"] for e in events if e["type"] == "STEP_STARTED"]
    assert started == list(STAGES)
    assert events[-1]["type"] == "RUN_SUCCEEDED"
    assert (events[-1]["status"], events[-1]["percent"]) == ("SUCCEEDED", 100)
    percents = [e["percent"] for e in events]
    assert percents == sorted(percents)

    # Step 8 — the document again: Erin's summary and tags kept, the rest written anew.
    after = await detail(client, document_id, victor.token)
    assert (after["status"], after["summary"], after["tags"]) == (
        "READY",
        ERINS_SUMMARY,
        ERINS_TAGS,
    )
    assert [(e["field"], e["editedBy"]["name"]) for e in after["edits"]] == marks
    assert after["keyPoints"]  # the model's, written again
    after_sources = {s["field"]: s["source"] for s in after["fieldSources"]}
    assert {f: after_sources[f] for f in ("TITLE", "SUMMARY", "TAGS")} == {
        "TITLE": "FILE",
        "SUMMARY": "PERSON",
        "TAGS": "PERSON",
    }
    assert after_sources["KEY_POINTS"] in {"MODEL", "TEXT"}
    assert after["chunks"]["totalCount"] == chunk_count  # replaced, not added to
    history = after["runs"]
    assert history["totalCount"] == 2
    assert [e["node"]["id"] for e in history["edges"]] == [second_run, first_run]
    for edge in history["edges"]:  # Erin uploaded it and Erin reprocessed it
        run = edge["node"]
        assert (run["workflow"], run["status"], run["triggeredBy"]["name"]) == (
            "ingest_document",
            "SUCCEEDED",
            "Erin Editor",
        )
        assert [s["name"] for s in run["steps"]] == list(STAGES)
        assert {s["status"] for s in run["steps"]} == {"SUCCEEDED"}
