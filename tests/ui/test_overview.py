"""The workbench's Overview in Chromium against a real ``ingmon serve``: the status panels and
the freshness grid (glyph + word in every cell), a cell opening the Freshness drill-down with
its state in the URL (reload-safe, back goes back), the navigation, and an empty data root
showing an empty state on every page."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.ui.conftest import UI_ARTIFACTS

pytestmark = pytest.mark.ui

CELL = re.compile(r"^(✓ ok|! warn|✕ error|– no data)\n")
DEADLINE_SECONDS = 30


def href(tab: Any) -> str:
    """The address bar now (``page.url`` follows history.pushState only when playwright
    processes its events, so ask the page)."""
    return str(tab.evaluate("window.location.href"))


def query(tab: Any) -> dict[str, str]:
    """The page's URL query, one value per key."""
    return {key: values[0] for key, values in parse_qs(urlsplit(href(tab)).query).items()}


def wait_for_query(tab: Any, **expected: str) -> dict[str, str]:
    """Poll the URL until its query holds ``expected`` (Panel pushes it after the change)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        found = query(tab)
        if all(found.get(key) == value for key, value in expected.items()):
            return found
        tab.wait_for_timeout(100)
    raise AssertionError(f"URL {href(tab)} never held {expected}")


def third_party_requests(page: Any) -> list[str]:
    """Every request the page makes to another host than the server (it runs offline)."""
    seen: list[str] = []
    page.on(
        "request",
        lambda request: (
            seen.append(request.url)
            if urlsplit(request.url).hostname not in ("127.0.0.1", "localhost", None)
            and not request.url.startswith(("data:", "blob:"))
            else None
        ),
    )
    return seen


def shot(page: Any, name: str) -> None:
    """A screenshot of the whole page for the README (the main area scrolls inside)."""
    page.set_viewport_size({"width": 1400, "height": 1700})
    UI_ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(UI_ARTIFACTS / name))


def test_the_overview_shows_status_panels_and_the_grid(page: Any, demo_server: str) -> None:
    """/dashboard: the overall status, the freshness grid (4 datasets × 2 symbols, each cell a
    glyph and a word, then its lag), signals, performance, alerts and the worker."""
    foreign = third_party_requests(page)
    page.goto(f"{demo_server}/dashboard")
    page.get_by_text("Ingestion: freshness per dataset × symbol").wait_for()
    for heading in ("Overall", "Signals: last 24 h", "Performance: latest backtest run"):
        page.get_by_text(heading).first.wait_for()
    page.get_by_text(re.compile(r"^Alerts: \d+ firing")).wait_for()
    cells = page.locator("td.cell")
    assert cells.count() == 8
    for text in cells.all_inner_texts():
        assert CELL.match(text), text
    links = page.locator("td.cell a")
    assert links.count() == 8
    assert "fr_dataset=" in (links.first.get_attribute("href") or "")
    page.get_by_role("button", name="Overview", exact=True).wait_for()
    assert query(page).get("page", "overview") == "overview"
    shot(page, "workbench-overview.png")
    assert foreign == []


def test_a_grid_cell_opens_the_freshness_drill_down(page: Any, demo_server: str) -> None:
    """Clicking BTCUSDT's 1m candles cell: the URL says page=freshness, fr_dataset=candles,
    fr_symbol=BTCUSDT; the drill-down shows its four parts; a reload shows the same view; the
    browser's back button returns to the Overview."""
    page.goto(f"{demo_server}/dashboard")
    cell = page.locator('td.cell a[href*="fr_dataset=candles"][href*="fr_symbol=BTCUSDT"]')
    cell.wait_for()
    started = time.monotonic()
    cell.click()
    page.get_by_text("Freshness: candles 1m · BTCUSDT").wait_for()
    opened = time.monotonic() - started
    wait_for_query(page, page="freshness", fr_dataset="candles", fr_symbol="BTCUSDT")
    for part in ("Latency over time", "Cadence deviations", "Gaps timeline"):
        page.get_by_text(part, exact=True).wait_for()
    page.get_by_text(re.compile(r"^Latest ingest batches \(\d+ newest\)")).wait_for()
    page.get_by_text("written (UTC)").wait_for()
    page.locator(".bk-Canvas").first.wait_for()  # the plots drew
    url = href(page)
    shot(page, "workbench-freshness.png")

    page.reload()
    page.get_by_text("Freshness: candles 1m · BTCUSDT").wait_for()
    page.get_by_text("Latency over time", exact=True).wait_for()
    assert href(page) == url

    page.go_back()
    page.get_by_text("Ingestion: freshness per dataset × symbol").wait_for()
    assert query(page).get("page", "overview") == "overview"
    print(f"grid cell → drill-down shown in {opened:.2f} s")


def test_the_navigation_switches_pages_and_the_url(page: Any, demo_server: str) -> None:
    """The sidebar's buttons switch the page and write it to the URL."""
    page.goto(f"{demo_server}/dashboard")
    page.get_by_text("Ingestion: freshness per dataset × symbol").wait_for()
    page.get_by_role("button", name="Freshness", exact=True).click()
    page.get_by_text("No series picked.").wait_for()
    wait_for_query(page, page="freshness")
    page.get_by_role("button", name="Overview", exact=True).click()
    page.get_by_text("Ingestion: freshness per dataset × symbol").wait_for()
    wait_for_query(page, page="overview")


def test_an_empty_data_root_shows_an_empty_state_on_every_page(
    page: Any, start_server: Callable[..., str], empty_root: Path
) -> None:
    """Nothing stored, no state: each page says so in words (and what to run), none breaks."""
    base = start_server(empty_root)
    expected = {
        "overview": "No health snapshot yet.",
        "freshness": "The lake holds no data yet.",
        "signals": "No candles in the lake yet.",
        "performance": "No saved backtest runs yet.",
    }
    for name, sentence in expected.items():
        page.goto(f"{base}/dashboard?page={name}")
        page.get_by_text(sentence).first.wait_for()
    page.goto(f"{base}/dashboard?page=freshness&fr_dataset=candles&fr_symbol=BTCUSDT")
    page.get_by_text("The lake holds no data yet.").wait_for()
