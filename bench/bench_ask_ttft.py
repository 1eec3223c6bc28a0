"""Benchmark: time to the first answer token through the whole Ask path, against the model
server's own time to first token for the same prompt, in the same run; and how fast Stop ends an
answer.

    uv run --frozen python bench/bench_ask_ttft.py [--full] [--runs N]

By default a quick run (5 questions); `--full` gives the 20 of the recorded figures.

A script, not a test: it prints figures and asserts nothing about time. It starts throwaway
PostgreSQL and Redis servers and a model server (tests/support), migrates, and starts the app as
a real uvicorn (tests/support/live_server) with REDIS_URL and RUN_EXECUTION=inline, as deployed
on one process. A user signs up over HTTP; the venv tutorial (Python 3.11 documentation) is made
searchable by the ingestion stages (tests/support/ask.py).

Each run, on a fresh conversation:

* whole path: the client sends AskQuestion (HTTP), subscribes to AnswerStream (graphql-transport-
  ws) with the answer's id, and notes when the first TEXT event arrives: mutation -> run queued
  -> executor -> RETRIEVING (query embedding and hybrid search) -> PROMPTING -> GENERATING ->
  model -> text store and bus -> subscription -> socket -> client. Then it sends StopAnswer and
  notes when the FINISHED event (state STOPPED) arrives: the stop latency (goal under 1 s).
* model alone: the same prompt (the answer's stored prompt messages) and options sent straight
  to the model server with the ollama client, streamed; time to its first token.

Every question is asked on a fresh conversation of the same workspace, so its prompt is the same
each time, and the model server (like Ollama) reuses the longest prefix of the previous prompt:
after the warm-up both paths find the whole prompt cached and the model's own time to first
token is one token's evaluation. Measured with a cold cache, prompt evaluation took 30 s and
more on the busy 2-core machine and varied by seconds from run to run, hiding any overhead. The
two paths alternate which goes first. The overhead is whole path minus model alone, per run; its
p50 is the figure (goal under 50 ms).
Where it goes is printed from the run's steps (RunDetail): queueing until the run started, the
RETRIEVING and PROMPTING steps, and the rest (GENERATING's start to the client, less the model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import ollama  # noqa: E402
from sqlalchemy import select  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from app import migrate  # noqa: E402
from app.main import create_app  # noqa: E402
from base.models.chat import Message  # noqa: E402
from base.models.runs import RunStep  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench.common import add_size_flag, apply_sizes, percentile  # noqa: E402
from services.answers import chat_options  # noqa: E402
from tests.support.ask import HTML, searchable  # noqa: E402
from tests.support.graphql import operation, uuid_of  # noqa: E402
from tests.support.live_server import live_server  # noqa: E402
from tests.support.model_server import model_server  # noqa: E402
from tests.support.seed import add_collection  # noqa: E402
from tests.support.services import postgres_server, redis_server  # noqa: E402

JWT_SECRET = "bench-ask-ttft-jwt-secret-0123456789abcdef"
QUESTION = "How do I create a virtual environment?"
ANSWER_TOKENS = 16  # only the first token matters
WITHIN = 600.0


async def gql(http: httpx.AsyncClient, name: str, variables: dict[str, Any], token: str | None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        "/graphql", json={"query": operation(name), "variables": variables}, headers=headers
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def whole_path(
    http: httpx.AsyncClient, ws_url: str, token: str, workspace_id: str, *, stop: bool
) -> dict[str, Any]:
    conversation = (
        await gql(http, "CreateConversation", {"input": {"workspaceId": workspace_id}}, token)
    )["createConversation"]["conversation"]["id"]
    async with connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        started, sent_at = time.perf_counter(), time.time()
        asked = (
            await gql(
                http,
                "AskQuestion",
                {"input": {"conversationId": conversation, "question": QUESTION}},
                token,
            )
        )["askQuestion"]
        answer = asked["answer"]["id"]
        await ws.send(
            json.dumps(
                {
                    "id": "a",
                    "type": "subscribe",
                    "payload": {
                        "query": operation("AnswerStream"),
                        "operationName": "AnswerStream",
                        "variables": {"messageId": answer},
                    },
                }
            )
        )
        first_token = stop_sent = finished = None
        first_token_at = 0.0
        state = None
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), WITHIN))
            if message["type"] == "complete":
                break
            event = message["payload"]["data"]["answerStream"]
            now = time.perf_counter()
            if event["type"] == "TEXT" and first_token is None:
                first_token, first_token_at = now, time.time()
                if stop:
                    stop_sent = time.perf_counter()
                    stopped = await gql(http, "StopAnswer", {"input": {"messageId": answer}}, token)
                    if stopped["stopAnswer"]["errors"]:  # it ended before the stop arrived
                        stop_sent = None
            elif event["type"] == "FINISHED":
                finished = now
                state = event["message"]["state"]
    detail = (await gql(http, "RunDetail", {"runId": asked["run"]["id"], "first": 1}, token))["run"]
    assert first_token is not None, "no token arrived"
    return {
        "answer": uuid_of(answer),
        "run": uuid_of(asked["run"]["id"]),
        "ttft": (first_token - started) * 1000,
        "sent_at": sent_at,
        "first_token_at": first_token_at,
        "created_at": datetime.fromisoformat(detail["createdAt"]).timestamp(),
        "stop": (finished - stop_sent) * 1000 if stop_sent and finished else None,
        "state": state,
    }


async def step_outputs(deps: Any, run_id: Any) -> dict[str, dict[str, Any]]:
    """What each step of the run returned (with when it began and how long it took)."""
    async with deps.db() as session:
        rows = await session.execute(
            select(RunStep.name, RunStep.output).where(RunStep.run_id == run_id)
        )
        return {name: (output or {}).get("value") or {} for name, output in rows}


def breakdown(path: dict[str, Any], steps: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Where the time to the first token went, in ms, from the steps' own clocks."""
    retrieving, prompting, generating = (
        steps["RETRIEVING"],
        steps["PROMPTING"],
        steps["GENERATING"],
    )
    model_token = generating["began"] + generating["first_token_ms"] / 1000
    return {
        "asking": (path["created_at"] - path["sent_at"]) * 1000,
        "queued": (retrieving["began"] - path["created_at"]) * 1000,
        "retrieving": retrieving["ms"],
        "prompting": prompting["ms"],
        "between": (
            prompting["began"]
            - retrieving["began"]
            - retrieving["ms"] / 1000
            + generating["began"]
            - prompting["began"]
            - prompting["ms"] / 1000
        )
        * 1000,
        "generating": generating["first_token_ms"] - path["model"],
        "delivery": (path["first_token_at"] - model_token) * 1000,
    }


async def model_alone(
    client: ollama.AsyncClient, model: str, messages: list[dict[str, str]], options: dict[str, Any]
) -> float:
    started = time.perf_counter()
    stream = await client.chat(model=model, messages=messages, options=options, stream=True)
    async for part in stream:
        if part.message.content:
            first = time.perf_counter()
            await stream.aclose()
            return (first - started) * 1000
    raise RuntimeError("the model wrote nothing")


async def bench(runs: int, stop_runs: int) -> None:
    with (
        postgres_server() as pg_url,
        redis_server() as redis_url,
        model_server() as ollama_host,
        tempfile.TemporaryDirectory(prefix="kd-bench-ask-") as tmp,
    ):
        settings = Settings(
            app_env="test",
            database_url=pg_url,
            redis_url=redis_url,
            jwt_secret=JWT_SECRET,
            ollama_host=ollama_host,
            run_execution="inline",
            blob_root=str(Path(tmp) / "blobs"),
            ask_answer_tokens=ANSWER_TOKENS,
        )
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
        env = {
            "APP_ENV": "test",
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": JWT_SECRET,
            "OLLAMA_HOST": ollama_host,
            "RUN_EXECUTION": "inline",
            "ASK_ANSWER_TOKENS": str(ANSWER_TOKENS),
            "LOG_LEVEL": "WARNING",
        }
        with live_server(env) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=WITHIN) as http:
                await measure(http, base_url, settings, runs, stop_runs)


async def measure(
    http: httpx.AsyncClient, base_url: str, settings: Settings, runs: int, stop_runs: int
) -> None:
    session = (
        await gql(
            http,
            "SignUp",
            {
                "input": {
                    "name": "Bea Bench",
                    "email": "bea@example.com",
                    "password": "a long pass phrase",
                }
            },
            None,
        )
    )["signUp"]["session"]
    token = session["accessToken"]
    shell = await gql(http, "AppShell", {"first": 1}, token)
    workspace = shell["workspaces"]["edges"][0]["node"]["id"]
    seeding = create_app(settings)
    async with seeding.router.lifespan_context(seeding):
        deps = seeding.state.deps
        owner, workspace_id = uuid_of(session["user"]["id"]), uuid_of(workspace)
        guides = await add_collection(deps.db, workspace_id, "Python guides", owner)
        await searchable(deps, workspace_id, guides, owner, HTML / "tutorial" / "venv.html")
        client = ollama.AsyncClient(host=settings.ollama_host)
        ws_url = base_url.replace("http://", "ws://", 1) + "/graphql"
        options = chat_options(settings)
        rows: list[dict[str, Any]] = []
        prompt = None
        for i in range(runs + 1):  # the first warms connections and caches; not counted
            model_first = prompt is not None and i % 2 == 0
            if model_first:
                alone = await model_alone(client, settings.chat_model, prompt, options)
            path = await whole_path(http, ws_url, token, workspace, stop=False)
            async with deps.db() as db_session:
                prompt = await db_session.scalar(
                    select(Message.prompt).where(Message.id == path["answer"])
                )
            if not model_first:
                alone = await model_alone(client, settings.chat_model, prompt, options)
            path["model"] = alone
            path["overhead"] = path["ttft"] - path["model"]
            path.update(breakdown(path, await step_outputs(deps, path["run"])))
            if i:
                rows.append(path)
            print(
                f"run {i}{' (warm-up)' if not i else ''}: whole path {path['ttft']:.0f} ms, "
                f"model alone {path['model']:.0f} ms, overhead {path['overhead']:.0f} ms",
                flush=True,
            )
        stops = []
        for _ in range(stop_runs):
            stopped = await whole_path(http, ws_url, token, workspace, stop=True)
            stops.append(stopped)
            print(
                f"stop: {stopped['stop'] or float('nan'):.0f} ms ({stopped['state']})", flush=True
            )
        await client.close()
    report(rows, stops)


def report(rows: list[dict[str, Any]], stops: list[dict[str, Any]]) -> None:
    def col(name: str) -> list[float]:
        return [r[name] for r in (stops if name == "stop" else rows) if r.get(name) is not None]

    print(f"\n{len(rows)} questions ({len(stops)} more stopped after their first token); ms")
    print(f"{'':<50}{'p50':>8}{'p90':>8}")
    for label, name in (
        ("whole path: AskQuestion -> first TEXT at client", "ttft"),
        ("model alone: same prompt -> first token", "model"),
        ("overhead (whole path - model alone)", "overhead"),
        ("  AskQuestion sent -> run created", "asking"),
        ("  run created -> RETRIEVING began (queue, claim)", "queued"),
        ("  RETRIEVING (embed + hybrid search)", "retrieving"),
        ("  PROMPTING", "prompting"),
        ("  between the steps", "between"),
        ("  GENERATING began -> model's first token, less", "generating"),
        ("    the model's own time to first token", "generating"),
        ("  model's first token -> TEXT at the client", "delivery"),
        ("StopAnswer sent -> FINISHED (STOPPED) at client", "stop"),
    ):
        values = col(name)
        if label.startswith("    the model"):
            continue
        print(f"{label:<50}{percentile(values, 50):>8.0f}{percentile(values, 90):>8.0f}")
    print("(the parts are p50s of each, from the steps' own clocks; they need not add up)")
    overhead = percentile(col("overhead"), 50)
    print(f"overhead p50 {overhead:.0f} ms; goal < 50 ms: {'met' if overhead < 50 else 'NOT met'}")
    stop = percentile(col("stop"), 90)
    print(f"stop p90 {stop:.0f} ms; goal < 1000 ms: {'met' if stop < 1000 else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, help="questions measured")
    parser.add_argument("--stops", type=int, help="questions stopped after their first token")
    add_size_flag(parser, quick={"runs": 5, "stops": 3}, full={"runs": 20, "stops": 10})
    args = apply_sizes(parser.parse_args(argv))
    if args.runs < 1:
        parser.error("need --runs >= 1")
    asyncio.run(bench(args.runs, args.stops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
