"""The backtest engine side by side with backtesting.py and vectorbt.

Data: 90 days of BTCUSDT 1m candles (129,600 bars) from the local simulator (seed 7), never
the internet. Cases:

- SMA(20)/SMA(60) cross, long only: enter at the next open after a cross up, exit at the next
  open after a cross down, 4 bps fee per side. Run only, and run + full statistics; warm
  (in-process, after a first call) and cold (a fresh process: import + first run).
- A 200-combination sweep (10 fast × 20 slow SMA windows) vs vectorbt's one-call sweep.
- ingmon alone: a stop/target/time-exit bracket on 1 signal per ~3 hours with funding, and on
  the signal engine's own scored signals of the same 90 days.

Peers are optional (``make bench`` installs them: the ``bench`` extra); a missing one is
skipped with a message. All engines must agree on the SMA trade count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks._harness import Case, median_seconds, print_table
from ingmon.backtest import REPORT_BRACKET, BacktestConfig, Bars, run_backtest, summarize, sweep
from ingmon.exchange.market import Market
from ingmon.signals.frame import MarketInputs
from ingmon.times import DAY_MS

__all__ = ["main"]

DAYS = 90
NOW_MS = 1_785_542_400_000 + DAYS * DAY_MS  # 2026-10-30T00:00:00Z
FEE = 0.0004
FAST, SLOW = 20, 60
SWEEP_FAST = tuple(range(5, 55, 5))  # 10 windows
SWEEP_SLOW = tuple(range(60, 260, 10))  # 20 windows → 200 combinations
OURS = "ingmon"


def market_bars() -> tuple[MarketInputs, pd.DataFrame, pd.DataFrame]:
    """The simulator's BTCUSDT over the last 90 days, generated once: the signal engine's
    inputs, its 1m candles as a frame, and the funding settlements with their mark price."""
    from benchmarks.bench_signals import simulated_inputs

    market = Market.demo(symbols=["BTCUSDT"], days=DAYS, seed=7, now_ms=NOW_MS)
    start = NOW_MS - DAYS * DAY_MS
    inputs = simulated_inputs(market, start_ms=start, end_ms=NOW_MS)
    minutes = inputs.minutes
    frame = pd.DataFrame(
        {
            "open_time": minutes.open_time_ms,
            "open": minutes.open,
            "high": minutes.high,
            "low": minutes.low,
            "close": minutes.close,
            "volume": minutes.volume,
        }
    )
    rates = market.funding("BTCUSDT", start, NOW_MS - 1)
    price = 10.0 ** -market.spec("BTCUSDT").price_decimals
    funding = pd.DataFrame(
        {
            "funding_time": rates.funding_time_ms,
            "funding_rate": rates.funding_rate,
            "mark_price": rates.mark_price_ticks * price,
        }
    )
    return inputs, frame, funding


def sma(values: np.ndarray, window: int) -> np.ndarray:
    sums = np.concatenate(([0.0], np.cumsum(values)))
    out = np.full(len(values), np.nan)
    out[window - 1 :] = (sums[window:] - sums[:-window]) / window
    return out


def cross_signals(bars: Bars, fast: np.ndarray, slow: np.ndarray) -> pd.DataFrame:
    """+1 on the bar where fast closes above slow, −1 where it closes back below."""
    above = fast > slow
    valid = ~np.isnan(slow)
    change = np.flatnonzero((above[1:] != above[:-1]) & valid[:-1]) + 1
    times = bars.open_time_ms[change]
    return pd.DataFrame(
        {
            "time": times,
            "direction": np.where(above[change], 1, -1).astype(np.int8),
            "known_ms": times + bars.bar_ms,
        }
    )


SMA_CONFIG = BacktestConfig(
    opposite="close", directions="long", fee_rate=FEE, notional=1e6, initial_equity=1e6
)


def ours_sma(bars: Bars, *, stats: bool) -> int:
    signals = cross_signals(bars, sma(bars.close, FAST), sma(bars.close, SLOW))
    result = run_backtest(bars, signals, config=SMA_CONFIG)
    if stats:
        summarize(result)
    return len(result.trades)


def ours_sweep(bars: Bars) -> int:
    averages = {w: sma(bars.close, w) for w in (*SWEEP_FAST, *SWEEP_SLOW)}
    candidates = [
        ({"fast": f, "slow": s}, cross_signals(bars, averages[f], averages[s]), SMA_CONFIG)
        for f in SWEEP_FAST
        for s in SWEEP_SLOW
    ]
    return len(sweep(bars, candidates))


# ---- peers ----------------------------------------------------------------------------------


def _vectorbt() -> Any:
    try:
        import vectorbt
    except ImportError as error:
        print(f"  vectorbt skipped: cannot import it ({error}); `make bench` installs it")
        return None
    return vectorbt


def _backtesting() -> Any:
    try:
        import backtesting
    except ImportError as error:
        print(f"  backtesting.py skipped: cannot import it ({error})")
        return None
    import backtesting.backtesting as engine

    engine._tqdm = lambda sequence, **_: sequence  # no progress bar between the tables
    return backtesting


def vectorbt_sma(vbt: Any, frame: pd.DataFrame, *, stats: bool) -> int:
    """Next-open fills: the cross signals shifted one bar, filled at the open."""
    close = frame["close"]
    fast = vbt.MA.run(close, FAST)
    slow = vbt.MA.run(close, SLOW)
    entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
    exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
    portfolio = vbt.Portfolio.from_signals(
        close, entries, exits, price=frame["open"], fees=FEE, init_cash=1e6, freq="1min"
    )
    if stats:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            portfolio.stats()
    return int(portfolio.trades.count())


def vectorbt_sweep(vbt: Any, frame: pd.DataFrame) -> int:
    close = frame["close"]
    fast_windows = [f for f in SWEEP_FAST for _ in SWEEP_SLOW]
    slow_windows = [s for _ in SWEEP_FAST for s in SWEEP_SLOW]
    fast = vbt.MA.run(close, fast_windows, short_name="fast")
    slow = vbt.MA.run(close, slow_windows, short_name="slow")
    entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
    exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
    portfolio = vbt.Portfolio.from_signals(
        close, entries, exits, price=frame["open"], fees=FEE, init_cash=1e6, freq="1min"
    )
    portfolio.total_return()
    portfolio.max_drawdown()
    return len(portfolio.wrapper.columns)


def backtesting_sma(bt: Any, frame: pd.DataFrame) -> int:
    close = frame["close"].to_numpy()
    fast, slow = sma(close, FAST), sma(close, SLOW)
    above = fast > slow
    up = np.zeros(len(close), dtype=bool)
    down = np.zeros(len(close), dtype=bool)
    valid = ~np.isnan(slow)
    change = np.flatnonzero((above[1:] != above[:-1]) & valid[:-1]) + 1
    up[change[above[change]]] = True
    down[change[~above[change]]] = True

    class Cross(bt.Strategy):  # type: ignore[misc, name-defined]
        def init(self) -> None:
            pass

        def next(self) -> None:
            i = len(self.data) - 1
            if up[i] and not self.position:
                self.buy(size=10)
            elif down[i] and self.position:
                self.position.close()

    data = pd.DataFrame(
        {
            "Open": frame["open"].to_numpy(),
            "High": frame["high"].to_numpy(),
            "Low": frame["low"].to_numpy(),
            "Close": close,
            "Volume": frame["volume"].to_numpy(),
        },
        index=pd.to_datetime(frame["open_time"].to_numpy(), unit="ms"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = bt.Backtest(data, Cross, cash=1e10, commission=FEE, finalize_trades=True).run()
    return int(stats["# Trades"])


# ---- cold start: a fresh process per engine ---------------------------------------------------

_COLD = {
    OURS: """
        from benchmarks.bench_backtest import Bars, ours_sma
        trades = ours_sma(Bars.from_frame(frame), stats=True)
    """,
    "vectorbt": """
        import vectorbt
        from benchmarks.bench_backtest import vectorbt_sma
        trades = vectorbt_sma(vectorbt, frame, stats=True)
    """,
    "backtesting.py": """
        import backtesting
        from benchmarks.bench_backtest import backtesting_sma
        trades = backtesting_sma(backtesting, frame)
    """,
}


def cold_seconds(engine: str, data_file: Path) -> tuple[float, int] | None:
    """Wall time of a fresh interpreter that imports the engine, reads the bars (Parquet) and
    runs the SMA case with statistics once; None if the engine is not installed."""
    script = (
        "import time; started = time.perf_counter()\n"
        "import json, pandas as pd\n"
        f"frame = pd.read_parquet({str(data_file)!r})\n"
        + textwrap.dedent(_COLD[engine])
        + "print(json.dumps([time.perf_counter() - started, trades]))\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        print(f"  cold {engine} skipped: {done.stderr.strip().splitlines()[-1:]}")
        return None
    _inside, trades = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, int(trades)


def main() -> None:
    inputs, frame, funding = market_bars()
    bars = Bars.from_frame(frame)
    n = len(bars)
    print(f"\nbacktest benchmark: {n:,} 1m bars of BTCUSDT (simulator seed 7), fee {FEE:.2%}/side")
    vbt, bt = _vectorbt(), _backtesting()

    trades = {OURS: ours_sma(bars, stats=False)}
    if vbt is not None:
        trades["vectorbt"] = vectorbt_sma(vbt, frame, stats=False)  # also warms the JIT
    if bt is not None:
        trades["backtesting.py"] = backtesting_sma(bt, frame)
    print("  SMA trades per engine: " + ", ".join(f"{k} {v}" for k, v in trades.items()))

    run_only = [Case(f"{OURS} run", n, median_seconds(lambda: ours_sma(bars, stats=False)), "bars")]
    with_stats = [
        Case(f"{OURS} run + stats", n, median_seconds(lambda: ours_sma(bars, stats=True)), "bars")
    ]
    if vbt is not None:
        run_only.append(
            Case(
                "vectorbt run (warm)",
                n,
                median_seconds(lambda: vectorbt_sma(vbt, frame, stats=False)),
                "bars",
            )
        )
        with_stats.append(
            Case(
                "vectorbt run + stats (warm)",
                n,
                median_seconds(lambda: vectorbt_sma(vbt, frame, stats=True)),
                "bars",
            )
        )
    if bt is not None:
        with_stats.append(
            Case(
                "backtesting.py run + stats",
                n,
                median_seconds(lambda: backtesting_sma(bt, frame), repeat=3),
                "bars",
            )
        )
    print_table("SMA(20/60) cross, run only (warm)", run_only, baseline=f"{OURS} run")
    print_table(
        "SMA(20/60) cross, run + statistics (warm)", with_stats, baseline=f"{OURS} run + stats"
    )

    with tempfile.TemporaryDirectory(prefix="ingmon-bench-") as scratch:
        data_file = Path(scratch) / "bars.parquet"
        frame.to_parquet(data_file)
        cold = []
        for engine in (OURS, "vectorbt", "backtesting.py"):
            if (engine == "vectorbt" and vbt is None) or (
                engine == "backtesting.py" and bt is None
            ):
                continue
            measured = cold_seconds(engine, data_file)
            if measured is not None:
                cold.append(Case(f"{engine} fresh process", n, measured[0], "bars"))
        print_table(
            "SMA case, cold: fresh interpreter, import + read + run + stats",
            cold,
            baseline=f"{OURS} fresh process",
        )

    sweep_cases = [
        Case(
            f"{OURS} 200 combos", 200, median_seconds(lambda: ours_sweep(bars), repeat=3), "combos"
        )
    ]
    if vbt is not None:
        vectorbt_sweep(vbt, frame)  # warm
        sweep_cases.append(
            Case(
                "vectorbt 200 combos (warm)",
                200,
                median_seconds(lambda: vectorbt_sweep(vbt, frame), repeat=3),
                "combos",
            )
        )
    print_table("200-combination SMA sweep", sweep_cases, baseline=f"{OURS} 200 combos")

    rng = np.random.default_rng(7)
    at = np.sort(rng.choice(np.arange(200, n - 1), n // 180, replace=False))
    bracket_signals = pd.DataFrame(
        {
            "time": bars.open_time_ms[at],
            "direction": rng.choice([-1, 1], len(at)).astype(np.int8),
            "known_ms": bars.open_time_ms[at] + bars.bar_ms,
        }
    )
    bracket = REPORT_BRACKET
    print_table(
        f"{OURS} alone: ATR bracket + 240-bar time exit + funding, {len(at)} signals",
        [
            Case(
                f"{OURS} bracket run + stats",
                n,
                median_seconds(
                    lambda: summarize(
                        run_backtest(bars, bracket_signals, config=bracket, funding=funding)
                    )
                ),
                "bars",
            )
        ],
        baseline=f"{OURS} bracket run + stats",
    )
    bench_engine_signals(inputs, bars, funding)


def bench_engine_signals(inputs: MarketInputs, bars: Bars, funding: pd.DataFrame) -> None:
    """The signal engine's own signals (every setup, scored) on the same 90 days of 1m
    candles, traded with the same ATR bracket: the run behind the dashboard's numbers."""
    from ingmon.signals import SignalConfig, evaluate

    evaluation = evaluate(inputs, SignalConfig())
    scores = {record.signal.signal_id: record for record in evaluation.scores}
    frame = evaluation.frame
    signals = pd.DataFrame(
        {
            "time": [s.bar_open_ms for s in evaluation.signals],
            "known_ms": [s.bar_close_ms + 1 for s in evaluation.signals],
            "direction": np.array(
                [1 if s.direction == "long" else -1 for s in evaluation.signals], np.int8
            ),
            "atr": [frame["atr"][s.bar_index] for s in evaluation.signals],
            "setup": [s.setup for s in evaluation.signals],
            "score": [scores[s.signal_id].score for s in evaluation.signals],
            "confidence": [scores[s.signal_id].confidence for s in evaluation.signals],
        }
    )
    bracket = REPORT_BRACKET
    result = run_backtest(bars, signals, config=bracket, funding=funding)
    print_table(
        f"{OURS} on the signal engine's {len(signals)} signals (7 setups, 90 d): "
        f"{len(result.trades)} trades, ATR bracket + 240-bar exit + funding",
        [
            Case(
                "signals: evaluate (features + setups + scores)",
                len(bars),
                median_seconds(lambda: evaluate(inputs, SignalConfig()), repeat=5),
                "bars",
            ),
            Case(
                f"{OURS} run + stats on them",
                len(bars),
                median_seconds(
                    lambda: summarize(run_backtest(bars, signals, config=bracket, funding=funding)),
                    repeat=5,
                ),
                "bars",
            ),
        ],
        baseline="signals: evaluate (features + setups + scores)",
    )


if __name__ == "__main__":
    main()
