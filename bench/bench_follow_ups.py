"""Benchmark: Ask's retrieval of a question asked after another in the same conversation, with
the question alone (how a first question is retrieved) as the baseline, in the same run.

    uv run --frozen python bench/bench_follow_ups.py [--full] [--pages N]
        [--db sqlite|postgres|both] [--ollama-host URL]

A script, not a test: it prints figures. The first conversations are
bench/quality/follow_ups.json: two questions each over the quality corpus of
bench_search_quality.py (ingested into var/bench-search/ once and reused; PostgreSQL gets a
copy). Every page they name is among the 66 that questions.json names. Three kinds of second
question: "follow-up" leans on the first ("and how do I activate it on Windows?"), "new topic"
stands alone, "unanswerable" asks what the pages do not hold, after a question they answer.

For each second question, with Ask's own settings (ASK_RETRIEVE_PASSAGES passages,
ASK_MIN_COSINE, ASK_FOLLOW_UP_MIN_COSINE):
  alone            services.search.retrieve_in_conversation without the question before it,
                   and services.answers.relevant_enough without its context: how the question
                   was retrieved and judged before ADR 0122 (and how a first question still is);
  in conversation  the same two functions given the question before it: what Ask does.
It prints hit@1, hit@5 and MRR of the first passage from an answering page, and how many
questions pass the abstention rule (answered: higher is better for follow-ups and new topics,
lower for unanswerable ones). Then the alternatives measured for ADR 0122: other shares of the
pair in the fusion (IN_CONVERSATION_SHARE; 1.0 is the pair alone), and the cosines that the
follow-up floor separates.

Then bench/quality/follow_up_chains.json: three questions each ("chain": the second and third
both lean on the first's subject; "switch": the second names a new subject, the third leans on
it; "new topic": the third stands alone). The third is retrieved and judged with each choice of
earlier questions: none, the one just before (ADR 0122), the two before, and
services.answers.question_context's (ADR 0123: further back while the one taken leaned on
what came before it, its own top cosine under ASK_MIN_COSINE), with other bars as
alternatives. Quick by default (the 66 named pages, SQLite); `--full` gives the
recorded figures (300 pages, SQLite and PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_search_quality import HEADER, first_hit, model_host, row  # noqa: E402
from bench.common import add_size_flag, apply_sizes  # noqa: E402
from bench.search_corpus import (  # noqa: E402
    WORKSPACE_ID,
    corpus_database,
    corpus_pages,
    postgres_copy,
)
from services import answers, search  # noqa: E402
from services.deps import ServiceDeps  # noqa: E402
from services.search_text import query_terms  # noqa: E402

CONVERSATIONS = ROOT / "bench" / "quality" / "follow_ups.json"
KINDS = ("follow-up", "new topic", "unanswerable")
CHAINS = ROOT / "bench" / "quality" / "follow_up_chains.json"
CHAIN_KINDS = ("chain", "switch", "new topic")
BARS = (0.50, 0.55)


def conversations() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(CONVERSATIONS.read_text())["conversations"]
    return loaded


async def judged(
    deps: ServiceDeps, pages: dict[Any, str], question: str, context: list[str], wanted: set[str]
) -> tuple[int | None, bool, float | None]:
    """`question` retrieved with `context` and judged as Ask does: (rank of the first answering
    page, answered, the question's own top cosine)."""
    settings = deps.settings
    retrieval = await search.retrieve_in_conversation(
        deps,
        workspace_id=WORKSPACE_ID,
        question=question,
        context=context,
        limit=settings.ask_retrieve_passages,
    )
    assert not retrieval.degraded, "the embedding model failed during the benchmark"
    answered = answers.relevant_enough(
        retrieval.passages,
        retrieval.top_cosine,
        min_cosine=settings.ask_min_cosine,
        terms=query_terms(question),
        context_cosine=retrieval.context_cosine,
        follow_up_min_cosine=settings.ask_follow_up_min_cosine,
    )
    ranked = [pages[p.document_id] for p in retrieval.passages]
    return first_hit(ranked, wanted) if wanted else None, answered, retrieval.top_cosine


async def asked(
    deps: ServiceDeps, pages: dict[Any, str], conversation: dict[str, Any], in_context: bool
) -> tuple[int | None, bool, float | None]:
    """A two-question conversation's second question, with the first or alone."""
    context = [conversation["first"]] if in_context else []
    return await judged(deps, pages, conversation["then"], context, set(conversation["pages"]))


async def evaluate(label: str, deps: ServiceDeps, pages: dict[Any, str]) -> None:
    settings = deps.settings
    every = conversations()
    print(
        f"\n== {label}: {len(every)} conversations; {settings.ask_retrieve_passages} passages, "
        f"ASK_MIN_COSINE {settings.ask_min_cosine}, ASK_FOLLOW_UP_MIN_COSINE "
        f"{settings.ask_follow_up_min_cosine}, the pair's share "
        f"{search.IN_CONVERSATION_SHARE}"
    )
    results: dict[tuple[str, str], list[tuple[int | None, bool, float | None]]] = {}
    seconds: dict[str, list[float]] = {}
    for conversation in every:
        for way, in_context in (("alone", False), ("in conversation", True)):
            began = time.perf_counter()
            result = await asked(deps, pages, conversation, in_context)
            seconds.setdefault(way, []).append(time.perf_counter() - began)
            results.setdefault((conversation["kind"], way), []).append(result)
    for kind in KINDS:
        print(f"  {kind} ({sum(c['kind'] == kind for c in every)})")
        print(HEADER + "  answered")
        for way in ("alone", "in conversation"):
            got = results[kind, way]
            answered = f"{sum(a for _, a, _ in got)}/{len(got)}"
            print(row(f"  {way}", [r for r, _, _ in got], answered))

    print(
        "  retrieval time per question (ms, median; query vectors cached after the first use): "
        + ", ".join(f"{way} {statistics.median(t) * 1000:.1f}" for way, t in seconds.items())
    )
    print("  alternatives: the pair's share in the fusion (follow-up / new topic hit@5, MRR)")
    chosen = search.IN_CONVERSATION_SHARE
    try:
        for share in (0.3, 0.5, 0.7, 1.0):
            search.IN_CONVERSATION_SHARE = share
            figures = []
            for kind in ("follow-up", "new topic"):
                ranks = [(await asked(deps, pages, c, True))[0] for c in every if c["kind"] == kind]
                hit5 = sum(r is not None and r <= 5 for r in ranks) / len(ranks)
                mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
                figures.append(f"{hit5:.3f}, {mrr:.3f}")
            print(f"    share {share:.1f}: follow-up {figures[0]}; new topic {figures[1]}")
    finally:
        search.IN_CONVERSATION_SHARE = chosen

    alone = {kind: [c for _, _, c in results[kind, "alone"] if c is not None] for kind in KINDS}
    print(
        "  the second question's own top cosine: follow-ups min "
        f"{min(alone['follow-up']):.3f}, unanswerable max {max(alone['unanswerable']):.3f}; "
        "follow-ups under ASK_FOLLOW_UP_MIN_COSINE: "
        f"{sum(c < settings.ask_follow_up_min_cosine for c in alone['follow-up'])}"
    )


async def evaluate_chains(label: str, deps: ServiceDeps, pages: dict[Any, str]) -> None:
    """The third question of bench/quality/follow_up_chains.json, retrieved with each choice of
    earlier questions: none, the one just before (ADR 0122), the two before, and
    `answers.question_context`'s (ADR 0123: further back while the one taken leaned on its
    own; the second question's own top cosine is its retrieval alone, as Ask records it)."""
    settings = deps.settings
    every: list[dict[str, Any]] = json.loads(CHAINS.read_text())["conversations"]
    print(
        f"\n== {label}: the third question of {len(every)} three-question conversations "
        f"(at most {answers.MOST_CONTEXT_QUESTIONS} earlier questions)"
    )
    ways = ("alone", "the one before", "the two before", "while they lean") + tuple(
        f"  alternative: leaning under {bar:.2f}" for bar in BARS
    )
    results: dict[tuple[str, str], list[tuple[int | None, bool]]] = {}
    widths: dict[str, list[int]] = {}
    seconds: dict[str, list[float]] = {}
    for conversation in every:
        first, second, third = conversation["turns"]
        own = await search.retrieve_in_conversation(
            deps, workspace_id=WORKSPACE_ID, question=second, limit=settings.ask_retrieve_passages
        )
        assert own.top_cosine is not None
        seconds.setdefault(conversation["kind"], []).append(own.top_cosine)
        chosen = answers.question_context(
            [(second, own.top_cosine), (first, None)], min_cosine=settings.ask_min_cosine
        )
        widths.setdefault(conversation["kind"], []).append(len(chosen))
        contexts = [[], [second], [second, first], chosen]
        for bar in BARS:  # alternatives: another cosine at which a question stood on its own
            contexts.append(
                answers.question_context([(second, own.top_cosine), (first, None)], min_cosine=bar)
            )
        for way, context in zip(ways, contexts, strict=True):
            rank, answered, _ = await judged(
                deps, pages, third, context, set(conversation["pages"])
            )
            results.setdefault((conversation["kind"], way), []).append((rank, answered))
    for kind in CHAIN_KINDS:
        taken = widths[kind]
        print(
            f"  {kind} ({len(taken)}; the rule took both earlier questions for "
            f"{sum(n == 2 for n in taken)})"
        )
        print(HEADER + "  answered")
        for way in ways:
            got = results[kind, way]
            print(row(f"  {way}", [r for r, _ in got], f"{sum(a for _, a in got)}/{len(got)}"))
    print(
        "  the second question's own top cosine (min / median / max): "
        + "; ".join(
            f"{kind} {min(c):.3f} / {statistics.median(c):.3f} / {max(c):.3f}"
            for kind, c in seconds.items()
        )
    )


async def run(args: argparse.Namespace, host: str) -> None:
    async with corpus_database(
        corpus_pages(args.pages), ollama_host=host, embed_model="all-minilm"
    ) as corpus:
        if args.db in ("sqlite", "both"):
            await evaluate("SQLite (FTS5)", corpus.deps, corpus.pages)
            await evaluate_chains("SQLite (FTS5)", corpus.deps, corpus.pages)
        if args.db in ("postgres", "both"):
            async with postgres_copy(corpus.deps, host, embed_model="all-minilm") as target:
                await evaluate("PostgreSQL (tsvector)", target, corpus.pages)
                await evaluate_chains("PostgreSQL (tsvector)", target, corpus.pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default=None)
    parser.add_argument("--ollama-host", default=None)
    parser.add_argument("--pages", type=int, default=None, help="the quality corpus to use")
    add_size_flag(parser, quick={"pages": 66, "db": "sqlite"}, full={"pages": 300, "db": "both"})
    args = apply_sizes(parser.parse_args())
    with model_host(args.ollama_host) as host:
        asyncio.run(run(args, host))


if __name__ == "__main__":
    main()
