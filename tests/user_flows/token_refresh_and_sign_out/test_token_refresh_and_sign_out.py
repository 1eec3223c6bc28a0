"""User flow: token refresh and sign out (docs/user_flows/token_refresh_and_sign_out/README.md).

Each `# Step N` below is the step of the same number in that README.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from base.auth.tokens import hash_secret, issue_access_token
from base.models import RefreshToken
from base.settings import Settings
from tests.support.graphql import GraphQLClient, operation, sign_up, uuid_of

EMAIL = "tess@example.com"
PASSWORD = "a long pass phrase"
OTHER_SECRET = "not-the-servers-secret-0123456789abcdefgh"

TOKEN_REUSED = "This refresh token was already used; sign in again."
TOKEN_INVALID = "This refresh token is not valid."
WRONG_CREDENTIALS = "Wrong email or password."
RATE_LIMITED = "Too many sign-in attempts. Wait a few minutes and try again."


def error(code: str, message: str, field: str | None = None) -> list[dict[str, Any]]:
    return [{"code": code, "message": message, "field": field}]


async def sign_in(client: GraphQLClient, email: str = EMAIL, password: str = PASSWORD) -> dict:
    return (await client.op("SignIn", {"input": {"email": email, "password": password}}))["signIn"]


async def refresh(client: GraphQLClient, refresh_token: str) -> dict[str, Any]:
    data = await client.op("RefreshToken", {"input": {"refreshToken": refresh_token}})
    return data["refreshToken"]


async def row(db, refresh_token: str) -> RefreshToken:
    async with db() as s:
        return (
            await s.execute(
                select(RefreshToken).where(RefreshToken.token_hash == hash_secret(refresh_token))
            )
        ).scalar_one()


async def family(db, family_id: uuid.UUID) -> list[RefreshToken]:
    async with db() as s:
        return list(
            (
                await s.execute(
                    select(RefreshToken)
                    .where(RefreshToken.family_id == family_id)
                    .order_by(RefreshToken.created_at)
                )
            ).scalars()
        )


async def me_works(client: GraphQLClient, access_token: str, user_id: str) -> bool:
    return (await client.op("AppShell", token=access_token))["me"]["id"] == user_id


async def test_token_refresh_and_sign_out(client: GraphQLClient, db, settings: Settings):
    # Step 1 — SignUp: Tess has an account (and the sign-up's own session).
    signed_up = await sign_up(client, "Tess Token", EMAIL, PASSWORD)
    user_id = signed_up["user"]["id"]

    # Step 2 — SignIn: a new session (access + refresh token).
    first = await sign_in(client)
    assert first["errors"] == []
    s1 = first["session"]
    assert s1["user"]["id"] == user_id
    assert s1["refreshToken"] != signed_up["refreshToken"]
    assert await me_works(client, s1["accessToken"], user_id)
    s1_row = await row(db, s1["refreshToken"])

    # Step 3 — RefreshToken: both tokens rotate; the presented refresh token is now spent.
    second = await refresh(client, s1["refreshToken"])
    assert second["errors"] == []
    s2 = second["session"]
    assert s2["user"] == {"id": user_id}
    assert s2["accessToken"] != s1["accessToken"]
    assert s2["refreshToken"] != s1["refreshToken"]
    assert await me_works(client, s2["accessToken"], user_id)
    spent, newest = await row(db, s1["refreshToken"]), await row(db, s2["refreshToken"])
    assert spent.used_at is not None and spent.revoked_at is None
    assert newest.family_id == s1_row.family_id
    assert (newest.used_at, newest.revoked_at) == (None, None)

    # Step 4 — RefreshToken with the spent token again: TOKEN_REUSED, the whole family revoked.
    reused = await refresh(client, s1["refreshToken"])
    assert reused == {"session": None, "errors": error("TOKEN_REUSED", TOKEN_REUSED)}
    tokens = await family(db, s1_row.family_id)
    assert len(tokens) == 2
    assert all(t.revoked_at is not None for t in tokens)
    # The sign-up's session is another family: untouched.
    assert (await row(db, signed_up["refreshToken"])).revoked_at is None

    # Step 5 — RefreshToken with the newest token of that family: TOKEN_INVALID (revoked too).
    assert await refresh(client, s2["refreshToken"]) == {
        "session": None,
        "errors": error("TOKEN_INVALID", TOKEN_INVALID),
    }
    # ...and the spent one stays TOKEN_REUSED; no new token was issued by any of this.
    assert (await refresh(client, s1["refreshToken"]))["errors"] == error(
        "TOKEN_REUSED", TOKEN_REUSED
    )
    assert len(await family(db, s1_row.family_id)) == 2

    # Step 6 — SignIn again: a fresh session that works.
    third = await sign_in(client)
    assert third["errors"] == []
    s3 = third["session"]
    assert await me_works(client, s3["accessToken"], user_id)
    s3_family = (await row(db, s3["refreshToken"])).family_id
    assert s3_family != s1_row.family_id

    # Step 7 — SignOut with the session's refresh token: signed out, its family revoked.
    signed_out = await client.op("SignOut", {"input": {"refreshToken": s3["refreshToken"]}})
    assert signed_out["signOut"] == {"signedOut": True, "errors": []}
    assert all(t.revoked_at is not None for t in await family(db, s3_family))

    # Step 8 — RefreshToken after signing out: TOKEN_INVALID, no session.
    assert await refresh(client, s3["refreshToken"]) == {
        "session": None,
        "errors": error("TOKEN_INVALID", TOKEN_INVALID),
    }
    # Signing out again, or with a token the server never issued, is harmless.
    for token in (s3["refreshToken"], "never-issued"):
        again = await client.op("SignOut", {"input": {"refreshToken": token}})
        assert again["signOut"] == {"signedOut": True, "errors": []}

    # Step 9 — the sign-up's session (another family) still refreshes.
    other = await refresh(client, signed_up["refreshToken"])
    assert other["errors"] == []
    assert other["session"]["user"] == {"id": user_id}

    # Step 10 — AppShell with an expired access token: top-level TOKEN_EXPIRED, no data.
    user_uuid = uuid_of(user_id)
    expired, _ = issue_access_token(
        user_uuid,
        secret=settings.jwt_secret,
        now=datetime.now(UTC) - timedelta(hours=1),
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    result = await client.execute(operation("AppShell"), token=expired)
    assert result["data"] is None
    [top] = result["errors"]
    assert top["message"] == "The access token has expired."
    assert top["extensions"]["code"] == "TOKEN_EXPIRED"
    assert top["extensions"]["requestId"]

    # Step 11 — AppShell with a forged access token (signed with another secret): TOKEN_INVALID.
    forged, _ = issue_access_token(
        user_uuid, secret=OTHER_SECRET, now=datetime.now(UTC), ttl_seconds=900
    )
    result = await client.execute(operation("AppShell"), token=forged)
    assert result["data"] is None
    [top] = result["errors"]
    assert top["message"] == "The access token is not valid."
    assert top["extensions"]["code"] == "TOKEN_INVALID"
    assert top["extensions"]["requestId"]


async def test_wrong_credentials_never_say_which_and_sign_in_is_rate_limited(
    client: GraphQLClient, db
):
    # Step 1 — SignUp: Tess, and Uma (another account, signed in from the same address).
    await sign_up(client, "Tess Token", EMAIL, PASSWORD)
    await sign_up(client, "Uma User", "uma@example.com", PASSWORD)
    async with db() as s:
        sessions_before = (
            await s.execute(select(func.count()).select_from(RefreshToken))
        ).scalar_one()

    # Step 12 — SignIn with an unknown email and with a wrong password: the same answer.
    unknown = await sign_in(client, "nobody@example.com", PASSWORD)
    wrong = await sign_in(client, EMAIL, "a wrong pass phrase")
    expected = {"session": None, "errors": error("INVALID_CREDENTIALS", WRONG_CREDENTIALS)}
    assert unknown == wrong == expected

    # Step 13 — SignIn 10 times per email in 5 minutes at most: the 11th is RATE_LIMITED even
    # with the right password, and no session is made.
    for _ in range(9):  # attempts 2..10 for Tess's email
        assert await sign_in(client, EMAIL, "a wrong pass phrase") == expected
    limited = await sign_in(client, EMAIL, PASSWORD)
    assert limited == {"session": None, "errors": error("RATE_LIMITED", RATE_LIMITED)}
    # Uma's account is not locked by Tess's attempts.
    assert (await sign_in(client, "uma@example.com", PASSWORD))["errors"] == []

    # Step 14 — SignIn 30 times per client address at most: then RATE_LIMITED for any email.
    # So far from this address: 1 (unknown) + 10 (Tess) + 1 (the limited one) + 1 (Uma) = 13.
    for i in range(17):
        assert await sign_in(client, f"guess{i}@example.com", PASSWORD) == expected
    assert await sign_in(client, "uma@example.com", PASSWORD) == {
        "session": None,
        "errors": error("RATE_LIMITED", RATE_LIMITED),
    }
    async with db() as s:
        sessions_after = (
            await s.execute(select(func.count()).select_from(RefreshToken))
        ).scalar_one()
    assert sessions_after == sessions_before + 1  # only Uma's one successful sign-in
