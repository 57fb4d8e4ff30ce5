"""The Freshness drill-down in Chromium against a real ``ingmon serve``: opened from its URL,
its widgets write the URL, a reload keeps the view, and a URL naming an unknown dataset or
symbol says so instead of breaking."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ui.test_overview import href, query, wait_for_query

pytestmark = pytest.mark.ui


def test_the_url_opens_the_drill_down_and_the_widgets_write_it(page: Any, demo_server: str) -> None:
    """?page=freshness&fr_dataset=agg_trades&fr_symbol=ETHUSDT opens that series; picking
    another symbol and the 6 h window changes the view and the URL; a reload shows the same;
    back returns to the series before."""
    page.goto(f"{demo_server}/dashboard?page=freshness&fr_dataset=agg_trades&fr_symbol=ETHUSDT")
    page.get_by_text("Freshness: agg_trades · ETHUSDT").wait_for()
    page.get_by_text("Latency over time", exact=True).wait_for()
    assert query(page)["fr_symbol"] == "ETHUSDT"

    page.locator("select").nth(1).select_option("BTCUSDT")
    page.get_by_text("Freshness: agg_trades · BTCUSDT").wait_for()
    wait_for_query(page, page="freshness", fr_dataset="agg_trades", fr_symbol="BTCUSDT")
    page.get_by_role("button", name="6 h", exact=True).click()
    page.get_by_text("window: the 6 h to").wait_for()
    wait_for_query(page, fr_hours="6")
    url = href(page)

    page.reload()
    page.get_by_text("Freshness: agg_trades · BTCUSDT").wait_for()
    page.get_by_text("window: the 6 h to").wait_for()
    assert href(page) == url

    page.go_back()
    page.get_by_text("window: the 24 h to").wait_for()
    page.get_by_text("Freshness: agg_trades · BTCUSDT").wait_for()


def test_unknown_dataset_or_symbol_in_the_url(page: Any, demo_server: str) -> None:
    """A link naming a dataset or symbol the lake does not have: the page says which, and
    lists what there is."""
    page.goto(f"{demo_server}/dashboard?page=freshness&fr_dataset=klines&fr_symbol=BTCUSDT")
    page.get_by_text("Unknown dataset “klines”.").wait_for()
    page.get_by_text("candles, agg_trades, open_interest, funding").wait_for()
    page.goto(f"{demo_server}/dashboard?page=freshness&fr_dataset=candles&fr_symbol=DOGEUSDT")
    page.get_by_text("No data stored for symbol “DOGEUSDT”.").wait_for()
    page.get_by_text("Symbols in the lake: BTCUSDT, ETHUSDT.").wait_for()
