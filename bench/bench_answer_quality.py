"""Benchmark: answer quality of Ask with the local model, with the citation check and without it.

    uv run --frozen python bench/bench_answer_quality.py [--full] [--questions N] [--pages N]
        [--answer-tokens N] [--ollama-host URL]

Quick by default: 20 questions (the 8 unanswerable and the first 12 answerable) over the 66 pages
the questions name. `--full`: all 73 questions over 300 pages (those 66 and the smallest other
pages as distractors), the recorded figures.

A script, not a test: it prints figures. The corpus is bench/search_corpus.py's: pages of the
Python 3.11 documentation ingested by the ingestion's own step functions into a SQLite file kept
under var/bench-search/. Each question is asked on a fresh conversation with `services.chat.
ask_question` (stored, scoped to the workspace) and answered by the `answer_question` run's own
step functions (RETRIEVING, PROMPTING, GENERATING, CHECKING, STORING) called in order, on the
local model (SmolLM2-135M) with greedy decoding. Answers are capped at --answer-tokens (128 by
default, to keep the run under an hour on 2 busy cores; the product's default is 256).

Answers are generated with the cosine abstention off (ASK_MIN_COSINE -1), so that one pass
gives every threshold: an answer counts as NOT_IN_DOCUMENTS at threshold t when its question's
best passage cosine is under t, else it keeps what the model did (answered, or abstained itself).

Figures, per column:
* with the check: the citations kept by the check (ADR 0071: QUOTED and MARKED citations found
  in their passage, and MATCHED sentences);
* without the check: every [n] marker the model wrote that names a numbered passage, shown as
  written, as the tools that do not check show them (a number that names no passage is dropped,
  as Onyx drops it).
For each: answerable questions answered (not abstained; goal >= 90%), answerable questions with
at least one citation to a page that answers them, citations shown that the check would drop
(unsupported), and unanswerable questions abstained (goal >= 80%). Then the abstention sweep
over thresholds, and the cosines of the two kinds of question.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from base.models.chat import Citation, Message  # noqa: E402
from bench.common import add_size_flag, apply_sizes, percentile  # noqa: E402
from bench.search_corpus import (  # noqa: E402
    WORKSPACE_ID,
    corpus_database,
    corpus_pages,
    questions,
)
from services import answers, chat, search  # noqa: E402
from services.citations import read_citations  # noqa: E402
from services.deps import ServiceDeps  # noqa: E402
from services.search_text import query_terms  # noqa: E402
from tests.support.model_server import model_server  # noqa: E402

THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
STEPS = (
    answers.retrieving,
    answers.prompting,
    answers.generating,
    answers.checking,
    answers.storing,
)


class NoLaunch:
    """The bench calls the run's step functions itself."""

    async def enqueue(self, run_id: uuid.UUID) -> None:
        return None


@dataclasses.dataclass
class Outcome:
    question: str
    pages: set[str]
    answerable: bool
    state: str
    text: str
    top_cosine: float | None
    kept_pages: list[str]  # a page per citation kept by the check
    kept_origins: list[str]
    written_pages: list[str]  # a page per [n] the model wrote naming a numbered passage
    written_unsupported: int  # of those, the ones the check drops
    marks: int  # citations the model wrote ([n], with a quote or not)
    dropped: int
    seconds: float


async def answer_one(
    deps: ServiceDeps, pages_by_id: dict[uuid.UUID, str], q: dict[str, Any]
) -> Outcome:
    began = time.perf_counter()
    conversation = await chat.create_conversation(deps, workspace_id=WORKSPACE_ID)
    asked = await chat.ask_question(
        deps, conversation_id=conversation.id, question=q["q"], scope=chat.AskScope()
    )
    message_id = str(asked.answer.id)
    for step in STEPS:
        await step(deps, message_id=message_id)
    async with deps.db() as session:
        row = await session.get(Message, asked.answer.id)
        assert row is not None and row.state is not None
        kept = (
            (await session.execute(select(Citation).where(Citation.message_id == row.id)))
            .scalars()
            .all()
        )
    numbered = answers.numbered_passages(list(row.passages))
    check = answers.checked(
        row.text, list(row.passages), threshold=deps.settings.ask_citation_threshold
    )
    written = [m for m in read_citations(row.text) if m.number in numbered]
    dropped_marks = {(d.mark.number, d.mark.quote) for d in check.dropped}
    return Outcome(
        question=q["q"],
        pages=set(q.get("pages", [])),
        answerable=q.get("answerable", True),
        state=row.state.value,
        text=row.text,
        top_cosine=row.top_cosine,
        kept_pages=[pages_by_id.get(c.document_id, "?") for c in kept if c.document_id],
        kept_origins=[c.origin for c in kept],
        written_pages=[
            pages_by_id.get(uuid.UUID(numbered[m.number]["document_id"]), "?") for m in written
        ],
        written_unsupported=sum((m.number, m.quote) in dropped_marks for m in written),
        marks=len(read_citations(row.text)),
        dropped=row.dropped_citations,
        seconds=time.perf_counter() - began,
    )


def abstained(outcome: Outcome, threshold: float) -> bool:
    if outcome.state == "NOT_IN_DOCUMENTS":
        return True
    return outcome.top_cosine is not None and outcome.top_cosine < threshold


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "n/a"


def report(outcomes: list[Outcome], threshold: float) -> None:
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    answered = [o for o in answerable if not abstained(o, threshold)]
    shown_answerable = [o for o in outcomes if not abstained(o, threshold)]

    def cited(o: Outcome, pages: list[str]) -> bool:
        return bool(o.pages & set(pages))

    kept_total = sum(len(o.kept_pages) for o in shown_answerable)
    written_total = sum(len(o.written_pages) for o in shown_answerable)
    unsupported = sum(o.written_unsupported for o in shown_answerable)
    made = sum(o.marks for o in shown_answerable)
    print(f"\nAt ASK_MIN_COSINE {threshold}:")
    print(f"{'':<58}{'with the check':>18}{'without':>18}")
    rows = [
        ("answerable questions answered (goal >= 90%)", share(len(answered), len(answerable))),
        (
            "answerable with >= 1 citation to an answering page",
            share(sum(cited(o, o.kept_pages) for o in answered), len(answerable)),
            share(sum(cited(o, o.written_pages) for o in answered), len(answerable)),
        ),
        (
            "answers with >= 1 citation shown",
            share(sum(bool(o.kept_pages) for o in shown_answerable), len(shown_answerable)),
            share(sum(bool(o.written_pages) for o in shown_answerable), len(shown_answerable)),
        ),
        ("citations shown", str(kept_total), str(written_total)),
        ("citations shown that do not hold their quote", "0", share(unsupported, written_total)),
        (
            "unanswerable questions abstained (goal >= 80%)",
            share(sum(abstained(o, threshold) for o in unanswerable), len(unanswerable)),
        ),
        (
            "unanswerable answered with a citation shown",
            share(
                sum(bool(o.kept_pages) for o in unanswerable if not abstained(o, threshold)),
                len(unanswerable),
            ),
            share(
                sum(bool(o.written_pages) for o in unanswerable if not abstained(o, threshold)),
                len(unanswerable),
            ),
        ),
    ]
    for label, *values in rows:
        with_check = values[0]
        without = values[1] if len(values) > 1 else with_check
        print(f"{label:<58}{with_check:>18}{without:>18}")
    dropped = sum(o.dropped for o in shown_answerable)
    print(f"model-written citations dropped by the check: {share(dropped, made)}")
    origins: dict[str, int] = {}
    for o in shown_answerable:
        for origin in o.kept_origins:
            origins[origin] = origins.get(origin, 0) + 1
    print(f"kept citations by origin: {origins or 'none'}")


def sweep(outcomes: list[Outcome]) -> None:
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    print(f"\n{'ASK_MIN_COSINE':<16}{'answerable answered':>22}{'unanswerable abstained':>26}")
    for t in THRESHOLDS:
        a = sum(not abstained(o, t) for o in answerable)
        u = sum(abstained(o, t) for o in unanswerable)
        print(f"{t:<16}{share(a, len(answerable)):>22}{share(u, len(unanswerable)):>26}")
    for label, group in (("answerable", answerable), ("unanswerable", unanswerable)):
        cosines = [o.top_cosine for o in group if o.top_cosine is not None]
        low, mid = percentile(cosines, 10), percentile(cosines, 50)
        print(
            f"top cosine of the {label}: min {min(cosines):.3f}, p10 {low:.3f}, "
            f"p50 {mid:.3f}, max {max(cosines):.3f}"
        )
    model_abstained = [o.question for o in answerable if o.state == "NOT_IN_DOCUMENTS"]
    print(f"answerable questions the model itself declined: {len(model_abstained)}")


async def keyword_rule(deps: ServiceDeps, chosen: list[dict[str, Any]]) -> None:
    """The abstention rule without vectors (the embedding model down): KEYWORD retrieval, and a
    passage holding more than half of the question's words (no model call)."""
    kept = {True: 0, False: 0}
    totals = {True: 0, False: 0}
    for q in chosen:
        answerable = q.get("answerable", True)
        retrieval = await search.retrieve_passages(
            deps,
            workspace_id=WORKSPACE_ID,
            query=q["q"],
            mode=search.SearchMode.KEYWORD,
            limit=deps.settings.ask_retrieve_passages,
        )
        relevant = answers.relevant_enough(
            retrieval.passages,
            None,
            min_cosine=deps.settings.ask_min_cosine,
            terms=query_terms(q["q"]),
        )
        totals[answerable] += 1
        kept[answerable] += relevant if answerable else not relevant
    print(
        f"\nWithout vectors (keyword retrieval, a passage holding more than half of the "
        f"question's words): answerable answered "
        f"{share(kept[True], totals[True])}, unanswerable abstained "
        f"{share(kept[False], totals[False])}"
    )


async def bench(args: argparse.Namespace, ollama_host: str) -> None:
    pages = corpus_pages(args.pages)
    chosen = [q for q in questions() if not q.get("answerable", True)]
    chosen += [q for q in questions() if q.get("answerable", True)][: args.questions - len(chosen)]
    async with corpus_database(
        pages, ollama_host=ollama_host, embed_model=args.embed_model
    ) as corpus:
        settings = corpus.deps.settings.model_copy(
            update={
                "ask_answer_tokens": args.answer_tokens,
                "ask_min_cosine": -1.0,
                "llm_timeout_seconds": 600.0,
            }
        )
        deps = dataclasses.replace(corpus.deps, settings=settings, launcher=NoLaunch())
        if args.keyword_rule_only:
            await keyword_rule(deps, chosen)
            return
        outcomes = []
        for n, q in enumerate(chosen, 1):
            outcome = await answer_one(deps, corpus.pages, q)
            outcomes.append(outcome)
            print(
                f"[{n}/{len(chosen)}] {outcome.state:<17} cos {outcome.top_cosine or 0:.3f} "
                f"kept {len(outcome.kept_pages)} written {len(outcome.written_pages)} "
                f"dropped {outcome.dropped} ({outcome.seconds:.0f} s) {q['q'][:50]!r}",
                flush=True,
            )
        print(
            f"\n{len(chosen)} questions over {len(pages)} pages; answers of at most "
            f"{args.answer_tokens} tokens by {settings.chat_model}, greedy; "
            f"answer time p50 {percentile([o.seconds for o in outcomes], 50):.0f} s"
        )
        for threshold in sorted({0.0, args.threshold}):
            report(outcomes, threshold)
        sweep(outcomes)
        await keyword_rule(deps, chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, help="questions asked (unanswerable first)")
    parser.add_argument("--pages", type=int, help="pages in the corpus")
    parser.add_argument("--answer-tokens", type=int, default=128)
    parser.add_argument("--threshold", type=float, default=0.45, help="ASK_MIN_COSINE reported")
    parser.add_argument("--embed-model", default="all-minilm")
    parser.add_argument("--ollama-host", help="a running model server (else one is started)")
    parser.add_argument(
        "--keyword-rule-only",
        action="store_true",
        help="only the abstention rule without vectors (no answers are generated)",
    )
    add_size_flag(
        parser, quick={"questions": 20, "pages": 66}, full={"questions": 73, "pages": 300}
    )
    args = apply_sizes(parser.parse_args(argv))
    if args.ollama_host:
        asyncio.run(bench(args, args.ollama_host))
    else:
        with model_server() as host:
            asyncio.run(bench(args, host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
