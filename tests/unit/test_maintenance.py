"""When the embedded default analyses SQLite again (ADR 0082)."""

import pytest

from app.maintenance import statistics_outdated


@pytest.mark.parametrize(
    ("analysed_with", "documents", "outdated"),
    [
        (None, 0, True),  # never analysed in this process
        (0, 100, False),  # small moves do not matter
        (0, 101, True),
        (1000, 1250, False),  # a quarter, not more
        (1000, 1251, True),
        (1000, 749, True),
        (10_000, 10_100, False),
        (10_000, 12_501, True),
        (10_000, 7_000, True),
    ],
)
def test_statistics_are_outdated_after_a_quarter_and_at_least_100_documents(
    analysed_with: int | None, documents: int, outdated: bool
) -> None:
    assert statistics_outdated(analysed_with, documents) is outdated
