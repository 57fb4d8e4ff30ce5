"""A lake that cannot be written (read-only file system, full disk): the backfill stops at the
first failed write with a summary naming it, the CLI says it in one line, nothing stored is
lost. Root ignores file permissions, so the file system's refusal is simulated at the lake's
commit (the one place every partition write goes through)."""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path
from typing import Any

import pytest

import ingmon.export
import ingmon.lake
from ingmon.binance.backfill import BackfillRequest, run_backfill
from ingmon.binance.reporting import Reporter
from ingmon.cli import main
from ingmon.exchange import Market
from ingmon.lake import Lake

from ._reference import exchange, settings_for, table_rows

NOW_MS = 1_790_000_000_000 + 37_123
SYMBOL = "SOLUSDT"


def _read_only(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.EROFS, "Read-only file system", "/srv/ingmon/data/lake")


def test_backfill_into_a_read_only_lake_stops_with_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first refused write stops the run: status incomplete, one write_failed problem per
    task that tried, far fewer requests than a full run, and the stored rows untouched."""
    market = Market.demo(symbols=(SYMBOL,), days=3, seed=21, now_ms=NOW_MS)
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        request = BackfillRequest(symbols=(SYMBOL,), window_days=1, datasets=("candles",))
        quiet = Reporter(mode="json", stream=io.StringIO())
        run_backfill(request, settings=settings, reporter=quiet)
        before = table_rows(Lake(settings.lake_dir).read("candles", symbols=SYMBOL, param="1m"))
        monkeypatch.setattr(ingmon.lake, "commit", _read_only)
        log = io.StringIO()
        summary = run_backfill(
            BackfillRequest(symbols=(SYMBOL,), window_days=2),
            settings=settings,
            reporter=Reporter(mode="json", stream=log),
        ).to_dict()
    assert summary["status"] == "incomplete" and summary["exit_status"] == 1
    failed = [p for p in summary["problems"] if p["kind"] == "write_failed"]
    assert failed and all("Read-only file system" in p["message"] for p in failed)
    assert summary["totals"]["inserted"] == 0
    errors = [json.loads(line) for line in log.getvalue().splitlines()]
    assert any(e["event"] == "problem" and e["kind"] == "write_failed" for e in errors)
    monkeypatch.undo()
    after = table_rows(Lake(settings.lake_dir).read("candles", symbols=SYMBOL, param="1m"))
    assert after == before


def test_export_to_a_read_only_root_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OS refusal reaching the CLI is one line naming the file, exit 2, no traceback."""
    market = Market.demo(symbols=(SYMBOL,), days=2, seed=21, now_ms=NOW_MS)
    with exchange(market, NOW_MS) as server:
        settings = settings_for(tmp_path, server)
        run_backfill(
            BackfillRequest(symbols=(SYMBOL,), window_days=1, datasets=("funding",)),
            settings=settings,
            reporter=Reporter(mode="json", stream=io.StringIO()),
        )
    monkeypatch.setattr(ingmon.export, "_write_atomic", _read_only)
    status = main(["export", "--data-dir", str(settings.data_dir)])
    err = capsys.readouterr().err
    assert status == 2
    assert err == "ingmon export: error: Read-only file system: /srv/ingmon/data/lake\n"
