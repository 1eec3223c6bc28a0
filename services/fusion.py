"""Fusing rankings of different scales (ADRs 0063 and 0104).

HYBRID uses linear fusion (ADR 0104); reciprocal rank fusion, its rule before, stays for the
quality benchmark to measure against.

Reciprocal rank fusion merges by rank alone: score(item) = sum over rankings of weight / (k +
rank), rank counted from 1. Linear fusion merges by score: each ranking's scores scaled to 0-1
by its own best and worst, then a weighted sum. In both, an item missing from a ranking gets
nothing from it, and ties are broken by the best rank the item had in any ranking, then by the
item (reciprocal rank fusion: by its text; a UUID orders as its text does), so the fused order is
the same on every call (pagination relies on it).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]],
    *,
    k: int = DEFAULT_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[K, float]]:
    """The items of all `rankings` (each best first, without repeats) with their fused scores,
    best first."""
    if k < 0:
        raise ValueError("k must be 0 or more")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[K, float] = {}
    best_rank: dict[K, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], best_rank[pair[0]], str(pair[0])))


def linear_fusion(
    rankings: Sequence[Sequence[tuple[K, float]]], weights: Sequence[float]
) -> list[tuple[K, float]]:
    """The items of all `rankings` (each (item, score) best first, higher is better, without
    repeats) with their fused scores, best first: the weighted sum of each ranking's scores
    scaled to 0-1 (a ranking whose scores are all equal gives each of its items 1). Ties are
    broken by the item's best rank, then by the item itself (a UUID orders as its text)."""
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    scores: dict[K, float] = {}
    best_rank: dict[K, int] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        values = [score for _, score in ranking]
        low, high = min(values), max(values)
        span = high - low
        for rank, (item, score) in enumerate(ranking, start=1):
            scaled = (score - low) / span if span else 1.0
            scores[item] = scores.get(item, 0.0) + weight * scaled
            if rank < best_rank.get(item, rank + 1):
                best_rank[item] = rank
    return sorted(scores.items(), key=lambda pair: (-pair[1], best_rank[pair[0]], pair[0]))
