"""Time to first token and tokens/s: the app's chat node on the app's runtime vs ollama directly.

Uses the model server at OLLAMA_HOST when one answers, else starts `python -m model_server`
(tests/support/model_server). Runs N alternating pairs (node path: nodes.llm.LLMChatNode in a
one-node workflow on the runtime the app builds, runtime.runner.build_runtime; direct path:
ollama.AsyncClient) with the same greedy prompt and prints p50/p90 for each path and the TTFT
the node path adds (goal: under 5 ms). By default a quick run (6 pairs); `--full` gives the 20
of the recorded figures.

    uv run --frozen python bench/bench_llm_ttft.py [--full] [--runs N] [--tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `nodes`, `services`, ... importable
    sys.path.insert(0, str(ROOT))

import ollama  # noqa: E402
from kailash.workflow.builder import WorkflowBuilder  # noqa: E402

from base.settings import Settings  # noqa: E402
from bench.common import add_size_flag, apply_sizes, percentile  # noqa: E402
from nodes.llm import LLMChatNode  # noqa: E402
from runtime.runner import build_runtime  # noqa: E402
from services import llm  # noqa: E402
from tests.support.model_server import model_server  # noqa: E402

MODEL = "smollm2:135m"
MESSAGES = [{"role": "user", "content": "Explain in two sentences what a virtual environment is."}]


def pct(values: list[float], q: float) -> float:
    return percentile(values, q * 100)


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
    settings = Settings(app_env="development", ollama_host=host, chat_model=MODEL)
    config = llm.LLMConfig.from_settings(settings)
    options = {"temperature": 0, "seed": 1, "num_predict": tokens}
    builder = WorkflowBuilder()
    builder.add_node(LLMChatNode.__name__, "chat", {})
    workflow = builder.build()
    client = ollama.AsyncClient(host=host)
    node_ttft, node_rate, direct_ttft, direct_rate, diffs = [], [], [], [], []
    runtime = build_runtime(settings)  # the app's EventRuntime, with the app's caps
    try:
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
    finally:
        await runtime.cleanup()
    await client.close()
    await llm.aclose_clients()

    print(f"model server {host}, model {MODEL}, {runs} alternating runs, {tokens} tokens, greedy")
    print(f"{'path':<28}{'TTFT p50':>10}{'TTFT p90':>10}{'tok/s p50':>11}{'tok/s p90':>11}")
    for name, ttft, rate in (
        ("LLMChatNode on app runtime", node_ttft, node_rate),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, help="alternating pairs of runs")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per answer (32)")
    add_size_flag(parser, quick={"runs": 6}, full={"runs": 20})
    args = apply_sizes(parser.parse_args(argv))
    if args.runs < 1 or args.tokens < 2:
        parser.error("need --runs >= 1 and --tokens >= 2")
    with model_server() as host:
        asyncio.run(bench(host, args.runs, args.tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())
