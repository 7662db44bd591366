"""Computed streams (SPEC@VIEW): the spec syntax, the computations, and the promise that a live
computed stream equals the one computed from the recording of the same run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

import tickwire
from tickwire.derive.engine import BookDeriver, TradeDeriver
from tickwire.derive.offline import derive, derive_events
from tickwire.derive.spec import parse_view
from tickwire.model import BookSnapshot, Quote, TradeBar, to_dict
from tickwire.sinks import Recorder
from tickwire.subscription import SpecError
from tickwire.venues import parse, parse_many

S = 1_000_000_000


# --------------------------------------------------------------------------- syntax


@pytest.mark.parametrize("text,canon", [
    ("snapshot10_1s", "snapshot10_1s"), ("snapshot10_1000ms", "snapshot10_1s"), ("snapshot25_100ms", "snapshot25_100ms"),
    ("snapshot5_60s", "snapshot5_1m"), ("snapshot5", "snapshot5"), ("quotes", "quotes"), ("bars60s", "bars1m"),
    ("bars1m", "bars1m"), ("bars24h", "bars1d"), ("bars100ticks", "bars100ticks"), ("bars1e6value", "bars1000000value"),
    ("bars0.50vol", "bars0.5vol"),
])
def test_views_have_one_canonical_spelling(text, canon):
    assert parse_view(text).text == canon


@pytest.mark.parametrize("spec,why", [
    ("okx:trades:BTC-USDT@quotes", "book stream"), ("okx:books:BTC-USDT@bars1m", "trade stream"),
    ("okx:books:BTC-USDT@snapshot0_1s", "depth"), ("okx:books:BTC-USDT@snapshot5_0s", "positive"),
    ("okx:books:BTC-USDT@bars", "bad view"), ("okx:trades:BTC-USDT@bars0ticks", "positive"),
    ("okx:books:BTC-USDT@candles", "expected snapshot"),
])
def test_bad_views_say_what_is_allowed(spec, why):
    with pytest.raises(SpecError, match=why):
        parse(spec)


def test_every_venue_takes_the_same_views():
    for base in ("okx:books:BTC-USDT", "bybit.linear:orderbook.50:BTCUSDT", "bge:orderbook.0:BTC_USDT"):
        assert parse(f"{base}@snapshot10_1s").spec == f"{base}@snapshot10_1s"
    assert parse("okx:book:BTC-USDT@quotes").spec == "okx:books:BTC-USDT@quotes"  # the base's canonical spec
    for base in ("okx:trades:BTC-USDT", "bybit.spot:publicTrade:BTCUSDT", "bge:fills:BTC_USDT"):
        assert parse(f"{base}@bars1m").base.spec == base


def test_a_plain_feed_refuses_computed_specs_with_a_pointer():
    with pytest.raises(SpecError, match="tickwire.stream"):
        parse_many(["okx:books:BTC-USDT@quotes"])


# --------------------------------------------------------------------------- computations


def test_grid_snapshots_take_the_book_before_each_boundary():
    d = BookDeriver("okx", "spot", "X")
    d.add_view("s@snapshot2_1s", parse_view("snapshot2_1s"))
    out: list = []
    d.message(int(0.5 * S), 1, 1, True, [("10", "1"), ("9", "1"), ("8", "1")], [("11", "1")], out)
    d.message(int(1.0 * S), 2, 2, False, [("10", "5")], [], out)      # at the boundary: after it
    d.message(int(3.2 * S), 3, 3, False, [("10", "0")], [], out)      # boundaries 2 s and 3 s: same book
    assert [e.recv_ns for e in out] == [1 * S, 2 * S, 3 * S]
    assert out[0].bids == [("10", "1"), ("9", "1")] and out[0].seq == 1
    assert out[1].bids == [("10", "5"), ("9", "1")] and out[2].bids == out[1].bids and out[2].seq == 2
    d.gap(int(4.5 * S), out)                                          # 4 s emitted, then invalid
    d.message(int(6.5 * S), 4, 4, False, [("7", "1")], [], out)       # ignored: invalid
    assert [e.recv_ns for e in out][-1] == 4 * S and len(out) == 4
    d.message(int(7.1 * S), 5, 5, True, [("1", "1")], [("2", "1")], out)
    d.message(int(8.0 * S), 6, 6, False, [], [("2", "3")], out)
    assert out[-1].recv_ns == 8 * S and out[-1].bids == [("1", "1")] and out[-1].asks == [("2", "1")]


def test_quotes_and_on_change_snapshots():
    d = BookDeriver("okx", "spot", "X")
    d.add_view("q", parse_view("quotes"))
    d.add_view("c", parse_view("snapshot1"))
    out: list = []
    d.message(1, 0, 1, True, [("10", "1")], [("11", "1")], out)
    d.message(2, 0, 2, False, [("9", "1")], [], out)     # below the best: nothing changes at the top
    d.message(3, 0, 3, False, [], [("11", "2")], out)    # best ask size: a quote and a snapshot
    d.message(4, 0, 3, False, [], [("11", "2")], out)    # the same message again (seq 3): skipped
    kinds = [(type(e).__name__, e.recv_ns) for e in out]
    assert kinds == [("BookSnapshot", 1), ("Quote", 1), ("BookSnapshot", 3), ("Quote", 3)]
    assert out[-1].ask_size == "2" and out[-1].bid == "10"


def test_trade_bars_by_time_ticks_volume_and_value():
    d = TradeDeriver("okx", "spot", "X")
    for v in ("bars1s", "bars2ticks", "bars1vol", "bars100value"):
        d.add_view(v, parse_view(v))
    out: list = []
    trades = [(0.1, "10", "0.5", "buy", "1"), (0.5, "12", "0.25", "sell", "2"), (0.7, "11", "0.5", "buy", "3"),
              (0.7, "11", "0.5", "buy", "3"),  # the venue again: skipped
              (2.3, "9.5", "10", "sell", "4")]
    for t, p, s, side, tid in trades:
        d.trade(int(t * S) + 7, int(t * S), "spot", "X", p, s, side, tid, out)
    time_bars = [e for e in out if e.stream == "bars1s"]
    assert len(time_bars) == 1
    b = time_bars[0]
    assert (b.start_ns, b.end_ns, b.open, b.high, b.low, b.close, b.trades) == (0, S, "10", "12", "10", "11", 3)
    assert b.volume == "1.25" and b.buy_volume == "1.0" and b.sell_volume == "0.25"
    assert b.value == "13.50"  # exact: 5.0 + 3.00 + 5.5
    assert b.recv_ns == int(2.3 * S) + 7 and b.vwap == pytest.approx(13.5 / 1.25)
    ticks = [e for e in out if e.stream == "bars2ticks"]
    assert [(e.open, e.close, e.trades) for e in ticks] == [("10", "12", 2), ("11", "9.5", 2)]
    vol = [e for e in out if e.stream == "bars1vol"]
    assert [(e.volume, e.trades) for e in vol] == [("1.25", 3), ("10", 1)]
    val = [e for e in out if e.stream == "bars100value"]
    assert [(e.value, e.trades) for e in val] == [("108.50", 4)]
    assert Decimal(val[0].value) == Decimal("10") * Decimal("0.5") + 12 * Decimal("0.25") + 11 * Decimal("0.5") + 95


# --------------------------------------------------------------------------- live == recording


def _comparable(ev):
    return to_dict(ev)


async def _live_and_recorded(tmp_path, base_specs, views, seconds, sim):
    data = tmp_path / "data"
    derived = [f"{b}@{v}" for b in base_specs for v in views.get(parse(b).kind, ())]
    rec = Recorder(str(data))
    live: dict[str, list] = {d: [] for d in (parse(x).spec for x in derived)}
    raw = 0
    async with tickwire.stream(*base_specs, *derived, sim=sim) as feed:
        rec.attach(feed)
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        async for ev in feed:
            if isinstance(ev, (BookSnapshot, Quote, TradeBar)):
                live[ev.stream].append(ev)
            else:
                rec.add(ev)
                raw += 1
            if loop.time() > end and feed.backlog() == 0:
                break
    rec.close()
    got = derive_events(data, derived)
    return live, got, raw, data


async def test_live_computed_streams_equal_the_ones_computed_from_the_recording(tmp_path):
    bases = ["okx:books:BTC-USDT", "okx:trades:BTC-USDT", "bybit.linear:orderbook.50:BTCUSDT",
             "bybit.linear:publicTrade:BTCUSDT", "bge:orderbook.0:BTC_USDT", "bge:fills:BTC_USDT"]
    views = {"book": ["snapshot5_100ms", "snapshot3", "quotes"], "trades": ["bars500ms", "bars7ticks", "bars0.05vol",
                                                                              "bars2000value"]}
    # a gap and a resync on each chained book, and a dropped connection, in the middle of the run
    sim = {"faults": ["okx:skip-seq@1.5s", "bybit:skip-u@1.5s", "bge:drop@2.5s"], "seed": 3}
    live, got, raw, data = await _live_and_recorded(tmp_path, bases, views, 4.0, sim)
    assert raw > 200
    assert set(got) == set(live)
    for spec, evs in live.items():
        want = [_comparable(e) for e in evs]
        have = [_comparable(e) for e in got[spec]]
        assert have == want, f"{spec}: live {len(want)} events, from the recording {len(have)}"
    empty = [s for s, evs in live.items() if not evs]
    assert len(empty) <= 3 and all(s.startswith("bge:fills") for s in empty), empty  # BGE's sim trades are small
    snaps = live["okx:books:BTC-USDT@snapshot5_100ms"]
    assert len(snaps) > 20 and all(e.recv_ns % 100_000_000 == 0 for e in snaps)
    # the faults did break the books (and the computed streams went through it identically)
    gaps = tickwire.query("SELECT DISTINCT venue FROM status WHERE type = 'Gap'", data=str(data))
    assert set(gaps.venue) == {"okx", "bybit", "bge"}


def test_derive_command_writes_tables(tmp_path):
    data = tmp_path / "data"
    asyncio.run(_record(data))
    out = tmp_path / "derived"
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "derive", "--data", str(data), "--out", str(out),
                        "okx:books:*@snapshot5_200ms", "okx:trades:BTC-USDT@bars1s", "okx:books:BTC-USDT@quotes"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "snapshot5_200ms" in r.stdout and "rows" in r.stdout
    import pyarrow.parquet as pq

    t = pq.read_table(out / "snapshot5_200ms", partitioning="hive")
    assert t.num_rows > 5 and {"bid_price", "bid_price_f", "mid", "spread", "venue", "date"} <= set(t.column_names)
    row = t.slice(0, 1).to_pylist()[0]
    assert row["mid"] == pytest.approx((float(row["bid_price"][0]) + float(row["ask_price"][0])) / 2)
    assert pq.read_table(out / "bars1s", partitioning="hive").num_rows >= 1
    assert pq.read_table(out / "quotes", partitioning="hive").num_rows >= 1
    # a spec matching nothing is an error that says what is recorded
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "derive", "--data", str(data), "okx:books:ETH-USDT@quotes"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not recorded" in r.stderr and "okx:books:BTC-USDT" in r.stderr
    # a partition two recorders wrote: said, since their common rows would be applied twice
    import shutil

    f = next((data / "book_changes").glob("venue=okx/date=*/part-*.parquet"))
    stamp, source, rest = f.name.split("-", 3)[1:]
    shutil.copy(f, f.with_name(f"part-{stamp}-{'f' * len(source)}-{rest}"))
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "derive", "--data", str(data), "--out", str(out),
                        "okx:books:BTC-USDT@quotes"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "several recorders" in r.stderr


async def _record(data: Path, seconds: float = 2.0) -> None:
    rec = Recorder(str(data))
    async with tickwire.stream("okx:books:BTC-USDT", "okx:trades:BTC-USDT", sim=True) as feed:
        rec.attach(feed)
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        async for ev in feed:
            rec.add(ev)
            if loop.time() > end:
                break
    rec.close()


def test_derived_tables_are_queryable_by_their_view_names(tmp_path):
    """After `tickwire derive --data DIR` (tables under DIR/derived), `tickwire query --data DIR`
    and `tickwire.query()` know them by name, with recv_time like every table."""
    data = tmp_path / "data"
    asyncio.run(_record(data))
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "derive", "--data", str(data),
                        "okx:books:BTC-USDT@snapshot5_200ms", "okx:trades:BTC-USDT@bars500ms",
                        "okx:trades:BTC-USDT@bars0.01vol"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import pyarrow.parquet as pq

    want = pq.read_table(data / "derived" / "snapshot5_200ms", partitioning="hive").num_rows
    assert want > 0
    got = tickwire.query("SELECT count(*) AS n, min(recv_time) IS NOT NULL AS t FROM snapshot5_200ms", data=str(data))
    assert got.n[0] == want and got.t[0]
    bars = tickwire.query('SELECT venue, close_f FROM "bars0.01vol"', data=str(data))
    assert len(bars) == pq.read_table(data / "derived" / "bars0.01vol", partitioning="hive").num_rows > 0
    assert set(bars.venue) == {"okx"}
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "query", "--data", str(data), "-f", "csv",
                        "SELECT count(*) AS n FROM bars500ms"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) == pq.read_table(data / "derived" / "bars500ms", partitioning="hive").num_rows
