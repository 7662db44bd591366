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
