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
# # Explore signals
#
# Pick a symbol and a time: the stored setups around it on the price, the volume profile of
# those hours (POC and value area) and of each UTC session, and the audit of every signal's
# score. Everything comes from `ingmon.signals` reading the lake; change the parameters below
# and rerun.

# %% tags=["parameters"]
symbol: str = ""  # symbol to explore (empty: the first symbol with signals)
around: str = ""  # centre of the window, ISO-8601 UTC (empty: the latest signal)
hours: int = 24  # length of the window, in hours
timeframe: str = "15m"  # signal timeframe
data_dir: str = ""  # data root (empty: INGMON_DATA_DIR, else ./data)
result_path: str = ""  # write the JSON results to this file (empty: do not)

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl
from IPython.display import Markdown, display
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from ingmon.config import load_settings
from ingmon.errors import IngmonError
from ingmon.lake import Lake
from ingmon.schema import AGG_TRADES, SIGNALS
from ingmon.signals import load_inputs, read_scores, read_signals
from ingmon.signals.profile import (
    candle_profile,
    infer_tick_size,
    session_profiles,
    trade_profile,
)
from ingmon.times import HOUR_MS, iso_ms, to_ms

settings = load_settings(**({"data_dir": Path(data_dir)} if data_dir else {}))
lake = Lake(settings.lake_dir)
# Tables are shown through their Styler: a missing value reads "–", not None or NaN.
pd.set_option("display.max_columns", 40)
pd.set_option("display.max_colwidth", 120)
pd.set_option("styler.format.precision", 4)
pd.set_option("styler.format.na_rep", "–")

chosen = symbol or next(
    (
        name
        for name in lake.symbols(SIGNALS)
        if not read_signals(lake, symbols=name, timeframe=timeframe).is_empty()
    ),
    "",
)
every_signal = read_signals(lake, symbols=chosen, timeframe=timeframe) if chosen else pl.DataFrame()
if every_signal.is_empty():
    center_ms = start_ms = end_ms = None
    display(
        Markdown(
            f"No {timeframe} signals for {chosen} in the lake `{lake.root}`: score it first "
            f"(`ingmon score --symbol {chosen}`)."
            if chosen
            else f"The lake `{lake.root}` holds no {timeframe} signals: nothing to explore."
        )
    )
else:
    center_ms = (
        to_ms(around)
        if around
        else int(every_signal["bar_open_time"].dt.epoch("ms").max())  # the latest signal
    )
    start_ms = center_ms - hours * HOUR_MS // 2
    end_ms = start_ms + hours * HOUR_MS
    display(
        Markdown(
            f"**{chosen}** {timeframe} signals, {iso_ms(start_ms)} → {iso_ms(end_ms)} "
            f"({hours} h around {iso_ms(center_ms)}); the lake holds {len(every_signal)} of "
            f"them from {every_signal['bar_open_time'].min()} to "
            f"{every_signal['bar_open_time'].max()}."
        )
    )

# %% [markdown]
# ## The setups in the window

# %%
SIGNAL_COLUMNS = [
    "bar_open_time",
    "setup",
    "direction",
    "close",
    "stop_price",
    "target_price",
    "level_kind",
    "level_price",
    "score",
    "confidence",
    "data_quality",
    "signal_id",
]
signals = (
    read_signals(lake, symbols=chosen, timeframe=timeframe, start_ms=start_ms, end_ms=end_ms)
    if start_ms is not None
    else pl.DataFrame()
)
if signals.is_empty():
    display(Markdown("No signals in the window."))
else:
    display(signals.select(SIGNAL_COLUMNS).to_pandas().style)

# %% [markdown]
# ## Price, signals and the volume profile
#
# 1m closes with each signal at its bar's close price (▲ long, ▼ short, coloured by its 0–7
# score); beside it the candle volume profile of the window with its POC and 70 % value area.

# %%
minutes = (
    load_inputs(lake, chosen, start_ms=start_ms, end_ms=end_ms).minutes
    if start_ms is not None
    else None
)
profile = None
tick_size = None
if minutes is None or len(minutes) == 0:
    display(Markdown("No 1m candles in the window."))
else:
    try:
        tick_size = infer_tick_size(
            np.concatenate([minutes.open, minutes.high, minutes.low, minutes.close])
        )
        profile = candle_profile(
            minutes.high,
            minutes.low,
            minutes.volume,
            minutes.taker_buy_volume,
            tick_size=tick_size,
        )
    except IngmonError as error:
        display(Markdown(f"No volume profile: {error}"))
    figure, (price_axis, profile_axis) = plt.subplots(
        1, 2, figsize=(12, 5), sharey=True, width_ratios=[4, 1], layout="constrained"
    )
    times = pd.to_datetime(minutes.open_time_ms, unit="ms", utc=True)
    price_axis.plot(times, minutes.close, color="0.4", linewidth=0.8, label="1m close")
    for direction, marker in (("long", "^"), ("short", "v")):
        shown = signals.filter(pl.col("direction") == direction) if len(signals) else signals
        if len(shown) == 0:
            continue
        price_axis.scatter(
            shown["bar_close_time"].to_pandas(),
            shown["close"].to_numpy(),
            c=shown["score"].fill_null(0).to_numpy(),
            cmap="viridis",
            vmin=0,
            vmax=7,
            marker=marker,
            s=80,
            edgecolors="black",
            label=direction,
            zorder=3,
        )
    figure.colorbar(
        ScalarMappable(Normalize(0, 7), "viridis"), ax=price_axis, label="score", pad=0.01
    )
    price_axis.set_title(f"{chosen} {iso_ms(start_ms)} → {iso_ms(end_ms)}")
    price_axis.legend(loc="upper left")
    if profile is not None:
        profile_axis.barh(
            profile.bin_centres, profile.volume, height=profile.bin_width, color="tab:blue"
        )
        profile_axis.axhspan(profile.val, profile.vah, color="tab:orange", alpha=0.2)
        profile_axis.axhline(profile.poc_price, color="tab:red", label=f"POC {profile.poc_price}")
        profile_axis.legend(loc="upper right")
        profile_axis.set_xlabel("volume")
    plt.show()

# %% [markdown]
# ## Profile levels
#
# The window's candle profile, its trade profile when the lake holds the trades, and the
# candle profile of each UTC session (day) the window touches.

# %%
levels = {}
if profile is not None:
    levels["candles, window"] = profile.levels()
    trades = lake.read(
        AGG_TRADES,
        symbols=chosen,
        start=start_ms,
        end=end_ms - 1,
        columns=["price", "quantity", "is_buyer_maker"],
    )
    if trades.num_rows:
        levels["trades, window"] = trade_profile(
            trades["price"].to_numpy(),
            trades["quantity"].to_numpy(),
            trades["is_buyer_maker"].to_numpy(),
            tick_size=tick_size,
        ).levels()
    sessions = session_profiles(
        minutes.open_time_ms,
        minutes.high,
        minutes.low,
        minutes.volume,
        minutes.taker_buy_volume,
        tick_size=tick_size,
    )
    for session_ms, session in sessions.items():
        levels[f"candles, session {iso_ms(session_ms)[:10]}"] = session.levels()
if levels:
    display(pd.DataFrame(levels).T.style)
else:
    display(Markdown("No profile levels."))

# %% [markdown]
# ## The audit of each score
#
# Each signal's score components as stored by the scoring run: the rule, its inputs and the
# points it gave.

# %%
audits = (
    read_scores(lake, symbols=chosen, timeframe=timeframe, start_ms=start_ms, end_ms=end_ms)
    .filter(pl.col("score_id").is_in(signals["score_id"].drop_nulls().to_list()))
    .to_dicts()
    if len(signals)
    else []
)
for audit in audits:
    display(
        Markdown(
            f"**{audit['bar_open_time']} {audit['setup']} {audit['direction']}**: score "
            f"{audit['score']} ({audit['confidence']}, data {audit['data_quality']}), rules "
            f"{audit['rules_version']}; notes: {', '.join(json.loads(audit['notes'])) or 'none'}"
        )
    )
    display(pd.DataFrame(json.loads(audit["components"])).T.style)
if len(signals) and not audits:
    display(Markdown("The signals in the window have not been scored."))

# %%
result = {
    "notebook": "explore_signals",
    "symbol": chosen,
    "timeframe": timeframe,
    "around": iso_ms(center_ms),
    "window": [iso_ms(start_ms), iso_ms(end_ms)],
    "signals": [
        {
            "signal_id": row["signal_id"],
            "bar_open_time": iso_ms(row["bar_open_time"]),
            "setup": row["setup"],
            "direction": row["direction"],
            "score": row["score"],
            "confidence": row["confidence"],
        }
        for row in signals.with_columns(pl.col("bar_open_time").dt.epoch("ms")).to_dicts()
    ]
    if len(signals)
    else [],
    "profile_levels": levels,
}
if result_path:
    Path(result_path).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")

# %%
# The symbol explored; nbval compares what this cell prints.
# NBVAL_CHECK_OUTPUT
print(f"explored: {chosen or 'nothing'}")
