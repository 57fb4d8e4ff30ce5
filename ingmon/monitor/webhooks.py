"""Alert notifications as webhooks: Alertmanager v4 or Slack bodies, signing, URL checks, the POST.

The body is signed with ``webhook_secret`` at send time (``X-Ingmon-Signature-256``, GitHub's
scheme): no secret, and no webhook URL (their paths often are tokens), is ever written to a file
or a log — files and logs show :func:`redact_url`. What is sent, and when, is decided by the
durable outbox (``ingmon.monitor.outbox``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ingmon.errors import UsageError
from ingmon.times import iso_ms

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DELIVERY_HEADER",
    "INVALID_URL",
    "RECEIVER",
    "SIGNATURE_HEADER",
    "BodyFormat",
    "Notification",
    "Status",
    "alertmanager_payload",
    "body_bytes",
    "check_url",
    "fingerprint",
    "post_webhook",
    "redact_url",
    "sign",
    "slack_payload",
]

RECEIVER = "ingmon"
SIGNATURE_HEADER = "X-Ingmon-Signature-256"
DELIVERY_HEADER = "X-Ingmon-Delivery"
# Alertmanager's zero time: the endsAt of an alert that is still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"
# What files and logs show of a webhook URL that cannot be parsed at all.
INVALID_URL = "<invalid URL>"

Status = Literal["firing", "resolved"]
BodyFormat = Literal["alertmanager", "slack"]


def fingerprint(labels: Mapping[str, str]) -> str:
    """An alert's identity: the first 16 hex digits (64 bits, the width of an Alertmanager
    fingerprint) of the SHA-256 of its labels as compact JSON with sorted keys."""
    canonical = json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Notification:
    """One alert to tell the receivers about: it fires (again, ``repeat`` > 0) or resolved.

    ``starts_at_ms`` is when it started firing, ``ends_at_ms`` when it resolved (None while
    firing). (fingerprint, status, startsAt, repeat) is the notification's identity.
    """

    fingerprint: str
    status: Status
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at_ms: int
    ends_at_ms: int | None
    generator_url: str
    repeat: int = 0

    @property
    def key(self) -> str:
        """The de-duplication key: ``fingerprint/status/startsAt/repeat``."""
        return f"{self.fingerprint}/{self.status}/{iso_ms(self.starts_at_ms)}/{self.repeat}"

    @property
    def order(self) -> tuple[int, int, int]:
        """Later notifications of one alert sort after earlier ones: by startsAt, then the
        firing ones (first, repeated) before the resolved one."""
        return (self.starts_at_ms, 1 if self.status == "resolved" else 0, self.repeat)

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to build the notification again (``from_dict``)."""
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at_ms": self.starts_at_ms,
            "ends_at_ms": self.ends_at_ms,
            "generator_url": self.generator_url,
            "repeat": self.repeat,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        ends_at = data.get("ends_at_ms")
        return cls(
            fingerprint=str(data["fingerprint"]),
            status="resolved" if data["status"] == "resolved" else "firing",
            labels={str(k): str(v) for k, v in data["labels"].items()},
            annotations={str(k): str(v) for k, v in data["annotations"].items()},
            starts_at_ms=int(data["starts_at_ms"]),
            ends_at_ms=None if ends_at is None else int(ends_at),
            generator_url=str(data["generator_url"]),
            repeat=int(data.get("repeat", 0)),
        )

    def alert(self) -> dict[str, Any]:
        """The alert as an element of the Alertmanager v4 ``alerts`` list."""
        ends_at = iso_ms(self.ends_at_ms) if self.ends_at_ms is not None else ZERO_TIME
        return {
            "status": self.status,
            "labels": dict(sorted(self.labels.items())),
            "annotations": dict(sorted(self.annotations.items())),
            "startsAt": iso_ms(self.starts_at_ms),
            "endsAt": ends_at,
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


def _common(mappings: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not mappings:
        return {}
    first = mappings[0]
    return {
        name: value
        for name, value in sorted(first.items())
        if all(other.get(name) == value for other in mappings[1:])
    }


def _label_set(labels: Mapping[str, str]) -> str:
    """Alertmanager's LabelSet string: ``{alertname="X", symbol="Y"}`` (sorted, quoted)."""
    return "{" + ", ".join(f"{name}={json.dumps(labels[name])}" for name in sorted(labels)) + "}"


def alertmanager_payload(
    notifications: Sequence[Notification], *, external_url: str
) -> dict[str, Any]:
    """The Alertmanager webhook (version 4) body of one group of alerts.

    ingmon groups by every label (Alertmanager's ``group_by: ['...']``), so a group is one
    alert: groupLabels = commonLabels = its labels. ``status`` is firing when any alert fires.
    """
    if not notifications:
        raise ValueError("a webhook needs at least one alert")
    common_labels = _common([n.labels for n in notifications])
    return {
        "version": "4",
        "groupKey": "{}:" + _label_set(common_labels),
        "truncatedAlerts": 0,
        "status": "firing" if any(n.status == "firing" for n in notifications) else "resolved",
        "receiver": RECEIVER,
        "groupLabels": common_labels,
        "commonLabels": common_labels,
        "commonAnnotations": _common([n.annotations for n in notifications]),
        "externalURL": external_url,
        "alerts": [n.alert() for n in notifications],
    }


def slack_payload(notifications: Sequence[Notification]) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook body: ``{"text": …}`` in Slack's mrkdwn."""
    lines = []
    for n in notifications:
        where = " ".join(n.labels[name] for name in ("dataset", "symbol") if n.labels.get(name))
        head = f"*[{n.status.upper()}] {n.labels.get('alertname', 'alert')}*"
        head += f" ({n.labels.get('severity', 'none')})" + (f" {where}" if where else "")
        lines.append(head)
        for name in ("summary", "description"):
            if n.annotations.get(name):
                lines.append(n.annotations[name])
        lines.append(f"<{n.generator_url}|open the dashboard>")
    return {"text": "\n".join(lines)}


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes posted (compact UTF-8 JSON): what the signature covers."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """The signature header's value: ``sha256=`` + hex HMAC-SHA256 of ``body`` keyed by
    ``secret`` (GitHub's ``X-Hub-Signature-256`` scheme)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` plus ``/…`` when there is more: what logs and files show of a
    webhook URL (its user info, path and query may be credentials, as in Slack's). Never
    raises: a URL that cannot be parsed shows as ``<invalid URL>``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return INVALID_URL
    host = parts.netloc.rpartition("@")[2]
    more = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{more}"


def check_url(url: str) -> str:
    """``url`` when it is an absolute http(s) URL with a host; UsageError otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"url {url!r} is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"url {redact_url(url)!r} must be an http(s) URL with a host", field="url")
    return url


class _RedactWebhookUrls(logging.Filter):
    """Masks webhook URLs in httpx's own request log line (``HTTP Request: POST <url> …``):
    their paths are often credentials. Other URLs (the exchange's) are left as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(str(a) in self.urls for a in record.args):
            record.args = tuple(
                redact_url(str(a)) if str(a) in self.urls else a for a in record.args
            )
        return True


_REDACT = _RedactWebhookUrls()


def _hide_in_logs(url: str) -> None:
    import httpx  # noqa: PLC0415 - keep readers of the state files light

    httpx_logger = logging.getLogger("httpx")
    if _REDACT not in httpx_logger.filters:
        httpx_logger.addFilter(_REDACT)
    _REDACT.urls.add(str(httpx.URL(url)))


def post_webhook(
    client: httpx.Client,
    url: str,
    body: bytes,
    *,
    secret: str | None,
    timeout_seconds: float,
    delivery_id: str,
) -> httpx.Response:
    """POST ``body`` to ``url`` with the JSON, signature and delivery-id headers (no
    redirects followed). Raises httpx.HTTPError when no answer comes."""
    from ingmon import __version__  # noqa: PLC0415 - the package imports its modules first

    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"ingmon/{__version__}",
        DELIVERY_HEADER: delivery_id,
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    _hide_in_logs(url)
    return client.post(
        url, content=body, headers=headers, timeout=timeout_seconds, follow_redirects=False
    )
