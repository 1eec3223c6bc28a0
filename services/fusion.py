"""Reciprocal rank fusion (ADR 0063): rankings of different scales merged by rank alone.

score(item) = sum over rankings of weight / (k + rank), rank counted from 1. An item missing from
a ranking gets nothing from it. Ties are broken by the best rank the item had in any ranking,
then by the item's text, so the fused order is the same on every call (pagination relies on it).
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
