"""The API end to end: a real uvicorn process on a fresh PostgreSQL database and Redis, driven
over real HTTP (httpx) and a real WebSocket (websockets, graphql-transport-ws).

The module's server has its own database (`e2e_<random>`, created here, dropped at the end) so
the in-process tests' per-test truncation never touches it; every test signs up its own users
with unique emails. "Nothing was written" is checked from the database itself: row count and a
digest of every row of users, workspaces, memberships, invites and refresh tokens.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from graphql import OperationDefinitionNode, build_schema, parse, validate
from strawberry import relay
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from base.auth.tokens import issue_access_token
from tests.support.databases import fresh_database
from tests.support.graphql import GraphQLClient, operation, uuid_of
from tests.support.live_server import live_server
from tests.support.uploads import upload, watch_uploads

ROOT = Path(__file__).resolve().parents[2]
SDL = ROOT / "graphql" / "schema.graphql"
OPERATIONS = sorted(p.stem for p in (ROOT / "graphql" / "operations").glob("*.graphql"))

JWT_SECRET = "e2e-live-server-jwt-secret-0123456789abc"  # 40 characters
OTHER_SECRET = "someone-elses-jwt-secret-0123456789abcde"
PUBLIC_WEB_URL = "https://desk.example.test"
PASSWORD = "a long pass phrase"
WS_PROTOCOL = "graphql-transport-ws"
# What the operations before the model check of test_every_operation_document_... record in the
# workspace's activity, in order (it replays them all before the run's events).
EARLIER_ACTIVITY = [
    "MEMBER_INVITED",  # InviteMember
    "MEMBER_JOINED",  # AcceptInvite
    "MEMBER_ROLE_CHANGED",  # ChangeMemberRole
    "WORKSPACE_RENAMED",  # RenameWorkspace
    "MEMBER_REMOVED",  # RemoveMember
    "MEMBER_INVITED",  # InviteMember, to be revoked
    "INVITE_REVOKED",  # RevokeInvite
]
TABLES = ("users", "workspaces", "memberships", "invites", "refresh_tokens")
# A bound on waiting for an answer that should come at once: only a hang (a document expanded
# exponentially, requests queued behind a cap) reaches it. No test asserts how long a request took.
ANSWERED_WITHIN = 30.0

assert len(JWT_SECRET) == 40 and len(OTHER_SECRET) == 40

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow(seconds=90)]


# --- the server and its database -----------------------------------------------------------------


@pytest.fixture(scope="module")
def e2e_database(postgres_url: str) -> Iterator[str]:
    """A fresh, migrated database of its own on the live PostgreSQL; dropped afterwards."""
    with fresh_database(postgres_url, "e2e") as url:
        yield url


def _other_redis_db(url: str) -> str:
    """The same Redis server, database 9: the in-process tests flush database 0."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return url
    return urlunsplit((parts.scheme, parts.netloc, "/9", parts.query, parts.fragment))


@pytest.fixture(scope="module")
def server(
    e2e_database: str, redis_url: str, ollama_host: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = {
        "BLOB_ROOT": str(tmp_path_factory.mktemp("blobs")),
        # Runs execute in the API process (queue mode and workers: tests/e2e/test_runs_e2e.py).
        "RUN_EXECUTION": "inline",
        "OLLAMA_HOST": ollama_host,
        "APP_ENV": "test",
        "DATABASE_URL": e2e_database,
        "REDIS_URL": _other_redis_db(redis_url),
        "JWT_SECRET": JWT_SECRET,
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
        "PUBLIC_WEB_URL": PUBLIC_WEB_URL,
        "LOG_LEVEL": "WARNING",
    }
    with live_server(env) as base_url:
        yield base_url


@pytest.fixture
async def api(server: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server, timeout=60) as http:
        yield GraphQLClient(http)


@pytest.fixture
def ws_url(server: str) -> str:
    return server.replace("http://", "ws://", 1) + "/graphql"


# --- helpers -------------------------------------------------------------------------------------


async def snapshot(database_url: str) -> dict[str, tuple[int, str | None]]:
    """Per table: row count and an md5 of all its rows (any insert, update or delete shows)."""
    connection = await asyncpg.connect(database_url)
    try:
        return {
            table: tuple(
                await connection.fetchrow(
                    f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t"
                )
            )
            for table in TABLES
        }
    finally:
        await connection.close()


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def sign_up(api: GraphQLClient, name: str, prefix: str) -> dict[str, Any]:
    data = await api.op(
        "SignUp", {"input": {"name": name, "email": unique_email(prefix), "password": PASSWORD}}
    )
    assert data["signUp"]["errors"] == [], data
    return data["signUp"]["session"]


async def workspace_of(api: GraphQLClient, token: str) -> dict[str, Any]:
    data = await api.op("AppShell", token=token)
    return data["workspaces"]["edges"][0]["node"]


def expired_token(user_global_id: str) -> str:
    token, _ = issue_access_token(
        uuid_of(user_global_id),
        secret=JWT_SECRET,
        now=datetime.now(UTC) - timedelta(hours=2),
        ttl_seconds=60,
    )
    return token


def forged_token(user_global_id: str) -> str:
    token, _ = issue_access_token(
        uuid_of(user_global_id), secret=OTHER_SECRET, now=datetime.now(UTC), ttl_seconds=900
    )
    return token


def top_level_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one top-level error of a response, checked for status, code and request id."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["extensions"]["code"] == code, body
    request_id = error["extensions"].get("requestId")
    assert isinstance(request_id, str) and request_id, f"no extensions.requestId: {body}"
    return body


async def next_messages(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(count)]


async def closed_by_server(ws: ClientConnection) -> tuple[int, str, list[dict[str, Any]]]:
    """Read until the server closes; its close code and reason and what it sent before."""
    received: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    assert closed.value.rcvd is not None, "the connection dropped without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason, received


def subscribe_me_live(message_id: str = "1") -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "subscribe",
        "payload": {"query": operation("MeLive"), "operationName": "MeLive"},
    }


# --- WebSocket (graphql-transport-ws) ------------------------------------------------------------


async def test_ws_me_live_sends_the_user_once_then_completes(api: GraphQLClient, ws_url: str):
    session = await sign_up(api, "Ada Lovelace", "ws-ok")
    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as ws:
        assert ws.subprotocol == WS_PROTOCOL
        await ws.send(
            json.dumps(
                {
                    "type": "connection_init",
                    "payload": {"authorization": f"Bearer {session['accessToken']}"},
                }
            )
        )
        [ack] = await next_messages(ws, 1)
        assert ack["type"] == "connection_ack", ack
        await ws.send(json.dumps(subscribe_me_live("me-1")))
        sent, done = await next_messages(ws, 2)
    assert sent == {
        "id": "me-1",
        "type": "next",
        "payload": {
            "data": {
                "me": {
                    "id": session["user"]["id"],
                    "name": "Ada Lovelace",
                    "email": session["user"]["email"],
                    "initials": "AL",
                }
            }
        },
    }
    assert done == {"id": "me-1", "type": "complete"}


BAD_CONNECTION_INITS = [
    "missing payload",
    "payload without authorization",
    "authorization not a string",
    "not a bearer authorization",
    "bearer without token",
    "malformed token",
    "forged token",
    "expired token",
]


@pytest.mark.parametrize("case", BAD_CONNECTION_INITS)
async def test_ws_connection_init_without_a_valid_token_is_closed_4403(
    api: GraphQLClient, ws_url: str, case: str
):
    session = await sign_up(api, "Ws Reject", "ws-reject")
    user_id = session["user"]["id"]
    init: dict[str, Any] = {"type": "connection_init"}
    payloads: dict[str, Any] = {
        "payload without authorization": {"token": session["accessToken"]},
        "authorization not a string": {"authorization": ["Bearer", session["accessToken"]]},
        "not a bearer authorization": {"authorization": f"Token {session['accessToken']}"},
        "bearer without token": {"authorization": "Bearer "},
        "malformed token": {"authorization": "Bearer not.a.jwt"},
        "forged token": {"authorization": f"Bearer {forged_token(user_id)}"},
        "expired token": {"authorization": f"Bearer {expired_token(user_id)}"},
    }
    if case in payloads:
        init["payload"] = payloads[case]
    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send(json.dumps(init))
        # A subscribe right behind the init must not be answered either.
        await ws.send(json.dumps(subscribe_me_live()))
        code, reason, received = await closed_by_server(ws)
    assert (code, reason) == (4403, "Forbidden")
    assert received == [], "nothing (no connection_ack, no data) before the close"


async def test_ws_connection_init_payload_not_an_object_is_closed_4400(ws_url: str):
    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": "Bearer x"}))
        code, reason, received = await closed_by_server(ws)
    assert (code, reason, received) == (4400, "Invalid connection init payload", [])


async def test_ws_subscribe_before_connection_init_is_closed_4401(ws_url: str):
    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send(json.dumps(subscribe_me_live()))
        code, reason, received = await closed_by_server(ws)
    assert (code, reason, received) == (4401, "Unauthorized", [])


async def test_ws_invalid_json_is_closed_4400_before_and_after_init(
    api: GraphQLClient, ws_url: str
):
    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send("{not json")
        code, reason, received = await closed_by_server(ws)
    assert (code, reason, received) == (4400, "WebSocket message must be valid JSON", [])

    session = await sign_up(api, "Json After", "ws-json")
    init = json.dumps(
        {
            "type": "connection_init",
            "payload": {"authorization": f"Bearer {session['accessToken']}"},
        }
    )
    # A lone surrogate in a subscription's variables is not JSON a message may carry either.
    lone_surrogate = json.dumps(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": operation("RunProgress"), "variables": {"runId": "R \ud800"}},
        }
    )
    for message in ("{not json", lone_surrogate):
        closed = await closed_after_init(ws_url, init, message)
        assert closed == (4400, "WebSocket message must be valid JSON", [])


async def test_ws_second_connection_init_is_closed_4429(api: GraphQLClient, ws_url: str):
    session = await sign_up(api, "Twice Init", "ws-twice")
    init = json.dumps(
        {
            "type": "connection_init",
            "payload": {"authorization": f"Bearer {session['accessToken']}"},
        }
    )
    closed = await closed_after_init(ws_url, init, init)
    assert closed == (4429, "Too many initialisation requests", [])


async def closed_after_init(ws_url: str, init: str, message: str) -> tuple[int, str, list[Any]]:
    """How the server closes a socket it acknowledged once `message` follows."""
    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send(init)
        [ack] = await next_messages(ws, 1)
        assert ack["type"] == "connection_ack"
        await ws.send(message)
        return await closed_by_server(ws)


# --- bad input over real HTTP: exact error, and nothing written ----------------------------------


async def test_malformed_json_body_is_400_bad_request(api: GraphQLClient, e2e_database: str):
    before = await snapshot(e2e_database)
    response = await api.http.post(
        "/graphql",
        content=b'{"query": "mutation { signUp(',
        headers={"content-type": "application/json"},
    )
    body = top_level_error(response, 400, "BAD_REQUEST")
    assert body["errors"][0]["message"] == "Unable to parse request body as JSON"
    assert await snapshot(e2e_database) == before


async def test_json_that_is_not_i_json_is_400_bad_request_and_writes_nothing(
    api: GraphQLClient, e2e_database: str
):
    """A lone surrogate (an escape no text can hold), NaN and numbers beyond a double are not
    JSON a request may send: refused before any resolver runs. A lone surrogate reached the
    services before and failed there as INTERNAL on both databases."""
    session = await sign_up(api, "Strict Json", "strict-json")
    token = session["accessToken"]
    workspace = await workspace_of(api, token)
    before = await snapshot(e2e_database)
    signed_out = {
        "input": {"name": "A \ud800", "email": unique_email("lone"), "password": PASSWORD}
    }
    bodies = [
        (json.dumps({"query": operation("SignUp"), "variables": signed_out}), None),
        (
            json.dumps(
                {
                    "query": operation("CreateCollection"),
                    "variables": {"input": {"workspaceId": workspace["id"], "name": "G \udc80"}},
                }
            ),
            token,
        ),
        (
            json.dumps(
                {
                    "query": operation("Search"),
                    "variables": {"workspaceId": workspace["id"], "query": "venv \ud83d"},
                }
            ),
            token,
        ),
        ('{"query": "query ($n: Int) { __typename }", "variables": {"n": NaN}}', None),
        ('{"query": "query ($n: Float) { __typename }", "variables": {"n": 1e400}}', None),
    ]
    for body, bearer in bodies:
        assert "\\ud" in body or "NaN" in body or "1e400" in body  # as a client would send it
        headers = {"content-type": "application/json"}
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        response = await api.http.post("/graphql", content=body.encode(), headers=headers)
        error = top_level_error(response, 400, "BAD_REQUEST")
        assert error["errors"][0]["message"] == "Unable to parse request body as JSON"
    assert await snapshot(e2e_database) == before

    # A pair of surrogate escapes is one character: stored and answered as UTF-8 text.
    rename = {
        "query": operation("RenameWorkspace"),
        "variables": {"input": {"workspaceId": workspace["id"], "name": "Notes \ud83d\ude00"}},
    }
    renamed = await api.http.post(
        "/graphql",
        content=json.dumps(rename).encode(),  # the escapes "\\ud83d\\ude00", as JSON has them
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    assert renamed.status_code == 200, renamed.text
    workspace_after = renamed.json()["data"]["renameWorkspace"]["workspace"]
    assert workspace_after["name"] == "Notes \U0001f600"
    shell = await api.http.post(
        "/graphql",
        json={"query": operation("AppShell")},
        headers={"authorization": f"Bearer {token}"},
    )
    assert "Notes \U0001f600".encode() in shell.content  # not escaped: UTF-8 as is


async def test_body_without_query_is_400_bad_request(api: GraphQLClient, e2e_database: str):
    before = await snapshot(e2e_database)
    variables = {"input": {"name": "N", "email": unique_email("noquery"), "password": PASSWORD}}
    response = await api.http.post("/graphql", json={"variables": variables})
    body = top_level_error(response, 400, "BAD_REQUEST")
    assert body["errors"][0]["message"] == "No GraphQL query found in the request"
    assert await snapshot(e2e_database) == before


async def test_unknown_operation_name_is_operation_not_found(api: GraphQLClient, e2e_database: str):
    before = await snapshot(e2e_database)
    variables = {"input": {"name": "N", "email": unique_email("noop"), "password": PASSWORD}}
    response = await api.post(operation("SignUp"), variables, operation_name="SignUpTwice")
    body = top_level_error(response, 400, "OPERATION_NOT_FOUND")
    assert body["errors"][0]["message"] == 'Unknown operation named "SignUpTwice".'
    assert await snapshot(e2e_database) == before


async def test_syntax_error_is_graphql_parse_failed(api: GraphQLClient, e2e_database: str):
    before = await snapshot(e2e_database)
    response = await api.post('mutation { signUp(input: {name: "N" ')
    body = top_level_error(response, 200, "GRAPHQL_PARSE_FAILED")
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("Syntax Error:")
    assert await snapshot(e2e_database) == before


async def test_unknown_field_is_graphql_validation_failed(api: GraphQLClient, e2e_database: str):
    before = await snapshot(e2e_database)
    arguments = f'name: "N", email: "{unique_email("unknown")}", password: "{PASSWORD}"'
    query = (
        "mutation { signUp(input: {" + arguments + "}) { session { accessToken } secretBackdoor } }"
    )
    response = await api.post(query)
    body = top_level_error(response, 200, "GRAPHQL_VALIDATION_FAILED")
    assert body["data"] is None
    assert "secretBackdoor" in body["errors"][0]["message"]
    assert await snapshot(e2e_database) == before


async def test_missing_required_variable_is_bad_user_input(api: GraphQLClient, e2e_database: str):
    before = await snapshot(e2e_database)
    response = await api.post(operation("SignUp"), {})
    body = top_level_error(response, 200, "BAD_USER_INPUT")
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("Variable '$input'")
    assert await snapshot(e2e_database) == before


async def test_wrong_variable_type_in_an_input_is_bad_user_input(
    api: GraphQLClient, e2e_database: str
):
    before = await snapshot(e2e_database)
    variables = {"input": {"name": 5, "email": unique_email("wrongtype"), "password": PASSWORD}}
    response = await api.post(operation("SignUp"), variables)
    body = top_level_error(response, 200, "BAD_USER_INPUT")
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("Variable '$input'"), body
    assert await snapshot(e2e_database) == before


async def test_wrong_variable_type_for_first_is_bad_user_input(
    api: GraphQLClient, e2e_database: str
):
    session = await sign_up(api, "First X", "firstx")
    before = await snapshot(e2e_database)
    response = await api.post(operation("AppShell"), {"first": "x"}, token=session["accessToken"])
    body = top_level_error(response, 200, "BAD_USER_INPUT")
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("Variable '$first'"), body
    assert await snapshot(e2e_database) == before


async def test_negative_first_is_bad_user_input(api: GraphQLClient, e2e_database: str):
    session = await sign_up(api, "First Neg", "firstneg")
    before = await snapshot(e2e_database)
    response = await api.post(operation("AppShell"), {"first": -1}, token=session["accessToken"])
    body = top_level_error(response, 200, "BAD_USER_INPUT")
    assert body["errors"][0]["message"] == "`first` must be 0 or more."
    assert body["errors"][0]["extensions"]["field"] == "first"
    assert await snapshot(e2e_database) == before


async def test_two_megabyte_body_is_413_payload_too_large(api: GraphQLClient, e2e_database: str):
    before = await snapshot(e2e_database)
    name = "N" * 2_000_000
    variables = {"input": {"name": name, "email": unique_email("huge"), "password": PASSWORD}}
    response = await api.post(operation("SignUp"), variables)
    body = top_level_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert body["errors"][0]["message"] == "The request body is larger than 1000000 bytes."
    assert await snapshot(e2e_database) == before


async def test_two_megabyte_chunked_body_without_length_is_413(
    api: GraphQLClient, e2e_database: str
):
    before = await snapshot(e2e_database)
    variables = {
        "input": {"name": "N" * 2_000_000, "email": unique_email("chunk"), "password": PASSWORD}
    }
    raw = json.dumps({"query": operation("SignUp"), "variables": variables}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 64 * 1024):
            yield raw[start : start + 64 * 1024]

    response = await api.http.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    top_level_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert await snapshot(e2e_database) == before


async def test_150_kb_names_are_too_long_payload_errors(api: GraphQLClient, e2e_database: str):
    session = await sign_up(api, "Long Names", "longname")
    workspace = await workspace_of(api, session["accessToken"])
    before = await snapshot(e2e_database)
    name = "N" * 150_000

    signed_up = await api.op(
        "SignUp", {"input": {"name": name, "email": unique_email("long"), "password": PASSWORD}}
    )
    renamed = await api.op(
        "RenameWorkspace",
        {"input": {"workspaceId": workspace["id"], "name": name}},
        token=session["accessToken"],
    )

    too_long = {"code": "TOO_LONG", "message": "Use at most 200 characters.", "field": "name"}
    assert signed_up["signUp"] == {"session": None, "errors": [too_long]}
    assert renamed["renameWorkspace"] == {"workspace": None, "errors": [too_long]}
    assert await snapshot(e2e_database) == before


async def test_invalid_email_is_a_payload_error(api: GraphQLClient, e2e_database: str):
    session = await sign_up(api, "Bad Email", "bademail")
    workspace = await workspace_of(api, session["accessToken"])
    before = await snapshot(e2e_database)

    signed_up = await api.op(
        "SignUp", {"input": {"name": "N", "email": "not an email", "password": PASSWORD}}
    )
    invited = await api.op(
        "InviteMember",
        {"input": {"workspaceId": workspace["id"], "email": "@example.com", "role": "EDITOR"}},
        token=session["accessToken"],
    )

    invalid = {
        "code": "INVALID_EMAIL",
        "message": "This is not a valid email address.",
        "field": "email",
    }
    assert signed_up["signUp"] == {"session": None, "errors": [invalid]}
    assert invited["inviteMember"] == {"invite": None, "inviteLink": None, "errors": [invalid]}
    assert await snapshot(e2e_database) == before


def exponential_fragments(count: int = 30) -> str:
    """F1 selects two fields; every F(n) spreads F(n-1) twice: 2**count fields once expanded."""
    fragments = ["fragment F1 on User { id name }"]
    fragments += [
        f"fragment F{n} on User {{ ...F{n - 1} ...F{n - 1} }}" for n in range(2, count + 1)
    ]
    return f"query Bomb {{ me {{ ...F{count} }} }}\n" + "\n".join(fragments)


async def test_exponential_fragments_are_query_too_complex_without_being_expanded(
    api: GraphQLClient, e2e_database: str
):
    session = await sign_up(api, "Frag Bomb", "fragbomb")
    before = await snapshot(e2e_database)
    # 2**30 fields once expanded: answered at all within the bound means it was not expanded.
    response = await asyncio.wait_for(
        api.post(exponential_fragments(30), token=session["accessToken"]), ANSWERED_WITHIN
    )
    body = top_level_error(response, 200, "QUERY_TOO_COMPLEX")
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith("Query is too complex:"), body
    # The server is still responsive straight after.
    assert (await api.op("AppShell", token=session["accessToken"]))["me"]["id"]
    assert await snapshot(e2e_database) == before


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "query Deep " + "{ a " * 20 + "}" * 20,
            "Query is too complex: depth 20 exceeds 12.",
        ),
        (
            "query Aliases { " + " ".join(f"a{i}: me {{ id }}" for i in range(101)) + " }",
            "Query is too complex: 101 aliases exceed 100.",
        ),
    ],
    ids=["depth", "aliases"],
)
async def test_deep_or_wide_documents_are_query_too_complex(
    api: GraphQLClient, e2e_database: str, document: str, message: str
):
    before = await snapshot(e2e_database)
    response = await asyncio.wait_for(api.post(document), ANSWERED_WITHIN)
    body = top_level_error(response, 200, "QUERY_TOO_COMPLEX")
    assert body["errors"][0]["message"] == message
    assert await snapshot(e2e_database) == before


MALFORMED_IDS = [
    "%%%not-base64%%%",
    "bm90IGEgZ2xvYmFsIGlk",
]  # the second: base64 of "not a global id"


@pytest.mark.parametrize("bad_id", MALFORMED_IDS, ids=["not-base64", "no-type-name"])
async def test_malformed_global_id_behaves_as_a_missing_id(
    api: GraphQLClient, e2e_database: str, bad_id: str
):
    """Queries answer null, mutations NOT_FOUND: exactly as for an id that does not exist."""
    session = await sign_up(api, "Bad Id", "badid")
    token = session["accessToken"]
    before = await snapshot(e2e_database)

    answers = {
        "Node": await api.execute(operation("Node"), {"id": bad_id}, token=token),
        "WorkspaceMembers": await api.execute(
            operation("WorkspaceMembers"), {"workspaceId": bad_id}, token=token
        ),
        "RenameWorkspace": await api.execute(
            operation("RenameWorkspace"),
            {"input": {"workspaceId": bad_id, "name": "X"}},
            token=token,
        ),
        "RemoveMember": await api.execute(
            operation("RemoveMember"), {"input": {"memberId": bad_id}}, token=token
        ),
        "RevokeInvite": await api.execute(
            operation("RevokeInvite"), {"input": {"inviteId": bad_id}}, token=token
        ),
        "DeleteWorkspace": await api.execute(
            operation("DeleteWorkspace"),
            {"input": {"workspaceId": bad_id, "name": "X"}},
            token=token,
        ),
    }

    no_workspace = [{"code": "NOT_FOUND", "message": "No such workspace.", "field": "workspaceId"}]
    no_member = [{"code": "NOT_FOUND", "message": "No such member.", "field": "memberId"}]
    no_invite = [{"code": "NOT_FOUND", "message": "No such invite.", "field": "inviteId"}]
    assert answers == {
        "Node": {"data": {"node": None}},
        "WorkspaceMembers": {"data": {"workspace": None}},
        "RenameWorkspace": {
            "data": {"renameWorkspace": {"workspace": None, "errors": no_workspace}}
        },
        "RemoveMember": {"data": {"removeMember": {"removedMemberId": None, "errors": no_member}}},
        "RevokeInvite": {"data": {"revokeInvite": {"invite": None, "errors": no_invite}}},
        "DeleteWorkspace": {
            "data": {"deleteWorkspace": {"deletedWorkspaceId": None, "errors": no_workspace}}
        },
    }
    assert await snapshot(e2e_database) == before


async def test_well_formed_ids_of_the_wrong_kind_behave_as_missing(
    api: GraphQLClient, e2e_database: str
):
    session = await sign_up(api, "Wrong Kind", "wrongkind")
    token = session["accessToken"]
    user_id = session["user"]["id"]  # a User id where a Workspace or Member id is expected
    not_a_uuid = str(relay.GlobalID("Workspace", "not-a-uuid"))
    unknown_type = str(relay.GlobalID("Document", str(uuid.uuid4())))
    before = await snapshot(e2e_database)

    for bad in (user_id, not_a_uuid, unknown_type):
        members = await api.op("WorkspaceMembers", {"workspaceId": bad}, token=token)
        assert members == {"workspace": None}, bad
        renamed = await api.op(
            "RenameWorkspace", {"input": {"workspaceId": bad, "name": "X"}}, token=token
        )
        assert renamed["renameWorkspace"] == {
            "workspace": None,
            "errors": [
                {"code": "NOT_FOUND", "message": "No such workspace.", "field": "workspaceId"}
            ],
        }, bad
    for bad in (not_a_uuid, unknown_type):
        assert await api.op("Node", {"id": bad}, token=token) == {"node": None}, bad
    assert await snapshot(e2e_database) == before


async def test_another_workspaces_ids_behave_exactly_as_missing_ids(
    api: GraphQLClient, e2e_database: str
):
    mallory = await sign_up(api, "Mallory Outsider", "mallory")
    alice = await sign_up(api, "Alice Owner", "alice")
    alice_ws = await workspace_of(api, alice["accessToken"])
    alice_members = await api.op(
        "WorkspaceMembers", {"workspaceId": alice_ws["id"]}, token=alice["accessToken"]
    )
    alice_member_id = alice_members["workspace"]["members"]["edges"][0]["node"]["id"]
    missing_ws = str(relay.GlobalID("Workspace", str(uuid.uuid4())))
    missing_member = str(relay.GlobalID("Member", str(uuid.uuid4())))
    token = mallory["accessToken"]
    before = await snapshot(e2e_database)

    async def as_mallory(workspace_id: str, member_id: str, user_id: str) -> list[Any]:
        return [
            await api.op("Node", {"id": workspace_id}, token=token),
            await api.op("Node", {"id": member_id}, token=token),
            await api.op("Node", {"id": user_id}, token=token),
            await api.op("WorkspaceMembers", {"workspaceId": workspace_id}, token=token),
            await api.op(
                "RenameWorkspace",
                {"input": {"workspaceId": workspace_id, "name": "Pwned"}},
                token=token,
            ),
            await api.op(
                "InviteMember",
                {
                    "input": {
                        "workspaceId": workspace_id,
                        "email": "mallory2@example.com",
                        "role": "OWNER",
                    }
                },
                token=token,
            ),
            await api.op(
                "ChangeMemberRole",
                {"input": {"memberId": member_id, "role": "VIEWER"}},
                token=token,
            ),
            await api.op("RemoveMember", {"input": {"memberId": member_id}}, token=token),
        ]

    foreign = await as_mallory(alice_ws["id"], alice_member_id, alice["user"]["id"])
    missing = await as_mallory(
        missing_ws, missing_member, str(relay.GlobalID("User", str(uuid.uuid4())))
    )

    assert foreign == missing
    assert foreign[:4] == [{"node": None}, {"node": None}, {"node": None}, {"workspace": None}]
    not_found_ws = [{"code": "NOT_FOUND", "message": "No such workspace.", "field": "workspaceId"}]
    not_found_member = [{"code": "NOT_FOUND", "message": "No such member.", "field": "memberId"}]
    assert foreign[4]["renameWorkspace"] == {"workspace": None, "errors": not_found_ws}
    assert foreign[5]["inviteMember"] == {
        "invite": None,
        "inviteLink": None,
        "errors": not_found_ws,
    }
    assert foreign[6]["changeMemberRole"] == {"member": None, "errors": not_found_member}
    assert foreign[7]["removeMember"] == {"removedMemberId": None, "errors": not_found_member}
    assert await snapshot(e2e_database) == before


async def test_expired_and_forged_tokens_are_refused(api: GraphQLClient, e2e_database: str):
    session = await sign_up(api, "Token Holder", "tokens")
    workspace = await workspace_of(api, session["accessToken"])
    before = await snapshot(e2e_database)
    cases = [
        (expired_token(session["user"]["id"]), "TOKEN_EXPIRED", "The access token has expired."),
        (forged_token(session["user"]["id"]), "TOKEN_INVALID", "The access token is not valid."),
        ("not.a.jwt", "TOKEN_INVALID", "The access token is not valid."),
    ]
    for token, code, message in cases:
        shell = await api.post(operation("AppShell"), token=token)
        body = top_level_error(shell, 200, code)
        assert body["data"] is None
        assert body["errors"][0]["message"] == message
        assert body["errors"][0]["path"] == ["me"]

        # A mutation with the same token: refused as data, nothing renamed.
        renamed = await api.op(
            "RenameWorkspace",
            {"input": {"workspaceId": workspace["id"], "name": "Renamed by a bad token"}},
            token=token,
        )
        assert renamed["renameWorkspace"] == {
            "workspace": None,
            "errors": [{"code": code, "message": message, "field": None}],
        }, code
    assert await snapshot(e2e_database) == before


# --- every frontend document validates and runs against the live server --------------------------


@pytest.mark.parametrize("name", OPERATIONS)
def test_operation_document_validates_against_the_sdl(name: str):
    schema = build_schema(SDL.read_text())
    document = parse(operation(name))
    assert validate(schema, document) == []
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert [op.name.value for op in operations if op.name] == [name], (
        f"{name}.graphql must hold exactly one operation named {name}"
    )


async def test_every_operation_document_executes_against_the_live_server(
    api: GraphQLClient, ws_url: str, e2e_database: str
):
    executed: set[str] = set()

    async def op(name: str, variables: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        data = await api.op(name, variables, **kw)  # fails on any top-level error
        for payload in data.values():
            if isinstance(payload, dict) and "errors" in payload:
                assert payload["errors"] == [], (name, payload)
        executed.add(name)
        return data

    owner_email, invitee_email = unique_email("all-owner"), unique_email("all-invitee")
    owner = (
        await op(
            "SignUp", {"input": {"name": "Olga Owner", "email": owner_email, "password": PASSWORD}}
        )
    )["signUp"]["session"]
    invitee = (
        await op(
            "SignUp",
            {"input": {"name": "Ivan Invitee", "email": invitee_email, "password": PASSWORD}},
        )
    )["signUp"]["session"]
    signed_in = (await op("SignIn", {"input": {"email": owner_email, "password": PASSWORD}}))[
        "signIn"
    ]["session"]
    refreshed = (await op("RefreshToken", {"input": {"refreshToken": signed_in["refreshToken"]}}))[
        "refreshToken"
    ]["session"]
    token = refreshed["accessToken"]
    assert refreshed["user"]["id"] == owner["user"]["id"]

    shell = await op("AppShell", {"first": 10}, token=token)
    workspace = shell["workspaces"]["edges"][0]["node"]
    members = await op("WorkspaceMembers", {"workspaceId": workspace["id"]}, token=token)
    assert members["workspace"]["members"]["totalCount"] == 1
    node = await op("Node", {"id": workspace["id"]}, token=token)
    assert node["node"]["__typename"] == "Workspace"

    invited = await op(
        "InviteMember",
        {"input": {"workspaceId": workspace["id"], "email": invitee_email, "role": "EDITOR"}},
        token=token,
    )
    link = invited["inviteMember"]["inviteLink"]
    assert link.startswith(f"{PUBLIC_WEB_URL}/invite/")
    accepted = await op(
        "AcceptInvite",
        {"input": {"token": link.rsplit("/", 1)[1]}},
        token=invitee["accessToken"],
    )
    assert accepted["acceptInvite"]["workspace"]["viewerRole"] == "EDITOR"
    members = await op("WorkspaceMembers", {"workspaceId": workspace["id"]}, token=token)
    [invitee_member] = [
        e["node"]
        for e in members["workspace"]["members"]["edges"]
        if e["node"]["user"]["id"] == invitee["user"]["id"]
    ]
    changed = await op(
        "ChangeMemberRole",
        {"input": {"memberId": invitee_member["id"], "role": "VIEWER"}},
        token=token,
    )
    assert changed["changeMemberRole"]["member"]["role"] == "VIEWER"
    renamed = await op(
        "RenameWorkspace",
        {"input": {"workspaceId": workspace["id"], "name": "Olga's team"}},
        token=token,
    )
    assert renamed["renameWorkspace"]["workspace"]["name"] == "Olga's team"
    removed = await op("RemoveMember", {"input": {"memberId": invitee_member["id"]}}, token=token)
    assert removed["removeMember"]["removedMemberId"] == invitee_member["id"]
    wrong_address = unique_email("all-wrong-address")
    await op(
        "InviteMember",
        {"input": {"workspaceId": workspace["id"], "email": wrong_address, "role": "ADMIN"}},
        token=token,
    )
    pending = await op("PendingInvites", {"workspaceId": workspace["id"]}, token=token)
    [sent_invite] = [e["node"] for e in pending["workspace"]["invites"]["edges"]]
    assert (sent_invite["email"], sent_invite["role"]) == (wrong_address, "ADMIN")
    revoked = await op("RevokeInvite", {"input": {"inviteId": sent_invite["id"]}}, token=token)
    assert revoked["revokeInvite"]["invite"]["id"] == sent_invite["id"]
    pending = await op("PendingInvites", {"workspaceId": workspace["id"]}, token=token)
    assert pending["workspace"]["invites"]["totalCount"] == 0

    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        [ack] = await next_messages(ws, 1)
        assert ack["type"] == "connection_ack"
        await ws.send(json.dumps(subscribe_me_live("all")))
        sent, done = await next_messages(ws, 2)
    assert sent["type"] == "next" and "errors" not in sent["payload"], sent
    assert sent["payload"]["data"]["me"]["email"] == owner_email
    assert done == {"id": "all", "type": "complete"}
    executed.add("MeLive")

    # Runs: a model check (screen 11), watched live, listed, detailed, retried and cancelled.
    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as activity:
        await activity.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        await next_messages(activity, 1)
        await activity.send(
            json.dumps(
                {
                    "id": "activity",
                    "type": "subscribe",
                    "payload": {
                        "query": operation("WorkspaceEvents"),
                        "operationName": "WorkspaceEvents",
                        # From the workspace's first event: the run below may start before the
                        # server listens, and a live-only feed would then miss RUN_QUEUED.
                        "variables": {"workspaceId": workspace["id"], "after": "0"},
                    },
                }
            )
        )
        started = await op("CheckModels", {"input": {"workspaceId": workspace["id"]}}, token=token)
        run_id = started["checkModels"]["run"]["id"]
        async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as progress:
            await progress.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
                )
            )
            await next_messages(progress, 1)
            await progress.send(
                json.dumps(
                    {
                        "id": "progress",
                        "type": "subscribe",
                        "payload": {
                            "query": operation("RunProgress"),
                            "operationName": "RunProgress",
                            "variables": {"runId": run_id},
                        },
                    }
                )
            )
            events = []
            while True:
                [message] = await next_messages(progress, 1)
                if message["type"] == "complete":
                    break
                assert "errors" not in message["payload"], message
                events.extend(message["payload"]["data"]["runProgress"])
        executed.add("RunProgress")
        assert events[-1]["type"] == "RUN_SUCCEEDED"
        assert [int(e["cursor"]) for e in events] == list(range(1, len(events) + 1))
        toasts = []
        while not toasts or toasts[-1]["type"] != "RUN_FINISHED":
            [message] = await next_messages(activity, 1)
            toasts.append(message["payload"]["data"]["workspaceEvents"])
        executed.add("WorkspaceEvents")
        # Stored events, with the run's live progress (the dashboard's bars) between them.
        stored = [t["type"] for t in toasts if t["type"] != "RUN_PROGRESS"]
        assert stored == [*EARLIER_ACTIVITY, "RUN_QUEUED", "RUN_STARTED", "RUN_FINISHED"]
        progress = [t["percent"] for t in toasts if t["type"] == "RUN_PROGRESS"]
        assert progress and progress == sorted(progress)
        assert toasts[-1]["run"]["status"] == "SUCCEEDED"
        # The shell's toast over all the user's workspaces, replayed from a position of 0 in
        # this one (base64url JSON {workspace uuid: last id}): the run's end, once.
        from_the_start = base64.urlsafe_b64encode(
            json.dumps({str(uuid_of(workspace["id"])): 0}).encode()
        ).decode()
        await activity.send(
            json.dumps(
                {
                    "id": "mine",
                    "type": "subscribe",
                    "payload": {
                        "query": operation("MyRunEvents"),
                        "operationName": "MyRunEvents",
                        "variables": {"after": from_the_start},
                    },
                }
            )
        )
        [mine] = await next_messages(activity, 1)
        assert mine["id"] == "mine" and "errors" not in mine["payload"], mine
        toast = mine["payload"]["data"]["myRunEvents"]
        assert (toast["type"], toast["runStatus"], toast["runId"], toast["workspaceId"]) == (
            "RUN_FINISHED",
            "SUCCEEDED",
            run_id,
            workspace["id"],
        )
        assert toast["message"] == toasts[-1]["message"]
        # Its cursor: the position after it, this workspace at the event's id.
        position = base64.urlsafe_b64decode(toast["cursor"] + "=" * (-len(toast["cursor"]) % 4))
        assert json.loads(position) == {str(uuid_of(workspace["id"])): int(toasts[-1]["cursor"])}
        executed.add("MyRunEvents")
    monitor = await op(
        "RunsMonitor", {"workspaceId": workspace["id"], "status": ["SUCCEEDED"]}, token=token
    )
    assert [e["node"]["id"] for e in monitor["workspace"]["runs"]["edges"]] == [run_id]
    detail = await op("RunDetail", {"runId": run_id, "first": 100}, token=token)
    assert detail["run"]["events"]["totalCount"] == len(events)
    dashboard = await op("Dashboard", {"workspaceId": workspace["id"]}, token=token)
    assert dashboard["workspace"]["activeRuns"]["totalCount"] == 0
    not_failed = await api.op("RetryRun", {"input": {"runId": run_id}}, token=token)
    assert [e["code"] for e in not_failed["retryRun"]["errors"]] == ["RUN_NOT_RETRYABLE"]
    executed.add("RetryRun")
    finished = await api.op("CancelRun", {"input": {"runId": run_id}}, token=token)
    assert [e["code"] for e in finished["cancelRun"]["errors"]] == ["RUN_FINISHED"]
    executed.add("CancelRun")

    # Screen 11, Models and Usage: the live model server's offer; the model check's tokens.
    models = (await op("WorkspaceModels", {"workspaceId": workspace["id"]}, token=token))[
        "workspace"
    ]["models"]
    assert (models["serverReachable"], models["chatModelOffered"]) == (True, True)
    assert models["embedModelOffered"] is True
    assert (models["chatModelChosen"], models["chatModel"]) == (False, models["defaultChatModel"])
    chosen = await op(
        "SetWorkspaceChatModel",
        {"input": {"workspaceId": workspace["id"], "chatModel": models["defaultChatModel"]}},
        token=token,
    )
    assert chosen["setWorkspaceChatModel"]["workspace"]["models"] == {
        "chatModel": models["defaultChatModel"],
        "chatModelChosen": True,
        "defaultChatModel": models["defaultChatModel"],
        "chatModelOffered": True,
    }
    not_offered = await api.op(
        "SetWorkspaceChatModel",
        {"input": {"workspaceId": workspace["id"], "chatModel": "no-such-model:1b"}},
        token=token,
    )
    assert [e["code"] for e in not_offered["setWorkspaceChatModel"]["errors"]] == [
        "MODEL_NOT_OFFERED"
    ]
    usage = (await op("WorkspaceUsage", {"workspaceId": workspace["id"]}, token=token))[
        "workspace"
    ]["usage"]
    connection = await asyncpg.connect(e2e_database)
    try:
        outputs = await connection.fetch(
            "SELECT s.output FROM run_steps s JOIN runs r ON r.id = s.run_id "
            "WHERE r.workspace_id = $1 AND s.output IS NOT NULL",
            uuid_of(workspace["id"]),
        )
    finally:
        await connection.close()
    recorded = [json.loads(row["output"])["value"] for row in outputs]
    assert (usage["documents"], usage["bytesStored"], usage["runs"]) == (0, 0.0, 1)
    assert usage["promptTokens"] == sum(o.get("prompt_tokens", 0) for o in recorded) > 0
    assert usage["completionTokens"] == sum(o.get("completion_tokens", 0) for o in recorded) > 0
    assert usage["embeddingTokens"] == sum(o.get("embedding_tokens", 0) for o in recorded) == 0

    # Screens 4, 5 and 7 on an empty workspace: documents arrive with uploads, so the document
    # actions run here against an id that exists nowhere (answered exactly like a foreign one).
    created = await op(
        "CreateCollection",
        {"input": {"workspaceId": workspace["id"], "name": "Manuals", "description": "${x}"}},
        token=token,
    )
    collection = created["createCollection"]["collection"]
    assert (collection["name"], collection["description"], collection["documentCount"]) == (
        "Manuals",
        "${x}",
        0,
    )
    renamed = await op(
        "UpdateCollection", {"input": {"id": collection["id"], "name": "Guides"}}, token=token
    )
    assert renamed["updateCollection"]["collection"]["name"] == "Guides"
    listed = await op("Collections", {"workspaceId": workspace["id"]}, token=token)
    assert [e["node"]["name"] for e in listed["workspace"]["collections"]["edges"]] == ["Guides"]
    documents = await op("DocumentsList", {"workspaceId": workspace["id"]}, token=token)
    assert documents["workspace"]["documents"]["totalCount"] == 0
    tags = await op("TagChoices", {"workspaceId": workspace["id"], "startsWith": "%"}, token=token)
    assert tags == {"workspace": {"id": workspace["id"], "tags": []}}
    nowhere = relay.to_base64("Document", str(uuid.uuid4()))
    assert await op("DocumentDetail", {"id": nowhere}, token=token) == {"document": None}
    missing = {"code": "NOT_FOUND", "message": "No such document.", "field": "ids.0"}
    moved = await api.op(
        "MoveDocuments",
        {"input": {"ids": [nowhere], "collectionId": collection["id"]}},
        token=token,
    )
    assert (moved["moveDocuments"]["documents"], moved["moveDocuments"]["errors"]) == (
        [],
        [missing],
    )
    executed.add("MoveDocuments")
    deleted = await api.op("DeleteDocuments", {"input": {"ids": [nowhere]}}, token=token)
    assert deleted["deleteDocuments"] == {"deletedIds": [], "errors": [missing]}
    executed.add("DeleteDocuments")
    reprocessed = await api.op("ReprocessDocuments", {"input": {"ids": [nowhere]}}, token=token)
    assert reprocessed["reprocessDocuments"] == {
        "documents": [],
        "runs": [],
        "errors": [missing],
    }
    executed.add("ReprocessDocuments")
    again = await api.op("ReprocessDocument", {"input": {"id": nowhere}}, token=token)
    assert again["reprocessDocument"] == {
        "document": None,
        "run": None,
        "errors": [{**missing, "field": "id"}],
    }
    executed.add("ReprocessDocument")
    edited = await api.op("UpdateDocument", {"input": {"id": nowhere, "title": "x"}}, token=token)
    assert edited["updateDocument"]["document"] is None
    assert [e["code"] for e in edited["updateDocument"]["errors"]] == ["NOT_FOUND"]
    executed.add("UpdateDocument")
    # Screen 8 on the empty workspace: nothing matches, in any mode; typed text is text.
    for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):
        searched = await op(
            "Search",
            {
                "workspaceId": workspace["id"],
                "query": 'create a "virtual environment" ${x} NEAR(a b) *',
                "mode": mode,
                "filter": {"collectionIds": [collection["id"]], "tags": ["python"]},
                "first": 5,
            },
            token=token,
        )
        assert searched["search"] == {
            "degraded": False,
            # Nothing in scope is close by meaning; KEYWORD does not rank by meaning.
            "closeMatch": None if mode == "KEYWORD" else False,
            "errors": [],
            "results": {
                "totalCount": 0,
                "pageInfo": {"hasNextPage": False, "endCursor": None},
                "edges": [],
            },
        }, mode
    dropped = await op("DeleteCollection", {"input": {"id": collection["id"]}}, token=token)
    assert dropped["deleteCollection"]["deletedCollectionId"] == collection["id"]

    # Screen 9 on the same workspace, still empty: the answer abstains (nothing to retrieve), which
    # needs no generation; answers that stream are tested in tests/user_flows/reader_asks_*.
    await ask_in_an_empty_workspace(api, op, executed, ws_url, token, workspace["id"])

    # Screen 6: a file dropped (multipart) and text pasted, both watched on one subscription.
    uploads = (
        await op(
            "CreateCollection",
            {"input": {"workspaceId": workspace["id"], "name": "Uploads"}},
            token=token,
        )
    )["createCollection"]["collection"]["id"]
    dropped_file = await upload(
        api.http, uploads, [("notes.md", b"# Notes\n\nSee [venv](venv.html).\n")], token=token
    )
    assert dropped_file["errors"] == [] and dropped_file["files"][0]["error"] is None
    executed.add("UploadDocuments")
    pasted = await op(
        "CreateTextDocument",
        {"input": {"collectionId": uploads, "title": "${x} pasted", "text": "Plain text.\n"}},
        token=token,
    )
    document_ids = [
        dropped_file["files"][0]["document"]["id"],
        pasted["createTextDocument"]["document"]["id"],
    ]
    rows = await watch_uploads(ws_url, token, workspace["id"], document_ids)
    assert {r["documentId"] for r in rows if r["done"]} == set(document_ids)
    executed.add("UploadProgress")
    link = await op("CreateDownloadLink", {"input": {"id": document_ids[1]}}, token=token)
    async with httpx.AsyncClient(base_url=str(api.http.base_url), timeout=30) as plain:
        followed = await plain.get(link["createDownloadLink"]["url"])  # no header
    assert (followed.status_code, followed.content) == (200, b"Plain text.\n")

    # The invitee deletes their own personal workspace (screen 11, OWNER only).
    own = (await op("AppShell", {"first": 10}, token=invitee["accessToken"]))["workspaces"]
    [personal] = [e["node"] for e in own["edges"] if e["node"]["viewerRole"] == "OWNER"]
    gone = await op(
        "DeleteWorkspace",
        {"input": {"workspaceId": personal["id"], "name": personal["name"]}},
        token=invitee["accessToken"],
    )
    assert gone["deleteWorkspace"]["deletedWorkspaceId"] == personal["id"]
    own = (await op("AppShell", {"first": 10}, token=invitee["accessToken"]))["workspaces"]
    assert personal["id"] not in [e["node"]["id"] for e in own["edges"]]

    signed_out = await op("SignOut", {"input": {"refreshToken": refreshed["refreshToken"]}})
    assert signed_out["signOut"]["signedOut"] is True

    assert sorted(executed) == OPERATIONS, "operations without an end-to-end run: " + ", ".join(
        sorted(set(OPERATIONS) - executed)
    )


async def ask_in_an_empty_workspace(
    api: GraphQLClient,
    op: Any,
    executed: set[str],
    ws_url: str,
    token: str,
    workspace_id: str,
) -> None:
    """The Ask operations (screen 9) in a workspace with no documents."""
    created = await op("CreateConversation", {"input": {"workspaceId": workspace_id}}, token=token)
    conversation = created["createConversation"]["conversation"]
    renamed = await op(
        "RenameConversation",
        {"input": {"id": conversation["id"], "title": "Questions"}},
        token=token,
    )
    assert renamed["renameConversation"]["conversation"]["title"] == "Questions"
    asked = await op(
        "AskQuestion",
        {"input": {"conversationId": conversation["id"], "question": "What is ${HOME}?"}},
        token=token,
    )
    answer = asked["askQuestion"]["answer"]
    assert asked["askQuestion"]["question"]["text"] == "What is ${HOME}?"
    assert (answer["role"], answer["state"]) == ("ASSISTANT", "PENDING")
    assert asked["askQuestion"]["run"]["workflow"] == "answer_question"

    async with connect(ws_url, subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        await next_messages(ws, 1)
        await ws.send(
            json.dumps(
                {
                    "id": "answer",
                    "type": "subscribe",
                    "payload": {
                        "query": operation("AnswerStream"),
                        "operationName": "AnswerStream",
                        "variables": {"messageId": answer["id"]},
                    },
                }
            )
        )
        events = []
        while True:
            [message] = await next_messages(ws, 1)
            if message["type"] == "complete":
                break
            assert "errors" not in message["payload"], message
            events.append(message["payload"]["data"]["answerStream"])
    executed.add("AnswerStream")
    text = "The documents in scope do not answer this question."
    assert [(e["type"], e["cursor"], e["text"]) for e in events] == [
        ("TEXT", str(len(text)), text),
        ("FINISHED", str(len(text)), ""),
    ]
    final = events[-1]["message"]
    assert (final["state"], final["text"], final["citations"]) == ("NOT_IN_DOCUMENTS", text, [])

    rated = await op(
        "RateAnswer",
        {"input": {"messageId": answer["id"], "rating": "DOWN", "reason": "nothing found"}},
        token=token,
    )
    assert rated["rateAnswer"]["feedback"]["rating"] == "DOWN"
    regenerated = await op("RegenerateAnswer", {"input": {"messageId": answer["id"]}}, token=token)
    assert regenerated["regenerateAnswer"]["answer"]["replaces"] == {"id": answer["id"]}
    stopped = await api.op("StopAnswer", {"input": {"messageId": answer["id"]}}, token=token)
    assert stopped["stopAnswer"]["errors"] == [
        {
            "code": "ANSWER_FINISHED",
            "message": "The answer has already ended (NOT_IN_DOCUMENTS).",
            "field": None,
        }
    ]
    executed.add("StopAnswer")
    listed = await op("Conversations", {"workspaceId": workspace_id}, token=token)
    assert [
        (e["node"]["title"], e["node"]["messageCount"])
        for e in listed["workspace"]["conversations"]["edges"]
    ] == [("Questions", 3)]
    shown = await op("Conversation", {"id": conversation["id"]}, token=token)
    assert [e["node"]["role"] for e in shown["conversation"]["messages"]["edges"]] == [
        "USER",
        "ASSISTANT",
        "ASSISTANT",
    ]
    dashboard = await op("Dashboard", {"workspaceId": workspace_id}, token=token)
    assert dashboard["workspace"]["questionsAskedLast7Days"] == 1
    deleted = await op("DeleteConversation", {"input": {"id": conversation["id"]}}, token=token)
    assert deleted["deleteConversation"]["deletedConversationId"] == conversation["id"]


# --- concurrency ---------------------------------------------------------------------------------


async def test_twenty_concurrent_sign_ups_and_app_shells(api: GraphQLClient, e2e_database: str):
    """Concurrent requests through the SDK's one runtime: none waits on a cap, none mixes runs."""
    before = await snapshot(e2e_database)
    run = uuid.uuid4().hex[:8]

    async def one(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        email = f"concurrent-{run}-{i}@example.com"
        signed_up = await api.op(
            "SignUp",
            {"input": {"name": f"Person {i} Concurrent", "email": email, "password": PASSWORD}},
        )
        assert signed_up["signUp"]["errors"] == [], signed_up
        session = signed_up["signUp"]["session"]
        shell = await api.op("AppShell", token=session["accessToken"])
        return session, shell

    results = await asyncio.wait_for(
        asyncio.gather(*(one(i) for i in range(20))), 2 * ANSWERED_WITHIN
    )

    for i, (session, shell) in enumerate(results):
        email = f"concurrent-{run}-{i}@example.com"
        assert session["user"]["email"] == email
        assert shell["me"] == {
            "id": session["user"]["id"],
            "name": f"Person {i} Concurrent",
            "email": email,
            "initials": "PC",
        }
        assert shell["workspaces"]["totalCount"] == 1
        [edge] = shell["workspaces"]["edges"]
        assert edge["node"]["name"] == f"Person {i} Concurrent's workspace"
        assert edge["node"]["viewerRole"] == "OWNER"
    assert len({s["user"]["id"] for s, _ in results}) == 20
    assert len({s["accessToken"] for s, _ in results}) == 20
    assert len({s["refreshToken"] for s, _ in results}) == 20
    assert len({sh["workspaces"]["edges"][0]["node"]["id"] for _, sh in results}) == 20

    after = await snapshot(e2e_database)
    for table in ("users", "workspaces", "memberships", "refresh_tokens"):
        assert after[table][0] == before[table][0] + 20, table
    assert after["invites"] == before["invites"]
