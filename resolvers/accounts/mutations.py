"""Account mutations (screen 1): sign up, sign in, refresh, sign out."""

from typing import Annotated, Any, ParamSpec

import strawberry

from resolvers.accounts.inputs import RefreshTokenInput, SignInInput, SignOutInput, SignUpInput
from resolvers.accounts.payloads import (
    RefreshTokenPayload,
    SignInPayload,
    SignOutPayload,
    SignUpPayload,
)
from resolvers.accounts.types import AuthSession
from resolvers.core.context import Info
from resolvers.core.errors import as_payload
from resolvers.core.inputs import INPUT
from runtime.runner import ApiWorkflow
from services.views import AuthSession as AuthSessionView
from workflows.accounts import REFRESH_TOKEN, SIGN_IN, SIGN_OUT, SIGN_UP

P = ParamSpec("P")


async def _session(
    info: Info, workflow: ApiWorkflow[P, AuthSessionView], *args: P.args, **kwargs: P.kwargs
) -> dict[str, Any]:
    return {"session": AuthSession.of(await info.context.run(workflow, *args, **kwargs))}


@strawberry.type
class AccountMutations:
    @strawberry.mutation(
        description="Create an account and its personal workspace (you are its OWNER); signs in."
    )
    async def sign_up(self, info: Info, input: Annotated[SignUpInput, INPUT]) -> SignUpPayload:
        work = _session(info, SIGN_UP, name=input.name, email=input.email, password=input.password)
        return await as_payload(SignUpPayload, work)

    @strawberry.mutation(
        description="Sign in. Wrong credentials never say which part was wrong; attempts are "
        "rate limited per account and per client address."
    )
    async def sign_in(self, info: Info, input: Annotated[SignInInput, INPUT]) -> SignInPayload:
        work = _session(info, SIGN_IN, email=input.email, password=input.password)
        return await as_payload(SignInPayload, work)

    @strawberry.mutation(
        description="Rotate a refresh token: returns a new session; presenting a spent token "
        "revokes every token of its sign-in."
    )
    async def refresh_token(
        self, info: Info, input: Annotated[RefreshTokenInput, INPUT]
    ) -> RefreshTokenPayload:
        work = _session(info, REFRESH_TOKEN, refresh_token=input.refresh_token)
        return await as_payload(RefreshTokenPayload, work)

    @strawberry.mutation(description="Sign out: revokes the session's refresh tokens.")
    async def sign_out(self, info: Info, input: Annotated[SignOutInput, INPUT]) -> SignOutPayload:
        async def work() -> dict[str, Any]:
            await info.context.run(SIGN_OUT, refresh_token=input.refresh_token)
            return {"signed_out": True}

        return await as_payload(SignOutPayload, work())
