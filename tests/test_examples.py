"""examples/: every script runs against the simulator (bounded in time), the notebook executes
end to end and produces its three figures, and ``tickwire plot`` writes the same charts."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_example_scripts_run_against_the_simulator(tmp_path):
    db = tmp_path / "ticks.sqlite"
    procs = {
        "spread_monitor": _start([str(EXAMPLES / "spread_monitor.py"), "--sim", "--duration", "4"], tmp_path),
        "custom_sink": _start([str(EXAMPLES / "custom_sink.py"), "--sim", "--duration", "3", "--db", str(db)],
                              tmp_path),
        "order_logger": _start([str(EXAMPLES / "order_logger.py"), "--sim", "--duration", "4"], tmp_path),
        "backtest_replay": _start([str(EXAMPLES / "backtest_replay.py"), "--sim", "--duration", "3"], tmp_path),
    }
    out = {}
    try:
        for name, p in procs.items():
            o, e = p.communicate(timeout=90)
            assert p.returncode == 0, f"{name}: exit {p.returncode}\n{e}"
            assert "Traceback" not in e, f"{name}:\n{e}"
            out[name] = o
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    lines = out["spread_monitor"].splitlines()
    assert lines and all("cross-venue spread" in x for x in lines)
    assert {"okx:", "bybit:", "bge:"} <= {w for w in lines[-1].split() if w.endswith(":")}
    assert "wrote" in out["custom_sink"]
    with sqlite3.connect(db) as c:
        venues = {v for (v,) in c.execute("SELECT DISTINCT venue FROM trades")}
        snaps = c.execute("SELECT count(*), min(spread) FROM snapshots").fetchone()
    assert venues == {"okx", "bybit"} and snaps[0] >= 2 and snaps[1] >= 0
    log = out["order_logger"].splitlines()
    assert any(x.startswith("order ") for x in log) and any(x.startswith("fill ") for x in log)
    assert any(x.startswith("total ") for x in log)
    assert "replayed" in out["backtest_replay"] and "fills" in out["backtest_replay"]


def test_the_notebook_records_and_charts(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    data = tmp_path / "data"
    env = {"TICKWIRE_NOTEBOOK_SECONDS": "10", "TICKWIRE_NOTEBOOK_DATA": str(data)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nb = nbformat.read(EXAMPLES / "market_data.ipynb", as_version=4)
        nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert len(images) == 3  # mid and spread, depth, trades
    assert all(len(o["data"]["image/png"]) > 10_000 for o in images)  # base64 of a real chart

    # the same charts from the command line, on the notebook's recording
    charts = tmp_path / "charts"
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "plot", "--data", str(data), "--out", str(charts),
                        "--interval", "250ms"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("mid_spread.png", "depth.png", "trades.png"):
        p = charts / name
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
