"""A large workspace's partitioned index (ADR 0147): exact until built, the exact ranking when
every list is probed, following appends and removals, filters kept exact, and a ranking short of
documents handed back to the exact scan."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from services import vector_index
from services.vector_index import (
    PartitionedIndex,
    Partitioning,
    VectorCache,
    WorkspaceVectors,
    limit_scan_threads,
    list_count,
    normalised,
    partitions_settled,
    scan,
)

DIMENSION = 16


def _clustered(rows: int, docs: int, *, seed: int = 3, first_seq: int = 1):
    """Rows of `docs` documents, each document's rows near a direction of its own."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((docs, DIMENSION))
    doc_of_row = np.arange(rows) % docs
    matrix = (centres[doc_of_row] + 0.3 * rng.standard_normal((rows, DIMENSION))).astype(np.float32)
    document_ids = [uuid.UUID(int=10_000 + int(d)) for d in doc_of_row]
    chunk_ids = [uuid.UUID(int=first_seq + i) for i in range(rows)]
    seqs = list(range(first_seq, first_seq + rows))
    return matrix, seqs, chunk_ids, document_ids


def _loaded(rows: int, docs: int) -> tuple[WorkspaceVectors, np.ndarray]:
    matrix, seqs, chunk_ids, document_ids = _clustered(rows, docs)
    vectors = WorkspaceVectors(DIMENSION)
    vectors.append(seqs, chunk_ids, document_ids, matrix)
    return vectors, normalised(matrix)


def _queries(count: int, seed: int = 11) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [normalised(rng.standard_normal(DIMENSION).astype(np.float32)) for _ in range(count)]


async def _exact(vectors: WorkspaceVectors, query, **kwargs):
    return await scan(vectors, query, allowed=None, partitioning=None, **kwargs)


def _same(hits, expected):
    """The same passages in the same order with the same cosines (faiss and numpy sum the
    products in different orders: the last digits differ)."""
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in expected]
    assert [h.document_id for h in hits] == [h.document_id for h in expected]
    assert [h.cosine for h in hits] == pytest.approx([h.cosine for h in expected], abs=1e-5)


def test_list_count_is_twice_the_square_root():
    assert [list_count(n) for n in (1, 100, 2_000, 20_000, 50_000)] == [1, 2, 51, 282, 447]


async def test_exact_until_built_then_the_exact_ranking_with_every_list_probed():
    vectors, _ = _loaded(3_000, 60)
    every_list = Partitioning(min_rows=1_000, probes=list_count(3_000))
    query = _queries(1)[0]
    first = await scan(
        vectors, query, allowed=None, limit=20, per_document=False, partitioning=every_list
    )
    assert vectors.partitions is None and vectors.partitioning  # built off the loop meanwhile
    _same(first, await _exact(vectors, query, limit=20, per_document=False))
    await partitions_settled()
    assert vectors.partitions is not None and not vectors.partitioning
    assert vectors.partitions.index.ntotal == 3_000
    for query in _queries(5):
        for per_document, limit in ((False, 20), (True, 10)):
            through = await scan(
                vectors,
                query,
                allowed=None,
                limit=limit,
                per_document=per_document,
                partitioning=every_list,
            )
            exact = await _exact(vectors, query, limit=limit, per_document=per_document)
            assert [h.chunk_id for h in through] == [h.chunk_id for h in exact]
            assert [h.cosine for h in through] == pytest.approx([h.cosine for h in exact], abs=1e-5)


async def test_below_the_minimum_nothing_is_built():
    vectors, _ = _loaded(500, 10)
    await scan(
        vectors,
        _queries(1)[0],
        allowed=None,
        limit=5,
        per_document=False,
        partitioning=Partitioning(min_rows=501, probes=4),
    )
    await partitions_settled()
    assert vectors.partitions is None and not vectors.partitioning


async def test_few_probes_find_most_of_the_exact_ranking():
    vectors, _ = _loaded(4_000, 200)
    partitioning = Partitioning(min_rows=1_000, probes=8)  # of 102 lists
    await scan(
        vectors,
        _queries(1)[0],
        allowed=None,
        limit=10,
        per_document=False,
        partitioning=partitioning,
    )
    await partitions_settled()
    recalls = []
    for query in _queries(40):
        through = await scan(
            vectors, query, allowed=None, limit=10, per_document=False, partitioning=partitioning
        )
        exact = await _exact(vectors, query, limit=10, per_document=False)
        recalls.append(len({h.chunk_id for h in through} & {h.chunk_id for h in exact}) / 10)
    assert 0.9 <= float(np.mean(recalls)) < 1.0  # approximate, and close


async def test_the_index_follows_appends_and_removals():
    vectors, _ = _loaded(2_000, 40)
    every_list = Partitioning(min_rows=1_000, probes=list_count(2_000))
    query = _queries(1)[0]
    await scan(vectors, query, allowed=None, limit=5, per_document=False, partitioning=every_list)
    await partitions_settled()
    # New rows: one of them is the query itself, so it ranks first once the index holds it.
    matrix, seqs, chunk_ids, document_ids = _clustered(300, 40, seed=9, first_seq=2_001)
    matrix[123] = query
    vectors.append(seqs, chunk_ids, document_ids, matrix)
    hits = await scan(
        vectors, query, allowed=None, limit=5, per_document=False, partitioning=every_list
    )
    assert hits[0].chunk_id == chunk_ids[123] and hits[0].cosine == pytest.approx(1.0)
    assert vectors.partitions.index.ntotal == 2_300
    _same(hits, await _exact(vectors, query, limit=5, per_document=False))
    # Removed rows (every seq that is a multiple of 3, the new best row among them) never return.
    live = np.array([s for s in range(1, 2_301) if s % 3], np.int64)
    assert vectors.keep(live) == 766
    hits = await scan(
        vectors, query, allowed=None, limit=50, per_document=False, partitioning=every_list
    )
    assert vectors.partitions.index.ntotal == 1_534
    assert chunk_ids[123] not in {h.chunk_id for h in hits}  # seq 2,124 = 3 x 708
    assert all(h.chunk_id.int % 3 for h in hits)
    _same(hits, await _exact(vectors, query, limit=50, per_document=False))


async def test_a_filtered_ranking_stays_exact():
    vectors, _ = _loaded(3_000, 60)
    few_lists = Partitioning(min_rows=1_000, probes=1)
    query = _queries(1)[0]
    await scan(vectors, query, allowed=None, limit=5, per_document=False, partitioning=few_lists)
    await partitions_settled()
    allowed = vectors.allowed_rows(
        b"".join(uuid.UUID(int=10_000 + d).bytes for d in range(0, 60, 7))
    )
    through = await scan(
        vectors, query, allowed=allowed, limit=30, per_document=True, partitioning=few_lists
    )
    exact = await scan(vectors, query, allowed=allowed, limit=30, per_document=True)
    assert len(exact) == 9 and through == exact


async def test_a_ranking_short_of_documents_is_handed_to_the_exact_scan():
    vectors, _ = _loaded(3_000, 60)
    one_list = Partitioning(min_rows=1_000, probes=1)
    query = _queries(1)[0]
    await scan(vectors, query, allowed=None, limit=5, per_document=False, partitioning=one_list)
    await partitions_settled()
    rows = vectors.snapshot()
    # One list of 76 holds the rows of a few documents only: 40 documents cannot come from it.
    short = await vector_index._ranked_by_partitions(
        vectors.partitions, rows, query, 40, True, one_list
    )
    assert short is None
    through = await scan(
        vectors, query, allowed=None, limit=40, per_document=True, partitioning=one_list
    )
    _same(through, await _exact(vectors, query, limit=40, per_document=True))
    assert len({h.document_id for h in through}) == 40


async def test_the_index_counts_against_the_cache_budget():
    vectors, _ = _loaded(3_000, 60)
    wanted = Partitioning(min_rows=1_000, probes=4)
    needed = PartitionedIndex.bytes_for(3_000, DIMENSION)
    roomy = VectorCache(vectors.nbytes + needed)
    tight = VectorCache(vectors.nbytes + needed - 1)
    for cache in (roomy, tight):
        cache._entries[("db", uuid.UUID(int=1), "m")] = vectors
    assert roomy.partitioning_for(vectors, wanted) == wanted
    assert tight.partitioning_for(vectors, wanted) is None
    before = vectors.nbytes
    await scan(
        vectors, _queries(1)[0], allowed=None, limit=5, per_document=False, partitioning=wanted
    )
    await partitions_settled()
    assert vectors.nbytes - before == vectors.partitions.nbytes == needed
    assert tight.partitioning_for(vectors, wanted) == wanted  # built: it is already counted


def test_faiss_runs_on_the_threads_of_the_scan_setting_on_every_thread():
    def threads_seen_by_faiss() -> int:
        return vector_index._faiss().omp_get_max_threads()

    try:
        for threads in (2, 1):
            limit_scan_threads(threads)
            with ThreadPoolExecutor(1) as other:  # a thread that never set it itself
                assert other.submit(threads_seen_by_faiss).result() == threads
    finally:
        limit_scan_threads(1)
