"""A message of run events is executed once per (events, document, variables), then shared by
subscribers."""

import json
import uuid
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import pytest
import strawberry
from strawberry.extensions import ParserCache

from resolvers.router import EncodedPayload, encode_json
from resolvers.runs.fanout import (
    FinishedReplay,
    FinishedReplays,
    RunEvents,
    SharedRunEventExecution,
    shared_run_event,
    shared_run_events,
)
from resolvers.runs.types import RunEvent, RunEventType, RunStatus

QUERY = "subscription { events { cursor type percent } }"


def _event(cursor: str) -> RunEvent:
    return RunEvent(
        cursor=cursor,
        run_id=strawberry.ID("UnVuOjE="),
        type=RunEventType.STEP_STARTED,
        status=RunStatus.RUNNING,
        step="CHAT",
        percent=50,
        message="m",
        at=datetime(2026, 11, 24, tzinfo=UTC),
    )


def _batch(*events: RunEvent) -> RunEvents:
    batch = RunEvents(events)
    batch.key = ("UnVuOjE=", int(events[0].cursor), int(events[-1].cursor))
    return batch


RUN = uuid.UUID("0b7e7c8e-4f0a-4d4c-9a55-6a1f3b2f9d10")


def _ending_batch() -> RunEvents:
    batch = _batch(_event("1"), _event("2"))
    batch.key = (str(RUN), 1, 2)
    batch.ends_run = True
    return batch


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def events(self) -> AsyncGenerator[list[RunEvent], None]:
        yield _batch(_event("7"), _event("8"))  # a replay
        yield _batch(_event("9"))  # a live event

    @strawberry.subscription
    async def ended(self) -> AsyncGenerator[list[RunEvent], None]:
        yield _ending_batch()  # the replay of an ended run: the whole answer


# As in resolvers/schema.py: parsed documents are cached, so subscribers share the operation.
SCHEMA = strawberry.Schema(
    query=Query,
    subscription=Subscription,
    execution_context_class=SharedRunEventExecution,
    extensions=[lambda: ParserCache(maxsize=16)],
)


async def _receive(query: str) -> list:
    stream = await SCHEMA.subscribe(query)
    return [result async for result in stream]


async def test_two_subscribers_share_each_event_s_result():
    SharedRunEventExecution._shared.clear()
    first, second = await _receive(QUERY), await _receive(QUERY)
    assert [r.data for r in first] == [
        {
            "events": [
                {"cursor": "7", "type": "STEP_STARTED", "percent": 50},
                {"cursor": "8", "type": "STEP_STARTED", "percent": 50},
            ]
        },
        {"events": [{"cursor": "9", "type": "STEP_STARTED", "percent": 50}]},
    ]
    assert all(a.data is b.data for a, b in zip(first, second, strict=True))  # not re-executed
    assert len(SharedRunEventExecution._shared) == 2


async def test_another_selection_is_executed_on_its_own():
    SharedRunEventExecution._shared.clear()
    narrow = await _receive("subscription { events { cursor } }")
    wide = await _receive(QUERY)
    assert narrow[0].data == {"events": [{"cursor": "7"}, {"cursor": "8"}]}
    assert wide[0].data["events"][0]["type"] == "STEP_STARTED"
    assert len(SharedRunEventExecution._shared) == 4


def _next(operation_id: str, data: object) -> dict[str, object]:
    return {"id": operation_id, "type": "next", "payload": {"data": data}}


async def test_a_shared_result_s_next_payload_is_encoded_once_for_every_subscriber():
    SharedRunEventExecution._shared.clear()
    first, second = await _receive(QUERY), await _receive(QUERY)
    sent = [encode_json(_next("1", r.data)) for r in first]
    sent += [encode_json(_next("op-2", r.data)) for r in second]
    assert [json.loads(text) for text in sent] == [
        _next(operation_id, r.data)
        for operation_id, results in (("1", first), ("op-2", second))
        for r in results
    ]
    for result in second:  # encoded already: the encoder is not called again
        cached = SharedRunEventExecution.payload_json(result.data, lambda _: pytest.fail())
        assert cached == json.dumps({"data": result.data}, separators=(",", ":"))


def _compact(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def test_other_messages_are_encoded_as_they_are():
    message = _next("1", {"me": {"name": "Zoë 😀"}})
    assert encode_json(message) == _compact(message)  # text as UTF-8, not escaped
    assert "Zoë 😀" in encode_json(message)
    error = {"id": "1", "type": "next", "payload": {"data": None, "errors": [{"message": "m"}]}}
    assert encode_json(error) == _compact(error)


def test_a_lone_surrogate_is_written_as_an_escape():
    # orjson refuses a string no UTF-8 can hold; the standard encoder escapes it.
    message = {"errors": [{"message": "got 'A \ud800'"}]}
    assert encode_json(message) == '{"errors":[{"message":"got \'A \\ud800\'"}]}'


def test_each_stored_event_becomes_one_run_event_for_every_subscriber():
    def stored() -> dict[str, object]:  # as services.run_log.run_event_dict makes it
        return {
            "cursor": 4,
            "run_id": "00000000-0000-0000-0000-0000000000aa",
            "type": "STEP_SUCCEEDED",
            "status": "RUNNING",
            "step": "CHAT",
            "percent": 75,
            "message": "CHAT succeeded",
            "at": "2026-11-24T10:00:00+00:00",
        }

    one, other = shared_run_event(stored()), shared_run_event(stored())
    assert one is other
    assert one == RunEvent.of(stored())
    batch = shared_run_events([stored(), {**stored(), "cursor": 5}])
    assert batch[0] is one
    assert [e.cursor for e in batch] == ["4", "5"]
    assert batch.key == ("00000000-0000-0000-0000-0000000000aa", 4, 5)


def _viewer_dependent_fields(cls: type, seen: set[type] | None = None) -> list[str]:
    """Fields under `cls` (its object-typed fields followed) whose value could depend on the
    viewer: a resolver that takes `info` (and so the context), a permission or an extension."""
    seen = seen if seen is not None else set()
    if cls in seen:
        return []
    seen.add(cls)
    found = []
    for field in cls.__strawberry_definition__.fields:
        name = f"{cls.__name__}.{field.python_name}"
        resolver = field.base_resolver
        if resolver is not None and resolver.info_parameter is not None:
            found.append(f"{name} takes info")
        if field.permission_classes or field.extensions:
            found.append(f"{name} has permissions or extensions")
        inner = field.type
        while hasattr(inner, "of_type"):  # lists and optionals
            inner = inner.of_type
        if hasattr(inner, "__strawberry_definition__"):
            found += _viewer_dependent_fields(inner, seen)
    return found


def test_no_field_of_a_shared_run_event_depends_on_the_viewer():
    # A run event's result is shared by every subscriber (SharedRunEventExecution): a field
    # that reads the viewer's context would show one subscriber's answer to all of them.
    assert _viewer_dependent_fields(RunEvent) == []


@strawberry.type
class ViewerRunEvent(RunEvent):
    """What a change that makes RunEvent depend on the viewer would look like."""

    @strawberry.field
    def seen_by(self, info: strawberry.Info) -> str:
        return str(info.context.principal.user_id)


@strawberry.type
class LeakySubscription:
    @strawberry.subscription
    async def events(self) -> AsyncGenerator[list[ViewerRunEvent], None]:
        base = _event("9")
        yield _batch(ViewerRunEvent(**{f: getattr(base, f) for f in vars(base)}))


LEAKY_SCHEMA = strawberry.Schema(
    query=Query,
    subscription=LeakySubscription,
    execution_context_class=SharedRunEventExecution,
)


async def test_the_walk_finds_a_field_that_takes_info():
    assert _viewer_dependent_fields(ViewerRunEvent) == ["ViewerRunEvent.seen_by takes info"]


async def test_a_run_event_field_that_reads_the_context_fails_and_is_not_shared():
    SharedRunEventExecution._shared.clear()
    stream = await LEAKY_SCHEMA.subscribe(
        "subscription { events { cursor seenBy } }", context_value=object()
    )
    [result] = [r async for r in stream]
    assert result.data is None
    assert [e.message for e in result.errors] == [
        "A field of RunEvent read `info.context.principal`, but a run event's result is shared "
        "by every subscriber: its fields must not depend on the viewer."
    ]
    assert len(SharedRunEventExecution._shared) == 0


ENDED = "subscription { ended { cursor type } }"


async def test_a_first_message_that_ends_its_run_is_kept_as_the_whole_answer():
    SharedRunEventExecution._shared.clear()
    [result] = await _receive(ENDED)
    sent = encode_json(_next("1", result.data))  # the transport encodes it first
    replays = FinishedReplays()
    key = replays.key("db", ENDED, None, {"b": 2, "a": 1})
    assert key == replays.key("db", ENDED, None, {"a": 1, "b": 2})  # variables in any order
    assert replays.remember(key, result.data)
    replay = replays.get(key)
    assert replay == FinishedReplay(RUN, json.dumps({"data": result.data}, separators=(",", ":")))
    again = encode_json(
        {"id": "op-2", "type": "next", "payload": EncodedPayload(replay.payload_json)}
    )
    assert json.loads(again) == {**json.loads(sent), "id": "op-2"}
    assert replays.get(replays.key("other db", ENDED, None, {"a": 1, "b": 2})) is None


async def test_only_an_encoded_shared_message_that_ends_its_run_is_kept():
    SharedRunEventExecution._shared.clear()
    replays = FinishedReplays()
    key = replays.key("db", QUERY, None, None)
    stored, _live = await _receive(QUERY)
    encode_json(_next("1", stored.data))
    assert not replays.remember(key, stored.data)  # more follows it
    [ended] = await _receive(ENDED)
    assert not replays.remember(key, ended.data)  # not encoded yet: nothing to send again
    assert not replays.remember(key, {"ended": [{"cursor": "1"}]})  # not a shared result
    assert replays.get(key) is None


async def test_kept_replays_are_bounded_least_recently_used_first():
    SharedRunEventExecution._shared.clear()
    [result] = await _receive(ENDED)
    encode_json(_next("1", result.data))
    replays = FinishedReplays()
    replays.MAX_REPLAYS = 2
    keys = [replays.key("db", ENDED, None, {"n": n}) for n in range(3)]
    assert replays.remember(keys[0], result.data) and replays.remember(keys[1], result.data)
    assert replays.get(keys[0]) is not None  # used: now the most recent
    assert replays.remember(keys[2], result.data)
    assert [replays.get(k) is not None for k in keys] == [True, False, True]
