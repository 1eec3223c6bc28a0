import time
from typing import Any
from sqlalchemy import select
from base.models.chat import Citation, Message
from tests.support.ask import searchable, final_answer, HTML
from tests.support.graphql import GraphQLClient, first_workspace, sign_up, uuid_of
from tests.support.seed import add_collection


async def test_explore(client: GraphQLClient, app: Any):
    deps = app.state.deps
    owner = await sign_up(client, "Olivia", "o@example.com")
    ws = await first_workspace(client, owner["accessToken"])
    wid, uid = uuid_of(ws["id"]), uuid_of(owner["user"]["id"])
    col = await add_collection(deps.db, wid, "Guides", uid)
    t = time.perf_counter()
    for p in (HTML / "tutorial" / "venv.html", HTML / "library" / "getpass.html", HTML / "library" / "secrets.html"):
        await searchable(deps, wid, col, uid, p)
    print("ingest", time.perf_counter() - t)
    conv = (await client.op("CreateConversation", {"input": {"workspaceId": ws["id"]}}, token=owner["accessToken"]))["createConversation"]["conversation"]
    for q in ["How do I create a virtual environment?", "What is the capital of Australia?"]:
        t = time.perf_counter()
        asked = await client.op("AskQuestion", {"input": {"conversationId": conv["id"], "question": q}}, token=owner["accessToken"])
        assert asked["askQuestion"]["errors"] == [], asked
        aid = uuid_of(asked["askQuestion"]["answer"]["id"])
        row = await final_answer(deps, aid)
        print("---", q, row.state, time.perf_counter() - t, row.top_cosine, row.prompt_tokens, row.completion_tokens, row.error_message)
        print(row.text)
        print([(p["number"], p["document_title"][:30], round(p["cosine"] or 0, 3)) for p in row.passages])
        async with deps.db() as s:
            cits = (await s.execute(select(Citation).where(Citation.message_id == aid))).scalars().all()
            for c in cits: print("CIT", c.number, c.origin, repr(c.quote), c.document_title[:30])
        print("dropped", row.dropped_citations)
