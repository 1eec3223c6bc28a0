"""What a service call needs from the process: handed to nodes by reference, never serialised."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.auth.principal import ANONYMOUS, Principal
from app.events.bus import EventBus, LocalBus
from app.services.ratelimit import SignInLimiter
from app.settings import Settings


class RunLauncher(Protocol):
    """Hands a committed run to execution: in-process, or onto the Redis queue for workers."""

    async def enqueue(self, run_id: uuid.UUID) -> None: ...


@dataclass(frozen=True)
class ServiceDeps:
    """App-wide resources (built once in the lifespan) plus the caller of this request."""

    settings: Settings
    db: async_sessionmaker[Any]
    sign_in_limiter: SignInLimiter
    principal: Principal = ANONYMOUS
    bus: EventBus = dataclasses.field(default_factory=LocalBus)
    launcher: RunLauncher | None = None

    def for_principal(self, principal: Principal) -> ServiceDeps:
        return dataclasses.replace(self, principal=principal)
