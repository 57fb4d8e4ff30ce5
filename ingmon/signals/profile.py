"""Volume profiles (volume at price): bins on the tick grid, POC, value area, high/low volume nodes.

Pure numpy, no I/O. Definitions follow reference/signals-and-backtest-semantics.md §3; every rule
that shapes an output is versioned by :data:`PROFILE_VERSION`, which ``to_dict`` records.

**Grid.** A profile's bins are ``k`` ticks wide (``k = ticks_per_bin``) and aligned to the price
grid: bin ``b`` covers ``[b·w, (b+1)·w)`` with ``w = k·tick_size``. A price is first turned into
its integer tick index ``t = rint(price / tick_size)`` (robust to binary float error on grid
prices such as 0.1·3) and then binned by integer division ``b = t // k``. Each traded price ``t``
stands for the price cell ``[t, t+1)·tick_size``. Without ``ticks_per_bin`` the width adapts to
the data: ``k = max(1, ceil(range_ticks / rows))``, so the profile has ``rows`` or ``rows + 1``
bins (the grid alignment can add one).

**Candles** spread their volume uniformly over the ticks ``low..high`` (both included): a bin
receives ``volume · (ticks of [low, high] in the bin) / (high − low + 1 ticks)``. Counting the
high tick keeps the candle profile consistent with the trade profile (a trade at the high lands in
the high's bin) and makes a ``high == low`` candle put all its volume in its one bin; the
continuous-range formula of the reference would never credit the high tick's bin when it starts a
new bin, a half-tick downward bias. Buy/sell volume is split in the candle's taker ratio
(``taker_buy_volume / volume``).

**POC** is the bin of largest volume; among equal bins the one closest to the profile's centre
(Linn Software's rule), then the lower one.

**Value area** (CBOT single-row expansion, :func:`value_area`): start from the POC; while the
included volume is below ``share · total``, compare the next bin above with the next bin below
and add the larger (on a tie add both; at an end of the profile add the other side). It stops at
the first step reaching the share, so the actual share is ≥ the target.

**Nodes** (:func:`volume_nodes`): smooth the volume with the ``[1, 2, 1] / 4`` kernel (zero
volume beyond both ends). An HVN is a local maximum of the smoothed profile (the middle of a flat
top, rounded down) whose topographic prominence (as ``scipy.signal.peak_prominences``) is
≥ 10 % of the smoothed maximum. Between each pair of neighbouring HVNs, the smoothed minimum (the
middle of its occurrences, rounded down) is an LVN when it is ≤ 50 % of the lower of the two HVNs.

**Tick size.** The lake does not store exchangeInfo, so ``PRICE_FILTER.tickSize`` is not known
offline: :func:`infer_tick_size` recovers the grid from observed prices.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ingmon.errors import DataIntegrityError, UsageError

__all__ = [
    "DAY_MS",
    "HVN_MIN_PROMINENCE",
    "LVN_MAX_DEPTH",
    "PROFILE_VERSION",
    "VALUE_AREA_SHARE",
    "VolumeProfile",
    "candle_profile",
    "composite_profile",
    "infer_tick_size",
    "rolling_profile",
    "session_profiles",
    "trade_profile",
    "trade_session_profiles",
    "value_area",
    "volume_nodes",
]

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

PROFILE_VERSION = "vp-1"  # bump when binning / value-area / node rules change
VALUE_AREA_SHARE = 0.70
HVN_MIN_PROMINENCE = 0.10  # share of the smoothed maximum
LVN_MAX_DEPTH = 0.5  # share of the lower neighbouring HVN
DAY_MS = 86_400_000
CANDLE_ROWS = 48
TRADE_ROWS = 120


@dataclass(frozen=True, eq=False)
class VolumeProfile:
    """Volume per price bin with its POC, value area and nodes; build with :meth:`from_bins`.

    Bin ``i`` covers ``[(first_bin + i)·w, (first_bin + i + 1)·w)`` with ``w = bin_width``.
    Arrays are read-only. Indices are positions in the arrays (0 = lowest price).
    """

    tick_size: float
    ticks_per_bin: int
    first_bin: int  # absolute grid index of bin 0
    volume: FloatArray  # per bin, total
    buy_volume: FloatArray  # per bin, taker buys
    sell_volume: FloatArray  # per bin, taker sells
    value_area_target: float  # the share asked for (0.70)
    poc_index: int
    value_area_low_index: int
    value_area_high_index: int
    hvn_indices: tuple[int, ...]  # ascending price
    lvn_indices: tuple[int, ...]  # ascending price

    @classmethod
    def from_bins(
        cls,
        *,
        tick_size: float,
        ticks_per_bin: int,
        first_bin: int,
        volume: ArrayLike,
        buy_volume: ArrayLike,
        sell_volume: ArrayLike,
        value_area_share: float = VALUE_AREA_SHARE,
    ) -> VolumeProfile:
        """A profile from its per-bin volumes; POC, value area and nodes are derived here."""
        total = _read_only(volume)
        buys = _read_only(buy_volume)
        sells = _read_only(sell_volume)
        if total.ndim != 1 or total.size == 0 or not buys.shape == total.shape == sells.shape:
            raise UsageError("volume, buy_volume and sell_volume must be equal-length 1-D arrays")
        _check_grid(tick_size, ticks_per_bin)
        _check_share(value_area_share)
        poc = _poc_index(total)
        low, high = value_area(total, poc, value_area_share)
        hvn, lvn = volume_nodes(total)
        return cls(
            tick_size=float(tick_size),
            ticks_per_bin=int(ticks_per_bin),
            first_bin=int(first_bin),
            volume=total,
            buy_volume=buys,
            sell_volume=sells,
            value_area_target=float(value_area_share),
            poc_index=poc,
            value_area_low_index=low,
            value_area_high_index=high,
            hvn_indices=hvn,
            lvn_indices=lvn,
        )

    def __len__(self) -> int:
        return int(self.volume.size)

    @property
    def bin_width(self) -> float:
        return self._price(self.ticks_per_bin)

    @property
    def price_low(self) -> float:
        """Lower edge of bin 0."""
        return self._price(self.first_bin * self.ticks_per_bin)

    @property
    def price_high(self) -> float:
        """Upper edge of the last bin."""
        return self._price((self.first_bin + len(self)) * self.ticks_per_bin)

    @property
    def delta(self) -> FloatArray:
        """Taker buy − taker sell volume per bin."""
        return self.buy_volume - self.sell_volume

    @property
    def total_volume(self) -> float:
        return float(self.volume.sum())

    @property
    def bin_centres(self) -> FloatArray:
        ticks = (self.first_bin + np.arange(len(self)) + 0.5) * self.ticks_per_bin
        return np.round(ticks * self.tick_size, _decimals(self.tick_size) + 1)

    @property
    def poc_price(self) -> float:
        """Centre of the POC bin."""
        return self._centre(self.poc_index)

    @property
    def vah(self) -> float:
        """Upper edge of the highest value-area bin."""
        return self._price((self.first_bin + self.value_area_high_index + 1) * self.ticks_per_bin)

    @property
    def val(self) -> float:
        """Lower edge of the lowest value-area bin."""
        return self._price((self.first_bin + self.value_area_low_index) * self.ticks_per_bin)

    @property
    def value_area_share(self) -> float:
        """The share of the total volume the value area actually holds (≥ the target)."""
        total = self.total_volume
        inside = self.volume[self.value_area_low_index : self.value_area_high_index + 1].sum()
        return float(inside / total) if total > 0 else 1.0

    def levels(self) -> dict[str, float]:
        """``poc``, ``vah``, ``val``, then ``hvn_1``, ``hvn_2``, … and ``lvn_1``, … (bin centres,
        ascending price)."""
        found = {"poc": self.poc_price, "vah": self.vah, "val": self.val}
        found.update({f"hvn_{n}": self._centre(i) for n, i in enumerate(self.hvn_indices, 1)})
        found.update({f"lvn_{n}": self._centre(i) for n, i in enumerate(self.lvn_indices, 1)})
        return found

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the version, the grid, the levels and the per-bin arrays."""
        return {
            "version": PROFILE_VERSION,
            "tick_size": self.tick_size,
            "ticks_per_bin": self.ticks_per_bin,
            "bin_width": self.bin_width,
            "price_low": self.price_low,
            "price_high": self.price_high,
            "total_volume": self.total_volume,
            "value_area_target": self.value_area_target,
            "value_area_share": self.value_area_share,
            "poc_index": self.poc_index,
            "value_area_low_index": self.value_area_low_index,
            "value_area_high_index": self.value_area_high_index,
            "hvn_indices": list(self.hvn_indices),
            "lvn_indices": list(self.lvn_indices),
            "levels": self.levels(),
            "volume": self.volume.tolist(),
            "buy_volume": self.buy_volume.tolist(),
            "sell_volume": self.sell_volume.tolist(),
        }

    def _price(self, ticks: int) -> float:
        return round(ticks * self.tick_size, _decimals(self.tick_size))

    def _centre(self, index: int) -> float:
        ticks = (self.first_bin + index + 0.5) * self.ticks_per_bin
        return round(ticks * self.tick_size, _decimals(self.tick_size) + 1)


# --- rules -----------------------------------------------------------------------------------


def value_area(
    volume: ArrayLike, poc_index: int, share: float = VALUE_AREA_SHARE
) -> tuple[int, int]:
    """Lowest and highest bin index of the value area (inclusive), by CBOT single-row expansion.

    Start with the POC bin; while the included volume is below ``share · total``: look at the
    next bin above and the next bin below, add the one with more volume; if they are equal add
    both; if one side is exhausted add the other. The step that reaches the share is the last,
    so the value area holds at least ``share`` (usually a little more).
    """
    bins = np.asarray(volume, dtype=np.float64).tolist()
    _check_share(share)
    if not 0 <= poc_index < len(bins):
        raise UsageError(f"poc_index {poc_index} is outside 0..{len(bins) - 1}")
    target = share * math.fsum(bins)
    low = high = poc_index
    included = bins[poc_index]
    last = len(bins) - 1
    while included < target and (low > 0 or high < last):
        above = bins[high + 1] if high < last else -math.inf
        below = bins[low - 1] if low > 0 else -math.inf
        if above >= below:
            high += 1
            included += above
        if below >= above:
            low -= 1
            included += below
    return low, high


def volume_nodes(
    volume: ArrayLike,
    *,
    min_prominence: float = HVN_MIN_PROMINENCE,
    max_depth: float = LVN_MAX_DEPTH,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(HVN indices, LVN indices), both ascending.

    The profile is smoothed with ``[1, 2, 1] / 4`` (zero volume beyond both ends). HVN: a local
    maximum of the smoothed profile — a bin, or the middle (rounded down) of a flat run of equal
    bins, whose neighbours on both sides are strictly lower — with prominence
    ``≥ min_prominence · max(smoothed)``; prominence as in ``scipy.signal.peak_prominences``:
    the height above the higher of the two lowest points reached walking left and right until a
    strictly higher bin or the zero beyond the end. LVN: between each pair of neighbouring HVNs,
    the smoothed minimum (the middle, rounded down, of the bins attaining it), kept when it is
    ``≤ max_depth · min(the two HVN heights)``.
    """
    padded = np.concatenate(([0.0], np.asarray(volume, dtype=np.float64), [0.0]))
    smoothed = (padded[:-2] + 2.0 * padded[1:-1] + padded[2:]) / 4.0
    # A zero on each side stands for "beyond the profile": walks for prominence stop there.
    heights = [0.0, *smoothed.tolist(), 0.0]
    top = max(heights)
    if top <= 0:
        return (), ()
    needed = min_prominence * top
    # A peak's prominence is at most its height: lower peaks need no walk.
    hvn = [
        peak
        for peak in _local_maxima(heights)
        if heights[peak] >= needed and _prominence(heights, peak) >= needed
    ]
    lvn: list[int] = []
    for left, right in itertools.pairwise(hvn):
        between = heights[left + 1 : right]
        lowest = min(between)
        at_lowest = [left + 1 + i for i, value in enumerate(between) if value == lowest]
        if lowest <= max_depth * min(heights[left], heights[right]):
            lvn.append(at_lowest[(len(at_lowest) - 1) // 2])
    # Positions in ``heights`` are one past the bin index (the leading zero).
    return tuple(peak - 1 for peak in hvn), tuple(valley - 1 for valley in lvn)


def _local_maxima(heights: list[float]) -> list[int]:
    found: list[int] = []
    position = 1
    last = len(heights) - 1
    while position < last:
        if heights[position - 1] < heights[position]:
            end = position
            while end + 1 < last and heights[end + 1] == heights[position]:
                end += 1
            if heights[end + 1] < heights[position]:
                found.append((position + end) // 2)
            position = end + 1
        else:
            position += 1
    return found


def _prominence(heights: list[float], peak: int) -> float:
    height = heights[peak]
    left_base = height
    for value in reversed(heights[:peak]):
        if value > height:
            break
        left_base = min(left_base, value)
    right_base = height
    for value in heights[peak + 1 :]:
        if value > height:
            break
        right_base = min(right_base, value)
    return height - max(left_base, right_base)


def _poc_index(volume: FloatArray) -> int:
    candidates = np.flatnonzero(volume == volume.max())
    # Closest to the centre (n − 1)/2, compared in doubled units to stay integer; then lower.
    distance = np.abs(2 * candidates - (volume.size - 1))
    return int(candidates[np.argmin(distance)])


# --- building --------------------------------------------------------------------------------


def trade_profile(
    price: ArrayLike,
    quantity: ArrayLike,
    is_buyer_maker: ArrayLike,
    *,
    tick_size: float,
    ticks_per_bin: int | None = None,
    rows: int = TRADE_ROWS,
    value_area_share: float = VALUE_AREA_SHARE,
) -> VolumeProfile:
    """The refined profile of trades: each trade's quantity in its price's bin; a trade whose
    buyer is the maker is a taker sell, otherwise a taker buy."""
    group = np.zeros(np.asarray(price).shape, dtype=np.int64)
    profiles = _trade_profiles(
        group,
        price,
        quantity,
        is_buyer_maker,
        tick_size=tick_size,
        ticks_per_bin=ticks_per_bin,
        rows=rows,
        value_area_share=value_area_share,
    )
    if not profiles:
        raise UsageError("no trades to build a profile from")
    return profiles[0]


def candle_profile(
    high: ArrayLike,
    low: ArrayLike,
    volume: ArrayLike,
    taker_buy_volume: ArrayLike,
    *,
    tick_size: float,
    ticks_per_bin: int | None = None,
    rows: int = CANDLE_ROWS,
    value_area_share: float = VALUE_AREA_SHARE,
) -> VolumeProfile:
    """The profile of candles: each candle's volume spread uniformly over its ticks low..high,
    split into buys and sells in its taker-buy ratio."""
    group = np.zeros(np.asarray(high).shape, dtype=np.int64)
    profiles = _candle_profiles(
        group,
        high,
        low,
        volume,
        taker_buy_volume,
        tick_size=tick_size,
        ticks_per_bin=ticks_per_bin,
        rows=rows,
        value_area_share=value_area_share,
    )
    if not profiles:
        raise UsageError("no candles to build a profile from")
    return profiles[0]


def session_profiles(
    time_ms: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    volume: ArrayLike,
    taker_buy_volume: ArrayLike,
    *,
    tick_size: float,
    session_ms: int = DAY_MS,
    session_offset_ms: int = 0,
    ticks_per_bin: int | None = None,
    rows: int = CANDLE_ROWS,
    value_area_share: float = VALUE_AREA_SHARE,
) -> dict[int, VolumeProfile]:
    """One candle profile per fixed-length session, keyed by the session's start (epoch ms).

    A candle belongs to the session holding its ``time_ms`` (its open time); sessions start at
    ``session_offset_ms + n·session_ms`` (UTC days by default). Each session gets its own
    adaptive bin width. Equal to :func:`candle_profile` on each session's rows, computed in one
    pass over the whole input.
    """
    keys = _session_keys(time_ms, session_ms=session_ms, session_offset_ms=session_offset_ms)
    starts, group = np.unique(keys, return_inverse=True)
    profiles = _candle_profiles(
        group.reshape(-1).astype(np.int64),
        high,
        low,
        volume,
        taker_buy_volume,
        tick_size=tick_size,
        ticks_per_bin=ticks_per_bin,
        rows=rows,
        value_area_share=value_area_share,
    )
    return {int(start): profile for start, profile in zip(starts, profiles, strict=True)}


def trade_session_profiles(
    time_ms: ArrayLike,
    price: ArrayLike,
    quantity: ArrayLike,
    is_buyer_maker: ArrayLike,
    *,
    tick_size: float,
    session_ms: int = DAY_MS,
    session_offset_ms: int = 0,
    ticks_per_bin: int | None = None,
    rows: int = TRADE_ROWS,
    value_area_share: float = VALUE_AREA_SHARE,
) -> dict[int, VolumeProfile]:
    """One trade profile per fixed-length session, keyed by the session's start (epoch ms);
    equal to :func:`trade_profile` on each session's trades, computed in one pass."""
    keys = _session_keys(time_ms, session_ms=session_ms, session_offset_ms=session_offset_ms)
    starts, group = np.unique(keys, return_inverse=True)
    profiles = _trade_profiles(
        group.reshape(-1).astype(np.int64),
        price,
        quantity,
        is_buyer_maker,
        tick_size=tick_size,
        ticks_per_bin=ticks_per_bin,
        rows=rows,
        value_area_share=value_area_share,
    )
    return {int(start): profile for start, profile in zip(starts, profiles, strict=True)}


def rolling_profile(
    time_ms: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    volume: ArrayLike,
    taker_buy_volume: ArrayLike,
    *,
    end_ms: int,
    window_ms: int,
    tick_size: float,
    ticks_per_bin: int | None = None,
    rows: int = CANDLE_ROWS,
    value_area_share: float = VALUE_AREA_SHARE,
) -> VolumeProfile:
    """The candle profile of the rows with ``end_ms − window_ms ≤ time_ms < end_ms``.

    Nothing at or after ``end_ms`` is used. For candles keyed by open time, pass the close of
    the last bar to include plus one ms (the next bar's open time) as ``end_ms``.
    """
    if window_ms <= 0:
        raise UsageError(f"window_ms must be > 0, got {window_ms}")
    times = np.asarray(time_ms, dtype=np.int64)
    if any(np.shape(column) != times.shape for column in (high, low, volume, taker_buy_volume)):
        raise UsageError("time_ms, high, low, volume and taker_buy_volume must be equal-length")
    inside = (times >= end_ms - window_ms) & (times < end_ms)

    def rows_inside(values: ArrayLike) -> FloatArray:
        return np.asarray(values, dtype=np.float64)[inside]

    if not inside.any():
        raise UsageError(f"no candles in the {window_ms} ms before {end_ms}")
    return candle_profile(
        rows_inside(high),
        rows_inside(low),
        rows_inside(volume),
        rows_inside(taker_buy_volume),
        tick_size=tick_size,
        ticks_per_bin=ticks_per_bin,
        rows=rows,
        value_area_share=value_area_share,
    )


def composite_profile(
    profiles: Sequence[VolumeProfile],
    *,
    ticks_per_bin: int | None = None,
    value_area_share: float = VALUE_AREA_SHARE,
) -> VolumeProfile:
    """Several profiles (e.g. 7 daily sessions) summed on one grid, for multi-day nodes.

    The grid is ``ticks_per_bin`` ticks wide, by default the least common multiple of the
    inputs' widths — the finest grid every input bin fits into whole, so merging moves no volume
    across a price boundary. A given ``ticks_per_bin`` must be such a common multiple.
    """
    if not profiles:
        raise UsageError("composite_profile needs at least one profile")
    tick_size = profiles[0].tick_size
    if any(profile.tick_size != tick_size for profile in profiles):
        raise UsageError("profiles of different tick sizes cannot be merged")
    widths = [profile.ticks_per_bin for profile in profiles]
    width = math.lcm(*widths) if ticks_per_bin is None else ticks_per_bin
    if width < 1 or any(width % each for each in widths):
        raise UsageError(f"ticks_per_bin {width} is not a multiple of every input's {widths}")
    targets = [
        (profile.first_bin + np.arange(len(profile), dtype=np.int64))
        * profile.ticks_per_bin
        // width
        for profile in profiles
    ]
    first = min(int(target[0]) for target in targets)
    size = max(int(target[-1]) for target in targets) - first + 1
    index = np.concatenate(targets) - first

    def merged(values: list[FloatArray]) -> FloatArray:
        return np.asarray(
            np.bincount(index, weights=np.concatenate(values), minlength=size), np.float64
        )

    return VolumeProfile.from_bins(
        tick_size=tick_size,
        ticks_per_bin=width,
        first_bin=first,
        volume=merged([profile.volume for profile in profiles]),
        buy_volume=merged([profile.buy_volume for profile in profiles]),
        sell_volume=merged([profile.sell_volume for profile in profiles]),
        value_area_share=value_area_share,
    )


def infer_tick_size(prices: ArrayLike) -> float:
    """The exchange's price grid, inferred from observed prices.

    The lake stores no exchangeInfo (``PRICE_FILTER.tickSize``), so the grid is recovered from
    the data: the smallest positive difference between distinct prices, snapped down to the
    largest ``{1, 2, 5}·10^n`` that every price is a whole multiple of (a 0.3 gap on a 0.1 grid
    gives 0.1, not 0.2). Prices that never trade one tick apart give a multiple of the tick.
    """
    distinct = np.unique(np.asarray(prices, dtype=np.float64))
    if distinct.size < 2 or not np.isfinite(distinct).all():
        raise UsageError("infer_tick_size needs at least two distinct finite prices")
    gap = float(np.diff(distinct).min())
    # The gap carries float error (59991.7 − 59991.6 < 0.1): start a decade above it, allow a
    # relative 1e-6 above it, and look at most three decades below (finer fits any data).
    exponent = math.floor(math.log10(gap))
    for power in range(exponent + 1, exponent - 4, -1):
        for mantissa in (5, 2, 1):
            candidate = float(f"{mantissa}e{power}")
            if candidate > gap * (1 + 1e-6):
                continue
            units = distinct / candidate
            if np.all(np.abs(units - np.rint(units)) <= 1e-6):
                return candidate
    raise DataIntegrityError(f"prices are on no 1-2-5 decimal grid near their smallest gap {gap}")


# --- vectorised cores ------------------------------------------------------------------------


def _trade_profiles(
    group: IntArray,
    price: ArrayLike,
    quantity: ArrayLike,
    is_buyer_maker: ArrayLike,
    *,
    tick_size: float,
    ticks_per_bin: int | None,
    rows: int,
    value_area_share: float,
) -> list[VolumeProfile]:
    """One profile per group id 0..G−1 (``group`` per trade), in group order."""
    _check_grid(tick_size, ticks_per_bin or 1)
    ticks = _ticks(price, tick_size)
    size = np.asarray(quantity, dtype=np.float64)
    seller = np.asarray(is_buyer_maker, dtype=np.bool_)
    if not group.shape == ticks.shape == size.shape == seller.shape or group.ndim != 1:
        raise UsageError("price, quantity and is_buyer_maker must be equal-length 1-D arrays")
    if not np.isfinite(size).all() or (size < 0).any():
        raise DataIntegrityError("trade quantities must be finite and ≥ 0")
    layout = _Layout.of(group, ticks, ticks, ticks_per_bin=ticks_per_bin, rows=rows)
    cell = layout.cell(group, ticks // layout.width_of[group])
    count = layout.size

    def summed(weights: FloatArray) -> FloatArray:
        return np.asarray(np.bincount(cell, weights=weights, minlength=count), np.float64)

    return layout.profiles(
        summed(size),
        summed(np.where(seller, 0.0, size)),
        summed(np.where(seller, size, 0.0)),
        tick_size=tick_size,
        value_area_share=value_area_share,
    )


def _candle_profiles(
    group: IntArray,
    high: ArrayLike,
    low: ArrayLike,
    volume: ArrayLike,
    taker_buy_volume: ArrayLike,
    *,
    tick_size: float,
    ticks_per_bin: int | None,
    rows: int,
    value_area_share: float,
) -> list[VolumeProfile]:
    """One profile per group id 0..G−1 (``group`` per candle), in group order.

    Each candle becomes one (candle, bin) pair per bin it touches; the pairs are weighted by the
    candle's ticks in the bin and summed with one ``bincount``. ``bincount`` adds in input
    order, so a bin sums the same terms in the same order whether its group is built alone or
    with others — the results are bitwise equal, and bins that are equal in exact arithmetic
    stay equal (the POC tie-break depends on it).
    """
    _check_grid(tick_size, ticks_per_bin or 1)
    top = _ticks(high, tick_size)
    bottom = _ticks(low, tick_size)
    size = np.asarray(volume, dtype=np.float64)
    bought = np.asarray(taker_buy_volume, dtype=np.float64)
    if not group.shape == top.shape == bottom.shape == size.shape == bought.shape:
        raise UsageError("time_ms, high, low, volume and taker_buy_volume must be equal-length")
    if group.ndim != 1:
        raise UsageError("candle columns must be 1-D")
    if (top < bottom).any():
        raise DataIntegrityError("a candle's high is below its low")
    if not (np.isfinite(size).all() and np.isfinite(bought).all()):
        raise DataIntegrityError("candle volumes must be finite")
    if (size < 0).any() or (bought < 0).any() or (bought > size * (1 + 1e-9)).any():
        raise DataIntegrityError("candle volumes must satisfy 0 ≤ taker_buy_volume ≤ volume")
    layout = _Layout.of(group, bottom, top, ticks_per_bin=ticks_per_bin, rows=rows)
    width = layout.width_of[group]
    first_bin = bottom // width
    touched = top // width - first_bin + 1
    pair_candle = np.repeat(np.arange(group.size), touched)
    pair_start = np.cumsum(touched) - touched
    pair_bin = first_bin[pair_candle] + (np.arange(pair_candle.size) - pair_start[pair_candle])
    pair_width = width[pair_candle]
    lower = np.maximum(bottom[pair_candle], pair_bin * pair_width)
    upper = np.minimum(top[pair_candle], (pair_bin + 1) * pair_width - 1)
    span = (top - bottom + 1)[pair_candle]
    share = (upper - lower + 1) / span
    cell = layout.cell(group[pair_candle], pair_bin)
    count = layout.size

    def summed(weights: FloatArray) -> FloatArray:
        contribution = weights[pair_candle] * share
        return np.asarray(np.bincount(cell, weights=contribution, minlength=count), np.float64)

    return layout.profiles(
        summed(size),
        summed(bought),
        summed(np.maximum(size - bought, 0.0)),
        tick_size=tick_size,
        value_area_share=value_area_share,
    )


@dataclass(frozen=True)
class _Layout:
    """Bins of G groups laid end to end in one flat array: group g's bins are
    ``offset[g] : offset[g] + bins[g]``, its bin 0 is grid index ``first[g]``."""

    width_of: IntArray  # ticks per bin, per group
    first: IntArray
    bins: IntArray
    offset: IntArray

    @classmethod
    def of(
        cls,
        group: IntArray,
        bottom: IntArray,
        top: IntArray,
        *,
        ticks_per_bin: int | None,
        rows: int,
    ) -> _Layout:
        groups = int(group.max()) + 1 if group.size else 0
        if group.size and (group < 0).any():
            raise UsageError("group ids must be ≥ 0")
        lowest = np.full(groups, np.iinfo(np.int64).max)
        highest = np.full(groups, np.iinfo(np.int64).min)
        np.minimum.at(lowest, group, bottom)
        np.maximum.at(highest, group, top)
        if ticks_per_bin is None:
            if rows < 1:
                raise UsageError(f"rows must be ≥ 1, got {rows}")
            width = np.maximum(1, -((lowest - highest) // rows))
        else:
            width = np.full(groups, ticks_per_bin, dtype=np.int64)
        first = lowest // width
        bins = highest // width - first + 1
        offset = np.cumsum(bins) - bins
        return cls(width_of=width, first=first, bins=bins, offset=offset)

    @property
    def size(self) -> int:
        return int(self.bins.sum())

    def cell(self, group: IntArray, grid_bin: IntArray) -> IntArray:
        """Flat position of a (group, absolute grid bin)."""
        return self.offset[group] + (grid_bin - self.first[group])

    def profiles(
        self,
        volume: FloatArray,
        buy_volume: FloatArray,
        sell_volume: FloatArray,
        *,
        tick_size: float,
        value_area_share: float,
    ) -> list[VolumeProfile]:
        found: list[VolumeProfile] = []
        for width, first, start, stop in zip(
            self.width_of.tolist(),
            self.first.tolist(),
            self.offset.tolist(),
            (self.offset + self.bins).tolist(),
            strict=True,
        ):
            found.append(
                VolumeProfile.from_bins(
                    tick_size=tick_size,
                    ticks_per_bin=width,
                    first_bin=first,
                    volume=volume[start:stop],
                    buy_volume=buy_volume[start:stop],
                    sell_volume=sell_volume[start:stop],
                    value_area_share=value_area_share,
                )
            )
        return found


# --- helpers ---------------------------------------------------------------------------------


def _ticks(price: ArrayLike, tick_size: float) -> IntArray:
    values = np.asarray(price, dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataIntegrityError("prices must be finite")
    return np.rint(values / tick_size).astype(np.int64)


def _session_keys(time_ms: ArrayLike, *, session_ms: int, session_offset_ms: int) -> IntArray:
    if session_ms <= 0:
        raise UsageError(f"session_ms must be > 0, got {session_ms}")
    times = np.asarray(time_ms, dtype=np.int64)
    return (times - session_offset_ms) // session_ms * session_ms + session_offset_ms


def _read_only(values: ArrayLike) -> FloatArray:
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


def _check_grid(tick_size: float, ticks_per_bin: int) -> None:
    if not (math.isfinite(tick_size) and tick_size > 0):
        raise UsageError(f"tick_size must be > 0, got {tick_size}")
    if ticks_per_bin < 1:
        raise UsageError(f"ticks_per_bin must be ≥ 1, got {ticks_per_bin}")


def _check_share(share: float) -> None:
    if not 0 < share <= 1:
        raise UsageError(f"value_area_share must be in (0, 1], got {share}")


def _decimals(tick_size: float) -> int:
    """Decimals that write ``tick_size`` exactly (0.1 → 1, 0.25 → 2, 5 → 0)."""
    return next(
        (places for places in range(16) if math.isclose(round(tick_size, places), tick_size)),
        15,
    )
