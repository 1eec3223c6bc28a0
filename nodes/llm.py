"""Kailash nodes for the language model: thin adapters over `services.llm`.

Inputs arrive as node-scoped runtime inputs: `config` (an `LLMConfig`), `model`, and the user
content (`messages` or `texts`); `LLMChatNode` streams when given `on_token`, a live callable passed
by reference. Outputs are JSON-safe dicts that include the token counts.

Kailash 2.65 expands `${name}` inside every string, list and dict input, user text included, before
validation (`resolve_templates` in `AsyncNode.execute_async`): "price in ${model}" would reach the
model as "price in smollm2:135m". These nodes box their user-content inputs in an opaque
`Verbatim` before the SDK sees them, so the text reaches the model as written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kailash.nodes.base import NodeParameter, register_node
from kailash.nodes.base_async import AsyncNode
from pydantic import BaseModel

from base.errors import Invalid
from services import llm


class Verbatim:
    """An opaque box: the SDK's template expansion leaves it alone; repr keeps text out of logs."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Verbatim(...)"


def _unbox(value: Any) -> Any:
    return value.value if isinstance(value, Verbatim) else value


def _messages(value: Any) -> list[dict[str, str]]:
    value = _unbox(value)
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise Invalid("messages must be a non-empty list of {role, content}", field="messages")
    messages = []
    for message in value:
        if not (
            isinstance(message, Mapping)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise Invalid("each message needs a string role and content", field="messages")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def _config(value: Any) -> llm.LLMConfig:
    if not isinstance(value, llm.LLMConfig):
        raise TypeError(f"config must be an LLMConfig, got {type(value).__name__}")
    return value


def _param(name: str, kind: type, description: str, **extra: Any) -> NodeParameter:
    return NodeParameter(name=name, type=kind, description=description, **extra)


def _common_parameters() -> dict[str, NodeParameter]:
    return {
        "model": _param("model", str, "model name, e.g. settings.chat_model", required=True),
        "config": _param("config", object, "LLMConfig (host, timeouts, retries)", required=True),
    }


class _LLMNode(AsyncNode):
    verbatim_inputs: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The SDK logs every node failure at ERROR; ModelUnavailable is an expected outcome that
        # the workflow maps to a message, and unexpected errors are logged by the API layer.
        self.logger.setLevel(logging.CRITICAL)

    async def execute_async(self, **runtime_inputs: Any) -> dict[str, Any]:
        for name in self.verbatim_inputs:  # box before the SDK expands ${...} (module docstring)
            if name in runtime_inputs and not isinstance(runtime_inputs[name], Verbatim):
                runtime_inputs[name] = Verbatim(runtime_inputs[name])
        outputs: dict[str, Any] = await super().execute_async(**runtime_inputs)
        return outputs


@register_node()
class LLMChatNode(_LLMNode):
    """A chat completion; streamed to `on_token` when one is given. Out: text, counts."""

    verbatim_inputs = ("messages",)

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "messages": _param("messages", object, "list of {role, content}", required=True),
            **_common_parameters(),
            "options": _param("options", dict, "Ollama options", required=False, default=None),
            "on_token": _param(
                "on_token", object, "callable(str), may be async", required=False, default=None
            ),
        }

    async def async_run(self, **inputs: Any) -> dict[str, Any]:
        messages, config = _messages(inputs["messages"]), _config(inputs["config"])
        model, options, on_token = inputs["model"], inputs.get("options"), inputs.get("on_token")
        if on_token is None:
            result = await llm.chat(messages, model=model, config=config, options=options)
        else:
            result = await llm.chat_stream(
                messages, model=model, config=config, on_token=on_token, options=options
            )
        return result.as_dict()


@register_node()
class LLMStructuredNode(_LLMNode):
    """A reply validated against a pydantic model class. Out: value (a JSON-safe dict), counts."""

    verbatim_inputs = ("messages",)

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "messages": _param("messages", object, "list of {role, content}", required=True),
            "schema": _param("schema", object, "a pydantic BaseModel subclass", required=True),
            **_common_parameters(),
            "max_attempts": _param("max_attempts", int, "tries", required=False, default=3),
            "options": _param("options", dict, "Ollama options", required=False, default=None),
        }

    async def async_run(self, **inputs: Any) -> dict[str, Any]:
        schema = inputs["schema"]
        if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
            raise TypeError("schema must be a pydantic BaseModel subclass")
        value, usage = await llm.structured(
            _messages(inputs["messages"]),
            schema,
            model=inputs["model"],
            config=_config(inputs["config"]),
            max_attempts=inputs.get("max_attempts", 3),
            options=inputs.get("options"),
        )
        return {
            "value": value.model_dump(mode="json"),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        }


@register_node()
class LLMEmbedNode(_LLMNode):
    """Embeddings of `texts`, in order, sent in batches. Out: embeddings, dimensions, counts."""

    verbatim_inputs = ("texts",)

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "texts": _param("texts", object, "list of strings", required=True),
            **_common_parameters(),
            "batch_size": _param(
                "batch_size", int, "texts per request", required=False, default=32
            ),
        }

    async def async_run(self, **inputs: Any) -> dict[str, Any]:
        texts = _unbox(inputs["texts"])
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise Invalid("texts must be a list of strings", field="texts")
        vectors, usage = await llm.embed_with_usage(
            list(texts),
            model=inputs["model"],
            config=_config(inputs["config"]),
            batch_size=inputs.get("batch_size", 32),
        )
        return {
            "embeddings": vectors,
            "dimensions": len(vectors[0]) if vectors else 0,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": 0,
        }
