"""How operations and subscription events are executed: each with fresh loaders, and run events
once per process.

- Each operation, and each event of a subscription, is executed with a copy of the context that
  has fresh loaders (`Context.fresh`). Over HTTP the context is new per request anyway; a
  WebSocket's lives as long as the socket, so without the copy a user renamed or removed since
  the socket opened would be shown as they were, to later events and to later queries alike.
- graphql-core executes a subscription's selection for every subscriber and every event; with a
  thousand subscribers of one run that is most of the CPU the fan-out costs. A RunEvent's fields
  do not depend on who asks (access is checked when the subscription starts and re-checked
  while it streams), so the result of one (message of events, document, variables) is shared.
  That holds only while no field under RunEvent reads the viewer, so run events are executed
  with `NoViewer` as their context: a field that reads it fails, in the tests first
  (tests/unit/runs/test_fanout.py also checks RunEvent's fields statically).

  An event whose result is shared gets no executor at all, and the transport encodes its
  `next` payload once (`payload_json`, used by the router's `encode_json`).
- A run's log never changes, so each stored event, by (run, cursor), becomes one `RunEvent` for
  every subscriber (`shared_run_event`), and a message of them (`RunEvents`) is named by its
  run and its first and last cursors.
- A subscription whose first message ends the run (a replay of an ended run) was answered whole
  by that message: the same document and variables get the same answer from then on. The
  transport keeps it (`FinishedReplays`) and sends it again without executing anything, after
  the same shared access check (ADR 0131).

Any other payload, and queries and mutations, take the normal path.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from graphql import ExecutionResult

from resolvers.core.context import Context
from resolvers.core.execution import PlainFieldExecution
from resolvers.runs.types import RunEvent
from services.run_log import TERMINAL_EVENT_TYPES


class ViewerDependence(RuntimeError):
    """A field of a shared run event read the context: its result would leak between viewers."""


class NoViewer:
    """The context a shared run event is executed with: any use of it raises."""

    def __getattr__(self, name: str) -> NoReturn:
        raise ViewerDependence(
            f"A field of RunEvent read `info.context.{name}`, but a run event's result is "
            "shared by every subscriber: its fields must not depend on the viewer."
        )


NO_VIEWER = NoViewer()


MAX_SHARED_EVENTS = 256
_run_events: OrderedDict[tuple[str, int], RunEvent] = OrderedDict()


def shared_run_event(event: dict[str, Any]) -> RunEvent:
    """`RunEvent.of(event)`, built once per (run, cursor) while recent."""
    key = (event["run_id"], event["cursor"])
    shared = _run_events.get(key)
    if shared is None:
        shared = _run_events[key] = RunEvent.of(event)
        if len(_run_events) > MAX_SHARED_EVENTS:
            _run_events.popitem(last=False)
    return shared


class RunEvents(list[RunEvent]):
    """Consecutive events of one run: one message of `runProgress`. Its `key` (the run, the
    first and the last cursor) names its content, which never changes: a run's log is
    append-only."""

    key: tuple[str, int, int]
    ends_run: bool = False  # its last event is the run's final one: nothing follows it


def shared_run_events(events: list[dict[str, Any]]) -> RunEvents:
    """One message's events (never empty), each a shared RunEvent."""
    batch = RunEvents(shared_run_event(event) for event in events)
    batch.key = (str(events[0]["run_id"]), events[0]["cursor"], events[-1]["cursor"])
    batch.ends_run = events[-1]["type"] in TERMINAL_EVENT_TYPES
    return batch


@dataclass
class SharedResult:
    """One run event's result for one (document, variables), and its `next` payload as JSON
    once a transport has encoded it."""

    operation: Any  # kept with the result so that its id cannot be reused meanwhile
    result: ExecutionResult
    events: RunEvents
    payload_json: str | None = None


class _Executed:
    """The per-event executor of an event whose result is shared: it only returns it."""

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        return self.result


class SharedRunEventExecution(PlainFieldExecution):
    MAX_SHARED: ClassVar[int] = MAX_SHARED_EVENTS
    _shared: ClassVar[OrderedDict[tuple[Any, ...], SharedResult]] = OrderedDict()
    _by_data: ClassVar[dict[int, SharedResult]] = {}  # id(result.data) -> the entry holding it
    _variables_key: str | None = None

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        """The executor of one operation (a list of errors when the request cannot run)."""
        executor = super().build(*args, **kwargs)
        if isinstance(executor, cls) and isinstance(executor.context_value, Context):
            executor.context_value = executor.context_value.fresh()
        return executor

    def _shared_key(self, payload: RunEvents) -> tuple[Any, ...]:
        if self._variables_key is None:  # once per operation: per-event executors copy it
            variables = getattr(self.variable_values, "coerced", self.variable_values) or {}
            # @include/@skip may use them
            self._variables_key = json.dumps(variables, sort_keys=True, default=str)
        return (
            payload.key,
            id(self.operation),  # parsed documents are cached, so equal texts share it
            self._variables_key,
        )

    def build_per_event_executor(self, payload: Any) -> Any:
        if isinstance(payload, RunEvents):
            shared = self._shared.get(self._shared_key(payload))
            if shared is not None:
                return _Executed(shared.result)  # executed already: nothing to build
        executor = super().build_per_event_executor(payload)
        if isinstance(payload, RunEvents):
            executor.context_value = NO_VIEWER
        elif isinstance(self.context_value, Context):
            executor.context_value = self.context_value.fresh()
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        # graphql-core executes subscription events with serially=False.
        if serially is not False or not isinstance(payload, RunEvents):
            return super().execute_operation(serially)
        key = self._shared_key(payload)
        shared = self._shared.get(key)
        if shared is not None:
            return shared.result
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult) and not result.errors:
            entry = SharedResult(self.operation, result, payload)
            self._shared[key] = entry
            self._by_data[id(result.data)] = entry
            if len(self._shared) > self.MAX_SHARED:
                _key, evicted = self._shared.popitem(last=False)
                self._by_data.pop(id(evicted.result.data), None)
        return result

    @classmethod
    def shared(cls, data: Any) -> SharedResult | None:
        """The shared result whose data `data` is, if any."""
        entry = cls._by_data.get(id(data))
        return entry if entry is not None and entry.result.data is data else None

    @classmethod
    def payload_json(cls, data: Any, encode: Callable[[Any], str]) -> str | None:
        """The JSON of `{"data": data}`, encoded once, when `data` is a shared result's (the
        transport sends it to every subscriber); None for any other data."""
        entry = cls.shared(data)
        if entry is None:
            return None
        if entry.payload_json is None:
            entry.payload_json = encode({"data": data})
        return entry.payload_json


# (database, document, operation name, variables as sorted JSON)
ReplayKey = tuple[str, str, str | None, str]


@dataclass(frozen=True)
class FinishedReplay:
    """A subscription's whole answer: one `next` (its payload's JSON), then `complete`."""

    run_id: uuid.UUID
    payload_json: str


class FinishedReplays:
    """The whole answers of subscriptions whose first message ended their run, by database,
    document, operation name and variables (ADR 0131).

    Such an answer never changes: the run's log is final, and the events' fields do not depend
    on the viewer (see `SharedRunEventExecution`). The access check does, so whoever sends the
    transport one of these still passes `services.live`'s shared check first.
    """

    MAX_REPLAYS = 256
    MAX_PAYLOAD_CHARS = 256 * 1024  # a longer replay is executed each time

    def __init__(self) -> None:
        self._replays: OrderedDict[ReplayKey, FinishedReplay] = OrderedDict()

    @staticmethod
    def key(
        database: str, query: str, operation_name: str | None, variables: dict[str, Any] | None
    ) -> ReplayKey:
        return (database, query, operation_name, json.dumps(variables or {}, sort_keys=True))

    def get(self, key: ReplayKey) -> FinishedReplay | None:
        replay = self._replays.get(key)
        if replay is not None:
            self._replays.move_to_end(key)
        return replay

    def remember(self, key: ReplayKey, data: Any) -> bool:
        """Keep the answer whose one `next` carried `data`, when that was a shared result of
        events ending their run and the transport has encoded it. True when kept."""
        entry = SharedRunEventExecution.shared(data)
        if entry is None or not entry.events.ends_run or entry.payload_json is None:
            return False
        if len(entry.payload_json) > self.MAX_PAYLOAD_CHARS:
            return False
        run_id = uuid.UUID(entry.events.key[0])
        self._replays[key] = FinishedReplay(run_id, entry.payload_json)
        self._replays.move_to_end(key)
        if len(self._replays) > self.MAX_REPLAYS:
            self._replays.popitem(last=False)
        return True


FINISHED_REPLAYS = FinishedReplays()
