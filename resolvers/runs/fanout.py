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

Any other payload, and queries and mutations, take the normal path.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from graphql import ExecutionResult

from resolvers.core.context import Context
from resolvers.core.execution import PlainFieldExecution
from resolvers.runs.types import RunEvent


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


def shared_run_events(events: list[dict[str, Any]]) -> RunEvents:
    """One message's events (never empty), each a shared RunEvent."""
    batch = RunEvents(shared_run_event(event) for event in events)
    batch.key = (str(events[0]["run_id"]), events[0]["cursor"], events[-1]["cursor"])
    return batch


@dataclass
class SharedResult:
    """One run event's result for one (document, variables), and its `next` payload as JSON
    once a transport has encoded it."""

    operation: Any  # kept with the result so that its id cannot be reused meanwhile
    result: ExecutionResult
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
            entry = SharedResult(self.operation, result)
            self._shared[key] = entry
            self._by_data[id(result.data)] = entry
            if len(self._shared) > self.MAX_SHARED:
                _key, evicted = self._shared.popitem(last=False)
                self._by_data.pop(id(evicted.result.data), None)
        return result

    @classmethod
    def payload_json(cls, data: Any, encode: Callable[[Any], str]) -> str | None:
        """The JSON of `{"data": data}`, encoded once, when `data` is a shared result's (the
        transport sends it to every subscriber); None for any other data."""
        entry = cls._by_data.get(id(data))
        if entry is None or entry.result.data is not data:
            return None
        if entry.payload_json is None:
            entry.payload_json = encode({"data": data})
        return entry.payload_json
