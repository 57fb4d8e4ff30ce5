# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Backtest report
#
# The signal engine's setups backtested on the lake's 1m candles and funding, per symbol: the
# trailing windows' metrics, equity and drawdown, breakdowns by setup, score and confidence, the
# trades, and the config and data hashes that identify each run. Every number comes from
# `ingmon.backtest` (the same engine as `ingmon backtest` and the dashboard); this notebook only
# selects and formats. The report is its own record: it saves nothing in the lake and writes
# nothing under the data root.

# %% tags=["parameters"]
symbols: list[str] = []  # symbols to backtest (empty: every symbol with 1m candles in the lake)
window_days: list[int] = [30, 60, 90]  # trailing windows ending at as_of, in days
setups: list[str] = []  # setups to trade (empty: all)
min_score: int = 0  # minimum signal score 0-7 (0: every signal, scored or not)
fee_rate: float = 0.0005  # taker fee per side, as a fraction (0.0005 is 0.05 %)
slippage_bps: float = 1.0  # slippage per side, in basis points
stop_atr: float = 1.0  # stop at this many ATRs of the signal timeframe from the entry
take_profit_atr: float = 1.5  # target at this many ATRs from the entry
hold_bars: int = 240  # time exit after this many 1m bars
as_of: str = ""  # end of the data, ISO-8601 UTC (empty: now)
timeframe: str = "15m"  # signal timeframe
data_dir: str = ""  # data root (empty: INGMON_DATA_DIR, else ./data)
result_path: str = ""  # write the JSON results (and trades/equity CSVs beside) (empty: do not)

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from matplotlib.ticker import PercentFormatter

from ingmon.backtest import BacktestConfig
from ingmon.backtest.export import equity_frame, run_document, trades_frame
from ingmon.backtest.lake import backtest_lake
from ingmon.config import load_settings
from ingmon.errors import IngmonError
from ingmon.lake import Lake
from ingmon.schema import CANDLES
from ingmon.times import iso_ms, now_ms, to_ms

settings = load_settings(**({"data_dir": Path(data_dir)} if data_dir else {}))
lake = Lake(settings.lake_dir)
end_ms = to_ms(as_of) if as_of else now_ms()
chosen = symbols or lake.symbols(CANDLES)
config = BacktestConfig(
    stop_atr=stop_atr,
    take_profit_atr=take_profit_atr,
    hold_bars=hold_bars,
    fee_rate=fee_rate,
    slippage_bps=slippage_bps,
)
# Tables are shown through their Styler: a missing value reads "–", not None or NaN.
pd.set_option("display.max_columns", 40)
pd.set_option("styler.format.precision", 4)
pd.set_option("styler.format.na_rep", "–")
display(
    Markdown(
        f"Lake `{lake.root}`, data up to **{iso_ms(end_ms)}**, signals on **{timeframe}**, "
        f"windows {', '.join(f'{days} d' for days in window_days)}; "
        f"symbols: {', '.join(chosen) or 'none'}."
    )
)


# %% [markdown]
# ## Runs
#
# One run per symbol by `ingmon.backtest.lake.backtest_lake`, the pipeline of
# `ingmon backtest --symbol`, not saved in the lake (a scheduled report would flood the
# dashboard's run list). With a `result_path`, each run's trades.csv and equity.csv are written
# beside it, in `<result_path without .json>/SYMBOL/`; without one, nothing is written.

# %%
exports_dir = Path(result_path).with_suffix("") if result_path else None
runs = {}
exports = {}
skipped = {}
for symbol in chosen:
    try:
        done = backtest_lake(
            lake,
            symbol,
            config=config,
            timeframe=timeframe,
            window_days=window_days,
            end_ms=end_ms,
            exports_root=exports_dir or Path.cwd(),
            # Without exports_dir: no formats, and an existing directory, so nothing is made.
            out_dir=exports_dir / symbol if exports_dir else Path.cwd(),
            formats=("csv",) if exports_dir else (),
            save=False,
            setups=setups,
            min_score=min_score or None,
        )
    except IngmonError as error:
        skipped[symbol] = str(error)
        continue
    runs[symbol] = done.run
    exports[symbol] = done.written
for symbol, why in skipped.items():
    display(Markdown(f"**{symbol}** is not backtested: {why}"))
if not chosen:
    display(Markdown(f"The lake `{lake.root}` holds no 1m candles: nothing to backtest."))

# %% [markdown]
# ## Metrics per window

# %%
HEADLINE = {
    "trades": "trades",
    "hit_rate": "hit rate",
    "expectancy": "expectancy / trade",
    "expectancy_r": "expectancy (R)",
    "profit_factor": "profit factor",
    "total_return": "total return",
    "max_drawdown": "max drawdown",
    "sharpe": "sharpe (daily, √365)",
    "sortino": "sortino",
    "exposure": "exposure",
    "fees": "fees paid",
    "funding_paid": "funding paid",
    "buy_and_hold": "buy and hold",
}
documents = {symbol: run_document(run) for symbol, run in runs.items()}
for symbol, document in documents.items():
    data = document["data"]
    display(
        Markdown(
            f"### {symbol}\n\n"
            f"config hash `{document['config_hash'][:16]}` · "
            f"data hash `{data['hash'][:16]}` · data {data['start']} → {data['end']} "
            f"({data['bars']} bars, {data['signals']} signals, "
            f"{data['funding_events']} funding events)"
        )
    )
    reports = [{"label": "all", **document}, *document["windows"]]
    display(
        pd.DataFrame(
            [[report["metrics"].get(key) for key in HEADLINE] for report in reports],
            index=[report["label"] for report in reports],
            columns=list(HEADLINE.values()),
        ).style
    )
    display(
        Markdown(
            "\n".join(
                f"- flags {report['label']}: {', '.join(report['flags'])}"
                for report in reports
                if report["flags"]
            )
            or "No window is flagged."
        )
    )

# %% [markdown]
# ## Equity and drawdown
#
# Daily equity of the whole run (the longest window), and the drawdown from its running peak.

# %%
for symbol, run in runs.items():
    equity = equity_frame(run)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 5), sharex=True, height_ratios=[2, 1], layout="constrained"
    )
    dates = pd.to_datetime(equity["date"])
    top.plot(dates, equity["equity"], color="tab:blue")
    top.set_ylabel("equity")
    top.set_title(f"{symbol}: equity and drawdown")
    bottom.fill_between(dates, equity["drawdown"], color="tab:red", alpha=0.4, step="post")
    bottom.invert_yaxis()
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0))
    bottom.set_ylabel("drawdown")
    plt.show()

# %% [markdown]
# ## Breakdowns
#
# The whole run's trade metrics by setup, score and confidence.

# %%
BREAKDOWN_METRICS = ["trades", "hit_rate", "expectancy", "expectancy_r", "profit_factor", "net_pnl"]
for symbol, document in documents.items():
    for column in ("setup", "score", "confidence"):
        slices = document["breakdowns"].get(column)
        if not slices:
            display(Markdown(f"**{symbol}**: no trades to break down by {column}."))
            continue
        display(Markdown(f"**{symbol}** by {column}"))
        display(pd.DataFrame(slices).T[BREAKDOWN_METRICS].style)

# %% [markdown]
# ## Trades
#
# The latest trades of each run; all of them are in its `trades.csv` when the report has a
# `result_path`.

# %%
TRADE_COLUMNS = [
    "signal_time",
    "setup",
    "direction",
    "score",
    "confidence",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
    "net_return",
    "r_multiple",
    "pnl",
]
for symbol, run in runs.items():
    trades = trades_frame(run)
    shown = "" if len(trades) <= 50 else ", the last 50"
    display(Markdown(f"**{symbol}**: {len(trades)} trades{shown}"))
    if len(trades):
        display(trades[TRADE_COLUMNS].tail(50).style)

# %% [markdown]
# ## Config

# %%
for symbol, document in documents.items():
    display(Markdown(f"**{symbol}** `{document['config_hash']}`"))
    display(pd.json_normalize(document["config"], sep=".").T.rename(columns={0: "value"}).style)

# %%
WINDOW_METRICS = ["trades", "hit_rate", "expectancy", "max_drawdown", "sharpe"]
result = {
    "notebook": "backtest_report",
    "as_of": iso_ms(end_ms),
    "timeframe": timeframe,
    "symbols": {
        symbol: {
            "run_id": document["run_id"],
            "config_hash": document["config_hash"],
            "data_hash": document["data"]["hash"],
            "data": document["data"],
            "windows": {
                report["label"]: {
                    **{key: report["metrics"].get(key) for key in WINDOW_METRICS},
                    "flags": report["flags"],
                }
                for report in [{"label": "all", **document}, *document["windows"]]
            },
            "breakdowns": {
                column: document["breakdowns"].get(column, {})
                for column in ("setup", "score", "confidence")
            },
            # The CSVs beside the result document, relative to its directory.
            "exports": [str(path.relative_to(exports_dir.parent)) for path in exports[symbol]]
            if exports_dir
            else [],
        }
        for symbol, document in documents.items()
    },
    "skipped": skipped,
}

# %% [markdown]
# ## Outcome
#
# A report of nothing fails here, naming why, rather than recording an empty success.

# %%
# No symbol backtested fails the report; nbval compares what this cell prints.
# NBVAL_CHECK_OUTPUT
if not runs:
    raise IngmonError(
        f"No symbol was backtested: {'; '.join(f'{s}: {why}' for s, why in skipped.items())}."
        if skipped
        else f"No symbol was backtested: the lake {lake.root} holds no 1m candles."
    )
if result_path:
    Path(result_path).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
print(f"backtested: {', '.join(sorted(runs))}")
