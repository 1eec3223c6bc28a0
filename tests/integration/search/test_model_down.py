"""Search with the embedding model unavailable, on PostgreSQL and SQLite: SEMANTIC answers
MODEL_UNAVAILABLE as data, HYBRID answers the keyword results flagged `degraded`, nothing hangs.
The model server is a real one, started and stopped; a server that never answers is a socket
that accepts connections and says nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from base.errors import ModelUnavailable
from services.search import SearchMode, related_documents, retrieve_passages
from tests.integration.search.conftest import library_of
from tests.support.app_fixtures import other_api
from tests.support.model_server import model_server
from tests.support.search import page_document


def _search_variables(library, mode: str) -> dict:
    return {"workspaceId": library.workspace_gid, "query": "user password", "mode": mode}


async def _pages(library) -> list:
    return [
        await page_document(
            library.deps,
            page,
            workspace_id=library.workspace_id,
            collection_id=library.guides,
            owner_id=library.owner_id,
        )
        for page in ("library/getpass.html", "library/pwd.html", "library/tty.html")
    ]


def _ids(payload: dict) -> list[tuple[str, float]]:
    return [(e["node"]["document"]["id"], e["node"]["score"]) for e in payload["results"]["edges"]]


async def test_with_the_model_server_stopped(any_db_client, any_db_app, any_db_settings):
    library = await library_of(any_db_client, any_db_app)
    documents = await _pages(library)
    with model_server(own=True) as url:
        stopped = url
    keyword = await any_db_client.op(
        "Search", _search_variables(library, "KEYWORD"), token=library.viewer_token
    )
    async with other_api(any_db_settings, ollama_host=stopped, search_model_retry_seconds=0) as (
        app,
        client,
    ):
        semantic = await client.op(
            "Search", _search_variables(library, "SEMANTIC"), token=library.viewer_token
        )
        assert semantic["search"]["results"] is None
        assert semantic["search"]["degraded"] is False
        [error] = semantic["search"]["errors"]
        assert (error["code"], error["field"]) == ("MODEL_UNAVAILABLE", None)
        hybrid = await client.op(
            "Search", _search_variables(library, "HYBRID"), token=library.viewer_token
        )
        assert (hybrid["search"]["errors"], hybrid["search"]["degraded"]) == ([], True)
        assert _ids(hybrid["search"]) == _ids(keyword["search"])
        assert len(_ids(keyword["search"])) == 2  # getpass and pwd say "password"; tty does not
        same = await client.op(
            "Search", _search_variables(library, "KEYWORD"), token=library.viewer_token
        )
        assert same == keyword  # KEYWORD never needs the model

        # A page's cursor holds whether its ranking was degraded: when the model comes or goes
        # between pages, the next page would repeat or skip results, so the cursor is refused.
        async def cursor(api, **variables) -> dict:
            hybrid = {**_search_variables(library, "HYBRID"), "first": 1, **variables}
            return (await api.op("Search", hybrid, token=library.viewer_token))["search"]

        full, cut = await cursor(any_db_client), await cursor(client)
        assert (full["degraded"], cut["degraded"]) == (False, True)
        for api, page in ((client, full), (any_db_client, cut)):
            crossed = await cursor(api, after=page["results"]["pageInfo"]["endCursor"])
            assert crossed["results"] is None
            assert [(e["code"], e["field"]) for e in crossed["errors"]] == [
                ("INVALID_CURSOR", "after")
            ]
        following = await cursor(client, after=cut["results"]["pageInfo"]["endCursor"])
        assert (following["errors"], following["degraded"]) == ([], True)
        assert _ids(cut) + _ids(following) == _ids(hybrid["search"])
        deps = app.state.deps.for_principal(library.as_user(library.viewer_id).principal)
        with pytest.raises(ModelUnavailable):
            await retrieve_passages(
                deps, workspace_id=library.workspace_id, query="x", mode=SearchMode.SEMANTIC
            )
        passages = await retrieve_passages(deps, workspace_id=library.workspace_id, query="user")
        assert passages.degraded is True and passages.top_cosine is None
        assert all(p.cosine is None for p in passages.passages)
        # Related documents need no query vector: they still work.
        [related] = await related_documents(deps, ids=[documents[0]])
        assert {r.document.id for r in related} == set(documents[1:])


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A server that accepts connections, reads, and never answers; and its connection count."""
    connections = [0]

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        with contextlib.suppress(Exception):
            await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


async def test_a_model_server_that_never_answers(any_db_client, any_db_app, any_db_settings):
    library = await library_of(any_db_client, any_db_app)
    await _pages(library)
    keyword = await any_db_client.op(
        "Search", _search_variables(library, "KEYWORD"), token=library.viewer_token
    )
    async with (
        silent_server() as (url, connections),
        other_api(
            any_db_settings,
            ollama_host=url,
            search_embed_timeout_seconds=0.5,
            search_model_retry_seconds=600,
        ) as (_app, client),
    ):
        hybrid = await client.op(
            "Search", _search_variables(library, "HYBRID"), token=library.viewer_token
        )
        assert (hybrid["search"]["errors"], hybrid["search"]["degraded"]) == ([], True)
        assert _ids(hybrid["search"]) == _ids(keyword["search"])
        assert connections[0] == 1
        # After a failure the model is left alone for SEARCH_MODEL_RETRY_SECONDS.
        again = await client.op(
            "Search",
            {**_search_variables(library, "SEMANTIC"), "query": "another query"},
            token=library.viewer_token,
        )
        assert [e["code"] for e in again["search"]["errors"]] == ["MODEL_UNAVAILABLE"]
        assert connections[0] == 1
