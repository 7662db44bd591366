"""The BG Exchange V2 simulator, tested over real loopback sockets with a tiny raw picows client.

No tickwire client code is used here: the expectations come from protocols/bge.md and the
docs examples in recorded/bge_examples.jsonl.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import time
from typing import Any, Callable

import picows
import pytest

from ..conftest import recorded
from tickwire.sim import VENUE_SIMS
from tickwire.sim.bge import BgeSim

from ._client import RawClient

TEXT = picows.WSMsgType.TEXT
BINARY = picows.WSMsgType.BINARY

# ------------------------------------------------------------------------------------------------
# a tiny raw client
# ------------------------------------------------------------------------------------------------


class Client(RawClient):
    """Keeps every TEXT/BINARY frame as ``(msg_type, payload)``; BINARY frames are gunzipped by
    :meth:`recv` with the standard library. With ``auto_pong`` server pings are answered (and
    kept in ``pings``) instead of queued."""

    data_types = (TEXT, BINARY)

    def __init__(self) -> None:
        super().__init__()
        self.auto_pong = False
        self.pings: list[int] = []

    def reason(self, message: bytes | None) -> bytes | None:
        return message

    def on_data(self, transport: picows.WSTransport, msg_type: picows.WSMsgType, payload: bytes) -> None:
        if self.auto_pong and msg_type == TEXT and payload.startswith(b'{"ping"'):
            ts = json.loads(payload)["ping"]
            self.pings.append(ts)
            transport.send(TEXT, json.dumps({"pong": ts}).encode())
            return
        self.q.put_nowait((msg_type, payload))

    def parse(self, item: tuple[Any, bytes]) -> dict:
        return decode(item)

    recv_frame = RawClient.recv_raw


def decode(frame: tuple[Any, bytes]) -> dict:
    mt, payload = frame
    return json.loads(gzip.decompress(payload) if mt == BINARY else payload)


connect = Client.connect


def sub(typ: str, product: str = "BTC_USDT", *, event: str = "sub", biz: str = "market", zip: bool = False,
        **extra: Any) -> dict[str, Any]:
    return {"event": event, "biz": biz, "type": typ, "product": product, **extra, "zip": zip}


def sign(secret: str, ts: Any) -> str:
    return base64.b64encode(hmac.new(secret.encode(), str(ts).encode(), hashlib.sha256).digest()).decode()


def login(key: str, secret: str, ts: Any = None) -> dict[str, Any]:
    ts = int(time.time() * 1000) if ts is None else ts
    return {"event": "login", "params": {"type": "api", "access_key": key, "access_sign": sign(secret, ts),
                                         "access_timestamp": ts}}


def is_ack(m: dict) -> bool:
    return "event" in m


def push(typ: str, product: str | None = None) -> Callable[[dict], bool]:
    return lambda m: "event" not in m and m.get("type") == typ and (product is None or m.get("product") == product)


def seq_of(m: dict) -> int:
    d = m["data"]
    return d[0]["seq_id"] if isinstance(d, list) else d["seq_id"]


# quiet defaults: no pings and no idle closes unless a test asks for them
QUIET = {"ping_interval_s": 0, "subscribe_timeout_s": 0, "no_data_timeout_s": 0}


@pytest.fixture
def make_sim(sim_factory):
    return sim_factory(BgeSim, "/v2/ws", **QUIET)


# ------------------------------------------------------------------------------------------------
# registry, options, paths
# ------------------------------------------------------------------------------------------------


def test_registry_options_and_signature_vector():
    assert VENUE_SIMS["bge"] is BgeSim
    assert sign("test_secret", 1690364037503) == "ZNk8pY6LMZSCYXA8KZ63PnmokszyLiRFHI8jCrrma3g="
    with pytest.raises(ValueError, match="unknown BgeOptions option"):
        BgeSim(options={"ping_intervall_s": 5})
    with pytest.raises(ValueError, match="zip_format"):
        BgeSim(options={"zip_format": "brotli"})
    with pytest.raises(ValueError, match="close code"):
        BgeSim(options={"rate_close_code": 1006})
    with pytest.raises(ValueError, match="unknown fault"):
        BgeSim(faults=["nope"])
    s = BgeSim()
    assert len(s.products) >= 300
    assert {"BTC_USDT", "ETH_USDT", "X001_USDT", "X300_USDT"} <= s.product_set
    o = s.opts
    assert (o.ping_interval_s, o.pong_timeout_s, o.subscribe_timeout_s, o.rate_limit_msgs, o.rate_window_s) == (
        15.0, 30.0, 30.0, 50, 1.0)


async def test_paths_and_404(make_sim):
    sim, vs, url = await make_sim()
    ready = json.loads(sim.ready_line())
    assert "/v2/ws" in ready["venues"]["bge"]["paths"]
    for path in ("/v2/ws", "/v2/ws/"):
        c = await connect(sim.endpoints["bge"] + path)
        c.send(sub("ticker", event="req"))
        assert (await c.recv())["code"] == 200
    for path in ("/ws", "/v2/wss", "/"):
        with pytest.raises(picows.WSHandshakeError) as ei:
            await connect(sim.endpoints["bge"] + path)
        assert ei.value.response.status == 404


# ------------------------------------------------------------------------------------------------
# heartbeat, rate limit, idle rules
# ------------------------------------------------------------------------------------------------


async def test_ping_pong_and_pong_deadline(make_sim):
    _, vs, url = await make_sim(ping_interval_s=0.1, pong_timeout_s=0.35, idle_check_s=0.02)
    good = await connect(url)
    good.auto_pong = True
    silent = await connect(url)
    wrong = await connect(url)
    t0 = time.monotonic()
    m = await silent.recv()
    assert list(m) == ["ping"] and isinstance(m["ping"], int) and abs(m["ping"] - time.time() * 1000) < 2000
    # echoing another timestamp does not count
    while time.monotonic() - t0 < 0.9 and not wrong.closed.is_set():
        try:
            p = await wrong.recv(timeout=0.15)
            wrong.send({"pong": p["ping"] - 1})
        except TimeoutError:
            pass
    async with asyncio.timeout(2):
        await silent.closed.wait()
        await wrong.closed.wait()
    assert silent.close_code == 1000 and silent.close_reason == b"pong timeout"
    assert wrong.close_code == 1000
    assert time.monotonic() - t0 >= 0.35
    await asyncio.sleep(max(0.0, 0.9 - (time.monotonic() - t0)))
    assert not good.closed.is_set() and len(good.pings) >= 6
    assert good.pings == sorted(good.pings)
    assert vs.counters["pong_timeouts"] == 2 and vs.counters["pongs_unmatched"] >= 1


async def test_rate_limit_50_ok_51st_closes(make_sim):
    _, vs, url = await make_sim()
    ok = await connect(url)
    for _ in range(2):  # two consecutive seconds of 50 messages each (pongs included)
        for i in range(49):
            ok.send({"pong": i})
        ok.send(sub("ticker", event="req"))
        assert (await ok.recv())["event"] == "req"
        await asyncio.sleep(1.05)
    assert not ok.closed.is_set()

    bad = await connect(url)
    for i in range(50):
        bad.send({"pong": i})
    bad.send(sub("ticker", event="req"))  # the 51st message in the second
    async with asyncio.timeout(2):
        await bad.closed.wait()
    assert bad.close_code == 1008 and bad.close_reason == b"too many messages"
    assert bad.drain() == []  # the 51st was not served
    assert vs.counters["rate_closes"] == 1 and not ok.closed.is_set()


async def test_rate_limit_is_configurable(make_sim):
    _, vs, url = await make_sim(rate_limit_msgs=5, rate_window_s=0.2, rate_close_code=0)
    c = await connect(url)
    for _ in range(3):
        for _ in range(5):
            c.send(sub("ticker", event="req"))
        for _ in range(5):
            await c.recv()
        await asyncio.sleep(0.22)
    assert not c.closed.is_set()
    for _ in range(6):
        c.send(sub("ticker", event="req"))
    async with asyncio.timeout(2):
        await c.closed.wait()
    assert c.close_code is None  # rate_close_code=0: TCP drop, no close frame


async def test_no_subscription_and_no_data_closes(make_sim):
    _, vs, url = await make_sim(subscribe_timeout_s=0.3, no_data_timeout_s=0.3, idle_check_s=0.02,
                                ping_counts_as_data=False, private_interval_ms=60_000, book_interval_ms=100)
    silent = await connect(url)
    req_only = await connect(url)
    req_only.send(sub("ticker", event="req"))
    subscribed = await connect(url)
    subscribed.send(sub("orderbook", interval="6"))
    quiet_private = await connect(url)
    quiet_private.send(login("sim-key", "sim-secret"))
    quiet_private.send(sub("assets", biz="exchange"))
    async with asyncio.timeout(2):
        await silent.closed.wait()
        await req_only.closed.wait()
        await quiet_private.closed.wait()
    assert silent.close_code == 1000 and silent.close_reason == b"no subscription"
    assert req_only.close_reason == b"no subscription"
    assert quiet_private.close_reason == b"no data"
    await asyncio.sleep(0.2)
    assert not subscribed.closed.is_set()
    assert vs.counters["nosub_closes"] == 2 and vs.counters["nodata_closes"] == 1


async def test_pings_count_as_data_by_default(make_sim):
    _, vs, url = await make_sim(ping_interval_s=0.1, no_data_timeout_s=0.3, idle_check_s=0.02,
                                private_interval_ms=60_000)
    c = await connect(url)
    c.auto_pong = True
    c.send(login("sim-key", "sim-secret"))
    c.send(sub("assets", biz="exchange"))
    await asyncio.sleep(0.7)
    assert not c.closed.is_set()


# ------------------------------------------------------------------------------------------------
# acks, errors, pushes
# ------------------------------------------------------------------------------------------------


async def test_ack_and_error_shapes(make_sim):
    _, vs, url = await make_sim()
    c = await connect(url)
    c.send(sub("candles", interval="15min"))
    m = await c.recv()
    assert m == {"biz": "market", "type": "candles", "ts": m["ts"], "code": 200, "status": "OK", "event": "sub",
                 "product": "BTC_USDT", "interval": "15min"}
    assert abs(m["ts"] - time.time() * 1000) < 5000
    c.send(sub("orderbook", interval="0"))
    m = await c.recv(is_ack)
    assert m["interval"] == 0 and type(m["interval"]) is int and m["code"] == 200
    c.send(sub("orderbook", interval="0", event="unsub"))
    m = await c.recv(is_ack)
    assert m["event"] == "unsub" and m["interval"] == 0 and type(m["interval"]) is int
    c.send(sub("fills"))
    m = await c.recv(is_ack)
    assert m == {"biz": "market", "type": "fills", "product": "BTC_USDT", "ts": m["ts"], "code": 200,
                 "status": "OK", "event": "sub"}
    # the docs' bad request: the code is the STRING "400", the echo renames product to pairCode
    c.send({"event": "sub", "para": {"biz": "market", "type": "percent10", "product": "ETH_USDT"}, "zip": True})
    m = await c.recv(is_ack)
    assert m == {"event": "sub", "code": "400", "msg": "Invalid request: {\"event\":\"sub\",\"para\":{\"biz\":"
                 "\"market\",\"type\":\"percent10\",\"pairCode\":\"ETH_USDT\"},\"zip\":true}"}
    # missing zip, wrong types: the same malformed-request frame
    c.send({"event": "sub", "biz": "market", "type": "ticker", "product": "BTC_USDT"})
    m = await c.recv(is_ack)
    assert m["code"] == "400" and m["msg"].startswith("Invalid request: {")
    # bad values: numeric 400
    for bad in (sub("ticker", "NOPE_USDT"), sub("candles", interval="1hour"), sub("orderbook", interval="12"),
                sub("depth"), sub("fills", event="req"), sub("ticker", biz="spot"), sub("assets", "all")):
        c.send(bad)
        m = await c.recv(is_ack)
        assert m["event"] == bad["event"] and m["code"] in (400, 401) and isinstance(m["msg"], str), (bad, m)
    c.send(b"hello")
    m = await c.recv(is_ack)
    assert m["event"] == "error" and m["code"] == "400"
    c.send({"event": "subscribe", "biz": "market", "type": "ticker", "product": "BTC_USDT", "zip": False})
    assert (await c.recv(is_ack))["event"] == "subscribe"
    assert not c.closed.is_set()
    assert vs.stats.errors_sent == 11


async def test_frames_match_docs_examples(make_sim):
    """Our frames have the keys and value types of the docs examples (recorded/bge_examples.jsonl)."""
    path = recorded("bge_examples.jsonl")
    docs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def doc(fragment: str) -> dict:
        return next(d["frame"] for d in docs if d["source"].endswith(fragment))

    def same_shape(ours: Any, theirs: Any, where: str = "") -> None:
        assert type(ours) is type(theirs), (where, ours, theirs)
        if isinstance(theirs, dict):
            assert set(ours) == set(theirs), (where, sorted(ours), sorted(theirs))
            for k in theirs:
                same_shape(ours[k], theirs[k], f"{where}.{k}")
        elif isinstance(theirs, list) and theirs and ours:
            same_shape(ours[0], theirs[0], f"{where}[0]")

    _, vs, url = await make_sim(speed=4, private_interval_ms=100)
    c = await connect(url)
    c.send(doc("candles sub"))
    same_shape(await c.recv(is_ack), doc("candles sub ack"), "candles ack")
    c.send(doc("candles unsub"))
    same_shape(await c.recv(is_ack), doc("candles unsub ack"), "candles unsub ack")
    c.send(doc("fills sub"))
    same_shape(await c.recv(is_ack), doc("fills sub ack"), "fills ack")
    c.send(doc("orderbook sub (interval = gear 0..11, string)"))
    same_shape(await c.recv(is_ack), doc("orderbook sub ack (interval echoed as a NUMBER)"), "book ack")
    c.send(doc("percent10 sub"))
    await c.recv(is_ack)
    c.send(doc("ticker sub"))
    await c.recv(is_ack)
    c.send(sub("candles", interval="15min"))
    await c.recv(is_ack)
    same_shape(await c.recv(push("fills"), timeout=3), doc("fills push (data is an array of trades)"), "fills")
    same_shape(await c.recv(push("orderbook")), doc("orderbook push (inline // comments removed)"), "book")
    same_shape(await c.recv(push("percent10")), doc("percent10 push (seq_id at top level and in data; inline "
                                                    "comments removed)"), "percent10")
    same_shape(await c.recv(push("ticker")), doc("ticker push (data is an array of one)"), "ticker")
    same_shape(await c.recv(push("candles")), doc("candles push (data is an object)"), "candles")
    c.send(doc("ticker req"))
    same_shape(await c.recv(is_ack), doc("ticker req response (data is an object)"), "ticker req")
    req = dict(doc("candles history req (from/to in unix seconds)"))
    now = int(time.time())
    req.update({"from": now - 86_400, "to": now})
    c.send(req)
    same_shape(await c.recv(is_ack), doc("candles history req response (data is an array)"), "candles req")
    c.send(doc("bad request example 1 (unknown key 'para')"))
    assert await c.recv(is_ack) == doc("bad request response 1 (code as STRING; echo shows product renamed to "
                                       "pairCode)")
    c.send(doc("bad request example 2 (empty access_key)"))
    assert await c.recv(is_ack) == doc("bad request response 2 (EN text; ZH page shows \"ACCESS_KEY不能为空\")")
    c.send(login("sim-key", "sim-secret"))
    same_shape(await c.recv(is_ack), doc("login success"), "login")
    c.send(doc("assets sub (per pair only)"))
    same_shape(await c.recv(is_ack), doc("assets sub ack"), "assets ack")
    c.send(doc("orders sub for all pairs"))
    same_shape(await c.recv(is_ack), doc("orders sub ack (all)"), "orders ack")
    c.send(sub("orders", "BTC_USDT", biz="exchange"))
    await c.recv(is_ack)
    c.send(sub("assets", "BTC_USDT", biz="exchange"))
    await c.recv(is_ack)
    same_shape(await c.recv(push("orders", "BTC_USDT"), timeout=5),
               doc("orders push (single pair subscription)"), "orders push")
    m = await c.recv(push("assets"), timeout=5)
    assert set(m) == set(doc("assets push (docs: a real push may hold only one currency)"))
    same_shape(m["data"][0], doc("assets push (docs: a real push may hold only one currency)")["data"][0])
    c.send(sub("assets", "BTC_USDT", event="req", biz="exchange"))
    same_shape(await c.recv(lambda x: x.get("event") == "req"), doc("assets req response"), "assets req")
    c.send(doc("orders req (current open orders of one pair)"))
    m = await c.recv(lambda x: x.get("event") == "req")
    assert m["code"] == 200 and isinstance(m["data"], list)
    # the V1 shapes are refused on /v2/ws
    c.send(doc("(DEPRECATED V1 public: nested params)"))
    assert (await c.recv(is_ack))["code"] == "400"
    c.send(doc("(DEPRECATED V1 login: hyphenated keys)"))
    assert (await c.recv(is_ack))["code"] == 40001


async def test_push_contents(make_sim):
    _, vs, url = await make_sim(speed=4)
    c = await connect(url)
    for s in (sub("orderbook", interval="0"), sub("orderbook", interval="6"), sub("orderbook", interval="11"),
              sub("orderbook", "X001_USDT", interval="1"), sub("percent10"), sub("ticker"),
              sub("candles", interval="1min"), sub("fills")):
        c.send(s)
        assert (await c.recv(is_ack))["code"] == 200

    def book(gear: str, product: str = "BTC_USDT") -> Callable[[dict], bool]:
        return lambda m: push("orderbook", product)(m) and m["interval"] == gear

    for gear, depth, decimals in (("0", 150, 2), ("6", 20, 2), ("11", 20, 1)):
        m = await c.recv(book(gear))
        assert m["interval"] == gear and m["id"].isdigit()
        bids, asks = m["data"]["bids"], m["data"]["asks"]
        assert 0 < len(bids) <= depth and 0 < len(asks) <= depth
        assert (len(bids), len(asks)) == (depth, depth) or gear == "11"
        assert all(isinstance(p, str) and isinstance(q, str) for p, q in bids + asks)
        assert all(len(p.split(".")[1]) == decimals for p, _ in bids + asks)
        bp, ap = [float(p) for p, _ in bids], [float(p) for p, _ in asks]
        assert bp == sorted(bp, reverse=True) and ap == sorted(ap) and bp[0] < ap[0]
    m = await c.recv(book("1", "X001_USDT"))
    assert m["product"] == "X001_USDT" and m["data"]["bids"]

    p10 = await c.recv(push("percent10"))
    assert p10["seq_id"] == p10["data"]["seq_id"]
    bids, asks = p10["data"]["bids"], p10["data"]["asks"]
    mid = (float(bids[0][0]) + float(asks[0][0])) / 2
    assert len(bids) <= 200 and all(float(p) >= mid * 0.9 for p, _ in bids)
    assert len(asks) <= 200 and all(float(p) <= mid * 1.1 for p, _ in asks)

    t = await c.recv(push("ticker"))
    assert isinstance(t["data"], list) and len(t["data"]) == 1
    d = t["data"][0]
    assert t["id"] == str(d["id"]) and isinstance(d["count"], int)
    assert abs(float(d["close"]) - float(d["open"]) - float(d["change"])) < 1e-6

    k = await c.recv(push("candles"))
    assert isinstance(k["data"], dict) and k["interval"] == "1min"
    assert k["id"] == str(k["data"]["id"]) and k["data"]["id"] % 60 == 0

    f = await c.recv(push("fills"), timeout=3)
    assert f["id"] == str(f["data"][0]["id"] // 1000)
    assert all(x["direction"] in ("buy", "sell") and x["id"] % 1000 == 0 for x in f["data"])
    # unsubscribing stops the data
    for s in (sub("orderbook", interval="0"), sub("orderbook", interval="6"), sub("orderbook", interval="11"),
              sub("orderbook", "X001_USDT", interval="1"), sub("percent10"), sub("ticker"),
              sub("candles", interval="1min"), sub("fills")):
        c.send({**s, "event": "unsub"})
    await c.collect(0.1)
    assert await c.collect(0.4) == []
    assert vs.stats.connections()[0]["topics"] == []


async def test_candle_history_and_candles_roll(make_sim):
    _, vs, url = await make_sim(candle_period_s=1, candle_interval_ms=100, speed=2)
    c = await connect(url)
    now = int(time.time())
    c.send(sub("candles", "ETH_USDT", event="req", interval="1min", **{"from": now - 600, "to": now}))
    m = await c.recv()
    ids = [x["id"] for x in m["data"]]
    assert m["event"] == "req" and m["interval"] == "1min" and len(ids) >= 10
    assert ids == sorted(ids) and all(b - a == 1 for a, b in zip(ids, ids[1:]))  # candle_period_s=1
    assert all(a["close"] == b["open"] for a, b in zip(m["data"], m["data"][1:]))
    assert all("seq_id" not in x for x in m["data"])
    c.send(sub("candles", event="req", interval="1min", **{"from": now * 1000 - 60_000, "to": now * 1000}))
    assert (await c.recv())["code"] == 400  # milliseconds by mistake
    c.send(sub("candles", event="req", interval="1min"))
    assert (await c.recv())["code"] == "400"  # from/to missing
    c.send(sub("candles", "ETH_USDT", interval="1min"))
    await c.recv(is_ack)
    first = await c.recv(push("candles"))
    m = await c.recv(lambda x: push("candles")(x) and x["data"]["id"] > first["data"]["id"], timeout=3)
    prev = first
    assert m["data"]["id"] == first["data"]["id"] + 1 and int(m["id"]) == m["data"]["id"]
    assert isinstance(prev["data"]["count"], int)


async def test_gzip_frames(make_sim):
    _, vs, url = await make_sim(book_interval_ms=100)
    z = await connect(url)
    t = await connect(url)
    z.send(sub("orderbook", interval="6", zip=True))
    t.send(sub("orderbook", interval="6"))
    mt, raw = await z.recv_frame()
    assert mt == BINARY and raw[:2] == b"\x1f\x8b"
    ack = json.loads(gzip.decompress(raw))
    assert ack["event"] == "sub" and ack["code"] == 200
    await t.recv(is_ack)
    zs, ts_ = {}, {}
    for _ in range(3):
        mt, raw = await z.recv_frame()
        assert mt == BINARY
        m = json.loads(gzip.decompress(raw))
        zs[m["data"]["seq_id"]] = gzip.decompress(raw)
        mt, raw = await t.recv_frame()
        assert mt == TEXT
        ts_[json.loads(raw)["data"]["seq_id"]] = raw
    common = set(zs) & set(ts_)
    assert common and all(zs[s] == ts_[s] for s in common)  # one encoding, same bytes
    # errors stay text; pings stay text
    z.send({"event": "sub", "biz": "market", "type": "nope", "product": "BTC_USDT", "zip": True})
    m = await z.recv(is_ack)
    assert m["code"] == 400


async def test_zip_formats_switchable(make_sim):
    import zlib

    _, vs, url = await make_sim(zip_format="off", ticker_interval_ms=50)
    c = await connect(url)
    c.send(sub("ticker", zip=True))
    assert (await c.recv_frame())[0] == TEXT
    _, vs2, url2 = await make_sim(zip_format="zlib", zip_acks=False, ticker_interval_ms=50)
    c = await connect(url2)
    c.send(sub("ticker", zip=True))
    mt, raw = await c.recv_frame()
    assert mt == TEXT and json.loads(raw)["code"] == 200
    mt, raw = await c.recv_frame()
    assert mt == BINARY and json.loads(zlib.decompress(raw))["type"] == "ticker"


# ------------------------------------------------------------------------------------------------
# login and private channels
# ------------------------------------------------------------------------------------------------


async def test_login_accept_and_reject_codes(make_sim):
    _, vs, url = await make_sim(api_keys={"k1": "s1", "banned": "s2"}, api_key_errors={"banned": 40013},
                                login_window_s=5)
    c = await connect(url)
    c.send(sub("orders", "all", biz="exchange"))
    assert await c.recv() == {"event": "sub", "code": 401, "msg": "not logged in"}
    now = int(time.time() * 1000)

    def params(**kw: Any) -> dict:
        p = {"type": "api", "access_key": "k1", "access_sign": sign("s1", now), "access_timestamp": now}
        p.update(kw)
        return {"event": "login", "params": {k: v for k, v in p.items() if v is not None}}

    cases = [
        (params(access_key=""), 40001, "ACCESS_KEY cannot be empty"),
        (params(access_key=None), 40001, None),
        (params(access_sign=""), 40002, None),
        (params(access_timestamp=None), 40003, None),
        (params(access_timestamp="yesterday"), 40005, None),
        (params(access_key="nokey"), 40006, None),
        (params(access_timestamp=now - 60_000, access_sign=sign("s1", now - 60_000)), 40008, None),
        (params(access_timestamp=now // 1000, access_sign=sign("s1", now // 1000)), 40008, None),  # seconds
        (params(access_sign=sign("wrong", now)), 40010, None),
        (params(access_sign=base64.b16encode(b"x" * 32).decode()), 40010, None),
        (params(access_key="banned", access_sign=sign("s2", now)), 40013, None),
    ]
    for req, code, text in cases:
        c.send(req)
        m = await c.recv()
        assert list(m) == ["event", "code", "msg"] and m["event"] == "login" and m["code"] == code, (req, m)
        if text:
            assert m["msg"] == text
    c.send({"event": "login", "params": "k1"})
    assert (await c.recv())["code"] == "400"
    assert vs.stats.auth_failed == 12
    c.send(params(access_timestamp=str(now)))  # a digit string is signed as sent
    m = await c.recv()
    assert m == {"ts": m["ts"], "code": 200, "status": "OK", "event": "login"}
    c.send(sub("orders", "ALL", biz="exchange"))  # "all" is case-insensitive
    assert (await c.recv())["code"] == 200
    assert vs.stats.auth_ok == 1
    _, vs_zh, url_zh = await make_sim(lang="zh")
    z = await connect(url_zh)
    z.send(params(access_key=""))
    assert (await z.recv())["msg"] == "ACCESS_KEY不能为空"


async def test_private_pushes_and_req(make_sim):
    _, vs, url = await make_sim(private_interval_ms=30, private_products=["ETH_USDT"])
    a = await connect(url)
    b = await connect(url)  # a second connection of the same account sees the same pushes
    for c in (a, b):
        c.send(login("sim-key", "sim-secret"))
        assert (await c.recv())["code"] == 200
    a.send(sub("orders", "all", biz="exchange"))
    a.send(sub("assets", "ETH_USDT", biz="exchange"))
    b.send(sub("orders", "ETH_USDT", biz="exchange"))
    for c in (a, a, b):
        assert (await c.recv(is_ack))["code"] == 200
    seen: dict[str, set] = {"new": set(), "status": set()}
    async with asyncio.timeout(5):
        while len(seen["status"] & {"1", "2", "3", "5"}) < 3:
            m = await a.recv(push("orders"))
            assert m["product"] == "all" and "id" not in m and "seq_id" not in m
            o = m["data"][0]
            assert o["product"] == "ETH_USDT" and o["status"] in "01234567" and o["client_oid"] == ""
            assert all(len(o[k].split(".")[1]) == 8 for k in ("price", "size", "filled_amount", "funds", "filled_size"))
            seen["status"].add(o["status"])
    m = await b.recv(push("orders"))
    assert m["product"] == "ETH_USDT"
    m = await a.recv(push("assets"))
    assert m["product"] == "ETH_USDT" and {x["currency"] for x in m["data"]} <= {"ETH", "USDT"}
    a.send(sub("assets", "ETH_USDT", event="req", biz="exchange"))
    m = await a.recv(lambda x: x.get("event") == "req")
    assert [x["currency"] for x in m["data"]] == ["USDT", "ETH"]
    a.send(sub("orders", "ETH_USDT", event="req", biz="exchange"))
    m = await a.recv(lambda x: x.get("event") == "req")
    assert m["code"] == 200 and all(o["status"] in ("1", "2") for o in m["data"])
    a.send(sub("orders", "all", event="req", biz="exchange"))
    assert (await a.recv(lambda x: x.get("event") == "req"))["code"] == 400
    a.send(sub("assets", "all", biz="exchange"))
    assert (await a.recv(is_ack))["code"] == 400


# ------------------------------------------------------------------------------------------------
# seq_id, scale, determinism
# ------------------------------------------------------------------------------------------------


async def test_seq_id_rises_globally_and_is_shared(make_sim):
    _, vs, url = await make_sim(speed=4, ticker_interval_ms=500)
    a = await connect(url)
    b = await connect(url)
    a.send(sub("orderbook", interval="6"))
    a.send(sub("ticker", "ETH_USDT"))
    a.send(sub("candles", "SOL_USDT", interval="1min"))
    b.send(sub("orderbook", interval="6"))
    b.send(sub("percent10", "X002_USDT"))
    seqs: dict[str, list[tuple[int, str, bytes]]] = {"a": [], "b": []}
    for name, c in (("a", a), ("b", b)):
        for mt, raw in await c.collect(0.8):
            m = json.loads(raw)
            if "event" not in m and m["type"] != "fills":
                seqs[name].append((seq_of(m), m["type"], raw))
    for name, got in seqs.items():
        values = [s for s, _, _ in got]
        assert len(values) >= 6 and values == sorted(values) and len(set(values)) == len(values), name
        assert len({t for _, t, _ in got}) >= 2
    book_a = {s: raw for s, t, raw in seqs["a"] if t == "orderbook"}
    book_b = {s: raw for s, t, raw in seqs["b"] if t == "orderbook"}
    shared = set(book_a) & set(book_b)
    assert len(shared) >= 2 and all(book_a[s] == book_b[s] for s in shared)


async def test_300_products_on_one_connection(make_sim):
    # the real budget is 50 per 1 s; the window is compressed to 0.25 s to keep the test short
    _, vs, url = await make_sim(rate_window_s=0.25, ticker_interval_ms=250, ping_interval_s=0.2,
                                subscribe_timeout_s=30)
    products = vs.products[:300]
    c = await connect(url)
    c.auto_pong = True  # pongs count toward the budget too
    for i in range(0, 300, 40):
        for p in products[i : i + 40]:
            c.send(sub("ticker", p))
        await asyncio.sleep(0.27)
    acks = 0
    pushed: set[str] = set()
    async with asyncio.timeout(8):
        while acks < 300 or len(pushed) < 290:
            m = await c.recv()
            if "event" in m:
                assert m["code"] == 200, m
                acks += 1
            else:
                pushed.add(m["product"])
    assert not c.closed.is_set()
    assert len(vs.stats.connections()[0]["topics"]) == 300
    assert vs.counters["rate_closes"] == 0


async def test_deterministic_with_seed(make_sim):
    frm, to = 1_700_000_000, 1_700_100_000
    out = []
    for seed in (7, 7, 8):
        _, vs, url = await make_sim(seed=seed)
        c = await connect(url)
        c.send(sub("candles", "X010_USDT", event="req", interval="60min", **{"from": frm, "to": to}))
        out.append(((await c.recv())["data"], vs.seq))
    assert out[0] == out[1] and out[0] != out[2]
    assert len(out[0][0]) >= 27 and all(x["id"] % 3600 == 0 for x in out[0][0])


# ------------------------------------------------------------------------------------------------
# faults
# ------------------------------------------------------------------------------------------------


async def only_book(make_sim: Any, **kw: Any) -> tuple[BgeSim, Client]:
    """One orderbook channel in the whole sim: consecutive pushes differ by exactly 1 seq_id."""
    _, vs, url = await make_sim(book_interval_ms=30, **kw)
    c = await connect(url)
    c.send(sub("orderbook", interval="6"))
    await c.recv(is_ack)
    return vs, c


async def book_seqs(c: Client, n: int) -> list[int]:
    return [(await c.recv(push("orderbook")))["data"]["seq_id"] for _ in range(n)]


async def test_fault_skip_seq(make_sim):
    vs, c = await only_book(make_sim)
    s = await book_seqs(c, 3)
    assert [b - a for a, b in zip(s, s[1:])] == [1, 1]
    vs.inject("skip-seq")
    s = [s[-1]] + await book_seqs(c, 4)
    d = [b - a for a, b in zip(s, s[1:])]
    assert sorted(d) == [1, 1, 1, 2]
    vs.inject("skip-seq-every=3")
    s = await book_seqs(c, 10)
    d = [b - a for a, b in zip(s, s[1:])]
    assert set(d) == {1, 2} and d.count(2) >= 3
    vs.inject("clear")
    await c.collect(0.05)
    s = await book_seqs(c, 5)
    assert [b - a for a, b in zip(s, s[1:])] == [1, 1, 1, 1]
    assert vs.counters["seq_skipped"] >= 4


async def test_fault_dup_and_reorder_seq(make_sim):
    vs, c = await only_book(make_sim)
    await book_seqs(c, 2)
    vs.inject("dup-seq")
    frames = [await c.recv_frame() for _ in range(4)]
    seqs = [json.loads(raw)["data"]["seq_id"] for _, raw in frames]
    i = next(i for i in range(3) if seqs[i] == seqs[i + 1])
    assert frames[i][1] == frames[i + 1][1]  # the very same bytes
    vs.inject("reorder-seq")
    s = await book_seqs(c, 5)
    d = [b - a for a, b in zip(s, s[1:])]
    assert d.count(-1) == 1 and all(x in (1, 2, -1) for x in d)
    assert vs.counters["seq_duplicated"] == 1 and vs.counters["seq_reordered"] == 1


async def test_fault_no_ping_and_ignore_pong(make_sim):
    _, vs, url = await make_sim(ping_interval_s=0.05, pong_timeout_s=0.3, idle_check_s=0.02)
    c = await connect(url)
    c.auto_pong = True
    await asyncio.sleep(0.2)
    assert len(c.pings) >= 2
    vs.inject("no-ping")
    await asyncio.sleep(0.06)
    n = len(c.pings)
    await asyncio.sleep(0.3)
    assert len(c.pings) == n
    vs.inject("clear")
    await asyncio.sleep(0.2)
    assert len(c.pings) > n and not c.closed.is_set()
    vs.inject("ignore-pong")
    async with asyncio.timeout(2):
        await c.closed.wait()
    assert c.close_reason == b"pong timeout"


async def test_fault_sub_fail(make_sim):
    _, vs, url = await make_sim(faults=["bge:sub-fail=1"], ticker_interval_ms=50)
    c = await connect(url)
    c.send(sub("ticker"))
    m = await c.recv()
    assert m == {"biz": "market", "type": "ticker", "product": "BTC_USDT", "ts": m["ts"], "code": 500,
                 "status": "FAIL", "event": "sub"}
    assert await c.collect(0.15) == []
    c.send(sub("ticker"))
    assert (await c.recv())["code"] == 200
    await c.recv(push("ticker"))


async def test_generic_faults(make_sim):
    _, vs, url = await make_sim(book_interval_ms=30, faults=["reject-connect=1"])
    with pytest.raises(picows.WSHandshakeError) as ei:
        await connect(url)
    assert ei.value.response.status == 429
    c = await connect(url)
    c.send(sub("orderbook", interval="6"))
    await c.recv(push("orderbook"))
    vs.inject("malformed")
    async with asyncio.timeout(2):
        while True:
            mt, raw = await c.recv_frame()
            try:
                json.loads(raw)
            except ValueError:
                break
    vs.inject("stall-for=200ms")
    await asyncio.sleep(0.03)
    c.drain()
    assert await c.collect(0.12) == []
    await c.recv(push("orderbook"), timeout=1)
    vs.inject("stall")
    await asyncio.sleep(0.03)
    c.drain()
    assert await c.collect(0.1) == []
    vs.inject("clear")
    await c.recv(push("orderbook"))
    vs.inject("drop")
    async with asyncio.timeout(2):
        await c.closed.wait()
    assert c.close_code is None
    vs.inject("drop-every=100ms")
    d = await connect(url)
    async with asyncio.timeout(2):
        await d.closed.wait()
    vs.inject("clear")
    vs.inject("reject-connect-for=150ms")
    with pytest.raises(picows.WSHandshakeError):
        await connect(url)
    await asyncio.sleep(0.2)
    e = await connect(url)
    e.send(sub("ticker", event="req"))
    assert (await e.recv())["code"] == 200
    vs.inject("malformed-every=50ms")
    bad = 0
    for mt, raw in await e.collect(0.2):
        bad += raw.startswith(b'{"id"') and not raw.endswith(b"}")
    assert bad >= 2
