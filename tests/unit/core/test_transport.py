"""The transport's header rules: response media type, the CSRF rule, media type parsing."""

from __future__ import annotations

import pytest

from resolvers.core.transport import (
    is_preflighted,
    parse_media_type,
    response_media_type,
)

GRJ = "application/graphql-response+json"
JSON = "application/json"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        ("text/html", JSON),  # nothing we serve: the spec's legacy answer, not 406
        (GRJ, GRJ),
        ("Application/GraphQL-Response+JSON", GRJ),
        (f"{GRJ}, {JSON};q=0.9", GRJ),
        (f"{JSON}, {GRJ};q=0.9", JSON),
        (f"{JSON};q=0.5, {GRJ};q=0.9", GRJ),
        (f"{GRJ}, {JSON}", GRJ),  # a tie goes to the spec's own media type
        (f"{GRJ}, */*", GRJ),
        (f"{GRJ};q=0.5, */*", JSON),
        (f"{GRJ};q=0.5, application/*;q=0.4, */*", GRJ),  # application/* outranks */*
        (f"{GRJ};q=0", JSON),
        (f"{GRJ};q=0, {JSON}", JSON),
        (f"{GRJ};q=abc, {JSON}", JSON),  # an unreadable quality counts as 0
        (f"{GRJ};q=7", GRJ),
        (f'{GRJ}; charset="utf-8"', GRJ),
    ],
)
def test_response_media_type(accept: str | None, expected: str) -> None:
    assert response_media_type(accept) == expected


@pytest.mark.parametrize(
    ("method", "content_type", "header", "expected"),
    [
        ("POST", "application/json", None, True),
        ("POST", "application/json; charset=utf-8", None, True),
        ("POST", "application/xml", None, True),  # not simple: a browser preflights it
        ("POST", "text/plain", None, False),
        ("POST", "Text/Plain; charset=UTF-8", None, False),
        ("POST", "application/x-www-form-urlencoded", None, False),
        ("POST", "multipart/form-data; boundary=x", None, False),
        ("POST", None, None, False),
        ("POST", "", None, False),
        ("POST", ";;;", None, False),
        ("POST", "multipart/form-data; boundary=x", "1", True),
        ("POST", "text/plain", "yes", True),
        ("GET", None, None, False),
        ("GET", "application/json", None, False),  # a GET has no body to make it non-simple
        ("GET", None, "1", True),
        ("GET", None, "", False),
        ("GET", None, "   ", False),
    ],
)
def test_is_preflighted(
    method: str, content_type: str | None, header: str | None, expected: bool
) -> None:
    assert is_preflighted(method, content_type, header) is expected


def test_parse_media_type() -> None:
    assert parse_media_type(' Application/JSON ; Charset="UTF-8"; q=0.5') == (
        "application/json",
        {"charset": "UTF-8", "q": "0.5"},
    )
    assert parse_media_type("") == ("", {})
    assert parse_media_type(";;;") == ("", {})
    assert parse_media_type("text/plain; novalue") == ("text/plain", {})
