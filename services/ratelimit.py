"""Sign-in attempt limits per account and per client address (the `limits` library).

The storage is Redis when REDIS_URL is set, so every API process shares the counters; otherwise
it is in-process memory (the embedded default).
"""

from __future__ import annotations

from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from base.errors import RateLimited


class SignInLimiter:
    def __init__(self, storage: Storage, per_account: str, per_address: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._per_account = parse(per_account)
        self._per_address = parse(per_address)
        self._storage = storage

    @classmethod
    def build(cls, redis_url: str | None, per_account: str, per_address: str) -> SignInLimiter:
        storage: Storage = (
            RedisStorage(f"async+{redis_url}", key_prefix="kd-signin")
            if redis_url
            else MemoryStorage()
        )
        return cls(storage, per_account, per_address)

    async def hit(self, email: str, address: str | None) -> None:
        """Count one attempt; raise RateLimited when either window is full (no hint which)."""
        ok_account = await self._limiter.hit(self._per_account, "account", email.lower())
        ok_address = address is None or await self._limiter.hit(
            self._per_address, "address", address
        )
        if not (ok_account and ok_address):
            raise RateLimited("Too many sign-in attempts. Wait a few minutes and try again.")

    async def reset(self) -> None:
        await self._storage.reset()
