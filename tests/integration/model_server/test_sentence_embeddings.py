"""`all-minilm` (all-MiniLM-L6-v2) through /api/embed, with the official `ollama` client, on real
Python documentation.

Shapes, norms, order, repeatability and refusals hold for a real Ollama with `all-minilm` pulled
too. The 256-token window and the agreement with the float reference are this server's: it cuts
as sentence-transformers does (a real Ollama cuts at the GGUF's 512 positions).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cache

import ollama
import pytest

from model_server import embedding_model
from model_server.bert_reference import BertReference
from services.chunking import chunk
from services.extraction import extract
from tests.support.corpus import HTML_ROOT, VENV_HTML

MODEL = "all-minilm"
QUESTION = "How do I create a virtual environment?"
TURTLE_HTML = HTML_ROOT / "library" / "turtle.html"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(ollama_host: str) -> Iterator[ollama.Client]:
    with ollama.Client(host=ollama_host) as client:
        yield client


@cache
def passages(page: str) -> tuple[str, ...]:
    """The page's chunks, as the app cuts them (about 200 estimated tokens each)."""
    path = VENV_HTML if page == "venv" else TURTLE_HTML
    extracted = extract(path.read_bytes(), path.name)
    return tuple(piece.text for piece in chunk(extracted.text, extracted.headings))


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_have_384_dimensions_and_unit_length(client: ollama.Client) -> None:
    texts = [QUESTION, *passages("venv")[:3], *passages("turtle")[:3]]
    reply = client.embed(MODEL, input=texts)
    assert reply.model == MODEL
    assert [len(vector) for vector in reply.embeddings] == [384] * len(texts)
    for vector in reply.embeddings:
        assert math.sqrt(_dot(vector, vector)) == pytest.approx(1.0, abs=1e-6)
    assert len({tuple(vector) for vector in reply.embeddings}) == len(texts)


def test_a_question_is_nearer_the_page_that_answers_it(client: ollama.Client) -> None:
    venv, turtle = passages("venv"), passages("turtle")
    [question] = client.embed(MODEL, input=QUESTION).embeddings
    vectors = client.embed(MODEL, input=[*venv, *turtle]).embeddings
    scores = [_dot(question, vector) for vector in vectors]
    venv_scores, turtle_scores = scores[: len(venv)], scores[len(venv) :]
    # "Creating virtual environments / Creation of virtual environments is done by executing the
    # command venv" against the turtle module's introduction
    creating = next(i for i, text in enumerate(venv) if text.startswith("Creating virtual"))
    introduction = next(i for i, text in enumerate(turtle) if text.startswith("Introduction"))
    assert venv_scores[creating] > turtle_scores[introduction] + 0.3
    assert max(venv_scores) == venv_scores[creating]
    best_three = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)[:3]
    assert all(i < len(venv) for i in best_three)


def test_a_batch_gives_one_vector_per_input_in_order(client: ollama.Client) -> None:
    texts = list(passages("venv")[:6] + passages("turtle")[:6])
    batch = client.embed(MODEL, input=texts)
    singles = [client.embed(MODEL, input=text).embeddings[0] for text in texts]
    assert batch.embeddings == singles
    reversed_batch = client.embed(MODEL, input=texts[::-1])
    assert reversed_batch.embeddings == singles[::-1]
    assert batch.prompt_eval_count == sum(
        client.embed(MODEL, input=text).prompt_eval_count for text in texts
    )


def test_the_same_input_gives_the_same_vector(client: ollama.Client) -> None:
    first = client.embed(MODEL, input=[QUESTION, QUESTION])
    second = client.embed(MODEL, input=QUESTION)
    assert first.embeddings[0] == first.embeddings[1] == second.embeddings[0]


def _long_text() -> str:
    """The start of venv.html, 707 tokens: well past the 256-token window."""
    return extract(VENV_HTML.read_bytes(), VENV_HTML.name).text[:3000]


def test_input_past_the_window_is_truncated_to_256_tokens(client: ollama.Client) -> None:
    long = _long_text()
    cut = client.embed(MODEL, input=long)
    assert cut.prompt_eval_count == 256
    # what lies past the window changes nothing
    assert client.embed(MODEL, input=long + " Turtle graphics for kids.").embeddings == (
        cut.embeddings
    )
    both = client.embed(MODEL, input=[QUESTION, long])
    assert both.prompt_eval_count == 10 + 256  # [CLS] how do i create a virtual environment ? [SEP]
    assert both.embeddings[1] == cut.embeddings[0]


def test_truncate_false_refuses_input_past_the_window(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.embed(MODEL, input=[QUESTION, _long_text()], truncate=False)
    assert caught.value.status_code == 400
    assert caught.value.error == "input exceeds maximum context length"
    # input that fits is embedded as usual
    assert len(client.embed(MODEL, input=QUESTION, truncate=False).embeddings[0]) == 384


@pytest.mark.slow
def test_vectors_agree_with_the_float_reference(client: ollama.Client) -> None:
    """Against a float64 numpy forward pass of the safetensors: tokens as the served model's
    tokenizer makes them (checked against Hugging Face's at install), cut as the server cuts."""
    import llama_cpp

    vocab = llama_cpp.Llama(
        model_path=str(embedding_model.gguf_path()), vocab_only=True, verbose=False
    )
    reference = BertReference(embedding_model.source_dir())
    texts = [QUESTION, passages("venv")[3], _long_text()]
    served = client.embed(MODEL, input=texts).embeddings
    for text, vector in zip(texts, served, strict=True):
        tokens = vocab.tokenize(text.encode(), add_bos=True)
        if len(tokens) > embedding_model.WINDOW:
            tokens = tokens[: embedding_model.WINDOW - 1] + tokens[-1:]
        expected = reference.embed(tokens).tolist()
        assert _dot(vector, expected) >= 0.999
    vocab.close()


def test_chat_and_generate_are_refused_as_ollama_refuses_them(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as chat:
        client.chat(MODEL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ollama.ResponseError) as generate:
        client.generate(MODEL, prompt="hi")
    assert (chat.value.status_code, chat.value.error) == (400, '"all-minilm" does not support chat')
    assert (generate.value.status_code, generate.value.error) == (
        400,
        '"all-minilm" does not support generate',
    )
