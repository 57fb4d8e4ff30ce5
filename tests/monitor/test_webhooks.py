"""Webhook bodies (Alertmanager v4, Slack), the HMAC header, and the durable outbox against a
real receiver on loopback; time (and so backoff) is driven by ``now_ms``, never by sleeping."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingmon.config import Settings, load_settings
from ingmon.monitor import outbox, webhooks
from ingmon.monitor.webhooks import Notification
from tests.monitor._receiver import Receiver, closed_port

T0 = 1_772_323_200_000  # 2026-03-01T00:00:00Z
SECRET = "s3cr3t-hmac-key"
LABELS = {
    "alertname": "IngmonFeedStale",
    "severity": "critical",
    "dataset": "candles",
    "symbol": "BTCUSDT",
}
# sha256 of the labels as compact JSON with sorted keys, typed out by hand.
CANONICAL = (
    b'{"alertname":"IngmonFeedStale","dataset":"candles","severity":"critical","symbol":"BTCUSDT"}'
)
FINGERPRINT = hashlib.sha256(CANONICAL).hexdigest()[:16]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def make_settings(tmp_path: Path, *urls: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "webhook_urls": list(urls),
        "webhook_secret": SECRET,
        "webhook_timeout_seconds": 2.0,
        "webhook_backoff_base_seconds": 2.0,
        "webhook_backoff_cap_seconds": 10.0,
        "external_url": "http://ingmon.example:8080",
    }
    values.update(overrides)
    return load_settings(env_file=None, **values)


def stale(
    status: str = "firing", *, ends_at_ms: int | None = None, repeat: int = 0
) -> Notification:
    return Notification(
        fingerprint=webhooks.fingerprint(LABELS),
        status=status,  # type: ignore[arg-type]
        labels=LABELS,
        annotations={"summary": "candles of BTCUSDT: stale feed", "description": "age 400 s"},
        starts_at_ms=T0,
        ends_at_ms=ends_at_ms,
        generator_url="http://ingmon.example:8080/dashboard",
        repeat=repeat,
    )


def put(settings: Settings, notification: Notification, now_ms: int) -> list[str]:
    return outbox.enqueue(
        settings.state_dir,
        notification,
        urls=settings.webhook_urls,
        body_format=settings.webhook_format,
        external_url=settings.external_url,
        now_ms=now_ms,
    )


def outbox_files(settings: Settings) -> list[dict[str, object]]:
    return [
        json.loads(path.read_text())
        for path in sorted((settings.state_dir / "outbox").glob("*.json"))
    ]


def test_fingerprint_is_the_sha256_of_the_sorted_labels() -> None:
    """The fingerprint is the first 16 hex digits of sha256 over the sorted labels' JSON."""
    shuffled = {"symbol": "BTCUSDT", "dataset": "candles", "severity": "critical"}
    shuffled["alertname"] = "IngmonFeedStale"
    assert webhooks.fingerprint(LABELS) == FINGERPRINT
    assert webhooks.fingerprint(shuffled) == FINGERPRINT
    assert len(FINGERPRINT) == 16


def test_firing_payload_is_alertmanager_v4_field_by_field() -> None:
    """A firing notification's body is exactly the Alertmanager v4 webhook shape."""
    payload = webhooks.alertmanager_payload([stale()], external_url="http://ingmon.example:8080")
    assert payload == {
        "version": "4",
        "groupKey": '{}:{alertname="IngmonFeedStale", dataset="candles", '
        'severity="critical", symbol="BTCUSDT"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "ingmon",
        "groupLabels": LABELS,
        "commonLabels": LABELS,
        "commonAnnotations": {
            "description": "age 400 s",
            "summary": "candles of BTCUSDT: stale feed",
        },
        "externalURL": "http://ingmon.example:8080",
        "alerts": [
            {
                "status": "firing",
                "labels": LABELS,
                "annotations": {
                    "description": "age 400 s",
                    "summary": "candles of BTCUSDT: stale feed",
                },
                "startsAt": "2026-03-01T00:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://ingmon.example:8080/dashboard",
                "fingerprint": FINGERPRINT,
            }
        ],
    }
    assert list(payload) == [
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ]


def test_resolved_payload_carries_ends_at() -> None:
    """A resolved notification says resolved at both levels and ends at the resolution."""
    resolved = stale("resolved", ends_at_ms=T0 + 90_000)
    payload = webhooks.alertmanager_payload([resolved], external_url="http://x")
    assert payload["status"] == "resolved"
    (alert,) = payload["alerts"]
    assert alert["status"] == "resolved"
    assert alert["startsAt"] == "2026-03-01T00:00:00.000Z"
    assert alert["endsAt"] == "2026-03-01T00:01:30.000Z"
    assert alert["fingerprint"] == FINGERPRINT


def test_group_of_two_alerts_has_only_their_common_labels() -> None:
    """With two alerts, groupLabels/commonLabels keep what both share; firing wins."""
    other_labels = {**LABELS, "symbol": "ETHUSDT"}
    other = Notification(
        fingerprint=webhooks.fingerprint(other_labels),
        status="resolved",
        labels=other_labels,
        annotations={"summary": "x"},
        starts_at_ms=T0,
        ends_at_ms=T0 + 1,
        generator_url="http://x/dashboard",
    )
    payload = webhooks.alertmanager_payload([stale(), other], external_url="http://x")
    common = {"alertname": "IngmonFeedStale", "dataset": "candles", "severity": "critical"}
    assert payload["commonLabels"] == common
    assert payload["groupLabels"] == common
    assert payload["groupKey"] == (
        '{}:{alertname="IngmonFeedStale", dataset="candles", severity="critical"}'
    )
    assert payload["commonAnnotations"] == {}
    assert payload["status"] == "firing"
    assert [a["status"] for a in payload["alerts"]] == ["firing", "resolved"]


def test_slack_body_is_one_text_field() -> None:
    """The Slack format is ``{"text": …}`` naming status, rule, severity, series and link."""
    assert webhooks.slack_payload([stale()]) == {
        "text": "*[FIRING] IngmonFeedStale* (critical) candles BTCUSDT\n"
        "candles of BTCUSDT: stale feed\n"
        "age 400 s\n"
        "<http://ingmon.example:8080/dashboard|open the dashboard>"
    }


def test_signature_is_hmac_sha256_of_the_body() -> None:
    """sign() equals an independent HMAC-SHA256 of the same bytes, prefixed ``sha256=``."""
    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert webhooks.sign(body, SECRET) == f"sha256={expected}"


def test_delivery_reaches_the_receiver_signed(tmp_path: Path, receiver: Receiver) -> None:
    """A delivered entry arrives once with JSON body, valid HMAC and delivery id, then leaves
    the outbox and counts as a success."""
    settings = make_settings(tmp_path, receiver.url())
    (entry_id,) = put(settings, stale(), T0)
    assert outbox.outbox_pending(settings.state_dir) == 1

    delivery = outbox.deliver(settings, now_ms=T0)

    assert (delivery.delivered, delivery.failed, delivery.pending) == (1, 0, 0)
    (request,) = receiver.received
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-ingmon-delivery"] == entry_id
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-ingmon-signature-256"] == f"sha256={expected}"
    assert request.json() == webhooks.alertmanager_payload(
        [stale()], external_url="http://ingmon.example:8080"
    )
    assert outbox.outbox_pending(settings.state_dir) == 0
    assert outbox.delivery_counts(settings.state_dir) == {"success": 1, "failure": 0}


def test_no_secret_means_no_signature_header(tmp_path: Path, receiver: Receiver) -> None:
    """Without INGMON_WEBHOOK_SECRET the body goes out unsigned."""
    settings = make_settings(tmp_path, receiver.url(), webhook_secret=None)
    put(settings, stale(), T0)
    outbox.deliver(settings, now_ms=T0)
    (request,) = receiver.received
    assert "x-ingmon-signature-256" not in request.headers


def test_slack_format_is_delivered_as_text(tmp_path: Path, receiver: Receiver) -> None:
    """With webhook_format slack, the receiver gets the signed ``{"text": …}`` body."""
    settings = make_settings(tmp_path, receiver.url(), webhook_format="slack")
    put(settings, stale(), T0)
    outbox.deliver(settings, now_ms=T0)
    (request,) = receiver.received
    assert request.json() == webhooks.slack_payload([stale()])
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-ingmon-signature-256"] == f"sha256={expected}"


def test_enqueueing_the_same_notification_again_is_a_no_op(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Same fingerprint+status+startsAt: one entry while waiting, none after delivery."""
    settings = make_settings(tmp_path, receiver.url())
    assert len(put(settings, stale(), T0)) == 1
    assert put(settings, stale(), T0 + 1000) == []
    assert outbox.outbox_pending(settings.state_dir) == 1
    outbox.deliver(settings, now_ms=T0 + 1000)
    assert put(settings, stale(), T0 + 2000) == []
    outbox.deliver(settings, now_ms=T0 + 3000)
    assert receiver.alert_counts() == {(FINGERPRINT, "firing"): 1}
    # A repeat (the same alert notified again later) and the resolution are new notifications.
    assert len(put(settings, stale(repeat=1), T0 + 4000)) == 1
    # ...but a second reminder is not queued while the first one still waits.
    assert put(settings, stale(repeat=2), T0 + 4500) == []
    assert len(put(settings, stale("resolved", ends_at_ms=T0 + 5000), T0 + 5000)) == 1


def test_failed_attempts_back_off_doubling_to_the_cap(tmp_path: Path, receiver: Receiver) -> None:
    """A 503 keeps the entry; retries wait 2, 4, 8, 10, 10 s (base 2, cap 10), and nothing is
    sent before the stored next attempt; a later 2xx removes it."""
    receiver.status = 503
    settings = make_settings(tmp_path, receiver.url())
    put(settings, stale(), T0)
    now = T0
    for expected_delay_ms in (2_000, 4_000, 8_000, 10_000, 10_000):
        delivery = outbox.deliver(settings, now_ms=now)
        assert delivery.failed == 1
        (entry,) = outbox_files(settings)
        assert entry["next_attempt_ms"] == now + expected_delay_ms
        assert entry["last_http_status"] == 503
        assert entry["last_error"] == "HTTP 503 Service Unavailable"
        early = outbox.deliver(settings, now_ms=now + expected_delay_ms - 1)
        assert (len(early.results), early.waiting) == (0, 1)
        now += expected_delay_ms
    assert len(receiver.received) == 5
    assert outbox.delivery_counts(settings.state_dir) == {"success": 0, "failure": 5}
    receiver.status = 200
    assert outbox.deliver(settings, now_ms=now).delivered == 1
    assert outbox.outbox_pending(settings.state_dir) == 0
    assert outbox.delivery_counts(settings.state_dir) == {"success": 1, "failure": 5}
    assert outbox.backoff_seconds(40, base_seconds=2, cap_seconds=300) == 300


def test_receiver_outage_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    """With the port closed, firing and resolved stay in the outbox (one attempt per pass,
    the resolved one queued behind its firing); once the receiver is back, across a restart
    of the deliverer, each arrives exactly once, firing first."""
    port = closed_port()
    settings = make_settings(tmp_path, f"http://127.0.0.1:{port}/hook")
    put(settings, stale(), T0)
    first = outbox.deliver(settings, now_ms=T0)
    assert first.failed == 1
    assert "ConnectError" in str(first.results[0].error)
    put(settings, stale("resolved", ends_at_ms=T0 + 1000), T0 + 1000)
    # The resolved one is due, but its firing is not: it waits behind it.
    second = outbox.deliver(settings, now_ms=T0 + 1000)
    assert (len(second.results), second.waiting, second.pending) == (0, 2, 2)
    third = outbox.deliver(settings, now_ms=T0 + 2000)
    assert (third.failed, third.waiting) == (1, 1)
    entries = {e["status"]: e for e in outbox_files(settings)}
    assert entries["firing"]["attempts"] == 2
    assert entries["firing"]["next_attempt_ms"] == T0 + 2000 + 4000
    assert entries["resolved"]["attempts"] == 0

    receiver = Receiver(port=port)  # back, on the same port
    try:
        restarted = make_settings(tmp_path, f"http://127.0.0.1:{port}/hook")  # a new process
        assert outbox.deliver(restarted, now_ms=T0 + 5999).results == ()
        back = outbox.deliver(restarted, now_ms=T0 + 6000)
        assert back.delivered == 2
        assert outbox.deliver(restarted, now_ms=T0 + 60_000).results == ()
        assert [p["status"] for p in receiver.payloads()] == ["firing", "resolved"]
        assert receiver.alert_counts() == {(FINGERPRINT, "firing"): 1, (FINGERPRINT, "resolved"): 1}
    finally:
        receiver.stop()


def test_a_silent_url_costs_one_attempt_per_pass(tmp_path: Path, receiver: Receiver) -> None:
    """Entries to a closed port: one attempt, the rest deferred; another URL still gets all."""
    down = f"http://127.0.0.1:{closed_port()}/hook"
    settings = make_settings(tmp_path, down, receiver.url())
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        labels = {**LABELS, "symbol": symbol}
        put(
            settings,
            Notification(
                fingerprint=webhooks.fingerprint(labels),
                status="firing",
                labels=labels,
                annotations={},
                starts_at_ms=T0,
                ends_at_ms=None,
                generator_url="http://x/dashboard",
            ),
            T0,
        )
    delivery = outbox.deliver(settings, now_ms=T0)
    assert (delivery.delivered, delivery.failed, delivery.deferred) == (3, 1, 2)
    assert len(receiver.received) == 3
    assert outbox.outbox_pending(settings.state_dir) == 3


def test_an_entry_whose_url_was_removed_is_kept(tmp_path: Path, receiver: Receiver) -> None:
    """An entry for a URL no longer configured is not dropped: it fails with a reason and
    waits; configured again, it is delivered."""
    settings = make_settings(tmp_path, receiver.url())
    put(settings, stale(), T0)
    without = make_settings(tmp_path)
    delivery = outbox.deliver(without, now_ms=T0)
    assert delivery.failed == 1
    assert "no longer among INGMON_WEBHOOK_URLS" in str(delivery.results[0].error)
    assert outbox.outbox_pending(settings.state_dir) == 1
    assert outbox.deliver(settings, now_ms=T0 + 2000).delivered == 1
    assert len(receiver.received) == 1


def test_an_unreadable_outbox_file_is_kept_and_reported(tmp_path: Path, receiver: Receiver) -> None:
    """A damaged outbox file is neither sent nor deleted, and the pass reports it."""
    settings = make_settings(tmp_path, receiver.url())
    put(settings, stale(), T0)
    damaged = settings.state_dir / "outbox" / "damaged.json"
    damaged.write_text("{not json")
    delivery = outbox.deliver(settings, now_ms=T0)
    assert delivery.delivered == 1
    assert delivery.unreadable == (str(damaged),)
    assert damaged.exists()
    assert outbox.outbox_pending(settings.state_dir) == 1


def test_secrets_stay_out_of_files_and_logs(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the HMAC secret nor a URL's path token or password reaches a state file or
    a log line, through enqueue, failed and successful deliveries."""
    caplog.set_level(logging.DEBUG)
    token = "T000/B000/XXXXtokenXXXX"
    down = f"http://user:pa55word@127.0.0.1:{closed_port()}/services/{token}"
    settings = make_settings(tmp_path, receiver.url(f"/services/{token}"), down)
    put(settings, stale(), T0)
    outbox.deliver(settings, now_ms=T0)
    texts = [path.read_text() for path in settings.state_dir.rglob("*") if path.is_file()]
    assert any("IngmonFeedStale" in text for text in texts)  # the files were read
    for secret in (SECRET, token, "pa55word", "XXXXtoken"):
        assert all(secret not in text for text in texts), secret
        assert secret not in caplog.text, secret
    assert "webhook" in caplog.text  # the failure was logged


def test_check_url_and_redact_url() -> None:
    """Only absolute http(s) URLs with a host pass; redaction keeps scheme, host and port."""
    assert webhooks.check_url("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"
    for bad in ("ftp://host/x", "127.0.0.1:9", "http://", "http://host:99999/", "not a url"):
        with pytest.raises(Exception, match="url"):
            webhooks.check_url(bad)
    assert webhooks.redact_url("https://u:p@hooks.slack.com/services/T/B/x?y=1") == (
        "https://hooks.slack.com/…"
    )
    assert webhooks.redact_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_a_url_that_cannot_be_parsed_is_redacted_not_raised() -> None:
    """An unclosed IPv6 bracket: redact_url says so instead of raising, check_url refuses it."""
    assert webhooks.redact_url("http://[::1/hook/T0K3N") == webhooks.INVALID_URL
    with pytest.raises(Exception, match="not a valid URL"):
        webhooks.check_url("http://[::1/hook")


def test_urls_httpx_refuses_are_failed_attempts_of_their_own_entries(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Three URLs httpx will not send to (bad IPv6 bracket, over 65,536 characters, an
    invalid IDNA host) before a good one: one pass, no raise — the good URL gets the alert,
    each bad entry fails once with its reason and waits 2 s (the backoff base)."""
    bad = ["http://[::1/T0K3N", "http://127.0.0.1:9/" + "a" * 70_000, "http://xn--a.example/"]
    settings = make_settings(tmp_path, receiver.url())
    settings = settings.model_copy(update={"webhook_urls": [*bad, receiver.url()]})
    assert len(put(settings, stale(), T0)) == 4
    delivery = outbox.deliver(settings, now_ms=T0)
    assert (delivery.delivered, delivery.failed, delivery.pending) == (1, 3, 3)
    assert len(receiver.received) == 1
    errors = sorted(str(r.error).split(":")[0] for r in delivery.results if r.error)
    assert errors == ["InvalidCodepoint", "InvalidURL", "InvalidURL"]
    assert all(r.next_attempt_ms == T0 + 2_000 for r in delivery.results if r.error)
    stored = "".join(p.read_text() for p in settings.state_dir.rglob("*.json"))
    assert "T0K3N" not in stored and "a" * 100 not in stored


def test_the_ledger_remembers_the_latest_notification_of_each_alert(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A delivered firing notification is what told_alerts gives (enqueued at T0); its resolved
    one, waiting in the outbox, supersedes it; once delivered, webhooks.json keeps the
    resolved one — with its labels, so a lost alerts.json can be rebuilt."""
    settings = make_settings(tmp_path, receiver.url())
    put(settings, stale(), T0)
    outbox.deliver(settings, now_ms=T0)
    (told,) = outbox.told_alerts(settings.state_dir).values()
    assert (told.notification, told.notified_ms) == (stale(), T0)

    resolved = stale("resolved", ends_at_ms=T0 + 60_000)
    put(settings, resolved, T0 + 60_000)
    (told,) = outbox.told_alerts(settings.state_dir).values()
    assert (told.notification, told.notified_ms) == (resolved, T0 + 60_000)
    outbox.deliver(settings, now_ms=T0 + 61_000)
    ledger = json.loads((settings.state_dir / "webhooks.json").read_text())
    record = ledger["alerts"][FINGERPRINT]
    assert (record["status"], record["labels"], record["notified_ms"]) == (
        "resolved",
        LABELS,
        T0 + 60_000,
    )
    assert outbox.told_alerts(settings.state_dir) == {
        FINGERPRINT: outbox.Told(resolved, T0 + 60_000)
    }
