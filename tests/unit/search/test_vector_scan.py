"""The in-memory side of semantic search: exact scan, masks inside it, per-document collapse,
incremental rows and centroids."""

import asyncio
import os
import threading
import uuid

import numpy as np
import pytest

from services.vector_index import (
    OFF_LOOP_ROWS,
    WorkspaceVectors,
    best_row_per_document,
    limit_scan_threads,
    nearest_documents,
    normalised,
    scan,
    top_rows,
)
from tests.support.blas import blas_threads

DOCS = [uuid.UUID(int=1000 + i) for i in range(10)]


def _packed(ids) -> bytes:
    """Document ids as the search reads them for a filter: 16 bytes each."""
    return b"".join(i.bytes for i in ids)


def _vectors(rows: int, *, dimension: int = 8, docs: int = 10, seed: int = 7):
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((rows, dimension)).astype(np.float32)
    vectors = WorkspaceVectors(dimension)
    chunk_ids = [uuid.UUID(int=i + 1) for i in range(rows)]
    document_ids = [DOCS[i % docs] for i in range(rows)]
    vectors.append(list(range(1, rows + 1)), chunk_ids, document_ids, matrix)
    return vectors, normalised(matrix), chunk_ids, document_ids


def test_top_rows_are_the_highest_finite_scores_best_first():
    scores = np.array([0.1, 0.9, -np.inf, 0.5, 0.9, 0.3], np.float32)
    assert top_rows(scores, 3).tolist() == [1, 4, 3]
    assert top_rows(scores, 10).tolist() == [1, 4, 3, 5, 0]
    assert top_rows(scores, 0).tolist() == []


async def test_the_scan_is_exact():
    vectors, matrix, chunk_ids, _ = _vectors(500)
    query = normalised(np.arange(8, dtype=np.float32))
    hits = await scan(vectors, query, allowed=None, limit=20, per_document=False)
    exact = np.argsort(-(matrix @ query), kind="stable")[:20]
    assert [h.chunk_id for h in hits] == [chunk_ids[i] for i in exact]
    assert [h.cosine for h in hits] == pytest.approx([float(matrix[i] @ query) for i in exact])


async def test_a_mask_filters_inside_the_scan_not_after_it():
    vectors, matrix, chunk_ids, document_ids = _vectors(500)
    query = normalised(np.arange(8, dtype=np.float32))
    allowed_doc = DOCS[3]
    allowed = vectors.allowed_rows(_packed([allowed_doc, uuid.uuid4()]))
    hits = await scan(vectors, query, allowed=allowed, limit=5, per_document=False)
    # Five hits of the allowed document, although most of the 500 rows score higher.
    rows = [i for i, d in enumerate(document_ids) if d == allowed_doc]
    best = sorted(rows, key=lambda i: -float(matrix[i] @ query))[:5]
    assert [h.chunk_id for h in hits] == [chunk_ids[i] for i in best]
    assert {h.document_id for h in hits} == {allowed_doc}
    unfiltered = await scan(vectors, query, allowed=None, limit=5, per_document=False)
    assert {h.document_id for h in unfiltered} != {allowed_doc}
    nothing = vectors.allowed_rows(b"")
    assert await scan(vectors, query, allowed=nothing, limit=5, per_document=False) == []


def test_allowed_rows_are_those_of_the_allowed_documents_as_documents_come_and_go():
    """Ids with zero bytes anywhere (a fixed-width key must not end at one), ids the cache does
    not hold, documents appended after a lookup and documents removed."""
    odd = [
        uuid.UUID(int=0),
        uuid.UUID(bytes=b"\x00" * 15 + b"\x01"),
        uuid.UUID(bytes=b"a\x00b" + b"\x00" * 13),
        uuid.UUID(bytes=b"a\x00c" + b"\x00" * 13),
        uuid.UUID(bytes=b"a" + b"\x00" * 15),
    ]
    vectors = WorkspaceVectors(4)
    rows_of = [odd[i % 5] for i in range(20)]
    ones = np.ones((20, 4), np.float32)
    vectors.append(list(range(1, 21)), [uuid.uuid4() for _ in rows_of], rows_of, ones)

    def allowed(ids):
        return [rows_of[r] for r in np.flatnonzero(vectors.allowed_rows(_packed(ids)))]

    assert vectors.allowed_rows(None) is None
    assert allowed([odd[2], uuid.UUID(bytes=b"a\x00b" + b"\x00" * 12 + b"\x01")]) == [odd[2]] * 4
    assert allowed([odd[0], odd[4], uuid.uuid4()]) == [odd[0], odd[4]] * 4
    later = uuid.UUID(bytes=b"a\x00\x00d" + b"\x00" * 12)
    vectors.append([21, 22], [uuid.uuid4(), uuid.uuid4()], [later, odd[1]], ones[:2])
    rows_of += [later, odd[1]]
    assert allowed([later, odd[1]]) == [odd[1]] * 4 + [later, odd[1]]
    assert vectors.keep(np.array([s for s in range(1, 23) if rows_of[s - 1] != odd[1]])) == 5
    rows_of = [d for d in rows_of if d != odd[1]]
    assert allowed([odd[1], odd[3], later]) == [odd[3]] * 4 + [later]
    assert allowed(odd) == [d for d in rows_of if d != later]


@pytest.mark.parametrize("allowed_docs", [1, 2, 9])  # 10% and 20% gathered; 90% masked
@pytest.mark.parametrize("per_document", [False, True])
async def test_a_filtered_scan_is_exact_whether_it_gathers_or_masks(allowed_docs, per_document):
    """A filter allowing GATHER_MAX_SHARE of the rows or fewer is scored on those rows alone,
    a wider one by masking every row's score: both give the exact ranking of the allowed rows."""
    vectors, matrix, chunk_ids, document_ids = _vectors(600, dimension=16, seed=11)
    query = normalised(np.linspace(-1, 1, 16, dtype=np.float32))
    allowed_ids = set(DOCS[:allowed_docs])
    allowed = vectors.allowed_rows(_packed(allowed_ids))
    assert int(allowed.sum()) == 60 * allowed_docs
    hits = await scan(vectors, query, allowed=allowed, limit=12, per_document=per_document)
    scores = matrix @ query
    rows = sorted(
        (i for i, d in enumerate(document_ids) if d in allowed_ids), key=lambda i: -scores[i]
    )
    if per_document:
        firsts: dict[uuid.UUID, int] = {}
        for i in rows:
            firsts.setdefault(document_ids[i], i)
        rows = sorted(firsts.values(), key=lambda i: -scores[i])
    expected = rows[:12]
    assert [h.chunk_id for h in hits] == [chunk_ids[i] for i in expected]
    assert [h.document_id for h in hits] == [document_ids[i] for i in expected]
    assert [h.cosine for h in hits] == pytest.approx([float(scores[i]) for i in expected])


async def test_per_document_each_document_once_with_its_best_passage():
    vectors, matrix, chunk_ids, document_ids = _vectors(500)
    query = normalised(np.ones(8, np.float32))
    hits = await scan(vectors, query, allowed=None, limit=4, per_document=True)
    scores = matrix @ query
    best = {}
    for i, d in enumerate(document_ids):
        if d not in best or scores[i] > scores[best[d]]:
            best[d] = i
    expected = sorted(best.values(), key=lambda i: -scores[i])[:4]
    assert [h.chunk_id for h in hits] == [chunk_ids[i] for i in expected]
    assert len({h.document_id for h in hits}) == 4


async def test_a_large_scan_multiplies_off_the_loop_on_the_arrays_of_its_start():
    """At OFF_LOOP_ROWS rows the product runs on the scan thread while the loop goes on; rows
    removed and added by another request meanwhile change nothing the scan returns."""
    rows = OFF_LOOP_ROWS + 100
    vectors, matrix, chunk_ids, _ = _vectors(rows, dimension=32)
    query = normalised(np.arange(32, dtype=np.float32))
    exact = np.argsort(-(matrix @ query), kind="stable")[:10]

    async def change_meanwhile() -> None:
        vectors.keep(np.arange(1, 11, dtype=np.int64))  # all but ten rows removed
        vectors.append([rows + 1], [uuid.uuid4()], [DOCS[0]], query[np.newaxis, :])

    changed = asyncio.ensure_future(change_meanwhile())
    hits = await scan(vectors, query, allowed=None, limit=10, per_document=False)
    assert changed.done() and vectors.count == 11  # it ran while the scan awaited its product
    assert [h.chunk_id for h in hits] == [chunk_ids[i] for i in exact]
    assert [h.cosine for h in hits] == pytest.approx([float(matrix[i] @ query) for i in exact])
    assert "vector-scan_0" in {t.name for t in threading.enumerate()}
    again = await scan(vectors, query, allowed=None, limit=1, per_document=False)
    assert again[0].cosine == pytest.approx(1.0)  # the next scan sees the change (on the loop)


def test_per_document_looks_deeper_when_one_document_holds_the_top_rows():
    scores = np.linspace(1.0, 0.0, 3000, dtype=np.float32)
    row_docs = np.zeros(3000, np.int32)
    row_docs[-1], row_docs[-2] = 1, 2  # two documents at the very bottom
    assert best_row_per_document(scores, row_docs, 3).tolist() == [0, 2998, 2999]


def test_rows_added_later_and_rows_kept():
    vectors, matrix, chunk_ids, _ = _vectors(100)
    before = vectors.matrix[: vectors.count]
    more = np.eye(8, dtype=np.float32)[:3]
    new_ids = [uuid.uuid4() for _ in range(3)]
    vectors.append([101, 102, 103], new_ids, [DOCS[0]] * 3, more * 5)
    assert vectors.count == 103
    assert np.array_equal(before, matrix)  # a scan's snapshot is never changed under it
    np.testing.assert_allclose(vectors.matrix[100:103], more)  # stored normalised
    dropped = vectors.keep(np.array([2, 4, 101], np.int64))
    assert dropped == 100
    assert [vectors.chunk_id(i) for i in range(vectors.count)] == [
        chunk_ids[1],
        chunk_ids[3],
        new_ids[0],
    ]
    assert set(vectors.doc_ids) == {DOCS[0], DOCS[1], DOCS[3]}


def test_vectors_are_stored_one_dimension_per_row_after_every_change():
    """The scan's speed depends on the layout (ADR 0061): each dimension's values contiguous,
    and `matrix` a view of the same memory, through growth, appends and removals."""
    vectors, matrix, _, _ = _vectors(100)

    def check(expected: np.ndarray) -> None:
        assert vectors.columns.flags.c_contiguous
        assert vectors.columns.shape[0] == 8 and vectors.columns.shape[1] >= vectors.count
        assert np.shares_memory(vectors.matrix, vectors.columns)
        np.testing.assert_allclose(vectors.matrix[: vectors.count], expected, rtol=1e-6)

    check(matrix)
    extra = np.random.default_rng(3).standard_normal((500, 8)).astype(np.float32)
    vectors.append(
        list(range(101, 601)), [uuid.uuid4() for _ in range(500)], [DOCS[1]] * 500, extra
    )
    check(np.vstack([matrix, normalised(extra)]))
    vectors.keep(np.arange(2, 601, 2, dtype=np.int64))
    check(np.vstack([matrix, normalised(extra)])[1::2])
    centroids, _ = vectors.centroids()  # scored against each other for related documents
    assert centroids.flags.f_contiguous and centroids.shape == (5, 8)  # DOCS 1, 3, 5, 7, 9


def test_centroids_are_normalised_means_per_document():
    vectors = WorkspaceVectors(2)
    a, b = uuid.uuid4(), uuid.uuid4()
    vectors.append(
        [1, 2, 3],
        [uuid.uuid4() for _ in range(3)],
        [a, b, a],
        np.array([[1, 0], [0, 1], [0, 1]], np.float32),
    )
    centroids, present = vectors.centroids()
    assert present.tolist() == [True, True]
    np.testing.assert_allclose(centroids[vectors.doc_index[a]], [2**-0.5, 2**-0.5], rtol=1e-6)
    np.testing.assert_allclose(centroids[vectors.doc_index[b]], [0, 1])


def _documents(count: int, *, dimension: int = 16, seed: int = 3):
    """One vector per document, so each document's centroid is its own vector."""
    rng = np.random.default_rng(seed)
    matrix = normalised(rng.standard_normal((count, dimension)).astype(np.float32))
    ids = [uuid.UUID(int=10_000 + i) for i in range(count)]
    vectors = WorkspaceVectors(dimension)
    vectors.append(list(range(1, count + 1)), [uuid.uuid4() for _ in ids], ids, matrix)
    return vectors, matrix, ids


async def test_related_documents_are_the_nearest_centroids_but_itself():
    vectors, matrix, ids = _documents(300)
    scores = matrix @ matrix[7]
    scores[7] = -np.inf
    exact = np.argsort(-scores, kind="stable")[:5]
    nearest = await nearest_documents(vectors, ids[7], 5)
    assert nearest is not None
    assert [d for d, _ in nearest] == [ids[i] for i in exact]
    assert [c for _, c in nearest] == pytest.approx([float(scores[i]) for i in exact])
    assert await nearest_documents(vectors, uuid.uuid4(), 5) is None  # no vectors here


async def test_related_documents_of_a_large_workspace_multiply_off_the_loop():
    """From OFF_LOOP_ROWS documents the product runs on the scan thread while the loop goes on;
    documents removed and added meanwhile change nothing it returns."""
    count = OFF_LOOP_ROWS + 50
    vectors, matrix, ids = _documents(count)
    scores = matrix @ matrix[0]
    scores[0] = -np.inf
    exact = np.argsort(-scores, kind="stable")[:5]

    async def change_meanwhile() -> None:
        vectors.keep(np.arange(1, 11, dtype=np.int64))  # all but ten documents' rows removed
        vectors.append([count + 1], [uuid.uuid4()], [uuid.uuid4()], matrix[:1])

    changed = asyncio.ensure_future(change_meanwhile())
    nearest = await nearest_documents(vectors, ids[0], 5)
    assert changed.done() and vectors.count == 11  # it ran while the product was awaited
    assert nearest is not None
    assert [d for d, _ in nearest] == [ids[i] for i in exact]
    assert [c for _, c in nearest] == pytest.approx([float(scores[i]) for i in exact])
    assert "vector-scan_0" in {t.name for t in threading.enumerate()}
    again = await nearest_documents(vectors, ids[0], 1)
    assert again is not None and again[0][1] == pytest.approx(1.0)  # the copy added meanwhile


def test_nbytes_counts_the_allocated_rows():
    vectors, *_ = _vectors(100, dimension=384)
    assert vectors.nbytes == len(vectors.seqs) * (384 * 4 + 28)
    assert WorkspaceVectors.bytes_for(50_000, 384) == 50_000 * 1564


def test_the_cache_drops_the_least_recently_searched_workspaces_beyond_its_budget():
    from services.vector_index import VectorCache

    one = WorkspaceVectors.bytes_for(100, 8)
    cache = VectorCache(max_bytes=2 * one + one // 2)
    keys = [("db", uuid.UUID(int=i), "m") for i in range(3)]
    for key in keys:
        vectors, *_ = _vectors(100)
        cache._entries[key] = vectors
        cache._evict(keep=key)
    # The first workspace went when the third came; two fit.
    assert list(cache._entries) == keys[1:]
    assert cache.nbytes == 2 * one <= cache.max_bytes
    cache._entries.move_to_end(keys[1])  # searched again: now the most recent
    big, *_ = _vectors(300)
    cache._entries[keys[0]] = big
    cache._evict(keep=keys[0])
    # Over budget even alone, the one just loaded is kept (the caller streams instead when it
    # knows beforehand); every other one goes.
    assert list(cache._entries) == [keys[0]]


def test_limit_scan_threads_sets_every_blas_pool_of_the_process():
    more = min(2, os.cpu_count() or 1)  # BLAS never runs more threads than cores
    try:
        limit_scan_threads(more)
        assert blas_threads() == {more}
        limit_scan_threads(1)
        assert blas_threads() == {1}
    finally:
        limit_scan_threads(1)  # the setting's default, as every app start applies it
