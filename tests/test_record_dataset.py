"""Issue 16: a recording is queryable while it runs, never shows duplicates, and is compacted and
verified. Datasets spanning many hours are generated quickly by writing events with synthetic
receipt times through the Recorder."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import msgspec
import pyarrow.parquet as pq
import pytest

import tickwire
from tickwire import model as m
from tickwire.book import Book
from tickwire.net.tap import SocketInfo
from tickwire.sinks.dataset import compact, live_writers, partitions
from tickwire.sinks.query import connect, query
from tickwire.sinks.recorder import Recorder
from tickwire.sinks.verify import verify

NS = 1_732_000_000_000_000_000          # 2024-11-19 07:06:40 UTC
SEC = 1_000_000_000
BOOK = "bybit.linear:orderbook.50:BTCUSDT"
BOOK2 = "bybit.linear:orderbook.50:ETHUSDT"
TRADES = "bybit.linear:publicTrade:BTCUSDT"
CONN = "bybit/public/linear#1"


def published(root: Path, kind: str) -> list[Path]:
    return sorted(p for p in (root / kind).rglob("*.parquet") if "_wal" not in p.parts)


def trade(i: int, ns: int, tid: str | None = None) -> m.Trade:
    return m.Trade(venue="bybit", market="linear", symbol="BTCUSDT", stream=TRADES, recv_ns=ns, exch_ns=NS + i * SEC,
                   price=f"{60000 + i % 50}.5", size="0.001", side="buy" if i % 2 else "sell",
                   trade_id=tid or f"t{i:08d}", seq=i)


def book_msg(stream: str, seq: int, ns: int, snapshot: bool = False, prev: int | None = None) -> m.BookUpdate:
    return m.BookUpdate(venue="bybit", market="linear", symbol=stream.rsplit(":", 1)[1], stream=stream, recv_ns=ns,
                        exch_ns=NS + seq * 1_000_000, bids=[(f"{100 + seq % 7}.5", str(seq % 5))],
                        asks=[(f"{200 + seq % 3}.0", "1")] if seq % 4 else [], snapshot=snapshot, seq=seq,
                        prev_seq=seq - 1 if prev is None else prev)


# --------------------------------------------------------------------------- queryable while running

async def test_a_running_recorder_is_queryable_within_5_s_of_its_first_data(tmp_path):
    pytest.importorskip("tickwire.sim")
    from tickwire.sim import Simulator

    out = tmp_path / "data"
    got: dict[str, float] = {}
    async with Simulator(venues=["bybit"], seed=4, options={"bybit": {"speed": 5}}) as sim:
        rec = Recorder(out)  # tickwire record's defaults: flush every 2 s, roll every 300 s
        async with tickwire.stream(TRADES, BOOK, endpoints=sim.endpoints) as feed:
            rec.attach(feed)
            loop = asyncio.get_running_loop()
            first = None
            deadline = loop.time() + 20
            async for ev in feed:
                rec.add(ev)
                if first is None and isinstance(ev, m.Trade):
                    first = loop.time()
                if first is None or loop.time() < first + 0.2:
                    continue
                # every reader, while the recorder runs (off the loop: it keeps recording)
                n = await loop.run_in_executor(None, _counts, out)
                if n["tickwire"] and n["duckdb"] and n["pandas"] and "at" not in got:
                    got.update(n, at=loop.time() - first)
                    break
                if loop.time() > deadline:
                    break
        rec.close()
    assert got, "nothing was queryable while recording"
    assert got["at"] <= 5.0, got
    assert not (out / "_trash").exists()


def _counts(out: Path) -> dict[str, int]:
    import pandas as pd

    n = {}
    n["tickwire"] = int(query("SELECT count(*) AS n FROM trades", data=out)["n"][0])
    con = duckdb.connect()
    try:
        n["duckdb"] = con.sql(f"SELECT count(*) FROM read_parquet('{out}/trades/**/*.parquet', hive_partitioning = "
                              "true)").fetchall()[0][0] if list((out / "trades").rglob("*.parquet")) else 0
    finally:
        con.close()
    n["pandas"] = len(pd.read_parquet(out / "trades")) if list((out / "trades").rglob("*.parquet")) else 0
    return n


def test_flushed_rows_are_published_at_each_flush_and_merged_at_the_roll(tmp_path):
    rec = Recorder(tmp_path, raw=False, roll_interval=3600)
    for k in range(3):
        rec.add_many(trade(i, NS + i) for i in range(k * 100, (k + 1) * 100))
        rec.flush(wait=True)
        assert len(published(tmp_path, "trades")) == k + 1          # one small part per flush
        assert query("SELECT count(*) AS n FROM trades", data=tmp_path)["n"][0] == (k + 1) * 100
    rec.close()
    files = published(tmp_path, "trades")
    assert len(files) == 1 and "-f" not in files[0].name           # merged into one file at the roll
    t = pq.read_table(files[0])
    assert t.num_rows == 300 and t.column("recv_ns").to_pylist() == sorted(t.column("recv_ns").to_pylist())
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"


# --------------------------------------------------------------------------- duplicates

def test_two_recorders_a_rerun_and_a_resent_snapshot_give_no_duplicate_trade_ids(tmp_path):
    # two recorders with the same streams at the same time (their receipt times differ)
    a = Recorder(tmp_path, raw=False)
    b = Recorder(tmp_path, raw=False)
    for i in range(500):
        a.add(trade(i, NS + i * SEC))
        b.add(trade(i, NS + i * SEC + 1_234))
        a.add(book_msg(BOOK, i + 1, NS + i * SEC + 5))
        b.add(book_msg(BOOK, i + 1, NS + i * SEC + 1_239))
    a.close()
    b.close()
    # a restarted recorder: the venue re-sends its last 20 trades, and a book snapshot
    c = Recorder(tmp_path, raw=False)
    for i in range(480, 520):
        c.add(trade(i, NS + 600 * SEC + i))
    c.add(book_msg(BOOK, 500, NS + 601 * SEC, snapshot=True, prev=0))
    c.add(book_msg(BOOK, 501, NS + 601 * SEC + 1))
    c.close()
    # and a re-run of the same recording into the same folder (same receipt times: exact copies)
    d = Recorder(tmp_path, raw=False)
    for i in range(500):
        d.add(trade(i, NS + i * SEC))
    d.close()

    n, distinct = query("SELECT count(*), count(DISTINCT trade_id) FROM trades", data=tmp_path).iloc[0].tolist()
    assert n == distinct == 520
    stored = query("SELECT count(*) AS n FROM trades_all", data=tmp_path)["n"][0]
    assert stored == 500 + 500 + 40 + 500
    # each trade is kept once, as first received
    first = query("SELECT min(recv_ns) AS t FROM trades WHERE trade_id = 't00000007'", data=tmp_path)["t"][0]
    assert first == NS + 7 * SEC
    # book messages: once each; the re-sent snapshot is a message of its own (it resets the book)
    bc = query("SELECT seq, snapshot, count(*) AS n FROM book_changes GROUP BY ALL ORDER BY ALL", data=tmp_path)
    assert (bc.groupby(["seq", "snapshot"]).size() == 1).all()
    assert bc.n.sum() == query("SELECT count(*) AS n FROM (SELECT DISTINCT seq, snapshot, side, price, size FROM "
                               "book_changes_all)", data=tmp_path)["n"][0]
    assert {(500, True), (500, False), (501, False)} <= set(zip(bc.seq, bc.snapshot))

    rep = verify(tmp_path)
    tr = [s for s in rep.streams if s.table == "trades"][0]
    assert tr.duplicates == stored - 520 and tr.unique_rows == 520
    dup_books = (query("SELECT count(*) AS n FROM book_changes_all", data=tmp_path)["n"][0]
                 - query("SELECT count(*) AS n FROM book_changes", data=tmp_path)["n"][0])
    assert dup_books > 0
    # compact: one file per partition, duplicates gone from the files, queries unchanged
    before = query("SELECT trade_id, recv_ns, price FROM trades ORDER BY trade_id", data=tmp_path)
    r = compact(tmp_path)
    assert r.duplicates == (stored - 520) + dup_books and r.partitions == 2
    assert len(published(tmp_path, "trades")) == 1
    assert query("SELECT count(*) AS n FROM trades_all", data=tmp_path)["n"][0] == 520
    after = query("SELECT trade_id, recv_ns, price FROM trades ORDER BY trade_id", data=tmp_path)
    assert after.equals(before)
    assert all(p.clean for p in partitions(tmp_path, "trades"))
    assert verify(tmp_path).streams[0].duplicates == 0


def test_one_recorder_drops_what_the_venue_sends_again(tmp_path):
    with Recorder(tmp_path, raw=False) as rec:
        for i in range(100):
            rec.add(trade(i, NS + i))
        for i in range(90, 110):                      # re-sent after a reconnect
            rec.add(trade(i, NS + 1000 + i))
        rec.add(book_msg(BOOK, 7, NS + 5))
        rec.add(book_msg(BOOK, 7, NS + 6))            # the same message twice in a row
        t = m.Ticker(venue="bybit", market="linear", symbol="BTCUSDT", stream="bybit.linear:tickers:BTCUSDT",
                     exch_ns=NS, recv_ns=NS + 1, last="1.5")
        rec.add(t)
        rec.add(msgspec.structs.replace(t, recv_ns=NS + 2))   # the latest state, re-sent
        rec.add(msgspec.structs.replace(t, recv_ns=NS + 3, exch_ns=NS + 1, last="1.6"))
    assert pq.read_table(tmp_path / "trades").num_rows == 110
    assert pq.read_table(tmp_path / "book_changes").num_rows == 2   # one message: a bid and an ask
    assert pq.read_table(tmp_path / "tickers").column("last").to_pylist() == ["1.5", "1.6"]
    assert rec.summary()["duplicates"] == {"trades": 10, "book_changes": 1, "tickers": 1}


def test_book_levels_round_trip_exactly_whatever_their_text(tmp_path):
    weird = [('a"b', "1"), ("1\\2", "0"), ("[x]", "2,5"), ("ü", "3", "0", "7")]
    with Recorder(tmp_path, raw=False, book_snapshot_interval=0) as rec:
        rec.add(m.BookUpdate(venue="okx", stream="okx:books:X", symbol="X", recv_ns=NS, bids=weird[:2],
                             asks=weird[2:], seq=3, prev_seq=2))
        rec.add(m.BookUpdate(venue="okx", stream="okx:books:X", symbol="X", recv_ns=NS + 1,
                             bids=[["100.5", "2", "0", "1"]], asks=[], seq=4, prev_seq=3))
    rows = pq.read_table(tmp_path / "book_changes").to_pylist()
    assert [(r["side"], r["price"], r["size"]) for r in rows] == [
        ("bid", 'a"b', "1"), ("bid", "1\\2", "0"), ("ask", "[x]", "2,5"), ("ask", "ü", "3"), ("bid", "100.5", "2")]


# --------------------------------------------------------------------------- many hours: compact and verify

HOURS = 30          # from 07:06 UTC on one day to 13:06 the next: two date partitions
STEP = 2 * SEC      # one book message per stream every 2 s of simulated time


def _day_of_data(root: Path) -> dict:
    """30 h of two books and a trade stream, written by two recorders (one joins for an hour, a
    duplicate of the other's data), with known gaps, Gap events and disconnections."""
    expect = {"breaks": {BOOK: 0, BOOK2: 0}, "gap_events": {BOOK: 0, BOOK2: 0}, "down": 0, "dups": 0}
    rec = Recorder(root, raw=False, book_snapshot_interval=0, flush_interval=3600, roll_interval=3600)
    rec.opened(SocketInfo(id=CONN + ".1", conn=CONN, venue="bybit", endpoint="public/linear", url="ws://sim",
                          streams=(BOOK, BOOK2, TRADES), opened_ns=NS - SEC))
    rec.add(m.Connected(venue="bybit", conn=CONN, recv_ns=NS - SEC, url="ws://sim"))
    seq = {BOOK: 0, BOOK2: 0}
    n = HOURS * 3600 * SEC // STEP
    for k in range(n):
        ns = NS + k * STEP
        for s in (BOOK, BOOK2):
            seq[s] += 1
            if s == BOOK and k in (1000, 20_000, 40_000):     # a jump in the chain: a real gap
                seq[s] += 5
                expect["breaks"][s] += 1
            rec.add(book_msg(s, seq[s], ns + (s == BOOK2)))      # prev_seq = seq - 1: after a jump, a break
        if k % 3 == 0:
            rec.add(trade(k, ns + 7))
        if k in (5_000, 30_000):                                 # the feed said so: Gap, then a resync
            rec.add(m.Gap(venue="bybit", stream=BOOK2, conn=CONN, recv_ns=ns + 9, reason="test gap"))
            expect["gap_events"][BOOK2] += 1
        if k in (10_000, 50_000):                                 # disconnected for 30 s
            rec.add(m.Disconnected(venue="bybit", conn=CONN, recv_ns=ns + 10, reason="test drop"))
            rec.add(m.Connected(venue="bybit", conn=CONN, recv_ns=ns + 10 + 30 * SEC, url="ws://sim"))
            expect["down"] += 1
        if k % 2000 == 0:
            rec.flush()                                          # many small parts
    rec.flush(wait=True)
    rec.writer._publish_all = rec.writer._write_parts            # as if killed before its roll: parts stay
    rec.close()
    # a second recorder recorded hour 10 too (the same venue messages, received a bit later)
    two = Recorder(root, raw=False, book_snapshot_interval=0)
    k0 = 10 * 3600 * SEC // STEP
    s2 = {BOOK: k0 + 1 + 5, BOOK2: k0 + 1}  # (the chain of BOOK had one jump of 5 before k0)
    for k in range(k0, k0 + 3600 * SEC // STEP):
        ns = NS + k * STEP
        for s in (BOOK, BOOK2):
            two.add(book_msg(s, s2[s], ns + 777 + (s == BOOK2)))
            expect["dups"] += 1 + (s2[s] % 4 != 0)   # rows of that message (bid, ask when seq % 4)
            s2[s] += 1
    two.close()
    expect["msgs"] = n
    return expect


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("day") / "data"
    t0 = time.monotonic()
    expect = _day_of_data(root)
    expect["write_s"] = time.monotonic() - t0
    return root, expect


def test_verify_reports_exactly_the_gaps_duplicates_and_disconnections_of_a_30_hour_dataset(day):
    root, expect = day
    assert sorted({p.date for p in partitions(root, "book_changes")}) == ["2024-11-19", "2024-11-20"]
    rep = verify(root)
    books = {s.stream: s for s in rep.streams if s.table == "book_changes"}
    for s in (BOOK, BOOK2):
        q = books[s]
        assert q.messages == expect["msgs"]
        assert q.seq_breaks == expect["breaks"][s], (s, q)
        assert q.gap_events == expect["gap_events"][s]
        assert q.down_periods == expect["down"] and abs(q.down_s - 60.0) < 1e-6
        assert q.span_s > (HOURS - 0.1) * 3600
    assert books[BOOK].duplicates + books[BOOK2].duplicates == expect["dups"]
    tr = [s for s in rep.streams if s.table == "trades"][0]
    assert tr.duplicates == 0 and tr.down_periods == expect["down"] and tr.gap_events == 0
    assert rep.connections[0]["down_periods"] == expect["down"]
    js = json.loads(json.dumps(rep.to_dict()))
    assert {x["stream"] for x in js["streams"]} == {BOOK, BOOK2, TRADES} and js["ok"] is False


def test_compact_a_30_hour_dataset_into_one_file_per_partition_atomically(day):
    root, expect = day
    files_before = published(root, "book_changes")
    assert len(files_before) > 4
    stored = query("SELECT count(*) AS n FROM book_changes_all", data=root)["n"][0]
    unique = query("SELECT count(*) AS n FROM book_changes", data=root)["n"][0]
    assert stored - unique == expect["dups"]
    # a reader querying the whole time sees each partition's old files or its new ones, never a
    # mix and never a partition missing: every row stored (the _all view), or each row once.
    # (DuckDB's own globs can miss a partition swapped while they list it: it lists a
    # directory, then looks the entries up by path. tickwire.query lists the files itself.)
    seen: set[int] = set()
    dedup: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(int(query("SELECT count(*) AS n FROM book_changes_all", data=root)["n"][0]))
            dedup.add(int(query("SELECT count(*) AS n FROM book_changes", data=root)["n"][0]))

    th = threading.Thread(target=reader)
    th.start()
    try:
        progress = []
        rep = compact(root, progress=lambda done, total, label, rows: progress.append((done, total)))
    finally:
        stop.set()
        th.join()
    assert seen <= {stored, unique}, seen
    assert dedup == {unique}, dedup
    assert rep.rows_in - rep.rows_out == expect["dups"] and progress[-1][0] == progress[-1][1] == rep.partitions
    for kind in ("book_changes", "trades", "status"):
        assert [len(p.files) for p in partitions(root, kind)] == [1] * len(partitions(root, kind))
    assert query("SELECT count(*) AS n FROM book_changes_all", data=root)["n"][0] == unique
    v = verify(root)
    assert sum(s.duplicates for s in v.streams) == 0
    assert {s.stream: s.seq_breaks for s in v.streams if s.table == "book_changes"} == expect["breaks"]
    again = compact(root)
    assert again.partitions == 0                                   # nothing left to do


def test_compact_leaves_a_running_recorder_alone_and_respects_before(tmp_path):
    old = Recorder(tmp_path, raw=False)
    for k in range(3):
        old.add_many(trade(i, NS + i * SEC) for i in range(k * 10, k * 10 + 10))
        old.flush(wait=True)
    old.close()                                   # merged: one file on 2024-11-19
    live = Recorder(tmp_path, raw=False, roll_interval=3600)
    for k in range(3):
        live.add_many(trade(i, NS + i * SEC) for i in range(100 + k * 10, 110 + k * 10))
        live.add_many(trade(i, NS + 86_400 * SEC + i) for i in range(200 + k * 10, 210 + k * 10))
        live.flush(wait=True)
    assert live.writer_id in live_writers(tmp_path)
    mine = {p.name for p in published(tmp_path, "trades") if live.writer_id in p.name}
    assert len(mine) == 6
    rep = compact(tmp_path, before="2024-11-20")
    assert rep.partitions == 0 and rep.skipped_live == 3          # only the old file there, and the live one's
    assert mine <= {p.name for p in published(tmp_path, "trades")}
    live.close()
    rep = compact(tmp_path, before="2024-11-20")
    assert rep.partitions == 1                                    # 2024-11-19: the old file + the live one's merge
    assert [len(p.files) for p in partitions(tmp_path, "trades")] == [1, 1]
    assert query("SELECT count(*) AS n FROM trades", data=tmp_path)["n"][0] == 90


# --------------------------------------------------------------------------- the demo

def tw(*args, cwd=None, timeout=90):
    return subprocess.run([sys.executable, "-m", "tickwire.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


def test_the_demo_writes_a_fresh_folder_and_twice_into_one_gives_no_duplicate_trade_ids(tmp_path):
    pytest.importorskip("tickwire.sim")
    res = tw("demo", "--duration", "2", "--no-dashboard", "--venues", "bybit,okx", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    made = [p for p in tmp_path.iterdir() if p.name.startswith("demo-")]
    assert len(made) == 1 and f"./{made[0].name}" in res.stdout      # it says where
    out = tmp_path / "again"
    for _ in range(2):
        res = tw("demo", "--duration", "2", "--no-dashboard", "--venues", "bybit,okx", "--out", str(out))
        assert res.returncode == 0, res.stdout + res.stderr
    q = tw("query", "--data", str(out), "--format", "json",
           "select venue, count(*) AS n, count(distinct trade_id) AS d from trades group by venue")
    rows = [json.loads(x) for x in q.stdout.splitlines()]
    assert rows and all(r["n"] == r["d"] > 0 for r in rows), rows
    v = tw("verify", "--data", str(out), "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["streams"]



def test_verify_into_a_file_or_pipe_prints_every_column_whole(tmp_path):
    """``tickwire verify --data D > report.txt``: no column cut to fit 80 characters, even with
    OKX DEX's long stream names."""
    long = "okxdex:trades:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
    with Recorder(tmp_path, raw=False) as rec:
        for i in range(10):
            rec.add(m.Trade(venue="okxdex", market="", symbol=long.split(":", 2)[2], stream=long, recv_ns=NS + i,
                          price="1", size="2", side="buy", trade_id=str(i)))
            rec.add(trade(i, NS + i))
    t = tw("verify", "--data", str(tmp_path))
    assert t.returncode == 0, t.stderr
    assert f" {long} " in t.stdout and "…" not in t.stdout, t.stdout
    assert all(h in t.stdout for h in ("venue", "rows", "dropped", "breaks", "all ok"))


def test_publish_roll_keeps_the_write_ahead_scheme(tmp_path):
    """publish="roll" (checkpointing consumers such as the bus recorder): nothing is published
    before the roll; the write-ahead files hold every flushed batch and recovery converts them."""
    rec = Recorder(tmp_path, raw=False, publish="roll")
    rec.add_many(trade(i, NS + i) for i in range(50))
    rec.flush(wait=True)
    assert not published(tmp_path, "trades")
    wal = list((tmp_path / "_wal").rglob("*.parquet.wal"))
    assert len(wal) == 1 and wal[0].stat().st_size > 0
    rec.close()
    assert pq.read_table(tmp_path / "trades").num_rows == 50
    assert len(published(tmp_path, "trades")) == 1 and not (tmp_path / "_wal").exists()


# --------------------------------------------------------------------------- floats beside the exact strings

def test_every_decimal_column_has_a_float_twin_in_the_views_and_none_on_disk(tmp_path):
    """Floats without a cast: ``price_f`` (and ``bid_price_f`` lists) are computed by the views;
    the files hold only the exact strings; a young dataset's empty views have them too."""
    book = Book("bybit", "BTCUSDT")
    book.apply_snapshot([("100.5", "2"), ("100.0", "3.25")], [("101", "0.5")], seq=5)
    with Recorder(tmp_path, raw=False, book_snapshot_interval=1.0) as rec:
        for i in range(20):
            rec.add(trade(i, NS + i))
        rec.add(m.Trade(venue="bybit", market="linear", symbol="BTCUSDT", stream=TRADES, recv_ns=NS + 99,
                        price="1e-8", size="0.00100000", side="buy", trade_id="tiny"))
        rec.add(m.BookUpdate(venue="bybit", market="linear", symbol="BTCUSDT", stream=BOOK, recv_ns=NS, seq=5,
                             bids=[("100.5", "2"), ("100.0", "3.25")], asks=[("101", "0.5")], snapshot=True,
                             book=book))
    t = query("select price, price_f, size, size_f from trades order by recv_ns", data=tmp_path)
    assert len(t) == 21
    assert [float(p) for p in t["price"]] == t["price_f"].tolist()
    assert t["price_f"].iloc[-1] == 1e-8 and t["size"].iloc[-1] == "0.00100000"
    s = query("select bid_price_f, bid_size_f, ask_price_f from book_snapshots", data=tmp_path)
    assert list(s["bid_price_f"][0]) == [100.5, 100.0] and list(s["bid_size_f"][0]) == [2.0, 3.25]
    assert list(s["ask_price_f"][0]) == [101.0]
    on_disk = pq.read_table(published(tmp_path, "trades")[0]).column_names
    assert "price" in on_disk and not any(c.endswith("_f") for c in on_disk)
    assert len(query("select price_f, avg_price_f from orders", data=tmp_path)) == 0   # no file yet
