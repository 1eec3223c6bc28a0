"""The model check run (screen 11): CONNECT -> LIST_MODELS -> CHAT -> EMBED."""

from services import model_check
from workflows.declare import run_workflow

CHECK_MODELS = run_workflow(
    model_check.CHECK_MODELS,
    {
        "CONNECT": model_check.connect,
        "LIST_MODELS": model_check.list_models,
        "CHAT": model_check.chat,
        "EMBED": model_check.embed,
    },
)
