"""Settings: INGMON_* variables over .env over defaults, and one clear line for a bad value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ingmon.cli import main
from ingmon.config import Settings, load_settings
from ingmon.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_env_file_values_are_read(tmp_path: Path) -> None:
    """Values in a .env file become settings, typed (int, list, Path, secret)."""
    env_file = tmp_path / ".env"
    env_file.write_text(
        "INGMON_SERVER_PORT=9001\n"
        "INGMON_WEBHOOK_URLS=https://a.example/hook, http://b.example\n"
        "INGMON_DATA_DIR=/srv/ingmon\n"
        "INGMON_BASIC_AUTH=alice:s3cret\n"
    )
    settings = load_settings(env_file=env_file)
    assert settings.server_port == 9001
    assert settings.webhook_urls == ["https://a.example/hook", "http://b.example"]
    assert settings.lake_dir == Path("/srv/ingmon/lake")
    assert settings.basic_auth is not None
    assert settings.basic_auth.get_secret_value() == "alice:s3cret"


def test_environment_overrides_env_file_and_overrides_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An INGMON_* variable beats the same name in .env; keyword overrides beat both."""
    env_file = tmp_path / ".env"
    env_file.write_text("INGMON_SERVER_PORT=9001\nINGMON_SERVER_HOST=0.0.0.0\n")
    monkeypatch.setenv("INGMON_SERVER_PORT", "9002")
    settings = load_settings(env_file=env_file)
    assert (settings.server_port, settings.server_host) == (9002, "0.0.0.0")
    assert load_settings(env_file=env_file, server_port=9003).server_port == 9003


def test_default_env_file_is_the_working_directorys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without arguments, .env of the current directory is read; a missing one is fine."""
    monkeypatch.chdir(tmp_path)
    assert load_settings().server_port == 8080
    (tmp_path / ".env").write_text("INGMON_LOG_FORMAT=json\n")
    assert load_settings().log_format == "json"


def test_empty_value_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """INGMON_X= (empty) leaves the default, so the .env.example template loads as is."""
    monkeypatch.setenv("INGMON_SERVER_PORT", "")
    monkeypatch.setenv("INGMON_WEBHOOK_SECRET", "")
    settings = load_settings(env_file=None)
    assert (settings.server_port, settings.webhook_secret) == (8080, None)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("INGMON_SERVER_PORT", "abc", "expected an integer >= 1 and <= 65535"),
        ("INGMON_SERVER_PORT", "70000", "expected an integer >= 1 and <= 65535"),
        ("INGMON_CADENCE_TOLERANCE_RATIO", "5", "expected a number >= 0 and <= 1"),
        ("INGMON_BINANCE_TIMEOUT_SECONDS", "soon", "expected a number > 0"),
        ("INGMON_BINANCE_MAX_RETRIES", "-1", "expected an integer >= 0"),
        ("INGMON_BINANCE_BASE_URL", "ftp://x", "expected an http(s) URL"),
        ("INGMON_LOG_FORMAT", "xml", "expected one of 'auto', 'json' or 'text'"),
    ],
)
def test_invalid_value_names_setting_and_expected_form(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    """A bad value fails with one line: the variable, the value and what it should be."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting {name}={value!r}: ")
    assert expected in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://ok.example/T0K3N,mailto:x", "URL 2 of 2 is not an http(s) URL with a host"),
        ("http://[::1/T0K3N", "URL 1 of 1 is not a valid URL (Invalid IPv6 URL)"),
        ("http://h:1/T0K3N" + "a" * 70_000, "URL 1 of 1 is longer than 65536 characters"),
        ("http://h/T0K3N a", "URL 1 of 1 contains a space or a control character"),
        ("http://h:99999/T0K3N", "URL 1 of 1 is not a valid URL (Port out of range 0-65535)"),
        ("https:///T0K3N", "URL 1 of 1 is not an http(s) URL with a host"),
    ],
)
def test_a_webhook_url_that_cannot_be_used_is_one_line_without_the_url(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    """A webhook URL urllib (or httpx, for the length and characters) would refuse fails the
    settings with one line naming the entry by its place; no URL is echoed (paths are often
    credentials)."""
    monkeypatch.setenv("INGMON_WEBHOOK_URLS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    assert str(caught.value) == (
        "invalid setting INGMON_WEBHOOK_URLS='***': expected comma-separated http(s) URLs "
        f"with a host; {expected}"
    )
    assert "T0K3N" not in str(caught.value)


def test_a_bad_webhook_url_makes_a_command_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ingmon health`` with an unparsable INGMON_WEBHOOK_URLS entry: one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INGMON_WEBHOOK_URLS", "http://[::1/hook")
    assert main(["health", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "INGMON_WEBHOOK_URLS='***'" in err and "Invalid IPv6 URL" in err


def test_secret_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed secret is named but its value is masked in the error."""
    monkeypatch.setenv("INGMON_BASIC_AUTH", "hunter2")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    assert str(caught.value) == "invalid setting INGMON_BASIC_AUTH='***': expected user:password"


def test_warn_threshold_must_be_below_error(tmp_path: Path) -> None:
    """warn >= error for a freshness pair is refused, naming both settings and values."""
    env_file = tmp_path / ".env"
    env_file.write_text("INGMON_AGG_TRADES_FRESHNESS_WARN_SECONDS=60\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=env_file)
    assert str(caught.value) == (
        "invalid settings: INGMON_AGG_TRADES_FRESHNESS_WARN_SECONDS (60) must be below "
        "INGMON_AGG_TRADES_FRESHNESS_ERROR_SECONDS (60)"
    )
    pair = load_settings(env_file=None).freshness("funding")
    assert (pair.warn_seconds, pair.error_seconds) == (8 * 3600 + 300, 8 * 3600 + 1800)


def test_env_example_documents_every_setting_with_its_default() -> None:
    """.env.example names every setting once, each under a comment, and loads to the defaults."""
    text = (REPO / ".env.example").read_text()
    lines = text.splitlines()
    pattern = re.compile(r"^(?:# )?(INGMON_[A-Z0-9_]+)=")
    documented = []
    for index, line in enumerate(lines):
        match = pattern.match(line)
        if match:
            documented.append(match.group(1))
            above = index - 1
            while pattern.match(lines[above]):  # a pair of settings shares one comment
                above -= 1
            assert lines[above].startswith("# "), f"{match.group(1)} has no comment above"
    assert sorted(documented) == sorted(f"INGMON_{name.upper()}" for name in Settings.model_fields)
    from_example = load_settings(env_file=REPO / ".env.example").model_dump()
    assert from_example == load_settings(env_file=None).model_dump()


def test_ingmon_config_masks_secrets_and_webhook_paths(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ingmon config` shows where webhooks go, never their paths or any secret."""
    monkeypatch.setenv("INGMON_WEBHOOK_URLS", "https://hooks.example:8443/T0/B1/s3cret,http://h")
    monkeypatch.setenv("INGMON_WEBHOOK_SECRET", "hmac-key")
    monkeypatch.setenv("INGMON_METRICS_TOKEN", "tok")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out)
    assert shown["webhook_urls"] == ["https://hooks.example:8443/***", "http://h/***"]
    assert (shown["webhook_secret"], shown["metrics_token"]) == ("***", "***")
    assert "s3cret" not in out and "hmac-key" not in out and 'tok"' not in out
