"""Nodes of the model-check run (screen 11, Models)."""

from app.services import model_check
from nodes.services import service_node

CheckConnectNode = service_node(model_check.connect, "CheckConnectNode")
CheckListModelsNode = service_node(model_check.list_models, "CheckListModelsNode")
CheckChatNode = service_node(model_check.chat, "CheckChatNode")
CheckEmbedNode = service_node(model_check.embed, "CheckEmbedNode")
