"""Collectors and consumers in one process, real nats-server: late joiners get exact books, the bus
down at start or going away is buffered then published, beyond the bound dropped and counted."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.bus.codec import BusState
from tickwire.bus.collector import Collector
from tickwire.bus.consumer import subscribe
from tickwire.bus.server import LocalBus
from tickwire.bus.testing import nats_single  # noqa: F401
from tickwire.model import BookUpdate, Gap, Trade

pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator  # noqa: E402

SPECS = ["okx:books:BTC-USDT", "okx:trades:BTC-USDT", "bybit.linear:orderbook.50:BTCUSDT"]


async def test_late_joiner_gets_exact_books(nats_single):
    states: dict[tuple[str, int], tuple] = {}   # (stream, seq) -> the book a direct feed had

    async with Simulator(venues=["okx", "bybit"], seed=7) as sim:
        async def reference():
            async with tickwire.stream(*SPECS, endpoints=sim.endpoints) as feed:
                async for ev in feed:
                    if isinstance(ev, BookUpdate) and ev.book.valid and ev.book.seq == ev.seq:
                        states[(ev.stream, ev.seq)] = ev.book.top(1000)

        ref = asyncio.create_task(reference())
        c = Collector(nats_single.url, SPECS, name="late", snapshot_interval_s=0.5,
                      feed_options={"endpoints": sim.endpoints})
        await c.start()
        run = asyncio.create_task(c.run(duration=6))
        await asyncio.sleep(2.5)  # the collector has published for a while: join late
        checked = {s: 0 for s in SPECS if "book" in s}
        first: dict[str, BookUpdate] = {}
        gaps = []

        async def join():
            async for ev in subscribe(nats_single.url, "md.>"):
                if isinstance(ev, Gap):
                    gaps.append(ev)
                if isinstance(ev, BookUpdate):
                    first.setdefault(ev.stream, ev)
                    key = (ev.stream, ev.seq)
                    if ev.book.valid and key in states:
                        assert ev.book.top(1000) == states[key], key
                        checked[ev.stream] += 1
                    if all(v >= 20 for v in checked.values()):
                        return

        await asyncio.wait_for(join(), 15)
        await run
        await c.close()
        ref.cancel()
    assert not gaps
    # the joiner started from a collector snapshot (not from the venue's, long gone), then deltas
    assert all(first[s].snapshot for s in checked)
    assert all(v >= 20 for v in checked.values())


async def test_bus_down_at_start_then_going_away_is_buffered_then_published(tmp_path):
    bus = LocalBus(1, dir=tmp_path / "bus")   # not started yet: the bus is down
    seen: list = []
    truth: list[int] = []
    async with Simulator(venues=["okx"], seed=9, options={"okx": {"trade_interval_ms": 10}}) as sim:
        async def reference():
            async with tickwire.stream("okx:trades:BTC-USDT", endpoints=sim.endpoints) as feed:
                async for ev in feed:
                    if isinstance(ev, Trade):
                        truth.append(int(ev.trade_id))

        ref = asyncio.create_task(reference())
        c = Collector(bus.url, ["okx:trades:BTC-USDT"], name="buf", on_event=seen.append,
                      feed_options={"endpoints": sim.endpoints})
        await c.start()
        run = asyncio.create_task(c.run(duration=8))
        await asyncio.sleep(1.5)
        states = [e.state for e in seen if isinstance(e, BusState)]
        assert states == ["down"]
        assert c.publisher.pending() > 10 and c.stats.messages > 10
        assert c.feed.stats()[0]["connected"]   # the venue connection stays up
        bus.start()
        for _ in range(100):
            if c.publisher.pending() == 0:
                break
            await asyncio.sleep(0.05)
        assert c.publisher.pending() == 0
        await asyncio.sleep(0.5)
        bus.kill(0)                                # the bus goes away...
        await asyncio.sleep(1.5)
        assert c.publisher.pending() > 0
        bus.restart(0)                             # ... and comes back (same port, same store)
        await run
        ref.cancel()
        await c.close()
        assert c.publisher.pending() == 0
        assert [e.state for e in seen if isinstance(e, BusState)][:4] == ["down", "up", "down", "up"]
        # everything the collector saw is on the bus, once, in trade id order
        ids = []

        async def read():
            async for ev in subscribe(bus.url, "md.>", start="first"):
                if isinstance(ev, Trade):
                    ids.append(int(ev.trade_id))
                    if len(ids) >= c.stats.events - c.stats.status:
                        return

        try:
            await asyncio.wait_for(read(), 10)
        finally:
            bus.stop()
    assert len(ids) == len(set(ids)) > 100 and ids == sorted(ids)
    # nothing lost: every trade a direct connection saw in the same time span is on the bus
    window = [t for t in truth if ids[0] <= t <= ids[-1]]
    assert len(window) > 100 and set(window) <= set(ids)


async def test_beyond_the_buffer_bound_messages_are_dropped_and_counted(tmp_path):
    bus = LocalBus(1, dir=tmp_path / "bus")   # never started
    seen: list = []
    async with Simulator(venues=["okx"], seed=9, options={"okx": {"trade_interval_ms": 5}}) as sim:
        c = Collector(bus.url, ["okx:trades:BTC-USDT"], name="drop", on_event=seen.append, max_buffer_bytes=1500,
                      feed_options={"endpoints": sim.endpoints})
        await c.start()
        await c.run(duration=2)
        await c.close(drain_timeout=0.1)
    assert c.publisher.stats.dropped > 0
    assert c.publisher.bytes <= 1500
    assert "dropping" in [e.state for e in seen if isinstance(e, BusState)]
    bus.stop()


async def test_twins_cutting_differently_overlap_on_the_bus_and_consumers_drop_the_copies(nats_single):
    """Redundant collectors whose messages differ (one message per frame in one, chunks in the
    other, as during an upgrade; or chunks cut at different idle moments): the bus may hold an
    event twice; a consumer delivers each trade and each book delta once, with an intact
    sequence chain."""
    async with Simulator(venues=["okx"], seed=11, options={"okx": {"trade_interval_ms": 5}}) as sim:
        cs = [Collector(nats_single.url, SPECS[:2], name=f"batch{i}", chunk_events=k, snapshot_interval_s=0,
                        feed_options={"endpoints": sim.endpoints}) for i, k in enumerate((1, 32))]
        for c in cs:
            await c.start()
        start = 0
        from tickwire.bus.nats import NatsBus

        nb = NatsBus(nats_single.url)
        await nb.connect()
        from tickwire.bus.collector import StreamsConfig

        await nb.ensure_streams(StreamsConfig().specs(1))
        start = await nb.last_seq("TW_MD") + 1
        await asyncio.gather(*(c.run(duration=3) for c in cs))
        for c in cs:
            await c.close()
    trades, deltas, gaps = [], [], []

    async def read():
        async for ev in subscribe(nb, "md.>", start=start):
            if isinstance(ev, Trade):
                trades.append(ev.trade_id)
            elif isinstance(ev, BookUpdate) and not ev.snapshot:
                deltas.append(ev.seq)
            elif isinstance(ev, Gap):
                gaps.append(ev)

    try:
        await asyncio.wait_for(read(), 3)
    except asyncio.TimeoutError:
        pass
    await nb.close()
    assert len(trades) == len(set(trades)) > 50
    assert len(deltas) == len(set(deltas)) > 10 and deltas == sorted(deltas)
    assert not gaps


async def test_late_joiner_reads_back_what_a_twin_stored_before_the_snapshot(nats_single):
    """Twins cut their chunks differently (one had an idle moment the other had not), the one
    ahead stored deltas before the other's snapshot position: a late joiner loading that
    snapshot reads the book's messages before it again and continues with no Gap."""
    from tickwire.bus import codec
    from tickwire.bus.base import OutMsg
    from tickwire.bus.codec import Snapshot
    from tickwire.bus.collector import StreamsConfig
    from tickwire.bus.nats import NatsBus

    spec = "okx:books:RWD-USDT"

    def delta(i):
        return BookUpdate(venue="okx", market="spot", symbol="RWD-USDT", stream=spec, exch_ns=i, recv_ns=i,
                          bids=[(str(1000 - i), "1")], asks=[(str(1000 + i), "2")], seq=100 + i, prev_seq=99 + i)

    snap = BookUpdate(venue="okx", market="spot", symbol="RWD-USDT", stream=spec, exch_ns=0, recv_ns=0,
                      bids=[("900", "5")], asks=[("1100", "5")], snapshot=True, seq=100)
    d = {i: delta(i) for i in range(1, 16)}
    nb = NatsBus(nats_single.url)
    await nb.connect()
    await nb.ensure_streams(StreamsConfig().specs(1))
    stored: list = []
    done = asyncio.Event()

    def on_acks(results):
        stored.extend((m.msg_id, seq) for m, seq, dup, err in results if not err)
        done.set()

    async def pub(*groups):
        for g in groups:
            body, mid = codec.encode_md(spec, g, "", "x")
            done.clear()
            nb.publish([OutMsg(codec.md_subject(spec), body, mid)], on_acks)
            await asyncio.wait_for(done.wait(), 5)
        return stored[-1][1]

    await pub([snap], [d[i] for i in range(1, 6)], [d[i] for i in range(6, 11)])   # twin a, ahead
    pos_b = await pub([d[4], d[5]])                                                # twin b's own cut
    book = {"900": "5"}
    for i in range(1, 6):
        book[str(1000 - i)] = "1"
    s = Snapshot(codec.FORMAT, spec, 105, pos_b, 5, 5, "b", sorted(book.items()), [["1100", "5"]] +
                 [[str(1000 + i), "2"] for i in range(1, 6)])
    done.clear()
    nb.publish([OutMsg(codec.snap_subject(spec), codec.encode_snapshot(s), "")], on_acks)
    await asyncio.wait_for(done.wait(), 5)
    await pub([d[i] for i in range(11, 16)])                                        # both

    got, gaps = [], []

    async def join():
        async for ev in subscribe(nb, codec.md_subject(spec)):
            if isinstance(ev, Gap):
                gaps.append(ev)
            elif isinstance(ev, BookUpdate):
                got.append((ev.seq, ev.snapshot, ev.book.valid))
                if ev.seq == 115:
                    return ev.book.top(100)

    top = await asyncio.wait_for(join(), 10)
    await nb.close()
    assert not gaps
    assert got == [(105, True, True)] + [(100 + i, False, True) for i in range(6, 16)]
    bids, asks = top
    assert bids[0][0] == "999" and len(bids) == 16 and len(asks) == 16
