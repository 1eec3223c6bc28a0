"""Documents (screens 3, 5 and 7) on PostgreSQL and SQLite: list, detail, edits, bulk actions."""

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from base.models.documents import (
    Chunk,
    Document,
    DocumentField,
    DocumentFieldEdit,
    DocumentFieldSource,
    DocumentStatus,
    FieldSource,
)
from services.documents import record_sources
from tests.integration.documents.test_collections import _team
from tests.support.databases import count_statements
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.seed import add_collection, add_documents, global_id, uuid_of


async def _setup(client: GraphQLClient, app, count: int = 4):
    db = app.state.deps.db
    workspace, people = await _team(client, app)
    workspace_id = uuid_of(workspace["id"])
    owner_id = uuid_of(people["owner"]["user"]["id"])
    editor_id = uuid_of(people["editor"]["user"]["id"])
    specs = await add_collection(db, workspace_id, "Specs", owner_id)
    notes = await add_collection(db, workspace_id, "Notes", owner_id)
    ids = await add_documents(
        db, workspace_id, [specs, notes], [owner_id, editor_id], count, tags=("a", "b"), chunks=3
    )
    return workspace, people, ids, specs, notes


async def _list(client, workspace, token, **variables):
    data = await client.op(
        "DocumentsList", {"workspaceId": workspace["id"], **variables}, token=token
    )
    return data["workspace"]["documents"]


async def test_list_filters_sorts_and_pages(any_db_client: GraphQLClient, any_db_app):
    client = any_db_client
    workspace, people, ids, specs, _notes = await _setup(client, any_db_app, count=5)
    viewer = people["viewer"]["accessToken"]
    page = await _list(client, workspace, viewer, first=2)
    assert page["totalCount"] == 5
    assert [e["node"]["title"] for e in page["edges"]] == ["doc 004", "doc 003"]
    node = page["edges"][0]["node"]
    assert node["collection"]["name"] == "Specs"
    assert node["owner"]["name"] == "Owner"
    assert node["tags"] == ["a", "b"]
    assert (node["status"], node["sizeBytes"], node["wordCount"]) == ("READY", 1004, 104)
    rest = await _list(client, workspace, viewer, first=10, after=page["pageInfo"]["endCursor"])
    assert [e["node"]["title"] for e in rest["edges"]] == ["doc 002", "doc 001", "doc 000"]
    assert rest["pageInfo"]["hasNextPage"] is False

    by_title = await _list(client, workspace, viewer, sort={"field": "TITLE", "direction": "ASC"})
    assert [e["node"]["title"] for e in by_title["edges"]] == [f"doc {i:03d}" for i in range(5)]
    # A cursor of one order is refused by another.
    wrong = await client.execute(
        "query($w: ID!, $a: String) { workspace(id: $w) { documents(after: $a) { totalCount } } }",
        {"w": workspace["id"], "a": by_title["pageInfo"]["endCursor"]},
        token=viewer,
    )
    assert wrong["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"

    in_specs = await _list(
        client, workspace, viewer, filter={"collectionId": global_id("Collection", specs)}
    )
    assert [e["node"]["title"] for e in in_specs["edges"]] == ["doc 004", "doc 002", "doc 000"]
    by_owner = await _list(
        client, workspace, viewer, filter={"ownerId": people["editor"]["user"]["id"]}
    )
    assert by_owner["totalCount"] == 2
    assert (await _list(client, workspace, viewer, filter={"tag": "a"}))["totalCount"] == 5
    assert (await _list(client, workspace, viewer, filter={"tag": "z"}))["totalCount"] == 0
    assert (await _list(client, workspace, viewer, filter={"tag": "  "}))["totalCount"] == 0
    assert (await _list(client, workspace, viewer, filter={"status": "FAILED"}))["totalCount"] == 0
    titled = await _list(client, workspace, viewer, filter={"titleContains": "DOC 00%"})
    assert titled["totalCount"] == 0  # % is literal
    for literal in ("doc_00", "c 00/", "c 00//", "c 003/"):  # _ and the escape character too
        assert (await _list(client, workspace, viewer, filter={"titleContains": literal}))[
            "totalCount"
        ] == 0, literal
    titled = await _list(client, workspace, viewer, filter={"titleContains": "C 003"})
    assert [e["node"]["title"] for e in titled["edges"]] == ["doc 003"]
    foreign = await _list(client, workspace, viewer, filter={"collectionId": "bm9wZQ=="})
    assert foreign["totalCount"] == 0

    outsider = await client.op(
        "DocumentsList", {"workspaceId": workspace["id"]}, token=people["outsider"]["accessToken"]
    )
    assert outsider["workspace"] is None


async def test_every_sort_in_both_directions_pages_in_order(
    any_db_client: GraphQLClient, any_db_app
):
    """Each order walked two rows a page with its cursors. doc 001 is changed last, so the
    orders by update and by upload differ."""
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people, ids, _specs, _notes = await _setup(client, any_db_app, count=5)
    viewer = people["viewer"]["accessToken"]
    async with db.begin() as session:
        newest = await session.scalar(select(func.max(Document.updated_at)))
        await session.execute(
            Document.__table__.update()
            .where(Document.id == ids[1])
            .values(updated_at=newest + timedelta(hours=1))
        )

    async def walk(field: str, direction: str) -> list[str]:
        titles: list[str] = []
        after = None
        while True:
            page = await _list(
                client,
                workspace,
                viewer,
                first=2,
                after=after,
                sort={"field": field, "direction": direction},
            )
            titles += [e["node"]["title"] for e in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                return titles
            after = page["pageInfo"]["endCursor"]

    uploaded = [f"doc {i:03d}" for i in range(5)]
    changed = ["doc 000", "doc 002", "doc 003", "doc 004", "doc 001"]
    assert await walk("UPDATED_AT", "DESC") == changed[::-1]
    assert await walk("UPDATED_AT", "ASC") == changed
    assert await walk("CREATED_AT", "DESC") == uploaded[::-1]
    assert await walk("CREATED_AT", "ASC") == uploaded
    assert await walk("TITLE", "DESC") == uploaded[::-1]
    assert await walk("TITLE", "ASC") == uploaded


async def test_detail_and_update_marks_edited_fields(any_db_client: GraphQLClient, any_db_app):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people, ids, _specs, _notes = await _setup(client, any_db_app, count=1)
    doc_id = global_id("Document", ids[0])
    viewer = people["viewer"]["accessToken"]
    detail = (await client.op("DocumentDetail", {"id": doc_id, "chunksFirst": 2}, token=viewer))[
        "document"
    ]
    assert detail["title"] == "doc 000"
    assert detail["entities"] == [
        {"name": "Ada", "kind": "PERSON"},
        {"name": "Acme", "kind": "OTHER"},
    ]
    assert detail["edits"] == []
    assert detail["chunks"]["totalCount"] == 3
    assert [e["node"] for e in detail["chunks"]["edges"]] == [
        {
            "position": n,
            "text": f"chunk {n}",
            "headingPath": ["H1", f"H2 {n}"],
            "charStart": n * 10,
            "charEnd": n * 10 + 7,
            "tokenCount": 3,
        }
        for n in range(2)
    ]
    node = await client.execute(
        "query($id: ID!) { node(id: $id) { ... on Document { title } } }",
        {"id": doc_id},
        token=viewer,
    )
    assert node["data"]["node"] == {"title": "doc 000"}
    hidden = await client.op(
        "DocumentDetail", {"id": doc_id}, token=people["outsider"]["accessToken"]
    )
    assert hidden["document"] is None

    refused = await client.op(
        "UpdateDocument", {"input": {"id": doc_id, "title": "x"}}, token=viewer
    )
    assert refused["updateDocument"]["errors"][0]["code"] == "FORBIDDEN"
    outsider = await client.op(
        "UpdateDocument",
        {"input": {"id": doc_id, "title": "x"}},
        token=people["outsider"]["accessToken"],
    )
    assert outsider["updateDocument"]["errors"] == [
        {"code": "NOT_FOUND", "message": "No such document.", "field": "id"}
    ]

    editor = people["editor"]
    updated = await client.op(
        "UpdateDocument",
        {
            "input": {
                "id": doc_id,
                "title": "${env:SECRET} report",
                "summary": "Summary 0",  # unchanged: not marked
                "tags": ["x", "X", "y"],
                "entities": [{"name": "Bob", "kind": "PERSON"}],
            }
        },
        token=editor["accessToken"],
    )
    payload = updated["updateDocument"]
    assert payload["errors"] == []
    document = payload["document"]
    assert document["title"] == "${env:SECRET} report"
    assert document["tags"] == ["x", "y"]
    assert document["entities"] == [{"name": "Bob", "kind": "PERSON"}]
    assert [(e["field"], e["editedBy"]["name"]) for e in document["edits"]] == [
        ("TITLE", "Editor"),
        ("TAGS", "Editor"),
        ("ENTITIES", "Editor"),
    ]
    # The seed recorded no sources; the edited fields are the person's now.
    assert document["fieldSources"] == [
        {"field": "TITLE", "source": "PERSON"},
        {"field": "TAGS", "source": "PERSON"},
        {"field": "ENTITIES", "source": "PERSON"},
    ]
    async with db() as session:
        stored = await session.get(Document, ids[0])
        assert stored is not None and stored.title == "${env:SECRET} report"
        edits = (
            await session.execute(select(func.count()).select_from(DocumentFieldEdit))
        ).scalar_one()
    assert edits == 3

    empty = await client.op(
        "UpdateDocument", {"input": {"id": doc_id, "title": "  "}}, token=editor["accessToken"]
    )
    assert empty["updateDocument"]["errors"] == [
        {"code": "REQUIRED", "message": "This cannot be empty.", "field": "title"}
    ]


async def test_move_and_delete_in_bulk(any_db_client: GraphQLClient, any_db_app):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people, ids, specs, notes = await _setup(client, any_db_app, count=4)
    outsider_ws = await client.op("AppShell", token=people["outsider"]["accessToken"])
    outsider_ws_id = uuid_of(outsider_ws["workspaces"]["edges"][0]["node"]["id"])
    outsider_id = uuid_of(people["outsider"]["user"]["id"])
    foreign_collection = await add_collection(db, outsider_ws_id, "Theirs", outsider_id)
    [foreign_doc] = await add_documents(db, outsider_ws_id, [foreign_collection], [outsider_id], 1)

    async def collections_of() -> dict[uuid.UUID, uuid.UUID]:
        async with db() as session:
            return dict((await session.execute(select(Document.id, Document.collection_id))).all())

    before = await collections_of()
    wanted = [global_id("Document", i) for i in ids] + [
        global_id("Document", foreign_doc),
        "not an id",
    ]
    viewer = await client.op(
        "MoveDocuments",
        {"input": {"ids": wanted, "collectionId": global_id("Collection", notes)}},
        token=people["viewer"]["accessToken"],
    )
    assert viewer["moveDocuments"] == {
        "documents": None,
        "errors": [
            {
                "code": "FORBIDDEN",
                "message": "This needs the EDITOR role or higher; you are VIEWER.",
                "field": None,
            }
        ],
    }
    assert await collections_of() == before

    moved = await client.op(
        "MoveDocuments",
        {"input": {"ids": wanted, "collectionId": global_id("Collection", notes)}},
        token=people["editor"]["accessToken"],
    )
    payload = moved["moveDocuments"]
    assert [d["id"] for d in payload["documents"]] == [global_id("Document", i) for i in ids]
    assert {d["collection"]["name"] for d in payload["documents"]} == {"Notes"}
    assert payload["errors"] == [
        {"code": "NOT_FOUND", "message": "No such document.", "field": "ids.4"},
        {"code": "NOT_FOUND", "message": "No such document.", "field": "ids.5"},
    ]
    after = await collections_of()
    assert after == {**before, **dict.fromkeys(ids, notes)}
    assert after[foreign_doc] == foreign_collection

    too_many = await client.op(
        "DeleteDocuments",
        {"input": {"ids": [global_id("Document", ids[0])] * 101}},
        token=people["editor"]["accessToken"],
    )
    assert too_many["deleteDocuments"]["errors"] == [
        {"code": "TOO_LONG", "message": "Select at most 100 documents at a time.", "field": "ids"}
    ]
    refused = await client.op(
        "DeleteDocuments", {"input": {"ids": wanted}}, token=people["viewer"]["accessToken"]
    )
    assert refused["deleteDocuments"]["deletedIds"] is None
    assert refused["deleteDocuments"]["errors"][0]["code"] == "FORBIDDEN"
    assert len(await collections_of()) == 5

    async with db.begin() as session:  # what ingestion would have recorded
        for document_id in ids[:3]:
            await record_sources(
                session,
                document_id,
                {DocumentField.SUMMARY: FieldSource.MODEL, DocumentField.TAGS: FieldSource.TEXT},
            )
    deleted = await client.op(
        "DeleteDocuments",
        {"input": {"ids": wanted[:2] + wanted[4:]}},
        token=people["editor"]["accessToken"],
    )
    assert deleted["deleteDocuments"] == {
        "deletedIds": wanted[:2],
        "errors": [
            {"code": "NOT_FOUND", "message": "No such document.", "field": "ids.2"},
            {"code": "NOT_FOUND", "message": "No such document.", "field": "ids.3"},
        ],
    }
    remaining = await collections_of()
    assert set(remaining) == {ids[2], ids[3], foreign_doc}
    async with db() as session:
        chunks = (await session.execute(select(Chunk.document_id).distinct())).scalars().all()
    assert set(chunks) == {ids[2], ids[3]}  # the foreign document was seeded without chunks
    async with db() as session:
        sources = await session.execute(
            select(DocumentFieldSource.document_id, DocumentFieldSource.field)
        )
    assert sorted(sources.all()) == [
        (ids[2], DocumentField.SUMMARY),
        (ids[2], DocumentField.TAGS),
    ]
    _ = specs


async def test_dashboard_counts_of_a_workspace_without_documents(
    any_db_client: GraphQLClient, any_db_app
):
    """The counts come from an outer join: a workspace with no documents (with and without
    collections) counts zeros, not nothing."""
    owner = await sign_up(any_db_client, "Olivia Owner", "owner@example.com")
    workspace = await first_workspace(any_db_client, owner["accessToken"])
    zeros = {"queued": 0, "processing": 0, "ready": 0, "failed": 0, "total": 0}

    async def counts() -> tuple[dict[str, int], int]:
        data = await any_db_client.op(
            "Dashboard", {"workspaceId": workspace["id"]}, token=owner["accessToken"]
        )
        return data["workspace"]["documentCounts"], data["workspace"]["collectionCount"]

    assert await counts() == (zeros, 0)
    owner_id = uuid_of(owner["user"]["id"])
    for name in ("Specs", "Notes"):
        await add_collection(any_db_app.state.deps.db, uuid_of(workspace["id"]), name, owner_id)
    assert await counts() == (zeros, 2)


async def test_dashboard_counts_and_recent_documents(any_db_client: GraphQLClient, any_db_app):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people, ids, specs, _notes = await _setup(client, any_db_app, count=7)
    owner_id = uuid_of(people["owner"]["user"]["id"])
    await add_documents(
        db, uuid_of(workspace["id"]), [specs], [owner_id], 2, status=DocumentStatus.FAILED
    )
    data = await client.op(
        "Dashboard", {"workspaceId": workspace["id"]}, token=people["viewer"]["accessToken"]
    )
    ws = data["workspace"]
    assert ws["documentCounts"] == {
        "queued": 0,
        "processing": 0,
        "ready": 7,
        "failed": 2,
        "total": 9,
    }
    assert ws["collectionCount"] == 2
    assert [d["title"] for d in ws["recentDocuments"]] == [
        "doc 006",
        "doc 005",
        "doc 004",
        "doc 003",
        "doc 002",
    ]
    assert ws["recentDocuments"][0]["collection"]["name"] == "Specs"


async def test_tag_choices_count_documents_and_match_a_prefix(
    any_db_client: GraphQLClient, any_db_app
):
    client = any_db_client
    workspace, people, ids, _specs, _notes = await _setup(client, any_db_app, count=5)
    owner, viewer = people["owner"]["accessToken"], people["viewer"]["accessToken"]
    tags = [["Python", "venv"], ["python", "pip"], ["Python"], ["100%_sure"]]
    for document_id, written in zip(ids, tags, strict=False):
        edited = await client.op(
            "UpdateDocument",
            {"input": {"id": global_id("Document", document_id), "tags": written}},
            token=owner,
        )
        assert edited["updateDocument"]["errors"] == []

    async def choices(token: str = viewer, **variables) -> list[tuple[str, int]] | None:
        data = await client.op(
            "TagChoices", {"workspaceId": workspace["id"], **variables}, token=token
        )
        if data["workspace"] is None:
            return None
        return [(t["tag"], t["documents"]) for t in data["workspace"]["tags"]]

    with count_statements(any_db_app.state.engine) as statements:
        every = await choices()
    assert len(statements) == 2, statements  # the workspace with the caller's role; the tags
    assert every is not None
    assert every[0] == ("Python", 2)  # the only tag on two documents comes first
    assert dict(every) == {
        "Python": 2,
        "python": 1,
        "venv": 1,
        "pip": 1,
        "100%_sure": 1,
        "a": 1,
        "b": 1,
    }
    assert len(every) == 7
    assert dict(await choices(startsWith="PY") or []) == {"Python": 2, "python": 1}
    assert await choices(startsWith="100%") == [("100%_sure", 1)]
    assert await choices(startsWith="100_") == []  # _ and % are letters here, not patterns
    assert await choices(startsWith="1%") == []
    assert await choices(first=1) == [("Python", 2)]
    assert await choices(first=0) == []
    for bad in (-1, 101):
        refused = await client.execute(
            "query($w: ID!, $n: Int) { workspace(id: $w) { tags(first: $n) { tag } } }",
            {"w": workspace["id"], "n": bad},
            token=viewer,
        )
        assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", bad
    assert await choices(token=people["outsider"]["accessToken"]) is None


async def test_title_and_tag_matches_ignore_case_beyond_ascii(
    any_db_client: GraphQLClient, any_db_app
):
    """ "über" finds "Über" on both databases: SQLite's own lower() folds ASCII letters only."""
    client = any_db_client
    workspace, people, ids, _specs, _notes = await _setup(client, any_db_app, count=3)
    owner, viewer = people["owner"]["accessToken"], people["viewer"]["accessToken"]
    for document_id, title, tags in (
        (ids[0], "Über Élan", ["Élan", "Ökologie"]),
        (ids[1], "ÉTÉ à Paris", ["élan"]),
    ):
        edited = await client.op(
            "UpdateDocument",
            {"input": {"id": global_id("Document", document_id), "title": title, "tags": tags}},
            token=owner,
        )
        assert edited["updateDocument"]["errors"] == []

    async def titles(text: str) -> list[str]:
        found = await _list(client, workspace, viewer, filter={"titleContains": text})
        return sorted(e["node"]["title"] for e in found["edges"])

    assert await titles("über") == ["Über Élan"]
    assert await titles("ÜBER É") == ["Über Élan"]
    assert await titles("été") == ["ÉTÉ à Paris"]
    assert await titles("É") == ["ÉTÉ à Paris", "Über Élan"]
    assert await titles("ete") == []  # letters are folded by case only, accents stay
    assert await titles("ber") == ["Über Élan"]  # ASCII text still matches inside
    assert await titles("DOC 002") == ["doc 002"]

    async def choices(prefix: str) -> list[tuple[str, int]]:
        data = await client.op(
            "TagChoices", {"workspaceId": workspace["id"], "startsWith": prefix}, token=viewer
        )
        return sorted((t["tag"], t["documents"]) for t in data["workspace"]["tags"])

    assert await choices("é") == [("Élan", 1), ("élan", 1)]
    assert await choices("ÉL") == [("Élan", 1), ("élan", 1)]
    assert await choices("ö") == [("Ökologie", 1)]
    assert await choices("e") == []


async def test_a_collection_last_update_never_goes_back_when_documents_leave(
    any_db_client: GraphQLClient, any_db_app
):
    """A collection's updatedAt is the later of its own and its newest document's: the newest
    document leaving (moved out, deleted) must not take it back in time."""
    client = any_db_client
    workspace, people, ids, specs, notes = await _setup(client, any_db_app, count=4)
    owner = people["owner"]["accessToken"]

    async def updated_at() -> dict[str, str]:
        data = await client.op("Collections", {"workspaceId": workspace["id"]}, token=owner)
        edges = data["workspace"]["collections"]["edges"]
        return {e["node"]["name"]: e["node"]["updatedAt"] for e in edges}

    async def edit_now(document_id: uuid.UUID) -> None:  # the collection's newest document now
        edited = await client.op(
            "UpdateDocument",
            {"input": {"id": global_id("Document", document_id), "summary": "Edited."}},
            token=owner,
        )
        assert edited["updateDocument"]["errors"] == []

    # doc 000 and doc 002 are in Specs, doc 001 and doc 003 in Notes (alternating).
    await edit_now(ids[0])
    before = await updated_at()
    moved = await client.op(
        "MoveDocuments",
        {
            "input": {
                "ids": [global_id("Document", ids[0])],
                "collectionId": global_id("Collection", notes),
            }
        },
        token=owner,
    )
    assert moved["moveDocuments"]["errors"] == []
    after_move = await updated_at()
    assert after_move["Specs"] > before["Specs"]  # it lost a document: a change
    assert after_move["Notes"] > before["Notes"]

    await edit_now(ids[1])
    before = await updated_at()
    deleted = await client.op(
        "DeleteDocuments", {"input": {"ids": [global_id("Document", ids[1])]}}, token=owner
    )
    assert deleted["deleteDocuments"]["errors"] == []
    after_delete = await updated_at()
    assert after_delete["Notes"] > before["Notes"]
    assert after_delete["Specs"] == before["Specs"]  # untouched
