"""signUp: a user, a personal workspace they own, and a session."""

import httpx
from sqlalchemy import func, select

from base.models import Membership, RefreshToken, Role, User, Workspace
from tests.support.graphql import GraphQLClient, sign_up


async def test_sign_up_creates_user_owned_workspace_and_session(client: GraphQLClient, db):
    session = await sign_up(client, "Grace Hopper", "Grace@Example.com")

    assert session["user"]["name"] == "Grace Hopper"
    assert session["user"]["email"] == "grace@example.com"
    assert session["user"]["initials"] == "GH"
    shell = await client.op("AppShell", token=session["accessToken"])
    assert shell["me"]["email"] == "grace@example.com"
    assert shell["workspaces"]["totalCount"] == 1
    assert shell["workspaces"]["edges"][0]["node"]["name"] == "Grace Hopper's workspace"
    assert shell["workspaces"]["edges"][0]["node"]["viewerRole"] == "OWNER"
    async with db() as s:
        assert (await s.execute(select(func.count()).select_from(User))).scalar_one() == 1
        assert (await s.execute(select(Membership.role))).scalar_one() is Role.OWNER
        assert (await s.execute(select(func.count()).select_from(RefreshToken))).scalar_one() == 1


async def test_template_syntax_reaches_the_database_verbatim(client: GraphQLClient, db):
    name = "${name} ${password} $${x}"
    password = "pw-${jwt_secret}-${password}"
    session = await sign_up(client, name, "tpl@example.com", password)

    assert session["user"]["name"] == name
    async with db() as s:
        user = (await s.execute(select(User))).scalar_one()
        workspace = (await s.execute(select(Workspace))).scalar_one()
    assert user.name == name
    assert workspace.name == f"{name}'s workspace"
    signed_in = await client.op(
        "SignIn", {"input": {"email": "tpl@example.com", "password": password}}
    )
    assert signed_in["signIn"]["errors"] == []


async def test_email_taken_weak_password_and_invalid_email_change_nothing(
    client: GraphQLClient, db
):
    await sign_up(client, "First", "taken@example.com")
    cases = [
        (
            {"name": "X", "email": "TAKEN@example.com", "password": "a long pass phrase"},
            {
                "code": "EMAIL_TAKEN",
                "field": "email",
                "message": "An account with this email exists.",
            },
        ),
        (
            {"name": "X", "email": "new@example.com", "password": "short"},
            {
                "code": "WEAK_PASSWORD",
                "field": "password",
                "message": "Use at least 10 characters.",
            },
        ),
        (
            {"name": "X", "email": "new@example.com", "password": "aaaaaaaaaaaa"},
            {
                "code": "WEAK_PASSWORD",
                "field": "password",
                "message": "This password is too easy to guess.",
            },
        ),
        (
            {"name": "X", "email": "not-an-email", "password": "a long pass phrase"},
            {
                "code": "INVALID_EMAIL",
                "field": "email",
                "message": "This is not a valid email address.",
            },
        ),
        (
            {"name": "   ", "email": "new@example.com", "password": "a long pass phrase"},
            {"code": "REQUIRED", "field": "name", "message": "This cannot be empty."},
        ),
        (
            {"name": "N" * 100_000, "email": "new@example.com", "password": "a long pass phrase"},
            {"code": "TOO_LONG", "field": "name", "message": "Use at most 200 characters."},
        ),
        (
            {"name": "X", "email": "a" * 300 + "@example.com", "password": "a long pass phrase"},
            {
                "code": "INVALID_EMAIL",
                "field": "email",
                "message": "This email address is too long.",
            },
        ),
        (
            {"name": "X", "email": "new@example.com", "password": "p" * 5000 + "qrs!"},
            {
                "code": "WEAK_PASSWORD",
                "field": "password",
                "message": "Use at most 256 characters.",
            },
        ),
    ]
    for variables, error in cases:
        data = await client.op("SignUp", {"input": variables})
        assert data["signUp"] == {"session": None, "errors": [error]}, variables["email"]
    async with db() as s:
        assert (await s.execute(select(func.count()).select_from(User))).scalar_one() == 1
        assert (await s.execute(select(func.count()).select_from(Workspace))).scalar_one() == 1


async def test_sign_ups_are_limited_per_client_address(client: GraphQLClient, app, db, settings):
    """Each sign-up costs an argon2 hash: past the address's window, RATE_LIMITED and nothing
    written, while another address still signs up."""
    assert settings.sign_up_attempts_per_address == "10/hour"
    for n in range(10):
        await sign_up(client, f"User {n}", f"user{n}@example.com")
    refused = await client.op(
        "SignUp",
        {
            "input": {
                "name": "Eleven",
                "email": "eleven@example.com",
                "password": "a long pass phrase",
            }
        },
    )
    assert refused["signUp"] == {
        "session": None,
        "errors": [
            {
                "code": "RATE_LIMITED",
                "field": None,
                "message": "Too many sign-ups from this address. Try again later.",
            }
        ],
    }
    async with db() as s:
        assert (await s.execute(select(func.count()).select_from(User))).scalar_one() == 10
        assert (await s.execute(select(func.count()).select_from(Workspace))).scalar_one() == 10
        assert (await s.execute(select(func.count()).select_from(RefreshToken))).scalar_one() == 10
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        elsewhere = await sign_up(GraphQLClient(http), "Eleven", "eleven@example.com")
    assert elsewhere["user"]["email"] == "eleven@example.com"
