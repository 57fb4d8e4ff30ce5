"""The dashboard loads in Chromium without console errors (the harness itself works)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.ui


def test_overview_loads_in_chromium(page: Any, demo_server: str) -> None:
    """/dashboard renders the overview with the demo symbols and no console error."""
    page.goto(f"{demo_server}/dashboard")
    # Panel renders into shadow roots: locators pierce them, page.content() does not.
    for symbol in ("BTCUSDT", "ETHUSDT"):
        page.get_by_text(symbol, exact=True).first.wait_for()
