"""Request budgets: Binance's weight tiers and fixed-window pacing."""

from __future__ import annotations

import threading
import time

import pytest

from ingmon.binance.limits import (
    WAIT_REPORT_SECONDS,
    Aborted,
    Budget,
    klines_weight,
    parse_used_weight,
    route_cost,
)


class FakeTime:
    """A wall clock that only moves when someone sleeps."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("limit", "weight"),
    [(1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10), (1500, 10)],
)
def test_klines_weight_tiers(limit: int, weight: int) -> None:
    """klines weigh 1/2/5/10 by limit tier, as Binance §1.1 tabulates."""
    assert klines_weight(limit) == weight


def test_route_costs() -> None:
    """aggTrades weighs 20; OI and funding cost nothing on the minute counter."""
    assert route_cost("aggTrades") == 20
    assert route_cost("openInterestHist") == 0
    assert route_cost("fundingRate") == 0
    assert route_cost("exchangeInfo") == 1
    assert route_cost("klines", limit=499) == 2


def test_parse_used_weight_header_any_case() -> None:
    """The used-weight header is found case-insensitively with its window length."""
    assert parse_used_weight({"x-mbx-used-weight-1m": "37"}) == (37, 60)
    assert parse_used_weight({"X-MBX-USED-WEIGHT-6S": "5"}) == (5, 6)
    assert parse_used_weight({"content-type": "application/json"}) is None


def test_budget_waits_for_the_next_window_when_full() -> None:
    """A cost that does not fit sleeps until just past the window boundary, then fits."""
    fake = FakeTime(start=1000 * 60 + 10.0)  # 10 s into a minute window
    budget = Budget(limit=10, window_seconds=60, clock=fake.clock, sleep=fake.sleep)
    for _ in range(5):
        budget.acquire(2)
    assert fake.sleeps == []
    budget.acquire(2)
    assert fake.now == pytest.approx(1001 * 60 + Budget.BOUNDARY_MARGIN_SECONDS)


def test_budget_never_exceeds_limit_per_window() -> None:
    """Over many acquisitions, no fixed window gets more than the limit (brute-force tally)."""
    fake = FakeTime(start=5.0)
    budget = Budget(limit=7, window_seconds=1, clock=fake.clock, sleep=fake.sleep)
    spent: dict[int, int] = {}
    for cost in [1, 3, 2, 5, 1, 1, 4, 7, 2, 2, 3] * 5:
        budget.acquire(cost)
        window = int(fake.now // 1)
        spent[window] = spent.get(window, 0) + cost
    assert max(spent.values()) <= 7


def test_budget_adopts_a_higher_server_count() -> None:
    """Weight other processes spent (server header) shrinks what is left in this window."""
    fake = FakeTime(start=30.0)
    budget = Budget(limit=100, window_seconds=60, clock=fake.clock, sleep=fake.sleep)
    budget.acquire(1)
    budget.observe(95, sent_at=30.0)
    budget.acquire(5)
    assert fake.sleeps == []
    budget.acquire(1)
    assert fake.now >= 60.0


def test_budget_ignores_counts_from_an_earlier_window() -> None:
    """A header from a request sent in the previous window does not charge the current one."""
    fake = FakeTime(start=59.9)
    budget = Budget(limit=10, window_seconds=60, clock=fake.clock, sleep=fake.sleep)
    fake.now = 60.5
    budget.observe(10, sent_at=59.9)
    budget.acquire(10)
    assert fake.sleeps == []


def test_budget_block_until_honours_retry_after() -> None:
    """After block_until, nothing is admitted before that instant even with budget left."""
    fake = FakeTime(start=10.0)
    budget = Budget(limit=100, window_seconds=60, clock=fake.clock, sleep=fake.sleep)
    budget.block_until(13.0)
    budget.acquire(1)
    assert fake.now >= 13.0


def test_budget_is_thread_safe() -> None:
    """Concurrent acquisitions with the real clock never over-commit one window."""
    budget = Budget(limit=1000, window_seconds=10**9)
    threads = [
        threading.Thread(target=lambda: [budget.acquire(1) for _ in range(100)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget._used == 800


def test_budget_does_not_send_in_the_last_moments_of_a_window() -> None:
    """A request reserved just before a boundary waits for the next window: it could reach the
    exchange after the turn and be charged on top of the next window's full budget."""
    fake = FakeTime(start=59.99)
    budget = Budget(limit=10, window_seconds=60, clock=fake.clock, sleep=fake.sleep)
    budget.acquire(1)
    assert fake.now == pytest.approx(60 + Budget.BOUNDARY_MARGIN_SECONDS)
    assert budget.spent() == 1


def test_a_budget_waiting_for_its_window_wakes_at_once_when_stopped() -> None:
    """A thread parked on a full window (50 s left by the injected clock) raises Aborted within a
    fraction of a second of ``stop`` being set, not when the window turns."""
    fake = FakeTime(start=1000 * 60 + 10.0)  # 10 s into a minute window; never moves
    budget = Budget(limit=1, window_seconds=60, clock=fake.clock)
    budget.acquire(1)
    stop = threading.Event()
    waits: list[float] = []
    waiting = threading.Event()

    def announce(reason: str, seconds: float) -> None:
        waits.append(seconds)
        waiting.set()

    outcome: list[BaseException] = []

    def acquire() -> None:
        try:
            budget.acquire(1, stop=stop, on_wait=announce)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=acquire)
    worker.start()
    assert waiting.wait(5), "the budget never started waiting"
    stopped_at = time.perf_counter()
    stop.set()
    worker.join(5)
    assert not worker.is_alive()
    assert time.perf_counter() - stopped_at < 0.25
    assert len(outcome) == 1 and isinstance(outcome[0], Aborted)
    assert waits == [pytest.approx(50.0 + Budget.BOUNDARY_MARGIN_SECONDS)]
    assert budget.spent() == 1  # the aborted cost was never reserved


def test_a_stopped_budget_raises_instead_of_waiting() -> None:
    """With ``stop`` already set, a cost that does not fit raises Aborted without waiting."""
    fake = FakeTime(start=10.0)
    budget = Budget(limit=1, window_seconds=60, clock=fake.clock)
    budget.acquire(1)
    stop = threading.Event()
    stop.set()
    started = time.perf_counter()
    with pytest.raises(Aborted):
        budget.acquire(1, stop=stop)
    assert time.perf_counter() - started < 0.1


def test_a_long_wait_is_announced_once_however_many_threads_wait() -> None:
    """Four threads waiting for the same window turn announce it once, with its reason."""
    fake = FakeTime(start=10.0)  # 50 s before the turn; never moves
    budget = Budget(limit=1, window_seconds=60, clock=fake.clock)
    budget.acquire(1)
    stop = threading.Event()
    waits: list[tuple[str, float]] = []
    aborted: list[bool] = []

    def acquire() -> None:
        try:
            budget.acquire(1, stop=stop, on_wait=lambda reason, s: waits.append((reason, s)))
        except Aborted:
            aborted.append(True)

    workers = [threading.Thread(target=acquire) for _ in range(4)]
    for worker in workers:
        worker.start()
    # Every thread adds its wait to waited_seconds just before it parks on the stop event.
    deadline = time.monotonic() + 10
    while budget.waited_seconds < 4 * 50 and time.monotonic() < deadline:
        time.sleep(0.001)
    stop.set()
    for worker in workers:
        worker.join(5)
    assert len(aborted) == 4
    assert [reason for reason, _ in waits] == ["the rate-limit window"]
    assert waits[0][1] == pytest.approx(50.0 + Budget.BOUNDARY_MARGIN_SECONDS)


def test_a_short_wait_is_not_announced() -> None:
    """A wait under WAIT_REPORT_SECONDS (0.55 s to the next turn) is normal pacing: no news."""
    fake = FakeTime(start=59.5)
    budget = Budget(limit=1, window_seconds=60, clock=fake.clock, sleep=fake.sleep)
    budget.acquire(1)
    waits: list[float] = []
    budget.acquire(1, on_wait=lambda reason, seconds: waits.append(seconds))
    assert fake.sleeps == [pytest.approx(0.5 + Budget.BOUNDARY_MARGIN_SECONDS)]
    assert WAIT_REPORT_SECONDS > 0.5 and waits == []
