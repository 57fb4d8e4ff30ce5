"""Switchable faults per route: seeded probabilities or scripted sequences, and their CLI syntax."""

from __future__ import annotations

import fnmatch
import json
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingmon.errors import ConfigError

__all__ = [
    "DATA_KINDS",
    "FAULT_KINDS",
    "FAULT_SYNTAX",
    "ROUTES",
    "ROW_ROUTES",
    "STATUS_KINDS",
    "FaultInjector",
    "FaultRule",
    "FaultSchedule",
    "parse_fault_spec",
]

ROUTES = (
    "aggTrades",
    "archive",
    "exchangeInfo",
    "fundingInfo",
    "fundingRate",
    "klines",
    "openInterestHist",
    "ping",
    "time",
)
ROW_ROUTES = frozenset({"aggTrades", "fundingRate", "klines", "openInterestHist"})
ALL_ROUTES = "*"

OK = "ok"
STATUS_KINDS = frozenset({"403", "408", "418", "429", "500", "502", "503"})
BODY_KINDS = frozenset({"malformed", "truncated"})
DATA_KINDS = frozenset({"duplicates", "outside"})
FAULT_KINDS = frozenset({*STATUS_KINDS, *BODY_KINDS, *DATA_KINDS, "timeout", "checksum"})

FAULT_SYNTAX = """\
fault syntax: ROUTE[:GLOB]=SPEC, repeatable.
  ROUTE  klines, aggTrades, fundingRate, openInterestHist, exchangeInfo, fundingInfo, time,
         ping, archive (zip and CHECKSUM files), or * (every route)
  GLOB   optional fnmatch pattern on the request path (plus ?query for REST); the rule only
         sees matching requests, e.g. archive:*BTCUSDT-1m-*.CHECKSUM=checksum@1
  SPEC   KIND@PROBABILITY       each request draws from a seeded RNG: klines=503@0.1
         KIND,KIND,...          successive requests take successive entries, then ok:
                                aggTrades=ok,timeout,ok,429
         KIND,KIND,...,...      the same sequence, repeated forever: klines=ok,ok,503,...
  KIND   ok | 403 408 418 429 500 502 503 (error status with Binance's body; 418/429 carry
         Retry-After) | timeout (answer only after --fault-timeout-delay seconds) | malformed
         (invalid JSON) | truncated (valid prefix, cut) | duplicates (page starts with the rows
         just before it, as a repeated previous-page tail) | outside (rows beyond the requested
         window) | checksum (archive: a CHECKSUM with a wrong digest, or a re-issued zip whose
         bytes no longer match its CHECKSUM)
  duplicates/outside need a row route (klines, aggTrades, fundingRate, openInterestHist);
  checksum needs archive."""


def _check_kind(route: str, kind: str) -> None:
    if kind not in FAULT_KINDS and kind != OK:
        known = ", ".join(sorted(FAULT_KINDS))
        raise ConfigError(f"unknown fault kind {kind!r} (known: ok, {known})")
    if kind in DATA_KINDS and route not in ROW_ROUTES:
        raise ConfigError(
            f"fault {kind!r} needs a row route (klines, aggTrades, fundingRate, "
            f"openInterestHist), not {route!r}"
        )
    if kind == "checksum" and route != "archive":
        raise ConfigError(f"fault 'checksum' needs route 'archive', not {route!r}")


@dataclass(frozen=True)
class FaultRule:
    """Faults for one route: ``kind`` with ``probability`` per request, or a scripted ``sequence``.

    A sequence hands successive requests successive entries ("ok" = no fault); when it runs
    out the route behaves normally, unless ``cycle`` repeats it. ``match`` (fnmatch glob on the
    request path, plus ``?query`` for REST) narrows the rule to the requests it matches; its
    sequence then advances only on those.
    """

    route: str
    kind: str | None = None
    probability: float = 0.0
    sequence: Sequence[str] = ()
    cycle: bool = False
    match: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequence", tuple(self.sequence))
        if self.route != ALL_ROUTES and self.route not in ROUTES:
            raise ConfigError(f"unknown fault route {self.route!r} (known: {', '.join(ROUTES)}, *)")
        if (self.kind is None) == (not self.sequence):
            raise ConfigError("a fault rule needs either kind+probability or a sequence")
        if self.kind is not None and not 0.0 <= self.probability <= 1.0:
            raise ConfigError(f"fault probability must be within [0, 1], got {self.probability}")
        for kind in (self.kind,) if self.kind is not None else self.sequence:
            _check_kind(self.route, kind)

    def applies_to(self, route: str, target: str) -> bool:
        """Whether a request to ``route`` for ``target`` (path[?query]) is seen by this rule."""
        if self.route not in (ALL_ROUTES, route):
            return False
        return self.match is None or fnmatch.fnmatchcase(target, self.match)

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"route": self.route}
        if self.kind is not None:
            shown.update(kind=self.kind, probability=self.probability)
        else:
            shown.update(sequence=list(self.sequence), cycle=self.cycle)
        if self.match is not None:
            shown["match"] = self.match
        return shown


@dataclass(frozen=True)
class FaultSchedule:
    """Every fault rule of a server plus the knobs of the fault kinds; deterministic per seed.

    ``timeout_delay_seconds``: how long a "timeout" response is held back (longer than the
    client's timeout). ``retry_after_seconds``: the Retry-After of injected 429/418.
    ``duplicate_rows`` / ``outside_rows``: how many extra rows a data fault adds.
    """

    rules: Sequence[FaultRule] = ()
    seed: int = 0
    timeout_delay_seconds: float = 5.0
    retry_after_seconds: int = 1
    duplicate_rows: int = 1
    outside_rows: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        if self.timeout_delay_seconds < 0:
            raise ConfigError("fault timeout delay must be >= 0 seconds")
        if self.duplicate_rows < 1 or self.outside_rows < 1:
            raise ConfigError("duplicate_rows and outside_rows must be >= 1")

    @classmethod
    def parse(cls, specs: Iterable[str], **options: Any) -> FaultSchedule:
        """A schedule from CLI specs like ``klines=503@0.1`` (see FAULT_SYNTAX)."""
        return cls(rules=[parse_fault_spec(spec) for spec in specs], **options)

    @classmethod
    def from_json(cls, source: Path | str | Mapping[str, Any]) -> FaultSchedule:
        """A schedule from a JSON file (or parsed mapping): ``{"seed": 1, "rules": [{"route":
        "klines", "kind": "503", "probability": 0.1}, {"route": "archive", "sequence": ["ok",
        "checksum"], "match": "*.CHECKSUM"}], "timeout_delay_seconds": 3}``; rules may also be
        given as CLI spec strings."""
        if isinstance(source, Mapping):
            document: Any = source
        else:
            try:
                document = json.loads(Path(source).read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ConfigError(f"cannot read fault file {source}: {error}") from None
        if not isinstance(document, Mapping):
            raise ConfigError("fault file must hold a JSON object with a 'rules' list")
        options = dict(document)
        raw_rules = options.pop("rules", [])
        if not isinstance(raw_rules, list):
            raise ConfigError("fault file 'rules' must be a list")
        rules = []
        for raw in raw_rules:
            if isinstance(raw, str):
                rules.append(parse_fault_spec(raw))
            elif isinstance(raw, Mapping):
                try:
                    rules.append(FaultRule(**raw))
                except TypeError as error:
                    raise ConfigError(f"bad fault rule {dict(raw)}: {error}") from None
            else:
                raise ConfigError(f"bad fault rule {raw!r}: expected an object or a spec string")
        try:
            return cls(rules=rules, **options)
        except TypeError as error:
            raise ConfigError(f"bad fault file option: {error}") from None

    def merged(self, other: FaultSchedule) -> FaultSchedule:
        """This schedule's options with ``other``'s rules appended."""
        return FaultSchedule(
            rules=(*self.rules, *other.rules),
            seed=self.seed,
            timeout_delay_seconds=self.timeout_delay_seconds,
            retry_after_seconds=self.retry_after_seconds,
            duplicate_rows=self.duplicate_rows,
            outside_rows=self.outside_rows,
        )


def parse_fault_spec(spec: str) -> FaultRule:
    """One ``ROUTE[:GLOB]=SPEC`` (see FAULT_SYNTAX) as a FaultRule; ConfigError when malformed."""
    head, sep, body = spec.partition("=")
    if not sep or not head or not body:
        raise ConfigError(f"bad fault {spec!r}: expected ROUTE=KIND@P or ROUTE=KIND,KIND,...")
    route, _, match = head.partition(":")
    if "@" in body:
        kind, _, probability_text = body.partition("@")
        try:
            probability = float(probability_text)
        except ValueError:
            raise ConfigError(f"bad fault {spec!r}: probability {probability_text!r}") from None
        return FaultRule(route, kind=kind, probability=probability, match=match or None)
    entries = [entry.strip() for entry in body.split(",")]
    cycle = entries[-1] == "..."
    if cycle:
        entries.pop()
    if not entries or any(not entry for entry in entries):
        raise ConfigError(f"bad fault {spec!r}: empty entry in the sequence")
    return FaultRule(route, sequence=entries, cycle=cycle, match=match or None)


@dataclass
class _RuleState:
    rule: FaultRule
    rng: random.Random
    seen: int = 0


@dataclass
class FaultInjector:
    """The running state of a schedule: per-route request indexes, rule positions, RNGs."""

    schedule: FaultSchedule
    _states: list[_RuleState] = field(init=False)
    _route_index: dict[str, int] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # One RNG per rule, seeded by a string so the draws do not depend on other routes'
        # traffic or on Python's per-process hash randomisation.
        self._states = [
            _RuleState(rule, random.Random(f"{self.schedule.seed}:{position}:{rule.route}"))
            for position, rule in enumerate(self.schedule.rules)
        ]

    def pick(self, route: str, target: str) -> tuple[str | None, int]:
        """(fault kind or None, index of this request among the route's requests)."""
        with self._lock:
            index = self._route_index.get(route, 0)
            self._route_index[route] = index + 1
            chosen: str | None = None
            for state in self._states:
                rule = state.rule
                if not rule.applies_to(route, target):
                    continue
                kind = self._next_kind(state)
                if chosen is None and kind != OK and _applicable(route, kind):
                    chosen = kind
            return chosen, index

    @staticmethod
    def _next_kind(state: _RuleState) -> str:
        rule = state.rule
        position = state.seen
        state.seen += 1
        if rule.kind is not None:
            # Draw on every request so a rule's outcomes depend only on its own request count.
            return rule.kind if state.rng.random() < rule.probability else OK
        if position < len(rule.sequence):
            return rule.sequence[position]
        if rule.cycle:
            return rule.sequence[position % len(rule.sequence)]
        return OK


def _applicable(route: str, kind: str) -> bool:
    if kind in DATA_KINDS:
        return route in ROW_ROUTES
    if kind == "checksum":
        return route == "archive"
    return True
