"""Reciprocal rank fusion and linear fusion: scores, ties, weights."""

import uuid

import pytest

from services.fusion import linear_fusion, reciprocal_rank_fusion


def test_scores_are_sums_of_reciprocal_ranks():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)
    assert fused == [
        ("a", 1 / 61 + 1 / 62),
        ("c", 1 / 63 + 1 / 61),
        ("b", 1 / 62),
    ]


def test_an_item_in_one_ranking_only_gets_that_ranking_alone():
    assert reciprocal_rank_fusion([["x"], []], k=1) == [("x", 0.5)]
    assert reciprocal_rank_fusion([[], []]) == []


def test_ties_go_to_the_better_single_rank_then_the_item_text():
    fused = reciprocal_rank_fusion([["q", "p"], ["p", "q"]], k=60)
    assert fused[0][1] == fused[1][1]
    assert [item for item, _ in fused] == ["p", "q"]  # equal scores and best ranks: by text
    # n is second twice (1/62 + 1/62); m and o are first once and third once (1/61 + 1/63),
    # which is more; n's weight-0 third ranking adds nothing but puts it on the list.
    fused = reciprocal_rank_fusion([["o", "n", "m"], ["m", "n", "o"], ["n"]], weights=[1, 1, 0])
    assert [item for item, _ in fused] == ["m", "o", "n"]


def test_uuids_fuse_deterministically():
    ids = [uuid.UUID(int=i) for i in range(4)]
    first = reciprocal_rank_fusion([ids, list(reversed(ids))])
    again = reciprocal_rank_fusion([ids, list(reversed(ids))])
    assert first == again
    # 0 and 3 score 1/61 + 1/64, more than 1 and 2 (1/62 + 1/63); each pair ties, by text.
    assert [item for item, _ in first] == [ids[0], ids[3], ids[1], ids[2]]


def test_weights_scale_each_ranking():
    fused = reciprocal_rank_fusion([["a"], ["b"]], k=0, weights=[1.0, 3.0])
    assert fused == [("b", 3.0), ("a", 1.0)]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="one weight per ranking"):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="k must be 0 or more"):
        reciprocal_rank_fusion([["a"]], k=-1)


def test_linear_fusion_scales_each_ranking_then_weighs_it():
    keyword = [("a", 12.0), ("b", 7.0), ("c", 2.0)]  # scaled: 1, 0.5, 0
    semantic = [("c", 0.9), ("b", 0.7), ("d", 0.4)]  # scaled: 1, 0.6, 0
    fused = linear_fusion([keyword, semantic], weights=[0.25, 0.75])
    assert fused == [
        ("c", pytest.approx(0.75)),
        ("b", pytest.approx(0.25 * 0.5 + 0.75 * 0.6)),
        ("a", pytest.approx(0.25)),
        ("d", 0.0),
    ]


def test_linear_fusion_of_equal_scores_and_empty_rankings():
    # One hit, or hits of one score, scale to 1; a missing ranking adds nothing.
    assert linear_fusion([[("x", 3.0)], []], weights=[0.2, 0.8]) == [("x", 0.2)]
    assert linear_fusion([[], [("p", 0.5), ("q", 0.5)]], weights=[0.2, 0.8]) == [
        ("p", 0.8),
        ("q", 0.8),
    ]
    assert linear_fusion([[], []], weights=[0.5, 0.5]) == []


def test_linear_fusion_ties_go_to_the_better_single_rank_then_the_text():
    # Both score 0.5: q is first in the first ranking, p first in the second; equal best ranks.
    fused = linear_fusion([[("q", 2.0), ("p", 1.0)], [("p", 2.0), ("q", 1.0)]], weights=[1, 1])
    assert [item for item, _ in fused] == ["p", "q"]
    # n (second in both) ties m (first, then last) on score: m's best rank wins.
    fused = linear_fusion(
        [[("m", 3.0), ("n", 2.0), ("o", 1.0)], [("o", 3.0), ("n", 2.0), ("m", 1.0)]],
        weights=[1, 1],
    )
    assert [item for item, _ in fused] == ["m", "o", "n"]
    with pytest.raises(ValueError, match="one weight per ranking"):
        linear_fusion([[("a", 1.0)]], weights=[1.0, 2.0])
