"""The report notebooks run through papermill on a small demo lake, and every number in their JSON
result is what the library returns when this test calls it with the same arguments: the
notebooks select and format, they compute nothing of their own. Also: the backtest report
writes nothing to the data root; a report of nothing fails in its last cell while the
exploration notebook gives a sentence; missing values read "–"; the committed ``.ipynb`` files
are the jupytext conversions of their ``.py`` sources, with the stored output nbval checks."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext
import nbformat
import papermill as pm
import pytest

from ingmon.backtest import REPORT_BRACKET
from ingmon.backtest.export import run_document
from ingmon.backtest.lake import backtest_lake
from ingmon.check import run_check
from ingmon.config import Settings, load_settings
from ingmon.coverage import MARKET_DATASETS, coverage_report
from ingmon.demo import run_demo
from ingmon.lake import Lake
from ingmon.latency import ingest_latency
from ingmon.schema import BACKTEST_RUNS, CANDLES
from ingmon.signals import read_signals
from ingmon.times import HOUR_MS, MINUTE_MS, iso_ms, now_ms, to_ms

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("backtest_report", "data_integrity", "explore_signals")
SYMBOLS = ("ETHUSDT", "SOLUSDT")
# backtest_report's default fills and costs
CONFIG = REPORT_BRACKET
# What each notebook's NBVAL_CHECK_OUTPUT cell prints on notebooks/conftest.py's demo lake (two
# symbols, ETHUSDT and SOLUSDT, with every market dataset), stored in the committed .ipynb.
NBVAL_CHECKED = {
    "backtest_report": "backtested: ETHUSDT, SOLUSDT\n",
    "data_integrity": f"series judged: {2 * len(MARKET_DATASETS)} (ETHUSDT, SOLUSDT)\n",
    "explore_signals": "explored: ETHUSDT\n",
}


@dataclass(frozen=True)
class DemoLake:
    settings: Settings
    lake: Lake
    as_of_ms: int
    gap: tuple[int, int]  # the 1m candles of ETHUSDT removed (open times, inclusive)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoLake:
    """Three days of two simulated symbols, scored and backtested by the demo, with half an hour
    of ETHUSDT candles removed so that the integrity report has a gap to show."""
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("INGMON_")]:
            patch.delenv(name)
        settings = load_settings(env_file=None, data_dir=root)
        assert run_demo(settings, days=3, seed=7, symbols=SYMBOLS) == 0
    lake = Lake(settings.lake_dir)
    as_of_ms = now_ms()
    first = (as_of_ms - 20 * HOUR_MS) // HOUR_MS * HOUR_MS
    gap = (first, first + 29 * MINUTE_MS)
    lake.upsert(
        CANDLES,
        CANDLES.arrow_schema.empty_table(),
        symbol="ETHUSDT",
        param="1m",
        replace_range=gap,
    )
    return DemoLake(settings, lake, as_of_ms, gap)


def _execute(name: str, tmp_path: Path, **parameters: Any) -> Path:
    """Execute a notebook (from its .py source) with papermill in ``tmp_path``; its output."""
    source = jupytext.read(NOTEBOOKS / f"{name}.py")
    notebook = tmp_path / f"{name}.ipynb"
    jupytext.write(source, notebook)
    output = tmp_path / f"{name}.out.ipynb"
    pm.execute_notebook(
        notebook,
        output,
        parameters=parameters,
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    return output


def _run(name: str, tmp_path: Path, **parameters: Any) -> tuple[dict[str, Any], Path]:
    """Execute a notebook with a ``result_path``; its JSON result and output."""
    result_path = tmp_path / f"{name}.json"
    output = _execute(name, tmp_path, **parameters, result_path=str(result_path))
    return json.loads(result_path.read_text()), output


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _table_cells(output: Path) -> list[str]:
    """The text of every cell of every HTML table the executed notebook shows."""
    notebook = nbformat.read(output, as_version=4)
    return [
        text.strip()
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        for text in re.findall(r"<td[^>]*>([^<]*)</td>", out.get("data", {}).get("text/html", ""))
    ]


def _plain(value: Any) -> Any:
    """As it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _printed(output: Path) -> str:
    """Every text/markdown and stream output of an executed notebook, joined."""
    notebook = nbformat.read(output, as_version=4)
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", out
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)


# ---- backtest ------------------------------------------------------------------------------


def _expected_run(demo: DemoLake, symbol: str, tmp_path: Path, **filters: Any) -> dict[str, Any]:
    """The library's own run with the notebook's defaults (not saved, exported aside)."""
    run = backtest_lake(
        demo.lake,
        symbol,
        config=CONFIG,
        timeframe="15m",
        window_days=[1, 2],
        end_ms=demo.as_of_ms,
        exports_root=tmp_path / "expected",
        save=False,
        **filters,
    ).run
    return run_document(run)


def test_backtest_report_equals_the_library(demo: DemoLake, tmp_path: Path) -> None:
    """Every symbol with candles: hashes, data range, each window's trades, hit rate,
    expectancy, drawdown, Sharpe and flags, and the breakdowns are the library's; the run is not
    saved in the lake; its trades and equity CSVs lie beside the result; the plots are PNGs."""
    result, output = _run(
        "backtest_report",
        tmp_path,
        data_dir=str(demo.settings.data_dir),
        window_days=[1, 2],
        as_of=iso_ms(demo.as_of_ms),
    )
    assert set(result["symbols"]) == set(SYMBOLS)
    assert result["skipped"] == {}
    saved = set(demo.lake.read(BACKTEST_RUNS, columns=["run_id"])["run_id"].to_pylist())
    for symbol in SYMBOLS:
        got = result["symbols"][symbol]
        expected = _plain(_expected_run(demo, symbol, tmp_path))
        assert got["run_id"] not in saved
        assert got["exports"] == [
            f"backtest_report/{symbol}/trades.csv",
            f"backtest_report/{symbol}/equity.csv",
        ]
        trades = (tmp_path / got["exports"][0]).read_text().splitlines()
        assert len(trades) == 1 + expected["metrics"]["trades"]  # the header, then each trade
        assert got["config_hash"] == expected["config_hash"]
        assert got["data_hash"] == expected["data"]["hash"]
        assert got["data"] == expected["data"]
        windows = [{"label": "all", **expected}, *expected["windows"]]
        assert list(got["windows"]) == ["all", "1d", "2d"]
        for window in windows:
            shown = got["windows"][window["label"]]
            for key in ("trades", "hit_rate", "expectancy", "max_drawdown", "sharpe"):
                assert shown[key] == window["metrics"][key], (symbol, window["label"], key)
            assert shown["flags"] == window["flags"]
        assert got["breakdowns"] == {
            column: expected["breakdowns"][column] for column in ("setup", "score", "confidence")
        }
        assert got["windows"]["all"]["trades"] > 0
    notebook = nbformat.read(output, as_version=4)
    images = [
        out
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == len(SYMBOLS)


def test_backtest_report_filters_and_a_missing_symbol(demo: DemoLake, tmp_path: Path) -> None:
    """Setup and score filters reach the run (its config hash is the filtered one), and a
    symbol without candles is skipped with a sentence naming it, not a traceback."""
    result, output = _run(
        "backtest_report",
        tmp_path,
        data_dir=str(demo.settings.data_dir),
        symbols=["SOLUSDT", "BTCUSDT"],
        window_days=[2],
        setups=["sweep_reclaim", "divergence"],
        min_score=1,
        as_of=iso_ms(demo.as_of_ms),
    )
    expected = _plain(
        backtest_lake(
            demo.lake,
            "SOLUSDT",
            config=CONFIG,
            timeframe="15m",
            window_days=[2],
            end_ms=demo.as_of_ms,
            exports_root=tmp_path / "expected",
            save=False,
            setups=["sweep_reclaim", "divergence"],
            min_score=1,
        ).run.overall.metrics
    )
    got = result["symbols"]["SOLUSDT"]
    assert got["windows"]["all"]["trades"] == expected["trades"]
    assert set(got["breakdowns"]["setup"]) <= {"sweep_reclaim", "divergence"}
    assert set(result["skipped"]) == {"BTCUSDT"}
    assert "**BTCUSDT** is not backtested" in _printed(output)


def test_backtest_report_writes_nothing_to_the_data_root(demo: DemoLake, tmp_path: Path) -> None:
    """With or without a result_path, every file under the data root (the lake's
    backtest_runs/backtest_trades, the backtests/ exports) is as it was: the report is its own
    record, and a read-only data root would do."""
    before = _files(demo.settings.data_dir)
    runs_before = demo.lake.read(BACKTEST_RUNS, columns=["run_id"]).num_rows
    parameters = {
        "data_dir": str(demo.settings.data_dir),
        "window_days": [1],
        "as_of": iso_ms(demo.as_of_ms),
    }
    bare = tmp_path / "bare"
    bare.mkdir()
    output = _execute("backtest_report", bare, **parameters)
    with_result = tmp_path / "with_result"
    with_result.mkdir()
    _run("backtest_report", with_result, **parameters)
    assert "backtested: ETHUSDT, SOLUSDT" in _printed(output)
    assert _files(demo.settings.data_dir) == before
    assert demo.lake.read(BACKTEST_RUNS, columns=["run_id"]).num_rows == runs_before
    # Without a result_path, nothing at all is written beside the notebook either.
    assert sorted(path.name for path in bare.iterdir()) == [
        "backtest_report.ipynb",
        "backtest_report.out.ipynb",
    ]
    assert sorted(path.name for path in with_result.iterdir()) == [
        "backtest_report",
        "backtest_report.ipynb",
        "backtest_report.json",
        "backtest_report.out.ipynb",
    ]


def test_report_defaults_are_the_report_bracket() -> None:
    """The literal defaults of backtest_report's parameters cell (papermill reads literals) are
    the fields of ingmon.backtest.REPORT_BRACKET, the bracket of the demo and the docs."""
    cell = jupytext.read(NOTEBOOKS / "backtest_report.py").cells[1]
    defaults = {
        statement.target.id: ast.literal_eval(statement.value)
        for statement in ast.parse(cell.source).body
        if isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and statement.value is not None
    }
    for field in ("stop_atr", "take_profit_atr", "hold_bars", "fee_rate", "slippage_bps"):
        assert defaults[field] == getattr(REPORT_BRACKET, field), field
        assert type(defaults[field]) is type(getattr(REPORT_BRACKET, field)), field


def test_backtest_report_of_no_symbol_fails(demo: DemoLake, tmp_path: Path) -> None:
    """Every symbol skipped: the last cell raises one sentence naming the symbol and why, and
    no result document is written (a failed run, not an empty success)."""
    with pytest.raises(pm.PapermillExecutionError) as failure:
        _run(
            "backtest_report",
            tmp_path,
            data_dir=str(demo.settings.data_dir),
            symbols=["BTCUSDT"],
            window_days=[1],
            as_of=iso_ms(demo.as_of_ms),
        )
    assert failure.value.ename == "IngmonError"
    assert failure.value.evalue.startswith("No symbol was backtested: BTCUSDT: ")
    assert "NBVAL_CHECK_OUTPUT" in failure.value.source  # the notebook's last cell
    assert not (tmp_path / "backtest_report.json").exists()


# ---- integrity -----------------------------------------------------------------------------


def test_data_integrity_equals_the_check(demo: DemoLake, tmp_path: Path) -> None:
    """The verdict, each symbol × dataset row (counts, range, gaps with their ranges, freshness),
    the latency of each series, the candle-vs-trade comparison and the repair commands are
    those of run_check, ingest_latency and coverage_report; the planted gap is listed."""
    result, _ = _run(
        "data_integrity",
        tmp_path,
        data_dir=str(demo.settings.data_dir),
        window_days=2,
        as_of=iso_ms(demo.as_of_ms),
    )
    report = run_check(demo.settings, symbols=SYMBOLS, window_days=2, end_ms=demo.as_of_ms)
    expected = _plain(report.to_dict())
    assert result["verdict"] == report.verdict == "error"
    assert result["window"] == expected["window"]
    assert result["problems"] == expected["problems"]
    assert result["repair_commands"] == list(
        dict.fromkeys(p["refetch_command"] for p in expected["problems"] if "refetch_command" in p)
    )
    rows = {(row["symbol"], row["dataset"]): row for row in result["rows"]}
    assert set(rows) == {
        (s, d) for s in SYMBOLS for d in expected["symbols"][s] if d != "candle_vs_trades"
    }
    for (symbol, dataset), row in rows.items():
        health = report.symbols[symbol].series[dataset]
        assert {key: row[key] for key in expected["symbols"][symbol][dataset]} == expected[
            "symbols"
        ][symbol][dataset]
        assert len(row["gap_ranges"]) == row["gaps"]
        assert [gap["first_missing"] for gap in row["gap_ranges"]] == [
            gap.first_missing for gap in health.gaps
        ]
        assert row["latency"] == ingest_latency(
            demo.lake,
            dataset,
            symbol=symbol,
            param=health.param,
            start_ms=to_ms(expected["window"][0]),
            end_ms=demo.as_of_ms,
        )
    for symbol in SYMBOLS:
        assert result["candle_vs_trades"][symbol] == expected["symbols"][symbol]["candle_vs_trades"]
    # The planted hole, found independently of the check: the removed open times.
    candle_gaps = rows[("ETHUSDT", "candles")]["gap_ranges"]
    assert [
        (g["first_missing"], g["last_missing"]) for g in candle_gaps if g["kind"] == "internal"
    ] == [demo.gap]
    assert any(
        "ingmon backfill --symbol ETHUSDT" in command for command in result["repair_commands"]
    )
    # The demo's backfill wrote archive files and REST pages of history a moment ago: they are
    # backfill batches, and the latency is that of the live batch (seconds, not days).
    for symbol in SYMBOLS:
        latency = rows[(symbol, "candles")]["latency"]
        assert latency["batches"] >= 1
        assert latency["backfill_batches"] >= 1
        assert 0 < latency["p95_seconds"] < 600
    assert result["coverage"] == _plain(coverage_report(demo.settings).to_dict()["series"])


# ---- explore -------------------------------------------------------------------------------


def test_explore_signals_defaults_to_the_latest_signal(demo: DemoLake, tmp_path: Path) -> None:
    """Without a symbol or time: the first symbol with signals, a window centred on its latest
    signal, and exactly the stored signals of that window with their scores."""
    result, output = _run("explore_signals", tmp_path, data_dir=str(demo.settings.data_dir))
    stored = read_signals(demo.lake, symbols="ETHUSDT", timeframe="15m")
    latest_ms = int(stored["bar_open_time"].dt.epoch("ms").max())
    start_ms = latest_ms - 12 * HOUR_MS
    window = read_signals(
        demo.lake,
        symbols="ETHUSDT",
        timeframe="15m",
        start_ms=start_ms,
        end_ms=start_ms + 24 * HOUR_MS,
    )
    assert result["symbol"] == "ETHUSDT"
    assert result["around"] == iso_ms(latest_ms)
    assert result["window"] == [iso_ms(start_ms), iso_ms(start_ms + 24 * HOUR_MS)]
    assert [
        (s["signal_id"], s["setup"], s["direction"], s["score"], s["confidence"])
        for s in result["signals"]
    ] == list(
        zip(
            window["signal_id"],
            window["setup"],
            window["direction"],
            window["score"],
            window["confidence"],
            strict=True,
        )
    )
    assert result["signals"]
    assert {"candles, window", "trades, window"} <= set(result["profile_levels"])
    assert "**" in _printed(output)


def test_explore_signals_at_a_chosen_time(demo: DemoLake, tmp_path: Path) -> None:
    """A symbol and a time: the window of that many hours around it."""
    stored = read_signals(demo.lake, symbols="SOLUSDT", timeframe="15m")
    around_ms = int(stored["bar_open_time"].dt.epoch("ms")[len(stored) // 2])
    result, _ = _run(
        "explore_signals",
        tmp_path,
        data_dir=str(demo.settings.data_dir),
        symbol="SOLUSDT",
        around=iso_ms(around_ms),
        hours=6,
    )
    window = read_signals(
        demo.lake,
        symbols="SOLUSDT",
        timeframe="15m",
        start_ms=around_ms - 3 * HOUR_MS,
        end_ms=around_ms + 3 * HOUR_MS,
    )
    assert result["window"] == [iso_ms(around_ms - 3 * HOUR_MS), iso_ms(around_ms + 3 * HOUR_MS)]
    assert [s["signal_id"] for s in result["signals"]] == window["signal_id"].to_list()


# ---- empty lake, pairing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "failure"),
    [
        ("backtest_report", "No symbol was backtested: the lake {root}/lake holds no 1m candles."),
        (
            "data_integrity",
            "No series was judged: the lake {root}/lake holds no candles, agg_trades, "
            "open_interest, funding for any symbol.",
        ),
    ],
)
def test_a_report_of_an_empty_lake_fails(name: str, failure: str, tmp_path: Path) -> None:
    """An empty data root: a scheduled report fails in its last cell with one sentence (the
    runner names that cell), instead of recording an empty success; no result is written."""
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(pm.PapermillExecutionError) as raised:
        _run(name, tmp_path, data_dir=str(root))
    assert raised.value.ename == "IngmonError"
    assert raised.value.evalue == failure.format(root=root)
    assert "NBVAL_CHECK_OUTPUT" in raised.value.source  # the notebook's last cell
    assert not (tmp_path / f"{name}.json").exists()


def test_exploring_an_empty_lake_gives_a_sentence(tmp_path: Path) -> None:
    """An empty data root: the exploration notebook (not scheduled) runs through, says why
    there is nothing, and writes an empty result."""
    root = tmp_path / "empty"
    root.mkdir()
    result, output = _run("explore_signals", tmp_path, data_dir=str(root))
    assert "holds no 15m signals: nothing to explore" in _printed(output)
    assert result["notebook"] == "explore_signals"
    assert result["signals"] == []


@pytest.mark.parametrize("name", NAMES)
def test_missing_values_read_as_a_dash(demo: DemoLake, tmp_path: Path, name: str) -> None:
    """No table cell reads None, NaN, <NA> or NaT: a missing value is "–" (the integrity
    report's funding has no latency percentile to show, say)."""
    output = _execute(
        name,
        tmp_path,
        data_dir=str(demo.settings.data_dir),
        **({} if name == "explore_signals" else {"as_of": iso_ms(demo.as_of_ms)}),
    )
    cells = _table_cells(output)
    assert cells
    assert not {"None", "NaN", "nan", "<NA>", "NaT", "None None"} & set(cells)
    assert "–" in cells


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
    return [
        (cell.cell_type, cell.source, list(cell.metadata.get("tags", [])))
        for cell in notebook.cells
    ]


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_is_the_conversion_of_its_source(name: str) -> None:
    """The committed .ipynb holds the cells of its .py (run ``jupytext --sync notebooks/*.py``),
    with the python3 kernel and the pairing header; one cell is marked NBVAL_CHECK_OUTPUT and
    stores what it prints on the conftest's demo lake, every other cell is output-free."""
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    converted = jupytext.read(NOTEBOOKS / f"{name}.py")
    assert _cells(committed) == _cells(converted)
    checked = [
        cell
        for cell in committed.cells
        if cell.cell_type == "code" and "# NBVAL_CHECK_OUTPUT" in cell.source.splitlines()
    ]
    assert len(checked) == 1
    assert checked[0].execution_count is not None  # nbval compares the outputs of run cells
    assert [(out.output_type, out.get("name"), out.get("text")) for out in checked[0].outputs] == [
        ("stream", "stdout", NBVAL_CHECKED[name])
    ]
    assert all(
        cell.get("outputs", []) == [] and cell.get("execution_count") is None
        for cell in committed.cells
        if cell is not checked[0]
    )
    assert committed.metadata["kernelspec"]["name"] == "python3"
    assert committed.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert _cells(converted)[1][2] == ["parameters"]
    assert "data_dir: str = " in converted.cells[1].source
    assert "result_path: str = " in converted.cells[1].source


def test_explore_signals_of_a_symbol_without_signals(demo: DemoLake, tmp_path: Path) -> None:
    """A symbol the lake has no signals for: a sentence saying how to score it."""
    result, output = _run(
        "explore_signals", tmp_path, data_dir=str(demo.settings.data_dir), symbol="BTCUSDT"
    )
    assert "No 15m signals for BTCUSDT" in _printed(output)
    assert result["signals"] == []


def test_nbval_fails_without_the_demo_lake(tmp_path: Path) -> None:
    """``pytest --nbval-lax notebooks/`` compares the stored outputs with real data: pointed at
    an empty data root instead of the conftest's demo lake, every notebook fails."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith("INGMON_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--noconftest", "-p", "no:cacheprovider"]
        + [str(NOTEBOOKS / f"{name}.ipynb") for name in NAMES],
        env={**env, "INGMON_DATA_DIR": str(empty)},
        cwd=NOTEBOOKS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    failed = sorted(set(re.findall(r"^FAILED notebooks/(\w+)\.ipynb", done.stdout, re.M)))
    assert failed == sorted(NAMES), done.stdout
    assert "'explored: ETHUSDT\\n' == 'explored: nothing\\n'" in done.stdout
