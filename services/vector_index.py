"""Exact cosine search over one workspace's passage vectors (ADR 0061).

Vectors live in `chunk_vectors` with their chunks. A search multiplies the query vector with
every vector of the workspace and model (numpy, float32): exact, so there is no recall to lose,
and a few milliseconds for tens of thousands of passages.

The vectors are not read from the database per query. Each process keeps, per event loop, a
cache of (database, workspace, model) -> a float32 matrix of the normalised vectors, loaded
incrementally and checked on every query against `vector_versions`, a row per workspace and
model that triggers on `chunk_vectors` keep current (migration 0005):

- every inserted vector gets `seq` = the row's incremented `version`, taken under the row's lock,
  so vectors are numbered in commit order: a cache at version V loads `seq > V` and is current;
- every deleted vector (a document deleted or re-chunked, cascades included) bumps `version` and
  `deletions`: a cache that sees new deletions re-reads the list of live `seq`s (integers, no
  vectors) and drops the rest.

So a query costs one primary-key read when nothing changed, and a change costs reading the new
vectors only. Memory is bounded by SEARCH_VECTOR_CACHE_MB: the least recently searched
workspaces are dropped first, and a workspace larger than the whole budget is not cached but
streamed from the database in blocks for each query (exact too, bounded memory, slower).

Filters (collections, tags, documents) arrive as the set of allowed documents, computed by SQL
inside the workspace, and are applied as a mask inside the scan, before ranking: a filtered
search ranks the allowed passages, never a filtered top-k.

A large workspace's unfiltered rankings go through an inverted-file index over the same cached
vectors (faiss's IVF, `PartitionedIndex`, ADR 0147): the query is compared with the lists'
centroids and only the nearest lists are scanned. It is built off the event loop once the
workspace reaches `Partitioning.min_rows`, follows the cache's appends and removals, and counts
against the cache's memory; until it exists, and for every filtered ranking, the scan is exact.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from threadpoolctl import threadpool_limits

from base.models.documents import ChunkVector
from base.models.retrieval import VectorVersion

if TYPE_CHECKING:
    import faiss

log = logging.getLogger("knowledge_desk.vector_index")

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

# Rows read from the database per round trip when loading or streaming.
BLOCK_ROWS = 2048
# Bytes a cached row costs besides its vector: seq (8), document index (4), chunk id (16).
_ROW_OVERHEAD = 28
# BLAS and OpenMP threads of the process (`limit_scan_threads`), applied to faiss when it loads.
_faiss_threads = [1]


@functools.cache
def _faiss_module() -> Any:
    """faiss, imported once, on first use: 0.75 s of import that only a process ranking a large
    workspace needs."""
    # Its loader logs at INFO which CPU build it tried first; nothing an operator acts on.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    return faiss


def _faiss() -> Any:
    """faiss with the calling thread's OpenMP threads set: OpenMP keeps that number per thread,
    so each thread that runs faiss sets it before."""
    faiss = _faiss_module()
    faiss.omp_set_num_threads(_faiss_threads[0])
    return faiss


def limit_scan_threads(threads: int) -> None:
    """Cap this process's BLAS threads, which run the scan's matrix product, at `threads`.

    Called once when an API process or a worker starts. OpenBLAS keeps its extra threads
    spinning after each product: with two threads a 50,000-passage scan took 3.1 ms instead of
    6.3 but cost 11.7 ms of CPU instead of 6.2, taken from the process's other requests and from
    the database on the same cores (ADR 0079). Processes, not threads, scale the scans; the
    product runs off the event loop on one thread of its own (ADR 0109)."""
    threadpool_limits(limits=threads, user_api="blas")
    _faiss_threads[0] = threads
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(threads)


class VectorHit(NamedTuple):
    """A ranked passage. A ranking makes hundreds, and its caller reads the chunk ids of a few
    (a page's passages): the id stays its 16 bytes until asked for (ADR 0153)."""

    chunk_key: bytes
    document_id: uuid.UUID
    cosine: float

    @property
    def chunk_id(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.chunk_key)


@dataclass(frozen=True)
class IndexState:
    version: int
    deletions: int


def normalised(vectors: npt.ArrayLike) -> Floats:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        norm = float(np.linalg.norm(matrix))
        return (matrix / np.float32(norm)).astype(np.float32) if norm > 0 else matrix
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: Floats = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return result


class WorkspaceVectors:
    """One workspace's vectors of one model, in `seq` order: row i is chunk `chunk_ids[i]` of
    document `doc_ids[row_docs[i]]`. Rows are appended into spare capacity or into new arrays,
    and removed by building new arrays, so a scan holding the arrays of a moment is never
    changed under it.

    The vectors are stored one dimension per row (`columns`, dimension x capacity): the scan's
    product then streams each dimension's values contiguously, which OpenBLAS does 1.9x faster
    than one dot product per stored vector (3.8 against 7.3 ms for 50,000 x 384 on one thread,
    ADR 0061). `matrix` is the same memory seen one vector per row."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.count = 0
        self.state = IndexState(0, 0)
        self.columns: Floats = np.empty((dimension, 0), np.float32)
        self.seqs: Ints = np.empty(0, np.int64)
        self.row_docs: npt.NDArray[np.int32] = np.empty(0, np.int32)
        self.chunk_ids: npt.NDArray[np.uint8] = np.empty((0, 16), np.uint8)
        self.doc_ids: list[uuid.UUID] = []
        self.doc_index: dict[uuid.UUID, int] = {}
        self._centroids: tuple[int, Floats, Mask] | None = None
        self._doc_keys: tuple[tuple[int, int], npt.NDArray[np.bytes_], Ints] | None = None
        # Bumped by each removal (`keep`), so the partitioned index knows to drop rows.
        self.generation = 0
        self.partitions: PartitionedIndex | None = None
        self.partitioning: bool = False  # a build is under way

    def snapshot(self) -> Rows:
        """The rows of this moment: appends write past `count` and `keep` builds new arrays,
        so the views stay as they are while another request changes the entry."""
        count = self.count
        return Rows(
            self.matrix[:count],
            self.seqs[:count],
            self.row_docs[:count],
            self.chunk_ids,
            self.doc_ids,
            self.generation,
        )

    @property
    def matrix(self) -> Floats:
        """Row i is vector i (a view of `columns`, not a copy)."""
        return self.columns.T

    @property
    def nbytes(self) -> int:
        own = len(self.seqs) * (self.dimension * 4 + _ROW_OVERHEAD)
        return own + (self.partitions.nbytes if self.partitions is not None else 0)

    @staticmethod
    def bytes_for(rows: int, dimension: int) -> int:
        return rows * (dimension * 4 + _ROW_OVERHEAD)

    def _grow(self, needed: int) -> None:
        capacity = needed if self.count == 0 else max(needed, int(len(self.seqs) * 1.5) + 64)
        columns = np.empty((self.dimension, capacity), np.float32)
        columns[:, : self.count] = self.columns[:, : self.count]
        seqs = np.empty(capacity, np.int64)
        seqs[: self.count] = self.seqs[: self.count]
        row_docs = np.empty(capacity, np.int32)
        row_docs[: self.count] = self.row_docs[: self.count]
        chunk_ids = np.empty((capacity, 16), np.uint8)
        chunk_ids[: self.count] = self.chunk_ids[: self.count]
        self.columns, self.seqs, self.row_docs, self.chunk_ids = columns, seqs, row_docs, chunk_ids

    def reserve(self, rows: int) -> None:
        """Room for `rows` rows in all (the first load knows how many are coming)."""
        if rows > len(self.seqs):
            self._grow(rows)

    def append(
        self,
        seqs: Sequence[int],
        chunk_ids: Sequence[uuid.UUID],
        document_ids: Sequence[uuid.UUID],
        vectors: Floats,
    ) -> None:
        n = len(seqs)
        if n == 0:
            return
        if self.count + n > len(self.seqs):
            self._grow(self.count + n)
        end = self.count + n
        self.columns[:, self.count : end] = normalised(vectors).T
        self.seqs[self.count : end] = seqs
        self.row_docs[self.count : end] = [self._doc(d) for d in document_ids]
        self.chunk_ids[self.count : end] = np.frombuffer(
            b"".join(c.bytes for c in chunk_ids), np.uint8
        ).reshape(n, 16)
        self.count = end
        self._centroids = None

    def _doc(self, document_id: uuid.UUID) -> int:
        index = self.doc_index.get(document_id)
        if index is None:
            index = self.doc_index[document_id] = len(self.doc_ids)
            self.doc_ids.append(document_id)
        return index

    def keep(self, live_seqs: Ints) -> int:
        """Drop the rows whose seq is not in `live_seqs`; how many were dropped."""
        alive = np.isin(self.seqs[: self.count], live_seqs)
        dropped = int(self.count - alive.sum())
        if dropped:
            rows = np.flatnonzero(alive)
            old_docs = self.doc_ids
            self.doc_ids, self.doc_index = [], {}
            docs = [self._doc(old_docs[i]) for i in self.row_docs[rows]]
            self.columns = np.ascontiguousarray(self.columns[:, rows])
            self.seqs = self.seqs[rows].copy()
            self.row_docs = np.asarray(docs, np.int32)
            self.chunk_ids = self.chunk_ids[rows].copy()
            self.count = len(rows)
            self._centroids = None
            self.generation += 1
        return dropped

    def chunk_id(self, row: int) -> uuid.UUID:
        return uuid.UUID(bytes=self.chunk_ids[row].tobytes())

    def allowed_rows(self, allowed_documents: bytes | None) -> Mask | None:
        """Per row: is its document allowed (None: all are). `allowed_documents` holds the
        allowed ids' 16 bytes each, one after another (`search.allowed_document_ids`): they are
        matched in one vectorised lookup, where a thousand ids one by one cost more than the
        scan they narrow."""
        if allowed_documents is None:
            return None
        wanted = np.frombuffer(allowed_documents, "S16")
        keys, indexes = self._sorted_doc_keys()
        allowed = np.zeros(len(indexes), np.bool_)
        if len(keys) and len(wanted):
            at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            allowed[indexes[at[keys[at] == wanted]]] = True
        result: Mask = allowed[self.row_docs[: self.count]]
        return result

    def _sorted_doc_keys(self) -> tuple[npt.NDArray[np.bytes_], Ints]:
        """The documents' ids as 16-byte keys in order, and each one's index; built once per
        set of documents (appends add documents, a removal renumbers them)."""
        key = (len(self.doc_ids), self.generation)
        if self._doc_keys is None or self._doc_keys[0] != key:
            ids = np.frombuffer(b"".join(d.bytes for d in self.doc_ids), "S16")
            order = np.argsort(ids, kind="stable")
            self._doc_keys = (key, ids[order], order)
        return self._doc_keys[1], self._doc_keys[2]

    def centroids(self) -> tuple[Floats, Mask]:
        """Per document (by index): the normalised mean of its passage vectors, and whether it
        has any; computed once per loaded state."""
        if self._centroids is not None and self._centroids[0] == self.count:
            return self._centroids[1], self._centroids[2]
        sums = np.zeros((len(self.doc_ids), self.dimension), np.float32)
        present = np.zeros(len(self.doc_ids), np.bool_)
        if self.count:
            docs = self.row_docs[: self.count]
            order = np.argsort(docs, kind="stable")
            ordered = docs[order]
            starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            sums[ordered[starts]] = np.add.reduceat(self.matrix[order], starts, axis=0)
            present[ordered[starts]] = True
        # One dimension per row, as the vectors: each is scored against all of them.
        result = np.asfortranarray(normalised(sums))
        self._centroids = (self.count, result, present)
        return result, present


def top_rows(scores: Floats, limit: int) -> Ints:
    """Indexes of the `limit` highest finite scores, best first."""
    finite = int(np.isfinite(scores).sum())
    limit = min(limit, finite)
    if limit <= 0:
        return np.empty(0, np.int64)
    if limit < len(scores):
        part = np.argpartition(-scores, limit - 1)[:limit]
    else:
        part = np.arange(len(scores))
    order: Ints = part[np.argsort(-scores[part], kind="stable")]
    return order[:limit]


def best_row_per_document(scores: Floats, row_docs: npt.NDArray[np.int32], limit: int) -> Ints:
    """Per document its best-scoring row; the `limit` best documents' rows, best first."""
    n = len(scores)
    take = min(n, max(limit * 8, 256))
    while True:
        rows = top_rows(scores, take)
        docs = row_docs[rows]
        _, first = np.unique(docs, return_index=True)
        first.sort()
        best: Ints = rows[first]
        if len(best) >= limit or take >= n or len(rows) < take:
            return best[:limit]
        take = min(n, take * 4)


# A product of a matrix of at least OFF_LOOP_ROWS rows runs on this thread. numpy releases the
# GIL for it, so the event loop serves other requests on the other core meanwhile; below that
# the hand-over costs more than the product (ADR 0109). One thread: a process's products still
# run one at a time, as its one BLAS thread does (ADR 0079).
_PRODUCTS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vector-scan")
OFF_LOOP_ROWS = 4096


# A filter that allows at most this share of a workspace's rows is scored on those rows alone:
# gathering them costs less than multiplying every row, up to a point (one BLAS thread, 50,000
# x 384: every row 2.65 ms, a gathered tenth 1.03 ms, a gathered half 6.26 ms; ADR 0151).
GATHER_MAX_SHARE = 0.2


async def _product(matrix: Floats, vector: Floats, rows: Ints | None = None) -> Floats:
    """`matrix @ vector`, or `matrix[rows] @ vector` (the rows gathered first), on the
    products' thread for many rows."""
    if (len(matrix) if rows is None else len(rows)) < OFF_LOOP_ROWS:
        return _multiplied(matrix, vector, rows)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_PRODUCTS, _multiplied, matrix, vector, rows)


def _multiplied(matrix: Floats, vector: Floats, rows: Ints | None) -> Floats:
    result: Floats = (matrix if rows is None else matrix[rows]) @ vector
    return result


async def nearest_documents(
    vectors: WorkspaceVectors, document_id: uuid.UUID, limit: int
) -> list[tuple[uuid.UUID, float]] | None:
    """The `limit` other documents whose centroids are nearest to `document_id`'s, with their
    cosine, best first; None when it has no vectors here. From OFF_LOOP_ROWS documents the
    product runs off the loop, as `scan`'s does (about 1.7 ms at 10,000 documents)."""
    i = vectors.doc_index.get(document_id)
    centroids, present = vectors.centroids()  # on the loop: computed once per loaded state
    if i is None or not present[i]:
        return None
    # This moment's list, for the centroids of this moment: appends only add past its end and
    # `keep` builds a new one.
    doc_ids = vectors.doc_ids
    scores = np.where(present, await _product(centroids, centroids[i]), np.float32(-np.inf))
    scores[i] = -np.inf
    return [(doc_ids[int(r)], float(scores[r])) for r in top_rows(scores, limit)]


async def scan(
    vectors: WorkspaceVectors,
    query: Floats,
    *,
    allowed: Mask | None,
    limit: int,
    per_document: bool,
    partitioning: Partitioning | None = None,
) -> list[VectorHit]:
    """The `limit` best passages (or the best passage of each of the `limit` best documents)
    among the allowed rows. An unfiltered ranking of a workspace of `partitioning.min_rows`
    rows or more goes through its partitioned index once that is built (ADR 0147)."""
    if vectors.count == 0 or limit <= 0:
        return []
    rows = vectors.snapshot()
    if allowed is None and partitioning is not None and len(rows.seqs) >= partitioning.min_rows:
        partitions = _partitions_of(vectors, partitioning)
        if partitions is not None:
            found = await _ranked_by_partitions(
                partitions, rows, query, limit, per_document, partitioning
            )
            if found is not None:
                return found
    if allowed is not None:
        kept: Ints = np.flatnonzero(allowed)
        if len(kept) <= GATHER_MAX_SHARE * len(allowed):
            # A narrow filter: only its rows are multiplied.
            scores = await _product(rows.matrix, query, kept)
            chosen = _chosen(scores, rows.row_docs[kept], limit, per_document)
            return rows.hits(kept[chosen], scores[chosen])
    scores = await _product(rows.matrix, query)
    if allowed is not None:
        scores = np.where(allowed, scores, np.float32(-np.inf))
    chosen = _chosen(scores, rows.row_docs, limit, per_document)
    return rows.hits(chosen, scores[chosen])


def _chosen(
    scores: Floats, row_docs: npt.NDArray[np.int32], limit: int, per_document: bool
) -> Ints:
    """The rows to return, best first: the best `limit`, or each of the best `limit`
    documents' best."""
    if per_document:
        return best_row_per_document(scores, row_docs, limit)
    return top_rows(scores, limit)


@dataclass(frozen=True)
class Rows:
    """A workspace's cached rows at one moment (`WorkspaceVectors.snapshot`)."""

    matrix: Floats
    seqs: Ints
    row_docs: npt.NDArray[np.int32]
    chunk_ids: npt.NDArray[np.uint8]
    doc_ids: list[uuid.UUID]
    generation: int

    def hits(self, rows: Ints, scores: Floats) -> list[VectorHit]:
        chunk_ids, doc_ids, row_docs = self.chunk_ids, self.doc_ids, self.row_docs
        return [
            VectorHit(chunk_ids[row].tobytes(), doc_ids[row_docs[row]], cosine)
            for row, cosine in zip(rows.tolist(), scores.tolist(), strict=True)
        ]


# -- the partitioned index of a large workspace (ADR 0147) ------------------------------------


@dataclass(frozen=True)
class Partitioning:
    """When a workspace's unfiltered rankings go through a partitioned index, and how many of
    its lists a query scans (SEARCH_PARTITIONS_MIN_PASSAGES, SEARCH_PARTITIONS_PROBED)."""

    min_rows: int
    probes: int


# Training samples per list: faiss's k-means wants at least 39; more costs build time for no
# measured gain in recall (ADR 0147).
_TRAINING_PER_LIST = 40  # (39 for `list_count`'s cap, one spare)
# A workspace that has grown to this many times the rows its index was built on gets a new one:
# its lists were placed for the old rows.
_REBUILD_GROWTH = 2
_PARTITION_BUILDS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vector-partitions")
_builds: set[asyncio.Task[None]] = set()


def list_count(rows: int) -> int:
    """Lists of the inverted file for `rows` vectors: twice the square root (ADR 0147), and no
    more than faiss's k-means has 39 training rows for."""
    return max(1, min(int(2 * rows**0.5), rows // 39))


class PartitionedIndex:
    """faiss's inverted-file index (flat lists, inner product) over one workspace's cached
    vectors, each row keyed by its `seq`. A query compares itself with the lists' centroids and
    scans the vectors of the nearest `probes` lists only.

    It is searched and changed only on the products' thread, one call at a time, in the order
    the event loop asked: faiss allows concurrent searches but not a search beside an add or a
    removal. Each call first brings the index to the rows the request saw (`follow`)."""

    def __init__(self, index: faiss.IndexIVFFlat, seqs: Ints, generation: int) -> None:
        self.index = index
        self.seqs = seqs  # the seqs it holds, ascending
        self.generation = generation
        self.built_rows = len(seqs)

    @classmethod
    def build(cls, rows: Rows) -> PartitionedIndex:
        faiss = _faiss()
        count, dimension = rows.matrix.shape
        lists = list_count(count)
        index = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT
        )
        # A fixed seed: the same rows give the same lists, so a process's rankings repeat.
        sample = np.random.default_rng(0).choice(
            count, min(count, lists * _TRAINING_PER_LIST), replace=False
        )
        sample.sort()
        index.train(np.ascontiguousarray(rows.matrix[sample]))
        index.add_with_ids(np.ascontiguousarray(rows.matrix), rows.seqs)
        return cls(index, rows.seqs, rows.generation)

    @property
    def nbytes(self) -> int:
        return self.bytes_for(len(self.seqs), int(self.index.d))

    @staticmethod
    def bytes_for(rows: int, dimension: int) -> int:
        """The lists' copy of each vector with its id, and the centroids."""
        return rows * (dimension * 4 + 8) + list_count(rows) * dimension * 4

    def follow(self, rows: Rows) -> None:
        """Hold exactly `rows`: drop what a removal took since (the generation moved), add the
        rows past the last seq held. Rows are only appended in seq order and only removed, so
        that is every difference."""
        if rows.generation != self.generation:
            gone = np.setdiff1d(self.seqs, rows.seqs, assume_unique=True)
            if len(gone):
                self.index.remove_ids(_faiss().IDSelectorBatch(gone))
            self.generation = rows.generation
        last = self.seqs[-1] if len(self.seqs) else -1
        start = int(np.searchsorted(rows.seqs, last, side="right"))
        if start < len(rows.seqs):
            self.index.add_with_ids(np.ascontiguousarray(rows.matrix[start:]), rows.seqs[start:])
        self.seqs = rows.seqs

    def ranked(self, rows: Rows, query: Floats, k: int, probes: int) -> tuple[Ints, Floats]:
        """Up to `k` rows of `rows` (indexes into it) nearest to `query`, best first, with
        their cosine."""
        faiss = _faiss()  # first: sets this thread's OpenMP threads before faiss runs here
        self.follow(rows)
        params = faiss.SearchParametersIVF(nprobe=min(probes, int(self.index.nlist)))
        scores, ids = self.index.search(query.reshape(1, -1), k, params=params)
        held = ids[0] >= 0
        positions: Ints = np.searchsorted(rows.seqs, ids[0][held])
        return positions, scores[0][held]


def _partitions_of(
    vectors: WorkspaceVectors, partitioning: Partitioning
) -> PartitionedIndex | None:
    """The workspace's partitioned index when built; starts a build (off the loop) when it has
    none or has outgrown it. Until then the scan stays exact."""
    partitions = vectors.partitions
    outgrown = partitions is not None and vectors.count >= _REBUILD_GROWTH * partitions.built_rows
    if (partitions is None or outgrown) and not vectors.partitioning:
        vectors.partitioning = True
        task = asyncio.get_running_loop().create_task(_build_partitions(vectors))
        _builds.add(task)
        task.add_done_callback(_builds.discard)
    return partitions


async def partitions_settled() -> None:
    """Wait for the partitioned indexes being built in this process (benchmarks and tests time
    and check the state after)."""
    while _builds:
        await asyncio.gather(*list(_builds))


async def _build_partitions(vectors: WorkspaceVectors) -> None:
    rows = vectors.snapshot()
    try:
        built = await asyncio.get_running_loop().run_in_executor(
            _PARTITION_BUILDS, PartitionedIndex.build, rows
        )
    except Exception:  # the exact scan goes on serving; say why once
        log.exception("building the partitioned index of %d vectors failed", len(rows.seqs))
        return  # `partitioning` stays set: no retry loop on every query
    vectors.partitions = built
    vectors.partitioning = False


async def _ranked_by_partitions(
    partitions: PartitionedIndex,
    rows: Rows,
    query: Floats,
    limit: int,
    per_document: bool,
    partitioning: Partitioning,
) -> list[VectorHit] | None:
    """The ranking through the partitioned index, or None when its nearest lists held too few
    documents for a ranking of `limit` documents (the caller then scans exactly)."""
    k = max(limit * 8, 256) if per_document else limit
    loop = asyncio.get_running_loop()
    positions, scores = await loop.run_in_executor(
        _PRODUCTS, partitions.ranked, rows, query, k, partitioning.probes
    )
    if per_document:
        _, first = np.unique(rows.row_docs[positions], return_index=True)
        first.sort()
        if len(first) < min(limit, len(rows.doc_ids)):
            return None
        first = first[:limit]
        positions, scores = positions[first], scores[first]
    return rows.hits(positions, scores)


# -- the database side ------------------------------------------------------------------------


_INDEX_STATE = select(VectorVersion.version, VectorVersion.deletions).where(
    VectorVersion.workspace_id == bindparam("workspace_id"),
    VectorVersion.model == bindparam("model"),
)


async def index_state(
    session: AsyncSession, workspace_id: uuid.UUID, model: str
) -> IndexState | None:
    params = {"workspace_id": workspace_id, "model": model}
    row = (await session.execute(_INDEX_STATE, params)).one_or_none()
    return IndexState(row[0], row[1]) if row else None


def _decode(rows: Sequence[Any], dimension: int) -> Floats:
    return np.frombuffer(b"".join(r.vector for r in rows), "<f4").reshape(len(rows), dimension)


async def _blocks(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    model: str,
    *,
    after: int,
    upto: int,
    documents: Any = None,
) -> AsyncIterator[Sequence[Any]]:
    """The workspace's vectors of `model` with after < seq <= upto, in seq order, BLOCK_ROWS at
    a time; only those of `documents` (a subquery of document ids) when given."""
    stmt = (
        select(
            ChunkVector.seq,
            ChunkVector.chunk_id,
            ChunkVector.document_id,
            ChunkVector.dimension,
            ChunkVector.vector,
        )
        .where(
            ChunkVector.workspace_id == workspace_id,
            ChunkVector.model == model,
            ChunkVector.seq > after,
            ChunkVector.seq <= upto,
        )
        .order_by(ChunkVector.seq)
    )
    if documents is not None:
        stmt = stmt.where(ChunkVector.document_id.in_(documents))
    # Keyset blocks over ix_chunk_vectors_workspace_model_seq, not a server-side cursor: a
    # cursor needs a transaction on PostgreSQL, and a request's read session has none (ADR
    # 0076). Vectors are never updated in place, rows past `upto` are left out, and a deletion
    # between two blocks bumps `vector_versions.deletions`, which makes the cache reload.
    last = after
    while True:
        block = (await session.execute(stmt.where(ChunkVector.seq > last).limit(BLOCK_ROWS))).all()
        if block:
            yield block
        if len(block) < BLOCK_ROWS:
            return
        last = block[-1].seq


def _same_dimension(block: Sequence[Any], dimension: int) -> list[Any]:
    kept = [r for r in block if r.dimension == dimension and len(r.vector) == dimension * 4]
    if len(kept) != len(block):
        log.warning(
            "skipped %d vectors of another dimension than %d", len(block) - len(kept), dimension
        )
    return kept


class VectorCache:
    """The loaded vectors of the workspaces searched lately, within `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, uuid.UUID, str], WorkspaceVectors] = OrderedDict()
        self._locks: dict[tuple[str, uuid.UUID, str], asyncio.Lock] = {}
        # Workspaces too large for the budget, with the state at which that was found.
        self._oversized: dict[tuple[str, uuid.UUID, str], IndexState] = {}

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def partitioning_for(
        self, vectors: WorkspaceVectors, partitioning: Partitioning | None
    ) -> Partitioning | None:
        """`partitioning` when the workspace has its partitioned index or the budget has room
        for one (ADR 0147), else None: the scan stays exact rather than go over the budget."""
        if partitioning is None or vectors.partitions is not None:
            return partitioning
        needed = PartitionedIndex.bytes_for(vectors.count, vectors.dimension)
        return partitioning if self.nbytes + needed <= self.max_bytes else None

    def __len__(self) -> int:
        return len(self._entries)

    async def vectors(
        self, session: AsyncSession, database: str, workspace_id: uuid.UUID, model: str
    ) -> tuple[WorkspaceVectors | None, IndexState | None]:
        """The workspace's vectors as of now, or (None, state) when it has too many to cache
        (stream them instead); (None, None) when it has none of this model."""
        state = await index_state(session, workspace_id, model)
        return await self.vectors_at(session, database, workspace_id, model, state)

    async def vectors_at(
        self,
        session: AsyncSession,
        database: str,
        workspace_id: uuid.UUID,
        model: str,
        state: IndexState | None,
    ) -> tuple[WorkspaceVectors | None, IndexState | None]:
        """As `vectors`, for a caller that read the workspace's state (`vector_versions`) in
        a statement of its own, in this session."""
        if state is None:
            return None, None
        key = (database, workspace_id, model)
        entry = self._entries.get(key)
        if entry is not None and entry.state == state:
            self._entries.move_to_end(key)
            return entry, state
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and entry.state == state:
                self._entries.move_to_end(key)
                return entry, state
            expected = 0
            if entry is None:
                counted = await self._fits(session, key, state)
                if counted is None:
                    return None, state
                expected = counted
            try:
                entry = await self._refresh(session, key, entry, state, expected)
            except _Oversized:
                self._entries.pop(key, None)
                self._oversized[key] = state
                return None, state
            self._entries[key] = entry
            self._entries.move_to_end(key)
            self._evict(keep=key)
            return entry, state

    async def _fits(
        self, session: AsyncSession, key: tuple[str, uuid.UUID, str], state: IndexState
    ) -> int | None:
        """How many vectors the workspace has, or None when they do not fit the budget
        (counted once per state)."""
        if self._oversized.get(key) == state:
            return None
        _, workspace_id, model = key
        count, dimension = (
            await session.execute(
                select(func.count(), func.max(ChunkVector.dimension)).where(
                    ChunkVector.workspace_id == workspace_id, ChunkVector.model == model
                )
            )
        ).one()
        if WorkspaceVectors.bytes_for(count, dimension or 0) > self.max_bytes:
            self._oversized[key] = state
            return None
        self._oversized.pop(key, None)
        return int(count)

    async def _refresh(
        self,
        session: AsyncSession,
        key: tuple[str, uuid.UUID, str],
        entry: WorkspaceVectors | None,
        state: IndexState,
        expected_rows: int = 0,
    ) -> WorkspaceVectors:
        """`entry` brought to `state`; a new one sized for `expected_rows` at once (no growth
        by copies while the first load reads them)."""
        _, workspace_id, model = key
        if entry is not None and entry.state.deletions != state.deletions:
            live = (
                await session.execute(
                    select(ChunkVector.seq).where(
                        ChunkVector.workspace_id == workspace_id,
                        ChunkVector.model == model,
                        ChunkVector.seq <= entry.state.version,
                    )
                )
            ).scalars()
            entry.keep(np.fromiter(live, np.int64))
        after = entry.state.version if entry is not None else 0
        async for block in _blocks(session, workspace_id, model, after=after, upto=state.version):
            if entry is None or (entry.count == 0 and entry.dimension != block[0].dimension):
                entry = WorkspaceVectors(block[0].dimension)
                entry.reserve(expected_rows)
            rows = _same_dimension(block, entry.dimension)
            if (
                WorkspaceVectors.bytes_for(entry.count + len(rows), entry.dimension)
                > self.max_bytes
            ):
                raise _Oversized
            entry.append(
                [r.seq for r in rows],
                [r.chunk_id for r in rows],
                [r.document_id for r in rows],
                _decode(rows, entry.dimension),
            )
        if entry is None:
            entry = WorkspaceVectors(0)
        entry.state = state
        return entry

    def _evict(self, *, keep: tuple[str, uuid.UUID, str]) -> None:
        total = self.nbytes
        for key in list(self._entries):
            if total <= self.max_bytes:
                break
            if key != keep:
                total -= self._entries.pop(key).nbytes


class _Oversized(Exception):
    pass


_caches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VectorCache] = (
    weakref.WeakKeyDictionary()
)


def vector_cache(max_bytes: int) -> VectorCache:
    """This event loop's cache (asyncio locks belong to one loop); its budget follows the
    setting it is asked with."""
    loop = asyncio.get_running_loop()
    cache = _caches.get(loop)
    if cache is None:
        cache = _caches[loop] = VectorCache(max_bytes)
    cache.max_bytes = max_bytes
    return cache


# -- streaming: a workspace too large for the cache ------------------------------------------


async def stream_scan(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    model: str,
    state: IndexState,
    query: Floats,
    *,
    documents: Any,
    limit: int,
    per_document: bool,
) -> list[VectorHit]:
    """`scan` over vectors read from the database block by block; `documents` (a subquery of
    allowed document ids, or None) filters inside the SQL."""
    best: dict[uuid.UUID, VectorHit] = {}
    hits: list[VectorHit] = []
    async for block in _blocks(
        session, workspace_id, model, after=0, upto=state.version, documents=documents
    ):
        rows = _same_dimension(block, len(query))
        if not rows:
            continue
        scores = normalised(_decode(rows, len(query))) @ query
        for row, score in zip(rows, scores.tolist(), strict=True):
            hit = VectorHit(row.chunk_id.bytes, row.document_id, float(score))
            if per_document:
                current = best.get(row.document_id)
                if current is None or hit.cosine > current.cosine:
                    best[row.document_id] = hit
            else:
                hits.append(hit)
        if not per_document and len(hits) > 4 * limit:
            hits = sorted(hits, key=lambda h: -h.cosine)[:limit]
    ranked = list(best.values()) if per_document else hits
    return sorted(ranked, key=lambda h: -h.cosine)[:limit]
