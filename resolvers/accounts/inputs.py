"""Inputs of the account mutations (screen 1)."""

import strawberry


@strawberry.input(description="Create an account and its personal workspace.")
class SignUpInput:
    name: str = strawberry.field(description="Display name, 1 to 200 characters.")
    email: str = strawberry.field(description="Email address; must not have an account yet.")
    password: str = strawberry.field(description="10 to 256 characters, not trivially guessable.")


@strawberry.input(description="Sign in with email and password.")
class SignInInput:
    email: str = strawberry.field(description="Email address.")
    password: str = strawberry.field(description="Password.")


@strawberry.input(description="Trade a refresh token for a new session.")
class RefreshTokenInput:
    refresh_token: str = strawberry.field(description="The latest refresh token (single use).")


@strawberry.input(description="End a session.")
class SignOutInput:
    refresh_token: str = strawberry.field(description="The session's refresh token.")
