"""Embedding throughput of `all-minilm`: chunks/s through the HTTP API vs the engine itself.

Passages: python3.11-doc pages, extracted and chunked as the app does (services.extraction,
services.chunking with its default of 200 estimated tokens), a few from each of many pages.

Paths, taking turns within each round so that other load on the machine hits them alike:
- engine: model_server.engine.SentenceEmbedder in this process, on the same GGUF and threads as
  the server, so the model's own cost;
- HTTP, batches of --batch: the app's path, services.llm.embed (ollama.AsyncClient, POST
  /api/embed) to the model server (tests/support/model_server: OLLAMA_HOST when it answers, else
  a `python -m model_server` it starts);
- HTTP, one passage per request: the same with batch_size=1.

Prints chunks/s (best and median round) for each path and the overhead of HTTP: the median over
rounds of engine rate / HTTP rate. By default a quick run (48 passages, 3 rounds); `--full` gives
the 240 passages and 5 rounds of the recorded figures.

    uv run --frozen python bench/bench_embedding.py [--full] [--passages N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `model_server`, `services`, ... importable
    sys.path.insert(0, str(ROOT))

from base.settings import Settings  # noqa: E402
from bench.common import add_size_flag, apply_sizes  # noqa: E402
from model_server import embedding_model  # noqa: E402
from model_server.engine import (  # noqa: E402
    SentenceEmbedder,
    default_batch_threads,
    default_threads,
    embedding_gguf_path,
)
from services import llm  # noqa: E402
from services.chunking import chunk  # noqa: E402
from services.extraction import extract  # noqa: E402
from tests.support.model_server import model_server  # noqa: E402

HTML_ROOT = Path("/usr/share/doc/python3.11-doc/html")
PER_PAGE = 4
# as `python -m model_server` runs by default
THREADS, BATCH_THREADS = default_threads(), default_batch_threads()


def passages(count: int) -> list[str]:
    pages = sorted(HTML_ROOT.rglob("*.html"))
    step = max(1, len(pages) // (count // PER_PAGE + 1))
    texts: list[str] = []
    for page in pages[::step]:
        extracted = extract(page.read_bytes(), page.name)
        texts += [piece.text for piece in chunk(extracted.text, extracted.headings)][:PER_PAGE]
        if len(texts) >= count:
            break
    return texts[:count]


async def bench(host: str, count: int, rounds: int, batch: int) -> None:
    texts = passages(count)
    engine = SentenceEmbedder(
        embedding_gguf_path(),
        window=embedding_model.WINDOW,
        n_threads=THREADS,
        n_threads_batch=BATCH_THREADS,
    )
    tokens = [len(engine.fit(engine.tokenize(t))) for t in texts]
    settings = Settings(app_env="development", ollama_host=host)
    config = llm.LLMConfig.from_settings(settings)
    model = settings.embed_model

    async def via_http(size: int) -> list[list[float]]:
        return await llm.embed(texts, model=model, config=config, batch_size=size)

    # One thread calls the engine, as the server's single worker does: called through
    # asyncio.to_thread (any pool thread) it measured 17 times slower than the server, likely
    # llama.cpp's OpenMP keeping a team of threads per calling thread.
    worker = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    paths = {
        "engine, in process": lambda: loop.run_in_executor(worker, lambda: engine.embed(texts)[0]),
        f"HTTP, batches of {batch}": lambda: via_http(batch),
        "HTTP, 1 per request": lambda: via_http(1),
    }
    first = {name: await run() for name, run in paths.items()}  # warm every path
    rates: dict[str, list[float]] = {name: [] for name in paths}
    for turn in range(rounds):
        order = list(paths) if turn % 2 == 0 else list(reversed(paths))
        for name in order:
            started = time.perf_counter()
            await paths[name]()
            rates[name].append(len(texts) / (time.perf_counter() - started))
    await llm.aclose_clients()
    worker.shutdown()
    engine.close()

    same = all(first[name] == first["engine, in process"] for name in paths)
    print(
        f"model server {host}, model {model}, {len(texts)} passages of python3.11-doc "
        f"({statistics.mean(tokens):.0f} tokens on average, {min(tokens)}..{max(tokens)}), "
        f"{rounds} rounds, {BATCH_THREADS} threads; vectors identical on every path: {same}"
    )
    print(f"{'path':<24}{'chunks/s best':>15}{'median':>9}")
    for name, values in rates.items():
        print(f"{name:<24}{max(values):>15.1f}{statistics.median(values):>9.1f}")
    engine_rates = rates["engine, in process"]
    for name in list(paths)[1:]:
        ratios = [e / h for e, h in zip(engine_rates, rates[name], strict=True)]
        print(
            f"overhead of {name}: engine rate / HTTP rate, median over rounds "
            f"{statistics.median(ratios):.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--passages", type=int, help="passages embedded per round")
    parser.add_argument("--rounds", type=int, help="rounds, each path once per round")
    parser.add_argument("--batch", type=int, default=32, help="passages per request (32)")
    add_size_flag(parser, quick={"passages": 48, "rounds": 3}, full={"passages": 240, "rounds": 5})
    args = apply_sizes(parser.parse_args(argv))
    if args.passages < 1 or args.rounds < 1 or args.batch < 1:
        parser.error("need --passages, --rounds and --batch >= 1")
    with model_server() as host:
        asyncio.run(bench(host, args.passages, args.rounds, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
