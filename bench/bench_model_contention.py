"""Benchmark: the local model server's throughput when the machine's CPUs are shared, for the
ways llama.cpp can use its threads: embedding chunks/s and a short query's embedding time,
prompt tokens/s and generated tokens/s, alone and beside busy processes (standing for the API,
PostgreSQL and the tests on the same CPUs).

    uv run --frozen python bench/bench_model_contention.py [--full] [--rounds N] [--passages N]
        [--tokens N] [--busy N]

llama.cpp (ggml) runs a decode on a team of OpenMP threads (libgomp). Between the pieces of a
decode its threads meet at barriers, and by default libgomp makes an idle thread spin before it
sleeps: with as many threads as CPUs and another process on one of them, a thread spins while
the one it waits for is not running. A context has two thread counts: `n_threads` for a decode
of one token (generation) and `n_threads_batch` for a decode of many (an input to embed, a
prompt), which llama-cpp-python sets to every CPU unless told. Configurations, each in a fresh
child process (its own libgomp thread team and models), taking turns within each round
(`OMP_WAIT_POLICY=passive`, measured in ADR 0127, is no longer among them):
  2 threads             two for both (llama-cpp-python's defaults on 2 CPUs);
  1 thread, batches 2   one for generation, every CPU for batches (`python -m model_server`);
  1 thread              one for both (`--batch-threads 1`).
Each child measures, with the models loaded once: the embedding model on --passages
python3.11-doc passages (as bench_embedding.py) and on 48 short queries one at a time, the chat
model's evaluation of a prompt of about 400 tokens, and the chat model generating --tokens
tokens greedily; first alone, then beside --busy processes that spin on the CPU. Prints each
figure per configuration (median of the rounds) and its ratio to `2 threads` in the same rounds
(for the query's time, a ratio above 1 is slower). A script, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import add_size_flag, apply_sizes  # noqa: E402

# name: (threads for generation, threads for batches)
CONFIGS: dict[str, tuple[int, int]] = {
    "2 threads": (2, 2),
    "1 thread, batches 2": (1, 2),
    "1 thread": (1, 1),
}
QUERIES = (
    "create a virtual environment",
    "how do I sort a list of dictionaries by a key",
    "asyncio gather with a timeout",
    "what does the with statement do",
    "read a csv file into a list",
    "difference between a list and a tuple",
)
PROMPT = (
    "<|im_start|>user\nExplain in a few sentences what a Python list comprehension is."
    "<|im_end|>\n<|im_start|>assistant\n"
)


def _spin(stop: Any) -> None:
    while not stop.is_set():
        sum(range(1000))


def child(
    threads: int, batch_threads: int, passages: int, tokens: int, busy: int
) -> dict[str, float]:
    """In a fresh process: the figures alone, then beside `busy` spinning processes."""
    import llama_cpp

    from bench.bench_embedding import passages as read_passages
    from model_server import embedding_model
    from model_server.engine import SentenceEmbedder, embedding_gguf_path, gguf_path

    texts = read_passages(passages)
    queries = [f"{q} ({i})" for i in range(8) for q in QUERIES]
    embedder = SentenceEmbedder(
        embedding_gguf_path(),
        window=embedding_model.WINDOW,
        n_threads=threads,
        n_threads_batch=batch_threads,
    )
    chat = llama_cpp.Llama(
        model_path=str(gguf_path()),
        n_ctx=1024,
        n_threads=threads,
        n_threads_batch=batch_threads,
        verbose=False,
    )
    prompt = chat.tokenize(" ".join(texts).encode())[:400]
    embedder.embed(texts[:2])  # warm up both
    chat.create_completion(PROMPT, max_tokens=4, temperature=0.0)

    def figures() -> dict[str, float]:
        started = time.perf_counter()
        embedder.embed(texts)
        chunks = len(texts) / (time.perf_counter() - started)
        started = time.perf_counter()
        for query in queries:
            embedder.embed([query])
        query_ms = (time.perf_counter() - started) / len(queries) * 1000
        chat.reset()
        started = time.perf_counter()
        chat.eval(prompt)
        prompt_rate = len(prompt) / (time.perf_counter() - started)
        chat.reset()
        started = time.perf_counter()
        out = chat.create_completion(PROMPT, max_tokens=tokens, temperature=0.0)
        made = out["usage"]["completion_tokens"]
        return {
            "chunks/s": chunks,
            "query ms": query_ms,
            "prompt tok/s": prompt_rate,
            "tokens/s": made / (time.perf_counter() - started),
        }

    result = {f"{k} alone": v for k, v in figures().items()}
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(busy)]
    for p in spinners:
        p.start()
    time.sleep(0.3)
    try:
        result |= {f"{k} busy": v for k, v in figures().items()}
    finally:
        stop.set()
        for p in spinners:
            p.join()
    embedder.close()
    chat.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--passages", type=int)
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--busy", type=int, default=1, help="spinning processes (1)")
    parser.add_argument("--child", type=int, nargs=2, help=argparse.SUPPRESS)  # in a child
    add_size_flag(
        parser,
        quick={"rounds": 2, "passages": 24, "tokens": 48},
        full={"rounds": 5, "passages": 64, "tokens": 96},
    )
    args = apply_sizes(parser.parse_args(argv))
    if args.child:
        threads, batch_threads = args.child
        figures = child(threads, batch_threads, args.passages, args.tokens, args.busy)
        print(json.dumps(figures))
        return 0

    print(
        f"model contention: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"{args.passages} passages, {args.tokens} tokens, {args.busy} busy process(es), "
        f"{args.rounds} rounds"
    )
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    for turn in range(args.rounds):
        order = list(CONFIGS) if turn % 2 == 0 else list(reversed(CONFIGS))
        for name in order:
            threads, batch_threads = CONFIGS[name]
            command = [sys.executable, __file__, "--child", str(threads), str(batch_threads)]
            command += ["--passages", str(args.passages), "--tokens", str(args.tokens)]
            command += ["--busy", str(args.busy)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    keys = [
        f"{k} {w}"
        for k in ("chunks/s", "query ms", "prompt tok/s", "tokens/s")
        for w in ("alone", "busy")
    ]
    print(f"{'configuration':<22}" + "".join(f"{k:>19}" for k in keys))
    base = results["2 threads"]
    for name, runs in results.items():
        medians = [statistics.median(r[k] for r in runs) for k in keys]
        print(f"{name:<22}" + "".join(f"{m:>19.1f}" for m in medians))
        if name != "2 threads":
            ratios = [
                statistics.median(r[k] / b[k] for r, b in zip(runs, base, strict=True))
                for k in keys
            ]
            print(f"{'  ratio to 2 threads':<22}" + "".join(f"{x:>18.2f}x" for x in ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
