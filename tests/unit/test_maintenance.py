"""Upkeep: when the embedded default analyses SQLite again (ADR 0082), and how the background
jobs of a process stop."""

import asyncio

import pytest

from app.maintenance import Upkeep, statistics_outdated


@pytest.mark.parametrize(
    ("analysed_with", "documents", "outdated"),
    [
        (None, 0, True),  # never analysed in this process
        (0, 100, False),  # small moves do not matter
        (0, 101, True),
        (1000, 1250, False),  # a quarter, not more
        (1000, 1251, True),
        (1000, 749, True),
        (10_000, 10_100, False),
        (10_000, 12_501, True),
        (10_000, 7_000, True),
    ],
)
def test_statistics_are_outdated_after_a_quarter_and_at_least_100_documents(
    analysed_with: int | None, documents: int, outdated: bool
) -> None:
    assert statistics_outdated(analysed_with, documents) is outdated


async def test_stopping_lets_a_job_in_progress_finish() -> None:
    upkeep = Upkeep()
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def job() -> None:
        started.set()
        await release.wait()
        finished.append("job")

    upkeep.once("the job", job)
    await started.wait()
    stopping = asyncio.create_task(upkeep.stop(grace_seconds=30))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # it waits for the job instead of cancelling it
    release.set()
    await stopping
    assert finished == ["job"]


async def test_stopping_cuts_the_wait_between_runs() -> None:
    upkeep = Upkeep()
    runs: list[int] = []

    async def job() -> None:
        runs.append(len(runs))

    upkeep.every("the job", 3600, job, now=True)
    upkeep.every("the later job", 3600, job, now=False)
    await asyncio.sleep(0.05)
    async with asyncio.timeout(1):  # an hour's wait would fail here
        await upkeep.stop(grace_seconds=30)
    assert runs == [0]  # the first ran at once, the second never came


async def test_a_job_past_the_grace_is_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    upkeep = Upkeep()
    cancelled = asyncio.Event()

    async def job() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    upkeep.once("the slow job", job)
    await asyncio.sleep(0)
    await upkeep.stop(grace_seconds=0.05)
    assert cancelled.is_set()
    assert "the slow job still running after 0 s; cancelled" in caplog.text


async def test_a_failed_run_is_logged_and_the_next_one_comes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upkeep = Upkeep()
    runs: list[int] = []
    third = asyncio.Event()

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 3:
            third.set()
        raise RuntimeError("disk full")

    upkeep.every("the failing job", 0.01, job, now=True)
    async with asyncio.timeout(5):
        await third.wait()
    await upkeep.stop()
    assert runs[:3] == [0, 1, 2]
    assert caplog.text.count("the failing job failed; trying again later") == len(runs)
