"""A slow consumer never stalls the socket reader into a keepalive timeout; overflow is reported."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.model import Disconnected, Overflow

sim_mod = pytest.importorskip("tickwire.sim")


async def test_stalled_consumer_keeps_heartbeats_and_reports_overflow_with_books_exact():
    opts = {"bybit": {"book_interval_ms": 1, "market_steps_per_s": 3000}}
    async with sim_mod.Simulator(venues=["bybit"], seed=1, options=opts) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints=sim.endpoints,
                                   timers={"bybit": {"ping_interval_s": 0.2, "pong_timeout_s": 0.4}},
                                   max_buffer=2_000, read_ahead=500, max_pause_s=0.05) as feed:
            it = feed.__aiter__()
            first = await it.__anext__()
            # the consumer stops for 3 s: 7x the pong deadline
            await asyncio.sleep(3.0)
            evs = []
            async with asyncio.timeout(10):
                while feed.pending() or not evs:
                    evs.append(await it.__anext__())
            live = feed.books()["bybit.linear:orderbook.50:BTCUSDT"]
            matched = None
            for _ in range(20_000):  # find a moment when the client has read all the sim sent
                sb = sim.venue("bybit").book("linear", "orderbook.50.BTCUSDT")
                if sb is not None and sb[2] == live.seq:
                    matched = (sb, dict(live.bids), dict(live.asks), live.valid)
                    break
                await asyncio.sleep(0)
    assert first is not None
    assert not any(isinstance(e, Disconnected) for e in evs), "reader stalled into a keepalive timeout"
    overflow = [e for e in evs if isinstance(e, Overflow)]
    from collections import Counter
    assert overflow and overflow[0].dropped > 0, (len(evs), Counter(type(e).__name__ for e in evs))
    assert len(evs) <= 2_000 + 64
    # the book is maintained by the reader, so it is exact despite the dropped events
    assert matched is not None, "never caught up with the simulator"
    (bids, asks, u), live_bids, live_asks, valid = matched
    assert valid
    assert live_bids == {p: q for p, q in bids} and live_asks == {p: q for p, q in asks}
