"""Payloads of the run mutations."""

import strawberry

from resolvers.core.errors import UserError
from resolvers.runs.types import Run

_ERRORS = "Expected failures, empty on success."


@strawberry.type(description="Result of cancelRun.")
class CancelRunPayload:
    run: Run | None = strawberry.field(
        default=None,
        description="The run: CANCELLED if it was queued; still RUNNING with cancelRequested "
        "if it was running (it ends CANCELLED within about a second).",
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of retryRun.")
class RetryRunPayload:
    run: Run | None = strawberry.field(default=None, description="The new attempt (QUEUED).")
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of checkModels.")
class CheckModelsPayload:
    run: Run | None = strawberry.field(default=None, description="The model-check run (QUEUED).")
    errors: list[UserError] = strawberry.field(description=_ERRORS)
