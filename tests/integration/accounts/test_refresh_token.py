"""refreshToken rotation, reuse detection and signOut, checked against the database."""

import asyncio

from sqlalchemy import select

from base.models import RefreshToken
from tests.support.graphql import GraphQLClient, sign_up


async def _refresh(client: GraphQLClient, token: str) -> dict:
    return (await client.op("RefreshToken", {"input": {"refreshToken": token}}))["refreshToken"]


def _error(code: str, message: str) -> dict:
    return {"session": None, "errors": [{"code": code, "field": None, "message": message}]}


REUSED = _error("TOKEN_REUSED", "This refresh token was already used; sign in again.")
INVALID = _error("TOKEN_INVALID", "This refresh token is not valid.")


async def test_rotation_spends_the_old_token(client: GraphQLClient):
    first = await sign_up(client, "Ada", "ada@example.com")
    second = await _refresh(client, first["refreshToken"])
    assert second["errors"] == []
    assert second["session"]["refreshToken"] != first["refreshToken"]
    assert second["session"]["user"]["id"] == first["user"]["id"]
    third = await _refresh(client, second["session"]["refreshToken"])
    assert third["errors"] == []


async def test_reuse_revokes_the_whole_family(client: GraphQLClient, db):
    first = await sign_up(client, "Ada", "ada@example.com")
    second = (await _refresh(client, first["refreshToken"]))["session"]
    assert await _refresh(client, first["refreshToken"]) == REUSED
    assert await _refresh(client, second["refreshToken"]) == INVALID
    async with db() as s:
        rows = (await s.execute(select(RefreshToken))).scalars().all()
    assert len(rows) == 2
    assert all(row.revoked_at is not None for row in rows)


async def test_concurrent_refreshes_with_one_token_issue_one_session(client: GraphQLClient, db):
    first = await sign_up(client, "Ada", "ada@example.com")
    results = await asyncio.gather(*[_refresh(client, first["refreshToken"]) for _ in range(5)])
    winners = [r for r in results if r["errors"] == []]
    assert len(winners) == 1
    assert [r for r in results if r["errors"]] == [REUSED] * 4
    async with db() as s:
        assert len((await s.execute(select(RefreshToken))).scalars().all()) == 2


async def test_sign_out_revokes_and_is_idempotent(client: GraphQLClient):
    session = await sign_up(client, "Ada", "ada@example.com")
    out = await client.op("SignOut", {"input": {"refreshToken": session["refreshToken"]}})
    assert out["signOut"] == {"signedOut": True, "errors": []}
    assert await _refresh(client, session["refreshToken"]) == INVALID
    again = await client.op("SignOut", {"input": {"refreshToken": "never-issued"}})
    assert again["signOut"] == {"signedOut": True, "errors": []}
