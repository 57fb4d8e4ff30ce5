"""The server's LatestValue: one rendering per key at a time, the previous value meanwhile."""

from __future__ import annotations

import threading

from ingmon.api.cache import LatestValue


def test_while_one_caller_renders_the_others_get_the_previous_value_at_once() -> None:
    """A caller arriving during a rendering is served the last value without computing."""
    latest = LatestValue()
    assert latest.get(("k",), lambda: "v1") == "v1"
    started, release = threading.Event(), threading.Event()
    computed: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(timeout=30)
        computed.append("v2")
        return "v2"

    result: list[str] = []
    renderer = threading.Thread(target=lambda: result.append(latest.get(("k",), slow)))
    renderer.start()
    assert started.wait(timeout=30)
    assert latest.get(("k",), lambda: "never") == "v1"  # served stale, did not compute
    release.set()
    renderer.join(timeout=30)
    assert result == ["v2"] and computed == ["v2"]
    assert latest.get(("k",), lambda: "v3") == "v3"  # free again: the next call renders


def test_the_first_call_of_a_key_waits_for_the_rendering_in_progress() -> None:
    """Without a previous value there is nothing to serve: the caller waits, then renders."""
    latest = LatestValue()
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(timeout=30)
        return "first"

    renderer = threading.Thread(target=lambda: latest.get(("k",), slow))
    renderer.start()
    assert started.wait(timeout=30)
    waited: list[str] = []
    waiter = threading.Thread(target=lambda: waited.append(latest.get(("k",), lambda: "second")))
    waiter.start()
    waiter.join(timeout=0.2)
    assert waiter.is_alive()  # blocked behind the first rendering
    release.set()
    renderer.join(timeout=30)
    waiter.join(timeout=30)
    assert waited == ["second"]


def test_keys_are_bounded() -> None:
    """Client-chosen keys cannot grow the cache without bound."""
    latest = LatestValue(max_entries=3)
    for index in range(10):
        assert latest.get((index,), lambda index=index: index) == index
    assert len(latest._values) <= 3
