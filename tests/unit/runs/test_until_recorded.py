"""A write that must be recorded is retried on failure, but never after its task was cancelled,
even when the cancellation surfaces as another error (runtime/executor.py `_until_recorded`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from runtime.executor import _Lease, _until_recorded


def _lease(seconds: float = 60.0) -> _Lease:
    return _Lease(seconds, time.monotonic(), on_lost=lambda: None)


async def test_a_failed_write_is_retried_until_it_succeeds() -> None:
    calls = 0

    async def write() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("database is locked")

    await _until_recorded(_lease(), "a step", write)
    assert calls == 3


async def test_a_cancellation_that_surfaces_as_another_error_is_not_retried() -> None:
    calls = 0
    started = asyncio.Event()

    async def write() -> None:
        # As SQLAlchemy's session does: the commit runs on after the cancel, fails, and its
        # failure is raised instead of the cancellation.
        nonlocal calls
        calls += 1
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("database is locked") from None

    task = asyncio.create_task(_until_recorded(_lease(), "a step", write))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)
    assert calls == 1
    assert task.cancelled()
