"""Ingestion under real faults of the model server and of the document: the run fails at the
step that needs the model with MODEL_UNAVAILABLE, the document stays keyword-searchable, and a
retry resumes at that step; a document deleted mid-run fails the run and nothing is written;
a reply the model cannot finish falls back to extractive values."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from base.models.documents import Chunk, Document, DocumentTag
from services import chunking, enrichment, fulltext
from tests.integration.ingestion.conftest import library_of
from tests.support import corpus
from tests.support.app_fixtures import other_api
from tests.support.graphql import uuid_of
from tests.support.ingest import (
    GETPASS_HTML,
    STAGES,
    TTY_HTML,
    WITH_EXTRACTED_TEXT,
    add_document,
    counts,
    finished_run,
    full_text_rows,
    start_ingestion,
    step_outputs,
    step_statuses,
)
from tests.support.model_server import own_model_server
from tests.support.seed import global_id
from tests.support.waiting import eventually

# The model's work is sized small, but a CPU-only model server shared with other work can take
# minutes for it; the suite's 300 s default would cut a slow but sound run short.
pytestmark = [pytest.mark.timeout(900), pytest.mark.slow(seconds=70)]


async def chunk_ids(deps, document_id: uuid.UUID) -> list[uuid.UUID]:
    async with deps.db() as session:
        rows = await session.execute(
            select(Chunk.id).where(Chunk.document_id == document_id).order_by(Chunk.position)
        )
        return list(rows.scalars())


async def document_state(deps, document_id: uuid.UUID) -> tuple[str, str | None, str | None]:
    async with deps.db() as session:
        document = await session.get(Document, document_id)
        assert document is not None
        stage = document.stage.value if document.stage else None
        return document.status.value, stage, document.error_code


async def retry(client, token: str, run_id: uuid.UUID) -> uuid.UUID:
    data = await client.op("RetryRun", {"input": {"runId": global_id("Run", run_id)}}, token=token)
    assert data["retryRun"]["errors"] == [], data
    return uuid_of(data["retryRun"]["run"]["id"])


async def test_a_stopped_model_server_fails_embedding_and_a_retry_resumes_there(app, settings):
    with own_model_server() as server:
        async with other_api(settings, ollama_host=server.url) as (own, client):
            deps = own.state.deps
            library = await library_of(client, own)
            server.stop()
            document_id = await add_document(
                deps,
                library.workspace_id,
                library.collection_id,
                library.owner_id,
                corpus.read(GETPASS_HTML),
                "getpass.html",
            )
            failed = await finished_run(
                deps, await start_ingestion(deps, document_id, library.owner_id)
            )
            assert (failed.status.value, failed.error_code) == ("FAILED", "MODEL_UNAVAILABLE")
            assert failed.error_message == (
                f"The language model server at {server.url} is unreachable."
            )
            assert await step_statuses(deps, failed.id) == {
                "EXTRACTING": "SUCCEEDED",
                "CHUNKING": "SUCCEEDED",
                "INDEXING": "SUCCEEDED",
                "EMBEDDING": "FAILED",
                "SUMMARIZING": "CANCELLED",
                "TAGGING": "CANCELLED",
            }
            assert await document_state(deps, document_id) == (
                "FAILED",
                "EMBEDDING",
                "MODEL_UNAVAILABLE",
            )
            # Still keyword-searchable: its full-text rows stay.
            chunks = await chunk_ids(deps, document_id)
            assert await full_text_rows(deps.db, document_id) == len(chunks) > 0
            async with deps.db() as session:
                found = await fulltext.matching_chunk_ids(
                    session, workspace_id=library.workspace_id, query="GetPassWarning"
                )
            assert set(found) <= set(chunks) and found

            server.start()
            resumed = await finished_run(deps, await retry(client, library.token, failed.id))
            assert (resumed.status.value, resumed.attempt, resumed.retry_of_id) == (
                "SUCCEEDED",
                2,
                failed.id,
            )
            assert await step_statuses(deps, resumed.id) == {
                "EXTRACTING": "REUSED",
                "CHUNKING": "REUSED",
                "INDEXING": "REUSED",
                "EMBEDDING": "SUCCEEDED",
                "SUMMARIZING": "SUCCEEDED",
                "TAGGING": "SUCCEEDED",
            }
            assert await document_state(deps, document_id) == ("READY", None, None)
            # The reused steps did not run again: the same chunks, now with their vectors.
            assert await chunk_ids(deps, document_id) == chunks
            assert await counts(deps, document_id) == {
                "chunks": len(chunks),
                "vectors": len(chunks),
            }
            # Its embedding tokens, as the server counts the same passages, reach the Usage tab.
            async with deps.db() as session:
                texts = [
                    chunking.embedding_text(path, text)
                    for path, text in await session.execute(
                        select(Chunk.heading_path, Chunk.text)
                        .where(Chunk.document_id == document_id)
                        .order_by(Chunk.position)
                    )
                ]
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
                reply = await http.post(
                    "/api/embed", json={"model": settings.embed_model, "input": texts}
                )
            counted = reply.json()["prompt_eval_count"]
            embedded = (await step_outputs(deps, resumed.id))["EMBEDDING"]
            assert embedded["embedding_tokens"] == counted > len(texts)
            usage = await client.op(
                "WorkspaceUsage",
                {"workspaceId": global_id("Workspace", library.workspace_id)},
                token=library.token,
            )
            assert usage["workspace"]["usage"]["embeddingTokens"] == float(counted)


async def test_a_missing_chat_model_fails_summarizing_and_a_retry_resumes_there(
    app, client, settings
):
    async with other_api(settings, chat_model="absent-model:latest") as (lacking, lacking_client):
        deps = lacking.state.deps
        library = await library_of(lacking_client, lacking)
        document_id = await add_document(
            deps,
            library.workspace_id,
            library.collection_id,
            library.owner_id,
            corpus.read(TTY_HTML),
            "tty.html",
        )
        failed = await finished_run(
            deps, await start_ingestion(deps, document_id, library.owner_id)
        )
    deps = app.state.deps  # the other app has stopped: read through this one
    assert (failed.status.value, failed.error_code) == ("FAILED", "MODEL_UNAVAILABLE")
    assert failed.error_message == (
        f"The language model 'absent-model:latest' is not available on {settings.ollama_host}."
    )
    assert await step_statuses(deps, failed.id) == {
        **dict.fromkeys(STAGES[:4], "SUCCEEDED"),
        "SUMMARIZING": "FAILED",
        "TAGGING": "CANCELLED",
    }
    assert await document_state(deps, document_id) == ("FAILED", "SUMMARIZING", "MODEL_UNAVAILABLE")
    embedded = await counts(deps, document_id)
    assert embedded["vectors"] == embedded["chunks"] > 0

    # Retried where the chat model is served: it resumes at SUMMARIZING.
    resumed = await finished_run(deps, await retry(client, library.token, failed.id))
    assert resumed.status.value == "SUCCEEDED"
    assert await step_statuses(deps, resumed.id) == {
        **dict.fromkeys(STAGES[:4], "REUSED"),
        "SUMMARIZING": "SUCCEEDED",
        "TAGGING": "SUCCEEDED",
    }
    assert await document_state(deps, document_id) == ("READY", None, None)
    assert await counts(deps, document_id) == embedded
    async with deps.db() as session:
        document = await session.get(Document, document_id)
        assert document is not None and document.summary


async def test_a_document_deleted_mid_run_fails_the_run_and_nothing_is_written(app, settings):
    with own_model_server() as server:
        async with other_api(settings, ollama_host=server.url) as (own, client):
            deps = own.state.deps
            library = await library_of(client, own)
            document_id = await add_document(
                deps,
                library.workspace_id,
                library.collection_id,
                library.owner_id,
                corpus.read(GETPASS_HTML),
                "getpass.html",
            )
            server.freeze()  # EMBEDDING waits for an answer
            run_id = await start_ingestion(deps, document_id, library.owner_id)

            async def embedding() -> bool:
                return (await step_statuses(deps, run_id))["EMBEDDING"] == "RUNNING"

            await eventually(embedding, within=60, what="the run to reach EMBEDDING")
            deleted = await client.op(
                "DeleteDocuments",
                {"input": {"ids": [global_id("Document", document_id)]}},
                token=library.token,
            )
            assert deleted["deleteDocuments"]["errors"] == []
            server.thaw()
            run = await finished_run(deps, run_id)
    deps = app.state.deps
    assert (run.status.value, run.error_code) == ("FAILED", "DOCUMENT_DELETED")
    assert run.error_message == "The document was deleted while it was being processed."
    assert (await step_statuses(deps, run_id))["EMBEDDING"] == "FAILED"
    async with deps.db() as session:
        assert await session.get(Document, document_id) is None
    assert await counts(deps, document_id) == {"chunks": 0, "vectors": 0}
    assert await full_text_rows(deps.db, document_id) == 0


@pytest.mark.settings(ingest_llm_output_tokens=32)
async def test_replies_the_model_cannot_finish_fall_back_to_extractive_values(client, app):
    """32 tokens cannot hold the JSON of a summary: both attempts end cut off, and the step
    writes the extractive summary and key points instead; the run still succeeds."""
    deps = app.state.deps
    library = await library_of(client, app)
    document_id = await add_document(
        deps,
        library.workspace_id,
        library.collection_id,
        library.owner_id,
        corpus.read(GETPASS_HTML),
        "getpass.html",
    )
    run = await finished_run(deps, await start_ingestion(deps, document_id, library.owner_id))
    assert run.status.value == "SUCCEEDED"
    outputs = await step_outputs(deps, run.id)
    assert outputs["SUMMARIZING"]["source"] == "extractive"
    assert outputs["SUMMARIZING"]["completion_tokens"] == 64  # two attempts of 32 tokens
    async with deps.db() as session:
        document = await session.get(Document, document_id, options=WITH_EXTRACTED_TEXT)
        passages = (
            (
                await session.execute(
                    select(Chunk.text)
                    .where(Chunk.document_id == document_id)
                    .order_by(Chunk.position)
                )
            )
            .scalars()
            .all()
        )
        tags = (
            (
                await session.execute(
                    select(DocumentTag.tag).where(DocumentTag.document_id == document_id)
                )
            )
            .scalars()
            .all()
        )
    assert document is not None
    headings = [h[1] for h in document.headings or []]
    expected = enrichment.read_summary(None, list(passages), headings)
    assert (document.summary, document.key_points) == (expected.summary, expected.key_points)
    assert tags  # from the model if it fit in 32 tokens, else the text's frequent words
