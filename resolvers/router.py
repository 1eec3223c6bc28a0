"""The /graphql endpoint: HTTP queries and mutations, graphql-transport-ws, GraphiQL.

Strawberry's router does the GraphQL work; this subclass owns what the transport says:

* every refused request gets a 4xx with a GraphQL-shaped JSON body and a stable code, never a
  bare 500 (the body is decoded and checked here, not by Strawberry);
* `application/graphql-response+json` is served as the GraphQL over HTTP spec says
  (`resolvers/core/transport.py` picks the media type);
* the CSRF rule: GET and form-like POSTs execute only with the `GraphQL-Require-Preflight`
  header ([ADR 0020](../adr/0020-csrf-and-browser-origins.md));
* the socket limits: `connection_init` timeout, operations per socket, message shapes. The
  message size is capped before the app reads it (`app/http.py`);
* a subscription answered whole before (an ended run's replay) is sent again from memory
  (`resolvers/runs/fanout.py`, ADR 0131).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, cast

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from graphql import GraphQLError
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.unset import UNSET

from base import compact_json
from base.auth.principal import Principal
from base.auth.tokens import bearer_token, decode_access_token
from base.db.engine import RequestReads
from base.errors import Unauthenticated
from base.metrics import (
    SOCKET_OPERATIONS_EXECUTED,
    SOCKET_OPERATIONS_REPLAYED,
    record_graphql_request,
)
from base.settings import Settings
from resolvers.core.context import Context
from resolvers.core.measure import RequestMeasure, measuring
from resolvers.core.multipart import UploadRefused, UploadRequestAdapter, close_uploads
from resolvers.core.transport import (
    APPLICATION_JSON,
    GRAPHQL_RESPONSE_JSON,
    PREFLIGHT_HEADER,
    PREFLIGHT_REQUIRED_MESSAGE,
    content_type_header,
    error_body,
    is_preflighted,
    parse_media_type,
    response_media_type,
)
from resolvers.runs.fanout import (
    FINISHED_REPLAYS,
    FinishedReplay,
    ReplayKey,
    SharedRunEventExecution,
)
from resolvers.runs.subscriptions import open_run_progress
from runtime.runner import WorkflowRunner
from services.deps import ServiceDeps

# The media type negotiated for the request being answered (set in `run`, read while building
# the response; a context variable because Strawberry's response hooks do not get the request).
_response_media_type: ContextVar[str] = ContextVar("response_media_type", default=APPLICATION_JSON)


class TransportError(HTTPException):
    """A request refused before execution, with its HTTP status and stable code."""

    def __init__(self, status_code: int, reason: str, code: str) -> None:
        super().__init__(status_code, reason)
        self.code = code


def principal_from(authorization: str | None, *, secret: str, client: str | None) -> Principal:
    """Decode the bearer token if any; a bad token is remembered and reported when used."""
    try:
        token = bearer_token(authorization)
        if token is None:
            return Principal(client_address=client)
        claims = decode_access_token(token, secret=secret)
    except Unauthenticated as error:
        return Principal(client_address=client, token_error=error)
    return Principal(user_id=claims.user_id, client_address=client)


async def context_getter(connection: HTTPConnection) -> Context:
    deps: ServiceDeps = connection.app.state.deps
    runner: WorkflowRunner = connection.app.state.runner
    client = connection.client.host if connection.client else None
    principal = principal_from(
        connection.headers.get("authorization"), secret=deps.settings.jwt_secret, client=client
    )
    # An HTTP request's reads share one session (ADR 0076); a socket lives too long to hold one.
    reads = (
        RequestReads(connection.app.state.read_db) if connection.scope["type"] == "http" else None
    )
    return Context(deps=deps.for_request(principal, reads), runner=runner)


def is_request_error(result: ExecutionResult) -> bool:
    """Whether the request failed before execution (parse, validation, limits, variables).

    Parse and validation errors come as `PreExecutionError`. graphql-core reports variable
    coercion failures as a result with `data` null whose errors have no path; every execution
    error has one.
    """
    if isinstance(result, PreExecutionError):
        return True
    errors = result.errors or []
    return result.data is None and bool(errors) and all(e.path is None for e in errors)


class EncodedPayload(str):
    """A `next` payload that is JSON already (a kept replay's)."""


def encode_json(data: object) -> str:
    """JSON of a response or socket message; a run event's `next` payload that subscribers
    share is encoded once for all of them (`resolvers/runs/fanout.py`), and a kept replay's is
    JSON already."""
    if isinstance(data, dict) and data.get("type") == "next":
        payload = data.get("payload")
        encoded: str | None = payload if isinstance(payload, EncodedPayload) else None
        if encoded is None and isinstance(payload, dict) and payload.keys() == {"data"}:
            encoded = SharedRunEventExecution.payload_json(payload["data"], compact_json.dumps)
        if encoded is not None:
            operation_id = compact_json.dumps(data.get("id"))
            return f'{{"id":{operation_id},"type":"next","payload":{encoded}}}'
    return compact_json.dumps(data)


def transport_error_response(
    status_code: int, message: str, code: str, request_id: str | None, media_type: str
) -> JSONResponse:
    return JSONResponse(
        error_body(message, code, request_id),
        status_code=status_code,
        media_type=content_type_header(media_type),
    )


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with every malformed message closing 4400 (not an internal error),
    the operations-per-socket cap reported with a code, and kept replays sent from memory."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Executed operations that have not sent their first `next` yet: a first `next` that
        # ends its run is the whole answer, kept for the next subscriber (FINISHED_REPLAYS).
        self._before_first_next: set[str] = set()

    async def handle_message(self, message: Message) -> None:
        raw: Any = message
        if not isinstance(raw, dict):
            await self.handle_invalid_message("WebSocket message must be a JSON object")
            return
        if raw.get("type") in ("subscribe", "complete") and not isinstance(raw.get("id"), str):
            await self.handle_invalid_message(
                f"Invalid {raw['type']} message: `id` is not a string"
            )
            return
        await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged:
            await super().handle_subscribe(message)  # closes 4401
            return
        problem = _subscribe_payload_problem(cast("Any", message).get("payload"))
        if problem:
            await self.handle_invalid_message(f"Invalid subscribe message: {problem}")
            return
        cap = self.max_subscriptions_per_connection
        if cap is not None and message["id"] not in self.operations and len(self.operations) >= cap:
            error = GraphQLError(
                f"At most {cap} operations may be open on one connection; complete one first.",
                extensions={"code": "TOO_MANY_SUBSCRIPTIONS", "requestId": self.context.request_id},
            )
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        if message["id"] not in self.operations:
            payload = message["payload"]
            key = self._replay_key(
                payload["query"], payload.get("operationName"), payload.get("variables")
            )
            replay = FINISHED_REPLAYS.get(key)
            if replay is not None:
                self._start_replay(message, replay)
                return
        await self._execute(message)

    async def _execute(self, message: SubscribeMessage) -> None:
        new = message["id"] not in self.operations
        await super().handle_subscribe(message)
        if new and message["id"] in self.operations:
            self._before_first_next.add(message["id"])
            SOCKET_OPERATIONS_EXECUTED.inc()

    def _start_replay(self, message: SubscribeMessage, replay: FinishedReplay) -> None:
        """Answer with a kept replay (ADR 0131), as an operation of the socket (a `complete`
        from the client cancels it, its id is taken until it completes)."""
        payload = message["payload"]
        operation = Operation(
            self,
            message["id"],
            payload["query"],
            payload.get("variables"),
            payload.get("operationName"),
        )
        operation.task = asyncio.create_task(self._send_replay(operation, message, replay))
        operation.task.add_done_callback(self._task_done)
        self.operations[operation.id] = operation

    async def _send_replay(
        self, operation: Operation[Context, None], message: SubscribeMessage, replay: FinishedReplay
    ) -> None:
        try:
            await open_run_progress(self.context, replay.run_id)
        except Exception:  # refused, or no answer: executed, the operation says why
            self.operations.pop(operation.id, None)
            await self._execute(message)
            return
        payload_json = EncodedPayload(replay.payload_json)
        next_message: dict[str, Any] = {"id": operation.id, "type": "next", "payload": payload_json}
        await operation.send_operation_message(cast("Message", next_message))
        await operation.send_operation_message({"id": operation.id, "type": "complete"})
        SOCKET_OPERATIONS_REPLAYED.inc()

    def _replay_key(
        self, query: str, operation_name: str | None, variables: dict[str, Any] | None
    ) -> ReplayKey:
        return FINISHED_REPLAYS.key(
            self.context.deps.settings.database_url, query, operation_name, variables
        )

    async def send_message(self, message: Message) -> None:
        sent = cast("dict[str, Any]", message)
        operation_id = sent.get("id")
        if operation_id not in self._before_first_next:
            await super().send_message(message)
            return
        self._before_first_next.discard(operation_id)
        operation = self.operations.get(operation_id) if sent["type"] == "next" else None
        await super().send_message(message)  # encodes the payload once, if shared
        if operation is not None:
            key = self._replay_key(operation.query, operation.operation_name, operation.variables)
            FINISHED_REPLAYS.remember(key, sent["payload"].get("data"))

    async def cleanup_operation(self, operation_id: str) -> None:
        self._before_first_next.discard(operation_id)
        await super().cleanup_operation(operation_id)


def _subscribe_payload_problem(payload: object) -> str | None:
    if not isinstance(payload, dict):
        return "`payload` is not an object"
    if not isinstance(payload.get("query"), str):
        return "`payload.query` is not a string"
    for name, kind in (("variables", dict), ("extensions", dict), ("operationName", str)):
        value = payload.get(name)
        if value is not None and not isinstance(value, kind):
            expected = "an object" if kind is dict else "a string"
            return f"`payload.{name}` is not {expected} or null"
    return None


class KnowledgeDeskRouter(GraphQLRouter[Context, None]):
    graphql_transport_ws_handler_class = TransportWSHandler
    # File uploads (the GraphQL multipart request spec) read within the upload limits.
    request_adapter_class = UploadRequestAdapter

    def __init__(
        self,
        schema: Any,
        graphiql_html: str | None,
        settings: Settings,
        operation_names: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(
            schema,
            context_getter=context_getter,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            graphql_ide="graphiql" if graphiql_html else None,
            allow_queries_via_get=True,
            connection_init_wait_timeout=timedelta(
                seconds=settings.graphql_ws_init_timeout_seconds
            ),
            max_subscriptions_per_connection=settings.graphql_ws_max_subscriptions,
            # WebSocket handshakes from pages on other origins (browsers always send Origin).
            allowed_origins=settings.cors_allowed_origins,
            # Multipart is a form-like POST: the CSRF rule requires the preflight header for it.
            multipart_uploads_enabled=True,
        )
        self._graphiql_html = graphiql_html or ""
        # Requests are measured only in a process that serves its metrics (ADR 0087).
        self._measured = settings.serves_metrics
        self._operation_names = operation_names

    async def get_sub_response(self, request: Request) -> Response:
        """A response per request for the view to take status and headers from (as FastAPI
        makes one for a route's `response` parameter), not one shared by the router."""
        response = Response()
        del response.headers["content-length"]
        response.status_code = None  # type: ignore[assignment]
        return response

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self._graphiql_html)

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate the socket once, from connection_init's `authorization` (close 4403)."""
        params = context.connection_params
        authorization = params.get("authorization") if isinstance(params, dict) else None
        if not isinstance(authorization, str):
            raise ConnectionRejectionError()
        principal = principal_from(
            authorization,
            secret=context.deps.settings.jwt_secret,
            client=context.principal.client_address,
        )
        if not principal.is_authenticated:
            raise ConnectionRejectionError()
        context.deps = context.deps.for_principal(principal)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Negotiate the media type, apply the CSRF rule, and answer refusals as JSON."""
        if self.is_websocket_request(request):
            return await super().run(request, context=context, root_value=root_value)
        media_type = response_media_type(request.headers.get("accept"))
        token = _response_media_type.set(media_type)
        measure = RequestMeasure() if self._measured else None
        measure_token = measuring.set(measure)
        started = time.perf_counter()
        try:
            if self._check_preflighted(request):
                measure = None  # the GraphiQL page is no GraphQL request
            return await super().run(request, context=context, root_value=root_value)
        except HTTPException as error:
            if isinstance(error, (TransportError, UploadRefused)):
                code = error.code
            elif "Unknown operation named" in error.reason:
                code = "OPERATION_NOT_FOUND"
            else:
                code = "BAD_REQUEST"
            if measure is not None:
                measure.outcome = code
            return transport_error_response(
                error.status_code,
                error.reason,
                code,
                getattr(context, "request_id", None),
                media_type,
            )
        except Exception:
            if measure is not None:
                measure.outcome = "INTERNAL"  # answered 500 by the app's last-resort handler
            raise
        finally:
            measuring.reset(measure_token)
            _response_media_type.reset(token)
            await close_uploads()
            if isinstance(context, Context) and context.deps.reads is not None:
                await context.deps.reads.close()
            if measure is not None:
                record_graphql_request(
                    measure.operation(self._operation_names),
                    measure.outcome,
                    time.perf_counter() - started,
                )

    def _check_preflighted(self, request: Request) -> bool:
        """The CSRF rule (ADR 0020); the GraphiQL page itself is a plain GET (True for it)."""
        if self.should_render_graphql_ide(self.request_adapter_class(request)):
            return True
        headers = request.headers
        if not is_preflighted(
            request.method, headers.get("content-type"), headers.get(PREFLIGHT_HEADER)
        ):
            raise TransportError(400, PREFLIGHT_REQUIRED_MESSAGE, "PREFLIGHT_REQUIRED")
        return False

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """Decode a POST body here: UTF-8 JSON holding an object (or a batch of them)."""
        if request.method != "POST":
            return await super().parse_http_body(request)
        media_type, params = parse_media_type(request.content_type or "")
        if media_type == "multipart/form-data" and self.multipart_uploads_enabled:
            return await super().parse_http_body(request)
        if media_type != APPLICATION_JSON:
            received = f"`{media_type}`" if media_type else "no content type"
            raise TransportError(
                415,
                f"Send the request body as `application/json`; got {received}.",
                "UNSUPPORTED_MEDIA_TYPE",
            )
        charset = params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise TransportError(
                415,
                f"Send the request body in UTF-8 (`charset=utf-8`); got `charset={charset}`.",
                "UNSUPPORTED_MEDIA_TYPE",
            )
        try:
            text = (await request.get_body()).decode("utf-8")
        except UnicodeDecodeError as error:
            raise TransportError(
                400, "The request body is not valid UTF-8.", "BAD_REQUEST"
            ) from error
        data = self.parse_json(text)
        transport = self._get_stream_transport_from_headers(request.headers)
        protocol: GraphQLRequestProtocol = transport.protocol if transport else "http"
        if isinstance(data, list):
            self._validate_batch_request(data, protocol=protocol)
            return [
                _request_data(item, protocol, "Each operation of a batch must be a JSON object.")
                for item in data
            ]
        return _request_data(data, protocol, "The request body must be a JSON object.")

    def encode_json(self, data: object) -> str:
        return encode_json(data)

    def decode_json(self, data: str | bytes) -> object:
        """A request body, multipart field or socket message as JSON, strictly (RFC 8259 and
        I-JSON, ADR 0142): a string escape of a lone surrogate, NaN or Infinity, a number beyond
        a double, or nesting deeper than 1,024 levels is invalid JSON (HTTP 400, socket 4400).
        The standard decoder let a lone surrogate through to the services, where no database
        can store it and no text can be encoded: an INTERNAL error."""
        return orjson.loads(data)  # orjson.JSONDecodeError is a json.JSONDecodeError

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        measure = measuring.get()
        if measure is not None and result.errors:
            code = (result.errors[0].extensions or {}).get("code")
            measure.outcome = code if isinstance(code, str) else "INTERNAL"
        if _response_media_type.get() == GRAPHQL_RESPONSE_JSON and is_request_error(result):
            response.pop("data", None)  # the spec: a request error has no `data` entry
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        if _response_media_type.get() == GRAPHQL_RESPONSE_JSON:
            response.headers["content-type"] = content_type_header(GRAPHQL_RESPONSE_JSON)
            if isinstance(response_data, dict) and "data" not in response_data:
                response.status_code = 400
        return response


class DirectGraphQL:
    """ASGI middleware: a GraphQL request or socket on the router's path goes straight to the
    router.

    Starlette's route matching and FastAPI's dependency resolution give them nothing: the
    context is built from the connection alone (`context_getter`). They cost about 0.35 ms of
    CPU per socket, over a third of a reconnect storm's handshake (ADR 0097), and 0.44 ms per
    HTTP request, 4% of a small operation's (ADR 0132). GET and POST are GraphQL's (and
    GraphiQL's page); any other method, any other path or socket, and the lifespan take the
    app's usual path, whose routes answer the same. The body and socket limits of `app/http.py`
    sit outside this middleware.
    """

    def __init__(
        self,
        app: ASGIApp,
        router: KnowledgeDeskRouter,
        path: str,
        context_getter: Callable[[HTTPConnection], Awaitable[Context]] = context_getter,
    ) -> None:
        self.app = app
        self.router = router
        self.path = path
        self.context_getter = context_getter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan" or scope["path"] != scope.get("root_path", "") + self.path:
            await self.app(scope, receive, send)
        elif kind == "websocket":
            websocket = WebSocket(scope, receive, send)
            context = await self.context_getter(websocket)
            context.request = websocket  # as Strawberry's FastAPI dependency sets it
            await self.router.run(websocket, context=context, root_value=None)
        elif scope["method"] in ("GET", "POST"):
            request = Request(scope, receive)
            context = await self.context_getter(request)
            context.request = request
            try:
                response = await self.router.run(request, context=context, root_value=None)
            except HTTPException as error:  # as Strawberry's FastAPI route answers it
                response = PlainTextResponse(error.reason, status_code=error.status_code)
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _request_data(
    data: object, protocol: GraphQLRequestProtocol, not_object: str
) -> GraphQLRequestData:
    """One GraphQL request from decoded JSON, every parameter of the type the spec requires."""
    if not isinstance(data, dict):
        raise TransportError(400, not_object, "BAD_REQUEST")
    query = data.get("query")
    if not isinstance(query, (str, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `query` must be a string or null, if provided."
        )
    operation_name = data.get("operationName")
    if not isinstance(operation_name, (str, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `operationName` must be a string or null, if provided."
        )
    variables = data.get("variables")
    if not isinstance(variables, (dict, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `variables` must be an object or null, if provided."
        )
    extensions = data.get("extensions")
    if not isinstance(extensions, (dict, type(None))):
        raise HTTPException(
            400, "The GraphQL operation's `extensions` must be an object or null, if provided."
        )
    return GraphQLRequestData(
        query=query,
        variables=variables,
        operation_name=operation_name,
        extensions=extensions,
        protocol=protocol,
    )
