"""Account queries (screen 2: the app shell)."""

import strawberry

from resolvers.accounts.types import User
from resolvers.core.context import Info
from workflows.accounts import LOAD_ME


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The signed-in user. Errors with UNAUTHENTICATED otherwise.")
    async def me(self, info: Info) -> User:
        return User.of(await info.context.run(LOAD_ME))
