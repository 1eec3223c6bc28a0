"""Benchmark: what making the services' views from SQLAlchemy Core rows costs (ADR 0139).

    uv run --frozen python bench/bench_row_views.py [--rounds N] [--rows N]

A script, not a test: it prints figures and asserts nothing about time. No server: rows of a
document's columns (DocumentView, 18 columns, with its collection's 6 beside them, as a page of
the documents list or of search results reads them) and rows of a keyword ranking (chunk id,
document id, score) are read from an in-memory SQLite database, and each is turned into what
the services hand back, two ways in turns:

  by attribute   pydantic validating from the row's attributes, `row.name` per column (how the
                 services read them before)
  by key         services.views.view_of_row and collection_of_document (a dict of the row's
                 mapping), and the ranking's rows unpacked by position

Each figure is the median over `--rounds` of the process's CPU per row; the views made both ways
are checked equal first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `services`, ... importable
    sys.path.insert(0, str(ROOT))

from sqlalchemy import JSON, create_engine, literal, select  # noqa: E402

from services.collections import COLLECTION_OF_DOCUMENT, collection_of_document  # noqa: E402
from services.keyword_index import KeywordHit  # noqa: E402
from services.views import CollectionView, DocumentView, view_of_row  # noqa: E402


def document_rows(count: int) -> list[Any]:
    """`count` rows of DocumentView's columns and a collection's columns beside them."""
    engine = create_engine("sqlite://")
    at = datetime(2026, 12, 5, tzinfo=UTC)
    rows = []
    with engine.connect() as connection:
        for i in range(count):
            columns: dict[str, Any] = {
                "id": uuid.uuid4(),
                "workspace_id": uuid.UUID(int=1),
                "collection_id": uuid.UUID(int=2),
                "owner_id": uuid.UUID(int=3),
                "title": f"venv — Creation of virtual environments ({i})",
                "status": "READY",
                "stage": None,
                "error_code": None,
                "error_message": None,
                "content_type": "text/html",
                "original_filename": "venv.html",
                "size_bytes": 41_000 + i,
                "word_count": 2_400,
                "language": "en",
                "summary": "How to create and use virtual environments with venv.",
                "created_at": at,
                "updated_at": at + timedelta(minutes=i),
            }
            beside = {
                "collection_workspace_id": uuid.UUID(int=1),
                "collection_name": "Python docs",
                "collection_description": "The Python 3.11 documentation",
                "collection_created_by_id": uuid.UUID(int=3),
                "collection_created_at": at,
                "collection_updated_at": at,
            }
            assert [c.key for c in COLLECTION_OF_DOCUMENT] == list(beside)
            rows.append(
                connection.execute(
                    select(
                        *(literal(v).label(k) for k, v in (columns | beside).items()),
                        literal(["venv", "usage"], JSON).label("key_points"),
                    )
                ).one()
            )
    return rows


def ranking_rows(count: int) -> list[Any]:
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        first = select(
            literal(uuid.uuid4()).label("chunk_id"),
            literal(uuid.uuid4()).label("document_id"),
            literal(0.5).label("score"),
        )
        return list(connection.execute(first.union_all(*[first] * (count - 1))).all())


# The collection's columns beside a document, by the view's field names (as the services read
# them before ADR 0139).
BESIDE = tuple(column.key.removeprefix("collection_") for column in COLLECTION_OF_DOCUMENT)


def by_attribute_document(row: Any) -> tuple[DocumentView, CollectionView]:
    return DocumentView.model_validate(row), CollectionView(
        id=row.collection_id,
        **{name: getattr(row, f"collection_{name}") for name in BESIDE},
        document_count=None,
        last_updated_at=None,
    )


def by_key_document(row: Any) -> tuple[DocumentView, CollectionView]:
    return view_of_row(DocumentView, row), collection_of_document(row)


def by_attribute_ranking(rows: list[Any]) -> list[KeywordHit]:
    return [KeywordHit(r.chunk_id, r.document_id, float(r.score)) for r in rows]


def by_position_ranking(rows: list[Any]) -> list[KeywordHit]:
    return [
        KeywordHit(chunk_id, document_id, float(score)) for chunk_id, document_id, score in rows
    ]


def cpu_per_row(work: Callable[[], Any], rows: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        times.append((time.process_time() - started) / rows * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", type=int, default=2_000)
    args = parser.parse_args()
    documents = document_rows(args.rows)
    ranking = ranking_rows(args.rows)
    assert [by_attribute_document(r) for r in documents[:50]] == [
        by_key_document(r) for r in documents[:50]
    ]
    assert by_attribute_ranking(ranking) == by_position_ranking(ranking)
    cases = {
        "a document and its collection": (
            lambda: [by_attribute_document(r) for r in documents],
            lambda: [by_key_document(r) for r in documents],
        ),
        "a keyword ranking's row": (
            lambda: by_attribute_ranking(ranking),
            lambda: by_position_ranking(ranking),
        ),
    }
    print(f"CPU per row, median of {args.rounds} rounds of {args.rows} rows:")
    for name, (old, new) in cases.items():
        figures: dict[str, list[float]] = {"by attribute": [], "by key": []}
        for _ in range(3):  # the two ways take turns
            figures["by attribute"].append(cpu_per_row(old, args.rows, args.rounds))
            figures["by key"].append(cpu_per_row(new, args.rows, args.rounds))
        attribute = statistics.median(figures["by attribute"])
        key = statistics.median(figures["by key"])
        print(
            f"  {name:<30} by attribute {attribute:6.2f} us  by key {key:6.2f} us  "
            f"x{key / attribute:.2f}"
        )


if __name__ == "__main__":
    main()
