"""Benchmark: the cost of one streamed piece of an answer, by the path it takes (ADR 0073).

    uv run --frozen python bench/bench_answer_text.py [--full] [--pieces N]

A script, not a test: it prints figures. It starts throwaway PostgreSQL and Redis servers,
migrates, and stores one answer row. Then it sends N pieces of a few tokens each, one after the
other, by each path, with a subscriber on the same bus noting when each piece arrives:

* text store (chosen): `RedisBus.append_text`, one MULTI/EXEC of APPEND, EXPIRE and PUBLISH;
* row per piece (rejected): a transaction appending the piece to the answer's row
  (`UPDATE messages SET text = text || :piece`) and committing, then `RedisBus.publish`, as run
  events are written and published;
* in process: `LocalBus.append_text` (no Redis; the embedded default).

Per path: the writer's time per piece (what GENERATING waits for) and the time from the start of
the write to the subscriber's receipt, p50 and p99 in ms. By default 200 pieces; `--full` 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app import migrate  # noqa: E402
from base.db.engine import build_engine, build_sessionmaker  # noqa: E402
from base.events.bus import EventBus, LocalBus, RedisBus, answer_text_key, answer_topic  # noqa: E402
from base.models.accounts import User, Workspace  # noqa: E402
from base.models.chat import AnswerState, Conversation, Message, MessageRole  # noqa: E402
from base.settings import Settings  # noqa: E402
from bench.common import add_size_flag, apply_sizes, percentile  # noqa: E402
from tests.support.services import postgres_server, redis_server  # noqa: E402

PIECE = " python3 -m venv"  # a few tokens, as one 50 ms batch of a small model holds


async def answer_row(db: Any) -> uuid.UUID:
    user = User(id=uuid.uuid4(), email="bench@example.com", name="Bench", password_hash="-")
    async with db.begin() as session:
        session.add(user)
        await session.flush()
        workspace = Workspace(id=uuid.uuid4(), name="Bench", created_by_id=user.id)
        session.add(workspace)
        await session.flush()
        conversation = Conversation(
            id=uuid.uuid4(), workspace_id=workspace.id, owner_id=user.id, title="Bench"
        )
        session.add(conversation)
        await session.flush()
        message = Message(
            id=uuid.uuid4(),
            conversation_id=conversation.id,
            workspace_id=workspace.id,
            seq=1,
            role=MessageRole.ASSISTANT,
            text="",
            scope={},
            state=AnswerState.STREAMING,
            passages=[],
        )
        session.add(message)
    return message.id


async def measure(name: str, bus: EventBus, send: Any, pieces: int) -> None:
    topic = answer_topic(uuid.uuid4())
    arrived: list[float] = []
    started: list[float] = []
    writes: list[float] = []
    async with bus.subscribe(topic) as live:

        async def receive() -> None:
            for _ in range(pieces):
                await live.get()
                arrived.append(time.perf_counter())

        receiver = asyncio.create_task(receive())
        offset = 0
        for _ in range(pieces):
            began = time.perf_counter()
            started.append(began)
            await send(topic, offset)
            writes.append(time.perf_counter() - began)
            offset += len(PIECE)
            await asyncio.sleep(0)
        await asyncio.wait_for(receiver, 60)
    delivery = [(a - s) * 1000 for a, s in zip(arrived, started, strict=True)]
    write_ms = [w * 1000 for w in writes]
    print(
        f"{name:<28}{percentile(write_ms, 50):>9.2f}{percentile(write_ms, 99):>9.2f}"
        f"{percentile(delivery, 50):>11.2f}{percentile(delivery, 99):>9.2f}"
    )


async def bench(pieces: int) -> None:
    with postgres_server() as pg_url, redis_server() as redis_url:
        settings = Settings(app_env="test", database_url=pg_url, jwt_secret="x" * 40)
        await asyncio.to_thread(migrate.upgrade, settings.database_url)
        engine = build_engine(settings)
        db = build_sessionmaker(engine)
        message_id = await answer_row(db)
        redis_bus = RedisBus(redis_url)
        await redis_bus.start()
        local_bus = LocalBus()
        key = answer_text_key(message_id)

        async def text_store(topic: str, offset: int) -> None:
            await redis_bus.append_text(topic, key, offset, PIECE)

        async def row_per_piece(topic: str, offset: int) -> None:
            async with db.begin() as session:
                await session.execute(
                    text("UPDATE messages SET text = text || :piece WHERE id = :id"),
                    {"piece": PIECE, "id": message_id},
                )
            await redis_bus.publish(
                topic, {"type": "TEXT", "start": offset, "end": offset + len(PIECE), "text": PIECE}
            )

        async def in_process(topic: str, offset: int) -> None:
            await local_bus.append_text(topic, key, offset, PIECE)

        print(f"{pieces} pieces of {len(PIECE)} characters, one after the other; ms")
        print(f"{'path':<28}{'write p50':>9}{'p99':>9}{'arrive p50':>11}{'p99':>9}")
        try:
            for name, bus, send in (
                ("text store (Redis)", redis_bus, text_store),
                ("row per piece + publish", redis_bus, row_per_piece),
                ("text store (in process)", local_bus, in_process),
            ):
                await measure(name, bus, send, pieces)
        finally:
            await redis_bus.close()
            await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pieces", type=int, help="pieces per path")
    add_size_flag(parser, quick={"pieces": 200}, full={"pieces": 1000})
    args = apply_sizes(parser.parse_args(argv))
    asyncio.run(bench(args.pieces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
