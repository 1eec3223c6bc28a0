"""How the suite is shared between test processes: `make test` runs two (pytest-xdist, whole
modules to each, ADR 0145), each starting its own PostgreSQL, Redis and model server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Each test empties the servers these name, so test processes cannot share them.
SHARED_SERVERS = ("TEST_DATABASE_URL", "TEST_REDIS_URL")


def pytest_configure(config: pytest.Config) -> None:
    processes = getattr(config.option, "numprocesses", None)
    named = [name for name in SHARED_SERVERS if os.environ.get(name)]
    if isinstance(processes, int) and processes > 1 and named:
        raise pytest.UsageError(
            f"each test empties the server named by {' and '.join(named)}, which every test "
            "process would share: run one process (`make test TEST_WORKERS=0`, or pytest "
            "without -n)"
        )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules go longest first, by the seconds their `slow` mark gives, the rest after them in
    the order they came (pytest-randomly's shuffle). The test processes take whole modules in
    this order, so a long module is not taken last, to end the run on one process while the
    other idles."""
    seconds: dict[Path, float] = {}
    for item in items:
        mark = item.get_closest_marker("slow")
        if mark is not None:
            seconds[item.path] = max(seconds.get(item.path, 0), mark.kwargs.get("seconds", 0))
    items.sort(key=lambda item: -seconds.get(item.path, 0))
