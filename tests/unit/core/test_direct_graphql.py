"""`DirectGraphQL`: which requests and sockets go straight to the router, and what the router
gets."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from resolvers.router import DirectGraphQL


class Recorded:
    """Stands in for the router and for the app behind the middleware, recording their calls."""

    def __init__(self, answer: Any = None) -> None:
        self.app_scopes: list[dict[str, Any]] = []
        self.runs: list[tuple[Any, Any, Any]] = []
        self.answer = answer  # what `run` returns, or raises when an exception

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.app_scopes.append(scope)

    async def run(self, request: Any, context: Any, root_value: Any) -> Any:
        self.runs.append((request, context, root_value))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class FakeContext:
    request: Any = None


async def context_of(connection: Any) -> FakeContext:
    context = FakeContext()
    context.connection = connection  # type: ignore[attr-defined]
    return context


async def receive() -> dict[str, Any]:
    raise AssertionError("nothing is read from the socket by the middleware")


async def send(message: Any) -> None:
    raise AssertionError("nothing is sent by the middleware")


def middleware(recorded: Recorded) -> DirectGraphQL:
    return DirectGraphQL(
        recorded.app,
        router=recorded,  # type: ignore[arg-type]
        path="/graphql",
        context_getter=context_of,  # type: ignore[arg-type]
    )


def scope(kind: str, path: str, root_path: str = "", method: str = "GET") -> dict[str, Any]:
    return {
        "type": kind,
        "path": path,
        "root_path": root_path,
        "headers": [],
        "query_string": b"",
        **({"method": method} if kind == "http" else {}),
    }


class Sent:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


async def test_a_socket_on_the_graphql_path_is_run_by_the_router_with_its_context():
    recorded = Recorded()
    socket_scope = scope("websocket", "/graphql")
    await middleware(recorded)(socket_scope, receive, send)
    assert recorded.app_scopes == []
    assert len(recorded.runs) == 1
    request, context, root_value = recorded.runs[0]
    assert isinstance(request, WebSocket)
    assert request.scope is socket_scope
    assert isinstance(context, FakeContext)
    assert context.request is request
    assert context.connection is request  # type: ignore[attr-defined]
    assert root_value is None


async def test_the_path_is_matched_under_the_root_path():
    recorded = Recorded()
    await middleware(recorded)(scope("websocket", "/api/graphql", "/api"), receive, send)
    assert len(recorded.runs) == 1
    assert recorded.app_scopes == []


async def test_a_get_or_post_on_the_graphql_path_is_run_by_the_router_and_its_answer_sent():
    for method in ("GET", "POST"):
        recorded = Recorded(JSONResponse({"data": {"ok": True}}))
        request_scope = scope("http", "/graphql", method=method)
        sent = Sent()
        await middleware(recorded)(request_scope, receive, sent)
        assert recorded.app_scopes == []
        [(request, context, root_value)] = recorded.runs
        assert isinstance(request, Request)
        assert request.scope is request_scope
        assert (context.request, context.connection, root_value) == (request, request, None)  # type: ignore[attr-defined]
        assert [m["type"] for m in sent.messages] == ["http.response.start", "http.response.body"]
        assert sent.messages[0]["status"] == 200
        assert sent.messages[1]["body"] == b'{"data":{"ok":true}}'


async def test_a_refusal_the_router_raises_is_answered_as_strawberrys_route_answers_it():
    recorded = Recorded(HTTPException(405, "GraphQL only supports GET and POST requests."))
    sent = Sent()
    await middleware(recorded)(scope("http", "/graphql", method="POST"), receive, sent)
    assert sent.messages[0]["status"] == 405
    assert sent.messages[1]["body"] == b"GraphQL only supports GET and POST requests."


async def test_other_paths_methods_sockets_and_the_lifespan_take_the_app_path():
    recorded = Recorded()
    passed = [
        scope("websocket", "/other"),
        scope("websocket", "/graphql/"),
        scope("websocket", "/graphql", "/api"),  # served under /api: its socket is /api/graphql
        scope("http", "/graphql", method="PUT"),
        scope("http", "/graphql", method="HEAD"),
        scope("http", "/graphql/", method="POST"),
        scope("http", "/healthz"),
        scope("http", "/graphql", "/api", method="POST"),
        {"type": "lifespan"},
    ]
    for each in passed:
        await middleware(recorded)(each, receive, send)
    assert recorded.runs == []
    assert recorded.app_scopes == passed
