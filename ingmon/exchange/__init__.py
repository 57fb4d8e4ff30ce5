"""The local Binance USD-M compatible exchange: a seeded market simulator behind real HTTP."""

from __future__ import annotations

from ingmon.exchange.archive import ArchiveOptions, archive_path
from ingmon.exchange.clock import Clock, FrozenClock, RealClock, parse_instant_ms
from ingmon.exchange.faults import FAULT_SYNTAX, FaultRule, FaultSchedule, parse_fault_spec
from ingmon.exchange.limits import Limits
from ingmon.exchange.market import Episode, EpisodeRates, Market, SymbolSpec
from ingmon.exchange.routes import RestOptions
from ingmon.exchange.server import ExchangeServer, FaultEvent, ServerStats

__all__ = [
    "FAULT_SYNTAX",
    "ArchiveOptions",
    "Clock",
    "Episode",
    "EpisodeRates",
    "ExchangeServer",
    "FaultEvent",
    "FaultRule",
    "FaultSchedule",
    "FrozenClock",
    "Limits",
    "Market",
    "RealClock",
    "RestOptions",
    "ServerStats",
    "SymbolSpec",
    "archive_path",
    "parse_fault_spec",
    "parse_instant_ms",
]
