"""Alert rules over the health snapshot, their pending → firing → resolved state, persisted.

Every evaluation judges the snapshot at ``now_ms`` (``snapshot.at(now_ms)``: ages keep growing
between snapshots) and runs the rules below. A rule's condition that holds for a label set
makes an alert *pending* (since that evaluation); once it has held for the rule's ``for``
duration the alert *fires* (a notification is enqueued); while it keeps firing it is notified
again every ``alert_repeat_seconds``; when the condition no longer holds a firing alert
*resolves* (a resolved notification) and a pending one just disappears. The state lives in
``<state_dir>/alerts.json`` so a restart neither notifies a firing alert again nor forgets a
pending one; a damaged one is moved aside (``alerts.json.corrupt-<ms>``) and its firing alerts
are rebuilt from what the receivers were told. Notifications go to the webhook outbox
(``ingmon.monitor.webhooks``).

Rules (one alert per dataset × symbol, or per symbol), severity, and the ``for`` setting:

- IngmonFeedStale (dataset × symbol): freshness status ``error``; critical;
  alert_stale_for_seconds.
- IngmonIngestLatencyHigh (dataset × symbol): latency status ``error`` (p95); warning;
  alert_latency_for_seconds.
- IngmonCadenceDeviation (dataset × symbol): cadence status ``error``; warning;
  alert_cadence_for_seconds.
- IngmonGapDetected (dataset × symbol): gaps > 0 in the health window; warning;
  alert_gap_for_seconds.
- IngmonNoSignals (symbol): no signal for more than alert_no_signals_seconds (a symbol that
  never had one: since the first evaluation that watched it); warning;
  alert_no_signals_for_seconds.
- IngmonDrawdownBreach (symbol): the latest backtest run's max drawdown above
  alert_max_drawdown_ratio; warning; alert_drawdown_for_seconds.

A dataset × symbol alert covers every parameter of the dataset (candle intervals, OI periods):
it holds when any of them meets the condition, and names them in its description.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ingmon.config import Settings
from ingmon.monitor.outbox import (
    Delivery,
    deliver,
    delivery_counts,
    enqueue,
    outbox_pending,
    told_alerts,
)
from ingmon.monitor.status import HealthSnapshot, SeriesStatus
from ingmon.monitor.webhooks import Notification, fingerprint
from ingmon.partition import PartitionLock
from ingmon.reports.state import write_text_atomic
from ingmon.times import DAY_MS, SECOND_MS, iso_ms

__all__ = [
    "ALERTS_FILE",
    "RULES",
    "RULE_NAMES",
    "Alert",
    "AlertState",
    "Condition",
    "Delivery",
    "Evaluation",
    "Rule",
    "active_alerts",
    "conditions",
    "deliver",
    "delivery_counts",
    "evaluate",
    "outbox_pending",
    "read_alert_state",
]

logger = logging.getLogger(__name__)

ALERTS_FILE = "alerts.json"
STATE_FORMAT = 1
# Resolved alerts kept in alerts.json for the dashboard: the last day, at most this many.
RESOLVED_KEPT = 100
RESOLVED_KEPT_MS = DAY_MS

AlertStateName = Literal["pending", "firing", "resolved"]


@dataclass(frozen=True)
class Rule:
    """One alert rule: its name, severity and the setting holding its ``for`` duration."""

    name: str
    severity: Literal["critical", "warning"]
    for_setting: str
    scope: Literal["series", "symbol"]

    def for_seconds(self, settings: Settings) -> float:
        seconds: float = getattr(settings, self.for_setting)
        return seconds


RULES: Mapping[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("IngmonFeedStale", "critical", "alert_stale_for_seconds", "series"),
        Rule("IngmonIngestLatencyHigh", "warning", "alert_latency_for_seconds", "series"),
        Rule("IngmonCadenceDeviation", "warning", "alert_cadence_for_seconds", "series"),
        Rule("IngmonGapDetected", "warning", "alert_gap_for_seconds", "series"),
        Rule("IngmonNoSignals", "warning", "alert_no_signals_for_seconds", "symbol"),
        Rule("IngmonDrawdownBreach", "warning", "alert_drawdown_for_seconds", "symbol"),
    )
}
RULE_NAMES = tuple(RULES)


@dataclass(frozen=True)
class Condition:
    """A rule's condition holding right now for one label set."""

    rule: Rule
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


@dataclass(frozen=True)
class Alert:
    """An active (pending or firing) or just-resolved alert."""

    fingerprint: str
    labels: dict[str, str]  # alertname, severity, dataset (series rules), symbol
    annotations: dict[str, str]  # summary, description
    state: AlertStateName
    active_since_ms: int  # the first evaluation that saw the condition hold
    fired_at_ms: int | None  # when it started firing: the notifications' startsAt
    resolved_at_ms: int | None
    value: float | None  # the number the rule compared (age s, p95 s, ratio, gaps, …)
    last_notified_ms: int | None = None  # last firing notification (first or repeated)
    repeats: int = 0  # repeated firing notifications so far

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "state": self.state,
            "active_since_ms": self.active_since_ms,
            "active_since": iso_ms(self.active_since_ms),
            "fired_at_ms": self.fired_at_ms,
            "fired_at": iso_ms(self.fired_at_ms),
            "resolved_at_ms": self.resolved_at_ms,
            "resolved_at": iso_ms(self.resolved_at_ms),
            "value": self.value,
            "last_notified_ms": self.last_notified_ms,
            "repeats": self.repeats,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        state = str(data["state"])
        if state not in ("pending", "firing", "resolved"):
            raise ValueError(f"unknown alert state {state!r}")
        return cls(
            fingerprint=str(data["fingerprint"]),
            labels={str(k): str(v) for k, v in data["labels"].items()},
            annotations={str(k): str(v) for k, v in data["annotations"].items()},
            state=state,  # type: ignore[arg-type]  # checked above
            active_since_ms=int(data["active_since_ms"]),
            fired_at_ms=_opt_int(data.get("fired_at_ms")),
            resolved_at_ms=_opt_int(data.get("resolved_at_ms")),
            value=None if data.get("value") is None else float(data["value"]),
            last_notified_ms=_opt_int(data.get("last_notified_ms")),
            repeats=int(data.get("repeats", 0)),
        )

    def notification(self, settings: Settings) -> Notification:
        """What the receivers are told about this alert now (firing or resolved)."""
        assert self.fired_at_ms is not None, "only an alert that fired is notified"
        return Notification(
            fingerprint=self.fingerprint,
            status="resolved" if self.state == "resolved" else "firing",
            labels=self.labels,
            annotations=self.annotations,
            starts_at_ms=self.fired_at_ms,
            ends_at_ms=self.resolved_at_ms if self.state == "resolved" else None,
            generator_url=_generator_url(settings),
            repeat=self.repeats if self.state == "firing" else 0,
        )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _generator_url(settings: Settings) -> str:
    return f"{settings.external_url}/dashboard"


# -- the rules -----------------------------------------------------------------------------


def _labels(rule: Rule, **extra: str) -> dict[str, str]:
    return {"alertname": rule.name, "severity": rule.severity, **extra}


def _series_name(entry: SeriesStatus) -> str:
    return f"{entry.dataset} {entry.param}" if entry.param else entry.dataset


def _series_conditions(
    group: Sequence[SeriesStatus], settings: Settings, window_hours: float
) -> list[Condition]:
    dataset, symbol = group[0].dataset, group[0].symbol
    found: list[Condition] = []

    def add(name: str, hits: Sequence[SeriesStatus], value: float | None, what: str) -> None:
        rule = RULES[name]
        details = "; ".join(_describe(name, entry, settings, window_hours) for entry in hits)
        found.append(
            Condition(
                rule=rule,
                labels=_labels(rule, dataset=dataset, symbol=symbol),
                annotations={"summary": f"{dataset} of {symbol}: {what}", "description": details},
                value=value,
            )
        )

    stale = [s for s in group if s.freshness.status == "error"]
    if stale:
        add("IngmonFeedStale", stale, _max(s.freshness.age_seconds for s in stale), "stale feed")
    slow = [s for s in group if s.latency.status == "error"]
    if slow:
        latency = _max(s.latency.p95_seconds for s in slow)
        add("IngmonIngestLatencyHigh", slow, latency, "ingest latency high")
    irregular = [s for s in group if s.cadence.status == "error"]
    if irregular:
        ratio = _max(_cadence_ratio(s) for s in irregular)
        add("IngmonCadenceDeviation", irregular, ratio, "ingest cadence deviates")
    gapped = [s for s in group if s.gaps > 0]
    if gapped:
        add("IngmonGapDetected", gapped, float(sum(s.gaps for s in gapped)), "gap in the data")
    return found


def _max(values: Any) -> float | None:
    known = [float(value) for value in values if value is not None]
    return max(known) if known else None


def _cadence_ratio(entry: SeriesStatus) -> float | None:
    """The worst of the last interval's and the open interval's ratio to the expected − 1."""
    cadence = entry.cadence
    ratios = [cadence.deviation_ratio]
    if cadence.open_interval_seconds is not None and cadence.expected_seconds > 0:
        ratios.append(cadence.open_interval_seconds / cadence.expected_seconds - 1)
    return _max(ratios)


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f} s"


def _describe(name: str, entry: SeriesStatus, settings: Settings, window_hours: float) -> str:
    series = _series_name(entry)
    if name == "IngmonFeedStale":
        fresh = entry.freshness
        return (
            f"the newest {series} event closed {_seconds(fresh.age_seconds)} ago "
            f"(at {iso_ms(fresh.last_event_close_ms)}); error after {fresh.error_seconds:g} s"
        )
    if name == "IngmonIngestLatencyHigh":
        latency = entry.latency
        return (
            f"{series}: p95 ingest latency {_seconds(latency.p95_seconds)} over "
            f"{latency.batches} live batches in the last {window_hours:g} h (error above "
            f"{latency.error_seconds:g} s), last batch {_seconds(latency.last_seconds)}"
        )
    if name == "IngmonCadenceDeviation":
        cadence = entry.cadence
        return (
            f"{series}: last interval between successful batches "
            f"{_seconds(cadence.last_interval_seconds)}, "
            f"{_seconds(cadence.open_interval_seconds)} since the last one, expected "
            f"{cadence.expected_seconds:g} s (error above {1 + cadence.error_ratio:g}× expected)"
        )
    return (
        f"{series}: {entry.gaps} gap(s) missing {entry.missing} rows in the last "
        f"{window_hours:g} h (known exchange gaps apart: {entry.exchange_gaps})"
    )


def _last_signal_ms(snapshot: HealthSnapshot, symbol: str) -> int | None:
    for entry in snapshot.signals.symbols:
        if entry.symbol == symbol:
            return entry.last_signal_ms
    return None


def conditions(
    snapshot: HealthSnapshot,
    settings: Settings,
    *,
    watched_since_ms: Mapping[str, int] | None = None,
) -> list[Condition]:
    """The rules' conditions holding in ``snapshot`` as judged (call it on ``snapshot.at(now)``).

    ``watched_since_ms``: per symbol, since when it has been watched; a symbol that never had
    a signal counts as silent since then (default: since ``snapshot.now_ms``, never firing).
    """
    now = snapshot.now_ms
    watched = watched_since_ms or {}
    found: list[Condition] = []
    groups: dict[tuple[str, str], list[SeriesStatus]] = defaultdict(list)
    for entry in snapshot.series:
        groups[entry.dataset, entry.symbol].append(entry)
    for key in sorted(groups):
        found.extend(_series_conditions(groups[key], settings, snapshot.window_hours))

    rule = RULES["IngmonNoSignals"]
    limit = settings.alert_no_signals_seconds
    for symbol in snapshot.symbols:
        since = snapshot.signals.since_last_signal_seconds(symbol, now)
        last = next(
            (s.last_signal_ms for s in snapshot.signals.symbols if s.symbol == symbol), None
        )
        if since is None:
            watched_ms = watched.get(symbol, now)
            since = (now - watched_ms) / SECOND_MS
            what = f"no signal since ingmon began watching {symbol} at {iso_ms(watched_ms)}"
        else:
            what = f"the newest signal's bar closed at {iso_ms(last)}"
        if since > limit:
            found.append(
                Condition(
                    rule=rule,
                    labels=_labels(rule, symbol=symbol),
                    annotations={
                        "summary": f"{symbol}: no signals for {since / 3600:.1f} h",
                        "description": f"{what}; the alert fires after {limit / 3600:g} h "
                        "without a signal",
                    },
                    value=since,
                )
            )

    rule = RULES["IngmonDrawdownBreach"]
    seen: set[str] = set()
    for kpi in snapshot.performance:
        if kpi.setup != "all" or kpi.symbol in seen or kpi.max_drawdown is None:
            continue
        seen.add(kpi.symbol)
        if kpi.max_drawdown > settings.alert_max_drawdown_ratio:
            found.append(
                Condition(
                    rule=rule,
                    labels=_labels(rule, symbol=kpi.symbol),
                    annotations={
                        "summary": f"{kpi.symbol}: backtest max drawdown {kpi.max_drawdown:.1%}",
                        "description": f"the latest backtest run {kpi.run_id} (saved "
                        f"{iso_ms(kpi.created_at_ms)}, {kpi.trades} trades) has a max drawdown "
                        f"of {kpi.max_drawdown:.1%}, above "
                        f"{settings.alert_max_drawdown_ratio:.1%}",
                    },
                    value=kpi.max_drawdown,
                )
            )
    return found


# -- state ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertState:
    """``alerts.json``: the active alerts, the last day's resolved ones, what is watched."""

    evaluated_at_ms: int | None = None
    active: tuple[Alert, ...] = ()  # pending and firing
    resolved: tuple[Alert, ...] = ()  # newest first
    watched_since_ms: dict[str, int] = field(default_factory=dict)  # symbol -> first seen
    # Notifications decided but maybe not yet in the outbox (a crash in between): enqueued
    # again (a no-op when they are there) by the next evaluation.
    unqueued: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "evaluated_at_ms": self.evaluated_at_ms,
            "evaluated_at": iso_ms(self.evaluated_at_ms),
            "active": [alert.to_dict() for alert in self.active],
            "resolved": [alert.to_dict() for alert in self.resolved],
            "watched_since_ms": dict(sorted(self.watched_since_ms.items())),
            "unqueued": list(self.unqueued),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        evaluated = data.get("evaluated_at_ms")
        return cls(
            evaluated_at_ms=None if evaluated is None else int(evaluated),
            active=tuple(Alert.from_dict(item) for item in data.get("active", ())),
            resolved=tuple(Alert.from_dict(item) for item in data.get("resolved", ())),
            watched_since_ms={str(k): int(v) for k, v in data.get("watched_since_ms", {}).items()},
            unqueued=tuple(dict(item) for item in data.get("unqueued", ())),
        )


# What a damaged alerts.json raises while it is parsed (UnicodeDecodeError is a ValueError).
_DAMAGE = (ValueError, KeyError, TypeError, AttributeError)


def _load_state(path: Path) -> AlertState:
    """The state in ``path``; an empty one when there is no file. Raises one of ``_DAMAGE``
    when the file cannot be read as a state."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AlertState()
    data = json.loads(text)
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return AlertState.from_dict(data)


def read_alert_state(state_dir: Path) -> AlertState:
    """The persisted alert state; an empty one before the first evaluation. An unreadable file
    reads as empty (logged): the next evaluation moves it aside and rebuilds the state."""
    path = state_dir / ALERTS_FILE
    try:
        return _load_state(path)
    except _DAMAGE as error:
        logger.warning("alert state %s is unreadable (%s): read as empty", path, error)
        return AlertState()


def _rebuilt_state(state_dir: Path, settings: Settings) -> AlertState:
    """The firing alerts receivers were told about (``outbox.told_alerts``: delivered, or
    waiting in the outbox) whose resolution they were not told: firing again, with their
    startsAt, repeat count and the time of their last notification — so an alert whose
    condition still holds is not notified again before its repeat is due, and one whose
    condition cleared is resolved. Pending alerts, the resolved history and the times symbols
    were first watched are lost (a silent symbol's IngmonNoSignals keeps firing)."""
    active: list[Alert] = []
    watched: dict[str, int] = {}
    silence_ms = round(settings.alert_no_signals_seconds * SECOND_MS)
    for fingerprint_, told in sorted(told_alerts(state_dir).items()):
        notification = told.notification
        if notification.status != "firing":
            continue
        labels = dict(notification.labels)
        active.append(
            Alert(
                fingerprint=fingerprint_,
                labels=labels,
                annotations=dict(notification.annotations),
                state="firing",
                active_since_ms=notification.starts_at_ms,
                fired_at_ms=notification.starts_at_ms,
                resolved_at_ms=None,
                value=None,
                last_notified_ms=told.notified_ms,
                repeats=notification.repeat,
            )
        )
        symbol = labels.get("symbol")
        if labels.get("alertname") == "IngmonNoSignals" and symbol:
            # It fired when the symbol had been silent for longer than the limit.
            watched[symbol] = min(
                watched.get(symbol, notification.starts_at_ms),
                notification.starts_at_ms - silence_ms - 1,
            )
    return AlertState(active=tuple(active), watched_since_ms=watched)


def _state_for_evaluation(settings: Settings, now_ms: int) -> AlertState:
    """``alerts.json``; when it cannot be read, it is moved aside (``alerts.json.corrupt-<ms>``,
    kept as evidence; logged) and the firing alerts are rebuilt (``_rebuilt_state``)."""
    state_dir = settings.state_dir
    path = state_dir / ALERTS_FILE
    try:
        return _load_state(path)
    except _DAMAGE as error:
        kept = path.with_name(f"{ALERTS_FILE}.corrupt-{now_ms}")
        suffix = 0
        while kept.exists():
            suffix += 1
            kept = path.with_name(f"{ALERTS_FILE}.corrupt-{now_ms}.{suffix}")
        os.replace(path, kept)
        rebuilt = _rebuilt_state(state_dir, settings)
        logger.error(
            "alert state %s is unreadable (%s): moved to %s; %d firing alert(s) rebuilt from "
            "the webhook outbox and delivery ledger",
            path,
            error,
            kept.name,
            len(rebuilt.active),
        )
        return rebuilt


def active_alerts(state_dir: Path) -> list[Alert]:
    """Pending and firing alerts: firing first, then by name and labels."""
    state = read_alert_state(state_dir)
    return sorted(
        state.active,
        key=lambda a: (a.state != "firing", a.labels["alertname"], sorted(a.labels.items())),
    )


def _write_state(state_dir: Path, state: AlertState) -> None:
    write_text_atomic(
        state_dir / ALERTS_FILE, json.dumps(state.to_dict(), indent=1, ensure_ascii=False) + "\n"
    )


# -- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found and did."""

    now_ms: int
    alerts: tuple[Alert, ...]  # active after it, then the ones it resolved
    notifications: tuple[Notification, ...]  # decided by it (firing, repeated, resolved)
    enqueued: tuple[str, ...]  # outbox entry ids written (one per notification and URL)

    @property
    def firing(self) -> list[Alert]:
        return [alert for alert in self.alerts if alert.state == "firing"]

    @property
    def pending(self) -> list[Alert]:
        return [alert for alert in self.alerts if alert.state == "pending"]

    @property
    def resolved(self) -> list[Alert]:
        return [alert for alert in self.alerts if alert.state == "resolved"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": iso_ms(self.now_ms),
            "firing": len(self.firing),
            "pending": len(self.pending),
            "resolved": len(self.resolved),
            "notifications": [
                {"fingerprint": n.fingerprint, "status": n.status, "key": n.key}
                for n in self.notifications
            ],
            "enqueued": len(self.enqueued),
            "alerts": [alert.to_dict() for alert in self.alerts],
        }


def _enqueue_all(
    settings: Settings, notifications: Sequence[Notification], now_ms: int
) -> list[str]:
    written: list[str] = []
    for notification in notifications:
        written.extend(
            enqueue(
                settings.state_dir,
                notification,
                urls=settings.webhook_urls,
                body_format=settings.webhook_format,
                external_url=settings.external_url,
                now_ms=now_ms,
            )
        )
    return written


def _step(
    previous: Alert | None, condition: Condition | None, settings: Settings, now_ms: int
) -> tuple[Alert | None, bool]:
    """The alert after this evaluation (None: gone) and whether to notify it."""
    if condition is None:
        if previous is None or previous.state != "firing":
            return None, False  # a pending alert that clears just disappears
        return replace(previous, state="resolved", resolved_at_ms=now_ms), True
    if previous is None:
        previous = Alert(
            fingerprint=condition.fingerprint,
            labels=condition.labels,
            annotations=condition.annotations,
            state="pending",
            active_since_ms=now_ms,
            fired_at_ms=None,
            resolved_at_ms=None,
            value=condition.value,
        )
    alert = replace(previous, annotations=condition.annotations, value=condition.value)
    if alert.state == "pending":
        for_ms = round(condition.rule.for_seconds(settings) * SECOND_MS)
        if now_ms - alert.active_since_ms >= for_ms:
            return replace(alert, state="firing", fired_at_ms=now_ms, last_notified_ms=now_ms), True
        return alert, False
    repeat_ms = round(settings.alert_repeat_seconds * SECOND_MS)
    if alert.last_notified_ms is None or now_ms - alert.last_notified_ms >= repeat_ms:
        return replace(alert, last_notified_ms=now_ms, repeats=alert.repeats + 1), True
    return alert, False


def evaluate(snapshot: HealthSnapshot, settings: Settings, *, now_ms: int) -> Evaluation:
    """Run the rules on ``snapshot`` judged at ``now_ms``, advance every alert's state, enqueue
    the notifications for the webhook URLs, and save ``<state_dir>/alerts.json``.

    Safe across crashes: the decided notifications are saved before they are enqueued, and
    enqueueing one that is already in the outbox (or was delivered) is a no-op.
    """
    state_dir = settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    judged = snapshot.at(now_ms)
    with PartitionLock(state_dir):
        state = _state_for_evaluation(settings, now_ms)
        enqueued = _enqueue_all(
            settings, [Notification.from_dict(n) for n in state.unqueued], now_ms
        )

        watched = {s: state.watched_since_ms.get(s, now_ms) for s in judged.symbols}
        found = {c.fingerprint: c for c in conditions(judged, settings, watched_since_ms=watched)}
        previous = {alert.fingerprint: alert for alert in state.active}
        active: list[Alert] = []
        resolved: list[Alert] = []
        notifications: list[Notification] = []
        for key in [*previous, *(fp for fp in found if fp not in previous)]:
            alert, notify = _step(previous.get(key), found.get(key), settings, now_ms)
            if alert is None:
                continue
            (resolved if alert.state == "resolved" else active).append(alert)
            if notify:
                notifications.append(alert.notification(settings))

        horizon = now_ms - RESOLVED_KEPT_MS
        history = [a for a in state.resolved if (a.resolved_at_ms or 0) >= horizon]
        kept = tuple([*reversed(resolved), *history][:RESOLVED_KEPT])
        decided = AlertState(
            evaluated_at_ms=now_ms,
            active=tuple(active),
            resolved=kept,
            watched_since_ms=watched,
            unqueued=tuple(n.to_dict() for n in notifications),
        )
        if notifications:
            _write_state(state_dir, decided)  # first: a crash now re-enqueues, never loses
            enqueued.extend(_enqueue_all(settings, notifications, now_ms))
        _write_state(state_dir, replace(decided, unqueued=()))
    for notification in notifications:
        logger.info(
            "alert %s %s %s",
            notification.labels.get("alertname"),
            notification.status,
            {k: v for k, v in notification.labels.items() if k != "alertname"},
        )
    return Evaluation(
        now_ms=now_ms,
        alerts=(*active, *resolved),
        notifications=tuple(notifications),
        enqueued=tuple(enqueued),
    )
