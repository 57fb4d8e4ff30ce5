"""Every dataset's columns, Arrow types, key, time column and partitioning — defined only here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

from ingmon.times import DAY_MS, HOUR_MS, MINUTE_MS

__all__ = [
    "AGG_TRADES",
    "BACKTEST_RUNS",
    "BACKTEST_TRADES",
    "CANDLES",
    "DATASETS",
    "EXCHANGE_GAPS",
    "FUNDING",
    "INGEST_LOG",
    "INTERVAL_MS",
    "MARKET_SERIES",
    "OI_PERIODS",
    "OPEN_INTEREST",
    "SCORES",
    "SCORE_RUNS",
    "SIGNALS",
    "SIGNAL_TIMEFRAMES",
    "Column",
    "Dataset",
    "MarketSeries",
    "dataset",
    "interval_ms",
    "market_series",
]

Bucket = Literal["day", "month", "year"]

# Binance USD-M kline intervals with a fixed length (3d/1w/1M are not kept in the lake).
INTERVAL_MS: Mapping[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
}
# /futures/data/openInterestHist periods.
OI_PERIODS: tuple[str, ...] = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")

TIME_MS = pa.timestamp("ms", tz="UTC")


def interval_ms(interval: str) -> int:
    """Length of a kline interval or OI period in milliseconds (KeyError if unknown)."""
    return INTERVAL_MS[interval]


@dataclass(frozen=True)
class Column:
    """One stored column: its name, Arrow type and meaning."""

    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


@dataclass(frozen=True)
class Dataset:
    """A lake dataset.

    Files live at ``lake/<name>/symbol=<SYM>/[<param_name>=<value>/]<bucket>=<label>/data.parquet``.
    Partition columns (symbol, the parameter) are not stored inside the files; reads add them back.
    ``key`` is unique within one (symbol, parameter) series; ``time_column`` drives the time bucket.
    """

    name: str
    columns: tuple[Column, ...]
    key: str
    time_column: str
    doc: str
    param_name: str | None = None
    param_values: tuple[str, ...] = ()
    # Time bucket per parameter value ("" when the dataset has no parameter).
    buckets: Mapping[str, Bucket] = field(default_factory=dict)
    default_bucket: Bucket = "month"

    @property
    def arrow_schema(self) -> pa.Schema:
        """The schema of the stored files (no partition columns)."""
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def bucket(self, param: str | None) -> Bucket:
        """The time-partition granularity for one parameter value."""
        return self.buckets.get(param or "", self.default_bucket)

    def check_param(self, param: str | None) -> str | None:
        """Validate the dataset parameter (interval/period); ValueError naming the choices."""
        if self.param_name is None:
            if param is not None:
                raise ValueError(f"dataset {self.name} takes no parameter, got {param!r}")
            return None
        if param not in self.param_values:
            raise ValueError(
                f"invalid {self.param_name} {param!r} for {self.name}: "
                f"expected one of {', '.join(self.param_values)}"
            )
        return param


CANDLES = Dataset(
    name="candles",
    doc="Klines: the 12 fields of /fapi/v1/klines and of the archive's CSV; closed candles only.",
    columns=(
        Column("open_time", TIME_MS, "Candle open time (UTC)"),
        Column("open", pa.float64(), "First trade price"),
        Column("high", pa.float64(), "Highest trade price"),
        Column("low", pa.float64(), "Lowest trade price"),
        Column("close", pa.float64(), "Last trade price"),
        Column("volume", pa.float64(), "Base-asset volume"),
        Column("close_time", TIME_MS, "open_time + interval - 1 ms"),
        Column("quote_volume", pa.float64(), "Quote-asset (USDT) volume"),
        Column("trade_count", pa.int64(), "Number of trades"),
        Column("taker_buy_volume", pa.float64(), "Base volume bought by takers"),
        Column("taker_buy_quote_volume", pa.float64(), "Quote volume bought by takers"),
        Column("ignore", pa.float64(), "Binance's 12th field (always 0 on fapi)"),
    ),
    key="open_time",
    time_column="open_time",
    param_name="interval",
    param_values=tuple(INTERVAL_MS),
    buckets={"1m": "month", "3m": "month", "5m": "month"},
    default_bucket="year",
)

AGG_TRADES = Dataset(
    name="agg_trades",
    doc="Aggregated trades (/fapi/v1/aggTrades, archive aggTrades CSV); ids continuous.",
    columns=(
        Column("agg_trade_id", pa.int64(), "Aggregate trade id (a)"),
        Column("price", pa.float64(), "Price (p)"),
        Column("quantity", pa.float64(), "Base quantity (q)"),
        Column("first_trade_id", pa.int64(), "First trade id (f)"),
        Column("last_trade_id", pa.int64(), "Last trade id (l)"),
        Column("transact_time", TIME_MS, "Trade time (T)"),
        Column("is_buyer_maker", pa.bool_(), "Buyer was maker, i.e. the taker sold (m)"),
    ),
    key="agg_trade_id",
    time_column="transact_time",
    default_bucket="day",
)

OPEN_INTEREST = Dataset(
    name="open_interest",
    doc="Open interest statistics (/futures/data/openInterestHist, archive metrics).",
    columns=(
        Column("timestamp", TIME_MS, "Period timestamp"),
        Column("sum_open_interest", pa.float64(), "Open interest, base units"),
        Column("sum_open_interest_value", pa.float64(), "Open interest value, USDT"),
        Column("cmc_circulating_supply", pa.float64(), "CMC circulating supply", nullable=True),
    ),
    key="timestamp",
    time_column="timestamp",
    param_name="period",
    param_values=OI_PERIODS,
    default_bucket="year",
)

FUNDING = Dataset(
    name="funding",
    doc="Funding rate history (/fapi/v1/fundingRate, archive fundingRate); times floored to 1 s.",
    columns=(
        Column("funding_time", TIME_MS, "Settlement time, ms jitter removed"),
        Column("funding_rate", pa.float64(), "Funding rate"),
        Column("mark_price", pa.float64(), "Mark price at settlement", nullable=True),
        Column("funding_interval_hours", pa.int32(), "Hours since the previous settlement", True),
    ),
    key="funding_time",
    time_column="funding_time",
    default_bucket="year",
)

INGEST_LOG = Dataset(
    name="ingest_log",
    doc="One row per fetched batch: what was asked, what came back, what was stored, when.",
    columns=(
        Column("batch_id", pa.string(), "Unique id of the batch"),
        Column("run_id", pa.string(), "Id of the run (backfill, worker tick) that fetched it"),
        Column("dataset", pa.string(), "Dataset the batch belongs to"),
        Column("interval", pa.string(), "Kline interval / OI period, if any", nullable=True),
        Column("first_event_time", TIME_MS, "Earliest event time in the batch", nullable=True),
        Column("last_event_time", TIME_MS, "Latest event time in the batch", nullable=True),
        Column("rows_fetched", pa.int64(), "Rows received (after validation)"),
        Column("rows_inserted", pa.int64(), "Rows new to the lake"),
        Column("rows_replaced", pa.int64(), "Rows that replaced a different stored row"),
        Column("fetched_at", pa.timestamp("us", tz="UTC"), "When the response arrived"),
        Column("written_at", pa.timestamp("us", tz="UTC"), "When the rows were committed"),
        Column("source", pa.string(), "rest | archive"),
        Column("request_cursor", pa.string(), "The request: path and parameters / file"),
    ),
    key="batch_id",
    time_column="fetched_at",
    # A day per file: every batch rewrites its partition, so it stays small.
    default_bucket="day",
)

EXCHANGE_GAPS = Dataset(
    name="exchange_gaps",
    doc="Ranges the exchange itself has no data for (maintenance), confirmed by a fetch.",
    columns=(
        Column("gap_id", pa.string(), "dataset/param/start"),
        Column("dataset", pa.string(), "Dataset with the hole"),
        Column("interval", pa.string(), "Kline interval / OI period, if any", nullable=True),
        Column("start_time", TIME_MS, "First missing slot"),
        Column("end_time", TIME_MS, "Last missing slot"),
        Column("detected_at", pa.timestamp("us", tz="UTC"), "When a fetch confirmed it"),
    ),
    key="gap_id",
    time_column="start_time",
    default_bucket="year",
)

# Signal timeframes: the kline intervals a signal bar may have (resampled from closed 1m bars).
SIGNAL_TIMEFRAMES: tuple[str, ...] = ("5m", "15m", "30m", "1h", "4h")

SIGNALS = Dataset(
    name="signals",
    doc="One row per detected setup on a closed signal-timeframe bar (ingmon.signals).",
    columns=(
        Column(
            "signal_id", pa.string(), "Stable hash of symbol|timeframe|setup|direction|bar open"
        ),
        Column("bar_open_time", TIME_MS, "Open time of the signal bar"),
        Column("bar_close_time", TIME_MS, "Close time of the signal bar: when the signal is known"),
        Column(
            "setup",
            pa.string(),
            "squeeze_fire | short_squeeze | long_squeeze | exhaustion | "
            "divergence | sweep_reclaim | absorption",
        ),
        Column("direction", pa.string(), "long | short"),
        Column("close", pa.float64(), "Close of the signal bar"),
        Column("stop_price", pa.float64(), "Where the setup is invalidated", nullable=True),
        Column(
            "target_price", pa.float64(), "The setup's own target, if it has one", nullable=True
        ),
        Column(
            "level_kind",
            pa.string(),
            "The level involved: poc, vah, val, hvn, swing_high, …",
            nullable=True,
        ),
        Column("level_price", pa.float64(), "Price of that level", nullable=True),
        Column("levels", pa.string(), "JSON: every level the setup looked at (name → price)"),
        Column("reasons", pa.string(), "JSON: the measured values that made the setup fire"),
        Column("detector_version", pa.string(), "Version of the setup definitions"),
        Column("detected_at", pa.timestamp("us", tz="UTC"), "When the row was first written"),
    ),
    key="signal_id",
    time_column="bar_open_time",
    param_name="timeframe",
    param_values=SIGNAL_TIMEFRAMES,
)

SCORES = Dataset(
    name="scores",
    doc="The audit: one row per (signal, rules version) with the 0–7 score and every component.",
    columns=(
        Column("score_id", pa.string(), "Stable hash of signal_id|rules_version"),
        Column("signal_id", pa.string(), "The scored signal"),
        Column("bar_open_time", TIME_MS, "Open time of the signal bar"),
        Column("setup", pa.string(), "The signal's setup"),
        Column("direction", pa.string(), "long | short"),
        Column("rules_version", pa.string(), "Version of the rubric (points, weights, cut-offs)"),
        Column("config_hash", pa.string(), "sha256 of the canonical JSON of every parameter"),
        Column("code_version", pa.string(), "ingmon version (and git commit when known)"),
        Column("score", pa.int32(), "0–7: the sum of the awarded points"),
        Column("trend_points", pa.int32(), "Points of the trend group"),
        Column("flow_points", pa.int32(), "Points of the flow group"),
        Column("session_points", pa.int32(), "Points of the session group"),
        Column("confidence", pa.string(), "high | medium | low"),
        Column("data_quality", pa.string(), "ok | degraded (an input was missing)"),
        Column("components", pa.string(), "JSON: each point's group, inputs, threshold, result"),
        Column("inputs", pa.string(), "JSON: every raw input as used"),
        Column("thresholds", pa.string(), "JSON: every threshold as used"),
        Column("watermarks", pa.string(), "JSON: latest event time of each feed used (ms)"),
        Column("notes", pa.string(), "JSON list: degraded inputs, capped confidence, …"),
        Column("scored_at", pa.timestamp("us", tz="UTC"), "When the row was written"),
    ),
    key="score_id",
    time_column="bar_open_time",
    param_name="timeframe",
    param_values=SIGNAL_TIMEFRAMES,
)

SCORE_RUNS = Dataset(
    name="score_runs",
    doc="One row per scoring run of a symbol: the bars evaluated, what it found, the watermarks.",
    columns=(
        Column("run_id", pa.string(), "Unique id of the run"),
        Column("timeframe", pa.string(), "Signal timeframe"),
        Column("rules_version", pa.string(), "Rubric version"),
        Column("config_hash", pa.string(), "sha256 of every parameter of the run's config"),
        Column("first_bar_open_time", TIME_MS, "First signal bar evaluated", nullable=True),
        Column("last_bar_open_time", TIME_MS, "Last signal bar evaluated", nullable=True),
        Column("bars", pa.int64(), "Signal bars evaluated"),
        Column("signals", pa.int64(), "Signals detected on them"),
        Column("signals_inserted", pa.int64(), "Signals new to the lake"),
        Column("scores_inserted", pa.int64(), "Score rows new to the lake"),
        Column("watermarks", pa.string(), "JSON: latest event time of each feed read (ms)"),
        Column("started_at", pa.timestamp("us", tz="UTC"), "When the run started"),
        Column("finished_at", pa.timestamp("us", tz="UTC"), "When the run committed"),
    ),
    key="run_id",
    time_column="started_at",
    default_bucket="month",
)

BACKTEST_RUNS = Dataset(
    name="backtest_runs",
    doc="One row per saved backtest run (ingmon.backtest): its config, data and headline metrics.",
    columns=(
        Column("run_id", pa.string(), "Unique id of the run"),
        Column("created_at", pa.timestamp("us", tz="UTC"), "When the run was saved"),
        Column("source", pa.string(), "lake | file: where the candles and signals came from"),
        Column("timeframe", pa.string(), "Signal timeframe of lake signals", nullable=True),
        Column("data_start", TIME_MS, "Open time of the first 1m candle used"),
        Column("data_end", TIME_MS, "Open time of the last 1m candle used"),
        Column("data_hash", pa.string(), "sha256 of the candles, signals and funding used"),
        Column("config_hash", pa.string(), "sha256 of the canonical JSON of the config"),
        Column("config", pa.string(), "JSON: the full engine config"),
        Column("code_version", pa.string(), "ingmon version"),
        Column("trades", pa.int64(), "Closed trades over the whole data"),
        Column("net_return", pa.float64(), "Equity change over the whole data, fraction"),
        Column("max_drawdown", pa.float64(), "Max drawdown of the equity, fraction", nullable=True),
        Column("summary", pa.string(), "JSON: the export document (metrics, breakdowns, windows)"),
    ),
    key="run_id",
    time_column="created_at",
    default_bucket="year",
)

BACKTEST_TRADES = Dataset(
    name="backtest_trades",
    doc="The trades of saved backtest runs, one row per (run, trade).",
    columns=(
        Column("trade_id", pa.string(), "run_id:sequence number"),
        Column("run_id", pa.string(), "The run"),
        Column("signal_id", pa.string(), "The signal traded, if it came from the lake", True),
        Column("setup", pa.string(), "The signal's setup", nullable=True),
        Column("direction", pa.string(), "long | short"),
        Column("score", pa.int32(), "The signal's 0–7 score", nullable=True),
        Column("confidence", pa.string(), "high | medium | low", nullable=True),
        Column("entry_time", TIME_MS, "Open time of the entry bar"),
        Column("entry_price", pa.float64(), "Fill price of the entry (slippage included)"),
        Column("exit_time", TIME_MS, "Time of the exit fill"),
        Column("exit_price", pa.float64(), "Fill price of the exit (slippage included)"),
        Column("exit_reason", pa.string(), "stop | target | time | opposite | end"),
        Column("qty", pa.float64(), "Position size, base units"),
        Column("net_return", pa.float64(), "Net PnL over the entry notional"),
        Column("pnl", pa.float64(), "Net PnL, quote units (fees and funding included)"),
    ),
    key="trade_id",
    time_column="entry_time",
    default_bucket="year",
)

DATASETS: Mapping[str, Dataset] = {
    d.name: d
    for d in (
        CANDLES,
        AGG_TRADES,
        OPEN_INTEREST,
        FUNDING,
        INGEST_LOG,
        EXCHANGE_GAPS,
        SIGNALS,
        SCORES,
        SCORE_RUNS,
        BACKTEST_RUNS,
        BACKTEST_TRADES,
    )
}


@dataclass(frozen=True)
class MarketSeries:
    """What one market-data dataset *does*: where it comes from, how it is paged, buffered and
    judged. Code looks these values up instead of branching on the dataset; a new market
    dataset is one more entry in ``MARKET_SERIES``."""

    dataset: Dataset
    route: str  # the client's route name (and the exchange's endpoint) for REST pages
    page_limit: int  # rows asked per REST page
    flush_rows: int  # rows buffered per lake write: a partition is rewritten rarely
    skip_flag: str  # the backfill/check flag that leaves the dataset out
    # data.binance.vision file family, None when REST only
    archive_kind: Literal["klines", "aggTrades", "metrics"] | None
    # How the expected step between rows is known: the series parameter (interval/period),
    # the symbol's funding interval, or continuity of ids (no time cadence).
    cadence: Literal["param", "funding", "ids"]
    param_flag: str | None = None  # the CLI flag choosing the parameter
    default_param: str | None = None
    # Open interest and funding exist only strictly after the listing (no positions before).
    after_listing: bool = False
    # A row stamped T is final at T + step (candles: the open one is still growing) or at T
    # (an open-interest snapshot is taken at T and never changes once served).
    final_after_step: bool = False
    # REST pages paced by their own 5-minute request counters rather than the weight budget.
    own_counter: bool = False
    # Freshness defaults: age of the newest event (seconds) that warns / is an error, for a
    # series stepping by ``nominal_step_ms``; a series with a longer (shorter) step gets both
    # thresholds shifted by the difference (a 1h OI row may be an hour old and still on time).
    freshness_warn_seconds: float = 0.0
    freshness_error_seconds: float = 0.0
    nominal_step_ms: int | None = None
    # The runbook's snapshot file stem (``ingmon export``): {symbol} lower-case, {param}.
    snapshot_stem: str = "{symbol}_{dataset}"

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def time_gridded(self) -> bool:
        """Rows sit on a fixed grid of the parameter's step (candles, open interest)."""
        return self.cadence == "param"


MARKET_SERIES: Mapping[str, MarketSeries] = {
    series.name: series
    for series in (
        MarketSeries(
            CANDLES,
            route="klines",
            page_limit=499,  # weight 2 up to 499 rows: the cheapest weight per row
            flush_rows=50_000,
            skip_flag="--skip-candles",
            archive_kind="klines",
            cadence="param",
            param_flag="--interval",
            default_param="1m",
            final_after_step=True,
            freshness_warn_seconds=90,
            freshness_error_seconds=180,
            nominal_step_ms=MINUTE_MS,
            snapshot_stem="{symbol}_{param}_candles",
        ),
        MarketSeries(
            AGG_TRADES,
            route="aggTrades",
            page_limit=1000,
            flush_rows=250_000,
            skip_flag="--skip-trades",
            archive_kind="aggTrades",
            cadence="ids",
            freshness_warn_seconds=15,
            freshness_error_seconds=60,
        ),
        MarketSeries(
            OPEN_INTEREST,
            route="openInterestHist",
            page_limit=500,
            flush_rows=50_000,
            skip_flag="--skip-open-interest",
            archive_kind="metrics",
            cadence="param",
            param_flag="--oi-period",
            default_param="5m",
            after_listing=True,
            own_counter=True,
            freshness_warn_seconds=450,
            freshness_error_seconds=900,
            nominal_step_ms=5 * MINUTE_MS,
            snapshot_stem="{symbol}_open_interest_{param}",
        ),
        MarketSeries(
            FUNDING,
            route="fundingRate",
            page_limit=1000,
            flush_rows=50_000,
            skip_flag="--skip-funding",
            archive_kind=None,  # the archive's fundingRate files lack the mark price
            cadence="funding",
            after_listing=True,
            own_counter=True,
            freshness_warn_seconds=8 * 3600 + 300,
            freshness_error_seconds=8 * 3600 + 1800,
            nominal_step_ms=8 * HOUR_MS,
        ),
    )
}


def market_series(name: str) -> MarketSeries:
    """Look a market-data dataset up by name; ValueError listing the known ones."""
    try:
        return MARKET_SERIES[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}: expected one of {', '.join(MARKET_SERIES)}"
        ) from None


def dataset(name: str) -> Dataset:
    """Look a dataset up by name; ValueError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}"
        ) from None
