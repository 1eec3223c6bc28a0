"""An HTTP request's reads share one database session (ADR 0076), on PostgreSQL and SQLite.

The loaders of a screen take turns on it, so a screen takes one connection from the pool
whatever it shows; a row written by another session between two reads of the shared session is
read anew by the second (each turn starts with an empty identity map); a refused request, and a
read that outlives its request, leave no connection checked out; and a read of columns runs on
the session's connection while a read of mapped objects keeps the ORM's path (ADR 0135).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import CursorResult, event, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncEngine

from base.db.engine import RequestReads
from base.models.documents import Collection, Document
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.seed import add_collection, add_documents, global_id, uuid_of


@contextmanager
def count_checkouts(engine: AsyncEngine) -> Iterator[list[int]]:
    """How many connections the block takes from `engine`'s pool."""
    taken: list[int] = []

    def record(*_args: object) -> None:
        taken.append(1)

    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", record)
    try:
        yield taken
    finally:
        event.remove(pool, "checkout", record)


async def _library(client: GraphQLClient, app: Any) -> tuple[str, str, str]:
    """A signed-up owner's token, their workspace's id and one READY document's id."""
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    workspace_id = uuid_of(workspace["id"])
    owner_id = uuid_of(owner["user"]["id"])
    db = app.state.deps.db
    collection = await add_collection(db, workspace_id, "Guides", owner_id)
    [document] = await add_documents(
        db, workspace_id, [collection], [owner_id], 1, tags=("a",), chunks=3
    )
    return owner["accessToken"], workspace["id"], global_id("Document", document)


async def test_a_screen_takes_one_connection_for_all_its_loaders(
    any_db_client: GraphQLClient, any_db_app
):
    token, workspace_id, document_id = await _library(any_db_client, any_db_app)
    engine = any_db_app.state.engine
    with count_checkouts(engine) as detail_checkouts:
        detail = await any_db_client.op(
            "DocumentDetail",
            {"id": document_id, "chunksFirst": 25, "runsFirst": 25},
            token=token,
        )
    with count_checkouts(engine) as list_checkouts:
        listed = await any_db_client.op(
            "DocumentsList", {"workspaceId": workspace_id, "first": 25}, token=token
        )
    assert detail["document"]["title"] == "doc 000"
    assert detail["document"]["tags"] == ["a"]
    assert [e["node"]["position"] for e in detail["document"]["chunks"]["edges"]] == [0, 1, 2]
    assert [e["node"]["id"] for e in listed["workspace"]["documents"]["edges"]] == [document_id]
    # Eight statements for the detail and four for the list (test_query_counts), each screen
    # over one connection.
    assert (len(detail_checkouts), len(list_checkouts)) == (1, 1)


async def test_a_write_between_two_reads_of_one_request_is_seen_by_the_second(
    any_db_client: GraphQLClient, any_db_app
):
    token, _workspace_id, document_id = await _library(any_db_client, any_db_app)
    db = any_db_app.state.deps.db
    reads = RequestReads(any_db_app.state.read_db)
    document_uuid = uuid_of(document_id)
    try:
        async with reads.session() as session:
            before = await session.get(Document, document_uuid)
            assert before is not None and before.title == "doc 000"
        async with db.begin() as session:  # another session writes and commits meanwhile
            await session.execute(
                update(Document).where(Document.id == document_uuid).values(title="Renamed")
            )
        async with reads.session() as session:
            after = await session.execute(select(Document).where(Document.id == document_uuid))
            assert after.scalar_one().title == "Renamed"
    finally:
        await reads.close()


async def test_a_refused_request_returns_its_connection(any_db_client: GraphQLClient, any_db_app):
    token, workspace_id, _document_id = await _library(any_db_client, any_db_app)
    pool = any_db_app.state.engine.sync_engine.pool
    checked_out_before = pool.checkedout()
    # A malformed cursor is refused after the workspace was read through the request's session.
    result = await any_db_client.execute(
        'query($w: ID!) { workspace(id: $w) { id documents(after: "bad") { totalCount } } }',
        {"w": workspace_id},
        token=token,
    )
    assert result["data"]["workspace"] is None
    assert [e["extensions"]["code"] for e in result["errors"]] == ["INVALID_CURSOR"]
    assert pool.checkedout() == checked_out_before


async def test_a_read_after_its_request_ended_returns_its_connection(
    any_db_client: GraphQLClient, any_db_app
):
    """A loader still reading when its request's reads were closed (a sibling field's error
    ended the operation) used to make a new shared session that nobody closed: its connection
    stayed checked out until the garbage collector found it."""
    _token, _workspace_id, document_id = await _library(any_db_client, any_db_app)
    pool = any_db_app.state.engine.sync_engine.pool
    checked_out_before = pool.checkedout()
    reads = RequestReads(any_db_app.state.read_db)
    async with reads.session() as session:
        await session.execute(select(Document.title).where(Document.id == uuid_of(document_id)))
    await reads.close()
    assert pool.checkedout() == checked_out_before
    async with reads.session() as session:  # the late read
        title = await session.execute(
            select(Document.title).where(Document.id == uuid_of(document_id))
        )
        assert title.scalar_one() == "doc 000"
        assert pool.checkedout() == checked_out_before + 1
    assert pool.checkedout() == checked_out_before
    await reads.close()  # a second close is harmless
    assert pool.checkedout() == checked_out_before


async def test_a_read_of_columns_runs_on_the_connection_with_the_rows_the_orm_gives(
    any_db_client: GraphQLClient, any_db_app
):
    _token, _workspace_id, document_id = await _library(any_db_client, any_db_app)
    document_uuid = uuid_of(document_id)
    columns = select(Document.id, Document.title, Document.key_points, Document.created_at).where(
        Document.id == document_uuid
    )
    names = union_all(
        select(Document.title.label("name")).where(Document.id == document_uuid),
        select(Collection.name).join(Document, Document.collection_id == Collection.id),
    )
    async with any_db_app.state.deps.db() as session:  # a plain session: the ORM's path
        orm_rows = (await session.execute(columns)).all()
        orm_names = sorted((await session.execute(names)).scalars())
    reads = RequestReads(any_db_app.state.read_db)
    try:
        async with reads.session() as session:
            result = await session.execute(columns)
            assert isinstance(result, CursorResult)  # the connection's own result
            rows = result.all()
            named = await session.execute(names)
            assert isinstance(named, CursorResult)
            read_names = sorted(named.scalars())
            objects = await session.execute(select(Document).where(Document.id == document_uuid))
            assert not isinstance(objects, CursorResult)  # mapped objects: the ORM's path
            [document] = objects.scalars().all()
    finally:
        await reads.close()
    assert rows == orm_rows
    assert [tuple(r._mapping) for r in rows] == [("id", "title", "key_points", "created_at")]
    assert rows[0].title == "doc 000" and rows[0].id == document_uuid
    assert read_names == orm_names == ["Guides", "doc 000"]
    assert isinstance(document, Document) and document.title == "doc 000"


async def test_a_utc_column_reads_back_as_the_same_instant_in_utc(any_db_client, any_db_app):
    """Written with another offset, read back aware and in UTC on both databases (asyncpg gives
    UTC itself; SQLite's naive text gets the zone), through the read session and the ORM."""
    _token, _workspace_id, document_id = await _library(any_db_client, any_db_app)
    document_uuid = uuid_of(document_id)
    written = datetime(2026, 12, 5, 18, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5.5)))
    async with any_db_app.state.deps.db.begin() as session:
        await session.execute(
            update(Document).where(Document.id == document_uuid).values(updated_at=written)
        )
    column = select(Document.updated_at).where(Document.id == document_uuid)
    reads = RequestReads(any_db_app.state.read_db)
    try:
        async with reads.session() as session:
            read = (await session.execute(column)).scalar_one()
            mapped = (
                await session.execute(select(Document).where(Document.id == document_uuid))
            ).scalar_one()
    finally:
        await reads.close()
    for value in (read, mapped.updated_at):
        assert value == written
        assert value.tzinfo is UTC
        assert value.utcoffset() == timedelta(0)
        assert (value.hour, value.minute, value.microsecond) == (13, 0, 123456)
