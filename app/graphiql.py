"""GraphiQL that works with no internet.

Strawberry's stock GraphiQL page loads React, GraphiQL, the explorer plugin and js-cookie from
unpkg.com. The same files are pinned in web/package.json (installed by `make web`); this module
rewrites the page to load them from the app itself and serves exactly those files.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from strawberry.http.ides import get_graphql_ide_html

ASSETS_PREFIX = "/graphiql/assets"

_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"

# The allow-list, keyed as in the unpkg URLs and in ours: "package@version/file" -> content type.
# Versions must match web/package.json.
ASSETS: dict[str, str] = {
    "react@18.2.0/umd/react.production.min.js": _JS,
    "react-dom@18.2.0/umd/react-dom.production.min.js": _JS,
    "js-cookie@3.0.5/dist/js.cookie.min.js": _JS,
    "graphiql@3.8.3/graphiql.min.css": _CSS,
    "graphiql@3.8.3/graphiql.min.js": _JS,
    "@graphiql/plugin-explorer@1.0.2/dist/style.css": _CSS,
    "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": _JS,
}

_ASSET_KEY = re.compile(r"^(?P<package>@?[^@/]+(?:/[^@/]+)?)@(?P<version>[^/]+)/(?P<file>.+)$")
_UNPKG_URL = re.compile(r"https://unpkg\.com/([^\"'\s]+)")


class GraphiQLAssetsMissing(RuntimeError):
    """The pinned front-end packages are not installed in web/node_modules."""


@functools.cache
def graphiql_page() -> str:
    """Strawberry's stock GraphiQL HTML with every unpkg.com URL pointing at our local copy.

    The integrity (SRI) attributes stay: the local files are byte-identical to the ones
    Strawberry pinned, so the browser still checks them (tests/unit/test_graphiql_page.py too).
    """
    html = get_graphql_ide_html(graphql_ide="graphiql")

    def local(match: re.Match[str]) -> str:
        asset = match.group(1)
        if asset not in ASSETS:
            # A Strawberry upgrade changed its CDN assets: update ASSETS and web/package.json.
            raise RuntimeError(f"GraphiQL asset not in the allow-list: {asset}")
        return f"{ASSETS_PREFIX}/{asset}"

    return _UNPKG_URL.sub(local, html)


def asset_files(web_dir: Path) -> dict[str, Path]:
    """Map each allowed asset to its file under web_dir/node_modules (which may not exist)."""
    files = {}
    for asset in ASSETS:
        key = _ASSET_KEY.match(asset)
        assert key, asset
        files[asset] = web_dir / "node_modules" / key["package"] / key["file"]
    return files


def check_assets(web_dir: Path) -> None:
    """Raise GraphiQLAssetsMissing unless every asset is installed at its pinned version."""
    problems: list[str] = []
    for asset, path in asset_files(web_dir).items():
        key = _ASSET_KEY.match(asset)
        assert key, asset
        package, version = key["package"], key["version"]
        manifest = web_dir / "node_modules" / package / "package.json"
        if not path.is_file() or not manifest.is_file():
            problems.append(f"{path} is missing")
            continue
        installed = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        if installed != version:
            problems.append(f"{package} is {installed}, GraphiQL needs {version}")
    if problems:
        raise GraphiQLAssetsMissing(
            "GraphiQL assets are not installed (run `make web`): "
            + "; ".join(sorted(set(problems)))
        )


def mount_graphiql_assets(app: FastAPI, web_dir: Path) -> None:
    """Serve the allow-listed GraphiQL files from web_dir/node_modules under ASSETS_PREFIX.

    Fails at start-up, not on the first page load, when the files are not installed.
    """
    check_assets(web_dir)
    files = asset_files(web_dir)

    async def graphiql_asset(asset: str) -> FileResponse:
        path = files.get(asset)
        if path is None:
            raise HTTPException(status_code=404)
        return FileResponse(
            path,
            media_type=ASSETS[asset],
            # The URL carries the package version, so the content never changes under it.
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )

    app.add_api_route(
        ASSETS_PREFIX + "/{asset:path}",
        graphiql_asset,
        methods=["GET"],
        include_in_schema=False,
    )
