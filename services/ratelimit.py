"""Limits on attempts that guess secrets or cost the server a password hash (the `limits`
library): sign-in per account and per client address, sign-up per client address.

The storage is Redis when REDIS_URL is set, so every API process shares the counters; otherwise
it is in-process memory (the embedded default).
"""

from __future__ import annotations

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from base.errors import RateLimited
from base.metrics import SIGN_IN_REFUSALS
from base.settings import Settings


class AttemptLimiter:
    def __init__(
        self,
        storage: Storage,
        *,
        sign_in_per_account: str,
        sign_in_per_address: str,
        sign_up_per_address: str,
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._sign_in_per_account = parse(sign_in_per_account)
        self._sign_in_per_address = parse(sign_in_per_address)
        self._sign_up_per_address = parse(sign_up_per_address)

    @classmethod
    def build(cls, settings: Settings) -> AttemptLimiter:
        storage: Storage = (
            RedisStorage(f"async+{settings.redis_url}", key_prefix="kd-signin")
            if settings.redis_url
            else MemoryStorage()
        )
        return cls(
            storage,
            sign_in_per_account=settings.sign_in_attempts_per_account,
            sign_in_per_address=settings.sign_in_attempts_per_address,
            sign_up_per_address=settings.sign_up_attempts_per_address,
        )

    async def sign_in(self, email: str, address: str | None) -> None:
        """Count one attempt; raise RateLimited when either window is full (no hint which)."""
        ok_account = await self._limiter.hit(self._sign_in_per_account, "account", email.lower())
        ok_address = address is None or await self._limiter.hit(
            self._sign_in_per_address, "address", address
        )
        if not (ok_account and ok_address):
            SIGN_IN_REFUSALS.inc()
            raise RateLimited("Too many sign-in attempts. Wait a few minutes and try again.")

    async def sign_up(self, address: str | None) -> None:
        """Count one sign-up from `address` (each costs an argon2 hash); RateLimited when its
        window is full. Callers inside the app (no address) are not limited."""
        if address is not None and not await self._limiter.hit(
            self._sign_up_per_address, "sign-up", address
        ):
            raise RateLimited("Too many sign-ups from this address. Try again later.")
