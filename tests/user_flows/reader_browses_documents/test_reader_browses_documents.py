"""User flow: a reader browses collections and documents, and may change nothing.

The flow is docs/user_flows/reader_browses_documents/README.md; each `# Step N` below is the
step of the same number there. Requests go over real HTTP to the app in a uvicorn process
(`live_client`). The documents are sections of two pages of the Python documentation, with the
chunks the app's chunker makes of them. Every refused step is checked twice: the exact payload
error, and every row a change could touch read again and found equal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from base.models.documents import (
    Chunk,
    Collection,
    Document,
    DocumentEntity,
    DocumentFieldEdit,
    DocumentStatus,
    DocumentTag,
    EntityKind,
)
from base.settings import Settings
from services.extraction import count_words
from tests.support.corpus import CONTROLFLOW_HTML, VENV_HTML, Section, page_sections
from tests.support.graphql import GraphQLClient, uuid_of
from tests.support.seed import CorpusDocument, add_corpus_documents, global_id
from tests.support.team import set_up_team

FORBIDDEN = [
    {
        "code": "FORBIDDEN",
        "message": "This needs the EDITOR role or higher; you are VIEWER.",
        "field": None,
    }
]
EDITED_TITLE = "How virtual environments work"


async def snapshot(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that editing, moving or deleting documents or collections could touch."""
    tables = {
        "collections": select(
            Collection.id,
            Collection.name,
            Collection.description,
            Collection.created_by_id,
            Collection.updated_at,
        ),
        "documents": select(
            Document.id,
            Document.collection_id,
            Document.owner_id,
            Document.title,
            Document.status,
            Document.summary,
            Document.key_points,
            Document.text,
            Document.updated_at,
        ),
        "tags": select(DocumentTag.document_id, DocumentTag.position, DocumentTag.tag),
        "entities": select(
            DocumentEntity.document_id,
            DocumentEntity.position,
            DocumentEntity.name,
            DocumentEntity.kind,
        ),
        "edits": select(
            DocumentFieldEdit.document_id,
            DocumentFieldEdit.field,
            DocumentFieldEdit.edited_by_id,
            DocumentFieldEdit.edited_at,
        ),
        "chunks": select(Chunk.id, Chunk.document_id, Chunk.position, Chunk.text),
    }
    async with db() as session:
        return {
            name: sorted((tuple(row) for row in await session.execute(stmt)), key=repr)
            for name, stmt in tables.items()
        }


async def titles(
    client: GraphQLClient, workspace_id: str, token: str, **variables: Any
) -> list[str]:
    """The titles on one page of the documents list (DocumentsList), in its order."""
    data = await client.op("DocumentsList", {"workspaceId": workspace_id, **variables}, token=token)
    return [e["node"]["title"] for e in data["workspace"]["documents"]["edges"]]


async def test_a_reader_browses_everything_and_changes_nothing(
    live_client: GraphQLClient, db: Any, settings: Settings
) -> None:
    client = live_client
    # Step 1 — the team: Olivia (OWNER), Erin (EDITOR), Victor (VIEWER).
    team = await set_up_team(client, settings, "editor", "viewer")
    olivia, erin, victor = team.owner, team.editor, team.viewer
    workspace_id = team.workspace_id

    # Step 2 — Olivia creates two collections (CreateCollection).
    collections = {}
    for name, description in (
        ("Packaging", "Virtual environments and how to make them."),
        ("Tutorial", "The control-flow chapter of the tutorial."),
    ):
        created = await client.op(
            "CreateCollection",
            {"input": {"workspaceId": workspace_id, "name": name, "description": description}},
            token=olivia.token,
        )
        assert created["createCollection"]["errors"] == []
        collections[name] = created["createCollection"]["collection"]["id"]

    # Step 3 — eleven documents: the five sections of library/venv.html in Packaging and
    # sections 4.1-4.6 of tutorial/controlflow.html in Tutorial, created a minute apart.
    venv = page_sections(VENV_HTML)
    flow = page_sections(CONTROLFLOW_HTML)[1:7]
    assert [s.title for s in venv] == [
        "venv — Creation of virtual environments",
        "Creating virtual environments",
        "How venvs work",
        "API",
        "An example of extending EnvBuilder",
    ]
    assert [s.title for s in flow] == [
        "4.1. if Statements",
        "4.2. for Statements",
        "4.3. The range() Function",
        "4.4. break and continue Statements, and else Clauses on Loops",
        "4.5. pass Statements",
        "4.6. match Statements",
    ]
    olivia_id, erin_id = uuid_of(olivia.user_id), uuid_of(erin.user_id)
    specs = [
        CorpusDocument(
            section,
            uuid_of(collections["Packaging"]),
            olivia_id if i % 2 == 0 else erin_id,
            status=DocumentStatus.FAILED if i == 4 else DocumentStatus.READY,
            tags=("venv", "reviewed") if i in (1, 3) else ("venv",),
            entities=(("venv", EntityKind.PRODUCT), ("Python", EntityKind.PRODUCT)),
        )
        for i, section in enumerate(venv)
    ] + [
        CorpusDocument(
            section,
            uuid_of(collections["Tutorial"]),
            erin_id,
            status=DocumentStatus.PROCESSING if i == 4 else DocumentStatus.READY,
            tags=("controlflow", "reviewed") if i == 5 else ("controlflow",),
            entities=(("Python", EntityKind.PRODUCT),),
        )
        for i, section in enumerate(flow)
    ]
    ids = [
        global_id("Document", d)
        for d in await add_corpus_documents(db, uuid_of(workspace_id), specs)
    ]
    sections: list[Section] = venv + flow
    title_of = {ids[i]: s.title for i, s in enumerate(sections)}

    # Step 4 — Erin (EDITOR) renames "How venvs work" (UpdateDocument): allowed, marked.
    edited = await client.op(
        "UpdateDocument", {"input": {"id": ids[2], "title": EDITED_TITLE}}, token=erin.token
    )
    assert edited["updateDocument"]["errors"] == []
    assert edited["updateDocument"]["document"]["title"] == EDITED_TITLE
    assert [
        (e["field"], e["editedBy"]["name"]) for e in edited["updateDocument"]["document"]["edits"]
    ] == [("TITLE", "Erin Editor")]
    title_of[ids[2]] = EDITED_TITLE

    # Step 5 — Victor opens the collections screen (Collections).
    shelf = (await client.op("Collections", {"workspaceId": workspace_id}, token=victor.token))[
        "workspace"
    ]
    assert shelf["viewerRole"] == "VIEWER"
    assert shelf["collections"]["totalCount"] == 2
    assert [
        (n["id"], n["name"], n["description"], n["documentCount"], n["createdBy"]["name"])
        for n in (e["node"] for e in shelf["collections"]["edges"])
    ] == [
        (
            collections["Packaging"],
            "Packaging",
            "Virtual environments and how to make them.",
            5,
            "Olivia Owner",
        ),
        (
            collections["Tutorial"],
            "Tutorial",
            "The control-flow chapter of the tutorial.",
            6,
            "Olivia Owner",
        ),
    ]

    # Step 6 — the documents list, newest change first (DocumentsList, no filter).
    listed = await client.op("DocumentsList", {"workspaceId": workspace_id}, token=victor.token)
    page = listed["workspace"]["documents"]
    assert (listed["workspace"]["viewerRole"], page["totalCount"]) == ("VIEWER", 11)
    assert page["pageInfo"]["hasNextPage"] is False
    newest_first = [2, 10, 9, 8, 7, 6, 5, 4, 3, 1, 0]  # the renamed one changed last
    assert [e["node"]["id"] for e in page["edges"]] == [ids[i] for i in newest_first]
    rows = {e["node"]["id"]: e["node"] for e in page["edges"]}
    for i, section in enumerate(sections):
        row = rows[ids[i]]
        assert row["title"] == title_of[ids[i]]
        assert row["status"] == specs[i].status.value
        assert row["stage"] == ("EMBEDDING" if specs[i].status == "PROCESSING" else None)
        assert row["collection"]["name"] == ("Packaging" if i < 5 else "Tutorial")
        assert row["owner"]["name"] == (
            "Olivia Owner" if specs[i].owner_id == olivia_id else "Erin Editor"
        )
        assert row["tags"] == list(specs[i].tags)
        assert row["sizeBytes"] == len(section.text.encode())
        assert row["wordCount"] == count_words(section.text)

    # Step 7 — every filter, one at a time and together.
    by = {"workspace_id": workspace_id, "token": victor.token}
    tutorial, packaging = collections["Tutorial"], collections["Packaging"]
    assert await titles(client, **by, filter={"collectionId": tutorial}) == [
        s.title for s in reversed(flow)
    ]
    assert await titles(client, **by, filter={"status": "FAILED"}) == [
        "An example of extending EnvBuilder"
    ]
    assert await titles(client, **by, filter={"status": "PROCESSING"}) == ["4.5. pass Statements"]
    assert await titles(client, **by, filter={"tag": "reviewed"}) == [
        "4.6. match Statements",
        "API",
        "Creating virtual environments",
    ]
    assert await titles(client, **by, filter={"ownerId": olivia.user_id}) == [
        EDITED_TITLE,
        "An example of extending EnvBuilder",
        "venv — Creation of virtual environments",
    ]
    assert await titles(client, **by, filter={"titleContains": "STATEMENTS"}) == [
        "4.6. match Statements",
        "4.5. pass Statements",
        "4.4. break and continue Statements, and else Clauses on Loops",
        "4.2. for Statements",
        "4.1. if Statements",
    ]
    # The renamed title is what the search finds, not the section's heading.
    assert await titles(client, **by, filter={"titleContains": "virtual"}) == [
        EDITED_TITLE,
        "Creating virtual environments",
        "venv — Creation of virtual environments",
    ]
    assert await titles(client, **by, filter={"titleContains": "venvs"}) == []
    assert await titles(client, **by, filter={"collectionId": tutorial, "tag": "reviewed"}) == [
        "4.6. match Statements"
    ]
    assert (
        await titles(client, **by, filter={"collectionId": packaging, "tag": "controlflow"}) == []
    )

    # Step 8 — the sorts, and the next page of one.
    assert await titles(
        client,
        **by,
        filter={"collectionId": tutorial},
        sort={"field": "TITLE", "direction": "DESC"},
    ) == [s.title for s in reversed(flow)]
    assert await titles(
        client,
        **by,
        filter={"status": "READY", "ownerId": erin.user_id},
        sort={"field": "TITLE", "direction": "ASC"},
    ) == [
        "4.1. if Statements",
        "4.2. for Statements",
        "4.3. The range() Function",
        "4.4. break and continue Statements, and else Clauses on Loops",
        "4.6. match Statements",
        "API",
        "Creating virtual environments",
    ]
    oldest_first = {"field": "CREATED_AT", "direction": "ASC"}
    seen: list[str] = []
    after = None
    for expected_next in (True, True, False):
        data = await client.op(
            "DocumentsList",
            {"workspaceId": workspace_id, "sort": oldest_first, "first": 4, "after": after},
            token=victor.token,
        )
        documents = data["workspace"]["documents"]
        assert documents["totalCount"] == 11
        assert documents["pageInfo"]["hasNextPage"] is expected_next
        seen += [e["node"]["id"] for e in documents["edges"]]
        after = documents["pageInfo"]["endCursor"]
    assert seen == ids

    # Step 9 — a document's detail with its chunks (DocumentDetail), in two pages.
    match, match_section = ids[10], flow[5]
    detail = (
        await client.op("DocumentDetail", {"id": match, "chunksFirst": 5}, token=victor.token)
    )["document"]
    paragraphs = match_section.text.split("\n\n")[1:]
    assert {k: v for k, v in detail.items() if k != "chunks"} == {
        "id": match,
        "title": "4.6. match Statements",
        "status": "READY",
        "stage": None,
        "errorCode": None,
        "errorMessage": None,
        "collection": {"id": tutorial, "name": "Tutorial"},
        "owner": {"id": erin.user_id, "name": "Erin Editor", "initials": "EE"},
        "createdAt": "2026-11-24T09:10:00+00:00",
        "updatedAt": "2026-11-24T09:10:00+00:00",
        "sizeBytes": len(match_section.text.encode()),
        "wordCount": count_words(match_section.text),
        "language": "en",
        "contentType": "text/html",
        "originalFilename": "tutorial/controlflow.html",
        "summary": paragraphs[0],
        "keyPoints": [p.split("\n", 1)[0][:200] for p in paragraphs[1:4]],
        "tags": ["controlflow", "reviewed"],
        "entities": [{"name": "Python", "kind": "PRODUCT"}],
        "edits": [],
        # Seeded, not uploaded or processed: nothing recorded who wrote its fields.
        "fieldSources": [],
        "downloadUrl": f"/documents/{match}/original",
        # Placed straight in the database: never ingested, so no runs and no vectors to relate.
        "runs": {
            "totalCount": 0,
            "pageInfo": {"hasNextPage": False, "endCursor": None},
            "edges": [],
        },
        "relatedDocuments": [],
    }
    chunks = detail["chunks"]
    assert (chunks["totalCount"], chunks["pageInfo"]["hasNextPage"]) == (12, True)
    rest = (
        await client.op(
            "DocumentDetail",
            {"id": match, "chunksAfter": chunks["pageInfo"]["endCursor"]},
            token=victor.token,
        )
    )["document"]["chunks"]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert [e["node"] for e in chunks["edges"] + rest["edges"]] == [
        {
            "position": c.position,
            "text": c.text,
            "headingPath": ["4.6. match Statements"],
            "charStart": c.char_start,
            "charEnd": c.char_end,
            "tokenCount": c.token_count,
        }
        for c in match_section.chunks
    ]
    assert chunks["edges"][0]["node"]["text"].startswith("4.6. match Statements\n\nA match ")
    renamed = (await client.op("DocumentDetail", {"id": ids[2]}, token=victor.token))["document"]
    assert renamed["title"] == EDITED_TITLE
    assert [(e["field"], e["editedBy"]) for e in renamed["edits"]] == [
        ("TITLE", {"id": erin.user_id, "name": "Erin Editor"})
    ]
    assert renamed["chunks"]["totalCount"] == len(venv[2].chunks)
    assert [e["node"]["headingPath"] for e in renamed["chunks"]["edges"]] == [
        ["How venvs work"]
    ] * len(venv[2].chunks)

    # Steps 10-15 — Victor tries every change; each is FORBIDDEN and nothing changes.
    before = await snapshot(db)
    assert len(before["documents"]) == 11
    assert len(before["chunks"]) == sum(len(s.chunks) for s in sections)
    refused = {
        "updateDocument": await client.op(
            "UpdateDocument",
            {"input": {"id": match, "title": "Mine now", "tags": ["victor"]}},
            token=victor.token,
        ),
        "moveDocuments": await client.op(
            "MoveDocuments",
            {"input": {"ids": [match, ids[3]], "collectionId": packaging}},
            token=victor.token,
        ),
        "deleteDocuments": await client.op(
            "DeleteDocuments", {"input": {"ids": [match, ids[0]]}}, token=victor.token
        ),
        "createCollection": await client.op(
            "CreateCollection",
            {"input": {"workspaceId": workspace_id, "name": "Victor's picks"}},
            token=victor.token,
        ),
        "updateCollection": await client.op(
            "UpdateCollection",
            {"input": {"id": tutorial, "name": "Renamed", "description": "mine"}},
            token=victor.token,
        ),
        "deleteCollection": await client.op(
            "DeleteCollection", {"input": {"id": packaging}}, token=victor.token
        ),
    }
    assert refused == {
        "updateDocument": {"updateDocument": {"document": None, "errors": FORBIDDEN}},
        "moveDocuments": {"moveDocuments": {"documents": None, "errors": FORBIDDEN}},
        "deleteDocuments": {"deleteDocuments": {"deletedIds": None, "errors": FORBIDDEN}},
        "createCollection": {"createCollection": {"collection": None, "errors": FORBIDDEN}},
        "updateCollection": {"updateCollection": {"collection": None, "errors": FORBIDDEN}},
        "deleteCollection": {
            "deleteCollection": {"deletedCollectionId": None, "errors": FORBIDDEN}
        },
    }
    assert await snapshot(db) == before

    # Step 16 — what Victor sees has not changed either.
    again = await client.op("DocumentsList", {"workspaceId": workspace_id}, token=victor.token)
    assert again["workspace"]["documents"] == page
