"""The model check run: CONNECT -> LIST_MODELS -> CHAT -> EMBED."""

from app.services import model_check
from nodes import model_check as n
from workflows.steps import step_workflow

CHECK_MODELS = step_workflow(
    "check_models",
    [
        ("CONNECT", n.CheckConnectNode),
        ("LIST_MODELS", n.CheckListModelsNode),
        ("CHAT", n.CheckChatNode),
        ("EMBED", n.CheckEmbedNode),
    ],
    summarize=model_check.summarize,
)
