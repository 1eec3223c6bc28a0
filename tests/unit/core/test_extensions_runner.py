"""The schema's extensions runner skips only the per-result hooks no extension has."""

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import strawberry
from strawberry.extensions import ParserCache, SchemaExtension

from resolvers.schema import KnowledgeDeskSchema, LeanExtensionsRunner


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[int, None]:
        for tick in (1, 2, 3):
            yield tick


class Counting(SchemaExtension):
    """Has both per-result hooks: each must still run for every event."""

    streamed: list[Any] = []

    def get_results(self) -> dict[str, Any]:
        return {"counted": True}

    async def on_stream_result(self, result: Any) -> AsyncIterator[None]:  # type: ignore[override]
        Counting.streamed.append(result.data)
        yield


def _schema(*extensions: Any) -> KnowledgeDeskSchema:
    return KnowledgeDeskSchema(
        query=Query, subscription=Subscription, extensions=list(extensions), mask_errors=False
    )


async def test_extensions_with_per_result_hooks_still_get_them():
    Counting.streamed.clear()
    stream = await _schema(Counting, lambda: ParserCache(maxsize=4)).subscribe(
        "subscription { ticks }"
    )
    results = [r async for r in stream]
    assert [(r.data, r.extensions) for r in results] == [
        ({"ticks": n}, {"counted": True}) for n in (1, 2, 3)
    ]
    assert Counting.streamed == [{"ticks": 1}, {"ticks": 2}, {"ticks": 3}]


def test_the_runner_keeps_no_hook_for_extensions_without_them():
    runner = LeanExtensionsRunner(None, [ParserCache(maxsize=4), Counting()])  # type: ignore[arg-type]
    assert [type(e) for e in runner.with_results] == [Counting]
    assert [type(e) for e in runner.with_stream_hook] == [Counting]
