"""Contract parameters: validation, the simulator's derived model, demo specs, a small LRU."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from ingmon.exchange._model import (
    MINUTE_MS,
    STREAM_SPEC,
    SymbolModel,
    rng_for,
    symbol_key,
    units_of,
)

KeyT = TypeVar("KeyT")
OI_DAYS_OF_VOLUME = 0.45  # base level; flow and episodes lift the served OI ÷ volume to ≈ 0.6
MAX_TRADE_MEAN_MULTIPLE = 5000  # far in the power-law tail: it trims the mean by ~1.5 %
# Correlation of each demo contract's return shocks with the market factor: BTC–ETH 1h return
# correlation ≈ 0.8 once each symbol's own planted episodes are added, as on Binance 2023–2025.
_DEMO_BETAS = {"BTCUSDT": 0.985, "ETHUSDT": 0.975, "SOLUSDT": 0.9}
_OTHER_BETA_RANGE = (0.6, 0.85)
ValueT = TypeVar("ValueT")


class Lru(Generic[KeyT, ValueT]):
    """A bounded least-recently-used map."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: OrderedDict[KeyT, ValueT] = OrderedDict()

    def get(self, key: KeyT) -> ValueT | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: KeyT, value: ValueT) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class SpecLike(Protocol):
    """The fields of market.SymbolSpec that the simulator reads."""

    @property
    def symbol(self) -> str: ...
    @property
    def tick_size(self) -> str: ...
    @property
    def step_size(self) -> str: ...
    @property
    def listing_ms(self) -> int: ...
    @property
    def initial_price(self) -> float: ...
    @property
    def funding_interval_hours(self) -> int: ...
    @property
    def trades_per_minute(self) -> float: ...
    @property
    def volatility_per_minute(self) -> float: ...
    @property
    def mean_trade_notional(self) -> float: ...
    @property
    def market_beta(self) -> float: ...


def model_for(spec: SpecLike, seed: int) -> SymbolModel:
    """Validate a spec and derive the simulator's parameters from it (ValueError if unusable)."""
    if spec.listing_ms % MINUTE_MS:
        raise ValueError(f"{spec.symbol}: listing_ms must be on a minute boundary")
    if spec.funding_interval_hours <= 0 or 24 % spec.funding_interval_hours:
        raise ValueError(f"{spec.symbol}: funding_interval_hours must divide 24")
    tick = float(spec.tick_size)
    step = float(spec.step_size)
    if tick <= 0 or step <= 0 or spec.initial_price < tick:
        raise ValueError(f"{spec.symbol}: tick, step and price must be positive (price ≥ tick)")
    if spec.trades_per_minute <= 0 or spec.volatility_per_minute <= 0:
        raise ValueError(f"{spec.symbol}: activity and volatility must be positive")
    if not 0.0 <= spec.market_beta < 1.0:
        raise ValueError(f"{spec.symbol}: market_beta must be in [0, 1)")
    mean_qty_steps = max(1.0, spec.mean_trade_notional / (spec.initial_price * step))
    max_qty_steps = max(10, round(mean_qty_steps * MAX_TRADE_MEAN_MULTIPLE))
    # Day-candle quote volumes are int64 sums: keep a wide margin (price ×50, volume ×20).
    price_units = spec.initial_price / tick * units_of(spec.tick_size)
    day_volume_units = mean_qty_steps * units_of(spec.step_size) * spec.trades_per_minute * 1440
    if price_units * 50 * day_volume_units * 20 > 2**62:
        raise ValueError(f"{spec.symbol}: tick/step too fine for int64 quote volumes")
    return SymbolModel(
        symbol=spec.symbol,
        seed=seed,
        key=symbol_key(spec.symbol),
        listing_ms=spec.listing_ms,
        funding_interval_minutes=spec.funding_interval_hours * 60,
        trades_per_minute=spec.trades_per_minute,
        sigma_per_minute=spec.volatility_per_minute,
        mean_qty_steps=mean_qty_steps,
        max_qty_steps=max_qty_steps,
        # Open interest of roughly OI_DAYS_OF_VOLUME days of volume (real BTC/ETH: 0.5–0.8).
        oi_base_steps=mean_qty_steps * spec.trades_per_minute * 1440 * OI_DAYS_OF_VOLUME,
        initial_log_ticks=math.log(spec.initial_price / tick),
        tick_units=units_of(spec.tick_size),
        step_units=units_of(spec.step_size),
        market_beta=spec.market_beta,
    )


# Known demo contracts: (base, tick, step, price, funding h, trades/min, vol/min, notional, supply).
# SOLUSDT is written the way Binance writes it (tick "0.0100", whole-coin steps) and settles
# funding every 4 hours.
_DEMO_SPECS: dict[str, tuple[str, str, str, float, int, float, float, float, float]] = {
    "BTCUSDT": ("BTC", "0.10", "0.001", 60_000.0, 8, 60.0, 0.0006, 6_000.0, 19_800_000.0),
    "ETHUSDT": ("ETH", "0.01", "0.001", 3_000.0, 8, 45.0, 0.0008, 4_500.0, 120_700_000.0),
    "SOLUSDT": ("SOL", "0.0100", "1", 150.0, 4, 30.0, 0.0011, 3_000.0, 470_000_000.0),
}


def _decimal_string(exponent: int) -> str:
    """10**exponent as Binance writes a filter value: "0.001", "1", "10"."""
    return f"{10.0**exponent:.{-exponent}f}" if exponent < 0 else str(10**exponent)


def demo_spec_fields(symbol: str, *, seed: int) -> dict[str, Any]:
    """SymbolSpec fields (all but listing_ms) of a known contract, or derived from the name."""
    known = _DEMO_SPECS.get(symbol)
    if known is not None:
        base, tick, step, price, hours, per_minute, volatility, notional, supply = known
        return {
            "symbol": symbol,
            "base_asset": base,
            "tick_size": tick,
            "step_size": step,
            "initial_price": price,
            "funding_interval_hours": hours,
            "trades_per_minute": per_minute,
            "volatility_per_minute": volatility,
            "mean_trade_notional": notional,
            "circulating_supply": supply,
            "market_beta": _DEMO_BETAS[symbol],
        }
    rng = rng_for(seed, STREAM_SPEC, symbol_key(symbol))
    magnitude = float(rng.uniform(-3.0, 3.0))
    # Four to five significant digits on the tick grid, like most Binance contracts.
    tick_exponent = math.floor(magnitude) - 4
    price = max(round(10.0**magnitude, -tick_exponent), 10.0**tick_exponent)
    notional = float(rng.uniform(1_000.0, 5_000.0))
    # A typical trade of some 50–500 steps.
    step_exponent = min(3, max(-3, round(math.log10(notional / price / 200.0))))
    hours = 4 if rng.random() < 0.3 else 8
    per_minute = float(rng.uniform(10.0, 40.0))
    volatility = float(rng.uniform(0.0008, 0.0016))
    supply = float(np.round(10.0 ** rng.uniform(8.0, 10.0)))
    beta = round(float(rng.uniform(*_OTHER_BETA_RANGE)), 3)
    return {
        "symbol": symbol,
        "base_asset": symbol[:-4] if symbol.endswith("USDT") and len(symbol) > 4 else symbol,
        "tick_size": _decimal_string(tick_exponent),
        "step_size": _decimal_string(step_exponent),
        "initial_price": price,
        "funding_interval_hours": hours,
        "trades_per_minute": per_minute,
        "volatility_per_minute": volatility,
        "mean_trade_notional": notional,
        "circulating_supply": supply,
        "market_beta": beta,
    }
