"""The process's logging: one format and the level from LOG_LEVEL, for the API and the worker."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str) -> None:
    """Log at `level`. httpx logs each request it sends at INFO: a line for every query
    embedding and every model call (the metrics count those, ADR 0087). They show at DEBUG only."""
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
