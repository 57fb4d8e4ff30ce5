"""The Signals page in Chromium on a real ``ingmon serve`` with the demo data: the chart (candles
aggregated to the zoom, markers, the profile beside it) and the signal table render; clicking a
row shows that signal's 7-point audit and puts its id in the URL; a zoom puts the range in the
URL; a reload of either URL shows the same view."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

from ingmon.signals.chart import CHART_BAR_BUDGET

pytestmark = pytest.mark.ui

T = TypeVar("T")
# Every glyph renderer BokehJS holds: [glyph type, rows in its data source].
_GLYPHS_JS = """() => {
  const out = [];
  for (const doc of Bokeh.documents) for (const model of doc.all_models) {
    if (model.constructor.__name__ !== "GlyphRenderer") continue;
    const data = model.data_source.data;
    const first = data instanceof Map ? data.values().next().value : Object.values(data)[0];
    out.push([model.glyph.constructor.__name__, first ? first.length : 0]);
  }
  return out;
}"""
# The machine's two cores are shared with other suites: waits are generous, never fixed sleeps.
WAIT_SECONDS = 60
_CAPTION = re.compile(r"\d+ bars of \S+ from [\d,]+ 1m candles · .+ UTC → .+ UTC")


def _until(probe: Callable[[], T | None], *, seconds: float = WAIT_SECONDS) -> T:
    """Poll ``probe`` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s: {probe}")
        time.sleep(0.2)


def _open(page: Any, url: str) -> None:
    page.set_default_timeout(WAIT_SECONDS * 1000)
    page.goto(url)


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def _chart(page: Any) -> dict[str, list[int]]:
    """Wait until the chart is drawn: rows per glyph type (candle wicks are Segments, candle
    bodies and profile bins Quads, markers Scatter)."""

    def probe() -> dict[str, list[int]] | None:
        glyphs: dict[str, list[int]] = {}
        for kind, rows in page.evaluate(_GLYPHS_JS):
            glyphs.setdefault(kind, []).append(rows)
        if not glyphs.get("Segment") or not any(glyphs["Segment"]):
            return None
        return glyphs if len(glyphs.get("Quad", [])) == 2 else None

    return _until(probe)


def _caption(page: Any) -> str:
    """The line under the chart: bars, interval, 1m candles and the range shown."""
    line = page.get_by_text(_CAPTION).first
    line.wait_for()
    match = _CAPTION.search(line.inner_text())
    assert match, line.inner_text()
    return match.group(0)


def _audit(page: Any, signal_id: str) -> tuple[int, list[str]]:
    """Wait for the audit of ``signal_id``: its score and the 7 results (✓/✕/– with a word)."""
    page.get_by_text(f"signal {signal_id}").wait_for()
    results = page.locator("[data-result]")
    _until(lambda: results.count() == 7)
    texts = [results.nth(i).inner_text().strip() for i in range(7)]
    score = page.get_by_text(re.compile(r"^Score \d / 7$")).first.inner_text()
    return int(score.split()[1]), texts


def test_a_row_opens_its_audit_and_a_reload_keeps_it(page: Any, demo_server: str) -> None:
    """The chart (≤ the bar budget, with markers and the profile) and the table render; a click
    on a scored row shows its 7-point audit (as many ✓ as its score), the URL carries its id,
    and the reloaded URL shows the same audit with the row selected."""
    _open(page, f"{demo_server}/dashboard?page=signals&sig_symbol=BTCUSDT")
    page.get_by_text(re.compile(r"\d+ of \d+ signals, in the visible range")).wait_for()
    glyphs = _chart(page)
    candles = max(glyphs["Segment"])
    assert 0 < candles <= CHART_BAR_BUDGET
    assert candles in glyphs["Quad"]  # one body per wick; the other Quad is the profile
    assert max(glyphs["Scatter"]) > 0  # signal markers
    _caption(page)
    rows = page.locator(".tabulator-row")
    _until(lambda: rows.count() > 0)
    scores = [rows.nth(i).inner_text() for i in range(min(rows.count(), 15))]
    index = next(i for i, text in enumerate(scores) if not re.search(r"\b0 / 7\b", text))
    row_text = scores[index]
    rows.nth(index).click()
    page.wait_for_url(re.compile(r"sig_signal=[0-9a-f]{24,}"))
    signal_id = _query(page.url)["sig_signal"]
    score, results = _audit(page, signal_id)
    assert score >= 1 and f"{score} / 7" in row_text
    assert results.count("✓ passed") == score
    assert all(text in ("✓ passed", "✕ failed", "– missing") for text in results)
    time_utc = row_text.split("\n")[0].strip()
    page.get_by_text(re.compile(rf"^Audit: .* · {re.escape(time_utc)} UTC$")).wait_for()
    assert _query(page.url)["sig_symbol"] == "BTCUSDT"

    page.reload()
    assert _query(page.url)["sig_signal"] == signal_id
    assert _audit(page, signal_id) == (score, results)
    selected = page.locator(".tabulator-row.tabulator-selected")
    _until(lambda: selected.count() == 1)
    assert selected.inner_text().split("\n")[0].strip() == time_utc
    _chart(page)


def test_a_zoom_goes_to_the_url_and_a_reload_shows_the_same_range(
    page: Any, demo_server: str
) -> None:
    """Wheel-zooming the chart re-aggregates the candles to finer bars and puts the range in
    the URL; reloading that URL draws the same range with the same bars."""
    _open(page, f"{demo_server}/dashboard?page=signals&sig_symbol=ETHUSDT")
    before = _chart(page)
    caption = _caption(page)
    canvases = page.locator(".bk-Canvas")
    _until(lambda: canvases.count() >= 2)
    boxes = [canvases.nth(i).bounding_box() for i in range(canvases.count())]
    chart = max((box for box in boxes if box), key=lambda box: box["width"])
    page.mouse.move(chart["x"] + chart["width"] / 2, chart["y"] + chart["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_url(re.compile(r"sig_start=.+&sig_end=|sig_end=.+&sig_start="))
    query = _until(lambda: _query(page.url) if "sig_start" in _query(page.url) else None)
    zoomed = _until(lambda: _caption(page) if _caption(page) != caption else None)
    after = _until(lambda: _chart(page) if _chart(page)["Segment"] != before["Segment"] else None)
    assert max(after["Segment"]) <= CHART_BAR_BUDGET
    assert query["sig_start"] < query["sig_end"]
    start = query["sig_start"][:16].replace("T", " ")
    assert f"· {start}" in zoomed or start[:13] in zoomed

    page.reload()
    assert _query(page.url)["sig_start"] == query["sig_start"]
    assert _query(page.url)["sig_end"] == query["sig_end"]
    assert _until(lambda: _caption(page) if _caption(page) == zoomed else None) == zoomed
    assert max(_chart(page)["Segment"]) <= CHART_BAR_BUDGET


def test_an_unknown_signal_in_the_url_says_so(page: Any, demo_server: str) -> None:
    """A link with a signal id the symbol does not have: the page renders and names it."""
    unknown = "deadbeef" * 4
    _open(page, f"{demo_server}/dashboard?page=signals&sig_symbol=BTCUSDT&sig_signal={unknown}")
    page.get_by_text(f"Unknown signal {unknown}").wait_for()
    _chart(page)
