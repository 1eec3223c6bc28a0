"""Access tokens: issued and decoded; expired, forged and malformed ones are told apart."""

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from base.auth.tokens import bearer_token, decode_access_token, issue_access_token
from base.errors import Unauthenticated

SECRET = "s" * 40


def test_round_trip():
    user_id = uuid.uuid4()
    now = datetime.now(UTC)
    token, expires = issue_access_token(user_id, secret=SECRET, now=now, ttl_seconds=900)
    claims = decode_access_token(token, secret=SECRET)
    assert claims.user_id == user_id
    assert expires == now + timedelta(seconds=900)
    assert claims.expires_at == datetime.fromtimestamp(int(expires.timestamp()), tz=UTC)


def _code(token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        decode_access_token(token, secret=SECRET)
    return caught.value.code


def test_expired_forged_and_wrong_type_tokens():
    past = datetime.now(UTC) - timedelta(hours=1)
    expired, _ = issue_access_token(uuid.uuid4(), secret=SECRET, now=past, ttl_seconds=60)
    forged, _ = issue_access_token(
        uuid.uuid4(), secret="f" * 40, now=datetime.now(UTC), ttl_seconds=60
    )
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": str(uuid.uuid4()), "aud": "knowledge-desk", "iat": now, "exp": now + 60}
    refresh_typed = jwt.encode({**claims, "typ": "refresh"}, SECRET, algorithm="HS256")
    bad_subject = jwt.encode({**claims, "sub": "nope", "typ": "access"}, SECRET, algorithm="HS256")
    unsigned = jwt.encode({**claims, "typ": "access"}, None, algorithm="none")
    assert _code(expired) == "TOKEN_EXPIRED"
    assert _code(forged) == "TOKEN_INVALID"
    assert _code(refresh_typed) == "TOKEN_INVALID"
    assert _code(bad_subject) == "TOKEN_INVALID"
    assert _code(unsigned) == "TOKEN_INVALID"
    assert _code("not.a.jwt") == "TOKEN_INVALID"


def test_bearer_header_parsing():
    assert bearer_token(None) is None
    assert bearer_token("") is None
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in ("Basic abc", "Bearer", "Bearer   ", "abc"):
        with pytest.raises(Unauthenticated) as caught:
            bearer_token(bad)
        assert caught.value.code == "TOKEN_INVALID"


def test_a_token_verified_once_is_served_again_only_while_live_and_with_its_secret():
    user_id = uuid.uuid4()
    token, expires = issue_access_token(
        user_id, secret=SECRET, now=datetime.now(UTC), ttl_seconds=900
    )
    first = decode_access_token(token, secret=SECRET)
    assert decode_access_token(token, secret=SECRET) is first  # not verified again
    with pytest.raises(Unauthenticated) as caught:
        decode_access_token(token, secret="o" * 40)  # the key was changed: verified, refused
    assert caught.value.code == "TOKEN_INVALID"
    at_expiry = datetime.fromtimestamp(int(expires.timestamp()), tz=UTC)
    with pytest.raises(Unauthenticated) as caught:
        decode_access_token(token, secret=SECRET, now=at_expiry)
    assert caught.value.code == "TOKEN_EXPIRED"
    just_before = at_expiry - timedelta(seconds=1)
    assert decode_access_token(token, secret=SECRET, now=just_before).user_id == user_id
