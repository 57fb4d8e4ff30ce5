"""The simulated market's stylized facts (issue 8 table) and the instrument that measures them.

The slow tests measure 90 days × BTCUSDT/ETHUSDT for two seeds and assert each table row's
real-market band (a band is met when the estimate's 99 % interval overlaps it; episode rates
pool both symbols). The fast tests prove the instrument: each core statistic of
``ingmon.exchange.facts`` equals an independent brute-force computation on a small slice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest

from ingmon.exchange import Market
from ingmon.exchange._facts_episodes import imbalance_separability_facts
from ingmon.exchange._facts_microstructure import funding_precursor_facts
from ingmon.exchange._facts_returns import daily_kurtosis_fact
from ingmon.exchange._facts_stats import clustered_mean_error
from ingmon.exchange.facts import (
    EPISODE_KINDS,
    POOLED,
    SCHEMA,
    Fact,
    FactsReport,
    autocorrelation,
    excess_kurtosis,
    hill_tail_index,
    ks_test,
    measure_facts,
    roc_auc,
    spearman,
    volume_profile,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
SEEDS = (7, 11)
DAYS = 90
END_MS = 1_717_200_000_000  # 2024-06-01T00:00:00Z, the CLI's default --now
DAY_MS = 86_400_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
SMALL_DAYS = 10


def _report(seed: int, days: int) -> FactsReport:
    market = Market.demo(symbols=list(SYMBOLS), days=days, seed=seed, now_ms=END_MS)
    return measure_facts(market, symbols=SYMBOLS, days=days, end_ms=END_MS)


@pytest.fixture(scope="module")
def reports() -> dict[int, FactsReport]:
    """The 90-day reports of both seeds, measured once per module (several seconds each)."""
    return {seed: _report(seed, DAYS) for seed in SEEDS}


@pytest.fixture(scope="module")
def small_market() -> Market:
    """A 10-day market for brute-force cross-checks of the instrument."""
    return Market.demo(symbols=list(SYMBOLS), days=SMALL_DAYS, seed=7, now_ms=END_MS)


@pytest.fixture(scope="module")
def small_report(small_market: Market) -> FactsReport:
    """The facts of the 10-day market."""
    return measure_facts(small_market, symbols=SYMBOLS, days=SMALL_DAYS, end_ms=END_MS)


def _misses(report: FactsReport, key: str, columns: tuple[str, ...]) -> list[str]:
    fact = report.fact(key)
    missed = []
    for column in columns:
        if fact.ok(column) is not True:
            value = fact.values.get(column)
            error = fact.errors.get(column)
            shown = "none" if value is None else f"{value:.4g}"
            if error:
                shown += f" ±{error:.2g}"
            band = fact.band.describe() if fact.band else "?"
            missed.append(
                f"{key}[{column}] = {shown} (n={fact.samples.get(column)}), band {band}: "
                f"{fact.verdict(column)}"
            )
    return missed


def _assert_bands(report: FactsReport, keys: list[str], columns: tuple[str, ...]) -> None:
    missed = [miss for key in keys for miss in _misses(report, key, columns)]
    assert not missed, f"seed {report.seed}: " + "; ".join(missed)


POOLED_ONLY = (POOLED,)

slow_seeds = pytest.mark.parametrize("seed", SEEDS)


# --- the table rows, 90 days × 2 symbols, two seeds -----------------------------------------


@pytest.mark.slow
@slow_seeds
def test_btc_eth_hourly_returns_correlate_like_real_perpetuals(
    reports: dict[int, FactsReport], seed: int
) -> None:
    """BTC–ETH 1h log-return correlation lies in 0.7–0.9 (a shared market factor)."""
    _assert_bands(reports[seed], ["corr_1h_log_return"], ("ETHUSDT",))


@pytest.mark.slow
@slow_seeds
def test_drift_is_zero_in_expectation_and_episodes_do_not_move_it(
    reports: dict[int, FactsReport], seed: int
) -> None:
    """The 90-day drift and the episodes' summed moves stay within ±3 σ of zero."""
    _assert_bands(reports[seed], ["drift_z", "episode_drift_z"], SYMBOLS)


@pytest.mark.slow
@slow_seeds
@pytest.mark.parametrize("kind", EPISODE_KINDS)
def test_planted_episodes_follow_through_55_to_65_percent(
    reports: dict[int, FactsReport], seed: int, kind: str
) -> None:
    """Measured from the price path and by label, 55–65 % of setups follow through, and the
    outcome label agrees with the path."""
    _assert_bands(
        reports[seed],
        [
            f"follow_through_measured.{kind}",
            f"follow_through_labelled.{kind}",
            f"outcome_agreement.{kind}",
        ],
        POOLED_ONLY,
    )


@pytest.mark.slow
@slow_seeds
def test_absorptions_are_not_found_by_taker_imbalance_alone(
    reports: dict[int, FactsReport], seed: int
) -> None:
    """|5m taker imbalance| is a weak absorption detector: AUC ≤ 0.9, top-bucket precision ≤ 0.6."""
    _assert_bands(
        reports[seed], ["absorption_imbalance_auc", "absorption_imbalance_precision"], SYMBOLS
    )


@pytest.mark.slow
@slow_seeds
def test_textbook_squeeze_rule_is_a_weak_edge(reports: dict[int, FactsReport], seed: int) -> None:
    """The reference §1.2 squeeze rule has precision 0.3–0.6 against planted squeezes."""
    _assert_bands(reports[seed], ["squeeze_rule_precision"], POOLED_ONLY)


@pytest.mark.slow
@slow_seeds
@pytest.mark.parametrize("kind", EPISODE_KINDS)
def test_episode_start_times_follow_activity_not_a_clock(
    reports: dict[int, FactsReport], seed: int, kind: str
) -> None:
    """Start times of each kind are consistent with activity-weighted hours (KS p ≥ 0.001)."""
    _assert_bands(reports[seed], [f"start_hour_ks_p.{kind}"], POOLED_ONLY)


@pytest.mark.slow
@slow_seeds
def test_low_funding_is_no_free_lunch(reports: dict[int, FactsReport], seed: int) -> None:
    """After funding in its lowest 5 % (≥ 20 settlements pooled over symbols, else the row is
    insufficient data and fails) the 8h return averages 0 and rises half the time, each within
    the 99 % interval of its clustered standard error."""
    _assert_bands(reports[seed], ["fake_edge_mean_8h_return", "fake_edge_up_share"], POOLED_ONLY)


@pytest.mark.slow
@slow_seeds
def test_absorptions_happen_at_profile_levels(reports: dict[int, FactsReport], seed: int) -> None:
    """Absorptions sit at least twice as close to POC/VA/HVN/swing levels as random minutes,
    and most of them within a quarter hourly σ of one."""
    _assert_bands(
        reports[seed],
        ["absorption_level_distance_ratio", "absorption_near_level_share"],
        SYMBOLS,
    )


@pytest.mark.slow
@slow_seeds
@pytest.mark.parametrize("kind", EPISODE_KINDS)
def test_enough_episodes_of_each_kind_in_both_directions(
    reports: dict[int, FactsReport], seed: int, kind: str
) -> None:
    """At least 30 episodes per symbol per 90 days, up and down equally often."""
    _assert_bands(reports[seed], [f"count.{kind}"], SYMBOLS)
    _assert_bands(reports[seed], [f"up_share.{kind}"], POOLED_ONLY)


@pytest.mark.slow
@slow_seeds
def test_trade_sizes_follow_a_power_law_with_round_lots(
    reports: dict[int, FactsReport], seed: int
) -> None:
    """Trade notionals: Hill tail exponent 1.3–2, top 1 % of trades hold 30–50 % of notional,
    round lots at least twice as common as chance."""
    _assert_bands(
        reports[seed],
        ["trade_size_tail_alpha", "trade_notional_top1pct_share", "round_lot_excess"],
        SYMBOLS,
    )


@pytest.mark.slow
@slow_seeds
def test_volume_moves_with_absolute_return(reports: dict[int, FactsReport], seed: int) -> None:
    """One-minute Spearman(volume, |return|) lies in 0.5–0.7."""
    _assert_bands(reports[seed], ["spearman_volume_abs_return_1m"], SYMBOLS)


@pytest.mark.slow
@slow_seeds
def test_funding_is_calm_outside_hot_markets(reports: dict[int, FactsReport], seed: int) -> None:
    """|funding| > 0.05 % in at most 5 % of settlements; negatives mostly above −0.02 %."""
    _assert_bands(
        reports[seed],
        ["funding_share_abs_above_5bp", "funding_negatives_above_2bp_share"],
        SYMBOLS,
    )


@pytest.mark.slow
@slow_seeds
def test_open_interest_level_and_squeeze_drop(reports: dict[int, FactsReport], seed: int) -> None:
    """OI is 0.5–0.8 days of volume, and falls 2–5 % inside a squeeze."""
    _assert_bands(reports[seed], ["oi_to_daily_volume"], SYMBOLS)
    _assert_bands(reports[seed], ["squeeze_oi_drop"], POOLED_ONLY)


@pytest.mark.slow
@slow_seeds
def test_volatility_comes_in_slow_regimes(reports: dict[int, FactsReport], seed: int) -> None:
    """Daily excess kurtosis 3–8 and ACF of |1m return| at one day 0.10–0.15 (99 % intervals;
    test_daily_kurtosis_row_fails_normal_days shows the interval rule can still fail)."""
    _assert_bands(reports[seed], ["daily_excess_kurtosis", "acf_abs_1m_return_1d"], SYMBOLS)


@pytest.mark.slow
@slow_seeds
def test_one_minute_facts_that_were_already_right_are_kept(
    reports: dict[int, FactsReport], seed: int
) -> None:
    """1m excess kurtosis ≥ 10, |1m return| tail exponent 2–5, taker-buy share 0.45–0.55."""
    _assert_bands(
        reports[seed],
        ["minute_excess_kurtosis", "minute_return_tail_alpha", "taker_buy_share"],
        SYMBOLS,
    )


@pytest.mark.slow
@slow_seeds
def test_squeeze_paths_are_jagged(reports: dict[int, FactsReport], seed: int) -> None:
    """Squeezes retrace 30–60 % of their move before peaking (median)."""
    _assert_bands(reports[seed], ["squeeze_retrace_depth"], POOLED_ONLY)


# --- the instrument, against brute force on a 10-day slice ----------------------------------


def test_report_is_complete_and_serialisable(small_report: FactsReport) -> None:
    """The report names its schema, covers every issue-8 row and round-trips through JSON."""
    import json

    payload = json.loads(json.dumps(small_report.to_dict(), allow_nan=False))
    assert payload["schema"] == SCHEMA
    keys = {fact["key"] for fact in payload["facts"]}
    for kind in EPISODE_KINDS:
        assert {
            f"follow_through_measured.{kind}",
            f"count.{kind}",
            f"up_share.{kind}",
            f"start_hour_ks_p.{kind}",
        } <= keys
    assert {
        "corr_1h_log_return",
        "drift_z",
        "absorption_imbalance_auc",
        "squeeze_rule_precision",
        "fake_edge_mean_8h_return",
        "fake_edge_up_share",
        "absorption_level_distance_ratio",
        "trade_size_tail_alpha",
        "trade_notional_top1pct_share",
        "spearman_volume_abs_return_1m",
        "funding_share_abs_above_5bp",
        "oi_to_daily_volume",
        "squeeze_oi_drop",
        "daily_excess_kurtosis",
        "acf_abs_1m_return_1d",
        "squeeze_retrace_depth",
    } <= keys
    assert small_report.end_ms - small_report.start_ms == SMALL_DAYS * DAY_MS
    assert "real market" in small_report.table()


def _minute_closes(market: Market, symbol: str, start_ms: int, end_ms: int) -> dict[int, float]:
    """open time → close price of every one-minute candle (served klines, plain Python)."""
    spec = market.spec(symbol)
    candles = market.klines(symbol, "1m", start_ms, end_ms - 1, now_ms=end_ms - 1)
    return {
        int(open_ms): int(close) / 10**spec.price_decimals
        for open_ms, close in zip(candles.open_time_ms, candles.close_ticks, strict=True)
    }


def _resampled_closes(closes: dict[int, float], period_ms: int) -> dict[int, float]:
    """Period open → close of its last one-minute candle (hand resampling)."""
    out: dict[int, float] = {}
    for open_ms in sorted(closes):
        out[open_ms - open_ms % period_ms] = closes[open_ms]
    return out


def test_hourly_correlation_matches_corrcoef_on_resampled_minutes(
    small_market: Market, small_report: FactsReport
) -> None:
    """corr_1h_log_return equals np.corrcoef of log returns of hand-resampled 1m closes."""
    start_ms, end_ms = small_report.start_ms, small_report.end_ms
    hourly = [
        _resampled_closes(_minute_closes(small_market, symbol, start_ms, end_ms), HOUR_MS)
        for symbol in SYMBOLS
    ]
    first: list[float] = []
    second: list[float] = []
    for hour in sorted(hourly[0]):
        previous = hour - HOUR_MS
        if all(hour in closes and previous in closes for closes in hourly):
            first.append(math.log(hourly[0][hour] / hourly[0][previous]))
            second.append(math.log(hourly[1][hour] / hourly[1][previous]))
    expected = float(np.corrcoef(first, second)[0, 1])
    measured = small_report.fact("corr_1h_log_return").values["ETHUSDT"]
    assert measured == pytest.approx(expected, abs=1e-9)


def _plain_kurtosis(values: list[float]) -> float:
    count = len(values)
    mean = sum(values) / count
    m2 = sum((value - mean) ** 2 for value in values) / count
    m4 = sum((value - mean) ** 4 for value in values) / count
    return m4 / m2**2 - 3.0


def test_daily_kurtosis_matches_a_plain_moment_loop_on_resampled_minutes(
    small_market: Market, small_report: FactsReport
) -> None:
    """daily_excess_kurtosis equals m4/m2² − 3 of daily log returns from hand-resampled closes."""
    for symbol in SYMBOLS:
        closes = _minute_closes(small_market, symbol, small_report.start_ms, small_report.end_ms)
        daily = _resampled_closes(closes, DAY_MS)
        days = sorted(daily)
        returns = [math.log(daily[day] / daily[before]) for before, day in itertools.pairwise(days)]
        measured = small_report.fact("daily_excess_kurtosis").values[symbol]
        assert measured == pytest.approx(_plain_kurtosis(returns), rel=1e-9)


def test_excess_kurtosis_matches_plain_loop_on_a_heavy_tailed_sample() -> None:
    """excess_kurtosis agrees with the textbook moment formula on a Student-t(5) sample."""
    sample = np.random.default_rng(3).standard_t(5, size=5000)
    assert excess_kurtosis(sample) == pytest.approx(_plain_kurtosis(sample.tolist()), rel=1e-9)


def _plain_hill(values: list[float], count: int) -> float:
    ordered = sorted((value for value in values if value > 0), reverse=True)
    threshold = ordered[count]
    total = 0.0
    for value in ordered[:count]:
        total += math.log(value / threshold)
    return count / total


def test_hill_estimator_matches_a_plain_loop_and_recovers_a_pareto_tail() -> None:
    """hill_tail_index equals a loop over the k largest values and finds α = 1.5 in Pareto data."""
    rng = np.random.default_rng(5)
    pareto = (rng.pareto(1.5, size=200_000) + 1.0) * 1000.0
    k = 2000
    assert hill_tail_index(pareto, tail_fraction=0.01) == pytest.approx(
        _plain_hill(pareto.tolist(), k), rel=1e-6
    )
    assert hill_tail_index(pareto, tail_fraction=0.01) == pytest.approx(1.5, abs=0.1)


def test_trade_size_facts_match_brute_force_over_served_trades(
    small_market: Market, small_report: FactsReport
) -> None:
    """Tail exponent, top-1 % share and median notional equal a sort-and-loop over agg_trades."""
    symbol = "ETHUSDT"
    spec = small_market.spec(symbol)
    trades = small_market.agg_trades(symbol, small_report.start_ms, small_report.end_ms - 1)
    scale = 10.0 ** -(spec.price_decimals + spec.quantity_decimals)
    notional = sorted((trades.price_ticks * trades.qty_steps * scale).tolist(), reverse=True)
    top = len(notional) // 100
    assert small_report.fact("trade_notional_top1pct_share").values[symbol] == pytest.approx(
        sum(notional[:top]) / sum(notional), rel=1e-9
    )
    middle = len(notional) // 2
    median = (
        notional[middle] if len(notional) % 2 else (notional[middle - 1] + notional[middle]) / 2
    )
    assert small_report.fact("trade_notional_median_usdt").values[symbol] == pytest.approx(median)
    assert small_report.fact("trade_size_tail_alpha").values[symbol] == pytest.approx(
        _plain_hill(notional, int(len(notional) * 0.01)), rel=1e-6
    )


def _plain_ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda index: values[index])
    ranks = [0.0] * len(values)
    position = 0
    while position < len(order):
        end = position
        while end + 1 < len(order) and values[order[end + 1]] == values[order[position]]:
            end += 1
        for index in order[position : end + 1]:
            ranks[index] = (position + end) / 2 + 1
        position = end + 1
    return ranks


def test_spearman_matches_plain_ranks_on_served_minutes(
    small_market: Market, small_report: FactsReport
) -> None:
    """The 1m Spearman(volume, |return|) equals Pearson of plain-Python average ranks."""
    symbol = "BTCUSDT"
    candles = small_market.klines(
        symbol, "1m", small_report.start_ms, small_report.end_ms - 1, now_ms=small_report.end_ms
    )
    volume: list[float] = []
    moves: list[float] = []
    for index in range(1, len(candles)):
        if candles.open_time_ms[index] - candles.open_time_ms[index - 1] != MINUTE_MS:
            continue
        moves.append(abs(math.log(candles.close_ticks[index] / candles.close_ticks[index - 1])))
        volume.append(float(candles.quote_volume_units[index]))
    expected = float(np.corrcoef(_plain_ranks(volume), _plain_ranks(moves))[0, 1])
    measured = small_report.fact("spearman_volume_abs_return_1m").values[symbol]
    # Prices in ticks vs in USDT round differently, so a few equal |returns| stop being ties.
    assert measured == pytest.approx(expected, abs=1e-6)
    assert spearman(np.asarray(volume[:50]), np.asarray(moves[:50])) == pytest.approx(
        float(np.corrcoef(_plain_ranks(volume[:50]), _plain_ranks(moves[:50]))[0, 1])
    )


def test_autocorrelation_matches_a_pair_loop_on_served_minutes(
    small_market: Market, small_report: FactsReport
) -> None:
    """The ACF of |1m return| at one day equals a loop over the minute pairs a day apart."""
    symbol = "ETHUSDT"
    closes = _minute_closes(small_market, symbol, small_report.start_ms, small_report.end_ms)
    absolute: dict[int, float] = {
        open_ms: abs(math.log(close / closes[open_ms - MINUTE_MS]))
        for open_ms, close in closes.items()
        if open_ms - MINUTE_MS in closes
    }
    mean = sum(absolute.values()) / len(absolute)
    variance = sum((value - mean) ** 2 for value in absolute.values()) / len(absolute)
    products = [
        (value - mean) * (absolute[open_ms + DAY_MS] - mean)
        for open_ms, value in absolute.items()
        if open_ms + DAY_MS in absolute
    ]
    expected = sum(products) / len(products) / variance
    measured = small_report.fact("acf_abs_1m_return_1d").values[symbol]
    assert measured == pytest.approx(expected, rel=1e-9)
    assert autocorrelation(np.asarray([1.0, 2.0, 1.0, 2.0, 1.0, 2.0]), 2) == pytest.approx(1.0)


def test_roc_auc_matches_pair_counting_with_ties() -> None:
    """roc_auc equals the share of (positive, negative) pairs ranked right, ties counting ½."""
    rng = np.random.default_rng(9)
    scores = rng.integers(0, 8, size=300).astype(np.float64)
    labels = rng.random(300) < 0.3 + 0.05 * scores
    wins = 0.0
    for positive in scores[labels]:
        for negative in scores[~labels]:
            wins += 1.0 if positive > negative else 0.5 if positive == negative else 0.0
    assert roc_auc(scores, labels) == pytest.approx(wins / (labels.sum() * (~labels).sum()))


def test_imbalance_rows_fail_a_market_where_imbalance_marks_absorptions() -> None:
    """Leaky 5m buckets (every absorption bucket more imbalanced than any other) fail both
    separability rows; a weak edge passes them; under 50 absorption buckets is insufficient."""
    rng = np.random.default_rng(5)
    count = 5000
    positive = np.zeros(count, dtype=bool)
    positive[rng.choice(count, 200, replace=False)] = True
    volume = rng.uniform(1.0, 10.0, count)
    noise = rng.uniform(-0.8, 0.8, count)
    leaky = np.where(positive, 0.95, noise)
    weak = np.clip(noise + 0.3 * positive * np.sign(noise), -1.0, 1.0)
    few = positive & (np.cumsum(positive) <= 10)

    def verdicts(imbalance: np.ndarray, labels: np.ndarray) -> dict[str, str | None]:
        facts = imbalance_separability_facts({"X": (imbalance, volume, labels)})
        return {fact.key: fact.verdict("X") for fact in facts}

    keys = ("absorption_imbalance_auc", "absorption_imbalance_precision")
    assert verdicts(leaky, positive) == dict.fromkeys(keys, "out")
    assert verdicts(weak, positive) == dict.fromkeys(keys, "ok")
    assert verdicts(weak, few) == dict.fromkeys(keys, "insufficient_data")


def test_funding_rows_fail_a_free_lunch_and_need_twenty_precursors() -> None:
    """Two symbols × 270 settlements give 2 × ⌈5 % · 270⌉ = 28 precursors; 8h returns independent
    of funding pass both fake-edge rows, a rise of ≥ 1 % after every precursor fails both, and one
    symbol of 100 settlements (5 precursors) is insufficient data, which fails."""
    rng = np.random.default_rng(11)
    time_ms = np.arange(270, dtype=np.int64) * 8 * HOUR_MS
    funding = {symbol: rng.normal(1e-4, 1e-4, 270) for symbol in SYMBOLS}
    fair = {symbol: rng.normal(0.0, 0.02, 270) for symbol in SYMBOLS}
    lunch = {}
    for symbol in SYMBOLS:
        forward = fair[symbol].copy()
        lowest = np.argsort(funding[symbol])[:14]
        forward[lowest] = np.abs(forward[lowest]) + 0.01
        lunch[symbol] = forward

    def rows(returns: dict[str, np.ndarray], symbols: tuple[str, ...], size: int) -> list[Fact]:
        return funding_precursor_facts(
            {
                symbol: (time_ms[:size], funding[symbol][:size], returns[symbol][:size])
                for symbol in symbols
            }
        )

    for fact in rows(fair, SYMBOLS, 270):
        assert fact.samples[POOLED] == 28
        assert fact.ok(POOLED) is True, (fact.key, fact.values, fact.errors)
    for fact in rows(lunch, SYMBOLS, 270):
        assert fact.verdict(POOLED) == "out", (fact.key, fact.values, fact.errors)
    for fact in rows(fair, SYMBOLS[:1], 100):
        assert fact.samples[POOLED] == 5
        assert fact.verdict(POOLED) == "insufficient_data"
        assert fact.ok(POOLED) is False


def test_clustered_standard_error_matches_the_cr1_formula() -> None:
    """One sample per cluster gives SD (ddof 1) / √n; a perfectly correlated twin of every
    sample in its cluster does not shrink the error; random clusters match a plain loop."""
    rng = np.random.default_rng(2)
    values = rng.normal(size=40)
    singles = np.arange(40)
    expected = float(np.std(values, ddof=1)) / math.sqrt(40)
    assert clustered_mean_error(values, singles) == pytest.approx(expected)
    twins = np.concatenate([values, values])
    assert clustered_mean_error(twins, np.concatenate([singles, singles])) == pytest.approx(
        expected
    )
    clusters = rng.integers(0, 12, size=40)
    mean = sum(values.tolist()) / 40
    sums: dict[int, float] = {}
    for value, cluster in zip(values.tolist(), clusters.tolist(), strict=True):
        sums[cluster] = sums.get(cluster, 0.0) + value - mean
    groups = len(sums)
    loop = math.sqrt(groups / (groups - 1) * sum(total**2 for total in sums.values())) / 40
    assert clustered_mean_error(values, clusters) == pytest.approx(loop)


def test_daily_kurtosis_row_fails_normal_days() -> None:
    """90 normal daily returns (excess kurtosis ≈ 0 ± 0.4) miss 3–8 even with the 99 % interval;
    a Student-t(5) sample measuring 9.2 ± 9.0 is "within sampling error" in the table, not "ok"."""
    for seed in range(3):
        normal = np.random.default_rng(seed).standard_normal(90)
        assert daily_kurtosis_fact({"X": normal}).verdict("X") == "out"
    heavy = np.random.default_rng(1).standard_t(5, 90)
    fact = daily_kurtosis_fact({"X": heavy})
    assert fact.values["X"] == pytest.approx(_plain_kurtosis(heavy.tolist()))
    assert fact.ok("X") is True
    assert fact.verdict("X") == "within_sampling_error"
    report = FactsReport(
        seed=0,
        symbols=("X",),
        start_ms=0,
        end_ms=90 * DAY_MS,
        days=90,
        elapsed_seconds=0.0,
        facts=(fact,),
        episodes=(),
    )
    row = next(line for line in report.table().splitlines() if line.startswith(fact.title))
    assert row.endswith("within sampling error X")


def test_ks_test_statistic_matches_brute_force_and_p_values_behave() -> None:
    """ks_test's D is the sup distance of the empirical CDF; p is large for a fitting sample,
    tiny for a concentrated one, and ≈ 0.05 at the textbook critical value 1.358/√n."""

    def uniform(values: np.ndarray) -> np.ndarray:
        return np.clip(values / 1440.0, 0.0, 1.0)

    rng = np.random.default_rng(4)
    sample = rng.uniform(0, 1440, size=400)
    statistic, p_value = ks_test(sample, uniform)
    ordered = sorted(sample.tolist())
    brute = max(
        max((index + 1) / len(ordered) - value / 1440, value / 1440 - index / len(ordered))
        for index, value in enumerate(ordered)
    )
    assert statistic == pytest.approx(brute)
    assert p_value > 0.01
    assert ks_test(rng.uniform(450, 480, size=60), uniform)[1] < 1e-10
    count = 10_000
    critical = np.linspace(0, 1440, count, endpoint=False) * (1 - 1.358 / math.sqrt(count))
    assert ks_test(critical, uniform)[1] == pytest.approx(0.05, abs=0.005)


def test_volume_profile_on_a_hand_worked_session() -> None:
    """POC at the fullest row, the 70 % value area grown toward fuller neighbours (edges as
    VAH/VAL), HVNs at the other local maxima, session high and low."""
    prices = np.asarray([100.5, 101.5, 102.5, 103.5, 104.5, 105.5, 106.5, 107.5, 108.5, 109.5])
    volume = np.asarray([1.0, 9.0, 2.0, 3.0, 20.0, 10.0, 5.0, 1.0, 8.0, 1.0])
    profile = volume_profile(prices, prices, prices, volume, rows=10)
    assert profile is not None
    # Rows are 0.9 wide from 100.5, one price each. POC row 4 (20): add row 5 (10) → 30, row 6
    # (5 > 3) → 35, row 3 (3 > 1) → 38, row 2 (2 > 1) → 40, row 1 (9) → 49 ≥ 0.7·60 = 42.
    width = 0.9
    assert profile.poc == pytest.approx(100.5 + 4.5 * width)
    assert profile.vah == pytest.approx(100.5 + 7 * width)
    assert profile.val == pytest.approx(100.5 + 1 * width)
    assert profile.hvns == pytest.approx((100.5 + 1.5 * width, 100.5 + 8.5 * width))
    assert (profile.low, profile.high) == (100.5, 109.5)


def test_volume_profile_spreads_a_candle_over_its_range() -> None:
    """A candle's volume is spread evenly over the rows its [low, high] covers."""
    profile = volume_profile(
        np.asarray([100.0, 103.2]),
        np.asarray([110.0, 103.2]),
        np.asarray([105.0, 103.2]),
        np.asarray([10.0, 5.0]),
        rows=10,
    )
    assert profile is not None
    # Ten rows of 1 each get 1 from the wide candle; row 3 also holds the point candle's 5.
    assert profile.poc == pytest.approx(103.5)
    # Value area: 6 at row 3, then ties (1 vs 1) go up: rows 4…8 bring it to 11 ≥ 0.7·15 = 10.5.
    assert (profile.val, profile.vah) == pytest.approx((103.0, 109.0))


def test_funding_shares_match_a_plain_loop(small_market: Market, small_report: FactsReport) -> None:
    """Funding shares and minimum equal a loop over the served settlements."""
    for symbol in SYMBOLS:
        rates = small_market.funding(
            symbol, small_report.start_ms, small_report.end_ms - 1
        ).funding_rate.tolist()
        assert small_report.fact("funding_share_abs_above_5bp").values[symbol] == pytest.approx(
            sum(abs(rate) > 0.0005 for rate in rates) / len(rates)
        )
        assert small_report.fact("funding_share_negative").values[symbol] == pytest.approx(
            sum(rate < 0 for rate in rates) / len(rates)
        )
        assert small_report.fact("funding_min").values[symbol] == min(rates)


def test_episode_counts_match_the_planted_truth(
    small_market: Market, small_report: FactsReport
) -> None:
    """Per-kind counts and measured episodes are exactly the non-maintenance episodes served."""
    for symbol in SYMBOLS:
        served = [
            episode
            for episode in small_market.episodes(
                symbol, small_report.start_ms, small_report.end_ms - 1
            )
            if episode.kind != "maintenance"
            and small_report.start_ms <= episode.start_ms
            and episode.end_ms <= small_report.end_ms
        ]
        measured = [item for item in small_report.episodes if item.symbol == symbol]
        assert [item.start_ms for item in measured] == [episode.start_ms for episode in served]
        total = sum(
            small_report.fact(f"count.{kind}").values[symbol] or 0.0 for kind in EPISODE_KINDS
        )
        decoys = sum(
            small_report.fact(f"decoys.{kind}").values[symbol] or 0.0 for kind in EPISODE_KINDS
        )
        assert total + decoys == len(served)


def _iter_follow_through(report: FactsReport) -> Iterator[tuple[str, float]]:
    for item in report.episodes:
        if item.measured_return_log is not None and item.measured_outcome is not None:
            yield item.measured_outcome, item.measured_return_log


def test_measured_outcome_is_consistent_with_the_measured_return(
    small_report: FactsReport,
) -> None:
    """A measured follow-through ends up in the episode's direction at least as often as not."""
    pairs = list(_iter_follow_through(small_report))
    assert pairs
    follow = [value for outcome, value in pairs if outcome == "follow_through"]
    failed = [value for outcome, value in pairs if outcome == "failed"]
    if follow and failed:
        assert np.mean(follow) > np.mean(failed)


def test_cli_prints_json_with_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`ingmon exchange facts --json` prints one JSON report for the requested market."""
    import json

    from ingmon.cli import main

    status = main(["exchange", "facts", "--symbols", "BTCUSDT,ETHUSDT", "--days", "3", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert status == 0
    assert payload["schema"] == SCHEMA
    assert payload["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert payload["end_ms"] == END_MS
    assert payload["end_ms"] - payload["start_ms"] == 3 * DAY_MS


def test_cli_prints_a_table_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json the command prints the table with a band and status per fact."""
    from ingmon.cli import main

    assert main(["exchange", "facts", "--days", "2", "--seed", "11"]) == 0
    out = capsys.readouterr().out
    assert "seed 11" in out
    assert "real market" in out
    assert "1h log-return correlation with BTCUSDT" in out


@pytest.mark.parametrize(
    "argv",
    [["--days", "1"], ["--days", "x"], ["--symbols", "btc"], ["--now", "yesterday"]],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Bad flags end with one error line on stderr and exit status 2."""
    from ingmon.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["exchange", "facts", *argv])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("ingmon exchange facts: error:")
