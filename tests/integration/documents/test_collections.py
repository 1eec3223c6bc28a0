"""Collections (screen 4) on PostgreSQL and SQLite: list, create, edit, delete, roles."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from base.models.accounts import Membership, Role
from base.models.documents import Collection, Document
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.seed import T0, add_collection, add_documents, global_id, uuid_of


async def _team(client: GraphQLClient, app):
    """An owner's workspace with an EDITOR and a VIEWER, and an outsider with their own."""
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    people = {"owner": owner}
    db = app.state.deps.db
    for role in (Role.EDITOR, Role.VIEWER):
        person = await sign_up(client, role.value.title(), f"{role.value.lower()}@example.com")
        async with db.begin() as session:
            session.add(
                Membership(
                    workspace_id=uuid_of(workspace["id"]),
                    user_id=uuid_of(person["user"]["id"]),
                    role=role,
                )
            )
        people[role.value.lower()] = person
    people["outsider"] = await sign_up(client, "Outsider", "outsider@example.com")
    return workspace, people


async def _count(db) -> int:
    async with db() as session:
        return (await session.execute(select(func.count(Collection.id)))).scalar_one()


async def test_collections_create_list_update_delete(any_db_client: GraphQLClient, any_db_app):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _team(client, any_db_app)
    editor = people["editor"]["accessToken"]
    created = await client.op(
        "CreateCollection",
        {"input": {"workspaceId": workspace["id"], "name": "  ${jndi} Specs ", "description": "d"}},
        token=editor,
    )
    payload = created["createCollection"]
    assert payload["errors"] == []
    collection = payload["collection"]
    assert (collection["name"], collection["description"], collection["documentCount"]) == (
        "${jndi} Specs",
        "d",
        0,
    )
    assert collection["createdBy"]["name"] == "Editor"

    taken = await client.op(
        "CreateCollection",
        {"input": {"workspaceId": workspace["id"], "name": "${jndi} Specs"}},
        token=editor,
    )
    assert taken["createCollection"] == {
        "collection": None,
        "errors": [
            {
                "code": "NAME_TAKEN",
                "message": "This workspace already has a collection named “${jndi} Specs”.",
                "field": "name",
            }
        ],
    }

    # Two documents, the newer updated at T0 + 1 minute.
    owner_id = uuid_of(people["owner"]["user"]["id"])
    await add_documents(db, uuid_of(workspace["id"]), [uuid_of(collection["id"])], [owner_id], 2)
    second = await add_collection(db, uuid_of(workspace["id"]), "Archive", owner_id)
    listed = await client.op(
        "Collections", {"workspaceId": workspace["id"]}, token=people["viewer"]["accessToken"]
    )
    connection = listed["workspace"]["collections"]
    assert connection["totalCount"] == 2
    nodes = [e["node"] for e in connection["edges"]]
    assert [(n["name"], n["documentCount"]) for n in nodes] == [
        ("${jndi} Specs", 2),
        ("Archive", 0),
    ]
    assert nodes[1]["updatedAt"] == T0.isoformat()
    assert nodes[1]["createdBy"]["name"] == "Owner"
    # The collection was created now, after its documents' seeded times.
    assert nodes[0]["updatedAt"] == collection["updatedAt"]
    # A document changed later makes the collection's last update.
    later = datetime.now(UTC) + timedelta(days=1)
    async with db.begin() as session:
        await session.execute(
            update(Document).where(Document.title == "doc 001").values(updated_at=later)
        )
    listed = await client.op(
        "Collections", {"workspaceId": workspace["id"]}, token=people["viewer"]["accessToken"]
    )
    assert listed["workspace"]["collections"]["edges"][0]["node"]["updatedAt"] == later.isoformat()

    renamed = await client.op(
        "UpdateCollection",
        {"input": {"id": global_id("Collection", second), "name": "Old", "description": "x"}},
        token=editor,
    )
    assert renamed["updateCollection"]["errors"] == []
    assert renamed["updateCollection"]["collection"]["name"] == "Old"
    assert renamed["updateCollection"]["collection"]["description"] == "x"
    clash = await client.op(
        "UpdateCollection",
        {"input": {"id": global_id("Collection", second), "name": "${jndi} Specs"}},
        token=editor,
    )
    assert clash["updateCollection"]["errors"][0]["code"] == "NAME_TAKEN"

    refused = await client.op("DeleteCollection", {"input": {"id": collection["id"]}}, token=editor)
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
    deleted = await client.op(
        "DeleteCollection", {"input": {"id": global_id("Collection", second)}}, token=editor
    )
    assert deleted["deleteCollection"] == {
        "deletedCollectionId": global_id("Collection", second),
        "errors": [],
    }
    assert await _count(db) == 1


async def test_viewer_reads_and_outsider_sees_nothing(any_db_client: GraphQLClient, any_db_app):
    client, db = any_db_client, any_db_app.state.deps.db
    workspace, people = await _team(client, any_db_app)
    owner_id = uuid_of(people["owner"]["user"]["id"])
    existing = await add_collection(db, uuid_of(workspace["id"]), "Specs", owner_id)
    viewer = people["viewer"]["accessToken"]
    outsider = people["outsider"]["accessToken"]
    forbidden = {
        "code": "FORBIDDEN",
        "message": "This needs the EDITOR role or higher; you are VIEWER.",
        "field": None,
    }
    created = await client.op(
        "CreateCollection", {"input": {"workspaceId": workspace["id"], "name": "X"}}, token=viewer
    )
    assert created["createCollection"]["errors"] == [forbidden]
    updated = await client.op(
        "UpdateCollection",
        {"input": {"id": global_id("Collection", existing), "name": "Y"}},
        token=viewer,
    )
    assert updated["updateCollection"]["errors"] == [forbidden]
    deleted = await client.op(
        "DeleteCollection", {"input": {"id": global_id("Collection", existing)}}, token=viewer
    )
    assert deleted["deleteCollection"]["errors"] == [forbidden]

    for variables, name in [
        ({"input": {"id": global_id("Collection", existing), "name": "Y"}}, "UpdateCollection"),
        ({"input": {"id": global_id("Collection", existing)}}, "DeleteCollection"),
        ({"input": {"id": global_id("Run", existing)}}, "DeleteCollection"),
    ]:
        answer = await client.op(name, variables, token=outsider)
        [payload] = answer.values()
        assert payload["errors"] == [
            {"code": "NOT_FOUND", "message": "No such collection.", "field": "id"}
        ]
    created = await client.op(
        "CreateCollection",
        {"input": {"workspaceId": workspace["id"], "name": "X"}},
        token=outsider,
    )
    assert created["createCollection"]["errors"] == [
        {"code": "NOT_FOUND", "message": "No such workspace.", "field": "workspaceId"}
    ]
    listed = await client.op("Collections", {"workspaceId": workspace["id"]}, token=outsider)
    assert listed["workspace"] is None
    async with db() as session:
        names = (await session.execute(select(Collection.name))).scalars().all()
    assert names == ["Specs"]
