"""The Bybit v5 simulator, tested over real loopback sockets with a tiny raw picows client.

No tickwire client code is used here: the expectations come from protocols/bybit.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from typing import Any, Callable

import picows
import pytest

from tickwire.sim import VENUE_SIMS, Fault, Simulator, parse_duration, parse_fault
from tickwire.sim.bybit import BybitSim

from ._client import RawClient as Client

connect = Client.connect


def is_ack(m: dict) -> bool:
    return "success" in m or m.get("type") == "COMMAND_RESP" or m.get("op") == "pong"


def topic_is(t: str) -> Callable[[dict], bool]:
    return lambda m: m.get("topic") == t


@pytest.fixture
def make_sim(sim_factory):
    return sim_factory(BybitSim)


# ------------------------------------------------------------------------------------------------
# framework, grammar, lifecycle
# ------------------------------------------------------------------------------------------------


def test_parse_duration_and_fault_grammar():
    assert parse_duration("5s") == 5.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120.0
    assert parse_duration("1.5") == 1.5
    assert parse_fault("drop-every=5s") == Fault("drop-every", 5.0)
    assert parse_fault("stall-for=500ms") == Fault("stall-for", 0.5)
    assert parse_fault("drop") == Fault("drop", None)
    assert parse_fault("skip-u-every=7") == Fault("skip-u-every", 7)
    assert parse_fault("skip-u-every=2s") == Fault("skip-u-every", 2.0)
    assert parse_fault("reject-connect") == Fault("reject-connect", 1)
    assert parse_fault("reject-connect=3") == Fault("reject-connect", 3)
    with pytest.raises(ValueError, match="known faults:.*drop"):
        parse_fault("explode")
    with pytest.raises(ValueError):
        parse_fault("drop-every")  # needs a duration
    with pytest.raises(ValueError):
        parse_fault("drop=3s")  # takes no value
    with pytest.raises(ValueError):
        parse_duration("5 parsecs")


def test_registry_and_options_validation():
    assert VENUE_SIMS["bybit"] is BybitSim
    with pytest.raises(ValueError, match="unknown BybitOptions option 'book_intervall_ms' "
                                         r"\(did you mean 'book_interval_ms'\?\)"):
        BybitSim(options={"book_intervall_ms": 5})
    # "false" (a config file, the API) is False, not a true non-empty string; nonsense is an error
    assert BybitSim(options={"garble_detectable": "false"}).opts.garble_detectable is False
    with pytest.raises(ValueError, match="garble_detectable='maybe': expected true or false"):
        BybitSim(options={"garble_detectable": "maybe"})
    with pytest.raises(ValueError, match="unknown fault"):
        BybitSim(faults=["nope"])
    with pytest.raises(ValueError, match="unknown venue"):
        Simulator(venues=["nasdaq"])


async def test_ready_line_endpoints_and_404(make_sim):
    sim, vs, base = await make_sim()
    ready = json.loads(sim.ready_line())
    assert ready["event"] == "ready"
    assert ready["venues"]["bybit"]["url"] == base == vs.url
    assert set(ready["venues"]["bybit"]["paths"]) >= {
        "/v5/public/spot", "/v5/public/linear", "/v5/public/inverse", "/v5/public/option", "/v5/private"}
    with pytest.raises(picows.WSHandshakeError) as ei:
        await connect(base + "/v5/public/nope")
    assert ei.value.response.status == 404
    assert vs.stats.handshakes_not_found == 1


async def test_fixed_port_and_ipv6():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with Simulator(venues=["bybit"], port=port) as sim:
        assert sim.endpoints["bybit"] == f"ws://127.0.0.1:{port}"
        c = await connect(sim.endpoints["bybit"] + "/v5/public/linear")
        c.send({"op": "ping"})
        assert (await c.recv())["ret_msg"] == "pong"
        c.close()
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 not available")
    async with Simulator(venues=["bybit"], host="::1") as sim:
        assert sim.endpoints["bybit"].startswith("ws://[::1]:")
        c = await connect(sim.endpoints["bybit"] + "/v5/public/spot")
        c.send({"op": "ping"})
        assert (await c.recv())["ret_msg"] == "pong"
        c.close()


# ------------------------------------------------------------------------------------------------
# pongs, acks, failures
# ------------------------------------------------------------------------------------------------


async def test_pong_shapes(make_sim):
    _, vs, base = await make_sim()
    spot = await connect(base + "/v5/public/spot")
    spot.send({"op": "ping"})
    m = await spot.recv()
    assert m == {"success": True, "ret_msg": "pong", "conn_id": m["conn_id"], "op": "ping"}
    spot.send({"op": "ping", "req_id": "s1"})
    assert (await spot.recv())["req_id"] == "s1"

    for cat in ("linear", "inverse"):
        c = await connect(base + f"/v5/public/{cat}")
        c.send({"op": "ping"})
        m = await c.recv()
        assert list(m) == ["success", "ret_msg", "conn_id", "req_id", "op"]
        assert m["ret_msg"] == "pong" and m["req_id"] == "" and m["op"] == "ping"
        c.send({"req_id": "100001", "op": "ping"})
        assert (await c.recv())["req_id"] == "100001"

    opt = await connect(base + "/v5/public/option")
    opt.send({"op": "ping"})
    m = await opt.recv()
    assert list(m) == ["args", "op"] and m["op"] == "pong"
    assert isinstance(m["args"][0], str) and abs(int(m["args"][0]) - time.time() * 1000) < 5000

    prv = await connect(base + "/v5/private")
    prv.send({"req_id": "test", "op": "ping"})
    m = await prv.recv()
    assert list(m) == ["req_id", "op", "args", "conn_id"] and m["op"] == "pong" and m["req_id"] == "test"
    assert isinstance(m["args"][0], str)
    prv.send({"op": "ping"})
    assert "req_id" not in await prv.recv()
    assert vs.stats.pings == 9


async def test_subscribe_and_unsubscribe_acks_per_category(make_sim):
    _, vs, base = await make_sim()
    spot = await connect(base + "/v5/public/spot")
    spot.send({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
    m = await spot.recv(is_ack)
    assert m == {"success": True, "ret_msg": "subscribe", "conn_id": m["conn_id"], "op": "subscribe"}
    spot.send({"op": "unsubscribe", "req_id": "u1", "args": ["tickers.BTCUSDT"]})
    m = await spot.recv(is_ack)
    assert m["ret_msg"] == "unsubscribe" and m["op"] == "unsubscribe" and m["req_id"] == "u1"

    lin = await connect(base + "/v5/public/linear")
    lin.send({"op": "subscribe", "req_id": "10001", "args": ["tickers.BTCUSDT", "publicTrade.ETHUSDT"]})
    m = await lin.recv(is_ack)
    assert m == {"success": True, "ret_msg": "", "conn_id": m["conn_id"], "req_id": "10001", "op": "subscribe"}
    assert lin.q.qsize() >= 0
    lin.send({"op": "unsubscribe", "args": ["tickers.BTCUSDT"]})
    m = await lin.recv(lambda x: x.get("op") == "unsubscribe")
    assert m["success"] is True and m["req_id"] == ""

    opt = await connect(base + "/v5/public/option")
    opt.send({"op": "subscribe", "args": ["orderbook.25.BTC-27DEC26-100000-C", "publicTrade.BTC"]})
    m = await opt.recv(is_ack)
    assert m["type"] == "COMMAND_RESP" and m["success"] is True and "op" not in m
    assert m["data"] == {"failTopics": [], "successTopics": ["orderbook.25.BTC-27DEC26-100000-C", "publicTrade.BTC"]}
    opt.send({"op": "subscribe", "args": ["publicTrade.BTC-27DEC26-100000-C", "tickers.ETH-27DEC26-4000-C"]})
    m = await opt.recv(is_ack)
    assert m["success"] is False
    assert m["data"] == {"failTopics": ["publicTrade.BTC-27DEC26-100000-C"],
                         "successTopics": ["tickers.ETH-27DEC26-4000-C"]}

    # one ack per request, not per topic
    acks = [x for x in map(json.loads, lin.drain() + await lin.collect(0.2)) if is_ack(x)]
    assert acks == []
    conns = {c["path"]: c for c in vs.stats.connections()}
    assert conns["/v5/public/linear"]["topics"] == ["publicTrade.ETHUSDT"]
    assert conns["/v5/public/option"]["topics"] == [
        "orderbook.25.BTC-27DEC26-100000-C", "publicTrade.BTC", "tickers.ETH-27DEC26-4000-C"]


async def test_whole_batch_fails_on_one_bad_topic(make_sim):
    _, vs, base = await make_sim()
    c = await connect(base + "/v5/public/linear")
    c.send({"op": "subscribe", "req_id": "e1", "args": [
        "orderbook.50.BTCUSDT", "orderbook.50.NOPEUSDT", "orderbook.30.BTCUSDT", "tickers.ETHUSDT"]})
    m = await c.recv()
    assert m == {"success": False, "ret_msg": "error:handler not found,topic:orderbook.50.NOPEUSDT",
                 "conn_id": m["conn_id"], "req_id": "e1", "op": "subscribe"}
    assert await c.collect(0.2) == []  # nothing of the good topics is delivered
    assert vs.stats.connections()[0]["topics"] == []
    for bad in ("orderbook.50.btcusdt", "orderbook.500.BTCUSDT", "orderbook.25.BTCUSDT", "kline.2.BTCUSDT",
                "order", "liquidation.BTCUSDT", "orderbook.050.BTCUSDT"):
        c.send({"op": "subscribe", "args": [bad]})
        m = await c.recv()
        assert m["success"] is False and m["ret_msg"] == f"error:handler not found,topic:{bad}"
    # duplicates
    c.send({"op": "subscribe", "req_id": "a", "args": ["orderbook.1.ETHUSDT"]})
    assert (await c.recv(is_ack))["success"] is True
    c.send({"op": "subscribe", "req_id": "e6", "args": ["orderbook.1.ETHUSDT"]})
    m = await c.recv(is_ack)
    assert m["success"] is False and m["ret_msg"] == "error:already subscribed,topic:orderbook.1.ETHUSDT"
    assert m["req_id"] == "e6"
    # the first subscription keeps delivering
    await c.recv(topic_is("orderbook.1.ETHUSDT"))
    # args that are not a list of topics
    c.send({"op": "subscribe", "args": "orderbook.1.BTCUSDT"})
    assert (await c.recv(is_ack))["success"] is False
    # invalid op
    c.send({"op": "subscribez", "args": []})
    m = await c.recv(is_ack)
    assert m["success"] is False and m["ret_msg"] == "error:invalid op"
    # non-JSON: an error frame and the socket stays open
    c.send(b"hello")
    m = await c.recv(is_ack)
    assert m["success"] is False
    assert m["ret_msg"].startswith("Failed to decode incoming data:readObjectStart: expect { or n, but found h")
    c.send({"op": "ping"})
    assert (await c.recv(is_ack))["ret_msg"] == "pong"
    assert not c.closed.is_set()
    assert vs.stats.errors_sent == 12


async def test_spot_rules_args_size_and_invalid_symbol(make_sim):
    _, vs, base = await make_sim()
    c = await connect(base + "/v5/public/spot")
    syms = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "BNBUSDT", "ADAUSDT", "LTCUSDT",
            "AVAXUSDT", "LINKUSDT"]
    eleven = [f"tickers.{s}" for s in syms] + ["orderbook.1.BTCUSDT"]
    c.send({"op": "subscribe", "req_id": "big", "args": eleven})
    m = await c.recv(is_ack)
    assert m["success"] is False and m["ret_msg"] == "args size >10" and m["req_id"] == "big"
    c.send({"op": "subscribe", "args": eleven[:10]})
    assert (await c.recv(is_ack))["success"] is True
    c.send({"op": "subscribe", "args": ["tickers.NOPEUSDT"]})
    m = await c.recv(is_ack)
    assert m["ret_msg"] == "Invalid symbol :[tickers.NOPEUSDT]"
    conn = vs.stats.connections()[0]
    assert conn["max_args_per_request"] == 11 and len(conn["topics"]) == 10


async def test_args_length_limit_21000(make_sim):
    # 60-character topics: 350 of them make exactly 21,000 characters
    syms = [f"LONG{'X' * 40}{i:04d}USDT" for i in range(360)]
    _, vs, base = await make_sim(symbols={"linear": syms}, ticker_interval_ms=60_000, book_levels=5)
    topics = [f"tickers.{s}" for s in syms]
    assert all(len(t) == 60 for t in topics)
    c = await connect(base + "/v5/public/linear")
    c.send({"op": "subscribe", "args": topics[:350]})
    assert (await c.recv(is_ack, timeout=10))["success"] is True
    c.send({"op": "subscribe", "args": [topics[350]]})
    m = await c.recv(is_ack, timeout=5)
    assert m["success"] is False and "21000" in m["ret_msg"]
    # unsubscribing frees budget
    c.send({"op": "unsubscribe", "args": [topics[0]]})
    assert (await c.recv(lambda x: x.get("op") == "unsubscribe", timeout=5))["success"] is True
    c.send({"op": "subscribe", "args": [topics[350]]})
    assert (await c.recv(lambda x: x.get("op") == "subscribe", timeout=5))["success"] is True


async def test_option_arg_cap(make_sim):
    _, vs, base = await make_sim(option_max_args=2)
    c = await connect(base + "/v5/public/option")
    c.send({"op": "subscribe", "args": ["tickers.BTC-27DEC26-100000-C", "tickers.BTC-27DEC26-100000-P",
                                        "tickers.BTC-27DEC26-80000-C"]})
    m = await c.recv(is_ack)
    assert m["success"] is False and m["data"]["failTopics"] == ["tickers.BTC-27DEC26-80000-C"]


# ------------------------------------------------------------------------------------------------
# order books
# ------------------------------------------------------------------------------------------------


class LocalBook:
    def __init__(self) -> None:
        self.b: dict[str, str] = {}
        self.a: dict[str, str] = {}
        self.u = 0

    def apply(self, m: dict, depth: int) -> None:
        d = m["data"]
        if m["type"] == "snapshot":
            self.b = dict(map(tuple, d["b"]))
            self.a = dict(map(tuple, d["a"]))
            bp = [float(p) for p, _ in d["b"]]
            ap = [float(p) for p, _ in d["a"]]
            assert bp == sorted(bp, reverse=True) and ap == sorted(ap)
        else:
            assert d["u"] == self.u + 1, (self.u, d["u"])
            bp = [float(p) for p, _ in d["b"]]
            ap = [float(p) for p, _ in d["a"]]
            assert bp == sorted(bp, reverse=True) and ap == sorted(ap)
            for side, levels in ((self.b, d["b"]), (self.a, d["a"])):
                for p, s in levels:
                    if s == "0":
                        assert p in side, f"delete of unknown level {p}"
                        del side[p]
                    else:
                        side[p] = s
        self.u = d["u"]
        assert len(self.b) <= depth and len(self.a) <= depth
        if self.b and self.a:
            assert max(map(float, self.b)) < min(map(float, self.a))

    def sorted(self) -> tuple[list[list[str]], list[list[str]]]:
        return ([[p, s] for p, s in sorted(self.b.items(), key=lambda x: -float(x[0]))],
                [[p, s] for p, s in sorted(self.a.items(), key=lambda x: float(x[0]))])


@pytest.mark.parametrize("category,depth,symbol", [
    ("linear", 50, "BTCUSDT"), ("linear", 200, "XRPUSDT"), ("linear", 1000, "ETHUSDT"),
    ("spot", 50, "BTCUSDT"), ("inverse", 200, "BTCUSD"), ("option", 25, "BTC-27DEC26-100000-C"),
])
async def test_book_snapshot_then_deltas_rebuild_equals_sim(make_sim, category, depth, symbol):
    _, vs, base = await make_sim(speed=4, book_interval_ms=20)
    topic = f"orderbook.{depth}.{symbol}"
    c = await connect(base + f"/v5/public/{category}")
    c.send({"op": "subscribe", "args": [topic]})
    assert (await c.recv(is_ack))["success"] is not False
    first = json.loads(await c.recv_raw())
    assert first["type"] == "snapshot" and first["topic"] == topic
    assert len(first["data"]["b"]) == depth and len(first["data"]["a"]) == depth
    assert isinstance(first["ts"], int) and isinstance(first["cts"], int) and first["cts"] <= first["ts"]
    keys = list(first)
    if category == "spot":
        assert keys == ["topic", "ts", "type", "data", "cts"]
    else:
        assert keys == ["topic", "type", "ts", "data", "cts"]
    assert list(first["data"]) == ["s", "b", "a", "u", "seq"]
    spec = vs.market(category, symbol).spec
    for p, s in first["data"]["b"] + first["data"]["a"]:
        assert isinstance(p, str) and isinstance(s, str)
        assert len(p.partition(".")[2]) == spec.price_scale
        units = int(p.replace(".", ""))
        assert units % spec.tick_units == 0
    book = LocalBook()
    book.apply(first, depth)
    deltas = 0
    last_seq = first["data"]["seq"]
    async with asyncio.timeout(5):
        while deltas < 40:
            m = json.loads(await c.recv_raw())
            assert m["type"] == "delta"
            assert m["data"]["seq"] > last_seq
            last_seq = m["data"]["seq"]
            book.apply(m, depth)
            deltas += 1
        # catch up with the sim, then compare the rebuilt book with the sim's own
        while True:
            want = vs.book(category, topic)
            assert want is not None
            if want[2] == book.u:
                assert book.sorted() == (want[0], want[1])
                assert len(want[0]) == depth
                break
            book.apply(json.loads(await c.recv_raw()), depth)


async def test_two_clients_share_the_same_book_sequence(make_sim):
    _, vs, base = await make_sim(speed=4)
    topic = "orderbook.50.SOLUSDT"
    a = await connect(base + "/v5/public/linear")
    a.send({"op": "subscribe", "args": [topic]})
    await a.recv(is_ack)
    await asyncio.sleep(0.1)
    b = await connect(base + "/v5/public/linear")
    b.send({"op": "subscribe", "args": [topic]})
    await b.recv(is_ack)
    ra, rb = await asyncio.gather(a.collect(0.4), b.collect(0.4))
    fa = [json.loads(x) for x in ra]
    fb = [json.loads(x) for x in rb]
    by_u = {m["data"]["u"]: m for m in fa if m["type"] == "delta"}
    snap_b = fb[0]
    assert snap_b["type"] == "snapshot"
    later = [m for m in fb[1:] if m["type"] == "delta"]
    common = [m for m in later if m["data"]["u"] in by_u]
    assert len(common) >= len(later) - 2 and len(common) > 5
    for m in common:
        assert m["data"] == by_u[m["data"]["u"]]["data"]
    # b's snapshot equals a's book at that u
    book = LocalBook()
    for m in fa:
        book.apply(m, 50)
        if m["data"]["u"] == snap_b["data"]["u"]:
            assert book.sorted() == (snap_b["data"]["b"], snap_b["data"]["a"])
            break
    else:
        pytest.fail("a never saw b's snapshot u")


async def test_same_seed_same_market(make_sim):
    snaps = []
    for seed in (7, 7, 8):
        _, vs, base = await make_sim(seed=seed)
        c = await connect(base + "/v5/public/linear")
        c.send({"op": "subscribe", "args": ["orderbook.200.BTCUSDT"]})
        await c.recv(is_ack)
        snaps.append((await c.recv())["data"])
        c.close()
    assert snaps[0]["b"][:200] == snaps[1]["b"][:200] or snaps[0]["u"] == snaps[1]["u"]
    assert snaps[0]["u"] == snaps[1]["u"]
    assert snaps[0]["u"] != snaps[2]["u"]
    # the market's step sequence is a pure function of the seed
    m1 = BybitSim(seed=3).market("linear", "BTCUSDT")
    m2 = BybitSim(seed=3).market("linear", "BTCUSDT")
    for k in range(500):
        m1.step(k)
        m2.step(k)
    assert m1.bids.items_top(50) == m2.bids.items_top(50) and m1.asks.items_top(50) == m2.asks.items_top(50)


async def test_level1_snapshot_only_and_same_u_repeat(make_sim):
    _, vs, base = await make_sim(l1_repeat_s=0.15, market_steps_per_s=0)
    c = await connect(base + "/v5/public/linear")
    c.send({"op": "subscribe", "args": ["orderbook.1.BTCUSDT"]})
    await c.recv(is_ack)
    frames = [json.loads(x) for x in await c.collect(0.7)]
    assert len(frames) >= 4
    assert all(m["type"] == "snapshot" for m in frames)
    assert len({m["data"]["u"] for m in frames}) == 1
    assert list(frames[0]) == ["topic", "ts", "type", "data", "cts"]
    assert len(frames[0]["data"]["b"]) == 1 and len(frames[0]["data"]["a"]) == 1
    assert frames[-1]["ts"] > frames[0]["ts"]


async def test_level1_changes_bump_u(make_sim):
    _, vs, base = await make_sim(speed=2)
    c = await connect(base + "/v5/public/spot")
    c.send({"op": "subscribe", "args": ["orderbook.1.ETHUSDT"]})
    await c.recv(is_ack)
    frames = [json.loads(x) for x in await c.collect(0.5)]
    us = [m["data"]["u"] for m in frames]
    assert all(m["type"] == "snapshot" for m in frames)
    assert all(b - a in (0, 1) for a, b in zip(us, us[1:])) and us[-1] > us[0]


# ------------------------------------------------------------------------------------------------
# other topics
# ------------------------------------------------------------------------------------------------


async def test_trades_tickers_klines_liquidations(make_sim):
    _, vs, base = await make_sim(speed=3, kline_period_s=0.3, kline_interval_ms=50, liquidation_prob=1.0,
                                 liquidation_interval_ms=100)
    lin = await connect(base + "/v5/public/linear")
    lin.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT", "tickers.BTCUSDT", "kline.1.BTCUSDT",
                                          "allLiquidation.BTCUSDT"]})
    await lin.recv(is_ack)
    snap = await lin.recv(topic_is("tickers.BTCUSDT"))
    assert snap["type"] == "snapshot" and list(snap) == ["topic", "type", "data", "cs", "ts"]
    for k in ("symbol", "lastPrice", "markPrice", "indexPrice", "fundingRate", "nextFundingTime", "bid1Price",
              "ask1Size", "openInterest", "volume24h", "turnover24h", "price24hPcnt"):
        assert isinstance(snap["data"][k], str), k
    delta = await lin.recv(lambda m: m.get("topic") == "tickers.BTCUSDT")
    assert delta["type"] == "delta" and delta["data"]["symbol"] == "BTCUSDT"
    assert len(delta["data"]) < len(snap["data"]) and delta["cs"] >= snap["cs"]

    tr = await lin.recv(topic_is("publicTrade.BTCUSDT"))
    assert tr["type"] == "snapshot" and list(tr) == ["topic", "type", "ts", "data"]
    t0 = tr["data"][0]
    assert list(t0) == ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]
    assert t0["S"] in ("Buy", "Sell") and len(t0["i"]) == 36 and isinstance(t0["seq"], int)
    assert [t["T"] for t in tr["data"]] == sorted(t["T"] for t in tr["data"])

    liq = await lin.recv(topic_is("allLiquidation.BTCUSDT"))
    assert isinstance(liq["data"], list) and list(liq["data"][0]) == ["T", "s", "S", "v", "p"]

    k = await lin.recv(topic_is("kline.1.BTCUSDT"))
    assert list(k) == ["topic", "data", "ts", "type"]
    assert list(k["data"][0]) == ["start", "end", "interval", "open", "close", "high", "low", "volume",
                                  "turnover", "confirm", "timestamp"]
    closed = await lin.recv(lambda m: m.get("topic") == "kline.1.BTCUSDT" and m["data"][0]["confirm"], timeout=3)
    nxt = await lin.recv(topic_is("kline.1.BTCUSDT"))
    assert nxt["data"][0]["start"] == closed["data"][0]["end"] + 1 and nxt["data"][0]["confirm"] is False
    assert nxt["data"][0]["open"] == closed["data"][0]["close"]

    spot = await connect(base + "/v5/public/spot")
    spot.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT", "tickers.BTCUSDT"]})
    await spot.recv(is_ack)
    st = await spot.recv(topic_is("tickers.BTCUSDT"))
    assert list(st) == ["topic", "ts", "type", "cs", "data"]
    assert list(st["data"]) == ["symbol", "lastPrice", "highPrice24h", "lowPrice24h", "prevPrice24h", "volume24h",
                                "turnover24h", "price24hPcnt", "usdIndexPrice"]
    st2 = await spot.recv(topic_is("tickers.BTCUSDT"))
    assert st2["type"] == "snapshot"
    sp = await spot.recv(topic_is("publicTrade.BTCUSDT"))
    assert list(sp) == ["topic", "ts", "type", "data"]
    assert list(sp["data"][0]) == ["i", "T", "p", "v", "S", "seq", "s", "BT", "RPI"] and sp["data"][0]["i"].isdigit()

    opt = await connect(base + "/v5/public/option")
    opt.send({"op": "subscribe", "args": ["tickers.BTC-27DEC26-100000-C", "publicTrade.BTC"]})
    await opt.recv(is_ack)
    ot = await opt.recv(topic_is("tickers.BTC-27DEC26-100000-C"))
    assert ot["id"].startswith("tickers.BTC-27DEC26-100000-C-") and ot["type"] == "snapshot"
    assert {"bidPrice", "askIv", "markPriceIv", "underlyingPrice", "delta", "gamma", "vega", "theta",
            "change24h"} <= set(ot["data"])
    opt.send({"op": "ping"})  # keep the option socket alive
    otr = await opt.recv(topic_is("publicTrade.BTC"), timeout=5)
    assert otr["data"][0]["s"].startswith("BTC-") and "mP" in otr["data"][0] and "id" in otr


async def test_unsubscribe_stops_data(make_sim):
    _, vs, base = await make_sim(speed=4)
    c = await connect(base + "/v5/public/linear")
    c.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
    await c.recv(topic_is("orderbook.50.BTCUSDT"))
    c.send({"op": "unsubscribe", "args": ["orderbook.50.BTCUSDT"]})
    await c.recv(lambda m: m.get("op") == "unsubscribe")
    assert await c.collect(0.2) == []


# ------------------------------------------------------------------------------------------------
# private endpoint
# ------------------------------------------------------------------------------------------------


def sign(secret: str, expires: Any) -> str:
    return hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()


def test_signature_test_vector():
    want = "dad2d67a66c9ee401d2e6e7bf26ebd10eb1026db8a703bf3139c6950ce11a5c6"
    assert sign("test_secret", 1662350400000) == want


async def test_auth_accept_reject_and_private_subscribe(make_sim):
    _, vs, base = await make_sim(api_keys={"k1": "s1"})
    c = await connect(base + "/v5/private")
    c.send({"op": "subscribe", "req_id": "early", "args": ["order"]})
    m = await c.recv()
    assert m["success"] is False and m["ret_msg"] == "Request not authorized" and m["op"] == "subscribe"
    exp = int(time.time() * 1000) + 5000
    c.send({"req_id": "a1", "op": "auth", "args": ["k1", exp, "00" * 32]})
    m = await c.recv()
    assert m == {"req_id": "a1", "success": False, "ret_msg": "Params Error", "op": "auth", "conn_id": m["conn_id"]}
    past = int(time.time() * 1000) - 1000
    c.send({"op": "auth", "args": ["k1", past, sign("s1", past)]})
    m = await c.recv()
    assert m["ret_msg"] == "Params Error" and "req_id" not in m
    c.send({"op": "auth", "args": ["nokey", exp, sign("s1", exp)]})
    assert (await c.recv())["ret_msg"] == "Params Error"
    c.send({"op": "auth", "args": ["k1", str(exp), sign("s1", exp)]})  # ccxt sends a string
    m = await c.recv()
    assert m == {"success": True, "ret_msg": "", "op": "auth", "conn_id": m["conn_id"]}
    c.send({"op": "subscribe", "req_id": "s", "args": ["order", "wallet", "position"]})
    m = await c.recv()
    assert m == {"req_id": "s", "success": True, "ret_msg": "", "op": "subscribe", "conn_id": m["conn_id"]}
    c.send({"op": "subscribe", "args": ["order.linear", "execution"]})
    assert (await c.recv())["success"] is False
    c.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
    assert (await c.recv())["ret_msg"] == "error:handler not found,topic:orderbook.50.BTCUSDT"
    assert vs.stats.auth_ok == 1 and vs.stats.auth_failed == 3
    # int expires works too
    d = await connect(base + "/v5/private")
    d.send({"op": "auth", "args": ["k1", exp, sign("s1", exp)]})
    assert (await d.recv())["success"] is True
    # auth is private-only
    p = await connect(base + "/v5/public/linear")
    p.send({"op": "auth", "args": ["k1", exp, sign("s1", exp)]})
    assert (await p.recv())["ret_msg"] == "error:invalid op"


# ------------------------------------------------------------------------------------------------
# limits and idle rules
# ------------------------------------------------------------------------------------------------


async def test_connection_budget_429(make_sim):
    _, vs, base = await make_sim(conn_limit=3, conn_window_s=60)
    clients = [await connect(base + "/v5/public/linear") for _ in range(3)]
    with pytest.raises(picows.WSHandshakeError) as ei:
        await connect(base + "/v5/public/linear")
    assert ei.value.response.status == 429
    # closing connections does not give the budget back (it counts new connections per window)
    for c in clients:
        c.close()
    await asyncio.sleep(0.05)
    with pytest.raises(picows.WSHandshakeError):
        await connect(base + "/v5/public/spot")
    # another client IP has its own budget
    c = await connect(base + "/v5/public/linear", headers={"X-Forwarded-For": "10.0.0.2"})
    c.send({"op": "ping"})
    assert (await c.recv())["ret_msg"] == "pong"
    assert vs.stats.connections_refused == 2 and vs.stats.connections_opened == 4


async def test_connection_window_slides(make_sim):
    _, vs, base = await make_sim(conn_limit=2, conn_window_s=0.3)
    await connect(base + "/v5/public/linear")
    await connect(base + "/v5/public/linear")
    with pytest.raises(picows.WSHandshakeError):
        await connect(base + "/v5/public/linear")
    await asyncio.sleep(0.35)
    await connect(base + "/v5/public/linear")


async def test_concurrent_connections_per_ip(make_sim):
    _, vs, base = await make_sim(max_conns_per_ip=2)
    await connect(base + "/v5/public/linear")
    await connect(base + "/v5/public/linear")
    with pytest.raises(picows.WSHandshakeError):
        await connect(base + "/v5/public/linear")
    await connect(base + "/v5/public/spot")  # counted per category


async def test_idle_rules(make_sim):
    _, vs, base = await make_sim(public_idle_close_s=0.3, option_ping_timeout_s=0.4, idle_check_s=0.05,
                                 private_sweep_s=0.05, max_active_time_min_s=0.1)
    silent = await connect(base + "/v5/public/linear")
    pinging = await connect(base + "/v5/public/linear")
    subscribed = await connect(base + "/v5/public/linear")
    subscribed.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
    opt_silent = await connect(base + "/v5/public/option")
    opt_ping = await connect(base + "/v5/public/option")
    prv = await connect(base + "/v5/private?max_active_time=0.3s")
    prv_ping = await connect(base + "/v5/private?max_active_time=0.3s")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.8:
        for c in (pinging, opt_ping, prv_ping):
            c.send({"op": "ping"})
        await asyncio.sleep(0.1)
    async with asyncio.timeout(2):
        await silent.closed.wait()
        await opt_silent.closed.wait()
        await prv.closed.wait()
    assert silent.close_code is None  # no close frame: the client sees 1006
    for c in (pinging, subscribed, opt_ping, prv_ping):
        assert not c.closed.is_set()
    assert vs.stats.idle_closes == 3
    info = {c["id"]: c for c in vs.stats.connections()}
    assert len(info) == 4


# ------------------------------------------------------------------------------------------------
# faults
# ------------------------------------------------------------------------------------------------


async def test_fault_drop_and_drop_every(make_sim):
    _, vs, base = await make_sim()
    a = await connect(base + "/v5/public/linear")
    b = await connect(base + "/v5/public/spot")
    vs.inject("drop")
    async with asyncio.timeout(2):
        await a.closed.wait()
        await b.closed.wait()
    assert a.close_code is None and b.close_code is None
    vs.inject("drop-every=150ms")
    for _ in range(2):
        c = await connect(base + "/v5/public/linear")
        async with asyncio.timeout(2):
            await c.closed.wait()
    vs.inject("clear")
    c = await connect(base + "/v5/public/linear")
    await asyncio.sleep(0.3)
    assert not c.closed.is_set()


async def test_fault_stall_for_and_stall_clear(make_sim):
    _, vs, base = await make_sim(speed=4)
    c = await connect(base + "/v5/public/linear")
    c.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
    await c.recv(topic_is("orderbook.50.BTCUSDT"))
    vs.inject("stall-for=400ms")
    await asyncio.sleep(0.05)
    c.drain()
    c.send({"op": "ping"})
    got = await c.collect(0.25)
    assert got == []  # no data and no pong while stalled
    assert not c.closed.is_set()
    m = await c.recv(topic_is("orderbook.50.BTCUSDT"), timeout=2)  # resumes without reconnecting
    assert m["type"] == "delta"
    # open-ended stall, ended by "clear"; a new connection is not stalled
    vs.inject("stall")
    await asyncio.sleep(0.05)
    c.drain()
    assert await c.collect(0.15) == []
    fresh = await connect(base + "/v5/public/linear")
    fresh.send({"op": "ping"})
    assert (await fresh.recv())["ret_msg"] == "pong"
    vs.inject("clear")
    await c.recv(topic_is("orderbook.50.BTCUSDT"))


async def test_fault_malformed(make_sim):
    _, vs, base = await make_sim()
    c = await connect(base + "/v5/public/linear")
    vs.inject("malformed")
    raw = await c.recv_raw()
    with pytest.raises(ValueError):
        json.loads(raw)
    vs.inject("malformed-every=100ms")
    for _ in range(2):
        with pytest.raises(ValueError):
            json.loads(await c.recv_raw(timeout=1))
    assert not c.closed.is_set()


async def test_fault_skip_u(make_sim):
    _, vs, base = await make_sim(speed=4)
    c = await connect(base + "/v5/public/linear")
    c.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "orderbook.200.BTCUSDT"]})
    await c.recv(is_ack)
    last: dict[str, int] = {}
    for _ in range(10):
        m = await c.recv()
        last[m["topic"]] = m["data"]["u"]
    vs.inject("skip-u")
    jumps: dict[str, int] = {}
    async with asyncio.timeout(3):
        while len(jumps) < 2:
            m = await c.recv()
            t, u = m["topic"], m["data"]["u"]
            assert m["type"] == "delta"
            if u - last[t] == 2:
                jumps[t] = u
            else:
                assert u - last[t] == 1
            last[t] = u
    # after the skip, +1 again
    for _ in range(10):
        m = await c.recv()
        assert m["data"]["u"] - last[m["topic"]] == 1
        last[m["topic"]] = m["data"]["u"]
    vs.inject("skip-u-every=3")
    gaps = []
    for _ in range(12):
        m = await c.recv(topic_is("orderbook.50.BTCUSDT"))
        gaps.append(m["data"]["u"] - last["orderbook.50.BTCUSDT"])
        last["orderbook.50.BTCUSDT"] = m["data"]["u"]
    assert gaps.count(2) >= 3 and set(gaps) == {1, 2}


async def test_fault_restart_snapshot(make_sim):
    _, vs, base = await make_sim(speed=4)
    c = await connect(base + "/v5/public/linear")
    c.send({"op": "subscribe", "args": ["orderbook.50.ETHUSDT", "orderbook.1.ETHUSDT"]})
    await c.recv(is_ack)
    await c.collect(0.1)
    vs.inject("restart-snapshot")
    book = LocalBook()
    seen_l1 = False
    async with asyncio.timeout(2):
        m = await c.recv(topic_is("orderbook.50.ETHUSDT"))
        while not (m["type"] == "snapshot" and m["data"]["u"] == 1):
            m = await c.recv(topic_is("orderbook.50.ETHUSDT"))
        book.apply(m, 50)
        while book.u < 5:
            m = await c.recv()
            if m["topic"] == "orderbook.1.ETHUSDT":
                seen_l1 = seen_l1 or m["data"]["u"] in (1, 2)
                continue
            book.apply(m, 50)
    assert book.u == 5 and seen_l1


async def test_fault_reject_connect(make_sim):
    _, vs, base = await make_sim(faults=["reject-connect=2"])
    for _ in range(2):
        with pytest.raises(picows.WSHandshakeError) as ei:
            await connect(base + "/v5/public/linear")
        assert ei.value.response.status == 429
    await connect(base + "/v5/public/linear")
    vs.inject("reject-connect")
    with pytest.raises(picows.WSHandshakeError):
        await connect(base + "/v5/public/linear")
    await connect(base + "/v5/public/linear")
    vs.inject("reject-connect-for=200ms")
    with pytest.raises(picows.WSHandshakeError):
        await connect(base + "/v5/public/linear")
    await asyncio.sleep(0.25)
    await connect(base + "/v5/public/linear")
    assert vs.stats.connections_refused == 4
    with pytest.raises(ValueError, match="known faults"):
        vs.inject("meteor")


async def test_simulator_level_faults_and_stats(make_sim):
    sim, vs, base = await make_sim(faults=["bybit:skip-u-every=1000", "malformed-every=10m"])
    assert vs._skip_every == 1000
    c = await connect(base + "/v5/public/spot")
    c.send({"op": "subscribe", "req_id": "x", "args": ["orderbook.50.BTCUSDT", "tickers.BTCUSDT"]})
    await c.recv(is_ack)
    info = vs.stats.connections()
    assert info[0]["path"] == "/v5/public/spot" and info[0]["topics"] == ["orderbook.50.BTCUSDT", "tickers.BTCUSDT"]
    assert info[0]["subscribe_requests"] == 1
    s = vs.stats
    assert s.connections_opened == 1 and s.subscribe_requests == 1 and s.frames_received == 1
    assert s.max_args_per_request == 2 and s.request_log[-1][3:] == ("subscribe", 2, True)
