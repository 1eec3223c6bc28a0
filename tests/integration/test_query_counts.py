"""Screen queries run a fixed number of SQL statements, however many rows they show.

Nested connections are read for all their parents at once, so the count does not grow with the
number of parents either. The screens' counts are checked on PostgreSQL and on SQLite.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from base.models.accounts import Membership, Role
from base.models.chat import AnswerState, Citation, Conversation, Message, MessageRole
from base.models.runs import RunStatus
from base.settings import Settings
from tests.support.databases import count_statements, extracted_text_reads
from tests.support.graphql import (
    GraphQLClient,
    executed_nodes,
    fields_through_graphql_core,
    first_workspace,
    sign_up,
)
from tests.support.seed import (
    add_collection,
    add_documents,
    add_events,
    add_members,
    add_runs,
    add_workspace_events,
    global_id,
    uuid_of,
)
from tests.support.team import invite_and_accept

pytestmark = pytest.mark.slow(seconds=80)


async def test_app_shell_is_three_statements_for_any_number_of_workspaces(
    client: GraphQLClient, app, settings: Settings
):
    owner = await sign_up(client, "Owner", "owner@example.com")
    joined = 1
    for n in (1, 6):
        while joined < n:
            joined += 1
            other = await sign_up(client, f"Other {joined}", f"other{joined}@example.com")
            ws = await first_workspace(client, other["accessToken"])
            await invite_and_accept(
                client,
                settings,
                ws["id"],
                "VIEWER",
                by=other["accessToken"],
                email="owner@example.com",
                invitee=owner["accessToken"],
            )
        with count_statements(app.state.engine) as statements:
            shell = await client.op("AppShell", token=owner["accessToken"])
        assert shell["workspaces"]["totalCount"] == n
        # the user; one page of workspaces with the caller's role and their COUNT; the toast
        # cursor (each of the caller's workspaces with its newest event)
        assert len(statements) == 3, statements


async def _owner_and_workspace(
    client: GraphQLClient, app: Any
) -> tuple[dict[str, Any], dict[str, Any], uuid.UUID, uuid.UUID, Any]:
    """A signed-up owner, their workspace, both ids as uuids, and the app's sessionmaker."""
    owner = await sign_up(client, "Owner", "owner@example.com")
    workspace = await first_workspace(client, owner["accessToken"])
    return (
        owner,
        workspace,
        uuid_of(workspace["id"]),
        uuid_of(owner["user"]["id"]),
        app.state.deps.db,
    )


@pytest.mark.parametrize("rows", [1, 25, 100])
async def test_workspace_members_is_two_statements(
    any_db_client: GraphQLClient, any_db_app, rows: int
):
    owner = await sign_up(any_db_client, "Owner", "owner@example.com")
    workspace = await first_workspace(any_db_client, owner["accessToken"])
    await add_members(any_db_app.state.deps.db, uuid_of(workspace["id"]), rows - 1, prefix="m")
    with count_statements(any_db_app.state.engine) as statements:
        data = await any_db_client.op(
            "WorkspaceMembers",
            {"workspaceId": workspace["id"], "first": rows},
            token=owner["accessToken"],
        )
    members = data["workspace"]["members"]
    assert (members["totalCount"], len(members["edges"])) == (rows, rows)
    # The seeded members joined at T0 + i hours, the owner now: the owner comes last.
    names = [e["node"]["user"]["name"] for e in members["edges"]]
    assert names == [f"M {i}" for i in range(rows - 1)] + ["Owner"]
    # workspace by id (loader); the page of members joined to users, with their COUNT
    assert len(statements) == 2, statements


@pytest.mark.parametrize("rows", [1, 25, 100])
async def test_runs_monitor_is_three_statements_for_any_number_of_rows(
    any_db_client: GraphQLClient, any_db_app, rows: int
):
    owner = await sign_up(any_db_client, "Owner", "owner@example.com")
    workspace = await first_workspace(any_db_client, owner["accessToken"])
    workspace_id = uuid_of(workspace["id"])
    db = any_db_app.state.deps.db
    [editor] = await add_members(db, workspace_id, 1, prefix="editor")
    run_ids = await add_runs(db, workspace_id, [uuid_of(owner["user"]["id"]), editor], rows)
    with (
        count_statements(any_db_app.state.engine) as statements,
        fields_through_graphql_core() as resolved,
    ):
        data = await any_db_client.op(
            "RunsMonitor",
            {"workspaceId": workspace["id"], "first": rows},
            token=owner["accessToken"],
        )
    # Each run with who started it is read directly: only the root resolvers build a ResolveInfo.
    assert resolved == {"Query.workspace": 1, "Workspace.runs": 1}
    runs = data["workspace"]["runs"]
    assert runs["totalCount"] == rows
    assert runs["pageInfo"]["hasNextPage"] is False
    # Newest first; run i was triggered by the owner when i is even, by the editor when odd.
    assert [e["node"]["id"] for e in runs["edges"]] == [
        global_id("Run", run_id) for run_id in reversed(run_ids)
    ]
    assert [e["node"]["triggeredBy"]["name"] for e in runs["edges"]] == [
        "Owner" if i % 2 == 0 else "Editor 0" for i in reversed(range(rows))
    ]
    # workspace by id (loader); the page of runs with their COUNT; the users who triggered
    # them (loader)
    assert len(statements) == 3, statements


async def test_a_page_of_runs_reads_its_steps_in_the_same_call_when_selected(
    any_db_client: GraphQLClient, any_db_app
):
    owner = await sign_up(any_db_client, "Owner", "owner@example.com")
    workspace = await first_workspace(any_db_client, owner["accessToken"])
    run_ids = await add_runs(
        any_db_app.state.deps.db, uuid_of(workspace["id"]), [uuid_of(owner["user"]["id"])], 3
    )
    query = """query($id: ID!) { workspace(id: $id) { runs(first: 2) { edges { node {
        id steps { position name status } } } } } }"""
    with (
        count_statements(any_db_app.state.engine) as statements,
        executed_nodes(any_db_app) as nodes,
    ):
        result = await any_db_client.execute(
            query, {"id": workspace["id"]}, token=owner["accessToken"]
        )
    edges = result["data"]["workspace"]["runs"]["edges"]
    assert [e["node"]["id"] for e in edges] == [global_id("Run", r) for r in run_ids[:0:-1]]
    assert [e["node"]["steps"] for e in edges] == [
        [
            {"position": 0, "name": "CONNECT", "status": "SUCCEEDED"},
            {"position": 1, "name": "CHAT", "status": "SUCCEEDED"},
        ]
    ] * 2
    # the workspace; the page of runs with its total, then their steps, in one service call
    assert nodes == {"WorkspacesWorkspacesByIdsNode": 1, "RunsListRunsNode": 1}
    assert len(statements) == 3, statements
    assert statements[-1].startswith("SELECT run_steps."), statements


@pytest.mark.parametrize("rows", [1, 25, 100])
async def test_run_detail_is_five_statements_for_any_number_of_events(
    any_db_client: GraphQLClient, any_db_app, rows: int
):
    owner, workspace, workspace_id, owner_id, db = await _owner_and_workspace(
        any_db_client, any_db_app
    )
    [failed] = await add_runs(db, workspace_id, [owner_id], 1)
    [retry] = await add_runs(db, workspace_id, [owner_id], 1, retry_of=failed)
    await add_events(db, retry, rows)
    with count_statements(any_db_app.state.engine) as statements:
        data = await any_db_client.op(
            "RunDetail",
            {"runId": global_id("Run", retry), "first": rows},
            token=owner["accessToken"],
        )
    run = data["run"]
    assert run["retryOf"] == {"id": global_id("Run", failed)}
    assert run["triggeredBy"]["name"] == "Owner"
    assert [s["name"] for s in run["steps"]] == ["CONNECT", "CHAT"]
    assert run["events"]["totalCount"] == rows
    assert [e["node"]["cursor"] for e in run["events"]["edges"]] == [
        str(seq) for seq in range(1, rows + 1)
    ]
    # run by id (loader); then together: the run it retries (loader), the user who triggered it
    # (loader), its steps (loader), the first page of its events with their total
    assert len(statements) == 5, statements
    assert extracted_text_reads(statements) == []


NESTED = """
query Nested($first: Int!) {
  workspaces(first: $first) {
    totalCount
    edges {
      node {
        name
        members(first: 2) { totalCount edges { node { user { name } } } }
        runs(first: 3) {
          totalCount
          pageInfo { hasNextPage }
          edges {
            node {
              subject { label }
              triggeredBy { name }
              events(first: 2) { totalCount edges { node { cursor } } }
            }
          }
        }
      }
    }
  }
}
"""


@pytest.mark.parametrize("workspaces", [1, 4])
async def test_nested_connections_are_read_for_all_parents_at_once(
    any_db_client: GraphQLClient, any_db_app, workspaces: int
):
    db = any_db_app.state.deps.db
    viewer = await sign_up(any_db_client, "Viewer", "viewer@example.com")
    viewer_id = uuid_of(viewer["user"]["id"])
    expected = []
    for n in range(workspaces):
        owner = await sign_up(any_db_client, f"Owner {n}", f"owner{n}@example.com")
        workspace_id = uuid_of((await first_workspace(any_db_client, owner["accessToken"]))["id"])
        await add_members(db, workspace_id, 1, prefix=f"w{n}viewer")
        # The viewer joins too (now: after the seeded member and the owner).
        async with db.begin() as session:
            session.add(Membership(workspace_id=workspace_id, user_id=viewer_id, role=Role.VIEWER))
        run_ids = await add_runs(db, workspace_id, [uuid_of(owner["user"]["id"])], 2 + n)
        for i, run_id in enumerate(run_ids):
            await add_events(db, run_id, i + 1)
        expected.append(n)
    with count_statements(any_db_app.state.engine) as statements:
        result = await any_db_client.execute(
            NESTED, {"first": workspaces + 1}, token=viewer["accessToken"]
        )
    assert "errors" not in result, result
    data = result["data"]["workspaces"]
    # The viewer's own workspace first (joined first), then the others in the order joined.
    assert data["totalCount"] == workspaces + 1
    own, *others = [e["node"] for e in data["edges"]]
    assert own["runs"] == {"totalCount": 0, "pageInfo": {"hasNextPage": False}, "edges": []}
    assert own["members"]["totalCount"] == 1
    for node, n in zip(others, expected, strict=True):
        assert node["name"] == f"Owner {n}'s workspace"
        assert node["members"]["totalCount"] == 3
        assert [e["node"]["user"]["name"] for e in node["members"]["edges"]] == [
            f"W{n}Viewer 0",
            f"Owner {n}",
        ]
        runs = node["runs"]
        assert runs["totalCount"] == 2 + n
        assert runs["pageInfo"]["hasNextPage"] is (2 + n > 3)
        newest = list(reversed(range(2 + n)))[:3]
        assert [e["node"]["subject"]["label"] for e in runs["edges"]] == [
            f"run {i}" for i in newest
        ]
        assert [e["node"]["triggeredBy"]["name"] for e in runs["edges"]] == [f"Owner {n}"] * len(
            newest
        )
        assert [e["node"]["events"]["totalCount"] for e in runs["edges"]] == [i + 1 for i in newest]
        assert [
            [x["node"]["cursor"] for x in e["node"]["events"]["edges"]] for e in runs["edges"]
        ] == [[str(seq) for seq in range(1, min(i + 1, 2) + 1)] for i in newest]
    # the user; the page of workspaces with their COUNT; COUNT and page of members (all
    # workspaces); COUNT and page of runs (all workspaces); the users who triggered them; the
    # first page of events of all runs, with each run's total
    assert len(statements) == 7, statements


@pytest.mark.parametrize("rows", [25, 100])
async def test_documents_list_is_four_statements_for_any_number_of_rows(
    any_db_client: GraphQLClient, any_db_app, rows: int
):
    owner, workspace, workspace_id, owner_id, db = await _owner_and_workspace(
        any_db_client, any_db_app
    )
    [editor] = await add_members(db, workspace_id, 1, prefix="editor")
    collections = [await add_collection(db, workspace_id, f"C{n}", owner_id) for n in range(3)]
    await add_documents(db, workspace_id, collections, [owner_id, editor], rows, tags=("a", "b"))
    with (
        count_statements(any_db_app.state.engine) as statements,
        fields_through_graphql_core() as resolved,
    ):
        data = await any_db_client.op(
            "DocumentsList",
            {"workspaceId": workspace["id"], "first": rows},
            token=owner["accessToken"],
        )
    # Each row, with its collection, owner and tags, is read directly (ADR 0146): only the two
    # root resolvers build a ResolveInfo, whatever the number of rows.
    assert resolved == {"Query.workspace": 1, "Workspace.documents": 1}
    documents = data["workspace"]["documents"]
    assert (documents["totalCount"], len(documents["edges"])) == (rows, rows)
    nodes = [e["node"] for e in documents["edges"]]
    assert [n["title"] for n in nodes] == [f"doc {i:03d}" for i in reversed(range(rows))]
    assert [n["collection"]["name"] for n in nodes] == [f"C{i % 3}" for i in reversed(range(rows))]
    assert [n["owner"]["name"] for n in nodes] == [
        "Owner" if i % 2 == 0 else "Editor 0" for i in reversed(range(rows))
    ]
    assert {tuple(n["tags"]) for n in nodes} == {("a", "b")}
    # workspace by id (loader); the page of documents with their collections and their COUNT;
    # then together: their owners (loader), their tags (loader)
    assert len(statements) == 4, statements
    # The list names each document's collection, read in the page's own statement: its
    # documents are not counted, and no statement reads collections alone.
    [page_read] = [s for s in statements if "collections.name" in s]
    page_sql = " ".join(page_read.split())
    assert page_sql.startswith("SELECT documents.id"), page_sql
    # The documents' total rides on the page (ADR 0136), counted without the join, which is
    # the page's alone; the collections' own documents are not counted.
    assert "(SELECT count(*) AS count_1 FROM documents WHERE" in page_sql, page_sql
    assert page_sql.count("count(") == 1 and "max(" not in page_sql.lower(), page_sql
    assert page_sql.count("JOIN collections") == 1, page_sql
    assert not [s for s in statements if s.startswith("SELECT collections.id")], statements


RECENT_OF_EACH_WORKSPACE = """
query Recent($first: Int!) {
  workspaces(first: $first) {
    edges { node { name recentDocuments { title collection { id name } } } }
  }
}
"""


@pytest.mark.parametrize("workspaces", [1, 3])
async def test_documents_of_several_workspaces_come_with_their_collections_at_once(
    any_db_client: GraphQLClient, any_db_app, workspaces: int
):
    """The documents' pages of all the workspaces are one statement, their collections in it."""
    db = any_db_app.state.deps.db
    viewer = await sign_up(any_db_client, "Viewer", "viewer@example.com")
    expected: list[list[tuple[str, uuid.UUID, str]]] = [[]]  # the viewer's own: no documents
    for n in range(workspaces):
        owner = await sign_up(any_db_client, f"Owner {n}", f"owner{n}@example.com")
        owner_id = uuid_of(owner["user"]["id"])
        workspace_id = uuid_of((await first_workspace(any_db_client, owner["accessToken"]))["id"])
        async with db.begin() as session:
            session.add(
                Membership(
                    workspace_id=workspace_id,
                    user_id=uuid_of(viewer["user"]["id"]),
                    role=Role.VIEWER,
                )
            )
        collections = [
            await add_collection(db, workspace_id, f"W{n} C{c}", owner_id) for c in range(2)
        ]
        await add_documents(db, workspace_id, collections, [owner_id], 6 + n)
        newest = list(reversed(range(6 + n)))[:5]
        expected.append([(f"doc {i:03d}", collections[i % 2], f"W{n} C{i % 2}") for i in newest])
    with count_statements(any_db_app.state.engine) as statements:
        result = await any_db_client.execute(
            RECENT_OF_EACH_WORKSPACE, {"first": workspaces + 1}, token=viewer["accessToken"]
        )
    assert "errors" not in result, result
    nodes = [e["node"] for e in result["data"]["workspaces"]["edges"]]
    assert [
        [
            (d["title"], d["collection"]["id"], d["collection"]["name"])
            for d in node["recentDocuments"]
        ]
        for node in nodes
    ] == [[(t, global_id("Collection", c), name) for t, c, name in docs] for docs in expected]
    # the page of workspaces with their COUNT; the recent documents of every workspace with
    # their collections, numbered per workspace (no COUNT: the list shows no total)
    assert len(statements) == 2, statements
    assert not [s for s in statements if s.startswith("SELECT collections.id")], statements


async def test_a_collections_totals_are_read_when_asked_for_and_match_its_documents(
    any_db_client: GraphQLClient, any_db_app
):
    owner, workspace, workspace_id, owner_id, db = await _owner_and_workspace(
        any_db_client, any_db_app
    )
    collections = [await add_collection(db, workspace_id, f"C{n}", owner_id) for n in range(2)]
    await add_documents(db, workspace_id, collections, [owner_id], 5)
    ids = {
        "a": global_id("Collection", collections[0]),
        "b": global_id("Collection", collections[1]),
    }
    fields = {"plain": "id name", "totals": "id name documentCount updatedAt"}
    read: dict[str, Any] = {}
    counted: dict[str, list[str]] = {}
    for kind, selection in fields.items():
        query = (
            "query($a: ID!, $b: ID!) { a: node(id: $a) { ... on Collection { "
            f"{selection} }} }} b: node(id: $b) {{ ... on Collection {{ {selection} }} }} }}"
        )
        with count_statements(any_db_app.state.engine) as statements:
            read[kind] = await any_db_client.execute(query, ids, token=owner["accessToken"])
        counted[kind] = statements
    # the totals are one more statement, for both collections at once
    assert len(counted["totals"]) == len(counted["plain"]) + 1, counted
    listed = await any_db_client.op(
        "Collections", {"workspaceId": workspace["id"]}, token=owner["accessToken"]
    )
    by_id = {e["node"]["id"]: e["node"] for e in listed["workspace"]["collections"]["edges"]}
    totals = read["totals"]["data"]
    # C0 holds documents 0, 2 and 4, C1 documents 1 and 3 (add_documents takes them in turn)
    assert [totals["a"]["documentCount"], totals["b"]["documentCount"]] == [3, 2]
    for alias in ("a", "b"):
        listed_one = by_id[ids[alias]]
        assert (totals[alias]["documentCount"], totals[alias]["updatedAt"]) == (
            listed_one["documentCount"],
            listed_one["updatedAt"],
        )


@pytest.mark.parametrize("rows", [25, 100])
async def test_dashboard_is_five_statements_and_does_not_count_its_recent_documents(
    any_db_client: GraphQLClient, any_db_app, rows: int
):
    owner, workspace, workspace_id, owner_id, db = await _owner_and_workspace(
        any_db_client, any_db_app
    )
    collections = [await add_collection(db, workspace_id, f"C{n}", owner_id) for n in range(3)]
    await add_documents(db, workspace_id, collections, [owner_id], rows)
    active = await add_runs(db, workspace_id, [owner_id], 3, status=RunStatus.RUNNING)
    finished = await add_runs(db, workspace_id, [owner_id], rows // 5)
    cursors = await add_workspace_events(db, workspace_id, finished, owner_id)
    # Three questions within the last 7 days; one 8 days ago is not counted, nor any answer.
    await _conversation_with_answers(db, workspace_id, owner_id, days_ago=[0.01, 2, 6.9, 8])
    # Another workspace's question is not this one's.
    other = await sign_up(any_db_client, "Other", "other@example.com")
    other_workspace = await first_workspace(any_db_client, other["accessToken"])
    other_ids = uuid_of(other_workspace["id"]), uuid_of(other["user"]["id"])
    await _conversation_with_answers(db, *other_ids, days_ago=[1])
    with (
        count_statements(any_db_app.state.engine) as statements,
        fields_through_graphql_core() as resolved,
    ):
        data = await any_db_client.op(
            "Dashboard", {"workspaceId": workspace["id"]}, token=owner["accessToken"]
        )
    # Only the root resolvers build a ResolveInfo: recent documents with their collections,
    # runs and events are read directly (ADR 0146).
    assert resolved == {
        f"{type_}.{field}": 1
        for type_, field in [
            ("Query", "workspace"),
            *(
                ("Workspace", f)
                for f in (
                    *("documentCounts", "collectionCount", "questionsAskedLast7Days"),
                    *("recentDocuments", "runs", "activity"),
                )
            ),
        ]
    }
    ws = data["workspace"]
    assert ws["documentCounts"]["total"] == rows
    assert ws["collectionCount"] == 3
    assert ws["questionsAskedLast7Days"] == 3
    assert [d["title"] for d in ws["recentDocuments"]] == [
        f"doc {i:03d}" for i in reversed(range(rows - 5, rows))
    ]
    assert [d["collection"] for d in ws["recentDocuments"]] == [
        {"id": global_id("Collection", collections[i % 3]), "name": f"C{i % 3}"}
        for i in reversed(range(rows - 5, rows))
    ]
    assert ws["activeRuns"]["totalCount"] == 3
    assert {e["node"]["id"] for e in ws["activeRuns"]["edges"]} == {
        global_id("Run", r) for r in active
    }
    # The activity feed: the last 20 stored events, newest first.
    feed = ws["activity"]
    assert [e["cursor"] for e in feed] == [str(c) for c in reversed(cursors)][:20]
    newest = len(finished) - 1
    assert feed[0] == {
        "cursor": str(cursors[-1]),
        "type": "RUN_FINISHED",
        "message": f"run {newest} succeeded",
        "at": f"2026-11-24T09:00:{2 * newest + 1:02d}+00:00",
        "runStatus": "SUCCEEDED",
        "runId": global_id("Run", finished[-1]),
        "actorName": "Owner",
        "subject": {
            "type": "WORKSPACE",
            "id": workspace["id"],
            "label": f"run {newest}",
        },
    }
    # workspace by id (loader); documents by status, collections and questions asked, one
    # statement (loader); the page of recent documents with their collections, without a
    # COUNT (their list shows no total); the page of active runs with their COUNT; the page of
    # the activity feed, without a COUNT (each event names its actor as then: no users loader)
    assert len(statements) == 5, statements
    assert not [s for s in statements if s.startswith("SELECT collections.id")], statements
    assert not [s for s in statements if s.startswith("SELECT documents.workspace_id, count(*)")]
    assert extracted_text_reads(statements) == []


@pytest.mark.parametrize(("chunks", "runs"), [(25, 1), (100, 6)])
async def test_document_detail_is_six_statements_for_any_number_of_chunks_and_runs(
    any_db_client: GraphQLClient, any_db_app, chunks: int, runs: int
):
    owner, workspace, workspace_id, owner_id, db = await _owner_and_workspace(
        any_db_client, any_db_app
    )
    collection = await add_collection(db, workspace_id, "C", owner_id)
    [document] = await add_documents(
        db, workspace_id, [collection], [owner_id], 1, tags=("zeta", "alpha", "mu"), chunks=chunks
    )
    run_ids = await add_runs(db, workspace_id, [owner_id], runs, document_id=document)
    await add_runs(db, workspace_id, [owner_id], 2)  # runs about the workspace: not its history
    await any_db_client.op(
        "UpdateDocument",
        {"input": {"id": global_id("Document", document), "title": "Edited"}},
        token=owner["accessToken"],
    )
    with (
        count_statements(any_db_app.state.engine) as statements,
        fields_through_graphql_core() as resolved,
        executed_nodes(any_db_app) as nodes,
    ):
        data = await any_db_client.op(
            "DocumentDetail",
            {"id": global_id("Document", document), "chunksFirst": chunks, "runsFirst": 25},
            token=owner["accessToken"],
        )
    detail = data["document"]
    # The document's fields with resolvers each build a ResolveInfo, once; its runs, with their
    # steps, who started them and what they retry, are read directly (loaded for the page with
    # it, ADR 0146), whatever the number of runs.
    assert resolved == {
        f"Document.{name}": 1
        for name in (
            "collection",
            "owner",
            "downloadUrl",
            "tags",
            "entities",
            "edits",
            "fieldSources",
            "chunks",
            "runs",
            "relatedDocuments",
        )
    } | {"Query.document": 1, "FieldEdit.editedBy": 1}
    assert detail["title"] == "Edited"
    assert [e["field"] for e in detail["edits"]] == ["TITLE"]
    # Entities in their order, edit marks and recorded sources: one statement (ADR 0137).
    assert detail["entities"] == [
        {"name": "Ada", "kind": "PERSON"},
        {"name": "Acme", "kind": "OTHER"},
    ]
    assert detail["fieldSources"] == [{"field": "TITLE", "source": "PERSON"}]
    # Its tags in their order, read with the annotations (ADR 0137's amendment).
    assert detail["tags"] == ["zeta", "alpha", "mu"]
    assert [e["node"]["position"] for e in detail["chunks"]["edges"]] == list(range(chunks))
    history = detail["runs"]
    assert history["totalCount"] == runs
    assert [e["node"]["id"] for e in history["edges"]] == [
        global_id("Run", run_id) for run_id in reversed(run_ids)
    ]
    assert {tuple(s["name"] for s in e["node"]["steps"]) for e in history["edges"]} == {
        ("CONNECT", "CHAT")
    }
    assert {e["node"]["triggeredBy"]["name"] for e in history["edges"]} == {"Owner"}
    # document by id with its collection and its owner (loader); then together: its entities
    # with its edit marks, recorded sources and tags (one statement), the first page of its
    # chunks and of its runs, each with its total (one statement each), the runs' steps read by
    # the same call as their page (no loader run of their own), and its related documents:
    # which of the ids the caller may see with their workspace's vector state, in one statement
    # (no vectors here, so nothing more). The editor and the runs' trigger are the owner here,
    # whom the document's read primed the users loader with: `editedBy` and `triggeredBy` come
    # from its cache (ADR 0148).
    assert len(statements) == 6, statements
    # One service call (a Kailash node) per read; the owner, the tags and the steps need none of
    # their own.
    assert nodes == {
        "DocumentsDocumentsByIdsNode": 1,
        "DocumentsAnnotationsByDocumentIdsNode": 1,
        "DocumentsListChunksNode": 1,
        "RunsListSubjectRunsNode": 1,
        "SearchRelatedDocumentsNode": 1,
    }
    assert detail["owner"] == {"id": global_id("User", owner_id), "name": "Owner", "initials": "O"}
    assert detail["collection"] == {"id": global_id("Collection", collection), "name": "C"}
    assert not [s for s in statements if s.startswith("SELECT collections.id")], statements
    assert extracted_text_reads(statements) == []
    assert detail["relatedDocuments"] == []


@pytest.mark.parametrize(
    ("selection", "statements_made", "tags_node"),
    [
        ("tags", 2, True),  # the document; its tags (their loader)
        ("tags entities { name }", 2, False),  # the document; annotations with the tags
        ("entities { name } tags", 2, False),  # whatever the order of the fields
        ("edits { field }", 2, False),  # the document; its annotations, no tags asked
    ],
)
async def test_a_documents_tags_come_with_its_annotations_when_both_are_selected(
    any_db_client: GraphQLClient, any_db_app, selection: str, statements_made: int, tags_node: bool
):
    owner, _workspace, workspace_id, owner_id, db = await _owner_and_workspace(
        any_db_client, any_db_app
    )
    collection = await add_collection(db, workspace_id, "C", owner_id)
    [document] = await add_documents(
        db, workspace_id, [collection], [owner_id], 1, tags=("zeta", "alpha")
    )
    query = f"query($id: ID!) {{ document(id: $id) {{ {selection} }} }}"
    with (
        count_statements(any_db_app.state.engine) as statements,
        executed_nodes(any_db_app) as nodes,
    ):
        result = await any_db_client.execute(
            query, {"id": global_id("Document", document)}, token=owner["accessToken"]
        )
    assert "errors" not in result, result
    detail = result["data"]["document"]
    if "tags" in selection:
        assert detail["tags"] == ["zeta", "alpha"]
    if "entities" in selection:
        assert detail["entities"] == [{"name": "Ada"}, {"name": "Acme"}]
    assert len(statements) == statements_made, statements
    assert ("DocumentsTagsByDocumentIdsNode" in nodes) is tags_node
    assert ("DocumentsAnnotationsByDocumentIdsNode" in nodes) is (not tags_node)


async def test_a_documents_owner_is_read_with_it_and_is_null_once_they_share_no_workspace(
    any_db_client: GraphQLClient, any_db_app
):
    owner, workspace, workspace_id, owner_id, db = await _owner_and_workspace(
        any_db_client, any_db_app
    )
    [editor] = await add_members(db, workspace_id, 1, prefix="editor")
    collection = await add_collection(db, workspace_id, "C", owner_id)
    [document] = await add_documents(db, workspace_id, [collection], [editor], 1)
    query = """query($id: ID!, $ws: ID!) {
        document(id: $id) { owner { id name } }
        workspace(id: $ws) { documents(first: 5) { edges { node { owner { id name } } } } }
    }"""
    variables = {"id": global_id("Document", document), "ws": workspace["id"]}

    async def owners() -> tuple[Any, list[Any]]:
        result = await any_db_client.execute(query, variables, token=owner["accessToken"])
        assert "errors" not in result, result
        edges = result["data"]["workspace"]["documents"]["edges"]
        return result["data"]["document"]["owner"], [e["node"]["owner"] for e in edges]

    with count_statements(any_db_app.state.engine) as statements:
        by_id, listed = await owners()
    editor_0 = {"id": global_id("User", editor), "name": "Editor 0"}
    assert (by_id, listed) == (editor_0, [editor_0])
    # No read of users of its own: the page's owner is the document's, whom the document's read
    # primed the users loader with.
    assert not [s for s in statements if s.startswith("SELECT users.")], statements
    async with db.begin() as session:
        await session.execute(Membership.__table__.delete().where(Membership.user_id == editor))
    # Gone from the only workspace they shared with the caller: null on both paths alike.
    assert await owners() == (None, [None])


async def _conversation_with_answers(
    db: Any,
    workspace_id: uuid.UUID,
    owner_id: uuid.UUID,
    *,
    days_ago: list[float],
    cited: uuid.UUID | None = None,
) -> uuid.UUID:
    """A conversation of the owner's with a question asked `days_ago` days ago for each value,
    each answered, the answer with two citations of `cited` when given (rows written straight
    to the database)."""
    conversation_id = uuid.uuid4()
    answers = len(days_ago)
    now = datetime.now(UTC)
    async with db.begin() as session:
        session.add(
            Conversation(
                id=conversation_id,
                workspace_id=workspace_id,
                owner_id=owner_id,
                title="Questions",
                message_count=2 * answers,
                last_seq=2 * answers,
            )
        )
        await session.flush()
        for n, days in enumerate(days_ago):
            asked_at = now - timedelta(days=days)
            question = Message(
                id=uuid.uuid4(),
                conversation_id=conversation_id,
                workspace_id=workspace_id,
                seq=2 * n + 1,
                role=MessageRole.USER,
                text=f"question {n}",
                scope={},
                passages=[],
                created_at=asked_at,
            )
            session.add(question)
            await session.flush()
            answer = Message(
                id=uuid.uuid4(),
                conversation_id=conversation_id,
                workspace_id=workspace_id,
                seq=2 * n + 2,
                role=MessageRole.ASSISTANT,
                text=f"answer {n}",
                scope={},
                question_id=question.id,
                state=AnswerState.ANSWERED,
                passages=[],
                created_at=asked_at,
            )
            session.add(answer)
            await session.flush()
            if cited is None:
                continue
            session.add_all(
                Citation(
                    message_id=answer.id,
                    position=k,
                    number=k + 1,
                    origin="QUOTED",
                    document_id=cited,
                    chunk_id=None,
                    document_title="doc",
                    passage_text="text",
                    heading_path=[],
                    passage_start=0,
                    passage_end=4,
                    quote_start=0,
                    quote_end=4,
                    quote="text",
                    match_score=1.0,
                )
                for k in range(2)
            )
    return conversation_id


@pytest.mark.parametrize("answers", [1, 12])
async def test_conversation_is_four_statements_for_any_number_of_messages(
    any_db_client: GraphQLClient, any_db_app, answers: int
):
    owner, workspace, workspace_id, owner_id, db = await _owner_and_workspace(
        any_db_client, any_db_app
    )
    collection = await add_collection(db, workspace_id, "C", owner_id)
    [document] = await add_documents(db, workspace_id, [collection], [owner_id], 1)
    conversation = await _conversation_with_answers(
        db, workspace_id, owner_id, days_ago=[0.0] * answers, cited=document
    )
    with count_statements(any_db_app.state.engine) as statements:
        data = await any_db_client.op(
            "Conversation",
            {"id": global_id("Conversation", conversation)},
            token=owner["accessToken"],
        )
    messages = [e["node"] for e in data["conversation"]["messages"]["edges"]]
    assert len(messages) == 2 * answers
    assert {len(m["citations"]) for m in messages if m["role"] == "ASSISTANT"} == {2}
    # the conversation (loader); the first page of its messages with their total; then
    # together, for every answer at once: its citations and the caller's feedback (no answer
    # here replaces another)
    assert len(statements) == 4, statements
    with count_statements(any_db_app.state.engine) as statements:
        listed = await any_db_client.op(
            "Conversations", {"workspaceId": workspace["id"]}, token=owner["accessToken"]
        )
    assert listed["workspace"]["conversations"]["totalCount"] == 1
    # the workspace (loader); the page of the caller's conversations with their COUNT
    assert len(statements) == 2, statements
