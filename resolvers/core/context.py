"""The per-request (or per-WebSocket-connection) context every resolver receives."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import ParamSpec, TypeVar

import strawberry
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
        """Built on first use: batches and caches loads within one operation.

        Each operation, and each event of a subscription, is executed with `fresh()` (see
        `resolvers/runs/fanout.py`), so a WebSocket's context, which lives as long as the socket,
        never serves one operation's reads to another."""
        return Loaders(self.runner, self.deps)

    def fresh(self) -> Context:
        """A copy for executing one operation or one subscription event: the same caller and
        request id, new loaders (nothing read before is reused)."""
        copied = copy.copy(self)
        copied.__dict__.pop("loaders", None)
        return copied

    async def run(self, workflow: ApiWorkflow[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a declared workflow as the caller."""
        return await self.runner.call(workflow, self.deps, *args, **kwargs)


# What every resolver receives as `info`: Strawberry's Info over this context.
Info = strawberry.Info[Context, None]
