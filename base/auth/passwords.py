"""Password hashing (argon2id via argon2-cffi) and the password policy."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from base.errors import Invalid

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 cost grows with input; cap it so huge strings cannot burn CPU

_hasher = PasswordHasher()
# Verifying against this when an email is unknown keeps sign-in timing the same either way.
_DUMMY_HASH = _hasher.hash("knowledge-desk-dummy-password")


def check_policy(password: str, *, email: str, field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise Invalid(f"Use at least {MIN_LENGTH} characters.", code="WEAK_PASSWORD", field=field)
    if len(password) > MAX_LENGTH:
        raise Invalid(f"Use at most {MAX_LENGTH} characters.", code="WEAK_PASSWORD", field=field)
    if len(set(password)) < 4 or password.lower() == email.lower():
        raise Invalid("This password is too easy to guess.", code="WEAK_PASSWORD", field=field)


async def hash_password(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password[:MAX_LENGTH])
        except (VerificationError, InvalidHashError):
            return False

    ok = await asyncio.to_thread(_verify)
    return ok and password_hash is not None
