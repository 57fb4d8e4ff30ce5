"""Fault injection: each kind fires exactly when scheduled (sequences and seeded probabilities)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import httpx
import orjson
import pytest

from ingmon.errors import ConfigError
from ingmon.exchange import (
    ExchangeServer,
    FaultEvent,
    FaultRule,
    FaultSchedule,
    FrozenClock,
    Limits,
    Market,
    archive_path,
    parse_fault_spec,
)

from ._support import DAY_MS, MINUTE_MS, NOW_MS

HOUR_MS = 60 * MINUTE_MS
T0_MS = (NOW_MS - 2 * DAY_MS) // HOUR_MS * HOUR_MS
KLINES = "/fapi/v1/klines"
KLINE_PARAMS = {"symbol": "BTCUSDT", "interval": "1m", "startTime": T0_MS, "limit": 5}


def faulty_server(market: Market, *rules: FaultRule, **options: object) -> ExchangeServer:
    """A server frozen at NOW_MS, limits off, with these fault rules."""
    schedule = FaultSchedule(rules=rules, **options)  # type: ignore[arg-type]
    return ExchangeServer(
        market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False), faults=schedule
    )


def test_sequence_of_status_faults(market: Market) -> None:
    """Successive klines requests take successive entries; afterwards klines behave normally."""
    sequence = ["ok", "503", "ok", "429", "500", "502", "408", "418", "403"]
    server = faulty_server(market, FaultRule("klines", sequence=sequence))
    with server, httpx.Client(base_url=server.base_url) as http:
        responses = [http.get(KLINES, params=KLINE_PARAMS) for _ in range(11)]
        ping = http.get("/fapi/v1/ping")
    assert [response.status_code for response in responses] == [
        200,
        503,
        200,
        429,
        500,
        502,
        408,
        418,
        403,
        200,
        200,
    ]
    assert ping.status_code == 200
    assert server.stats.faults == [
        FaultEvent("klines", kind, index) for index, kind in enumerate(sequence) if kind != "ok"
    ]
    assert responses[1].json() == {"code": -1001, "msg": "Service Unavailable."}
    assert responses[3].headers["Retry-After"] == "1"
    assert responses[3].json()["code"] == -1003
    assert responses[4].json() == {
        "code": -1001,
        "msg": "Internal error; unable to process your request. Please try again.",
    }
    assert responses[5].headers["content-type"] == "text/html"
    assert responses[6].json()["code"] == -1007
    assert responses[7].headers["Retry-After"] == "1"
    assert "banned until" in responses[7].json()["msg"]
    assert responses[8].headers["content-type"] == "text/html"
    assert responses[0].json() == responses[2].json() == responses[9].json()
    assert server.stats.requests_for("klines", 200) == 4


def test_cycling_sequence_repeats(market: Market) -> None:
    """A sequence ending in "..." repeats forever."""
    server = faulty_server(market, parse_fault_spec("ping=ok,503,..."))
    with server, httpx.Client(base_url=server.base_url) as http:
        statuses = [http.get("/fapi/v1/ping").status_code for _ in range(6)]
    assert statuses == [200, 503, 200, 503, 200, 503]
    assert [event.request_index for event in server.stats.faults] == [1, 3, 5]


def test_probability_faults_are_seeded(market: Market) -> None:
    """kind@p draws from a seeded RNG: the same seed repeats the pattern, another seed differs."""

    def pattern(seed: int) -> tuple[list[int], list[FaultEvent]]:
        server = faulty_server(market, FaultRule("time", kind="500", probability=0.3), seed=seed)
        with server, httpx.Client(base_url=server.base_url) as http:
            statuses = [http.get("/fapi/v1/time").status_code for _ in range(40)]
        return statuses, server.stats.faults

    statuses, events = pattern(5)
    assert set(statuses) == {200, 500}
    assert 3 <= statuses.count(500) <= 25
    assert events == [
        FaultEvent("time", "500", index) for index, status in enumerate(statuses) if status == 500
    ]
    assert pattern(5) == (statuses, events)
    assert pattern(6)[0] != statuses


@pytest.mark.parametrize(("probability", "expected"), [(0.0, 200), (1.0, 502)])
def test_probability_extremes(market: Market, probability: float, expected: int) -> None:
    """Probability 0 never fires and 1 always does."""
    server = faulty_server(market, FaultRule("exchangeInfo", kind="502", probability=probability))
    with server, httpx.Client(base_url=server.base_url) as http:
        statuses = {http.get("/fapi/v1/exchangeInfo").status_code for _ in range(5)}
    assert statuses == {expected}


def test_timeout_fault_outlasts_the_client(market: Market) -> None:
    """A "timeout" answer is held back longer than the client waits; the next request is fine."""
    server = faulty_server(
        market, FaultRule("time", sequence=["timeout"]), timeout_delay_seconds=0.6
    )
    with server:
        with (
            httpx.Client(base_url=server.base_url, timeout=0.2) as http,
            pytest.raises(httpx.ReadTimeout),
        ):
            http.get("/fapi/v1/time")
        with httpx.Client(base_url=server.base_url, timeout=5) as http:
            assert http.get("/fapi/v1/time").json() == {"serverTime": NOW_MS}
    assert server.stats.faults == [FaultEvent("time", "timeout", 0)]


def test_timeout_fault_answers_late_but_correctly(market: Market) -> None:
    """A patient client gets the normal body after the delay."""
    server = faulty_server(
        market, FaultRule("ping", sequence=["timeout"]), timeout_delay_seconds=0.3
    )
    with server, httpx.Client(base_url=server.base_url, timeout=5) as http:
        response = http.get("/fapi/v1/ping")
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.3
    assert response.content == b"{}"


def test_malformed_and_truncated_bodies(market: Market) -> None:
    """malformed bodies never parse; truncated bodies are a cut prefix of the real one."""
    server = faulty_server(market, FaultRule("klines", sequence=["malformed", "truncated", "ok"]))
    with server, httpx.Client(base_url=server.base_url) as http:
        malformed, truncated, good = (http.get(KLINES, params=KLINE_PARAMS) for _ in range(3))
    assert (malformed.status_code, truncated.status_code, good.status_code) == (200, 200, 200)
    orjson.loads(good.content)
    for broken in (malformed, truncated):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(broken.content)
    assert good.content.startswith(truncated.content)
    assert 0 < len(truncated.content) < len(good.content)
    assert malformed.content != good.content


def test_duplicates_repeat_the_rows_before_the_page(market: Market) -> None:
    """duplicates prepend the row(s) just before the requested start, on every row route."""
    rules = [
        FaultRule(route, sequence=["duplicates", "ok"])
        for route in ("klines", "aggTrades", "fundingRate", "openInterestHist")
    ]
    server = faulty_server(market, *rules)
    first_id = market.first_agg_id_at("BTCUSDT", T0_MS)
    requests = [
        (KLINES, KLINE_PARAMS, lambda row: row[0]),
        (
            "/fapi/v1/aggTrades",
            {"symbol": "BTCUSDT", "fromId": first_id, "limit": 5},
            lambda row: row["a"],
        ),
        (
            "/fapi/v1/fundingRate",
            {"symbol": "BTCUSDT", "startTime": T0_MS, "limit": 3},
            lambda row: row["fundingTime"],
        ),
        (
            "/futures/data/openInterestHist",
            {
                "symbol": "BTCUSDT",
                "period": "1h",
                "startTime": T0_MS,
                "endTime": T0_MS + 3 * HOUR_MS,
            },
            lambda row: row["timestamp"],
        ),
    ]
    with server, httpx.Client(base_url=server.base_url) as http:
        for path, params, key in requests:
            faulted = [key(row) for row in http.get(path, params=params).json()]
            clean = [key(row) for row in http.get(path, params=params).json()]
            assert faulted[1:] == clean, path
            assert faulted[0] < clean[0], path
    assert [event.kind for event in server.stats.faults] == ["duplicates"] * 4
    assert faulted[0] == T0_MS - HOUR_MS


def test_duplicate_kline_is_the_previous_candle(market: Market) -> None:
    """The repeated klines row is exactly the candle before startTime (a previous page's tail)."""
    server = faulty_server(market, FaultRule("klines", sequence=["duplicates"]))
    with server, httpx.Client(base_url=server.base_url) as http:
        faulted = http.get(KLINES, params=KLINE_PARAMS).json()
        previous = http.get(
            KLINES, params={**KLINE_PARAMS, "startTime": T0_MS - MINUTE_MS, "limit": 1}
        ).json()
    assert faulted[0] == previous[0]
    assert len(faulted) == 6


def test_outside_rows_go_past_the_window(market: Market) -> None:
    """outside appends rows after endTime (klines, aggTrades, fundingRate, openInterestHist)."""
    end_ms = T0_MS + 4 * MINUTE_MS
    rules = [
        FaultRule(route, sequence=["outside", "ok"])
        for route in ("klines", "aggTrades", "fundingRate", "openInterestHist")
    ]
    server = faulty_server(market, *rules)
    requests = [
        (KLINES, {**KLINE_PARAMS, "endTime": end_ms}, lambda row: row[0], end_ms),
        (
            "/fapi/v1/aggTrades",
            {"symbol": "BTCUSDT", "startTime": T0_MS, "endTime": end_ms},
            lambda row: row["T"],
            end_ms,
        ),
        (
            "/fapi/v1/fundingRate",
            {"symbol": "BTCUSDT", "startTime": T0_MS - DAY_MS, "endTime": T0_MS},
            lambda row: row["fundingTime"],
            T0_MS,
        ),
        (
            "/futures/data/openInterestHist",
            {"symbol": "BTCUSDT", "period": "5m", "startTime": T0_MS, "endTime": end_ms},
            lambda row: row["timestamp"],
            end_ms,
        ),
    ]
    with server, httpx.Client(base_url=server.base_url) as http:
        for path, params, key, window_end_ms in requests:
            faulted = [key(row) for row in http.get(path, params=params).json()]
            clean = [key(row) for row in http.get(path, params=params).json()]
            assert faulted[: len(clean)] == clean, path
            extra = faulted[len(clean) :]
            assert len(extra) == 2, path
            assert all(value > window_end_ms for value in extra), path
            assert max(clean) <= window_end_ms
    assert [event.kind for event in server.stats.faults] == ["outside"] * 4


def test_checksum_fault_on_checksum_and_zip(market: Market) -> None:
    """checksum makes a CHECKSUM name a wrong digest, or a zip differ from its CHECKSUM."""
    server = faulty_server(
        market, FaultRule("archive", sequence=["ok", "ok", "checksum", "checksum"])
    )
    path = archive_path(
        "klines", period="daily", symbol="BTCUSDT", interval="1m", date="2024-03-01"
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        good_zip = http.get(path).content
        good_sum = http.get(path + ".CHECKSUM").text
        bad_sum = http.get(path + ".CHECKSUM").text
        reissued_zip = http.get(path).content
        again = http.get(path).content
    assert good_sum.split()[0] == hashlib.sha256(good_zip).hexdigest()
    assert bad_sum.split()[0] != hashlib.sha256(good_zip).hexdigest()
    assert bad_sum.endswith("  BTCUSDT-1m-2024-03-01.zip\n")
    assert hashlib.sha256(reissued_zip).hexdigest() != good_sum.split()[0]
    with (
        zipfile.ZipFile(io.BytesIO(good_zip)) as first,
        zipfile.ZipFile(io.BytesIO(reissued_zip)) as second,
    ):
        assert first.read(first.namelist()[0]) == second.read(second.namelist()[0])
    assert again == good_zip
    assert server.stats.faults == [
        FaultEvent("archive", "checksum", 2),
        FaultEvent("archive", "checksum", 3),
    ]


def test_match_glob_narrows_a_rule(market: Market) -> None:
    """A rule with a glob only sees matching requests: one file's CHECKSUM is wrong, others not."""
    rule = parse_fault_spec("archive:*BTCUSDT-1h-2024-03-01.zip.CHECKSUM=checksum@1")
    server = faulty_server(market, rule)
    wrong = archive_path(
        "klines", period="daily", symbol="BTCUSDT", interval="1h", date="2024-03-01"
    )
    right = archive_path(
        "klines", period="daily", symbol="BTCUSDT", interval="1h", date="2024-03-02"
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        for path, should_match in ((wrong, False), (right, True)):
            digest = http.get(path + ".CHECKSUM").text.split()[0]
            assert (digest == hashlib.sha256(http.get(path).content).hexdigest()) is should_match
    assert server.stats.faults == [FaultEvent("archive", "checksum", 0)]


def test_wildcard_route_and_archive_status(market: Market) -> None:
    """Route * reaches every route, the archive included (HTML bodies there)."""
    server = faulty_server(market, FaultRule("*", kind="503", probability=1.0))
    path = archive_path(
        "klines", period="daily", symbol="BTCUSDT", interval="1d", date="2024-03-01"
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        ping = http.get("/fapi/v1/ping")
        archive = http.get(path)
    assert (ping.status_code, archive.status_code) == (503, 503)
    assert archive.headers["content-type"] == "text/html"
    assert [event.route for event in server.stats.faults] == ["ping", "archive"]


def test_archive_body_faults(market: Market) -> None:
    """truncated and malformed archive bodies are not readable zips."""
    server = faulty_server(market, FaultRule("archive", sequence=["truncated", "malformed", "ok"]))
    path = archive_path(
        "klines", period="daily", symbol="BTCUSDT", interval="1d", date="2024-03-01"
    )
    with server, httpx.Client(base_url=server.base_url) as http:
        truncated, malformed, good = (http.get(path).content for _ in range(3))
    assert good.startswith(truncated)
    assert len(truncated) < len(good)
    for broken in (truncated, malformed):
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(io.BytesIO(broken))


def test_no_faults_without_rules(market: Market) -> None:
    """A default schedule never injects anything."""
    server = ExchangeServer(market, clock=FrozenClock(NOW_MS), limits=Limits(enabled=False))
    with server, httpx.Client(base_url=server.base_url) as http:
        for _ in range(5):
            assert http.get(KLINES, params=KLINE_PARAMS).status_code == 200
    assert server.stats.faults == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("klines=503@0.1", FaultRule("klines", kind="503", probability=0.1)),
        ("aggTrades=ok,timeout,ok", FaultRule("aggTrades", sequence=("ok", "timeout", "ok"))),
        ("klines=ok,ok,503,...", FaultRule("klines", sequence=("ok", "ok", "503"), cycle=True)),
        (
            "archive:*.CHECKSUM=checksum@1",
            FaultRule("archive", kind="checksum", probability=1.0, match="*.CHECKSUM"),
        ),
        ("*=timeout@0.01", FaultRule("*", kind="timeout", probability=0.01)),
        ("fundingRate=duplicates", FaultRule("fundingRate", sequence=("duplicates",))),
    ],
)
def test_fault_spec_syntax(spec: str, expected: FaultRule) -> None:
    """The CLI syntax ROUTE[:GLOB]=KIND@P | KIND,KIND[,...] parses into FaultRules."""
    assert parse_fault_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "klines",
        "klines=",
        "=503@0.1",
        "klines=503@x",
        "klines=503@1.5",
        "nowhere=503@0.1",
        "ping=duplicates@1",
        "*=outside@0.1",
        "klines=checksum,ok",
        "klines=ok,,503",
        "klines=teapot",
    ],
)
def test_bad_fault_specs(spec: str) -> None:
    """Malformed fault specs raise ConfigError with a message (the CLI turns it into exit 2)."""
    with pytest.raises(ConfigError):
        parse_fault_spec(spec)


def test_fault_schedule_from_json(tmp_path: Path) -> None:
    """A JSON fault file holds options and rules as objects or spec strings."""
    document = {
        "seed": 3,
        "timeout_delay_seconds": 2.5,
        "rules": [
            {"route": "klines", "kind": "503", "probability": 0.2},
            {"route": "archive", "sequence": ["ok", "checksum"], "match": "*.CHECKSUM"},
            "aggTrades=ok,429",
        ],
    }
    path = tmp_path / "faults.json"
    path.write_text(json.dumps(document))
    schedule = FaultSchedule.from_json(path)
    assert (schedule.seed, schedule.timeout_delay_seconds) == (3, 2.5)
    assert schedule.rules == (
        FaultRule("klines", kind="503", probability=0.2),
        FaultRule("archive", sequence=("ok", "checksum"), match="*.CHECKSUM"),
        FaultRule("aggTrades", sequence=("ok", "429")),
    )
    path.write_text('{"rules": [{"route": "klines", "kind": "503", "chance": 1}]}')
    with pytest.raises(ConfigError):
        FaultSchedule.from_json(path)
    with pytest.raises(ConfigError):
        FaultSchedule.from_json(tmp_path / "missing.json")
