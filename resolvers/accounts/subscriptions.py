"""Account subscriptions."""

from collections.abc import AsyncGenerator

import strawberry

from resolvers.accounts.types import User
from resolvers.core.context import Info
from workflows.accounts import LOAD_ME


@strawberry.type
class AccountSubscriptions:
    @strawberry.subscription(
        description="The signed-in user, sent once when the subscription starts; proves the "
        "connection's token (connection_init payload `authorization`)."
    )
    async def me(self, info: Info) -> AsyncGenerator[User, None]:
        yield User.of(await info.context.run(LOAD_ME))
