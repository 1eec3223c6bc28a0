"""Pure logic of services.llm: retry policy, usage accounting, the structured-output loop.

No server here: the operations are small fakes (the integration tests use the real model).
"""

from __future__ import annotations

import asyncio

import httpx
import ollama
import pytest
from pydantic import BaseModel

from base.errors import Invalid, ModelUnavailable
from base.settings import Settings
from services import llm

CONFIG = llm.LLMConfig(
    host="http://127.0.0.1:9", max_retries=2, backoff_base_seconds=0.25, backoff_max_seconds=4.0
)


class Recorder:
    """An operation that fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.sleeps: list[float] = []

    async def op(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1:9/api/chat")


# -- classify and backoff ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc,verdict",
    [
        (ollama.ResponseError("model not found", 404), "unavailable"),
        (ollama.ResponseError("boom", 500), "retry"),
        (ollama.ResponseError("overloaded", 503), "retry"),
        (ollama.ResponseError("error line mid-stream"), "retry"),
        (ollama.ResponseError("bad format", 400), "fatal"),
        (ConnectionError("refused"), "retry"),
        (httpx.ConnectError("refused", request=_request()), "retry"),
        (httpx.ConnectTimeout("slow connect", request=_request()), "retry"),
        (httpx.RemoteProtocolError("peer closed", request=_request()), "retry"),
        (httpx.ReadTimeout("slow answer", request=_request()), "unavailable"),
        (TimeoutError(), "unavailable"),
        (ValueError("a bug"), "fatal"),
    ],
)
def test_classify(exc: BaseException, verdict: str) -> None:
    assert llm.classify(exc) == verdict


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [llm.backoff_delay(i, base=0.25, cap=1.5) for i in range(5)]
    assert delays == [0.25, 0.5, 1.0, 1.5, 1.5]


# -- call_with_retries ------------------------------------------------------------------------


async def test_connection_errors_are_retried_with_backoff() -> None:
    rec = Recorder(ConnectionError("refused"), ollama.ResponseError("boom", 502))
    assert await llm.call_with_retries(rec.op, config=CONFIG, model="m", sleep=rec.sleep) == "ok"
    assert (rec.calls, rec.sleeps) == (3, [0.25, 0.5])


async def test_retries_are_bounded_then_model_unavailable() -> None:
    rec = Recorder(*(ConnectionError("refused") for _ in range(10)))
    with pytest.raises(ModelUnavailable) as caught:
        await llm.call_with_retries(rec.op, config=CONFIG, model="m", sleep=rec.sleep)
    assert (rec.calls, rec.sleeps) == (3, [0.25, 0.5])
    assert caught.value.code == "MODEL_UNAVAILABLE"
    assert caught.value.message == "The language model server at http://127.0.0.1:9 is unreachable."


async def test_zero_retries_means_one_attempt() -> None:
    rec = Recorder(ConnectionError("refused"))
    config = llm.LLMConfig(host="http://h", max_retries=0)
    with pytest.raises(ModelUnavailable):
        await llm.call_with_retries(rec.op, config=config, model="m", sleep=rec.sleep)
    assert (rec.calls, rec.sleeps) == (1, [])


async def test_missing_model_is_not_retried() -> None:
    rec = Recorder(ollama.ResponseError('model "m" not found, try pulling it first', 404))
    with pytest.raises(ModelUnavailable) as caught:
        await llm.call_with_retries(rec.op, config=CONFIG, model="m", sleep=rec.sleep)
    assert (rec.calls, rec.sleeps) == (1, [])
    assert caught.value.message == "The language model 'm' is not available on http://127.0.0.1:9."


async def test_read_timeout_is_not_retried() -> None:
    rec = Recorder(httpx.ReadTimeout("slow", request=_request()))
    with pytest.raises(ModelUnavailable) as caught:
        await llm.call_with_retries(rec.op, config=CONFIG, model="m", sleep=rec.sleep)
    assert (rec.calls, rec.sleeps) == (1, [])
    assert "did not answer in time" in caught.value.message


async def test_a_refused_request_is_a_bug_not_an_outage() -> None:
    rec = Recorder(ollama.ResponseError("invalid format", 400))
    with pytest.raises(llm.LLMError):
        await llm.call_with_retries(rec.op, config=CONFIG, model="m", sleep=rec.sleep)
    assert rec.calls == 1


async def test_other_exceptions_propagate_unchanged() -> None:
    rec = Recorder(KeyError("x"))
    with pytest.raises(KeyError):
        await llm.call_with_retries(rec.op, config=CONFIG, model="m", sleep=rec.sleep)
    assert rec.calls == 1


async def test_no_retry_once_a_stream_delivered_tokens() -> None:
    rec = Recorder(httpx.RemoteProtocolError("peer closed", request=_request()))
    with pytest.raises(ModelUnavailable):
        await llm.call_with_retries(
            rec.op, config=CONFIG, model="m", may_retry=lambda: False, sleep=rec.sleep
        )
    assert (rec.calls, rec.sleeps) == (1, [])


async def test_cancellation_is_not_swallowed() -> None:
    async def op() -> str:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await llm.call_with_retries(op, config=CONFIG, model="m")


# -- usage accounting -------------------------------------------------------------------------


def test_usage_adds_up() -> None:
    total = llm.Usage(10, 3) + llm.Usage(5, 2) + llm.Usage()
    assert total == llm.Usage(prompt_tokens=15, completion_tokens=5)
    assert total.total_tokens == 20


def test_chat_result_takes_counts_from_the_final_chunk() -> None:
    final = ollama.ChatResponse(
        model="m",
        done=True,
        done_reason="stop",
        prompt_eval_count=31,
        eval_count=12,
        message=ollama.Message(role="assistant", content=""),
    )
    result = llm._result("m", "Hello there.", final)
    assert result.as_dict() == {
        "text": "Hello there.",
        "model": "m",
        "done_reason": "stop",
        "prompt_tokens": 31,
        "completion_tokens": 12,
    }
    assert result.usage == llm.Usage(31, 12)


def test_missing_counts_are_zero() -> None:
    result = llm._result("m", "", None)
    assert (result.prompt_tokens, result.completion_tokens, result.done_reason) == (0, 0, None)


@pytest.mark.parametrize(
    ("configured", "listed", "same"),
    [
        ("all-minilm", "all-minilm:latest", True),
        ("All-MiniLM", "all-minilm:latest", True),
        ("smollm2:135m", "smollm2:135m", True),
        ("smollm2", "smollm2:135m", False),
        ("library/all-minilm", "library/all-minilm:latest", True),
        ("all-minilm:33m", "all-minilm:latest", False),
    ],
)
def test_model_names_compare_as_ollama_resolves_them(
    configured: str, listed: str, same: bool
) -> None:
    assert llm.same_model(configured, listed) is same


def test_embedding_model_defaults_to_all_minilm_and_keeps_what_is_set() -> None:
    defaults = Settings.model_fields
    assert (defaults["embed_model"].default, defaults["chat_model"].default) == (
        "all-minilm",
        "smollm2:135m",
    )
    production = Settings(
        app_env="production", jwt_secret="x" * 40, embed_model="nomic-embed-text:v1.5"
    )
    assert production.embed_model == "nomic-embed-text:v1.5"


def test_config_from_settings() -> None:
    settings = Settings(
        ollama_host="http://llm:11434",
        llm_timeout_seconds=12.5,
        llm_connect_timeout_seconds=0.5,
        llm_max_retries=4,
    )
    config = llm.LLMConfig.from_settings(settings)
    assert (
        config.host,
        config.timeout_seconds,
        config.connect_timeout_seconds,
        config.max_retries,
    ) == (
        "http://llm:11434",
        12.5,
        0.5,
        4,
    )


# -- the structured-output loop ---------------------------------------------------------------


class Answer(BaseModel):
    city: str
    year: int


class Script:
    """An `ask` that replies from a script and records every conversation it was shown."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict]] = []

    async def __call__(self, conversation) -> llm.ChatResult:
        self.seen.append([dict(m) for m in conversation])
        return llm.ChatResult(
            self.replies.pop(0), "m", "stop", prompt_tokens=20, completion_tokens=7
        )


async def test_valid_first_reply_is_returned_with_its_usage() -> None:
    ask = Script('{"city": "Paris", "year": 1889}')
    value, usage = await llm.structured_with(ask, [{"role": "user", "content": "q"}], Answer)
    assert value == Answer(city="Paris", year=1889)
    assert usage == llm.Usage(20, 7)
    assert len(ask.seen) == 1


async def test_invalid_reply_is_fed_back_and_retried() -> None:
    ask = Script('{"city": "Paris", "year": "soon"}', '{"city": "Paris", "year": 1889}')
    question = [{"role": "user", "content": "When was the tower built?"}]
    value, usage = await llm.structured_with(ask, question, Answer)
    assert value.year == 1889
    assert usage == llm.Usage(40, 14)  # both attempts count
    retry = ask.seen[1]
    assert retry[:2] == [
        question[0],
        {"role": "assistant", "content": '{"city": "Paris", "year": "soon"}'},
    ]
    assert retry[2]["role"] == "user"
    assert "year: Input should be a valid integer" in retry[2]["content"]


async def test_broken_json_is_fed_back_too() -> None:
    ask = Script('{"city": "Par', '{"city": "Rome", "year": 1}')
    value, _ = await llm.structured_with(ask, [{"role": "user", "content": "q"}], Answer)
    assert value.city == "Rome"
    assert "Invalid JSON" in ask.seen[1][2]["content"]


async def test_gives_up_after_max_attempts_with_a_domain_error() -> None:
    ask = Script("{}", "{}", "{}", "{}")
    with pytest.raises(llm.InvalidModelOutput) as caught:
        await llm.structured_with(ask, [{"role": "user", "content": "q"}], Answer, max_attempts=3)
    assert len(ask.seen) == 3
    assert isinstance(caught.value, Invalid)
    assert caught.value.code == "INVALID"
    assert caught.value.message.startswith("The model gave no valid Answer after 3 attempts")
    assert "city: Field required" in caught.value.message


# -- the shared client ------------------------------------------------------------------------


async def test_one_client_per_loop_and_host() -> None:
    try:
        first = llm.get_client(CONFIG)
        assert llm.get_client(CONFIG) is first
        other = llm.get_client(llm.LLMConfig(host="http://other:11434"))
        assert other is not first
    finally:
        await llm.aclose_clients()
    assert llm.get_client(CONFIG) is not first  # closed clients are replaced
    await llm.aclose_clients()
