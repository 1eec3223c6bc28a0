"""User flow: an admin moves and deletes documents in bulk, then deletes the emptied collection.

The flow is docs/user_flows/admin_bulk_moves_and_deletes/README.md; each `# Step N` below is the
step of the same number there. Requests go over real HTTP to the app in a uvicorn process
(`live_client`). The documents are sections of two pages of the Python documentation. Among the
selected ids are one document of another workspace and one that does not exist: each is
reported at its position, the others are moved or deleted, and the rows are read back to prove
both.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from base.models.documents import (
    Chunk,
    Collection,
    Document,
    DocumentEntity,
    DocumentStatus,
    DocumentTag,
    EntityKind,
)
from base.settings import Settings
from tests.support.corpus import CONTROLFLOW_HTML, VENV_HTML, page_sections
from tests.support.graphql import GraphQLClient, first_workspace, uuid_of
from tests.support.seed import CorpusDocument, add_collection, add_corpus_documents, global_id
from tests.support.team import set_up_team


def not_found(index: int) -> dict[str, Any]:
    return {"code": "NOT_FOUND", "message": "No such document.", "field": f"ids.{index}"}


async def placement(db: Any) -> dict[uuid.UUID, tuple[uuid.UUID, str, int, int, int]]:
    """Per document: its collection, title, and how many chunks, tags and entities it has."""

    def per_document(model: Any) -> Any:
        return select(model.document_id, func.count()).group_by(model.document_id)

    async with db() as session:
        chunks = dict((await session.execute(per_document(Chunk))).all())
        tags = dict((await session.execute(per_document(DocumentTag))).all())
        entities = dict((await session.execute(per_document(DocumentEntity))).all())
        rows = await session.execute(select(Document.id, Document.collection_id, Document.title))
        return {
            row.id: (
                row.collection_id,
                row.title,
                chunks.get(row.id, 0),
                tags.get(row.id, 0),
                entities.get(row.id, 0),
            )
            for row in rows
        }


async def collection_names(db: Any) -> list[str]:
    async with db() as session:
        return sorted((await session.execute(select(Collection.name))).scalars())


async def test_an_admin_moves_and_deletes_in_bulk_then_deletes_the_empty_collection(
    live_client: GraphQLClient, db: Any, settings: Settings
) -> None:
    client = live_client
    # Step 1 — the team: Olivia (OWNER) and Adam (ADMIN); Mallory has a workspace of her own.
    team = await set_up_team(client, settings, "admin", "outsider")
    olivia, adam, mallory = team.owner, team.admin, team.outsider
    workspace_id = team.workspace_id

    # Step 2 — Adam creates "Inbox" and "Reference" (CreateCollection).
    collections = {}
    for name in ("Inbox", "Reference"):
        created = await client.op(
            "CreateCollection",
            {"input": {"workspaceId": workspace_id, "name": name}},
            token=adam.token,
        )
        assert created["createCollection"]["errors"] == []
        collections[name] = created["createCollection"]["collection"]["id"]
    inbox, reference = collections["Inbox"], collections["Reference"]

    # Step 3 — the documents: sections 4.1-4.6 of tutorial/controlflow.html in Inbox ("4.5" failed
    # processing), two sections of library/venv.html in Reference; and in Mallory's workspace,
    # the first section of library/venv.html.
    flow = page_sections(CONTROLFLOW_HTML)[1:7]
    venv = page_sections(VENV_HTML)
    olivia_id, adam_id = uuid_of(olivia.user_id), uuid_of(adam.user_id)
    specs = [
        CorpusDocument(
            section,
            uuid_of(inbox),
            olivia_id,
            status=DocumentStatus.FAILED if i == 4 else DocumentStatus.READY,
            tags=("controlflow",),
            entities=(("Python", EntityKind.PRODUCT),),
        )
        for i, section in enumerate(flow)
    ] + [
        CorpusDocument(section, uuid_of(reference), adam_id, tags=("venv",))
        for section in venv[1:3]
    ]
    raw_ids = await add_corpus_documents(db, uuid_of(workspace_id), specs)
    ids = [global_id("Document", d) for d in raw_ids]
    mallory_workspace = uuid_of((await first_workspace(client, mallory.token))["id"])
    mine = await add_collection(db, mallory_workspace, "Mine", uuid_of(mallory.user_id))
    [mallory_raw] = await add_corpus_documents(
        db,
        mallory_workspace,
        [CorpusDocument(venv[0], mine, uuid_of(mallory.user_id), tags=("venv",))],
    )
    mallorys = global_id("Document", mallory_raw)
    missing = global_id("Document", uuid.uuid4())
    before = await placement(db)
    assert before[mallory_raw] == (mine, venv[0].title, len(venv[0].chunks), 1, 0)

    # Step 4 — Adam opens Inbox (DocumentsList filtered by collection) and selects the first four.
    listed = await client.op(
        "DocumentsList",
        {"workspaceId": workspace_id, "filter": {"collectionId": inbox}},
        token=adam.token,
    )
    edges = listed["workspace"]["documents"]["edges"]
    assert [e["node"]["id"] for e in edges] == [ids[i] for i in (5, 4, 3, 2, 1, 0)]
    assert [e["node"]["title"] for e in edges][:4] == [
        "4.6. match Statements",
        "4.5. pass Statements",
        "4.4. break and continue Statements, and else Clauses on Loops",
        "4.3. The range() Function",
    ]
    selected = [e["node"]["id"] for e in edges[:4]]

    # Step 5 — he moves them to Reference, with Mallory's document and a missing one among them
    # (MoveDocuments): the four move, the two others are reported by position.
    moved = (
        await client.op(
            "MoveDocuments",
            {
                "input": {
                    "ids": [selected[0], selected[1], mallorys, selected[2], missing, selected[3]],
                    "collectionId": reference,
                }
            },
            token=adam.token,
        )
    )["moveDocuments"]
    assert moved["errors"] == [not_found(2), not_found(4)]
    assert [d["id"] for d in moved["documents"]] == selected
    assert [d["collection"] for d in moved["documents"]] == [
        {"id": reference, "name": "Reference", "documentCount": 6}
    ] * 4
    assert len({d["updatedAt"] for d in moved["documents"]}) == 1  # moved together
    after_move = await placement(db)
    for document_id, (collection_id, *rest) in before.items():
        if global_id("Document", document_id) in selected:
            assert (collection_id, after_move[document_id]) == (
                uuid_of(inbox),
                (uuid_of(reference), *rest),
            )
        else:
            assert after_move[document_id] == (collection_id, *rest)

    # Step 6 — the collections screen (Collections): Inbox holds 2, Reference 6.
    shelf = await client.op("Collections", {"workspaceId": workspace_id}, token=adam.token)
    assert [
        (e["node"]["name"], e["node"]["documentCount"])
        for e in shelf["workspace"]["collections"]["edges"]
    ] == [("Inbox", 2), ("Reference", 6)]

    # Step 7 — he tries to delete Inbox (DeleteCollection): refused, it says how many it holds.
    refused = await client.op("DeleteCollection", {"input": {"id": inbox}}, token=adam.token)
    assert refused["deleteCollection"] == {
        "deletedCollectionId": None,
        "errors": [
            {
                "code": "COLLECTION_NOT_EMPTY",
                "message": "The collection holds 2 documents; move or delete them first.",
                "field": "id",
            }
        ],
    }
    assert await collection_names(db) == ["Inbox", "Mine", "Reference"]
    assert await placement(db) == after_move

    # Step 8 — he deletes the two left in Inbox, with Mallory's and the missing id among them
    # (DeleteDocuments): the two go with their chunks, tags and entities; the others are
    # reported by position.
    left = await client.op(
        "DocumentsList",
        {"workspaceId": workspace_id, "filter": {"collectionId": inbox}},
        token=adam.token,
    )
    doomed = [e["node"]["id"] for e in left["workspace"]["documents"]["edges"]]
    assert doomed == [ids[1], ids[0]]
    deleted = (
        await client.op(
            "DeleteDocuments",
            {"input": {"ids": [doomed[0], mallorys, doomed[1], missing]}},
            token=adam.token,
        )
    )["deleteDocuments"]
    assert deleted == {"deletedIds": doomed, "errors": [not_found(1), not_found(3)]}
    after_delete = await placement(db)
    assert after_delete == {
        k: v for k, v in after_move.items() if global_id("Document", k) not in doomed
    }
    assert after_delete[mallory_raw] == before[mallory_raw]

    # Step 9 — Inbox is empty now: he deletes it (DeleteCollection).
    gone = await client.op("DeleteCollection", {"input": {"id": inbox}}, token=adam.token)
    assert gone["deleteCollection"] == {"deletedCollectionId": inbox, "errors": []}
    assert await collection_names(db) == ["Mine", "Reference"]

    # Step 10 — the dashboard (Dashboard): exact counts, the moved documents newest.
    dashboard = (await client.op("Dashboard", {"workspaceId": workspace_id}, token=adam.token))[
        "workspace"
    ]
    assert dashboard["documentCounts"] == {
        "queued": 0,
        "processing": 0,
        "ready": 5,
        "failed": 1,
        "total": 6,
    }
    assert dashboard["collectionCount"] == 1
    # The four moved at the same instant (the id breaks the tie), then the newest of the others.
    moved_newest_first = sorted((uuid_of(i) for i in selected), reverse=True)
    assert [d["id"] for d in dashboard["recentDocuments"]] == [
        global_id("Document", d) for d in moved_newest_first
    ] + [ids[7]]
    assert {d["collection"]["name"] for d in dashboard["recentDocuments"]} == {"Reference"}
    assert [
        (d["title"], d["status"]) for d in dashboard["recentDocuments"] if d["id"] == ids[4]
    ] == [("4.5. pass Statements", "FAILED")]
    assert (
        dashboard["recentDocuments"][-1]["updatedAt"] == "2026-11-24T09:07:00+00:00"
    )  # T0 + 7 min

    # Step 11 — Mallory's workspace is as it was.
    hers = (
        await client.op(
            "Dashboard",
            {"workspaceId": global_id("Workspace", mallory_workspace)},
            token=mallory.token,
        )
    )["workspace"]
    assert hers["documentCounts"] == {
        "queued": 0,
        "processing": 0,
        "ready": 1,
        "failed": 0,
        "total": 1,
    }
    assert hers["collectionCount"] == 1
    assert [d["id"] for d in hers["recentDocuments"]] == [mallorys]
