"""GET /documents/{id}/original: a document's original file, as an attachment.

The same rules as the schema: the bearer token of the `Authorization` header, or the `token`
of a link from `createDownloadLink` (ADR 0092; 401 without a valid one), any member may read,
and a document of another workspace is answered exactly like a missing one (404 NOT_FOUND). A
link's token names its user and its document: it is checked against the path, and the
download runs as that user, so membership is checked again. The service
(`documents.open_original`) decides; this module only speaks HTTP.

What comes back can be hostile (HTML with scripts, a PDF with JavaScript), so the answer is
never rendered by a browser as a page of this origin: `Content-Disposition: attachment`,
`X-Content-Type-Options: nosniff` (the stored type is the one used), and a Content-Security-Policy
that allows nothing and sandboxes the document even if a browser displays it anyway.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from urllib.parse import quote

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app.http import json_error
from base.auth.principal import Principal
from base.auth.tokens import decode_download_token
from base.errors import NotFound, Unauthenticated
from resolvers.core.relay import decode_id
from resolvers.router import principal_from
from workflows.documents import OPEN_ORIGINAL

DOWNLOAD_PATH = "/documents/{id:path}/original"

# Nothing loads, nothing runs, no form posts, no framing; `sandbox` gives a unique origin.
CONTENT_SECURITY_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"
# The ASCII fallback of `filename=`: RFC 6266's token-safe characters, nothing a header or a
# shell would read specially.
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9._ ()+-]")


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII `filename` and the exact name in `filename*` (RFC 6266, RFC
    5987: UTF-8, percent-encoded)."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = _UNSAFE_ASCII.sub("_", ascii_name).strip(" ")
    stem, dot, extension = ascii_name.rpartition(".")
    if not (stem if dot else extension).strip(" ._"):  # nothing of the name survived
        ascii_name = "download" + (f".{extension}" if dot and extension else "")
    ascii_name = ascii_name.lstrip(".")  # never a hidden file
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_headers(filename: str, media_type: str, size_bytes: int) -> dict[str, str]:
    return {
        # As stored, without a charset added: the original's bytes are sent unchanged.
        "Content-Type": media_type,
        "Content-Disposition": content_disposition(filename),
        "Content-Length": str(size_bytes),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Cache-Control": "private, no-store",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Referrer-Policy": "no-referrer",
    }


def _downloader(request: Request) -> tuple[Principal, uuid.UUID | None]:
    """Who downloads: the link's user when the query has a `token`, with the one document the
    link is for; else the bearer of the Authorization header, for any document."""
    secret = request.app.state.deps.settings.jwt_secret
    client = request.client.host if request.client else None
    link_token = request.query_params.get("token")
    if link_token is None:
        authorization = request.headers.get("authorization")
        return principal_from(authorization, secret=secret, client=client), None
    claims = decode_download_token(link_token, secret=secret)
    return Principal(user_id=claims.user_id, client_address=client), claims.document_id


async def download_original(request: Request) -> Response:
    accept = request.headers.get("accept")
    deps = request.app.state.deps
    try:
        principal, link_document_id = _downloader(request)
        principal.require_user()
        document_id = decode_id(request.path_params["id"], "Document", field="id")
        if link_document_id not in (None, document_id):  # a link is for its document only
            raise Unauthenticated("The download link is not valid.", code="TOKEN_INVALID")
        original = await request.app.state.runner.call(
            OPEN_ORIGINAL, deps.for_principal(principal), document_id=document_id
        )
    except Unauthenticated as error:
        refused = json_error(401, error.message, error.code, accept)
        refused.headers["WWW-Authenticate"] = "Bearer"
        return refused
    except NotFound as error:
        return json_error(404, error.message, error.code, accept)
    return StreamingResponse(
        original.chunks,
        headers=download_headers(original.filename, original.media_type, original.size_bytes),
    )


def mount_downloads(app: FastAPI) -> None:
    app.add_api_route(
        DOWNLOAD_PATH,
        download_original,
        methods=["GET"],
        include_in_schema=False,
    )
