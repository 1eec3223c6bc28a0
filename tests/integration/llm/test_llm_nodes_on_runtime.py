"""The LLM nodes on a real AsyncLocalRuntime against a real model behind the Ollama API."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from kailash.runtime.async_local import AsyncLocalRuntime
from kailash.workflow.builder import WorkflowBuilder
from pydantic import BaseModel, Field

import nodes.llm  # noqa: F401  (registers the nodes)
from base.errors import ModelUnavailable
from base.settings import Settings
from services import llm

MODEL = "smollm2:135m"
EMBED_MODEL = Settings.model_fields["embed_model"].default  # all-minilm
GREEDY = {"temperature": 0, "seed": 11}

pytestmark = pytest.mark.timeout(120)


def _workflow(node: str, node_id: str):
    builder = WorkflowBuilder()
    builder.add_node(node, node_id, {})
    return builder.build()


CHAT_WF = _workflow("LLMChatNode", "chat")
STRUCTURED_WF = _workflow("LLMStructuredNode", "extract")
EMBED_WF = _workflow("LLMEmbedNode", "embed")


class Planet(BaseModel):
    name: str
    moons: int = Field(ge=0)
    has_rings: bool


@pytest.fixture
def config(ollama_host: str) -> llm.LLMConfig:
    return llm.LLMConfig(
        host=ollama_host, timeout_seconds=60, connect_timeout_seconds=3, max_retries=2
    )


@pytest.fixture
def dead_config() -> llm.LLMConfig:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return llm.LLMConfig(
        host=f"http://127.0.0.1:{port}", timeout_seconds=5, connect_timeout_seconds=1, max_retries=2
    )


@pytest.fixture
async def runtime():
    async with AsyncLocalRuntime(max_concurrent_nodes=100) as rt:
        yield rt
    await llm.aclose_clients()


def _domain_error(exc: BaseException | None) -> BaseException | None:
    """The ModelUnavailable under the SDK's WorkflowExecutionError <- NodeExecutionError."""
    while exc is not None and not isinstance(exc, ModelUnavailable):
        exc = exc.__cause__
    return exc


# -- chat -------------------------------------------------------------------------------------


async def test_chat_node_returns_text_and_token_counts(runtime, config) -> None:
    inputs = {
        "messages": [{"role": "user", "content": "Name a large ocean."}],
        "model": MODEL,
        "config": config,
        "options": {**GREEDY, "num_predict": 24},
    }
    results, _ = await runtime.execute_workflow_async(CHAT_WF, inputs={"chat": inputs})
    out = results["chat"]
    assert set(out) == {"text", "model", "done_reason", "prompt_tokens", "completion_tokens"}
    assert out["model"] == MODEL
    assert out["text"].strip()
    assert out["done_reason"] in ("stop", "length")
    assert out["prompt_tokens"] > 5
    assert 0 < out["completion_tokens"] <= 24
    json.dumps(out)


@pytest.mark.parametrize("callback_kind", ["async", "sync"])
async def test_streamed_chat_node_hands_tokens_to_the_callback_in_order(
    runtime, config, callback_kind
) -> None:
    tokens: list[str] = []

    async def on_token_async(token: str) -> None:
        tokens.append(token)

    on_token = on_token_async if callback_kind == "async" else tokens.append
    messages = [{"role": "user", "content": "Tell me one fact about the Moon."}]
    options = {**GREEDY, "num_predict": 40}
    streamed, _ = await runtime.execute_workflow_async(
        CHAT_WF,
        inputs={
            "chat": {
                "messages": messages,
                "model": MODEL,
                "config": config,
                "options": options,
                "on_token": on_token,
            }
        },
    )
    unstreamed, _ = await runtime.execute_workflow_async(
        CHAT_WF,
        inputs={
            "chat": {"messages": messages, "model": MODEL, "config": config, "options": options}
        },
    )
    assert len(tokens) >= 3
    assert "".join(tokens) == streamed["chat"]["text"]
    assert streamed["chat"]["text"] == unstreamed["chat"]["text"]  # greedy: same answer either way
    assert streamed["chat"]["completion_tokens"] == unstreamed["chat"]["completion_tokens"]
    assert streamed["chat"]["prompt_tokens"] == unstreamed["chat"]["prompt_tokens"]


async def test_template_syntax_in_user_text_reaches_the_model_verbatim(runtime, config) -> None:
    """Kailash would expand ${model} to the model name; the nodes must not let it."""
    literal = "Repeat this text: ${model} costs ${config}."
    expanded = f"Repeat this text: {MODEL} costs ${{config}}."
    options = {**GREEDY, "num_predict": 24}
    results, _ = await runtime.execute_workflow_async(
        CHAT_WF,
        inputs={
            "chat": {
                "messages": [{"role": "user", "content": literal}],
                "model": MODEL,
                "config": config,
                "options": options,
            }
        },
    )
    direct_literal = await llm.chat(
        [{"role": "user", "content": literal}], model=MODEL, config=config, options=options
    )
    direct_expanded = await llm.chat(
        [{"role": "user", "content": expanded}], model=MODEL, config=config, options=options
    )
    assert (
        direct_literal.prompt_tokens != direct_expanded.prompt_tokens
    )  # the check can tell them apart
    assert results["chat"]["prompt_tokens"] == direct_literal.prompt_tokens
    assert results["chat"]["text"] == direct_literal.text

    vectors, _ = await runtime.execute_workflow_async(
        EMBED_WF, inputs={"embed": {"texts": ["${model}"], "model": MODEL, "config": config}}
    )
    [as_written] = await llm.embed(["${model}"], model=MODEL, config=config)
    [as_expanded] = await llm.embed([MODEL], model=MODEL, config=config)
    assert vectors["embed"]["embeddings"][0] == pytest.approx(as_written, abs=1e-5)
    assert vectors["embed"]["embeddings"][0] != pytest.approx(as_expanded, abs=1e-3)


# -- structured output ------------------------------------------------------------------------


async def test_structured_node_returns_a_validated_json_safe_value(runtime, config) -> None:
    inputs = {
        "messages": [
            {
                "role": "user",
                "content": "Saturn has 146 moons and rings. "
                "Give its name, moons and has_rings as JSON.",
            }
        ],
        "schema": Planet,
        "model": MODEL,
        "config": config,
        "options": {**GREEDY, "num_predict": 120},
    }
    results, _ = await runtime.execute_workflow_async(STRUCTURED_WF, inputs={"extract": inputs})
    out = results["extract"]
    planet = Planet.model_validate(out["value"])
    assert set(out["value"]) == {"name", "moons", "has_rings"}
    assert isinstance(planet.moons, int) and isinstance(planet.has_rings, bool)
    assert out["prompt_tokens"] > 10 and out["completion_tokens"] > 0
    json.dumps(out)


# -- embeddings -------------------------------------------------------------------------------


async def test_embed_node_batches_and_keeps_order(runtime, config) -> None:
    texts = ["red apples", "green grass", "blue sky", "yellow sun", "white snow"]
    results, _ = await runtime.execute_workflow_async(
        EMBED_WF,
        inputs={"embed": {"texts": texts, "model": EMBED_MODEL, "config": config, "batch_size": 2}},
    )
    out = results["embed"]
    assert out["dimensions"] == 384
    assert len(out["embeddings"]) == len(texts)
    assert all(len(v) == 384 for v in out["embeddings"])
    assert out["prompt_tokens"] == 4 * len(texts)  # [CLS] colour thing [SEP]
    singles = [(await llm.embed([t], model=EMBED_MODEL, config=config))[0] for t in texts]
    assert out["embeddings"] == singles


# -- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "workflow,node_id,extra",
    [
        (CHAT_WF, "chat", {"messages": [{"role": "user", "content": "hi"}]}),
        (EMBED_WF, "embed", {"texts": ["hi"]}),
        (
            STRUCTURED_WF,
            "extract",
            {"messages": [{"role": "user", "content": "hi"}], "schema": Planet},
        ),
    ],
)
async def test_unknown_model_is_model_unavailable(
    runtime, config, workflow, node_id, extra
) -> None:
    with pytest.raises(Exception) as caught:
        await runtime.execute_workflow_async(
            workflow, inputs={node_id: {**extra, "model": "no-such-model:1b", "config": config}}
        )
    cause = _domain_error(caught.value)
    assert isinstance(cause, ModelUnavailable)
    assert cause.code == "MODEL_UNAVAILABLE"
    assert "no-such-model:1b" in cause.message


@pytest.mark.parametrize("stream", [False, True])
async def test_dead_server_is_model_unavailable_without_waiting_for_timeouts(
    runtime, dead_config, stream
) -> None:
    inputs = {
        "messages": [{"role": "user", "content": "hi"}],
        "model": MODEL,
        "config": dead_config,
    }
    if stream:
        inputs["on_token"] = lambda token: None

    async def call() -> BaseException:
        with pytest.raises(Exception) as caught:
            await runtime.execute_workflow_async(CHAT_WF, inputs={"chat": inputs})
        return caught.value

    # Refused connections fail at once: the two retries wait only their backoffs (0.25 s and
    # 0.5 s), never the 5 s read timeout; the bound catches a call that waits for it.
    cause = _domain_error(await asyncio.wait_for(call(), dead_config.timeout_seconds))
    assert isinstance(cause, ModelUnavailable) and cause.code == "MODEL_UNAVAILABLE"
    assert "unreachable" in cause.message


async def test_reachability_and_model_list(config, dead_config) -> None:
    try:
        assert await llm.server_reachable(config=config) is True
        assert MODEL in await llm.list_models(config=config)
        reachable = llm.server_reachable(config=dead_config)
        assert await asyncio.wait_for(reachable, dead_config.timeout_seconds) is False
    finally:
        await llm.aclose_clients()


# -- cancellation -----------------------------------------------------------------------------


async def test_cancelling_a_streaming_node_stops_generation_and_frees_the_model(
    runtime, config
) -> None:
    arrivals: list[str] = []
    three_tokens = asyncio.Event()

    def on_token(token: str) -> None:
        arrivals.append(token)
        if len(arrivals) == 3:
            three_tokens.set()

    inputs = {
        "messages": [
            {
                "role": "user",
                "content": "Write a very long story about a dragon who keeps a lighthouse.",
            }
        ],
        "model": MODEL,
        "config": config,
        "options": {"temperature": 0.8, "seed": 5, "num_predict": 1500},  # ~30 s if left running
        "on_token": on_token,
    }
    task = asyncio.create_task(runtime.execute_workflow_async(CHAT_WF, inputs={"chat": inputs}))
    await asyncio.wait_for(three_tokens.wait(), timeout=30)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    received = len(arrivals)

    # The server dropped the cancelled generation: the next request is answered long before the
    # story would have ended (about 30 s), which it would have to wait for otherwise.
    reply = await asyncio.wait_for(
        llm.chat_stream(
            [{"role": "user", "content": "Say yes."}],
            model=MODEL,
            config=config,
            on_token=lambda token: None,
            options={**GREEDY, "num_predict": 4},
        ),
        timeout=10,
    )
    assert reply.text.strip()
    assert len(arrivals) == received  # and no token reached the callback after the cancel
