"""Recorder durability: kill -9, bounded memory under a slow disk, disk errors."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import msgspec
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tickwire import model as m
from tickwire.sinks import archive
from tickwire.sinks.recorder import Recorder
from tickwire.sinks.writer import RecorderError, Writer, recover

CONN = "bybit/public/linear#1"

CRASH_SCRIPT = textwrap.dedent("""
    import sys, time
    from tickwire import model as m
    from tickwire.sinks.recorder import Recorder
    rec = Recorder(sys.argv[1], flush_interval=0.05, roll_interval=0.3)
    rec.connection("bybit/public/linear#1", "bybit", "public/linear")
    n, ns = 0, time.time_ns()
    while True:
        for _ in range(300):
            n += 1
            rec.raw("bybit/public/linear#1", ns + n, b'{"i":%d}' % n, False)
            rec.add(m.Trade(venue="bybit", market="linear", symbol="BTCUSDT", stream="s", recv_ns=ns + n,
                            exch_ns=ns, price=f"{n}.50", size="0.001", side="buy", trade_id=str(n), seq=n))
        rec.flush(wait=True)          # everything up to n is now in files the OS holds
        print(n, flush=True)
        time.sleep(0.005)
""")


def published(root: Path) -> list[Path]:
    return archive.public_files(root, (".parquet",))


def read_everything(root: Path) -> dict[str, int]:
    """Read every published file with pyarrow, DuckDB and the archive reader; rows per kind."""
    rows: dict[str, int] = {}
    con = duckdb.connect()
    for p in published(root):
        kind = p.relative_to(root).parts[0]
        n = pq.read_table(p).num_rows
        assert con.sql(f"SELECT count(*) FROM read_parquet('{p}')").fetchall()[0][0] == n
        rows[kind] = rows.get(kind, 0) + n
    for f in archive.archive_files(root):
        rows["raw"] = rows.get("raw", 0) + sum(1 for r in archive.read_archive(f, strict=True) if r.is_frame)
    con.close()
    assert not [p for p in root.rglob("*.tmp") if "_wal" not in p.parts and "_trash" not in p.parts]
    return rows


def test_kill_9_leaves_readable_files_and_loses_at_most_the_last_flush(tmp_path):
    out = tmp_path / "data"
    script = tmp_path / "rec.py"
    script.write_text(CRASH_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if len([p for p in published(out) if p.parts[-4] == "trades"]) >= 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no file was published in time")
        # a running recorder's unpublished files are nothing to recover: `tickwire query` says nothing
        q = [sys.executable, "-m", "tickwire.cli", "query", "--data", str(out), "SELECT count(*) FROM trades"]
        r = subprocess.run(q, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "recover" not in r.stderr, r.stderr
        time.sleep(0.12)  # kill somewhere in the middle of the next flush cycle
    finally:
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=10)
    flushed = int([line for line in stdout.splitlines() if line.strip()][-1])
    assert proc.returncode == -signal.SIGKILL
    r = subprocess.run(q, capture_output=True, text=True, timeout=60)   # a killed one's are: said, with the command
    assert r.returncode == 0 and f"tickwire recover {out}" in r.stderr and "stopped" in r.stderr, r.stderr

    before = read_everything(out)  # every published file is complete, before any recovery
    assert before["trades"] > 0

    rep = recover(out)               # what the next recorder (or `tickwire recover`) does
    assert rep.parts >= 1 and rep.raw_files >= 1
    after = read_everything(out)
    assert not (out / "_wal").exists() or not any((out / "_wal").rglob("*.wal"))
    seqs = pq.read_table(out / "trades", columns=["seq"]).column("seq").to_pylist()
    assert len(seqs) == len(set(seqs)), "no row may be duplicated by recovery"
    assert sorted(seqs) == list(range(1, len(seqs) + 1)), "no hole: the rows are a prefix of what was added"
    assert len(seqs) >= flushed, f"lost more than the last flush: {len(seqs)} rows < {flushed} flushed"
    assert after["raw"] >= flushed
    prices = pq.read_table(out / "trades", columns=["price", "seq"]).to_pylist()
    assert all(r["price"] == f"{r['seq']}.50" for r in prices)


def test_kill_9_during_record_sim_then_recover(tmp_path):
    sim = pytest.importorskip("tickwire.sim")
    if not hasattr(sim, "Simulator"):
        pytest.skip("simulator not available")
    out = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "tickwire.cli", "record", "bybit.linear:orderbook.50:BTCUSDT",
                             "bybit.linear:publicTrade:BTCUSDT", "--sim", "--out", str(out), "--flush-interval",
                             "0.1", "--roll-interval", "0.5", "--option", "bybit.speed=5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if [p for p in published(out) if "book_changes" in p.parts]:
                break
            if proc.poll() is not None:
                pytest.fail(f"recorder exited: {proc.stderr.read().decode()}")
            time.sleep(0.05)
        else:
            pytest.fail("no file was published in time")
        time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    read_everything(out)
    recover(out)
    read_everything(out)
    con = duckdb.connect()
    con.sql(f"CREATE VIEW b AS SELECT DISTINCT recv_ns, seq, prev_seq, snapshot "
            f"FROM read_parquet('{out}/book_changes/**/*.parquet')")
    msgs, breaks = con.sql("SELECT count(*), count(*) FILTER (WHERE NOT snapshot AND prev_seq <> prev) FROM "
                           "(SELECT *, lag(seq) OVER (ORDER BY recv_ns, seq) AS prev FROM b)").fetchall()[0]
    assert msgs > 5 and breaks == 0  # the recovered + published book chain has no hole and no duplicate
    con.close()


@pytest.fixture
def slow_disk(monkeypatch):
    orig = Writer._rows

    def slow(self, it):
        time.sleep(0.01)
        orig(self, it)

    monkeypatch.setattr(Writer, "_rows", slow)


def trades(n, ns=1_732_000_000_000_000_000):
    return (m.Trade(venue="bybit", market="linear", symbol="BTCUSDT", stream="s", recv_ns=ns + i, price="1.0",
                    size="2", side="buy", trade_id=f"{ns}-{i}", seq=i) for i in range(1, n + 1))


def test_memory_stays_bounded_and_drops_are_counted_when_the_disk_is_slow(tmp_path, slow_disk):
    limit = 1_000_000
    rec = Recorder(tmp_path, raw=False, batch_rows=500, max_pending_bytes=limit)
    n = 100_000
    for ev in trades(n):
        rec.add(ev)
        assert rec.writer.pending_bytes <= limit
    rec.close()
    s = rec.summary()
    dropped, written = s["dropped"].get("trades", 0), s["rows"]["trades"]
    assert dropped > 0 and dropped + written == n
    assert s["peak_pending_bytes"] <= limit + 10_000  # status rows (one per hole) are never dropped
    assert "DROPPED" in rec.summary_line()
    # the holes are in the data itself
    st = pq.read_table(tmp_path / "status").to_pylist()
    drops = [msgspec.json.decode(r["detail"]) for r in st if r["type"] == "RecorderDrop"]
    assert sum(d["events"] for d in drops) == dropped and all(d["kind"] == "trades" for d in drops)
    seqs = set(pq.read_table(tmp_path / "trades", columns=["seq"]).column("seq").to_pylist())
    assert len(seqs) == written
    for d in drops:  # each drop row names exactly the missing range
        missing = range(d["from_ns"] - 1_732_000_000_000_000_000, d["to_ns"] - 1_732_000_000_000_000_000 + 1)
        assert not seqs.intersection(missing)


def test_block_policy_loses_nothing(tmp_path, slow_disk):
    rec = Recorder(tmp_path, raw=False, batch_rows=500, max_pending_bytes=300_000, backlog="block")
    rec.add_many(trades(20_000))
    rec.close()
    assert rec.summary()["dropped"] == {} and rec.summary()["rows"]["trades"] == 20_000
    assert rec.summary()["peak_pending_bytes"] <= 300_000


def test_raw_frames_dropped_under_pressure_leave_a_marker(tmp_path, monkeypatch):
    orig = Writer._raw

    def slow(self, it):
        time.sleep(0.02)
        orig(self, it)

    monkeypatch.setattr(Writer, "_raw", slow)
    rec = Recorder(tmp_path, raw_batch_bytes=2_000, max_pending_bytes=20_000, parquet=False)
    rec.connection(CONN, "bybit", "public/linear")
    for i in range(20_000):
        rec.raw(CONN, 1_732_000_000_000_000_000 + i, b'{"op":"pong","pad":"%s"}' % (b"x" * 50), False)
    rec.close()
    assert rec.stats.dropped_frames > 0
    recs = [r for f in archive.archive_files(tmp_path) for r in archive.read_archive(f)]
    losses = [r.data for r in recs if r.kind == "L"]
    assert losses and sum(x["dropped_frames"] for x in losses) == rec.stats.dropped_frames
    assert sum(r.is_frame for r in recs) + rec.stats.dropped_frames == 20_000
    notes = [e for e in archive.decode_archive(tmp_path) if isinstance(e, m.Notice)]
    assert notes and notes[0].code == "recorder-drop"


def test_disk_full_stops_the_recorder_with_a_clear_error_and_keeps_what_is_there(tmp_path, monkeypatch):
    rec = Recorder(tmp_path, raw=False, roll_size=1, batch_rows=100)  # every batch is published at once
    for i in range(3):
        rec.add_many(trades(100, ns=1_732_000_000_000_000_000 + i * 1000))
        rec.flush(wait=True)
    good = published(tmp_path)
    assert len(good) == 3

    def full(self, it):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(Writer, "_rows", full)
    with pytest.raises(RecorderError, match="disk full") as ei:
        for ev in trades(10_000, ns=1_732_000_000_000_100_000):
            rec.add(ev)
            time.sleep(0.0001)
    assert "No space left on device" in str(ei.value) and "recover" in str(ei.value)
    with pytest.raises(RecorderError):
        rec.close()
    # what was published before the error is all there (its parts may have been merged meanwhile)
    assert sum(pq.read_table(p).num_rows for p in published(tmp_path)) == 300


def test_listing_a_live_dataset_survives_the_recorder_emptying_its_trash(tmp_path, monkeypatch):
    """A reader (``tickwire verify``/``decode`` on a live dataset, or CI's own helper) once died with
    FileNotFoundError: it walked into ``_trash/stage-*`` just as the recorder removed it."""
    rec = Recorder(tmp_path, roll_size=1, batch_rows=100)
    rec.connection("bybit/public/linear#1", "bybit", "public/linear")
    rec.raw("bybit/public/linear#1", 1_732_000_000_000_000_000, b'{"i":1}', False)
    rec.add_many(trades(100, ns=1_732_000_000_000_000_000))
    rec.close()
    stage = tmp_path / "_trash" / "stage-0123"
    (stage / "sub").mkdir(parents=True)
    real = os.scandir

    def vanishing(path="."):
        if "_trash" in os.fspath(path):          # the recorder's purge wins the race for this directory
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", vanishing)
    assert [p.name for p in archive.archive_files(tmp_path)] and published(tmp_path)
    assert all("_trash" not in p.parts and "_wal" not in p.parts for p in published(tmp_path))


def test_unwritable_output_is_a_clear_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RecorderError, match="cannot record to"):
        Recorder(f / "data")
    import tickwire.cli as cli

    res = CliRunner().invoke(cli.app, ["record", "bybit.linear:publicTrade:BTCUSDT", "--out", str(f / "data")])
    assert res.exit_code == 4
    assert "cannot record to" in res.output and "Not a directory" in res.output


def test_a_new_recorder_merges_a_killed_ones_parts_but_not_a_running_ones(tmp_path):
    a = Recorder(tmp_path, raw=False)
    a.add_many(trades(10))
    a.flush(wait=True)                        # published at once: a flush part
    a.add_many(trades(10, ns=1_732_000_000_000_100_000))
    a.flush(wait=True)
    assert len(published(tmp_path)) == 2 and pq.read_table(tmp_path / "trades").num_rows == 20
    b = Recorder(tmp_path, raw=False)         # a is alive (holds its lock): left alone
    assert b.recovered.skipped_live == 1 and len(published(tmp_path)) == 2
    b.close()
    a.writer._publish_all = lambda: None      # simulate a dying without merging its parts
    a.writer.stop()
    os.close(a._lock)
    c = Recorder(tmp_path, raw=False)
    assert c.recovered.parts == 1 and c.recovered.rows == 20   # a's two parts, merged into one file
    c.close()
    assert len(published(tmp_path)) == 1 and pq.read_table(tmp_path / "trades").num_rows == 20
    assert not (tmp_path / "_trash").exists()
