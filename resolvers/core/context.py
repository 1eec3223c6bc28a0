"""The per-request (or per-WebSocket-connection) context every resolver receives."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import ParamSpec, TypeVar

from strawberry.fastapi import BaseContext

from base.auth.principal import Principal
from resolvers.core.loaders import Loaders
from runtime.runner import ApiWorkflow, WorkflowRunner
from services.deps import ServiceDeps

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Context(BaseContext):
    deps: ServiceDeps = field(kw_only=True)
    runner: WorkflowRunner = field(kw_only=True)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex, kw_only=True)

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def principal(self) -> Principal:
        return self.deps.principal

    @cached_property
    def loaders(self) -> Loaders:
        """Built on first use, once per request: batches and caches loads within one request.

        A WebSocket's context lives as long as the socket; each subscription event is executed
        with `for_event()`, whose loaders are new."""
        return Loaders(self.runner, self.deps)

    def for_event(self) -> Context:
        """A copy for executing one subscription event: the same caller and request id, fresh
        loaders (nothing read for an earlier event is reused)."""
        event = copy.copy(self)
        event.__dict__.pop("loaders", None)
        return event

    async def run(self, workflow: ApiWorkflow[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a declared workflow as the caller."""
        return await self.runner.call(workflow, self.deps, *args, **kwargs)
