"""Processes and clients for the runs end-to-end tests (tests/e2e/test_runs_e2e.py).

* `WorkerProcess`: `uv run --frozen python -m app worker` in its own session, with its log in a
  file, SIGTERM / SIGKILL aimed at the Python process that holds the leases.
* `GraphQLWs`: a graphql-transport-ws client on `websockets`; `node_run_progress` runs the same
  subscription through the `graphql-ws` npm client (web/e2e/subscribe.mjs).
* Database and Redis probes read what the processes did without any debug endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.node_client import node_subscribe

ROOT = Path(__file__).resolve().parents[2]
WS_PROTOCOL = "graphql-transport-ws"
RUN_PROGRESS = (ROOT / "graphql" / "operations" / "RunProgress.graphql").read_text()


# --- worker processes --------------------------------------------------------------------------


def _uv() -> str:
    found = shutil.which("uv") or os.path.expanduser("~/.local/bin/uv")
    if not os.path.exists(found):
        raise RuntimeError("uv not found: run `make uv`")
    return found


@dataclass
class WorkerProcess:
    """One `python -m app worker` started through `uv run`; `pid` is the Python process."""

    name: str
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    pid: int = 0
    owner: str = ""  # the lease owner name it logged ("worker:host:pid:hex")
    started_at: float = 0.0
    ready_at: float = 0.0  # monotonic time its "ready" line was seen
    exited_at: float | None = None

    START_TIMEOUT = 60.0

    def launch(self) -> WorkerProcess:
        """Start the process; `wait_ready` waits for its "ready" line."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [_uv(), "run", "--frozen", "python", "-m", "app", "worker"],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    def wait_ready(self, *, poll: float = 0.05) -> WorkerProcess:
        assert self.proc is not None
        deadline = self.started_at + self.START_TIMEOUT
        while not self.owner:
            for line in self.log.read_text(errors="replace").splitlines():
                if " ready" in line and "worker worker:" in line:
                    self.owner = "worker:" + line.split("worker worker:", 1)[1].split()[0]
            if self.owner:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start:\n{self.tail()}")
            time.sleep(poll)
        self.ready_at = time.monotonic()
        self.pid = int(self.owner.split(":")[2])
        return self

    def start(self, *, poll: float = 0.05) -> WorkerProcess:
        return self.launch().wait_ready(poll=poll)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> float:
        """Send `sig` to the Python process itself (not uv); the monotonic time it was sent."""
        os.kill(self.pid, sig)
        return time.monotonic()

    async def wait_exit(self, within: float) -> float:
        """Wait until the worker (and uv) exited; the monotonic time the Python process ended."""
        deadline = time.monotonic() + within
        while _pid_alive(self.pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} still running:\n{self.tail()}")
            await asyncio.sleep(0.02)
        self.exited_at = time.monotonic()
        assert self.proc is not None
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"uv of worker {self.name} still running")
            await asyncio.sleep(0.02)
        return self.exited_at

    def stop(self, within: float = 15.0) -> None:
        """SIGTERM, then SIGKILL the whole session if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(within)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def _pid_alive(pid: int) -> bool:
    try:
        import psutil

        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE
    except Exception:  # NoSuchProcess, AccessDenied
        return False


def pid_listening_on(port: int) -> int:
    """The pid of our descendant that listens on 127.0.0.1:`port` (an API process)."""
    import psutil

    for child in psutil.Process(os.getpid()).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            for conn in child.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                    return child.pid
    raise RuntimeError(f"no child process listens on port {port}")


def established_peer_ports(pid: int, local_port: int) -> set[int]:
    """Remote ports of the connections `pid` holds on its listening port (its clients)."""
    import psutil

    return {
        c.raddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == local_port and c.raddr
    }


# --- Redis ----------------------------------------------------------------------------------------


async def pubsub_connections_of(redis_url: str, pid: int) -> list[dict[str, str]]:
    """Redis clients in pub/sub mode whose socket belongs to process `pid` (from CLIENT LIST)."""
    import psutil
    import redis.asyncio as redis

    redis_port = urlsplit(redis_url).port or 6379
    local_ports = {
        c.laddr.port
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == redis_port
    }
    client = redis.from_url(redis_url)
    try:
        clients = await client.client_list()
    finally:
        await client.aclose()
    return [
        c
        for c in clients
        if int(c["addr"].rsplit(":", 1)[1]) in local_ports
        and (int(c.get("sub", 0)) > 0 or int(c.get("psub", 0)) > 0)
    ]


async def xlen(redis_url: str, key: str = "kd:runs") -> int:
    import redis.asyncio as redis

    client = redis.from_url(redis_url)
    try:
        return int(await client.xlen(key))
    finally:
        await client.aclose()


async def numsub(redis_url: str, channel: str = "kd:events") -> int:
    import redis.asyncio as redis

    client = redis.from_url(redis_url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
    finally:
        await client.aclose()
    return int(count)


# --- the database -----------------------------------------------------------------------------


async def fetch(database_url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        return [dict(r) for r in await connection.fetch(query, *args)]
    finally:
        await connection.close()


async def run_row(database_url: str, run_id: uuid.UUID) -> dict[str, Any]:
    [row] = await fetch(database_url, "SELECT * FROM runs WHERE id = $1", run_id)
    return row


async def run_steps(database_url: str, run_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        database_url,
        "SELECT name, status::text AS status, attempts FROM run_steps WHERE run_id = $1 "
        "ORDER BY position",
        run_id,
    )


async def run_log(database_url: str, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The run's event log as the subscription sends it (cursor and at as strings aside)."""
    return await fetch(
        database_url,
        "SELECT seq, type, status::text AS status, step, percent, message, at "
        "FROM run_events WHERE run_id = $1 ORDER BY seq",
        run_id,
    )


def as_log(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Subscription events in the shape of `run_log` rows, for an exact comparison."""
    from datetime import datetime

    return [
        (
            int(e["cursor"]),
            e["type"],
            e["status"],
            e["step"],
            e["percent"],
            e["message"],
            datetime.fromisoformat(e["at"]),
        )
        for e in events
    ]


def rows_as_log(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["seq"], r["type"], r["status"], r["step"], r["percent"], r["message"], r["at"])
        for r in rows
    ]


# --- graphql-transport-ws on websockets -------------------------------------------------------


@dataclass
class GraphQLWs:
    """One graphql-transport-ws connection (after connection_ack)."""

    ws: Any
    client_port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        await self.ws.send(
            json.dumps(
                {
                    "id": op_id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables},
                }
            )
        )

    async def recv(self, within: float = 30.0) -> dict[str, Any]:
        message = json.loads(await asyncio.wait_for(self.ws.recv(), within))
        if message.get("type") == "ping":
            await self.ws.send(json.dumps({"type": "pong"}))
            return await self.recv(within)
        return message

    async def complete(self, op_id: str) -> None:
        await self.ws.send(json.dumps({"id": op_id, "type": "complete"}))

    def drop(self) -> None:
        """Vanish without a close frame, like a laptop lid closing."""
        self.ws.transport.abort()


@asynccontextmanager
async def graphql_ws(url: str, token: str) -> AsyncIterator[GraphQLWs]:
    from websockets.asyncio.client import connect

    # No client keepalive: a test that reads one of many sockets leaves the others' messages
    # unread, their queues fill and their pongs wait behind them, and the client's own ping
    # timeout would close them (a full run under load did: "timed out while closing
    # connection"). The server's keepalive is what these tests look at.
    async with connect(url, subprotocols=[WS_PROTOCOL], open_timeout=10, ping_interval=None) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        yield GraphQLWs(ws, client_port=ws.transport.get_extra_info("sockname")[1])


async def py_run_progress(
    url: str,
    token: str,
    run_id: str,
    *,
    after: str | None = None,
    limit: int | None = None,
    on_event: Any = None,
    within: float = 60.0,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """runProgress through the Python client: (events, the terminating message).

    With `limit`, the connection is dropped after that many events (the terminating message is
    None); otherwise it reads until the server sends `complete` (returned) or `error`.
    """
    events: list[dict[str, Any]] = []
    async with graphql_ws(url, token) as conn:
        await conn.subscribe("p", RUN_PROGRESS, {"runId": run_id, "after": after})
        while True:
            message = await conn.recv(within)
            if message["type"] != "next" or "errors" in message["payload"]:
                return events, message
            for event in message["payload"]["data"]["runProgress"]:  # one or more a message
                events.append(event)
                if on_event is not None:
                    await on_event(event)
            if limit is not None and len(events) >= limit:
                conn.drop()
                return events, None


async def node_run_progress(
    url: str,
    token: str,
    run_id: str,
    *,
    after: str | None = None,
    limit: int | None = None,
    within: float = 60.0,
) -> tuple[list[dict[str, Any]], int, str]:
    """runProgress through the graphql-ws npm client: (events, exit code, stderr)."""
    variables = {"runId": run_id, "after": after}
    return await node_subscribe(url, token, "RunProgress", variables, limit=limit, within=within)
