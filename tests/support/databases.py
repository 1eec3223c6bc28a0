"""Fresh databases of their own on the live PostgreSQL, for suites that run real processes; and
counting the statements an engine sends."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrate
from base.settings import Settings


def plain_postgres(url: str, database: str | None = None) -> str:
    """postgresql://... (asyncpg's spelling), optionally pointing at another database."""
    parts = urlsplit(url)
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit(("postgresql", parts.netloc, path, parts.query, parts.fragment))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def fresh_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """A new, migrated database named `<prefix>_<random>`; dropped on exit."""
    admin_url = plain_postgres(postgres_url)
    name = f"{prefix}_{secrets.token_hex(6)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    url = plain_postgres(postgres_url, name)
    try:
        migrate.upgrade(Settings(database_url=url).database_url)
        yield url
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements `engine` sends while the block runs, in order."""
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


_EXTRACTED_TEXT = re.compile(r"\bdocuments(_\d+)?\.(text|headings)\b")


def extracted_text_reads(statements: list[str]) -> list[str]:
    """The statements that read a document's extracted text or headings (only ingestion should:
    a screen's views never need them)."""
    return [s for s in statements if _EXTRACTED_TEXT.search(s)]
