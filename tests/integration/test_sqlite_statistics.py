"""The embedded default keeps SQLite's planner statistics (ADR 0082): an API process runs ANALYZE
when it starts, its pooled connections reload the statistics after an ANALYZE, and from then on
they plan the documents list filtered to a collection on the collection's index instead of
reading the workspace's documents in order. A filter's document ids (search, answers) come from
the workspace-and-collection index alone, with statistics or without (ADR 0154)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.main import create_app
from base.db.engine import analyse_sqlite
from base.settings import Settings
from tests.support.app_fixtures import sqlite_settings
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.seed import add_collection, add_documents, uuid_of
from tests.support.waiting import eventually

# The documents list filtered to one collection, latest first (the shape of its first page).
COLLECTION_PAGE = (
    "EXPLAIN QUERY PLAN SELECT documents.id, documents.title FROM documents "
    "WHERE documents.workspace_id = :workspace AND documents.collection_id = :collection "
    "ORDER BY documents.updated_at DESC, documents.id DESC LIMIT 26"
)
COLLECTION_INDEX = (
    "SEARCH documents USING INDEX ix_documents_collection_updated (collection_id=?) | "
    "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"
)
# The ids of a search's or an answer's collection filter (`search.allowed_documents`).
COLLECTION_FILTER = (
    "EXPLAIN QUERY PLAN SELECT documents.id FROM documents "
    "WHERE documents.workspace_id = :workspace AND documents.collection_id IN (:collection)"
)
FILTER_INDEX = (
    "SEARCH documents USING COVERING INDEX ix_documents_workspace_collection "
    "(workspace_id=? AND collection_id=?)"
)


async def _plan(
    app, workspace: uuid.UUID, collection: uuid.UUID, statement: str = COLLECTION_PAGE
) -> str:
    async with app.state.engine.connect() as connection:
        rows = await connection.execute(
            text(statement), {"workspace": workspace.hex, "collection": collection.hex}
        )
        return " | ".join(row[3] for row in rows)


async def _statistics(app) -> list[tuple[str, str]]:
    if not await _analysed(app):
        return []
    async with app.state.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'documents' ORDER BY idx")
        )
        return [(row.idx, row.stat) for row in rows]


@pytest.fixture
def embedded_settings(tmp_path: Path, blob_root: Path) -> Settings:
    return sqlite_settings(tmp_path, blob_root)  # migrates: outside the test's event loop


async def test_an_api_process_analyses_sqlite_when_it_starts(embedded_settings: Settings):
    settings = embedded_settings
    first = create_app(settings)
    async with first.router.lifespan_context(first):
        await eventually(lambda: _analysed(first), within=30, what="ANALYZE of the empty database")
        transport = httpx.ASGITransport(app=first, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = GraphQLClient(http)
            owner = await sign_up(client, "Owner", "owner@example.com")
            workspace = uuid_of((await first_workspace(client, owner["accessToken"]))["id"])
        owner_id = uuid_of(owner["user"]["id"])
        db = first.state.deps.db
        collections = [await add_collection(db, workspace, f"C{n}", owner_id) for n in range(10)]
        await add_documents(db, workspace, collections, [owner_id], 1000)
        # Statistics of the empty tables say nothing of these rows: the planner takes the
        # workspace's index in update order and reads documents until it has 26 of the
        # collection's 100.
        assert await _statistics(first) == []
        assert await _plan(first, workspace, collections[0]) == (
            "SEARCH documents USING INDEX ix_documents_workspace_updated (workspace_id=?)"
        )
        filter_plan = await _plan(first, workspace, collections[0], COLLECTION_FILTER)
        assert filter_plan == FILTER_INDEX
        # The pool's connections opened before this ANALYZE reload the statistics when next
        # checked out (they would otherwise keep planning without them).
        await analyse_sqlite(first.state.engine)
        assert await _plan(first, workspace, collections[0]) == COLLECTION_INDEX

    second = create_app(settings)
    async with second.router.lifespan_context(second):
        stats = await eventually(lambda: _statistics(second), within=30, what="ANALYZE")
        assert ("ix_documents_collection_updated", "1000 100 1") in stats
        assert await _plan(second, workspace, collections[0]) == COLLECTION_INDEX
        filter_plan = await _plan(second, workspace, collections[0], COLLECTION_FILTER)
        assert filter_plan == FILTER_INDEX


async def _analysed(app) -> bool:
    async with app.state.engine.connect() as connection:
        found = await connection.execute(
            text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
        )
        return bool(found.scalar_one())
