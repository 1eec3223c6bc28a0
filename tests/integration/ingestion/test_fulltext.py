"""The full-text index of chunks on PostgreSQL (tsvector, GIN) and SQLite (FTS5): stemming,
dotted names, headings, workspace scoping, rebuilding without duplicates, and rows that go with
their document. Chunks are written directly; no model is involved."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Uuid, bindparam, delete, text

from base.models.documents import Chunk, Document
from services import fulltext
from tests.integration.ingestion.conftest import library_of
from tests.support.graphql import first_workspace, sign_up, uuid_of
from tests.support.seed import add_collection, add_documents

PASSAGES = [
    (
        ["venv — Creation of virtual environments"],
        "The venv module supports creating "
        "lightweight virtual environments, each with its own independent set of Python packages.",
    ),
    (
        ["venv — Creation of virtual environments", "API"],
        "Call os.path.join() to build the "
        "path; getpass.GetPassWarning is raised when the password may be echoed.",
    ),
    (
        ["Shared MIME-info Database"],
        "Applications running on the desktop identify files by "
        "their magic numbers, stored in /usr/share/mime.",
    ),
]


async def add_chunks(db, document_id: uuid.UUID, workspace_id: uuid.UUID) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in PASSAGES]
    async with db.begin() as session:
        await session.execute(delete(Chunk).where(Chunk.document_id == document_id))
        session.add_all(
            Chunk(
                id=chunk_id,
                document_id=document_id,
                workspace_id=workspace_id,
                position=n,
                text=body,
                heading_path=headings,
                char_start=0,
                char_end=len(body),
                token_count=10,
            )
            for n, (chunk_id, (headings, body)) in enumerate(zip(ids, PASSAGES, strict=True))
        )
    return ids


async def index(db, document_id: uuid.UUID) -> int:
    async with db.begin() as session:
        return await fulltext.index_document(session, document_id)


async def search(db, workspace_id: uuid.UUID, query: str) -> list[uuid.UUID]:
    async with db() as session:
        return await fulltext.matching_chunk_ids(
            session, workspace_id=workspace_id, query=query, limit=10
        )


async def rows(db, table: str) -> int:
    """Rows of a full-text table (the FTS5 table on SQLite, chunk_search on both)."""
    async with db() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_words_stems_dotted_names_and_headings_find_their_chunk(any_db_client, any_db_app):
    db = any_db_app.state.deps.db
    library = await library_of(any_db_client, any_db_app)
    [document] = await add_documents(
        db, library.workspace_id, [library.collection_id], [library.owner_id], 1
    )
    venv, api, mime = await add_chunks(db, document, library.workspace_id)
    assert await index(db, document) == 3

    assert await search(db, library.workspace_id, "packages") == [venv]
    # English stemming on both databases: "creating" and "create" share a stem.
    assert await search(db, library.workspace_id, "create environments") == [venv]
    assert await search(db, library.workspace_id, "run desktop") == [mime]
    # A part of a dotted or slashed name, and the whole name.
    assert await search(db, library.workspace_id, "join") == [api]
    assert await search(db, library.workspace_id, "GetPassWarning") == [api]
    assert await search(db, library.workspace_id, "os.path.join") == [api]
    assert await search(db, library.workspace_id, "share mime") == [mime]
    # The heading path is indexed: "API" is only a heading.
    assert await search(db, library.workspace_id, "api") == [api]
    # Every word is required.
    assert await search(db, library.workspace_id, "packages password") == []
    assert await search(db, library.workspace_id, "") == []


@pytest.mark.parametrize(
    "query",
    ['"unbalanced', "NEAR(venv packages)", "venv*", "-packages", "text:venv", "a OR", "(", "'"],
)
async def test_query_syntax_in_user_text_is_only_words(any_db_client, any_db_app, query):
    db = any_db_app.state.deps.db
    library = await library_of(any_db_client, any_db_app)
    [document] = await add_documents(
        db, library.workspace_id, [library.collection_id], [library.owner_id], 1
    )
    await add_chunks(db, document, library.workspace_id)
    await index(db, document)
    assert isinstance(await search(db, library.workspace_id, query), list)


async def test_reindexing_replaces_rows_and_rows_leave_with_their_document(
    any_db_client, any_db_app, any_db_settings
):
    tables = ["chunk_search", "chunk_fts"] if any_db_settings.is_sqlite else ["chunk_search"]
    db = any_db_app.state.deps.db
    library = await library_of(any_db_client, any_db_app)
    first, second = await add_documents(
        db, library.workspace_id, [library.collection_id], [library.owner_id], 2
    )
    await add_chunks(db, first, library.workspace_id)
    await add_chunks(db, second, library.workspace_id)
    assert (await index(db, first), await index(db, second)) == (3, 3)
    assert (await index(db, first), await index(db, first)) == (3, 3)
    assert [await rows(db, t) for t in tables] == [6] * len(tables)
    assert len(await search(db, library.workspace_id, "join")) == 2

    # New chunks (as CHUNKING writes them) drop the old rows with the old chunks.
    new_ids = await add_chunks(db, first, library.workspace_id)
    assert [await rows(db, t) for t in tables] == [3] * len(tables)
    await index(db, first)
    assert new_ids[1] in await search(db, library.workspace_id, "join")

    # A deleted document takes its rows with it (foreign keys, and the FTS5 trigger).
    async with db.begin() as session:
        await session.execute(delete(Document).where(Document.id == second))
    assert [await rows(db, t) for t in tables] == [3] * len(tables)
    assert await search(db, library.workspace_id, "join") == [new_ids[1]]
    async with db() as session:
        left = await session.execute(
            text("SELECT count(*) FROM chunk_search WHERE document_id = :d").bindparams(
                bindparam("d", second, type_=Uuid)
            )
        )
        assert left.scalar_one() == 0


async def test_a_search_sees_only_its_workspace(any_db_client, any_db_app):
    db = any_db_app.state.deps.db
    library = await library_of(any_db_client, any_db_app)
    other = await sign_up(any_db_client, "Mallory Outsider", "outsider@example.com")
    other_workspace = uuid_of((await first_workspace(any_db_client, other["accessToken"]))["id"])
    other_owner = uuid_of(other["user"]["id"])
    other_collection = await add_collection(db, other_workspace, "Theirs", other_owner)
    [mine] = await add_documents(
        db, library.workspace_id, [library.collection_id], [library.owner_id], 1
    )
    [theirs] = await add_documents(db, other_workspace, [other_collection], [other_owner], 1)
    my_chunks = await add_chunks(db, mine, library.workspace_id)
    their_chunks = await add_chunks(db, theirs, other_workspace)
    await index(db, mine)
    await index(db, theirs)
    assert await search(db, library.workspace_id, "join") == [my_chunks[1]]
    assert await search(db, other_workspace, "join") == [their_chunks[1]]
