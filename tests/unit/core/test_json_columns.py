"""JSON columns are read by orjson, and by the standard decoder where orjson refuses."""

import json

import pytest

from base.compact_json import loads as json_loads

VALUES = [
    '["Key point one", "Zweiter Punkt – ü", "三"]',
    '{"model": "all-minilm", "dimension": 384, "ratio": 0.125, "done": true, "error": null}',
    "[]",
    '"text"',
    "-0.0",
]


@pytest.mark.parametrize("text", VALUES)
def test_values_read_as_the_standard_decoder_reads_them(text: str) -> None:
    assert json_loads(text) == json.loads(text)
    assert json_loads(text.encode()) == json.loads(text)


def test_what_orjson_refuses_is_read_by_the_standard_decoder() -> None:
    big = 2**70
    assert json_loads(f"[{big}, -{big}]") == [big, -big]
    values = json_loads("[NaN, Infinity, -Infinity]")
    assert values[0] != values[0] and values[1:] == [float("inf"), float("-inf")]


def test_invalid_json_is_still_an_error() -> None:
    with pytest.raises(json.JSONDecodeError):
        json_loads("[1,")
