"""The real client against the Bybit simulator over real loopback sockets."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest

import tickwire
from tickwire.model import BookUpdate, Connected, Disconnected, Gap, Resynced, Trade, VenueError

from .conftest import collect as _collect

sim_mod = pytest.importorskip("tickwire.sim")
Simulator = sim_mod.Simulator

FAST = {"ping_interval_s": 0.5, "pong_timeout_s": 0.5, "resync_min_interval_s": 0.05}


# events until ``until(events)`` is true (bounded in time and count)
collect = functools.partial(_collect, timeout=10.0, limit=100_000)


def chain_ok(events, spec):
    """Every BookUpdate of ``spec`` after a snapshot continues the previous one."""
    last = None
    for e in events:
        if isinstance(e, BookUpdate) and e.stream == spec:
            if e.snapshot:
                last = e.seq
            elif last is not None:
                assert e.prev_seq == last, (e.prev_seq, last)
                last = e.seq
    return True


async def test_stream_delivers_books_and_trades_with_exact_values():
    async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", "bybit.spot:publicTrade:BTCUSDT", sim={"seed": 3},
                               timers={"bybit": FAST}) as feed:
        evs = await collect(feed, lambda es: sum(isinstance(e, Trade) for e in es) >= 5 and
                            sum(isinstance(e, BookUpdate) for e in es) >= 50)
    books = [e for e in evs if isinstance(e, BookUpdate)]
    assert books[0].snapshot and books[-1].book.valid
    assert chain_ok(evs, "bybit.linear:orderbook.50:BTCUSDT")
    b = books[-1].book
    assert len(b.bids) <= 50 and len(b.asks) <= 50
    assert float(b.best_bid()[0]) < float(b.best_ask()[0])
    t = next(e for e in evs if isinstance(e, Trade))
    assert t.venue == "bybit" and t.market == "spot" and t.symbol == "BTCUSDT" and t.exch_ns > 0 and t.recv_ns > 0
    assert "." in t.price and float(t.price) > 0


async def test_reconnects_after_drop_and_resubscribes_everything():
    specs = ["bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:ETHUSDT", "bybit.linear:tickers:SOLUSDT"]
    async with Simulator(venues=["bybit"], seed=1) as sim:
        async with tickwire.stream(*specs, endpoints=sim.endpoints, timers={"bybit": FAST}, backoff_base_s=0.05) as feed:
            await collect(feed, lambda es: any(isinstance(e, BookUpdate) for e in es))
            sim.venue("bybit").inject("drop")
            evs = await collect(feed, lambda es: any(isinstance(e, Connected) for e in es) and
                                sum(isinstance(e, BookUpdate) and e.snapshot for e in es) >= 1 and
                                any(isinstance(e, Trade) for e in es))
            stats = sim.venue("bybit").stats
    kinds = [type(e) for e in evs]
    assert Disconnected in kinds and Connected in kinds
    assert kinds.index(Disconnected) < kinds.index(Connected)
    gaps = [e for e in evs if isinstance(e, Gap)]
    resynced = [e for e in evs if isinstance(e, Resynced)]
    assert len(gaps) == len(resynced) == 1  # the book lost continuity once and is whole again
    assert stats.connections_opened >= 2


async def test_stall_is_detected_by_the_pong_deadline_and_the_feed_recovers():
    async with Simulator(venues=["bybit"], seed=2) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints=sim.endpoints,
                                   timers={"bybit": FAST}, backoff_base_s=0.05) as feed:
            await collect(feed, lambda es: any(isinstance(e, BookUpdate) for e in es))
            sim.venue("bybit").inject("stall-for=30s")
            evs = await collect(feed, lambda es: any(isinstance(e, Disconnected) for e in es), timeout=5)
            d = next(e for e in evs if isinstance(e, Disconnected))
            assert "pong" in d.reason
            sim.venue("bybit").inject("clear")
            evs = await collect(feed, lambda es: any(isinstance(e, BookUpdate) and e.snapshot for e in es), timeout=5)
            assert any(isinstance(e, Connected) for e in evs)


async def test_skipped_u_is_a_gap_resynced_on_that_topic_only():
    async with Simulator(venues=["bybit"], seed=4) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:orderbook.50:ETHUSDT",
                                   endpoints=sim.endpoints, timers={"bybit": FAST}) as feed:
            await collect(feed, lambda es: sum(isinstance(e, BookUpdate) and e.snapshot for e in es) >= 2)
            before = sim.venue("bybit").stats.as_dict()
            sim.venue("bybit").inject("skip-u")
            evs = await collect(feed, lambda es: sum(isinstance(e, Resynced) for e in es) >= 2)
            after = sim.venue("bybit").stats.as_dict()
    gaps = [e for e in evs if isinstance(e, Gap)]
    assert {g.stream for g in gaps} == {"bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:orderbook.50:ETHUSDT"}
    assert all(g.expected is not None and g.received == g.expected + 1 for g in gaps)
    assert not any(isinstance(e, Disconnected) for e in evs)  # resync, not reconnect
    # one unsubscribe + one subscribe per broken topic, no storm
    assert after["subscribe_requests"] - before["subscribe_requests"] <= 2
    assert after["connections_opened"] == before["connections_opened"]


async def test_restart_snapshot_resets_the_book_without_a_gap():
    async with Simulator(venues=["bybit"], seed=5) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints=sim.endpoints,
                                   timers={"bybit": FAST}) as feed:
            await collect(feed, lambda es: any(isinstance(e, BookUpdate) for e in es))
            sim.venue("bybit").inject("restart-snapshot")
            evs = await collect(feed, lambda es: any(isinstance(e, BookUpdate) and e.seq == 3 for e in es))
    assert not any(isinstance(e, Gap) for e in evs)
    restart = next(e for e in evs if isinstance(e, BookUpdate) and e.seq == 1)
    assert restart.snapshot


async def test_malformed_frame_is_a_venue_error_and_the_feed_continues():
    async with Simulator(venues=["bybit"], seed=6) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints=sim.endpoints,
                                   timers={"bybit": FAST}) as feed:
            await collect(feed, lambda es: any(isinstance(e, BookUpdate) for e in es))
            sim.venue("bybit").inject("malformed")
            evs = await collect(feed, lambda es: any(isinstance(e, VenueError) for e in es) and
                                isinstance(es[-1], BookUpdate))
    err = next(e for e in evs if isinstance(e, VenueError))
    assert err.venue == "bybit" and err.code == "decode" and not err.fatal
    assert not any(isinstance(e, (Disconnected, Gap)) for e in evs)


async def test_bad_topic_is_reported_and_the_rest_of_the_batch_still_streams():
    async with Simulator(venues=["bybit"], seed=7) as sim:
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:orderbook.50:NOPEUSDT",
                                   endpoints=sim.endpoints, timers={"bybit": FAST}) as feed:
            evs = await collect(feed, lambda es: any(isinstance(e, VenueError) for e in es) and
                                any(isinstance(e, BookUpdate) for e in es))
    err = next(e for e in evs if isinstance(e, VenueError))
    assert err.fatal and err.stream == "bybit.linear:orderbook.50:NOPEUSDT" and "NOPEUSDT" in err.msg


async def test_many_spot_topics_are_batched_within_the_venue_limit():
    syms = [f"C{i:02d}USDT" for i in range(14)]
    opts = {"bybit": {"symbols": {"spot": syms, "linear": ["BTCUSDT"], "inverse": ["BTCUSD"], "option": []},
                      "symbol_specs": {s: {"tick": "0.01", "lot": "0.001", "price": "10"} for s in syms},
                      "trade_interval_ms": 5}}
    specs = [f"bybit.spot:publicTrade:{s}" for s in syms]
    async with Simulator(venues=["bybit"], seed=8, options=opts) as sim:
        async with tickwire.stream(*specs, endpoints=sim.endpoints, timers={"bybit": FAST}) as feed:
            evs = await collect(feed, lambda es: len({e.symbol for e in es if isinstance(e, Trade)}) >= 3)
            stats = sim.venue("bybit").stats
    assert not any(isinstance(e, VenueError) for e in evs)  # the venue refuses > 10 args per request
    assert stats.subscribe_requests == 2 and stats.max_args_per_request == 10


def test_cli_tail_sim_prints_n_events_and_exits_0():
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "tail", "--sim", "bybit.linear:orderbook.50:BTCUSDT",
                        "bybit.spot:publicTrade:BTCUSDT", "--limit", "200"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 200
    types = {json.loads(x)["type"] for x in lines}
    assert {"Connected", "BookUpdate"} <= types


def test_cli_tail_bad_spec_exits_nonzero_with_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "tail", "--sim", "bybit.linear:orderbook.30:BTCUSDT",
                        "--limit", "1"], capture_output=True, timeout=60)
    assert r.returncode == 2
    assert b"depths: 1, 50, 200, 1000" in r.stderr


def test_cli_tail_keeps_printing_through_drops_of_a_separate_sim():
    env = dict(os.environ)
    sim = subprocess.Popen([sys.executable, "-m", "tickwire.cli", "sim", "--venues", "bybit", "--port", "0",
                            "--fault", "drop-every=1s"], stdout=subprocess.PIPE, env=env)
    try:
        ready = json.loads(sim.stdout.readline())
        url = ready["venues"]["bybit"]["url"]
        r = subprocess.run([sys.executable, "-m", "tickwire.cli", "tail", "--endpoint", f"bybit={url}",
                            "bybit.linear:orderbook.50:BTCUSDT", "--duration", "4.5"],
                           capture_output=True, timeout=60)
    finally:
        sim.terminate()
        sim.wait(10)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    evs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    types = [e["type"] for e in evs]
    assert types.count("Disconnected") >= 2 and types.count("Connected") >= 3
    # every Gap is followed by a Resynced before the end (none left unresolved)
    open_gaps = 0
    for t in types:
        open_gaps += t == "Gap"
        open_gaps -= t == "Resynced" and open_gaps > 0
    assert open_gaps <= 1  # at most the one from the very last drop
    assert types.count("BookUpdate") > 20
