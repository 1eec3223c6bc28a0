"""signIn: generic wrong-credentials error, and rate limits per account and per address."""

from sqlalchemy import func, select

from base.models import RefreshToken
from tests.support.graphql import GraphQLClient, sign_up

WRONG = {"code": "INVALID_CREDENTIALS", "field": None, "message": "Wrong email or password."}
LIMITED = {
    "code": "RATE_LIMITED",
    "field": None,
    "message": "Too many sign-in attempts. Wait a few minutes and try again.",
}


async def _sign_in(client: GraphQLClient, email: str, password: str) -> dict:
    data = await client.op("SignIn", {"input": {"email": email, "password": password}})
    return data["signIn"]


async def test_sign_in_returns_a_session(client: GraphQLClient):
    await sign_up(client, "Ada", "ada@example.com", "a long pass phrase")
    result = await _sign_in(client, " ADA@example.com", "a long pass phrase")
    assert result["errors"] == []
    assert result["session"]["user"]["email"] == "ada@example.com"
    shell = await client.op("AppShell", token=result["session"]["accessToken"])
    assert shell["me"]["name"] == "Ada"


async def test_wrong_password_and_unknown_email_look_the_same(client: GraphQLClient, db):
    await sign_up(client, "Ada", "ada@example.com", "a long pass phrase")
    assert await _sign_in(client, "ada@example.com", "wrong pass phrase") == {
        "session": None,
        "errors": [WRONG],
    }
    assert await _sign_in(client, "nobody@example.com", "a long pass phrase") == {
        "session": None,
        "errors": [WRONG],
    }
    async with db() as s:  # only the sign-up session exists
        assert (await s.execute(select(func.count()).select_from(RefreshToken))).scalar_one() == 1


async def test_attempts_are_limited_per_account(client: GraphQLClient, settings):
    assert settings.sign_in_attempts_per_account == "10/5minutes"
    await sign_up(client, "Ada", "ada@example.com", "a long pass phrase")
    for _ in range(10):
        assert (await _sign_in(client, "ada@example.com", "guess guess guess"))["errors"] == [WRONG]
    # The right password no longer helps: the account's window is full.
    assert await _sign_in(client, "ada@example.com", "a long pass phrase") == {
        "session": None,
        "errors": [LIMITED],
    }
    # Another account from the same address is not affected by this account's limit.
    await sign_up(client, "Bob", "bob@example.com", "another pass phrase")
    assert (await _sign_in(client, "bob@example.com", "another pass phrase"))["errors"] == []


async def test_attempts_are_limited_per_client_address(client: GraphQLClient, settings):
    assert settings.sign_in_attempts_per_address == "30/5minutes"
    for i in range(30):
        result = await _sign_in(client, f"user{i}@example.com", "whatever pass")
        assert result["errors"] == [WRONG]
    assert (await _sign_in(client, "fresh@example.com", "whatever pass"))["errors"] == [LIMITED]
