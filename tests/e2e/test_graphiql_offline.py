"""GraphiQL in a real browser with nothing outside 127.0.0.1: the page loads, runs a query, shows
the result, loads the schema (the Docs pane lists Query's fields) and completes a field name as
it is typed. Drives Debian's Chromium (/usr/bin/chromium, from `make system`) with Playwright."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, Route, expect, sync_playwright

from tests.support.live_server import live_server

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# The flags keep Chromium from reaching out on its own (updates, sync, safe browsing, QUIC).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = REPO_ROOT / "var" / "graphiql.png"


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == "127.0.0.1"


def run_query(page: Page, base_url: str) -> None:
    """Open GraphiQL, type `{ __typename }` into the editor, run it, wait for the result."""
    page.goto(f"{base_url}/graphql", wait_until="networkidle")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    expect(editor).to_be_visible(timeout=15_000)

    # Replace the welcome text by typing, as a person would.
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type("{ __typename }")
    page.keyboard.press("Escape")  # close an autocomplete hint, if one opened
    typed = page.evaluate(
        "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()"
    )
    assert typed.replace(" ", "") == "{__typename}", typed

    page.locator(".graphiql-execute-button").click()
    result = page.locator(".graphiql-response .CodeMirror")
    expect(result).to_contain_text('"__typename": "Query"', timeout=15_000)


QUERY_FIELDS = [
    "me",
    "workspaces",
    "workspace",
    "run",
    "myRunEventsCursor",
    "document",
    "collection",
    "search",
    "conversation",
    "node",
]


def browse_docs(page: Page) -> None:
    """Open the Docs pane, follow `query: Query`, and find Query's fields listed in order.

    The pane shows "Error fetching schema" instead when GraphiQL's introspection is refused."""
    page.locator('button[aria-label="Show Documentation Explorer"]').click()
    docs = page.locator(".graphiql-doc-explorer")
    expect(docs).to_contain_text("Root Types", timeout=15_000)
    docs.locator("a", has_text="Query").first.click()
    expect(docs.locator(".graphiql-doc-explorer-field-name")).to_have_text(
        QUERY_FIELDS, timeout=15_000
    )


def complete_a_field(page: Page) -> None:
    """Type the start of a field name; the hints offer the fields that start with it."""
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type("{ work")
    hints = page.locator(".CodeMirror-hints .CodeMirror-hint")
    expect(hints).to_have_text(["workspace", "workspaces"], timeout=15_000)


def check_graphiql_offline(base_url: str, screenshot: Path) -> None:
    """Run a query in GraphiQL at base_url/graphql with every non-loopback request blocked."""
    blocked: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def only_loopback(route: Route, request: Request) -> None:
        if _is_local(request.url):
            route.continue_()
        else:
            blocked.append(request.url)
            route.abort("blockedbyclient")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.route("**/*", only_loopback)
            page.on(
                "websocket",
                lambda ws: None if _is_local(ws.url) else blocked.append(ws.url),
            )
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda msg: errors.append(msg.text) if msg.type == "error" else None,
            )
            try:
                run_query(page, base_url)
                browse_docs(page)
                complete_a_field(page)
            except Exception as exc:
                # Say what the browser saw: a blocked CDN request explains a stuck "Loading...".
                raise AssertionError(
                    f"{exc}\nblocked: {blocked}\nfailed: {failed}\nbrowser errors: {errors}"
                ) from exc
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()

    assert blocked == [], f"requests that would have left the machine: {blocked}"
    assert failed == [], f"requests that failed: {failed}"
    assert errors == [], f"browser errors: {errors}"


@pytest.mark.timeout(120)
def test_graphiql_runs_a_query_with_no_internet(tmp_path: Path) -> None:
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'graphiql.sqlite3'}",
        "JWT_SECRET": "graphiql-e2e-test-secret-0123456789abcdef",
        # Every client is 127.0.0.1 and a server outlives a test; the limit has its own test.
        "SIGN_UP_ATTEMPTS_PER_ADDRESS": "1000/hour",
    }
    with live_server(env) as base_url:
        check_graphiql_offline(base_url, SCREENSHOT)
