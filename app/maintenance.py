"""What an operator runs by hand or from a scheduler, outside the API and the workers."""

from __future__ import annotations

from base.db.engine import build_engine, build_sessionmaker
from base.settings import Settings
from services.deps import ServiceDeps
from services.originals import BlobSweep, sweep_blobs
from services.ratelimit import SignInLimiter


async def sweep_blobs_once(settings: Settings) -> BlobSweep:
    """`python -m app sweep-blobs`: one sweep of the store of originals."""
    engine = build_engine(settings)
    try:
        deps = ServiceDeps(
            settings=settings,
            db=build_sessionmaker(engine),
            sign_in_limiter=SignInLimiter.build(None, "1/second", "1/second"),  # unused here
        )
        return await sweep_blobs(deps)
    finally:
        await engine.dispose()
