"""Real documents made searchable for the Ask tests, and answers followed to their end.

`searchable()` runs the ingestion stages that search needs (EXTRACTING, CHUNKING, INDEXING,
EMBEDDING: the real service functions) and marks the document READY; it leaves out SUMMARIZING
and TAGGING, which an answer does not use and which would cost each test minutes of the model
on a CPU. The vectors the model computed are kept for the test session, by model and passage
text: the next test that stores the same page writes the same vectors without asking the model
again (embedding a page took minutes on a busy 2-core machine).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import insert, select, update

from base.auth.principal import Principal
from base.models.chat import AnswerState, Message
from base.models.documents import Chunk, ChunkVector, Document, DocumentStatus
from resolvers.core.context import Context
from services import ingestion
from services.deps import ServiceDeps
from tests.support import corpus
from tests.support.graphql import operation, uuid_of
from tests.support.ingest import add_document
from tests.support.waiting import eventually

HTML = corpus.HTML_ROOT
VENV_PAGES = (HTML / "library" / "venv.html", HTML / "tutorial" / "venv.html")
# Pages that say nothing about virtual environments.
OTHER_PAGES = (HTML / "library" / "json.html", HTML / "library" / "getpass.html")
# A bound on waiting for an answer: only a hang reaches it (nothing asserts how long it took).
ANSWER_ENDS_WITHIN = 600.0

# (embedding model, passage text) -> (dimension, float32 bytes), for the whole test session.
_VECTORS: dict[tuple[str, str], tuple[int, bytes]] = {}


async def searchable(
    deps: ServiceDeps,
    workspace_id: uuid.UUID,
    collection_id: uuid.UUID,
    owner_id: uuid.UUID,
    path: Path | None = None,
    *,
    data: bytes | None = None,
    filename: str | None = None,
    title: str | None = None,
) -> uuid.UUID:
    """A READY document of the real file at `path` (or of `data`), chunked, indexed and embedded
    by the ingestion service functions."""
    content = data if data is not None else corpus.read(path) if path else b""
    name = filename or (path.name if path else None)
    document_id = await add_document(
        deps, workspace_id, collection_id, owner_id, content, name, title=title
    )
    for stage in (ingestion.extracting, ingestion.chunking_step, ingestion.indexing):
        await stage(deps, document_id=str(document_id))
    await _embedded(deps, document_id)
    async with deps.db.begin() as session:
        await session.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(status=DocumentStatus.READY, stage=None)
        )
    return document_id


async def _embedded(deps: ServiceDeps, document_id: uuid.UUID) -> None:
    """EMBEDDING: the stored vectors of these very passages if the session has them all,
    else the real step (whose vectors are then kept)."""
    model = deps.settings.embed_model
    async with deps.db() as session:
        workspace_id = await session.scalar(
            select(Document.workspace_id).where(Document.id == document_id)
        )
        chunks = (
            await session.execute(
                select(Chunk.id, Chunk.text).where(Chunk.document_id == document_id)
            )
        ).all()
    if all((model, text) in _VECTORS for _, text in chunks):
        if chunks:
            async with deps.db.begin() as session:
                await session.execute(
                    insert(ChunkVector),
                    [
                        {
                            "chunk_id": chunk_id,
                            "document_id": document_id,
                            "workspace_id": workspace_id,
                            "model": model,
                            "dimension": _VECTORS[(model, text)][0],
                            "vector": _VECTORS[(model, text)][1],
                        }
                        for chunk_id, text in chunks
                    ],
                )
        return
    await ingestion.embedding(deps, document_id=str(document_id))
    async with deps.db() as session:
        rows = await session.execute(
            select(Chunk.text, ChunkVector.dimension, ChunkVector.vector)
            .join(ChunkVector, ChunkVector.chunk_id == Chunk.id)
            .where(Chunk.document_id == document_id)
        )
        for text, dimension, vector in rows:
            _VECTORS[(model, text)] = (dimension, vector)


async def final_answer(deps: ServiceDeps, message_id: uuid.UUID) -> Message:
    """The answer's row once it has ended."""

    async def ended() -> Message | None:
        async with deps.db() as session:
            row = await session.get(Message, message_id)
            return row if row is not None and row.state and row.state.is_final else None

    return await eventually(ended, within=ANSWER_ENDS_WITHIN, what="the answer to end", every=0.1)


async def answer_state(deps: ServiceDeps, message_id: uuid.UUID) -> AnswerState | None:
    async with deps.db() as session:
        return await session.scalar(select(Message.state).where(Message.id == message_id))


async def collect(stream: Any, *, until: Any = None) -> list[dict[str, Any]]:
    """The answerStream events of a subscription (from the `subscribe` fixture) until it ends,
    or until `until(events)` is true."""
    events: list[dict[str, Any]] = []
    async for result in stream:
        assert result.errors is None, result.errors
        events.append(result.data["answerStream"])
        if until is not None and until(events):
            break
    return events


def streamed_text(events: list[dict[str, Any]]) -> str:
    """The text the TEXT events carry, checking that each starts at the previous cursor."""
    text = ""
    for event in events:
        if event["type"] == "TEXT":
            assert int(event["cursor"]) == len(text) + len(event["text"]), (event, len(text))
            text += event["text"]
    return text


async def settle() -> None:
    """Let tasks scheduled by the last step run (publishes after a commit)."""
    await asyncio.sleep(0)


async def subscribe_on(
    app: FastAPI, name: str, variables: dict[str, Any], user_global_id: str
) -> Any:
    """Run subscription `name` of graphql/operations through `app`'s schema as a user (as the
    `subscribe` fixture does for the PostgreSQL app, for any app)."""
    deps = app.state.deps.for_principal(Principal(user_id=uuid_of(user_global_id)))
    context = Context(deps=deps, runner=app.state.runner)
    return await app.state.schema.subscribe(
        operation(name), variable_values=variables, context_value=context
    )
