"""The search query (screen 8)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import strawberry

from base.errors import NotFound
from resolvers.core.context import Info
from resolvers.core.errors import as_payload
from resolvers.core.relay import PAGE_ARGS_DESCRIPTION, After, Connection, First, decode_id
from resolvers.documents.types import load_document_fields
from resolvers.search.types import SearchFilter, SearchMode, SearchPayload, SearchResult
from services.search import SearchMode as Mode
from workflows.search import SEARCH

# A collection id that is not one (malformed, another type) must still narrow the filter: it
# becomes an id no collection has, so it matches nothing, like an id of another workspace.
_NO_COLLECTION = uuid.UUID(int=0)


def _collection_ids(ids: list[strawberry.ID] | None) -> list[uuid.UUID]:
    decoded = []
    for value in ids or ():
        try:
            decoded.append(decode_id(value, "Collection", field="filter.collectionIds"))
        except NotFound:
            decoded.append(_NO_COLLECTION)
    return decoded


@strawberry.type
class SearchQueries:
    @strawberry.field(
        description="Documents of a workspace that match a query, best first, each with its "
        "best passage and the ranges to highlight in it. Any member may search. A cursor is "
        f"valid for the same query, mode and filter only. {PAGE_ARGS_DESCRIPTION}"
    )
    async def search(
        self,
        info: Info,
        workspace_id: Annotated[
            strawberry.ID, strawberry.argument(description="The workspace to search.")
        ],
        query: Annotated[
            str,
            strawberry.argument(
                description="What to look for, as typed: searched as words, never as query "
                'syntax, except that words in double quotes ("standard library") must appear '
                "together, in that order. Blank is REQUIRED."
            ),
        ],
        mode: Annotated[
            SearchMode, strawberry.argument(description="How to rank.")
        ] = SearchMode.HYBRID,
        filter: Annotated[
            SearchFilter | None, strawberry.argument(description="Narrow the documents.")
        ] = None,
        first: First = None,
        after: After = None,
    ) -> SearchPayload:
        async def work() -> dict[str, Any]:
            found = await info.context.run(
                SEARCH,
                workspace_id=decode_id(workspace_id, "Workspace", field="workspaceId"),
                query=query,
                mode=Mode[mode.name],
                collection_ids=_collection_ids(filter.collection_ids if filter else None),
                tags=list(filter.tags or []) if filter else None,
                first=first,
                after=after,
            )
            info.context.loaders.prime_collections(e.node.collection for e in found.page.edges)
            documents = [e.node.document for e in found.page.edges]
            path = ("results", "edges", "node", "document")
            document = await load_document_fields(info, documents, *path)
            return {
                "results": Connection.from_page(
                    found.page, lambda hit: SearchResult.of(hit, document(hit.document))
                ),
                "degraded": found.degraded,
                "close_match": found.close_match,
            }

        return await as_payload(SearchPayload, work())
