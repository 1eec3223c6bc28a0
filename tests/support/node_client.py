"""Subscriptions through the `graphql-ws` npm client (web/e2e/subscribe.mjs), as the frontend
makes them, for the e2e and user-flow tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NODE = "/usr/bin/node"
NODE_CLIENT = ROOT / "web" / "e2e" / "subscribe.mjs"


async def node_subscribe(
    url: str,
    token: str,
    operation: str,
    variables: dict[str, Any],
    *,
    limit: int | None = None,
    within: float = 60.0,
) -> tuple[list[dict[str, Any]], int, str]:
    """The events of `operation` (a subscription of graphql/operations/) until the server
    completes it or `limit` arrived: (events, the client's exit code, its stderr)."""
    args = [NODE, str(NODE_CLIENT), "--url", url, "--token", token, "--operation", operation]
    args += ["--variables", json.dumps(variables)]
    if limit is not None:
        args += ["--limit", str(limit)]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=ROOT / "web",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert proc.returncode is not None
    return events, proc.returncode, err.decode()
