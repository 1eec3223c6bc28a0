"""Waiting for a condition, never for a fixed time.

A test that needs something to have happened polls for it with `eventually`, which returns as
soon as it holds and fails, naming what it waited for, once `within` seconds have passed. That
bound only catches a hang: it is generous, and no test asserts how long anything took (timings
belong in `bench/`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")

POLL_SECONDS = 0.02


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    *,
    within: float,
    what: str,
    every: float = POLL_SECONDS,
) -> T:
    """Call `condition` (plain or async) until it returns something truthy; return that.

    Raises AssertionError("timed out after {within} s waiting for {what}") when it has not
    held within `within` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return cast(T, value)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(every)
