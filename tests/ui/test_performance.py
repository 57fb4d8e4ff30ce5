"""The Performance page in Chromium on a real ``ingmon serve``: pick the demo's two saved runs,
see their equity curves overlaid above their drawdowns, the run ids in the URL, and the same
view after a reload; the window selector and the empty states."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

from ingmon.backtest.compare import SavedRun, saved_runs
from ingmon.lake import Lake

pytestmark = pytest.mark.ui

T = TypeVar("T")
# The plot's glyphs as BokehJS holds them: (glyph type, curve label) of every renderer.
_GLYPHS_JS = """() => {
  const out = [];
  for (const doc of Bokeh.documents) for (const model of doc.all_models) {
    if (model.constructor.__name__ === "GlyphRenderer")
      out.push([model.glyph.constructor.__name__, model.name]);
  }
  return out;
}"""


def _until(probe: Callable[[], T | None], *, seconds: float = 30.0) -> T:
    """Poll ``probe`` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s: {probe}")
        time.sleep(0.2)


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def _runs(demo_root: Path) -> list[SavedRun]:
    runs = saved_runs(Lake(demo_root / "lake"))
    assert len(runs) == 2, runs
    return runs


def _overlay(page: Any, runs: list[SavedRun]) -> set[tuple[str, str]]:
    """Wait until the plot holds an equity line and a drawdown area for each run."""

    def probe() -> set[tuple[str, str]] | None:
        glyphs = {(kind, name) for kind, name in page.evaluate(_GLYPHS_JS) if name}
        symbols = {run.symbol for run in runs}
        for kind in ("Line", "Patch"):
            if {name.split()[0] for k, name in glyphs if k == kind} != symbols:
                return None
        return glyphs

    return _until(probe)


def test_compare_the_two_demo_runs(page: Any, demo_server: str, demo_root: Path) -> None:
    """Tick both runs: two equity curves over two drawdowns, both run ids in the URL, the
    comparison and breakdown tables; a reload shows the same selection and overlay."""
    runs = _runs(demo_root)
    page.goto(f"{demo_server}/dashboard?page=performance")
    page.get_by_text("Runs (newest first)").wait_for()
    # newest first, labelled by symbol, creation time and trade count
    labels = [run.label for run in runs]
    for label in labels:
        page.get_by_label(label).wait_for()
    for run in runs:
        page.get_by_label(run.label).check()
    wanted = {run.run_id for run in runs}
    page.wait_for_url(lambda url: set(_query(url).get("perf_runs", "").split(",")) == wanted)
    assert _query(page.url)["page"] == "performance"
    glyphs = _overlay(page, runs)
    assert sum(1 for kind, _ in glyphs if kind == "Line") == 2
    assert sum(1 for kind, _ in glyphs if kind == "Patch") == 2
    page.get_by_text("Runs compared — whole data").wait_for()
    for label in labels:
        page.get_by_role("columnheader", name=label).wait_for()
    page.get_by_text("By setup — whole data").wait_for()
    page.get_by_text("newest entry first").wait_for()

    shared = page.url
    page.reload()
    page.get_by_text("Runs compared — whole data").wait_for()
    for run in runs:
        assert page.get_by_label(run.label).is_checked()
    _overlay(page, runs)
    assert _query(page.url) == _query(shared)


def test_the_window_selector_is_in_the_url(page: Any, demo_server: str, demo_root: Path) -> None:
    """The demo's runs carry a 4d window: choosing it shows that window's metrics and puts
    perf_window in the URL; 30d is absent and says so; a reload keeps the window."""
    run = _runs(demo_root)[0]
    page.goto(f"{demo_server}/dashboard?page=performance&perf_runs={run.run_id}")
    page.get_by_text("Runs compared — whole data").wait_for()
    page.get_by_role("button", name="4d", exact=True).click()
    page.wait_for_url(lambda url: _query(url).get("perf_window") == "4d")
    page.get_by_text("Runs compared — trailing 4d window").wait_for()
    page.get_by_role("button", name="30d", exact=True).click()
    page.wait_for_url(lambda url: _query(url).get("perf_window") == "30d")
    absent = "none of the selected runs has a 30d window (they have: 4d)"
    page.get_by_text(absent).first.wait_for()
    page.reload()
    page.get_by_text("Runs compared — trailing 30d window").wait_for()
    page.get_by_text(absent).first.wait_for()
    assert _query(page.url)["perf_runs"] == run.run_id


def test_no_runs_and_an_unknown_run_id(
    start_server: Callable[..., str], empty_root: Path, page: Any
) -> None:
    """An empty lake with a link to a run that does not exist: both said in words. (The server
    is requested first so that it outlives the page's final screenshot.)"""
    base = start_server(empty_root)
    page.goto(f"{base}/dashboard?page=performance&perf_runs=bt-gone")
    page.get_by_text("No saved backtest runs yet.").wait_for()
    page.get_by_text("not found:").wait_for()
    page.get_by_text("bt-gone").first.wait_for()
    page.get_by_text("No report notebook has run yet.").wait_for()
    assert _query(page.url)["perf_runs"] == "bt-gone"


def test_a_trade_opens_its_signal(page: Any, demo_server: str, demo_root: Path) -> None:
    """A trade's setup links to its signal: a click opens the Signals page on that symbol and
    signal (in the URL); back on Performance the run is still selected."""
    run = _runs(demo_root)[0]
    page.goto(f"{demo_server}/dashboard?page=performance&perf_runs={run.run_id}")
    link = page.get_by_title("open this signal on the Signals page").first
    href = _query(link.get_attribute("href"))
    assert href["sig_symbol"] == run.symbol and href["sig_signal"]
    link.click()
    page.wait_for_url(lambda url: _query(url).get("page") == "signals")
    query = _query(page.url)
    assert (query["sig_symbol"], query["sig_signal"]) == (run.symbol, href["sig_signal"])
    page.get_by_role("button", name="Performance", exact=True).click()
    page.wait_for_url(lambda url: _query(url).get("page") == "performance")
    page.get_by_text("Runs compared — whole data").wait_for()
    assert page.get_by_label(run.label).is_checked()


# The x range of every plot and the ids of the line renderers (rebuilt plots get new ids).
_VIEW_JS = """() => {
  const ranges = [], lines = [];
  for (const doc of Bokeh.documents) for (const model of doc.all_models) {
    const kind = model.constructor.__name__;
    if ((kind === "Figure" || kind === "Plot") && model.x_range)
      ranges.push([model.x_range.start, model.x_range.end]);
    if (kind === "GlyphRenderer" && model.glyph.constructor.__name__ === "Line")
      lines.push(model.id);
  }
  return {ranges, lines};
}"""
_ZOOM_JS = """([start, end]) => {
  for (const doc of Bokeh.documents) for (const model of doc.all_models) {
    const kind = model.constructor.__name__;
    if ((kind === "Figure" || kind === "Plot") && model.x_range) {
      model.x_range.start = start; model.x_range.end = end;
    }
  }
}"""


def test_refresh_adds_a_new_run_and_keeps_selection_and_zoom(
    start_server: Callable[..., str], demo_root: Path, tmp_path: Path, page: Any
) -> None:
    """With auto-refresh every second: zoom into the chart, save a new run; it joins the
    picker while the ticked run, the zoom and the plot itself stay."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root, symlinks=True)
    run = _runs(root)[0]
    base = start_server(root)
    page.goto(f"{base}/dashboard?page=performance&perf_runs={run.run_id}&refresh=1")
    _overlay(page, [run])
    before = page.evaluate(_VIEW_JS)
    start, end = before["ranges"][0]
    zoom = [start + (end - start) / 4, start + (end - start) / 2]
    page.evaluate(_ZOOM_JS, zoom)
    done = subprocess.run(
        [sys.executable, "-m", "ingmon.cli", "backtest", "--symbol", run.symbol],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("INGMON_")},
            "INGMON_DATA_DIR": str(root),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    listed = saved_runs(Lake(root / "lake"))
    assert len(listed) == 3 and listed[1].run_id == run.run_id  # the new one is the newest
    boxes = page.get_by_role("checkbox")
    _until(lambda: boxes.count() == 3)
    # newest first: the new run, unticked, above the ticked one (labels may repeat)
    assert [boxes.nth(n).is_checked() for n in range(3)] == [False, True, False]
    after = page.evaluate(_VIEW_JS)
    assert after["lines"] == before["lines"]
    assert all(r == pytest.approx(zoom) for r in after["ranges"])
    assert _query(page.url)["perf_runs"] == run.run_id
