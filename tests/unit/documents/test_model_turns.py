"""Turns at the chat model (services/model_turns.py): first asked, first served, except that a
turn kept for a document goes to that document's next request (ADR 0111)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from services.model_turns import ModelTurns


async def _take(turns: ModelTurns, key: str, order: list[str], *, keep: bool = False) -> None:
    async with turns.turn(key, keep_for_next=keep):
        order.append(key)
        await asyncio.sleep(0)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_turns_go_in_the_order_they_were_asked_for() -> None:
    turns = ModelTurns(1, hold_seconds=5.0)
    order: list[str] = []
    await asyncio.gather(*(_take(turns, key, order) for key in "abcd"))
    assert order == ["a", "b", "c", "d"]


async def test_as_many_hold_a_turn_at_once_as_the_size() -> None:
    turns = ModelTurns(2, hold_seconds=5.0)
    inside = 0
    most = 0

    async def hold(key: str) -> None:
        nonlocal inside, most
        async with turns.turn(key):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(hold(str(n)) for n in range(6)))
    assert most == 2


async def test_a_kept_turn_goes_to_the_same_documents_next_request_before_others() -> None:
    turns = ModelTurns(1, hold_seconds=5.0)
    order: list[str] = []
    first = asyncio.create_task(_take(turns, "a", order, keep=True))
    await _settle()
    others = [asyncio.create_task(_take(turns, key, order)) for key in ("b", "c")]
    await first  # a's turn is kept: b and c still wait
    await _settle()
    assert order == ["a"]
    await _take(turns, "a", order)  # a's next request, after the others asked
    await asyncio.gather(*others)
    assert order == ["a", "a", "b", "c"]


async def test_a_kept_turn_that_nobody_claims_goes_on_after_the_hold() -> None:
    turns = ModelTurns(1, hold_seconds=0.05)
    order: list[str] = []
    await _take(turns, "a", order, keep=True)
    waiting = asyncio.create_task(_take(turns, "b", order))
    await _settle()
    assert order == ["a"]
    await asyncio.wait_for(waiting, timeout=2.0)
    assert order == ["a", "b"]
    # and the turn is free again: a third request is served at once
    await asyncio.wait_for(_take(turns, "c", order), timeout=0.01)
    assert order == ["a", "b", "c"]


async def test_a_failed_request_does_not_keep_its_turn() -> None:
    turns = ModelTurns(1, hold_seconds=5.0)
    order: list[str] = []
    with pytest.raises(RuntimeError):
        async with turns.turn("a", keep_for_next=True):
            raise RuntimeError("model unavailable")
    await asyncio.wait_for(_take(turns, "b", order), timeout=0.01)
    assert order == ["b"]


async def _a_holds_while_b_and_c_wait(
    turns: ModelTurns, order: list[str], after_a: Callable[[], object] = lambda: None
) -> tuple[asyncio.Event, asyncio.Task[None], asyncio.Task[None], asyncio.Task[None]]:
    """a holds the turn until the returned event is set, then calls `after_a` at once (before
    the next waiter runs); b, then c, wait for the turn."""
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn("a"):
            order.append("a")
            await release.wait()
        after_a()

    holding = asyncio.create_task(holder())
    await _settle()
    b = asyncio.create_task(_take(turns, "b", order))
    c = asyncio.create_task(_take(turns, "c", order))
    await _settle()
    return release, holding, b, c


async def test_a_cancelled_waiter_leaves_the_queue_and_the_turn_goes_on() -> None:
    turns = ModelTurns(1, hold_seconds=5.0)
    order: list[str] = []
    release, holding, b, c = await _a_holds_while_b_and_c_wait(turns, order)
    b.cancel()
    await _settle()
    release.set()
    await holding
    await asyncio.wait_for(c, timeout=1.0)
    assert b.cancelled()
    assert order == ["a", "c"]


async def test_a_waiter_cancelled_just_as_it_was_handed_the_turn_hands_it_on() -> None:
    turns = ModelTurns(1, hold_seconds=5.0)
    order: list[str] = []
    waiters: list[asyncio.Task[None]] = []
    # b has just been handed the turn and has not run yet when a cancels it
    release, holding, b, c = await _a_holds_while_b_and_c_wait(
        turns, order, after_a=lambda: waiters[0].cancel()
    )
    waiters.append(b)
    release.set()
    await holding
    await asyncio.wait_for(c, timeout=1.0)
    assert b.cancelled()
    assert order == ["a", "c"]
