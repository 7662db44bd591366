"""Lines without sockets: the hot-standby join (every interleaving of two lines), the options,
default hosts, venue-wide connection pacing, the CLI's ``--endpoint VENUE=URL1,URL2``."""

from __future__ import annotations

import asyncio
import random

import pytest
import typer

from tickwire.book import Book
from tickwire.model import BookUpdate, Disconnected, Gap, Resynced, Ticker, Trade
from tickwire.net.failover import Redundant
from tickwire.net.feed import Feed, FeedOptions
from tickwire.options import OptionError
from tickwire.venues import get_venue

S_BOOK, S_TRADES, S_TICK, S_SNAP = "okx:books:X", "okx:trades:X", "okx:tickers:X", "bge:orderbook.0:X"


class _Closed:
    def __init__(self) -> None:
        self.flag = False

    def is_set(self) -> bool:
        return self.flag


class _St:
    def __init__(self, synced: bool = True, book: bool = True) -> None:
        self.synced = synced
        self.book = object() if book else None


class _Sub:
    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.topic = spec


class FakeLine:
    """What Redundant reads of a connection: alive (listener open) and its streams' state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.url = name
        self.host = None
        self.stopping = False
        self.listener = type("L", (), {})()
        self.listener.closed = _Closed()
        self.subs = {s: _Sub(s) for s in (S_BOOK, S_TRADES, S_TICK, S_SNAP)}
        self.session = type("S", (), {})()
        self.session.streams = {s: _St(book=s in (S_BOOK, S_SNAP)) for s in self.subs}

    def drop(self) -> None:
        self.listener.closed.flag = True
        for st in self.session.streams.values():
            st.synced = False

    def back(self) -> None:
        self.listener.closed.flag = False


def book_ev(seq, prev, snapshot=False, recv=0, spec=S_BOOK):
    b = Book()
    b.apply_snapshot([("1", "1")], [("2", "1")], seq)
    return BookUpdate(venue="okx", stream=spec, seq=seq, prev_seq=prev, snapshot=snapshot, book=b, recv_ns=recv,
                      exch_ns=seq)


def trade(i, recv=0):
    return Trade(venue="okx", stream=S_TRADES, price="1", size="1", side="buy", trade_id=str(i), recv_ns=recv)


def tick(i, recv=0):
    return Ticker(venue="okx", stream=S_TICK, last=str(i), exch_ns=1000 + i, recv_ns=recv)


def line_events(first: int, last: int, snapshot_at: int) -> list[list]:
    """One line's frames: a snapshot at ``snapshot_at`` then deltas, a trade and a ticker per seq."""
    out = [[book_ev(snapshot_at, -1, True)]]
    for s in range(first, last + 1):
        frame = [trade(s), tick(s)]
        if s > snapshot_at:
            frame.insert(0, book_ev(s, s - 1))
        out.append(frame)
    return out


def check(out: list, first_seq: int, last_seq: int, first_trade: int, last_trade: int) -> None:
    """From whatever arrived first (either line's start), every message once and in order."""
    books = [e for e in out if isinstance(e, BookUpdate)]
    assert books[0].snapshot and first_seq <= books[0].seq <= first_seq + 40
    start = books[0].seq
    assert [(e.prev_seq, e.seq) for e in books[1:]] == [(s - 1, s) for s in range(start + 1, last_seq + 1)]
    ids = [int(e.trade_id) for e in out if isinstance(e, Trade)]
    assert first_trade <= ids[0] <= first_trade + 10 and ids == list(range(ids[0], last_trade + 1))
    lasts = [int(e.last) for e in out if isinstance(e, Ticker)]
    assert lasts == sorted(set(lasts))
    assert not [e for e in out if isinstance(e, (Gap, Resynced))]


def test_two_lines_in_any_interleaving_give_each_message_once_and_an_unbroken_chain():
    for seed in range(300):
        rng = random.Random(seed)
        out: list = []
        r = Redundant(out.extend)
        a, b = FakeLine("a"), FakeLine("b")
        pa, pb = r.port(a), r.port(b)
        # line b subscribed a little later: its snapshot is ahead of a's
        qa, qb = line_events(10, 120, 10), line_events(14, 120, rng.randint(10, 40))
        while qa or qb:
            if qa and (not qb or rng.random() < 0.5):
                pa(qa.pop(0))
            else:
                pb(qb.pop(0))
        check(out, 10, 120, 10, 120)
        assert r.duplicates > 100


def test_a_line_that_drops_loses_nothing_when_the_other_holds_the_streams():
    for seed in range(200):
        rng = random.Random(seed)
        out: list = []
        r = Redundant(out.extend)
        a, b = FakeLine("a"), FakeLine("b")
        pa, pb = r.port(a), r.port(b)
        qa, qb = line_events(1, 60, 1), line_events(1, 200, 1)
        dropped = False
        while qa or qb:
            if qa and (not qb or rng.random() < 0.5):
                pa(qa.pop(0))
                if not qa and not dropped:  # line a dies: its session reports a Gap, the connection a Disconnected
                    dropped = True
                    a.drop()
                    pa([Gap(venue="okx", stream=S_BOOK, reason="connection closed"),
                        Disconnected(venue="okx", reason="connection lost")])
                    # ... and comes back with a snapshot somewhere around where b is
                    a.back()
                    snap = rng.randint(55, 110)
                    qa = [[book_ev(snap, -1, True)]] + [[book_ev(s, s - 1), trade(s)] for s in range(snap + 1, 201)]
            else:
                pb(qb.pop(0))
        r.tick(10**18)  # nothing left waiting for a join
        check(out, 1, 200, 1, 200)
        assert [e for e in out if isinstance(e, Disconnected)]
        assert r.covered >= 1 and r.rebased == 0


def test_when_every_line_drops_the_user_gets_one_gap_then_a_resync():
    out: list = []
    r = Redundant(out.extend)
    a, b = FakeLine("a"), FakeLine("b")
    pa, pb = r.port(a), r.port(b)
    pa([book_ev(1, -1, True)])
    pb([book_ev(1, -1, True)])
    pa([book_ev(2, 1)])
    a.drop()
    pa([Gap(venue="okx", stream=S_BOOK, reason="closed")])
    b.drop()
    pb([Gap(venue="okx", stream=S_BOOK, reason="closed")])
    a.back()
    pa([book_ev(50, -1, True), Resynced(venue="okx", stream=S_BOOK, seq=50)])
    pb([book_ev(50, -1, True), Resynced(venue="okx", stream=S_BOOK, seq=50)])
    pa([book_ev(51, 50)])
    kinds = [(type(e).__name__, getattr(e, "seq", None)) for e in out]
    assert kinds == [("BookUpdate", 1), ("BookUpdate", 2), ("Gap", None), ("BookUpdate", 50), ("Resynced", 50),
                     ("BookUpdate", 51)]


def test_a_chain_that_cannot_be_joined_is_rebased_after_the_hold_time():
    out: list = []
    r = Redundant(out.extend, hold_s=1.0)
    a, b = FakeLine("a"), FakeLine("b")
    pa, pb = r.port(a), r.port(b)
    pa([book_ev(1, -1, True, recv=1)])
    pb([book_ev(1, -1, True, recv=1)])
    pa([book_ev(2, 1, recv=2)])
    a.drop()  # a dies silently (no Gap yet); b had lost 2..9 and reconnected at 10
    pb([book_ev(10, -1, True, recv=3)])
    pb([book_ev(11, 10, recv=4)])
    r.tick(int(0.5e9))
    assert [e.seq for e in out if isinstance(e, BookUpdate)] == [1, 2]
    r.tick(int(2e9))
    kinds = [(type(e).__name__, getattr(e, "seq", None)) for e in out]
    assert kinds[2:] == [("Gap", None), ("BookUpdate", 10), ("BookUpdate", 11), ("Resynced", 11)]
    assert r.rebased == 1


def test_snapshot_only_streams_take_the_newest_seq_id_once():
    out: list = []
    r = Redundant(out.extend)
    a, b = FakeLine("a"), FakeLine("b")
    pa, pb = r.port(a), r.port(b)
    rng = random.Random(5)
    seqs = sorted(rng.sample(range(1000, 5000), 60))  # seq_id jumps (one counter for every channel)
    qa = [[book_ev(s, 0, True, spec=S_SNAP)] for s in seqs]
    qb = [[book_ev(s, 0, True, spec=S_SNAP)] for s in seqs[5:]]
    while qa or qb:
        if qa and (not qb or rng.random() < 0.5):
            pa(qa.pop(0))
        else:
            pb(qb.pop(0))
    got = [e.seq for e in out]       # the newest full book first to arrive, from either line
    assert got == sorted(set(got)) and got[-1] == seqs[-1] and len(got) > 40


def test_options_several_lines_redundancy_and_policy_are_checked_up_front():
    def feed(**kw):
        return Feed(["okx:books:BTC-USDT"], FeedOptions(**kw))

    f = feed(endpoints={"okx": ["ws://a:1", "ws://b:2"]}, line_policy={"margin": "0.5"})
    assert f.options.line_policy == {"margin": 0.5}
    assert f.hosts_of(get_venue("okx")) == (["ws://a:1", "ws://b:2"], True)
    assert f.endpoint_base("okx") == "ws://a:1"
    with pytest.raises(OptionError, match="ws:// or wss://"):
        feed(endpoints={"okx": ["ws://a:1", "http://b"]})
    with pytest.raises(OptionError, match="twice"):
        feed(endpoints={"okx": ["ws://a:1", "ws://a:1"]})
    with pytest.raises(OptionError, match="margni"):
        feed(line_policy={"margni": 1})
    with pytest.raises(OptionError, match="redundancy"):
        feed(redundancy=7)
    with pytest.raises(OptionError, match="probe_pings"):
        feed(line_policy={"probe_pings": 0})


def test_default_hosts_per_venue_and_network():
    on = Feed(["okx:books:BTC-USDT"], FeedOptions(lines=True))
    assert on.hosts_of(get_venue("okx")) == (["wss://ws.okx.com", "wss://wsaws.okx.com"], False)
    assert on.hosts_of(get_venue("bybit")) == (["wss://stream.bybit.com", "wss://stream.bytick.com"], False)
    assert on.hosts_of(get_venue("bge")) == ([], False)                   # one documented host
    demo = Feed(["okx:books:BTC-USDT"], FeedOptions(lines=True, network="demo"))
    assert demo.hosts_of(get_venue("okx")) == ([], False)                 # demo: one host
    off = Feed(["okx:books:BTC-USDT"], FeedOptions())
    assert off.hosts_of(get_venue("okx")) == ([], False) and off.venue_lines(get_venue("okx")) is None
    vl = on.venue_lines(get_venue("okx"))
    assert [h.name for h in vl.hosts] == ["ws.okx.com", "wsaws.okx.com"] and not vl.custom


def test_a_hot_standby_counts_against_the_per_key_connections_of_a_channel():
    specs = [f"okxdex:price:1/0x{i:040x}" for i in range(0, 2000)]  # 2,000 tokens: several connections
    Feed(specs[:200], FeedOptions(redundancy=2))
    with pytest.raises(OptionError, match="per API key"):
        Feed(specs, FeedOptions(redundancy=2))


async def test_connections_are_paced_across_every_host_of_a_venue():
    f = Feed(["okx:books:BTC-USDT"], FeedOptions(endpoints={"okx": ["ws://a:1", "ws://b:2"]}))
    okx = get_venue("okx")
    lim = f.connect_limiter(okx, "ws://a:1/ws/v5/public")
    assert f.connect_limiter(okx, "ws://b:2/ws/v5/public") is lim
    assert f.connect_limiter(get_venue("bybit"), "ws://a:1/v5/public/spot") is not lim
    waits = [await lim.acquire() for _ in range(4)]   # OKX: 3 per second, 20% kept free, spread evenly
    assert waits[0] == 0 and all(w > 0.3 for w in waits[1:])
    await asyncio.sleep(0)


def test_cli_endpoint_lists_several_lines():
    from tickwire.cli.common import parse_endpoints, parse_line_policy

    assert parse_endpoints(["okx=ws://a:1,ws://b:2", "bybit=ws://c:3"]) == {"okx": ["ws://a:1", "ws://b:2"],
                                                                            "bybit": "ws://c:3"}
    assert parse_endpoints(["okx=ws://a:1", "okx=ws://b:2"]) == {"okx": ["ws://a:1", "ws://b:2"]}
    assert parse_line_policy(["margin=0.3"]) == {"margin": "0.3"}
    with pytest.raises(typer.BadParameter):
        parse_endpoints(["okx"])


async def test_switch_decisions_margin_time_lag_hold_and_cap():
    """The decision alone, on synthetic measurements: better by the margin for degrade_for_s,
    or the data lag up against its own recent past; then hold_s and the hourly cap."""
    from tickwire.net.connection import ManagedConnection

    f = Feed(["bybit.spot:publicTrade:BTCUSDT"], FeedOptions(
        endpoints={"bybit": ["ws://a:1", "ws://b:2"]},
        line_policy={"degrade_for_s": 1.0, "hold_s": 10.0, "max_switches_per_hour": 2, "reprobe_s": 3600}))
    venue = get_venue("bybit")
    vl = f.venue_lines(venue)
    a, b = vl.hosts
    conn = ManagedConnection(f, venue, "public/spot", list(f.subscriptions), "c", lines=vl)
    conn.host = a
    asked: list = []

    async def fake_fail_over(notice_ns, to=None, why=""):
        asked.append((to.name, why))
        conn.host = to
        conn._switched(a if to is b else b, to, why, now_ns=notice_ns)
        conn._failover = None

    conn._fail_over = fake_fail_over
    S = 1_000_000_000
    t = 1000 * S
    for k in range(5):
        b.add_rtt(t - k, 10_000_000)            # b: 10 ms (a probe)
        b.last_probe_ns = t

    def run(seconds: float, rtt_a_ms: float, lag_a_ms: float | None = None) -> None:
        nonlocal t
        end = t + int(seconds * S)
        while t < end:
            t += 250_000_000
            a.add_rtt(t, int(rtt_a_ms * 1e6))
            if lag_a_ms is not None:
                a.add_lag(t, int(lag_a_ms * 1e6))
            for k in range(3):
                b.add_rtt(t - k, 10_000_000)
            if conn._failover is None:          # as the connection's tick does
                conn._consider_switch(t)

    async def settle() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    run(3.0, 11.0)                               # within the margin (10 * 1.25 + 2): stay
    await settle()
    assert not asked
    run(0.6, 40.0)                               # worse, but not for degrade_for_s yet
    await settle()
    assert not asked
    run(1.5, 40.0)
    await settle()
    assert asked and asked[0][0] == "b:2" and "round trip" in asked[0][1]
    # back on a: the round trip is fine, but the data got slower than a minute ago
    conn.host = a
    a.lag.clear()
    a._view_ns = 0
    run(5.0, 10.0, lag_a_ms=5.0)
    run(0.5, 10.0, lag_a_ms=60.0)                # hold_s (10 s) since the last switch: not yet
    await settle()
    assert len(asked) == 1
    run(6.0, 10.0, lag_a_ms=60.0)
    await settle()
    assert len(asked) == 2 and "data lag" in asked[1][1]
    conn.host = a                                # the hourly cap (2) is reached: no third switch
    run(15.0, 80.0)
    await settle()
    assert len(asked) == 2
