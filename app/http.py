"""HTTP and WebSocket guards that sit in front of the GraphQL endpoint.

Each refusal is a GraphQL-shaped JSON body with a stable `extensions.code`, in the media type the
client accepts (`resolvers/core/transport.py`), so no request gets a bare text answer.
"""

from __future__ import annotations

import logging
import uuid

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resolvers.core.transport import (
    PREFLIGHT_HEADER,
    content_type_header,
    error_body,
    response_media_type,
)

log = logging.getLogger("knowledge_desk.errors")

# WebSocket close code for a message too big to process (RFC 6455, 7.4.1).
CLOSE_MESSAGE_TOO_BIG = 1009


def json_error(
    status_code: int, message: str, code: str, accept: str | None, request_id: str | None = None
) -> JSONResponse:
    media_type = response_media_type(accept)
    return JSONResponse(
        error_body(message, code, request_id or uuid.uuid4().hex),
        status_code=status_code,
        media_type=content_type_header(media_type),
    )


class BodySizeLimit:
    """Refuse request bodies over the limit with 413 and a JSON error, while they stream in
    (never buffered whole): `max_bytes` for any body, `multipart_max_bytes` for a multipart
    upload (every file at its largest; each file is capped again as it is parsed)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, multipart_max_bytes: int | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.multipart_max_bytes = multipart_max_bytes or max_bytes

    def _limit(self, scope: Scope) -> int:
        content_type = Headers(scope=scope).get("content-type") or ""
        if content_type.split(";")[0].strip().lower() == "multipart/form-data":
            return self.multipart_max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = json_error(
            413,
            f"The request body is larger than {limit} bytes.",
            "PAYLOAD_TOO_LARGE",
            Headers(scope=scope).get("accept"),
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class WebSocketMessageLimit:
    """Close a WebSocket with 1009 when a message is over `max_bytes`, before the app reads it.

    The app is told the client went away, so it cancels the socket's operations; anything it
    still sends is dropped. `python -m app serve` also gives uvicorn the same `ws_max_size`, so
    there the server refuses the message before buffering it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        closed = False
        gone: Message = {"type": "websocket.disconnect", "code": CLOSE_MESSAGE_TOO_BIG}

        async def limited_receive() -> Message:
            nonlocal closed
            if closed:
                return gone
            message = await receive()
            if message["type"] == "websocket.receive" and self._too_big(message):
                closed = True
                await send(
                    {
                        "type": "websocket.close",
                        "code": CLOSE_MESSAGE_TOO_BIG,
                        "reason": f"Message larger than {self.max_bytes} bytes",
                    }
                )
                return gone
            return message

        async def guarded_send(message: Message) -> None:
            if not closed:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    def _too_big(self, message: Message) -> bool:
        data = message.get("bytes")
        if data is not None:
            return len(data) > self.max_bytes
        text: str = message.get("text") or ""
        if len(text) > self.max_bytes:  # a character is at least one byte
            return True
        if len(text) * 4 <= self.max_bytes:  # and at most four
            return False
        return len(text.encode("utf-8")) > self.max_bytes


class CORS(CORSMiddleware):
    """Starlette's CORS for `CORS_ALLOWED_ORIGINS`, with a refused preflight answered in JSON."""

    def __init__(self, app: ASGIApp, allow_origins: tuple[str, ...]) -> None:
        super().__init__(
            app,
            allow_origins=allow_origins,
            allow_methods=("GET", "POST"),
            allow_headers=("authorization", "content-type", PREFLIGHT_HEADER.lower()),
            allow_credentials=False,  # tokens travel in the Authorization header, not cookies
            expose_headers=("content-disposition",),  # a download's file name
            max_age=600,
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        failure = bytes(response.body).decode()  # "Disallowed CORS origin, headers"
        refused = json_error(
            response.status_code,
            f"{failure}.",
            "CORS_NOT_ALLOWED",
            request_headers.get("accept"),
        )
        for name, value in response.headers.items():
            if name not in ("content-type", "content-length"):
                refused.headers[name] = value
        return refused


_STATUS_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path, wrong method) in the GraphQL error shape."""
    assert isinstance(exc, StarletteHTTPException)
    response = json_error(
        exc.status_code,
        exc.detail,
        _STATUS_CODES.get(exc.status_code, "BAD_REQUEST"),
        request.headers.get("accept"),
    )
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Last resort: an exception that escaped the app is a JSON 500 `INTERNAL`, logged with its
    request id. Starlette re-raises it afterwards, so the server logs the traceback too."""
    request_id = uuid.uuid4().hex
    log.error(
        "unexpected error in %s %s [request %s]",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return json_error(
        500, "Unexpected error.", "INTERNAL", request.headers.get("accept"), request_id
    )
