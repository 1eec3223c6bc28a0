"""The local model server's thread counts (ADR 0127 and its amendment): half the CPUs for a
generated token, every CPU the process may run on for a batch (an input to embed, a prompt),
each settable, and outputs that do not depend on either."""

from __future__ import annotations

import os

import llama_cpp
import pytest

from model_server import embedding_model
from model_server.engine import (
    Engine,
    SentenceEmbedder,
    default_batch_threads,
    default_threads,
    embedding_gguf_path,
)
from services.chunking import chunk
from services.extraction import extract
from tests.support.corpus import VENV_HTML

pytestmark = pytest.mark.timeout(120)


def _threads(llm: llama_cpp.Llama) -> tuple[int, int]:
    """What the llama.cpp context itself was given, not what the Python wrapper remembers."""
    ctx = llm._ctx.ctx
    return llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)


def test_the_defaults_follow_the_cpus_the_process_may_run_on() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert default_batch_threads() == cpus
    assert default_threads() == max(1, cpus // 2)


def test_every_context_gets_both_counts() -> None:
    engine = Engine(n_threads=1, n_threads_batch=2)
    try:
        assert _threads(engine.chat_llm) == (1, 2)
        assert _threads(engine.embed_llm) == (1, 2)
        assert _threads(engine.sentences.llm) == (1, 2)
    finally:
        engine.close()
    engine = Engine()
    try:
        defaults = (default_threads(), default_batch_threads())
        assert _threads(engine.chat_llm) == defaults
        assert _threads(engine.sentences.llm) == defaults
    finally:
        engine.close()


def test_vectors_are_the_same_with_one_or_two_batch_threads() -> None:
    extracted = extract(VENV_HTML.read_bytes(), VENV_HTML.name)
    texts = ["How do I create a virtual environment?"] + [
        piece.text for piece in chunk(extracted.text, extracted.headings)[:4]
    ]
    vectors = []
    for batch_threads in (1, 2):
        embedder = SentenceEmbedder(
            embedding_gguf_path(),
            window=embedding_model.WINDOW,
            n_threads=1,
            n_threads_batch=batch_threads,
        )
        try:
            vectors.append(embedder.embed(texts)[0])
        finally:
            embedder.close()
    assert len(vectors[0]) == 5
    assert vectors[0] == vectors[1]
