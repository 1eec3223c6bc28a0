"""`python -m model_server --host 127.0.0.1 --port 11434`: serve SmolLM2 and all-MiniLM behind the
Ollama API (`make models` converts the embedding model first)."""

from __future__ import annotations

import argparse
import sys
import time

import uvicorn

from model_server.api import OllamaApp
from model_server.engine import Engine, default_batch_threads, default_threads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument(
        "--ctx", type=int, default=2048, help="context length in tokens (default 2048)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=default_threads(),
        help="CPU threads for generating a token "
        f"(default: half the CPUs, here {default_threads()})",
    )
    parser.add_argument(
        "--batch-threads",
        type=int,
        default=default_batch_threads(),
        help="CPU threads for a batch: an input to embed, a prompt "
        f"(default: every CPU, here {default_batch_threads()})",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        engine = Engine(n_ctx=args.ctx, n_threads=args.threads, n_threads_batch=args.batch_threads)
    except RuntimeError as exc:  # a model file missing: the message says what to run
        raise SystemExit(f"model_server: {exc}") from None
    engine.warm_up()  # load before listening: once /api/version answers, the model is ready
    served = ", ".join(f"{m.name} ({m.path.name})" for m in engine.models.values())
    print(
        f"model_server: {served} ready in "
        f"{time.perf_counter() - started:.2f}s, "
        f"serving http://{args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    try:
        uvicorn.run(
            OllamaApp(engine),
            host=args.host,
            port=args.port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    finally:
        engine.close()


if __name__ == "__main__":
    main()
