"""`GET /metrics`: the API process's Prometheus metrics (ADR 0087).

Mounted only when METRICS_ENABLED (by default outside production); absent, the path is an
unknown one (404). With METRICS_TOKEN set it answers only `Authorization: Bearer <token>`,
compared in constant time; anything else is a 401 `UNAUTHENTICATED` in the GraphQL error shape.
It is a GET that changes nothing, outside the GraphQL endpoint and its CSRF rule.
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from app.http import json_error
from base.metrics import ProcessGauges, exposition

METRICS_PATH = "/metrics"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def token_matches(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest on bytes of the same type: its time does not depend on where they differ.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def serve_metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token is not None and not token_matches(request.headers.get("authorization"), token):
        refused = json_error(
            401,
            "Send the metrics token as `Authorization: Bearer <token>`.",
            "UNAUTHENTICATED",
            request.headers.get("accept"),
        )
        refused.headers["WWW-Authenticate"] = "Bearer"
        return refused
    gauges: ProcessGauges = request.app.state.metrics_gauges
    return Response(exposition(await gauges.read()), media_type=PROMETHEUS_TEXT)


def mount_metrics(app: FastAPI) -> None:
    app.add_api_route(METRICS_PATH, serve_metrics, methods=["GET"], include_in_schema=False)
