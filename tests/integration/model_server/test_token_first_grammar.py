"""The local model server's grammar-constrained greedy decoding checks the greedy token first
(model_server/engine.py `TokenFirstGrammar`): on a real page and the summary's schema it writes
exactly the tokens llama-cpp-python's own grammar sampler writes."""

from __future__ import annotations

import json

import llama_cpp
import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from model_server.engine import Sampling, TokenFirstGrammar, gguf_path, grammar_for
from services import chunking, enrichment, extraction
from tests.support import corpus

pytestmark = pytest.mark.slow(seconds=80)

PAGE = "library/functools.html"
MAX_TOKENS = 160


@pytest.fixture(scope="module")
def llm() -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(gguf_path()), n_ctx=2048, n_threads=2, verbose=False)


def _prompt(llm: llama_cpp.Llama) -> list[int]:
    extracted = extraction.parse((corpus.HTML_ROOT / PAGE).read_bytes(), "functools.html")
    passages = [c.text for c in chunking.chunk(extracted.text, extracted.headings)]
    messages = enrichment.messages_for(
        "functools", enrichment.sample_passages(passages, 1000), enrichment.SUMMARY_TASK
    )
    template = Jinja2ChatFormatter(
        llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>", bos_token="<|im_start|>"
    )
    return llm.tokenize(template(messages=messages).prompt.encode(), special=True)


def _greedy(llm: llama_cpp.Llama, prompt: list[int], **kwargs: object) -> list[int]:
    llm.reset()  # the same evaluation path for both: a cached prefix shifts logits slightly
    ends = {llm.token_eos(), *llm.tokenize(b"<|im_end|>", add_bos=False, special=True)}
    out: list[int] = []
    for token in llm.generate(prompt, temp=0, repeat_penalty=1.1, **kwargs):  # type: ignore[arg-type]
        if token in ends:
            break
        out.append(token)
        if len(out) == MAX_TOKENS:
            break
    return out


def test_token_first_checking_writes_what_the_whole_vocabulary_filter_writes(
    llm: llama_cpp.Llama,
) -> None:
    schema = json.dumps(enrichment.SummaryAnswer.model_json_schema(), sort_keys=True)
    prompt = _prompt(llm)
    filtered = _greedy(llm, prompt, grammar=grammar_for(schema))
    checker = TokenFirstGrammar(llm, grammar_for(schema), Sampling.from_options({"temperature": 0}))
    try:
        checked = _greedy(llm, prompt, logits_processor=[checker])
    finally:
        checker.close()
    assert len(filtered) > 20
    assert checked == filtered
    assert llm.detokenize(checked).startswith(b"{")
