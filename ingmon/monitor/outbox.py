"""The durable webhook outbox: one file per notification and URL, posted with backoff, never lost.

A notification (one alert turning firing, repeating, or resolved) is written to the outbox
``<state_dir>/outbox/<id>.json``, one file per (notification, webhook URL), before anything is
sent. :func:`deliver` posts the due entries and removes each one on a 2xx answer; a failed
attempt stays in its file with ``attempts`` and ``next_attempt_ms`` (exponential backoff from
``webhook_backoff_base_seconds``, doubling, capped at ``webhook_backoff_cap_seconds``), so a
receiver outage or a restart loses nothing. Entries of one alert reach one URL in order (a
resolved never overtakes its firing). Delivered ids are remembered for a week in
``<state_dir>/webhooks.json`` (with the attempt counters by outcome, and the latest notification
delivered per alert), so enqueueing the same notification again is a no-op and a lost
``alerts.json`` can be rebuilt (:func:`told_alerts`). A URL that cannot be used (one httpx
refuses) fails its own entries, like a receiver that does not answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ingmon.config import Settings
from ingmon.monitor.webhooks import (
    BodyFormat,
    Notification,
    Status,
    alertmanager_payload,
    body_bytes,
    post_webhook,
    redact_url,
    slack_payload,
)
from ingmon.partition import PartitionLock
from ingmon.reports.state import write_text_atomic
from ingmon.times import DAY_MS, SECOND_MS, iso_ms

if TYPE_CHECKING:
    import httpx

__all__ = [
    "OUTBOX_DIR",
    "STATE_FILE",
    "Delivery",
    "DeliveryResult",
    "OutboxEntry",
    "Told",
    "backoff_seconds",
    "deliver",
    "delivery_counts",
    "enqueue",
    "outbox_entries",
    "outbox_pending",
    "told_alerts",
]

logger = logging.getLogger(__name__)

OUTBOX_DIR = "outbox"
STATE_FILE = "webhooks.json"
STATE_FORMAT = 1
# How long a delivered id is remembered, so that enqueueing it again is a no-op.
DELIVERED_TTL_MS = 7 * DAY_MS
OUTCOMES = ("success", "failure")


def backoff_seconds(attempts: int, *, base_seconds: float, cap_seconds: float) -> float:
    """The wait after the ``attempts``-th failed attempt: base, 2·base, 4·base, … ≤ cap."""
    return min(cap_seconds, base_seconds * 2.0 ** min(max(attempts - 1, 0), 60))


def _url_id(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class OutboxEntry:
    """One pending delivery of a notification to one webhook URL (``outbox/<id>.json``)."""

    id: str
    key: str
    alertname: str
    fingerprint: str
    status: Status
    starts_at_ms: int
    url_id: str  # the first 16 hex digits of the URL's SHA-256: matched against the settings
    url: str  # redacted
    body_format: BodyFormat
    body: Mapping[str, Any]
    created_ms: int
    attempts: int = 0
    next_attempt_ms: int = 0
    last_attempt_ms: int | None = None
    last_http_status: int | None = None
    last_error: str | None = None
    # The notification itself (Notification.to_dict): what lets alerts.json be rebuilt.
    notification: Mapping[str, Any] | None = None

    def to_dict(self, *, with_body: bool = True) -> dict[str, Any]:
        """The file's JSON (``with_body=False``: the summary ``ingmon alerts status`` shows)."""
        data: dict[str, Any] = {
            "format": STATE_FORMAT,
            "id": self.id,
            "key": self.key,
            "alertname": self.alertname,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "starts_at_ms": self.starts_at_ms,
            "url_id": self.url_id,
            "url": self.url,
            "body_format": self.body_format,
            "created_ms": self.created_ms,
            "created_at": iso_ms(self.created_ms),
            "attempts": self.attempts,
            "next_attempt_ms": self.next_attempt_ms,
            "next_attempt_at": iso_ms(self.next_attempt_ms),
            "last_attempt_ms": self.last_attempt_ms,
            "last_http_status": self.last_http_status,
            "last_error": self.last_error,
        }
        if with_body:
            data["body"] = dict(self.body)
            data["notification"] = None if self.notification is None else dict(self.notification)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutboxEntry:
        return cls(
            id=str(data["id"]),
            key=str(data["key"]),
            alertname=str(data["alertname"]),
            fingerprint=str(data["fingerprint"]),
            status=data["status"],
            starts_at_ms=int(data["starts_at_ms"]),
            url_id=str(data["url_id"]),
            url=str(data["url"]),
            body_format=data["body_format"],
            body=dict(data["body"]),
            created_ms=int(data["created_ms"]),
            attempts=int(data["attempts"]),
            next_attempt_ms=int(data["next_attempt_ms"]),
            last_attempt_ms=_int_or_none(data.get("last_attempt_ms")),
            last_http_status=_int_or_none(data.get("last_http_status")),
            last_error=data.get("last_error"),
            notification=_mapping_or_none(data.get("notification")),
        )

    @property
    def _order(self) -> tuple[int, int, int, str]:
        return (self.created_ms, self.starts_at_ms, 0 if self.status == "firing" else 1, self.key)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _ms_or_zero(value: Any) -> int:
    """An epoch-ms field of a stored record; 0 (long ago) when missing or not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _mapping_or_none(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def _outbox(state_dir: Path) -> Path:
    return state_dir / OUTBOX_DIR


def _entry_id(key: str, url_id: str) -> str:
    return hashlib.sha256(f"{key}@{url_id}".encode()).hexdigest()[:32]


def _read_entries(state_dir: Path) -> tuple[list[OutboxEntry], list[Path]]:
    """The readable entries in delivery order, and the files that could not be read."""
    entries: list[OutboxEntry] = []
    unreadable: list[Path] = []
    outbox = _outbox(state_dir)
    if not outbox.is_dir():
        return entries, unreadable
    for path in sorted(outbox.glob("*.json")):
        try:
            entries.append(OutboxEntry.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except FileNotFoundError:
            continue  # delivered meanwhile
        except (ValueError, KeyError, TypeError, AttributeError):
            unreadable.append(path)
    entries.sort(key=lambda entry: entry._order)
    return entries, unreadable


def outbox_entries(state_dir: Path) -> list[OutboxEntry]:
    """Every pending delivery, oldest first."""
    return _read_entries(state_dir)[0]


def outbox_pending(state_dir: Path) -> int:
    """How many deliveries wait in the outbox (unreadable files count: they are not lost)."""
    outbox = _outbox(state_dir)
    return sum(1 for _ in outbox.glob("*.json")) if outbox.is_dir() else 0


def _write_entry(state_dir: Path, entry: OutboxEntry) -> None:
    text = json.dumps(entry.to_dict(), indent=1, ensure_ascii=False) + "\n"
    write_text_atomic(_outbox(state_dir) / f"{entry.id}.json", text)


# What a stored notification record that does not parse raises in Notification.from_dict.
_UNPARSABLE = (ValueError, KeyError, TypeError, AttributeError)


@dataclass(frozen=True)
class Told:
    """The latest notification of one alert that a receiver took (or that waits in the
    outbox), and when it was decided (enqueued)."""

    notification: Notification
    notified_ms: int


@dataclass
class _Ledger:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    delivered: dict[str, int] = field(default_factory=dict)  # entry id -> delivered at ms
    # fingerprint -> the latest notification of that alert delivered to some URL, with when
    # it was decided and delivered: a firing one is kept until a resolved one replaces it.
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def told(self, entry: OutboxEntry, now_ms: int) -> None:
        """Remember the delivered entry's notification unless a later one of the alert is."""
        if entry.notification is None:
            return
        try:
            notification = Notification.from_dict(entry.notification)
        except _UNPARSABLE:
            return
        known = self.alerts.get(entry.fingerprint)
        try:
            if known is not None and Notification.from_dict(known).order > notification.order:
                return
        except _UNPARSABLE:
            pass  # a record that does not parse is replaced
        self.alerts[entry.fingerprint] = {
            **notification.to_dict(),
            "notified_ms": entry.created_ms,
            "delivered_ms": now_ms,
        }

    def to_dict(self, now_ms: int) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "updated_at_ms": now_ms,
            "updated_at": iso_ms(now_ms),
            "counts": dict(sorted(self.counts.items())),
            "delivered": dict(sorted(self.delivered.items(), key=lambda item: item[1])),
            "alerts": dict(sorted(self.alerts.items())),
        }


def _read_ledger(state_dir: Path) -> _Ledger:
    path = state_dir / STATE_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        ledger = _Ledger()
        ledger.counts.update({str(k): int(v) for k, v in stored.get("counts", {}).items()})
        ledger.delivered = {str(k): int(v) for k, v in stored.get("delivered", {}).items()}
        ledger.alerts = {
            str(k): dict(v) for k, v in stored.get("alerts", {}).items() if isinstance(v, dict)
        }
    except FileNotFoundError:
        return _Ledger()
    except (ValueError, TypeError, AttributeError) as error:
        logger.warning("webhook state %s is unreadable (%s): counting from zero", path, error)
        return _Ledger()
    return ledger


def _write_ledger(state_dir: Path, ledger: _Ledger, now_ms: int) -> None:
    horizon = now_ms - DELIVERED_TTL_MS
    ledger.delivered = {key: at for key, at in ledger.delivered.items() if at >= horizon}
    # A firing alert stays however old (its resolved notification may still be owed).
    ledger.alerts = {
        key: told
        for key, told in ledger.alerts.items()
        if told.get("status") == "firing" or _ms_or_zero(told.get("delivered_ms")) >= horizon
    }
    write_text_atomic(state_dir / STATE_FILE, json.dumps(ledger.to_dict(now_ms), indent=1) + "\n")


def told_alerts(state_dir: Path) -> dict[str, Told]:
    """Per alert fingerprint, the latest notification receivers were told (delivered, as
    ``webhooks.json`` remembers it) or are about to be told (waiting in the outbox): what
    rebuilds the firing alerts when ``alerts.json`` is lost. Records that do not parse, and
    outbox entries written without their notification, are left out."""
    found: dict[str, Told] = {}

    def offer(data: Mapping[str, Any], notified_ms: Any) -> None:
        try:
            told = Told(Notification.from_dict(data), int(notified_ms))
        except _UNPARSABLE:
            return
        known = found.get(told.notification.fingerprint)
        if known is None or told.notification.order > known.notification.order:
            found[told.notification.fingerprint] = told

    for record in _read_ledger(state_dir).alerts.values():
        offer(record, record.get("notified_ms", 0))
    for entry in outbox_entries(state_dir):
        if entry.notification is not None:
            offer(entry.notification, entry.created_ms)
    return found


def delivery_counts(state_dir: Path) -> dict[str, int]:
    """Delivery attempts so far by outcome: ``success`` (a 2xx answer) and ``failure`` (no
    answer, a non-2xx one, or a URL no longer configured); both keys always present."""
    return dict(_read_ledger(state_dir).counts)


def enqueue(
    state_dir: Path,
    notification: Notification,
    *,
    urls: Sequence[str],
    body_format: BodyFormat,
    external_url: str,
    now_ms: int,
) -> list[str]:
    """Write one outbox entry per URL for ``notification``, due at ``now_ms``; the ids of the
    entries written. An entry already waiting or delivered within a week is not written again,
    and a repeat (``repeat`` > 0) is not written for a URL still owing an entry of that alert."""
    if not urls:
        return []
    outbox = _outbox(state_dir)
    outbox.mkdir(parents=True, exist_ok=True)
    delivered = _read_ledger(state_dir).delivered
    if body_format == "slack":
        body = slack_payload([notification])
    else:
        body = alertmanager_payload([notification], external_url=external_url)
    # A reminder is pointless to a URL that has not even taken the alert's last firing one.
    undelivered = (
        {e.url_id for e in outbox_entries(state_dir) if e.fingerprint == notification.fingerprint}
        if notification.repeat
        else set()
    )
    written = []
    for url in dict.fromkeys(urls):
        url_id = _url_id(url)
        entry_id = _entry_id(notification.key, url_id)
        if entry_id in delivered or (outbox / f"{entry_id}.json").exists():
            continue
        if url_id in undelivered:
            continue
        entry = OutboxEntry(
            id=entry_id,
            key=notification.key,
            alertname=notification.labels.get("alertname", ""),
            fingerprint=notification.fingerprint,
            status=notification.status,
            starts_at_ms=notification.starts_at_ms,
            url_id=url_id,
            url=redact_url(url),
            body_format=body_format,
            body=body,
            created_ms=now_ms,
            next_attempt_ms=now_ms,
            notification=notification.to_dict(),
        )
        _write_entry(state_dir, entry)
        written.append(entry_id)
    return written


# -- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    """One attempt of :func:`deliver`."""

    id: str
    alertname: str
    fingerprint: str
    status: Status
    url: str  # redacted
    outcome: Literal["success", "failure"]
    http_status: int | None
    error: str | None
    attempts: int
    next_attempt_ms: int | None  # None once delivered

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "next_attempt_at": iso_ms(self.next_attempt_ms)}


@dataclass(frozen=True)
class Delivery:
    """What one pass of :func:`deliver` did."""

    now_ms: int
    results: tuple[DeliveryResult, ...]
    waiting: int  # entries not due yet, or queued behind an earlier one of the same alert
    deferred: int  # due, but their URL did not answer earlier in this pass
    pending: int  # entries left in the outbox afterwards
    unreadable: tuple[str, ...]  # outbox files that cannot be parsed (kept, never dropped)

    @property
    def delivered(self) -> int:
        return sum(1 for result in self.results if result.outcome == "success")

    @property
    def failed(self) -> int:
        return sum(1 for result in self.results if result.outcome == "failure")

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": iso_ms(self.now_ms),
            "attempted": len(self.results),
            "delivered": self.delivered,
            "failed": self.failed,
            "waiting": self.waiting,
            "deferred": self.deferred,
            "pending": self.pending,
            "unreadable": list(self.unreadable),
            "results": [result.to_dict() for result in self.results],
        }


def _failed(entry: OutboxEntry, settings: Settings, *, now_ms: int, **last: Any) -> OutboxEntry:
    attempts = entry.attempts + 1
    delay_seconds = backoff_seconds(
        attempts,
        base_seconds=settings.webhook_backoff_base_seconds,
        cap_seconds=settings.webhook_backoff_cap_seconds,
    )
    return OutboxEntry(
        **{
            **vars(entry),
            "attempts": attempts,
            "last_attempt_ms": now_ms,
            "next_attempt_ms": now_ms + round(delay_seconds * SECOND_MS),
            **last,
        }
    )


def _attempt(
    client: httpx.Client, entry: OutboxEntry, url: str | None, settings: Settings
) -> tuple[int | None, str | None, bool]:
    """(HTTP status, error, whether the URL answered at all)."""
    import httpx  # noqa: PLC0415 - keep readers of the state files light

    if url is None:
        return None, "the URL is no longer among INGMON_WEBHOOK_URLS", False
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    try:
        response = post_webhook(
            client,
            url,
            body_bytes(entry.body),
            secret=secret,
            timeout_seconds=settings.webhook_timeout_seconds,
            delivery_id=entry.id,
        )
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as error:
        # No answer, or a URL httpx refuses (InvalidURL; ValueError: e.g. an IDNA host): a
        # failed attempt of this entry, retried with backoff, never the end of the pass.
        message = f"{type(error).__name__}: {error}".replace(url, entry.url)
        return None, message, False
    if 200 <= response.status_code < 300:
        return response.status_code, None, True
    return response.status_code, f"HTTP {response.status_code} {response.reason_phrase}", True


def deliver(settings: Settings, *, now_ms: int, client: httpx.Client | None = None) -> Delivery:
    """Post every outbox entry due at ``now_ms`` once, oldest first; remove each on a 2xx.

    A failed entry stays with its next attempt ``base·2^(attempts−1)`` seconds (≤ cap) after
    ``now_ms``. An entry waits while an older one of the same alert and URL is pending, and
    after a URL gave no answer its other entries wait for the next pass. One pass at a time
    per data root (a lock in the outbox directory).
    """
    import httpx  # noqa: PLC0415 - keep readers of the state files light

    state_dir = settings.state_dir
    outbox = _outbox(state_dir)
    if not outbox.is_dir():
        return Delivery(now_ms, (), 0, 0, 0, ())
    urls = {_url_id(url): url for url in settings.webhook_urls}
    results: list[DeliveryResult] = []
    waiting = deferred = 0
    with PartitionLock(outbox):
        ledger = _read_ledger(state_dir)
        entries, unreadable = _read_entries(state_dir)
        for path in unreadable:
            logger.warning("webhook outbox file %s is unreadable: kept, not sent", path)
        http = client if client is not None else httpx.Client()
        try:
            blocked: set[tuple[str, str]] = set()
            silent: set[str] = set()
            for entry in entries:
                if entry.id in ledger.delivered:  # delivered; the removal was interrupted
                    (outbox / f"{entry.id}.json").unlink(missing_ok=True)
                    continue
                chain = (entry.url_id, entry.fingerprint)
                if chain in blocked or entry.next_attempt_ms > now_ms:
                    blocked.add(chain)
                    waiting += 1
                    continue
                if entry.url_id in silent:
                    blocked.add(chain)
                    deferred += 1
                    continue
                http_status, error, answered = _attempt(
                    http, entry, urls.get(entry.url_id), settings
                )
                if error is None:
                    ledger.counts["success"] = ledger.counts.get("success", 0) + 1
                    ledger.delivered[entry.id] = now_ms
                    ledger.told(entry, now_ms)
                    _write_ledger(state_dir, ledger, now_ms)  # first: enqueue checks it
                    (outbox / f"{entry.id}.json").unlink(missing_ok=True)
                    results.append(_result(entry, "success", http_status, None, None))
                    continue
                failed = _failed(
                    entry, settings, now_ms=now_ms, last_http_status=http_status, last_error=error
                )
                _write_entry(state_dir, failed)
                ledger.counts["failure"] = ledger.counts.get("failure", 0) + 1
                _write_ledger(state_dir, ledger, now_ms)
                blocked.add(chain)
                if not answered:
                    silent.add(entry.url_id)
                logger.warning(
                    "webhook %s (%s %s) to %s failed: %s; attempt %d, next at %s",
                    entry.id,
                    entry.alertname,
                    entry.status,
                    entry.url,
                    error,
                    failed.attempts,
                    iso_ms(failed.next_attempt_ms),
                )
                results.append(
                    _result(failed, "failure", http_status, error, failed.next_attempt_ms)
                )
        finally:
            if client is None:
                http.close()
    return Delivery(
        now_ms=now_ms,
        results=tuple(results),
        waiting=waiting,
        deferred=deferred,
        pending=outbox_pending(state_dir),
        unreadable=tuple(str(path) for path in unreadable),
    )


def _result(
    entry: OutboxEntry,
    outcome: Literal["success", "failure"],
    http_status: int | None,
    error: str | None,
    next_attempt_ms: int | None,
) -> DeliveryResult:
    return DeliveryResult(
        id=entry.id,
        alertname=entry.alertname,
        fingerprint=entry.fingerprint,
        status=entry.status,
        url=entry.url,
        outcome=outcome,
        http_status=http_status,
        error=error,
        attempts=entry.attempts + (1 if outcome == "success" else 0),
        next_attempt_ms=next_attempt_ms,
    )
