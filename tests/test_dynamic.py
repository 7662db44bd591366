"""Subscribing and unsubscribing on a running feed."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.model import Connected, Trade

from .conftest import collect

sim_mod = pytest.importorskip("tickwire.sim")


async def test_subscribe_and_unsubscribe_on_a_running_feed_reuse_the_connection():
    opts = {"bybit": {"trade_interval_ms": 5}}
    async with sim_mod.Simulator(venues=["bybit"], seed=2, options=opts) as sim:
        async with tickwire.stream("bybit.linear:publicTrade:BTCUSDT", endpoints=sim.endpoints) as feed:
            await collect(feed, lambda es: any(isinstance(e, Trade) for e in es))
            new = await feed.subscribe("bybit.linear:publicTrade:ETHUSDT", "bybit.linear:publicTrade:BTCUSDT")
            assert [s.spec for s in new] == ["bybit.linear:publicTrade:ETHUSDT"]  # no duplicate
            evs = await collect(feed, lambda es: any(isinstance(e, Trade) and e.symbol == "ETHUSDT" for e in es))
            assert not any(isinstance(e, Connected) for e in evs)  # same connection
            await feed.unsubscribe("bybit.linear:publicTrade:BTCUSDT")
            await asyncio.sleep(0.3)  # let frames in flight arrive
            while feed.pending():
                await feed.__anext__()
            evs = await collect(feed, lambda es: sum(isinstance(e, Trade) for e in es) >= 30)
            topics = sim.venue("bybit").stats.connections()[0]["topics"]
    assert {e.symbol for e in evs if isinstance(e, Trade)} == {"ETHUSDT"}
    assert topics == ["publicTrade.ETHUSDT"]
