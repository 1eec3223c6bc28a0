"""Ingestion tests: the app's settings with a blob store of the test's own and the test suite's
model server on both databases; a signed-up owner with a workspace and a collection."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from base.settings import Settings
from tests.support.app_fixtures import changed
from tests.support.graphql import GraphQLClient, first_workspace, sign_up, uuid_of
from tests.support.seed import add_collection


@pytest.fixture
def settings(settings: Settings, tmp_path: Any) -> Settings:
    return changed(settings, blob_root=str(tmp_path / "blobs"))


@pytest.fixture
def any_db_settings(any_db_settings: Settings, tmp_path: Any, ollama_host: str) -> Settings:
    return changed(any_db_settings, blob_root=str(tmp_path / "blobs"), ollama_host=ollama_host)


@dataclass
class Library:
    """An owner's workspace with one collection, as ids for rows and a token for operations."""

    token: str
    owner_id: uuid.UUID
    workspace_id: uuid.UUID
    workspace_gid: str
    collection_id: uuid.UUID


async def library_of(client: GraphQLClient, app: FastAPI) -> Library:
    owner = await sign_up(client, "Olivia Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    owner_id, workspace_id = uuid_of(owner["user"]["id"]), uuid_of(workspace["id"])
    collection_id = await add_collection(app.state.deps.db, workspace_id, "Manuals", owner_id)
    return Library(owner["accessToken"], owner_id, workspace_id, workspace["id"], collection_id)
