"""The dashboard ``ingmon serve`` runs (``panel serve workbench/dashboard.py``), at /dashboard.

The workbench (``workbench.app.Workbench``): Overview, Freshness, Signals and Performance pages,
each page's state in the URL (``?page=freshness&fr_dataset=candles&fr_symbol=BTCUSDT``);
``?refresh=SECONDS`` sets how often the visible page reads its data again (1–3600, default 15).
"""

from __future__ import annotations

from typing import Any, ClassVar

import panel as pn
from panel.io.resources import CDN_DIST
from panel.theme.fast import Fast

from ingmon.config import load_settings
from workbench.app import DEFAULT_REFRESH_SECONDS, Workbench


class OfflineFast(Fast):  # type: ignore[misc]  # Panel is untyped
    """Panel's Fast design without its Google-hosted web font: the dashboard works offline
    (and makes no request to a third party) with the system's sans-serif.

    Panel resolves a design's relative resources under the class's own name
    (``offlinefast/…``, which does not exist), so Fast's script is named by its full bundled
    path, which Panel then serves from its own bundle."""

    _resources: ClassVar[dict[str, Any]] = {
        **Fast._resources,
        "font": {},
        "js_modules": {
            **Fast._resources["js_modules"],
            "fast-design": f"{CDN_DIST}bundled/fast/js/fast_design.js",
        },
    }


def _refresh_seconds(default: int = DEFAULT_REFRESH_SECONDS) -> int:
    """``?refresh=N`` of the page's URL, within 1..3600 (else the default)."""
    values = pn.state.session_args.get("refresh") if pn.state.session_args else None
    try:
        seconds = int(values[0]) if values else default
    except ValueError:
        return default
    return seconds if 1 <= seconds <= 3600 else default


# Pages are built on their first visit, after the page loaded: the resources of every page's
# components load with the page (the Signals and Performance tables are Tabulators).
pn.extension(
    "tabulator",
    disconnect_notification="Connection to the ingmon server lost: reload the page.",
)

workbench = Workbench(data_dir=load_settings().data_dir, refresh_seconds=_refresh_seconds())
pn.template.FastListTemplate(  # type: ignore[no-untyped-call]  # Panel is untyped
    title="ingmon workbench",
    sidebar=[workbench.sidebar()],
    main=[workbench],
    sidebar_width=220,
    header_background="#004488",
    design=OfflineFast,
    font="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
    font_url="",
).servable()
