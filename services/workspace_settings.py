"""Screen 11's Models tab: the models in use and what the model server offers, and the chat
model an admin chooses for a workspace (its Usage tab: `services/usage.py`)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from base.errors import Invalid, ModelUnavailable
from base.models.accounts import Role, Workspace
from base.models.runs import SubjectType
from base.settings import Settings
from services import llm
from services.access import require_role
from services.deps import ServiceDeps
from services.run_log import Subject, append_workspace_event, transaction_with_events
from services.validation import clean_name
from services.views import ModelsView, OfferedModelView, WorkspaceView
from services.workspaces import workspace_view

# Ollama's model names: `name:tag`, optionally behind a namespace or registry
# (`library/llama3:8b`, `hf.co/user/repo:Q4_K_M`).
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/:]*")
MAX_MODEL_NAME = 200


def chat_model_in_use(chosen: str | None, settings: Settings) -> str:
    """The chat model that writes a workspace's summaries, tags and answers: the one its admin
    chose, else the deployment's CHAT_MODEL."""
    return chosen or settings.chat_model


_CHOSEN_CHAT_MODEL = select(Workspace.chat_model).where(Workspace.id == bindparam("workspace"))


async def chat_model_of(session: AsyncSession, workspace_id: uuid.UUID, settings: Settings) -> str:
    """`chat_model_in_use` of a workspace, read when a step asks the model: a choice applies
    from the next model request on, also in runs already queued."""
    chosen = await session.scalar(_CHOSEN_CHAT_MODEL, {"workspace": workspace_id})
    return chat_model_in_use(chosen, settings)


async def set_chat_model(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, chat_model: str | None
) -> WorkspaceView:
    """Choose the workspace's chat model (ADMIN or OWNER); None goes back to CHAT_MODEL. A
    model is accepted only if the server offers it now and it can chat; the server is asked
    before the write, outside the transaction, and a refusal changes nothing."""
    user_id = deps.principal.require_user()
    name = None if chat_model is None else _clean_model_name(chat_model)
    async with deps.db() as session:  # refused before the server is asked
        await require_role(session, user_id, workspace_id, Role.ADMIN)
    if name is not None:
        await _require_chat_model(deps, name)
    async with transaction_with_events(deps) as (session, outbox):
        role = await require_role(session, user_id, workspace_id, Role.ADMIN)
        workspace = await session.get(Workspace, workspace_id)
        assert workspace is not None
        before = chat_model_in_use(workspace.chat_model, deps.settings)
        after = chat_model_in_use(name, deps.settings)
        if workspace.chat_model != name:
            default = " (the deployment's default)" if name is None else ""
            await append_workspace_event(
                session,
                outbox,
                workspace_id,
                "CHAT_MODEL_CHANGED",
                message=f"set the chat model to {after}{default}, was {before}",
                actor_id=user_id,
                subject=Subject(SubjectType.WORKSPACE, workspace_id, workspace.name),
            )
            workspace.chat_model = name
            await session.flush()
        return workspace_view(workspace, role)


def _clean_model_name(value: str) -> str:
    name = clean_name(value, field="chatModel", max_length=MAX_MODEL_NAME)
    if not _MODEL_NAME.fullmatch(name):
        raise Invalid(
            "A model name is letters, digits and . _ - / : (as `ollama list` shows it).",
            code="INVALID",
            field="chatModel",
        )
    return name


async def _require_chat_model(deps: ServiceDeps, name: str) -> None:
    """The server offers `name` and says it can chat (`completion`), within the connect
    timeout: the admin is waiting."""
    config = llm.LLMConfig.from_settings(deps.settings)
    try:
        async with asyncio.timeout(config.connect_timeout_seconds):
            capabilities = await llm.model_capabilities(name, config=config)
    except Exception as exc:  # refused, timed out, or not an Ollama API
        raise ModelUnavailable(
            "The model server does not answer, so the model could not be checked; nothing was "
            "changed."
        ) from exc
    if capabilities is None:
        raise Invalid(
            f"The model server does not offer {name}. Pick one of the offered models.",
            code="MODEL_NOT_OFFERED",
            field="chatModel",
        )
    if capabilities and "completion" not in capabilities:
        raise Invalid(
            f"{name} cannot chat (it offers {', '.join(capabilities)}). Pick a chat model.",
            code="MODEL_CANNOT_CHAT",
            field="chatModel",
        )


async def models_in_use(deps: ServiceDeps, *, chosen: list[str]) -> list[ModelsView]:
    """For each workspace's chosen chat model ("" for none), the chat and embedding models in
    use (the embedding model is the deployment's EMBED_MODEL) and the models the server offers,
    newest first, with what each can do. The server is asked once for all: its list, then one
    /api/show per model at once. Unreachable is an answer, not an error: the requests are
    bounded together by LLM_CONNECT_TIMEOUT_SECONDS and never retried, since the screen waits."""
    deps.principal.require_user()
    settings = deps.settings
    config = llm.LLMConfig.from_settings(settings)
    capabilities: list[list[str] | None] = []
    try:
        async with asyncio.timeout(config.connect_timeout_seconds):
            listed_now = await llm.offered_models(config=config)
            capabilities = await _capabilities([name for name, _, _ in listed_now], config)
        offered: list[tuple[str, int, datetime | None]] | None = listed_now
    except Exception:  # refused, timed out, or not an Ollama API: all "not reachable"
        offered = None

    def listed(model: str) -> bool | None:
        if offered is None:
            return None
        return any(llm.same_model(model, name) for name, _size, _modified in offered)

    offer = [
        OfferedModelView(name=n, size_bytes=s, modified_at=m, capabilities=c)
        for (n, s, m), c in zip(offered or [], capabilities, strict=True)
    ]
    views = []
    for choice in chosen:
        chat_model = chat_model_in_use(choice or None, settings)
        views.append(
            ModelsView(
                chat_model=chat_model,
                chat_model_chosen=bool(choice),
                default_chat_model=settings.chat_model,
                embed_model=settings.embed_model,
                reachable=offered is not None,
                offered=offer,
                chat_model_offered=listed(chat_model),
                embed_model_offered=listed(settings.embed_model),
            )
        )
    return views


async def _capabilities(names: list[str], config: llm.LLMConfig) -> list[list[str] | None]:
    """What each offered model can do, asked of the server for all at once (one /api/show
    each): the picker offers only the models that can chat. A model the server does not
    describe gets None; it is still offered."""
    found = await asyncio.gather(
        *(llm.model_capabilities(name, config=config) for name in names), return_exceptions=True
    )
    return [c if isinstance(c, list) and c else None for c in found]
