"""Screen 11's Usage tab: what a workspace stores now, and the runs and tokens it used since the
start of the month (UTC), exact whatever the retention (ADR 0126).

The month's runs and tokens are the sums over the runs kept plus what retention deleted
(`pruned_usage`, written by `keep_usage_of` in the transaction that deletes them). Both follow
one rule: a run counts in the month it was created, a step's tokens in the month the step
finished (a retry's reused steps never finished in it, so they count once, in their own run).
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import BindParameter

from base.db.types import utcnow
from base.models.documents import Document
from base.models.runs import PrunedUsage, Run, RunStep
from services.access import VIEWER_WORKSPACE_IDS, in_ids
from services.deps import ServiceDeps
from services.views import UsageView

# What a step's service function returned about its model's tokens (its output is stored as
# {"value": ...}): the chat model's (SUMMARIZING, TAGGING, GENERATING, the model check's CHAT)
# and the embedding model's (EMBEDDING, re-embedding). Absent: none used.
TOKEN_KINDS = ("prompt_tokens", "completion_tokens", "embedding_tokens")


def _step_tokens(kind: str) -> Any:
    return RunStep.output[("value", kind)].as_integer()


def month_start(now: datetime) -> datetime:
    """The first instant of `now`'s month in UTC: usage is counted per calendar month, UTC."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _month(at: datetime) -> date:
    return month_start(at).date()


_SINCE: BindParameter[datetime] = bindparam("since")
_MONTH: BindParameter[date] = bindparam("month")


def _mine(workspace_id: Any) -> Any:
    """`workspace_id` among the asked ids (`:ids`) and the caller's workspaces (`:viewer`)."""
    return and_(in_ids(workspace_id), workspace_id.in_(VIEWER_WORKSPACE_IDS))


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
_TOKENS = (
    select(
        Run.workspace_id,
        *(func.coalesce(func.sum(_step_tokens(kind)), 0) for kind in TOKEN_KINDS),
    )
    .join(RunStep, RunStep.run_id == Run.id)
    .where(_mine(Run.workspace_id), RunStep.finished_at >= _SINCE)
    .group_by(Run.workspace_id)
)
_PRUNED = select(
    PrunedUsage.workspace_id,
    PrunedUsage.runs,
    *(getattr(PrunedUsage, kind) for kind in TOKEN_KINDS),
).where(_mine(PrunedUsage.workspace_id), PrunedUsage.month == _MONTH)


async def workspace_usage(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[UsageView]:
    """Per workspace: documents and their bytes, runs started and chat and embedding tokens used
    since the start of this month (UTC), in four statements for any number of workspaces. Every
    statement keeps to the caller's workspaces (zeros elsewhere; the workspace itself resolves
    only for members)."""
    user_id = deps.principal.require_user()
    since = month_start(utcnow())
    values = {"viewer": user_id, "ids": ids, "since": since, "month": since.date()}
    async with deps.read() as session:
        stored = {w: (n, b) for w, n, b in await session.execute(_STORED, values)}
        runs = Counter({w: int(n) for w, n in await session.execute(_RUNS, values)})
        tokens = {w: [int(t) for t in sums] for w, *sums in await session.execute(_TOKENS, values)}
        for w, pruned_runs, *pruned_tokens in await session.execute(_PRUNED, values):
            runs[w] += pruned_runs
            kept = tokens.get(w, [0, 0, 0])
            tokens[w] = [a + b for a, b in zip(kept, pruned_tokens, strict=True)]
    views = []
    for i in ids:
        documents, size = stored.get(i, (0, 0))
        prompt, completion, embedding = tokens.get(i, (0, 0, 0))
        views.append(
            UsageView(
                since=since,
                documents=documents,
                bytes_stored=int(size),
                runs=runs[i],
                prompt_tokens=prompt,
                completion_tokens=completion,
                embedding_tokens=embedding,
            )
        )
    return views


async def keep_usage_of(session: AsyncSession, run_ids: list[uuid.UUID]) -> None:
    """Add the usage of these runs, about to be deleted in `session`'s transaction, to
    `pruned_usage`, by the tab's rule (each run in its creation's month, each step's tokens in
    its end's month)."""
    added: dict[tuple[uuid.UUID, date], Counter[str]] = {}

    def month_of(workspace_id: uuid.UUID, at: datetime) -> Counter[str]:
        return added.setdefault((workspace_id, _month(at)), Counter())

    for workspace_id, created_at in await session.execute(
        select(Run.workspace_id, Run.created_at).where(Run.id.in_(run_ids))
    ):
        month_of(workspace_id, created_at)["runs"] += 1
    steps = (
        select(Run.workspace_id, RunStep.finished_at, *map(_step_tokens, TOKEN_KINDS))
        .join(Run, Run.id == RunStep.run_id)
        .where(RunStep.run_id.in_(run_ids), RunStep.finished_at.is_not(None))
    )
    for workspace_id, finished_at, *counts in await session.execute(steps):
        if not any(counts):
            continue
        counter = month_of(workspace_id, finished_at)
        for kind, count in zip(TOKEN_KINDS, counts, strict=True):
            counter[kind] += count or 0
    if not added:
        return
    rows = [
        {"workspace_id": w, "month": m, **{k: c[k] for k in ("runs", *TOKEN_KINDS)}}
        for (w, m), c in added.items()
    ]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(PrunedUsage).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[PrunedUsage.workspace_id, PrunedUsage.month],
            set_={
                kind: getattr(PrunedUsage, kind) + statement.excluded[kind]
                for kind in ("runs", *TOKEN_KINDS)
            },
        )
    )
