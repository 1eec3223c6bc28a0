"""Inputs of the run mutations."""

import strawberry


@strawberry.input(description="Stop a queued or running run.")
class CancelRunInput:
    run_id: strawberry.ID = strawberry.field(description="The run.")


@strawberry.input(description="Start a new attempt of a failed run.")
class RetryRunInput:
    run_id: strawberry.ID = strawberry.field(description="The failed run.")


@strawberry.input(description="Check the workspace's models: server reachable, models present.")
class CheckModelsInput:
    workspace_id: strawberry.ID = strawberry.field(description="The workspace.")
