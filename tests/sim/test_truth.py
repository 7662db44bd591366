"""The simulators' ground truth (``sim.venue(v).truth``) and its control endpoint, checked with a tiny
raw client (no tickwire client code): a book rebuilt from the frames equals the truth's book at
every sequence (by digest), the trades sent are the trades in the frames, every injected fault is
logged with the stream and the sequence numbers it broke, and the venue's own limits are logged
apart from the faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tickwire.sim import Simulator
from tickwire.sim.framework.truth import BookTruth, levels_digest

from ._client import RawClient


class Book:
    """A minimal L2 book (exact strings) for the tests."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def snapshot(self, bids: list, asks: list) -> None:
        self.bids = {lv[0]: lv[1] for lv in bids}
        self.asks = {lv[0]: lv[1] for lv in asks}

    def delta(self, bids: list, asks: list) -> None:
        for levels, side in ((bids, self.bids), (asks, self.asks)):
            for lv in levels:
                if lv[1] == "0":
                    side.pop(lv[0], None)
                else:
                    side[lv[0]] = lv[1]

    def digest(self) -> int:
        return levels_digest(self.bids, self.asks)


async def frames(c: RawClient, seconds: float) -> list[dict]:
    return [json.loads(x) for x in await c.collect(seconds) if x[:1] == b"{"]


def test_book_truth_digest_is_order_free_and_tracks_history():
    b = BookTruth("x", history=3)
    b.snapshot(10, [("100", "1"), ("99", "2")], [("101", "1")])
    d10 = b.digest
    assert d10 == levels_digest({"100": "1", "99": "2"}, [("101", "1")])
    b.delta(11, [("100", "0"), ("98", "5")], [])
    assert b.bids == {"99": "2", "98": "5"} and b.digest == levels_digest(b.bids, b.asks)
    b.delta(12, [("97", "0")], [("101", "3")])  # deleting an absent level changes nothing
    assert b.digest_at(10) == d10 and b.digest_at(12) == b.digest
    b.delta(13, [], [("102", "1")])
    assert b.digest_at(10) is None and b.oldest_seq() == 11  # beyond the history kept
    assert b.levels() == ([("99", "2"), ("98", "5")], [("101", "3"), ("102", "1")])
    # a bid and an ask at the same price and size are different levels
    assert levels_digest({"1": "1"}, {}) != levels_digest({}, {"1": "1"})


async def test_bybit_book_trades_and_skip_u_match_the_truth():
    async with Simulator(venues=["bybit"], seed=3) as sim:
        vs = sim.venue("bybit")
        c = await RawClient.connect(sim.endpoints["bybit"] + "/v5/public/linear")
        c.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]})
        book, last_u, compared, trades = Book(), None, 0, []
        skipped: list[int] = []
        async with asyncio.timeout(20):
            while compared < 60 or not skipped or len(trades) < 10:
                m = json.loads(await c.recv_raw())
                topic = m.get("topic", "")
                if topic.startswith("publicTrade"):
                    trades += [(t["i"], t["p"], t["v"], t["S"]) for t in m["data"]]
                    continue
                if not topic.startswith("orderbook"):
                    continue
                d = m["data"]
                if m["type"] == "snapshot":
                    book.snapshot(d["b"], d["a"])
                else:
                    if last_u is not None and d["u"] != last_u + 1:
                        skipped.append(last_u + 1)
                    book.delta(d["b"], d["a"])
                last_u = d["u"]
                assert vs.truth.book("linear:orderbook.50.BTCUSDT").digest_at(d["u"]) == book.digest()
                compared += 1
                if compared == 20:
                    vs.inject("skip-u")
        c.close()
        t = vs.truth
        (rec,) = [f for f in t.faults if f.kind == "skip-u"]
        assert rec.stream == "linear:orderbook.50.BTCUSDT" and list(rec.seqs) == skipped and rec.cause is not None
        (inj,) = [i for i in t.injections if i.kind == "skip-u"]
        assert rec.cause == inj.id and inj.detail == "skip-u"
        sent = [x[:4] for x in t.trades("linear:publicTrade.BTCUSDT").since(0)[0]]
        assert trades == sent[:len(trades)] and all(x[5] == 1 for x in t.trades("linear:publicTrade.BTCUSDT").items)
        bids, asks = t.book("linear:orderbook.50.BTCUSDT").levels()
        assert bids == sorted(bids, key=lambda x: -float(x[0])) and len(bids) == 50 and len(asks) == 50


async def test_okx_withheld_delta_is_in_the_truth_and_the_log():
    async with Simulator(venues=["okx"], seed=4, options={"okx": {"checksum": "legacy"}}) as sim:
        vs = sim.venue("okx")
        c = await RawClient.connect(sim.endpoints["okx"] + "/ws/v5/public")
        c.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
        prevs: list[tuple[int, int]] = []
        async with asyncio.timeout(15):
            while len(prevs) < 30:
                item = await c.recv_raw()
                if item == b"pong":
                    continue
                m = json.loads(item)
                if m.get("arg", {}).get("channel") != "books" or "data" not in m:
                    continue
                d = m["data"][0]
                prevs.append((d["prevSeqId"], d["seqId"]))
                if len(prevs) == 10:
                    vs.inject("skip-seq")
                if len(prevs) == 20:
                    vs.inject("bad-checksum")
        c.close()
        t = vs.truth
        (skip,) = [f for f in t.faults if f.kind == "skip-seq"]
        (withheld,) = skip.seqs
        assert (withheld, withheld) not in prevs and any(p == withheld for p, _ in prevs)  # never sent, named next
        assert t.book("books:BTC-USDT").digest_at(withheld) is not None  # the venue's book did move
        (bad,) = [f for f in t.faults if f.kind == "bad-checksum"]
        assert bad.stream == "books:BTC-USDT" and any(s == bad.seqs[0] for _, s in prevs)


async def test_bge_reorder_dup_and_limits_are_logged_apart():
    opts = {"bge": {"book_interval_ms": 50, "rate_limit_msgs": 5}}
    async with Simulator(venues=["bge"], seed=5, options=opts) as sim:
        vs = sim.venue("bge")
        c = await RawClient.connect(sim.endpoints["bge"] + "/v2/ws")
        c.send({"event": "sub", "biz": "market", "type": "orderbook", "product": "BTC_USDT", "interval": "0",
                "zip": False})
        await asyncio.sleep(0.3)
        vs.inject("reorder-seq")
        vs.inject("dup-seq")
        got = [m for m in await frames(c, 0.6) if m.get("type") == "orderbook" and "data" in m]
        seqs = [m["data"]["seq_id"] for m in got]
        t = vs.truth
        kinds = {f.kind: f for f in t.faults}
        held = kinds["reorder-seq"].seqs[0]
        i = seqs.index(held)
        assert seqs[i - 1] > held  # sent after the next one
        dup = kinds["dup-seq"].seqs[0]
        assert seqs.count(dup) == 2
        for m in got:  # every push is the truth's book at its seq_id
            d = m["data"]
            assert t.book("market.orderbook.BTC_USDT.0").digest_at(d["seq_id"]) == levels_digest(d["bids"], d["asks"])
        assert not t.limits
        for _ in range(8):  # more than 5 messages a second: the venue's rate rule closes us
            c.send({"event": "sub", "biz": "market", "type": "ticker", "product": "BTC_USDT", "zip": False})
        async with asyncio.timeout(3):
            await c.closed.wait()
        (lim,) = t.limits
        assert lim.kind == "rate-close" and "too many messages" in lim.detail
        assert all(f.kind != "rate-close" for f in t.faults)  # a limit, not a fault


async def test_connection_faults_name_the_connections_they_hit():
    async with Simulator(venues=["bybit"], seed=6) as sim:
        vs = sim.venue("bybit")
        url = sim.endpoints["bybit"] + "/v5/public/linear"
        a, b = await RawClient.connect(url), await RawClient.connect(url)
        for x in (a, b):
            x.send({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
        await asyncio.sleep(0.2)
        ids = sorted(c.id for c in vs.connections)
        vs.inject("malformed")
        vs.inject("close=1011")
        async with asyncio.timeout(3):
            await a.closed.wait()
            await b.closed.wait()
        assert a.close_code == 1011
        vs.inject("reject-connect=1")
        with pytest.raises(Exception):
            await RawClient.connect(url)
        t = vs.truth
        by = {f.kind: f for f in t.faults}
        assert sorted(by["malformed"].conns) == ids and sorted(by["close"].conns) == ids
        assert by["close"].detail == "closed with 1011" and "429" in by["reject-connect"].detail
        assert [i.kind for i in t.injections] == ["malformed", "close", "reject-connect"]
        with pytest.raises(ValueError):
            vs.inject("close=1006")  # a code that cannot be sent


async def _http(url: str, method: str = "GET") -> tuple[int, Any]:
    host, _, rest = url.removeprefix("http://").partition(":")
    port, _, path = rest.partition("/")
    r, w = await asyncio.open_connection(host, int(port))
    w.write(f"{method} /{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await w.drain()
    data = await r.read()
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def test_control_endpoint_serves_the_truth_and_injects():
    async with Simulator(venues=["bybit", "okx"], seed=7, control_port=0) as sim:
        ctl = sim.control_url
        assert ctl and json.loads(sim.ready_line())["control"] == ctl
        c = await RawClient.connect(sim.endpoints["bybit"] + "/v5/public/linear")
        c.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]})
        await asyncio.sleep(0.5)
        st, root = await _http(ctl + "/")
        assert st == 200 and set(root["venues"]) == {"bybit", "okx"}
        st, body = await _http(ctl + "/bybit/inject?fault=skip-u", "POST")
        assert st == 200 and body == {"fault": "skip-u"}
        await asyncio.sleep(0.3)
        st, faults = await _http(ctl + "/bybit/faults")
        (rec,) = faults["faults"]
        assert rec["kind"] == "skip-u" and rec["stream"] == "linear:orderbook.50.BTCUSDT" and rec["seqs"]
        st, book = await _http(ctl + "/bybit/book?stream=linear:orderbook.50.BTCUSDT")
        assert st == 200 and len(book["bids"]) == 50 and book["digest"] == levels_digest(book["bids"], book["asks"])
        st, at = await _http(ctl + f"/bybit/book?stream=linear:orderbook.50.BTCUSDT&seq={book['seq']}")
        assert at == {"stream": "linear:orderbook.50.BTCUSDT", "seq": book["seq"], "digest": book["digest"]}
        st, _ = await _http(ctl + "/bybit/book?stream=linear:orderbook.50.BTCUSDT&seq=1")
        assert st == 404
        st, tr = await _http(ctl + "/bybit/trades?stream=linear:publicTrade.BTCUSDT")
        assert st == 200 and tr["next"] == len(tr["trades"]) > 0
        st, tr2 = await _http(ctl + f"/bybit/trades?stream=linear:publicTrade.BTCUSDT&since={tr['next']}")
        assert tr2["trades"] == [] or tr2["next"] > tr["next"]
        for bad, code in (("/nope/faults", 404), ("/bybit/inject?fault=nope", 405), ("/bybit/book?stream=x", 404),
                          ("/bybit/faults?since=x", 400)):
            st, _ = await _http(ctl + bad)
            assert st == code, bad
        st, err = await _http(ctl + "/okx/inject?fault=bogus", "POST")
        assert st == 400 and "unknown fault" in err["error"]
        st, s = await _http(ctl + "/bybit/stats")
        assert st == 200 and s["faults_injected"] == 1
        c.close()


async def test_garble_corrupts_frames_detectably_and_logs_each_one():
    async with Simulator(venues=["okx"], seed=8, options={"okx": {"trade_interval_ms": 10}}) as sim:
        vs = sim.venue("okx")
        c = await RawClient.connect(sim.endpoints["okx"] + "/ws/v5/public")
        c.send({"op": "subscribe", "args": [{"channel": "trades", "instId": "BTC-USDT"}]})
        await asyncio.sleep(0.3)
        c.drain()
        start = vs.truth.trades("trades:BTC-USDT").total
        vs.inject("garble=50")
        got = await c.collect(1.5)
        vs.inject("clear")
        end = vs.truth.trades("trades:BTC-USDT").total
        c.close()
        t = vs.truth
        garbled = [f for f in t.faults if f.kind == "garble"]
        assert len(garbled) >= 10 and all(f.stream == "trades:BTC-USDT" for f in garbled)
        assert {f.detail.split(":")[0] for f in garbled} <= set(__import__(
            "tickwire.sim.framework.mutate", fromlist=["x"]).DETECTABLE_OPS)
        intact = []
        for item in got:
            try:
                m = json.loads(item)
                intact += [d["tradeId"] for d in m["data"]]
            except (ValueError, KeyError, TypeError, IndexError):
                continue
        during = t.trades("trades:BTC-USDT").since(start)[0][: end - start]
        assert set(x[0] for x in during if x[5] == 1) <= set(intact)  # what the truth calls delivered arrived intact
        assert sum(1 for x in during if x[5] == 0) >= 5  # and the garbled ones are not counted delivered


def test_mutator_is_deterministic_and_covers_every_operation():
    import random

    from tickwire.sim.framework.mutate import OPS, Mutator

    frame = (b'{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["65000.1","0.5"]],'
             b'"a":[["65000.2","0"]],"u":7,"seq":9},"cts":1}')
    a = [Mutator(random.Random(1)).mutate(frame) for _ in range(300)]
    b = [Mutator(random.Random(1)).mutate(frame) for _ in range(300)]
    assert a[:20] == b[:20]
    m = Mutator(random.Random(2), max_bytes=1 << 16)
    seen = {m.mutate(frame)[2] for _ in range(3000)}
    assert seen == set(OPS)
    d = Mutator(random.Random(3), detectable=True)
    for _ in range(2000):
        out, _, op = d.mutate(frame)
        assert out != frame or op == "compress"
