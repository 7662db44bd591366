"""Races at the seams, over real sockets against the simulators: changing subscriptions while
a connection is being replaced, a login refused on a replacement, drops in quick succession."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.credentials import Credentials
from tickwire.model import BookUpdate, Connected, Gap, Notice, Resynced, Trade, VenueError
from tickwire.net import FeedError

pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator  # noqa: E402

FAST = {"ping_interval_s": 0.5, "pong_timeout_s": 0.5, "resync_min_interval_s": 0.05}


async def until(feed, pred, timeout=15.0, sink=None):
    """Consume events until ``pred(event)``; returns that event (sink collects all)."""
    async with asyncio.timeout(timeout):
        async for ev in feed:
            if sink is not None:
                sink.append(ev)
            if pred(ev):
                return ev


async def test_subscribe_and_unsubscribe_during_a_reconnect():
    async with Simulator(venues=["bybit"], seed=21) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:BTCUSDT",
                                   endpoints=sim.endpoints, timers={"bybit": FAST}, backoff_base_s=0.2) as feed:
            await until(feed, lambda e: isinstance(e, BookUpdate))
            sim.venue("bybit").inject("drop")
            await until(feed, lambda e: type(e).__name__ == "Disconnected")
            # the connection is down and about to come back: change the subscriptions now
            await feed.subscribe("bybit.linear:orderbook.50:ETHUSDT")
            await feed.unsubscribe("bybit.linear:publicTrade:BTCUSDT")
            evs: list = []
            await until(feed, lambda e: isinstance(e, BookUpdate) and e.symbol == "ETHUSDT", sink=evs)
            evs2: list = []
            await until(feed, lambda e: False if len(evs2) < 200 else True, sink=evs2, timeout=20)
    after = evs + evs2
    assert not [e for e in after if isinstance(e, VenueError)]
    later = evs2[50:]  # well after the reconnect: the removed stream is gone, the others flow
    assert not [e for e in later if isinstance(e, Trade) and e.stream == "bybit.linear:publicTrade:BTCUSDT"]
    assert {e.symbol for e in later if isinstance(e, BookUpdate)} == {"BTCUSDT", "ETHUSDT"}
    # every book is exact after the reconnect: each Gap was answered by a Resynced
    gaps = [e.stream for e in after if isinstance(e, Gap)]
    assert all(any(isinstance(r, Resynced) and r.stream == g for r in after) for g in gaps)


async def test_subscribe_during_a_failover_lands_on_the_replacement():
    opts = {"okx": {"notice_lead_s": 1.0, "trade_interval_ms": 20}}
    async with Simulator(venues=["okx"], seed=22, options=opts) as sim:
        async with tickwire.stream("okx:books:BTC-USDT", endpoints=sim.endpoints,
                                   timers={"okx": {**FAST, "notice_lead_s": 1.0}}) as feed:
            await until(feed, lambda e: isinstance(e, BookUpdate))
            sim.venue("okx").inject("notice")
            notice = await until(feed, lambda e: isinstance(e, Notice) and e.code == "64008")
            await until(feed, lambda e: isinstance(e, Connected))
            # the replacement is open and joining while the old one still serves: add a stream
            # now; it must be on the replacement too when the old one goes
            await feed.subscribe("okx:trades:BTC-USDT")
            evs: list = []
            loop = asyncio.get_running_loop()
            end = loop.time() + 4.0
            async for ev in feed:
                evs.append(ev)
                if loop.time() > end:
                    break
            conns = sim.venue("okx").stats.connections()
    assert len(conns) == 1  # the old connection is gone: what flows now flows on the replacement
    late = [e for e in evs if isinstance(e, Trade) and e.recv_ns > notice.recv_ns + 2_000_000_000]
    assert len(late) > 20
    assert not [e for e in evs if isinstance(e, (Gap, VenueError))]
    ids = [int(e.trade_id) for e in evs if isinstance(e, Trade)]
    assert len(ids) == len(set(ids))


async def test_a_login_refused_on_the_replacement_connection_ends_the_feed():
    key = Credentials(api_key="sim-key", secret="sim-secret", passphrase="sim-passphrase")
    opts = {"okx": {"notice_lead_s": 2.0}}
    async with Simulator(venues=["okx"], seed=23, options=opts) as sim:
        okx = sim.venue("okx")
        events: list = []
        with pytest.raises(FeedError) as err:
            async with tickwire.stream("okx:orders:ANY", endpoints=sim.endpoints, credentials={"okx": key},
                                       timers={"okx": {**FAST, "notice_lead_s": 2.0}}) as feed:
                await until(feed, lambda e: isinstance(e, Connected), sink=events)
                await asyncio.sleep(0.5)  # logged in
                okx.opts.api_keys = {}    # the key is revoked: the replacement's login will be refused
                okx.inject("notice")
                await until(feed, lambda e: False, sink=events, timeout=15)
    assert "login" in str(err.value)
    assert any(isinstance(e, VenueError) and e.fatal for e in events)
    assert "sim-secret" not in str(err.value) and all("sim-secret" not in repr(e) for e in events)


async def test_rapid_consecutive_drops_then_calm_leave_exact_books():
    async with Simulator(venues=["bybit"], seed=24) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", "bybit.spot:orderbook.50:BTCUSDT",
                                   endpoints=sim.endpoints, timers={"bybit": FAST}, backoff_base_s=0.05,
                                   backoff_cap_s=0.5) as feed:
            await until(feed, lambda e: isinstance(e, BookUpdate))
            by = sim.venue("bybit")
            evs: list = []
            for _ in range(6):
                by.inject("drop")
                await asyncio.sleep(0.15)
            await until(feed, lambda e: False if len(evs) < 400 else True, sink=evs, timeout=30)
            books = feed.books()
    assert sum(type(e).__name__ == "Connected" for e in evs) >= 1
    tail = evs[-100:]
    assert not [e for e in tail if isinstance(e, Gap)]
    assert all(b.valid for b in books.values()) and len(books) == 2
