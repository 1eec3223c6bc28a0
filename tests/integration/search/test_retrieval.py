"""Retrieval on PostgreSQL and SQLite over real pages with the real embedding model: stemming,
highlights from the index, filters inside the ranking, tenant scoping, the vector cache
following every change, related documents."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event, func, select, text

from base.errors import Invalid, NotFound
from base.models.documents import Chunk, ChunkVector, DocumentVector
from base.models.retrieval import VectorVersion
from base.models.search import FULL_TEXT_INDEX, POSTGRESQL_TEXT_CONFIG
from services import fulltext, ingestion, keyword_index, vector_index
from services.documents import delete_documents
from services.search import (
    SearchMode,
    allowed_document_ids,
    allowed_documents,
    embed_query,
    related_documents,
    retrieve_passages,
    search,
    semantic_hits,
)
from services.search_text import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    marked_ranges,
    query_terms,
    tsquery_text,
)
from tests.integration.search.conftest import Library, library_of, shelve
from tests.support.app_fixtures import changed
from tests.support.databases import count_statements, extracted_text_reads
from tests.support.graphql import uuid_of
from tests.support.search import chunk_texts, indexed_document, page_document, page_text
from tests.support.seed import global_id

pytestmark = pytest.mark.slow(seconds=280)

MODES = list(SearchMode)


async def _shelves(library: Library, *, embed: bool = True) -> dict[str, uuid.UUID]:
    """Guides: getpass, pwd; Reference: tty, termios, grp; the outsider's own workspace: getpass
    and crypt (the same getpass text as the team's)."""
    layout = [
        ("library/getpass.html", library.guides, ("security",)),
        ("library/pwd.html", library.guides, ("unix", "security")),
        ("library/tty.html", library.reference, ("unix",)),
        ("library/termios.html", library.reference, ("unix",)),
        ("library/grp.html", library.reference, ("unix",)),
    ]
    return await shelve(
        library,
        layout,
        outsider_pages=["library/getpass.html", "library/crypt.html"],
        embed=embed,
    )


async def test_keyword_stems_and_highlights_what_the_index_matched(any_db_client, any_db_app):
    library = await library_of(any_db_client, any_db_app)
    deps = library.as_user(library.viewer_id)
    pages = ("library/getpass.html", "library/tty.html", "library/runpy.html")
    ids = await shelve(library, [(p, library.guides, ()) for p in pages], embed=False)
    # runpy says "run" (run_module, run_path) and never "running"; the others say neither.
    found = await retrieve_passages(
        deps, workspace_id=library.workspace_id, query="running", mode=SearchMode.KEYWORD
    )
    assert {p.document_id for p in found.passages} == {ids["library/runpy.html"]}
    assert found.degraded is False and found.top_cosine is None
    for passage in found.passages:
        assert passage.matches, passage
        assert {passage.text[s:e].casefold() for s, e in passage.matches} == {"run"}
    page = await search(
        deps, workspace_id=library.workspace_id, query="Running!", mode=SearchMode.KEYWORD
    )
    assert [e.node.document.id for e in page.page.edges] == [ids["library/runpy.html"]]
    passage = page.page.edges[0].node.passage
    assert {passage.text[s:e].casefold() for s, e in passage.matches} == {"run"}


async def test_a_quoted_phrase_must_appear_in_order(any_db_client, any_db_app):
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library, embed=False)
    deps = library.as_user(library.viewer_id)

    async def found(query: str) -> set[uuid.UUID]:
        page = await search(
            deps, workspace_id=library.workspace_id, query=query, mode=SearchMode.KEYWORD
        )
        return {e.node.document.id for e in page.page.edges}

    # getpass says "database" ("the password database") but never "group database".
    words = await found("group database")
    assert ids["library/getpass.html"] in words
    assert await found('"Group Database"') == {ids["library/pwd.html"], ids["library/grp.html"]}
    assert await found("\u201cgroup database\u201d") == {
        ids["library/pwd.html"],
        ids["library/grp.html"],
    }
    assert await found('"database group"') == set()  # the words, never in that order
    # A phrase and a word: the phrase is required, the word only ranks.
    assert await found('"group database" getpass') == {
        ids["library/pwd.html"],
        ids["library/grp.html"],
    }
    passages = await retrieve_passages(
        deps,
        workspace_id=library.workspace_id,
        query='"group database"',
        mode=SearchMode.KEYWORD,
    )
    assert {p.document_id for p in passages.passages} <= {
        ids["library/pwd.html"],
        ids["library/grp.html"],
    }
    assert passages.passages
    for passage in passages.passages:  # the phrase is in its text or its headings
        searched = " ".join([passage.text, *passage.heading_path]).casefold()
        assert "group database" in " ".join(searched.split()), passage
        for start, end in passage.matches:  # stemmed: "databases" is a match on PostgreSQL
            assert passage.text[start:end].casefold().startswith(("group", "databas")), passage


async def test_stop_words_are_found_when_they_are_the_whole_query(any_db_client, any_db_app):
    """ "with" and "is not" are Python keywords and English stop words. Both indexes keep stop
    words (ADR 0100), so a query of nothing else, or a quoted one, finds them."""
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library, embed=False)
    deps = library.as_user(library.viewer_id)

    async def found(query: str) -> dict[uuid.UUID, set[str]]:
        page = await search(
            deps, workspace_id=library.workspace_id, query=query, mode=SearchMode.KEYWORD
        )
        return {
            e.node.document.id: {
                e.node.passage.text[s:t].casefold() for s, t in e.node.passage.matches
            }
            for e in page.page.edges
        }

    # Read from the pages: "with" is in pwd, termios and grp; "is" then "not" in getpass, pwd
    # and grp; tty and termios say "is" but never "not". The outsider's getpass is in another
    # workspace.
    assert await found("With") == {
        ids["library/pwd.html"]: {"with"},
        ids["library/termios.html"]: {"with"},
        ids["library/grp.html"]: {"with"},
    }
    is_not = await found('"is not"')
    assert set(is_not) == {
        ids["library/getpass.html"],
        ids["library/pwd.html"],
        ids["library/grp.html"],
    }
    # FTS5 marks the phrase as one span; PostgreSQL each word.
    assert all(words and words <= {"is not", "is", "not"} for words in is_not.values()), is_not
    # Unquoted, either word will do: every page says "is".
    assert set(await found("is not")) == set(is_not) | {
        ids["library/tty.html"],
        ids["library/termios.html"],
    }


async def test_a_quoted_phrase_narrows_every_mode(any_db_client, any_db_app):
    """Ranking by meaning lists every embedded document; quotes narrow it inside the scan, as
    they narrow the keyword side, so no mode shows a document without the phrase."""
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library)
    deps = library.as_user(library.viewer_id)
    with_phrase = {ids["library/pwd.html"], ids["library/grp.html"]}

    async def found(query: str, mode: SearchMode, **filters: Any) -> list[uuid.UUID]:
        page = await search(
            deps, workspace_id=library.workspace_id, query=query, mode=mode, **filters
        )
        return [e.node.document.id for e in page.page.edges]

    for mode in MODES:
        assert set(await found('"group database"', mode)) == with_phrase, mode
        assert set(await found('password "group database"', mode)) == with_phrase, mode
        assert await found('"database group"', mode) == [], mode
        only_guides = await found('"group database"', mode, collection_ids=[library.guides])
        assert only_guides == [ids["library/pwd.html"]], mode
    # Without quotes, ranking by meaning still lists every embedded document of the workspace.
    team = {v for k, v in ids.items() if not k.startswith("outsider:")}
    assert set(await found("group database", SearchMode.SEMANTIC)) == team


async def test_close_match_says_when_even_the_nearest_is_far(any_db_client, any_db_app):
    """Ranking by meaning lists the nearest documents however far they are; closeMatch tells
    the screen when the first is not a match, by Ask's bar (ASK_MIN_COSINE)."""
    library = await library_of(any_db_client, any_db_app)
    await _shelves(library)
    deps = library.as_user(library.viewer_id)

    async def close(query: str, mode: SearchMode, **filters: Any) -> bool | None:
        found = await search(
            deps, workspace_id=library.workspace_id, query=query, mode=mode, **filters
        )
        assert found.page.edges or mode is SearchMode.KEYWORD
        return found.close_match

    asked = "read a password from the terminal without echoing it"
    off_topic = "recipe for sourdough bread with a crispy crust"
    for mode in (SearchMode.SEMANTIC, SearchMode.HYBRID):
        assert await close(asked, mode) is True, mode
        assert await close(off_topic, mode) is False, mode
        # Nothing in scope at all (no document holds the phrase): nothing is close.
        nothing = await search(
            deps, workspace_id=library.workspace_id, query='"database group"', mode=mode
        )
        assert (nothing.page.edges, nothing.close_match) == ([], False), mode
    assert await close(asked, SearchMode.KEYWORD) is None
    assert await close(off_topic, SearchMode.KEYWORD) is None
    threshold = deps.settings.ask_min_cosine
    passages = await retrieve_passages(
        deps, workspace_id=library.workspace_id, query=off_topic, mode=SearchMode.SEMANTIC
    )
    assert passages.top_cosine is not None and passages.top_cosine < threshold


async def test_filters_apply_inside_the_ranking(any_db_client, any_db_app):
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library)
    deps = library.as_user(library.viewer_id)
    reference = {ids[p] for p in ("library/tty.html", "library/termios.html", "library/grp.html")}
    for mode in MODES:
        top = await retrieve_passages(
            deps, workspace_id=library.workspace_id, query="user password", mode=mode, limit=1
        )
        filtered = await retrieve_passages(
            deps,
            workspace_id=library.workspace_id,
            query="user password",
            mode=mode,
            limit=1,
            collection_ids=[library.reference],
        )
        # One passage either way: the filter ranks within Reference, it does not filter the
        # workspace's best passage away.
        assert len(top.passages) == 1 and len(filtered.passages) == 1, mode
        assert filtered.passages[0].document_id in reference, mode
        assert filtered.passages[0].collection_id == library.reference
        tagged = await search(
            deps, workspace_id=library.workspace_id, query="password", mode=mode, tags=["security"]
        )
        assert {e.node.document.id for e in tagged.page.edges} == {
            ids["library/getpass.html"],
            ids["library/pwd.html"],
        }, mode
        both = await search(
            deps,
            workspace_id=library.workspace_id,
            query="password",
            mode=mode,
            tags=["unix", " "],
            collection_ids=[library.guides],
        )
        assert [e.node.document.id for e in both.page.edges] == [ids["library/pwd.html"]], mode
        chosen = await retrieve_passages(
            deps,
            workspace_id=library.workspace_id,
            query="password",
            mode=mode,
            document_ids=[ids["library/grp.html"], ids["outsider:library/getpass.html"]],
        )
        assert {p.document_id for p in chosen.passages} == {ids["library/grp.html"]}, mode
        # Another workspace's collection is a collection with nothing in it.
        foreign = await search(
            deps,
            workspace_id=library.workspace_id,
            query="password",
            mode=mode,
            collection_ids=[library.outsider_collection],
        )
        assert (foreign.page.total_count, foreign.page.edges) == (0, []), mode


async def test_a_filters_document_ids_are_read_as_one_packed_value(any_db_client, any_db_app):
    """What a filtered semantic ranking reads to narrow the cached vectors: exactly the ids the
    filter selects, 16 bytes each, on either database; nothing for a filter no document passes."""
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library, embed=False)

    async def packed(**filters: Any) -> set[uuid.UUID]:
        documents = allowed_documents(library.workspace_id, **filters)
        assert documents is not None
        async with library.deps.db() as session:
            value = await allowed_document_ids(session, documents)
        assert len(value) % 16 == 0
        found = [uuid.UUID(bytes=value[i : i + 16]) for i in range(0, len(value), 16)]
        assert len(found) == len(set(found))
        return set(found)

    assert await packed(collection_ids=[library.reference]) == {
        ids[p] for p in ("library/tty.html", "library/termios.html", "library/grp.html")
    }
    assert await packed(tags=["security"], collection_ids=[library.guides, library.reference]) == {
        ids["library/getpass.html"],
        ids["library/pwd.html"],
    }
    assert await packed(collection_ids=[library.outsider_collection]) == set()


async def test_another_workspace_never_appears(any_db_client, any_db_app):
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library)
    mine = {v for k, v in ids.items() if not k.startswith("outsider:")}
    viewer = library.as_user(library.viewer_id)
    with count_statements(any_db_app.state.engine) as statements:
        for mode in MODES:
            for query in ("password", "getpass prompt the user for a password", "crypt"):
                found = await search(
                    viewer, workspace_id=library.workspace_id, query=query, mode=mode, first=100
                )
                assert {e.node.document.id for e in found.page.edges} <= mine, (mode, query)
                passages = await retrieve_passages(
                    viewer, workspace_id=library.workspace_id, query=query, mode=mode, limit=100
                )
                assert {p.document_id for p in passages.passages} <= mine, (mode, query)
            # The outsider may not search the team's workspace, nor the viewer the outsider's.
            outsider = library.as_user(library.outsider_id)
            with pytest.raises(NotFound) as refused:
                await search(
                    outsider, workspace_id=library.workspace_id, query="password", mode=mode
                )
            assert (refused.value.code, refused.value.field) == ("NOT_FOUND", "workspaceId")
            with pytest.raises(NotFound):
                await retrieve_passages(
                    viewer, workspace_id=library.outsider_workspace_id, query="password", mode=mode
                )
        # Related documents stay in their workspace too.
        related = await related_documents(viewer, ids=[ids["library/getpass.html"]])
        assert {r.document.id for r in related[0]} <= mine - {ids["library/getpass.html"]}
        assert len(related[0]) == 4
        assert [r.score for r in related[0]] == sorted((r.score for r in related[0]), reverse=True)
        hidden = await related_documents(viewer, ids=[ids["outsider:library/getpass.html"]])
        assert hidden == [[]]
    # The results' and related documents' rows were read, without their extracted text.
    assert [s for s in statements if "FROM documents" in s]
    assert extracted_text_reads(statements) == []


async def test_pages_of_one_search_and_cursors_of_another(any_db_client, any_db_app):
    library = await library_of(any_db_client, any_db_app)
    await _shelves(library, embed=False)
    deps = library.as_user(library.viewer_id)
    whole = await search(
        deps, workspace_id=library.workspace_id, query="password", mode=SearchMode.KEYWORD
    )
    assert whole.page.total_count == 4  # getpass, pwd, termios, grp; tty never says it
    order = [e.node.document.id for e in whole.page.edges]
    walked, after = [], None
    while True:
        page = await search(
            deps,
            workspace_id=library.workspace_id,
            query="password",
            mode=SearchMode.KEYWORD,
            first=1,
            after=after,
        )
        walked += [e.node.document.id for e in page.page.edges]
        assert page.page.total_count == 4
        assert page.page.has_previous_page is (after is not None)
        if not page.page.has_next_page:
            break
        after = page.page.edges[-1].cursor
    assert walked == order
    cursor = whole.page.edges[0].cursor
    for other in (
        {"query": "passwords"},
        {"query": "password", "mode": SearchMode.HYBRID},
        {"query": "password", "collection_ids": [library.guides]},
        {"query": "password", "tags": ["unix"]},
    ):
        arguments = {"query": "password", "mode": SearchMode.KEYWORD, **other}
        with pytest.raises(Invalid) as refused:
            await search(deps, workspace_id=library.workspace_id, after=cursor, **arguments)
        assert (refused.value.code, refused.value.field) == ("INVALID_CURSOR", "after"), other
    # Blank space around or inside the query does not make it another query.
    again = await search(
        deps,
        workspace_id=library.workspace_id,
        query="  password ",
        mode=SearchMode.KEYWORD,
        after=cursor,
    )
    assert [e.node.document.id for e in again.page.edges] == order[1:]


async def _state(library: Library) -> tuple[int, int] | None:
    async with library.deps.db() as session:
        row = (
            await session.execute(
                select(VectorVersion.version, VectorVersion.deletions).where(
                    VectorVersion.workspace_id == library.workspace_id
                )
            )
        ).one_or_none()
        return (row[0], row[1]) if row else None


async def _chunk_count(library: Library, document_id: uuid.UUID) -> int:
    async with library.deps.db() as session:
        return len(
            (await session.execute(select(Chunk.id).where(Chunk.document_id == document_id))).all()
        )


@pytest.mark.parametrize(
    ("cache_mb", "partitions_from"),
    [(512, 0), (0, 0), (512, 1)],
    ids=["cached", "streamed", "partitioned"],
)
async def test_semantic_search_follows_every_change(
    any_db_client, any_db_app, cache_mb, partitions_from
):
    """`partitioned`: the cache's partitioned index (ADR 0147) from the first vector, every list
    probed, so its rankings must be the exact ones while it follows each change."""
    library = await library_of(any_db_client, any_db_app)
    deps = library.as_user(library.owner_id)
    deps = dataclasses.replace(
        deps,
        settings=changed(
            deps.settings,
            search_vector_cache_mb=cache_mb,
            search_partitions_min_passages=partitions_from,
            search_partitions_probed=100_000,
        ),
    )
    cache = vector_index.vector_cache(cache_mb * 1024 * 1024)
    key = (deps.settings.database_url, library.workspace_id, deps.settings.embed_model)
    searches: list[Any] = []
    assert await _state(library) is None
    getpass = await page_document(
        library.deps,
        "library/getpass.html",
        workspace_id=library.workspace_id,
        collection_id=library.guides,
        owner_id=library.owner_id,
    )
    vectors = await _chunk_count(library, getpass)
    assert await _state(library) == (vectors, 0)  # each vector numbered, nothing deleted

    async def semantic() -> list[tuple[uuid.UUID, uuid.UUID]]:
        found = await retrieve_passages(
            deps,
            workspace_id=library.workspace_id,
            query="read a password",
            mode=SearchMode.SEMANTIC,
            limit=100,
        )
        await vector_index.partitions_settled()  # the next search finds the index built
        if partitions_from:
            entry = cache._entries[key]
            assert entry.partitions is not None
            if searches:  # the index ranked this one, after following every change
                assert entry.partitions.index.ntotal == entry.count
                exact = await vector_index.scan(
                    entry,
                    await embed_query(deps, "read a password"),
                    allowed=None,
                    limit=100,
                    per_document=False,
                )
                assert {p.chunk_id for p in found.passages} == {h.chunk_id for h in exact}
                assert [p.score for p in found.passages] == pytest.approx(
                    [h.cosine for h in exact], abs=1e-5
                )
        searches.append(found)
        return [(p.document_id, p.chunk_id) for p in found.passages]

    first = await semantic()
    assert {d for d, _ in first} == {getpass} and len(first) == vectors
    tty = await page_document(
        library.deps,
        "library/tty.html",
        workspace_id=library.workspace_id,
        collection_id=library.reference,
        owner_id=library.owner_id,
    )
    added = await _chunk_count(library, tty)
    assert await _state(library) == (vectors + added, 0)
    assert {d for d, _ in await semantic()} == {getpass, tty}
    # Reprocessing replaces the passages (and so the vectors) of getpass.
    old_chunks = {c for d, c in await semantic() if d == getpass}
    await ingestion.chunking_step(library.deps, document_id=str(getpass))
    await ingestion.indexing(library.deps, document_id=str(getpass))
    await ingestion.embedding(library.deps, document_id=str(getpass))
    new_chunks = {c for d, c in await semantic() if d == getpass}
    assert len(new_chunks) == vectors and not new_chunks & old_chunks
    assert await _state(library) == (3 * vectors + added, vectors)
    deleted = await delete_documents(deps, ids=[tty])
    assert deleted.errors == []
    assert {d for d, _ in await semantic()} == {getpass}
    assert await _state(library) == (3 * vectors + 2 * added, vectors + added)


async def test_blank_and_hostile_queries(any_db_client, any_db_app):
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library)
    deps = library.as_user(library.viewer_id)
    for mode in MODES:
        for blank in ("", "   ", "\n\t"):
            with pytest.raises(Invalid) as refused:
                await search(deps, workspace_id=library.workspace_id, query=blank, mode=mode)
            assert (refused.value.code, refused.value.field) == ("REQUIRED", "query")
        nothing = await search(
            deps, workspace_id=library.workspace_id, query="*** ::: ()", mode=SearchMode.KEYWORD
        )
        assert nothing.page.total_count == 0
    long_query = ("password " * 1200)[:10_000]
    found = await search(deps, workspace_id=library.workspace_id, query=long_query)
    assert found.page.edges and found.degraded is False
    hostile = await search(
        deps,
        workspace_id=library.workspace_id,
        query='"password" NEAR(user*) : & | ! ( ) ${workspace_id} headings:pwd',
        mode=SearchMode.KEYWORD,
    )
    assert ids["library/pwd.html"] in {e.node.document.id for e in hostile.page.edges}
    # Phrases of stop words only, and a quoted pasted page.
    for query in ('"to be" "or not"', '"' + ("user password " * 2000)[:10_000] + '"'):
        for mode in MODES:
            found = await search(deps, workspace_id=library.workspace_id, query=query, mode=mode)
            assert found.degraded is False, (query[:20], mode)


async def test_the_passage_shown_is_the_best_by_text_not_by_headings(any_db_client, any_db_app):
    library = await library_of(any_db_client, any_db_app)
    deps = library.as_user(library.viewer_id)
    await page_document(
        library.deps,
        "library/tty.html",
        workspace_id=library.workspace_id,
        collection_id=library.guides,
        owner_id=library.owner_id,
        embed=False,
    )
    # getpass's real text with a second heading, "Zebra", over its last part: "zebra" is in
    # those passages' headings only, "launched" in the text of one passage before them, once.
    title, text, headings = page_text("library/getpass.html")
    split = text.index("exception getpass.GetPassWarning")
    document_id = await indexed_document(
        library.deps,
        workspace_id=library.workspace_id,
        collection_id=library.guides,
        owner_id=library.owner_id,
        title=title,
        text=text,
        headings=[*headings, [2, "Zebra", split]],
        embed=False,
    )
    chunks = await chunk_texts(library.deps, document_id)
    [by_text] = [c for c, t in chunks.items() if "launched" in t]
    under_zebra = {c for c, t in chunks.items() if text.index(t) >= split}
    terms = ["zebra", "launched"]
    async with deps.read() as session:
        hits = await keyword_index.best_documents(session, library.workspace_id, terms, limit=10)
        shown = await keyword_index.text_passages(
            session, library.workspace_id, terms, hits, [document_id]
        )
    # The heading match ranks a "Zebra" passage first; the text's best is another passage.
    assert [(h.document_id, h.chunk_id in under_zebra) for h in hits] == [(document_id, True)]
    assert shown == {document_id: by_text}
    found = await search(
        deps, workspace_id=library.workspace_id, query="zebra launched", mode=SearchMode.KEYWORD
    )
    [edge] = found.page.edges
    passage = edge.node.passage
    assert (edge.node.document.id, passage.chunk_id) == (document_id, by_text)
    assert {passage.text[s:e] for s, e in passage.matches} == {"launched"}


async def test_a_hybrid_result_shows_its_keyword_passage_or_else_its_nearest(
    any_db_client, any_db_app
):
    """Each HYBRID result shows the passage the keyword ranking chose for its document (by its
    text), or, for a document found by meaning alone, its nearest passage; a passage's cosine
    is given exactly when it is the one the semantic ranking found. Only the page's results
    are given passages (`_shown`), so the second page is checked too."""
    library = await library_of(any_db_client, any_db_app)
    await _shelves(library)
    deps = library.as_user(library.viewer_id)
    query = "password"
    terms = query_terms(query)
    async with deps.read() as session:
        keyword = await keyword_index.best_documents(session, library.workspace_id, terms, limit=50)
        by_text = await keyword_index.text_passages(
            session, library.workspace_id, terms, keyword, [h.document_id for h in keyword]
        )
        vector = await embed_query(deps, query)
        nearest = {
            h.document_id: h
            for h in await semantic_hits(
                deps, session, library.workspace_id, vector, None, limit=50, per_document=True
            )
        }
    by_keyword = {h.document_id: by_text.get(h.document_id, h.chunk_id) for h in keyword}
    # The team's five documents, all embedded; "password" is in some of them only.
    assert len(nearest) == 5 and 0 < len(by_keyword) < 5
    shown = []
    after = None
    for _page in range(3):
        found = await search(
            deps, workspace_id=library.workspace_id, query=query, first=2, after=after
        )
        assert found.page.total_count == 5
        shown += [edge.node for edge in found.page.edges]
        after = found.page.edges[-1].cursor if found.page.has_next_page else None
    assert after is None and len({hit.document.id for hit in shown}) == 5
    for hit in shown:
        document_id, passage = hit.document.id, hit.passage
        near = nearest[document_id]
        if document_id in by_keyword:
            assert passage.chunk_id == by_keyword[document_id]
            assert passage.matches != []
        else:
            assert (passage.chunk_id, passage.matches) == (near.chunk_id, [])
        if passage.chunk_id == near.chunk_id:
            assert passage.cosine == pytest.approx(near.cosine, abs=1e-6)
        else:
            assert passage.cosine is None
    # Both kinds of passage are on the pages: one the semantic ranking found, and another.
    assert {hit.passage.cosine is None for hit in shown} == {True, False}


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


async def test_a_filtered_keyword_search_reads_the_index_once(client, app):
    """PostgreSQL: the filter's documents are gathered once, so however the planner estimates
    them it cannot loop over them and scan the GIN index once per document (ADR 0062)."""
    library = await library_of(client, app)
    ids = await _shelves(library, embed=False)
    ranking: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        if "ts_rank" in statement and "DISTINCT ON" in statement and "collection_id" in statement:
            ranking.append((statement, params))

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        found = await search(
            library.as_user(library.viewer_id),
            workspace_id=library.workspace_id,
            query="terminal attributes",
            mode=SearchMode.KEYWORD,
            collection_ids=[library.reference],
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    reference = {ids[p] for p in ("library/tty.html", "library/termios.html", "library/grp.html")}
    assert {e.node.document.id for e in found.page.edges} <= reference
    assert ids["library/termios.html"] in {e.node.document.id for e in found.page.edges}
    [(statement, params)] = ranking
    scans = [
        n
        for n in _plan_nodes(await _plan_on_few_rows(app, statement, params))
        if n.get("Relation Name") == "chunk_search"
        or str(n.get("Index Name", "")).startswith("ix_chunk_search")
    ]
    # chunk_search is read in one pass, never once per allowed document.
    assert scans and {n["Actual Loops"] for n in scans} == {1}


async def _plan_on_few_rows(app: Any, statement: str, params: Any) -> dict[str, Any]:
    """EXPLAIN ANALYZE's plan of `statement` as PostgreSQL plans it when its estimates are off (a
    few rows where there are thousands), forced on the tests' few rows: indexes and nested loops
    only."""
    async with app.state.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        for setting in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
            await raw.execute(f"SET {setting} = off")
        try:
            [[plan]] = await raw.fetch("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, *params)
        finally:
            await raw.execute("RESET ALL")
    return dict(plan[0]["Plan"])


async def test_the_index_finds_the_workspaces_matches_only(client, app):
    """PostgreSQL (ADR 0120): the full-text index is keyed by workspace first, so the ranking
    reads the searched workspace's matches and never another workspace's (the outsider's
    getpass page holds the same words) to drop them afterwards."""
    library = await library_of(client, app)
    await _shelves(library, embed=False)
    ranking: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        if "ts_rank" in statement and "WITH top" in statement:
            ranking.append((statement, params))

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        async with library.deps.read() as session:
            hits = await keyword_index.best_documents(
                session, library.workspace_id, ["password"], limit=10
            )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    count = "SELECT count(*) FROM chunk_search WHERE search_vector @@ to_tsquery(:c, 'password')"
    async with library.deps.read() as session:
        everywhere = await session.scalar(text(count), {"c": POSTGRESQL_TEXT_CONFIG})
        ours = await session.scalar(
            text(count + " AND workspace_id = :w"),
            {"c": POSTGRESQL_TEXT_CONFIG, "w": library.workspace_id},
        )
    assert hits and ours < everywhere  # the outsider's passages hold the word too
    [(statement, params)] = ranking
    nodes = list(_plan_nodes(await _plan_on_few_rows(app, statement, params)))
    [index_scan] = [n for n in nodes if n.get("Index Name") == FULL_TEXT_INDEX]
    assert index_scan["Actual Rows"] == ours
    [heap_scan] = [n for n in nodes if n.get("Relation Name") == "chunk_search"]
    assert heap_scan.get("Rows Removed by Filter", 0) == 0


@pytest.mark.parametrize("limit", [1, 3, 5])
async def test_documents_from_a_narrow_window_of_best_chunks_are_the_exact_ranking(
    any_db_client, any_db_app, limit: int
):
    """PostgreSQL keeps each document's best chunk among the best chunks only, widening the
    window until the answer is exact: any first window gives the ranking of all matches."""
    library = await library_of(any_db_client, any_db_app)
    await _shelves(library, embed=False)
    queries = [["password"], ["terminal", "mode"], ["the", "module", "function"], ["group"]]
    async with library.deps.read() as session:
        for terms in queries:
            exact = await keyword_index.best_documents(
                session, library.workspace_id, terms, limit=limit, window=100_000
            )
            assert exact, terms
            for window in (1, 2, 3, 7):
                with count_statements(any_db_app.state.engine) as statements:
                    narrow = await keyword_index.best_documents(
                        session, library.workspace_id, terms, limit=limit, window=window
                    )
                assert narrow == exact, (terms, window)
                if (
                    window == 1
                    and len(exact) > 1
                    and "postgresql" in str(any_db_app.state.engine.url)
                ):
                    assert len(statements) > 1, terms  # the window was widened


async def test_a_heading_word_counts_twice_a_text_word(any_db_client, any_db_app):
    """HEADING_WEIGHTS (2:1) on both databases. On PostgreSQL ts_rank's own label weights
    (2.5:1) would put the passage under an "Alpha" heading first; at 2:1 the passage whose text
    says "alpha" twice and "beta" once comes first."""
    library = await library_of(any_db_client, any_db_app)
    deps = library.as_user(library.viewer_id)

    async def add(title: str, text: str, headings: list[list[object]]) -> uuid.UUID:
        return await indexed_document(
            library.deps,
            workspace_id=library.workspace_id,
            collection_id=library.guides,
            owner_id=library.owner_id,
            title=title,
            text=text,
            headings=headings,
            embed=False,
        )

    under_heading = await add(
        "Notes", "Plain words about the weather on a quiet day.", [[1, "Alpha", 0]]
    )
    in_text = await add("Log", "Alpha came first. Then alpha again. Beta came last.", [])
    for filler in ("Gamma rays and delta waves.", "Epsilon is small.", "Zeta, eta, theta."):
        await add(filler.split()[0], filler, [])
    async with deps.read() as session:
        hits = await keyword_index.best_documents(
            session, library.workspace_id, ["alpha", "beta"], limit=10
        )
        default_weights = await keyword_index.best_documents(
            session, library.workspace_id, ["alpha", "beta"], limit=10, weights=(1.0, 0.4)
        )
    assert [h.document_id for h in hits] == [in_text, under_heading]
    if any_db_app.state.deps.settings.is_sqlite:
        return
    assert [h.document_id for h in default_weights] == [under_heading, in_text]


def _related_pairs(found: list[list[Any]]) -> list[list[tuple[uuid.UUID, float]]]:
    return [[(r.document.id, r.score) for r in related] for related in found]


def _same_ranking(a: list[list[tuple[uuid.UUID, float]]], b: list[Any]) -> bool:
    """The same documents in the same order, scores equal to float32 rounding (the sums run in
    another order)."""
    pairs = [p for x, y in zip(a, b, strict=True) for p in zip(x, y, strict=True)]
    return [[d for d, _ in x] for x in a] == [[d for d, _ in x] for x in b] and all(
        abs(s - t) < 1e-5 for (_, s), (_, t) in pairs
    )


async def test_related_documents_past_the_cache_come_from_the_documents_own_vectors(
    any_db_client, any_db_app
):
    """A workspace too large for the cache ranks related documents from `document_vectors`
    (ADR 0116), read block by block: the same documents and scores as the cache's exact scan.
    A document's vector is the normalised mean of its passages'; cutting the passages again drops
    it until they are embedded again; a deleted document's goes with it."""
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library)
    team = [v for k, v in ids.items() if not k.startswith("outsider:")]
    owner = library.as_user(library.owner_id)
    cached, streamed = (
        dataclasses.replace(owner, settings=changed(owner.settings, search_vector_cache_mb=mb))
        for mb in (512, 0)
    )
    by_cache = _related_pairs(await related_documents(cached, ids=team))
    by_stream = _related_pairs(await related_documents(streamed, ids=team))
    assert [len(r) for r in by_cache] == [4] * len(team)
    assert _same_ranking(by_stream, by_cache)
    getpass, tty = ids["library/getpass.html"], ids["library/tty.html"]
    async with library.deps.db() as session:
        passages = (
            await session.execute(
                select(ChunkVector.vector).where(ChunkVector.document_id == getpass)
            )
        ).scalars()
        matrix = np.frombuffer(b"".join(passages), "<f4").reshape(-1, 384).astype(np.float64)
        mean = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).sum(axis=0)
        stored = (
            await session.execute(
                select(DocumentVector.dimension, DocumentVector.vector, DocumentVector.model).where(
                    DocumentVector.document_id == getpass
                )
            )
        ).all()
    assert [(d, m) for d, _, m in stored] == [(384, owner.settings.embed_model)]
    assert np.allclose(np.frombuffer(stored[0][1], "<f4"), mean / np.linalg.norm(mean), atol=1e-6)
    # Cut again: getpass has no vector until EMBEDDING gives its passages theirs again.
    await ingestion.chunking_step(library.deps, document_id=str(getpass))
    assert await _document_vector_count(library, getpass) == 0
    pwd = ids["library/pwd.html"]
    alone = _related_pairs(await related_documents(streamed, ids=[pwd, getpass]))
    assert getpass not in {d for d, _ in alone[0]} and alone[1] == [] and len(alone[0]) == 3
    await ingestion.indexing(library.deps, document_id=str(getpass))
    await ingestion.embedding(library.deps, document_id=str(getpass))
    assert await _document_vector_count(library, getpass) == 1
    assert _same_ranking(
        _related_pairs(await related_documents(streamed, ids=team)),
        _related_pairs(await related_documents(cached, ids=team)),
    )
    deleted = await delete_documents(owner, ids=[tty])
    assert deleted.errors == []
    assert await _document_vector_count(library, tty) == 0
    after = _related_pairs(await related_documents(streamed, ids=[pwd]))
    assert tty not in {d for d, _ in after[0]} and len(after[0]) == 3


async def _document_vector_count(library: Library, document_id: uuid.UUID) -> int:
    async with library.deps.db() as session:
        return len(
            (
                await session.execute(
                    select(DocumentVector.model).where(DocumentVector.document_id == document_id)
                )
            ).all()
        )


async def _copies_of_every_passage(library: Library, document_ids: list[uuid.UUID], copies: int):
    """Each document's passages `copies` more times (positions past its own), re-indexed by
    the INDEXING step's own function, then ANALYZE: a table large enough to have common words,
    made of real text."""
    async with library.deps.db.begin() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        new_id, copy_numbers = (
            ("gen_random_uuid()", "generate_series(1, :copies) AS numbers(copy)")
            if postgres
            else (
                "lower(hex(randomblob(16)))",
                "(WITH RECURSIVE n(copy) AS (SELECT 1 UNION ALL SELECT copy + 1 FROM n"
                " WHERE copy < :copies) SELECT copy FROM n) AS numbers",
            )
        )
        await session.execute(
            text(
                "INSERT INTO chunks (id, document_id, workspace_id, position, text, heading_path,"
                f" char_start, char_end, token_count) SELECT {new_id}, c.document_id,"
                " c.workspace_id, c.position + 10000 * numbers.copy, c.text, c.heading_path,"
                f" c.char_start, c.char_end, c.token_count FROM chunks AS c, {copy_numbers}"
            ),
            {"copies": copies},
        )
        for document_id in document_ids:
            await fulltext.index_document(session, document_id)
    async with library.deps.db.begin() as session:
        await session.execute(text("ANALYZE chunk_search"))


async def _share_of(session: Any, word: str) -> float:
    """The share of passages holding `word`'s lexeme, by the planner's statistics (0 when it
    is not among the most common)."""
    share = await session.scalar(
        text(
            "SELECT common.share FROM pg_stats AS s,"
            " unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)"
            " AS common(lexeme, share)"
            " WHERE s.tablename = 'chunk_search' AND s.attname = 'search_vector'"
            " AND common.lexeme = (SELECT (tsvector_to_array(to_tsvector(:config, :word)))[1])"
        ),
        {"config": POSTGRESQL_TEXT_CONFIG, "word": word},
    )
    return float(share or 0.0)


async def test_common_words_score_but_only_rarer_words_match(client, app):
    """PostgreSQL (ADR 0119): while the query has a word that fewer than COMMON_WORD_SHARE of
    the passages hold, only passages holding such a word are ranked, and the common words still
    add to their scores; a query of common words alone matches every passage holding one."""
    library = await library_of(client, app)
    ids = await _shelves(library, embed=False)
    await _copies_of_every_passage(library, list(ids.values()), 30)
    deps = library.as_user(library.viewer_id)
    ranked = "ts_rank('{0, 0, 0.5, 1.0}'::float4[], search_vector, to_tsquery(:config, :q), 0)"

    async def matching(session: Any, tsquery: str, score: str = ranked) -> dict[uuid.UUID, float]:
        rows = await session.execute(
            text(
                f"SELECT chunk_id, {score} FROM chunk_search WHERE workspace_id = :workspace"
                " AND search_vector @@ to_tsquery(:config, :match)"
            ),
            {
                "config": POSTGRESQL_TEXT_CONFIG,
                "q": "password | asterisk",
                "match": tsquery,
                "workspace": library.workspace_id,
            },
        )
        return {chunk_id: float(score) for chunk_id, score in rows}

    async with deps.read() as session:
        # Read from the pages, copied 30 times: "password" is in most passages, "asterisk" in
        # one passage of pwd (an encrypted password shown as "*"), which also says "password".
        assert await session.scalar(text("SELECT count(*) FROM chunk_search")) == 34 * 31
        assert await _share_of(session, "password") >= keyword_index.COMMON_WORD_SHARE
        assert 0 < await _share_of(session, "asterisk") < keyword_index.COMMON_WORD_SHARE
        hits = await keyword_index.best_chunks(
            session, library.workspace_id, ["password", "asterisk"], limit=10_000
        )
        with_asterisk = await matching(session, "asterisk")
        with_password = await matching(session, "password")
        asterisk_alone = await matching(session, "asterisk", ranked.replace(":q", "'asterisk'"))
        common_alone = await keyword_index.best_chunks(
            session, library.workspace_id, ["password"], limit=10_000
        )
    # In the team's workspace: 1 passage with "asterisk" and 11 with "password", each 31 times.
    assert (len(with_asterisk), len(with_password)) == (31, 11 * 31)
    assert {h.chunk_id: pytest.approx(h.score) for h in hits} == with_asterisk
    # "password" still scores: those passages rank above their score for "asterisk" alone.
    assert any(with_asterisk[c] > asterisk_alone[c] * 1.5 for c in with_asterisk)
    assert {h.chunk_id for h in common_alone} == set(with_password)
    found = await search(
        deps, workspace_id=library.workspace_id, query="password asterisk", mode=SearchMode.KEYWORD
    )
    assert {e.node.document.id for e in found.page.edges} == {ids["library/pwd.html"]}


@pytest.mark.parametrize("any_db_settings", ["sqlite"], indirect=True)
async def test_fts5_ranks_only_passages_with_a_rarer_word_in_keyword_mode(
    any_db_client, any_db_app
):
    """SQLite (ADR 0119's amendment of 2026-12-06): a keyword ranking shown alone (Search's
    KEYWORD mode), while the query has a word that fewer than COMMON_WORD_SHARE of the passages
    hold, ranks only passages holding such a word, each with the score bm25() gives it for the
    whole query; a ranking to be fused (HYBRID), and a query of common words alone, rank every
    passage holding any word."""
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library, embed=False)
    await _copies_of_every_passage(library, list(ids.values()), 30)
    deps = library.as_user(library.viewer_id)

    async def best_by_document(session: Any, match: str) -> dict[uuid.UUID, float]:
        """Each document's best bm25() for the whole query among its passages that `match`
        matches (headings weighing twice their text, as the app ranks)."""
        rows = await session.execute(
            text(
                # bm25() only in the statement that MATCHes: materialised before the max().
                "WITH m AS MATERIALIZED (SELECT s.document_id, -bm25(chunk_fts, 2.0, 1.0) AS score"
                " FROM chunk_fts JOIN chunk_search AS s ON s.id = chunk_fts.rowid"
                ' WHERE chunk_fts MATCH \'"password" OR "asterisk"\''
                " AND s.workspace_id = :workspace"
                " AND chunk_fts.rowid IN"
                " (SELECT rowid FROM chunk_fts WHERE chunk_fts MATCH :match))"
                " SELECT document_id, max(score) FROM m GROUP BY document_id"
            ),
            {"match": match, "workspace": library.workspace_id.hex},
        )
        return {uuid.UUID(document_id): float(score) for document_id, score in rows}

    async def share_of(session: Any, word: str) -> float:
        held = await session.scalar(
            text("SELECT count(*) FROM chunk_fts WHERE chunk_fts MATCH :word"), {"word": word}
        )
        return held / await session.scalar(text("SELECT count(*) FROM chunk_search"))

    words = ["password", "asterisk"]
    async with deps.read() as session:
        # As on PostgreSQL: "password" is in most passages, "asterisk" in one passage of pwd.
        assert await session.scalar(text("SELECT count(*) FROM chunk_search")) == 34 * 31
        assert await share_of(session, "password") >= keyword_index.COMMON_WORD_SHARE
        assert 0 < await share_of(session, "asterisk") < keyword_index.COMMON_WORD_SHARE
        alone = await keyword_index.best_documents(
            session, library.workspace_id, words, limit=100, ranked_alone=True
        )
        fused = await keyword_index.best_documents(session, library.workspace_id, words, limit=100)
        common_alone = await keyword_index.best_documents(
            session, library.workspace_id, ["password"], limit=100, ranked_alone=True
        )
        with_asterisk = await best_by_document(session, "asterisk")
        with_any = await best_by_document(session, "password OR asterisk")
    assert set(with_asterisk) == {ids["library/pwd.html"]} and len(with_any) > 1
    assert {h.document_id: pytest.approx(h.score) for h in alone} == with_asterisk
    assert {h.document_id: pytest.approx(h.score) for h in fused} == with_any
    assert {h.document_id for h in common_alone} == set(with_any)
    found = await search(
        deps, workspace_id=library.workspace_id, query="password asterisk", mode=SearchMode.KEYWORD
    )
    assert [e.node.document.id for e in found.page.edges] == [ids["library/pwd.html"]]
    hybrid = await search(
        deps, workspace_id=library.workspace_id, query="password asterisk", mode=SearchMode.HYBRID
    )
    assert {e.node.document.id for e in hybrid.page.edges} == set(with_any)


async def test_a_page_of_results_is_read_in_one_statement(any_db_client, any_db_app):
    """The page's passages come with their documents in one statement, and on PostgreSQL with
    their highlights too (from the word offsets, ADR 0141; SQLite's highlight() needs a MATCH of
    its own): a search is the membership check, its rankings and that. Ask's passages are read
    the same way."""
    library = await library_of(any_db_client, any_db_app)
    await _shelves(library)
    viewer = library.as_user(library.viewer_id)
    postgres = "postgresql" in str(any_db_app.state.engine.url)
    # SQLite's KEYWORD reads which of the query's words are common before it ranks (ADR 0119).
    common_words = 0 if postgres else 1
    expected = {  # statements, then those that read the page's passages
        SearchMode.KEYWORD: (4 + common_words, 1),  # + the ranking; + text passages or highlights
        SearchMode.SEMANTIC: (3, 1) if postgres else (4, 1),  # + the vector state
        SearchMode.HYBRID: (5, 1),  # + the ranking, the vector state
    }
    for mode, (count, page_reads) in expected.items():
        await search(viewer, workspace_id=library.workspace_id, query="password", mode=mode)
        with count_statements(any_db_app.state.engine) as statements:
            found = await search(
                viewer, workspace_id=library.workspace_id, query="password prompt", mode=mode
            )
        assert len(found.page.edges) >= 4, mode
        assert any(e.node.passage.matches for e in found.page.edges), mode
        assert len(statements) == count, (mode, statements)
        reads = [s for s in statements if "FROM chunks JOIN documents" in " ".join(s.split())]
        assert len(reads) == page_reads, (mode, statements)
        assert ("chunk_word_offsets" in reads[0]) is postgres
        assert sum("highlight(chunk_fts" in s for s in statements) == (0 if postgres else 1)
        # Ask's passages are read the same way.
        with count_statements(any_db_app.state.engine) as statements:
            passages = await retrieve_passages(
                viewer, workspace_id=library.workspace_id, query="password prompt", mode=mode
            )
        assert any(p.matches for p in passages.passages), mode
        reads = [s for s in statements if "FROM chunks JOIN documents" in " ".join(s.split())]
        assert len(reads) == 1, (mode, statements)
        assert ("chunk_word_offsets" in reads[0]) is postgres
        assert sum("highlight(chunk_fts" in s for s in statements) == (0 if postgres else 1)


async def test_the_search_operation_reads_the_results_collections_with_the_page(
    any_db_client, any_db_app
):
    """The Search operation names each result's collection without a read of its own: the
    collections come with the page's passages and documents."""
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library)
    names = {v: k.split("/")[-1] for k, v in ids.items()}
    variables = {"workspaceId": library.workspace_gid, "query": "password prompt"}
    for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):
        with count_statements(any_db_app.state.engine) as statements:
            data = await any_db_client.op(
                "Search", {**variables, "mode": mode}, token=library.viewer_token
            )
        found = {
            names[uuid_of(e["node"]["document"]["id"])]: e["node"]["document"]["collection"]
            for e in data["search"]["results"]["edges"]
        }
        assert {page: c["name"] for page, c in found.items()} == {
            "getpass.html": "Guides",
            "pwd.html": "Guides",
            "termios.html": "Reference",
            "grp.html": "Reference",
            **({"tty.html": "Reference"} if mode != "KEYWORD" else {}),
        }, mode
        assert {c["id"] for c in found.values()} == {
            global_id("Collection", library.guides),
            global_id("Collection", library.reference),
        }
        collection_reads = [s for s in statements if "collections" in s]
        assert len(collection_reads) == 1, (mode, statements)
        assert "FROM chunks JOIN documents" in " ".join(collection_reads[0].split())


async def test_related_documents_come_with_their_collections(any_db_client, any_db_app):
    """DocumentDetail names the related documents' collections without a read of its own: they
    come with the related documents."""
    library = await library_of(any_db_client, any_db_app)
    ids = await _shelves(library)
    names = {v: k.split("/")[-1] for k, v in ids.items()}
    with count_statements(any_db_app.state.engine) as statements:
        data = await any_db_client.op(
            "DocumentDetail",
            {"id": global_id("Document", ids["library/getpass.html"])},
            token=library.viewer_token,
        )
    detail = data["document"]
    related = {
        names[uuid_of(r["document"]["id"])]: r["document"]["collection"]
        for r in detail["relatedDocuments"]
    }
    assert {page: c["name"] for page, c in related.items()} == {
        "pwd.html": "Guides",
        "tty.html": "Reference",
        "termios.html": "Reference",
        "grp.html": "Reference",
    }
    assert related["tty.html"]["id"] == global_id("Collection", library.reference)
    # The document's own collection (Guides) comes with the document, Reference with the
    # related documents: no statement reads collections alone (ADR 0134's amendment).
    assert detail["collection"]["name"] == "Guides"
    assert not [s for s in statements if s.startswith("SELECT collections.")], statements


_HEADLINE_RANGES = text(
    f"""
    SELECT s.chunk_id, translate(c.text, './', '  ') AS indexed,
        ts_headline('{POSTGRESQL_TEXT_CONFIG}', translate(c.text, './', '  '),
            to_tsquery('{POSTGRESQL_TEXT_CONFIG}', :tsq),
            'StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, HighlightAll=true') AS marked
    FROM chunk_search AS s JOIN chunks AS c ON c.id = s.chunk_id
    WHERE s.workspace_id = :workspace AND s.search_vector @@ to_tsquery(
        '{POSTGRESQL_TEXT_CONFIG}', :tsq)
    """
)


async def test_highlights_from_word_offsets_are_those_ts_headline_marks(client, app):
    """PostgreSQL (ADR 0141): a passage's ranges come from its words' stored offsets, and equal
    what `ts_headline` with HighlightAll marks in the same text, for plain words, stemmed
    words, a quoted phrase, hyphenated words ("built-in": the compound and its parts), words
    of the headings, and digits; reindexing a document replaces its offsets."""
    library = await library_of(client, app)
    pages = ("library/functions.html", "library/getpass.html", "library/pwd.html")
    ids = await shelve(library, [(p, library.guides, ()) for p in pages], embed=False)
    queries = [
        "built-in functions",
        "built in",
        "password database",
        '"group database"',
        "running getpass",
        "pw_uid 0 2",
        "Return the integer",
    ]
    compared = 0
    for query in queries:
        terms = query_terms(query)
        async with library.deps.read() as session:
            rows = await session.execute(
                _HEADLINE_RANGES,
                {"tsq": tsquery_text(terms), "workspace": library.workspace_id},
            )
            expected = {
                r.chunk_id: ranges for r in rows if (ranges := marked_ranges(r.marked, r.indexed))
            }
            found = await keyword_index.highlights(session, terms, list(expected))
        assert found == expected, query
        compared += len(expected)
    assert compared > 100  # the comparison covered many passages, not a few

    # Reindexing replaces the offsets (one row per chunk, none left behind).
    functions = ids["library/functions.html"]
    count = text(
        "SELECT count(*) FROM chunk_word_offsets AS o JOIN chunks AS c ON c.id = o.chunk_id "
        "WHERE c.document_id = :d"
    )
    async with library.deps.db.begin() as session:
        before = await session.scalar(count, {"d": functions})
        chunks = await session.scalar(
            select(func.count()).select_from(Chunk).where(Chunk.document_id == functions)
        )
        assert before == chunks
        await fulltext.index_document(session, functions)
    async with library.deps.read() as session:
        assert await session.scalar(count, {"d": functions}) == chunks
