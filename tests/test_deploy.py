"""The Prometheus/Grafana deploy kit: promtool accepts the config, the rules and their unit tests;
the rules fire exactly like the built-in ones on the exporter's own exposition; thresholds and
``for`` durations are the settings' defaults; the dashboard queries only exported metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ingmon.config import load_settings
from ingmon.monitor.alerts import RULE_NAMES, RULES, active_alerts
from ingmon.monitor.exporter import exposition
from ingmon.times import HOUR_MS
from tests.monitor._lake import NOW_MS
from tests.monitor.test_exporter import SCRAPE_MS, populate_state, promtool, scrape

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS / "ingmon-rules.yml"
RULES_TEST = PROMETHEUS / "ingmon-rules.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "ingmon-dashboard.json"
METRIC_NAME = re.compile(r"\b(ingmon_[a-z0-9_]+|up)\b(?!\s*\()")
TARGET = {"job": "ingmon", "instance": "localhost:8080"}


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def load_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule of the rules file by name."""
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


def seconds(duration: str) -> float:
    """A Prometheus duration such as ``2m`` or ``1h30m`` in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(number) * units[unit] for number, unit in parts)


def exported_names(tmp_path: Path) -> set[str]:
    """Every metric name in the exposition of a fully populated state (counters with _total)."""
    body, _ = exposition(scrape(populate_state(tmp_path)), "")
    return {
        sample.name
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL of every panel target and of every templating variable's label_values()."""
    queries = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.+), *\w+\)", variable["definition"])
        assert match, variable["definition"]
        queries.append(match.group(1))
    return queries


# ---- promtool ----------------------------------------------------------------------------------


def test_promtool_checks_the_rules_file() -> None:
    """`promtool check rules` accepts the rules file."""
    result = run_promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    """`promtool test rules` runs the rules' unit tests: each fires at the right time with the
    expected labels and annotations."""
    result = run_promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_checks_the_scrape_config(tmp_path: Path) -> None:
    """`promtool check config` accepts prometheus.yml with its rules file beside it (a copy, as
    a user installs them), and the ingmon job scrapes /metrics/prometheus on port 8080."""
    for path in (CONFIG, RULES_FILE):
        shutil.copy(path, tmp_path / path.name)
    result = run_promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "ingmon"]
    assert job["metrics_path"] == "/metrics/prometheus"
    assert job["static_configs"] == [{"targets": ["localhost:8080"]}]
    assert config["rule_files"] == ["ingmon-rules.yml"]
    # The bearer-token variant is there, commented out.
    assert "#   credentials_file:" in CONFIG.read_text(encoding="utf-8")


# ---- equivalence with the built-in rules ------------------------------------------------------


def test_thresholds_and_for_durations_are_the_settings_defaults() -> None:
    """Every built-in rule is in the file with its severity, the ``for`` of its setting, and the
    default thresholds; freshness compares against the exporter's per-series error age."""
    settings = load_settings(env_file=None)
    rules = load_rules()
    assert set(RULE_NAMES) <= set(rules)
    thresholds = {
        "IngmonFeedStale": [],
        "IngmonIngestLatencyHigh": [settings.latency_error_seconds],
        "IngmonCadenceDeviation": [settings.cadence_error_ratio] * 2,
        "IngmonGapDetected": [0.0],
        "IngmonNoSignals": [settings.alert_no_signals_seconds],
        "IngmonDrawdownBreach": [settings.alert_max_drawdown_ratio],
        "IngmonHealthSnapshotStale": [10 * settings.worker_interval_seconds],
    }
    for name, expected in thresholds.items():
        expr = rules[name]["expr"]
        assert sorted(float(n) for n in re.findall(r">\s*([0-9.]+)", expr)) == sorted(expected)
    for name in RULE_NAMES:
        rule = rules[name]
        assert seconds(rule.get("for", "0s")) == RULES[name].for_seconds(settings), name
        assert rule["labels"] == {"severity": RULES[name].severity}, name
    assert (
        'ingmon_dataset_freshness_threshold_seconds{status="error"}'
        in (rules["IngmonFeedStale"]["expr"])
    )


def _series(name: str, labels: dict[str, str]) -> str:
    pairs = ",".join(
        f'{key}="{value_text.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value_text in sorted({**labels, **TARGET}.items())
    )
    return f"{name}{{{pairs}}}"


def test_rules_fire_exactly_like_the_builtin_rules(tmp_path: Path) -> None:
    """On the exporter's exposition of a state the built-in rules judged (``for`` set to 0 on
    both sides), Prometheus' rules fire for exactly the alerts the built-in rules fire, with the
    same labels: thresholds, parameters folded into dataset × symbol, and a symbol silent since
    it was first watched."""
    overrides = {rule.for_setting: 0.0 for rule in RULES.values()}
    # Watched since 7 h before the scrape: SOLUSDT, which never had a signal, is silent > 6 h.
    settings = populate_state(tmp_path, evaluations=(NOW_MS - 7 * HOUR_MS, SCRAPE_MS), **overrides)
    builtin = sorted(
        sorted(alert.labels.items())
        for alert in active_alerts(settings.state_dir)
        if alert.state == "firing"
    )
    # Hand-worked from the hand-made snapshot at the scrape (see hand_snapshot()):
    stale_oi = {"dataset": "open_interest", "symbol": "ETHUSDT"}
    expected = [
        {"alertname": "IngmonFeedStale", "severity": "critical", **stale_oi},  # 1150 s > 900
        {"alertname": "IngmonIngestLatencyHigh", "severity": "warning", **stale_oi},  # 400 > 300
        {"alertname": "IngmonCadenceDeviation", "severity": "warning", **stale_oi},  # 5 > 4
        {"alertname": "IngmonGapDetected", "severity": "warning", **stale_oi},  # 2 gaps
        {"alertname": "IngmonNoSignals", "severity": "warning", "symbol": "ETHUSDT"},  # 8 h
        {"alertname": "IngmonNoSignals", "severity": "warning", "symbol": "SOLUSDT"},  # never
        {"alertname": "IngmonDrawdownBreach", "severity": "warning", "symbol": "BTCUSDT"},
    ]
    assert builtin == sorted(sorted(labels.items()) for labels in expected)

    # The scrape, as input series constant over 10 minutes; timestamps are moved so that
    # promtool's time() at the evaluation (600 s) is the scrape's clock.
    eval_seconds = 600
    shift = eval_seconds - SCRAPE_MS / 1000
    body, _ = exposition(scrape(settings), "")
    input_series = []
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            number = sample.value + (shift if sample.name.endswith("_timestamp_seconds") else 0)
            input_series.append(
                {"series": _series(sample.name, sample.labels), "values": f"{number!r} " * 11}
            )
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    (group,) = [group for group in document["groups"] if group["name"] == "ingmon"]
    for rule in group["rules"]:
        rule.pop("for", None)
        rule.pop("annotations", None)  # compared on labels; annotations are the unit tests'
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [group]}), encoding="utf-8")
    firing: dict[str, list[dict[str, Any]]] = {name: [] for name in RULE_NAMES}
    for labels in builtin:
        found = dict(labels)
        name = found.pop("alertname")
        firing[name].append({"exp_labels": {**found, **TARGET}})
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "alert_rule_test": [
                    {"eval_time": f"{eval_seconds}s", "alertname": name, "exp_alerts": alerts}
                    for name, alerts in firing.items()
                ],
            }
        ],
    }
    (tmp_path / "equivalence.test.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    result = run_promtool("test", "rules", "equivalence.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- metric names ------------------------------------------------------------------------------


def test_rules_and_dashboard_use_only_exported_metrics(tmp_path: Path) -> None:
    """Every metric named in the rules file and in the dashboard is one the exporter emits (or
    Prometheus' own ``up``), and the dashboard shows each area the operator needs."""
    emitted = exported_names(tmp_path) | {"up"}
    rules = load_rules()
    used_in_rules = {name for rule in rules.values() for name in METRIC_NAME.findall(rule["expr"])}
    assert used_in_rules <= emitted, used_in_rules - emitted
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used_in_dashboard = {
        name for query in dashboard_queries(dashboard) for name in METRIC_NAME.findall(query)
    }
    assert used_in_dashboard <= emitted, used_in_dashboard - emitted
    assert {
        "ingmon_dataset_freshness_seconds",
        "ingmon_ingest_latency_p95_seconds",
        "ingmon_ingest_cadence_deviation_ratio",
        "ingmon_dataset_gaps",
        "ingmon_signals",
        "ingmon_backtest_hit_ratio",
        "ingmon_backtest_max_drawdown_ratio",
        "ingmon_alerts_firing",
        "ingmon_webhook_deliveries_total",
    } <= used_in_dashboard


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    """The dashboard JSON has the import shape: a ${DS_PROMETHEUS} datasource input used by
    every panel and query, unique panel ids, panels inside the 24-column grid, a uid."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["__inputs"] == [
        {
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "The Prometheus that scrapes ingmon",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == datasource, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == datasource
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == datasource


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every dashboard query (Grafana's variables substituted) as the
    expression of a recording rule."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    substitutions = {"$__rate_interval": "5m", "$job": "ingmon", "$dataset": ".*", "$symbol": ".*"}
    rules = []
    for number, query in enumerate(dashboard_queries(dashboard)):
        expr = query
        for variable, replacement in substitutions.items():
            expr = expr.replace(variable, replacement)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


@pytest.mark.parametrize("path", [CONFIG, RULES_FILE, RULES_TEST])
def test_prometheus_files_are_yaml(path: Path) -> None:
    """Each Prometheus file parses as YAML (promtool reports the first error only)."""
    assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict)
