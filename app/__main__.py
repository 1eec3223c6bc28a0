"""Command line: `python -m app serve | migrate | worker | export-schema | sweep-blobs | prune |
vector-indexes`."""

from __future__ import annotations

import argparse
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from pydantic import ValidationError

from base.settings import Settings


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper() or 'settings'}: {e['msg']}"
            for e in exc.errors()
        )
        sys.exit(f"Invalid settings: {problems}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/version", timeout=1) as response:
            status: int = response.status
            return status == 200
    except OSError:
        return False


@contextmanager
def local_model_server(settings: Settings) -> Iterator[None]:
    """Use the Ollama at OLLAMA_HOST if it answers; else run the local model server there."""
    if _answers(settings.ollama_host):
        yield
        return
    parts = urlsplit(settings.ollama_host)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: no Ollama answers at {settings.ollama_host}", file=sys.stderr)
        yield
        return
    port = str(parts.port or 11434)
    print(f"No Ollama at {settings.ollama_host}: starting the local model server", file=sys.stderr)
    child = subprocess.Popen(
        [sys.executable, "-m", "model_server", "--host", "127.0.0.1", "--port", port]
    )
    try:
        yield
    finally:
        child.terminate()
        child.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description="Knowledge Desk")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="migrate, then serve the API (GraphiQL at /graphql)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    commands.add_parser("migrate", help="upgrade the database to the newest migration")
    commands.add_parser("worker", help="execute runs from the Redis queue (needs REDIS_URL)")
    commands.add_parser("export-schema", help="print the SDL")
    commands.add_parser(
        "sweep-blobs",
        help="delete stored originals no document references and abandoned partial writes "
        "(what a crashed upload leaves; every API process also does this when it starts)",
    )
    commands.add_parser(
        "prune",
        help="delete finished runs, progress events and workspace events past their retention "
        "(workers, or the API process in the embedded default, also do this periodically)",
    )
    commands.add_parser(
        "vector-indexes",
        help="build pgvector's HNSW index for every stored vector dimension that has none "
        "(after a change to an embedding model of another dimension); writes go on meanwhile",
    )
    args = parser.parse_args(argv)

    settings = _settings()
    if args.command == "migrate":
        from app.migrate import upgrade

        upgrade(settings.database_url)
    elif args.command == "worker":
        import asyncio

        from app.logs import configure_logging
        from app.worker import run_worker

        configure_logging(settings.log_level)
        asyncio.run(run_worker(settings))
    elif args.command == "sweep-blobs":
        import asyncio

        from app.maintenance import sweep_blobs_once

        swept = asyncio.run(sweep_blobs_once(settings))
        print(
            f"released {len(swept.released)} unreferenced blobs, "
            f"removed {swept.temporary_removed} abandoned temporary files"
        )
    elif args.command == "prune":
        import asyncio

        from app.maintenance import prune_once

        pruned = asyncio.run(prune_once(settings))
        print(
            f"deleted {pruned.runs} runs, {pruned.progress_events} progress events, "
            f"{pruned.workspace_events} workspace events"
        )
    elif args.command == "vector-indexes":
        import asyncio

        from app.maintenance import create_vector_indexes

        built = asyncio.run(create_vector_indexes(settings))
        print(f"built {', '.join(built)}" if built else "no index missing")
    elif args.command == "export-schema":
        from resolvers.schema import build_schema

        print(build_schema(settings).as_str())
    elif args.command == "serve":
        import uvicorn

        from app.main import create_app
        from app.migrate import upgrade

        upgrade(settings.database_url)
        with local_model_server(settings):
            # Per-message deflate costs CPU on every subscription event for little gain on JSON.
            # ws_max_size: uvicorn refuses an oversized message (1009) before buffering it; the
            # app's own check (app/http.py) covers servers started otherwise.
            uvicorn.run(
                create_app(settings),
                host=args.host,
                port=args.port,
                ws_per_message_deflate=False,
                ws_max_size=settings.graphql_ws_max_message_bytes,
            )


if __name__ == "__main__":
    main()
