"""Typed settings from ``INGMON_*`` environment variables and a ``.env`` file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ingmon.errors import ConfigError
from ingmon.schema import MARKET_SERIES

__all__ = ["Settings", "Threshold", "load_settings"]

ENV_PREFIX = "INGMON_"

# What a user should type, per kind of value, in the one-line error of an invalid setting.
_EXPECTED_FORM: dict[str, str] = {
    "int_parsing": "an integer",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
    "url_parsing": "an http(s) URL",
}
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


class Threshold:
    """A warn/error pair of ages in seconds (freshness) — ``warn`` always below ``error``."""

    __slots__ = ("error_seconds", "warn_seconds")

    def __init__(self, *, warn_seconds: float, error_seconds: float) -> None:
        self.warn_seconds = warn_seconds
        self.error_seconds = error_seconds

    def __repr__(self) -> str:
        return f"Threshold(warn_seconds={self.warn_seconds}, error_seconds={self.error_seconds})"


# httpx refuses a longer URL (httpx._urlparse.MAX_URL_LENGTH).
_MAX_URL_LENGTH = 65536


def _webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook target, or None: what ``webhooks.check_url`` and httpx
    refuse, found with ``urllib.parse`` alone (every command loads the settings; httpx is slow
    to import). A URL httpx still refuses later fails its own deliveries, nothing else."""
    if len(url) > _MAX_URL_LENGTH:
        return f"is longer than {_MAX_URL_LENGTH} characters"
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        return "contains a space or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL with a host"
    return None


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _freshness_fields() -> dict[str, Any]:
    """``<dataset>_freshness_warn_seconds`` / ``…_error_seconds`` for every market dataset, with
    the defaults of its ``MarketSeries`` entry: a new dataset brings its thresholds along."""
    fields: dict[str, Any] = {}
    for name, series in MARKET_SERIES.items():
        for level, default in (
            ("warn", series.freshness_warn_seconds),
            ("error", series.freshness_error_seconds),
        ):
            fields[f"{name}_freshness_{level}_seconds"] = (
                float,
                Field(default, gt=0, description=f"{name}: age of the newest event that {level}s"),
            )
    return fields


if TYPE_CHECKING:
    _FreshnessSettings = BaseSettings
else:
    # The per-dataset freshness pairs as ordinary (flat) settings: INGMON_CANDLES_FRESHNESS_…
    _FreshnessSettings = create_model(
        "_FreshnessSettings", __base__=BaseSettings, **_freshness_fields()
    )


class Settings(_FreshnessSettings):
    """Every ingmon setting; ``.env.example`` documents each one with its default.

    Freshness thresholds (``INGMON_<DATASET>_FRESHNESS_WARN_SECONDS``/``…_ERROR_SECONDS``) come
    from ``ingmon.schema.MARKET_SERIES``; read them through ``freshness(dataset)``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,  # INGMON_X= (empty) means "use the default"
        validate_default=True,
    )

    # Storage
    data_dir: Path = Field(Path("data"), description="Data root: lake/, state/, reports/, binance/")

    # Exchange boundary
    binance_base_url: str = Field("https://fapi.binance.com", description="Binance USD-M REST")
    binance_archive_url: str = Field("https://data.binance.vision", description="Bulk archive")
    binance_timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout")
    binance_weight_limit_per_minute: int = Field(
        2400, gt=0, description="Request-weight budget per minute (Binance USD-M: 2400 per IP)"
    )
    binance_max_retries: int = Field(6, ge=0, description="Retries of 5xx/timeouts per request")

    # Cadence: a step longer than expected × (1 + tolerance) is a gap
    cadence_tolerance_ratio: float = Field(0.1, ge=0, le=1)

    # Monitoring: the health model's window, ingestion latency (p95 of the live batches) and
    # cadence (the last interval between successful batches against the expected one)
    health_window_hours: float = Field(
        24.0, gt=0, description="Window of the health model: gaps, latency, cadence, signals"
    )
    latency_warn_seconds: float = Field(120.0, gt=0, description="p95 ingest latency that warns")
    latency_error_seconds: float = Field(300.0, gt=0, description="p95 latency that errors")
    cadence_warn_ratio: float = Field(
        1.0, gt=0, description="Interval between batches over expected, minus 1, that warns"
    )
    cadence_error_ratio: float = Field(4.0, gt=0, description="… that is an error")

    # Worker
    worker_interval_seconds: float = Field(60.0, gt=0, description="Seconds between ticks")
    worker_symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Symbols the worker keeps fresh (default: the lake's)"
    )
    worker_catch_up_days: int = Field(
        2, ge=1, le=30, description="How far back each tick makes sure the data is complete"
    )

    # Alerts: each rule fires once its condition has held for its ``for`` duration
    alert_stale_for_seconds: float = Field(120.0, ge=0, description="Stale feed: for")
    alert_latency_for_seconds: float = Field(300.0, ge=0, description="Latency breach: for")
    alert_cadence_for_seconds: float = Field(300.0, ge=0, description="Cadence deviation: for")
    alert_gap_for_seconds: float = Field(0.0, ge=0, description="Gap detected: for")
    alert_no_signals_seconds: float = Field(
        6 * 3600.0, gt=0, description="No signal of a symbol for this long fires"
    )
    alert_no_signals_for_seconds: float = Field(0.0, ge=0, description="No signals: for")
    alert_max_drawdown_ratio: float = Field(
        0.25, gt=0, le=1, description="Max drawdown of the latest backtest run that fires"
    )
    alert_drawdown_for_seconds: float = Field(0.0, ge=0, description="Drawdown breach: for")
    alert_repeat_seconds: float = Field(
        4 * 3600.0, gt=0, description="A still-firing alert is notified again after this"
    )
    external_url: str = Field(
        "http://localhost:8080", description="Where the dashboard is reached (alert links)"
    )

    # Webhooks
    webhook_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated webhook targets"
    )
    webhook_secret: SecretStr | None = Field(None, description="HMAC secret for webhook bodies")
    webhook_format: Literal["alertmanager", "slack"] = Field(
        "alertmanager", description="Body: Alertmanager v4 JSON or a Slack-compatible text"
    )
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="Per-delivery timeout")
    webhook_backoff_base_seconds: float = Field(
        2.0, gt=0, description="First retry delay; doubles per failed attempt"
    )
    webhook_backoff_cap_seconds: float = Field(300.0, gt=0, description="Longest retry delay")

    # Serving
    server_host: str = Field("127.0.0.1")
    server_port: int = Field(8080, ge=1, le=65535)
    basic_auth: SecretStr | None = Field(None, description="user:password for dashboard and API")
    cookie_secret: SecretStr | None = Field(None)
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token /metrics/prometheus requires (unset: open)"
    )

    # Logs
    log_format: Literal["auto", "json", "text"] = Field("auto")

    @field_validator("webhook_urls", "worker_symbols", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("worker_symbols")
    @classmethod
    def _upper_symbols(cls, value: list[str]) -> list[str]:
        return [symbol.upper() for symbol in value]

    @field_validator("binance_base_url", "binance_archive_url", "external_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http(s) URL")
        return value.rstrip("/")

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: list[str]) -> list[str]:
        for number, url in enumerate(value, start=1):
            problem = _webhook_url_problem(url)
            if problem is not None:
                # The entry is named by its place, not shown: a webhook URL's path is often
                # a credential (Slack's are).
                raise ValueError(
                    f"expected comma-separated http(s) URLs with a host; "
                    f"URL {number} of {len(value)} {problem}"
                )
        return value

    @field_validator("basic_auth")
    @classmethod
    def _user_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and ":" not in value.get_secret_value():
            raise ValueError("expected user:password")
        return value

    @model_validator(mode="after")
    def _warn_below_error(self) -> Settings:
        for dataset in MARKET_SERIES:
            pair = self.freshness(dataset)
            if pair.warn_seconds >= pair.error_seconds:
                prefix = f"{ENV_PREFIX}{dataset.upper()}_FRESHNESS"
                raise ValueError(
                    f"{prefix}_WARN_SECONDS ({pair.warn_seconds:g}) must be below "
                    f"{prefix}_ERROR_SECONDS ({pair.error_seconds:g})"
                )
        if self.latency_warn_seconds >= self.latency_error_seconds:
            raise ValueError(
                f"{ENV_PREFIX}LATENCY_WARN_SECONDS ({self.latency_warn_seconds:g}) must be below "
                f"{ENV_PREFIX}LATENCY_ERROR_SECONDS ({self.latency_error_seconds:g})"
            )
        if self.cadence_warn_ratio >= self.cadence_error_ratio:
            raise ValueError(
                f"{ENV_PREFIX}CADENCE_WARN_RATIO ({self.cadence_warn_ratio:g}) must be below "
                f"{ENV_PREFIX}CADENCE_ERROR_RATIO ({self.cadence_error_ratio:g})"
            )
        return self

    def freshness(self, dataset: str) -> Threshold:
        """The warn/error freshness pair of one dataset."""
        return Threshold(
            warn_seconds=getattr(self, f"{dataset}_freshness_warn_seconds"),
            error_seconds=getattr(self, f"{dataset}_freshness_error_seconds"),
        )

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def state_dir(self) -> Path:
        """Small JSON state the worker writes and the server reads (health, alerts, outbox)."""
        return self.data_dir / "state"


def _number_form(field_name: str) -> str | None:
    """The expected form of a numeric setting from its bounds: ``an integer >= 1 and <= 65535``."""
    info = Settings.model_fields.get(field_name)
    if info is None or info.annotation not in (int, float):
        return None
    limits = [
        f"{symbol} {getattr(item, name)}"
        for item in info.metadata
        for name, symbol in _BOUNDS
        if getattr(item, name, None) is not None
    ]
    noun = "an integer" if info.annotation is int else "a number"
    return f"{noun} {' and '.join(limits)}" if limits else noun


def _is_secret(field_name: str) -> bool:
    info = Settings.model_fields.get(field_name)
    return info is not None and SecretStr in (info.annotation, *get_args(info.annotation))


def _one_line(error: ValidationError) -> str:
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    message = first["msg"].removeprefix("Value error, ").removeprefix("expected ")
    if not location:
        return f"invalid settings: {message}"
    field_name = location[0]
    kind = first["type"]
    expected = _EXPECTED_FORM.get(kind, message)
    if kind in ("int_parsing", "float_parsing", "int_from_float") or kind.startswith(
        ("greater_than", "less_than")
    ):
        expected = _number_form(field_name) or expected
    elif kind == "literal_error":
        expected = "one of " + str(first.get("ctx", {}).get("expected", message))
    # Webhook URLs are shown no more than secrets: their paths are often credentials.
    hidden = _is_secret(field_name) or field_name == "webhook_urls"
    shown = "'***'" if hidden else repr(first.get("input"))
    return f"invalid setting {ENV_PREFIX}{field_name.upper()}={shown}: expected {expected}"


def load_settings(
    *, env_file: str | os.PathLike[str] | None = ".env", **overrides: Any
) -> Settings:
    """Read the settings: ``overrides`` over ``INGMON_*`` variables over ``env_file`` (a missing
    file is fine) over defaults. An invalid value raises ConfigError with one line naming it."""
    try:
        return Settings(_env_file=None if env_file is None else Path(env_file), **overrides)
    except ValidationError as error:
        raise ConfigError(_one_line(error)) from None
