"""Collections (screen 4): list, create, edit, delete when empty.

Any member reads; EDITOR or higher manages. A collection of a workspace the caller does not
belong to behaves as a missing one (NOT_FOUND).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from base.db.engine import lock_for_write
from base.db.types import utcnow
from base.errors import Conflict, DomainError, NotFound
from base.models.accounts import Role
from base.models.documents import Collection, Document
from base.models.runs import SubjectType
from services.access import VIEWER_WORKSPACE_IDS, in_ids, member_workspace_ids, require_role
from services.deps import ServiceDeps
from services.pagination import PageRequest, SortKey, pages_by_parent, paginate_by_parent
from services.run_log import Subject, append_workspace_event, transaction_with_events
from services.validation import clean_name, clean_paragraphs
from services.views import CollectionTotalsView, CollectionView, Page

MAX_DESCRIPTION = 2000

# count(*), not count(documents.id): PostgreSQL answers it from ix_documents_collection_updated
# alone (an index-only scan) instead of visiting every document's row (ADR 0046).
_DOCUMENT_COUNT = (
    select(func.count())
    .select_from(Document)
    .where(Document.collection_id == Collection.id)
    .correlate(Collection)
    .scalar_subquery()
)
_LAST_DOCUMENT_UPDATE = (
    select(func.max(Document.updated_at))
    .where(Document.collection_id == Collection.id)
    .correlate(Collection)
    .scalar_subquery()
)


def _select() -> Any:
    """Collections with their document count and their documents' latest update."""
    return select(Collection, _DOCUMENT_COUNT, _LAST_DOCUMENT_UPDATE)


def _last_update(collection_updated: datetime, last_document: datetime | None) -> datetime:
    return collection_updated if last_document is None else max(collection_updated, last_document)


def _view(row: Any) -> CollectionView:
    collection, count, last_document = row[0], row[1], row[2]
    return _view_of(collection, count, _last_update(collection.updated_at, last_document))


def _view_of(collection: Any, count: int | None, last: datetime | None) -> CollectionView:
    """`collection`: a mapped Collection or a row with its columns."""
    return CollectionView(
        id=collection.id,
        workspace_id=collection.workspace_id,
        name=collection.name,
        description=collection.description,
        created_by_id=collection.created_by_id,
        created_at=collection.created_at,
        updated_at=collection.updated_at,
        document_count=count,
        last_updated_at=last,
    )


def view_without_totals(collection: Any) -> CollectionView:
    """The collection as the screens that name a document's collection show it: no totals."""
    return _view_of(collection, None, None)


# What a collection shows without its totals; the id first.
_SHOWN_WITHOUT_TOTALS = (
    "id",
    "workspace_id",
    "name",
    "description",
    "created_by_id",
    "created_at",
    "updated_at",
)
# A document's collection read in the document's own statement (joined on its collection_id):
# its columns but the id, named `collection_<column>` beside the document's; its id is the
# document's `collection_id`.
_BESIDE_A_DOCUMENT = _SHOWN_WITHOUT_TOTALS[1:]  # all but the id
COLLECTION_OF_DOCUMENT = tuple(
    getattr(Collection, name).label(f"collection_{name}") for name in _BESIDE_A_DOCUMENT
)
_KEYS_BESIDE_A_DOCUMENT = tuple((name, f"collection_{name}") for name in _BESIDE_A_DOCUMENT)


def collection_of_document(row: Any) -> CollectionView:
    """The collection, without totals, of a document's row that selected COLLECTION_OF_DOCUMENT."""
    mapping = row._mapping  # a column by key, not by attribute (ADR 0139)
    return CollectionView(
        id=mapping["collection_id"],
        **{name: mapping[key] for name, key in _KEYS_BESIDE_A_DOCUMENT},
        document_count=None,
        last_updated_at=None,
    )


def collection_not_found(field: str | None = "collectionId") -> NotFound:
    return NotFound("No such collection.", field=field)


@dataclass(frozen=True)
class CollectionsQuery:
    """One page of a workspace's collections, by name."""

    workspace_id: uuid.UUID | None
    first: int | None = None
    after: str | None = None


COLLECTIONS_ORDER = SortKey("collections", [Collection.name, Collection.id])
_VIEWER_COLLECTIONS = _select().where(Collection.workspace_id.in_(VIEWER_WORKSPACE_IDS))


async def list_collections(
    deps: ServiceDeps, *, queries: Sequence[CollectionsQuery]
) -> list[Page[CollectionView] | DomainError]:
    """A page of collections per workspace, by name; two statements per distinct page."""
    user_id = deps.principal.require_user()

    async def load(
        _query: CollectionsQuery, page: PageRequest, workspace_ids: list[Any]
    ) -> dict[Any, Page[CollectionView]]:
        return await paginate_by_parent(
            session,
            _VIEWER_COLLECTIONS,
            params={"viewer": user_id},
            parent=Collection.workspace_id,
            parent_ids=workspace_ids,
            sort=COLLECTIONS_ORDER,
            page=page,
            to_node=_view,
            sort_values=lambda r: (r[0].name, r[0].id),
        )

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="workspace_id", load=load)


# Core rows of what a collection without its totals shows (ADR 0133).
_VIEWER_COLLECTIONS_BY_IDS = select(
    *(getattr(Collection, name) for name in _SHOWN_WITHOUT_TOTALS)
).where(Collection.workspace_id.in_(VIEWER_WORKSPACE_IDS), in_ids(Collection.id))


async def collections_by_ids(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[CollectionView | None]:
    """The collections, without their totals: the screens that name a document's collection
    (the documents list, search, a document) show its name only, and counting each
    collection's documents cost 8 ms of database time per search at 10,000 documents."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = await session.execute(_VIEWER_COLLECTIONS_BY_IDS, {"viewer": user_id, "ids": ids})
        found = {c.id: view_without_totals(c) for c in rows}
    return [found.get(i) for i in ids]


_VIEWER_COLLECTION_TOTALS_BY_IDS = select(
    Collection.id, _DOCUMENT_COUNT, _LAST_DOCUMENT_UPDATE, Collection.updated_at
).where(Collection.workspace_id.in_(VIEWER_WORKSPACE_IDS), in_ids(Collection.id))


async def collection_totals_by_ids(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[CollectionTotalsView | None]:
    """Each collection's document count and latest update, for those that ask for them."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = (
            await session.execute(_VIEWER_COLLECTION_TOTALS_BY_IDS, {"viewer": user_id, "ids": ids})
        ).all()
    found = {
        r[0]: CollectionTotalsView(
            id=r[0], document_count=r[1], last_updated_at=_last_update(r[3], r[2])
        )
        for r in rows
    }
    return [found.get(i) for i in ids]


def _description(value: str | None) -> str:
    return clean_paragraphs(value or "", field="description", max_length=MAX_DESCRIPTION)


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"This workspace already has a collection named “{name}”.", code="NAME_TAKEN", field="name"
    )


async def _name_in_use(
    session: AsyncSession, workspace_id: uuid.UUID, name: str, *, other_than: uuid.UUID | None
) -> bool:
    stmt = select(Collection.id).where(
        Collection.workspace_id == workspace_id, Collection.name == name
    )
    if other_than is not None:
        stmt = stmt.where(Collection.id != other_than)
    return (await session.execute(stmt.limit(1))).first() is not None


def collection_subject(collection: Collection) -> Subject:
    return Subject(SubjectType.COLLECTION, collection.id, collection.name)


async def _reload(session: AsyncSession, collection_id: uuid.UUID) -> CollectionView:
    row = (await session.execute(_select().where(Collection.id == collection_id))).one()
    return _view(row)


async def create_collection(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, name: str, description: str | None = None
) -> CollectionView:
    user_id = deps.principal.require_user()
    name = clean_name(name, field="name")
    text = _description(description)
    try:
        async with transaction_with_events(deps) as (session, outbox):
            await lock_for_write(session)
            await require_role(session, user_id, workspace_id, Role.EDITOR)
            if await _name_in_use(session, workspace_id, name, other_than=None):
                raise _name_taken(name)
            collection = Collection(
                workspace_id=workspace_id, name=name, description=text, created_by_id=user_id
            )
            session.add(collection)
            await session.flush()
            await append_workspace_event(
                session,
                outbox,
                workspace_id,
                "COLLECTION_CREATED",
                message=f"created collection {name}",
                actor_id=user_id,
                subject=collection_subject(collection),
            )
            return await _reload(session, collection.id)
    except IntegrityError as exc:  # a concurrent create took the name
        raise _name_taken(name) from exc


async def _locked_collection(
    session: AsyncSession, user_id: uuid.UUID, collection_id: uuid.UUID
) -> Collection:
    """The collection, with the caller's role checked (EDITOR); NotFound for foreign ids."""
    await lock_for_write(session)
    collection = (
        await session.execute(
            select(Collection)
            .where(
                Collection.id == collection_id,
                Collection.workspace_id.in_(member_workspace_ids(user_id)),
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if collection is None:
        raise collection_not_found("id")
    await require_role(session, user_id, collection.workspace_id, Role.EDITOR)
    return collection


async def update_collection(
    deps: ServiceDeps,
    *,
    collection_id: uuid.UUID,
    name: str | None = None,
    description: str | None = None,
) -> CollectionView:
    """Rename and/or change the description; a field left out (None) stays as it is."""
    user_id = deps.principal.require_user()
    cleaned = clean_name(name, field="name") if name is not None else None
    text = _description(description) if description is not None else None
    try:
        async with transaction_with_events(deps) as (session, outbox):
            collection = await _locked_collection(session, user_id, collection_id)
            changes = []
            if cleaned is not None and cleaned != collection.name:
                if await _name_in_use(
                    session, collection.workspace_id, cleaned, other_than=collection.id
                ):
                    raise _name_taken(cleaned)
                changes.append(f"renamed collection {collection.name} to {cleaned}")
                collection.name = cleaned
            if text is not None and text != collection.description:
                changes.append(f"edited the description of collection {collection.name}")
                collection.description = text
            collection.updated_at = utcnow()
            await session.flush()
            if changes:
                await append_workspace_event(
                    session,
                    outbox,
                    collection.workspace_id,
                    "COLLECTION_UPDATED",
                    message="; ".join(changes),
                    actor_id=user_id,
                    subject=collection_subject(collection),
                )
            return await _reload(session, collection.id)
    except IntegrityError as exc:
        raise _name_taken(cleaned or "") from exc


def documents_phrase(count: int) -> str:
    return f"{count} document" if count == 1 else f"{count} documents"


async def delete_collection(deps: ServiceDeps, *, collection_id: uuid.UUID) -> uuid.UUID:
    """Delete an empty collection; one that holds documents is refused and says how many."""
    user_id = deps.principal.require_user()
    async with transaction_with_events(deps) as (session, outbox):
        collection = await _locked_collection(session, user_id, collection_id)
        count = (
            await session.execute(
                select(func.count())
                .select_from(Document)
                .where(Document.collection_id == collection.id)
            )
        ).scalar_one()
        if count:
            raise Conflict(
                f"The collection holds {documents_phrase(count)}; move or delete them first.",
                code="COLLECTION_NOT_EMPTY",
                field="id",
            )
        await append_workspace_event(
            session,
            outbox,
            collection.workspace_id,
            "COLLECTION_DELETED",
            message=f"deleted collection {collection.name}",
            actor_id=user_id,
            subject=collection_subject(collection),
        )
        await session.delete(collection)
        return collection_id
