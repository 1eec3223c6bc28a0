"""After a change of embedding model (ADR 0089): the documents without vectors of the current
model are re-embedded by one run per workspace, with the real local model server, on
PostgreSQL and SQLite. Real sections of the Python documentation as documents."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from base.db.types import utcnow
from base.models import Chunk, ChunkVector, Document, Run
from base.models.documents import DocumentStatus
from base.models.runs import RunStatus
from services.reembedding import queue_reembedding
from tests.support.corpus import corpus_sections
from tests.support.graphql import GraphQLClient, first_workspace, sign_up, uuid_of
from tests.support.ingest import step_outputs
from tests.support.seed import (
    CorpusDocument,
    add_collection,
    add_corpus_documents,
    add_runs,
    global_id,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(900)

OLD_MODEL = "an-earlier-model"


async def seed(client: GraphQLClient, app: FastAPI) -> dict[str, Any]:
    """Four documents: vectors of an earlier model (0), none (1), vectors of the current model
    (2), and a QUEUED one without text (3)."""
    db = app.state.deps.db
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = (await first_workspace(client, owner["accessToken"]))["id"]
    owner_id = uuid_of(owner["user"]["id"])
    collection = await add_collection(db, uuid_of(workspace), "Library", owner_id)
    sections = corpus_sections(4, max_chunks=2)[:4]
    statuses = [DocumentStatus.READY] * 3 + [DocumentStatus.QUEUED]
    ids = await add_corpus_documents(
        db,
        uuid_of(workspace),
        [
            CorpusDocument(section, collection, owner_id, status=status)
            for section, status in zip(sections, statuses, strict=True)
        ],
    )
    model = app.state.settings.embed_model
    async with db.begin() as session:
        for document_id, (name, dimension) in zip(
            ids[:3:2], [(OLD_MODEL, 4), (model, 384)], strict=True
        ):
            chunks = (
                await session.execute(select(Chunk.id).where(Chunk.document_id == document_id))
            ).scalars()
            session.add_all(
                ChunkVector(
                    chunk_id=chunk_id,
                    document_id=document_id,
                    workspace_id=uuid_of(workspace),
                    model=name,
                    dimension=dimension,
                    vector=np.full(dimension, 0.5, dtype="<f4").tobytes(),
                )
                for chunk_id in chunks
            )
    return {
        "token": owner["accessToken"],
        "owner_id": owner_id,
        "workspace": workspace,
        "ids": ids,
        "sections": sections,
    }


async def vectors(db: Any) -> dict[uuid.UUID, list[tuple[str, int, bytes]]]:
    """Per document: (model, dimension, bytes) of each passage's vector, in passage order."""
    async with db() as session:
        rows = await session.execute(
            select(Chunk.document_id, ChunkVector.model, ChunkVector.dimension, ChunkVector.vector)
            .join(ChunkVector, ChunkVector.chunk_id == Chunk.id)
            .order_by(Chunk.document_id, Chunk.position)
        )
        found: dict[uuid.UUID, list[tuple[str, int, bytes]]] = {}
        for document_id, model, dimension, vector in rows:
            found.setdefault(document_id, []).append((model, dimension, vector))
        return found


async def passages(db: Any, document_id: uuid.UUID) -> int:
    async with db() as session:
        return len(
            list(
                (
                    await session.execute(select(Chunk.id).where(Chunk.document_id == document_id))
                ).scalars()
            )
        )


async def documents(db: Any) -> list[tuple[Any, ...]]:
    async with db() as session:
        return [
            tuple(r)
            for r in await session.execute(
                select(Document.id, Document.status, Document.updated_at).order_by(Document.id)
            )
        ]


async def test_a_run_per_workspace_gives_stale_documents_vectors_of_the_current_model(
    any_db_client: GraphQLClient, any_db_app: FastAPI
) -> None:
    app, client = any_db_app, any_db_client
    deps, db, model = app.state.deps, app.state.deps.db, app.state.settings.embed_model
    seeded = await seed(client, app)
    ids = seeded["ids"]
    before = await vectors(db)
    states = await documents(db)

    [run_id] = await queue_reembedding(deps)
    await app.state.runs.launcher.wait_idle()

    async with db() as session:
        run = await session.get(Run, run_id)
        assert run is not None
        assert (run.workflow, run.status.value, run.triggered_by_id, run.output_summary) == (
            "reembed_workspace",
            "SUCCEEDED",
            None,
            f"re-embedded 2 documents with {model}",
        )
        assert run.input_summary == f"2 documents without vectors of {model}"
    after = await vectors(db)
    # The earlier model's vectors are gone; the two stale documents have one vector of the
    # current model per passage; the current one is untouched; the QUEUED one has none.
    for document_id in ids[:2]:
        assert [(m, d) for m, d, _ in after[document_id]] == [(model, 384)] * await passages(
            db, document_id
        )
        assert len({v for _, _, v in after[document_id]}) == len(after[document_id])
    assert after[ids[2]] == before[ids[2]]
    assert set(after) == set(ids[:3])
    # Status, text and enrichment are the ingestion's: nothing else changed.
    assert await documents(db) == states
    # The tokens the server counted are the step's, and the Usage tab's: more than one per
    # passage (each has its [CLS] and [SEP]).
    usage = await client.op(
        "WorkspaceUsage", {"workspaceId": seeded["workspace"]}, token=seeded["token"]
    )
    tokens = (await step_outputs(deps, run_id))["EMBEDDING"]["embedding_tokens"]
    embedded = sum([await passages(db, document_id) for document_id in ids[:2]])
    assert usage["workspace"]["usage"]["embeddingTokens"] == float(tokens)
    assert tokens > 2 * embedded > 0
    # Nothing is left to do, and the documents are found by meaning again.
    assert await queue_reembedding(deps) == []
    found = await client.op(
        "Search",
        {
            "workspaceId": seeded["workspace"],
            "query": seeded["sections"][0].chunks[0].text,
            "mode": "SEMANTIC",
        },
        token=seeded["token"],
    )
    first = found["search"]["results"]["edges"][0]["node"]
    assert first["document"]["id"] == global_id("Document", ids[0])


@pytest.mark.settings(reembed_check_seconds=1)
async def test_the_api_process_queues_the_run_by_itself(
    any_db_client: GraphQLClient, any_db_app: FastAPI
) -> None:
    db, model = any_db_app.state.deps.db, any_db_app.state.settings.embed_model
    seeded = await seed(any_db_client, any_db_app)
    stale = seeded["ids"][:2]

    async def current() -> bool:
        found = await vectors(db)
        return all(
            document_id in found and {m for m, _, _ in found[document_id]} == {model}
            for document_id in stale
        )

    await eventually(current, within=120, what="the stale documents to be re-embedded")
    async with db() as session:
        runs = (
            await session.execute(select(Run.workflow).where(Run.workflow == "reembed_workspace"))
        ).scalars()
        assert list(runs) == ["reembed_workspace"]


async def test_a_cancelled_or_failed_run_is_not_queued_again_within_the_retry_interval(
    any_db_client: GraphQLClient, any_db_app: FastAPI
) -> None:
    app = any_db_app
    deps, db = app.state.deps, app.state.deps.db
    seeded = await seed(any_db_client, app)
    workspace = uuid_of(seeded["workspace"])
    owner = [seeded["owner_id"]]
    [cancelled] = await add_runs(db, workspace, owner, 1, status=RunStatus.CANCELLED)
    [failed] = await add_runs(db, workspace, owner, 1, status=RunStatus.FAILED)

    async def made(run_id: uuid.UUID, ago: timedelta) -> None:
        async with db.begin() as session:
            await session.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(workflow="reembed_workspace", created_at=utcnow() - ago)
            )

    await made(cancelled, timedelta(minutes=5))
    await made(failed, timedelta(hours=2))
    assert await queue_reembedding(deps) == []  # an admin cancelled one 5 minutes ago
    await made(cancelled, timedelta(hours=2))
    [queued] = await queue_reembedding(deps)  # both long enough ago
    await app.state.runs.launcher.wait_idle()
    async with db() as session:
        run = await session.get(Run, queued)
        assert run is not None and run.status.value == "SUCCEEDED"
