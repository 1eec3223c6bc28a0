"""Per-request dataloaders: one workflow run per batch of keys, never one per key."""

from __future__ import annotations

import uuid
from functools import cached_property
from typing import Any

from strawberry.dataloader import DataLoader

from app.services.deps import ServiceDeps
from app.services.views import MemberView, RunStepView, RunView, UserView, WorkspaceView
from app.workflow_runner import WorkflowRunner


class Loaders:
    def __init__(self, runner: WorkflowRunner, deps: ServiceDeps) -> None:
        self._runner = runner
        self._deps = deps

    def _loader(self, workflow: str) -> DataLoader[uuid.UUID, Any]:
        async def load(ids: list[uuid.UUID]) -> list[Any]:
            return await self._runner.call(workflow, self._deps, ids=list(ids))

        return DataLoader(load_fn=load)

    @cached_property
    def user_by_id(self) -> DataLoader[uuid.UUID, UserView | None]:
        return self._loader("load_users")

    @cached_property
    def workspace_by_id(self) -> DataLoader[uuid.UUID, WorkspaceView | None]:
        return self._loader("load_workspaces")

    @cached_property
    def member_by_id(self) -> DataLoader[uuid.UUID, MemberView | None]:
        return self._loader("load_members")

    @cached_property
    def run_by_id(self) -> DataLoader[uuid.UUID, RunView | None]:
        return self._loader("load_runs")

    @cached_property
    def steps_by_run_id(self) -> DataLoader[uuid.UUID, list[RunStepView]]:
        return self._loader("load_run_steps")
