"""Benchmark: ingestion of real Python documentation pages with the local model (ADR 0053).

    uv run --frozen python bench/bench_ingestion.py [--full] [--pages N] [--concurrency N]
        [--min-kb K] [--db sqlite|postgres]

A script, not a test: it prints figures and asserts nothing about time. It builds the app with
`create_app(settings)` (inline runs, a fresh database, a temporary blob store), uses the model
server named by OLLAMA_HOST when it answers or starts the local one (tests/support), and
ingests the N smallest pages of the Python docs' `library/` of at least `--min-kb` KB of HTML
(by file size; real pages, each a document, through `queue_ingestion` + `runs.launch`, as an
upload does), `--concurrency` at a time. Quick by default (5 pages); `--full` ingests 100.

It prints documents per minute, the mean seconds of each stage (from the steps' start and end),
and where the time went: inside the model (the `model_seconds` each model step records around
its `services.llm` calls) versus everything else (extraction in its child process, chunking,
SQL, the run's own bookkeeping, and with concurrency > 1 the wait for the model's turn). The
goal is everything but the model under 10% of the total, measured at concurrency 1 where the
two add up to the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from app import migrate  # noqa: E402
from app.main import create_app  # noqa: E402
from base.auth.principal import Principal  # noqa: E402
from base.models.accounts import Membership  # noqa: E402
from base.models.documents import Chunk  # noqa: E402
from base.models.runs import RunStep  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench.common import add_size_flag, apply_sizes  # noqa: E402
from services import accounts, collections  # noqa: E402
from services.ingestion import STEPS  # noqa: E402
from tests.support import corpus  # noqa: E402
from tests.support.ingest import add_document, finished_run, start_ingestion  # noqa: E402
from tests.support.model_server import answers, model_server  # noqa: E402
from tests.support.services import postgres_server  # noqa: E402

MODEL_STEPS = ("EMBEDDING", "SUMMARIZING", "TAGGING")


def smallest_pages(count: int, min_kb: int = 0) -> list[Path]:
    pages = sorted(
        (
            p
            for p in (corpus.HTML_ROOT / "library").glob("*.html")
            if p.stat().st_size >= min_kb * 1024
        ),
        key=lambda p: p.stat().st_size,
    )
    return pages[:count]


async def ingest(settings: Settings, pages: list[Path], concurrency: int) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        deps = app.state.deps
        session = await accounts.sign_up(
            deps, name="Bench Owner", email="bench@example.com", password="a long pass phrase"
        )
        owner = session.user.id
        async with deps.db() as db:
            workspace = (
                await db.execute(select(Membership.workspace_id).where(Membership.user_id == owner))
            ).scalar_one()
        collection = await collections.create_collection(
            deps.for_principal(Principal(user_id=owner)), workspace_id=workspace, name="Docs"
        )
        documents = [
            await add_document(deps, workspace, collection.id, owner, p.read_bytes(), p.name)
            for p in pages
        ]
        gate = asyncio.Semaphore(concurrency)
        run_ids = []

        async def one(document_id):  # type: ignore[no-untyped-def]
            async with gate:
                run_id = await start_ingestion(deps, document_id, owner)
                run_ids.append(run_id)
                return await finished_run(deps, run_id, within=3600)

        started = time.perf_counter()
        ended = await asyncio.gather(*(one(d) for d in documents))
        wall = time.perf_counter() - started

        failed = [(r.id, r.error_code) for r in ended if r.status.value != "SUCCEEDED"]
        async with deps.db() as db:
            steps = (await db.execute(select(RunStep).where(RunStep.run_id.in_(run_ids)))).scalars()
            chunks = await db.scalar(select(func.count()).select_from(Chunk))
            stage_seconds: dict[str, list[float]] = defaultdict(list)
            sources: dict[str, Counter[str]] = defaultdict(Counter)
            model_seconds = 0.0
            for step in steps:
                if step.started_at and step.finished_at:
                    seconds = (step.finished_at - step.started_at).total_seconds()
                    stage_seconds[step.name].append(seconds)
                output = (step.output or {}).get("value") or {}
                if step.name in MODEL_STEPS:
                    model_seconds += float(output.get("model_seconds", 0))
                if step.name in ("SUMMARIZING", "TAGGING"):
                    sources[step.name][str(output.get("source"))] += 1

    busy = sum(sum(v) for v in stage_seconds.values())
    print(
        f"model server {settings.ollama_host}: chat {settings.chat_model}, "
        f"embeddings {settings.embed_model}; {settings.database_url.split(':')[0]}"
    )
    print(
        f"{len(pages)} pages ({sum(p.stat().st_size for p in pages) / 1e6:.2f} MB of HTML), "
        f"{chunks} chunks, concurrency {concurrency}; failed: {failed or 'none'}"
    )
    print(f"wall {wall:.1f} s: {len(pages) / wall * 60:.2f} documents per minute")
    print("stage          mean s   total s")
    for name in STEPS:
        values = stage_seconds.get(name, [])
        if values:
            print(f"{name:<14} {sum(values) / len(values):7.3f} {sum(values):9.1f}")
    other = wall - model_seconds
    print(
        f"steps busy {busy:.1f} s; inside the model {model_seconds:.1f} s "
        f"({model_seconds / wall:.1%} of wall); everything else {other:.1f} s "
        f"({other / wall:.1%} of wall)"
    )
    for name, counted in sources.items():
        print(f"{name} written by: {dict(counted)}")
    if concurrency == 1:
        outside_steps = wall - busy
        print(
            f"  of which between and around steps (run bookkeeping, queueing): "
            f"{outside_steps:.1f} s ({outside_steps / wall:.1%})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=None)
    parser.add_argument(
        "--min-kb", type=int, default=0, help="only pages of at least this many KB of HTML"
    )
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    add_size_flag(parser, quick={"pages": 5}, full={"pages": 100})
    args = apply_sizes(parser.parse_args())
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kd-bench-")))
        configured = os.environ.get("OLLAMA_HOST")
        host = configured if configured and answers(configured) else None
        host = host or stack.enter_context(model_server())
        if args.db == "postgres":
            url = Settings(database_url=stack.enter_context(postgres_server())).database_url
        else:
            url = f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"
        migrate.upgrade(url)
        settings = Settings(
            app_env="test",
            database_url=url,
            jwt_secret="bench-secret-0123456789abcdef0123456789",
            run_execution="inline",
            ollama_host=host,
            blob_root=str(workdir / "blobs"),
            llm_timeout_seconds=600,
        )
        asyncio.run(ingest(settings, smallest_pages(args.pages, args.min_kb), args.concurrency))


if __name__ == "__main__":
    main()
