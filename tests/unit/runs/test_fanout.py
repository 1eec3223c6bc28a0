"""A run event is executed once per (event, document, variables), then shared by subscribers."""

from collections.abc import AsyncGenerator
from datetime import UTC, datetime

import strawberry
from strawberry.extensions import ParserCache

from resolvers.runs.fanout import SharedRunEventExecution
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


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def events(self) -> AsyncGenerator[RunEvent, None]:
        for cursor in ("7", "8"):
            yield _event(cursor)


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
        {"events": {"cursor": "7", "type": "STEP_STARTED", "percent": 50}},
        {"events": {"cursor": "8", "type": "STEP_STARTED", "percent": 50}},
    ]
    assert all(a.data is b.data for a, b in zip(first, second, strict=True))  # not re-executed
    assert len(SharedRunEventExecution._shared) == 2


async def test_another_selection_is_executed_on_its_own():
    SharedRunEventExecution._shared.clear()
    narrow = await _receive("subscription { events { cursor } }")
    wide = await _receive(QUERY)
    assert narrow[0].data == {"events": {"cursor": "7"}}
    assert wide[0].data["events"]["type"] == "STEP_STARTED"
    assert len(SharedRunEventExecution._shared) == 4
