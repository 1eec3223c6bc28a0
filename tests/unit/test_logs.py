"""The process's logging: httpx's line per request sent shows at DEBUG only."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app.logs import configure_logging


@pytest.fixture
def httpx_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("httpx")
    level = logger.level
    yield logger
    logger.setLevel(level)


@pytest.mark.parametrize(
    ("level", "shown"),
    [("DEBUG", True), ("INFO", False), ("WARNING", False), ("ERROR", False)],
)
def test_httpx_requests_are_logged_at_debug_only(
    httpx_logger: logging.Logger, level: str, shown: bool
) -> None:
    configure_logging(level)
    assert httpx_logger.isEnabledFor(logging.INFO) is shown
    assert httpx_logger.isEnabledFor(logging.WARNING) is True
