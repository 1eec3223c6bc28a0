"""A slow network link to the model server: a TCP relay that paces the model's streamed reply.

The relay hands the model's streamed reply on one NDJSON line (one token) per `delay` seconds.
Every byte is the real model's; the relay only paces them, like a slow network. It exists because
SmolLM2-135M ends its answer to the model-check prompt after about 10-50 tokens (0.2-0.8 s),
whatever MODEL_CHECK_MAX_TOKENS says, and the tests that cancel, kill or stop a run mid-CHAT
need a run that is still in its CHAT step a few seconds after it started. Point OLLAMA_HOST (the
`ollama_host` setting) at the `url` of the link `slow_link` yields. A test that needs a run to
stay in its CHAT step until it says so, however fast the machine, holds the link
(`SlowLink.hold`: replies stream on but their last line waits) and releases it afterwards. Run it
alone as `python -m tests.support.slow_link --upstream URL --delay SECONDS` (it prints its port;
SIGUSR1 holds, SIGUSR2 releases).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]


# The line that ends a streamed reply (Ollama's NDJSON; spaced or not).
_ENDS_REPLY = re.compile(rb'"done":\s*true')


async def _relay(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    released: asyncio.Event | None,
) -> None:
    """Copy until EOF; with `delay`, pause after every complete JSON line ("}\\n"). With
    `released`, keep back the line that ends a reply while the link is held."""
    before = b""  # the bytes passed on just before `piece`: a match may span two reads
    while data := await reader.read(65536):
        while data:
            end = data.find(b"}\n")
            piece, data = (data, b"") if end < 0 else (data[: end + 2], data[end + 2 :])
            if released is not None and _ENDS_REPLY.search(before + piece):
                await released.wait()
            writer.write(piece)
            await writer.drain()
            before = (before + piece)[-11:]  # one byte short of the shortest match
            if end >= 0 and delay > 0:
                await asyncio.sleep(delay)  # the pacing itself, not a wait for something


async def _serve(upstream: str, delay: float, ready: asyncio.Future[int]) -> None:
    released = asyncio.Event()
    released.set()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, released.clear)
    loop.add_signal_handler(signal.SIGUSR2, released.set)
    parts = urlsplit(upstream)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        legs = [
            asyncio.create_task(_relay(client_r, up_w, 0.0, None)),
            asyncio.create_task(_relay(up_r, client_w, delay, released)),
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


@dataclass(frozen=True)
class SlowLink:
    url: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[str]

    def hold(self) -> None:
        """From now on no streamed reply ends (its last line waits) until `release`."""
        self.proc.send_signal(signal.SIGUSR1)

    def release(self) -> None:
        self.proc.send_signal(signal.SIGUSR2)


@contextmanager
def slow_link(upstream: str, delay: float) -> Iterator[SlowLink]:
    """A slow link to `upstream` (a child process, stopped on exit)."""
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
        yield SlowLink(f"http://127.0.0.1:{line}", proc)
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
