"""Turns at the chat model for the ingestion steps of one process (ADR 0111).

A model server answers one request at a time (or a few), so documents ingesting together take
turns here rather than queueing on the server, where the wait would count against each request's
timeout. Turns go in the order they were asked for, with one exception: a holder that knows its
document asks again next (SUMMARIZING, then TAGGING) hands its turn back with `keep_for_next`,
and the turn waits up to `hold_seconds` for that document. Its two prompts start with the same
system message, title and passages, so back to back the server reuses the first prompt's
evaluation (llama.cpp's and Ollama's prompt cache) instead of reading the document again after
another one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class ModelTurns:
    def __init__(self, size: int, *, hold_seconds: float) -> None:
        self._free = size
        self._hold_seconds = hold_seconds
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._kept: dict[Hashable, asyncio.TimerHandle] = {}

    @asynccontextmanager
    async def turn(self, key: Hashable, *, keep_for_next: bool = False) -> AsyncIterator[None]:
        """Hold a turn for `key`'s request; with `keep_for_next`, the turn then waits a moment
        for `key`'s next request before it goes to the others."""
        await self._acquire(key)
        try:
            yield
        except BaseException:
            self._hand_on()
            raise
        if keep_for_next:
            self._keep(key)
        else:
            self._hand_on()

    async def _acquire(self, key: Hashable) -> None:
        kept = self._kept.pop(key, None)
        if kept is not None:
            kept.cancel()
            return
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._hand_on()  # handed a turn, but cancelled before it could run
            elif granted in self._waiting:
                self._waiting.remove(granted)
            raise

    def _keep(self, key: Hashable) -> None:
        loop = asyncio.get_running_loop()
        self._kept[key] = loop.call_later(self._hold_seconds, self._lapse, key)

    def _lapse(self, key: Hashable) -> None:
        if self._kept.pop(key, None) is not None:
            self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting:
            granted = self._waiting.popleft()
            if not granted.done():
                granted.set_result(None)
                return
        self._free += 1
