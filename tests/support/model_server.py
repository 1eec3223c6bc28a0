"""A real model behind the Ollama API for the test suite.

`model_server()` yields a base URL. When OLLAMA_HOST names a server that answers GET /api/version
(a real Ollama with the model pulled), it yields that and starts nothing. Otherwise it starts
`python -m model_server` (SmolLM2-135M on llama.cpp) on a free loopback port, waits until it
answers, and stops it on exit, also when the body fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = (
    180.0  # loading and warming both models takes about 1.5 s; a busy 2-core box far more
)
STOP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _normalise(host: str) -> str:
    """OLLAMA_HOST may be `host:port` or a URL, as the ollama client accepts."""
    host = host.strip().rstrip("/")
    return host if "://" in host else f"http://{host}"


def answers(base_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/api/version", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def model_server(*, own: bool = False) -> Iterator[str]:
    """Base URL (http://127.0.0.1:PORT) of a model server speaking the Ollama API; `own`
    starts one of this context's own even when OLLAMA_HOST answers (to stop it)."""
    configured = os.environ.get("OLLAMA_HOST")
    if configured and not own and answers(_normalise(configured)):
        yield _normalise(configured)
        return

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "model_server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not answers(base_url, timeout=1.0):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-3000:]
                    raise RuntimeError(f"model server did not start on {base_url}:\n{tail}")
                time.sleep(0.1)
            yield base_url
        finally:
            _stop(proc)


class ModelServer:
    """A model server of a test's own on a fixed loopback port, which the test may stop, start
    again and freeze (a real fault: connections are refused, or accepted and never answered)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (open for the server's life; close())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start on `port` and wait until it answers."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "model_server", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not answers(self.url, timeout=1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"model server did not start on {self.url}:\n{tail}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop it and wait until it has exited: the port refuses connections."""
        if self.proc is not None:
            self.thaw()
            _stop(self.proc)
            self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.log.close()


@contextmanager
def own_model_server() -> Iterator[ModelServer]:
    """A started model server of the caller's own (never OLLAMA_HOST), to stop and start."""
    server = ModelServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@asynccontextmanager
async def chat_model_copy(base_url: str, source: str, name: str) -> AsyncIterator[None]:
    """`name` served by the model server at `base_url` as a copy of `source` (Ollama's
    /api/copy), removed afterwards: the server is shared by the test session."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        copied = await http.post("/api/copy", json={"source": source, "destination": name})
        assert copied.status_code == 200, copied.text
        try:
            yield
        finally:
            removed = await http.request("DELETE", "/api/delete", json={"model": name})
            assert removed.status_code == 200, removed.text
