"""services.llm.embed with the default embedding model (EMBED_MODEL = all-minilm) against the real
model server, on chunks of the Python documentation as the app cuts them."""

from __future__ import annotations

import math
from functools import cache

import pytest

from base.settings import Settings
from services import llm
from services.chunking import chunk
from services.extraction import extract
from tests.support.corpus import HTML_ROOT

pytestmark = pytest.mark.timeout(180)

PAGES = ("venv", "turtle", "json")
QUESTIONS = {
    "How do I create a virtual environment?": "venv",
    "How do I draw a square with the turtle?": "turtle",
    "How do I parse a JSON string into a Python object?": "json",
}


@pytest.fixture
async def config(ollama_host: str):
    yield llm.LLMConfig(host=ollama_host, timeout_seconds=120)
    await llm.aclose_clients()


@pytest.fixture
def model() -> str:
    return Settings(app_env="test", jwt_secret="t" * 40).embed_model


@cache
def page_chunks(page: str) -> tuple[str, ...]:
    path = HTML_ROOT / "library" / f"{page}.html"
    extracted = extract(path.read_bytes(), path.name)
    return tuple(piece.text for piece in chunk(extracted.text, extracted.headings))


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_the_default_model_gives_unit_vectors_of_384(config, model: str) -> None:
    assert model == "all-minilm"
    texts = list(page_chunks("venv")[:5])
    vectors, usage = await llm.embed_with_usage(texts, model=model, config=config)
    assert [len(v) for v in vectors] == [384] * 5
    assert all(math.isclose(_dot(v, v), 1.0, abs_tol=1e-6) for v in vectors)
    assert usage.completion_tokens == 0 and usage.prompt_tokens > 5 * 20


async def test_each_question_finds_its_own_page(config, model: str) -> None:
    index = [(page, text) for page in PAGES for text in page_chunks(page)[:40]]
    vectors = await llm.embed([text for _, text in index], model=model, config=config)
    asked = await llm.embed(list(QUESTIONS), model=model, config=config)
    for (question, page), q in zip(QUESTIONS.items(), asked, strict=True):
        ranked = sorted(range(len(index)), key=lambda i: _dot(q, vectors[i]), reverse=True)
        assert [index[i][0] for i in ranked[:3]] == [page] * 3, question


async def test_batches_of_any_size_give_the_same_vectors_in_order(config, model: str) -> None:
    texts = list(page_chunks("turtle")[:7] + page_chunks("json")[:7])
    whole = await llm.embed(texts, model=model, config=config, batch_size=32)
    in_threes = await llm.embed(texts, model=model, config=config, batch_size=3)
    one_by_one = [(await llm.embed([t], model=model, config=config))[0] for t in texts]
    assert whole == in_threes == one_by_one
    assert len(whole) == len(texts)


async def test_the_same_text_twice_gives_the_same_vector(config, model: str) -> None:
    text = page_chunks("json")[1]
    first, second = await llm.embed([text, text], model=model, config=config)
    [again] = await llm.embed([text], model=model, config=config)
    assert first == second == again


async def test_a_long_text_is_cut_to_the_models_window(config, model: str) -> None:
    whole_page = "\n\n".join(page_chunks("json"))  # thousands of tokens
    vectors, usage = await llm.embed_with_usage([whole_page], model=model, config=config)
    assert usage.prompt_tokens == 256
    cut_later = whole_page[: len(whole_page) // 2]
    assert await llm.embed([cut_later], model=model, config=config) == vectors
