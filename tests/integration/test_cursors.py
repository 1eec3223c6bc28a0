"""Connection cursors on PostgreSQL and SQLite: valid ones page through every row once, and a
cursor that is not one of this list's (another list's, or with values of the wrong type) is
INVALID_CURSOR before any SQL, never INTERNAL."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.support.databases import count_statements
from tests.support.graphql import GraphQLClient, first_workspace, sign_up
from tests.support.seed import (
    add_collection,
    add_documents,
    add_events,
    add_members,
    add_runs,
    global_id,
    uuid_of,
)

RUNS = """
query($w: ID!, $first: Int, $after: String) {
  workspace(id: $w) {
    runs(first: $first, after: $after) {
      pageInfo { hasNextPage hasPreviousPage endCursor }
      edges { cursor node { id } }
    }
  }
}
"""
MEMBERS = """
query($w: ID!, $first: Int, $after: String) {
  workspace(id: $w) {
    members(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { user { name } } }
    }
  }
}
"""
EVENTS = """
query($r: ID!, $first: Int, $after: String) {
  run(id: $r) {
    events(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { cursor } }
    }
  }
}
"""
COLLECTIONS = """
query($w: ID!, $first: Int, $after: String) {
  workspace(id: $w) {
    collections(first: $first, after: $after) { pageInfo { endCursor } edges { node { id } } }
  }
}
"""
WORKSPACES = """
query($first: Int, $after: String) {
  workspaces(first: $first, after: $after) { pageInfo { endCursor } edges { node { id } } }
}
"""
AT = ["dt", "2026-11-24T09:00:00+00:00"]
ID = ["uuid", "00000000-0000-4000-8000-000000000001"]


def raw(*values: Any) -> str:
    text = json.dumps(list(values), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
async def world(any_db_client: GraphQLClient, any_db_app) -> dict[str, Any]:
    """An owner's workspace with 7 runs created at the same instant, 5 more members, and a run
    with 7 events."""
    owner = await sign_up(any_db_client, "Owner", "owner@example.com")
    workspace = await first_workspace(any_db_client, owner["accessToken"])
    workspace_id = uuid_of(workspace["id"])
    db = any_db_app.state.deps.db
    runs = await add_runs(db, workspace_id, [uuid_of(owner["user"]["id"])], 7, minutes_apart=0)
    await add_members(db, workspace_id, 5, prefix="m")
    await add_events(db, runs[0], 7)
    return {
        "token": owner["accessToken"],
        "workspace": workspace["id"],
        "runs": runs,
        "run": global_id("Run", runs[0]),
    }


async def library(client: GraphQLClient, app: Any, documents: int) -> tuple[str, str, list[Any]]:
    """An owner's token, their workspace's id, and the ids of `documents` documents of one
    collection."""
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    workspace_id, owner_id = uuid_of(workspace["id"]), uuid_of(owner["user"]["id"])
    db = app.state.deps.db
    collection = await add_collection(db, workspace_id, "C", owner_id)
    ids = await add_documents(db, workspace_id, [collection], [owner_id], documents)
    return owner["accessToken"], workspace["id"], ids


async def pages(
    client: GraphQLClient, token: str, query: str, variables: dict[str, Any], path: list[str]
) -> list[list[Any]]:
    """Every page of a connection, three at a time, following endCursor."""
    found: list[list[Any]] = []
    after = None
    while True:
        result = await client.execute(query, {**variables, "first": 3, "after": after}, token=token)
        assert "errors" not in result, result
        connection = result["data"]
        for key in path:
            connection = connection[key]
        found.append(connection["edges"])
        if not connection["pageInfo"]["hasNextPage"]:
            return found
        after = connection["pageInfo"]["endCursor"]


async def test_valid_cursors_page_through_every_row_once(
    any_db_client: GraphQLClient, world: dict[str, Any]
):
    token = world["token"]
    runs = await pages(any_db_client, token, RUNS, {"w": world["workspace"]}, ["workspace", "runs"])
    # Created at the same instant: newest first means by id, descending.
    expected = [global_id("Run", i) for i in sorted(world["runs"], reverse=True)]
    assert [[e["node"]["id"] for e in page] for page in runs] == [
        expected[0:3],
        expected[3:6],
        expected[6:7],
    ]
    members = await pages(
        any_db_client, token, MEMBERS, {"w": world["workspace"]}, ["workspace", "members"]
    )
    assert [[e["node"]["user"]["name"] for e in page] for page in members] == [
        ["M 0", "M 1", "M 2"],
        ["M 3", "M 4", "Owner"],
    ]
    events = await pages(any_db_client, token, EVENTS, {"r": world["run"]}, ["run", "events"])
    assert [[e["node"]["cursor"] for e in page] for page in events] == [
        ["1", "2", "3"],
        ["4", "5", "6"],
        ["7"],
    ]


def refused(result: dict[str, Any]) -> list[tuple[str, str | None, list[Any]]]:
    return [
        (e["extensions"]["code"], e["extensions"].get("field"), e["path"]) for e in result["errors"]
    ]


@pytest.mark.parametrize(
    ("list_name", "cursor"),
    [
        ("runs", raw("runs", "2026-11-24", ID)),  # a plain string for the time
        ("runs", raw("runs", AT, 5)),  # a number for the id
        ("runs", raw("runs", ["dt", "2026-11-24T09:00:00"], ID)),  # a naive time
        ("runs", raw(AT, ID)),  # the cursor format before list names
        ("members", raw("members", AT, ["uuid", "x"])),
        ("members", raw("members", 1, 2)),
        ("events", raw("run_events", "3")),  # a string for the sequence number
        ("events", raw("run_events", 2**31)),  # beyond the INTEGER column
        ("events", raw("run_events", 1.5)),
        ("events", "3"),  # a RunEvent.cursor is not a connection cursor
        ("workspaces", raw("workspaces", AT, AT)),
        # Names are text a database holds: a lone surrogate or a NUL reached SQL (INTERNAL).
        ("collections", raw("collections", "Guides \ud800", ID)),
        ("collections", raw("collections", "Guides \x00", ID)),
    ],
)
async def test_a_cursor_with_values_of_the_wrong_type_is_invalid_cursor(
    any_db_client: GraphQLClient, world: dict[str, Any], list_name: str, cursor: str
):
    query, variables, path = {
        "runs": (RUNS, {"w": world["workspace"]}, ["workspace", "runs"]),
        "members": (MEMBERS, {"w": world["workspace"]}, ["workspace", "members"]),
        "events": (EVENTS, {"r": world["run"]}, ["run", "events"]),
        "workspaces": (WORKSPACES, {}, ["workspaces"]),
        "collections": (COLLECTIONS, {"w": world["workspace"]}, ["workspace", "collections"]),
    }[list_name]
    result = await any_db_client.execute(
        query, {**variables, "after": cursor}, token=world["token"]
    )
    assert refused(result) == [("INVALID_CURSOR", "after", path)]


async def test_a_cursor_of_another_list_with_the_same_key_width_is_invalid_cursor(
    any_db_client: GraphQLClient, world: dict[str, Any]
):
    token = world["token"]
    w = {"w": world["workspace"]}

    async def end_cursor(query: str, variables: dict[str, Any], path: list[str]) -> str:
        result = await any_db_client.execute(query, {**variables, "first": 1}, token=token)
        connection = result["data"]
        for key in path:
            connection = connection[key]
        return str(connection["pageInfo"]["endCursor"])

    runs_cursor = await end_cursor(RUNS, w, ["workspace", "runs"])
    members_cursor = await end_cursor(MEMBERS, w, ["workspace", "members"])
    workspaces_cursor = await end_cursor(WORKSPACES, {}, ["workspaces"])
    # All three sort by (a UTC time, a uuid): the same width and the same types.
    for query, variables, path, cursor in [
        (RUNS, w, ["workspace", "runs"], members_cursor),
        (RUNS, w, ["workspace", "runs"], workspaces_cursor),
        (MEMBERS, w, ["workspace", "members"], runs_cursor),
        (WORKSPACES, {}, ["workspaces"], members_cursor),
    ]:
        result = await any_db_client.execute(query, {**variables, "after": cursor}, token=token)
        assert refused(result) == [("INVALID_CURSOR", "after", path)]


async def test_a_bad_cursor_in_a_nested_connection_fails_that_field_only(
    any_db_client: GraphQLClient, world: dict[str, Any]
):
    query = """
    query($w: ID!, $bad: String) {
      me { name }
      workspace(id: $w) {
        runs(first: 2) { edges { node { events(first: 1, after: $bad) { totalCount } } } }
      }
    }
    """
    result = await any_db_client.execute(
        query, {"w": world["workspace"], "bad": raw("run_events", "x")}, token=world["token"]
    )
    # `events` is non-null, so the error nulls the nearest nullable parent, `workspace`, and
    # graphql-core reports the first error below it; `me` is unaffected.
    assert result["data"] == {"me": {"name": "Owner"}, "workspace": None}
    assert refused(result) == [
        ("INVALID_CURSOR", "after", ["workspace", "runs", "edges", 0, "node", "events"])
    ]


CHUNKS_OF_DOCUMENTS = """
query($w: ID!, $first: Int, $after: String) {
  workspace(id: $w) {
    documents(first: 10, sort: {field: CREATED_AT, direction: ASC}) {
      edges {
        node {
          id
          chunks(first: $first, after: $after) {
            totalCount
            pageInfo { hasNextPage }
            edges { node { position } }
          }
        }
      }
    }
  }
}
"""
CHUNKS = """
query($d: ID!, $first: Int, $after: String) {
  document(id: $d) {
    chunks(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { position } }
    }
  }
}
"""


async def test_a_lists_total_is_the_same_on_its_first_page_and_later_ones(
    any_db_client: GraphQLClient, any_db_app
):
    """A document's chunks count themselves in their first page's statement, for one document
    or many (a document without chunks counts 0); a later page counts them on its own."""
    owner = await sign_up(any_db_client, "Owner", "owner@example.com")
    token = owner["accessToken"]
    workspace = await first_workspace(any_db_client, token)
    workspace_id, owner_id = uuid_of(workspace["id"]), uuid_of(owner["user"]["id"])
    db = any_db_app.state.deps.db
    collection = await add_collection(db, workspace_id, "C", owner_id)
    seven = await add_documents(db, workspace_id, [collection], [owner_id], 1, chunks=7)
    none = await add_documents(db, workspace_id, [collection], [owner_id], 1, chunks=0)
    two = await add_documents(db, workspace_id, [collection], [owner_id], 1, chunks=2)

    nested = await any_db_client.execute(
        CHUNKS_OF_DOCUMENTS, {"w": workspace["id"], "first": 3}, token=token
    )
    assert "errors" not in nested, nested
    edges = nested["data"]["workspace"]["documents"]["edges"]
    assert {
        e["node"]["id"]: (
            e["node"]["chunks"]["totalCount"],
            e["node"]["chunks"]["pageInfo"]["hasNextPage"],
            [x["node"]["position"] for x in e["node"]["chunks"]["edges"]],
        )
        for e in edges
    } == {
        global_id("Document", seven[0]): (7, True, [0, 1, 2]),
        global_id("Document", none[0]): (0, False, []),
        global_id("Document", two[0]): (2, False, [0, 1]),
    }

    document = global_id("Document", seven[0])
    seen = []
    after = None
    while True:
        result = await any_db_client.execute(
            CHUNKS, {"d": document, "first": 3, "after": after}, token=token
        )
        chunks = result["data"]["document"]["chunks"]
        seen.append((chunks["totalCount"], [x["node"]["position"] for x in chunks["edges"]]))
        if not chunks["pageInfo"]["hasNextPage"]:
            break
        after = chunks["pageInfo"]["endCursor"]
    assert seen == [(7, [0, 1, 2]), (7, [3, 4, 5]), (7, [6])]
    empty = await any_db_client.execute(CHUNKS, {"d": document, "first": 0}, token=token)
    assert empty["data"]["document"]["chunks"]["totalCount"] == 7
    assert empty["data"]["document"]["chunks"]["edges"] == []


DOCUMENTS = """
query($w: ID!, $first: Int, $after: String, $status: DocumentStatus) {
  workspace(id: $w) {
    documents(first: $first, after: $after, filter: { status: $status }) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { title } }
    }
  }
}
"""


async def test_one_lists_total_rides_on_its_page_and_an_empty_page_after_a_cursor_counts_alone(
    any_db_client: GraphQLClient, any_db_app
):
    """A page of one parent's list carries its total from a COUNT inside its own statement
    (ADR 0136); a page left empty by its cursor has no row to carry it and counts alone."""
    token, workspace_id, _ids = await library(any_db_client, any_db_app, 3)

    async def page(**variables: Any) -> tuple[dict[str, Any], list[str]]:
        with count_statements(any_db_app.state.engine) as statements:
            result = await any_db_client.execute(
                DOCUMENTS, {"w": workspace_id, **variables}, token=token
            )
        assert "errors" not in result, result
        return result["data"]["workspace"]["documents"], [
            s for s in statements if "FROM documents" in s
        ]

    first, reads = await page(first=2)
    assert (first["totalCount"], [e["node"]["title"] for e in first["edges"]]) == (
        3,
        ["doc 002", "doc 001"],
    )
    assert len(reads) == 1 and "count(*)" in reads[0], reads  # the total inside the page's
    last, reads = await page(first=2, after=first["pageInfo"]["endCursor"])
    assert (last["totalCount"], [e["node"]["title"] for e in last["edges"]]) == (3, ["doc 000"])
    assert len(reads) == 1, reads
    after_last, reads = await page(first=2, after=last["pageInfo"]["endCursor"])
    assert (after_last["totalCount"], after_last["edges"]) == (3, [])
    assert len(reads) == 2, reads  # the empty page, then the COUNT alone
    none, reads = await page(first=2, status="FAILED")
    assert (none["totalCount"], none["edges"]) == (0, [])
    assert len(reads) == 1, reads  # a first page without rows: nothing to count
