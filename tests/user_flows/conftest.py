"""Fixtures shared by the user flows that watch runs: subscriptions run through the real schema."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from fastapi import FastAPI

from base.auth.principal import Principal
from resolvers.core.context import Context
from tests.support.graphql import operation


def uuid_of(global_id: str) -> uuid.UUID:
    """The uuid inside a global id (`base64("Type:uuid")`), for reading rows in the database."""
    return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


@pytest.fixture
def subscribe(app: FastAPI):
    """Run a subscription document of `graphql/operations/` through the schema as a user.

    `subscribe("RunProgress", {"runId": ...}, user_global_id)` returns what
    `schema.subscribe` returns: an async iterator of results, or one result with the errors
    when the subscription is refused before it starts. `on=` runs it on another app (another
    API process on the same database and Redis).
    """

    async def _subscribe(
        name: str, variables: dict[str, Any], user_global_id: str, *, on: FastAPI | None = None
    ) -> Any:
        target = on or app
        deps = target.state.deps.for_principal(Principal(user_id=uuid_of(user_global_id)))
        context = Context(deps=deps, runner=target.state.runner)
        return await target.state.schema.subscribe(
            operation(name), variable_values=variables, context_value=context
        )

    return _subscribe
