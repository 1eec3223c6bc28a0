"""What a service call needs from the process: handed to nodes by reference, never serialised."""

from __future__ import annotations

import dataclasses
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from base.auth.principal import ANONYMOUS, Principal
from base.db.engine import RequestReads
from base.events.bus import EventBus, LocalBus
from base.settings import Settings
from services.ratelimit import AttemptLimiter


class RunLauncher(Protocol):
    """Hands a committed run to execution: in-process, or onto the Redis queue for workers."""

    async def enqueue(self, run_id: uuid.UUID) -> None: ...


class ProgressReporter(Protocol):
    """Where a step of a run reports how far it is ("embedded 40 of 120 chunks")."""

    def __call__(self, current: int, total: int | None = None, message: str = "") -> None: ...


def _ignore_progress(current: int, total: int | None = None, message: str = "") -> None:
    """Outside a run nobody watches progress."""


@dataclass(frozen=True)
class ServiceDeps:
    """App-wide resources (built once in the lifespan) plus the caller of this request."""

    settings: Settings
    db: async_sessionmaker[Any]
    attempts: AttemptLimiter
    principal: Principal = ANONYMOUS
    bus: EventBus = dataclasses.field(default_factory=LocalBus)
    launcher: RunLauncher | None = None
    # The executor of a run supplies one that records STEP_PROGRESS events.
    progress: ProgressReporter = _ignore_progress
    # What one execution of a run keeps in memory between its steps, which run one after the
    # other in one process; the executor gives each execution its own. None outside a run.
    run_state: dict[str, Any] | None = None
    # An HTTP request's one read session, shared by its loaders (ADR 0076). None elsewhere.
    reads: RequestReads | None = None

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session for reads only: the request's shared one, or else a session of its own."""
        return self.reads.session() if self.reads is not None else self.db()

    def for_principal(self, principal: Principal) -> ServiceDeps:
        return dataclasses.replace(self, principal=principal)

    def for_request(self, principal: Principal, reads: RequestReads | None) -> ServiceDeps:
        return dataclasses.replace(self, principal=principal, reads=reads)
