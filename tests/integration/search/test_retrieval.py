"""Retrieval on PostgreSQL and SQLite over real pages: stemming, highlights from the index,
filters inside the query, tenant scoping, user text searched as text."""

from __future__ import annotations

from services.search import SearchMode, retrieve_passages
from tests.integration.search.conftest import library_of
from tests.support.search import page_document


async def test_keyword_stems_and_highlights_what_the_index_matched(any_db_client, any_db_app):
    library = await library_of(any_db_client, any_db_app)
    deps = library.as_user(library.viewer_id)
    ids = {}
    for page in ("library/getpass.html", "library/tty.html", "library/runpy.html"):
        ids[page] = await page_document(
            library.deps,
            page,
            workspace_id=library.workspace_id,
            collection_id=library.guides,
            owner_id=library.owner_id,
            embed=False,
        )
    found = await retrieve_passages(
        deps, workspace_id=library.workspace_id, query="running", mode=SearchMode.KEYWORD
    )
    assert {p.document_id for p in found.passages} == {ids["library/runpy.html"]}
    assert found.degraded is False and found.top_cosine is None
    for passage in found.passages:
        assert passage.matches, passage
        assert {passage.text[s:e].casefold() for s, e in passage.matches} == {"run"}
