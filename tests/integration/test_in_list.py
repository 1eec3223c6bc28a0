"""`in_list` (ADR 0133): a list of ids bound by name matches the same rows on PostgreSQL and
SQLite, whatever its length, and on PostgreSQL every length is one SQL text.
"""

import uuid

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from base.db.types import in_list, utcnow
from base.models.accounts import User
from tests.support.databases import count_statements

# Built once, as the services' statements are: each execution binds its own list.
_USERS_IN = select(User.email).where(in_list(User.id, "ids")).order_by(User.email)


async def test_a_list_of_any_length_matches_exactly_its_rows(any_db_app):
    engine: AsyncEngine = any_db_app.state.engine
    ids = [uuid.uuid4() for _ in range(30)]
    emails = [f"in-list-{n:02}@example.com" for n in range(30)]
    async with engine.begin() as connection:
        await connection.execute(
            insert(User),
            [
                {
                    "id": i,
                    "email": e,
                    "name": "In List",
                    "password_hash": "-",
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
                for i, e in zip(ids, emails, strict=True)
            ],
        )
    unknown = uuid.uuid4()
    cases = {
        "none": ([], []),
        "one": ([ids[7]], [emails[7]]),
        "two and an unknown id": ([ids[3], unknown, ids[1]], [emails[1], emails[3]]),
        "all thirty": (ids, emails),
        "a repeated id": ([ids[5], ids[5]], [emails[5]]),
    }
    with count_statements(engine) as sent:
        async with engine.connect() as connection:
            for name, (asked, expected) in cases.items():
                rows = (await connection.execute(_USERS_IN, {"ids": asked})).scalars().all()
                assert rows == expected, name
    ours = [s for s in sent if "FROM users" in s]
    assert len(ours) == len(cases)
    if engine.dialect.name == "postgresql":
        # One text for every length: prepared once by asyncpg, nothing rendered per call.
        assert len(set(ours)) == 1
        assert "users.id = ANY (" in ours[0]
    else:
        # SQLite's expanding IN: one placeholder per item (none for an empty list).
        assert [s.count("?") for s in ours] == [0, 1, 3, 30, 2]
