"""GraphQL types of accounts: User and the signed-in session."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from resolvers.core.context import Info
from resolvers.core.relay import load_nodes
from services.views import AuthSession as AuthSessionView
from services.views import UserView


def initials_of(name: str) -> str:
    words = [w for w in name.replace("-", " ").split() if w[:1].isalnum()]
    if not words:
        return "?"
    picked = words[0][0] + (words[-1][0] if len(words) > 1 else "")
    return picked.upper()


@strawberry.type(description="A person with an account.")
class User(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Display name.")
    email: str = strawberry.field(description="Email address (lower case).")
    created_at: datetime = strawberry.field(description="When the account was created (UTC).")
    # Computed when the object is built: a plain attribute is read without a resolver call
    # (ADR 0094), and the documents list shows one per row.
    initials: str = strawberry.field(
        description="One or two capital letters for the avatar, from the name."
    )

    @classmethod
    def of(cls, view: UserView) -> User:
        return cls(
            id=str(view.id),
            name=view.name,
            email=view.email,
            created_at=view.created_at,
            initials=initials_of(view.name),
        )

    @classmethod
    def of_found(cls, view: UserView | None) -> User | None:
        """The user of a lookup that may have found nobody (a deleted account)."""
        return cls.of(view) if view else None

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # Node overloads it on `required`
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        return await load_nodes(info.context.loaders.user_by_id.load_many, list(node_ids), cls.of)


@strawberry.type(description="Tokens of a signed-in session and its user.")
class AuthSession:
    user: User = strawberry.field(description="The signed-in user.")
    access_token: str = strawberry.field(
        description="Bearer token for the Authorization header and connection_init; short-lived."
    )
    access_token_expires_at: datetime = strawberry.field(description="Expiry of the access token.")
    refresh_token: str = strawberry.field(
        description="Single-use token for refreshToken; each use returns a new one."
    )
    refresh_token_expires_at: datetime = strawberry.field(
        description="Expiry of the refresh token."
    )

    @classmethod
    def of(cls, view: AuthSessionView) -> AuthSession:
        return cls(
            user=User.of(view.user),
            access_token=view.access_token,
            access_token_expires_at=view.access_token_expires_at,
            refresh_token=view.refresh_token,
            refresh_token_expires_at=view.refresh_token_expires_at,
        )
