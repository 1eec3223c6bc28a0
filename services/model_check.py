"""The model check (screen 11, Models): is the Ollama server reachable and do both models work?

Each function is one step of the `check_models` run, so the admin watches it stage by stage.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from base.errors import ModelUnavailable
from base.models.accounts import Role, Workspace
from base.models.runs import SubjectType
from services import llm, runs
from services.access import require_role
from services.deps import ServiceDeps
from services.run_log import Outbox
from services.views import RunView
from services.workspace_settings import chat_model_of

# Counting is easy to check by eye and its length follows `max_tokens`, so one prompt serves a
# quick check and a long one.
PROMPT = "Count from 1 to {n}, separated by spaces."


def _config(deps: ServiceDeps) -> llm.LLMConfig:
    return llm.LLMConfig.from_settings(deps.settings)


async def connect(deps: ServiceDeps, **_: Any) -> dict[str, Any]:
    if not await llm.server_reachable(config=_config(deps)):
        raise ModelUnavailable("The model server does not answer.")
    return {"reachable": True}


async def _chat_model(deps: ServiceDeps, workspace_id: str | None) -> str:
    """The workspace's chat model; a run queued before runs named their workspace checks the
    deployment's."""
    if workspace_id is None:
        return deps.settings.chat_model
    async with deps.db() as session:
        return await chat_model_of(session, uuid.UUID(workspace_id), deps.settings)


async def list_models(
    deps: ServiceDeps, *, workspace_id: str | None = None, **_: Any
) -> dict[str, Any]:
    models = await llm.list_models(config=_config(deps))
    wanted = {await _chat_model(deps, workspace_id), deps.settings.embed_model}
    missing = {name for name in wanted if not any(llm.same_model(name, m) for m in models)}
    if missing:
        offered = ", ".join(models) or "none"
        lacking = ", ".join(sorted(missing))
        raise ModelUnavailable(f"The server lacks {lacking}; it offers {offered}.")
    return {"models": models}


async def chat(
    deps: ServiceDeps, *, max_tokens: int = 24, workspace_id: str | None = None, **_: Any
) -> dict[str, Any]:
    """A short streamed answer; progress per token, interruptible at every token."""
    model = await _chat_model(deps, workspace_id)
    received = 0

    def on_token(_token: str) -> None:
        nonlocal received
        received += 1
        deps.progress(received, max_tokens, f"{received} of at most {max_tokens} tokens")

    started = time.perf_counter()
    result = await llm.chat_stream(
        [{"role": "user", "content": PROMPT.format(n=max_tokens)}],
        model=model,
        config=_config(deps),
        on_token=on_token,
        options={"num_predict": max_tokens, "temperature": 0},
    )
    return {  # prompt_tokens and completion_tokens: the Usage tab sums them
        "model": model,
        "tokens": result.completion_tokens,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "seconds": round(time.perf_counter() - started, 3),
        "answer": result.text[:200],
    }


async def embed(deps: ServiceDeps, **_: Any) -> dict[str, Any]:
    [vector] = await llm.embed(
        ["What is a knowledge base?"], model=deps.settings.embed_model, config=_config(deps)
    )
    return {"dimensions": len(vector)}


def summarize(results: dict[str, Any]) -> str:
    chat_result, embed_result = results["CHAT"], results["EMBED"]
    return (
        f"Chat model answered {chat_result['tokens']} tokens in {chat_result['seconds']} s; "
        f"embedding model gives {embed_result['dimensions']} dimensions."
    )


CHECK_MODELS = runs.RunKind(
    "check_models", ("CONNECT", "LIST_MODELS", "CHAT", "EMBED"), summarize=summarize
)


async def start(deps: ServiceDeps, *, workspace_id: uuid.UUID) -> RunView:
    """Queue a model check of the workspace's models (EDITOR or higher: editors depend on them)."""
    user_id = deps.principal.require_user()
    outbox = Outbox()
    async with deps.db.begin() as session:
        await require_role(session, user_id, workspace_id, Role.EDITOR)
        workspace = await session.get(Workspace, workspace_id)
        assert workspace is not None
        settings = deps.settings
        chat_model = await chat_model_of(session, workspace_id, settings)
        run = await runs.create_run(
            session,
            outbox,
            workspace_id=workspace_id,
            kind=CHECK_MODELS,
            subject_type=SubjectType.WORKSPACE,
            subject_id=workspace_id,
            subject_label=workspace.name,
            triggered_by_id=user_id,
            params={
                "max_tokens": settings.model_check_max_tokens,
                "workspace_id": str(workspace_id),
            },
            input_summary=f"chat {chat_model}, embeddings {settings.embed_model}",
        )
        view = RunView.model_validate(run)
    await runs.launch(deps, outbox, [run.id])
    return view
