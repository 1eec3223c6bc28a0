"""Tenant scoping and roles: the one place that decides who may touch a workspace.

An id from a workspace the caller does not belong to raises the same NotFound as a missing id,
so nothing tells an outsider that it exists.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import BindParameter

from base.db.types import in_list
from base.errors import Forbidden, NotFound
from base.models.accounts import Membership, Role


def workspace_not_found(field: str | None = "workspaceId") -> NotFound:
    return NotFound("No such workspace.", code="NOT_FOUND", field=field)


async def role_in(
    session: AsyncSession, user_id: uuid.UUID, workspace_id: uuid.UUID, *, for_update: bool = False
) -> Role | None:
    stmt = select(Membership.role).where(
        Membership.user_id == user_id, Membership.workspace_id == workspace_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def require_role(
    session: AsyncSession,
    user_id: uuid.UUID,
    workspace_id: uuid.UUID,
    minimum: Role,
    *,
    field: str | None = "workspaceId",
    for_update: bool = False,
) -> Role:
    """The caller's role in the workspace, or NotFound (not a member) / Forbidden (too low)."""
    role = await role_in(session, user_id, workspace_id, for_update=for_update)
    if role is None:
        raise workspace_not_found(field)
    if not role.at_least(minimum):
        raise Forbidden(
            f"This needs the {minimum.value} role or higher; you are {role.value}.",
            code="FORBIDDEN",
        )
    return role


# Reads on every screen use statements built once, at import, with named parameters: building a
# SELECT and computing its cache key costs about 0.2 ms of CPU on each execution, which a
# statement kept as a module constant pays once (ADR 0078). They are run with
# `{"viewer": <the caller's user id>, "ids": [...], ...}`, the ids matched by `in_ids`.
VIEWER: BindParameter[uuid.UUID] = bindparam("viewer")


def in_ids(column: ColumnElement[Any] | QueryableAttribute[Any]) -> in_list:
    """`column` IN the list bound as `ids`."""
    return in_list(column, "ids")


# The workspaces the caller `:viewer` belongs to, for WHERE ... IN (...).
VIEWER_WORKSPACE_IDS = select(Membership.workspace_id).where(Membership.user_id == VIEWER)


def seen_by_viewer(
    user_id: ColumnElement[uuid.UUID] | QueryableAttribute[uuid.UUID],
) -> ColumnElement[bool]:
    """Whether the caller `:viewer` may see the user `user_id`: the caller, or anyone who shares
    a workspace with them."""
    return (user_id == VIEWER) | user_id.in_(
        select(Membership.user_id).where(Membership.workspace_id.in_(VIEWER_WORKSPACE_IDS))
    )


def member_workspace_ids(user_id: uuid.UUID) -> Select[uuid.UUID]:
    """VIEWER_WORKSPACE_IDS of `user_id`, for a statement built per call."""
    return VIEWER_WORKSPACE_IDS.params(viewer=user_id)
