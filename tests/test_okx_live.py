"""The real client against the OKX and OKX DEX simulators over loopback sockets."""

from __future__ import annotations

import asyncio

import pytest

import tickwire
from tickwire.credentials import Credentials
from tickwire.model import (
    BookUpdate, Candle, ConnCount, Connected, DexCandle, DexPrice, Disconnected, Gap, Notice, Resynced, Trade,
    VenueError,
)
from tickwire.net import FeedError

from .conftest import collect

sim_mod = pytest.importorskip("tickwire.sim")
Simulator = sim_mod.Simulator
if "okx" not in sim_mod.VENUE_SIMS:
    pytest.skip("no OKX simulator", allow_module_level=True)

KEY = Credentials(api_key="sim-key", secret="sim-secret", passphrase="sim-passphrase")
FAST = {"ping_interval_s": 0.5, "pong_timeout_s": 0.5, "resync_min_interval_s": 0.05}
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"


async def run_for(feed, seconds):
    out = []
    try:
        async with asyncio.timeout(seconds):
            async for ev in feed:
                out.append(ev)
    except TimeoutError:
        pass
    return out


def assert_unbroken_chains(events):
    last: dict[str, int] = {}
    for e in events:
        if isinstance(e, BookUpdate):
            if e.snapshot and e.stream not in last:
                last[e.stream] = e.seq
                continue
            assert not e.snapshot, f"unexpected re-snapshot on {e.stream}"
            assert e.prev_seq == last[e.stream], (e.stream, e.prev_seq, last[e.stream])
            last[e.stream] = e.seq
    return last


async def test_books_trades_candles_route_to_public_and_business():
    async with Simulator(venues=["okx"], seed=1) as sim:
        async with tickwire.stream("okx:books:BTC-USDT", "okx:trades:BTC-USDT", "okx:candle1m:BTC-USDT",
                                   endpoints=sim.endpoints, timers={"okx": FAST}) as feed:
            evs = await collect(feed, lambda es: sum(isinstance(e, BookUpdate) for e in es) >= 20 and
                                any(isinstance(e, Trade) for e in es) and any(isinstance(e, Candle) for e in es))
    assert not any(isinstance(e, (VenueError, Gap, Disconnected)) for e in evs)
    urls = sorted(e.url.rsplit("/", 1)[1] for e in evs if isinstance(e, Connected))
    assert urls == ["business", "public"]
    assert_unbroken_chains(evs)
    b = [e for e in evs if isinstance(e, BookUpdate)][-1].book
    assert b.valid and len(b.bids) <= 400 and float(b.best_bid()[0]) < float(b.best_ask()[0])


async def test_upgrade_notices_switch_connections_without_gap_or_duplicate():
    opts = {"okx": {"notice_every_s": 1.2, "notice_lead_s": 1.0, "trade_interval_ms": 20}}
    async with Simulator(venues=["okx"], seed=2, options=opts) as sim:
        async with tickwire.stream("okx:books:BTC-USDT", "okx:books:ETH-USDT", "okx:trades:BTC-USDT",
                                   "okx:tickers:BTC-USDT", endpoints=sim.endpoints,
                                   timers={"okx": {**FAST, "notice_lead_s": 1.0}}) as feed:
            evs = await run_for(feed, 6.0)
            opened = sim.venue("okx").stats.connections_opened
    notices = [e for e in evs if isinstance(e, Notice)]
    assert len(notices) >= 3 and all(n.code == "64008" for n in notices)
    assert opened >= 4  # each notice was answered with a replacement connection
    assert not [e for e in evs if isinstance(e, Gap)]
    last = assert_unbroken_chains(evs)
    assert set(last) == {"okx:books:BTC-USDT", "okx:books:ETH-USDT"}
    ids = [int(e.trade_id) for e in evs if isinstance(e, Trade)]
    assert len(ids) > 50 and len(ids) == len(set(ids)) and ids == sorted(ids)
    # and the maintained book is the simulator's book (nothing lost across switches)
    book = feed.books()["okx:books:BTC-USDT"]
    assert book.valid


async def test_skipped_seq_is_a_gap_resynced_on_that_channel_only():
    async with Simulator(venues=["okx"], seed=3) as sim:
        async with tickwire.stream("okx:books:BTC-USDT", "okx:trades:BTC-USDT", endpoints=sim.endpoints,
                                   timers={"okx": FAST}) as feed:
            await collect(feed, lambda es: any(isinstance(e, BookUpdate) for e in es))
            sim.venue("okx").inject("skip-seq")
            evs = await collect(feed, lambda es: any(isinstance(e, Resynced) for e in es))
    (gap,) = [e for e in evs if isinstance(e, Gap)]
    assert gap.stream == "okx:books:BTC-USDT" and "prevSeqId" in gap.reason
    assert not any(isinstance(e, Disconnected) for e in evs)


async def test_legacy_checksums_verify_and_a_bad_one_resyncs():
    async with Simulator(venues=["okx"], seed=4, options={"okx": {"checksum": "legacy"}}) as sim:
        async with tickwire.stream("okx:books:BTC-USDT", endpoints=sim.endpoints, timers={"okx": FAST}) as feed:
            evs = await collect(feed, lambda es: sum(isinstance(e, BookUpdate) for e in es) >= 30)
            assert not any(isinstance(e, Gap) for e in evs)
            sim.venue("okx").inject("bad-checksum")
            evs = await collect(feed, lambda es: any(isinstance(e, Resynced) for e in es))
    assert "checksum" in next(e for e in evs if isinstance(e, Gap)).reason


async def test_without_ws_snapshot_the_book_comes_from_rest_and_aligns():
    async with Simulator(venues=["okx"], seed=5, options={"okx": {"no_initial_snapshot": True}}) as sim:
        async with tickwire.stream("okx:books:BTC-USDT", endpoints=sim.endpoints, timers={"okx": FAST},
                                   venue_options={"okx": {"snapshot_wait_s": 0.3}}) as feed:
            evs = await collect(feed, lambda es: sum(isinstance(e, BookUpdate) for e in es) >= 20)
    books = [e for e in evs if isinstance(e, BookUpdate)]
    assert books[0].snapshot and books[0].book.valid
    assert_unbroken_chains(evs)
    assert not any(isinstance(e, (Gap, VenueError)) for e in evs)


async def test_login_then_tbt_books_and_private_orders():
    async with Simulator(venues=["okx"], seed=6) as sim:
        async with tickwire.stream("okx:books-l2-tbt:BTC-USDT", "okx:orders:ANY", endpoints=sim.endpoints,
                                   credentials={"okx": KEY}, timers={"okx": FAST}) as feed:
            evs = await collect(feed, lambda es: any(isinstance(e, BookUpdate) for e in es) and
                                any(type(e).__name__ == "Order" for e in es) and
                                any(isinstance(e, ConnCount) for e in es), timeout=20)
    assert not any(isinstance(e, VenueError) for e in evs)


async def test_wrong_secret_exits_with_a_clear_login_error_and_no_retry_loop():
    bad = Credentials(api_key="sim-key", secret="not-the-secret", passphrase="sim-passphrase")
    async with Simulator(venues=["okx"], seed=7) as sim:
        events = []
        with pytest.raises(FeedError) as e:
            async with tickwire.stream("okx:orders:ANY", endpoints=sim.endpoints, credentials={"okx": bad}) as feed:
                async with asyncio.timeout(10):
                    async for ev in feed:
                        events.append(ev)
        opened = sim.venue("okx").stats.connections_opened
    assert "60007" in str(e.value) and "login" in str(e.value)
    assert opened == 1
    assert "not-the-secret" not in repr(events) + str(e.value)


async def test_many_books_spread_over_connections_within_3_per_second():
    insts = [i for i in sim_mod.VENUE_SIMS["okx"].Options().instruments][:10] if hasattr(
        sim_mod.VENUE_SIMS["okx"], "Options") else []
    specs = [f"okx:books:{i}" for i in insts] + [f"okx:books5:{i}" for i in insts] + \
            [f"okx:bbo-tbt:{i}" for i in insts] + [f"okx:tickers:{i}" for i in insts]
    if len(insts) < 5:
        pytest.skip("few instruments in the simulator")
    async with Simulator(venues=["okx"], seed=8) as sim:
        async with tickwire.stream(*specs, endpoints=sim.endpoints, timers={"okx": FAST},
                                   venue_options={"okx": {}}) as feed:
            evs = await collect(feed, lambda es: len({e.stream for e in es if isinstance(e, BookUpdate)}) >= 3 * len(insts),
                                timeout=20)
            refused = sim.venue("okx").stats.connections_refused
    assert refused == 0
    assert not any(isinstance(e, VenueError) for e in evs)


async def test_request_budget_is_never_exceeded_even_when_books_keep_breaking():
    # compress the 480/hour rule to 8 per 3 s on both sides; the client keeps a margin
    opts = {"okx": {"request_limit": 8, "request_window_s": 3.0}}
    async with Simulator(venues=["okx"], seed=9, options=opts) as sim:
        async with tickwire.stream("okx:books:BTC-USDT", endpoints=sim.endpoints, timers={"okx": FAST},
                                   limits={"okx": {"max_requests": 7, "requests_window_s": 3.0}}) as feed:
            await collect(feed, lambda es: any(isinstance(e, BookUpdate) for e in es))
            sim.venue("okx").inject("skip-seq-every=0.2s")
            evs = await run_for(feed, 4.0)
    assert not [e for e in evs if isinstance(e, VenueError) and e.code == "60014"]
    assert any(isinstance(e, Resynced) for e in evs)


# -- OKX DEX ----------------------------------------------------------------------------

async def test_dex_prices_and_candles_after_a_verified_login():
    async with Simulator(venues=["okxdex"], seed=10) as sim:
        async with tickwire.stream(f"okxdex:price:1/{USDT}", f"okxdex:dex-token-candle1m:1/{USDT}",
                                   endpoints=sim.endpoints, credentials={"okxdex": KEY},
                                   timers={"okxdex": FAST}) as feed:
            evs = await collect(feed, lambda es: any(isinstance(e, DexPrice) for e in es) and
                                any(isinstance(e, DexCandle) for e in es), timeout=20)
    assert not any(isinstance(e, VenueError) for e in evs)
    p = next(e for e in evs if isinstance(e, DexPrice))
    assert p.chain == "1" and p.token == USDT and float(p.price) > 0


async def test_dex_40_streams_under_one_key_never_get_conn_count_error():
    sim_cls = sim_mod.VENUE_SIMS["okxdex"]
    tokens = [t for t in getattr(sim_cls, "Options")().tokens.get("1", [])][:10] if hasattr(sim_cls, "Options") else []
    tokens = tokens or [f"0x{i:040x}" for i in range(10)]
    specs = [f"okxdex:{ch}:1/{t}" for t in tokens for ch in ("price", "dex-token-candle1m", "trades", "price-info")]
    assert len(specs) == 40
    async with Simulator(venues=["okxdex"], seed=11, options={"okxdex": {"max_conn_per_channel": 3}}) as sim:
        async with tickwire.stream(*specs, endpoints=sim.endpoints, credentials={"okxdex": KEY},
                                   timers={"okxdex": FAST}) as feed:
            evs = await run_for(feed, 3.0)
    errors = [e for e in evs if isinstance(e, VenueError)]
    assert not errors, errors[:3]
    assert sum(isinstance(e, Connected) for e in evs) == 1


async def test_dex_wrong_secret_is_fatal():
    bad = Credentials(api_key="sim-key", secret="nope-nope-nope", passphrase="sim-passphrase")
    async with Simulator(venues=["okxdex"], seed=12) as sim:
        with pytest.raises(FeedError):
            async with tickwire.stream(f"okxdex:price:1/{USDT}", endpoints=sim.endpoints,
                                       credentials={"okxdex": bad}) as feed:
                async with asyncio.timeout(10):
                    async for _ in feed:
                        pass
        assert sim.venue("okxdex").stats.connections_opened == 1


async def test_close_4009_splits_the_streams_over_two_connections_instead_of_looping():
    specs = ["okx:tickers:BTC-USDT", "okx:tickers:ETH-USDT", "okx:trades:BTC-USDT", "okx:trades:ETH-USDT"]
    async with Simulator(venues=["okx"], seed=13) as sim:
        async with tickwire.stream(*specs, endpoints=sim.endpoints, timers={"okx": FAST}, backoff_base_s=0.05) as feed:
            await collect(feed, lambda es: any(isinstance(e, Trade) for e in es))
            sim.venue("okx").inject("close-4009")
            def both_serving(es):  # after the second Connected, every stream delivers again
                at = [i for i, e in enumerate(es) if isinstance(e, Connected)]
                return len(at) >= 2 and {e.stream for e in es[at[1]:] if not e.is_status} == set(specs)

            evs = await collect(feed, both_serving, timeout=15)
            conns = sim.venue("okx").stats.connections()
    err = next(e for e in evs if isinstance(e, VenueError))
    assert err.code == "4009" and "moved 2 streams" in err.msg
    assert len(conns) == 2 and sorted(len(c["topics"]) for c in conns) == [2, 2]


def test_cli_tail_sim_dex_logs_in_with_the_sim_key_and_a_wrong_secret_exits_nonzero():
    import json
    import os
    import subprocess
    import sys

    specs = [f"okxdex:price:1/{USDT}", f"okxdex:dex-token-candle1m:1/{USDT}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWIRE_OKXDEX_")}
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "tail", "--sim", *specs, "--no-status", "--limit", "4"],
                       capture_output=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    types = {json.loads(x)["type"] for x in r.stdout.splitlines()}
    assert types == {"DexPrice", "DexCandle"} or types <= {"DexPrice", "DexCandle"} and "DexPrice" in types
    env.update(TICKWIRE_OKXDEX_API_KEY="sim-key", TICKWIRE_OKXDEX_SECRET="a-wrong-secret",
               TICKWIRE_OKXDEX_PASSPHRASE="sim-passphrase")
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "tail", "--sim", *specs, "--limit", "50"],
                       capture_output=True, timeout=60, env=env)
    assert r.returncode == 3
    assert b"login refused: 60007" in r.stderr and b"a-wrong-secret" not in r.stdout + r.stderr
    assert r.stdout.count(b'"Connected"') == 1  # no retry loop


async def test_notice_on_a_private_connection_logs_the_replacement_in_before_switching():
    opts = {"okx": {"notice_every_s": 1.0, "notice_lead_s": 0.8, "order_events_per_s": 20}}
    async with Simulator(venues=["okx"], seed=14, options=opts) as sim:
        async with tickwire.stream("okx:orders:ANY", endpoints=sim.endpoints, credentials={"okx": KEY},
                                   timers={"okx": {**FAST, "notice_lead_s": 0.8}}) as feed:
            evs = await run_for(feed, 4.0)
            stats = sim.venue("okx").stats
    assert sum(isinstance(e, Notice) for e in evs) >= 2
    assert not any(isinstance(e, (VenueError, Gap)) for e in evs), [e for e in evs if isinstance(e, VenueError)][:2]
    orders = [e for e in evs if type(e).__name__ == "Order"]
    assert len(orders) > 20
    keys = [(o.order_id, o.status, o.filled_size, o.exch_ns) for o in orders]
    assert len(keys) == len(set(keys))  # no order update delivered twice across the switches
    assert stats.auth_ok >= 3 and stats.auth_failed == 0
