"""A float64 numpy forward pass of all-MiniLM-L6-v2, read straight from its safetensors.

This is the reference the served vectors are measured against: the install step checks the
converted GGUF with it, a test checks the served vectors, and the benchmarks report how far each
route is from it. It follows Hugging Face's BertModel (absolute positions, token type 0, post-norm
layers, exact erf GELU), then sentence-transformers' mean pooling and L2 normalisation. It takes
token ids, so it checks the network and not the tokenizer; the install step checks the tokenizer
against ids from the model's own tokenizer.json.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Every tensor of a .safetensors file: an 8-byte header length, a JSON header, the data."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = np.dtype(_DTYPES[info["dtype"]])
        begin, end = info["data_offsets"]
        data = np.frombuffer(
            raw, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=8 + header_len + begin
        )
        tensors[name] = data.reshape(info["shape"])
    return tensors


def _erf(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """erf by Abramowitz and Stegun 7.1.26 (error under 1.5e-7; numpy has no erf)."""
    sign, a = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = (
        (((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t
    ) + 0.254829592
    return sign * (1.0 - poly * t * np.exp(-a * a))


class BertReference:
    """`embed(token_ids)` gives the unit-length mean-pooled vector, in float64."""

    def __init__(self, model_dir: Path) -> None:
        self.config = json.loads((model_dir / "config.json").read_text())
        self.weights = {
            name: tensor.astype(np.float64)
            for name, tensor in read_safetensors(model_dir / "model.safetensors").items()
            if tensor.dtype != np.int64  # embeddings.position_ids, when present
        }

    def _norm(self, x: np.ndarray[Any, Any], prefix: str) -> np.ndarray[Any, Any]:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        scaled = (x - mean) / np.sqrt(var + self.config["layer_norm_eps"])
        return scaled * self.weights[f"{prefix}.weight"] + self.weights[f"{prefix}.bias"]

    def _linear(self, x: np.ndarray[Any, Any], prefix: str) -> np.ndarray[Any, Any]:
        return x @ self.weights[f"{prefix}.weight"].T + self.weights[f"{prefix}.bias"]

    def embed(self, token_ids: list[int]) -> np.ndarray[Any, Any]:
        w, n, heads = self.weights, len(token_ids), self.config["num_attention_heads"]
        x = (
            w["embeddings.word_embeddings.weight"][token_ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        for layer in range(self.config["num_hidden_layers"]):
            p = f"encoder.layer.{layer}"
            q, k, v = (
                self._linear(x, f"{p}.attention.self.{m}").reshape(n, heads, -1).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, -1)
            x = self._norm(
                self._linear(context, f"{p}.attention.output.dense") + x,
                f"{p}.attention.output.LayerNorm",
            )
            h = self._linear(x, f"{p}.intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
            x = self._norm(self._linear(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        pooled = x.mean(0)
        result: np.ndarray[Any, Any] = pooled / np.linalg.norm(pooled)
        return result
