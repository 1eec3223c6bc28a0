"""Uploads as the frontend sends them: GraphQL multipart requests (graphql-multipart-request-spec)
with the `GraphQL-Require-Preflight` header, running the UploadDocuments operation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.corpus import read
from tests.support.graphql import operation

File = tuple[str, bytes]


def multipart_fields(
    collection_id: str, files: list[File], *, document: str = "UploadDocuments"
) -> tuple[dict[str, str], list[tuple[str, tuple[str, bytes, str]]]]:
    """The form fields (`operations`, `map`) and the file parts of an upload request."""
    operations = {
        "query": operation(document),
        "operationName": document,
        "variables": {"input": {"collectionId": collection_id, "files": [None] * len(files)}},
    }
    file_map = {str(i): [f"variables.input.files.{i}"] for i in range(len(files))}
    parts = [
        (str(i), (name, content, "application/octet-stream"))
        for i, (name, content) in enumerate(files)
    ]
    return {"operations": json.dumps(operations), "map": json.dumps(file_map)}, parts


async def post_upload(
    http: httpx.AsyncClient,
    collection_id: str,
    files: list[File],
    *,
    token: str | None,
    preflight: bool = True,
    path: str = "/graphql",
) -> httpx.Response:
    data, parts = multipart_fields(collection_id, files)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if preflight:
        headers["GraphQL-Require-Preflight"] = "1"
    return await http.post(path, data=data, files=parts, headers=headers)


async def upload(
    http: httpx.AsyncClient, collection_id: str, files: list[File], *, token: str
) -> dict[str, Any]:
    """The `uploadDocuments` payload of a request answered 200 without top-level errors."""
    response = await post_upload(http, collection_id, files, token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["uploadDocuments"]
    return payload


def corpus_file(path: Path) -> File:
    """A real file of the corpus under its own name (gunzipped, without the .gz)."""
    return path.name.removesuffix(".gz"), read(path)


async def watch_uploads(
    ws_url: str,
    token: str,
    workspace_id: str,
    document_ids: list[str],
    *,
    within: float = 600.0,
    on_row: Any = None,
) -> list[dict[str, Any]]:
    """Every UploadProgress row of one subscription over a real WebSocket (graphql-transport-ws),
    until the server completes it (every document READY or FAILED). `within` only bounds a
    hang; `on_row(row)` is called for each row as it arrives."""
    import asyncio

    from websockets.asyncio.client import connect

    rows: list[dict[str, Any]] = []

    async def read() -> None:
        async with connect(ws_url, subprotocols=["graphql-transport-ws"], max_size=None) as ws:
            await ws.send(
                json.dumps(
                    {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
                )
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(
                json.dumps(
                    {
                        "id": "uploads",
                        "type": "subscribe",
                        "payload": {
                            "query": operation("UploadProgress"),
                            "operationName": "UploadProgress",
                            "variables": {"workspaceId": workspace_id, "documentIds": document_ids},
                        },
                    }
                )
            )
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "complete":
                    return
                assert message["type"] == "next" and "errors" not in message["payload"], message
                row = message["payload"]["data"]["uploadProgress"]
                rows.append(row)
                if on_row is not None:
                    on_row(row)

    await asyncio.wait_for(read(), within)
    return rows
