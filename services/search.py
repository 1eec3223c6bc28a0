"""Search (screen 8) and the retrieval behind it and behind Ask.

`retrieve_passages` is the retrieval entry point: passages of one workspace ranked by keyword
(the database's full-text index), by meaning (cosine similarity of embeddings), or both fused.
Tenant scoping and the filters are applied inside the SQL and inside the vector scan, never by
filtering a larger result afterwards.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.deps import ServiceDeps


class SearchMode(enum.StrEnum):
    KEYWORD = "KEYWORD"
    SEMANTIC = "SEMANTIC"
    HYBRID = "HYBRID"


@dataclass(frozen=True)
class Passage:
    """One chunk as retrieved. `matches` are (start, end) character offsets into `text` of the
    words the full-text index matched (empty for a passage found by meaning alone)."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    collection_id: uuid.UUID
    document_title: str
    text: str
    heading_path: list[str]
    char_start: int
    char_end: int
    score: float
    cosine: float | None
    matches: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Retrieval:
    """Passages best first. `degraded`: semantic ranking was asked for (HYBRID) but the
    embedding model was unavailable, so these are keyword results only. `top_cosine`: the best
    cosine similarity of any passage to the query (None without semantic ranking), which tells
    how well the workspace can answer at all."""

    passages: list[Passage]
    degraded: bool = False
    top_cosine: float | None = None


async def retrieve_passages(
    deps: ServiceDeps,
    *,
    workspace_id: uuid.UUID,
    query: str,
    mode: SearchMode = SearchMode.HYBRID,
    collection_ids: Sequence[uuid.UUID] | None = None,
    document_ids: Sequence[uuid.UUID] | None = None,
    tags: Sequence[str] | None = None,
    limit: int = 20,
) -> Retrieval:
    """The workspace's best `limit` passages for `query`.

    The caller must be a member of the workspace (any role): NOT_FOUND otherwise, as for a
    missing workspace. Filters combine with AND; ids of another workspace match nothing.
    An empty or blank query is Invalid(EMPTY_QUERY). SEMANTIC with the embedding model down
    raises ModelUnavailable; HYBRID then answers with keyword passages and `degraded=True`.
    """
    raise NotImplementedError
