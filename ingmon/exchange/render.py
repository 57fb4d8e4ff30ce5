"""Vectorised rendering of kline and aggTrade rows as JSON or CSV bytes with Arrow's C kernels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingmon.exchange.market import AggTrades, IntArray, Klines, SymbolSpec, format_fixed

__all__ = [
    "agg_trades_csv",
    "agg_trades_json",
    "fixed_strings",
    "klines_csv",
    "klines_json",
]

# Rows are rendered in slices so one Arrow string array never nears its 2 GiB offset limit.
_SLICE_ROWS = 1_000_000
# Arrow writes decimals below 1e-6 in scientific notation ("5E-8"); those go through Python.
_ARROW_PLAIN_DECIMALS = 6

# A template piece: a pyarrow string Array (one value per row) or a literal str.
Part = object


def int_strings(values: IntArray) -> pa.Array:
    """Integers as decimal strings."""
    return pa.array(np.ascontiguousarray(values, dtype=np.int64)).cast(pa.string())


def fixed_strings(units: IntArray, decimals: int) -> pa.Array:
    """Integers in units of 10**-decimals as Binance decimal strings ("63043.40"), in C."""
    values = np.ascontiguousarray(units, dtype=np.int64)
    if decimals <= 0:
        return int_strings(values)
    if decimals > _ARROW_PLAIN_DECIMALS and bool(
        (np.abs(values) < 10 ** (decimals - _ARROW_PLAIN_DECIMALS)).any()
    ):
        return pa.array(format_fixed(values, decimals), type=pa.string())
    # The int64 units become the unscaled decimal128 values (high word = sign extension).
    wide = np.empty((values.size, 2), dtype=np.int64)
    wide[:, 0] = values
    wide[:, 1] = values >> 63
    decimal = pa.Array.from_buffers(
        pa.decimal128(38, decimals), values.size, [None, pa.py_buffer(wide)]
    )
    return decimal.cast(pa.string())


def _joined(parts: Sequence[Part]) -> bytes:
    """Each row's pieces concatenated, then all rows end to end (templates carry separators)."""
    rows = pc.binary_join_element_wise(*parts, "")
    if len(rows) == 0:
        return b""
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)
    start = int(offsets[rows.offset])
    stop = int(offsets[rows.offset + len(rows)])
    data: bytes = rows.buffers()[2].to_pybytes()
    return data[start:stop]


def _sliced(count: int) -> list[slice]:
    return [slice(begin, begin + _SLICE_ROWS) for begin in range(0, max(count, 1), _SLICE_ROWS)]


def _kline_parts(klines: Klines, spec: SymbolSpec, part: slice) -> list[pa.Array]:
    price_decimals = spec.price_decimals
    quantity_decimals = spec.quantity_decimals
    quote_decimals = price_decimals + quantity_decimals
    return [
        int_strings(klines.open_time_ms[part]),
        fixed_strings(klines.open_ticks[part], price_decimals),
        fixed_strings(klines.high_ticks[part], price_decimals),
        fixed_strings(klines.low_ticks[part], price_decimals),
        fixed_strings(klines.close_ticks[part], price_decimals),
        fixed_strings(klines.volume_steps[part], quantity_decimals),
        int_strings(klines.close_time_ms[part]),
        fixed_strings(klines.quote_volume_units[part], quote_decimals),
        int_strings(klines.trade_count[part]),
        fixed_strings(klines.taker_buy_volume_steps[part], quantity_decimals),
        fixed_strings(klines.taker_buy_quote_units[part], quote_decimals),
    ]


def klines_json(klines: Klines, spec: SymbolSpec) -> bytes:
    """The REST array of 12-element arrays: ints at 0/6/8, strings elsewhere, "0" at 11."""
    if len(klines) == 0:
        return b"[]"
    o, op, hi, lo, cl, vol, ct, qv, cnt, tbv, tbq = _kline_parts(klines, spec, slice(None))
    rows = _joined(
        [
            "[", o, ',"', op, '","', hi, '","', lo, '","', cl, '","', vol, '",', ct,
            ',"', qv, '",', cnt, ',"', tbv, '","', tbq, '","0"],',
        ]
    )  # fmt: skip
    return b"[" + rows[:-1] + b"]"


def klines_csv(klines: Klines, spec: SymbolSpec) -> bytes:
    """The archive CSV rows (12 columns, ignore "0"), each ending in a newline."""
    pieces = []
    for part in _sliced(len(klines)):
        columns = _kline_parts(klines, spec, part)
        template: list[Part] = []
        for column in columns:
            template += [column, ","]
        template[-1] = ",0\n"
        pieces.append(_joined(template) if len(columns[0]) else b"")
    return b"".join(pieces)


def _trade_parts(trades: AggTrades, spec: SymbolSpec, part: slice) -> list[pa.Array]:
    return [
        int_strings(trades.agg_id[part]),
        fixed_strings(trades.price_ticks[part], spec.price_decimals),
        fixed_strings(trades.qty_steps[part], spec.quantity_decimals),
        int_strings(trades.first_trade_id[part]),
        int_strings(trades.last_trade_id[part]),
        int_strings(trades.time_ms[part]),
        pc.if_else(pa.array(trades.buyer_is_maker[part]), "true", "false"),
    ]


def agg_trades_json(trades: AggTrades, spec: SymbolSpec) -> bytes:
    """The REST array of {"a","p","q","f","l","T","m"} objects (ints, strings, a bool)."""
    if len(trades) == 0:
        return b"[]"
    agg_id, price, qty, first, last, time_ms, maker = _trade_parts(trades, spec, slice(None))
    rows = _joined(
        [
            '{"a":', agg_id, ',"p":"', price, '","q":"', qty, '","f":', first, ',"l":', last,
            ',"T":', time_ms, ',"m":', maker, "},",
        ]
    )  # fmt: skip
    return b"[" + rows[:-1] + b"]"


def agg_trades_csv(trades: AggTrades, spec: SymbolSpec) -> bytes:
    """The archive CSV rows (lowercase true/false), each ending in a newline."""
    pieces = []
    for part in _sliced(len(trades)):
        columns = _trade_parts(trades, spec, part)
        template: list[Part] = []
        for column in columns:
            template += [column, ","]
        template[-1] = "\n"
        pieces.append(_joined(template) if len(columns[0]) else b"")
    return b"".join(pieces)
