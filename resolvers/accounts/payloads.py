"""Payloads of the account mutations: a result and `errors` (expected failures as data)."""

import strawberry

from resolvers.accounts.types import AuthSession
from resolvers.core.errors import UserError

_ERRORS = "Expected failures, empty on success."


@strawberry.type(description="Result of signUp.")
class SignUpPayload:
    session: AuthSession | None = strawberry.field(default=None, description="The new session.")
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of signIn.")
class SignInPayload:
    session: AuthSession | None = strawberry.field(default=None, description="The new session.")
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of refreshToken.")
class RefreshTokenPayload:
    session: AuthSession | None = strawberry.field(
        default=None, description="The rotated session: use its new refresh token next time."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of signOut.")
class SignOutPayload:
    signed_out: bool = strawberry.field(default=False, description="True once revoked.")
    errors: list[UserError] = strawberry.field(description=_ERRORS)
