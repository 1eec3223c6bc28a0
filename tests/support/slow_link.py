"""A slow network link to the model server: a TCP relay that paces the model's streamed reply.

The relay hands the model's streamed reply on one NDJSON line (one token) per `delay` seconds.
Every byte is the real model's; the relay only paces them, like a slow network. It exists because
SmolLM2-135M ends its answer to the model-check prompt after about 10-50 tokens (0.2-0.8 s),
whatever MODEL_CHECK_MAX_TOKENS says, and the tests that cancel, kill or stop a run mid-CHAT
need a run that is still in its CHAT step a few seconds after it started. Point OLLAMA_HOST (the
`ollama_host` setting) at the URL `slow_link` yields. Run it alone as
`python -m tests.support.slow_link --upstream URL --delay SECONDS` (it prints its port).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy until EOF; with `delay`, pause after every complete JSON line ("}\\n")."""
    while data := await reader.read(65536):
        if delay <= 0:
            writer.write(data)
            await writer.drain()
            continue
        while (end := data.find(b"}\n")) >= 0:
            writer.write(data[: end + 2])
            await writer.drain()
            data = data[end + 2 :]
            await asyncio.sleep(delay)  # the pacing itself, not a wait for something
        if data:
            writer.write(data)
            await writer.drain()


async def _serve(upstream: str, delay: float, ready: asyncio.Future[int]) -> None:
    parts = urlsplit(upstream)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        legs = [
            asyncio.create_task(_relay(client_r, up_w, 0.0)),
            asyncio.create_task(_relay(up_r, client_w, delay)),
        ]
        try:
            # Either side hanging up ends both (a cancelled run closes its HTTP response; the
            # model server stops generating when its client leaves).
            await asyncio.wait(legs, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for leg in legs:
                leg.cancel()
            for w in (up_w, client_w):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    ready.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.slow_link")
    parser.add_argument("--upstream", required=True, help="http://host:port of the model server")
    parser.add_argument("--delay", type=float, required=True, help="seconds per streamed line")
    args = parser.parse_args(argv)

    async def serve() -> None:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(_serve(args.upstream, args.delay, ready))
        print(await ready, flush=True)  # the parent reads the port from our first line
        await serving

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


@contextmanager
def slow_link(upstream: str, delay: float) -> Iterator[str]:
    """http://127.0.0.1:PORT of a slow link to `upstream` (a child process, stopped on exit)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.slow_link",
            "--upstream",
            upstream,
            "--delay",
            str(delay),
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"slow link did not start (said {line!r})")
        yield f"http://127.0.0.1:{line}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main(sys.argv[1:])
