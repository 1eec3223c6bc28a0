"""LLM calls over the Ollama HTTP API, as plain async functions.

All calls share one `ollama.AsyncClient` per event loop and host (httpx pools are bound to the loop
that made them); `aclose_clients()` closes them at shutdown. Configuration comes in explicitly as an
`LLMConfig` (see `LLMConfig.from_settings`).

Failure policy, the same for every call:
- connection errors and 5xx replies are retried `max_retries` times with exponential backoff;
- a 404 (model not pulled) or a server still unreachable after the retries raises
  `ModelUnavailable`;
- a read timeout raises `ModelUnavailable` at once (retrying would double a wait that already
  failed); an unstreamed call also has an overall deadline of `timeout_seconds`;
- a stream is retried only before its first token reached the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx
import ollama
from pydantic import BaseModel, ValidationError

from base.errors import Invalid, ModelUnavailable
from base.metrics import LlmKind, record_llm_call, record_llm_tokens

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Message = Mapping[str, Any]
OnToken = Callable[[str], Awaitable[None] | None]


class LLMError(RuntimeError):
    """The server refused the request itself (4xx other than 404): a bug on our side."""


class InvalidModelOutput(Invalid):
    """The model kept answering with output that does not validate against the schema."""


@dataclass(frozen=True)
class LLMConfig:
    host: str
    timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 3.0
    max_retries: int = 2
    backoff_base_seconds: float = 0.25
    backoff_max_seconds: float = 4.0

    @classmethod
    def from_settings(cls, settings: Any) -> LLMConfig:
        return cls(
            host=settings.ollama_host,
            timeout_seconds=settings.llm_timeout_seconds,
            connect_timeout_seconds=settings.llm_connect_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    text: str
    model: str
    done_reason: str | None
    prompt_tokens: int
    completion_tokens: int

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the shared client ------------------------------------------------------------------------

_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, float, float], ollama.AsyncClient]
] = weakref.WeakKeyDictionary()


def get_client(config: LLMConfig) -> ollama.AsyncClient:
    """This loop's client for `config.host`, made on first use."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (config.host, config.timeout_seconds, config.connect_timeout_seconds)
    client = per_loop.get(key)
    if client is None:
        timeout = httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds)
        client = per_loop[key] = ollama.AsyncClient(host=config.host, timeout=timeout)
    return client


async def aclose_clients() -> None:
    """Close the clients of the running loop (app shutdown, test teardown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()  # type: ignore[no-untyped-call]  # unannotated in ollama


# -- retry policy (pure) ----------------------------------------------------------------------

Verdict = Literal["retry", "unavailable", "fatal"]


def classify(exc: BaseException) -> Verdict:
    """What to do about a failed attempt."""
    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404:
            return "unavailable"
        if exc.status_code >= 500 or exc.status_code == -1:  # -1: an error line mid-stream
            return "retry"
        return "fatal"
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return "unavailable"
    if isinstance(exc, TimeoutError):  # our own overall deadline
        return "unavailable"
    if isinstance(exc, (ConnectionError, httpx.TransportError)):
        return "retry"  # refused, reset, DNS, connect timeout
    return "fatal"


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (0-based): base, 2*base, 4*base… capped."""
    return min(cap, base * 2.0**attempt)


async def call_with_retries(
    op: Callable[[], Awaitable[T]],
    *,
    config: LLMConfig,
    model: str,
    kind: LlmKind | None = None,
    may_retry: Callable[[], bool] = lambda: True,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """Run `op`, retrying per `classify`; ends in ModelUnavailable, LLMError or the error itself.

    A call of a `kind` is counted and timed once, retries included (kd_llm_*, ADR 0087)."""
    if kind is None:
        return await _with_retries(op, config=config, model=model, may_retry=may_retry, sleep=sleep)
    started = time.perf_counter()
    outcome = "error"
    try:
        result = await _with_retries(
            op, config=config, model=model, may_retry=may_retry, sleep=sleep
        )
        outcome = "ok"
        return result
    except ModelUnavailable:
        outcome = "unavailable"
        raise
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        record_llm_call(kind, outcome, time.perf_counter() - started)


async def _with_retries(
    op: Callable[[], Awaitable[T]],
    *,
    config: LLMConfig,
    model: str,
    may_retry: Callable[[], bool],
    sleep: Callable[[float], Awaitable[Any]],
) -> T:
    for attempt in range(config.max_retries + 1):
        try:
            return await op()
        except Exception as exc:
            verdict = classify(exc)
            if verdict == "retry" and attempt < config.max_retries and may_retry():
                delay = backoff_delay(
                    attempt, base=config.backoff_base_seconds, cap=config.backoff_max_seconds
                )
                logger.warning(
                    "llm call failed (%s), retry %d/%d in %.2fs",
                    type(exc).__name__,
                    attempt + 1,
                    config.max_retries,
                    delay,
                )
                await sleep(delay)
                continue
            if verdict in ("retry", "unavailable"):
                raise ModelUnavailable(_unavailable_message(exc, config, model)) from exc
            if isinstance(exc, ollama.ResponseError):
                raise LLMError(f"{config.host} refused the request: {exc}") from exc
            raise
    raise AssertionError("unreachable")  # the loop always returns or raises


def _unavailable_message(exc: BaseException, config: LLMConfig, model: str) -> str:
    if isinstance(exc, ollama.ResponseError) and exc.status_code == 404:
        return f"The language model {model!r} is not available on {config.host}."
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return f"The language model server at {config.host} did not answer in time."
    return f"The language model server at {config.host} is unreachable."


def _result(model: str, text: str, last: Any) -> ChatResult:
    return ChatResult(
        text=text,
        model=model,
        done_reason=getattr(last, "done_reason", None),
        prompt_tokens=getattr(last, "prompt_eval_count", None) or 0,
        completion_tokens=getattr(last, "eval_count", None) or 0,
    )


def _log_usage(kind: str, model: str, usage: Usage) -> None:
    record_llm_tokens(
        "embed" if kind == "embed" else "chat", usage.prompt_tokens, usage.completion_tokens
    )
    logger.debug(
        "llm %s model=%s prompt_tokens=%d completion_tokens=%d",
        kind,
        model,
        usage.prompt_tokens,
        usage.completion_tokens,
    )


# -- calls ------------------------------------------------------------------------------------


async def chat(
    messages: Sequence[Message],
    *,
    model: str,
    config: LLMConfig,
    options: Mapping[str, Any] | None = None,
    format: Literal["", "json"] | dict[str, Any] | None = None,
) -> ChatResult:
    """One unstreamed chat completion."""
    client = get_client(config)

    async def attempt() -> ChatResult:
        async with asyncio.timeout(config.timeout_seconds):
            reply = await client.chat(
                model=model, messages=list(messages), options=options, format=format, stream=False
            )
        return _result(model, reply.message.content or "", reply)

    result = await call_with_retries(attempt, config=config, model=model, kind="chat")
    _log_usage("chat", model, result.usage)
    return result


async def chat_stream(
    messages: Sequence[Message],
    *,
    model: str,
    config: LLMConfig,
    on_token: OnToken,
    options: Mapping[str, Any] | None = None,
) -> ChatResult:
    """A streamed chat completion; each token goes to `on_token` as it arrives.

    Cancelling the awaiting task closes the HTTP response, which stops the generation on the server.
    """
    client = get_client(config)
    delivered = False

    async def attempt() -> ChatResult:
        nonlocal delivered
        stream = await client.chat(
            model=model, messages=list(messages), options=options, stream=True
        )
        # ollama types the stream as an AsyncIterator; it is an async generator, and closing it
        # closes the HTTP response.
        assert isinstance(stream, AsyncGenerator)
        parts: list[str] = []
        last = None
        try:
            async for part in stream:
                piece = part.message.content or ""
                if piece:
                    delivered = True
                    parts.append(piece)
                    maybe = on_token(piece)
                    if inspect.isawaitable(maybe):
                        await maybe
                if part.done:
                    last = part
        finally:
            await stream.aclose()  # on cancel or error: close the response, free the model
        return _result(model, "".join(parts), last)

    result = await call_with_retries(
        attempt, config=config, model=model, kind="chat", may_retry=lambda: not delivered
    )
    _log_usage("chat_stream", model, result.usage)
    return result


def _errors_for_model(exc: ValidationError | ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


async def structured_with(
    ask: Callable[[list[Message]], Awaitable[ChatResult]],
    messages: Sequence[Message],
    schema: type[M],
    *,
    max_attempts: int = 3,
) -> tuple[M, Usage]:
    """The validate-and-retry loop of `structured`, over any `ask(messages) -> ChatResult`.

    An invalid reply is shown back to the model with the validation errors, and it is asked again.
    """
    conversation = list(messages)
    usage = Usage()
    problems = ""
    for _ in range(max_attempts):
        result = await ask(conversation)
        usage += result.usage
        try:
            return schema.model_validate_json(result.text), usage
        except (ValidationError, ValueError) as exc:
            problems = _errors_for_model(exc)
            conversation = [
                *messages,
                {"role": "assistant", "content": result.text},
                {
                    "role": "user",
                    "content": f"That reply is not valid: {problems}. "
                    "Answer again with only a JSON object that matches the schema.",
                },
            ]
    raise InvalidModelOutput(
        f"The model gave no valid {schema.__name__} after {max_attempts} attempts ({problems})."
    )


async def structured(
    messages: Sequence[Message],
    schema: type[M],
    *,
    model: str,
    config: LLMConfig,
    max_attempts: int = 3,
    options: Mapping[str, Any] | None = None,
) -> tuple[M, Usage]:
    """A reply validated as `schema`: its JSON schema goes to the server as `format`."""
    json_schema = schema.model_json_schema()

    async def ask(conversation: list[Message]) -> ChatResult:
        return await chat(
            conversation, model=model, config=config, options=options, format=json_schema
        )

    return await structured_with(ask, messages, schema, max_attempts=max_attempts)


async def embed_with_usage(
    texts: Sequence[str], *, model: str, config: LLMConfig, batch_size: int = 32
) -> tuple[list[list[float]], Usage]:
    """One vector per text, in order, `batch_size` texts per request."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    client = get_client(config)
    vectors: list[list[float]] = []
    usage = Usage()
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])

        async def attempt(batch: list[str] = batch) -> Any:
            async with asyncio.timeout(config.timeout_seconds):
                return await client.embed(model=model, input=batch)

        reply = await call_with_retries(attempt, config=config, model=model, kind="embed")
        if len(reply.embeddings) != len(batch):
            raise LLMError(f"asked for {len(batch)} embeddings, got {len(reply.embeddings)}")
        vectors.extend([float(v) for v in vector] for vector in reply.embeddings)
        usage += Usage(prompt_tokens=reply.prompt_eval_count or 0)
    _log_usage("embed", model, usage)
    return vectors, usage


async def embed(
    texts: Sequence[str], *, model: str, config: LLMConfig, batch_size: int = 32
) -> list[list[float]]:
    vectors, _ = await embed_with_usage(texts, model=model, config=config, batch_size=batch_size)
    return vectors


def same_model(a: str, b: str) -> bool:
    """Whether two Ollama model names mean the same model: the tag defaults to `latest` and the
    comparison ignores case, so `all-minilm` is what /api/tags lists as `all-minilm:latest`."""

    def full(name: str) -> str:
        return (name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest").lower()

    return full(a) == full(b)


async def list_models(*, config: LLMConfig) -> list[str]:
    client = get_client(config)
    reply = await call_with_retries(client.list, config=config, model="*")
    return [m.model for m in reply.models if m.model]


async def offered_models(*, config: LLMConfig) -> list[tuple[str, int, datetime | None]]:
    """(name, size in bytes, when modified) of each model the server offers, as it lists them;
    one request, no retries (the caller bounds its time)."""
    reply = await get_client(config).list()
    return [(m.model, m.size or 0, m.modified_at) for m in reply.models if m.model]


async def model_capabilities(name: str, *, config: LLMConfig) -> list[str] | None:
    """What the server says `name` can do (`completion`, `embedding`, ...): None when it does
    not serve that model, an empty list when it does not say. One request, no retries (the
    caller bounds its time); any other failure raises."""
    try:
        reply = await get_client(config).show(name)
    except ollama.ResponseError as exc:
        if exc.status_code == 404:
            return None
        raise
    return list(reply.capabilities or [])


async def server_reachable(*, config: LLMConfig) -> bool:
    """True when the server answers within the connect timeout; never raises, never retries."""
    try:
        async with asyncio.timeout(config.connect_timeout_seconds):
            await get_client(config).list()
        return True
    except Exception:
        return False
