"""Who is calling: resolved once per request from the bearer token, without a database read."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from base.errors import Unauthenticated


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID | None = None
    client_address: str | None = None
    # Set when the request carried a token that failed to decode; reported on first use.
    token_error: Unauthenticated | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    def require_user(self) -> uuid.UUID:
        if self.token_error is not None:
            raise self.token_error
        if self.user_id is None:
            raise Unauthenticated("Sign in to do this.", code="UNAUTHENTICATED")
        return self.user_id


ANONYMOUS = Principal()
