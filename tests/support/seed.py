"""Rows written straight to the database, for tests that need many of them quickly.

Accounts and workspaces come from the real sign-up; runs, their events, extra members,
collections and documents are inserted here, with distinct, known times so that the expected
order is plain. `add_corpus_documents` makes documents of real sections of the Python
documentation (tests/support/corpus.py) while upload is not there to make them.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from base.models.accounts import Membership, Role, User
from base.models.documents import (
    Chunk,
    Collection,
    Document,
    DocumentEntity,
    DocumentStage,
    DocumentStatus,
    DocumentTag,
    EntityKind,
)
from base.models.runs import (
    Run,
    RunEvent,
    RunStatus,
    RunStep,
    StepStatus,
    SubjectType,
    WorkspaceEvent,
)
from services.extraction import count_words
from tests.support.corpus import Section
from tests.support.graphql import uuid_of  # noqa: F401  (re-exported for the seeding tests)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def global_id(type_name: str, value: uuid.UUID) -> str:
    return base64.b64encode(f"{type_name}:{value}".encode()).decode()


async def add_runs(
    db: async_sessionmaker[Any],
    workspace_id: uuid.UUID,
    triggered_by: list[uuid.UUID],
    count: int,
    *,
    status: RunStatus = RunStatus.SUCCEEDED,
    retry_of: uuid.UUID | None = None,
    minutes_apart: int = 1,
    document_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """`count` runs with two steps each, created `minutes_apart` from T0 on (0: all at once);
    their ids in order of creation. Run i was triggered by `triggered_by[i % len(...)]`. They
    are model checks of the workspace, or ingestions of `document_id` when it is given."""
    runs = [
        Run(
            id=uuid.uuid4(),
            workspace_id=workspace_id,
            workflow="ingest_document" if document_id else "check_models",
            subject_type=SubjectType.DOCUMENT if document_id else SubjectType.WORKSPACE,
            subject_id=document_id or workspace_id,
            subject_label=f"run {i}",
            triggered_by_id=triggered_by[i % len(triggered_by)],
            status=status,
            percent=100,
            attempt=2 if retry_of else 1,
            retry_of_id=retry_of,
            params={},
            input_summary=f"input {i}",
            created_at=T0 + timedelta(minutes=i * minutes_apart),
            started_at=T0 + timedelta(minutes=i),
            finished_at=T0 + timedelta(minutes=i, seconds=30),
            last_seq=0,
        )
        for i in range(count)
    ]
    async with db.begin() as session:
        session.add_all(runs)
        await session.flush()
        for run in runs:
            for position, name in enumerate(("CONNECT", "CHAT")):
                session.add(
                    RunStep(
                        run_id=run.id, position=position, name=name, status=StepStatus.SUCCEEDED
                    )
                )
    return [run.id for run in runs]


async def add_events(db: async_sessionmaker[Any], run_id: uuid.UUID, count: int) -> None:
    """Events 1..count of the run, a second apart."""
    async with db.begin() as session:
        session.add_all(
            RunEvent(
                run_id=run_id,
                seq=seq,
                type="STEP_PROGRESS",
                status=RunStatus.RUNNING,
                step="CHAT",
                percent=min(seq, 100),
                message=f"event {seq}",
                at=T0 + timedelta(seconds=seq),
            )
            for seq in range(1, count + 1)
        )
        run = await session.get(Run, run_id)
        assert run is not None
        run.last_seq = count


async def add_workspace_events(
    db: async_sessionmaker[Any],
    workspace_id: uuid.UUID,
    run_ids: list[uuid.UUID],
    actor_id: uuid.UUID,
) -> list[int]:
    """For each run (of the workspace itself, as `add_runs` makes them), in order, RUN_QUEUED
    then RUN_FINISHED (SUCCEEDED) by `actor_id`, a second apart; their cursors in order."""
    events = [
        WorkspaceEvent(
            workspace_id=workspace_id,
            type=kind,
            actor_id=actor_id,
            run_id=run_id,
            run_status=status,
            subject_type=SubjectType.WORKSPACE,
            subject_id=workspace_id,
            subject_label=f"run {i}",
            message=f"run {i} {status.value.lower()}",
            at=T0 + timedelta(seconds=2 * i + step),
        )
        for i, run_id in enumerate(run_ids)
        for step, (kind, status) in enumerate(
            (("RUN_QUEUED", RunStatus.QUEUED), ("RUN_FINISHED", RunStatus.SUCCEEDED))
        )
    ]
    async with db.begin() as session:
        name = await session.scalar(select(User.name).where(User.id == actor_id))
        for event in events:
            event.actor_name = name
        session.add_all(events)
        await session.flush()
        return [e.id for e in events]


async def add_members(
    db: async_sessionmaker[Any], workspace_id: uuid.UUID, count: int, *, prefix: str
) -> list[uuid.UUID]:
    """`count` VIEWERs who joined an hour apart after T0; their user ids in order of joining."""
    users = [
        User(
            id=uuid.uuid4(),
            email=f"{prefix}{i}@example.com",
            name=f"{prefix.title()} {i}",
            password_hash="not used",
        )
        for i in range(count)
    ]
    async with db.begin() as session:
        session.add_all(users)
        await session.flush()
        session.add_all(
            Membership(
                workspace_id=workspace_id,
                user_id=user.id,
                role=Role.VIEWER,
                joined_at=T0 + timedelta(hours=i),
            )
            for i, user in enumerate(users)
        )
    return [user.id for user in users]


async def add_collection(
    db: async_sessionmaker[Any], workspace_id: uuid.UUID, name: str, created_by: uuid.UUID
) -> uuid.UUID:
    async with db.begin() as session:
        collection = Collection(
            id=uuid.uuid4(),
            workspace_id=workspace_id,
            name=name,
            description=f"About {name}",
            created_by_id=created_by,
            created_at=T0,
            updated_at=T0,
        )
        session.add(collection)
    return collection.id


async def add_documents(
    db: async_sessionmaker[Any],
    workspace_id: uuid.UUID,
    collection_ids: list[uuid.UUID],
    owners: list[uuid.UUID],
    count: int,
    *,
    status: DocumentStatus = DocumentStatus.READY,
    tags: tuple[str, ...] = (),
    chunks: int = 0,
) -> list[uuid.UUID]:
    """`count` documents "doc i", created and updated i minutes after T0, in collection and by
    owner i modulo their number, each with `tags`, two entities and `chunks` chunks."""
    documents = [
        Document(
            id=uuid.uuid4(),
            workspace_id=workspace_id,
            collection_id=collection_ids[i % len(collection_ids)],
            owner_id=owners[i % len(owners)],
            title=f"doc {i:03d}",
            status=status,
            content_type="text/plain",
            original_filename=f"doc{i}.txt",
            size_bytes=1000 + i,
            content_sha256=f"{uuid.uuid4().hex}{uuid.uuid4().hex}",
            word_count=100 + i,
            language="en",
            summary=f"Summary {i}",
            key_points=[f"point {i}"],
            text="text",
            created_at=T0 + timedelta(minutes=i),
            updated_at=T0 + timedelta(minutes=i),
        )
        for i in range(count)
    ]
    async with db.begin() as session:
        session.add_all(documents)
        await session.flush()
        for document in documents:
            session.add_all(
                DocumentTag(document_id=document.id, position=n, tag=tag)
                for n, tag in enumerate(tags)
            )
            session.add_all(
                [
                    DocumentEntity(
                        document_id=document.id, position=0, name="Ada", kind=EntityKind.PERSON
                    ),
                    DocumentEntity(
                        document_id=document.id, position=1, name="Acme", kind=EntityKind.OTHER
                    ),
                ]
            )
            session.add_all(
                Chunk(
                    document_id=document.id,
                    workspace_id=workspace_id,
                    position=n,
                    text=f"chunk {n}",
                    heading_path=["H1", f"H2 {n}"],
                    char_start=n * 10,
                    char_end=n * 10 + 7,
                    token_count=3,
                )
                for n in range(chunks)
            )
    return [d.id for d in documents]


@dataclass(frozen=True)
class CorpusDocument:
    """A document made of a real section of the corpus (tests/support/corpus.page_sections)."""

    section: Section
    collection_id: uuid.UUID
    owner_id: uuid.UUID | None
    status: DocumentStatus = DocumentStatus.READY
    tags: tuple[str, ...] = ()
    entities: tuple[tuple[str, EntityKind], ...] = ()


async def add_corpus_documents(
    db: async_sessionmaker[Any], workspace_id: uuid.UUID, documents: list[CorpusDocument]
) -> list[uuid.UUID]:
    """One document per entry, created and updated i minutes after T0 in the order given: the
    section's heading as title, its text, its chunks (what processing would store: a QUEUED
    document has no text or chunks yet), the text's size, SHA-256 and word count, and for a
    READY one a summary (the first paragraph under the heading) and key points (the first line of
    each of the next three paragraphs, at most 200 characters). Their ids, in order."""
    rows = []
    for i, spec in enumerate(documents):
        section = spec.section
        processed = spec.status != DocumentStatus.QUEUED
        ready = spec.status == DocumentStatus.READY
        paragraphs = section.text.split("\n\n")[1:] or [section.text]
        rows.append(
            Document(
                id=uuid.uuid4(),
                workspace_id=workspace_id,
                collection_id=spec.collection_id,
                owner_id=spec.owner_id,
                title=section.title,
                status=spec.status,
                stage=DocumentStage.EMBEDDING if spec.status == DocumentStatus.PROCESSING else None,
                error_code="MODEL_UNAVAILABLE" if spec.status == DocumentStatus.FAILED else None,
                error_message="The model server did not answer."
                if spec.status == DocumentStatus.FAILED
                else None,
                content_type="text/html",
                original_filename=section.page,
                size_bytes=len(section.text.encode()),
                content_sha256=hashlib.sha256(section.text.encode()).hexdigest(),
                word_count=count_words(section.text) if processed else None,
                language="en" if processed else None,
                summary=paragraphs[0] if ready else None,
                key_points=[p.split("\n", 1)[0][:200] for p in paragraphs[1:4]] if ready else [],
                text=section.text if processed else None,
                created_at=T0 + timedelta(minutes=i),
                updated_at=T0 + timedelta(minutes=i),
            )
        )
    async with db.begin() as session:
        session.add_all(rows)
        await session.flush()
        for row, spec in zip(rows, documents, strict=True):
            session.add_all(
                DocumentTag(document_id=row.id, position=n, tag=tag)
                for n, tag in enumerate(spec.tags)
            )
            session.add_all(
                DocumentEntity(document_id=row.id, position=n, name=name, kind=kind)
                for n, (name, kind) in enumerate(spec.entities)
            )
            if spec.status == DocumentStatus.QUEUED:
                continue
            session.add_all(
                Chunk(
                    document_id=row.id,
                    workspace_id=workspace_id,
                    position=c.position,
                    text=c.text,
                    heading_path=list(c.heading_path),
                    char_start=c.char_start,
                    char_end=c.char_end,
                    token_count=c.token_count,
                )
                for c in spec.section.chunks
            )
    return [row.id for row in rows]
