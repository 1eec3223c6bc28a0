"""GraphQL types of search (screen 8)."""

from __future__ import annotations

import enum

import strawberry

from resolvers.core.errors import UserError
from resolvers.core.relay import Connection
from resolvers.documents.types import Document
from services.views import PassageView, SearchHitView


@strawberry.enum(description="How search ranks documents.")
class SearchMode(enum.Enum):
    KEYWORD = strawberry.enum_value(
        "KEYWORD",
        description="By the words typed, with stemming (the database's full-text index): "
        "documents with any of the words, those with more and rarer ones first. Words as "
        "common as 'the' or 'with' count only when the query has nothing else, or in quotes: "
        '"is not" in double quotes is a phrase, and required.',
    )
    SEMANTIC = strawberry.enum_value(
        "SEMANTIC",
        description="By meaning: the cosine similarity of the query's embedding to the "
        "passages' embeddings, nearest first.",
    )
    HYBRID = strawberry.enum_value(
        "HYBRID",
        description="Both rankings fused by their scores scaled to 0-1, meaning weighing more "
        "than words (the default). Keyword results alone, flagged `degraded`, when the "
        "embedding model is unavailable.",
    )


@strawberry.input(description="Filters of a search; all given kinds apply together.")
class SearchFilter:
    collection_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description="Only documents in any of these collections (an unknown id matches "
        "nothing; an empty list is no filter).",
    )
    tags: list[str] | None = strawberry.field(
        default=None,
        description="Only documents with any of these tags (exact, each at most 100 characters: "
        "TOO_LONG; an empty list is no filter).",
    )


@strawberry.type(description="A span of a passage's text to highlight.")
class TextRange:
    start: int = strawberry.field(description="Offset of its first character in `text`.")
    end: int = strawberry.field(description="Offset just after its last character.")


@strawberry.type(description="The passage of a document that best matches a search.")
class SearchPassage:
    text: str = strawberry.field(description="The passage.")
    heading_path: list[str] = strawberry.field(
        description="The headings it sits under, outermost first."
    )
    position: int = strawberry.field(description="Its order in the document, from 0.")
    char_start: int = strawberry.field(
        description="Offset of its first character in the document's text."
    )
    char_end: int = strawberry.field(description="Offset just after its last character.")
    matches: list[TextRange] = strawberry.field(
        description="The words the full-text index matched, in order, as offsets into `text` "
        "(empty when it matched none, as for a passage found by meaning alone)."
    )
    cosine: float | None = strawberry.field(
        description="Its cosine similarity to the query, when semantic ranking found it."
    )

    @classmethod
    def of(cls, view: PassageView) -> SearchPassage:
        return cls(
            text=view.text,
            heading_path=list(view.heading_path),
            position=view.position,
            char_start=view.char_start,
            char_end=view.char_end,
            matches=[TextRange(start=s, end=e) for s, e in view.matches],
            cosine=view.cosine,
        )


@strawberry.type(description="A document that matches a search, with its best passage.")
class SearchResult:
    document: Document = strawberry.field(description="The document.")
    score: float = strawberry.field(
        description="How well it matches; higher is better, comparable within one search only "
        "(BM25 or ts_rank for KEYWORD, cosine for SEMANTIC, for HYBRID the two scaled to 0-1 "
        "and weighed, at most 1)."
    )
    passage: SearchPassage = strawberry.field(description="Its passage that matches best.")

    @classmethod
    def of(cls, view: SearchHitView, document: Document) -> SearchResult:
        return cls(
            document=document,
            score=view.score,
            passage=SearchPassage.of(view.passage),
        )


@strawberry.type(description="Result of search.")
class SearchPayload:
    results: Connection[SearchResult] | None = strawberry.field(
        default=None,
        description="A page of results, best first. `totalCount` is how many results the "
        "search can page through (at most SEARCH_MAX_RESULTS).",
    )
    degraded: bool = strawberry.field(
        default=False,
        description="True when HYBRID could not rank by meaning (the embedding model is "
        "unavailable): these are keyword results alone.",
    )
    close_match: bool | None = strawberry.field(
        default=None,
        description="Whether anything in scope is close to the query by meaning. False: no "
        "document is a good match, and the results are only the nearest ones (show them as "
        "such, e.g. 'Nothing in these documents matches closely'). The bar is Ask's "
        "(ASK_MIN_COSINE, below which Ask says the documents do not answer). Null without "
        "ranking by meaning: KEYWORD, or HYBRID when `degraded`.",
    )
    errors: list[UserError] = strawberry.field(
        description="Expected failures, empty on success: REQUIRED (blank query), NOT_FOUND "
        "(workspaceId), INVALID_CURSOR, BAD_USER_INPUT (negative first), MODEL_UNAVAILABLE "
        "(SEMANTIC while the embedding model is unavailable)."
    )
