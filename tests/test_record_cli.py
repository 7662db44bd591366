"""`tickwire record | query | decode | recover` from the command line."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

import tickwire.cli as cli
from tickwire import model as m
from tickwire.cli.common import expand_streams, load_config, parse_size
from tickwire.sinks.recorder import Recorder

NS = 1_732_000_000_000_000_000


def need_sim():
    sim = pytest.importorskip("tickwire.sim")
    if not hasattr(sim, "Simulator"):
        pytest.skip("simulator not available")


def tw(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "tickwire.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_record_sim_end_to_end_then_query_and_decode(tmp_path):
    need_sim()
    out = tmp_path / "data"
    r = tw("record", "bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:BTCUSDT",
           "bybit.linear:tickers:BTCUSDT", "--sim", "--duration", "2", "--out", str(out), "--option", "bybit.speed=5")
    assert r.returncode == 0, r.stderr
    summary = r.stderr.strip().splitlines()[-1]
    assert summary.startswith("recorded ") and "book_changes" in summary and "raw frames" in summary
    for kind in ("book_changes", "book_snapshots", "trades", "tickers", "status", "raw"):
        assert list((out / kind / "venue=bybit").glob("date=*/*")), kind
    assert not (out / "_wal").exists()
    q = tw("query", "SELECT type, count(*) AS n FROM status GROUP BY type ORDER BY type", "--data", str(out),
           "--format", "csv")
    assert q.returncode == 0, q.stderr
    assert list(csv.DictReader(io.StringIO(q.stdout)))[0]["type"] == "Connected"
    n_trades = int(tw("query", "SELECT count(*) AS n FROM trades", "--data", str(out), "--format", "csv")
                   .stdout.splitlines()[1])
    assert n_trades > 0
    d = tw("decode", str(out / "raw"), "--no-status")
    assert d.returncode == 0, d.stderr
    decoded = [json.loads(x) for x in d.stdout.splitlines()]
    assert sum(e["type"] == "Trade" for e in decoded) == n_trades  # the archive re-decodes to the same data


def test_record_with_views_records_the_base_streams_and_derives_the_views(tmp_path):
    """`record SPEC@VIEW` used to record nothing (no table for computed events): it records the
    base stream and writes the views as `tickwire derive` would, from that recording."""
    need_sim()
    import pyarrow.parquet as pq

    from tickwire.derive.offline import derive_events

    out = tmp_path / "data"
    views = ["okx:books:BTC-USDT@snapshot5_500ms", "okx:trades:BTC-USDT@bars10ticks"]
    r = tw("record", *views, "--sim", "--duration", "3", "--out", str(out), "--option", "okx.trade_interval_ms=20")
    assert r.returncode == 0, r.stderr
    assert "recording its base stream okx:books:BTC-USDT" in r.stderr
    assert list((out / "book_changes" / "venue=okx").glob("date=*/*.parquet"))
    assert list((out / "trades" / "venue=okx").glob("date=*/*.parquet"))
    expect = derive_events(out, views)
    for v in views:
        assert len(expect[v]) > 0, v
        files = list((out / "derived" / v.rpartition("@")[2]).rglob("*.parquet"))
        assert sum(pq.read_metadata(f).num_rows for f in files) == len(expect[v]), v
    assert "derived okx:books:BTC-USDT@snapshot5_500ms" in r.stderr.strip().splitlines()[-1]


def test_sigterm_stops_cleanly_and_publishes_everything(tmp_path):
    need_sim()
    out = tmp_path / "data"
    p = subprocess.Popen([sys.executable, "-m", "tickwire.cli", "record", "bybit.linear:publicTrade:BTCUSDT",
                          "--sim", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not list((out / "_wal").rglob("*.twraw.zst")):
            time.sleep(0.05)
        time.sleep(0.3)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert "recorded " in err
    assert not (out / "_wal").exists()
    assert pq.read_table(out / "status").num_rows >= 1


def test_config_file_toml_and_json(tmp_path):
    t = tmp_path / "rec.toml"
    t.write_text('out = "d"\nduration = 1\n[streams."bybit.linear"]\n"orderbook.50" = ["BTCUSDT", "ETHUSDT"]\n'
                 'publicTrade = ["BTCUSDT"]\n[record]\nflush_interval = 0.5\nroll_size = "64MB"\n')
    cfg = load_config(str(t))
    assert expand_streams(cfg["streams"]) == ["bybit.linear:orderbook.50:BTCUSDT",
                                              "bybit.linear:orderbook.50:ETHUSDT", "bybit.linear:publicTrade:BTCUSDT"]
    assert parse_size(cfg["record"]["roll_size"]) == 64 * 2**20
    j = tmp_path / "rec.json"
    j.write_text(json.dumps({"streams": ["okx:books:BTC-USDT"], "record": {"raw": False}}))
    assert expand_streams(load_config(str(j))["streams"]) == ["okx:books:BTC-USDT"]
    bad = tmp_path / "bad.toml"
    bad.write_text('streams = ["bybit.linear:publicTrade:BTCUSDT"]\nflush = 1\n')
    res = CliRunner().invoke(cli.app, ["record", "--config", str(bad), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown key 'flush'" in res.output and "valid: " in res.output
    res = CliRunner().invoke(cli.app, ["record", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no streams" in res.output
    res = CliRunner().invoke(cli.app, ["record", "bybit.linear:nope:BTCUSDT", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown channel" in res.output
    with pytest.raises(typer.BadParameter):
        parse_size("12 parsecs")


def test_config_file_drives_a_sim_recording(tmp_path):
    need_sim()
    c = tmp_path / "rec.toml"
    c.write_text(f'out = "{tmp_path / "d"}"\nsim = true\nduration = 1.5\n'
                 '[streams."bybit.linear"]\npublicTrade = ["BTCUSDT", "ETHUSDT"]\n[record]\nraw = false\n')
    r = tw("record", "--config", str(c))
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "d" / "raw").exists()
    syms = set(pq.read_table(tmp_path / "d" / "trades").column("symbol").to_pylist())
    assert syms <= {"BTCUSDT", "ETHUSDT"} and syms


def test_query_formats_and_errors(tmp_path):
    with Recorder(tmp_path, raw=False) as rec:
        for i in range(3):
            rec.add(m.Trade(venue="bybit", market="linear", symbol="BTCUSDT", stream="s", recv_ns=NS + i,
                            price=f"1.{i}0", size="2", side="buy", seq=i))
    run = CliRunner().invoke
    res = run(cli.app, ["query", "SELECT price, venue FROM trades ORDER BY seq", "--data", str(tmp_path)])
    assert res.exit_code == 0 and "1.00" in res.stdout and "bybit" in res.stdout
    res = run(cli.app, ["query", "SELECT price, recv_time FROM trades ORDER BY seq", "--data", str(tmp_path), "-f", "json"])
    rows = [json.loads(x) for x in res.stdout.splitlines()]
    assert [r["price"] for r in rows] == ["1.00", "1.10", "1.20"] and rows[0]["recv_time"].startswith("2024-11-19T")
    res = run(cli.app, ["query", "SELECT nope FROM trades", "--data", str(tmp_path)])
    assert res.exit_code == 2 and "nope" in res.output
    res = run(cli.app, ["query", "SELECT 1", "--data", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no dataset" in res.output


def test_recover_command(tmp_path):
    a = Recorder(tmp_path, raw=False)
    a.add(m.Trade(venue="bybit", recv_ns=NS, price="1", size="1", side="buy"))
    a.flush(wait=True)
    a.writer._publish_all = lambda: None
    a.writer.stop()
    import os

    os.close(a._lock)  # a is "dead"
    res = CliRunner().invoke(cli.app, ["recover", str(tmp_path)])
    assert res.exit_code == 0 and "recovered 1 parquet parts (1 rows)" in res.stdout
    assert pq.read_table(tmp_path / "trades").num_rows == 1
    assert Path(tmp_path / "_wal").exists() is False or not any((tmp_path / "_wal").rglob("*.wal"))


@pytest.mark.parametrize("argv", [["query", "SELECT * FROM trades", "-f", "json"],
                                  ["query", "SELECT * FROM trades", "-f", "csv"],
                                  ["query", "SELECT * FROM trades", "--max-rows", "100000"],
                                  ["tail", "--sim", "okx:trades:BTC-USDT", "--duration", "30"]])
def test_piped_into_head_ends_quietly_with_0(tmp_path, argv):
    """``tickwire … | head -1``: once head has gone, the command ends at once with exit code 0 and
    says nothing (as in a user's shell: stdout block-buffered, more output than a pipe holds)."""
    import os
    import shlex

    if argv[0] == "query":
        with Recorder(tmp_path, raw=False) as rec:
            for i in range(20_000):
                rec.add(m.Trade(venue="bybit", market="linear", symbol="BTCUSDT", stream="s", recv_ns=NS + i,
                                price=f"1.{i}0", size="2", side="buy", seq=i, trade_id=str(i)))
        argv = [*argv, "--data", str(tmp_path)]
    else:
        need_sim()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "tickwire.cli", *argv])
    p = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} 2>{tmp_path / 'err'} | head -1"], env=env,
                       capture_output=True, text=True, timeout=60)
    err = (tmp_path / "err").read_text()
    assert p.returncode == 0, err
    assert len(p.stdout.splitlines()) == 1
    assert "rror" not in err and "Traceback" not in err, err
