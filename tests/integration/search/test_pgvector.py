"""Semantic search through pgvector's HNSW index (ADR 0114), on a real PostgreSQL 18 with
pgvector, over real pages embedded by the real model: the same ranking as the exact scan, the
statement answered by the index, filters and tenant scoping inside it, changes seen at once,
and nothing loaded into the process's vector cache."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, text

from base.db.engine import RequestReads
from base.settings import Settings
from services import hnsw_index, vector_index
from services.documents import delete_documents
from services.search import (
    SearchMode,
    embed_query,
    related_documents,
    retrieve_passages,
    search,
)
from tests.integration.search.conftest import Library, library_of, shelve
from tests.support.app_fixtures import changed, client_of, migrated, started_app
from tests.support.graphql import GraphQLClient
from tests.support.search import page_document

pytestmark = pytest.mark.slow(seconds=250)

PASSAGES = 10
QUERIES = [
    "read a password without echoing it",
    "put the terminal in raw mode",
    "group database entries",
    "which user owns a process",
    "terminal attributes and line discipline",
]


@pytest.fixture(scope="session")
def migrated_pgvector(pgvector_url: str) -> str:
    return migrated(pgvector_url)


@pytest.fixture
async def pgvector_app(
    settings: Settings, migrated_pgvector: str, ollama_host: str
) -> AsyncIterator[FastAPI]:
    on_pgvector = changed(settings, database_url=migrated_pgvector, ollama_host=ollama_host)
    async with started_app(on_pgvector) as application:
        yield application


@pytest.fixture
async def pgvector_client(pgvector_app: FastAPI) -> AsyncIterator[GraphQLClient]:
    async with client_of(pgvector_app) as client:
        yield client


async def _shelves(library: Library) -> dict[str, uuid.UUID]:
    """Guides: getpass, pwd, functools; Reference: tty, termios, grp, shutil; the outsider's
    workspace: getpass (as "outsider")."""
    ids = await shelve(
        library,
        [
            ("library/getpass.html", library.guides, ()),
            ("library/pwd.html", library.guides, ()),
            ("library/functools.html", library.guides, ()),
            ("library/shutil.html", library.reference, ()),
            ("library/tty.html", library.reference, ()),
            ("library/termios.html", library.reference, ()),
            ("library/grp.html", library.reference, ()),
        ],
        outsider_pages=["library/getpass.html"],
    )
    ids["outsider"] = ids.pop("outsider:library/getpass.html")
    return ids


def _with_index(library: Library, index: str, **settings: Any) -> Any:
    deps = library.as_user(library.owner_id)
    return dataclasses.replace(
        deps, settings=changed(deps.settings, search_vector_index=index, **settings)
    )


async def _passages(deps: Any, library: Library, query: str, **filters: Any) -> list[Any]:
    found = await retrieve_passages(
        deps,
        workspace_id=library.workspace_id,
        query=query,
        mode=SearchMode.SEMANTIC,
        limit=PASSAGES,
        **filters,
    )
    return [(p.document_id, p.chunk_id, round(p.score, 5)) for p in found.passages]


async def _documents(deps: Any, library: Library, query: str) -> list[Any]:
    results = await search(
        deps, workspace_id=library.workspace_id, query=query, mode=SearchMode.SEMANTIC, first=25
    )
    return [
        (e.node.document.id, e.node.passage.chunk_id, round(e.node.score, 5))
        for e in results.page.edges
    ]


@pytest.fixture
def vector_statements(pgvector_app: FastAPI) -> Iterator[list[tuple[str, Any]]]:
    """Every statement with pgvector's cosine distance that the app sends, with its
    parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "<=>" in statement:
            seen.append((statement, parameters))

    engine = pgvector_app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_the_index_ranks_as_the_exact_scan_does(
    pgvector_client, pgvector_app, vector_statements
):
    library = await library_of(pgvector_client, pgvector_app)
    ids = await _shelves(library)
    indexed, exact = _with_index(library, "hnsw"), _with_index(library, "exact")
    cache = vector_index.vector_cache(indexed.settings.search_vector_cache_mb * 1024 * 1024)
    by_index = {q: await _passages(indexed, library, q) for q in QUERIES}
    documents_by_index = {q: await _documents(indexed, library, q) for q in QUERIES}
    # Nothing was loaded into the process: the database ranked.
    assert len(cache) == 0
    # Per query: the index's statement for the passages; for the documents the index's
    # statement came back short (the workspace has fewer than SEARCH_MAX_RESULTS documents), so
    # the exact statement followed.
    assert len(vector_statements) == 3 * len(QUERIES)
    for query in QUERIES:
        assert len(by_index[query]) == PASSAGES
        assert ids["outsider"] not in {d for d, _, _ in by_index[query]}
        assert by_index[query] == await _passages(exact, library, query), query
        assert documents_by_index[query] == await _documents(exact, library, query), query
    assert len(cache) == 1  # the exact scan's
    # The index can answer the passages' statement, and only that one: with sorting priced out,
    # the planner orders it by the index; the exact statement it still has to sort. (On a table
    # this small the planner rightly prefers sorting every row.)
    index_scan = "Index Scan using ix_chunk_vectors_embedding_384 on chunk_vectors"
    # The exact statement compares with the query as an untyped `vector`.
    exact_statement = next(s for s in vector_statements if "AS vector)" in s[0])
    plans = [await _plan(pgvector_app, *s) for s in (vector_statements[0], exact_statement)]
    assert index_scan in plans[0] and "Sort" not in plans[0]
    assert index_scan not in plans[1] and "Sort" in plans[1]


async def _plan(
    app: FastAPI, statement: str, parameters: Any, *, sorting_priced_out: bool = True
) -> str:
    async with app.state.engine.connect() as connection:
        if sorting_priced_out:
            await connection.exec_driver_sql("SET enable_sort = off")
        result = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        plan = "\n".join(result.scalars())
        await connection.exec_driver_sql("RESET enable_sort")
    return plan


async def test_filters_and_scoping_are_inside_the_statement(
    pgvector_client, pgvector_app, vector_statements
):
    library = await library_of(pgvector_client, pgvector_app)
    ids = await _shelves(library)
    indexed, exact = _with_index(library, "hnsw"), _with_index(library, "exact")
    query = "read a password without echoing it"
    # A collection: only its documents, ranked as the exact scan ranks them.
    guides = await _passages(indexed, library, query, collection_ids=[library.guides])
    in_guides = {
        ids[p] for p in ("library/getpass.html", "library/pwd.html", "library/functools.html")
    }
    assert {d for d, _, _ in guides} <= in_guides
    assert ids["library/getpass.html"] in {d for d, _, _ in guides}
    assert guides == await _passages(exact, library, query, collection_ids=[library.guides])
    # One document with fewer passages than asked for: every one of them, none of another.
    tty = await _passages(indexed, library, query, document_ids=[ids["library/tty.html"]])
    assert {d for d, _, _ in tty} == {ids["library/tty.html"]} and 0 < len(tty) < PASSAGES
    assert tty == await _passages(exact, library, query, document_ids=[ids["library/tty.html"]])
    # Another workspace's collection behaves as a missing one: nothing.
    foreign = [library.outsider_collection]
    assert await _passages(indexed, library, query, collection_ids=foreign) == []
    # Each filtered ranking was one exact statement (the query as an untyped `vector`), with
    # the filter in it.
    assert len(vector_statements) == 3
    assert all("AS vector)" in s and "document_id IN" in s for s, _ in vector_statements)


async def test_auto_ranks_a_workspace_the_cache_holds_by_the_exact_scan(
    pgvector_client, pgvector_app, vector_statements
):
    library = await library_of(pgvector_client, pgvector_app)
    await _shelves(library)
    found = await _passages(_with_index(library, "auto"), library, "put the terminal in raw mode")
    assert len(found) == PASSAGES and vector_statements == []  # no statement of the index


async def test_auto_ranks_a_workspace_too_large_for_the_cache_through_the_index(
    pgvector_client, pgvector_app, vector_statements
):
    library = await library_of(pgvector_client, pgvector_app)
    await _shelves(library)
    query = "put the terminal in raw mode"
    too_large = _with_index(library, "auto", search_vector_cache_mb=0)
    found = await _passages(too_large, library, query)
    assert len(vector_statements) == 1 and "AS vector(384))" in vector_statements[0][0]
    assert found == await _passages(_with_index(library, "exact"), library, query)


async def test_a_deleted_document_is_gone_from_the_next_search(pgvector_client, pgvector_app):
    library = await library_of(pgvector_client, pgvector_app)
    ids = await _shelves(library)
    indexed = _with_index(library, "hnsw")
    getpass = ids["library/getpass.html"]
    query = "read a password without echoing it"
    before = await _passages(indexed, library, query)
    assert before[0][0] == getpass
    deleted = await delete_documents(indexed, ids=[getpass])
    assert deleted.errors == []
    after = await _passages(indexed, library, query)
    others = [p for p in before if p[0] != getpass]
    assert getpass not in {d for d, _, _ in after} and len(after) == PASSAGES
    assert after[: len(others)] == others  # the rest keep their ranking
    async with library.deps.db() as session:
        missing = await session.scalar(
            text("SELECT count(*) FROM chunk_vectors WHERE embedding IS NULL")
        )
        stored = await session.scalar(text("SELECT count(*) FROM chunk_vectors"))
    assert missing == 0 and stored > 2 * PASSAGES  # the trigger gave every stored vector its column


async def _related(deps: Any, document_ids: list[uuid.UUID]) -> list[list[tuple[uuid.UUID, float]]]:
    found = await related_documents(deps, ids=document_ids)
    return [[(r.document.id, round(r.score, 5)) for r in related] for related in found]


async def test_related_documents_through_the_documents_index(
    pgvector_client, pgvector_app, vector_statements
):
    """Related documents by the documents' own vectors and their HNSW index (ADR 0116): the same
    documents and scores as the exact scan of the cache, one statement a document, answered by
    the index, nothing loaded into the process; another workspace's document has none."""
    library = await library_of(pgvector_client, pgvector_app)
    ids = await _shelves(library)
    team = [v for k, v in ids.items() if k != "outsider"]
    indexed, exact = _with_index(library, "hnsw"), _with_index(library, "exact")
    cache = vector_index.vector_cache(indexed.settings.search_vector_cache_mb * 1024 * 1024)
    by_index = await _related(indexed, team)
    assert len(cache) == 0 and len(vector_statements) == len(team)
    assert all("document_vectors" in s and "AS vector(384))" in s for s, _ in vector_statements)
    assert [len(r) for r in by_index] == [5] * len(team)
    assert by_index == await _related(exact, team)
    assert len(cache) == 1  # the exact scan's
    outsider = await _related(indexed, [ids["outsider"]])
    assert outsider == [[]]  # alone in its workspace: the index's statement, then the exact one
    plan = await _plan(pgvector_app, *vector_statements[0])
    assert "Index Scan using ix_document_vectors_embedding_384 on document_vectors" in plan
    # A deleted document's vector goes with it.
    getpass = ids["library/getpass.html"]
    assert (await delete_documents(indexed, ids=[getpass])).errors == []
    after = await _related(indexed, [ids["library/pwd.html"]])
    assert getpass not in {d for d, _ in after[0]} and len(after[0]) == 5


async def _index_scans(app: FastAPI, index: str) -> int:
    """How many scans PostgreSQL's statistics have counted of `index` so far."""
    async with app.state.engine.connect() as connection:
        result = await connection.exec_driver_sql(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = $1", (index,)
        )
        return int(result.scalar_one())


async def _index_scans_after(app: FastAPI, index: str, before: int) -> int:
    """`_index_scans` once the app's backend has reported its own (within a few seconds)."""
    for _ in range(50):
        now = await _index_scans(app, index)
        if now != before:
            return now
        await asyncio.sleep(0.1)
    return before


async def test_the_index_orders_the_statements_sent_to_it_whatever_the_statistics_say(
    pgvector_client, pgvector_app, vector_statements
):
    """The app asks the index only for workspaces it judged too large to rank exactly, while the
    planner judges by statistics that say one row for a workspace ingested since the last
    ANALYZE (then it sorted 50,000 passages: 1.34 s a ranking). On this small table the planner
    on its own would sort the passages too; the app's statements are answered by the index."""
    library = await library_of(pgvector_client, pgvector_app)
    ids = await _shelves(library)
    deps = _with_index(library, "hnsw")
    model = deps.settings.embed_model
    vector = await embed_query(deps, QUERIES[0])
    passages_index = "ix_chunk_vectors_embedding_384"
    documents_index = "ix_document_vectors_embedding_384"
    before = {i: await _index_scans(pgvector_app, i) for i in (passages_index, documents_index)}
    # A request's own read session, as the Search operation has it: no transaction (ADR 0076).
    reads = RequestReads(pgvector_app.state.read_db)
    async with reads.session() as session:
        hits = await hnsw_index.scan(
            session,
            library.workspace_id,
            model,
            vector,
            documents=None,
            limit=PASSAGES,
            per_document=False,
        )
        related = await hnsw_index.related(
            session, ids["library/getpass.html"], model, frozenset({384}), 5
        )
        # The setting lasted for those statements only.
        assert (await session.execute(text("SHOW enable_sort"))).scalar_one() == "on"
        await session.execute(text("SELECT pg_stat_force_next_flush()"))
    await reads.close()
    assert len(hits) == PASSAGES and len(related) == 5
    assert len(vector_statements) == 2  # neither came back short: no exact statement followed
    for index in (passages_index, documents_index):
        assert await _index_scans_after(pgvector_app, index, before[index]) == before[index] + 1
    # The passages' statement, planned as it was sent but without the app's setting: sorted.
    plan = await _plan(pgvector_app, *vector_statements[0], sorting_priced_out=False)
    assert "Sort" in plan and passages_index not in plan, plan


async def test_the_vector_indexes_command_builds_the_index_of_another_dimension(
    pgvector_client, pgvector_app, migrated_pgvector
):
    """`python -m app vector-indexes` (ADR 0121): once passages are embedded by a model of
    another dimension (the chat model, 576), it builds that dimension's index for passages and
    documents, CONCURRENTLY; the ranking then goes through it; a second run builds nothing, and
    an index a failed build left invalid is built again."""
    library = await library_of(pgvector_client, pgvector_app)
    deps = _with_index(library, "hnsw", embed_model=pgvector_app.state.settings.chat_model)
    await page_document(
        deps,
        "library/getpass.html",
        workspace_id=library.workspace_id,
        collection_id=library.guides,
        owner_id=library.owner_id,
    )
    names = ["ix_chunk_vectors_embedding_576", "ix_document_vectors_embedding_576"]
    engine = pgvector_app.state.engine
    try:
        # Its own process, as an operator runs it (off the event loop: the app's loop is this
        # test's).
        command = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "app", "vector-indexes"],
            env={**os.environ, "DATABASE_URL": migrated_pgvector},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert command.stdout.strip() == f"built {names[0]}, {names[1]}"
        assert await hnsw_index.create_missing_indexes(engine) == []
        async with engine.connect() as connection:
            await connection.execute(
                text(
                    "UPDATE pg_index SET indisvalid = false WHERE indexrelid = CAST(:i AS regclass)"
                ),
                {"i": names[0]},
            )
            await connection.commit()
        assert await hnsw_index.create_missing_indexes(engine) == [names[0]]
        async with deps.read() as session:
            assert 576 in await hnsw_index.indexed_dimensions(session)
        vector = await embed_query(deps, QUERIES[0])
        assert len(vector) == 576
        before = await _index_scans(pgvector_app, names[0])
        reads = RequestReads(pgvector_app.state.read_db)
        async with reads.session() as session:
            hits = await hnsw_index.scan(
                session,
                library.workspace_id,
                deps.settings.embed_model,
                vector,
                documents=None,
                limit=2,  # of the page's 3 passages: the index gives them, no exact fallback
                per_document=False,
            )
            await session.execute(text("SELECT pg_stat_force_next_flush()"))
        await reads.close()
        assert len(hits) == 2
        assert await _index_scans_after(pgvector_app, names[0], before) == before + 1
    finally:
        async with engine.connect() as connection:
            for name in names:
                await connection.execute(text(f"DROP INDEX IF EXISTS {name}"))
            await connection.commit()
        hnsw_index.forget_indexes()


async def test_the_vector_indexes_command_builds_nothing_without_pgvector(any_db_app):
    """On SQLite (the embedded default) and on a PostgreSQL without pgvector (Debian's 15)
    there is no index to build, and the command says so instead of failing."""
    assert await hnsw_index.create_missing_indexes(any_db_app.state.engine) == []
