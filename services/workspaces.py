"""Workspaces and their members: listing, renaming, invites, roles and removal."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, literal_column, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CompoundSelect

from base.auth import tokens
from base.db.engine import lock_for_write
from base.db.types import utcnow
from base.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from base.models.accounts import Invite, Membership, Role, User, Workspace
from base.models.chat import Message, MessageRole
from base.models.documents import Collection, Document, DocumentStatus
from base.models.runs import Run, RunStatus, SubjectType
from services.access import (
    VIEWER,
    VIEWER_WORKSPACE_IDS,
    in_ids,
    member_workspace_ids,
    require_role,
)
from services.deps import ServiceDeps
from services.documents import delete_document_rows
from services.originals import release_after
from services.pagination import (
    PageRequest,
    SortKey,
    pages_by_parent,
    paginate_by_parent,
)
from services.run_log import Subject, append_workspace_event, transaction_with_events
from services.runs import signal_cancel
from services.validation import clean_email, clean_name
from services.views import (
    CreatedInvite,
    InviteView,
    MemberView,
    Page,
    UserView,
    WorkspaceCountsView,
    WorkspaceView,
)


def workspace_view(workspace: Any, role: Role) -> WorkspaceView:
    """`workspace`: a mapped Workspace or a row with its columns."""
    return WorkspaceView(
        id=workspace.id,
        name=workspace.name,
        created_at=workspace.created_at,
        updated_at=workspace.updated_at,
        viewer_role=role,
        chat_model=workspace.chat_model,
    )


def _member_view(membership: Membership, user: User) -> MemberView:
    return MemberView(
        id=membership.id,
        workspace_id=membership.workspace_id,
        role=membership.role,
        joined_at=membership.joined_at,
        user=UserView.model_validate(user),
    )


# The caller's (`:viewer`) workspaces with their role and when they joined.
_VIEWER_MEMBERSHIP = (Membership.workspace_id == Workspace.id) & (Membership.user_id == VIEWER)
_VIEWER_WORKSPACES = select(Workspace, Membership.role, Membership.joined_at).join(
    Membership, _VIEWER_MEMBERSHIP
)
# By ids: Core rows of what a workspace view shows (ADR 0133).
_VIEWER_WORKSPACES_BY_IDS = (
    select(
        Workspace.id,
        Workspace.name,
        Workspace.created_at,
        Workspace.updated_at,
        Workspace.chat_model,
        Membership.role,
    )
    .join(Membership, _VIEWER_MEMBERSHIP)
    .where(in_ids(Workspace.id))
)


_MY_WORKSPACES_ORDER = SortKey("workspaces", [Membership.joined_at, Workspace.id])


async def list_my_workspaces(
    deps: ServiceDeps, *, first: int | None = None, after: str | None = None
) -> Page[WorkspaceView]:
    """The caller's workspaces in the order they joined: one page of the list whose one parent
    is the caller, its total riding on the page (ADR 0136)."""
    user_id = deps.principal.require_user()
    page = PageRequest.of(first, after)
    async with deps.read() as session:
        pages = await paginate_by_parent(
            session,
            _VIEWER_WORKSPACES,
            params={"viewer": user_id},
            parent=Membership.user_id,
            parent_ids=[user_id],
            sort=_MY_WORKSPACES_ORDER,
            page=page,
            to_node=lambda r: workspace_view(r[0], r[1]),
            sort_values=lambda r: (r[2], r[0].id),
        )
    return pages[user_id]


async def workspaces_by_ids(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[WorkspaceView | None]:
    """The caller's view of each workspace, aligned with `ids`; None where not a member."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = (
            await session.execute(_VIEWER_WORKSPACES_BY_IDS, {"viewer": user_id, "ids": ids})
        ).all()
    found = {w.id: workspace_view(w, w.role) for w in rows}
    return [found.get(i) for i in ids]


# The dashboard counts the questions asked in this window.
QUESTIONS_WINDOW = timedelta(days=7)

# The dashboard's counts of workspaces (`:ids`, the caller's only) in one statement, a row per
# count: (workspace id, the view's field it counts or 'documents', document status, count). One
# statement, not one per kind of count: each costs a screen a read, a workflow node and a
# loader (ADR 0140).
_WORKSPACE_COUNTS: CompoundSelect[Any] = union_all(
    select(Document.workspace_id, literal_column("'documents'"), Document.status, func.count())
    .where(in_ids(Document.workspace_id), Document.workspace_id.in_(VIEWER_WORKSPACE_IDS))
    .group_by(Document.workspace_id, Document.status),
    select(Collection.workspace_id, literal_column("'collections'"), null(), func.count())
    .where(in_ids(Collection.workspace_id), Collection.workspace_id.in_(VIEWER_WORKSPACE_IDS))
    .group_by(Collection.workspace_id),
    select(Message.workspace_id, literal_column("'questions_last_7_days'"), null(), func.count())
    .where(
        in_ids(Message.workspace_id),
        Message.workspace_id.in_(VIEWER_WORKSPACE_IDS),
        Message.role == MessageRole.USER,
        Message.created_at >= bindparam("since"),
    )
    .group_by(Message.workspace_id),
)


async def workspace_counts(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[WorkspaceCountsView]:
    """Per workspace, aligned with `ids`: its documents by status, its collections, and the
    questions all its members asked in the last `QUESTIONS_WINDOW` (a count, not the
    questions); zeros for a workspace the caller does not belong to."""
    user_id = deps.principal.require_user()
    params = {"viewer": user_id, "ids": ids, "since": utcnow() - QUESTIONS_WINDOW}
    counts: dict[uuid.UUID, dict[str, int]] = {i: {} for i in ids}
    async with deps.read() as session:
        rows: Sequence[Any] = (await session.execute(_WORKSPACE_COUNTS, params)).all()
    for workspace_id, what, status, count in rows:
        key = DocumentStatus(status).value.lower() if what == "documents" else what
        counts[workspace_id][key] = count
    return [
        WorkspaceCountsView(
            **counts[i],
            total=sum(counts[i].get(s.value.lower(), 0) for s in DocumentStatus),
        )
        for i in ids
    ]


async def rename_workspace(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, name: str
) -> WorkspaceView:
    user_id = deps.principal.require_user()
    name = clean_name(name, field="name")
    async with transaction_with_events(deps) as (session, outbox):
        role = await require_role(session, user_id, workspace_id, Role.ADMIN)
        workspace = await session.get(Workspace, workspace_id)
        assert workspace is not None
        if workspace.name != name:
            await append_workspace_event(
                session,
                outbox,
                workspace_id,
                "WORKSPACE_RENAMED",
                message=f"renamed the workspace from {workspace.name} to {name}",
                actor_id=user_id,
                subject=Subject(SubjectType.WORKSPACE, workspace_id, name),
            )
        workspace.name = name
        await session.flush()
        return workspace_view(workspace, role)


@dataclass(frozen=True)
class MembersQuery:
    """One page of a workspace's members, oldest first."""

    workspace_id: uuid.UUID | None
    first: int | None = None
    after: str | None = None


MEMBERS_ORDER = SortKey("members", [Membership.joined_at, Membership.id])
_VIEWER_MEMBERS = (
    select(Membership, User)
    .join(User, User.id == Membership.user_id)
    .where(Membership.workspace_id.in_(VIEWER_WORKSPACE_IDS))
)


async def list_members(
    deps: ServiceDeps, *, queries: Sequence[MembersQuery]
) -> list[Page[MemberView] | DomainError]:
    """Any member may list the members: a page per query, two statements per distinct page
    whatever the number of workspaces. A workspace the caller does not belong to has no
    members here (the workspace itself would not have resolved)."""
    user_id = deps.principal.require_user()

    async def load(
        _query: MembersQuery, page: PageRequest, workspace_ids: list[Any]
    ) -> dict[Any, Page[MemberView]]:
        return await paginate_by_parent(
            session,
            _VIEWER_MEMBERS,
            params={"viewer": user_id},
            parent=Membership.workspace_id,
            parent_ids=workspace_ids,
            sort=MEMBERS_ORDER,
            page=page,
            to_node=lambda r: _member_view(r[0], r[1]),
            sort_values=lambda r: (r[0].joined_at, r[0].id),
        )

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="workspace_id", load=load)


async def members_by_ids(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[MemberView | None]:
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = (
            await session.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(
                    Membership.id.in_(ids),
                    Membership.workspace_id.in_(member_workspace_ids(user_id)),
                )
            )
        ).all()
    found = {m.id: _member_view(m, u) for m, u in rows}
    return [found.get(i) for i in ids]


async def invite_member(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, email: str, role: Role
) -> CreatedInvite:
    """ADMIN and OWNER invite; only an OWNER may invite another OWNER. Returns the link. A
    pending invite to the same address is replaced: its link stops working."""
    user_id = deps.principal.require_user()
    email = clean_email(email)
    async with transaction_with_events(deps) as (session, outbox):
        actor_role = await require_role(session, user_id, workspace_id, Role.ADMIN)
        if role is Role.OWNER and actor_role is not Role.OWNER:
            raise Forbidden("Only an OWNER can invite another OWNER.", field="role")
        already = await session.execute(
            select(Membership.id)
            .join(User, User.id == Membership.user_id)
            .where(Membership.workspace_id == workspace_id, User.email == email)
        )
        if already.first() is not None:
            raise Conflict("This person is already a member.", code="ALREADY_MEMBER", field="email")
        # Inviting an address again is a resend: only the newest link (and role) works.
        await session.execute(
            delete(Invite).where(
                Invite.workspace_id == workspace_id,
                Invite.email == email,
                Invite.accepted_at.is_(None),
            )
        )
        secret = tokens.new_secret()
        invite = Invite(
            workspace_id=workspace_id,
            email=email,
            role=role,
            token_hash=tokens.hash_secret(secret),
            invited_by_id=user_id,
            expires_at=utcnow() + timedelta(seconds=deps.settings.invite_ttl_seconds),
        )
        session.add(invite)
        await session.flush()
        # Neither the address (every member reads the feed; only admins see invites) nor a
        # subject (an invite is not an object the client can open): the join names the person.
        await append_workspace_event(
            session,
            outbox,
            workspace_id,
            "MEMBER_INVITED",
            message=f"invited a new member as {role.value}",
            actor_id=user_id,
        )
        link = f"{deps.settings.public_web_url.rstrip('/')}/invite/{secret}"
        return CreatedInvite(invite=InviteView.model_validate(invite), link=link)


@dataclass(frozen=True)
class InvitesQuery:
    """One page of a workspace's pending invites (not accepted, not expired), oldest first."""

    workspace_id: uuid.UUID | None
    first: int | None = None
    after: str | None = None


INVITES_ORDER = SortKey("invites", [Invite.created_at, Invite.id])
# Invites are seen by the ADMIN and OWNER of their workspace only (the caller is `:viewer`).
_ADMIN_INVITES = select(Invite).where(
    Invite.workspace_id.in_(
        select(Membership.workspace_id).where(
            Membership.user_id == VIEWER, Membership.role.in_([Role.ADMIN, Role.OWNER])
        )
    )
)
_PENDING_INVITES = _ADMIN_INVITES.where(
    Invite.accepted_at.is_(None), Invite.expires_at > bindparam("now")
)
_ADMIN_INVITES_BY_IDS = _ADMIN_INVITES.where(in_ids(Invite.id))
_VIEWER_ROLES = select(Membership.workspace_id, Membership.role).where(
    Membership.user_id == VIEWER, in_ids(Membership.workspace_id)
)


async def list_invites(
    deps: ServiceDeps, *, queries: Sequence[InvitesQuery]
) -> list[Page[InviteView] | DomainError]:
    """Pending invites, for ADMIN and OWNER only (their addresses are not for every member):
    FORBIDDEN for a lower role. The SQL itself keeps to the caller's admin workspaces."""
    user_id = deps.principal.require_user()

    async def load(
        _query: InvitesQuery, page: PageRequest, workspace_ids: list[Any]
    ) -> dict[Any, Page[InviteView] | DomainError]:
        roles = dict(
            (await session.execute(_VIEWER_ROLES, {"viewer": user_id, "ids": workspace_ids})).all()
        )
        pages: dict[Any, Page[InviteView] | DomainError] = {
            i: Forbidden(
                f"Only an ADMIN or OWNER sees the invites; you are {role.value}.", code="FORBIDDEN"
            )
            for i, role in roles.items()
            if not role.at_least(Role.ADMIN)
        }
        # A workspace the caller does not belong to gets an empty page, as the members do.
        listed = [i for i in workspace_ids if i not in pages]
        if listed:
            pages.update(
                await paginate_by_parent(
                    session,
                    _PENDING_INVITES,
                    params={"viewer": user_id, "now": utcnow()},
                    parent=Invite.workspace_id,
                    parent_ids=listed,
                    sort=INVITES_ORDER,
                    page=page,
                    to_node=lambda r: InviteView.model_validate(r[0]),
                    sort_values=lambda r: (r[0].created_at, r[0].id),
                )
            )
        return pages

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="workspace_id", load=load)


async def invites_by_ids(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[InviteView | None]:
    """Each invite, pending or not, to the ADMIN and OWNER of its workspace; None otherwise."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = await session.execute(_ADMIN_INVITES_BY_IDS, {"viewer": user_id, "ids": ids})
        found = {i.id: InviteView.model_validate(i) for i in rows.scalars()}
    return [found.get(i) for i in ids]


async def revoke_invite(deps: ServiceDeps, *, invite_id: uuid.UUID) -> InviteView:
    """ADMIN and OWNER revoke an invite that has not been accepted: its link stops working at
    once (the row is deleted, so the link reads as not valid). An expired one may be revoked
    too, to clear it from the list."""
    user_id = deps.principal.require_user()
    async with transaction_with_events(deps) as (session, outbox):
        await lock_for_write(session)
        invite = (
            await session.execute(
                select(Invite)
                .where(
                    Invite.id == invite_id, Invite.workspace_id.in_(member_workspace_ids(user_id))
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if invite is None:
            raise NotFound("No such invite.", field="inviteId")
        await require_role(session, user_id, invite.workspace_id, Role.ADMIN, field="inviteId")
        if invite.accepted_at is not None:
            raise Conflict(
                "This invite has already been used: remove the member instead.",
                code="INVITE_USED",
                field="inviteId",
            )
        view = InviteView.model_validate(invite)
        await append_workspace_event(
            session,
            outbox,
            invite.workspace_id,
            "INVITE_REVOKED",
            message=f"revoked an invite to join as {invite.role.value}",
            actor_id=user_id,
        )
        await session.delete(invite)
        return view


async def accept_invite(deps: ServiceDeps, *, token: str) -> WorkspaceView:
    """Join the invite's workspace with its role. The invite is bound to its email address."""
    user_id = deps.principal.require_user()
    now = utcnow()
    async with transaction_with_events(deps) as (session, outbox):
        await lock_for_write(session)
        invite = (
            await session.execute(
                select(Invite)
                .where(Invite.token_hash == tokens.hash_secret(token))
                .with_for_update()
            )
        ).scalar_one_or_none()
        if invite is None:
            raise NotFound("This invite link is not valid.", code="INVITE_INVALID", field="token")
        if invite.accepted_at is not None:
            raise Conflict("This invite has already been used.", code="INVITE_USED", field="token")
        if invite.expires_at <= now:
            raise Invalid(
                "This invite has expired; ask for a new one.", code="INVITE_EXPIRED", field="token"
            )
        user = await session.get(User, user_id)
        assert user is not None
        if user.email != invite.email:
            raise Forbidden(
                "This invite was sent to another email address.",
                code="INVITE_EMAIL_MISMATCH",
                field="token",
            )
        existing = await session.execute(
            select(Membership).where(
                Membership.workspace_id == invite.workspace_id, Membership.user_id == user_id
            )
        )
        if existing.scalar_one_or_none() is not None:
            raise Conflict("You are already a member of this workspace.", code="ALREADY_MEMBER")
        invite.accepted_at = now
        invite.accepted_by_id = user_id
        session.add(Membership(workspace_id=invite.workspace_id, user_id=user_id, role=invite.role))
        workspace = await session.get(Workspace, invite.workspace_id)
        assert workspace is not None
        await session.flush()
        await append_workspace_event(
            session,
            outbox,
            workspace.id,
            "MEMBER_JOINED",
            message=f"joined as {invite.role.value}",
            actor_id=user_id,
            subject=user_subject(user),
        )
        return workspace_view(workspace, invite.role)


async def change_member_role(deps: ServiceDeps, *, member_id: uuid.UUID, role: Role) -> MemberView:
    user_id = deps.principal.require_user()
    async with transaction_with_events(deps) as (session, outbox):
        member, actor_role = await _locked_member_for_admin(session, user_id, member_id)
        if Role.OWNER in (role, member.role) and actor_role is not Role.OWNER:
            raise Forbidden("Only an OWNER can grant or take away the OWNER role.", field="role")
        if member.role is Role.OWNER and role is not Role.OWNER:
            await _keep_an_owner(session, member.workspace_id)
        user = await session.get(User, member.user_id)
        assert user is not None
        if member.role is not role:
            await append_workspace_event(
                session,
                outbox,
                member.workspace_id,
                "MEMBER_ROLE_CHANGED",
                message=f"changed the role of {user.name} from {member.role.value} to {role.value}",
                actor_id=user_id,
                subject=user_subject(user),
            )
        member.role = role
        await session.flush()
        return _member_view(member, user)


async def remove_member(deps: ServiceDeps, *, member_id: uuid.UUID) -> uuid.UUID:
    """ADMIN/OWNER remove others; anyone may leave. The last OWNER can do neither."""
    user_id = deps.principal.require_user()
    async with transaction_with_events(deps) as (session, outbox):
        member = await _locked_member(session, user_id, member_id)
        leaving = member.user_id == user_id
        if not leaving:
            actor_role = await require_role(session, user_id, member.workspace_id, Role.ADMIN)
            if member.role is Role.OWNER and actor_role is not Role.OWNER:
                raise Forbidden("Only an OWNER can remove an OWNER.")
        if member.role is Role.OWNER:
            await _keep_an_owner(session, member.workspace_id)
        user = await session.get(User, member.user_id)
        assert user is not None
        await append_workspace_event(
            session,
            outbox,
            member.workspace_id,
            "MEMBER_LEFT" if leaving else "MEMBER_REMOVED",
            message="left the workspace" if leaving else f"removed {user.name}",
            actor_id=user_id,
            subject=user_subject(user),
        )
        await session.delete(member)
        return member.id


async def delete_workspace(deps: ServiceDeps, *, workspace_id: uuid.UUID, name: str) -> uuid.UUID:
    """The OWNER deletes the workspace and everything in it, typing its name again to confirm
    (NAME_MISMATCH otherwise). Its documents go first (`documents.collection_id` restricts the
    collections' cascade), then the workspace row, whose delete cascades to its collections,
    members, invites, runs with their steps and events, activity and conversations. After
    commit: running runs are told to stop (their rows are gone, so they write nothing more) and
    the originals no other document references are released."""
    user_id = deps.principal.require_user()
    async with deps.db.begin() as session:
        await lock_for_write(session)
        await require_role(session, user_id, workspace_id, Role.OWNER, for_update=True)
        workspace = (
            await session.execute(
                select(Workspace).where(Workspace.id == workspace_id).with_for_update()
            )
        ).scalar_one()
        if name.strip() != workspace.name:
            raise Invalid(
                "Type the workspace's name exactly to delete it.",
                code="NAME_MISMATCH",
                field="name",
            )
        running = list(
            (
                await session.execute(
                    select(Run.id).where(
                        Run.workspace_id == workspace_id, Run.status == RunStatus.RUNNING
                    )
                )
            ).scalars()
        )
        documents = select(Document.id).where(Document.workspace_id == workspace_id)
        digests = list(
            (
                await session.execute(
                    select(Document.content_sha256)
                    .where(Document.workspace_id == workspace_id)
                    .distinct()
                )
            ).scalars()
        )
        await delete_document_rows(session, documents)
        await session.execute(delete(Workspace).where(Workspace.id == workspace_id))
    for run_id in running:
        await signal_cancel(deps, run_id)
    await release_after(deps, digests)
    return workspace_id


def user_subject(user: User) -> Subject:
    return Subject(SubjectType.USER, user.id, user.name)


async def _locked_member(
    session: AsyncSession, user_id: uuid.UUID, member_id: uuid.UUID
) -> Membership:
    """The membership row, with its workspace locked against concurrent member changes."""
    await lock_for_write(session)
    member = (
        await session.execute(
            select(Membership).where(
                Membership.id == member_id,
                Membership.workspace_id.in_(member_workspace_ids(user_id)),
            )
        )
    ).scalar_one_or_none()
    if member is None:
        raise NotFound("No such member.", field="memberId")
    # Serialise member changes per workspace so two owners cannot demote each other at once.
    await session.execute(
        select(Workspace.id).where(Workspace.id == member.workspace_id).with_for_update()
    )
    await session.refresh(member)
    return member


async def _locked_member_for_admin(
    session: AsyncSession, user_id: uuid.UUID, member_id: uuid.UUID
) -> tuple[Membership, Role]:
    member = await _locked_member(session, user_id, member_id)
    actor_role = await require_role(session, user_id, member.workspace_id, Role.ADMIN)
    return member, actor_role


async def _keep_an_owner(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    owners = (
        await session.execute(
            select(func.count())
            .select_from(Membership)
            .where(Membership.workspace_id == workspace_id, Membership.role == Role.OWNER)
        )
    ).scalar_one()
    if owners <= 1:
        raise Conflict(
            "A workspace needs an OWNER: make someone else OWNER first.", code="LAST_OWNER"
        )
