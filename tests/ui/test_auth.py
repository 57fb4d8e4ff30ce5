"""Login: with ``ingmon serve --basic-auth`` the dashboard and ``/api/*`` demand it — a browser
gets the login form, an API client a 401 in JSON — and after logging in through the form both
work with the session cookie (the page renders, the API answers in the page's context)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.ui

USER, PASSWORD = "alice", "s3cret"
_LOCAL = ("127.0.0.1", "localhost")

_FETCH_HEALTH = """async () => {
    const response = await fetch('/api/health');
    return [response.status, response.headers.get('content-type'), await response.json()];
}"""


def _third_party(page: Any) -> list[str]:
    """Every request the page makes to a host other than the server (the dashboard runs
    offline, its login page included)."""
    seen: list[str] = []

    def record(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in _LOCAL:
            seen.append(request.url)

    page.on("request", record)
    return seen


def _log_in(page: Any, user: str, password: str) -> None:
    page.locator("input[name=username]").fill(user)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Login").click()


def test_dashboard_and_api_demand_a_login_then_both_work(
    page: Any, demo_root: Path, start_server: Callable[..., str]
) -> None:
    base = start_server(demo_root, "--basic-auth", f"{USER}:{PASSWORD}")
    foreign = _third_party(page)

    # An API client without the cookie: 401 with a JSON body that says how to log in.
    refused = httpx.get(f"{base}/api/health", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/json")
    assert "log in" in refused.json()["error"]["message"]
    assert "login" in refused.headers["www-authenticate"]

    # The browser: /dashboard sends it to the login form; its session has no API access yet.
    page.goto(f"{base}/dashboard")
    page.locator("input[name=username]").wait_for()
    assert urlsplit(page.url).path == "/login"
    assert page.request.get(f"{base}/api/health").status == 401

    # A wrong password: back on the form, told so, still no access.
    _log_in(page, USER, "wrong")
    page.get_by_text("Invalid username or password").wait_for()
    assert urlsplit(page.url).path == "/login"
    assert page.request.get(f"{base}/api/health").status == 401

    # The right one: the dashboard renders where the user was going …
    _log_in(page, USER, PASSWORD)
    page.wait_for_url(f"{base}/dashboard**")
    page.get_by_text("BTCUSDT", exact=True).first.wait_for()

    # … and the page's own fetch of the API (its cookie) gets the JSON document.
    status, content_type, document = page.evaluate(_FETCH_HEALTH)
    assert status == 200
    assert content_type.startswith("application/json")
    assert set(document["components"]) >= {"ingestion", "signals", "performance", "worker"}

    # The login holds across a reload.
    page.reload()
    page.get_by_text("BTCUSDT", exact=True).first.wait_for()
    assert urlsplit(page.url).path == "/dashboard"
    assert not foreign, f"requests to third-party hosts: {foreign}"
