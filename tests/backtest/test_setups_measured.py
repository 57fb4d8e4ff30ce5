"""The signal engine's setups backtested on the simulated market (90 days × 3 symbols, taker
fees, slippage and funding): no setup shows an edge the market does not have, and
docs/backtesting.md carries exactly these numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingmon.backtest import trade_metrics

from ._setups import WINDOWS, Measured, measure, tables

DOCS = Path(__file__).resolve().parents[2] / "docs" / "backtesting.md"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured() -> Measured:
    return measure()


def test_every_setup_trades_in_every_window(measured: Measured) -> None:
    """Each setup and window has trades (of that setup only), and longer windows hold more."""
    for (setup, label), trades in measured.trades.items():
        assert len(trades) > 0, (setup, label)
        if setup != "all":
            assert set(trades["setup"]) == {setup}
    for setup in {setup for setup, _ in measured.trades}:
        counts = [len(measured.trades[setup, f"{days}d"]) for days in WINDOWS]
        assert counts == sorted(counts), (setup, counts)


def test_costs_are_charged_and_no_setup_beats_them_by_chance(measured: Measured) -> None:
    """Fees are 2 × 0.05 % of notional on every trade, and pooled over every setup the market
    without an edge shows none: expectancy below zero after costs, within a few standard
    errors of minus the round-trip cost."""
    everything = measured.trades[("all", "90d")]
    fee_share = everything["fees"].sum() / everything["notional"].sum()
    assert fee_share == pytest.approx(0.0010, rel=0.02)
    metrics = trade_metrics(everything)
    returns = everything["net_return"]
    standard_error = returns.std(ddof=1) / len(returns) ** 0.5
    assert metrics["expectancy"] < 0
    assert abs(metrics["expectancy"] + 0.0012) < 4 * standard_error


def test_docs_show_the_measured_tables(measured: Measured) -> None:
    """docs/backtesting.md carries exactly the tables this measurement prints."""
    assert tables(measured) in DOCS.read_text(encoding="utf-8")
