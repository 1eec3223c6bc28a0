"""For the search benchmark (PostgreSQL): a passage's highlight ranges from the index's
positions mapped through character offsets, against `ts_headline` (how the app marked them
before ADR 0141), on the seeded corpus. Prints how many passages get the same ranges both ways
and what each costs the database for a page of 25 passages. The offsets are computed here from
`ts_parse` on their own, with the token types INDEXING uses (`services.fulltext`), so the check
does not read the app's table.

The rules checked (docs/testing.md, "Search latency", twenty-eighth session): `to_tsvector`
gives a position to each token of a type the configuration maps (every type but blank, tag,
protocol and entity); the tokens other than compound ones (a hyphenated word or a URL, whose
parts follow them as tokens of their own) cover the text in order, so a running sum of their
lengths is each token's offset; `ts_headline` with HighlightAll marks every token whose lexeme
is one of the query's, except compound tokens, whose parts carry the marks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from base.models.search import POSTGRESQL_TEXT_CONFIG as CONFIG
from services.deps import ServiceDeps
from services.fulltext import COMPOUND_TOKEN_TYPES, UNMAPPED_TOKEN_TYPES
from services.search_text import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    marked_ranges,
    query_terms,
    tsquery_text,
)

UNMAPPED_TOKENS = UNMAPPED_TOKEN_TYPES
COMPOUND_TOKENS = COMPOUND_TOKEN_TYPES

_MATCHES = text(
    f"SELECT chunk_id FROM chunk_search WHERE search_vector @@ to_tsquery('{CONFIG}', :tsq) "
    "ORDER BY chunk_id LIMIT 25"
)
_TEXT = text("SELECT c.id, c.text FROM chunks AS c WHERE c.id = ANY(:ids)")
_HEADLINES = text(
    f"""SELECT c.id, translate(c.text, './', '  ') AS indexed,
    ts_headline('{CONFIG}', translate(c.text, './', '  '), (SELECT to_tsquery('{CONFIG}', :tsq)),
        'StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, HighlightAll=true') AS marked
    FROM chunks AS c WHERE c.id = ANY(:ids)"""
)
# Each of the text's positions' start and end in the text (-1 for a compound token), and how
# many positions the headings take: the text's follow them (weight A first).
_OFFSETS = text(
    f"""SELECT c.id,
    array_agg(CASE WHEN p.tokid IN {COMPOUND_TOKENS} THEN -1 ELSE p.start END ORDER BY p.ord)
      FILTER (WHERE p.tokid NOT IN {UNMAPPED_TOKENS}) AS starts,
    array_agg(CASE WHEN p.tokid IN {COMPOUND_TOKENS} THEN -1
                   ELSE p.start + length(p.token) END ORDER BY p.ord)
      FILTER (WHERE p.tokid NOT IN {UNMAPPED_TOKENS}) AS ends,
    (SELECT count(*) FROM ts_parse('default', translate(coalesce(
        (SELECT string_agg(h, ' ') FROM json_array_elements_text(c.heading_path) AS h), ''),
        './', '  ')) AS hp(tokid, token) WHERE hp.tokid NOT IN {UNMAPPED_TOKENS}) AS headings
    FROM chunks AS c, LATERAL (
      SELECT tokid, token, ord, coalesce(sum(length(token)) FILTER (
          WHERE tokid NOT IN {COMPOUND_TOKENS}) OVER (
          ORDER BY ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS start
      FROM ts_parse('default', translate(c.text, './', '  '))
          WITH ORDINALITY AS t(tokid, token, ord)
    ) AS p
    WHERE c.id = ANY(:ids) GROUP BY c.id"""
)
# The text's (weight B) positions of the query's lexemes, per passage.
_POSITIONS = text(
    f"""SELECT s.chunk_id, array_agg(pos ORDER BY pos) AS positions
    FROM chunk_search AS s, unnest(ts_filter(s.search_vector, '{{b}}')) AS v,
        unnest(v.positions) AS pos
    WHERE s.chunk_id = ANY(:ids) AND v.lexeme = ANY(CAST(
        (SELECT tsvector_to_array(to_tsvector('{CONFIG}', :words))) AS text[]))
    GROUP BY s.chunk_id"""
)


def _merged(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _ranges(offsets: Any, positions: Sequence[int]) -> list[tuple[int, int]]:
    starts, ends, headings = offsets.starts, offsets.ends, offsets.headings
    spans = [(starts[p - headings - 1], ends[p - headings - 1]) for p in positions]
    return _merged([span for span in spans if span[0] >= 0])


async def _median_ms(deps: ServiceDeps, statement: Any, params: dict[str, Any]) -> float:
    times = []
    async with deps.db() as session:
        for _ in range(30):
            began = time.perf_counter()
            (await session.execute(statement, params)).all()
            times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


async def highlight_offsets(deps: ServiceDeps, queries: Sequence[str]) -> None:
    same = differ = 0
    examples: list[Any] = []
    timings: dict[str, list[float]] = {"text": [], "ts_headline": [], "positions": []}
    for query in queries:
        terms = query_terms(query)
        if not terms:
            continue
        tsq, words = tsquery_text(terms), " ".join(terms)
        async with deps.db() as session:
            ids = list((await session.execute(_MATCHES, {"tsq": tsq})).scalars())
            if not ids:
                continue
            marked = {
                r.id: marked_ranges(r.marked, r.indexed)
                for r in await session.execute(_HEADLINES, {"ids": ids, "tsq": tsq})
            }
            offsets = {r.id: r for r in await session.execute(_OFFSETS, {"ids": ids})}
            positions = {
                r.chunk_id: r.positions
                for r in await session.execute(_POSITIONS, {"ids": ids, "words": words})
            }
        for chunk_id in ids:
            derived = _ranges(offsets[chunk_id], positions.get(chunk_id, []))
            if derived == marked[chunk_id]:
                same += 1
            else:
                differ += 1
                if len(examples) < 3:
                    examples.append((query, chunk_id, marked[chunk_id][:4], derived[:4]))
        if len(timings["text"]) < 10:
            timings["text"].append(await _median_ms(deps, _TEXT, {"ids": ids}))
            timings["ts_headline"].append(
                await _median_ms(deps, _HEADLINES, {"ids": ids, "tsq": tsq})
            )
            timings["positions"].append(
                await _median_ms(deps, _POSITIONS, {"ids": ids, "words": words})
            )
    print(
        f"  highlights from stored offsets against ts_headline: the same ranges for {same} "
        f"passages, different for {differ}"
    )
    for example in examples:
        print(f"    differs: {example}")
    text_ms = statistics.median(timings["text"])
    for name in ("ts_headline", "positions"):
        ms = statistics.median(timings[name])
        print(
            f"  {name:<11} for a page of 25 passages: {ms:.2f} ms of statement time "
            f"({ms - text_ms:.2f} above reading their text, {text_ms:.2f})"
        )
