"""A slow consumer never stalls the socket reader into a keepalive timeout; overflow is reported."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.model import Disconnected, Overflow

from .conftest import drain_books_after_a_stall

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


@pytest.mark.parametrize("max_read", [65_536, 0], ids=["bounded", "unbounded"])
async def test_backlog_behind_a_firehose_stays_near_read_ahead_and_the_book_is_exact(max_read):
    """A sender faster than the consumer (the bench's loopback server, no pacing): socket
    reads are bounded, so what waits for the consumer stays near ``read_ahead`` instead of
    growing with picows' read buffer; every delta arrives and the final book is exact."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench import streams
    from bench.server import ServerProcess

    st = streams.bybit_orderbook(60_000, seed=3)
    with ServerProcess(st) as srv:
        base = srv.url("/v5/public/linear").split("/v5/")[0]
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints={"bybit": base},
                                   read_ahead=500, max_read_bytes=max_read) as feed:
            book, pending = await drain_books_after_a_stall(feed, st.expected_msgs)
    assert book is not None and book.bids == st.expected_bids and book.asks == st.expected_asks
    if max_read:
        # read_ahead + what one 64 KiB read holds (~200-byte frames) + status events
        assert max(pending) < 500 + 65_536 // 150
    else:
        assert max(pending) > 2_000  # what the bound prevents (if this fails, picows changed)
