"""Accounts: sign up, sign in, token refresh with rotation, sign out, and reading users."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from base.auth import passwords, tokens
from base.db.engine import lock_for_write
from base.db.types import utcnow
from base.errors import Conflict, Invalid, Unauthenticated
from base.models.accounts import Membership, RefreshToken, Role, User, Workspace
from services.access import in_ids, seen_by_viewer
from services.deps import ServiceDeps
from services.validation import clean_email, clean_name
from services.views import AuthSession, UserView, view_columns, view_of_row

_WRONG_CREDENTIALS = "Wrong email or password."


async def sign_up(deps: ServiceDeps, *, name: str, email: str, password: str) -> AuthSession:
    """Create a user and their personal workspace (they are its OWNER), then sign them in.
    Rate limited per client address."""
    await deps.attempts.sign_up(deps.principal.client_address)
    name = clean_name(name, field="name")
    email = clean_email(email)
    passwords.check_policy(password, email=email)
    password_hash = await passwords.hash_password(password)
    try:
        async with deps.db.begin() as session:
            user = User(email=email, name=name, password_hash=password_hash)
            session.add(user)
            await session.flush()
            workspace = Workspace(name=f"{name}'s workspace", created_by_id=user.id)
            session.add(workspace)
            await session.flush()
            session.add(Membership(workspace_id=workspace.id, user_id=user.id, role=Role.OWNER))
            return await _start_session(deps, session, user)
    except IntegrityError as exc:
        raise Conflict(
            "An account with this email exists.", code="EMAIL_TAKEN", field="email"
        ) from exc


async def sign_in(deps: ServiceDeps, *, email: str, password: str) -> AuthSession:
    """Never says which part was wrong; rate limited per email and per client address."""
    key = _lookup_email(email)
    await deps.attempts.sign_in(key, deps.principal.client_address)
    async with deps.db.begin() as session:
        user = (await session.execute(select(User).where(User.email == key))).scalar_one_or_none()
        ok = await passwords.verify_password(user.password_hash if user else None, password)
        if user is None or not ok:
            raise Unauthenticated(_WRONG_CREDENTIALS, code="INVALID_CREDENTIALS")
        return await _start_session(deps, session, user)


def _lookup_email(email: str) -> str:
    """The stored form of an email (as sign-up normalised it); anything invalid as typed."""
    try:
        return clean_email(email)
    except Invalid:
        return email.strip().lower()[:320]


async def refresh(deps: ServiceDeps, *, refresh_token: str) -> AuthSession:
    """Rotate: the presented token is spent and a new one of the same family issued.

    Presenting an already spent token means it leaked: the whole family is revoked.
    """
    now = utcnow()
    token_hash = tokens.hash_secret(refresh_token)
    async with deps.db.begin() as session:
        await lock_for_write(session)
        row = (
            await session.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
        ).scalar_one_or_none()
        if row is None or (row.revoked_at is not None and row.used_at is None):
            raise Unauthenticated("This refresh token is not valid.", code="TOKEN_INVALID")
        if row.expires_at <= now:
            raise Unauthenticated("The refresh token has expired.", code="TOKEN_EXPIRED")
        # Spend it atomically: of two concurrent refreshes only one wins the UPDATE.
        spent = await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.id == row.id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=now)
        )
        reused = spent.rowcount != 1
        if reused:
            await _revoke_family(session, row.family_id)
        else:
            user = await session.get(User, row.user_id)
            assert user is not None  # the foreign key cascades on delete
            return await _start_session(deps, session, user, family_id=row.family_id)
    raise Unauthenticated(
        "This refresh token was already used; sign in again.", code="TOKEN_REUSED"
    )


async def sign_out(deps: ServiceDeps, *, refresh_token: str) -> None:
    """Revoke the refresh token's family. Unknown tokens are ignored (signing out is idempotent)."""
    async with deps.db.begin() as session:
        family_id = (
            await session.execute(
                select(RefreshToken.family_id).where(
                    RefreshToken.token_hash == tokens.hash_secret(refresh_token)
                )
            )
        ).scalar_one_or_none()
        if family_id is not None:
            await _revoke_family(session, family_id)


async def get_me(deps: ServiceDeps) -> UserView:
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        user = await session.get(User, user_id)
    if user is None:  # deleted since the token was issued
        raise Unauthenticated("This account no longer exists.", code="TOKEN_INVALID")
    return UserView.model_validate(user)


_USERS_SEEN_BY_VIEWER = select(*view_columns(UserView, User)).where(
    in_ids(User.id), seen_by_viewer(User.id)
)


async def users_by_ids(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[UserView | None]:
    """Users that share a workspace with the caller (or are the caller), aligned with `ids`."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = await session.execute(_USERS_SEEN_BY_VIEWER, {"viewer": user_id, "ids": ids})
        found = {u.id: view_of_row(UserView, u) for u in rows}
    return [found.get(i) for i in ids]


async def _start_session(
    deps: ServiceDeps, session: AsyncSession, user: User, *, family_id: uuid.UUID | None = None
) -> AuthSession:
    now = utcnow()
    settings = deps.settings
    access, access_expires = tokens.issue_access_token(
        user.id, secret=settings.jwt_secret, now=now, ttl_seconds=settings.access_token_ttl_seconds
    )
    secret = tokens.new_secret()
    refresh_expires = now + timedelta(seconds=settings.refresh_token_ttl_seconds)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or uuid.uuid4(),
            token_hash=tokens.hash_secret(secret),
            expires_at=refresh_expires,
        )
    )
    await session.flush()
    return AuthSession(
        user=UserView.model_validate(user),
        access_token=access,
        access_token_expires_at=access_expires,
        refresh_token=secret,
        refresh_token_expires_at=refresh_expires,
    )


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
