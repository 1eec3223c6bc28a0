"""Benchmark: what a read by a list of ids costs the API's CPU on PostgreSQL (ADR 0133).

    uv run --frozen python bench/bench_id_lists.py [--rounds N] [--calls N]

A script, not a test: it prints figures and asserts nothing about time. On a private PostgreSQL
(the one tests use) it writes 25 users, then reads them by id through one open read session
(autocommit, as a request's reads are: ADR 0076) with statements built once, as the services'
are. Variants, for lists of 1 and of 25 ids:

  orm IN        select(User) with SQLAlchemy's expanding IN (how the services read before)
  orm in_list   select(User) with `in_list`: `= ANY(:ids)` on PostgreSQL (how they read now)
  core IN       the users' columns, Core rows, expanding IN
  core in_list  the users' columns, Core rows, `in_list`
  mapped cols   the same columns named through the mapping (`User.id`, ...: an ORM-enabled
                select of columns, Core-like rows), `in_list`
  connection    `core in_list` sent through the session's AsyncConnection, not the Session
  read session  `mapped cols` through the app's read session (base.db.engine.ReadSession,
                ADR 0135: a select of columns runs on its connection), how the services read
  asyncpg       the same SQL text sent by asyncpg alone: no SQLAlchemy (a floor, not a path the
                app takes)

Each variant runs `--calls` reads per round, the variants take turns within a round, and the
figure is the median over `--rounds` of the process's CPU per read; ratios are to `orm IN`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `base`, `tests`, ... importable
    sys.path.insert(0, str(ROOT))

from sqlalchemy import bindparam, insert, select  # noqa: E402
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine  # noqa: E402

import base.models  # noqa: E402,F401  (every table on the metadata)
from base.db.base import Base  # noqa: E402
from base.db.engine import ReadSession  # noqa: E402
from base.db.types import in_list, utcnow  # noqa: E402
from base.models.accounts import User  # noqa: E402
from tests.support.services import postgres_server  # noqa: E402

_USERS = User.__table__
_EXPANDING = bindparam("ids", expanding=True)
STATEMENTS = {
    "orm IN": select(User).where(User.id.in_(_EXPANDING)),
    "orm in_list": select(User).where(in_list(User.id, "ids")),
    "core IN": select(*_USERS.c).where(_USERS.c.id.in_(_EXPANDING)),
    "core in_list": select(*_USERS.c).where(in_list(_USERS.c.id, "ids")),
    "mapped cols": select(*(getattr(User, c.key) for c in _USERS.c)).where(in_list(User.id, "ids")),
}
RAW_SQL = (
    "SELECT email, name, password_hash, created_at, updated_at, id FROM users WHERE id = ANY($1)"
)


async def measure(rounds: int, calls: int) -> None:
    with postgres_server() as url:
        engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
        ids = [uuid.uuid4() for _ in range(25)]
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            await connection.execute(
                insert(User),
                [
                    {
                        "id": i,
                        "email": f"reader-{n}@example.com",
                        "name": f"Reader {n}",
                        "password_hash": "-",
                        "created_at": utcnow(),
                        "updated_at": utcnow(),
                    }
                    for n, i in enumerate(ids)
                ],
            )
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        reads = async_sessionmaker(autocommit)
        app_reads = async_sessionmaker(autocommit, sync_session_class=ReadSession)
        async with reads() as session, app_reads() as read_session:
            connection = await session.connection()
            driver = (await connection.get_raw_connection()).driver_connection
            for size in (1, 25):
                asked = ids[:size]
                variants = _variants(session, read_session, driver, asked)
                for read in variants.values():  # warm: compiled, prepared, cached
                    for _ in range(100):
                        assert len(await read()) == size
                spent: dict[str, list[float]] = {name: [] for name in variants}
                for r in range(rounds):
                    names = list(variants)
                    for name in names[r % len(names) :] + names[: r % len(names)]:
                        started = time.process_time()
                        for _ in range(calls):
                            await variants[name]()
                        spent[name].append((time.process_time() - started) / calls * 1e3)
                base = statistics.median(spent["orm IN"])
                print(f"  {size} id{'s' if size > 1 else ''}, {size} row{'s' if size > 1 else ''}:")
                for name, figures in spent.items():
                    cpu = statistics.median(figures)
                    print(f"    {name:<13} {cpu:6.3f} ms CPU a read   x{cpu / base:4.2f}")
        await engine.dispose()


def _variants(
    session: Any, read_session: Any, driver: Any, asked: list[uuid.UUID]
) -> dict[str, Callable[[], Awaitable[list[Any]]]]:
    def orm(stmt: Any) -> Callable[[], Awaitable[list[Any]]]:
        async def read() -> list[Any]:
            users = (await session.execute(stmt, {"ids": asked})).scalars().all()
            session.expunge_all()  # as each turn of a request's reads does
            return [(u.id, u.name, u.email) for u in users]

        return read

    def core(stmt: Any) -> Callable[[], Awaitable[list[Any]]]:
        async def read() -> list[Any]:
            rows = (await session.execute(stmt, {"ids": asked})).all()
            return [(r.id, r.name, r.email) for r in rows]

        return read

    async def through_connection() -> list[Any]:
        connection = await session.connection()
        rows = (await connection.execute(STATEMENTS["core in_list"], {"ids": asked})).all()
        return [(r.id, r.name, r.email) for r in rows]

    async def raw() -> list[Any]:
        return [(r["id"], r["name"], r["email"]) for r in await driver.fetch(RAW_SQL, asked)]

    variants = {
        name: (orm if name.startswith("orm") else core)(s) for name, s in STATEMENTS.items()
    }

    async def through_read_session() -> list[Any]:
        rows = (await read_session.execute(STATEMENTS["mapped cols"], {"ids": asked})).all()
        return [(r.id, r.name, r.email) for r in rows]

    variants["connection"] = through_connection
    variants["read session"] = through_read_session
    variants["asyncpg"] = raw
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=500, help="reads per variant per round")
    args = parser.parse_args(argv)
    print(
        f"Reads by a list of ids on PostgreSQL: Python {sys.version.split()[0]}, median CPU of "
        f"{args.rounds} rounds of {args.calls} reads per variant"
    )
    asyncio.run(measure(args.rounds, args.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
