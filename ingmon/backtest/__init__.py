"""Backtests of signals on 1m candles: fills, costs, metrics, windows and exports."""

from __future__ import annotations

__all__: list[str] = []
