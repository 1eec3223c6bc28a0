"""replay_then_tail over an in-memory log and the in-process bus: order, no gap, no duplicate."""

import asyncio

import pytest

from base.errors import NotFound
from base.events.bus import LocalBus, Subscription
from base.events.stream import replay_then_tail, replay_then_tail_batches

TOPIC = "run:test"


class Log:
    """Rows as the database would hold them, read in batches like run_log does."""

    def __init__(self, batch: int = 500) -> None:
        self.rows: list[dict] = []
        self.batch = batch
        self.reads = 0

    def append(self, cursor: int, kind: str = "STEP") -> dict:
        event = {"cursor": cursor, "type": kind}
        self.rows.append(event)
        self.rows.sort(key=lambda e: e["cursor"])
        return event

    async def after(self, cursor: int) -> list[dict]:
        self.reads += 1
        return [e for e in self.rows if e["cursor"] > cursor][: self.batch]


async def _take(stream, n: int) -> list[int]:
    got = []
    async for event in stream:
        got.append(event["cursor"])
        if len(got) == n:
            break
    return got


async def test_a_replay_longer_than_one_batch_is_read_to_the_end():
    log, bus = Log(batch=500), LocalBus()
    for cursor in range(1, 1201):
        log.append(cursor)
    log.append(1201, "RUN_SUCCEEDED")
    stream = replay_then_tail(
        bus, TOPIC, 0, log.after, contiguous=True, is_last=lambda e: e["type"] == "RUN_SUCCEEDED"
    )
    assert [e["cursor"] async for e in stream] == list(range(1, 1202))


async def test_batches_are_the_new_events_of_each_read_then_each_live_event():
    log, bus = Log(batch=4), LocalBus()
    for cursor in range(1, 7):
        log.append(cursor)
    stream = replay_then_tail_batches(bus, TOPIC, 1, log.after, contiguous=True, batch_size=4)
    replayed = [await anext(stream), await anext(stream)]  # reads of 4, then the 1 left
    assert [[e["cursor"] for e in b] for b in replayed] == [[2, 3, 4, 5], [6]]
    await bus.publish(TOPIC, log.rows[3])  # already sent: no batch of its own
    live = []
    for cursor in (7, 8):
        await bus.publish(TOPIC, log.append(cursor))
        live.append(await asyncio.wait_for(anext(stream), 2))
    assert [[e["cursor"] for e in b] for b in live] == [[7], [8]]
    await stream.aclose()


async def test_a_batch_ends_with_the_last_event_and_the_stream_with_it():
    log, bus = Log(), LocalBus()
    for cursor in (1, 2):
        log.append(cursor)
    log.append(3, "RUN_SUCCEEDED")
    log.append(4)  # never sent: the stream has ended
    stream = replay_then_tail_batches(
        bus, TOPIC, 0, log.after, contiguous=True, is_last=lambda e: e["type"] == "RUN_SUCCEEDED"
    )
    assert [[e["cursor"] for e in b] async for b in stream] == [[1, 2, 3]]


async def test_live_events_follow_the_replay_without_gap_or_duplicate():
    log, bus = Log(), LocalBus()
    for cursor in (1, 2, 3):
        log.append(cursor)
    stream = replay_then_tail(bus, TOPIC, 1, log.after, contiguous=True)
    first = await _take(stream, 2)
    # A duplicate of an event already replayed, then the next two, the second published twice.
    await bus.publish(TOPIC, log.rows[2])
    for cursor in (4, 5):
        await bus.publish(TOPIC, log.append(cursor))
    await bus.publish(TOPIC, log.rows[-1])
    await bus.publish(TOPIC, log.append(6))
    assert first + await _take(stream, 3) == [2, 3, 4, 5, 6]


async def test_a_missed_event_is_read_back_from_the_log():
    log, bus = Log(), LocalBus()
    stream = replay_then_tail(bus, TOPIC, 0, log.after, contiguous=True)
    reader = asyncio.create_task(_take(stream, 3))
    await asyncio.sleep(0.01)
    log.append(1)  # committed, but its publish was lost
    log.append(2)
    await bus.publish(TOPIC, log.append(3))
    assert await asyncio.wait_for(reader, 2) == [1, 2, 3]


async def test_resync_wakes_an_idle_subscriber_which_then_reads_the_log():
    log, bus = Log(), LocalBus()
    stream = replay_then_tail(bus, TOPIC, 0, log.after, contiguous=False)
    reader = asyncio.create_task(_take(stream, 2))
    await asyncio.sleep(0.01)
    log.append(7)
    log.append(9)
    bus._resync_all()  # what RedisBus does after reconnecting to Redis
    assert await asyncio.wait_for(reader, 2) == [7, 9]


async def test_out_of_order_publishes_of_a_non_contiguous_log_lose_nothing():
    log, bus = Log(), LocalBus()
    stream = replay_then_tail(bus, "workspace:w", 0, log.after, contiguous=False)
    reader = asyncio.create_task(_take(stream, 2))
    await asyncio.sleep(0.01)
    ten, eleven = log.append(10), log.append(11)
    await bus.publish("workspace:w", eleven)  # published before the earlier row's event
    await bus.publish("workspace:w", ten)
    assert await asyncio.wait_for(reader, 2) == [10, 11]


async def test_an_overflowing_subscriber_gets_resync_once_drained():
    subscription = Subscription(TOPIC)
    for i in range(subscription.queue.maxsize + 5):
        subscription.offer({"cursor": i})
    drained = [await subscription.get() for _ in range(subscription.queue.maxsize)]
    assert [e["cursor"] for e in drained] == list(range(subscription.queue.maxsize))
    assert (await subscription.get())["type"] == "RESYNC"


async def test_leaving_releases_the_subscription():
    bus = LocalBus()
    async with bus.subscribe(TOPIC):
        assert bus.subscriber_count == 1
    assert bus.subscriber_count == 0


async def test_a_quiet_stream_reads_the_log_and_ends_on_a_final_event_never_published():
    """The final event committed but its publish was lost (the bus was down, or the process
    died between commit and publish): after the idle interval the stream reads it and ends."""
    log, bus = Log(), LocalBus()
    log.append(1)
    stream = replay_then_tail(
        bus,
        TOPIC,
        0,
        log.after,
        contiguous=True,
        is_last=lambda e: e["type"] == "RUN_SUCCEEDED",
        idle_seconds=0.05,
    )
    reader = asyncio.create_task(_take(stream, 10))
    await asyncio.sleep(0.01)
    log.append(2)
    log.append(3, "RUN_SUCCEEDED")  # nothing is published
    assert await asyncio.wait_for(reader, 2) == [1, 2, 3]


async def test_without_an_idle_interval_a_lost_publish_is_waited_for():
    log, bus = Log(), LocalBus()
    stream = replay_then_tail(
        bus, TOPIC, 0, log.after, contiguous=True, is_last=lambda e: e["type"] == "RUN_SUCCEEDED"
    )
    reader = asyncio.create_task(_take(stream, 10))
    await asyncio.sleep(0.01)
    log.append(1, "RUN_SUCCEEDED")
    done, _ = await asyncio.wait({reader}, timeout=0.3)
    assert done == set() and log.reads == 1
    reader.cancel()


class FlakyLog(Log):
    """A log whose reads fail while `down` (a database restarting), like a connection error."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.failures = 0
        self.failed_twice = asyncio.Event()

    async def after(self, cursor: int) -> list[dict]:
        if self.down:
            self.failures += 1
            if self.failures >= 2:
                self.failed_twice.set()
            raise ConnectionError("the database is restarting")
        return await super().after(cursor)


async def test_reads_that_fail_while_tailing_are_retried():
    log, bus = FlakyLog(), LocalBus()
    stream = replay_then_tail(
        bus,
        TOPIC,
        0,
        log.after,
        contiguous=True,
        is_last=lambda e: e["type"] == "RUN_SUCCEEDED",
        idle_seconds=0.02,
    )
    reader = asyncio.create_task(_take(stream, 10))
    await asyncio.sleep(0.01)
    log.down = True
    await asyncio.wait_for(log.failed_twice.wait(), 5)
    log.append(1)
    log.append(2, "RUN_SUCCEEDED")
    log.down = False
    assert await asyncio.wait_for(reader, 5) == [1, 2]


async def test_a_denied_access_check_ends_the_stream_without_retrying():
    log, bus = Log(), LocalBus()
    checks = 0

    async def denied() -> None:
        nonlocal checks
        checks += 1
        raise NotFound("No such run.")

    stream = replay_then_tail(
        bus, TOPIC, 0, log.after, contiguous=True, check_access=denied, idle_seconds=0.02
    )
    reader = asyncio.create_task(_take(stream, 1))
    await asyncio.sleep(0.01)
    await bus.publish(TOPIC, log.append(1))
    with pytest.raises(NotFound):
        await asyncio.wait_for(reader, 2)
    assert checks == 1


async def test_transient_messages_carry_the_last_cursor_and_stored_events_still_arrive():
    log, bus = Log(), LocalBus()
    log.append(5)
    stream = replay_then_tail(bus, "workspace:w", 0, log.after, contiguous=False)
    got = [await anext(stream)]  # subscribed from here on
    reads = log.reads
    for percent in (10, 10, 40):  # repeated ones too: nothing de-duplicates them
        await bus.publish("workspace:w", {"transient": True, "type": "PROGRESS", "p": percent})
    got += [await asyncio.wait_for(anext(stream), 2) for _ in range(3)]
    assert log.reads == reads  # a transient message reads nothing
    await bus.publish("workspace:w", log.append(6, "RUN_FINISHED"))
    got.append(await asyncio.wait_for(anext(stream), 2))
    await stream.aclose()
    assert [(e["type"], e["cursor"]) for e in got] == [
        ("STEP", 5),
        ("PROGRESS", 5),
        ("PROGRESS", 5),
        ("PROGRESS", 5),
        ("RUN_FINISHED", 6),
    ]
    assert [e["p"] for e in got[1:4]] == [10, 10, 40]
