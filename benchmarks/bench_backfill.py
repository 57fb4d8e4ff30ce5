"""The backfill against a local exchange in another process: wall time under rate limits vs the
limits' floor, and aggTrades ingest throughput (REST pages, archive zips) vs a parse+write floor.

Part 1 (limits on). 60 days of 1m candles + funding and 30 days of 5m open interest, REST only,
for a few symbols. The exchange (``ingmon exchange serve``) runs in a subprocess with every
window ten times shorter (``--limit-scale 0.1``: 6 s weight window, 30 s five-minute windows)
and the weight per window ten times smaller (``--weight-limit 240``), so the weight rate is
Binance's own 2400 per minute and the work needs several windows. (With 2400 per 6 s the run
would need ten times Binance's rate, 100k candles/s, and measure the pipeline, not the pacing.)
The five-minute counters keep their counts (1000 OI / 500 funding requests per window) — the
CLI has no flags for them — and are computed into the floor as they are.

Floor = the least weight/requests that can fetch the rows the run stored (klines pages of the
cheapest tier per row, §1.1: 499 rows for weight 2; OI 500 rows and funding 1000 rows per
request) at the advertised rates, the largest of weight / OI / funding. "Fluid" spends the
budget evenly (the issue's definition); "fixed-window" counts whole windows but the last, which
fixed windows allow (the last window's budget is spent at its start).

Part 2 (limits off). aggTrades REST pages (fromId, 1000 rows) and daily zips of BTCUSDT are
fetched once; then, from bytes in memory to committed Parquet, our path (orjson +
``agg_trades_page`` + ``Lake.upsert``; ``parse_csv`` + ``Lake.upsert``) against the floor of
parsing the same bytes (orjson / pyarrow.csv) into an Arrow table and one ``write_table`` with
the lake's options. Then ``run_backfill`` end to end for REST-only and archive-only sources.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from benchmarks._harness import Case, median_seconds, print_table
from ingmon.binance.archive import archive_file, parse_csv
from ingmon.binance.backfill import BackfillRequest, run_backfill
from ingmon.binance.client import BinanceClient
from ingmon.binance.limits import RateLimits
from ingmon.binance.pages import agg_trades_page
from ingmon.binance.reporting import Reporter
from ingmon.config import Settings
from ingmon.lake import Lake, write_options
from ingmon.schema import AGG_TRADES

__all__ = ["main"]

DAY_MS = 86_400_000
# Thirty seconds into a UTC day: every earlier day and month is complete, and with
# --archive-delay-hours 0 already published (the warm-up reads them from the archive).
NOW = datetime(2026, 8, 1, 0, 0, 30, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)

# Part 1: Binance's rate (2400 weight per minute) on windows ten times shorter.
LIMIT_SCALE = 0.1
WEIGHT_PER_WINDOW = 240
WEIGHT_WINDOW_SECONDS = 60 * LIMIT_SCALE
FIVE_MINUTE_SECONDS = 300 * LIMIT_SCALE
OI_REQUESTS_PER_WINDOW = 1000
FUNDING_REQUESTS_PER_WINDOW = 500
LIMITED_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT")
CANDLE_DAYS = 60
# §1.1: klines weight by limit tier; within a tier the largest page is the cheapest per row.
KLINE_TIERS = ((99, 1), (499, 2), (1000, 5), (1500, 10))
OI_ROWS_PER_REQUEST = 500
FUNDING_ROWS_PER_REQUEST = 1000

# Part 2: two complete days of BTCUSDT aggTrades.
TRADE_SYMBOL = "BTCUSDT"
TRADE_DAYS = (date(2026, 7, 29), date(2026, 7, 30))
REPEAT = 3


# ---- the exchange in another process ------------------------------------------------------------


@contextmanager
def exchange_process(symbols: Sequence[str], *, days: int, flags: Sequence[str]) -> Iterator[str]:
    """``ingmon exchange serve`` frozen at NOW on a free port; yields its base URL."""
    command = [
        sys.executable,
        "-m",
        "ingmon.cli",
        "exchange",
        "serve",
        "--port",
        "0",
        "--symbols",
        ",".join(symbols),
        "--days",
        str(days),
        "--frozen-at",
        NOW.isoformat(),
        "--archive-delay-hours",
        "0",
        *flags,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r" on (http://\S+)", line)
        if found is None:
            raise RuntimeError(f"the exchange did not start: {line!r}")
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _settings(data_dir: Path, base_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        binance_base_url=base_url,
        binance_archive_url=base_url,
        log_format="json",
    )


def _quiet() -> Reporter:
    return Reporter(mode="json", stream=io.StringIO())


# ---- part 1: rate-limited backfill vs the floor --------------------------------------------------


def min_klines_weight(rows: int) -> int:
    """The least weight that fetches ``rows`` candles: pages of one tier's largest size."""
    if rows <= 0:
        return 0
    return min(math.ceil(rows / size) * weight for size, weight in KLINE_TIERS)


@dataclass(frozen=True)
class Floor:
    """Least cost of the stored rows, and the seconds it takes at the advertised limits."""

    weight: int
    oi_requests: int
    funding_requests: int

    def fluid_seconds(self) -> dict[str, float]:
        return {
            "weight": self.weight / WEIGHT_PER_WINDOW * WEIGHT_WINDOW_SECONDS,
            "openInterestHist": self.oi_requests / OI_REQUESTS_PER_WINDOW * FIVE_MINUTE_SECONDS,
            "fundingRate": (
                self.funding_requests / FUNDING_REQUESTS_PER_WINDOW * FIVE_MINUTE_SECONDS
            ),
        }

    def fixed_window_seconds(self) -> dict[str, float]:
        def whole(amount: int, per_window: int, window_seconds: float) -> float:
            return max(math.ceil(amount / per_window) - 1, 0) * window_seconds

        return {
            "weight": whole(self.weight, WEIGHT_PER_WINDOW, WEIGHT_WINDOW_SECONDS),
            "openInterestHist": whole(
                self.oi_requests, OI_REQUESTS_PER_WINDOW, FIVE_MINUTE_SECONDS
            ),
            "fundingRate": whole(
                self.funding_requests, FUNDING_REQUESTS_PER_WINDOW, FIVE_MINUTE_SECONDS
            ),
        }


def floor_of(summary: dict[str, Any]) -> Floor:
    """The floor of what the run stored, symbol by symbol."""
    datasets = summary["datasets"]

    def rows(name: str) -> list[int]:
        return [entry["rows"] for entry in datasets[name]["symbols"].values()]

    return Floor(
        weight=sum(min_klines_weight(count) for count in rows("candles")),
        oi_requests=sum(math.ceil(n / OI_ROWS_PER_REQUEST) for n in rows("open_interest")),
        funding_requests=sum(math.ceil(n / FUNDING_ROWS_PER_REQUEST) for n in rows("funding")),
    )


def warm_up(base_url: str, symbols: Sequence[str]) -> None:
    """Build the server's candle, OI and funding caches through routes that cost no weight:
    the monthly 1m klines zips of the window (this also builds every day's skeleton, which OI
    and funding read), then one 1-weight klines request per symbol for the current day."""
    months = ("2026-06", "2026-07")
    with httpx.Client(base_url=base_url, timeout=120) as http:
        for symbol in symbols:
            for month in months:
                path = f"/data/futures/um/monthly/klines/{symbol}/1m/{symbol}-1m-{month}.zip"
                http.get(path).raise_for_status()
            http.get(
                "/fapi/v1/klines",
                params={
                    "symbol": symbol,
                    "interval": "1m",
                    "startTime": NOW_MS - 60_000,
                    "limit": 1,
                },
            ).raise_for_status()


def wait_for_fresh_window(window_seconds: float) -> None:
    """Sleep until just after the next multiple of ``window_seconds`` (a fresh window)."""
    time.sleep(window_seconds - time.time() % window_seconds + 0.02)


def limited_backfill() -> None:
    flags = [
        "--limit-scale",
        str(LIMIT_SCALE),
        "--weight-limit",
        str(WEIGHT_PER_WINDOW),
    ]
    symbols = LIMITED_SYMBOLS
    with exchange_process(symbols, days=CANDLE_DAYS + 2, flags=flags) as base_url:
        warm_started = time.perf_counter()
        warm_up(base_url, symbols)
        warm_seconds = time.perf_counter() - warm_started
        wait_for_fresh_window(WEIGHT_WINDOW_SECONDS)
        data_dir = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
        try:
            settings = _settings(data_dir, base_url)
            # The client run_backfill would build, kept here to read every route's counters.
            client = BinanceClient(
                base_url,
                archive_url=base_url,
                limits=RateLimits(weight_per_window=settings.binance_weight_limit_per_minute),
            )
            # One run, one window: 60 days for candles and funding. openInterestHist serves
            # only 30 days, so the plan marks the older 30 days "unavailable" (source rest has
            # no archive) at no cost; those problems are expected and checked below.
            request = BackfillRequest(
                symbols=symbols,
                window_days=CANDLE_DAYS,
                source="rest",
                datasets=("candles", "funding", "open_interest"),
            )
            started = time.perf_counter()
            with client:
                summary = run_backfill(
                    request, settings=settings, client=client, reporter=_quiet()
                ).to_dict()
            wall_seconds = time.perf_counter() - started
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    unexpected = [
        p
        for p in summary["problems"]
        if not (p["dataset"] == "open_interest" and p["kind"] == "unavailable")
    ]
    if unexpected:
        raise RuntimeError(f"the rate-limited backfill had problems: {unexpected[:3]}")
    _report_limited(summary, client, wall_seconds=wall_seconds, warm_seconds=warm_seconds)


def _report_limited(
    summary: dict[str, Any], client: BinanceClient, *, wall_seconds: float, warm_seconds: float
) -> None:
    floor = floor_of(summary)
    fluid = floor.fluid_seconds()
    fixed = floor.fixed_window_seconds()
    binding = max(fluid, key=lambda name: fluid[name])
    fixed_binding = max(fixed, key=lambda name: fixed[name])
    datasets = summary["datasets"]
    rows = sum(entry["fetched"] for entry in datasets.values())
    stats = client.stats
    weight_used = sum(route.weight for route in stats.values())
    http_429 = sum(route.http_429 for route in stats.values())
    http_418 = sum(route.http_418 for route in stats.values())
    oi_requests = stats["openInterestHist"].requests
    funding_requests = stats["fundingRate"].requests + stats["fundingInfo"].requests
    symbols = len(summary["symbols"])
    print(
        f"\n== backfill under rate limits: {symbols} symbols, {CANDLE_DAYS} d 1m candles + "
        f"funding, 30 d 5m OI, source rest; exchange in a subprocess, "
        f"{WEIGHT_PER_WINDOW} weight / {WEIGHT_WINDOW_SECONDS:g} s (= 2400/min), "
        f"{OI_REQUESTS_PER_WINDOW} OI and {FUNDING_REQUESTS_PER_WINDOW} funding requests / "
        f"{FIVE_MINUTE_SECONDS:g} s; one run after a warm-up of {warm_seconds:.1f} s"
    )
    print(
        f"rows stored {rows:,} (candles {datasets['candles']['fetched']:,}, "
        f"OI {datasets['open_interest']['fetched']:,}, funding {datasets['funding']['fetched']:,})"
    )
    print(
        f"weight used {weight_used:,} vs least {floor.weight:,} "
        f"({weight_used / floor.weight:.3f}×; {WEIGHT_PER_WINDOW}/window → "
        f"{floor.weight / WEIGHT_PER_WINDOW:.2f} windows); OI requests {oi_requests} vs least "
        f"{floor.oi_requests}; funding requests {funding_requests} vs least "
        f"{floor.funding_requests}"
    )
    print(
        f"429s {http_429}, 418s {http_418}, retries "
        f"{sum(route.retries for route in stats.values())}; client threads slept "
        f"{client.weight_budget.waited_seconds:.1f} s on weight, "
        f"{client.data_budget.waited_seconds:.1f} s on OI"
    )
    floors = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in fluid.items())
    print(f"fluid floors: {floors}")
    cases = [
        Case(f"floor, fluid ({binding})", rows, fluid[binding]),
        Case(f"floor, fixed windows ({fixed_binding})", rows, fixed[fixed_binding]),
        Case("run_backfill wall time", rows, wall_seconds),
    ]
    print_table(
        "rate-limited backfill: wall time vs the limits' floor (goal ≤ 1.15×, zero 429s)",
        cases,
        baseline=cases[0].name,
    )
    print(
        f"ratio to the fluid floor {wall_seconds / fluid[binding]:.3f}×, to the fixed-window "
        f"floor {wall_seconds / max(fixed[fixed_binding], 1e-9):.3f}×; 429s: {http_429}"
    )


# ---- part 2: aggTrades ingest throughput ---------------------------------------------------------


@dataclass
class TradeBytes:
    """The raw bytes of one symbol's aggTrades over TRADE_DAYS, as received."""

    pages: list[tuple[int, bytes]]  # (fromId, body)
    zips: list[tuple[date, bytes]]
    rows: int


def fetch_trade_bytes(base_url: str) -> TradeBytes:
    """REST pages of 1000 by fromId over the days, and the days' archive zips (limits off)."""
    start_ms = _day_ms(TRADE_DAYS[0])
    end_ms = _day_ms(TRADE_DAYS[-1]) + DAY_MS - 1
    pages: list[tuple[int, bytes]] = []
    with httpx.Client(base_url=base_url, timeout=120) as http:
        first = http.get(
            "/fapi/v1/aggTrades",
            params={"symbol": TRADE_SYMBOL, "startTime": start_ms, "endTime": start_ms + 60_000},
        ).json()
        from_id = first[0]["a"]
        rows = 0
        while True:
            body = http.get(
                "/fapi/v1/aggTrades",
                params={"symbol": TRADE_SYMBOL, "fromId": from_id, "limit": 1000},
            ).content
            trades = orjson.loads(body)
            inside = [t for t in trades if t["T"] <= end_ms]
            if not inside:
                break
            pages.append((from_id, body))
            rows += len(inside)
            if len(inside) < len(trades):
                break
            from_id = trades[-1]["a"] + 1
        zips = []
        for day in TRADE_DAYS:
            file = archive_file("aggTrades", TRADE_SYMBOL, day, period="daily")
            response = http.get(file.path)
            response.raise_for_status()
            zips.append((day, response.content))
    return TradeBytes(pages, zips, rows)


class FreshLake:
    """A new empty lake (and scratch directory) before each timed run."""

    def __init__(self) -> None:
        self.directory: Path | None = None

    def reset(self) -> None:
        self.close()
        self.directory = Path(tempfile.mkdtemp(prefix="bench-ingest-"))

    @property
    def lake(self) -> Lake:
        assert self.directory is not None
        return Lake(self.directory / "lake")

    def scratch(self, name: str) -> Path:
        assert self.directory is not None
        return self.directory / name

    def close(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def ours_rest(data: TradeBytes, target: FreshLake) -> int:
    """orjson + agg_trades_page per page, batched into one upsert per day as the runner does."""
    end_ms = _day_ms(TRADE_DAYS[-1]) + DAY_MS - 1
    tables = [
        agg_trades_page(
            orjson.loads(body), limit=1000, cursor="", from_id=from_id, end_ms=end_ms
        ).table
        for from_id, body in data.pages
    ]
    table = pa.concat_tables(tables)
    target.lake.upsert(AGG_TRADES, table, symbol=TRADE_SYMBOL)
    return table.num_rows


def floor_rest(data: TradeBytes, target: FreshLake) -> int:
    """orjson, the Arrow table built straight from the columns, one write_table."""
    end_ms = _day_ms(TRADE_DAYS[-1]) + DAY_MS - 1
    tables = []
    for _, body in data.pages:
        rows = orjson.loads(body)
        tables.append(
            pa.table(
                {
                    "agg_trade_id": pa.array([r["a"] for r in rows], pa.int64()),
                    "price": pa.array([r["p"] for r in rows], pa.string()).cast(pa.float64()),
                    "quantity": pa.array([r["q"] for r in rows], pa.string()).cast(pa.float64()),
                    "first_trade_id": pa.array([r["f"] for r in rows], pa.int64()),
                    "last_trade_id": pa.array([r["l"] for r in rows], pa.int64()),
                    "transact_time": pa.array([r["T"] for r in rows], pa.int64()).cast(
                        pa.timestamp("ms", tz="UTC")
                    ),
                    "is_buyer_maker": pa.array([r["m"] for r in rows], pa.bool_()),
                }
            )
        )
    table = pa.concat_tables(tables)
    table = table.filter(pa.compute.less_equal(table["transact_time"].cast(pa.int64()), end_ms))
    pq.write_table(table, target.scratch("floor.parquet"), **write_options(table.schema))
    return table.num_rows


def ours_zip(data: TradeBytes, target: FreshLake) -> int:
    """parse_csv + Lake.upsert per daily zip."""
    rows = 0
    for day, payload in data.zips:
        table = parse_csv(archive_file("aggTrades", TRADE_SYMBOL, day, period="daily"), payload)
        target.lake.upsert(AGG_TRADES, table, symbol=TRADE_SYMBOL)
        rows += table.num_rows
    return rows


_CSV_COLUMNS = {
    "agg_trade_id": pa.int64(),
    "price": pa.float64(),
    "quantity": pa.float64(),
    "first_trade_id": pa.int64(),
    "last_trade_id": pa.int64(),
    "transact_time": pa.int64(),
    "is_buyer_maker": pa.bool_(),
}


def floor_zip(data: TradeBytes, target: FreshLake) -> int:
    """zipfile + pyarrow.csv.read_csv + one write_table per daily zip."""
    rows = 0
    for day, payload in data.zips:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            raw = archive.read(archive.namelist()[0])
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(
                column_names=list(_CSV_COLUMNS), skip_rows=0 if raw[:1].isdigit() else 1
            ),
            convert_options=pacsv.ConvertOptions(column_types=_CSV_COLUMNS),
        )
        times = table["transact_time"].cast(pa.timestamp("ms", tz="UTC"))
        table = table.set_column(5, "transact_time", times)
        pq.write_table(table, target.scratch(f"{day}.parquet"), **write_options(table.schema))
        rows += table.num_rows
    return rows


def ingest_cases(data: TradeBytes) -> tuple[list[Case], list[Case]]:
    target = FreshLake()
    try:
        checks = {}
        for run in (ours_rest, floor_rest, ours_zip, floor_zip):
            target.reset()
            checks[run.__name__] = run(data, target)
        if len(set(checks.values())) != 1:
            raise RuntimeError(f"the four paths disagree on the rows: {checks}")
        rows = checks["ours_rest"]

        def timed(run: Any) -> float:
            return median_seconds(lambda: run(data, target), repeat=7, setup=target.reset)

        rest = [
            Case("floor: orjson + Arrow build + write_table", rows, timed(floor_rest)),
            Case("ours: orjson + agg_trades_page + Lake.upsert", rows, timed(ours_rest)),
        ]
        archive = [
            Case("floor: zipfile + pyarrow.csv + write_table", rows, timed(floor_zip)),
            Case("ours: parse_csv + Lake.upsert", rows, timed(ours_zip)),
        ]
        return rest, archive
    finally:
        target.close()


def end_to_end_cases(base_url: str, rows_expected: int) -> list[Case]:
    """run_backfill of the trade days, limits off, per source: median wall time."""
    target = FreshLake()
    start_ms = _day_ms(TRADE_DAYS[0])
    end_ms = _day_ms(TRADE_DAYS[-1]) + DAY_MS - 1

    def run(source: Any) -> None:
        assert target.directory is not None
        request = BackfillRequest(
            symbols=(TRADE_SYMBOL,),
            start_ms=start_ms,
            end_ms=end_ms,
            datasets=("agg_trades",),
            source=source,
        )
        settings = _settings(target.directory, base_url)
        summary = run_backfill(request, settings=settings, reporter=_quiet()).to_dict()
        fetched = summary["datasets"]["agg_trades"]["fetched"]
        if summary["status"] != "complete" or fetched != rows_expected:
            raise RuntimeError(f"{source}: {summary['status']}, {fetched} rows: {summary}")

    try:
        cases = []
        for source, label in (("archive", "archive zips"), ("rest", "REST pages")):
            target.reset()
            run(source)  # warm: the server builds the zips / trade days once
            seconds = median_seconds(lambda s=source: run(s), repeat=REPEAT, setup=target.reset)
            cases.append(Case(f"run_backfill aggTrades, {label}", rows_expected, seconds))
        return cases
    finally:
        target.close()


def ingest_throughput() -> None:
    # --no-limits advertises an unlimited weight, which a client on default settings follows.
    with exchange_process((TRADE_SYMBOL,), days=5, flags=["--no-limits"]) as base_url:
        data = fetch_trade_bytes(base_url)
        rest, archive = ingest_cases(data)
        end_to_end = end_to_end_cases(base_url, data.rows)
    json_mb = sum(len(body) for _, body in data.pages) / 1e6
    zip_mb = sum(len(payload) for _, payload in data.zips) / 1e6
    days = len(TRADE_DAYS)
    print(
        f"\n== aggTrades ingest, {days} d {TRADE_SYMBOL} ({data.rows:,} rows; {len(data.pages)} "
        f"REST pages = {json_mb:.1f} MB JSON, {days} daily zips = {zip_mb:.1f} MB), limits off"
    )
    print_table(
        "REST pages in memory → committed Parquet (goal ≤ 2× the floor)",
        rest,
        baseline=rest[0].name,
    )
    print_table(
        "archive zips in memory → committed Parquet (goal ≤ 2× the floor)",
        archive,
        baseline=archive[0].name,
    )
    print_table(
        f"end to end: run_backfill over HTTP, exchange in a subprocess (median of {REPEAT})",
        end_to_end,
        baseline=end_to_end[0].name,
    )
    by_source = zip(("archive", "REST"), (archive[1], rest[1]), end_to_end, strict=True)
    print(
        "end to end vs in memory (HTTP, the server's rendering, paging, planning, ingest log): "
        + ", ".join(f"{name} {e2e.seconds / mem.seconds:.2f}×" for name, mem, e2e in by_source)
    )


def main() -> None:
    started = time.perf_counter()
    limited_backfill()
    ingest_throughput()
    print(f"\n(bench_backfill took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
