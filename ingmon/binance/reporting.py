"""Backfill observability: JSON-line logs (not a TTY) or one progress bar per dataset (a TTY)."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

import orjson
from tqdm import tqdm

from ingmon.times import iso_now

__all__ = ["Reporter"]


def _now_iso() -> str:
    return iso_now()


class Reporter:
    """Writes one event per batch and per problem to stderr.

    ``mode="json"`` writes JSON lines (ready for Loki/Vector), ``"text"`` a progress bar per
    dataset with warnings above the bars, ``"auto"`` picks text on a TTY and JSON otherwise.
    """

    def __init__(self, *, mode: str = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "text" if self.stream.isatty() else "json"
        self.mode = mode
        self._lock = threading.Lock()
        self._bars: dict[str, tqdm[Any]] = {}

    def event(self, event: str, *, level: str = "info", **fields: Any) -> None:
        """One structured log event (dropped in text mode unless it is a warning or error)."""
        with self._lock:
            if self.mode == "json":
                self.stream.write(self.json_line(event, level=level, **fields))
                self.stream.flush()
            elif level in ("warning", "error"):
                detail = " ".join(f"{k}={v}" for k, v in fields.items())
                tqdm.write(f"{level}: {event} {detail}", file=self.stream)

    def notice(self, event: str, message: str, *, level: str = "info", **fields: Any) -> None:
        """An event the operator should see as it happens, whatever its level: a JSON line
        with ``message``, or on a TTY ``message`` itself as a line above the bars."""
        with self._lock:
            if self.mode == "json":
                self.stream.write(self.json_line(event, level=level, message=message, **fields))
                self.stream.flush()
            else:
                tqdm.write(message, file=self.stream)

    def wait(self, reason: str, seconds: float) -> None:
        """A thread is about to wait ``seconds`` for ``reason`` ("the rate-limit window")."""
        shown = round(seconds, 1)  # the message says the number the event carries
        self.notice("wait", f"waiting {shown:.0f} s for {reason}", reason=reason, seconds=shown)

    def json_line(self, event: str, *, level: str = "info", **fields: Any) -> str:
        """The JSON line of an event, newline included (not written: for callers that must
        write it themselves, e.g. a signal handler that cannot take the lock)."""
        record = {"ts": _now_iso(), "level": level, "event": event, **fields}
        return orjson.dumps(record, default=str).decode() + "\n"

    def start_dataset(self, dataset: str, *, total: int, unit: str) -> None:
        """Open the progress bar of one dataset (text mode) with its expected item count."""
        if self.mode != "text":
            return
        with self._lock:
            self._bars[dataset] = tqdm(
                total=total or None,
                desc=f"{dataset:<14}",
                unit=f" {unit}",
                unit_scale=True,
                file=self.stream,
                position=len(self._bars),
                leave=True,
                dynamic_ncols=True,
            )

    def advance(self, dataset: str, amount: int) -> None:
        bar = self._bars.get(dataset)
        if bar is not None:
            with self._lock:
                bar.update(amount)

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
