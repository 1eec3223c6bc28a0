"""Chunk vectors as stored (ADR 0051): float32, little-endian, `dimension` values per row.

Packing is plain `struct`, so the bytes are the same on every machine and a reader can map them
with `numpy.frombuffer(data, "<f4")` or `struct.unpack`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from base.errors import Invalid

BYTES_PER_VALUE = 4


def _layout(dimension: int) -> str:
    return f"<{dimension}f"


def pack(vector: Sequence[float]) -> bytes:
    """The vector as float32 little-endian bytes; Invalid(INVALID_EMBEDDING) for an empty vector
    or one with a value that is not finite (or beyond float32's range)."""
    if not vector:
        raise Invalid("The embedding model returned an empty vector.", code="INVALID_EMBEDDING")
    if not all(math.isfinite(v) for v in vector):
        raise Invalid(
            "The embedding model returned a vector with a value that is not a number.",
            code="INVALID_EMBEDDING",
        )
    try:
        return struct.pack(_layout(len(vector)), *vector)
    except OverflowError:
        raise Invalid(
            "The embedding model returned a value too large to store.", code="INVALID_EMBEDDING"
        ) from None


def unpack(data: bytes, dimension: int) -> tuple[float, ...]:
    """The `dimension` values of a stored vector; ValueError when the bytes do not fit."""
    if dimension < 1 or len(data) != dimension * BYTES_PER_VALUE:
        raise ValueError(f"{len(data)} bytes are not {dimension} float32 values")
    return struct.unpack(_layout(dimension), data)


def pack_all(vectors: Sequence[Sequence[float]]) -> tuple[int, list[bytes]]:
    """The common dimension of `vectors` and each packed; Invalid(INVALID_EMBEDDING) when the
    model gave vectors of different lengths."""
    dimensions = {len(v) for v in vectors}
    if len(dimensions) > 1:
        raise Invalid(
            f"The embedding model returned vectors of {len(dimensions)} different lengths.",
            code="INVALID_EMBEDDING",
        )
    return (dimensions.pop() if dimensions else 0), [pack(v) for v in vectors]
