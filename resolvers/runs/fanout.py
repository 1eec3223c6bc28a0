"""Executing a run event once per process, however many subscribers receive it.

graphql-core executes a subscription's selection for every subscriber and every event; with a
thousand subscribers of one run that is most of the CPU the fan-out costs. A RunEvent's fields
do not depend on who asks (access is checked when the subscription starts and re-checked
while it streams), so the result of one (event, document, variables) is shared. Any other
payload, and queries and mutations, take the normal path.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any, ClassVar

from graphql import ExecutionResult
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.runs.types import RunEvent


class SharedRunEventExecution(StrawberryGraphQLCoreExecutionContext):
    MAX_SHARED: ClassVar[int] = 256
    _shared: ClassVar[OrderedDict[tuple[Any, ...], tuple[Any, Any]]] = OrderedDict()

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
        # Only a finished, error-free result is shared (not an awaitable, nor incremental results).
        if isinstance(result, ExecutionResult) and not result.errors:
            # Keep the operation with the result so that its id cannot be reused meanwhile.
            self._shared[key] = (self.operation, result)
            if len(self._shared) > self.MAX_SHARED:
                self._shared.popitem(last=False)
        return result
