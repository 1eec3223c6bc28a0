"""Time to first token and tokens/s: the app's chat node on AsyncLocalRuntime vs ollama directly.

Uses the model server at OLLAMA_HOST when one answers, else starts `python -m model_server`.
Runs N alternating pairs (node path, direct path) with the same greedy prompt and prints p50/p90
for each path and the TTFT the node path adds (goal: under 5 ms).

    uv run --frozen python bench/bench_llm_ttft.py [--runs 20] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ollama  # noqa: E402
from kailash.runtime.async_local import AsyncLocalRuntime  # noqa: E402
from kailash.workflow.builder import WorkflowBuilder  # noqa: E402

import nodes.llm  # noqa: E402,F401  (registers LLMChatNode)
from services import llm  # noqa: E402
from tests.support.model_server import model_server  # noqa: E402

MODEL = "smollm2:135m"
MESSAGES = [{"role": "user", "content": "Explain in two sentences what a virtual environment is."}]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def via_node(runtime, workflow, config, options) -> tuple[float, float]:
    times: list[float] = []
    started = time.perf_counter()
    results, _ = await runtime.execute_workflow_async(
        workflow,
        inputs={
            "chat": {
                "messages": MESSAGES,
                "model": MODEL,
                "config": config,
                "options": options,
                "on_token": lambda _token: times.append(time.perf_counter()),
            }
        },
    )
    return _figures(started, times, results["chat"]["completion_tokens"])


async def direct(client: ollama.AsyncClient, options) -> tuple[float, float]:
    times: list[float] = []
    started = time.perf_counter()
    count = 0
    async for part in await client.chat(MODEL, messages=MESSAGES, options=options, stream=True):
        if part.message.content:
            times.append(time.perf_counter())
        if part.done:
            count = part.eval_count or 0
    return _figures(started, times, count)


def _figures(started: float, times: list[float], tokens: int) -> tuple[float, float]:
    ttft_ms = (times[0] - started) * 1000
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span if span > 0 else float("nan")
    return ttft_ms, rate


async def bench(host: str, runs: int, tokens: int) -> None:
    config = llm.LLMConfig(host=host)
    options = {"temperature": 0, "seed": 1, "num_predict": tokens}
    builder = WorkflowBuilder()
    builder.add_node("LLMChatNode", "chat", {})
    workflow = builder.build()
    client = ollama.AsyncClient(host=host)
    node_ttft, node_rate, direct_ttft, direct_rate, diffs = [], [], [], [], []
    async with AsyncLocalRuntime(max_concurrent_nodes=100) as runtime:
        for _ in range(2):  # warm both paths (connections, caches)
            await via_node(runtime, workflow, config, options)
            await direct(client, options)
        for i in range(runs):
            pair = {}
            order = ("node", "direct") if i % 2 == 0 else ("direct", "node")
            for path in order:
                if path == "node":
                    pair[path] = await via_node(runtime, workflow, config, options)
                else:
                    pair[path] = await direct(client, options)
            node_ttft.append(pair["node"][0])
            node_rate.append(pair["node"][1])
            direct_ttft.append(pair["direct"][0])
            direct_rate.append(pair["direct"][1])
            diffs.append(pair["node"][0] - pair["direct"][0])
    await client.close()
    await llm.aclose_clients()

    print(f"model server {host}, model {MODEL}, {runs} alternating runs, {tokens} tokens, greedy")
    print(f"{'path':<28}{'TTFT p50':>10}{'TTFT p90':>10}{'tok/s p50':>11}{'tok/s p90':>11}")
    for name, ttft, rate in (
        ("LLMChatNode on runtime", node_ttft, node_rate),
        ("ollama.AsyncClient direct", direct_ttft, direct_rate),
    ):
        print(
            f"{name:<28}{pct(ttft, 0.5):>8.1f}ms{pct(ttft, 0.9):>8.1f}ms"
            f"{pct(rate, 0.5):>11.1f}{pct(rate, 0.9):>11.1f}"
        )
    overhead = statistics.median(diffs)
    print(
        f"TTFT added by the node path: median of paired differences {overhead:.2f} ms "
        f"(p50 difference {pct(node_ttft, 0.5) - pct(direct_ttft, 0.5):.2f} ms); goal < 5 ms: "
        f"{'met' if overhead < 5 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    with model_server() as host:
        asyncio.run(bench(host, args.runs, args.tokens))


if __name__ == "__main__":
    main()
