"""The workbench: one page at a time (Overview, Freshness, Signals, Performance), every page's
state in the URL, refreshed while it is visible.

``Workbench`` owns what the pages share: the ``page`` parameter and the navigation, the pages
themselves (each built on its first visit), the URL (``page`` and every page's ``URL_PARAMS``
kept in sync both ways through ``pn.state.location``: a link or a reload shows the same view,
back and forward step through the views), the periodic refresh of the visible page
(``?refresh=SECONDS``, pausable) and ``navigate(page, **params)``, which every page receives to
open a drill-down.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import panel as pn
import param
from panel.custom import JSComponent

from workbench.plots import empty_state, format_duration, html_pane

__all__ = [
    "DEFAULT_REFRESH_SECONDS",
    "PAGES",
    "PAGE_CLASSES",
    "HistoryFollower",
    "PageUnavailable",
    "Workbench",
    "page_class",
    "url_keys",
]

logger = logging.getLogger(__name__)

# page → its title in the navigation
PAGES: Mapping[str, str] = {
    "overview": "Overview",
    "freshness": "Freshness",
    "signals": "Signals",
    "performance": "Performance",
}
# page → (module, class): imported on the page's first visit
PAGE_CLASSES: Mapping[str, tuple[str, str]] = {
    "overview": ("workbench.overview", "Overview"),
    "freshness": ("workbench.freshness", "FreshnessPage"),
    "signals": ("workbench.signals", "SignalsPage"),
    "performance": ("workbench.performance", "PerformancePage"),
}
DEFAULT_REFRESH_SECONDS = 15


class PageUnavailable(Exception):
    """A page's module cannot be imported."""


def page_class(page: str) -> type[Any]:
    """The Viewer class of ``page`` (its module imported now)."""
    module_name, class_name = PAGE_CLASSES[page]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PageUnavailable(f"{module_name}: {error}") from error
    return getattr(module, class_name)  # type: ignore[no-any-return]


def url_keys() -> dict[str, tuple[str, str]]:
    """Every query-string key the workbench uses → (page, parameter); ``page`` itself is the
    workbench's. A page that cannot be imported is left out."""
    keys: dict[str, tuple[str, str]] = {"page": ("workbench", "page")}
    for page in PAGE_CLASSES:
        try:
            params = page_class(page).URL_PARAMS
        except PageUnavailable:
            continue
        for name, key in params.items():
            if key in keys:
                raise ValueError(f"URL key {key!r} of {page}.{name} is taken by {keys[key]}")
            keys[key] = (page, name)
    return keys


class HistoryFollower(JSComponent):  # type: ignore[misc]  # Panel is untyped
    """The browser's back and forward buttons: Panel pushes each URL change onto the history
    but does not follow the history back, so a step back or forward reloads the URL it lands
    on (every view is rebuilt from its URL)."""

    _esm = """
    export function render() {
      if (!window.__ingmonPopstate) {
        window.__ingmonPopstate = true;
        window.addEventListener("popstate", () => window.location.reload());
      }
      return document.createElement("span");
    }
    """


class Workbench(pn.viewable.Viewer):
    """The app. ``page`` says which page is shown; pages are built on their first visit with
    ``(data_dir=…, navigate=self.navigate)`` and refreshed every ``refresh_seconds`` while
    visible, unless ``paused``."""

    page = param.Selector(objects=list(PAGES), default="overview", doc="The page shown")
    refresh_seconds = param.Integer(
        default=DEFAULT_REFRESH_SECONDS, bounds=(1, 3600), doc="Seconds between refreshes"
    )
    paused = param.Boolean(default=False, doc="Auto-refresh paused")

    def __init__(
        self,
        *,
        data_dir: Path,
        page_factories: Mapping[str, Callable[..., Any]] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self.data_dir = Path(data_dir)
        self._factories = dict(page_factories or {})
        self._pages: dict[str, Any] = {}
        self._layouts: dict[str, pn.viewable.Viewable] = {}
        self._failed: dict[str, str] = {}
        self._content = pn.Column(sizing_mode="stretch_width", min_height=400)
        self._callback: Any = None
        self._location: Any = None  # pn.state.location in a server session
        self._ready = False  # the content is shown (in a session: once the page has loaded)
        self._nav = pn.widgets.RadioButtonGroup(
            options={title: name for name, title in PAGES.items()},
            value=self.page,
            orientation="vertical",
            color="primary",
            variant="outline",
            sizing_mode="stretch_width",
        )
        self._nav.param.watch(lambda event: setattr(self, "page", event.new), "value")
        self._pause = pn.widgets.Toggle.from_param(
            self.param.paused, label="Pause auto-refresh", color="default"
        )
        self._now = pn.widgets.Button(label="⟳ Refresh now", color="default")
        self._now.on_click(lambda _: self.refresh())
        self._status = html_pane("")
        self.param.watch(self._page_changed, "page")
        self.param.watch(self._timing_changed, ["paused", "refresh_seconds"])
        self._describe_refresh()

    # ---- pages ----

    def page_view(self, page: str | None = None) -> Any:
        """The page object of ``page`` (default: the one shown), built on first use; None
        when its module cannot be imported (the reason is in ``unavailable``)."""
        name = page or self.page
        if name in self._pages:
            return self._pages[name]
        if name in self._failed:
            return None
        try:
            factory = self._factories.get(name) or page_class(name)
            view = factory(data_dir=self.data_dir, navigate=self.navigate)
        except PageUnavailable as error:
            logger.warning("page %s unavailable: %s", name, error)
            self._failed[name] = str(error)
            return None
        if "refresh_seconds" in view.param:
            view.refresh_seconds = self.refresh_seconds
        self._pages[name] = view
        self._sync_url(view)
        return view

    @property
    def unavailable(self) -> dict[str, str]:
        """Pages that could not be built, with why."""
        return dict(self._failed)

    def navigate(self, page: str, **params: Any) -> None:
        """Show ``page`` with its parameters set to ``params`` (a drill-down): one history
        entry in the browser. Unknown parameter names are a ValueError."""
        if page not in PAGES:
            raise ValueError(f"unknown page {page!r}: expected one of {', '.join(PAGES)}")
        with pn.io.hold():
            view = self.page_view(page)
            if view is not None and params:
                unknown = [name for name in params if name not in view.param]
                if unknown:
                    raise ValueError(f"{page} has no parameter {', '.join(unknown)}")
                view.param.update(**params)
            self.page = page

    def open_freshness(self, dataset: str, symbol: str) -> None:
        """The Freshness drill-down of one dataset × symbol."""
        self.navigate("freshness", dataset=dataset, symbol=symbol)

    def open_signals(self, symbol: str, signal_id: str | None = None) -> None:
        """The Signals drill-down of a symbol, optionally with one signal selected."""
        self.navigate("signals", symbol=symbol, signal_id=signal_id or "")

    def open_performance(self, run_ids: list[str]) -> None:
        """The Performance drill-down comparing saved runs (its ``run_ids`` parameter is the
        comma-separated list, as in the URL)."""
        self.navigate("performance", run_ids=",".join(run_ids))

    def refresh(self) -> None:
        """Refresh the visible page (the periodic callback calls this)."""
        view = self.page_view()
        if view is None:
            return
        try:
            view.refresh()
        except Exception:  # one failing read never stops the refresh of later ticks
            logger.exception("refresh of the %s page failed", self.page)

    # ---- URL and timing ----

    def bind_location(self, location: Any) -> None:
        """Keep ``page`` and every page's URL parameters in step with ``location`` (Panel's
        ``pn.state.location``): the URL's values apply now — to a page when it is built —
        and later changes go to the URL, each a history entry."""
        self._location = location
        location.sync(self, {"page": "page"})
        for view in self._pages.values():
            self._sync_url(view)

    def _sync_url(self, view: Any) -> None:
        """``view``'s URL parameters and the URL, in step; one key at a time, so a value in
        the URL that a parameter rejects (a stale or hand-edited link) is ignored alone."""
        if self._location is None:
            return
        for name, key in getattr(view, "URL_PARAMS", {}).items():
            self._location.sync(view, {name: key})

    def _page_changed(self, event: Any) -> None:
        self._nav.value = event.new
        if self._ready:
            self._show()

    def _show(self) -> None:
        """Put the current page in the content area and bring its data up to date."""
        self._ready = True
        view = self.page_view()
        if view is None:
            reason = self._failed.get(self.page, "")
            self._content.objects = [
                html_pane(
                    empty_state(
                        f"The {PAGES[self.page]} page is not available.",
                        f'<span class="ingmon-muted">{reason}</span>',
                    )
                )
            ]
            return
        self.refresh()
        self._content.objects = [self.layout(self.page)]

    def layout(self, page: str) -> pn.viewable.Viewable:
        """The laid-out page (its ``__panel__``), built once."""
        if page not in self._layouts:
            self._layouts[page] = pn.panel(self.page_view(page))
        return self._layouts[page]

    def _describe_refresh(self) -> None:
        every = format_duration(self.refresh_seconds)
        state = "paused" if self.paused else f"every {every}"
        self._status.object = f'<div class="ingmon-muted">Auto-refresh: {state}</div>'

    def _timing_changed(self, *_: Any) -> None:
        self._describe_refresh()
        callback = self._callback
        if callback is None:
            return
        if self.paused:
            callback.stop()
            return
        if callback.period != self.refresh_seconds * 1000:
            callback.period = self.refresh_seconds * 1000
        if not callback.running:
            callback.start()

    # ---- layout ----

    def sidebar(self) -> pn.Column:
        """Navigation and the refresh controls."""
        return pn.Column(
            self._nav,
            pn.layout.Divider(),
            self._pause,
            self._now,
            self._status,
            HistoryFollower(width=0, height=0, margin=0),
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        if self._ready:
            return self._content
        location = None
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            location = pn.state.location  # None outside a server session
        if location is None:
            self._show()
            return self._content
        self.bind_location(location)
        self._callback = pn.state.add_periodic_callback(
            self.refresh, period=self.refresh_seconds * 1000, start=not self.paused
        )
        # The page renders first; its content (reads, plots) right after it loaded.
        self._content.objects = [html_pane('<div class="ingmon-empty">Loading…</div>')]
        pn.state.onload(self._show)
        return self._content
