"""`DirectWebSocket`: which connections go straight to the router, and what the router gets."""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket

from resolvers.router import DirectWebSocket


class Recorded:
    """Stands in for the router and for the app behind the middleware, recording their calls."""

    def __init__(self) -> None:
        self.app_scopes: list[dict[str, Any]] = []
        self.runs: list[tuple[Any, Any, Any]] = []

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.app_scopes.append(scope)

    async def run(self, request: Any, context: Any, root_value: Any) -> None:
        self.runs.append((request, context, root_value))


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


def middleware(recorded: Recorded) -> DirectWebSocket:
    return DirectWebSocket(
        recorded.app,
        router=recorded,  # type: ignore[arg-type]
        path="/graphql",
        context_getter=context_of,  # type: ignore[arg-type]
    )


def scope(kind: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": kind, "path": path, "root_path": root_path, "headers": [], "query_string": b""}


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


async def test_other_sockets_and_every_http_request_take_the_app_path():
    recorded = Recorded()
    passed = [
        scope("websocket", "/other"),
        scope("websocket", "/graphql/"),
        scope("websocket", "/graphql", "/api"),  # served under /api: its socket is /api/graphql
        scope("http", "/graphql"),
        {"type": "lifespan"},
    ]
    for each in passed:
        await middleware(recorded)(each, receive, send)
    assert recorded.runs == []
    assert recorded.app_scopes == passed
