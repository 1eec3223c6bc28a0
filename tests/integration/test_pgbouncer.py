"""The app behind a real PgBouncer 1.18 in transaction mode (ADR 0118), in front of the suite's
PostgreSQL, with two server connections for every client: each transaction may reach a server
connection that another client's transaction used just before, or another than its last."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from base.db.engine import build_engine
from base.settings import Settings
from tests.support.app_fixtures import changed, client_of, started_app
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.services import pgbouncer_server

PEOPLE = 5


@pytest.fixture(scope="module")
def bouncer(migrated_postgres: str) -> Iterator[str]:
    with pgbouncer_server(migrated_postgres, pool_size=2) as url:
        yield Settings(database_url=url).database_url


async def _collections_of(client: GraphQLClient, index: int) -> list[str]:
    """Person `index` signs up, names two collections at once, and lists them."""
    session = await sign_up(client, f"Reader {index}", f"reader{index}@example.com")
    token = session["accessToken"]
    workspace_id = (await first_workspace(client, token))["id"]
    created = await asyncio.gather(
        *(
            client.op(
                "CreateCollection",
                {"input": {"workspaceId": workspace_id, "name": f"Shelf {index}.{n}"}},
                token=token,
            )
            for n in (1, 2)
        )
    )
    assert [c["createCollection"]["errors"] for c in created] == [[], []]
    listed = await client.op("Collections", {"workspaceId": workspace_id}, token=token)
    documents = await client.op("DocumentsList", {"workspaceId": workspace_id}, token=token)
    assert documents["workspace"]["documents"]["totalCount"] == 0
    return sorted(e["node"]["name"] for e in listed["workspace"]["collections"]["edges"])


async def test_the_app_works_through_pgbouncer_in_transaction_mode(
    settings: Settings, bouncer: str
) -> None:
    through = changed(settings, database_url=bouncer, database_pooler="pgbouncer")
    async with started_app(through) as app, client_of(app) as client:
        found = await asyncio.gather(*(_collections_of(client, i) for i in range(PEOPLE)))
        assert found == [[f"Shelf {i}.1", f"Shelf {i}.2"] for i in range(PEOPLE)]


async def test_without_the_setting_pgbouncer_refuses_the_connection(
    settings: Settings, bouncer: str
) -> None:
    """The app's usual connections send pgvector's settings as startup parameters, which
    PgBouncer refuses."""
    engine = build_engine(changed(settings, database_url=bouncer))
    try:
        with pytest.raises(Exception, match="unsupported startup parameter"):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def test_statements_kept_prepared_are_lost_behind_pgbouncer(migrated_postgres: str) -> None:
    """As asyncpg and SQLAlchemy do by default: a statement prepared once per client connection
    and kept. When that connection's next transaction reaches another server connection (the
    one it used is busy with another client's transaction), the statement is not there."""
    with pgbouncer_server(migrated_postgres, pool_size=2) as url:
        engine = create_async_engine(Settings(database_url=url).database_url)
        try:
            async with engine.connect() as first, engine.connect() as second:
                await first.execute(text("SELECT 1"))
                await first.commit()  # prepared on the server connection it had
                await second.execute(text("SELECT 2"))  # that one, held in a transaction
                with pytest.raises(DBAPIError, match="does not exist"):
                    await first.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
