"""Runs written as the service writes them, for tests that execute or follow them themselves."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from base.models.runs import SubjectType
from services import runs
from services.run_log import Outbox


async def create_workspace_run(
    db: async_sessionmaker[Any],
    kind: runs.RunKind,
    *,
    workspace_id: uuid.UUID,
    triggered_by: uuid.UUID,
    label: str,
    params: dict[str, Any] | None = None,
) -> uuid.UUID:
    """A QUEUED run of `kind` about a workspace, committed (no launcher: nothing executes it)."""
    async with db.begin() as session:
        run = await runs.create_run(
            session,
            Outbox(),
            workspace_id=workspace_id,
            kind=kind,
            subject_type=SubjectType.WORKSPACE,
            subject_id=workspace_id,
            subject_label=label,
            triggered_by_id=triggered_by,
            params=params,
        )
        return run.id
