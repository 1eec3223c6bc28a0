"""What `/graphql` says over HTTP, as plain functions of header values.

* Which media type a response is sent as (`Accept` negotiation, GraphQL over HTTP).
* The CSRF rule: which requests a browser can only send cross-site after a CORS preflight.
* The JSON body of an error answered before or instead of GraphQL execution.

The router (`resolvers/router.py`) and the HTTP guards (`app/http.py`) both answer through these,
so every refusal has the same shape and media type.
"""

from __future__ import annotations

from typing import Any

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"

# The CSRF header: any non-empty value. Browsers send a custom header cross-site only after a
# CORS preflight, which this server answers only for CORS_ALLOWED_ORIGINS.
PREFLIGHT_HEADER = "GraphQL-Require-Preflight"

# Content types an HTML form or a no-cors fetch can send without a preflight (Fetch standard's
# CORS-safelisted request-header `Content-Type`).
SIMPLE_CONTENT_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)

PREFLIGHT_REQUIRED_MESSAGE = (
    f"This request could have come from another site: send it with a `{PREFLIGHT_HEADER}` "
    "header (any non-empty value), or as a POST with `Content-Type: application/json`."
)


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """`type/subtype` in lower case, and its parameters (names in lower case, quotes removed)."""
    essence, *raw_params = value.split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        name, sep, param_value = raw.partition("=")
        if sep:
            params[name.strip().lower()] = param_value.strip().strip('"')
    return essence.strip().lower(), params


def _quality(params: dict[str, str]) -> float:
    try:
        q = float(params.get("q", "1"))
    except ValueError:
        return 0.0
    return min(max(q, 0.0), 1.0)


def response_media_type(accept: str | None) -> str:
    """The media type to answer a GraphQL request with.

    `application/graphql-response+json` when the client names it, with a quality above zero and
    at least that of `application/json`; otherwise `application/json`, which also answers a
    missing `Accept`, `*/*`, `application/*` and an `Accept` naming neither (the spec's legacy
    behaviour rather than 406).
    """
    if not accept:
        return APPLICATION_JSON
    graphql_q: float | None = None
    json_q: float | None = None  # from the most specific range that matches application/json
    json_specificity = -1
    for item in accept.split(","):
        media_type, params = parse_media_type(item)
        q = _quality(params)
        if media_type == GRAPHQL_RESPONSE_JSON:
            graphql_q = q if graphql_q is None else max(graphql_q, q)
        specificity = {APPLICATION_JSON: 2, "application/*": 1, "*/*": 0}.get(media_type, -1)
        if specificity > json_specificity:
            json_q, json_specificity = q, specificity
    if graphql_q is not None and graphql_q > 0 and graphql_q >= (json_q or 0.0):
        return GRAPHQL_RESPONSE_JSON
    return APPLICATION_JSON


def content_type_header(media_type: str) -> str:
    """The `Content-Type` value of a response of `media_type`."""
    if media_type == GRAPHQL_RESPONSE_JSON:
        return f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"
    return APPLICATION_JSON


def is_preflighted(method: str, content_type: str | None, preflight_header: str | None) -> bool:
    """Whether a browser could have sent this request cross-site only after a CORS preflight.

    True with a non-empty `GraphQL-Require-Preflight` header, or for a POST whose content type
    is not one a form can send. GET requests and form-like POSTs need the header.
    """
    if preflight_header is not None and preflight_header.strip():
        return True
    if method != "POST" or content_type is None:
        return False
    media_type, _ = parse_media_type(content_type)
    return bool(media_type) and media_type not in SIMPLE_CONTENT_TYPES


def error_body(message: str, code: str, request_id: str | None) -> dict[str, Any]:
    """The GraphQL-shaped body of a refused request: one error, its code and the request id."""
    return {"errors": [{"message": message, "extensions": {"code": code, "requestId": request_id}}]}
