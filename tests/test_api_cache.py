"""The server's LatestValue: one rendering per key at a time, the previous value meanwhile —
but never older than its max age (an injected clock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ingmon.api.cache import LatestValue


class Clock:
    """A settable monotonic clock, in seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def wait_for(check: Callable[[], bool], *, what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds (observed state, with a deadline)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Blocked:
    """A computation that runs until released, returning ``value``."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        assert self.release.wait(timeout=30)
        return self.value


def in_thread(
    latest: LatestValue, compute: Callable[[], str]
) -> tuple[threading.Thread, list[str]]:
    """``latest.get(("k",), compute)`` in a thread of its own; its result lands in the list."""
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(latest.get(("k",), compute)))
    thread.start()
    return thread, result


def test_while_one_caller_renders_the_others_get_the_previous_value_at_once() -> None:
    """A caller arriving during a rendering is served the last value without computing."""
    latest = LatestValue(max_age_seconds=2.0, clock=Clock())
    assert latest.get(("k",), lambda: "v1") == "v1"
    slow = Blocked("v2")
    renderer, result = in_thread(latest, slow)
    assert slow.started.wait(timeout=30)
    assert latest.get(("k",), lambda: "never") == "v1"  # served stale, did not compute
    slow.release.set()
    renderer.join(timeout=30)
    assert result == ["v2"]
    assert latest.get(("k",), lambda: "v3") == "v3"  # free again: the next call renders


def test_the_first_call_of_a_key_waits_for_the_rendering_in_progress() -> None:
    """Without a previous value there is nothing to serve: the caller blocks on the rendering
    in progress (seen in ``waiting``), then renders itself."""
    latest = LatestValue(max_age_seconds=2.0, clock=Clock())
    first = Blocked("first")
    renderer, _ = in_thread(latest, first)
    assert first.started.wait(timeout=30)
    waiter, waited = in_thread(latest, lambda: "second")
    wait_for(lambda: latest.waiting == 1, what="the second caller to block")
    assert waited == []  # blocked behind the first rendering, not answered
    first.release.set()
    renderer.join(timeout=30)
    waiter.join(timeout=30)
    assert waited == ["second"]
    assert latest.waiting == 0


def test_a_previous_value_past_its_max_age_is_not_served() -> None:
    """v1 computed at t=0 with a 2 s max age: at t=1.999 a caller gets v1 during a rendering;
    at t=2.0 it waits for the rendering instead and gets a fresh value."""
    clock = Clock()
    latest = LatestValue(max_age_seconds=2.0, clock=clock)
    assert latest.get(("k",), lambda: "v1") == "v1"  # stamped t=0
    clock.now = 1.999
    slow = Blocked("v2")
    renderer, rendered = in_thread(latest, slow)
    assert slow.started.wait(timeout=30)
    assert latest.get(("k",), lambda: "never") == "v1"  # 1.999 s old: still served
    clock.now = 2.0
    waiter, waited = in_thread(latest, lambda: "v3")
    wait_for(lambda: latest.waiting == 1, what="the caller past the max age to block")
    assert waited == []
    slow.release.set()
    for thread in (renderer, waiter):
        thread.join(timeout=30)
    assert rendered == ["v2"]
    assert waited == ["v3"]  # rendered itself once the lock was free, never v1


def test_the_age_counts_from_when_the_rendering_started() -> None:
    """A rendering that started at t=0 and took until t=3 yields a value already 3 s old: with a
    2 s max age it is not served stale during the next rendering."""
    clock = Clock()
    latest = LatestValue(max_age_seconds=2.0, clock=clock)

    def slow_v1() -> str:
        clock.now = 3.0  # the rendering took three seconds
        return "v1"

    assert latest.get(("k",), slow_v1) == "v1"
    slow = Blocked("v2")
    renderer, _ = in_thread(latest, slow)
    assert slow.started.wait(timeout=30)
    waiter, waited = in_thread(latest, lambda: "v3")
    wait_for(lambda: latest.waiting == 1, what="the caller to block")
    slow.release.set()
    for thread in (renderer, waiter):
        thread.join(timeout=30)
    assert waited == ["v3"]


def test_keys_are_bounded() -> None:
    """Client-chosen keys cannot grow the cache without bound."""
    latest = LatestValue(max_age_seconds=2.0, max_entries=3)
    for index in range(10):
        assert latest.get((index,), lambda index=index: index) == index
    assert len(latest._values) <= 3


def test_compressed_bodies_are_gzip_of_the_body_and_compressed_once_per_body() -> None:
    """The gzip decompresses to the body; the same body again is not compressed again (the
    same object comes back); a changed body is."""
    import gzip

    from ingmon.api.cache import Compressed

    packed = Compressed()
    body = b"ingmon_dataset_freshness_seconds 1.0\n" * 1000
    first = packed.get(("k",), body)
    assert gzip.decompress(first) == body and len(first) < len(body) // 10
    assert packed.get(("k",), bytes(body)) is first  # equal content, another object
    changed = body + b"# one more line\n"
    assert gzip.decompress(packed.get(("k",), changed)) == changed


def test_a_value_younger_than_fresh_seconds_is_served_without_computing() -> None:
    """fresh_seconds 1: at t=0.999 the stored value comes back and compute is not called;
    at t=1.0 the next caller computes again."""
    clock = Clock()
    latest = LatestValue(max_age_seconds=2.0, fresh_seconds=1.0, clock=clock)
    calls: list[str] = []

    def compute(value: str) -> Callable[[], str]:
        return lambda: calls.append(value) or value

    assert latest.get(("k",), compute("v1")) == "v1"
    clock.now = 0.999
    assert latest.get(("k",), compute("v2")) == "v1"
    clock.now = 1.0
    assert latest.get(("k",), compute("v3")) == "v3"
    assert calls == ["v1", "v3"]
