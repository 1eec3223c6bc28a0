"""User flow: a reader searches (docs/user_flows/reader_searches/README.md).

Each `# Step N` below is the step of the same number in that README.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from base.auth.principal import Principal
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.search import page_document
from tests.support.seed import add_collection, global_id
from tests.support.team import set_up_team

pytestmark = pytest.mark.slow(seconds=40)

GUIDES = (
    "library/venv.html",
    "tutorial/venv.html",
    "library/ensurepip.html",
    "library/sys_path_init.html",
    "installing/index.html",
    "library/zipapp.html",
)
TERMINAL_NOTES = ("library/getpass.html", "library/tty.html")
VENV_TITLES = {
    "venv — Creation of virtual environments — Python 3.11.2 documentation",
    "12. Virtual Environments and Packages — Python 3.11.2 documentation",
}
# What the full-text index may match for "create a virtual environment" (stemmed words).
MATCHED_WORDS = {
    "create",
    "creates",
    "created",
    "creating",
    "creation",
    "virtual",
    "environment",
    "environments",
}
QUERY = "create a virtual environment"


async def _search(
    client: GraphQLClient, token: str, workspace: str, mode: str, **variables: Any
) -> dict[str, Any]:
    data = await client.op(
        "Search", {"workspaceId": workspace, "query": QUERY, "mode": mode, **variables}, token=token
    )
    payload: dict[str, Any] = data["search"]
    return payload


async def test_reader_searches(client: GraphQLClient, app) -> None:
    team = await set_up_team(client, app.state.settings, "viewer", "outsider")
    owner_id, workspace_id = uuid_of(team.owner.user_id), uuid_of(team.workspace_id)
    db = app.state.deps.db
    guides = await add_collection(db, workspace_id, "Python guides", owner_id)
    notes = await add_collection(db, workspace_id, "Terminal notes", owner_id)
    outsider_id = uuid_of(team.outsider.user_id)
    outsider_workspace = (await client.op("AppShell", {"first": 5}, token=team.outsider.token))[
        "workspaces"
    ]["edges"][0]["node"]["id"]
    outsider_collection = await add_collection(db, uuid_of(outsider_workspace), "Mine", outsider_id)
    deps = app.state.deps.for_principal(Principal(user_id=owner_id))
    ids: dict[str, uuid.UUID] = {}
    for pages, collection in ((GUIDES, guides), (TERMINAL_NOTES, notes)):
        for page in pages:
            ids[page] = await page_document(
                deps,
                page,
                workspace_id=workspace_id,
                collection_id=collection,
                owner_id=owner_id,
            )
    theirs = await page_document(
        deps,
        "library/venv.html",
        workspace_id=uuid_of(outsider_workspace),
        collection_id=outsider_collection,
        owner_id=outsider_id,
    )
    mine = {global_id("Document", i) for i in ids.values()}
    viewer = team.viewer.token

    # Step 1 — KEYWORD: the venv documentation first, its passage with the matched ranges.
    keyword = await _search(client, viewer, team.workspace_id, "KEYWORD", first=10)
    assert (keyword["errors"], keyword["degraded"], keyword["closeMatch"]) == ([], False, None)
    results = keyword["results"]
    first = results["edges"][0]["node"]
    assert first["document"]["title"] in VENV_TITLES
    assert first["document"]["collection"]["name"] == "Python guides"
    passage = first["passage"]
    assert passage["matches"], passage
    words = [passage["text"][m["start"] : m["end"]] for m in passage["matches"]]
    assert {w.casefold() for w in words} <= MATCHED_WORDS, words
    assert [m["start"] for m in passage["matches"]] == sorted(
        m["start"] for m in passage["matches"]
    )
    assert first["score"] > 0
    scores = [e["node"]["score"] for e in results["edges"]]
    assert scores == sorted(scores, reverse=True)
    assert {e["node"]["document"]["id"] for e in results["edges"]} <= mine

    # Step 2 — HYBRID (the default mode): the venv documentation first, not degraded.
    hybrid = await _search(client, viewer, team.workspace_id, "HYBRID", first=10)
    assert (hybrid["errors"], hybrid["degraded"], hybrid["closeMatch"]) == ([], False, True)
    top = hybrid["results"]["edges"][0]["node"]
    assert top["document"]["title"] in VENV_TITLES
    assert top["passage"]["matches"]
    assert hybrid["results"]["totalCount"] == len(GUIDES) + len(TERMINAL_NOTES)

    # Step 3 — SEMANTIC: every embedded document of the workspace, nearest first, with cosines.
    semantic = await _search(client, viewer, team.workspace_id, "SEMANTIC", first=10)
    assert (semantic["errors"], semantic["degraded"], semantic["closeMatch"]) == (
        [],
        False,
        True,
    )
    edges = semantic["results"]["edges"]
    assert {e["node"]["document"]["id"] for e in edges} == mine
    cosines = [e["node"]["passage"]["cosine"] for e in edges]
    assert cosines == sorted(cosines, reverse=True)
    assert [e["node"]["score"] for e in edges] == cosines

    # Step 4 — a filter to the collection without the venv documentation: nothing from outside.
    for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):
        filtered = await _search(
            client,
            viewer,
            team.workspace_id,
            mode,
            filter={"collectionIds": [global_id("Collection", notes)]},
        )
        assert filtered["errors"] == []
        names = {e["node"]["document"]["collection"]["name"] for e in filtered["results"]["edges"]}
        assert names <= {"Terminal notes"}, mode
        assert filtered["results"]["totalCount"] == len(filtered["results"]["edges"])
    assert (
        await _search(
            client,
            viewer,
            team.workspace_id,
            "SEMANTIC",
            filter={"collectionIds": [global_id("Collection", notes)]},
        )
    )["results"]["totalCount"] == len(TERMINAL_NOTES)

    # Step 5 — the outsider's copy of the venv page never appears; their search of the team's
    # workspace is NOT_FOUND, and so is the viewer's of theirs.
    for mode in ("KEYWORD", "SEMANTIC", "HYBRID"):
        everything = await _search(client, viewer, team.workspace_id, mode, first=100)
        found = {e["node"]["document"]["id"] for e in everything["results"]["edges"]}
        assert global_id("Document", theirs) not in found and found <= mine, mode
        refused = await _search(client, team.outsider.token, team.workspace_id, mode)
        assert refused["results"] is None
        assert refused["errors"] == [
            {"code": "NOT_FOUND", "message": "No such workspace.", "field": "workspaceId"}
        ]
        refused = await _search(client, viewer, outsider_workspace, mode)
        assert [e["code"] for e in refused["errors"]] == ["NOT_FOUND"]

    # Step 6 — the next page continues the same ranking; a cursor of another query is refused.
    page1 = await _search(client, viewer, team.workspace_id, "HYBRID", first=3)
    page2 = await _search(
        client,
        viewer,
        team.workspace_id,
        "HYBRID",
        first=3,
        after=page1["results"]["pageInfo"]["endCursor"],
    )
    whole = [e["node"]["document"]["id"] for e in hybrid["results"]["edges"]]
    assert [
        e["node"]["document"]["id"] for e in page1["results"]["edges"] + page2["results"]["edges"]
    ] == whole[:6]
    other = await client.op(
        "Search",
        {
            "workspaceId": team.workspace_id,
            "query": "pip",
            "after": page1["results"]["pageInfo"]["endCursor"],
        },
        token=viewer,
    )
    assert [(e["code"], e["field"]) for e in other["search"]["errors"]] == [
        ("INVALID_CURSOR", "after")
    ]

    # Step 7 — a blank query is REQUIRED.
    blank = await client.op(
        "Search", {"workspaceId": team.workspace_id, "query": "   "}, token=viewer
    )
    assert blank["search"] == {
        "degraded": False,
        "closeMatch": None,
        "errors": [
            {"code": "REQUIRED", "message": "Type something to search for.", "field": "query"}
        ],
        "results": None,
    }

    # Step 8 — the document's related documents: five of the team's, never itself or theirs.
    detail = await client.op(
        "DocumentDetail", {"id": global_id("Document", ids["library/venv.html"])}, token=viewer
    )
    related = detail["document"]["relatedDocuments"]
    assert len(related) == 5
    related_ids = {r["document"]["id"] for r in related}
    assert related_ids <= mine - {global_id("Document", ids["library/venv.html"])}
    assert [r["score"] for r in related] == sorted((r["score"] for r in related), reverse=True)
    assert related[0]["document"]["title"] in VENV_TITLES

    # Step 9 — a quoted phrase: only the documents where the words stand together, in order.
    async def keyword_ids(query: str) -> set[str]:
        data = await client.op(
            "Search",
            {"workspaceId": team.workspace_id, "query": query, "mode": "KEYWORD"},
            token=viewer,
        )
        return {e["node"]["document"]["id"] for e in data["search"]["results"]["edges"]}

    together = {
        global_id("Document", ids[p]) for p in ("tutorial/venv.html", "installing/index.html")
    }
    apart = {
        global_id("Document", ids[p]) for p in ("library/sys_path_init.html", "library/zipapp.html")
    }
    assert await keyword_ids("standard library") == together | apart
    assert await keyword_ids('"standard library"') == together
    assert await keyword_ids('"library standard"') == set()
