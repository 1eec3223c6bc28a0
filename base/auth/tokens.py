"""Access tokens (short-lived JWTs), download links' tokens (JWTs for one document) and opaque
secrets (refresh and invite tokens)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from base.errors import Unauthenticated

_ALGORITHM = "HS256"
_AUDIENCE = "knowledge-desk"
# Another audience and type: a download token is never an access token, nor the reverse.
_DOWNLOAD_AUDIENCE = "knowledge-desk-download"


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    expires_at: datetime


def issue_access_token(
    user_id: uuid.UUID, *, secret: str, now: datetime, ttl_seconds: int
) -> tuple[str, datetime]:
    expires_at = now + timedelta(seconds=ttl_seconds)
    claims = {
        "sub": str(user_id),
        "aud": _AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": secrets.token_hex(8),
        "typ": "access",
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM), expires_at


# Tokens verified lately: (secret, token) -> its claims, least recently used first. Verifying
# costs about 50 us (pyjwt checks the encoding character by character in Python); a client
# presents the same token on every request and socket until it expires, and a thousand
# reconnecting at once present few distinct ones. A hit is the same token string, so its
# signature has been checked; its expiry is checked again on every use.
_verified: OrderedDict[tuple[str, str], AccessClaims] = OrderedDict()
VERIFIED_KEPT = 4096


def decode_access_token(token: str, *, secret: str, now: datetime | None = None) -> AccessClaims:
    """Raise Unauthenticated (TOKEN_EXPIRED or TOKEN_INVALID) unless the token is ours and live."""
    key = (secret, token)
    claims = _verified.get(key)
    if claims is not None:
        if (now or datetime.now(UTC)) < claims.expires_at:
            _verified.move_to_end(key)
            return claims
        del _verified[key]  # expired: verified again below, which says so
    claims = _verify(token, secret)
    if (now or datetime.now(UTC)) >= claims.expires_at:
        raise Unauthenticated("The access token has expired.", code="TOKEN_EXPIRED")
    _verified[key] = claims
    if len(_verified) > VERIFIED_KEPT:
        _verified.popitem(last=False)
    return claims


def _verify(token: str, secret: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=_AUDIENCE,
            options={"require": ["sub", "exp", "iat", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated("The access token has expired.", code="TOKEN_EXPIRED") from exc
    except jwt.PyJWTError as exc:
        raise Unauthenticated("The access token is not valid.", code="TOKEN_INVALID") from exc
    try:
        user_id = uuid.UUID(claims["sub"])
    except (ValueError, TypeError) as exc:
        raise Unauthenticated("The access token is not valid.", code="TOKEN_INVALID") from exc
    if claims.get("typ") != "access":
        raise Unauthenticated("The access token is not valid.", code="TOKEN_INVALID")
    return AccessClaims(user_id=user_id, expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC))


@dataclass(frozen=True)
class DownloadClaims:
    user_id: uuid.UUID
    document_id: uuid.UUID


def issue_download_token(
    user_id: uuid.UUID, document_id: uuid.UUID, *, secret: str, now: datetime, ttl_seconds: int
) -> tuple[str, datetime]:
    """A token for one user to download one document's original until it expires."""
    expires_at = now + timedelta(seconds=ttl_seconds)
    claims = {
        "sub": str(user_id),
        "doc": str(document_id),
        "aud": _DOWNLOAD_AUDIENCE,
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "typ": "download",
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM), expires_at


def decode_download_token(token: str, *, secret: str) -> DownloadClaims:
    """Raise Unauthenticated (TOKEN_EXPIRED or TOKEN_INVALID, with messages about the link)
    unless it is our live download token."""
    invalid = Unauthenticated("The download link is not valid.", code="TOKEN_INVALID")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=_DOWNLOAD_AUDIENCE,
            options={"require": ["sub", "doc", "exp", "iat", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthenticated(
            "The download link has expired: ask for a new one.", code="TOKEN_EXPIRED"
        ) from exc
    except jwt.PyJWTError as exc:
        raise invalid from exc
    if claims.get("typ") != "download":
        raise invalid
    try:
        return DownloadClaims(uuid.UUID(claims["sub"]), uuid.UUID(claims["doc"]))
    except (ValueError, TypeError, AttributeError) as exc:
        raise invalid from exc


def bearer_token(header_value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value, or None when absent."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "Send the token as 'Authorization: Bearer <token>'.", code="TOKEN_INVALID"
        )
    return token.strip()


def new_secret() -> str:
    """A random URL-safe secret for refresh and invite tokens (stored only as its hash)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
