"""The API process's collector settings (ADR 0098)."""

from __future__ import annotations

import gc

from app.main import YOUNG_COLLECTION_THRESHOLD, tune_garbage_collection


def test_the_young_generation_threshold_is_raised_and_the_older_ones_kept():
    _, middle, oldest = gc.get_threshold()
    tune_garbage_collection()
    tune_garbage_collection()  # once per process: a second app changes nothing
    assert YOUNG_COLLECTION_THRESHOLD == 10_000
    assert gc.get_threshold() == (10_000, middle, oldest)
    assert gc.get_freeze_count() > 0
