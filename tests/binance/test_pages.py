"""Page validators on hand-built bodies: windows, open candles, grids, ids, duplicates, shapes."""

from __future__ import annotations

from typing import Any

import pytest

from ingmon.binance.pages import (
    MalformedResponse,
    agg_trades_page,
    funding_page,
    klines_page,
    open_interest_page,
)
from ingmon.errors import ExchangeError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
T0_MS = 1_709_337_600_000  # 2024-03-02 00:00 UTC


def kline(open_ms: int, close: str = "100.0", *, step_ms: int = MINUTE_MS) -> list[Any]:
    """A Binance kline row: ints at 0/6/8, decimal strings elsewhere."""
    return [
        open_ms,
        "99.5",
        "101.0",
        "99.0",
        close,
        "1.250",
        open_ms + step_ms - 1,
        "125.50",
        7,
        "0.500",
        "50.25",
        "0",
    ]


def klines(rows: list[list[Any]], **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "interval": "1m",
        "start_ms": T0_MS,
        "end_ms": T0_MS + 9 * MINUTE_MS,
        "limit": 499,
        "cursor": "c",
    }
    options.update(overrides)
    return klines_page(rows, **options)


def open_times(page: Any, column: str) -> list[int]:
    return [value.timestamp() * 1000 for value in page.table[column].to_pylist()]


# ---- klines ------------------------------------------------------------------------------------


def test_klines_values_parsed_into_lake_columns() -> None:
    """Every field of a kline row lands in its lake column with the float of its string."""
    page = klines([kline(T0_MS)])
    row = page.table.to_pylist()[0]
    assert open_times(page, "open_time") == [T0_MS]
    assert open_times(page, "close_time") == [T0_MS + MINUTE_MS - 1]
    assert (row["open"], row["high"], row["low"], row["close"]) == (99.5, 101.0, 99.0, 100.0)
    assert (row["volume"], row["quote_volume"], row["trade_count"]) == (1.25, 125.5, 7)
    assert (row["taker_buy_volume"], row["taker_buy_quote_volume"], row["ignore"]) == (
        0.5,
        50.25,
        0.0,
    )
    assert (page.received, page.rejected, page.duplicates) == (1, 0, 0)


def test_klines_window_edges_are_inclusive() -> None:
    """Candles opening exactly at startTime and endTime are kept; one step outside is not."""
    end_ms = T0_MS + 3 * MINUTE_MS
    rows = [kline(T0_MS + offset * MINUTE_MS) for offset in range(-1, 5)]
    page = klines(rows, end_ms=end_ms)
    assert open_times(page, "open_time") == [T0_MS + k * MINUTE_MS for k in range(4)]
    assert page.rejected == 2


def test_klines_open_candle_dropped() -> None:
    """A candle whose close time is not before ``closed_before_ms`` (still open) is dropped."""
    now_ms = T0_MS + 2 * MINUTE_MS + 30_000  # mid third candle
    rows = [kline(T0_MS + k * MINUTE_MS) for k in range(3)]
    page = klines(rows, closed_before_ms=now_ms)
    assert open_times(page, "open_time") == [T0_MS, T0_MS + MINUTE_MS]
    assert page.rejected == 1
    # The candle whose close time is exactly one ms before now is closed.
    exact = klines(rows, closed_before_ms=T0_MS + 3 * MINUTE_MS)
    assert exact.table.num_rows == 3


def test_klines_off_grid_rows_rejected() -> None:
    """Open times off the interval grid, or a close time that is not open + interval − 1, are
    rejected and counted."""
    shifted = kline(T0_MS + MINUTE_MS + 1)
    wrong_close = kline(T0_MS + 2 * MINUTE_MS)
    wrong_close[6] += 1
    five_minute = kline(T0_MS + 3 * MINUTE_MS, step_ms=5 * MINUTE_MS)
    page = klines([kline(T0_MS), shifted, wrong_close, five_minute])
    assert open_times(page, "open_time") == [T0_MS]
    assert page.rejected == 3
    # The same 5-minute row is valid for a 5m request.
    five = klines([kline(T0_MS, step_ms=5 * MINUTE_MS)], interval="5m")
    assert five.table.num_rows == 1


def test_klines_duplicates_dropped_counted_and_sorted() -> None:
    """Repeated open times keep their first row, are counted, and the page comes out sorted."""
    rows = [
        kline(T0_MS + MINUTE_MS, "2.0"),
        kline(T0_MS, "1.0"),
        kline(T0_MS + MINUTE_MS, "9.0"),
        kline(T0_MS + 2 * MINUTE_MS, "3.0"),
        kline(T0_MS, "8.0"),
    ]
    page = klines(rows)
    assert open_times(page, "open_time") == [T0_MS + k * MINUTE_MS for k in range(3)]
    assert page.table["close"].to_pylist() == [1.0, 2.0, 3.0]
    assert (page.received, page.duplicates, page.rejected) == (5, 2, 0)


def test_klines_full_means_limit_reached() -> None:
    """A page is full when it received ``limit`` rows, even if some were rejected."""
    rows = [kline(T0_MS - MINUTE_MS), kline(T0_MS)]
    assert klines(rows, limit=2).full
    assert not klines(rows, limit=3).full


def test_klines_empty_body_is_an_empty_page() -> None:
    """``[]`` (e.g. a maintenance window) is a valid, empty page in the lake schema."""
    page = klines([])
    assert page.table.num_rows == 0
    assert page.table.schema.names[0] == "open_time"
    assert not page.full


@pytest.mark.parametrize(
    "body",
    [
        {"code": -1121, "msg": "Invalid symbol."},
        [kline(T0_MS)[:11]],
        [dict(enumerate(kline(T0_MS)))],
        [[str(T0_MS), *kline(T0_MS)[1:]]],
        [[*kline(T0_MS)[:1], "abc", *kline(T0_MS)[2:]]],
        [[*kline(T0_MS)[:8], "7", *kline(T0_MS)[9:]]],
        [[None, *kline(T0_MS)[1:]]],
        [[*kline(T0_MS)[:4], None, *kline(T0_MS)[5:]]],
        [[*kline(T0_MS)[:8], None, *kline(T0_MS)[9:]]],
    ],
    ids=[
        "object",
        "eleven-fields",
        "row-object",
        "string-open-time",
        "non-numeric-price",
        "string-count",
        "null-open-time",
        "null-close",
        "null-count",
    ],
)
def test_klines_malformed_shapes_raise(body: Any) -> None:
    """Bodies that are not arrays of 12-field rows with the documented types are malformed."""
    with pytest.raises(MalformedResponse):
        klines(body)


# ---- aggTrades ---------------------------------------------------------------------------------


def trade(agg_id: int, time_ms: int | None = None, **overrides: Any) -> dict[str, Any]:
    """A Binance aggTrade object (``nq`` included: unknown keys are ignored)."""
    row: dict[str, Any] = {
        "a": agg_id,
        "p": "42000.10",
        "q": "0.015",
        "nq": "0.015",
        "f": agg_id * 3,
        "l": agg_id * 3 + 2,
        "T": T0_MS + agg_id if time_ms is None else time_ms,
        "m": agg_id % 2 == 0,
    }
    row.update(overrides)
    return row


def test_agg_trades_values_parsed_into_lake_columns() -> None:
    """Each aggTrade key lands in its lake column (a, p, q, f, l, T, m)."""
    page = agg_trades_page([trade(10)], limit=1000, cursor="c", from_id=10)
    row = page.table.to_pylist()[0]
    assert row["agg_trade_id"] == 10
    assert (row["price"], row["quantity"]) == (42000.1, 0.015)
    assert (row["first_trade_id"], row["last_trade_id"]) == (30, 32)
    assert row["transact_time"].timestamp() * 1000 == T0_MS + 10
    assert row["is_buyer_maker"] is True


def test_agg_trades_page_must_start_at_from_id() -> None:
    """With fromId, a page starting at a later id means fromId is past the REST retention."""
    with pytest.raises(ExchangeError, match="older than the REST retention"):
        agg_trades_page([trade(11), trade(12)], limit=1000, cursor="c", from_id=10)


def test_agg_trades_rows_before_from_id_rejected() -> None:
    """Rows repeated from the previous page (ids below fromId) are rejected, not stored."""
    rows = [trade(8), trade(9), trade(10), trade(11)]
    page = agg_trades_page(rows, limit=1000, cursor="c", from_id=10)
    assert page.table["agg_trade_id"].to_pylist() == [10, 11]
    assert page.rejected == 2


def test_agg_trades_cut_at_first_hole() -> None:
    """Ids after the first hole are cut off (counted as rejected) so the next page resumes there."""
    rows = [trade(10), trade(11), trade(13), trade(14), trade(16)]
    page = agg_trades_page(rows, limit=1000, cursor="c", from_id=10)
    assert page.table["agg_trade_id"].to_pylist() == [10, 11]
    assert page.rejected == 3


def test_agg_trades_duplicates_dropped_counted_and_sorted() -> None:
    """Repeated ids keep one row, are counted, and the page comes out in id order."""
    rows = [trade(11), trade(10), trade(11), trade(12), trade(10)]
    page = agg_trades_page(rows, limit=1000, cursor="c", from_id=10)
    assert page.table["agg_trade_id"].to_pylist() == [10, 11, 12]
    assert (page.duplicates, page.rejected) == (2, 0)


def test_agg_trades_time_window_edges_inclusive() -> None:
    """By time, trades at exactly startTime and endTime are kept; those outside are rejected."""
    rows = [trade(1, T0_MS - 1), trade(2, T0_MS), trade(3, T0_MS + 500), trade(4, T0_MS + 501)]
    page = agg_trades_page(rows, limit=1000, cursor="c", start_ms=T0_MS, end_ms=T0_MS + 500)
    assert page.table["agg_trade_id"].to_pylist() == [2, 3]
    assert page.rejected == 2


@pytest.mark.parametrize(
    "body",
    [
        {"a": 1},
        [[10, "1", "1", 1, 1, T0_MS, True]],
        [trade(10, m=1)],
        [trade(10, m="true")],
        [{key: value for key, value in trade(10).items() if key != "T"}],
        [trade(10, a="10")],
        [trade(10, p="x")],
        [trade(10, a=None)],
        [trade(10, T=None)],
        [trade(10, p=None)],
        [trade(10, f=None)],
    ],
    ids=[
        "object",
        "row-array",
        "int-maker",
        "string-maker",
        "missing-T",
        "string-id",
        "bad-price",
        "null-id",
        "null-time",
        "null-price",
        "null-first-id",
    ],
)
def test_agg_trades_malformed_shapes_raise(body: Any) -> None:
    """Bodies that are not arrays of aggTrade objects with the documented types are malformed."""
    with pytest.raises(MalformedResponse):
        agg_trades_page(body, limit=1000, cursor="c", from_id=10)


# ---- openInterestHist --------------------------------------------------------------------------

FIVE_MINUTES_MS = 5 * MINUTE_MS


def interest(stamp_ms: int, *, as_string: bool = False, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "sumOpenInterest": "81234.56700000",
        "sumOpenInterestValue": "3412345678.12345678",
        "CMCCirculatingSupply": "19650000.00",
        "timestamp": str(stamp_ms) if as_string else stamp_ms,
    }
    row.update(overrides)
    return row


def oi_page(rows: Any, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "period": "5m",
        "start_ms": T0_MS,
        "end_ms": T0_MS + 4 * FIVE_MINUTES_MS,
        "limit": 500,
        "cursor": "c",
    }
    options.update(overrides)
    return open_interest_page(rows, **options)


@pytest.mark.parametrize("as_string", [False, True], ids=["int", "string"])
def test_open_interest_timestamp_int_or_string(as_string: bool) -> None:
    """The timestamp parses whether Binance sends it as an integer or (as documented) a string."""
    page = oi_page([interest(T0_MS + FIVE_MINUTES_MS, as_string=as_string)])
    row = page.table.to_pylist()[0]
    assert row["timestamp"].timestamp() * 1000 == T0_MS + FIVE_MINUTES_MS
    assert row["sum_open_interest"] == 81234.567
    assert row["sum_open_interest_value"] == 3412345678.12345678
    assert row["cmc_circulating_supply"] == 19650000.0


def test_open_interest_window_edges_and_grid() -> None:
    """Stamps at both window edges are kept; outside or off the period grid are rejected."""
    end_ms = T0_MS + 4 * FIVE_MINUTES_MS
    rows = [
        interest(T0_MS - FIVE_MINUTES_MS),
        interest(T0_MS),
        interest(T0_MS + MINUTE_MS),
        interest(end_ms),
        interest(end_ms + FIVE_MINUTES_MS),
    ]
    page = oi_page(rows)
    assert open_times(page, "timestamp") == [T0_MS, end_ms]
    assert page.rejected == 3


def test_open_interest_duplicates_and_missing_supply() -> None:
    """Repeated stamps are dropped and counted; a missing CMCCirculatingSupply is null."""
    rows = [interest(T0_MS), interest(T0_MS), {**interest(T0_MS + FIVE_MINUTES_MS)}]
    del rows[2]["CMCCirculatingSupply"]
    page = oi_page(rows)
    assert page.duplicates == 1
    assert page.table["cmc_circulating_supply"].to_pylist() == [19650000.0, None]


@pytest.mark.parametrize(
    "body",
    [
        {"msg": "parameter 'startTime' is invalid.", "code": -1130},
        [interest(T0_MS, timestamp="soon")],
        [{key: value for key, value in interest(T0_MS).items() if key != "sumOpenInterest"}],
        [interest(T0_MS, sumOpenInterest=None)],
        [interest(T0_MS, timestamp=None)],
    ],
    ids=["error-object", "word-timestamp", "missing-oi", "null-oi", "null-timestamp"],
)
def test_open_interest_malformed_shapes_raise(body: Any) -> None:
    """Bodies that are not arrays of OI objects with the documented fields are malformed."""
    with pytest.raises(MalformedResponse):
        oi_page(body)


# ---- fundingRate -------------------------------------------------------------------------------

EIGHT_HOURS_MS = 8 * HOUR_MS


def settlement(time_ms: int, rate: str = "0.00010000", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "fundingRate": rate,
        "fundingTime": time_ms,
        "markPrice": "62000.10000000",
        "rateType": "Regular",
    }
    row.update(overrides)
    return row


def funding(rows: Any, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "start_ms": T0_MS,
        "end_ms": T0_MS + 2 * EIGHT_HOURS_MS,
        "limit": 1000,
        "cursor": "c",
    }
    options.update(overrides)
    return funding_page(rows, **options)


def test_funding_ms_jitter_floored_to_the_second() -> None:
    """fundingTime sent a few ms after the hour (``…002``) is stored on the second."""
    page = funding([settlement(T0_MS + 2), settlement(T0_MS + EIGHT_HOURS_MS + 999)])
    assert open_times(page, "funding_time") == [T0_MS, T0_MS + EIGHT_HOURS_MS]
    assert page.table["funding_rate"].to_pylist() == [0.0001, 0.0001]
    assert page.table["mark_price"].to_pylist() == [62000.1, 62000.1]
    assert page.table["funding_interval_hours"].null_count == 2


def test_funding_window_edges_inclusive() -> None:
    """Settlements at exactly startTime and endTime are kept, the ones outside rejected."""
    end_ms = T0_MS + 2 * EIGHT_HOURS_MS
    rows = [settlement(T0_MS - EIGHT_HOURS_MS), settlement(T0_MS), settlement(end_ms)]
    rows.append(settlement(end_ms + EIGHT_HOURS_MS))
    page = funding(rows)
    assert open_times(page, "funding_time") == [T0_MS, end_ms]
    assert page.rejected == 2


def test_funding_duplicates_after_flooring_dropped() -> None:
    """Two rows of one settlement (jitter apart) become one after flooring, counted once."""
    page = funding([settlement(T0_MS + 1, "0.0001"), settlement(T0_MS + 3, "0.0002")])
    assert page.table.num_rows == 1
    assert page.duplicates == 1
    assert page.table["funding_rate"].to_pylist() == [0.0001]


def test_funding_empty_mark_price_is_null() -> None:
    """An empty markPrice (old records) is stored as null, not 0."""
    page = funding([settlement(T0_MS, markPrice="")])
    assert page.table["mark_price"].to_pylist() == [None]


@pytest.mark.parametrize(
    "body",
    [
        {"code": -1121, "msg": "Invalid symbol."},
        [settlement(T0_MS, symbol="ETHUSDT")],
        [settlement(T0_MS, fundingTime="noon")],
        [{key: value for key, value in settlement(T0_MS).items() if key != "fundingRate"}],
        [settlement(T0_MS, fundingRate=None)],
        [settlement(T0_MS, fundingTime=None)],
    ],
    ids=["error-object", "other-symbol", "word-time", "missing-rate", "null-rate", "null-time"],
)
def test_funding_malformed_shapes_raise(body: Any) -> None:
    """Bodies that are not this symbol's settlements with the documented fields are malformed."""
    with pytest.raises(MalformedResponse):
        funding(body)
