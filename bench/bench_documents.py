"""Benchmark: the documents screens (DocumentsList, Dashboard, DocumentDetail) with 10,000
documents in the workspace, through the real HTTP API, beside the same rows read by one
hand-written SQL query, in the same run.

    uv run --frozen python bench/bench_documents.py [--full] [--documents N] [--requests N]
        [--db sqlite|postgres|both] [--concurrency 1,8] [--statements] [--profile N]
        [--plain-fields-cpu N] [--together-cpu N] [--parts-cpu N] [--no-timing]

A script, not a test: it prints figures and asserts nothing about time. By default a quick run
(2,000 documents, 80 timed requests per path and concurrency: what `make bench` does); `--full`
gives the recorded sizes (10,000 documents, 400 requests).

Data. The documents are sections of the Python 3.11 documentation installed by Debian
(python3.11-doc, /usr/share/doc/python3.11/html; tests/support/corpus.py): each page is read by
the app's own HTML extraction (services/extraction.parse) and split at its headings; a section
(a heading line and the text up to the next heading) is a document whose title is the heading
and whose text is the section. Its chunks are that text cut by services/chunking.chunk with a
token budget picked per section so that it gives about 10 chunks (16 to 200 tokens; at most 20
chunks are kept, the text cut where the 20th ends; sections that give fewer than 5 are left
out). The documents are those sections in a fixed shuffled order, repeated when there are fewer
sections than documents (a repeat goes to another collection: the same content twice in a
collection is refused by the schema). Everything is written with bulk INSERTs (SQLAlchemy core
executemany), not through the API: 8 members (documents owned by 5 of them), 8 collections, tags
(the page's folder, the page's name, and for a third of the documents one of "reviewed", "needs-
review", "archived"), statuses (88% READY, 6% FAILED, 3% PROCESSING, 3% QUEUED; QUEUED ones have
no text or chunks yet), one or two entities, a title edit on one document in ten, the fields'
recorded sources, each processed document's ingestion run with its six steps (its processing
history: SUCCEEDED for READY, FAILED at SUMMARIZING for FAILED), passage vectors and a document
vector for every READY document (random unit vectors of all-MiniLM-L6-v2's 384 dimensions: a
ranking costs the same whatever the values; the related documents tab ranks by them), 80
questions asked this week, and 63 model-check runs (3 RUNNING, held by a live lease of another
process so that the server's sweeper leaves them alone) with their 186 workspace events (the
Dashboard's activity feed shows the last 20). Then
PostgreSQL gets VACUUM ANALYZE (what autovacuum does after a bulk insert:
statistics, and the visibility map that index-only scans need); on SQLite the server runs ANALYZE
itself when it starts (ADR 0082).

Paths, for each screen:
  graphql   POST /graphql with the frontend's document (graphql/operations/*.graphql) to a real
            uvicorn process on loopback (the app as deployed, plus the route below);
  sql/http  POST /bench/sql/<screen> to the same server: ONE hand-written SQL statement (core
            text()) that returns the screen's rows, as JSON. DocumentDetail's related
            documents are the one part no SQL statement can rank on a PostgreSQL without
            pgvector: the hand-written path ranks them from the process's vector cache, as the
            app does, and reads their titles with a second statement;
  sql       the same statement from this process on its own engine (no HTTP).
The goals (reported, not asserted): graphql p95 under 100 ms at concurrency 8, and graphql at
most 2x sql/http (the same transport: what a hand-written endpoint would cost). After the
screens, each HTTP path's floor: a request that reads nothing (graphql: `{ __typename }` with
the token; sql/http: POST /bench/floor, the same route's body and token check without a
statement), so the summary can say how much of a screen's CPU is above its path's floor.

DocumentsList requests cycle through six filter-and-sort variants (25 rows each), DocumentDetail
through 200 READY documents (chunks: the first page of 25), Dashboard is one request (with its
activity feed since ADR 0084). Before timing, every variant's rows are checked equal on all
paths (ids, order, totals). Timed
requests run in rounds; within a round each path sends its batch at the concurrency, and the
paths take turns going first, so drift hits them alike.

Besides latency, each path's CPU per request where its work is done: the server process's CPU
time (psutil) while the path runs, over its requests (for `sql`, this process's). On a shared
machine it is steadier than latency, and one process at concurrency N answers in about N times
it.

`--statements` prints the SQL statements of each screen through the app in this process, with
the mean time from sending each to having its rows; `--profile N` a cProfile of N requests per
screen (own time by package, top functions), then the fields that took graphql-core's path
(a ResolveInfo each) per request; `--parts-cpu N` what each field of the Dashboard's
and DocumentDetail's root field costs within the operation (the CPU per request with and
without it, in process, N requests each in alternating rounds of 10); `--no-timing` seeds (and
profiles) only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `app`, `services`, ... importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from sqlalchemy import JSON, BigInteger, Integer, String, Uuid, bindparam, column, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession  # noqa: E402
from strawberry import relay  # noqa: E402

from app import migrate  # noqa: E402
from app.main import create_app  # noqa: E402
from base.auth.tokens import issue_access_token  # noqa: E402
from base.db.engine import build_engine  # noqa: E402
from base.db.types import UTCDateTime  # noqa: E402
from base.models.accounts import Membership, Role, User, Workspace  # noqa: E402
from base.models.chat import Conversation, Message, MessageRole  # noqa: E402
from base.models.documents import (  # noqa: E402
    Chunk,
    ChunkVector,
    Collection,
    Document,
    DocumentEntity,
    DocumentField,
    DocumentFieldEdit,
    DocumentFieldSource,
    DocumentStage,
    DocumentStatus,
    DocumentTag,
    DocumentVector,
    EntityKind,
    FieldSource,
)
from base.models.runs import Run, RunStatus, RunStep, StepStatus, SubjectType  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench.common import (  # noqa: E402
    CLIENTS,
    LoadClient,
    add_size_flag,
    apply_sizes,
    calls_run_alone,
    counted_executions,
    cpu_against,
    percentile,
    plain_fields_cpu,
    print_profile_stats,
)
from resolvers.documents.types import download_path  # noqa: E402
from resolvers.router import principal_from  # noqa: E402
from services import extraction, vector_index  # noqa: E402
from services.search import RELATED_DOCUMENTS  # noqa: E402
from services.workspaces import QUESTIONS_WINDOW  # noqa: E402
from tests.support.corpus import Section, corpus_sections  # noqa: E402
from tests.support.graphql import fields_through_graphql_core  # noqa: E402

BENCH_SECRET = "bench-documents-secret-0123456789abcdef"
OPERATIONS = ROOT / "graphql" / "operations"
SCREENS = ("DocumentsList", "Dashboard", "DocumentDetail")
PATHS = ("graphql", "sql/http", "sql")
GOAL_P95_MS = 100.0
GOAL_RATIO = 2.0
PAGE = 25
COLLECTIONS = (
    "Onboarding",
    "Platform",
    "Data",
    "Security",
    "Support",
    "Research",
    "Archive",
    "Drafts",
)
MEMBERS = (  # name, role, owns documents
    ("Olivia Owner", Role.OWNER, True),
    ("Adam Admin", Role.ADMIN, True),
    ("Erin Editor", Role.EDITOR, True),
    ("Eli Editor", Role.EDITOR, True),
    ("Emma Editor", Role.EDITOR, True),
    ("Eve Editor", Role.EDITOR, False),
    ("Victor Viewer", Role.VIEWER, False),
    ("Vera Viewer", Role.VIEWER, False),
)
STATUSES = (
    (DocumentStatus.READY, 0.88),
    (DocumentStatus.FAILED, 0.06),
    (DocumentStatus.PROCESSING, 0.03),
    (DocumentStatus.QUEUED, 0.03),
)
REVIEW_TAGS = ("reviewed", "needs-review", "archived")
TARGET_CHUNKS, MIN_CHUNKS, MAX_CHUNKS = 10, 5, 20
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


# --- seeding -------------------------------------------------------------------------------------


@dataclass
class Seeded:
    workspace_id: uuid.UUID
    owner_id: uuid.UUID
    token: str
    members: list[uuid.UUID]
    collections: list[uuid.UUID]
    ready_documents: list[uuid.UUID]
    sections: int
    counts: dict[str, int] = field(default_factory=dict)


def _first_sentences(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    cut = flat[:limit]
    stop = cut.rfind(". ")
    return cut[: stop + 1] if stop > 80 else cut


def _tags(section: Section, rng: random.Random) -> list[str]:
    folder, _, name = section.page.rpartition("/")
    tags = [folder or "general", name.removesuffix(".html")]
    if rng.random() < 1 / 3:
        tags.append(rng.choice(REVIEW_TAGS))
    return list(dict.fromkeys(tags))


async def _insert(engine: AsyncEngine, table: Any, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as connection:
        for start in range(0, len(rows), 2000):
            await connection.execute(table.insert(), rows[start : start + 2000])


async def seed(engine: AsyncEngine, documents: int, settings: Settings) -> Seeded:
    """The workspace, its members, collections, documents (tags, entities, edits, chunks) and
    runs, written with bulk INSERTs."""
    rng = random.Random(7)
    started = time.monotonic()
    sections = corpus_sections(
        max(documents // 2, 1),
        target_chunks=TARGET_CHUNKS,
        min_chunks=MIN_CHUNKS,
        max_chunks=MAX_CHUNKS,
    )
    copies = math.ceil(documents / len(sections))
    if copies > len(COLLECTIONS):
        raise RuntimeError(f"{len(sections)} sections are too few for {documents} documents")
    print(
        f"  corpus: {len(sections)} sections of {len({s.page for s in sections})} pages read in "
        f"{time.monotonic() - started:.1f} s; each used at most {copies} times"
    )
    started = time.monotonic()
    users = [
        {
            "id": uuid.uuid4(),
            "email": f"{name.split()[0].lower()}-{uuid.uuid4().hex[:6]}@example.com",
            "name": name,
            "password_hash": "not used",
            "created_at": NOW - timedelta(days=120),
            "updated_at": NOW - timedelta(days=120),
        }
        for name, _role, _owns in MEMBERS
    ]
    owner_id = users[0]["id"]
    workspace_id = uuid.uuid4()
    await _insert(engine, User.__table__, users)
    await _insert(
        engine,
        Workspace.__table__,
        [
            {
                "id": workspace_id,
                "name": "Python documentation desk",
                "created_by_id": owner_id,
                "created_at": NOW - timedelta(days=120),
                "updated_at": NOW - timedelta(days=120),
            }
        ],
    )
    await _insert(
        engine,
        Membership.__table__,
        [
            {
                "id": uuid.uuid4(),
                "workspace_id": workspace_id,
                "user_id": user["id"],
                "role": role,
                "joined_at": NOW - timedelta(days=120 - n),
            }
            for n, (user, (_name, role, _owns)) in enumerate(zip(users, MEMBERS, strict=True))
        ],
    )
    owners = [u["id"] for u, (_n, _r, owns) in zip(users, MEMBERS, strict=True) if owns]
    editors = [
        u["id"] for u, (_n, role, _o) in zip(users, MEMBERS, strict=True) if role == "EDITOR"
    ]
    collection_ids = [uuid.uuid4() for _ in COLLECTIONS]
    await _insert(
        engine,
        Collection.__table__,
        [
            {
                "id": collection_id,
                "workspace_id": workspace_id,
                "name": name,
                "description": f"Sections of the Python documentation kept by the {name} team.",
                "created_by_id": owner_id,
                "created_at": NOW - timedelta(days=100),
                "updated_at": NOW - timedelta(days=100),
            }
            for collection_id, name in zip(collection_ids, COLLECTIONS, strict=True)
        ],
    )
    document_rows, tag_rows, entity_rows, edit_rows, chunk_rows = [], [], [], [], []
    source_rows: list[dict[str, Any]] = []
    history = _History(workspace_id)
    vectors = _Vectors(workspace_id, settings.embed_model, rng)
    ready: list[uuid.UUID] = []
    statuses, weights = zip(*STATUSES, strict=True)
    for i in range(documents):
        s = i % len(sections)
        section = sections[s]
        document_id = uuid.uuid4()
        status = rng.choices(statuses, weights)[0]
        created = (
            NOW - timedelta(minutes=10 * (documents - i)) - timedelta(seconds=rng.randrange(600))
        )
        updated = created + timedelta(seconds=rng.randrange(3 * 86_400))
        processed = status != DocumentStatus.QUEUED
        document_rows.append(
            {
                "id": document_id,
                "workspace_id": workspace_id,
                # the n-th copy of a section goes to the next collection: one copy per collection
                "collection_id": collection_ids[(s + i // len(sections)) % len(COLLECTIONS)],
                "owner_id": owners[i % len(owners)],
                "title": section.title,
                "status": status,
                "stage": {
                    DocumentStatus.PROCESSING: DocumentStage.EMBEDDING,
                    DocumentStatus.FAILED: DocumentStage.SUMMARIZING,
                }.get(status),
                "error_code": "MODEL_UNAVAILABLE" if status == DocumentStatus.FAILED else None,
                "error_message": "The model server did not answer."
                if status == DocumentStatus.FAILED
                else None,
                "content_type": "text/html",
                "original_filename": section.page,
                "size_bytes": len(section.text.encode()),
                "content_sha256": hashlib.sha256(section.text.encode()).hexdigest(),
                "word_count": extraction.count_words(section.text) if processed else None,
                "language": "en" if processed else None,
                "summary": _first_sentences(section.chunks[0].text)
                if status == DocumentStatus.READY
                else None,
                "key_points": [" ".join(c.text.split())[:120] for c in section.chunks[1:4]]
                if status == DocumentStatus.READY
                else [],
                "text": section.text if processed else None,
                "created_at": created,
                "updated_at": updated,
            }
        )
        tag_rows += [
            {"document_id": document_id, "position": n, "tag": tag}
            for n, tag in enumerate(_tags(section, rng))
        ]
        entities = [("Python", EntityKind.PRODUCT)]
        if section.page.startswith("library/"):
            entities.append((Path(section.page).stem, EntityKind.PRODUCT))
        entity_rows += [
            {"document_id": document_id, "position": n, "name": name, "kind": kind}
            for n, (name, kind) in enumerate(entities)
        ]
        if i % 10 == 3:
            edit_rows.append(
                {
                    "document_id": document_id,
                    "field": DocumentField.TITLE,
                    "edited_by_id": editors[i % len(editors)],
                    "edited_at": updated,
                }
            )
        if processed:
            chunk_rows += [
                {
                    "id": uuid.uuid4(),
                    "document_id": document_id,
                    "workspace_id": workspace_id,
                    "position": c.position,
                    "text": c.text,
                    "heading_path": list(c.heading_path),
                    "char_start": c.char_start,
                    "char_end": c.char_end,
                    "token_count": c.token_count,
                }
                for c in section.chunks
            ]
        if status in (DocumentStatus.READY, DocumentStatus.FAILED):
            history.add(document_rows[-1], status)
            source_rows += [
                {"document_id": document_id, "field": f, "source": source}
                for f, source in _sources(status)
            ]
        if status == DocumentStatus.READY:
            ready.append(document_id)
            vectors.add(document_id, [row["id"] for row in chunk_rows[-len(section.chunks) :]])
    await _insert(engine, Document.__table__, document_rows)
    await _insert(engine, DocumentTag.__table__, tag_rows)
    await _insert(engine, DocumentEntity.__table__, entity_rows)
    await _insert(engine, DocumentFieldEdit.__table__, edit_rows)
    await _insert(engine, Chunk.__table__, chunk_rows)
    await _insert(engine, DocumentFieldSource.__table__, source_rows)
    await _insert(engine, Run.__table__, history.runs)
    await _insert(engine, RunStep.__table__, history.steps)
    await _insert(engine, ChunkVector.__table__, vectors.chunk_rows)
    await _insert(engine, DocumentVector.__table__, vectors.document_rows)
    await _seed_runs(engine, workspace_id, owner_id, users[0]["name"])
    questions = await _seed_questions(engine, workspace_id, [u["id"] for u in users])
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    print(
        f"  seeded {len(document_rows):,} documents, {len(chunk_rows):,} chunks, "
        f"{len(tag_rows):,} tags, {len(entity_rows):,} entities, {len(edit_rows):,} edit marks, "
        f"{len(history.runs):,} ingestion runs with {len(history.steps):,} steps, "
        f"{len(vectors.chunk_rows):,} passage vectors, {questions} questions "
        f"in {time.monotonic() - started:.1f} s"
    )
    token, _ = issue_access_token(
        owner_id, secret=settings.jwt_secret, now=datetime.now(UTC), ttl_seconds=86_400
    )
    by_status = {s.value: sum(1 for d in document_rows if d["status"] == s) for s in statuses}
    return Seeded(
        workspace_id=workspace_id,
        owner_id=owner_id,
        token=token,
        members=[u["id"] for u in users],
        collections=collection_ids,
        ready_documents=ready,
        sections=len(sections),
        counts=by_status,
    )


def _sources(status: DocumentStatus) -> list[tuple[DocumentField, FieldSource]]:
    """Who wrote each field, as processing leaves it: the title from the file; the model's
    summary, key points, tags and entities once the document is READY (a FAILED one stopped at
    SUMMARIZING)."""
    written = [(DocumentField.TITLE, FieldSource.FILE)]
    if status == DocumentStatus.READY:
        written += [(f, FieldSource.MODEL) for f in list(DocumentField)[1:]]
    return written


@dataclass
class _History:
    """Each processed document's ingestion run with its six steps (its processing history):
    SUCCEEDED for a READY document, FAILED at SUMMARIZING (the model down) for a FAILED one."""

    workspace_id: uuid.UUID
    runs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, document: dict[str, Any], status: DocumentStatus) -> None:
        run_id = uuid.uuid4()
        failed = status == DocumentStatus.FAILED
        started = document["created_at"] + timedelta(seconds=1)
        at = started
        for position, stage in enumerate(DocumentStage):
            ran = not failed or position <= list(DocumentStage).index(DocumentStage.SUMMARIZING)
            step_status = StepStatus.SUCCEEDED
            if failed and stage == DocumentStage.SUMMARIZING:
                step_status = StepStatus.FAILED
            elif not ran:
                step_status = StepStatus.PENDING
            took = timedelta(milliseconds=400 + 900 * position) if ran else timedelta(0)
            self.steps.append(
                {
                    "id": uuid.uuid4(),
                    "run_id": run_id,
                    "position": position,
                    "name": stage.value,
                    "status": step_status,
                    "attempts": 1 if ran else 0,
                    "started_at": at if ran else None,
                    "finished_at": at + took if ran else None,
                    "error_message": "The model server did not answer."
                    if step_status == StepStatus.FAILED
                    else None,
                }
            )
            at += took
        self.runs.append(
            {
                "id": run_id,
                "workspace_id": self.workspace_id,
                "workflow": "ingest_document",
                "subject_type": SubjectType.DOCUMENT,
                "subject_id": document["id"],
                "subject_label": document["title"],
                "triggered_by_id": document["owner_id"],
                "status": RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                "percent": 67 if failed else 100,
                "attempt": 1,
                "params": {},
                "input_summary": document["original_filename"],
                "output_summary": None if failed else "Ready: summary, key points and tags",
                "error_code": document["error_code"],
                "error_message": document["error_message"],
                "created_at": document["created_at"],
                "started_at": started,
                "finished_at": at,
                "executions": 1,
                "last_seq": 0,
            }
        )


@dataclass
class _Vectors:
    """A READY document's passage vectors and its own (the mean, ADR 0116), so that related
    documents are ranked as they are in use. Random unit vectors of the embedding model's
    dimension: what a ranking costs does not depend on the values."""

    workspace_id: uuid.UUID
    model: str
    rng: random.Random
    dimension: int = 384  # all-MiniLM-L6-v2, the default EMBED_MODEL
    chunk_rows: list[dict[str, Any]] = field(default_factory=list)
    document_rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, document_id: uuid.UUID, chunk_ids: list[uuid.UUID]) -> None:
        generator = np.random.default_rng(self.rng.getrandbits(64))
        matrix = generator.standard_normal((len(chunk_ids), self.dimension)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        common = {"workspace_id": self.workspace_id, "model": self.model}
        self.chunk_rows += [
            {
                "chunk_id": chunk_id,
                "document_id": document_id,
                "dimension": self.dimension,
                "vector": row.astype("<f4").tobytes(),
                **common,
            }
            for chunk_id, row in zip(chunk_ids, matrix, strict=True)
        ]
        mean = matrix.mean(axis=0)
        self.document_rows.append(
            {
                "document_id": document_id,
                "dimension": self.dimension,
                "vector": (mean / np.linalg.norm(mean)).astype("<f4").tobytes(),
                **common,
            }
        )


async def _seed_questions(
    engine: AsyncEngine, workspace_id: uuid.UUID, members: list[uuid.UUID]
) -> int:
    """Questions asked this week (the Dashboard counts the last 7 days'): 40 conversations of
    two questions each, hours apart, by the members in turn."""
    now = datetime.now(UTC)
    conversations, messages = [], []
    for n in range(40):
        conversation_id = uuid.uuid4()
        asked = now - timedelta(hours=2 * n + 1)
        conversations.append(
            {
                "id": conversation_id,
                "workspace_id": workspace_id,
                "owner_id": members[n % len(members)],
                "title": f"Question {n + 1} about the standard library",
                "message_count": 2,
                "last_seq": 2,
                "created_at": asked,
                "updated_at": asked,
                "last_message_at": asked + timedelta(minutes=1),
            }
        )
        messages += [
            {
                "id": uuid.uuid4(),
                "conversation_id": conversation_id,
                "workspace_id": workspace_id,
                "seq": seq,
                "role": MessageRole.USER,
                "text": "How do I read a file line by line?",
                "created_at": asked + timedelta(minutes=seq - 1),
                "scope": {},
                "passages": [],
            }
            for seq in (1, 2)
        ]
    await _insert(engine, Conversation.__table__, conversations)
    await _insert(engine, Message.__table__, messages)
    return len(messages)


async def _seed_runs(
    engine: AsyncEngine, workspace_id: uuid.UUID, user_id: uuid.UUID, user_name: str
) -> None:
    from base.models.runs import WorkspaceEvent

    rows = []
    # The active runs are held by a worker of another process whose lease is live for a day, so
    # that no executor of the benchmark's server takes them over.
    lease = datetime.now(UTC) + timedelta(days=1)
    for n in range(63):
        active = n >= 60
        status = RunStatus.RUNNING if active else RunStatus.SUCCEEDED
        rows.append(
            {
                "id": uuid.uuid4(),
                "workspace_id": workspace_id,
                "workflow": "check_models",
                "subject_type": "WORKSPACE",
                "subject_id": workspace_id,
                "subject_label": "Python documentation desk",
                "triggered_by_id": user_id,
                "status": status,
                "percent": 40 if active else 100,
                "current_step": "CHAT" if active else None,
                "lease_owner": "worker-elsewhere" if active else None,
                "lease_expires_at": lease if active else None,
                "started_at": NOW - timedelta(hours=63 - n),
                "finished_at": None if active else NOW - timedelta(hours=63 - n, minutes=-1),
                "attempt": 1,
                "params": {},
                "input_summary": "",
                "created_at": NOW - timedelta(hours=63 - n),
                "executions": 1,
                "last_seq": 0,
            }
        )
    await _insert(engine, Run.__table__, rows)
    # The activity feed: each run's stored events (queued, started and, unless active, finished),
    # in the order they happened.
    events = []
    for row in rows:
        steps = [("RUN_QUEUED", RunStatus.QUEUED), ("RUN_STARTED", RunStatus.RUNNING)]
        if row["status"] is RunStatus.SUCCEEDED:
            steps.append(("RUN_FINISHED", RunStatus.SUCCEEDED))
        for offset, (kind, status) in enumerate(steps):
            events.append(
                {
                    "workspace_id": workspace_id,
                    "type": kind,
                    "actor_id": user_id,
                    "actor_name": user_name,
                    "run_id": row["id"],
                    "run_status": status,
                    "subject_type": row["subject_type"],
                    "subject_id": row["subject_id"],
                    "subject_label": row["subject_label"],
                    "message": f"Model check {status.value.lower()}",
                    "at": row["created_at"] + timedelta(seconds=offset),
                }
            )
    await _insert(engine, WorkspaceEvent.__table__, events)


# --- the hand-written SQL -----------------------------------------------------------------------


def _json_list(
    dialect: str,
    inner: str,
    order: str,
    keys: list[str] | None,
    limit: int | None = None,
    json_keys: frozenset[str] = frozenset(),
) -> str:
    """A JSON array of the rows of `inner` (a SELECT with aliased columns) in `order` (alias
    names), at most `limit`: objects of `keys`, or the single column `value` when keys is None.
    `json_keys` hold JSON already (a nested list), which SQLite would otherwise quote as text."""
    bounded = f"{inner} ORDER BY {order}" + (f" LIMIT {limit}" if limit is not None else "")
    if dialect == "postgresql":
        item = (
            "x.value"
            if keys is None
            else "json_build_object(" + ", ".join(f"'{k}', x.{k}" for k in keys) + ")"
        )
        ordered = ", ".join(f"x.{part.strip()}" for part in order.split(","))
        return (
            f"(SELECT coalesce(json_agg({item} ORDER BY {ordered}), '[]'::json) FROM ({bounded}) x)"
        )
    item = (
        "x.value"
        if keys is None
        else "json_object("
        + ", ".join(f"'{k}', json(x.{k})" if k in json_keys else f"'{k}', x.{k}" for k in keys)
        + ")"
    )
    # SQLite 3.40 has no ORDER BY inside an aggregate: it aggregates an ordered subquery in order.
    return f"(SELECT coalesce(json_group_array({item}), '[]') FROM ({bounded}) x)"


def _json(dialect: str, expression: str) -> str:
    """A JSON column inside a JSON object (SQLite keeps JSON as text)."""
    return expression if dialect == "postgresql" else f"json({expression})"


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(relay.GlobalID.from_id(value).node_id)


def _gid(type_name: str, value: Any) -> str | None:
    if value is None:
        return None
    return str(relay.GlobalID(type_name, str(uuid.UUID(str(value)))))


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


_SORTS = {"UPDATED_AT": "updated_at", "CREATED_AT": "created_at", "TITLE": "title"}
_LIST_COLUMNS = (
    column("viewer_role", String),
    column("total", BigInteger),
    column("id", Uuid),
    column("title", String),
    column("status", String),
    column("stage", String),
    column("size_bytes", BigInteger),
    column("word_count", Integer),
    column("updated_at", UTCDateTime),
    column("collection_id", Uuid),
    column("collection_name", String),
    column("owner_id", Uuid),
    column("owner_name", String),
    column("tags", JSON),
)


def list_statement(dialect: str, variables: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The DocumentsList screen: the caller's role, the filtered total and one page of rows with
    their collection, owner and tags."""
    filter_ = variables.get("filter") or {}
    sort = variables.get("sort") or {}
    direction = "ASC" if sort.get("direction") == "ASC" else "DESC"
    key = _SORTS[sort.get("field", "UPDATED_AT")]
    params: dict[str, Any] = {"limit": (variables.get("first") or PAGE) + 1}
    where = ""
    if "collectionId" in filter_:
        where += " AND d.collection_id = :collection"
        params["collection"] = _uuid(filter_["collectionId"])
    if "status" in filter_:
        where += " AND d.status = :status"
        params["status"] = filter_["status"]
    if "ownerId" in filter_:
        where += " AND d.owner_id = :owner"
        params["owner"] = _uuid(filter_["ownerId"])
    if "tag" in filter_:
        where += (
            " AND EXISTS (SELECT 1 FROM document_tags t WHERE t.document_id = d.id"
            " AND t.tag = :tag)"
        )
        params["tag"] = filter_["tag"]
    if "titleContains" in filter_:
        where += " AND lower(d.title) LIKE :needle ESCAPE '\\'"
        needle = filter_["titleContains"].strip().lower()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["needle"] = f"%{escaped}%"
    tags = _json_list(
        dialect,
        "SELECT t.tag AS value, t.position AS position FROM document_tags t "
        "WHERE t.document_id = p.id",
        "position",
        None,
    )
    # The filter twice (count and page), so that each is planned on its own and the page can
    # walk the sort's index (a CTE used twice would be materialised whole first).
    sql = f"""
        SELECT m.role AS viewer_role,
               (SELECT count(*) FROM documents d WHERE d.workspace_id = :ws{where}) AS total,
               p.id, p.title, p.status, p.stage, p.size_bytes, p.word_count, p.updated_at,
               c.id AS collection_id, c.name AS collection_name,
               u.id AS owner_id, u.name AS owner_name, {tags} AS tags
        FROM (
            SELECT d.id, d.title, d.status, d.stage, d.collection_id, d.owner_id, d.size_bytes,
                   d.word_count, d.created_at, d.updated_at
            FROM documents d
            WHERE d.workspace_id = :ws{where}
            ORDER BY d.{key} {direction}, d.id {direction}
            LIMIT :limit
        ) p
        JOIN memberships m ON m.workspace_id = :ws AND m.user_id = :user
        JOIN collections c ON c.id = p.collection_id
        LEFT JOIN users u ON u.id = p.owner_id
        ORDER BY p.{key} {direction}, p.id {direction}
    """
    statement = (
        text(sql)
        .bindparams(bindparam("ws", type_=Uuid), bindparam("user", type_=Uuid))
        .bindparams(*(bindparam(k, type_=Uuid) for k in ("collection", "owner") if k in params))
        .columns(*_LIST_COLUMNS)
    )
    params["ws"] = _uuid(variables["workspaceId"])
    return statement, params


def _initials(name: str) -> str:
    from resolvers.accounts.types import initials_of

    return initials_of(name)


async def sql_documents_list(
    engine: AsyncEngine, _settings: Settings, user_id: uuid.UUID, variables: dict[str, Any]
) -> dict[str, Any]:
    statement, params = list_statement(engine.dialect.name, variables)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement, {**params, "user": user_id})).all()
    first = params["limit"] - 1
    return {
        "viewerRole": rows[0].viewer_role if rows else None,
        "totalCount": rows[0].total if rows else 0,
        "hasNextPage": len(rows) > first,
        "rows": [
            {
                "id": _gid("Document", r.id),
                "title": r.title,
                "status": r.status,
                "stage": r.stage,
                "collection": {
                    "id": _gid("Collection", r.collection_id),
                    "name": r.collection_name,
                },
                "tags": _loads(r.tags),
                "owner": None
                if r.owner_id is None
                else {
                    "id": _gid("User", r.owner_id),
                    "name": r.owner_name,
                    "initials": _initials(r.owner_name),
                },
                "sizeBytes": r.size_bytes,
                "wordCount": r.word_count,
                "updatedAt": _iso(r.updated_at),
            }
            for r in rows[:first]
        ],
    }


_DASHBOARD_COLUMNS = (
    column("id", Uuid),
    column("name", String),
    column("queued", BigInteger),
    column("processing", BigInteger),
    column("ready", BigInteger),
    column("failed", BigInteger),
    column("total", BigInteger),
    column("collection_count", BigInteger),
    column("questions", BigInteger),
    column("recent", JSON),
    column("active_total", BigInteger),
    column("active", JSON),
    column("activity", JSON),
)


def dashboard_statement(dialect: str) -> Any:
    """The Dashboard screen: counts by status, collections, questions asked in the last 7
    days, the 5 latest documents with their collection, the active runs, the last 20 workspace
    events (their actor as named then)."""
    recent = _json_list(
        dialect,
        "SELECT d.id AS id, d.title AS title, d.status AS status, d.updated_at AS updated_at, "
        "c.id AS collection_id, c.name AS collection_name FROM documents d "
        "JOIN collections c ON c.id = d.collection_id WHERE d.workspace_id = w.id",
        "updated_at DESC, id DESC",
        ["id", "title", "status", "updated_at", "collection_id", "collection_name"],
        limit=5,
    )
    active = _json_list(
        dialect,
        "SELECT r.id AS id, r.workflow AS workflow, r.status AS status, r.percent AS percent, "
        "r.current_step AS current_step, r.subject_type AS subject_type, "
        "r.subject_label AS subject_label, r.created_at AS created_at FROM runs r "
        "WHERE r.workspace_id = w.id AND r.status IN ('QUEUED', 'RUNNING')",
        "created_at DESC, id DESC",
        ["id", "workflow", "status", "percent", "current_step", "subject_type", "subject_label"],
        limit=20,
    )
    activity = _json_list(
        dialect,
        "SELECT e.id AS cursor, e.type AS type, e.message AS message, e.at AS at, "
        "e.run_status AS run_status, e.run_id AS run_id, e.actor_name AS actor_name, "
        "e.subject_type AS subject_type, e.subject_id AS subject_id, "
        "e.subject_label AS subject_label FROM workspace_events e WHERE e.workspace_id = w.id",
        "cursor DESC",
        [
            "cursor",
            "type",
            "message",
            "at",
            "run_status",
            "run_id",
            "actor_name",
            "subject_type",
            "subject_id",
            "subject_label",
        ],
        limit=20,
    )
    sql = f"""
        WITH counts AS (
            SELECT sum(CASE WHEN status = 'QUEUED' THEN 1 ELSE 0 END) AS queued,
                   sum(CASE WHEN status = 'PROCESSING' THEN 1 ELSE 0 END) AS processing,
                   sum(CASE WHEN status = 'READY' THEN 1 ELSE 0 END) AS ready,
                   sum(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END) AS failed,
                   count(*) AS total
            FROM documents WHERE workspace_id = :ws
        )
        SELECT w.id, w.name, coalesce(k.queued, 0) AS queued,
               coalesce(k.processing, 0) AS processing, coalesce(k.ready, 0) AS ready,
               coalesce(k.failed, 0) AS failed, k.total,
               (SELECT count(*) FROM collections WHERE workspace_id = w.id) AS collection_count,
               (SELECT count(*) FROM messages WHERE workspace_id = w.id AND role = 'USER'
                  AND created_at >= :since) AS questions,
               {recent} AS recent,
               (SELECT count(*) FROM runs WHERE workspace_id = w.id
                  AND status IN ('QUEUED', 'RUNNING')) AS active_total,
               {active} AS active,
               {activity} AS activity
        FROM workspaces w
        JOIN memberships m ON m.workspace_id = w.id AND m.user_id = :user
        CROSS JOIN counts k
        WHERE w.id = :ws
    """
    return (
        text(sql)
        .bindparams(
            bindparam("ws", type_=Uuid),
            bindparam("user", type_=Uuid),
            bindparam("since", type_=UTCDateTime),
        )
        .columns(*_DASHBOARD_COLUMNS)
    )


async def sql_dashboard(
    engine: AsyncEngine, _settings: Settings, user_id: uuid.UUID, variables: dict[str, Any]
) -> dict[str, Any]:
    statement = dashboard_statement(engine.dialect.name)
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                statement,
                {
                    "ws": _uuid(variables["workspaceId"]),
                    "user": user_id,
                    "since": datetime.now(UTC) - QUESTIONS_WINDOW,
                },
            )
        ).one()
    return {
        "id": _gid("Workspace", row.id),
        "name": row.name,
        "documentCounts": {
            "queued": row.queued,
            "processing": row.processing,
            "ready": row.ready,
            "failed": row.failed,
            "total": row.total,
        },
        "collectionCount": row.collection_count,
        "questionsAskedLast7Days": row.questions,
        "recentDocuments": [
            {
                "id": _gid("Document", d["id"]),
                "title": d["title"],
                "status": d["status"],
                "updatedAt": d["updated_at"],
                "collection": {
                    "id": _gid("Collection", d["collection_id"]),
                    "name": d["collection_name"],
                },
            }
            for d in _loads(row.recent)
        ],
        "activeRuns": {
            "totalCount": row.active_total,
            "edges": [
                {
                    "node": {
                        "id": _gid("Run", r["id"]),
                        "workflow": r["workflow"],
                        "status": r["status"],
                        "percent": r["percent"],
                        "currentStep": r["current_step"],
                        "subject": {"type": r["subject_type"], "label": r["subject_label"]},
                    }
                }
                for r in _loads(row.active)
            ],
        },
        "activity": [
            {
                "cursor": str(e["cursor"]),
                "type": e["type"],
                "message": e["message"],
                "at": e["at"],
                "runStatus": e["run_status"],
                "runId": _gid("Run", e["run_id"]),
                "actorName": e["actor_name"],
                "subject": {
                    "type": e["subject_type"],
                    "id": _gid(e["subject_type"].title(), e["subject_id"]),
                    "label": e["subject_label"],
                }
                if e["subject_type"]
                else None,
            }
            for e in _loads(row.activity)
        ],
    }


_DETAIL_COLUMNS = (
    column("id", Uuid),
    column("title", String),
    column("status", String),
    column("stage", String),
    column("error_code", String),
    column("error_message", String),
    column("created_at", UTCDateTime),
    column("updated_at", UTCDateTime),
    column("size_bytes", BigInteger),
    column("word_count", Integer),
    column("language", String),
    column("content_type", String),
    column("original_filename", String),
    column("summary", String),
    column("key_points", JSON),
    column("collection_id", Uuid),
    column("collection_name", String),
    column("owner_id", Uuid),
    column("owner_name", String),
    column("tags", JSON),
    column("entities", JSON),
    column("edits", JSON),
    column("chunk_total", BigInteger),
    column("chunks", JSON),
    column("workspace_id", Uuid),
    column("sources", JSON),
    column("run_total", BigInteger),
    column("runs", JSON),
)
_RUN_KEYS = [
    "id",
    "workflow",
    "status",
    "attempt",
    "retry_of_id",
    "triggered_by_id",
    "triggered_by_name",
    "created_at",
    "started_at",
    "finished_at",
    "output_summary",
    "error_code",
    "error_message",
    "steps",
]
_STEP_KEYS = ["position", "name", "status", "started_at", "finished_at", "attempts", "error"]


def detail_statement(dialect: str, chunks_first: int, runs_first: int) -> Any:
    """The DocumentDetail screen: the document, its collection and owner, tags, entities, edit
    marks (with the editor), the fields' recorded sources, the first page of its chunks and of
    its runs (each with its steps), with their totals."""
    tags = _json_list(
        dialect,
        "SELECT t.tag AS value, t.position AS position FROM document_tags t "
        "WHERE t.document_id = d.id",
        "position",
        None,
    )
    entities = _json_list(
        dialect,
        "SELECT e.name AS name, e.kind AS kind, e.position AS position "
        "FROM document_entities e WHERE e.document_id = d.id",
        "position",
        ["name", "kind"],
    )
    edits = _json_list(
        dialect,
        "SELECT f.field AS field, f.edited_at AS edited_at, u2.id AS editor_id, "
        "u2.name AS editor_name FROM document_field_edits f "
        "LEFT JOIN users u2 ON u2.id = f.edited_by_id WHERE f.document_id = d.id",
        "field",
        ["field", "edited_at", "editor_id", "editor_name"],
    )
    chunks = _json_list(
        dialect,
        f"SELECT k.position AS position, k.text AS text, "
        f"{_json(dialect, 'k.heading_path')} AS heading_path, k.char_start AS char_start, "
        f"k.char_end AS char_end, k.token_count AS token_count FROM chunks k "
        f"WHERE k.document_id = d.id",
        "position",
        ["position", "text", "heading_path", "char_start", "char_end", "token_count"],
        limit=chunks_first + 1,
    )
    sources = _json_list(
        dialect,
        "SELECT s.field AS field, s.source AS source FROM document_field_sources s "
        "WHERE s.document_id = d.id",
        "field",
        ["field", "source"],
    )
    steps = _json_list(
        dialect,
        "SELECT st.position AS position, st.name AS name, st.status AS status, "
        "st.started_at AS started_at, st.finished_at AS finished_at, st.attempts AS attempts, "
        "st.error_message AS error FROM run_steps st WHERE st.run_id = r.id",
        "position",
        _STEP_KEYS,
    )
    runs = _json_list(
        dialect,
        "SELECT r.id AS id, r.workflow AS workflow, r.status AS status, r.attempt AS attempt, "
        "r.retry_of_id AS retry_of_id, r.triggered_by_id AS triggered_by_id, "
        "tu.name AS triggered_by_name, r.created_at AS created_at, r.started_at AS started_at, "
        "r.finished_at AS finished_at, r.output_summary AS output_summary, "
        "r.error_code AS error_code, r.error_message AS error_message, "
        f"{steps} AS steps FROM runs r LEFT JOIN users tu ON tu.id = r.triggered_by_id "
        "WHERE r.subject_type = 'DOCUMENT' AND r.subject_id = d.id",
        "created_at DESC, id DESC",
        _RUN_KEYS,
        limit=runs_first + 1,
        json_keys=frozenset({"steps"}),
    )
    sql = f"""
        SELECT d.id, d.title, d.status, d.stage, d.error_code, d.error_message, d.created_at,
               d.updated_at, d.size_bytes, d.word_count, d.language, d.content_type,
               d.original_filename, d.summary, d.key_points,
               c.id AS collection_id, c.name AS collection_name,
               u.id AS owner_id, u.name AS owner_name,
               {tags} AS tags, {entities} AS entities, {edits} AS edits,
               (SELECT count(*) FROM chunks k WHERE k.document_id = d.id) AS chunk_total,
               {chunks} AS chunks, d.workspace_id, {sources} AS sources,
               (SELECT count(*) FROM runs r WHERE r.subject_type = 'DOCUMENT'
                  AND r.subject_id = d.id) AS run_total,
               {runs} AS runs
        FROM documents d
        JOIN collections c ON c.id = d.collection_id
        LEFT JOIN users u ON u.id = d.owner_id
        WHERE d.id = :id
          AND d.workspace_id IN (SELECT workspace_id FROM memberships WHERE user_id = :user)
    """
    return (
        text(sql)
        .bindparams(bindparam("id", type_=Uuid), bindparam("user", type_=Uuid))
        .columns(*_DETAIL_COLUMNS)
    )


_RELATED_ROWS = (
    text(
        "SELECT d.id, d.title, c.id AS collection_id, c.name AS collection_name FROM documents d "
        "JOIN collections c ON c.id = d.collection_id WHERE d.id IN :ids AND d.workspace_id = :ws"
    )
    .bindparams(bindparam("ids", type_=Uuid, expanding=True), bindparam("ws", type_=Uuid))
    .columns(
        column("id", Uuid),
        column("title", String),
        column("collection_id", Uuid),
        column("collection_name", String),
    )
)


async def _related(
    session: AsyncSession, settings: Settings, workspace_id: uuid.UUID, document_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The related documents tab by hand: no SQL ranks by cosine on a PostgreSQL without
    pgvector, so the rows come from the process's vector cache, as the app's come, and the
    titles from one statement."""
    cache = vector_index.vector_cache(settings.search_vector_cache_mb * 1024 * 1024)
    vectors, _state = await cache.vectors(
        session, settings.database_url, workspace_id, settings.embed_model
    )
    best = (
        None
        if vectors is None
        else await vector_index.nearest_documents(vectors, document_id, RELATED_DOCUMENTS)
    )
    if not best:
        return []
    rows = {
        r.id: r
        for r in await session.execute(
            _RELATED_ROWS, {"ids": [d for d, _ in best], "ws": workspace_id}
        )
    }
    return [
        {
            "score": score,
            "document": {
                "id": _gid("Document", d),
                "title": rows[d].title,
                "collection": {
                    "id": _gid("Collection", rows[d].collection_id),
                    "name": rows[d].collection_name,
                },
            },
        }
        for d, score in best
        if d in rows
    ]


def _duration_ms(started: str | None, finished: str | None) -> int | None:
    if started is None or finished is None:
        return None
    took = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
    return round(took.total_seconds() * 1000)


def _field_sources(sources: list[dict[str, Any]], edited: set[str]) -> list[dict[str, str]]:
    """Who wrote each field, in the order of DocumentField: a person where edited."""
    recorded = {s["field"]: s["source"] for s in sources}
    return [
        {"field": f.value, "source": "PERSON" if f.value in edited else recorded[f.value]}
        for f in DocumentField
        if f.value in edited or f.value in recorded
    ]


def _run(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _gid("Run", r["id"]),
        "workflow": r["workflow"],
        "status": r["status"],
        "attempt": r["attempt"],
        "retryOf": None if r["retry_of_id"] is None else {"id": _gid("Run", r["retry_of_id"])},
        "triggeredBy": None
        if r["triggered_by_id"] is None
        else {"id": _gid("User", r["triggered_by_id"]), "name": r["triggered_by_name"]},
        "createdAt": r["created_at"],
        "startedAt": r["started_at"],
        "finishedAt": r["finished_at"],
        "durationMs": _duration_ms(r["started_at"], r["finished_at"]),
        "outputSummary": r["output_summary"],
        "errorCode": r["error_code"],
        "errorMessage": r["error_message"],
        "steps": [
            {
                "position": st["position"],
                "name": st["name"],
                "status": st["status"],
                "startedAt": st["started_at"],
                "finishedAt": st["finished_at"],
                "durationMs": _duration_ms(st["started_at"], st["finished_at"]),
                "attempts": st["attempts"],
                "error": st["error"],
            }
            for st in r["steps"]
        ],
    }


async def sql_document_detail(
    engine: AsyncEngine, settings: Settings, user_id: uuid.UUID, variables: dict[str, Any]
) -> dict[str, Any]:
    first = variables.get("chunksFirst") or PAGE
    runs_first = variables.get("runsFirst") or PAGE
    statement = detail_statement(engine.dialect.name, first, runs_first)
    async with AsyncSession(engine) as session:
        row = (
            await session.execute(statement, {"id": _uuid(variables["id"]), "user": user_id})
        ).one_or_none()
        if row is None:
            return {"document": None}
        related = await _related(session, settings, row.workspace_id, row.id)
    chunks = _loads(row.chunks)
    runs = _loads(row.runs)
    edits = _loads(row.edits)
    return {
        "id": _gid("Document", row.id),
        "title": row.title,
        "status": row.status,
        "stage": row.stage,
        "errorCode": row.error_code,
        "errorMessage": row.error_message,
        "collection": {"id": _gid("Collection", row.collection_id), "name": row.collection_name},
        "owner": None
        if row.owner_id is None
        else {
            "id": _gid("User", row.owner_id),
            "name": row.owner_name,
            "initials": _initials(row.owner_name),
        },
        "createdAt": _iso(row.created_at),
        "updatedAt": _iso(row.updated_at),
        "sizeBytes": row.size_bytes,
        "wordCount": row.word_count,
        "language": row.language,
        "contentType": row.content_type,
        "originalFilename": row.original_filename,
        "summary": row.summary,
        "keyPoints": row.key_points,
        "tags": _loads(row.tags),
        "entities": _loads(row.entities),
        "edits": [
            {
                "field": e["field"],
                "editedAt": e["edited_at"],
                "editedBy": None
                if e["editor_id"] is None
                else {"id": _gid("User", e["editor_id"]), "name": e["editor_name"]},
            }
            for e in edits
        ],
        "fieldSources": _field_sources(_loads(row.sources), {e["field"] for e in edits}),
        "chunks": {
            "totalCount": row.chunk_total,
            "hasNextPage": len(chunks) > first,
            "edges": [
                {
                    "position": k["position"],
                    "text": k["text"],
                    "headingPath": k["heading_path"],
                    "charStart": k["char_start"],
                    "charEnd": k["char_end"],
                    "tokenCount": k["token_count"],
                }
                for k in chunks[:first]
            ],
        },
        "downloadUrl": download_path(str(relay.GlobalID("Document", str(row.id)))),
        "runs": {
            "totalCount": row.run_total,
            "hasNextPage": len(runs) > runs_first,
            "edges": [{"node": _run(r)} for r in runs[:runs_first]],
        },
        "relatedDocuments": related,
    }


HAND_WRITTEN: dict[
    str, Callable[[AsyncEngine, Settings, uuid.UUID, dict[str, Any]], Awaitable[Any]]
] = {
    "DocumentsList": sql_documents_list,
    "Dashboard": sql_dashboard,
    "DocumentDetail": sql_document_detail,
}


def create_bench_app() -> FastAPI:
    """The real app (settings from the environment) plus POST /bench/sql/<screen>, which answers
    a screen's variables with its hand-written statement."""
    app = create_app(Settings())

    @app.post("/bench/sql/{screen}", include_in_schema=False)
    async def sql_screen(screen: str, request: Request) -> JSONResponse:
        body = await request.json()  # parsed like the GraphQL body, for a like-for-like request
        principal = principal_from(
            request.headers.get("authorization"),
            secret=app.state.deps.settings.jwt_secret,
            client=None,
        )
        data = await HAND_WRITTEN[screen](
            app.state.engine,
            app.state.settings,
            principal.require_user(),
            body.get("variables") or {},
        )
        return JSONResponse({"data": data})

    @app.post("/bench/floor", include_in_schema=False)
    async def floor(request: Request) -> JSONResponse:
        """The hand-written route with nothing to read: its body parsed and its token checked."""
        await request.json()
        principal_from(
            request.headers.get("authorization"),
            secret=app.state.deps.settings.jwt_secret,
            client=None,
        ).require_user()
        return JSONResponse({"data": {}})

    return app


# --- the same rows on every path -----------------------------------------------------------------


def api_key(screen: str, data: dict[str, Any]) -> Any:
    """What the rows of a GraphQL answer are, to compare with the hand-written statement's."""
    if screen == "DocumentsList":
        documents = data["workspace"]["documents"]
        return (
            data["workspace"]["viewerRole"],
            documents["totalCount"],
            documents["pageInfo"]["hasNextPage"],
            [
                (
                    e["node"]["id"],
                    e["node"]["title"],
                    e["node"]["status"],
                    e["node"]["collection"]["name"],
                    e["node"]["owner"]["name"] if e["node"]["owner"] else None,
                    e["node"]["tags"],
                )
                for e in documents["edges"]
            ],
        )
    if screen == "Dashboard":
        workspace = data["workspace"]
        return (
            workspace["documentCounts"],
            workspace["collectionCount"],
            workspace["questionsAskedLast7Days"],
            [(d["id"], d["title"], d["collection"]["name"]) for d in workspace["recentDocuments"]],
            workspace["activeRuns"]["totalCount"],
            [e["node"]["id"] for e in workspace["activeRuns"]["edges"]],
            [
                (e["cursor"], e["type"], e["actorName"], e["runId"], e["subject"])
                for e in workspace["activity"]
            ],
        )
    document = data["document"]
    return (
        document["id"],
        document["title"],
        document["collection"]["name"],
        document["tags"],
        [e["name"] for e in document["entities"]],
        [(e["field"], e["editedBy"]["name"]) for e in document["edits"]],
        document["chunks"]["totalCount"],
        [(c["node"]["position"], c["node"]["text"]) for c in document["chunks"]["edges"]],
        document["downloadUrl"],
        [(f["field"], f["source"]) for f in document["fieldSources"]],
        _runs_key(document["runs"]["totalCount"], [e["node"] for e in document["runs"]["edges"]]),
        [(r["document"]["id"], round(r["score"], 4)) for r in document["relatedDocuments"]],
    )


def _runs_key(total: int, runs: list[dict[str, Any]]) -> Any:
    return (
        total,
        [
            (
                r["id"],
                r["status"],
                r["durationMs"],
                r["triggeredBy"]["name"] if r["triggeredBy"] else None,
                [(st["name"], st["status"], st["durationMs"], st["error"]) for st in r["steps"]],
            )
            for r in runs
        ],
    )


def sql_key(screen: str, data: dict[str, Any]) -> Any:
    if screen == "DocumentsList":
        return (
            data["viewerRole"],
            data["totalCount"],
            data["hasNextPage"],
            [
                (
                    r["id"],
                    r["title"],
                    r["status"],
                    r["collection"]["name"],
                    r["owner"]["name"] if r["owner"] else None,
                    r["tags"],
                )
                for r in data["rows"]
            ],
        )
    if screen == "Dashboard":
        return (
            data["documentCounts"],
            data["collectionCount"],
            data["questionsAskedLast7Days"],
            [(d["id"], d["title"], d["collection"]["name"]) for d in data["recentDocuments"]],
            data["activeRuns"]["totalCount"],
            [e["node"]["id"] for e in data["activeRuns"]["edges"]],
            [
                (e["cursor"], e["type"], e["actorName"], e["runId"], e["subject"])
                for e in data["activity"]
            ],
        )
    return (
        data["id"],
        data["title"],
        data["collection"]["name"],
        data["tags"],
        [e["name"] for e in data["entities"]],
        [(e["field"], e["editedBy"]["name"]) for e in data["edits"]],
        data["chunks"]["totalCount"],
        [(c["position"], c["text"]) for c in data["chunks"]["edges"]],
        data["downloadUrl"],
        [(f["field"], f["source"]) for f in data["fieldSources"]],
        _runs_key(data["runs"]["totalCount"], [e["node"] for e in data["runs"]["edges"]]),
        [(r["document"]["id"], round(r["score"], 4)) for r in data["relatedDocuments"]],
    )


# --- the requests --------------------------------------------------------------------------------


def list_variants(seeded: Seeded) -> list[dict[str, Any]]:
    """Six filter-and-sort variants of the documents list, 25 rows each."""
    ws = str(relay.GlobalID("Workspace", str(seeded.workspace_id)))

    def collection(n: int) -> str:
        return str(relay.GlobalID("Collection", str(seeded.collections[n])))

    def member(n: int) -> str:
        return str(relay.GlobalID("User", str(seeded.members[n])))

    filters_and_sorts: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"status": "READY"}, {"field": "TITLE", "direction": "ASC"}),
        ({"collectionId": collection(2)}, {"field": "UPDATED_AT", "direction": "DESC"}),
        ({"tag": "library"}, {"field": "CREATED_AT", "direction": "DESC"}),
        ({"ownerId": member(3)}, {"field": "UPDATED_AT", "direction": "ASC"}),
        ({"titleContains": "object"}, {"field": "TITLE", "direction": "DESC"}),
        (
            {"status": "FAILED", "collectionId": collection(5)},
            {"field": "CREATED_AT", "direction": "ASC"},
        ),
    ]
    return [
        {"workspaceId": ws, "filter": f, "sort": s, "first": PAGE} for f, s in filters_and_sorts
    ]


def screen_variables(seeded: Seeded) -> dict[str, list[dict[str, Any]]]:
    ws = str(relay.GlobalID("Workspace", str(seeded.workspace_id)))
    sample = random.Random(5).sample(seeded.ready_documents, min(200, len(seeded.ready_documents)))
    return {
        "DocumentsList": list_variants(seeded),
        "Dashboard": [{"workspaceId": ws}],
        "DocumentDetail": [{"id": str(relay.GlobalID("Document", str(d)))} for d in sample],
    }


def cycle(values: list[Any], count: int, offset: int = 0) -> list[Any]:
    return [values[(offset + n) % len(values)] for n in range(count)]


def variant(variables: dict[str, Any]) -> str:
    """Which kind of request `variables` make: the filter's fields and the sort, not their
    values (`tag, CREATED_AT DESC`); empty for a screen without filters."""
    filter_ = variables.get("filter") or {}
    sort = variables.get("sort") or {}
    parts = [", ".join(sorted(filter_)), " ".join(str(v) for v in sort.values())]
    return ", ".join(p for p in parts if p)


async def run_at(
    call: Callable[[dict[str, Any]], Awaitable[Any]],
    inputs: list[dict[str, Any]],
    concurrency: int,
    by_variant: dict[str, list[int]] | None = None,
) -> list[int]:
    """Nanoseconds per request of `inputs` sent by `concurrency` workers, each sending its next
    request when its previous one is answered; with `by_variant`, also filed by `variant`."""
    queue: Iterator[dict[str, Any]] = iter(inputs)
    samples: list[int] = []
    clock = time.perf_counter_ns

    async def worker() -> None:
        for variables in queue:
            started = clock()
            await call(variables)
            samples.append(clock() - started)
            if by_variant is not None:
                by_variant.setdefault(variant(variables), []).append(samples[-1])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


@dataclass
class Result:
    database: str
    screen: str
    concurrency: int
    path: str
    samples: list[int]
    seconds: float = 0.0
    server_cpu: float = 0.0  # CPU seconds of the server process while this path ran
    own_cpu: float = 0.0  # CPU seconds of this process (the client; the statement for `sql`)
    by_variant: dict[str, list[int]] = field(default_factory=dict)  # the samples by `variant`

    def cpu_ms(self) -> float:
        """CPU per request where the path does its work: the server for the HTTP paths, this
        process for `sql`."""
        spent = self.own_cpu if self.path == "sql" else self.server_cpu
        return spent / len(self.samples) * 1e3

    def p(self, q: float) -> float:
        return percentile(self.samples, q, scale=1e6)


def _cpu_seconds(processes: list[Any]) -> float:
    return float(sum(t.user + t.system for t in (p.cpu_times() for p in processes)))


async def time_batch(
    result: Result,
    call: Callable[[dict[str, Any]], Awaitable[Any]],
    inputs: list[dict[str, Any]],
    concurrency: int,
    server: list[Any],
) -> None:
    """Send `inputs` at `concurrency` and add their times, the wall time and both processes'
    CPU to `result`."""
    started, server_started = time.perf_counter(), _cpu_seconds(server)
    own_started = time.process_time()
    result.samples += await run_at(call, inputs, concurrency, result.by_variant)
    result.seconds += time.perf_counter() - started
    result.server_cpu += _cpu_seconds(server) - server_started
    result.own_cpu += time.process_time() - own_started


async def measure_screens(
    base_urls: list[str],
    seeded: Seeded,
    engine: AsyncEngine,
    settings: Settings,
    args: argparse.Namespace,
    database: str,
    server: list[Any],
) -> list[Result]:
    variables = screen_variables(seeded)
    documents = {s: (OPERATIONS / f"{s}.graphql").read_text() for s in SCREENS}
    headers = {"authorization": f"Bearer {seeded.token}"}
    results: list[Result] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(LoadClient(args.client, url, headers, timeout=120))
            for url in base_urls
        ]
        # With several API processes (--api-processes), requests take turns between them, as a
        # round-robin load balancer would send them.
        turns = itertools.cycle(clients)

        def graphql(screen: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
            async def call(v: dict[str, Any]) -> Any:
                status, payload = await next(turns).post_json(
                    "/graphql",
                    {"query": documents[screen], "operationName": screen, "variables": v},
                )
                if status != 200 or "errors" in payload:
                    raise RuntimeError(f"{screen}: {status} {payload}")
                return payload["data"]

            return call

        def sql_http(screen: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
            async def call(v: dict[str, Any]) -> Any:
                status, payload = await next(turns).post_json(
                    f"/bench/sql/{screen}", {"variables": v}
                )
                if status != 200:
                    raise RuntimeError(f"{screen} sql/http: {status} {payload}")
                return payload["data"]

            return call

        def sql(screen: str) -> Callable[[dict[str, Any]], Awaitable[Any]]:
            async def call(v: dict[str, Any]) -> Any:
                return await HAND_WRITTEN[screen](engine, settings, seeded.owner_id, v)

            return call

        for screen in SCREENS:
            paths = {"graphql": graphql(screen), "sql/http": sql_http(screen), "sql": sql(screen)}
            # The same rows on every path, for every variant, before anything is timed.
            for v in variables[screen]:
                expected = api_key(screen, await paths["graphql"](v))
                for name in ("sql/http", "sql"):
                    got = sql_key(screen, await paths[name](v))
                    if got != expected:
                        raise RuntimeError(
                            f"{screen} {name} differs for {v}:\n{got}\nvs\n{expected}"
                        )
            for v in cycle(variables[screen], args.warmup):  # warm caches and pools
                for call in paths.values():
                    await call(v)
            for concurrency in args.concurrency:
                timed = {name: Result(database, screen, concurrency, name, []) for name in paths}
                rounds = max(1, args.requests // args.batch)
                for r in range(rounds):
                    order = list(paths)
                    order = order[r % len(order) :] + order[: r % len(order)]
                    inputs = cycle(variables[screen], args.batch, offset=r * args.batch)
                    for name in order:
                        await time_batch(timed[name], paths[name], inputs, concurrency, server)
                results += timed.values()
                report_row(results[-3:])
        results += await measure_floors(args, turns, server, database)
    return results


FLOOR_QUERY = "query Floor { __typename }"


async def measure_floors(
    args: argparse.Namespace, turns: Iterator[LoadClient], server: list[Any], database: str
) -> list[Result]:
    """What a request costs the server before any screen's work, on both HTTP paths: the GraphQL
    request that reads nothing (`{ __typename }`, with the token) and the hand-written route
    that reads nothing. The GraphQL path's floor alone bounds how near its ratio can come."""

    async def graphql(_: dict[str, Any]) -> Any:
        status, payload = await next(turns).post_json(
            "/graphql", {"query": FLOOR_QUERY, "operationName": "Floor", "variables": {}}
        )
        if status != 200 or payload != {"data": {"__typename": "Query"}}:
            raise RuntimeError(f"floor: {status} {payload}")

    async def sql_http(_: dict[str, Any]) -> Any:
        status, payload = await next(turns).post_json("/bench/floor", {"variables": {}})
        if status != 200 or payload != {"data": {}}:
            raise RuntimeError(f"floor sql/http: {status} {payload}")

    paths = {"graphql": graphql, "sql/http": sql_http}
    for call in paths.values():
        for _ in range(args.warmup):
            await call({})
    top = max(args.concurrency)
    results = {name: Result(database, "floor", top, name, []) for name in paths}
    # Ten times the screens' requests: these are fast, and psutil counts CPU in 10 ms ticks.
    for r in range(max(1, 10 * args.requests // args.batch)):
        order = list(paths)[r % 2 :] + list(paths)[: r % 2]
        for name in order:
            await time_batch(results[name], paths[name], [{}] * args.batch, top, server)
    report_row(list(results.values()))
    return list(results.values())


# --- statements ----------------------------------------------------------------------------------


async def print_statements(settings: Settings, seeded: Seeded, repeats: int = 20) -> None:
    """Each screen's SQL statements through the app in this process, with the mean time from
    sending each to having its rows (before_cursor_execute to after_cursor_execute)."""
    import httpx
    from sqlalchemy import event

    app = create_app(settings)
    variables = screen_variables(seeded)
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {seeded.token}"}
        timings: dict[str, list[int]] = {}
        started: dict[int, int] = {}

        def before(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            started[id(cursor)] = time.perf_counter_ns()

        def after(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            elapsed = time.perf_counter_ns() - started.pop(id(cursor))
            timings.setdefault(" ".join(statement.split()), []).append(elapsed)

        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:
            for screen in SCREENS:
                document = (OPERATIONS / f"{screen}.graphql").read_text()
                for v in variables[screen][:6]:
                    timings.clear()
                    event.listen(engine.sync_engine, "before_cursor_execute", before)
                    event.listen(engine.sync_engine, "after_cursor_execute", after)
                    try:
                        for _ in range(repeats):
                            response = await client.post(
                                "/graphql", json={"query": document, "variables": v}
                            )
                            assert "errors" not in response.json(), response.text
                    finally:
                        event.remove(engine.sync_engine, "before_cursor_execute", before)
                        event.remove(engine.sync_engine, "after_cursor_execute", after)
                    runs = {k: t for k, t in timings.items() if len(t) >= repeats}
                    total = sum(sum(t) / len(t) for t in runs.values()) / 1e6
                    label = json.dumps({k: v[k] for k in v if k in ("filter", "sort")}) or ""
                    print(
                        f"\n  {screen} {label if screen == 'DocumentsList' else ''}: "
                        f"{len(runs)} statements per request, {total:.2f} ms in all (mean of "
                        f"{repeats})"
                    )
                    for statement, t in runs.items():
                        print(f"    {sum(t) / len(t) / 1e6:6.2f} ms  {statement[:150]}")
                    if screen != "DocumentsList":
                        break


@contextlib.asynccontextmanager
async def app_in_process(
    settings: Settings, seeded: Seeded
) -> AsyncIterator[tuple[FastAPI, Callable[[str, list[dict[str, Any]]], Awaitable[None]]]]:
    """The app in this process (httpx ASGI transport: no socket, the client's CPU included) and
    a function that sends a document once per variables given, as the seeded owner."""
    import httpx

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {seeded.token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as client:

            async def send(document: str, inputs: list[dict[str, Any]]) -> None:
                for v in inputs:
                    response = await client.post(
                        "/graphql", json={"query": document, "variables": v}
                    )
                    assert "errors" not in response.json(), response.text

            yield app, send


@contextlib.asynccontextmanager
async def screens_in_process(
    settings: Settings, seeded: Seeded, requests: int
) -> AsyncIterator[tuple[FastAPI, dict[str, Callable[[], Awaitable[None]]]]]:
    """The app in this process and, per screen, a function that sends its `requests` requests;
    each screen warmed up."""
    variables = screen_variables(seeded)
    async with app_in_process(settings, seeded) as (app, send):
        runs: dict[str, Callable[[], Awaitable[None]]] = {}
        for screen in SCREENS:
            document = (OPERATIONS / f"{screen}.graphql").read_text()
            inputs = cycle(variables[screen], requests)
            await send(document, inputs[:10])
            runs[screen] = functools.partial(send, document, inputs)
        yield app, runs


async def print_profile(
    settings: Settings, seeded: Seeded, requests: int, dump_dir: Path | None = None
) -> None:
    """cProfile of each screen through the app in this process (httpx ASGI transport, so no
    socket): own time by package and the top functions, per request; with `dump_dir`, each
    screen's raw profile as `<screen>.pstats` there (for pstats or snakeviz)."""
    import cProfile

    async with screens_in_process(settings, seeded, requests) as (_app, runs):
        for screen, run in runs.items():
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            await run()
            profiler.disable()
            wall = (time.perf_counter() - started) / requests * 1e3
            if dump_dir is not None:
                profiler.dump_stats(dump_dir / f"{screen}.pstats")
            print(f"\n  {screen}: {wall:.2f} ms per request under the profiler", end="")
            print_profile_stats(profiler, requests)
            with fields_through_graphql_core() as fields:
                await run()
            print("    fields that took graphql-core's path (a ResolveInfo each), per request:")
            for name, count in fields.most_common():
                print(f"      {count / requests:6.1f}  {name}")


async def print_plain_fields_cpu(
    settings: Settings, seeded: Seeded, requests: int, rounds: int = 4
) -> None:
    """CPU per request of each screen through the app in this process (httpx ASGI transport, so
    the client's CPU is included), with plain fields read directly and, alternating in rounds,
    through graphql-core's own path: the median of each and their ratio."""
    async with screens_in_process(settings, seeded, requests) as (app, runs):
        print(f"\n  CPU per request in this process, median of {rounds} rounds of {requests}:")
        for screen, run in runs.items():
            read, through = await plain_fields_cpu(app.state.schema, run, requests, rounds)
            print(
                f"    {screen:<15} {read:6.2f} ms read directly, {through:6.2f} ms through "
                f"graphql-core: x{read / through:.3f}"
            )


async def print_together_cpu(
    settings: Settings, seeded: Seeded, requests: int, rounds: int = 8
) -> None:
    """CPU per request of each screen through the app in this process, with the reads that
    fire together run as one workflow (ADR 0110) and, alternating in rounds, each as a workflow
    of its own; and the workflow executions per request of each."""
    async with screens_in_process(settings, seeded, requests) as (app, runs):
        runtime = app.state.runner.runtime
        print(f"\n  CPU per request in this process, median of {rounds} rounds of {requests}:")
        for screen, run in runs.items():
            together, alone = await cpu_against(calls_run_alone, run, requests, rounds)
            with counted_executions(runtime) as merged:
                await run()
            with calls_run_alone(), counted_executions(runtime) as single:
                await run()
            print(
                f"    {screen:<15} {together:6.2f} ms together ({merged[0] / requests:4.1f} "
                f"executions), {alone:6.2f} ms alone ({single[0] / requests:4.1f}): "
                f"x{together / alone:.3f}",
                flush=True,
            )


def screen_parts(document: str) -> list[tuple[str, str]]:
    """A screen's operation without each field of its root field in turn (`id` kept): one
    (field name, document) per field, each with only the variables it still uses."""
    from graphql import (
        DocumentNode,
        FieldNode,
        OperationDefinitionNode,
        SelectionSetNode,
        VariableNode,
        parse,
        print_ast,
        visit,
    )
    from graphql.language import Visitor

    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    root = operation.selection_set.selections[0]
    assert isinstance(root, FieldNode) and root.selection_set is not None
    fields = [f for f in root.selection_set.selections if isinstance(f, FieldNode)]

    def with_fields(chosen: list[FieldNode]) -> str:
        part_root = FieldNode(
            alias=root.alias,
            name=root.name,
            arguments=root.arguments,
            directives=root.directives,
            selection_set=SelectionSetNode(selections=tuple(chosen)),
        )
        used: set[str] = set()

        class Variables(Visitor):
            def enter_variable(self, node: VariableNode, *_: Any) -> None:
                used.add(node.name.value)

        visit(part_root, Variables())
        part = OperationDefinitionNode(
            operation=operation.operation,
            name=operation.name,
            variable_definitions=tuple(
                d for d in operation.variable_definitions if d.variable.name.value in used
            ),
            directives=operation.directives,
            selection_set=SelectionSetNode(selections=(part_root,)),
        )
        return print_ast(DocumentNode(definitions=(part,)))

    return [
        (
            (left_out.alias or left_out.name).value,
            with_fields([f for f in fields if f is not left_out]),
        )
        for left_out in fields
        if left_out.name.value != "id"
    ]


async def print_parts_cpu(
    settings: Settings, seeded: Seeded, requests: int, batch: int = 10
) -> None:
    """What each field of the Dashboard's and DocumentDetail's root field costs within the
    operation: CPU per request in this process of the whole operation and of the operation
    without that field, `requests` each in rounds of `batch` taking turns (drift spreads over
    all of them); the difference of their medians."""
    variables = screen_variables(seeded)
    rounds = max(1, requests // batch)
    async with app_in_process(settings, seeded) as (_app, send):
        for screen in ("Dashboard", "DocumentDetail"):
            document = (OPERATIONS / f"{screen}.graphql").read_text()
            inputs = cycle(variables[screen], batch)
            parts = [("", document), *screen_parts(document)]
            cpu: dict[str, list[float]] = {name: [] for name, _ in parts}
            for _, text_ in parts:
                await send(text_, inputs)
            for round_ in range(rounds):
                for name, text_ in parts if round_ % 2 == 0 else reversed(parts):
                    started = time.process_time()
                    await send(text_, inputs)
                    cpu[name].append((time.process_time() - started) / batch * 1e3)
            medians = {name: statistics.median(values) for name, values in cpu.items()}
            whole = medians.pop("")
            print(
                f"\n  {screen}: CPU per request in this process, median of {rounds} rounds of "
                f"{batch}: {whole:.2f} ms; without each field, what it costs within the "
                "operation:"
            )
            for name, value in sorted(medians.items(), key=lambda kv: kv[1]):  # costliest first
                print(f"    {name:<24} {whole - value:+6.2f} ms")
            print(
                f"    {'sum':<24} {sum(whole - v for v in medians.values()):+6.2f} ms", flush=True
            )


# --- report --------------------------------------------------------------------------------------


def report_row(results: list[Result]) -> None:
    by_path = {r.path: r for r in results}
    base = by_path["sql/http"]
    for r in results:
        ratio = ""
        if r.path == "graphql" and "sql" in by_path:  # the floor has no in-process path
            ratio = (
                f"  x{r.p(50) / base.p(50):.2f} p50, x{r.p(95) / base.p(95):.2f} p95 "
                f"(to sql/http); x{r.p(95) / by_path['sql'].p(95):.2f} p95 to sql"
            )
        print(
            f"    {r.screen:<15} c={r.concurrency:<2} {r.path:<9} p50 {r.p(50):7.2f}  "
            f"p95 {r.p(95):7.2f}  p99 {r.p(99):7.2f} ms  "
            f"{len(r.samples) / r.seconds:6.0f} req/s  CPU {r.cpu_ms():5.2f} ms/req{ratio}"
        )


def print_summary(results: list[Result], args: argparse.Namespace) -> None:
    databases = list(dict.fromkeys(r.database for r in results))
    index = {(r.database, r.screen, r.concurrency, r.path): r for r in results}
    print(
        f"\nms per request (p50 / p95 / p99), {args.requests} timed requests per path and "
        f"concurrency; ratio = graphql / sql/http"
    )
    header = f"  {'screen':<15} {'c':>2} {'path':<9}" + "".join(
        f" {db + ' p50/p95/p99':>26}" for db in databases
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for screen in SCREENS:
        for concurrency in args.concurrency:
            for path in PATHS:
                cells = ""
                for db in databases:
                    r = index.get((db, screen, concurrency, path))
                    cells += (
                        f" {r.p(50):8.2f}/{r.p(95):7.2f}/{r.p(99):7.2f}" if r else f" {'-':>26}"
                    )
                print(f"  {screen:<15} {concurrency:>2} {path:<9}{cells}")
            cells = ""
            for db in databases:
                api = index.get((db, screen, concurrency, "graphql"))
                base = index.get((db, screen, concurrency, "sql/http"))
                if api and base:
                    cells += (
                        f" {'x' + format(api.p(50) / base.p(50), '.2f'):>8}/"
                        f"{'x' + format(api.p(95) / base.p(95), '.2f'):>7}/"
                        f"{'x' + format(api.p(99) / base.p(99), '.2f'):>7}"
                    )
                else:
                    cells += f" {'-':>26}"
            print(f"  {screen:<15} {concurrency:>2} {'ratio':<9}{cells}")
    print(
        "\nCPU ms per request where the work is done (the server process for graphql and "
        "sql/http; the benchmark process, client included, for sql); ratio = graphql / sql/http; "
        "then the benchmark client's own CPU on the HTTP paths (it shares the machine)"
    )
    print(
        f"  {'screen':<15} {'c':>2}"
        + "".join(f" {db + ' graphql/sql-http/sql':>30} {'client':>13}" for db in databases)
    )
    for screen in SCREENS:
        for concurrency in args.concurrency:
            cells = ""
            for db in databases:
                trio = [index.get((db, screen, concurrency, path)) for path in PATHS]
                if all(trio):
                    api, base, raw = (r.cpu_ms() for r in trio if r)
                    client = [r.own_cpu / len(r.samples) * 1e3 for r in trio[:2] if r]
                    cells += (
                        f" {api:6.2f}/{base:6.2f}/{raw:5.2f} x{api / base:5.2f}"
                        f" {client[0]:6.2f}/{client[1]:6.2f}"
                    )
                else:
                    cells += f" {'-':>44}"
            print(f"  {screen:<15} {concurrency:>2}{cells}")
    top = max(args.concurrency)
    print(
        f"\nthe floor, concurrency {top}: CPU ms per request of a request that reads nothing "
        "(graphql: `{ __typename }`; sql/http: the same route without a statement), p95 in "
        "brackets; then each screen's CPU above its path's floor, and the CPU ratio it would "
        "have if the GraphQL path did its screen's work as cheaply as the hand-written one"
    )
    for db in databases:
        g_floor = index.get((db, "floor", top, "graphql"))
        s_floor = index.get((db, "floor", top, "sql/http"))
        if not (g_floor and s_floor):
            continue
        print(
            f"  {db:<10} floor  graphql {g_floor.cpu_ms():5.2f} ({g_floor.p(95):6.2f} ms)  "
            f"sql/http {s_floor.cpu_ms():5.2f} ({s_floor.p(95):6.2f} ms)"
        )
        for screen in SCREENS:
            api = index[(db, screen, top, "graphql")].cpu_ms()
            base = index[(db, screen, top, "sql/http")].cpu_ms()
            work = base - s_floor.cpu_ms()
            print(
                f"  {db:<10} {screen:<15} above the floor: graphql {api - g_floor.cpu_ms():5.2f}"
                f"  sql/http {work:5.2f}  ratio at equal work x"
                f"{(g_floor.cpu_ms() + work) / base:4.2f}"
            )
    print(
        f"\ngoals (reported, not asserted): graphql p95 under {GOAL_P95_MS:g} ms at "
        f"concurrency {top}; graphql / sql/http under {GOAL_RATIO:g}x (p95)"
    )
    for db in databases:
        for screen in SCREENS:
            api = index[(db, screen, top, "graphql")]
            base = index[(db, screen, top, "sql/http")]
            raw = index[(db, screen, top, "sql")]
            ratio = api.p(95) / base.p(95)
            print(
                f"  {db:<10} {screen:<15} p95 {api.p(95):7.2f} ms "
                f"{'met' if api.p(95) < GOAL_P95_MS else 'MISSED':<6}  ratio x{ratio:.2f} "
                f"{'met' if ratio < GOAL_RATIO else 'MISSED':<6}  "
                f"(to sql in-process x{api.p(95) / raw.p(95):.2f})"
            )
    print(
        f"\nby kind of request, concurrency {top}: ms p50 / p95, and its share of the path's "
        "slowest 5%"
    )
    for db in databases:
        for screen in SCREENS:
            for path in PATHS:
                result = index[(db, screen, top, path)]
                if len(result.by_variant) < 2:
                    continue
                slowest = sorted(result.samples)[-max(1, len(result.samples) // 20) :]
                cut = slowest[0]
                for kind, samples in sorted(result.by_variant.items()):
                    share = sum(1 for t in samples if t >= cut) / len(slowest)
                    print(
                        f"  {db:<10} {screen:<15} {path:<9} {kind:<38} "
                        f"{percentile(samples, 50, scale=1e6):7.2f} / "
                        f"{percentile(samples, 95, scale=1e6):7.2f}  {share:4.0%}"
                    )


# --- one database --------------------------------------------------------------------------------


def bench_settings(database_url: str) -> Settings:
    return Settings(
        app_env="development",
        database_url=database_url,
        redis_url=None,
        jwt_secret=BENCH_SECRET,
        log_level="WARNING",
    )


def run_database(name: str, database_url: str, args: argparse.Namespace) -> list[Result]:
    from bench.bench_run_fanout import server_process
    from tests.support.live_server import live_server

    settings = bench_settings(database_url)
    migrate.upgrade(settings.database_url)  # Alembic runs its own event loop: outside ours

    async def seeding() -> Seeded:
        engine = build_engine(settings)
        try:
            return await seed(engine, args.documents, settings)
        finally:
            await engine.dispose()

    seeded = asyncio.run(seeding())
    if args.statements:
        asyncio.run(print_statements(settings, seeded))
    if args.profile:
        if args.profile_dump is not None:
            args.profile_dump.mkdir(parents=True, exist_ok=True)
        asyncio.run(print_profile(settings, seeded, args.profile, args.profile_dump))
    if args.plain_fields_cpu:
        asyncio.run(print_plain_fields_cpu(settings, seeded, args.plain_fields_cpu))
    if args.together_cpu:
        asyncio.run(print_together_cpu(settings, seeded, args.together_cpu))
    if args.parts_cpu:
        asyncio.run(print_parts_cpu(settings, seeded, args.parts_cpu))
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": "",
        "JWT_SECRET": BENCH_SECRET,
        "LOG_LEVEL": "WARNING",
        "UVICORN_ACCESS_LOG": "false",  # uvicorn reads its flags from UVICORN_* too
        # No look for documents to re-embed in the middle of the measurements.
        "REEMBED_CHECK_SECONDS": "86400",
    }

    async def measuring(base_urls: list[str], servers: list[Any]) -> list[Result]:
        engine = build_engine(settings)
        try:
            return await measure_screens(base_urls, seeded, engine, settings, args, name, servers)
        finally:
            await engine.dispose()

    if not args.timing:
        return []
    with contextlib.ExitStack() as stack:
        base_urls = [
            stack.enter_context(live_server(env, app="bench.bench_documents:create_bench_app"))
            for _ in range(args.api_processes)
        ]
        servers = [server_process(int(url.rsplit(":", 1)[1])) for url in base_urls]
        print(f"  servers {', '.join(base_urls)}; load average {os.getloadavg()[0]:.2f}")
        return asyncio.run(measuring(base_urls, servers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--documents", type=int, help="documents in the workspace")
    parser.add_argument("--requests", type=int, help="timed requests per path and concurrency")
    add_size_flag(
        parser,
        quick={"documents": 2000, "requests": 80},
        full={"documents": 10_000, "requests": 400},
    )
    parser.add_argument("--batch", type=int, default=40, help="requests per path per round (40)")
    parser.add_argument("--warmup", type=int, default=12, help="untimed requests per path (12)")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 8],
        help="comma-separated concurrencies (1,8)",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default="aiohttp",
        help="the HTTP client that sends the timed requests (aiohttp; httpx as recorded before "
        "2026-12-04, 1-1.5 ms more client CPU per request)",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="API processes to spread the HTTP paths over, round-robin (1; more only with "
        "--db postgres: SQLite's embedded default is one process)",
    )
    parser.add_argument(
        "--statements", action="store_true", help="print each screen's SQL statements"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="cProfile N requests of each screen through the app in this process",
    )
    parser.add_argument(
        "--profile-dump",
        type=Path,
        metavar="DIR",
        help="with --profile: also write each screen's raw profile to DIR/<screen>.pstats",
    )
    parser.add_argument(
        "--plain-fields-cpu",
        type=int,
        default=0,
        metavar="N",
        help="CPU per request of each screen in this process, plain fields read directly "
        "against graphql-core's path, alternating in rounds of N requests",
    )
    parser.add_argument(
        "--together-cpu",
        type=int,
        default=0,
        metavar="N",
        help="CPU per request in process, reads run together (ADR 0110) against alone, N each",
    )
    parser.add_argument(
        "--parts-cpu",
        type=int,
        default=0,
        metavar="N",
        help="what each field of the Dashboard's and DocumentDetail's root field costs within "
        "the operation: CPU per request in process with and without it, N requests each",
    )
    parser.add_argument(
        "--no-timing", dest="timing", action="store_false", help="seed (and profile) only"
    )
    args = apply_sizes(parser.parse_args(argv))
    if args.documents < 100 or args.requests < 1 or min(args.concurrency) < 1:
        parser.error("need --documents >= 100, --requests >= 1 and concurrencies >= 1")
    if args.api_processes < 1 or (args.api_processes > 1 and args.db != "postgres"):
        parser.error("--api-processes N > 1 needs --db postgres")
    args.batch = min(args.batch, args.requests)
    started = time.monotonic()
    print(
        f"Documents screens benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start; {args.documents:,} documents"
    )
    results: list[Result] = []
    if args.db in ("postgres", "both"):
        from tests.support.services import postgres_server

        print("\n== PostgreSQL")
        try:
            with postgres_server() as url:
                results += run_database("postgres", url, args)
        except RuntimeError as exc:
            if args.db == "postgres":
                raise
            print(f"PostgreSQL skipped: {exc}")
    if args.db in ("sqlite", "both"):
        print("\n== SQLite")
        with tempfile.TemporaryDirectory(prefix="kd-bench-") as tmp:
            results += run_database(
                "sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}", args
            )
    if results:
        print_summary(results, args)
    print(
        f"\nload average {os.getloadavg()[0]:.2f} at the end; "
        f"total wall time {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
