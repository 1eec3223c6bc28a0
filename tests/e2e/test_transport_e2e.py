"""The transport end to end: what a real uvicorn answers to whatever a client sends over HTTP and
WebSocket, driven from outside with raw httpx and websockets clients and the `graphql-http`
conformance audits (npm, pinned in web/package.json).

Two servers share one fresh database: `server` runs with the default limits (and one allowed
CORS origin), `tight_server` with small WebSocket limits so they can be hit exactly.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.databases import fresh_database
from tests.support.graphql import ROOT, operation
from tests.support.live_server import live_server

pytestmark = pytest.mark.timeout(180)

NODE = "/usr/bin/node"
AUDIT_SCRIPT = ROOT / "web" / "e2e" / "graphql-http-audit.mjs"
JWT_SECRET = "transport-e2e-jwt-secret-0123456789abcdef"
ALLOWED_ORIGIN = "https://app.example.test"
FOREIGN_ORIGIN = "https://evil.example.test"
PASSWORD = "a long pass phrase"
WS_PROTOCOL = "graphql-transport-ws"
GRJ = "application/graphql-response+json"
GRJ_CONTENT_TYPE = "application/graphql-response+json; charset=utf-8"
PREFLIGHT = {"GraphQL-Require-Preflight": "1"}
PREFLIGHT_MESSAGE = (
    "This request could have come from another site: send it with a `GraphQL-Require-Preflight` "
    "header (any non-empty value), or as a POST with `Content-Type: application/json`."
)
TIGHT_MESSAGE_BYTES = 4096
TIGHT_SUBSCRIPTIONS = 3


# --- servers and clients -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    with fresh_database(postgres_url, "transport") as url:
        yield url


def _env(database: str, **extra: str) -> dict[str, str]:
    return {
        "APP_ENV": "test",
        "DATABASE_URL": database,
        "REDIS_URL": "",  # events and sign-in limits in memory: this suite needs no Redis
        "JWT_SECRET": JWT_SECRET,
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
        "CORS_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


@pytest.fixture(scope="module")
def server(database: str) -> Iterator[str]:
    with live_server(_env(database)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def tight_server(database: str) -> Iterator[str]:
    env = _env(
        database,
        GRAPHQL_WS_MAX_MESSAGE_BYTES=str(TIGHT_MESSAGE_BYTES),
        GRAPHQL_WS_INIT_TIMEOUT_SECONDS="1",
        GRAPHQL_WS_MAX_SUBSCRIPTIONS=str(TIGHT_SUBSCRIPTIONS),
    )
    with live_server(env) as base_url:
        yield base_url


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=60) as client:
        yield client


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/graphql"


async def sign_up(http: httpx.AsyncClient, prefix: str) -> dict[str, Any]:
    variables = {
        "input": {"name": "Tess Transport", "email": unique_email(prefix), "password": PASSWORD}
    }
    response = await http.post(
        "/graphql", json={"query": operation("SignUp"), "variables": variables}
    )
    payload = response.json()["data"]["signUp"]
    assert payload["errors"] == [], payload
    return payload["session"]


def unique_email(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def only_error(
    response: httpx.Response, status: int, code: str, content_type: str = "application/json"
) -> dict[str, Any]:
    """The one error of a refused request: its status, media type, code and request id."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == content_type, response.headers
    body = response.json()
    assert list(body) == ["errors"], body
    [error] = body["errors"]
    assert error["extensions"]["code"] == code, body
    assert isinstance(error["extensions"]["requestId"], str), body
    assert len(error["extensions"]["requestId"]) == 32, body
    return error


def init_message(token: str, **extra: Any) -> str:
    payload = {"authorization": f"Bearer {token}", **extra}
    return json.dumps({"type": "connection_init", "payload": payload})


async def acknowledged(ws: ClientConnection, token: str) -> None:
    await ws.send(init_message(token))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"


async def closed_by_server(ws: ClientConnection) -> tuple[int, str, list[Any]]:
    """Read until the server closes: its close code and reason, and what it sent before."""
    received: list[Any] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    assert closed.value.rcvd is not None, "the connection dropped without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason, received


# --- bodies: never a 5xx for what the client sent -------------------------------------------------

DEEP = b"[" * 100_000
NOT_AN_OBJECT = "The request body must be a JSON object."
NOT_JSON = "Unable to parse request body as JSON"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"123", NOT_AN_OBJECT),
        (b'"x"', NOT_AN_OBJECT),
        (b"null", NOT_AN_OBJECT),
        (b"true", NOT_AN_OBJECT),
        (b'{"query": "{ __typename }", "x": "\xff\xfe"}', "The request body is not valid UTF-8."),
        (b"\xef\xbb\xbf" + b'{"query": "{ __typename }"}', NOT_JSON),  # a byte order mark
        (b"", NOT_JSON),
        (DEEP, NOT_JSON),
        (b'{"query": "{ __typename }", "variables": {"a": ' + DEEP + b"}", NOT_JSON),
        (b'{"query": 5}', "The GraphQL operation's `query` must be a string or null, if provided."),
        (
            b'{"query": "{ __typename }", "operationName": 5}',
            "The GraphQL operation's `operationName` must be a string or null, if provided.",
        ),
        (
            b'{"query": "{ __typename }", "variables": "x"}',
            "The GraphQL operation's `variables` must be an object or null, if provided.",
        ),
        (
            b'{"query": "{ __typename }", "extensions": []}',
            "The GraphQL operation's `extensions` must be an object or null, if provided.",
        ),
    ],
    ids=[
        "number",
        "string",
        "null",
        "boolean",
        "invalid-utf8",
        "bom",
        "empty",
        "nested-too-deep",
        "variables-nested-too-deep",
        "query-not-string",
        "operation-name-not-string",
        "variables-not-object",
        "extensions-not-object",
    ],
)
async def test_a_body_that_is_not_a_graphql_request_is_400_bad_request(
    http: httpx.AsyncClient, body: bytes, message: str
):
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert only_error(response, 400, "BAD_REQUEST")["message"] == message


async def test_get_variables_nested_too_deep_are_400_bad_request(http: httpx.AsyncClient):
    params = {"query": "{ __typename }", "variables": "[" * 5000}
    response = await http.get("/graphql", params=params, headers=PREFLIGHT)
    assert only_error(response, 400, "BAD_REQUEST")["message"] == NOT_JSON


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (None, "Send the request body as `application/json`; got no content type."),
        ("text/plain", "Send the request body as `application/json`; got `text/plain`."),
        ("application/xml", "Send the request body as `application/json`; got `application/xml`."),
        (
            "application/x-www-form-urlencoded",
            "Send the request body as `application/json`; got `application/x-www-form-urlencoded`.",
        ),
        (
            "application/json; charset=latin-1",
            "Send the request body in UTF-8 (`charset=utf-8`); got `charset=latin-1`.",
        ),
        (
            "application/json; charset=utf-16",
            "Send the request body in UTF-8 (`charset=utf-8`); got `charset=utf-16`.",
        ),
    ],
)
async def test_wrong_content_types_and_charsets_are_415(
    http: httpx.AsyncClient, content_type: str | None, message: str
):
    headers = dict(PREFLIGHT)  # past the CSRF rule, to reach the content type
    if content_type is not None:
        headers["content-type"] = content_type
    response = await http.post("/graphql", content=b'{"query": "{ __typename }"}', headers=headers)
    assert only_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")["message"] == message


async def test_utf8_charset_and_non_ascii_text_are_accepted(http: httpx.AsyncClient):
    body = json.dumps({"query": '{ __type(name: "Run🏃Swim🏊") { name } }'}, ensure_ascii=False)
    response = await http.post(
        "/graphql",
        content=body.encode(),
        headers={"content-type": "Application/JSON; Charset=UTF-8"},
    )
    assert (response.status_code, response.json()) == (200, {"data": {"__type": None}})


async def test_unknown_paths_and_methods_are_json_errors(http: httpx.AsyncClient):
    put = await http.put("/graphql", json={"query": "{ __typename }"})
    assert only_error(put, 405, "METHOD_NOT_ALLOWED")["message"] == "Method Not Allowed"
    missing = await http.get("/graphql/nothing-here")
    assert only_error(missing, 404, "NOT_FOUND")["message"] == "Not Found"


# --- application/graphql-response+json -----------------------------------------------------------


async def post_accepting(
    http: httpx.AsyncClient, accept: str | None, body: dict[str, Any]
) -> httpx.Response:
    headers = {"accept": accept} if accept is not None else {}
    return await http.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/html", "application/json"),
        (GRJ, GRJ_CONTENT_TYPE),
        (f"{GRJ}, application/json;q=0.9", GRJ_CONTENT_TYPE),
        (f"application/json, {GRJ};q=0.9", "application/json"),
    ],
)
async def test_the_response_media_type_follows_accept(
    http: httpx.AsyncClient, accept: str | None, content_type: str
):
    response = await post_accepting(http, accept, {"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.json() == {"data": {"__typename": "Query"}}


REQUEST_ERRORS = [
    ({"query": "{"}, "GRAPHQL_PARSE_FAILED", "Syntax Error: Expected Name, found <EOF>."),
    (
        {"query": "{ secretBackdoor }"},
        "GRAPHQL_VALIDATION_FAILED",
        "Cannot query field 'secretBackdoor' on type 'Query'.",
    ),
    (
        {"query": "query Q($name: String!) { __type(name: $name) { name } }", "variables": {}},
        "BAD_USER_INPUT",
        "Variable '$name' has invalid value: Expected a value of non-null type 'String!' to be "
        "provided.",
    ),
    (
        {"query": "query Deep " + "{ a " * 20 + "}" * 20},
        "QUERY_TOO_COMPLEX",
        "Query is too complex: depth 20 exceeds 12.",
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "message"), REQUEST_ERRORS, ids=["parse", "validation", "variables", "limits"]
)
async def test_request_errors_are_400_without_data_for_graphql_response_json(
    http: httpx.AsyncClient, body: dict[str, Any], code: str, message: str
):
    graphql = await post_accepting(http, GRJ, body)
    error = only_error(graphql, 400, code, GRJ_CONTENT_TYPE)
    assert error["message"] == message

    # application/json keeps the answer it always had: 200, with `data: null`.
    legacy = await post_accepting(http, "application/json", body)
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == "application/json"
    assert legacy.json()["data"] is None
    [legacy_error] = legacy.json()["errors"]
    assert (legacy_error["extensions"]["code"], legacy_error["message"]) == (code, message)


async def test_an_execution_error_is_200_with_data_for_graphql_response_json(
    http: httpx.AsyncClient,
):
    response = await post_accepting(http, GRJ, {"query": "{ me { id } }"})
    assert response.status_code == 200
    assert response.headers["content-type"] == GRJ_CONTENT_TYPE
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert (error["message"], error["path"], error["extensions"]["code"]) == (
        "Sign in to do this.",
        ["me"],
        "UNAUTHENTICATED",
    )


async def test_transport_errors_are_sent_in_the_accepted_media_type(http: httpx.AsyncClient):
    headers = {"accept": GRJ, "content-type": "application/json"}
    not_json = await http.post("/graphql", content=b'{"query', headers=headers)
    only_error(not_json, 400, "BAD_REQUEST", GRJ_CONTENT_TYPE)
    too_large = await http.post("/graphql", content=b" " * 1_000_001, headers=headers)
    only_error(too_large, 413, "PAYLOAD_TOO_LARGE", GRJ_CONTENT_TYPE)
    no_operation = await http.post(
        "/graphql", json={"query": "query A { __typename }", "operationName": "B"}, headers=headers
    )
    only_error(no_operation, 400, "OPERATION_NOT_FOUND", GRJ_CONTENT_TYPE)


# --- the graphql-http conformance audit ----------------------------------------------------------


def run_audit(server: str, *flags: str) -> tuple[int, list[dict[str, Any]], dict[str, int]]:
    completed = subprocess.run(
        [NODE, str(AUDIT_SCRIPT), "--url", f"{server}/graphql", *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert lines and "summary" in lines[-1], completed.stdout + completed.stderr
    return completed.returncode, lines[:-1], lines[-1]["summary"]


def test_graphql_http_audit_passes_every_audit(server: str):
    returncode, results, summary = run_audit(server)
    assert [r for r in results if r["status"] != "ok"] == []
    assert summary == {"total": 61, "ok": 61, "notice": 0, "warn": 0, "error": 0}
    assert returncode == 0


def test_graphql_http_audit_without_the_preflight_header_only_misses_the_get_audits(server: str):
    """GET requests need the CSRF header; the audits that send GET without it are optional."""
    returncode, results, summary = run_audit(server, "--no-preflight-header")
    missed = {r["id"]: (r["status"], r["httpStatus"]) for r in results if r["status"] != "ok"}
    assert missed == {
        "5A70": ("notice", 400),
        "D6D5": ("notice", 400),
        "6A70": ("notice", 400),
    }
    assert all(
        json.loads(r["body"])["errors"][0]["extensions"]["code"] == "PREFLIGHT_REQUIRED"
        for r in results
        if r["status"] != "ok"
    )
    assert summary == {"total": 61, "ok": 58, "notice": 3, "warn": 0, "error": 0}
    assert returncode == 0


# --- CSRF and CORS -------------------------------------------------------------------------------


async def test_get_executes_only_with_the_preflight_header(http: httpx.AsyncClient):
    params = {"query": "{ __typename }"}
    plain = await http.get("/graphql", params=params)
    assert only_error(plain, 400, "PREFLIGHT_REQUIRED")["message"] == PREFLIGHT_MESSAGE

    # What a cross-site link or <img> would send: refused the same way.
    browser = await http.get(
        "/graphql",
        params=params,
        headers={
            "accept": "text/html,*/*",
            "origin": FOREIGN_ORIGIN,
            "sec-fetch-site": "cross-site",
        },
    )
    only_error(browser, 400, "PREFLIGHT_REQUIRED")

    blank = await http.get("/graphql", params=params, headers={"GraphQL-Require-Preflight": ""})
    only_error(blank, 400, "PREFLIGHT_REQUIRED")

    allowed = await http.get("/graphql", params=params, headers=PREFLIGHT)
    assert (allowed.status_code, allowed.json()) == (200, {"data": {"__typename": "Query"}})


async def test_graphiql_is_still_served_to_a_plain_get(http: httpx.AsyncClient):
    page = await http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "graphiql" in page.text.lower()


async def test_form_like_posts_execute_nothing_without_the_preflight_header(
    http: httpx.AsyncClient,
):
    """What an HTML form or a no-cors fetch on another site can send is refused unexecuted."""
    email = unique_email("csrf")
    variables = {"input": {"name": "Forged Signup", "email": email, "password": PASSWORD}}
    body = json.dumps({"query": operation("SignUp"), "variables": variables})
    for content_type in (
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=----x",
    ):
        response = await http.post(
            "/graphql",
            content=body.encode(),
            headers={"content-type": content_type, "origin": FOREIGN_ORIGIN},
        )
        assert only_error(response, 400, "PREFLIGHT_REQUIRED")["message"] == PREFLIGHT_MESSAGE
        assert "access-control-allow-origin" not in response.headers

    # Nothing was executed: the email is still free.
    signed_up = await http.post(
        "/graphql", json={"query": operation("SignUp"), "variables": variables}
    )
    assert signed_up.json()["data"]["signUp"]["errors"] == []


async def test_a_multipart_request_needs_the_header_and_then_executes(http: httpx.AsyncClient):
    """Multipart is the upload transport: refused without the preflight header, served with it."""
    files = {"operations": (None, '{"query": "{ __typename }"}'), "map": (None, "{}")}
    without = await http.post("/graphql", files=files)
    only_error(without, 400, "PREFLIGHT_REQUIRED")
    with_header = await http.post("/graphql", files=files, headers=PREFLIGHT)
    assert (with_header.status_code, with_header.json()) == (
        200,
        {"data": {"__typename": "Query"}},
    )
    broken = await http.post(
        "/graphql",
        content=b'{"query": "{ __typename }"}',
        headers={**PREFLIGHT, "content-type": "multipart/form-data; boundary=x"},
    )
    assert only_error(broken, 400, "BAD_REQUEST")["message"] == (
        "The multipart body is not valid: Invalid multipart data."
    )


async def test_cors_preflight_is_answered_only_for_allowed_origins(http: httpx.AsyncClient):
    request_headers = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, graphql-require-preflight",
    }
    allowed = await http.options("/graphql", headers={"origin": ALLOWED_ORIGIN, **request_headers})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert allowed.headers["access-control-allow-methods"] == "GET, POST"
    assert allowed.headers["access-control-allow-headers"] == (
        "Accept, Accept-Language, Content-Language, Content-Type, authorization, content-type, "
        "graphql-require-preflight"
    )
    assert "access-control-allow-credentials" not in allowed.headers

    foreign = await http.options("/graphql", headers={"origin": FOREIGN_ORIGIN, **request_headers})
    error = only_error(foreign, 400, "CORS_NOT_ALLOWED")
    assert error["message"] == "Disallowed CORS origin."
    assert "access-control-allow-origin" not in foreign.headers

    other_header = await http.options(
        "/graphql",
        headers={
            "origin": ALLOWED_ORIGIN,
            "access-control-request-method": "PUT",
            "access-control-request-headers": "x-something",
        },
    )
    assert only_error(other_header, 400, "CORS_NOT_ALLOWED")["message"] == (
        "Disallowed CORS method, headers."
    )


async def test_responses_name_only_an_allowed_origin(http: httpx.AsyncClient):
    body = {"query": "{ __typename }"}
    allowed = await http.post("/graphql", json=body, headers={"origin": ALLOWED_ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert allowed.headers["vary"] == "Origin"
    foreign = await http.post("/graphql", json=body, headers={"origin": FOREIGN_ORIGIN})
    assert "access-control-allow-origin" not in foreign.headers


async def test_websocket_handshakes_from_other_origins_are_refused(
    http: httpx.AsyncClient, server: str
):
    session = await sign_up(http, "ws-origin")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server), subprotocols=[WS_PROTOCOL], origin=FOREIGN_ORIGIN):
            pass
    assert refused.value.response.status_code == 403

    for origin in (ALLOWED_ORIGIN, server, None):  # allowed, same origin, not a browser
        async with connect(ws_url(server), subprotocols=[WS_PROTOCOL], origin=origin) as ws:
            await acknowledged(ws, session["accessToken"])


async def test_websockets_on_other_paths_are_refused(server: str):
    """Only /graphql serves graphql-transport-ws: the shortcut to the router (ADR 0097) takes no
    other path, and the app has no other socket."""
    for path in ("/graphql/", "/graphql/x", "/healthz", "/nowhere"):
        url = server.replace("http://", "ws://", 1) + path
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, subprotocols=[WS_PROTOCOL]):
                pass
        assert refused.value.response.status_code == 403, path


# --- WebSocket limits ----------------------------------------------------------------------------


async def test_a_5_mb_message_is_closed_1009_unread_with_the_default_limit(
    http: httpx.AsyncClient, server: str
):
    session = await sign_up(http, "ws-big")
    query = "subscription MeLive { me { id } }" + " " * 5_000_000
    subscribe = json.dumps({"id": "big", "type": "subscribe", "payload": {"query": query}})
    async with connect(ws_url(server), subprotocols=[WS_PROTOCOL]) as ws:
        await acknowledged(ws, session["accessToken"])
        await ws.send(subscribe)
        code, reason, received = await closed_by_server(ws)
    assert (code, reason, received) == (1009, "Message larger than 65536 bytes", [])

    async with connect(ws_url(server), subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send(init_message(session["accessToken"], padding="x" * 5_000_000))
        code, reason, received = await closed_by_server(ws)
    assert (code, reason, received) == (1009, "Message larger than 65536 bytes", [])


async def test_the_message_limit_counts_utf8_bytes_exactly(
    http: httpx.AsyncClient, tight_server: str
):
    session = await sign_up(http, "ws-exact")
    token = session["accessToken"]
    base = len(init_message(token, padding="").encode())
    url = ws_url(tight_server)

    at_limit = init_message(token, padding="x" * (TIGHT_MESSAGE_BYTES - base))
    assert len(at_limit.encode()) == TIGHT_MESSAGE_BYTES
    async with connect(url, subprotocols=[WS_PROTOCOL]) as ws:
        await ws.send(at_limit)
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"

    over = init_message(token, padding="x" * (TIGHT_MESSAGE_BYTES - base + 1))
    # Fewer characters than the limit, more bytes: "é" is two bytes in UTF-8.
    wide = json.dumps(
        {
            "type": "connection_init",
            "payload": {"authorization": f"Bearer {token}", "p": "é" * 3000},
        },
        ensure_ascii=False,
    )
    assert len(wide) < TIGHT_MESSAGE_BYTES < len(wide.encode())
    for message in (over, wide, over.encode()):  # a binary frame counts the same
        async with connect(url, subprotocols=[WS_PROTOCOL]) as ws:
            await ws.send(message)
            code, reason, received = await closed_by_server(ws)
        assert (code, reason, received) == (1009, "Message larger than 4096 bytes", [])


async def test_a_socket_without_connection_init_is_closed_4408(tight_server: str):
    async with connect(ws_url(tight_server), subprotocols=[WS_PROTOCOL]) as ws:
        code, reason, received = await closed_by_server(ws)
    assert (code, reason, received) == (4408, "Connection initialisation timeout", [])


async def test_operations_per_socket_are_capped_until_one_completes(
    http: httpx.AsyncClient, tight_server: str
):
    session = await sign_up(http, "ws-cap")
    token = session["accessToken"]
    shell = await http.post(
        "/graphql",
        json={"query": "{ workspaces(first: 1) { edges { node { id } } } }"},
        headers={"authorization": f"Bearer {token}"},
    )
    workspace_id = shell.json()["data"]["workspaces"]["edges"][0]["node"]["id"]

    def watch(message_id: str) -> str:
        payload = {
            "query": operation("WorkspaceEvents"),
            "operationName": "WorkspaceEvents",
            "variables": {"workspaceId": workspace_id},
        }
        return json.dumps({"id": message_id, "type": "subscribe", "payload": payload})

    def me(message_id: str) -> str:
        payload = {"query": operation("MeLive"), "operationName": "MeLive"}
        return json.dumps({"id": message_id, "type": "subscribe", "payload": payload})

    async with connect(ws_url(tight_server), subprotocols=[WS_PROTOCOL]) as ws:
        await acknowledged(ws, token)
        for n in range(TIGHT_SUBSCRIPTIONS):  # open streams: workspaceEvents never ends
            await ws.send(watch(f"watch-{n}"))
        await ws.send(me("one-too-many"))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert refused == {
            "id": "one-too-many",
            "type": "error",
            "payload": [
                {
                    "message": "At most 3 operations may be open on one connection; "
                    "complete one first.",
                    "extensions": {
                        "code": "TOO_MANY_SUBSCRIPTIONS",
                        "requestId": refused["payload"][0]["extensions"]["requestId"],
                    },
                }
            ],
        }

        await ws.send(json.dumps({"id": "watch-0", "type": "complete"}))
        await ws.send(me("after-complete"))
        sent = json.loads(await asyncio.wait_for(ws.recv(), 10))
        done = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert sent["id"] == "after-complete" and sent["type"] == "next", sent
    assert sent["payload"]["data"]["me"]["id"] == session["user"]["id"]
    assert done == {"id": "after-complete", "type": "complete"}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("123", "WebSocket message must be a JSON object"),
        ('["subscribe"]', "WebSocket message must be a JSON object"),
        ("[" * 5000, "WebSocket message must be valid JSON"),
        (
            '{"id": 1, "type": "subscribe", "payload": {"query": "{ __typename }"}}',
            "Invalid subscribe message: `id` is not a string",
        ),
        ('{"id": {}, "type": "complete"}', "Invalid complete message: `id` is not a string"),
        (
            '{"id": "1", "type": "subscribe", "payload": "{ __typename }"}',
            "Invalid subscribe message: `payload` is not an object",
        ),
        (
            '{"id": "1", "type": "subscribe", "payload": {"query": 5}}',
            "Invalid subscribe message: `payload.query` is not a string",
        ),
        (
            '{"id": "1", "type": "subscribe", "payload": {"query": "{ a }", "variables": []}}',
            "Invalid subscribe message: `payload.variables` is not an object or null",
        ),
        (
            '{"id": "1", "type": "subscribe", "payload": {"query": "{ a }", "operationName": 1}}',
            "Invalid subscribe message: `payload.operationName` is not a string or null",
        ),
    ],
    ids=[
        "number",
        "array",
        "nested-too-deep",
        "id-not-string",
        "complete-id-not-string",
        "payload-not-object",
        "query-not-string",
        "variables-not-object",
        "operation-name-not-string",
    ],
)
async def test_malformed_messages_after_init_are_closed_4400(
    http: httpx.AsyncClient, server: str, message: str, reason: str
):
    session = await sign_up(http, "ws-malformed")
    async with connect(ws_url(server), subprotocols=[WS_PROTOCOL]) as ws:
        await acknowledged(ws, session["accessToken"])
        await ws.send(message)
        code, got_reason, received = await closed_by_server(ws)
    assert (code, got_reason, received) == (4400, reason, [])
