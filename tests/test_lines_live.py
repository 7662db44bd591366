"""Lines over real sockets: one simulator (the exchange) behind two network lines (TCP relays with
their own delay, ``tickwire.sim.framework.netem.Line``), i.e. two hosts serving the same data.

The feed picks the faster line; degrading it mid-run causes one switch with no gap and no
duplicate; with a hot standby, dropping the line in use loses nothing. Checked against the
simulator's truth: trade ids contiguous, the book chain unbroken, and a book rebuilt only from
the delivered events equal to the simulator's book.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import tickwire
from tickwire.book import Book
from tickwire.model import BookUpdate, Connected, Disconnected, Gap, LineSwitch, Trade

sim_mod = pytest.importorskip("tickwire.sim")
from tickwire.sim.framework.netem import Line  # noqa: E402

Simulator = sim_mod.Simulator

BOOK, TRADES = "bybit.spot:orderbook.50:BTCUSDT", "bybit.spot:publicTrade:BTCUSDT"
FAST_POLICY = {"ping_s": 0.1, "degrade_for_s": 0.6, "probe_pings": 3, "reprobe_s": 1.0, "hold_s": 30.0}


class Checker:
    """What the user got, checked as it arrives: the book chain (and a book rebuilt from the
    delivered events alone), trade ids, status events."""

    def __init__(self, book_spec: str, trade_spec: str, contiguous: bool = True) -> None:
        self.book_spec, self.trade_spec, self.contiguous = book_spec, trade_spec, contiguous
        self.book = Book()
        self.last_seq: int | None = None
        self.snapshots = 0
        self.deltas = 0
        self.ids: list[int] = []
        self.status: list = []
        self.others: list = []
        self.breaks: list[str] = []

    def add(self, ev) -> None:
        if ev.is_status:
            self.status.append(ev)
            return
        if isinstance(ev, BookUpdate) and ev.stream == self.book_spec:
            if ev.snapshot:
                self.snapshots += 1
                if self.last_seq is not None and ev.seq != self.last_seq:
                    self.breaks.append(f"re-snapshot at {ev.seq} after {self.last_seq}")
                self.book.apply_snapshot(ev.bids, ev.asks, ev.seq)
            else:
                self.deltas += 1
                if ev.prev_seq != self.last_seq:
                    self.breaks.append(f"chain broken: prev {ev.prev_seq} != last {self.last_seq}")
                self.book.apply_delta(ev.bids, ev.asks, ev.seq)
            self.last_seq = ev.seq
        elif isinstance(ev, Trade) and ev.stream == self.trade_spec:
            self.ids.append(int(ev.trade_id))
        else:
            self.others.append(ev)

    def of(self, cls) -> list:
        return [e for e in self.status if isinstance(e, cls)]

    def check_trades(self) -> None:
        ids = self.ids
        assert len(ids) > 20
        assert len(ids) == len(set(ids)), "a trade delivered twice"
        if self.contiguous:
            missing = sorted(set(range(ids[0], ids[-1] + 1)) - set(ids))
            assert not missing, f"{len(missing)} trades lost, e.g. {missing[:5]}"
            assert ids == sorted(ids)


async def consume(it, checker: Checker, seconds: float, on_tick=None) -> None:
    """Feed events to ``checker`` for ``seconds``; ``on_tick(elapsed)`` after each event."""
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(seconds):
            while True:
                ev = await it.__anext__()
                checker.add(ev)
                if on_tick is not None:
                    on_tick(time.monotonic() - t0)
    except TimeoutError:
        pass


async def matches_sim(it, checker: Checker, truth, seconds: float = 5.0) -> bool:
    """Keep consuming until the book rebuilt from the delivered events is at the simulator's
    current sequence, then compare the two (level by level, exact strings)."""
    async with asyncio.timeout(seconds):
        while True:
            bids, asks, seq = truth()
            if checker.last_seq == seq:
                assert dict(checker.book.bids) == {p: q for p, q in bids}
                assert dict(checker.book.asks) == {p: q for p, q in asks}
                return True
            checker.add(await it.__anext__())


async def all_connected(it, checker: Checker, feed, seconds: float = 10.0) -> None:
    """Consume until every connection of the feed (hot standbys too) is connected."""
    async with asyncio.timeout(seconds):
        while not all(r["connected"] for r in feed.stats()):
            checker.add(await it.__anext__())


def bybit_truth(sim, topic="orderbook.50.BTCUSDT"):
    return lambda: sim.venue("bybit").book("spot", topic)


async def test_the_feed_streams_from_the_faster_line():
    async with Simulator(venues=["bybit"], seed=11) as sim:
        v = sim.venue("bybit")
        async with Line(v.host, v.port, latency_ms=25) as slow, Line(v.host, v.port, latency_ms=1) as fast:
            async with tickwire.stream(BOOK, TRADES, endpoints={"bybit": [slow.url, fast.url]},
                                       line_policy=FAST_POLICY) as feed:
                chk = Checker(BOOK, TRADES)
                await consume(feed.__aiter__(), chk, 2.0)
                stats = {r["host"]: r for r in feed.line_stats()}
                conn = feed.stats()[0]
    connected = chk.of(Connected)
    assert connected and all(str(fast.port) in e.url for e in connected), [e.url for e in connected]
    assert conn["host"] == f"127.0.0.1:{fast.port}" and conn["role"] == "primary"
    f, s = stats[f"127.0.0.1:{fast.port}"], stats[f"127.0.0.1:{slow.port}"]
    assert f["active"] and not s["active"] and s["in_use"] == 0
    assert f["rtt_p50_ms"] < 10 < 45 < s["rtt_p50_ms"] < 80, (f, s)   # round trip = 2 x one-way delay
    assert f["rtt_samples"] >= 5 and f["lag_samples"] >= 3 and s["probes"] >= 1
    assert conn["rtt_p50_ms"] == f["rtt_p50_ms"] and conn["lag_p50_ms"] is not None
    assert not chk.of(LineSwitch) and not chk.of(Gap) and not chk.breaks
    chk.check_trades()


async def test_a_degraded_line_is_left_once_without_gap_or_duplicate():
    async with Simulator(venues=["bybit"], seed=12) as sim:
        v = sim.venue("bybit")
        async with Line(v.host, v.port, latency_ms=12) as other, Line(v.host, v.port, latency_ms=1) as line:
            async with tickwire.stream(BOOK, TRADES, endpoints={"bybit": [line.url, other.url]},
                                       line_policy=FAST_POLICY) as feed:
                it = feed.__aiter__()
                chk = Checker(BOOK, TRADES)
                await consume(it, chk, 1.5)
                assert feed.stats()[0]["host"].endswith(str(line.port))
                line.set_delay(60)                       # the line in use gets slow: 120 ms round trips
                await consume(it, chk, 4.0)
                assert await matches_sim(it, chk, bybit_truth(sim))
                conn = feed.stats()[0]
    switches = chk.of(LineSwitch)
    assert len(switches) == 1, [(s.from_host, s.to_host, s.reason) for s in switches]
    sw = switches[0]
    assert sw.from_host.endswith(str(line.port)) and sw.to_host.endswith(str(other.port))
    assert "round trip" in sw.reason
    assert conn["host"].endswith(str(other.port)) and conn["line_switches"] == 1
    assert not chk.of(Gap) and not chk.breaks, chk.breaks[:3]
    assert chk.snapshots == 1 and chk.deltas > 50
    chk.check_trades()


async def test_with_a_hot_standby_dropping_the_line_in_use_loses_nothing():
    async with Simulator(venues=["bybit"], seed=13) as sim:
        v = sim.venue("bybit")
        async with Line(v.host, v.port, latency_ms=1) as fast, Line(v.host, v.port, latency_ms=8) as slow:
            async with tickwire.stream(BOOK, TRADES, endpoints={"bybit": [slow.url, fast.url]}, redundancy=2,
                                       line_policy=FAST_POLICY) as feed:
                it = feed.__aiter__()
                chk = Checker(BOOK, TRADES)
                await all_connected(it, chk, feed)
                await consume(it, chk, 1.0)
                roles = {r["role"]: r["host"] for r in feed.stats()}
                assert roles["primary"].endswith(str(fast.port)) and roles["standby"].endswith(str(slow.port))
                fast.set_down(True)                      # the line in use is cut, and stays down a while
                fast.drop()
                await consume(it, chk, 2.0)
                both_on_slow = {r["host"] for r in feed.stats()}
                fast.set_down(False)                     # back: the standby returns to its own line
                await consume(it, chk, 2.5)
                assert await matches_sim(it, chk, bybit_truth(sim))
                final = {r["role"]: r["host"] for r in feed.stats()}
                red = feed.redundancy_stats()
    assert both_on_slow == {f"127.0.0.1:{slow.port}"}
    assert final["primary"].endswith(str(slow.port)) and final["standby"].endswith(str(fast.port))
    switches = chk.of(LineSwitch)
    assert switches and switches[0].from_host.endswith(str(fast.port)) and "hot standby" in switches[0].reason
    assert chk.of(Disconnected)                          # the user hears of the dropped line ...
    assert not chk.of(Gap) and not chk.breaks, (chk.of(Gap)[:2], chk.breaks[:3])  # ... and of nothing else
    assert chk.snapshots == 1
    chk.check_trades()
    assert red["duplicates"] > 100 and red["covered"] >= 1 and red["rebased"] == 0


async def test_okx_hot_standby_keeps_the_seqid_chain_across_a_dropped_line():
    async with Simulator(venues=["okx"], seed=14, options={"okx": {"trade_interval_ms": 20}}) as sim:
        v = sim.venue("okx")
        async with Line(v.host, v.port, latency_ms=1) as a, Line(v.host, v.port, latency_ms=5, jitter_ms=5) as b:
            async with tickwire.stream("okx:books:BTC-USDT", "okx:trades:BTC-USDT", redundancy=2,
                                       endpoints={"okx": [a.url, b.url]}, line_policy=FAST_POLICY,
                                       timers={"okx": {"ping_interval_s": 0.5, "pong_timeout_s": 2.0}}) as feed:
                it = feed.__aiter__()
                chk = Checker("okx:books:BTC-USDT", "okx:trades:BTC-USDT", contiguous=False)
                await all_connected(it, chk, feed)
                await consume(it, chk, 0.5)
                a.drop()                                 # cut, reconnects at once
                await consume(it, chk, 0.5)
                await all_connected(it, chk, feed)
                await consume(it, chk, 0.5)
                b.drop()
                await consume(it, chk, 1.5)
                assert await matches_sim(it, chk, lambda: sim.venue("okx").book("BTC-USDT"))
    assert len(chk.of(Disconnected)) >= 2 and len(chk.of(LineSwitch)) >= 1
    assert not chk.of(Gap) and not chk.breaks, (chk.of(Gap)[:2], chk.breaks[:3])
    assert chk.ids == sorted(chk.ids) and len(chk.ids) == len(set(chk.ids)) > 20


async def test_bge_hot_standby_deduplicates_by_seq_id():
    async with Simulator(venues=["bge"], seed=15) as sim:
        v = sim.venue("bge")
        async with Line(v.host, v.port, latency_ms=1) as a, Line(v.host, v.port, latency_ms=4) as b:
            async with tickwire.stream("bge:orderbook.0:BTC_USDT", "bge:ticker:BTC_USDT", redundancy=2,
                                       endpoints={"bge": [a.url, b.url]}, line_policy=FAST_POLICY) as feed:
                it = feed.__aiter__()
                chk = Checker("", "")
                await all_connected(it, chk, feed)
                await consume(it, chk, 1.5)
                a.drop()                                 # the primary's line (the faster one)
                await consume(it, chk, 2.5)
                red = feed.redundancy_stats()
    books = [e for e in chk.others if isinstance(e, BookUpdate)]   # in the order delivered
    seqs = [e.seq for e in books]
    assert len(books) > 5 and seqs == sorted(seqs) and len(seqs) == len(set(seqs)), seqs
    assert not chk.of(Gap) and chk.of(Disconnected)
    assert red["duplicates"] >= len(books) // 2


async def test_lines_of_equal_quality_never_flap_and_a_switch_holds():
    """Jitter on two equal lines is inside the margin (no switch); after a real switch, the line
    it left getting better again does not bring it back before ``hold_s``."""
    async with Simulator(venues=["bybit"], seed=16) as sim:
        v = sim.venue("bybit")
        async with Line(v.host, v.port, latency_ms=3, jitter_ms=3, seed=1) as a, \
                Line(v.host, v.port, latency_ms=3, jitter_ms=3, seed=2) as b:
            async with tickwire.stream(TRADES, endpoints={"bybit": [a.url, b.url]}, line_policy=FAST_POLICY) as feed:
                it = feed.__aiter__()
                chk = Checker(BOOK, TRADES)
                await consume(it, chk, 3.0)
                assert not chk.of(LineSwitch)
                first = feed.stats()[0]["host"]
                using, other = (a, b) if first.endswith(str(a.port)) else (b, a)
                using.set_delay(60)
                await consume(it, chk, 3.0)
                assert len(chk.of(LineSwitch)) == 1
                using.set_delay(3)                       # the old line is fine again, the new one degrades
                other.set_delay(60)
                await consume(it, chk, 3.0)
    assert len(chk.of(LineSwitch)) == 1                  # hold_s (30 s) keeps it where it is
    chk.check_trades()


async def test_per_line_round_trip_and_lag_in_metrics_and_the_dashboard():
    pytest.importorskip("prometheus_client")
    from tests.test_metrics import scrape, value
    from tickwire.sinks.dashboard import Dashboard

    async with Simulator(venues=["bybit"], seed=17) as sim:
        v = sim.venue("bybit")
        async with Line(v.host, v.port, latency_ms=1) as a, Line(v.host, v.port, latency_ms=20) as b:
            async with tickwire.stream(BOOK, TRADES, endpoints={"bybit": [a.url, b.url]}, metrics_port=0,
                                       line_policy=FAST_POLICY) as feed:
                board = Dashboard(feed)
                chk = Checker(BOOK, TRADES)
                await consume(feed.__aiter__(), chk, 2.0)
                m = await scrape(feed.metrics.url)
                text = board.line()
    ha, hb = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
    assert 0 < value(m, "tickwire_line_rtt_seconds", host=ha, quantile="0.5") < 0.01
    assert 0.035 < value(m, "tickwire_line_rtt_seconds", host=hb, quantile="0.5") < 0.08
    assert value(m, "tickwire_line_lag_seconds", host=ha, quantile="0.9") > 0
    assert value(m, "tickwire_line_connections", host=ha, role="primary") == 1
    assert value(m, "tickwire_line_up", host=hb) == 1
    assert f"lines bybit: {ha}*" in text and hb in text


async def test_cli_tail_takes_several_lines_for_a_venue():
    import sys

    async with Simulator(venues=["bybit"], seed=18) as sim:
        v = sim.venue("bybit")
        async with Line(v.host, v.port, latency_ms=25) as slow, Line(v.host, v.port, latency_ms=1) as fast:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tickwire.cli", "tail", "--endpoint", f"bybit={slow.url},{fast.url}",
                "--line-policy", "probe_pings=2", "--limit", "20", TRADES,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = out.decode().splitlines()
    assert len(lines) == 20 and f'"url":"ws://127.0.0.1:{fast.port}/v5/public/spot"' in lines[0]


async def test_hot_standby_groups_split_on_okx_4009_and_every_stream_still_arrives_once():
    from tickwire.model import VenueError

    specs = ["okx:tickers:BTC-USDT", "okx:tickers:ETH-USDT", "okx:trades:BTC-USDT", "okx:trades:ETH-USDT"]
    async with Simulator(venues=["okx"], seed=19) as sim:
        async with tickwire.stream(*specs, endpoints=sim.endpoints, redundancy=2, backoff_base_s=0.05,
                                   timers={"okx": {"ping_interval_s": 0.5, "pong_timeout_s": 1.0}}) as feed:
            it = feed.__aiter__()
            chk = Checker("", "okx:trades:BTC-USDT", contiguous=False)
            await all_connected(it, chk, feed)
            sim.venue("okx").inject("close-4009")
            evs: list = []
            async with asyncio.timeout(15):
                while True:
                    ev = await it.__anext__()
                    evs.append(ev)
                    chk.add(ev)
                    at = [i for i, e in enumerate(evs) if isinstance(e, Connected)]
                    if len(at) >= 2 and {e.stream for e in evs[at[-1]:] if not e.is_status} == set(specs):
                        break
            await consume(it, chk, 1.0)
            groups = {r["conn"].split("~")[0] for r in feed.stats()}
            carried = [s for r in feed.stats() for s in r["streams"]]
    assert any(isinstance(e, VenueError) and e.code == "4009" for e in evs)
    assert len(groups) == 2 and set(carried) == set(specs)   # one split per group, not one per member
    ids = chk.ids
    assert ids == sorted(ids) and len(ids) == len(set(ids))
