"""The workbench app without a browser: the ``page`` parameter picks the view, pages are built
on their first visit, ``navigate`` opens drill-downs, the URL and the pages' parameters follow
each other, and the periodic refresh reaches the visible page only, pausably."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import panel as pn
import param
import pytest
from panel.io.location import Location

from ingmon.config import load_settings
from ingmon.lake import Lake
from ingmon.monitor.health import build_snapshot, write_snapshot
from tests.monitor._lake import NOW_MS, healthy_lake
from workbench.app import PAGE_CLASSES, PAGES, PageUnavailable, Workbench, page_class, url_keys
from workbench.freshness import FreshnessPage
from workbench.overview import Overview
from workbench.plots import ClickableHTML


@pytest.fixture(autouse=True)
def _fresh_panel_state() -> Iterator[None]:
    yield
    pn.state.reset()


def stub_page(page: str) -> type[pn.viewable.Viewer]:
    """A page class that counts its refreshes and keeps what it was built with."""

    class Stub(pn.viewable.Viewer):
        URL_PARAMS: ClassVar[dict[str, str]] = {"symbol": f"{page[:3]}_symbol"}
        dataset = param.String(default="")
        symbol = param.String(default="")
        signal_id = param.String(default="")
        run_ids = param.String(default="")

        def __init__(self, *, data_dir: Path, navigate: Any = None, **params: Any) -> None:
            super().__init__(**params)
            self.data_dir, self.navigate, self.refreshes = data_dir, navigate, 0

        def refresh(self) -> None:
            self.refreshes += 1

        def __panel__(self) -> pn.viewable.Viewable:
            return pn.pane.Markdown(f"{page} page")

    Stub.__name__ = f"Stub{page.title()}"
    return Stub


def stubbed(tmp_path: Path, **params: Any) -> Workbench:
    factories = {page: stub_page(page) for page in PAGES}
    return Workbench(data_dir=tmp_path, page_factories=factories, **params)


def test_the_page_param_switches_the_view_and_pages_are_built_once(tmp_path: Path) -> None:
    """The content shows the page ``page`` names; a page is built on its first visit, with the
    data dir and the workbench's navigate, then kept (and refreshed when shown again)."""
    workbench = stubbed(tmp_path)
    content = workbench.__panel__()
    overview = workbench.page_view("overview")
    assert list(workbench._pages) == ["overview"]
    assert content.objects == [workbench.layout("overview")] and overview.refreshes == 1
    assert overview.data_dir == tmp_path and overview.navigate == workbench.navigate
    workbench.page = "signals"
    assert content.objects == [workbench.layout("signals")]
    assert list(workbench._pages) == ["overview", "signals"]
    workbench.page = "overview"
    assert content.objects == [workbench.layout("overview")]
    assert workbench.page_view("overview") is overview
    assert overview.refreshes == 2  # shown again: its data brought up to date


def test_the_navigation_drives_the_page(tmp_path: Path) -> None:
    """The sidebar's buttons set ``page``, and ``page`` shows in them."""
    workbench = stubbed(tmp_path)
    workbench.__panel__()
    assert workbench._nav.options == {
        "Overview": "overview",
        "Freshness": "freshness",
        "Signals": "signals",
        "Performance": "performance",
    }
    workbench._nav.value = "performance"
    assert workbench.page == "performance"
    workbench.page = "freshness"
    assert workbench._nav.value == "freshness"


def test_navigate_sets_the_page_and_its_parameters(tmp_path: Path) -> None:
    """navigate(page, **params) builds the page if needed, sets its parameters, shows it; a
    parameter the page lacks or an unknown page is an error, nothing changes."""
    workbench = stubbed(tmp_path)
    workbench.__panel__()
    workbench.navigate("signals", symbol="ETHUSDT", signal_id="s1")
    signals = workbench.page_view("signals")
    assert workbench.page == "signals" and (signals.symbol, signals.signal_id) == ("ETHUSDT", "s1")
    with pytest.raises(ValueError, match="signals has no parameter colour"):
        workbench.navigate("signals", colour="red")
    with pytest.raises(ValueError, match="unknown page 'home'"):
        workbench.navigate("home")
    assert workbench.page == "signals"


def test_the_drill_down_entry_points(tmp_path: Path) -> None:
    """open_freshness, open_signals and open_performance name the parameters of the real
    pages: dataset and symbol, symbol and signal_id, the comma-separated run_ids."""
    workbench = stubbed(tmp_path)
    workbench.__panel__()
    workbench.open_freshness("candles", "BTCUSDT")
    assert workbench.page == "freshness"
    assert workbench.page_view().symbol == "BTCUSDT"
    workbench.open_signals("ETHUSDT")
    assert (workbench.page_view().symbol, workbench.page_view().signal_id) == ("ETHUSDT", "")
    workbench.open_performance(["bt-1", "bt-2"])
    assert workbench.page_view().run_ids == "bt-1,bt-2"
    assert {"dataset", "symbol"} <= set(page_class("freshness").param)
    assert {"symbol", "signal_id"} <= set(page_class("signals").param)
    assert isinstance(page_class("performance").param["run_ids"], param.String)


def test_every_page_keeps_the_contract_and_no_url_key_collides() -> None:
    """All four pages import, take (data_dir=, navigate=), have refresh() and URL_PARAMS naming
    their own parameters; the URL keys are unique across the workbench."""
    keys = url_keys()
    assert keys["page"] == ("workbench", "page")
    for page in PAGE_CLASSES:
        cls = page_class(page)
        signature = inspect.signature(cls.__init__)
        assert {"data_dir", "navigate"} <= set(signature.parameters), page
        assert callable(getattr(cls, "refresh", None)), page
        for name, key in cls.URL_PARAMS.items():
            assert name in cls.param, f"{page}.{name}"
            assert keys[key] == (page, name)
    assert {"fr_dataset", "fr_symbol", "fr_hours"} <= set(keys)
    assert len(keys) == 1 + sum(len(page_class(p).URL_PARAMS) for p in PAGE_CLASSES)


def test_the_url_and_the_parameters_follow_each_other(tmp_path: Path) -> None:
    """A URL opens the page it names with its parameters (a value the parameter rejects is
    ignored on its own, other keys are kept); later changes — a drill-down, a widget, the
    navigation — are written back."""
    settings = load_settings(env_file=None, data_dir=tmp_path)
    healthy_lake(Lake(settings.lake_dir), symbol="BTCUSDT", now_ms=NOW_MS)
    workbench = Workbench(
        data_dir=tmp_path,
        page_factories={
            "freshness": lambda **kw: FreshnessPage(settings=settings, clock=lambda: NOW_MS, **kw),
            "overview": stub_page("overview"),
        },
    )
    location = Location(
        search="?refresh=60&page=freshness&fr_dataset=funding&fr_symbol=BTCUSDT&fr_hours=5"
    )
    workbench.bind_location(location)
    workbench.__panel__()
    page = workbench.page_view()
    assert workbench.page == "freshness" and isinstance(page, FreshnessPage)
    assert (page.dataset, page.symbol, page.window_hours) == ("funding", "BTCUSDT", 24)
    assert "Freshness: funding · BTCUSDT" in str(page._header.object)
    workbench.open_freshness("candles", "BTCUSDT")
    query = location.query_params
    assert (query["page"], query["fr_dataset"], query["fr_symbol"]) == (
        "freshness",
        "candles",
        "BTCUSDT",
    )
    assert query["refresh"] == 60
    page._window_select.value = 6
    assert location.query_params["fr_hours"] == 6
    workbench._nav.value = "overview"
    assert location.query_params["page"] == "overview"
    assert location.query_params["fr_dataset"] == "candles"  # kept for the way back


def test_a_grid_cell_of_the_overview_opens_its_freshness_drill_down(tmp_path: Path) -> None:
    """Each cell of the Overview's grid links to its series (the URL of the drill-down in its
    href, the parameters in its click message); the click opens the Freshness page on it."""
    settings = load_settings(env_file=None, data_dir=tmp_path)
    lake = Lake(settings.lake_dir)
    healthy_lake(lake, symbol="BTCUSDT", now_ms=NOW_MS)
    write_snapshot(settings.state_dir, build_snapshot(lake, settings, now_ms=NOW_MS))
    workbench = Workbench(
        data_dir=tmp_path,
        page_factories={
            "overview": lambda **kw: Overview(settings=settings, clock=lambda: NOW_MS, **kw),
            "freshness": lambda **kw: FreshnessPage(settings=settings, clock=lambda: NOW_MS, **kw),
        },
    )
    workbench.__panel__()
    grid = workbench.page_view("overview").freshness()
    assert isinstance(grid, ClickableHTML)
    assert 'href="?page=freshness&amp;fr_dataset=candles&amp;fr_symbol=BTCUSDT"' in grid.object
    assert grid.object.count("data-nav=") == 4
    grid._handle_msg({"page": "freshness", "dataset": "candles", "symbol": "BTCUSDT"})
    page = workbench.page_view()
    assert workbench.page == "freshness" and (page.dataset, page.symbol) == ("candles", "BTCUSDT")
    assert "Freshness: candles 1m · BTCUSDT" in str(page._header.object)


def test_refresh_reaches_the_visible_page_only(tmp_path: Path) -> None:
    """The periodic refresh calls the shown page's refresh(); a page whose refresh raises
    does not stop it."""
    workbench = stubbed(tmp_path)
    workbench.__panel__()
    overview = workbench.page_view("overview")
    workbench.page = "freshness"
    freshness = workbench.page_view()
    before = overview.refreshes, freshness.refreshes
    workbench.refresh()
    assert (overview.refreshes, freshness.refreshes) == (before[0], before[1] + 1)

    def broken() -> None:
        raise OSError("lake unreadable")

    freshness.refresh = broken
    workbench.refresh()  # logged, not raised


class FakeCallback:
    """What the workbench uses of Panel's PeriodicCallback."""

    def __init__(self) -> None:
        self.period, self.running = 15_000, True

    def stop(self) -> None:
        self.running = False

    def start(self) -> None:
        self.running = True


def test_the_refresh_pauses_and_follows_its_interval(tmp_path: Path) -> None:
    """Pausing stops the callback, resuming starts it with the current interval; the sidebar
    says which; without a server session no callback is started."""
    workbench = stubbed(tmp_path, refresh_seconds=20)
    workbench.__panel__()
    assert workbench._callback is None
    assert "Auto-refresh: every 20s" in str(workbench._status.object)
    fake = FakeCallback()
    workbench._callback = fake
    workbench._pause.value = True
    assert workbench.paused and not fake.running
    assert "Auto-refresh: paused" in str(workbench._status.object)
    workbench.paused = False
    assert fake.running and fake.period == 20_000
    workbench.refresh_seconds = 60
    assert fake.period == 60_000 and "every 1m 0s" in str(workbench._status.object)


def test_a_page_that_cannot_be_built_says_so(tmp_path: Path) -> None:
    """A page whose module fails to import shows why instead of breaking the app."""

    def missing(**_: Any) -> Any:
        raise PageUnavailable("workbench.signals: No module named 'polars'")

    workbench = Workbench(data_dir=tmp_path, page_factories={"signals": missing})
    content = workbench.__panel__()
    workbench.page = "signals"
    assert workbench.page_view() is None
    assert "The Signals page is not available." in str(content.objects[0].object)
    assert "No module named 'polars'" in workbench.unavailable["signals"]


# Panel 1.9's Tabulator (the Signals page's table) calls reset_index(inplace=True), which
# pandas 3.1 deprecates: Panel's to fix, not a failure of the pages.
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
def test_every_real_page_builds_on_an_empty_data_dir(tmp_path: Path) -> None:
    """The four real pages, on a data root with nothing in it: each builds, refreshes and lays
    out without an exception."""
    (tmp_path / "lake").mkdir()
    workbench = Workbench(data_dir=tmp_path)
    content = workbench.__panel__()
    for page in PAGES:
        workbench.page = page
        view = workbench.page_view()
        assert view is not None, workbench.unavailable
        assert content.objects == [workbench.layout(page)]
        view.refresh()
        assert isinstance(view.__panel__(), pn.viewable.Viewable)
