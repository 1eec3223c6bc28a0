"""How operations and subscription events are executed: each with fresh loaders, and run events
once per process.

- Each operation, and each event of a subscription, is executed with a copy of the context that
  has fresh loaders (`Context.fresh`). Over HTTP the context is new per request anyway; a
  WebSocket's lives as long as the socket, so without the copy a user renamed or removed since
  the socket opened would be shown as they were, to later events and to later queries alike.
- graphql-core executes a subscription's selection for every subscriber and every event; with a
  thousand subscribers of one run that is most of the CPU the fan-out costs. A RunEvent's fields
  do not depend on who asks (access is checked when the subscription starts and re-checked
  while it streams), so the result of one (event, document, variables) is shared. That holds
  only while no field under RunEvent reads the viewer, so a run event is executed with
  `NoViewer` as its context: a field that reads it fails, in the tests first
  (tests/unit/runs/test_fanout.py also checks RunEvent's fields statically).

Any other payload, and queries and mutations, take the normal path.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, ClassVar, NoReturn

from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.core.context import Context
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


class SharedRunEventExecution(StrawberryGraphQLCoreExecutionContext):
    MAX_SHARED: ClassVar[int] = 256
    _shared: ClassVar[OrderedDict[tuple[Any, ...], tuple[Any, Any]]] = OrderedDict()

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        """The executor of one operation (a list of errors when the request cannot run)."""
        executor = super().build(*args, **kwargs)
        if isinstance(executor, cls) and isinstance(executor.context_value, Context):
            executor.context_value = executor.context_value.fresh()
        return executor

    def build_per_event_executor(self, payload: Any) -> Any:
        executor = super().build_per_event_executor(payload)
        if isinstance(payload, RunEvent):
            executor.context_value = NO_VIEWER
        elif isinstance(self.context_value, Context):
            executor.context_value = self.context_value.fresh()
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        payload = self.root_value
        # graphql-core executes subscription events with serially=False.
        if serially is not False or not isinstance(payload, RunEvent):
            return super().execute_operation(serially)
        variables = getattr(self.variable_values, "coerced", self.variable_values) or {}
        key = (
            str(payload.run_id),
            payload.cursor,
            id(self.operation),  # parsed documents are cached, so equal texts share it
            json.dumps(variables, sort_keys=True, default=str),  # @include/@skip may use them
        )
        shared = self._shared.get(key)
        if shared is not None:
            return shared[1]
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult) and not result.errors:
            # Keep the operation with the result so that its id cannot be reused meanwhile.
            self._shared[key] = (self.operation, result)
            if len(self._shared) > self.MAX_SHARED:
                self._shared.popitem(last=False)
        return result
