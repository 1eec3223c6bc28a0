"""User flow: a reader asks a question (docs/user_flows/reader_asks_a_question/README.md).

Each `# Step N` below is the step of the same number in that README. The app runs as a real
uvicorn server on the test's PostgreSQL and Redis, answering on the local model behind a slow
link; the in-process app only sets up the team and the documents, on the same database.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from websockets.asyncio.client import connect

from base.models.chat import Message
from base.models.documents import Document
from base.settings import Settings
from services.answers import NOT_IN_DOCUMENTS_TEXT
from tests.support.ask import HTML, searchable, streamed_text
from tests.support.graphql import GraphQLClient, operation, uuid_of
from tests.support.live_server import live_server
from tests.support.node_client import node_subscribe
from tests.support.seed import add_collection, global_id
from tests.support.team import set_up_team

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow(seconds=80)]

ANSWER_TOKENS = 40
QUESTION = "How do I create a virtual environment?"
FOLLOW_UP = "Where does pip install packages inside it?"
# A bound on waiting for a stream: only a hang reaches it (no test asserts how long it took).
STREAM_ENDS_WITHIN = 600.0


@pytest.fixture
async def server(app: FastAPI, settings: Settings, slow_ollama_host: str) -> AsyncIterator[str]:
    """The app as a real server on the same database and Redis (after `app` emptied them)."""
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "JWT_SECRET": settings.jwt_secret,
        "OLLAMA_HOST": slow_ollama_host,
        "RUN_EXECUTION": "inline",
        "ASK_ANSWER_TOKENS": str(ANSWER_TOKENS),
        "LOG_LEVEL": "WARNING",
    }
    with live_server(env) as base_url:
        yield base_url


@pytest.fixture
async def api(server: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server, timeout=120) as http:
        yield GraphQLClient(http)


def ws_url(server: str) -> str:
    return server.replace("http://", "ws://", 1) + "/graphql"


async def answer_stream_ws(
    server: str, token: str, message_id: str, *, after: str | None = None
) -> list[dict[str, Any]]:
    """AnswerStream over a raw graphql-transport-ws socket, until the server completes it."""
    async with connect(ws_url(server), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "answer",
                    "type": "subscribe",
                    "payload": {
                        "query": operation("AnswerStream"),
                        "operationName": "AnswerStream",
                        "variables": {"messageId": message_id, "after": after},
                    },
                }
            )
        )
        events = []
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), STREAM_ENDS_WITHIN))
            if message["type"] == "complete":
                return events
            assert message["type"] == "next" and "errors" not in message["payload"], message
            events.append(message["payload"]["data"]["answerStream"])


async def answer_stream_refused(
    server: str, token: str, message_id: str
) -> list[tuple[str, str, str]]:
    """The errors an AnswerStream subscription gets instead of events: (message, code, field)."""
    async with connect(ws_url(server), subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(
            json.dumps(
                {
                    "id": "refused",
                    "type": "subscribe",
                    "payload": {
                        "query": operation("AnswerStream"),
                        "operationName": "AnswerStream",
                        "variables": {"messageId": message_id},
                    },
                }
            )
        )
        errors: list[dict[str, Any]] = []
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), STREAM_ENDS_WITHIN))
            if message["type"] == "error":
                errors += message["payload"]
                break
            if message["type"] == "complete":
                break
            assert "data" not in message["payload"] or message["payload"]["data"] is None, message
            errors += message["payload"].get("errors", [])
    return [(e["message"], e["extensions"]["code"], e["extensions"].get("field")) for e in errors]


async def answer_stream_node(
    server: str, token: str, message_id: str, *, after: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """AnswerStream through the graphql-ws npm client (web/e2e/subscribe.mjs)."""
    variables = {"messageId": message_id, "after": after}
    events, code, err = await node_subscribe(
        ws_url(server), token, "AnswerStream", variables, limit=limit, within=STREAM_ENDS_WITHIN
    )
    assert (code, err) == (0, "")
    return events


async def ask(api: GraphQLClient, token: str, conversation: str, question: str, scope: Any = None):
    variables: dict[str, Any] = {"conversationId": conversation, "question": question}
    if scope is not None:
        variables["scope"] = scope
    return (await api.op("AskQuestion", {"input": variables}, token=token))["askQuestion"]


async def quotes_are_where_they_say(db: Any, message: dict[str, Any]) -> None:
    ids = {uuid_of(c["target"]["documentId"]) for c in message["citations"]}
    async with db() as session:
        rows = await session.execute(select(Document.id, Document.text).where(Document.id.in_(ids)))
        texts = {row.id: row.text for row in rows}
    for citation in message["citations"]:
        assert (
            citation["passage"][citation["quoteStart"] : citation["quoteEnd"]] == citation["quote"]
        )
        target = citation["target"]
        assert (
            texts[uuid_of(target["documentId"])][target["charStart"] : target["charEnd"]]
            == (citation["quote"])
        )


async def test_a_reader_asks_watches_leaves_comes_back_stops_and_rates(
    client: GraphQLClient, app: FastAPI, settings: Settings, server: str, api: GraphQLClient
) -> None:
    deps = app.state.deps

    # Step 1 — the team: SignUp ×3, InviteMember, AcceptInvite, WorkspaceMembers.
    team = await set_up_team(client, settings, "viewer", "outsider")
    olivia, victor, mallory = team.owner, team.viewer, team.outsider

    # Step 2 — Olivia's documents, made searchable by the ingestion stages.
    workspace_id, owner_id = uuid_of(team.workspace_id), uuid_of(olivia.user_id)
    guides = await add_collection(deps.db, workspace_id, "Python guides", owner_id)
    security = await add_collection(deps.db, workspace_id, "Security", owner_id)
    venv_docs = {
        await searchable(deps, workspace_id, guides, owner_id, HTML / page)
        for page in ("library/venv.html", "tutorial/venv.html")
    }
    security_docs = {
        await searchable(deps, workspace_id, security, owner_id, HTML / "library" / page)
        for page in ("getpass.html", "secrets.html")
    }
    listed = await api.op("DocumentsList", {"workspaceId": team.workspace_id}, token=olivia.token)
    assert [e["node"]["status"] for e in listed["workspace"]["documents"]["edges"]] == ["READY"] * 4

    # Step 3 — Victor opens Ask: Conversations, CreateConversation.
    empty = await api.op("Conversations", {"workspaceId": team.workspace_id}, token=victor.token)
    assert empty["workspace"]["conversations"]["totalCount"] == 0
    created = await api.op(
        "CreateConversation", {"input": {"workspaceId": team.workspace_id}}, token=victor.token
    )
    conversation = created["createConversation"]["conversation"]
    assert (conversation["title"], conversation["messageCount"]) == ("New conversation", 0)
    conversation_id = conversation["id"]

    # Step 4 — he asks (the whole workspace): AskQuestion.
    asked = await ask(api, victor.token, conversation_id, QUESTION)
    assert asked["errors"] == []
    assert (asked["question"]["text"], asked["question"]["scope"]) == (
        QUESTION,
        {"kind": "WORKSPACE"},
    )
    assert (asked["answer"]["role"], asked["answer"]["state"], asked["answer"]["text"]) == (
        "ASSISTANT",
        "PENDING",
        "",
    )
    assert asked["run"]["workflow"] == "answer_question"
    first_answer = asked["answer"]["id"]

    # Step 5 — he watches it arrive: a raw WebSocket and the graphql-ws npm client at once.
    raw, npm = await asyncio.gather(
        answer_stream_ws(server, victor.token, first_answer),
        answer_stream_node(server, victor.token, first_answer),
    )
    for events in (raw, npm):
        assert [e["type"] for e in events] == ["TEXT"] * (len(events) - 1) + ["FINISHED"]
        assert len(events) >= 3  # the text came in pieces
        final = events[-1]["message"]
        assert final["state"] == "ANSWERED"
        assert streamed_text(events) == final["text"] != ""
    assert raw[-1]["message"] == npm[-1]["message"]
    final = raw[-1]["message"]
    cited = {uuid_of(c["target"]["documentId"]) for c in final["citations"]}
    assert cited & venv_docs, final
    assert cited <= venv_docs | security_docs
    await quotes_are_where_they_say(deps.db, final)

    # Step 6 — the same question, scoped to the Security collection.
    scoped = await ask(
        api,
        victor.token,
        conversation_id,
        QUESTION,
        {"collectionId": global_id("Collection", security)},
    )
    events = await answer_stream_ws(server, victor.token, scoped["answer"]["id"])
    assert [(e["type"], e["text"]) for e in events] == [
        ("TEXT", NOT_IN_DOCUMENTS_TEXT),
        ("FINISHED", ""),
    ]
    assert (events[-1]["message"]["state"], events[-1]["message"]["citations"]) == (
        "NOT_IN_DOCUMENTS",
        [],
    )
    shown_passages = events[-1]["message"]["passages"]
    assert (
        shown_passages
        and {uuid_of(p["target"]["documentId"]) for p in shown_passages} <= security_docs
    )
    async with deps.db() as session:
        row = await session.get(Message, uuid_of(scoped["answer"]["id"]))
        assert row is not None
        assert {uuid.UUID(p["document_id"]) for p in row.passages} <= security_docs

    # Step 7 — a follow-up; he leaves after two events and comes back with the last cursor.
    follow = await ask(api, victor.token, conversation_id, FOLLOW_UP)
    before = await answer_stream_node(server, victor.token, follow["answer"]["id"], limit=2)
    cursor = before[-1]["cursor"]
    after = await answer_stream_node(server, victor.token, follow["answer"]["id"], after=cursor)
    assert int(after[0]["cursor"]) - len(after[0]["text"]) == int(cursor)
    follow_final = after[-1]["message"]
    assert follow_final["state"] == "ANSWERED"
    assert streamed_text(before + after) == follow_final["text"]

    # Step 8 — he regenerates it and presses Stop mid-way.
    regenerated = await api.op(
        "RegenerateAnswer", {"input": {"messageId": follow["answer"]["id"]}}, token=victor.token
    )
    newer = regenerated["regenerateAnswer"]["answer"]
    assert (newer["state"], newer["replaces"]) == ("PENDING", {"id": follow["answer"]["id"]})
    reading = asyncio.create_task(answer_stream_ws(server, victor.token, newer["id"]))
    first_tokens = await answer_stream_node(server, victor.token, newer["id"], limit=2)
    assert [e["type"] for e in first_tokens] == ["TEXT", "TEXT"]
    stopped = await api.op("StopAnswer", {"input": {"messageId": newer["id"]}}, token=victor.token)
    assert stopped["stopAnswer"]["errors"] == []
    assert stopped["stopAnswer"]["answer"]["state"] == "STREAMING"
    watched = await reading
    stopped_final = watched[-1]["message"]
    assert stopped_final["state"] == "STOPPED"
    assert streamed_text(watched) == stopped_final["text"] != ""

    # Step 9 — thumbs up on the first answer.
    rated = await api.op(
        "RateAnswer",
        {"input": {"messageId": first_answer, "rating": "UP", "reason": "Clear command"}},
        token=victor.token,
    )
    assert rated["rateAnswer"]["feedback"]["rating"] == "UP"
    assert rated["rateAnswer"]["feedback"]["reason"] == "Clear command"

    # Step 10 — the conversation and the dashboard.
    shown = await api.op("Conversation", {"id": conversation_id}, token=victor.token)
    messages = [e["node"] for e in shown["conversation"]["messages"]["edges"]]
    assert [(m["role"], m["state"]) for m in messages] == [
        ("USER", None),
        ("ASSISTANT", "ANSWERED"),
        ("USER", None),
        ("ASSISTANT", "NOT_IN_DOCUMENTS"),
        ("USER", None),
        ("ASSISTANT", "ANSWERED"),
        ("ASSISTANT", "STOPPED"),
    ]
    assert [m["text"] for m in messages] == [
        QUESTION,
        final["text"],
        QUESTION,
        NOT_IN_DOCUMENTS_TEXT,
        FOLLOW_UP,
        follow_final["text"],
        stopped_final["text"],
    ]
    assert messages[1]["myFeedback"] == {"rating": "UP", "reason": "Clear command"}
    assert [c["quote"] for c in messages[1]["citations"]] == [
        c["quote"] for c in final["citations"]
    ]
    assert messages[2]["scope"] == {
        "kind": "COLLECTION",
        "collection": {"id": global_id("Collection", security), "name": "Security"},
        "documents": [],
    }
    assert (shown["conversation"]["title"], shown["conversation"]["messageCount"]) == (QUESTION, 7)
    listed = await api.op("Conversations", {"workspaceId": team.workspace_id}, token=victor.token)
    assert [
        (e["node"]["title"], e["node"]["messageCount"])
        for e in listed["workspace"]["conversations"]["edges"]
    ] == [(QUESTION, 7)]
    dashboard = await api.op("Dashboard", {"workspaceId": team.workspace_id}, token=olivia.token)
    assert dashboard["workspace"]["questionsAskedLast7Days"] == 3

    # Step 11 — nobody else sees it: Olivia (the workspace's OWNER) and Mallory (an outsider).
    nowhere = global_id("Conversation", uuid.uuid4())
    for person in (olivia, mallory):
        assert await api.op("Conversation", {"id": conversation_id}, token=person.token) == {
            "conversation": None
        }
        for target in (conversation_id, nowhere):
            refused = await ask(api, person.token, target, "Anything?")
            assert refused["errors"] == [
                {"code": "NOT_FOUND", "message": "No such conversation.", "field": "conversationId"}
            ]
        for message_id in (first_answer, global_id("Message", uuid.uuid4())):
            assert await answer_stream_refused(server, person.token, message_id) == [
                ("No such answer.", "NOT_FOUND", "messageId")
            ]
    still = await api.op("Conversation", {"id": conversation_id}, token=victor.token)
    assert still["conversation"]["messageCount"] == 7
