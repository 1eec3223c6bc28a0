"""Stored vectors: float32 little-endian bytes, read back exactly, refused when not storable."""

from __future__ import annotations

import struct

import pytest

from base.errors import Invalid
from services import vectors


def test_a_vector_is_float32_little_endian() -> None:
    assert vectors.pack([1.0, -2.0]) == b"\x00\x00\x80\x3f\x00\x00\x00\xc0"
    assert len(vectors.pack([0.1] * 384)) == 384 * 4


def test_values_come_back_as_float32_rounds_them() -> None:
    values = [0.1, -0.25, 3.0e-8, 123456.789]
    back = vectors.unpack(vectors.pack(values), 4)
    assert back == struct.unpack("<4f", struct.pack("<4f", *values))
    assert back[1] == -0.25
    assert all(abs(a - b) <= abs(a) * 2**-23 for a, b in zip(values, back, strict=True))


def test_bytes_of_another_dimension_are_refused() -> None:
    packed = vectors.pack([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="12 bytes are not 4 float32 values"):
        vectors.unpack(packed, 4)
    with pytest.raises(ValueError):
        vectors.unpack(b"", 0)


@pytest.mark.parametrize("vector", [[], [float("nan")], [1.0, float("inf")], [1e39]])
def test_a_vector_that_cannot_be_stored_is_an_invalid_embedding(vector: list[float]) -> None:
    with pytest.raises(Invalid) as caught:
        vectors.pack(vector)
    assert caught.value.code == "INVALID_EMBEDDING"


def test_a_batch_shares_one_dimension() -> None:
    dimension, packed = vectors.pack_all([[1.0, 2.0], [3.0, 4.0]])
    assert (dimension, [len(p) for p in packed]) == (2, [8, 8])
    assert vectors.pack_all([]) == (0, [])
    with pytest.raises(Invalid) as caught:
        vectors.pack_all([[1.0, 2.0], [3.0]])
    assert caught.value.code == "INVALID_EMBEDDING"
