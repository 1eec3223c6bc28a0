"""The offline GraphiQL page: no CDN URL is left, and every asset it loads is served from web/."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.graphiql import (
    ASSETS,
    ASSETS_PREFIX,
    GraphiQLAssetsMissing,
    asset_files,
    graphiql_page,
    mount_graphiql_assets,
)

WEB_DIR = Path(__file__).resolve().parents[2] / "web"

# The one http URL allowed to stay: the SVG namespace name in the inline favicon (never fetched).
SVG_NAMESPACE = "http://www.w3.org/2000/svg"

_TAG_URL = re.compile(r"""\b(?:src|href)=(["'])(.*?)\1""", re.DOTALL)
_SRI = re.compile(r"""(?:src|href)="([^"]+)"\s+integrity="(sha384-[^"]+)\"""")


def referenced_assets(html: str) -> list[str]:
    """The src/href values of the page that are fetched from the server (not data: URIs)."""
    return [url for _, url in _TAG_URL.findall(html) if not url.startswith("data:")]


def test_no_cdn_or_external_urls_remain() -> None:
    html = graphiql_page()
    assert "unpkg" not in html
    external = set(re.findall(r"https?://[^\s\"'<>%]+", html))
    assert external <= {SVG_NAMESPACE}, external


def test_page_loads_every_allowed_asset_from_the_app() -> None:
    urls = referenced_assets(graphiql_page())
    assert urls, "the page should still load its scripts and styles"
    assert all(url.startswith(ASSETS_PREFIX + "/") for url in urls), urls
    assert {url.removeprefix(ASSETS_PREFIX + "/") for url in urls} == set(ASSETS)


def test_each_asset_is_installed_and_matches_its_integrity_hash() -> None:
    files = asset_files(WEB_DIR)
    pinned = _SRI.findall(graphiql_page())
    assert len(pinned) == len(ASSETS)
    for url, integrity in pinned:
        path = files[url.removeprefix(ASSETS_PREFIX + "/")]
        assert path.is_file(), f"{path} missing: run `make web`"
        digest = base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()
        # Byte-identical to the file Strawberry pinned on unpkg, so the browser's SRI check passes.
        assert integrity == f"sha384-{digest}", path


async def test_mounted_route_serves_only_the_allow_list() -> None:
    app = FastAPI()
    mount_graphiql_assets(app, WEB_DIR)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for url in referenced_assets(graphiql_page()):
            response = await client.get(url)
            assert response.status_code == 200, url
            kind = "text/css" if url.endswith(".css") else "text/javascript"
            assert response.headers["content-type"].startswith(kind), url
            assert response.content
        for url in (
            f"{ASSETS_PREFIX}/react@18.2.0/package.json",
            f"{ASSETS_PREFIX}/react@18.2.0/umd/react.development.js",
            f"{ASSETS_PREFIX}/react@18.2.0/umd/../../react/package.json",
            f"{ASSETS_PREFIX}/%2e%2e/%2e%2e/package.json",
            f"{ASSETS_PREFIX}/",
        ):
            assert (await client.get(url)).status_code == 404, url


def test_mount_fails_clearly_when_assets_are_not_installed(tmp_path: Path) -> None:
    with pytest.raises(GraphiQLAssetsMissing, match="run `make web`"):
        mount_graphiql_assets(FastAPI(), tmp_path)
