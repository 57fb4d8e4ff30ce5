"""The fill engine on hand-worked bars, against brute-force loops, and without lookahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingmon.backtest.engine import BacktestConfig, Bars, run_backtest, session_of
from ingmon.errors import UsageError
from ingmon.signals.features import SESSION_NAMES, session_labels
from tests.backtest._market import MINUTE_MS, START_MS, random_bars, random_signals


def bars_of(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    """Bars from (open, high, low, close) rows, one minute apart from START_MS."""
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"])
    frame.insert(0, "open_time", START_MS + np.arange(len(rows), dtype=np.int64) * MINUTE_MS)
    return frame


def signals_at(*items: tuple[int, int], **columns: list[float]) -> pd.DataFrame:
    """Signals on (bar index, direction), known at that 1m bar's close."""
    times = [START_MS + bar * MINUTE_MS for bar, _ in items]
    frame = pd.DataFrame({"time": times, "direction": [d for _, d in items]})
    frame["known_ms"] = frame["time"] + MINUTE_MS
    for name, values in columns.items():
        frame[name] = values
    return frame


FLAT = (100.0, 100.5, 99.5, 100.0)


def test_time_exit_enters_at_next_open_and_exits_at_open_after_hold_bars() -> None:
    """Signal on bar 0 → entry at bar 1's open (101); hold 3 → exit at bar 4's open (104);
    fees 0.1 % a side on notional: net = 104/101 − 1 − 0.001·(1 + 104/101)."""
    bars = bars_of([(100, 100, 100, 100), (101, 101, 101, 101), (102, 102, 102, 102),
                    (103, 103, 103, 103), (104, 104, 104, 104), (105, 105, 105, 105)])  # fmt: skip
    config = BacktestConfig(hold_bars=3, fee_rate=0.001, notional=1010.0)
    trade = run_backtest(bars, signals_at((0, 1)), config=config).trades.iloc[0]
    assert (trade.entry_bar, trade.entry_price, trade.exit_bar, trade.exit_price) == (
        1,
        101,
        4,
        104,
    )
    assert trade.exit_reason == "time"
    assert trade.qty == pytest.approx(10.0)
    assert trade.net_return == pytest.approx(3 / 101 - 0.001 * (205 / 101), rel=1e-12)
    assert trade.pnl == pytest.approx(10 * 3 - 1.01 - 1.04, rel=1e-12)
    assert trade.fees == pytest.approx(2.05, rel=1e-12)
    assert trade.entry_time == START_MS + MINUTE_MS and trade.exit_time == START_MS + 4 * MINUTE_MS


def test_stop_fills_at_the_level_or_at_a_gapped_open() -> None:
    """A long with a 2 % stop from 100: touched inside a bar → 98; a bar opening at 97 below
    the stop → 97 (the open), as a stop-market order would fill."""
    inside = bars_of([FLAT, (100, 100.5, 99, 99.5), (99.5, 99.6, 97.5, 99), FLAT])
    gapped = bars_of([FLAT, (100, 100.5, 99, 99.5), (97, 97.5, 96, 97), FLAT])
    config = BacktestConfig(stop_pct=0.02, fee_rate=0.0)
    first = run_backtest(inside, signals_at((0, 1)), config=config).trades.iloc[0]
    second = run_backtest(gapped, signals_at((0, 1)), config=config).trades.iloc[0]
    assert (first.exit_reason, first.exit_bar, first.exit_price) == ("stop", 2, 98.0)
    assert (second.exit_reason, second.exit_bar, second.exit_price) == ("stop", 2, 97.0)
    assert first.r_multiple == pytest.approx(-1.0)
    assert second.r_multiple == pytest.approx(-1.5)


def test_stop_and_target_in_one_bar_fill_the_stop_unless_the_bar_opens_past_the_target() -> None:
    """Short from 100, stop 1 % (101), target 2 % (98): a bar spanning 97–102 is a stop at
    101; a bar opening at 97.5 (below the target) fills the target at that better open."""
    both = bars_of([FLAT, (100, 100.2, 99.8, 100), (100, 102, 97, 100), FLAT])
    opened_past = bars_of([FLAT, (100, 100.2, 99.8, 100), (97.5, 102, 97, 100), FLAT])
    config = BacktestConfig(stop_pct=0.01, take_profit_pct=0.02, fee_rate=0.0)
    stop = run_backtest(both, signals_at((0, -1)), config=config).trades.iloc[0]
    target = run_backtest(opened_past, signals_at((0, -1)), config=config).trades.iloc[0]
    assert (stop.exit_reason, stop.exit_price) == ("stop", 101.0)
    assert stop.net_return == pytest.approx(-0.01)
    assert (target.exit_reason, target.exit_price) == ("target", 97.5)
    assert target.net_return == pytest.approx(0.025)


def test_signal_levels_and_atr_multiples_set_the_bracket() -> None:
    """The signal's own stop/target win where given; ATR multiples use the signal's atr."""
    bars = bars_of([FLAT, FLAT, (100, 103.5, 99.5, 103), FLAT])
    own = signals_at((0, 1), stop_price=[95.0], target_price=[103.0])
    trade = run_backtest(
        bars, own, config=BacktestConfig(signal_levels=True, stop_pct=0.001, fee_rate=0)
    ).trades.iloc[0]
    assert (trade.stop_price, trade.target_price, trade.exit_price) == (95.0, 103.0, 103.0)
    atr = signals_at((0, 1), atr=[2.0])
    trade = run_backtest(
        bars, atr, config=BacktestConfig(stop_atr=1.0, take_profit_atr=1.5, fee_rate=0)
    ).trades.iloc[0]
    assert (trade.stop_price, trade.target_price) == (98.0, 103.0)
    assert (trade.exit_reason, trade.exit_bar, trade.exit_price) == ("target", 2, 103.0)


@pytest.mark.parametrize(
    ("direction", "own_stop", "own_target"),
    [
        (1, 100.5, 99.0),  # a long: stop above the entry at 100, target below it
        (-1, 99.0, 101.0),  # a short: stop below, target above
        (1, -5.0, 0.0),  # non-positive
        (-1, float("inf"), -1.0),  # not finite, negative
    ],
)
def test_own_levels_on_the_wrong_side_of_the_fill_are_ignored_and_counted(
    direction: int, own_stop: float, own_target: float
) -> None:
    """A signal's own stop/target that cannot bracket the entry at 100 is not used: no 0-bar
    "target" exit at the entry bar, the 2 % percent stop and the 3-bar time exit apply (flat
    bars: the position leaves at bar 4's open, 100), and both refusals are counted."""
    bars = bars_of([FLAT] * 6)
    signals = signals_at((0, direction), stop_price=[own_stop], target_price=[own_target])
    config = BacktestConfig(signal_levels=True, stop_pct=0.02, hold_bars=3, fee_rate=0.001)
    result = run_backtest(bars, signals, config=config)
    (trade,) = result.trades.itertuples()
    assert (trade.exit_reason, trade.entry_bar, trade.exit_bar) == ("time", 1, 4)
    assert trade.stop_price == pytest.approx(100 * (1 - direction * 0.02))
    assert np.isnan(trade.target_price)
    assert result.own_levels_ignored == 2


def test_usable_own_levels_are_not_counted() -> None:
    """Levels on the right side of the fill are used as given and nothing is counted."""
    bars = bars_of([FLAT] * 6)
    signals = signals_at((0, -1), stop_price=[101.0], target_price=[99.6])
    result = run_backtest(bars, signals, config=BacktestConfig(signal_levels=True, fee_rate=0))
    trade = result.trades.iloc[0]
    assert (trade.stop_price, trade.target_price) == (101.0, 99.6)
    assert (trade.exit_reason, trade.exit_bar, trade.exit_price) == ("target", 1, 99.6)
    assert result.own_levels_ignored == 0


def test_one_position_at_a_time_and_opposite_signals() -> None:
    """While long, a second long is skipped; an opposite signal closes at its entry open
    (``close``) or also opens the other way (``reverse``); ``ignore`` keeps holding."""
    bars = bars_of([FLAT] * 3 + [(101, 101, 101, 101)] * 3 + [(99, 99, 99, 99)] * 4)
    signals = signals_at((0, 1), (1, 1), (4, -1))
    ignore = run_backtest(bars, signals, config=BacktestConfig(fee_rate=0)).trades
    assert len(ignore) == 1 and ignore.iloc[0].exit_reason == "end"
    close = run_backtest(bars, signals, config=BacktestConfig(opposite="close", fee_rate=0))
    assert close.trades[["entry_bar", "exit_bar", "exit_reason"]].values.tolist() == [
        [1, 5, "opposite"]
    ]
    assert close.skipped["in_position"] == 1
    reverse = run_backtest(bars, signals, config=BacktestConfig(opposite="reverse", fee_rate=0))
    assert reverse.trades[
        ["direction", "entry_bar", "exit_bar", "exit_reason"]
    ].values.tolist() == [
        ["long", 1, 5, "opposite"],
        ["short", 5, 9, "end"],
    ]
    assert reverse.trades.iloc[1].exit_price == 99.0  # the end: the last bar's close


def test_entry_delay_and_signals_without_an_entry_bar() -> None:
    """entry_delay_bars=2 enters one bar later; a signal on the last bar has no entry bar."""
    bars = bars_of([FLAT, (101, 101, 101, 101), (102, 102, 102, 102), FLAT])
    result = run_backtest(
        bars, signals_at((0, 1), (3, 1)), config=BacktestConfig(entry_delay_bars=2, hold_bars=1)
    )
    assert result.trades[["entry_bar", "entry_price", "exit_bar"]].values.tolist() == [[2, 102, 3]]
    assert result.skipped["no_entry_bar"] == 1


def test_slippage_is_adverse_on_both_sides() -> None:
    """10 bps: a long buys 0.1 % above the open and sells 0.1 % below; a short the opposite."""
    bars = bars_of([FLAT, FLAT, (110, 110, 110, 110), FLAT])
    config = BacktestConfig(hold_bars=1, slippage_bps=10, fee_rate=0)
    long = run_backtest(bars, signals_at((0, 1)), config=config).trades.iloc[0]
    short = run_backtest(bars, signals_at((0, -1)), config=config).trades.iloc[0]
    assert (long.entry_price, long.exit_price) == pytest.approx((100.1, 109.89))
    assert (short.entry_price, short.exit_price) == pytest.approx((99.9, 110.11))
    assert long.slippage == pytest.approx(long.qty * (0.1 + 0.11))


def test_funding_is_rate_times_position_notional_at_each_event_while_open() -> None:
    """A long of 10 units from bar 1's open to bar 5's open: the event at the entry instant is
    not paid, those strictly after it up to the exit instant are (−qty·mark·rate each; a
    missing mark is the open of the bar at that time); a short receives the same."""
    bars = bars_of([FLAT] + [(100, 101, 99, 100)] * 6)
    t = [START_MS + minutes * MINUTE_MS for minutes in (1, 2, 3, 5, 6)]
    funding = pd.DataFrame(
        {
            "funding_time": t,
            "funding_rate": [0.5, 0.001, -0.0004, 0.0002, 0.7],
            "mark_price": [1.0, 100.2, 99.8, np.nan, 1.0],
        }
    )
    config = BacktestConfig(hold_bars=4, fee_rate=0.0, notional=1000.0)
    long = run_backtest(bars, signals_at((0, 1)), config=config, funding=funding).trades.iloc[0]
    short = run_backtest(bars, signals_at((0, -1)), config=config, funding=funding).trades.iloc[0]
    paid = 10 * (100.2 * 0.001 + 99.8 * -0.0004 + 100.0 * 0.0002)
    assert long.funding == pytest.approx(-paid, rel=1e-12)
    assert short.funding == pytest.approx(paid, rel=1e-12)
    assert long.pnl == pytest.approx(-paid, rel=1e-12)  # flat prices, no fees
    assert long.net_return == pytest.approx(-paid / 1000, rel=1e-12)


def brute_force_equity(bars: pd.DataFrame, trades: pd.DataFrame, initial: float) -> np.ndarray:
    """Equity at each bar close by walking the bars: cash after every closed trade, plus the
    open trade's move minus its entry fee (no funding in this market)."""
    close = bars["close"].to_numpy()
    out = np.empty(len(bars))
    for i in range(len(bars)):
        value = initial
        for trade in trades.itertuples():
            side = 1 if trade.direction == "long" else -1
            if trade.exit_bar <= i:
                value += trade.pnl
            elif trade.entry_bar <= i:
                value += side * trade.qty * (close[i] - trade.entry_price) - trade.fee_entry
        out[i] = value
    return out


@pytest.mark.parametrize("sizing", ["notional", "fraction"])
def test_equity_curve_matches_a_bar_by_bar_walk(sizing: str) -> None:
    """Mark-to-market equity equals a brute-force walk; fixed-fraction sizes compound on the
    equity at each entry (qty·entry = fraction × equity before the trade)."""
    bars = random_bars(11, 600)
    signals = random_signals(11, bars, probability=0.05)
    config = BacktestConfig(
        hold_bars=15, stop_pct=0.004, take_profit_pct=0.006, slippage_bps=2,
        opposite="reverse", sizing=sizing, fraction=0.5,  # type: ignore[arg-type]
    )  # fmt: skip
    result = run_backtest(bars, signals, config=config)
    trades = result.trades
    assert len(trades) > 10
    np.testing.assert_allclose(result.equity, brute_force_equity(bars, trades, 10_000.0))
    if sizing == "fraction":
        before = 10_000.0 + np.concatenate(([0.0], np.cumsum(trades["pnl"].to_numpy())[:-1]))
        np.testing.assert_allclose(trades["notional"], 0.5 * before, rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_truncating_the_data_never_changes_trades_that_closed_before(seed: int) -> None:
    """No lookahead: cut the bars after bar T; every trade of the full run that exited at or
    before T is identical in the cut run, field by field, and vice versa."""
    bars = random_bars(seed, 1_500)
    signals = random_signals(seed, bars, probability=0.04)
    funding = pd.DataFrame(
        {
            "funding_time": START_MS + np.arange(7, 1500, 97) * MINUTE_MS,
            "funding_rate": np.linspace(-0.001, 0.001, len(range(7, 1500, 97))),
        }
    )
    config = BacktestConfig(
        hold_bars=25, stop_atr=1.5, take_profit_pct=0.01, opposite="reverse", slippage_bps=1,
        sizing="fraction",
    )  # fmt: skip
    full = run_backtest(bars, signals, config=config, funding=funding).trades
    for cut in np.random.default_rng(seed).integers(50, 1_500, 12):
        part = run_backtest(bars.iloc[: cut + 1], signals, config=config, funding=funding).trades
        done = full[full["exit_bar"] <= cut].reset_index(drop=True)
        kept = part[part["exit_reason"] != "end"].reset_index(drop=True)
        pd.testing.assert_frame_equal(done, kept)


def test_sessions_follow_the_fixed_utc_table() -> None:
    """Sessions by the signal bar's open, with the signal engine's labels (reference §4, typed
    out here): 06:59 Asia, 07:00 the Asia/London overlap, 13:30 the London/NY overlap, 21:00
    off hours, any Saturday hour weekend (2026-01-01 is a Thursday)."""
    hour = 3_600_000
    day = 24 * hour
    times = np.array([6 * hour + 59 * MINUTE_MS, 7 * hour, 13 * hour + 30 * MINUTE_MS, 21 * hour])
    assert session_of(START_MS + times).tolist() == [
        "asia",
        "asia_london_overlap",
        "london_ny_overlap",
        "off_hours",
    ]
    assert session_of(np.array([START_MS + 2 * day + 12 * hour])).tolist() == ["weekend"]


def test_trade_sessions_carry_the_signal_engines_labels() -> None:
    """The trades' session column (and so the breakdown by session) uses the labels of the
    signal engine's audit records: SESSION_NAMES of session_labels of the signal bar."""
    bars = random_bars(5, 3 * 1440)
    signals = random_signals(5, bars, probability=0.02)
    trades = run_backtest(bars, signals, config=BacktestConfig(hold_bars=5)).trades
    assert list(trades["session"].cat.categories) == list(SESSION_NAMES)
    expected = [SESSION_NAMES[i] for i in session_labels(trades["signal_time"].to_numpy())]
    assert trades["session"].astype(str).tolist() == expected
    assert {"asia_london_overlap", "london_ny_overlap", "weekend"} <= set(expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hold_bars": 0}, "hold_bars must be an integer >= 1"),
        ({"stop_pct": -0.01}, "stop_pct must be > 0"),
        ({"stop_pct": 0.01, "stop_atr": 1.0}, "stop_pct and stop_atr exclude each other"),
        ({"fee_rate": 0.5}, "fee_rate is a fraction"),
        ({"sizing": "kelly"}, "sizing must be notional|fraction"),
    ],
)
def test_bad_configs_say_which_field(options: dict[str, object], message: str) -> None:
    """A config that cannot work is a UsageError naming the field."""
    with pytest.raises(UsageError, match=message):
        BacktestConfig(**options)  # type: ignore[arg-type]


def test_bars_from_a_frame_infer_the_interval() -> None:
    """Bars.from_frame takes the most common step as the bar length (a gap does not fool it)."""
    frame = bars_of([FLAT] * 5)
    frame.loc[4, "open_time"] += 10 * MINUTE_MS
    assert Bars.from_frame(frame).bar_ms == MINUTE_MS
