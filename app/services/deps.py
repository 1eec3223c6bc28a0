"""What a service call needs from the process: handed to nodes by reference, never serialised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.auth.principal import ANONYMOUS, Principal
from app.services.ratelimit import SignInLimiter
from app.settings import Settings


@dataclass(frozen=True)
class ServiceDeps:
    """App-wide resources (built once in the lifespan) plus the caller of this request."""

    settings: Settings
    db: async_sessionmaker[Any]
    sign_in_limiter: SignInLimiter
    principal: Principal = ANONYMOUS

    def for_principal(self, principal: Principal) -> ServiceDeps:
        return ServiceDeps(self.settings, self.db, self.sign_in_limiter, principal)
