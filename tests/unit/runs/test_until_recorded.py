"""A write that must be recorded is retried on failure, but never after its task was cancelled,
even when the cancellation surfaces as another error (runtime/executor.py `_until_recorded`);
a best-effort progress write is not dropped then either (`_StepRecorder`)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from runtime.executor import _Lease, _StepRecorder, _until_recorded


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


class _LockedStore:
    """A run store whose progress write, once cancelled, fails as SQLAlchemy's commit does."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()
        self.writes = 0

    async def step_events(self, run_id: object, changes: list) -> None:
        self.writes += 1
        self.writing.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("database is locked") from None


async def test_a_cancelled_progress_write_ends_the_writer_instead_of_being_dropped() -> None:
    """Progress is best effort (a failed write is dropped and the writer goes on), but not when
    the failure is the writer's cancellation: the writer then ends, cancelled."""
    store = _LockedStore()
    recorder = _StepRecorder(store, uuid.uuid4(), {"EXTRACTING"}, _lease())  # type: ignore[arg-type]
    recorder.offer({"node": "EXTRACTING", "type": "progress", "current": 1, "total": 2})
    await asyncio.wait_for(store.writing.wait(), timeout=5)
    recorder.writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(recorder.writer, timeout=5)
    assert recorder.writer.cancelled()
    assert store.writes == 1
