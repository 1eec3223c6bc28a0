"""Screen 11's Models and Usage tabs: the models in use and what the model server offers; what
a workspace stores and has used this month."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.sql.elements import BindParameter

from base.db.types import utcnow
from base.models.documents import Document
from base.models.runs import Run, RunStep
from services import llm
from services.access import IDS, VIEWER_WORKSPACE_IDS
from services.deps import ServiceDeps
from services.views import ModelsView, OfferedModelView, UsageView


async def models_in_use(deps: ServiceDeps) -> ModelsView:
    """The chat and embedding models in use (CHAT_MODEL, EMBED_MODEL: one pair per deployment)
    and the models the server offers, newest first. Unreachable is an answer, not an error: one
    request bounded by LLM_CONNECT_TIMEOUT_SECONDS and never retried, since the screen waits."""
    deps.principal.require_user()
    settings = deps.settings
    config = llm.LLMConfig.from_settings(settings)
    try:
        async with asyncio.timeout(config.connect_timeout_seconds):
            offered: list[tuple[str, int, datetime | None]] | None = await llm.offered_models(
                config=config
            )
    except Exception:  # refused, timed out, or not an Ollama API: all "not reachable"
        offered = None

    def listed(model: str) -> bool | None:
        if offered is None:
            return None
        return any(llm.same_model(model, name) for name, _size, _modified in offered)

    return ModelsView(
        chat_model=settings.chat_model,
        embed_model=settings.embed_model,
        reachable=offered is not None,
        offered=[
            OfferedModelView(name=n, size_bytes=s, modified_at=m) for n, s, m in offered or []
        ],
        chat_model_offered=listed(settings.chat_model),
        embed_model_offered=listed(settings.embed_model),
    )


def month_start(now: datetime) -> datetime:
    """The first instant of `now`'s month in UTC: usage is counted per calendar month, UTC."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


_SINCE: BindParameter[datetime] = bindparam("since")


def _mine(workspace_id: Any) -> Any:
    """`workspace_id` among the asked ids (`:ids`) and the caller's workspaces (`:viewer`)."""
    return and_(workspace_id.in_(IDS), workspace_id.in_(VIEWER_WORKSPACE_IDS))


_STORED = (
    select(Document.workspace_id, func.count(), func.coalesce(func.sum(Document.size_bytes), 0))
    .where(_mine(Document.workspace_id))
    .group_by(Document.workspace_id)
)
_RUNS = (
    select(Run.workspace_id, func.count())
    .where(_mine(Run.workspace_id), Run.created_at >= _SINCE)
    .group_by(Run.workspace_id)
)


def _tokens(key: str) -> Any:
    # A step's output is stored as {"value": <what its service function returned>}.
    return func.coalesce(func.sum(RunStep.output[("value", key)].as_integer()), 0)


# Chat-model tokens of the steps that finished this month, as each step's service function
# returned them (SUMMARIZING, TAGGING, GENERATING, the model check's CHAT).
_TOKENS = (
    select(Run.workspace_id, _tokens("prompt_tokens"), _tokens("completion_tokens"))
    .join(RunStep, RunStep.run_id == Run.id)
    .where(_mine(Run.workspace_id), RunStep.finished_at >= _SINCE)
    .group_by(Run.workspace_id)
)


async def workspace_usage(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[UsageView]:
    """Per workspace: documents and their bytes, runs started and chat tokens used since the
    start of this month (UTC), in three statements for any number of workspaces. Every
    statement keeps to the caller's workspaces (zeros elsewhere; the workspace itself resolves
    only for members). Runs deleted by retention (RUN_RETENTION_DAYS) no longer count."""
    user_id = deps.principal.require_user()
    since = month_start(utcnow())
    values = {"viewer": user_id, "ids": ids, "since": since}
    async with deps.read() as session:
        stored = {w: (n, b) for w, n, b in await session.execute(_STORED, values)}
        runs = {w: int(n) for w, n in await session.execute(_RUNS, values)}
        tokens = {w: (p, c) for w, p, c in await session.execute(_TOKENS, values)}
    views = []
    for i in ids:
        documents, size = stored.get(i, (0, 0))
        prompt, completion = tokens.get(i, (0, 0))
        views.append(
            UsageView(
                since=since,
                documents=documents,
                bytes_stored=int(size),
                runs=runs.get(i, 0),
                prompt_tokens=int(prompt),
                completion_tokens=int(completion),
            )
        )
    return views
