"""Search tests: the app on both databases with the test suite's model server, and a team
(owner, viewer, outsider) with two collections of real pages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from base.auth.principal import Principal
from base.settings import Settings
from services.deps import ServiceDeps
from tests.support.app_fixtures import changed
from tests.support.graphql import GraphQLClient, first_workspace, uuid_of
from tests.support.search import page_document
from tests.support.seed import add_collection, global_id
from tests.support.team import set_up_team


@pytest.fixture
def any_db_settings(any_db_settings: Settings, ollama_host: str, request: Any) -> Settings:
    marker = request.node.get_closest_marker("settings")
    return changed(any_db_settings, ollama_host=ollama_host, **(marker.kwargs if marker else {}))


@dataclass
class Library:
    """A workspace with two collections (Guides, Reference), its owner and a viewer; and an
    outsider with a workspace of their own."""

    deps: ServiceDeps
    owner_token: str
    owner_id: uuid.UUID
    viewer_token: str
    viewer_id: uuid.UUID
    workspace_id: uuid.UUID
    guides: uuid.UUID
    reference: uuid.UUID
    outsider_token: str
    outsider_id: uuid.UUID
    outsider_workspace_id: uuid.UUID
    outsider_collection: uuid.UUID

    @property
    def workspace_gid(self) -> str:
        return global_id("Workspace", self.workspace_id)

    def as_user(self, user_id: uuid.UUID) -> ServiceDeps:
        return self.deps.for_principal(Principal(user_id=user_id))


async def library_of(client: GraphQLClient, app: FastAPI) -> Library:
    """The team (owner, viewer, outsider) through the frontend's operations, and collections."""
    db = app.state.deps.db
    team = await set_up_team(client, app.state.settings, "viewer", "outsider")
    owner_id, workspace_id = uuid_of(team.owner.user_id), uuid_of(team.workspace_id)
    outsider_id = uuid_of(team.outsider.user_id)
    outsider_workspace_id = uuid_of((await first_workspace(client, team.outsider.token))["id"])
    return Library(
        deps=app.state.deps,
        owner_token=team.owner.token,
        owner_id=owner_id,
        viewer_token=team.viewer.token,
        viewer_id=uuid_of(team.viewer.user_id),
        workspace_id=workspace_id,
        guides=await add_collection(db, workspace_id, "Guides", owner_id),
        reference=await add_collection(db, workspace_id, "Reference", owner_id),
        outsider_token=team.outsider.token,
        outsider_id=outsider_id,
        outsider_workspace_id=outsider_workspace_id,
        outsider_collection=await add_collection(db, outsider_workspace_id, "Mine", outsider_id),
    )


async def shelve(
    library: Library,
    layout: Sequence[tuple[str, uuid.UUID, Sequence[str]]],
    *,
    outsider_pages: Sequence[str] = (),
    embed: bool = True,
) -> dict[str, uuid.UUID]:
    """Pages of the Python documentation as documents: `layout` (page, collection, tags) in the
    team's workspace, keyed by page; `outsider_pages` in the outsider's, keyed "outsider:page"."""
    ids = {}
    for page, collection, tags in layout:
        ids[page] = await page_document(
            library.deps,
            page,
            workspace_id=library.workspace_id,
            collection_id=collection,
            owner_id=library.owner_id,
            tags=tags,
            embed=embed,
        )
    for page in outsider_pages:
        ids[f"outsider:{page}"] = await page_document(
            library.deps,
            page,
            workspace_id=library.outsider_workspace_id,
            collection_id=library.outsider_collection,
            owner_id=library.outsider_id,
            embed=embed,
        )
    return ids
