"""Errors that escape every route still reach the client as GraphQL-shaped JSON, never text.

In-process, without the lifespan: only routes that need no database are called.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from app.main import create_app
from base.settings import Settings


async def test_an_exception_that_escapes_a_route_is_a_json_500_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings(log_level="WARNING"))

    async def boom() -> None:
        raise RuntimeError("the database went away")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="knowledge_desk.errors"):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/boom")
            graphql_media = await http.get(
                "/boom", headers={"accept": "application/graphql-response+json"}
            )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    request_id = error["extensions"]["requestId"]
    assert error == {
        "message": "Unexpected error.",
        "extensions": {"code": "INTERNAL", "requestId": request_id},
    }
    assert f"unexpected error in GET /boom [request {request_id}]" in caplog.text
    assert graphql_media.status_code == 500
    assert graphql_media.headers["content-type"] == (
        "application/graphql-response+json; charset=utf-8"
    )


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "message"),
    [
        ("PUT", "/graphql", 405, "METHOD_NOT_ALLOWED", "Method Not Allowed"),
        ("DELETE", "/healthz", 405, "METHOD_NOT_ALLOWED", "Method Not Allowed"),
        ("GET", "/no-such-path", 404, "NOT_FOUND", "Not Found"),
    ],
)
async def test_unknown_paths_and_methods_are_json_errors_with_a_code(
    method: str, path: str, status: int, code: str, message: str
) -> None:
    app = create_app(Settings(log_level="WARNING"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert error == {
        "message": message,
        "extensions": {"code": code, "requestId": error["extensions"]["requestId"]},
    }
