"""The real app in a uvicorn subprocess, for tests that need a server a browser can reach."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # imports and the lifespan take a few seconds; far more on a busy 2-core box
STOP_TIMEOUT = 10.0


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _output_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) or "(no output)"


def _stop(proc: subprocess.Popen) -> None:
    # The server runs in its own process group: signal the group, so nothing it spawned lingers.
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def live_server(
    env: dict[str, str],
    *,
    app: str = "app.main:create_app",
    start_timeout: float = START_TIMEOUT,
) -> Iterator[str]:
    """Run `uvicorn --factory APP` on a free loopback port; yield http://127.0.0.1:PORT.

    The process gets the current environment plus `env`, starts in the repository root, and
    counts as up once GET /healthz answers 200 (within `start_timeout` seconds).
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="kd-live-server-") as tmp:
        log = Path(tmp) / "server.log"
        with open(log, "wb") as out:
            # A file, not a pipe: nobody reads the output while the tests run, and a full pipe
            # would block the server.
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    app,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--ws-per-message-deflate",
                    "false",
                ],
                cwd=REPO_ROOT,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + start_timeout
            while not _healthy(base_url):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{app} exited with {proc.returncode} before /healthz answered:\n"
                        + _output_tail(log)
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{app}: no 200 from GET /healthz within {start_timeout:.0f} s:\n"
                        + _output_tail(log)
                    )
                time.sleep(0.1)
            yield base_url
        finally:
            _stop(proc)
