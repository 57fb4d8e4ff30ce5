"""The dashboard ``ingmon serve`` runs (``panel serve workbench/dashboard.py``), at /dashboard.

The Overview page for now; ``?refresh=SECONDS`` sets how often it reads the state again.
"""

from __future__ import annotations

import panel as pn
from panel.theme.fast import Fast

from workbench.overview import Overview

# Panel's Fast design (FastListTemplate) links the Open Sans web font from fonts.googleapis.com;
# the dashboard runs offline and makes no third-party request, so it uses the system font.
# (A subclass would move the design's bundled JS to a path Panel does not serve.)
Fast._resources = {**Fast._resources, "font": {}}


def _refresh_seconds(default: int = 15) -> int:
    """``?refresh=N`` of the page's URL, within 1..3600 (else the default)."""
    values = pn.state.session_args.get("refresh") if pn.state.session_args else None
    try:
        seconds = int(values[0]) if values else default
    except ValueError:
        return default
    return seconds if 1 <= seconds <= 3600 else default


pn.extension(disconnect_notification="Connection to the ingmon server lost: reload the page.")

overview = Overview(refresh_seconds=_refresh_seconds())
pn.template.FastListTemplate(  # type: ignore[no-untyped-call]  # Panel is untyped
    title="ingmon · Overview",
    main=[overview],
    header_background="#004488",
    font="system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif",
    font_url="",
).servable()
