"""The subset of the Ollama HTTP API the app uses, as a plain ASGI app over one `Engine`.

Request and response shapes follow Ollama's docs/api.md and server/routes.go: streamed replies are
NDJSON (streaming is the default), the last chunk carries done, done_reason and the counters and
durations (nanoseconds), and errors are `{"error": "..."}` with Ollama's status codes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from model_server.engine import (
    Engine,
    Sampling,
    ServedModel,
    Stats,
    grammar_for,
    truncate_dimensions,
)

# The Ollama release whose request/response shapes this server mirrors.
OLLAMA_VERSION = "0.12.0"

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Json = dict[str, Any]


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _number(value: str) -> Any:
    """GGUF metadata arrives as strings; model_info wants numbers where they are numbers."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def _wait_disconnect(receive: Receive, cancel: threading.Event) -> None:
    """Sets `cancel` when the client hangs up, so the worker stops between tokens."""
    while (await receive())["type"] != "http.disconnect":
        pass
    cancel.set()


async def _start(send: Send, status: int, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def _send_json(send: Send, status: int, payload: Any) -> None:
    await _start(send, status, "application/json; charset=utf-8")
    await send(
        {"type": "http.response.body", "body": json.dumps(payload, ensure_ascii=False).encode()}
    )


def _line(payload: Json) -> dict[str, Any]:
    body = json.dumps(payload, ensure_ascii=False).encode() + b"\n"
    return {"type": "http.response.body", "body": body, "more_body": True}


class OllamaApp:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.routes = {
            ("GET", "/api/version"): self.version,
            ("GET", "/api/tags"): self.tags,
            ("POST", "/api/show"): self.show,
            ("POST", "/api/chat"): self.chat,
            ("POST", "/api/generate"): self.generate,
            ("POST", "/api/embed"): self.embed,
            ("POST", "/api/copy"): self.copy,
            ("DELETE", "/api/delete"): self.delete,
        }

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        if path == "/" and method in ("GET", "HEAD"):
            await _start(send, 200, "text/plain; charset=utf-8")
            await send({"type": "http.response.body", "body": b"Ollama is running"})
            return
        handler = self.routes.get((method, path))
        if handler is None:
            await _start(send, 404, "text/plain")
            await send({"type": "http.response.body", "body": b"404 page not found"})
            return
        try:
            request: Json = {}
            if method in ("POST", "DELETE"):
                body = await _read_body(receive)
                if not body.strip():
                    raise HTTPError(400, "missing request body")
                try:
                    request = json.loads(body)
                except json.JSONDecodeError as exc:
                    raise HTTPError(400, f"invalid JSON: {exc}") from None
                if not isinstance(request, dict):
                    raise HTTPError(400, "request body must be a JSON object")
            await handler(request, receive, send)
        except HTTPError as exc:
            await _send_json(send, exc.status, {"error": exc.message})
        except ConnectionResetError:
            pass

    # -- helpers ---------------------------------------------------------------------------

    def _model(
        self, request: Json, *, show: bool = False, endpoint: str = ""
    ) -> tuple[str, ServedModel]:
        """The name as asked and the model it means. Ollama names default to the `latest` tag
        and compare case-insensitively; chat and generate need a model that completes."""
        name = request.get("model") or request.get("name")
        if not isinstance(name, str) or not name:
            raise HTTPError(400, "model is required")
        model = self.engine.model(name)
        if model is None:
            if show:
                raise HTTPError(404, f"model '{name}' not found")
            raise HTTPError(404, f"model {json.dumps(name)} not found, try pulling it first")
        if endpoint in ("chat", "generate") and not model.supports("completion"):
            raise HTTPError(400, f"{json.dumps(name)} does not support {endpoint}")
        return name, model

    @staticmethod
    def _details(model: ServedModel) -> Json:
        family = model.metadata.get("general.architecture", "")
        return {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": model.metadata.get("general.size_label", ""),
            "quantization_level": model.quantization,
        }

    @staticmethod
    def _modified_at(model: ServedModel) -> str:
        mtime = datetime.fromtimestamp(model.path.stat().st_mtime, UTC)
        return mtime.isoformat().replace("+00:00", "Z")

    @staticmethod
    def _grammar(fmt: Any) -> Any:
        if fmt in (None, ""):
            return None
        if fmt == "json":
            return grammar_for('"json"')
        if isinstance(fmt, dict):
            try:
                return grammar_for(json.dumps(fmt, sort_keys=True))
            except Exception as exc:  # the converter raises assorted errors on bad schemas
                raise HTTPError(400, f"invalid JSON schema in format: {exc}") from None
        raise HTTPError(400, 'invalid format: expected "json" or a valid JSON schema')

    @staticmethod
    def _sampling(request: Json) -> Sampling:
        options = request.get("options")
        if options is not None and not isinstance(options, dict):
            raise HTTPError(400, "options must be an object")
        try:
            return Sampling.from_options(options)
        except (TypeError, ValueError) as exc:
            raise HTTPError(400, f"invalid options: {exc}") from None

    @staticmethod
    def _stats(stats: Stats, started: int) -> Json:
        return {
            "done_reason": stats.done_reason,
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": stats.load_duration,
            "prompt_eval_count": stats.prompt_eval_count,
            "prompt_eval_duration": stats.prompt_eval_duration,
            "eval_count": stats.eval_count,
            "eval_duration": stats.eval_duration,
        }

    async def _complete(
        self,
        request: Json,
        tokens: list[int],
        receive: Receive,
        send: Send,
        chunk: Callable[[str], Json],
        final: Callable[[str, Stats, int], Json],
    ) -> None:
        """Runs one generation and replies streamed (NDJSON) or as one object."""
        started = time.perf_counter_ns()
        sampling, grammar = self._sampling(request), self._grammar(request.get("format"))
        stream = request.get("stream") is not False  # absent or null streams, as in Ollama
        cancel = threading.Event()
        watcher = asyncio.create_task(_wait_disconnect(receive, cancel))
        pieces = self.engine.generate(tokens, sampling, grammar, cancel)
        try:
            if stream:
                await _start(send, 200, "application/x-ndjson")
                try:
                    async for item in pieces:
                        await send(
                            _line(
                                final("", item, started) if isinstance(item, Stats) else chunk(item)
                            )
                        )
                except Exception as exc:  # headers are out: Ollama reports the error as a last line
                    await send(_line({"error": str(exc)}))
                await send({"type": "http.response.body", "body": b""})
                return
            text: list[str] = []
            stats = Stats()
            try:
                async for item in pieces:
                    if isinstance(item, Stats):
                        stats = item
                    else:
                        text.append(item)
            except Exception as exc:
                raise HTTPError(500, str(exc)) from None
            await _send_json(send, 200, final("".join(text), stats, started))
        finally:
            cancel.set()
            watcher.cancel()
            await pieces.aclose()

    # -- endpoints -------------------------------------------------------------------------

    async def version(self, request: Json, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, {"version": OLLAMA_VERSION})

    async def tags(self, request: Json, receive: Receive, send: Send) -> None:
        models = [
            {
                "name": model.name,
                "model": model.name,
                "modified_at": self._modified_at(model),
                "size": model.path.stat().st_size,
                "digest": await self.engine.file_digest(model),
                "details": self._details(model),
            }
            for model in self.engine.models.values()
        ]
        models.sort(key=lambda m: m["modified_at"], reverse=True)  # newest first, as Ollama lists
        await _send_json(send, 200, {"models": models})

    async def show(self, request: Json, receive: Receive, send: Send) -> None:
        _, model = self._model(request, show=True)
        meta = model.metadata
        info: Json = {
            k: _number(v) for k, v in meta.items() if not k.startswith("tokenizer.chat_template")
        }
        info["general.parameter_count"] = model.parameter_count
        parameters = "\n".join(f'stop                           "{s}"' for s in model.stops)
        modelfile = (
            '# Modelfile generated by "ollama show"\n'
            f"FROM {model.path}\n"
            + (f'TEMPLATE """{model.template}"""\n' if model.template else "")
            + "".join(f'PARAMETER stop "{s}"\n' for s in model.stops)
        )
        await _send_json(
            send,
            200,
            {
                "license": meta.get("general.license", ""),
                "modelfile": modelfile,
                "parameters": parameters,
                # the GGUF's Jinja template (a real Ollama shows its Go template here)
                "template": model.template,
                "details": self._details(model),
                "model_info": info,
                "capabilities": list(model.capabilities),
                "modified_at": self._modified_at(model),
            },
        )

    async def chat(self, request: Json, receive: Receive, send: Send) -> None:
        name, _ = self._model(request, endpoint="chat")
        if request.get("tools"):
            raise HTTPError(400, f"{json.dumps(name)} does not support tools")
        if request.get("think") not in (None, False):
            raise HTTPError(400, f"{json.dumps(name)} does not support thinking")
        messages = request.get("messages") or []
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
        ):
            raise HTTPError(400, "messages must be a list of objects with a role")
        if not messages:  # an empty chat loads (or, with keep_alive 0, unloads) the model
            reason = "unload" if request.get("keep_alive") in (0, "0", "0s") else "load"
            reply = {"role": "assistant", "content": ""}
            await _send_json(
                send,
                200,
                {
                    "model": name,
                    "created_at": now(),
                    "message": reply,
                    "done": True,
                    "done_reason": reason,
                },
            )
            return
        turns = [{"role": m["role"], "content": str(m.get("content") or "")} for m in messages]
        tokens = self.engine.fit_chat(turns)

        def chunk(piece: str) -> Json:
            message = {"role": "assistant", "content": piece}
            return {"model": name, "created_at": now(), "message": message, "done": False}

        def final(text: str, stats: Stats, started: int) -> Json:
            message = {"role": "assistant", "content": text}
            return {
                "model": name,
                "created_at": now(),
                "message": message,
                "done": True,
                **self._stats(stats, started),
            }

        await self._complete(request, tokens, receive, send, chunk, final)

    async def generate(self, request: Json, receive: Receive, send: Send) -> None:
        name, _ = self._model(request, endpoint="generate")
        if request.get("suffix"):
            raise HTTPError(400, f"{json.dumps(name)} does not support insert")
        if request.get("think") not in (None, False):
            raise HTTPError(400, f"{json.dumps(name)} does not support thinking")
        prompt, system, raw = (
            request.get("prompt") or "",
            request.get("system") or "",
            bool(request.get("raw")),
        )
        if not isinstance(prompt, str) or not isinstance(system, str):
            raise HTTPError(400, "prompt and system must be strings")
        if raw and (system or request.get("context")):
            raise HTTPError(400, "raw mode does not support template, system, or context")
        if not prompt:  # an empty prompt loads (or unloads) the model
            reason = "unload" if request.get("keep_alive") in (0, "0", "0s") else "load"
            await _send_json(
                send,
                200,
                {
                    "model": name,
                    "created_at": now(),
                    "response": "",
                    "done": True,
                    "done_reason": reason,
                },
            )
            return
        if raw:
            tokens = self.engine.tokenize(prompt)
        else:
            turns = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            context = [int(t) for t in request.get("context") or []]  # deprecated, still honoured
            tokens = context + self.engine.fit_chat(turns)

        def chunk(piece: str) -> Json:
            return {"model": name, "created_at": now(), "response": piece, "done": False}

        def final(text: str, stats: Stats, started: int) -> Json:
            reply = {"model": name, "created_at": now(), "response": text, "done": True}
            if not raw:
                reply["context"] = stats.tokens
            return {**reply, **self._stats(stats, started)}

        await self._complete(request, tokens, receive, send, chunk, final)

    async def copy(self, request: Json, receive: Receive, send: Send) -> None:
        source, destination = request.get("source"), request.get("destination")
        if not isinstance(source, str) or not source:
            raise HTTPError(400, "source is required")
        if not isinstance(destination, str) or not destination:
            raise HTTPError(400, "destination is required")
        if not self.engine.copy(source, destination):
            raise HTTPError(404, f"model '{source}' not found")
        await _start(send, 200, "application/json; charset=utf-8")
        await send({"type": "http.response.body", "body": b""})

    async def delete(self, request: Json, receive: Receive, send: Send) -> None:
        name = request.get("model") or request.get("name")
        if not isinstance(name, str) or not name:
            raise HTTPError(400, "model is required")
        removed = self.engine.delete(name)
        if removed is False:
            raise HTTPError(404, f"model '{name}' not found")
        if removed is None:
            raise HTTPError(400, f"'{name}' is served from its file here; only copies are removed")
        await _start(send, 200, "application/json; charset=utf-8")
        await send({"type": "http.response.body", "body": b""})

    async def embed(self, request: Json, receive: Receive, send: Send) -> None:
        started = time.perf_counter_ns()
        name, model = self._model(request)
        raw_input = request.get("input")
        if raw_input is None:
            texts: list[str] = []
        elif isinstance(raw_input, str):
            texts = [raw_input] if raw_input else []
        elif isinstance(raw_input, list) and all(isinstance(t, str) for t in raw_input):
            texts = raw_input
        else:
            raise HTTPError(400, "invalid input type")
        try:
            vectors, count, waited = await self.engine.embed(
                model.name, texts, truncate=request.get("truncate") is not False
            )
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        dimensions = request.get("dimensions")
        await _send_json(
            send,
            200,
            {
                "model": name,
                "embeddings": [truncate_dimensions(v, dimensions) for v in vectors],
                "total_duration": time.perf_counter_ns() - started,
                "load_duration": waited,
                "prompt_eval_count": count,
            },
        )
