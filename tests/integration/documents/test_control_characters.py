"""Control characters in text a person writes or filters by, on PostgreSQL and SQLite: refused
with INVALID and the field named, nothing written. PostgreSQL's text cannot hold NUL, so a
summary, a description or a filter holding one used to fail at the database as INTERNAL (and
SQLite stored it, or cut a LIKE pattern at it). Filter text longer than anything it is matched
against is TOO_LONG."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from base.models.documents import Collection, Document
from tests.support.graphql import GraphQLClient, first_workspace, operation, sign_up
from tests.support.seed import add_collection, add_documents, global_id, uuid_of

NUL = "a\x00b"
INVALID = "This contains control characters."


async def _library(client: GraphQLClient, app: Any) -> dict[str, Any]:
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    workspace_id, owner_id = uuid_of(workspace["id"]), uuid_of(owner["user"]["id"])
    db = app.state.deps.db
    collection = await add_collection(db, workspace_id, "Guides", owner_id)
    [document] = await add_documents(db, workspace_id, [collection], [owner_id], 1, tags=("a",))
    return {
        "token": owner["accessToken"],
        "workspace": workspace["id"],
        "collection": collection,
        "document": document,
    }


async def _stored(app: Any, library: dict[str, Any]) -> tuple[Any, ...]:
    async with app.state.deps.db() as session:
        summary, updated = (
            await session.execute(
                select(Document.summary, Document.updated_at).where(
                    Document.id == library["document"]
                )
            )
        ).one()
        description, changed = (
            await session.execute(
                select(Collection.description, Collection.updated_at).where(
                    Collection.id == library["collection"]
                )
            )
        ).one()
    return summary, updated, description, changed


async def test_free_text_with_a_control_character_is_invalid_and_nothing_changes(
    any_db_client: GraphQLClient, any_db_app: Any
):
    library = await _library(any_db_client, any_db_app)
    token = library["token"]
    document = global_id("Document", library["document"])
    collection = global_id("Collection", library["collection"])
    before = await _stored(any_db_app, library)
    for text in (NUL, "a\x1bb", "a\x7fb"):
        summary = await any_db_client.op(
            "UpdateDocument", {"input": {"id": document, "summary": text}}, token=token
        )
        assert summary["updateDocument"]["document"] is None
        assert summary["updateDocument"]["errors"] == [
            {"code": "INVALID", "message": INVALID, "field": "summary"}
        ]
        described = await any_db_client.op(
            "UpdateCollection", {"input": {"id": collection, "description": text}}, token=token
        )
        assert described["updateCollection"]["errors"] == [
            {"code": "INVALID", "message": INVALID, "field": "description"}
        ]
        made = await any_db_client.op(
            "CreateCollection",
            {"input": {"workspaceId": library["workspace"], "name": "New", "description": text}},
            token=token,
        )
        assert made["createCollection"]["errors"] == [
            {"code": "INVALID", "message": INVALID, "field": "description"}
        ]
    assert await _stored(any_db_app, library) == before
    shown = await any_db_client.op(
        "Collections", {"workspaceId": library["workspace"]}, token=token
    )
    assert [e["node"]["name"] for e in shown["workspace"]["collections"]["edges"]] == ["Guides"]

    # Tabs and line breaks are part of a paragraph.
    kept = await any_db_client.op(
        "UpdateCollection",
        {"input": {"id": collection, "description": "One\n\tTwo\r\nThree"}},
        token=token,
    )
    assert kept["updateCollection"]["errors"] == []
    assert kept["updateCollection"]["collection"]["description"] == "One\n\tTwo\r\nThree"


async def test_a_filter_with_a_control_character_is_invalid(
    any_db_client: GraphQLClient, any_db_app: Any
):
    library = await _library(any_db_client, any_db_app)
    token, workspace = library["token"], library["workspace"]
    refused = [
        ("DocumentsList", {"filter": {"titleContains": NUL}}, "filter.titleContains"),
        ("DocumentsList", {"filter": {"tag": NUL}}, "filter.tag"),
        ("TagChoices", {"startsWith": NUL}, "startsWith"),
        ("RunsMonitor", {"workflow": NUL}, "workflow"),
    ]
    for name, variables, field in refused:
        result = await any_db_client.execute(
            operation(name), {"workspaceId": workspace, **variables}, token=token
        )
        assert result["data"] == {"workspace": None}, result
        [error] = result["errors"]
        assert (error["message"], error["extensions"]["code"], error["extensions"]["field"]) == (
            INVALID,
            "INVALID",
            field,
        )
    searched = await any_db_client.op(
        "Search",
        {"workspaceId": workspace, "query": "doc", "mode": "KEYWORD", "filter": {"tags": [NUL]}},
        token=token,
    )
    assert searched["search"]["errors"] == [
        {"code": "INVALID", "message": INVALID, "field": "filter.tags"}
    ]
    # The same filters without the character answer as before.
    listed = await any_db_client.op(
        "DocumentsList", {"workspaceId": workspace, "filter": {"tag": "a"}}, token=token
    )
    assert listed["workspace"]["documents"]["totalCount"] == 1
    tags = await any_db_client.op(
        "TagChoices", {"workspaceId": workspace, "startsWith": "a"}, token=token
    )
    assert tags["workspace"]["tags"] == [{"tag": "a", "documents": 1}]


async def test_filter_text_longer_than_what_it_matches_is_too_long(
    any_db_client: GraphQLClient, any_db_app: Any
):
    """A tag's beginning of 100,000 characters failed on SQLite as INTERNAL ("LIKE or GLOB
    pattern too complex": SQLite refuses a pattern over 50,000 bytes). A filter longer than the
    longest tag (100) or title (300) could match nothing: it is TOO_LONG, at any length."""
    library = await _library(any_db_client, any_db_app)
    token, workspace = library["token"], library["workspace"]
    refused = [
        ("TagChoices", {"startsWith": "x" * 100_000}, "startsWith", 100),
        ("TagChoices", {"startsWith": "a" * 101}, "startsWith", 100),
        ("DocumentsList", {"filter": {"tag": "a" * 101}}, "filter.tag", 100),
        ("DocumentsList", {"filter": {"titleContains": "d" * 301}}, "filter.titleContains", 300),
    ]
    for name, variables, field, limit in refused:
        result = await any_db_client.execute(
            operation(name), {"workspaceId": workspace, **variables}, token=token
        )
        assert result["data"] == {"workspace": None}, result
        [error] = result["errors"]
        assert (error["message"], error["extensions"]["code"], error["extensions"]["field"]) == (
            f"Use at most {limit} characters.",
            "TOO_LONG",
            field,
        )
    searched = await any_db_client.op(
        "Search",
        {
            "workspaceId": workspace,
            "query": "doc",
            "mode": "KEYWORD",
            "filter": {"tags": ["a", "a" * 101]},
        },
        token=token,
    )
    assert searched["search"]["results"] is None
    assert searched["search"]["errors"] == [
        {"code": "TOO_LONG", "message": "Use at most 100 characters.", "field": "filter.tags"}
    ]
    # At the limit (surrounding blanks trimmed first) they answer: nothing matches these.
    tags = await any_db_client.op(
        "TagChoices", {"workspaceId": workspace, "startsWith": f" {'a' * 100} "}, token=token
    )
    assert tags["workspace"]["tags"] == []
    listed = await any_db_client.op(
        "DocumentsList",
        {"workspaceId": workspace, "filter": {"tag": "a" * 100, "titleContains": "d" * 300}},
        token=token,
    )
    assert listed["workspace"]["documents"]["totalCount"] == 0
