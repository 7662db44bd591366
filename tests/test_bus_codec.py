"""The bus encoding: subjects, events round trip, message ids equal across two connections."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import tickwire
from tickwire.bus import codec
from tickwire.bus.collector import parse_shard, shard
from tickwire.model import BookUpdate

pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator, demo_streams  # noqa: E402


@pytest.mark.parametrize("raw", ["BTC-USDT", "BTC.USDT", "a*b>c", "with space", "~x", "_", "", "1/0xabc",
                                 "ünï.code"])
def test_tokens_escape_and_unescape(raw):
    tok = codec.escape(raw)
    assert tok and not any(c in tok for c in ".*> \t")
    assert codec.unescape(tok) == raw


def test_subjects_name_kind_and_channel():
    assert codec.md_subject("bybit.linear:orderbook.50:BTCUSDT") == "md.bybit.linear.book.orderbook~2E50.BTCUSDT"
    assert codec.md_subject("okx:trades:BTC-USDT") == "md.okx.spot.trades.trades.BTC-USDT"
    assert codec.snap_subject("okx:books:BTC-USDT") == "snap.okx.spot.book.books.BTC-USDT"


def test_shards_split_deterministically():
    specs = [s for v in demo_streams().values() for s in v]
    parts = [shard(specs, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(tickwire.parse(s).spec for s in specs)
    assert [shard(list(reversed(specs)), i, 3) for i in range(3)] == [list(reversed(p)) for p in parts]
    assert parse_shard("2/3") == (1, 3)
    with pytest.raises(ValueError):
        parse_shard("4/3")


def _comparable(e):
    if isinstance(e, BookUpdate):
        e = msgspec.structs.replace(e, book=None)
    return tickwire.to_json(e)


async def _events(sim, specs, out, seconds):
    async with tickwire.stream(*specs, endpoints=sim.endpoints, credentials={}) as feed:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        async for ev in feed:
            out.append(ev)
            if loop.time() > end:
                break


def _frames(events):
    """Group events like the collector: consecutive events of one stream and one frame."""
    groups, cur, key = [], [], None
    for ev in events:
        if ev.is_status:
            continue
        k = (ev.stream, ev.recv_ns)
        if k != key and cur:
            groups.append(cur)
            cur = []
        key = k
        cur.append(ev)
    if cur:
        groups.append(cur)
    return groups


async def test_events_round_trip_and_ids_match_across_two_connections():
    venues = ["okx", "bybit", "bge"]
    specs = [s for v in venues for s in demo_streams([v])[v]]
    a, b = [], []
    async with Simulator(venues=venues, seed=5) as sim:
        await asyncio.gather(_events(sim, specs, a, 3.0), _events(sim, specs, b, 3.0))
    ga, gb = _frames(a), _frames(b)
    assert len(ga) > 100
    ids_a, ids_b = {}, {}
    for groups, ids in ((ga, ids_a), (gb, ids_b)):
        for g in groups:
            body, mid = codec.encode_md(g[0].stream, g, "conn", "src")
            _, back = codec.decode_md(body)
            assert [_comparable(e) for e in back] == [_comparable(e) for e in g]  # same types, same fields
            ids[mid] = g
    # The two connections received the same venue frames at different local times on
    # different sockets: the same ids (all but the subscribe-time snapshots / first pushes).
    common = set(ids_a) & set(ids_b)
    assert len(common) > 0.8 * min(len(ids_a), len(ids_b))
    for mid in list(common)[:200]:
        ea, eb = ids_a[mid], ids_b[mid]
        assert [_comparable(msgspec.structs.replace(e, recv_ns=0)) for e in ea] == \
               [_comparable(msgspec.structs.replace(e, recv_ns=0)) for e in eb]
    assert any(ids_a[m][0].recv_ns != ids_b[m][0].recv_ns for m in common)
    # what differs is content: never the same id for different venue content
    by_content: dict = {}
    for mid, g in ids_a.items():
        by_content.setdefault(mid, set()).add(b"".join(_comparable(msgspec.structs.replace(e, recv_ns=0)) for e in g))
    assert all(len(v) == 1 for v in by_content.values())


# --------------------------------------------------------------------------- chunks


class _BurstFeed:
    """What ``Collector.run`` uses of a feed, over a list of events delivered in bursts: the
    collector sees a backlog inside a burst and an idle feed between bursts (``cuts``: the
    indices where a burst ends)."""

    def __init__(self, events, cuts=()):
        self.events = events
        self.i = 0
        self.cuts = sorted(set(cuts) | {len(events)})

    def pending(self):
        nxt = next(c for c in self.cuts if c >= self.i)
        return nxt - self.i

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.i >= len(self.events):
            raise StopAsyncIteration
        ev = self.events[self.i]
        self.i += 1
        return ev


class _Sink:
    """A publisher that keeps what the collector submits."""

    def __init__(self):
        self.msgs = []

    def submit(self, m):
        self.msgs.append(m)
        return True

    def kick(self):
        pass


async def _publish(events, cuts=(), **kw):
    from tickwire.bus.collector import Collector

    c = Collector("nats://unused", [], name="t", snapshot_interval_s=0, **kw)
    c.publisher = _Sink()
    c.feed = _BurstFeed(events, cuts)
    await c.run()
    return c.publisher.msgs


@pytest.fixture(scope="module")
def sim_events():
    venues = ["okx", "bybit", "bge"]
    specs = [s for v in venues for s in demo_streams([v])[v]]
    out = []

    async def run():
        async with Simulator(venues=venues, seed=6, options={"okx": {"trade_interval_ms": 5},
                                                             "bybit": {"trade_interval_ms": 5}}) as sim:
            await _events(sim, specs, out, 3.0)

    asyncio.run(run())
    return [e for e in out if not e.is_status]


async def test_chunks_carry_every_event_with_its_own_receipt_time_and_the_codecs_ids(sim_events):
    """The collector's inline rows are codec.event_row's: every message decodes back to the events
    it was made of (each with its own recv_ns, several frames per chunk), and its id is the one
    codec.encode_md gives those events."""
    msgs = await _publish(sim_events)       # one burst: everything is a backlog
    back = []
    spans = 0
    for m in msgs:
        md, evs = codec.decode_md(m.data)
        assert m.subject == codec.md_subject(md.stream)
        assert codec.encode_md(md.stream, evs, "", "t")[1] == m.msg_id
        spans += md.recv_each is not None
        back.extend(evs)
    assert spans > 10 and len(msgs) < len(sim_events) / 4   # chunks of several frames
    by_stream = {}
    for e in sim_events:
        by_stream.setdefault(e.stream, []).append(_comparable(e))
    got = {}
    for e in back:
        got.setdefault(e.stream, []).append(_comparable(e))
    assert got == by_stream   # every event once, in order, with all its fields (recv_ns too)


async def test_chunk_boundaries_are_the_same_whatever_the_backlog(sim_events):
    """Twins see the same frames but not the same idle moments (a collector is idle between two
    frames when it has nothing more waiting). Idle after every frame, both publish one message
    per frame; never idle (a backlog), both cut at the same venue keys; an idle moment in one
    twin only changes the messages of the chunks it cut early (one per stream): from the next
    key that ends a chunk on, their messages are the same again. Whatever the idle moments,
    the messages deduplicated by id hold every event, and the copies are exact duplicates by
    venue key (what consumers drop)."""
    import random

    frames = [i for i in range(1, len(sim_events)) if sim_events[i].recv_ns != sim_events[i - 1].recv_ns]
    streams = len({e.stream for e in sim_events})

    def check_union(a, b):
        body_a = {m.msg_id: codec.decode_md(m.data)[1] for m in a}
        body_b = {m.msg_id: codec.decode_md(m.data)[1] for m in b}
        for mid in body_a.keys() & body_b.keys():   # same id: same venue content
            assert [_comparable(msgspec.structs.replace(e, recv_ns=0)) for e in body_a[mid]] == \
                   [_comparable(msgspec.structs.replace(e, recv_ns=0)) for e in body_b[mid]]
        stored = {**body_b, **body_a}   # what the bus keeps: each id once
        keys = [k for evs in stored.values() for k in map(_key, evs) if k]
        want = {_key(e) for e in sim_events} - {None}
        assert set(keys) == want
        return len(keys) / len(want)

    a0 = await _publish(sim_events)                       # a backlog throughout
    assert [m.msg_id for m in await _publish(sim_events)] == [m.msg_id for m in a0]
    a1 = await _publish(sim_events, cuts=frames)          # idle after every frame
    assert [m.msg_id for m in await _publish(sim_events, cuts=frames)] == [m.msg_id for m in a1]
    assert len(a0) < len(a1) / 4
    assert check_union(a0, a0) == 1.0
    for x in (frames[len(frames) // 3], frames[len(frames) // 2]):
        b = await _publish(sim_events, cuts=[x])          # one idle moment in one twin
        differ = {m.msg_id for m in b} - {m.msg_id for m in a0}
        assert 0 < len(differ) <= 2 * streams, (len(differ), streams)
        check_union(a0, b)
    rnd = random.Random(1)
    for p in (0.02, 0.1, 0.5):                            # idle moments at random in both
        a = await _publish(sim_events, cuts=[i for i in frames if rnd.random() < p])
        b = await _publish(sim_events, cuts=[i for i in frames if rnd.random() < p])
        assert check_union(a, b) < 2.0


def _key(e):
    if isinstance(e, BookUpdate) and not e.snapshot and e.seq:
        return (e.stream, "b", e.seq)
    if getattr(e, "trade_id", ""):
        return (e.stream, "t", e.trade_id)
    return None


def test_chunk_keys_end_chunks_regularly():
    """Sequences that step by 1, by 2 (OKX trade ids in the simulator), irregularly (OKX book
    seqIds) or by 1000 all end chunks every ~k events (a prime modulus)."""
    import random

    from tickwire.bus.collector import chunk_modulus

    assert [chunk_modulus(k) for k in (2, 16, 32, 64)] == [2, 17, 37, 67]
    p = chunk_modulus(32)
    rnd = random.Random(2)
    for step in (lambda: 1, lambda: 2, lambda: 1000, lambda: 1_000_000, lambda: rnd.randrange(150, 300)):
        seq, ends = 10**9, 0
        for _ in range(100_000):
            seq += step()
            ends += seq % p == 0
        assert 100_000 / 60 < ends < 100_000 / 20, ends


def test_old_messages_and_old_readers():
    """A message of one frame has no per-event receipt times (the earlier format, still read);
    a reader of the earlier format reads a chunk too (the trailing field is ignored)."""
    from tickwire.model import Trade

    evs = [Trade("1", "2", "buy", str(i), 0, venue="okx", market="spot", symbol="BTC-USDT",
                 stream="okx:trades:BTC-USDT", exch_ns=i, recv_ns=100 + i // 2) for i in range(4)]
    one, _ = codec.encode_md(evs[0].stream, evs[:2], "", "x")
    assert len(msgspec.msgpack.decode(one)) == 6
    chunk, _ = codec.encode_md(evs[0].stream, evs, "", "x")
    md, back = codec.decode_md(chunk)
    assert [e.recv_ns for e in back] == [100, 100, 101, 101] and md.recv_each == [100, 100, 101, 101]

    class Old(msgspec.Struct, array_like=True):
        format: int
        stream: str
        recv_ns: int
        conn: str
        src: str
        events: list

    assert len(msgspec.msgpack.decode(chunk, type=Old).events) == 4


def test_greeks_line_switches_and_private_events_travel_on_the_bus_with_their_own_symbol():
    from tickwire import model as m
    from tickwire.bus import codec

    g = m.Greeks(venue="bybit", market="option", symbol="BTC", stream="bybit:greeks:ANY", exch_ns=5,
                 recv_ns=7, base_coin="BTC", delta="0.01", theta="-1.5", raw={"baseCoin": "BTC"})
    body, _ = codec.encode_md(g.stream, [g], "c#1", "col")
    assert codec.decode_md(body)[1] == [g]
    # an event of a private (ANY) stream keeps its own market and symbol
    o = m.Order(venue="okx", market="SWAP", symbol="BTC-USDT-SWAP", stream="okx:orders:ANY", exch_ns=5, recv_ns=7,
                order_id="1", side="buy")
    assert codec.decode_md(codec.encode_md(o.stream, [o], "c#1", "col")[0])[1] == [o]
    sw = m.LineSwitch(venue="okx", conn="c#1", recv_ns=9, from_host="ws.okx.com", to_host="wsaws.okx.com",
                      reason="rtt")
    assert codec.decode_status(codec.encode_status([sw])) == [sw]


async def test_a_chunk_too_big_for_one_message_goes_in_pieces_with_every_event(sim_events):
    """A chunk whose message would pass max_message_bytes is sent in halves (again, while
    still too big): every event arrives once, in order, and no message of several events is
    over the bound."""
    limit = 2048
    msgs = await _publish(sim_events, max_message_bytes=limit)
    back = []
    for m in msgs:
        md, evs = codec.decode_md(m.data)
        assert len(m.data) <= limit or len(evs) == 1
        back.extend(evs)
    big = await _publish(sim_events)
    assert len(msgs) > len(big)
    by_stream, got = {}, {}
    for e in sim_events:
        by_stream.setdefault(e.stream, []).append(_comparable(e))
    for e in back:
        got.setdefault(e.stream, []).append(_comparable(e))
    assert got == by_stream
