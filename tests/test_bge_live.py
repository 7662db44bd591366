"""The real client against the BG Exchange simulator over loopback sockets."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.credentials import Credentials
from tickwire.net import FeedError
from tickwire.model import Balance, BookUpdate, Connected, Disconnected, Gap, Order, Ticker, Trade, VenueError

from .conftest import collect

sim_mod = pytest.importorskip("tickwire.sim")
Simulator = sim_mod.Simulator
if "bge" not in sim_mod.VENUE_SIMS:
    pytest.skip("no BGE simulator", allow_module_level=True)


FAST = {"bge": {"ping_interval_s": 0.3, "pong_timeout_s": 2.0, "book_interval_ms": 50, "ticker_interval_ms": 100}}


@pytest.mark.parametrize("zip_", [False, True])
async def test_books_trades_tickers_with_and_without_zip(zip_):
    async with Simulator(venues=["bge"], seed=1, options=FAST) as sim:
        async with tickwire.stream("bge:orderbook.0:BTC_USDT", "bge:fills:BTC_USDT", "bge:ticker:ETH_USDT",
                                   endpoints=sim.endpoints, venue_options={"bge": {"zip": zip_}}) as feed:
            evs = await collect(feed, lambda es: sum(isinstance(e, BookUpdate) for e in es) >= 3 and
                                any(isinstance(e, Trade) for e in es) and any(isinstance(e, Ticker) for e in es))
    b = [e for e in evs if isinstance(e, BookUpdate)]
    assert all(e.snapshot for e in b) and b[-1].book.valid
    assert float(b[-1].book.best_bid()[0]) < float(b[-1].book.best_ask()[0])
    assert not any(isinstance(e, (VenueError, Disconnected, Gap)) for e in evs)


async def test_pongs_keep_the_connection_alive_through_many_server_pings():
    async with Simulator(venues=["bge"], seed=2, options={"bge": {"ping_interval_s": 0.1, "pong_timeout_s": 0.5}}) as sim:
        async with tickwire.stream("bge:ticker:BTC_USDT", endpoints=sim.endpoints) as feed:
            try:
                await collect(feed, lambda es: any(isinstance(e, Disconnected) for e in es), timeout=3.0)
                disconnected = True
            except TimeoutError:
                disconnected = False
    assert not disconnected  # ~30 server pings answered in time


async def test_300_products_on_one_connection_are_never_force_closed():
    products = [f"X{i:03d}_USDT" for i in range(1, 301)]
    async with Simulator(venues=["bge"], seed=3, options={"bge": {"ping_interval_s": 0.2, "ticker_interval_ms": 200}}) as sim:
        async with tickwire.stream(*[f"bge:ticker:{p}" for p in products], endpoints=sim.endpoints) as feed:
            evs = await collect(feed, lambda es: len({e.symbol for e in es if isinstance(e, Ticker)}) >= 300,
                                timeout=30)
            conns = sim.venue("bge").stats.connections()
    assert not any(isinstance(e, (Disconnected, VenueError)) for e in evs)
    assert sum(isinstance(e, Connected) for e in evs) == 1 and len(conns) == 1


async def test_missing_server_pings_mean_a_dead_connection():
    async with Simulator(venues=["bge"], seed=4, options={"bge": {"ping_interval_s": 0.2, "book_interval_ms": 0,
                                                                  "ticker_interval_ms": 100000}}) as sim:
        async with tickwire.stream("bge:ticker:BTC_USDT", endpoints=sim.endpoints, timers={"bge": {"stale_s": 1.0}},
                                   backoff_base_s=0.05) as feed:
            await collect(feed, lambda es: any(isinstance(e, Connected) for e in es))
            sim.venue("bge").inject("stall")
            evs = await collect(feed, lambda es: any(isinstance(e, Disconnected) for e in es), timeout=5)
    d = next(e for e in evs if isinstance(e, Disconnected))
    assert "no frame" in d.reason


async def test_duplicate_seq_is_dropped_and_a_backwards_seq_is_a_gap():
    async with Simulator(venues=["bge"], seed=5, options=FAST) as sim:
        async with tickwire.stream("bge:orderbook.0:BTC_USDT", endpoints=sim.endpoints) as feed:
            first = await collect(feed, lambda es: sum(isinstance(e, BookUpdate) for e in es) >= 2)
            sim.venue("bge").inject("dup-seq")
            evs = await collect(feed, lambda es: sum(isinstance(e, BookUpdate) for e in es) >= 6)
    seqs = [e.seq for e in first + evs if isinstance(e, BookUpdate)]
    assert len(seqs) == len(set(seqs))  # the duplicate never reached the user


async def test_private_login_orders_and_assets():
    creds = {"bge": Credentials(api_key="sim-key", secret="sim-secret")}
    async with Simulator(venues=["bge"], seed=6, options={"bge": {"private_interval_ms": 50}}) as sim:
        async with tickwire.stream("bge:orders:BTC_USDT", "bge:assets:BTC_USDT", endpoints=sim.endpoints,
                                   credentials=creds) as feed:
            evs = await collect(feed, lambda es: any(isinstance(e, Order) for e in es) and
                                any(isinstance(e, Balance) for e in es))
    assert not any(isinstance(e, VenueError) for e in evs)


async def test_wrong_secret_is_a_clear_fatal_error_without_retries():
    creds = {"bge": Credentials(api_key="sim-key", secret="WRONG-secret-value")}
    async with Simulator(venues=["bge"], seed=7) as sim:
        async with tickwire.stream("bge:orders:BTC_USDT", endpoints=sim.endpoints, credentials=creds) as feed:
            events = []
            with pytest.raises(FeedError) as e:
                async with asyncio.timeout(10):
                    async for ev in feed:
                        events.append(ev)
            opened = sim.venue("bge").stats.connections_opened
    err = next(x for x in events if isinstance(x, VenueError))
    assert err.fatal and err.code.startswith("400") and "WRONG-secret-value" not in repr(events) + str(e.value)
    assert opened == 1
