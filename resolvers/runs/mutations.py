"""Run mutations: cancel, retry (screen 10) and the model check (screen 11)."""

from typing import Annotated, Any, ParamSpec

import strawberry

from resolvers.core.context import Info
from resolvers.core.errors import as_payload
from resolvers.core.inputs import INPUT
from resolvers.core.relay import decode_id
from resolvers.runs.inputs import CancelRunInput, CheckModelsInput, RetryRunInput
from resolvers.runs.payloads import CancelRunPayload, CheckModelsPayload, RetryRunPayload
from resolvers.runs.types import Run
from runtime.runner import ApiWorkflow
from services.views import RunView
from workflows.runs import CANCEL_RUN, RETRY_RUN, START_MODEL_CHECK

P = ParamSpec("P")

_WHO = " ADMIN and OWNER: any run; EDITOR: runs they started; VIEWER: none."


async def _run(
    info: Info, workflow: ApiWorkflow[P, RunView], *args: P.args, **kwargs: P.kwargs
) -> dict[str, Any]:
    return {"run": Run.of(await info.context.run(workflow, *args, **kwargs))}


@strawberry.type
class RunMutations:
    @strawberry.mutation(description="Cancel a queued or running run." + _WHO)
    async def cancel_run(
        self, info: Info, input: Annotated[CancelRunInput, INPUT]
    ) -> CancelRunPayload:
        async def work() -> dict[str, Any]:
            return await _run(
                info, CANCEL_RUN, run_id=decode_id(input.run_id, "Run", field="runId")
            )

        return await as_payload(CancelRunPayload, work())

    @strawberry.mutation(
        description="Retry a FAILED run: a new attempt that reuses the steps that succeeded." + _WHO
    )
    async def retry_run(
        self, info: Info, input: Annotated[RetryRunInput, INPUT]
    ) -> RetryRunPayload:
        async def work() -> dict[str, Any]:
            return await _run(info, RETRY_RUN, run_id=decode_id(input.run_id, "Run", field="runId"))

        return await as_payload(RetryRunPayload, work())

    @strawberry.mutation(
        description="Start a model check run (server reachable, models present, a short chat and "
        "an embedding). Needs EDITOR or higher."
    )
    async def check_models(
        self, info: Info, input: Annotated[CheckModelsInput, INPUT]
    ) -> CheckModelsPayload:
        async def work() -> dict[str, Any]:
            workspace_id = decode_id(input.workspace_id, "Workspace", field="workspaceId")
            return await _run(info, START_MODEL_CHECK, workspace_id=workspace_id)

        return await as_payload(CheckModelsPayload, work())
