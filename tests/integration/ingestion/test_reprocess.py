"""Reprocessing (screens 5 and 7): a fresh run that keeps a person's edits and leaves exactly as
many chunks, index rows and vectors as before; the processing history; per-document errors; a
change of embedding model re-embeds."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from base.models.documents import Chunk, ChunkVector, Document, DocumentStatus
from base.models.runs import Run
from services import llm
from tests.integration.ingestion.conftest import library_of
from tests.support import corpus
from tests.support.app_fixtures import other_api, queued_runs
from tests.support.graphql import uuid_of
from tests.support.ingest import (
    GETPASS_HTML,
    STAGES,
    TTY_HTML,
    add_document,
    counts,
    finished_run,
    full_text_rows,
    start_ingestion,
    step_outputs,
)
from tests.support.seed import add_collection, add_documents, global_id
from tests.support.team import set_up_team

# The model's work is sized small, but a CPU-only model server shared with other work can take
# minutes for it; the suite's 300 s default would cut a slow but sound run short.
pytestmark = [pytest.mark.timeout(900), pytest.mark.slow(seconds=90)]


async def chunk_rows(deps, document_id: uuid.UUID) -> list[tuple[int, str]]:
    async with deps.db() as session:
        rows = await session.execute(
            select(Chunk.position, Chunk.text)
            .where(Chunk.document_id == document_id)
            .order_by(Chunk.position)
        )
        return [tuple(r) for r in rows]


async def test_reprocessing_keeps_edits_and_duplicates_nothing(any_db_client, any_db_app):
    deps = any_db_app.state.deps
    library = await library_of(any_db_client, any_db_app)
    document_id = await add_document(
        deps,
        library.workspace_id,
        library.collection_id,
        library.owner_id,
        corpus.read(GETPASS_HTML),
        "getpass.html",
    )
    first = await finished_run(deps, await start_ingestion(deps, document_id, library.owner_id))
    assert first.status.value == "SUCCEEDED"
    before = (
        await counts(deps, document_id),
        await full_text_rows(deps.db, document_id),
        await chunk_rows(deps, document_id),
    )
    gid = global_id("Document", document_id)
    first_read = (await any_db_client.op("DocumentDetail", {"id": gid}, token=library.token))[
        "document"
    ]
    assert first_read["title"] != "getpass"  # the page's own title replaced the file's name
    # Who wrote each field, as the steps said: the model, or the text where its reply was
    # unusable; the title came from the file (its name, then the page's own title).
    written = await step_outputs(deps, first.id)
    assert {**written["SUMMARIZING"]["sources"], **written["TAGGING"]["sources"]}.keys() == {
        "SUMMARY",
        "KEY_POINTS",
        "TAGS",
        "ENTITIES",
    }
    assert first_read["fieldSources"] == [
        {"field": "TITLE", "source": "FILE"},
        *(
            {"field": field, "source": source}
            for field, source in (
                *written["SUMMARIZING"]["sources"].items(),
                *written["TAGGING"]["sources"].items(),
            )
            if source is not None
        ),
    ]
    assert {s["source"] for s in first_read["fieldSources"][1:]} <= {"MODEL", "TEXT"}
    # "getpass" is what the upload called it before reading it: only the edit mark keeps a
    # reprocess from taking the page's title again.
    edits = {
        "title": "getpass",
        "summary": "My own summary.",
        "tags": ["mine", "${x}"],
        "entities": [{"name": "Olivia", "kind": "PERSON"}],
    }
    edited = await any_db_client.op(
        "UpdateDocument", {"input": {"id": gid, **edits}}, token=library.token
    )
    assert edited["updateDocument"]["errors"] == []

    queued = (
        await any_db_client.op("ReprocessDocument", {"input": {"id": gid}}, token=library.token)
    )["reprocessDocument"]
    assert queued["errors"] == []
    assert queued["document"] == {"id": gid, "status": "QUEUED", "stage": None, "errorCode": None}
    assert (queued["run"]["workflow"], queued["run"]["status"], queued["run"]["attempt"]) == (
        "ingest_document",
        "QUEUED",
        1,
    )
    second_id = uuid_of(queued["run"]["id"])
    second = await finished_run(deps, second_id)
    assert second.status.value == "SUCCEEDED"

    # The same chunks, index rows and vectors as before: replaced, never added to.
    after = (
        await counts(deps, document_id),
        await full_text_rows(deps.db, document_id),
        await chunk_rows(deps, document_id),
    )
    assert after == before
    assert before[0]["chunks"] == before[0]["vectors"] == before[1] > 0
    outputs = await step_outputs(deps, second_id)
    assert outputs["TAGGING"]["kept"] == ["ENTITIES", "TAGS"]
    assert outputs["TAGGING"]["model_seconds"] == 0.0  # both its fields edited: no model call
    assert outputs["SUMMARIZING"]["kept"] == ["SUMMARY"]

    detail = (
        await any_db_client.op("DocumentDetail", {"id": gid, "runsFirst": 10}, token=library.token)
    )["document"]
    assert (
        detail["status"],
        detail["title"],
        detail["summary"],
        detail["tags"],
        detail["entities"],
    ) == (
        "READY",
        "getpass",
        "My own summary.",
        ["mine", "${x}"],
        [{"name": "Olivia", "kind": "PERSON"}],
    )
    assert [(e["field"], e["editedBy"]["name"]) for e in detail["edits"]] == [
        ("TITLE", "Olivia Owner"),
        ("SUMMARY", "Olivia Owner"),
        ("TAGS", "Olivia Owner"),
        ("ENTITIES", "Olivia Owner"),
    ]
    assert detail["keyPoints"]  # the AI's, written again
    assert detail["fieldSources"] == [
        {"field": "TITLE", "source": "PERSON"},
        {"field": "SUMMARY", "source": "PERSON"},
        {"field": "KEY_POINTS", "source": outputs["SUMMARIZING"]["sources"]["KEY_POINTS"]},
        {"field": "TAGS", "source": "PERSON"},
        {"field": "ENTITIES", "source": "PERSON"},
    ]
    assert outputs["SUMMARIZING"]["sources"].keys() == {"KEY_POINTS"}
    assert outputs["TAGGING"]["sources"] == {}
    history = detail["runs"]
    assert history["totalCount"] == 2
    assert [e["node"]["id"] for e in history["edges"]] == [
        global_id("Run", second_id),
        global_id("Run", first.id),
    ]
    for edge in history["edges"]:
        run = edge["node"]
        assert (run["workflow"], run["status"], run["triggeredBy"]["name"]) == (
            "ingest_document",
            "SUCCEEDED",
            "Olivia Owner",
        )
        assert [s["name"] for s in run["steps"]] == list(STAGES)
        assert {s["status"] for s in run["steps"]} == {"SUCCEEDED"}
        assert all(s["durationMs"] >= 0 for s in run["steps"])
        assert run["durationMs"] >= sum(s["durationMs"] for s in run["steps"]) - len(STAGES)


@pytest.mark.settings(run_execution="queue")  # runs wait in the queue: no worker takes them
async def test_reprocess_reports_each_document_and_refuses_busy_ones(client, app, settings):
    team = await set_up_team(client, settings, "editor", "viewer", "outsider")
    db = app.state.deps.db
    workspace_id = uuid_of(team.workspace_id)
    owner_id = uuid_of(team.owner.user_id)
    collection = await add_collection(db, workspace_id, "Manuals", owner_id)
    a, b, c = await add_documents(db, workspace_id, [collection], [owner_id], 3)
    ga, gb, gc = (global_id("Document", d) for d in (a, b, c))
    nowhere = global_id("Document", uuid.uuid4())

    result = (
        await client.op(
            "ReprocessDocuments",
            {"input": {"ids": [ga, nowhere, ga, gb, "not-an-id"]}},
            token=team.editor.token,
        )
    )["reprocessDocuments"]
    assert [d["id"] for d in result["documents"]] == [ga, gb]
    assert {d["status"] for d in result["documents"]} == {"QUEUED"}
    assert [r["subject"]["id"] for r in result["runs"]] == [ga, gb]
    assert result["errors"] == [
        {"code": "NOT_FOUND", "message": "No such document.", "field": "ids.1"},
        {"code": "NOT_FOUND", "message": "No such document.", "field": "ids.4"},
    ]
    run_ids = [uuid_of(r["id"]) for r in result["runs"]]
    assert await queued_runs(settings) == run_ids

    busy = {
        "code": "DOCUMENT_BUSY",
        "message": "The document is already queued or being processed.",
    }
    again = (
        await client.op("ReprocessDocuments", {"input": {"ids": [gc, ga]}}, token=team.editor.token)
    )["reprocessDocuments"]
    assert [d["id"] for d in again["documents"]] == [gc]
    assert again["errors"] == [{**busy, "field": "ids.1"}]
    single = (await client.op("ReprocessDocument", {"input": {"id": gb}}, token=team.editor.token))[
        "reprocessDocument"
    ]
    assert (single["document"], single["run"]) == (None, None)
    assert single["errors"] == [{**busy, "field": "id"}]

    async def runs_of(document_id: uuid.UUID) -> int:
        async with db() as session:
            return await session.scalar(
                select(func.count()).select_from(Run).where(Run.subject_id == document_id)
            )

    before = [await runs_of(d) for d in (a, b, c)]
    assert before == [1, 1, 1]
    # A VIEWER is refused as a whole; an outsider sees nothing; bad batches are refused.
    denied = (
        await client.op("ReprocessDocuments", {"input": {"ids": [gc]}}, token=team.viewer.token)
    )["reprocessDocuments"]
    assert (denied["documents"], [e["code"] for e in denied["errors"]]) == (None, ["FORBIDDEN"])
    hidden = (
        await client.op("ReprocessDocument", {"input": {"id": gc}}, token=team.outsider.token)
    )["reprocessDocument"]
    assert hidden["errors"] == [
        {"code": "NOT_FOUND", "message": "No such document.", "field": "id"}
    ]
    for ids, code in (([], "REQUIRED"), ([gc] * 101, "TOO_LONG")):
        refused = (
            await client.op("ReprocessDocuments", {"input": {"ids": ids}}, token=team.editor.token)
        )["reprocessDocuments"]
        assert [(e["code"], e["field"]) for e in refused["errors"]] == [(code, "ids")]
    assert [await runs_of(d) for d in (a, b, c)] == before
    assert await queued_runs(settings) == [*run_ids, uuid_of(again["runs"][0]["id"])]
    async with db() as session:
        statuses = (
            await session.execute(select(Document.status).where(Document.id.in_([a, b, c])))
        ).scalars()
        assert set(statuses) == {DocumentStatus.QUEUED}


async def another_embedding_model(settings) -> str:
    """A second embedding model the server offers; else the same model under another spelling
    (Ollama names compare without case), which is another name to store all the same."""
    offered = await llm.list_models(config=llm.LLMConfig.from_settings(settings))
    current = settings.embed_model
    others = [m for m in offered if m.split(":")[0].lower() != current.split(":")[0].lower()]
    return others[0] if others else current.upper()


async def test_a_new_embedding_model_re_embeds_on_reprocess(client, app, settings):
    deps = app.state.deps
    library = await library_of(client, app)
    document_id = await add_document(
        deps,
        library.workspace_id,
        library.collection_id,
        library.owner_id,
        corpus.read(TTY_HTML),
        "tty.html",
    )
    run = await finished_run(deps, await start_ingestion(deps, document_id, library.owner_id))
    assert run.status.value == "SUCCEEDED"
    chunks = (await counts(deps, document_id))["chunks"]

    async def models() -> list[tuple[str, int, int]]:
        async with deps.db() as session:
            rows = await session.execute(
                select(ChunkVector.model, ChunkVector.dimension, func.count())
                .where(ChunkVector.document_id == document_id)
                .group_by(ChunkVector.model, ChunkVector.dimension)
            )
            return [tuple(r) for r in rows]

    [(old_model, _dimension, old_count)] = await models()
    assert (old_model, old_count) == (settings.embed_model, chunks)
    new_model = await another_embedding_model(settings)
    [probe] = await llm.embed(
        ["dimension"], model=new_model, config=llm.LLMConfig.from_settings(settings)
    )
    async with other_api(settings, embed_model=new_model) as (other, other_client):
        queued = (
            await other_client.op(
                "ReprocessDocument",
                {"input": {"id": global_id("Document", document_id)}},
                token=library.token,
            )
        )["reprocessDocument"]
        assert queued["errors"] == []
        again = await finished_run(other.state.deps, uuid_of(queued["run"]["id"]))
    assert again.status.value == "SUCCEEDED"
    # Every old vector gone, one new vector per chunk: never a mix of two models.
    assert await models() == [(new_model, len(probe), chunks)]
