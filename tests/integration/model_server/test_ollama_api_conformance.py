"""The model server speaks the Ollama API: driven with the official `ollama` client, no mocks.

Every test runs against real models (SmolLM2-135M and all-MiniLM-L6-v2 on llama.cpp, or a real
Ollama named by OLLAMA_HOST with `smollm2:135m` and `all-minilm` pulled); the assertions hold for
both. The sentence-embedding model has its own tests in test_sentence_embeddings.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest
from pydantic import BaseModel, Field

MODEL = "smollm2:135m"
EMBED_MODEL = "all-minilm"
GREEDY = {"temperature": 0, "seed": 7}

pytestmark = pytest.mark.timeout(120)


class City(BaseModel):
    name: str
    country: str
    population_millions: float = Field(ge=0)
    landmarks: list[str]


def _norm(vector) -> float:
    return math.sqrt(sum(v * v for v in vector))


def _cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (_norm(a) * _norm(b))


@pytest.fixture
def client(ollama_host: str) -> Iterator[ollama.Client]:
    """The official synchronous client, closed after the test (its connections with it)."""
    with ollama.Client(host=ollama_host) as client:
        yield client


# -- metadata endpoints -----------------------------------------------------------------------


def test_version_and_root(ollama_host: str) -> None:
    version = httpx.get(f"{ollama_host}/api/version")
    assert version.status_code == 200
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version.json()["version"])
    root = httpx.get(ollama_host)
    assert (root.status_code, root.text) == (200, "Ollama is running")


def test_tags_lists_the_models(client: ollama.Client) -> None:
    listed = {m.model: m for m in client.list().models}
    assert {MODEL, f"{EMBED_MODEL}:latest"} <= set(listed)
    chat, embed = listed[MODEL], listed[f"{EMBED_MODEL}:latest"]
    assert (chat.details.format, chat.details.family) == ("gguf", "llama")
    assert (embed.details.format, embed.details.family) == ("gguf", "bert")
    assert chat.size > 50_000_000 and embed.size > 20_000_000
    assert re.fullmatch(r"[0-9a-f]{64}", chat.digest) and re.fullmatch(
        r"[0-9a-f]{64}", embed.digest
    )
    assert chat.modified_at is not None and embed.modified_at is not None


def test_copy_serves_the_model_under_a_second_name_until_deleted(client: ollama.Client) -> None:
    """`ollama cp` and `ollama rm` through the official client: the copy is listed, shown and
    chats like its source; removed, it is gone; the server's own models cannot be removed."""
    copy = "kd-conformance-copy:v1"
    client.copy(MODEL, copy)
    try:
        listed = {m.model: m for m in client.list().models}
        assert listed[copy].size == listed[MODEL].size
        assert listed[copy].digest == listed[MODEL].digest
        assert client.show(copy).capabilities == ["completion"]
        messages = [{"role": "user", "content": "Say hi."}]
        options = {**GREEDY, "num_predict": 8}
        by_copy = client.chat(model=copy, messages=messages, options=options)
        by_source = client.chat(model=MODEL, messages=messages, options=options)
        assert by_copy.model == copy
        assert by_copy.message.content == by_source.message.content
    finally:
        client.delete(copy)
    assert copy not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as gone:
        client.show(copy)
    assert gone.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as unknown:
        client.copy("no-such-model:1b", "anything:v1")
    assert unknown.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as own:
        client.delete(MODEL)
    assert own.value.status_code == 400
    assert MODEL in {m.model for m in client.list().models}


def test_show_describes_the_model(client: ollama.Client) -> None:
    shown = client.show(MODEL)
    assert shown.details.family == "llama"
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.embedding_length"] == 576
    assert "completion" in shown.capabilities
    assert "<|im_start|>" in shown.template


def test_show_describes_the_embedding_model(client: ollama.Client) -> None:
    shown = client.show(EMBED_MODEL)
    assert shown.details.family == "bert"
    assert shown.modelinfo["general.architecture"] == "bert"
    assert shown.modelinfo["bert.embedding_length"] == 384
    assert shown.modelinfo["bert.block_count"] == 6
    assert shown.capabilities == ["embedding"]


# -- chat -------------------------------------------------------------------------------------


def test_chat_unstreamed_reports_counts_and_durations(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Name one colour of the rainbow."}]
    reply = client.chat(MODEL, messages=messages, options={**GREEDY, "num_predict": 48})
    assert reply.model == MODEL
    assert reply.done is True
    assert reply.done_reason in ("stop", "length")
    assert reply.message.role == "assistant"
    assert reply.message.content.strip()
    assert reply.prompt_eval_count > 5  # the rendered chat template plus the question
    assert 0 < reply.eval_count <= 48
    assert reply.total_duration >= reply.eval_duration > 0
    assert reply.prompt_eval_duration > 0
    assert reply.load_duration >= 0
    # greedy decoding is deterministic
    again = client.chat(MODEL, messages=messages, options={**GREEDY, "num_predict": 48})
    assert again.message.content == reply.message.content


def test_chat_num_predict_stops_with_length(client: ollama.Client) -> None:
    reply = client.chat(
        MODEL,
        messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        options={**GREEDY, "num_predict": 3},
    )
    assert (reply.done_reason, reply.eval_count) == ("length", 3)


def test_chat_streamed_matches_unstreamed(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Say hello to Ada in one short sentence."}]
    options = {**GREEDY, "num_predict": 40}
    chunks = list(client.chat(MODEL, messages=messages, options=options, stream=True))
    *parts, last = chunks
    assert len(parts) >= 2
    assert all(c.done is False and c.message.role == "assistant" for c in parts)
    assert last.done is True
    assert last.done_reason in ("stop", "length")
    assert last.message.content == ""
    assert last.eval_count >= len([p for p in parts if p.message.content])
    assert last.prompt_eval_count > 5
    streamed = "".join(p.message.content for p in parts)
    whole = client.chat(MODEL, messages=messages, options=options)
    assert streamed == whole.message.content
    assert last.eval_count == whole.eval_count


def test_chat_streams_by_default_on_the_wire(ollama_host: str) -> None:
    """Ollama's default is streaming: a body without "stream" gets NDJSON lines."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "options": {**GREEDY, "num_predict": 5},
    }
    response = httpx.post(f"{ollama_host}/api/chat", json=body, timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) >= 2
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert lines[-1]["eval_count"] <= 5


def _from_the_same_cache(client: ollama.Client) -> None:
    """Leave the server's prompt cache holding an unrelated prompt. The server, like Ollama,
    evaluates only the part of a prompt past what its cache already holds, and a prompt
    evaluated in other batch sizes gives slightly different logits: an exact repeat is only
    promised from the same cache state, whatever the tests before left there."""
    client.generate(MODEL, prompt="Count to three.", options={**GREEDY, "num_predict": 1})


def test_chat_with_the_same_seed_repeats_at_temperature(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Invent a name for a cat."}]
    options = {"temperature": 0.9, "seed": 1234, "num_predict": 24}
    _from_the_same_cache(client)
    first = client.chat(MODEL, messages=messages, options=options).message.content
    _from_the_same_cache(client)
    second = client.chat(MODEL, messages=messages, options=options).message.content
    assert first == second


def test_chat_with_no_messages_loads_the_model(client: ollama.Client) -> None:
    reply = client.chat(MODEL, messages=[], keep_alive="5m")
    assert (reply.done, reply.done_reason, reply.message.content) == (True, "load", "")


# -- generate ---------------------------------------------------------------------------------


async def test_generate_unstreamed_and_streamed(ollama_host: str) -> None:
    client = ollama.AsyncClient(host=ollama_host)
    same_cache = ollama.Client(host=ollama_host)
    try:
        options = {**GREEDY, "num_predict": 30}
        await asyncio.to_thread(_from_the_same_cache, same_cache)
        whole = await client.generate(
            MODEL, prompt="Why is the sky blue?", options=options, keep_alive="5m"
        )
        assert whole.done is True
        assert whole.done_reason in ("stop", "length")
        assert whole.response.strip()
        assert whole.prompt_eval_count > 5 and 0 < whole.eval_count <= 30
        assert whole.context and all(isinstance(t, int) for t in whole.context)

        await asyncio.to_thread(_from_the_same_cache, same_cache)
        parts = [
            p
            async for p in await client.generate(
                MODEL, prompt="Why is the sky blue?", options=options, stream=True
            )
        ]
        assert parts[-1].done is True and parts[-1].response == ""
        assert all(p.done is False for p in parts[:-1])
        assert "".join(p.response for p in parts) == whole.response
        assert parts[-1].eval_count == whole.eval_count
    finally:
        await client.close()
        same_cache.close()


def test_generate_honours_stop_sequences(client: ollama.Client) -> None:
    free = client.generate(
        MODEL, prompt="1, 2, 3, 4,", raw=True, options={**GREEDY, "num_predict": 12}
    )
    assert "7" in free.response  # the model counts on...
    stopped = client.generate(
        MODEL, prompt="1, 2, 3, 4,", raw=True, options={**GREEDY, "num_predict": 12, "stop": ["7"]}
    )
    assert stopped.done_reason == "stop"
    assert "7" not in stopped.response
    assert free.response.startswith(stopped.response)


# -- structured output ------------------------------------------------------------------------


async def test_chat_with_a_json_schema_returns_valid_instances(ollama_host: str) -> None:
    client = ollama.AsyncClient(host=ollama_host)
    try:
        reply = await client.chat(
            MODEL,
            messages=[
                {
                    "role": "user",
                    "content": "Describe Paris, France as JSON: "
                    "name, country, population_millions, landmarks.",
                }
            ],
            format=City.model_json_schema(),
            options={**GREEDY, "num_predict": 300},
        )
        assert reply.done_reason == "stop"
        city = City.model_validate_json(reply.message.content)
        assert city.name and city.country
    finally:
        await client.close()


def test_generate_with_a_json_schema_returns_valid_instances(client: ollama.Client) -> None:
    reply = client.generate(
        MODEL,
        prompt="Give the capital of Japan as JSON with "
        "name, country, population_millions, landmarks.",
        format=City.model_json_schema(),
        options={**GREEDY, "num_predict": 300},
    )
    assert reply.done_reason == "stop"
    City.model_validate_json(reply.response)


def test_format_json_parses(client: ollama.Client) -> None:
    reply = client.chat(
        MODEL,
        messages=[{"role": "user", "content": "List three fruits. Respond using JSON."}],
        format="json",
        options={**GREEDY, "num_predict": 200},
    )
    assert reply.done_reason == "stop"
    assert isinstance(json.loads(reply.message.content), dict)


# -- embeddings -------------------------------------------------------------------------------


def test_the_chat_model_embeds_too(client: ollama.Client) -> None:
    """Ollama answers /api/embed for any model, a chat model included (mean-pooled)."""
    texts = ["Why is the sky blue?", "Why is the grass green?", "Python virtual environments"]
    batch = client.embed(MODEL, input=texts)
    assert batch.model == MODEL
    assert len(batch.embeddings) == len(texts)
    assert all(len(vector) == 576 for vector in batch.embeddings)
    assert all(abs(_norm(vector) - 1.0) < 1e-3 for vector in batch.embeddings)  # Ollama normalises
    assert batch.prompt_eval_count >= len(texts)
    assert len({tuple(v) for v in batch.embeddings}) == 3

    single = client.embed(MODEL, input=texts[0])
    assert len(single.embeddings) == 1 and len(single.embeddings[0]) == 576
    assert _cosine(single.embeddings[0], batch.embeddings[0]) > 0.999


async def test_async_embed_of_many_inputs(ollama_host: str) -> None:
    client = ollama.AsyncClient(host=ollama_host)
    try:
        texts = [f"note number {i} about topic {i % 7}" for i in range(40)]
        result = await client.embed(MODEL, input=texts)
        assert len(result.embeddings) == 40
        assert {len(v) for v in result.embeddings} == {576}
    finally:
        await client.close()


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["chat", "generate", "embed", "show"])
def test_unknown_model_is_a_404(client: ollama.Client, call: str) -> None:
    calls = {
        "chat": lambda: client.chat(
            "no-such-model:1b", messages=[{"role": "user", "content": "hi"}]
        ),
        "generate": lambda: client.generate("no-such-model:1b", prompt="hi"),
        "embed": lambda: client.embed("no-such-model:1b", input=["hi"]),
        "show": lambda: client.show("no-such-model:1b"),
    }
    with pytest.raises(ollama.ResponseError) as caught:
        calls[call]()
    assert caught.value.status_code == 404
    assert "no-such-model:1b" in caught.value.error and "not found" in caught.value.error


def test_unknown_model_error_body_is_ollamas(ollama_host: str) -> None:
    response = httpx.post(
        f"{ollama_host}/api/chat",
        json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 404
    assert response.json() in (
        {"error": 'model "x" not found, try pulling it first'},
        {"error": "model 'x' not found"},  # what a real Ollama says for some endpoints
    )


# -- concurrency and cancellation -------------------------------------------------------------


async def test_four_concurrent_chats_all_finish(ollama_host: str) -> None:
    client = ollama.AsyncClient(host=ollama_host)
    try:
        questions = ["What is 2+2?", "Name a planet.", "Name a fruit.", "Say hi."]
        replies = await asyncio.gather(
            *(
                client.chat(
                    MODEL,
                    messages=[{"role": "user", "content": q}],
                    options={**GREEDY, "num_predict": 16},
                )
                for q in questions
            )
        )
        assert [r.done for r in replies] == [True] * 4
        assert all(r.message.content.strip() and 0 < r.eval_count <= 16 for r in replies)
    finally:
        await client.close()


async def test_a_cancelled_stream_frees_the_model_for_the_next_request(ollama_host: str) -> None:
    """The server generates one reply at a time: a request sent while a long story streams waits
    for it, and closing the story's response mid-stream lets that request through long before the
    story would have ended (about 30 s)."""
    sent = asyncio.Event()

    async def on_request(request: httpx.Request) -> None:
        async def trace(event: str, info: dict[str, Any]) -> None:
            if event == "http11.send_request_body.complete":  # httpcore's trace extension
                sent.set()

        request.extensions["trace"] = trace

    long_client = ollama.AsyncClient(host=ollama_host)
    next_client = ollama.AsyncClient(host=ollama_host, event_hooks={"request": [on_request]})
    try:
        story = await long_client.chat(
            MODEL,
            messages=[
                {
                    "role": "user",
                    "content": "Write a very long story about a dragon and a lighthouse.",
                }
            ],
            options={"temperature": 0.8, "seed": 3, "num_predict": 1500},  # ~30 s if left running
            stream=True,
        )
        first = await anext(story)
        assert first.done is False

        tokens: list[str] = []

        async def queued_request() -> str:
            stream = await next_client.chat(
                MODEL,
                messages=[{"role": "user", "content": "Say yes."}],
                options={**GREEDY, "num_predict": 4},
                stream=True,
            )
            async for part in stream:
                tokens.append(part.message.content)
            return "".join(tokens)

        waiting = asyncio.create_task(queued_request())
        await asyncio.wait_for(sent.wait(), timeout=10)  # the request is on the wire...
        assert (await anext(story)).done is False  # ...while the story goes on streaming
        assert tokens == []  # and it waits behind the story

        await story.aclose()  # closes the HTTP response mid-stream
        text = await asyncio.wait_for(waiting, timeout=10)  # not the story's ~30 s
        assert text.strip()
    finally:
        await long_client.close()
        await next_client.close()
