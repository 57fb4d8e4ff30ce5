"""Alert rules and their pending → firing → resolved state machine, persisted across restarts;
end to end from a real lake through a real loopback receiver, with time injected as now_ms."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ingmon.config import Settings, load_settings
from ingmon.lake import Lake
from ingmon.monitor import alerts, webhooks
from ingmon.monitor.health import (
    Cadence,
    Freshness,
    HealthSnapshot,
    Latency,
    SeriesStatus,
    build_snapshot,
)
from ingmon.monitor.kpis import PerformanceKPI, SignalHealth, SymbolSignals
from ingmon.monitor.outbox import deliver, delivery_counts, outbox_entries, outbox_pending
from ingmon.times import HOUR_MS, MINUTE_MS
from tests.monitor._lake import NOW_MS, live_feed
from tests.monitor._receiver import Receiver, closed_port

T0 = NOW_MS  # 2026-03-01T00:00:00Z
SECRET = "alert-hmac-secret"
LABEL_NAMES = {"alertname", "severity", "dataset", "symbol"}


def make_settings(tmp_path: Path, *urls: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "webhook_urls": list(urls),
        "webhook_secret": SECRET,
        "external_url": "http://ingmon.example:8080",
        "webhook_backoff_base_seconds": 2.0,
        "webhook_backoff_cap_seconds": 60.0,
    }
    values.update(overrides)
    return load_settings(env_file=None, **values)


def series(
    *,
    last_close_ms: int | None = T0,
    dataset: str = "candles",
    param: str | None = "1m",
    symbol: str = "BTCUSDT",
    latency_status: str = "ok",
    p95_seconds: float | None = 3.0,
    gaps: int = 0,
    missing: int = 0,
    last_success_written_ms: int | None = None,
) -> SeriesStatus:
    """A series judged by ``.at()``: freshness from ``last_close_ms`` (warn 90 s, error
    180 s), cadence from ``last_success_written_ms`` (expected 60 s, error above 5×)."""
    freshness = Freshness(last_close_ms, None, 90.0, 180.0, "unknown")
    latency = Latency(10, 0, p95_seconds, 2.0, p95_seconds, 120.0, 300.0, latency_status)  # type: ignore[arg-type]
    cadence = Cadence(
        expected_seconds=60.0,
        batches=10,
        last_interval_seconds=60.0,
        median_interval_seconds=60.0,
        max_interval_seconds=60.0,
        deviation_seconds=0.0,
        deviation_ratio=0.0,
        status="ok",
        last_success_written_ms=last_success_written_ms,
    )
    return SeriesStatus(
        dataset=dataset,
        symbol=symbol,
        param=param,
        rows=100,
        first_event_ms=T0 - HOUR_MS,
        last_event_ms=last_close_ms,
        freshness=freshness,
        latency=latency,
        cadence=cadence,
        gaps=gaps,
        missing=missing,
        exchange_gaps=0,
        duplicates=0,
        corrupt_files=(),
        last_batch_written_ms=None,
        problems=(),
        status="ok",
    )


def snapshot(
    entries: Sequence[SeriesStatus] = (),
    *,
    symbols: Sequence[str] = ("BTCUSDT",),
    last_signal_ms: dict[str, int | None] | None = None,
    performance: Sequence[PerformanceKPI] = (),
) -> HealthSnapshot:
    signals = SignalHealth(
        window_hours=24.0,
        symbols=tuple(
            SymbolSignals(symbol=s, last_signal_ms=(last_signal_ms or {}).get(s), window_count=0)
            for s in symbols
        ),
    )
    return HealthSnapshot(
        generated_at_ms=T0,
        window_hours=24.0,
        symbols=tuple(symbols),
        series=tuple(entries),
        signals=signals,
        performance=tuple(performance),
        now_ms=T0,
    )


def quiet() -> dict[str, int | None]:
    """A recent signal, so IngmonNoSignals stays out of the way."""
    return {"BTCUSDT": T0}


def outbox(settings: Settings) -> list[dict[str, object]]:
    return [e.to_dict() for e in outbox_entries(settings.state_dir)]


def test_stale_feed_is_pending_then_fires_after_its_for_duration(tmp_path: Path) -> None:
    """Error after 180 s of age, for 120 s: nothing at 180.0 s, pending at 180.1 s, still
    pending 1 ms before 120 s later, firing (one notification) exactly then."""
    settings = make_settings(tmp_path, "http://127.0.0.1:9/hook")
    snap = snapshot([series(last_close_ms=T0)], last_signal_ms=quiet())

    assert alerts.evaluate(snap, settings, now_ms=T0 + 180_000).alerts == ()
    pending = alerts.evaluate(snap, settings, now_ms=T0 + 180_100)
    (alert,) = pending.alerts
    assert (alert.state, alert.active_since_ms, alert.fired_at_ms) == (
        "pending",
        T0 + 180_100,
        None,
    )
    assert pending.notifications == ()
    assert alerts.evaluate(snap, settings, now_ms=T0 + 300_099).pending
    assert outbox_pending(settings.state_dir) == 0

    fired = alerts.evaluate(snap, settings, now_ms=T0 + 300_100)
    (alert,) = fired.firing
    assert alert.labels == {
        "alertname": "IngmonFeedStale",
        "severity": "critical",
        "dataset": "candles",
        "symbol": "BTCUSDT",
    }
    canonical = (
        b'{"alertname":"IngmonFeedStale","dataset":"candles",'
        b'"severity":"critical","symbol":"BTCUSDT"}'
    )
    assert alert.fingerprint == hashlib.sha256(canonical).hexdigest()[:16]
    assert alert.value == pytest.approx(300.1)
    assert alert.annotations["summary"] == "candles of BTCUSDT: stale feed"
    assert alert.annotations["description"] == (
        "the newest candles 1m event closed 300 s ago (at 2026-03-01T00:00:00.000Z); "
        "error after 180 s"
    )
    (notification,) = fired.notifications
    assert (notification.status, notification.starts_at_ms) == ("firing", T0 + 300_100)
    assert len(fired.enqueued) == 1
    assert alerts.active_alerts(settings.state_dir) == [alert]


def test_warn_does_not_page(tmp_path: Path) -> None:
    """A feed in warn (older than 90 s, not 180 s) raises no alert at all."""
    settings = make_settings(tmp_path)
    snap = snapshot([series(last_close_ms=T0)], last_signal_ms=quiet())
    assert alerts.evaluate(snap, settings, now_ms=T0 + 150_000).alerts == ()


def test_a_pending_alert_that_clears_disappears_silently(tmp_path: Path) -> None:
    """Pending, then the feed is fresh again before the for-duration: no alert, no message."""
    settings = make_settings(tmp_path, "http://127.0.0.1:9/hook")
    alerts.evaluate(snapshot([series(last_close_ms=T0)]), settings, now_ms=T0 + 200_000)
    fresh = snapshot([series(last_close_ms=T0 + 190_000)], last_signal_ms=quiet())
    result = alerts.evaluate(fresh, settings, now_ms=T0 + 210_000)
    assert result.alerts == ()
    assert result.notifications == ()
    assert outbox_pending(settings.state_dir) == 0
    assert alerts.read_alert_state(settings.state_dir).resolved == ()


def test_a_firing_alert_resolves_with_a_notification(tmp_path: Path) -> None:
    """Firing, then fresh: resolved, notified with the same fingerprint and startsAt and the
    resolution as endsAt; kept in the resolved history; not notified again."""
    settings = make_settings(tmp_path, "http://127.0.0.1:9/hook", alert_stale_for_seconds=0)
    fired = alerts.evaluate(
        snapshot([series()], last_signal_ms=quiet()), settings, now_ms=T0 + 200_000
    )
    fresh = snapshot([series(last_close_ms=T0 + 250_000)], last_signal_ms=quiet())
    result = alerts.evaluate(fresh, settings, now_ms=T0 + 260_000)
    (alert,) = result.resolved
    assert (alert.state, alert.fired_at_ms, alert.resolved_at_ms) == (
        "resolved",
        T0 + 200_000,
        T0 + 260_000,
    )
    (notification,) = result.notifications
    assert notification.fingerprint == fired.alerts[0].fingerprint
    assert (notification.status, notification.starts_at_ms, notification.ends_at_ms) == (
        "resolved",
        T0 + 200_000,
        T0 + 260_000,
    )
    assert alerts.active_alerts(settings.state_dir) == []
    assert [a.fingerprint for a in alerts.read_alert_state(settings.state_dir).resolved] == [
        alert.fingerprint
    ]
    assert alerts.evaluate(fresh, settings, now_ms=T0 + 270_000).notifications == ()
    assert [e["status"] for e in outbox(settings)] == ["firing", "resolved"]


def test_a_still_firing_alert_is_notified_again_after_the_repeat_interval(
    tmp_path: Path, receiver: Receiver
) -> None:
    """With alert_repeat_seconds 3600: a repeat (same startsAt, repeat 1) exactly an hour
    after the first notification, none before; the receiver gets both, same startsAt."""
    settings = make_settings(
        tmp_path, receiver.url(), alert_stale_for_seconds=0, alert_repeat_seconds=3600
    )
    snap = snapshot([series()], last_signal_ms=quiet())
    first = T0 + 200_000
    alerts.evaluate(snap, settings, now_ms=first)
    deliver(settings, now_ms=first)
    assert alerts.evaluate(snap, settings, now_ms=first + HOUR_MS - 1).notifications == ()
    (repeat,) = alerts.evaluate(snap, settings, now_ms=first + HOUR_MS).notifications
    assert (repeat.status, repeat.starts_at_ms, repeat.repeat) == ("firing", first, 1)
    deliver(settings, now_ms=first + HOUR_MS)
    starts = [p["alerts"][0]["startsAt"] for p in receiver.payloads()]
    assert starts == ["2026-03-01T00:03:20.000Z", "2026-03-01T00:03:20.000Z"]


def test_no_reminder_piles_up_behind_an_undelivered_firing(tmp_path: Path) -> None:
    """While the first firing notification still waits in the outbox (receiver down), the
    hourly reminders are decided but not queued for that URL."""
    settings = make_settings(
        tmp_path, "http://127.0.0.1:9/hook", alert_stale_for_seconds=0, alert_repeat_seconds=3600
    )
    snap = snapshot([series()], last_signal_ms=quiet())
    for hour in range(4):
        alerts.evaluate(snap, settings, now_ms=T0 + 200_000 + hour * HOUR_MS)
    assert [(e["status"], e["key"]) for e in outbox(settings)] == [
        ("firing", f"{stale_fingerprint()}/firing/2026-03-01T00:03:20.000Z/0")
    ]


def test_a_restart_neither_resends_nor_forgets(tmp_path: Path) -> None:
    """Pending before a restart fires after it on time; firing before a restart is not
    notified again after it (each 'process' builds its own settings and reads alerts.json)."""
    url = "http://127.0.0.1:9/hook"
    snap = snapshot([series()], last_signal_ms=quiet())
    alerts.evaluate(snap, make_settings(tmp_path, url), now_ms=T0 + 200_000)  # pending

    after_restart = make_settings(tmp_path, url)
    fired = alerts.evaluate(snap, after_restart, now_ms=T0 + 320_000)
    assert [n.status for n in fired.notifications] == ["firing"]
    assert fired.alerts[0].active_since_ms == T0 + 200_000

    again = make_settings(tmp_path, url)
    assert alerts.evaluate(snap, again, now_ms=T0 + 330_000).notifications == ()
    assert [e["status"] for e in outbox(again)] == ["firing"]


def test_a_crash_between_decision_and_outbox_is_recovered_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If enqueueing fails after the transition was decided, the next evaluation enqueues
    the notification exactly once (and a third one adds nothing)."""
    settings = make_settings(tmp_path, "http://127.0.0.1:9/hook", alert_stale_for_seconds=0)
    snap = snapshot([series()], last_signal_ms=quiet())

    def broken(*args: object, **kwargs: object) -> list[str]:
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(alerts, "enqueue", broken)
        with pytest.raises(OSError, match="disk full"):
            alerts.evaluate(snap, settings, now_ms=T0 + 200_000)
    stored = json.loads((settings.state_dir / "alerts.json").read_text())
    assert [n["status"] for n in stored["unqueued"]] == ["firing"]
    assert outbox_pending(settings.state_dir) == 0

    recovered = alerts.evaluate(snap, settings, now_ms=T0 + 210_000)
    assert recovered.notifications == ()
    assert len(recovered.enqueued) == 1
    assert alerts.evaluate(snap, settings, now_ms=T0 + 220_000).enqueued == ()
    (entry,) = outbox(settings)
    assert entry["starts_at_ms"] == T0 + 200_000


def test_latency_cadence_and_gap_rules(tmp_path: Path) -> None:
    """Latency error, cadence error (no successful batch for 6 min, expected 1 min) and two
    gaps each raise their own warning alert, with the compared number as value."""
    settings = make_settings(
        tmp_path,
        alert_latency_for_seconds=0,
        alert_cadence_for_seconds=0,
        alert_gap_for_seconds=0,
    )
    now = T0 + 60_000
    entry = series(
        last_close_ms=now,
        latency_status="error",
        p95_seconds=412.0,
        gaps=2,
        missing=7,
        last_success_written_ms=now - 6 * MINUTE_MS,
    )
    result = alerts.evaluate(snapshot([entry], last_signal_ms=quiet()), settings, now_ms=now)
    by_name = {a.labels["alertname"]: a for a in result.firing}
    assert set(by_name) == {
        "IngmonIngestLatencyHigh",
        "IngmonCadenceDeviation",
        "IngmonGapDetected",
    }
    assert all(a.labels["severity"] == "warning" for a in by_name.values())
    assert by_name["IngmonIngestLatencyHigh"].value == 412.0
    assert by_name["IngmonCadenceDeviation"].value == pytest.approx(360 / 60 - 1)
    assert by_name["IngmonGapDetected"].value == 2
    assert "2 gap(s) missing 7 rows" in by_name["IngmonGapDetected"].annotations["description"]
    assert (
        "p95 ingest latency 412 s" in by_name["IngmonIngestLatencyHigh"].annotations["description"]
    )


def test_one_alert_per_dataset_and_symbol_across_parameters(tmp_path: Path) -> None:
    """Two stale candle intervals of one symbol make one alert naming both, valued by the
    older; the other symbol gets its own."""
    settings = make_settings(tmp_path, alert_stale_for_seconds=0)
    now = T0 + 600_000
    entries = [
        series(param="1m", last_close_ms=T0),
        series(param="5m", last_close_ms=T0 + 60_000),
        series(symbol="ETHUSDT", last_close_ms=T0),
    ]
    snap = snapshot(
        entries, symbols=("BTCUSDT", "ETHUSDT"), last_signal_ms={"BTCUSDT": T0, "ETHUSDT": T0}
    )
    result = alerts.evaluate(snap, settings, now_ms=now)
    assert sorted(a.labels["symbol"] for a in result.firing) == ["BTCUSDT", "ETHUSDT"]
    btc = next(a for a in result.firing if a.labels["symbol"] == "BTCUSDT")
    assert btc.value == 600.0
    assert "candles 1m" in btc.annotations["description"]
    assert "candles 5m" in btc.annotations["description"]


def test_no_signals_rule(tmp_path: Path) -> None:
    """A symbol whose last signal is older than alert_no_signals_seconds fires; one that
    never had a signal fires only that long after it was first watched (persisted)."""
    settings = make_settings(tmp_path, alert_no_signals_seconds=3600)
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    last = {"BTCUSDT": T0 - 2 * HOUR_MS, "ETHUSDT": T0 - 10 * MINUTE_MS, "SOLUSDT": None}
    snap = snapshot(symbols=symbols, last_signal_ms=last)
    first = alerts.evaluate(snap, settings, now_ms=T0)
    assert [(a.labels["symbol"], a.value) for a in first.firing] == [("BTCUSDT", 7200.0)]
    assert first.firing[0].labels == {
        "alertname": "IngmonNoSignals",
        "severity": "warning",
        "symbol": "BTCUSDT",
    }
    watched = alerts.read_alert_state(settings.state_dir).watched_since_ms
    assert watched == {"BTCUSDT": T0, "ETHUSDT": T0, "SOLUSDT": T0}

    later = make_settings(tmp_path, alert_no_signals_seconds=3600)  # a restart in between
    assert {
        a.labels["symbol"] for a in alerts.evaluate(snap, later, now_ms=T0 + HOUR_MS).firing
    } == {
        "BTCUSDT",
        "ETHUSDT",
    }
    result = alerts.evaluate(snap, later, now_ms=T0 + HOUR_MS + 1)
    sol = next(a for a in result.firing if a.labels["symbol"] == "SOLUSDT")
    assert (
        "since ingmon began watching SOLUSDT at 2026-03-01T00:00:00.000Z"
        in sol.annotations["description"]
    )


def test_drawdown_rule_reads_the_whole_run(tmp_path: Path) -> None:
    """The latest run's whole-run max drawdown above 25 % fires; per-setup rows never do."""
    settings = make_settings(tmp_path)

    def kpi(symbol: str, setup: str, drawdown: float | None) -> PerformanceKPI:
        return PerformanceKPI(symbol, setup, f"run-{symbol}", T0, 40, 0.5, 0.001, drawdown)

    performance = [
        kpi("BTCUSDT", "all", 0.31),
        kpi("BTCUSDT", "squeeze_fire", None),
        kpi("ETHUSDT", "all", 0.25),
        kpi("ETHUSDT", "squeeze_fire", 0.9),
    ]
    snap = snapshot(
        symbols=("BTCUSDT", "ETHUSDT"),
        last_signal_ms={"BTCUSDT": T0, "ETHUSDT": T0},
        performance=performance,
    )
    (alert,) = alerts.evaluate(snap, settings, now_ms=T0).firing
    assert alert.labels == {
        "alertname": "IngmonDrawdownBreach",
        "severity": "warning",
        "symbol": "BTCUSDT",
    }
    assert alert.value == 0.31
    assert "run-BTCUSDT" in alert.annotations["description"]  # in an annotation, never a label


def test_labels_are_bounded_and_state_has_no_secret(tmp_path: Path) -> None:
    """Every rule's labels are among alertname/severity/dataset/symbol; alerts.json holds
    neither the HMAC secret nor the webhook URL."""
    url = "http://127.0.0.1:9/hooks/very-secret-path"
    settings = make_settings(
        tmp_path,
        url,
        alert_stale_for_seconds=0,
        alert_latency_for_seconds=0,
        alert_gap_for_seconds=0,
        alert_no_signals_seconds=60,
    )
    entry = series(latency_status="error", gaps=1, missing=1)
    perf = [PerformanceKPI("BTCUSDT", "all", "r1", T0, 5, 0.2, -0.01, 0.5)]
    snap = snapshot([entry], performance=perf, last_signal_ms={"BTCUSDT": T0 - HOUR_MS})
    result = alerts.evaluate(snap, settings, now_ms=T0 + HOUR_MS)
    assert {a.labels["alertname"] for a in result.firing} == set(alerts.RULE_NAMES) - {
        "IngmonCadenceDeviation"
    }
    assert all(set(a.labels) <= LABEL_NAMES for a in result.firing)
    for path in settings.state_dir.rglob("*.json"):
        text = path.read_text()
        assert SECRET not in text
        assert "very-secret-path" not in text


def test_without_webhook_urls_alerts_are_tracked_but_nothing_is_queued(tmp_path: Path) -> None:
    """No INGMON_WEBHOOK_URLS: the state machine still runs; the outbox stays empty."""
    settings = make_settings(tmp_path, alert_stale_for_seconds=0)
    result = alerts.evaluate(
        snapshot([series()], last_signal_ms=quiet()), settings, now_ms=T0 + HOUR_MS
    )
    assert len(result.firing) == 1
    assert result.enqueued == ()
    assert outbox_pending(settings.state_dir) == 0


# ---- a webhook URL that cannot be used, a damaged alerts.json -----------------------------------


def test_urls_httpx_cannot_use_fail_alone_and_never_stop_the_evaluation(
    tmp_path: Path, receiver: Receiver
) -> None:
    """An unclosed IPv6 bracket and a 70,000-character URL (refused by the settings, but
    carried by hand-built ones) listed before a good URL: three evaluations and deliveries a
    minute apart all run, the good URL gets the firing alert once, and each bad entry is one
    recorded failure per pass (3 × 2), kept in the outbox under a redacted URL."""
    bad = ["http://[::1/hook", "http://127.0.0.1:9/" + "a" * 70_000]
    settings = make_settings(tmp_path, receiver.url(), alert_stale_for_seconds=0)
    settings = settings.model_copy(update={"webhook_urls": [*bad, receiver.url()]})
    snap = snapshot([series()], last_signal_ms=quiet())
    for minute in range(3):
        now = T0 + 200_000 + minute * MINUTE_MS
        alerts.evaluate(snap, settings, now_ms=now)
        deliver(settings, now_ms=now)
    assert receiver.alert_counts() == {(stale_fingerprint(), "firing"): 1}
    assert delivery_counts(settings.state_dir) == {"success": 1, "failure": 6}
    left = {e["url"]: (e["attempts"], str(e["last_error"])) for e in outbox(settings)}
    assert set(left) == {webhooks.INVALID_URL, "http://127.0.0.1:9/…"}
    assert all(attempts == 3 for attempts, _ in left.values())
    assert left["http://127.0.0.1:9/…"][1] == "InvalidURL: URL too long"
    assert left[webhooks.INVALID_URL][1].startswith("InvalidURL: ")
    assert alerts.read_alert_state(settings.state_dir).unqueued == ()


def test_a_damaged_alert_state_is_moved_aside_and_a_firing_alert_still_resolves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """alerts.json cut short while an alert fires (its notification waiting in the outbox):
    the next evaluation moves the file to alerts.json.corrupt-<now ms> (logged), rebuilds the
    firing alert from the outbox, and the fresh feed resolves it with the same startsAt."""
    settings = make_settings(tmp_path, "http://127.0.0.1:9/hook", alert_stale_for_seconds=0)
    alerts.evaluate(snapshot([series()], last_signal_ms=quiet()), settings, now_ms=T0 + 200_000)
    path = settings.state_dir / "alerts.json"
    damaged = path.read_text()[:50]
    path.write_text(damaged)

    fresh = snapshot([series(last_close_ms=T0 + 250_000)], last_signal_ms=quiet())
    with caplog.at_level(logging.ERROR, logger="ingmon.monitor.alerts"):
        result = alerts.evaluate(fresh, settings, now_ms=T0 + 260_000)
    (notification,) = result.notifications
    assert (notification.fingerprint, notification.status) == (stale_fingerprint(), "resolved")
    assert (notification.starts_at_ms, notification.ends_at_ms) == (T0 + 200_000, T0 + 260_000)
    assert [e["status"] for e in outbox(settings)] == ["firing", "resolved"]
    kept = settings.state_dir / f"alerts.json.corrupt-{T0 + 260_000}"
    assert kept.read_text() == damaged
    assert kept.name in caplog.text
    state = alerts.read_alert_state(settings.state_dir)  # a sound file again
    assert (state.active, [a.fingerprint for a in state.resolved]) == ((), [stale_fingerprint()])


def test_after_a_damaged_alert_state_a_still_firing_alert_is_not_notified_again(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Firing and delivered; alerts.json overwritten with garbage; the feed still stale: the
    alert is firing again from the delivered notification (same startsAt, last notified
    then), nothing is queued; once the feed recovers the receiver gets the resolved one —
    one firing and one resolved in all, both with the first startsAt."""
    settings = make_settings(tmp_path, receiver.url(), alert_stale_for_seconds=0)
    stale = snapshot([series()], last_signal_ms=quiet())
    first = T0 + 200_000
    alerts.evaluate(stale, settings, now_ms=first)
    assert deliver(settings, now_ms=first).delivered == 1
    (settings.state_dir / "alerts.json").write_text("not json at all")

    again = alerts.evaluate(stale, settings, now_ms=first + MINUTE_MS)
    (alert,) = again.firing
    assert (alert.fingerprint, alert.fired_at_ms, alert.last_notified_ms, alert.repeats) == (
        stale_fingerprint(),
        first,
        first,
        0,
    )
    assert (again.notifications, again.enqueued) == ((), ())
    fresh = snapshot([series(last_close_ms=first + 100_000)], last_signal_ms=quiet())
    resolved = alerts.evaluate(fresh, settings, now_ms=first + 2 * MINUTE_MS)
    assert [n.status for n in resolved.notifications] == ["resolved"]
    deliver(settings, now_ms=first + 2 * MINUTE_MS)
    assert receiver.alert_counts() == {
        (stale_fingerprint(), "firing"): 1,
        (stale_fingerprint(), "resolved"): 1,
    }
    starts = [p["alerts"][0]["startsAt"] for p in receiver.payloads()]
    assert starts == ["2026-03-01T00:03:20.000Z", "2026-03-01T00:03:20.000Z"]


# ---- end to end: a real lake, the health snapshot, a real receiver ------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def feed_lake(tmp_path: Path) -> Lake:
    """A live 1m candle feed of BTCUSDT over the 24 h health window before T0 (last candle
    closed at T0 − 60 s, written 2 s later)."""
    lake = Lake(tmp_path / "lake")
    live_feed(lake, dataset="candles", now_ms=T0, hours=24)
    return lake


def stale_fingerprint() -> str:
    return webhooks.fingerprint(
        {
            "alertname": "IngmonFeedStale",
            "severity": "critical",
            "dataset": "candles",
            "symbol": "BTCUSDT",
        }
    )


def assert_signed(receiver: Receiver) -> None:
    for request in receiver.received:
        expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-ingmon-signature-256"] == f"sha256={expected}"


def test_a_stale_then_fresh_feed_reaches_the_receiver_firing_then_resolved(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Real lake → build_snapshot → evaluate at later instants: the candles age past 180 s and
    stay stale 120 s → one signed firing payload; fresh candles + a new snapshot → one signed
    resolved payload, both in the Alertmanager v4 shape."""
    settings = make_settings(tmp_path, receiver.url())
    lake = feed_lake(tmp_path)
    snap = build_snapshot(lake, settings, symbols=["BTCUSDT"], now_ms=T0)
    fingerprint = stale_fingerprint()

    fired_at = None
    for now in range(T0, T0 + 400_000, 30_000):  # a worker ticking every 30 s, no new data
        evaluation = alerts.evaluate(snap, settings, now_ms=now)
        deliver(settings, now_ms=now)
        if fired_at is None and any(n.fingerprint == fingerprint for n in evaluation.notifications):
            fired_at = now
    # Stale from age > 180 s: last close T0 − 60 s → first pending at T0 + 150 s; firing 120 s on.
    assert fired_at == T0 + 270_000
    assert receiver.alert_counts()[fingerprint, "firing"] == 1

    live_feed(lake, dataset="candles", now_ms=T0 + 420_000, hours=0.2)
    fresh_at = T0 + 420_000
    fresh = build_snapshot(lake, settings, symbols=["BTCUSDT"], now_ms=fresh_at)
    evaluation = alerts.evaluate(fresh, settings, now_ms=fresh_at)
    assert fingerprint in {a.fingerprint for a in evaluation.resolved}
    assert deliver(settings, now_ms=fresh_at).failed == 0

    stale_payloads = [
        p for p in receiver.payloads() if p["alerts"][0]["fingerprint"] == fingerprint
    ]
    assert [p["status"] for p in stale_payloads] == ["firing", "resolved"]
    firing, resolved = stale_payloads
    assert firing["version"] == "4"
    assert firing["receiver"] == "ingmon"
    assert firing["truncatedAlerts"] == 0
    assert firing["externalURL"] == "http://ingmon.example:8080"
    assert firing["groupLabels"] == firing["commonLabels"] == firing["alerts"][0]["labels"]
    assert firing["alerts"][0]["startsAt"] == "2026-03-01T00:04:30.000Z"
    assert firing["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved["alerts"][0]["startsAt"] == "2026-03-01T00:04:30.000Z"
    assert resolved["alerts"][0]["endsAt"] == "2026-03-01T00:07:00.000Z"
    assert_signed(receiver)
    assert all(count == 1 for count in receiver.alert_counts().values())


def test_a_receiver_outage_and_a_restart_deliver_every_alert_exactly_once(
    tmp_path: Path,
) -> None:
    """The receiver is down while the feed goes stale and recovers: deliveries fail and wait
    with growing backoff; after a restart (new settings, same data root) and the receiver's
    return on the same port, each (fingerprint, status) arrives exactly once, in order."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}/alerts"
    settings = make_settings(tmp_path, url)
    lake = feed_lake(tmp_path)
    snap = build_snapshot(lake, settings, symbols=["BTCUSDT"], now_ms=T0)
    fingerprint = stale_fingerprint()

    attempts_seen = []
    for now in range(T0, T0 + 400_000, 30_000):
        alerts.evaluate(snap, settings, now_ms=now)
        deliver(settings, now_ms=now)
        for entry in outbox_entries(settings.state_dir):
            if entry.fingerprint == fingerprint:
                attempts_seen.append((now, entry.attempts, entry.next_attempt_ms - now))
    # Fired at T0 + 270 s and tried at every 30 s tick: the next attempt 2, 4, 8, 16, 32 s on.
    assert attempts_seen == [
        (T0 + 270_000, 1, 2_000),
        (T0 + 300_000, 2, 4_000),
        (T0 + 330_000, 3, 8_000),
        (T0 + 360_000, 4, 16_000),
        (T0 + 390_000, 5, 32_000),
    ]

    live_feed(lake, dataset="candles", now_ms=T0 + 420_000, hours=0.2)
    fresh = build_snapshot(lake, settings, symbols=["BTCUSDT"], now_ms=T0 + 420_000)
    alerts.evaluate(fresh, settings, now_ms=T0 + 420_000)
    # The firing entry's next attempt is T0 + 422 s; the resolved one waits behind it.
    waiting = deliver(settings, now_ms=T0 + 420_000)
    assert (waiting.results, waiting.waiting) == ((), 2)
    statuses = sorted(e.status for e in outbox_entries(settings.state_dir))
    assert statuses == ["firing", "resolved"]

    receiver = Receiver(port=port)
    try:
        restarted = make_settings(tmp_path, url)  # a new worker process
        for now in range(T0 + 450_000, T0 + 600_000, 30_000):
            alerts.evaluate(fresh, restarted, now_ms=now)
            deliver(restarted, now_ms=now)
        assert outbox_pending(restarted.state_dir) == 0
        counts = receiver.alert_counts()
        assert counts[fingerprint, "firing"] == 1
        assert counts[fingerprint, "resolved"] == 1
        assert all(count == 1 for count in counts.values())
        stale_statuses = [
            p["status"] for p in receiver.payloads() if p["alerts"][0]["fingerprint"] == fingerprint
        ]
        assert stale_statuses == ["firing", "resolved"]
        assert_signed(receiver)
        counters = delivery_counts(restarted.state_dir)
        assert counters["success"] == len(receiver.received)
        assert counters["failure"] == 5
    finally:
        receiver.stop()
