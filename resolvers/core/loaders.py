"""Per-request dataloaders: one workflow run per batch of keys, never one per key."""

from __future__ import annotations

import uuid
from functools import cached_property
from typing import TypeVar

from strawberry.dataloader import DataLoader

from runtime.runner import ApiWorkflow, WorkflowRunner
from services.deps import ServiceDeps
from services.views import MemberView, RunStepView, RunView, UserView, WorkspaceView
from workflows.accounts import LOAD_MEMBERS, LOAD_USERS, LOAD_WORKSPACES
from workflows.runs import LOAD_RUN_STEPS, LOAD_RUNS

V = TypeVar("V")


class Loaders:
    def __init__(self, runner: WorkflowRunner, deps: ServiceDeps) -> None:
        self._runner = runner
        self._deps = deps

    def _loader(self, workflow: ApiWorkflow[..., list[V]]) -> DataLoader[uuid.UUID, V]:
        async def load(ids: list[uuid.UUID]) -> list[V]:
            return await self._runner.call(workflow, self._deps, ids=list(ids))

        return DataLoader(load_fn=load)

    @cached_property
    def user_by_id(self) -> DataLoader[uuid.UUID, UserView | None]:
        return self._loader(LOAD_USERS)

    @cached_property
    def workspace_by_id(self) -> DataLoader[uuid.UUID, WorkspaceView | None]:
        return self._loader(LOAD_WORKSPACES)

    @cached_property
    def member_by_id(self) -> DataLoader[uuid.UUID, MemberView | None]:
        return self._loader(LOAD_MEMBERS)

    @cached_property
    def run_by_id(self) -> DataLoader[uuid.UUID, RunView | None]:
        return self._loader(LOAD_RUNS)

    @cached_property
    def steps_by_run_id(self) -> DataLoader[uuid.UUID, list[RunStepView]]:
        return self._loader(LOAD_RUN_STEPS)
