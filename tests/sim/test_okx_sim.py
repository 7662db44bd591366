"""The OKX v5 simulator, tested over real loopback sockets with a tiny raw picows client.

No tickwire client code is used: expectations come from protocols/okx.md. The login signature and
the legacy CRC32 checksum are recomputed here independently of the simulator.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
import zlib
from decimal import Decimal
from typing import Any, Callable

import picows
import pytest

from tickwire.sim import VENUE_SIMS, Fault, parse_fault
from tickwire.sim.okx import OkxSim

from ._client import RawClient

KEY, SECRET, PASSPHRASE = "sim-key", "sim-secret", "sim-passphrase"

# ------------------------------------------------------------------------------------------------
# a tiny raw client (tests/sim/_client.py); OKX answers the text "ping" with a text "pong"
# ------------------------------------------------------------------------------------------------


class Client(RawClient):
    text_pong = b"pong"


connect = Client.connect


def sign(secret: str, ts: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), (ts + "GET/users/self/verify").encode(),
                                     hashlib.sha256).digest()).decode()


def login_frame(key: str = KEY, secret: str = SECRET, passphrase: str = PASSPHRASE, ts: Any = None,
                sig: str | None = None) -> dict:
    if ts is None:
        ts = str(int(time.time()))
    ts_text = ts if isinstance(ts, str) else json.dumps(ts)
    return {"op": "login", "args": [{"apiKey": key, "passphrase": passphrase, "timestamp": ts,
                                     "sign": sig if sig is not None else sign(secret, ts_text)}]}


async def login(c: Client) -> dict:
    c.send(login_frame())
    m = await c.recv(lambda x: x.get("event") in ("login", "error"))
    assert m["event"] == "login" and m["code"] == "0", m
    return m


def is_event(*names: str) -> Callable[[dict], bool]:
    return lambda m: m.get("event") in names


def channel_is(ch: str, inst: str | None = None) -> Callable[[dict], bool]:
    return lambda m: "data" in m and m["arg"]["channel"] == ch and (inst is None or m["arg"].get("instId") == inst)


async def http_get(port: int, target: str) -> tuple[int, dict[str, str], Any]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n".encode())
    await w.drain()
    async with asyncio.timeout(3):
        data = await r.read()
    w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.fixture
def make_sim(sim_factory):
    return sim_factory(OkxSim, conn_limit=1000)


# ------------------------------------------------------------------------------------------------
# an independent local book
# ------------------------------------------------------------------------------------------------


class LocalBook:
    """Applies OKX book frames with the documented rules; checks the seqId chain."""

    def __init__(self, depth: int = 400) -> None:
        self.depth = depth
        self.b: dict[str, str] = {}
        self.a: dict[str, str] = {}
        self.seq: int | None = None
        self.unknown_deletes = 0
        self.resets = 0
        self.keepalives = 0

    def apply(self, m: dict, check_chain: bool = True) -> None:
        assert len(m["data"]) == 1
        d = m["data"][0]
        for side in ("asks", "bids"):
            for lv in d[side]:
                assert isinstance(lv, list) and len(lv) == 4 and all(isinstance(x, str) for x in lv)
                assert lv[2] == "0"
        ap = [Decimal(x[0]) for x in d["asks"]]
        bp = [Decimal(x[0]) for x in d["bids"]]
        assert ap == sorted(ap) and bp == sorted(bp, reverse=True)
        if m["action"] == "snapshot":
            assert d.get("prevSeqId", -1) == -1
            self.b = {p: s for p, s, _, _ in d["bids"]}
            self.a = {p: s for p, s, _, _ in d["asks"]}
        else:
            assert m["action"] == "update"
            if "prevSeqId" in d and check_chain:
                assert d["prevSeqId"] == self.seq, ("gap", self.seq, d["prevSeqId"])
            if "seqId" in d:
                if d["seqId"] < d["prevSeqId"]:
                    self.resets += 1
                elif d["seqId"] == d["prevSeqId"]:
                    assert d["asks"] == [] and d["bids"] == []
                    self.keepalives += 1
            for book, levels in ((self.b, d["bids"]), (self.a, d["asks"])):
                for p, s, _, n in levels:
                    if s == "0":
                        assert n == "0"
                        if book.pop(p, None) is None:
                            self.unknown_deletes += 1
                    else:
                        assert int(n) >= 1
                        book[p] = s
        self.seq = d.get("seqId")
        assert len(self.b) <= self.depth and len(self.a) <= self.depth
        if self.b and self.a:
            assert max(map(Decimal, self.b)) < min(map(Decimal, self.a))

    def sorted(self) -> tuple[list[list[str]], list[list[str]]]:
        return ([[p, self.b[p]] for p in sorted(self.b, key=Decimal, reverse=True)],
                [[p, self.a[p]] for p in sorted(self.a, key=Decimal)])

    def crc(self) -> int:
        bids, asks = self.sorted()
        parts = []
        for i in range(25):
            if i < len(bids):
                parts.append(f"{bids[i][0]}:{bids[i][1]}")
            if i < len(asks):
                parts.append(f"{asks[i][0]}:{asks[i][1]}")
        c = zlib.crc32(":".join(parts).encode())
        return c - 2**32 if c >= 2**31 else c


async def catch_up(c: Client, vs: OkxSim, book: LocalBook, inst: str, channel: str = "books") -> None:
    """Apply frames until the local book has the seqId the sim last published, then compare."""
    async with asyncio.timeout(5):
        while True:
            want = vs.book(inst, channel)
            assert want is not None
            if want[2] == book.seq:
                assert book.sorted() == (want[0], want[1])
                return
            book.apply(await c.recv(channel_is(channel, inst)))


# ------------------------------------------------------------------------------------------------
# framework, registry, handshake
# ------------------------------------------------------------------------------------------------


def test_registry_options_and_faults():
    assert VENUE_SIMS["okx"] is OkxSim
    with pytest.raises(ValueError, match="unknown OkxOptions option"):
        OkxSim(options={"checksum_mode": "legacy"})
    with pytest.raises(ValueError, match="checksum"):
        OkxSim(options={"checksum": "crc"})
    for name in ("skip-seq", "reset-seq", "close-4004", "notice", "bad-checksum", "drop", "stall-for"):
        assert name in OkxSim.FAULTS
    assert parse_fault("skip-seq-every=7") == Fault("skip-seq-every", 7)
    assert parse_fault("reset-seq-every=2s") == Fault("reset-seq-every", 2.0)
    sim = OkxSim(options={"api_keys": {"k2": ["s2", "p2"]}})
    assert set(sim.opts.api_keys) == {"sim-key", "k2"}
    assert sim.opts.conn_limit == 3 and sim.opts.conn_window_s == 1.0
    assert sim.opts.request_limit == 480 and sim.opts.idle_close_s == 30.0


async def test_paths_query_string_ping_and_404(make_sim):
    sim, vs, base = await make_sim()
    ready = json.loads(sim.ready_line())
    assert set(ready["venues"]["okx"]["paths"]) == {"/ws/v5/public", "/ws/v5/business", "/ws/v5/private"}
    for path in ("/ws/v5/public?brokerId=9999", "/ws/v5/business", "/ws/v5/private?brokerId=9999&x=1"):
        c = await connect(base + path)
        c.send(b"ping")
        assert await c.recv_raw() == b"pong"
        c.close()
    with pytest.raises(picows.WSHandshakeError) as ei:
        await connect(base + "/ws/v5/public-sbe")
    assert ei.value.response.status == 404
    assert vs.stats.pings == 3


async def test_control_pings_configurable(make_sim):
    _, vs, base = await make_sim()
    c = await connect(base + "/ws/v5/public")
    c.transport.send_ping(b"x")
    await asyncio.sleep(0.2)
    assert c.pongs == 1
    _, vs2, base2 = await make_sim(answer_control_pings=False)
    c2 = await connect(base2 + "/ws/v5/public")
    c2.transport.send_ping(b"x")
    c2.send(b"ping")
    assert await c2.recv_raw() == b"pong"  # the text ping is always answered
    await asyncio.sleep(0.1)
    assert c2.pongs == 0


# ------------------------------------------------------------------------------------------------
# login
# ------------------------------------------------------------------------------------------------


def test_signature_vector_from_the_notes():
    assert sign("example-secret-key", "1700000000") == "cxLD0hDCxyLX5QJHWNySj4yLUkx9IruuOOLQQdBS+GQ="


async def test_login_accepts_every_timestamp_form(make_sim):
    _, vs, base = await make_sim()
    now = int(time.time())
    for ts in (str(now), f"{now}.53", now, now + 0.25):
        c = await connect(base + "/ws/v5/private")
        c.send(login_frame(ts=ts))
        m = await c.recv()
        assert m["event"] == "login" and m["code"] == "0" and m["msg"] == "", (ts, m)
        assert re.fullmatch(r"[0-9a-f]{8}", m["connId"])
        assert list(m) == ["event", "code", "msg", "connId"]
    c.send({"id": "L1", **login_frame()})
    m = await c.recv()
    assert m["id"] == "L1" and m["event"] == "login"
    assert vs.stats.auth_ok == 5


@pytest.mark.parametrize("case,code", [
    ("expired", "60006"), ("future", "60006"), ("unknown_key", "60005"), ("bad_sign", "60007"),
    ("passphrase", "60024"), ("bad_ts", "60004"), ("sign_of_other_text", "60007"),
])
async def test_login_rejections(make_sim, case, code):
    _, vs, base = await make_sim()
    now = int(time.time())
    frame = {
        "expired": login_frame(ts=str(now - 45)),
        "future": login_frame(ts=str(now + 45)),
        "unknown_key": login_frame(key="nope"),
        "bad_sign": login_frame(sig=sign("wrong-secret", str(now))),
        "passphrase": login_frame(passphrase="wrong"),
        "bad_ts": login_frame(ts="yesterday"),
        # the prehash is the timestamp text as sent: "1700000000.0" is not "1700000000"
        "sign_of_other_text": login_frame(ts=f"{now}.0", sig=sign(SECRET, str(now))),
    }[case]
    c = await connect(base + "/ws/v5/private")
    c.send(frame)
    m = await c.recv()
    assert m == {"event": "error", "code": code, "msg": m["msg"], "connId": m["connId"]}
    assert m["msg"] and "arg" not in m
    # still not logged in
    c.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
    assert (await c.recv())["code"] == "60011"
    assert vs.stats.auth_failed == 1 and not c.closed.is_set()


async def test_login_failure_close_option(make_sim):
    _, vs, base = await make_sim(login_fail_close=True)
    c = await connect(base + "/ws/v5/private")
    c.send(login_frame(passphrase="x"))
    assert (await c.recv())["code"] == "60024"
    await asyncio.wait_for(c.closed.wait(), 2)
    assert c.close_code == 4001


# ------------------------------------------------------------------------------------------------
# subscribe acks and routing errors
# ------------------------------------------------------------------------------------------------


async def test_one_ack_per_arg_and_error_shape(make_sim):
    _, vs, base = await make_sim()
    c = await connect(base + "/ws/v5/public")
    args = [{"channel": "tickers", "instId": "BTC-USDT"}, {"channel": "tickers", "instId": "NOPE-USDT"},
            {"channel": "trades", "instId": "BTC-USDT-SWAP"}]
    c.send({"id": "req42", "op": "subscribe", "args": args})
    events = [await c.recv(is_event("subscribe", "error")) for _ in range(3)]
    assert events[0] == {"id": "req42", "event": "subscribe", "arg": args[0], "connId": events[0]["connId"]}
    assert list(events[0]) == ["id", "event", "arg", "connId"]
    assert events[1] == {"id": "req42", "event": "error", "code": "60018",
                         "msg": "Wrong URL or channel:tickers,instId:NOPE-USDT doesn't exist",
                         "connId": events[0]["connId"]}
    assert events[2]["event"] == "subscribe" and events[2]["arg"] == args[2]
    # no id -> no id key; a duplicate is acked again without a second stream
    c.send({"op": "subscribe", "args": [args[0]]})
    m = await c.recv(is_event("subscribe"))
    assert "id" not in m and m["arg"] == args[0]
    assert vs.stats.connections()[0]["topics"] == ["tickers:BTC-USDT", "trades:BTC-USDT-SWAP"]
    c.send({"id": "u1", "op": "unsubscribe", "args": [args[0]]})
    m = await c.recv(is_event("unsubscribe"))
    assert m == {"id": "u1", "event": "unsubscribe", "arg": args[0], "connId": m["connId"]}
    assert vs.stats.connections()[0]["topics"] == ["trades:BTC-USDT-SWAP"]


async def test_routing_and_request_errors(make_sim):
    _, vs, base = await make_sim(vip_levels={"low-key": 2}, api_keys={"low-key": ["s", "p"]})
    pub = await connect(base + "/ws/v5/public")
    bus = await connect(base + "/ws/v5/business")
    prv = await connect(base + "/ws/v5/private")

    async def err(c: Client, arg: dict) -> str:
        c.send({"op": "subscribe", "args": [arg]})
        m = await c.recv(is_event("error", "subscribe"))
        return m["code"] if m["event"] == "error" else "ok"

    assert await err(pub, {"channel": "candle1m", "instId": "BTC-USDT"}) == "64001"
    assert await err(pub, {"channel": "trades-all", "instId": "BTC-USDT"}) == "64001"
    assert await err(bus, {"channel": "tickers", "instId": "BTC-USDT"}) == "64002"
    assert await err(bus, {"channel": "books", "instId": "BTC-USDT"}) == "64002"
    assert await err(bus, {"channel": "candle1m", "instId": "BTC-USDT"}) == "ok"
    assert await err(bus, {"channel": "trades-all", "instId": "BTC-USDT"}) == "ok"
    assert await err(bus, {"channel": "candle7m", "instId": "BTC-USDT"}) == "60018"
    assert await err(pub, {"channel": "nope", "instId": "BTC-USDT"}) == "60018"
    assert await err(pub, {"channel": "funding-rate", "instId": "BTC-USDT"}) == "60018"  # spot has no funding
    assert await err(pub, {"channel": "tickers"}) == "60013"
    assert await err(pub, {"channel": "tickers", "uly": "BTC-USD"}) == "64000"
    assert await err(pub, {"channel": "orders", "instType": "ANY"}) == "60018"
    assert await err(prv, {"channel": "orders", "instType": "ANY"}) == "60011"
    assert await err(pub, {"channel": "books-l2-tbt", "instId": "BTC-USDT"}) == "60011"
    assert await err(pub, {"channel": "books50-l2-tbt", "instId": "BTC-USDT"}) == "60011"
    # tbt books: login + VIP tier
    low = await connect(base + "/ws/v5/public")
    low.send(login_frame(key="low-key", secret="s", passphrase="p"))
    assert (await low.recv())["event"] == "login"
    assert await err(low, {"channel": "books-l2-tbt", "instId": "BTC-USDT"}) == "64003"
    await login(pub)
    assert await err(pub, {"channel": "books", "instId": "ETH-USDT"}) == "ok"
    assert await err(pub, {"channel": "books-l2-tbt", "instId": "ETH-USDT"}) == "64004"
    assert await err(pub, {"channel": "books-l2-tbt", "instId": "SOL-USDT"}) == "ok"
    assert await err(pub, {"channel": "books50-l2-tbt", "instId": "SOL-USDT"}) == "64004"
    # request-level errors
    pub.send(b"hello")
    m = await pub.recv(is_event("error"))
    assert m["code"] == "60012" and m["msg"] == "Invalid request: hello"
    bad = json.dumps({"op": "subscribe", "argss": [{"channel": "books", "instId": "BTC-USDT"}]})
    pub.send(bad.encode())
    m = await pub.recv(is_event("error"))
    assert m["code"] == "60012" and m["msg"] == f"Invalid request: {bad}"
    pub.send({"id": "x1", "op": "subscribez", "args": []})
    m = await pub.recv(is_event("error"))
    assert m == {"id": "x1", "event": "error", "code": "60019", "msg": "Invalid op: subscribez", "connId": m["connId"]}
    pub.send({"op": "subscribe", "args": [{"instId": "BTC-USDT"}]})
    assert (await pub.recv(is_event("error")))["code"] == "60012"
    assert not pub.closed.is_set()


async def test_args_over_64kb_close_1009(make_sim):
    _, vs, base = await make_sim(max_args_bytes=2000)
    c = await connect(base + "/ws/v5/public")
    c.send({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT", "pad": "x" * 2100}]})
    await asyncio.wait_for(c.closed.wait(), 2)
    assert c.close_code == 1009


async def test_480_per_hour_budget(make_sim):
    _, vs, base = await make_sim(request_limit=3)
    c = await connect(base + "/ws/v5/public")
    await login(c)  # login counts
    for i in range(2):
        c.send({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]})
        await c.recv(is_event("subscribe"))
    for _ in range(5):  # text pings do not count
        c.send(b"ping")
        assert await c.recv_raw() == b"pong" or True
    c.send({"id": "over", "op": "unsubscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]})
    m = await c.recv(is_event("error", "unsubscribe"))
    assert m == {"id": "over", "event": "error", "code": "60014", "msg": "Requests too frequent.",
                 "connId": m["connId"]}
    assert vs.stats.connections()[0]["topics"] == ["tickers:BTC-USDT"]
    # the budget is per connection
    c2 = await connect(base + "/ws/v5/public")
    c2.send({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]})
    assert (await c2.recv(is_event("subscribe", "error")))["event"] == "subscribe"


async def test_request_window_slides(make_sim):
    _, vs, base = await make_sim(request_limit=1, request_window_s=0.3)
    c = await connect(base + "/ws/v5/public")
    sub = {"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]}
    c.send(sub)
    assert (await c.recv(is_event("subscribe", "error")))["event"] == "subscribe"
    c.send(sub)
    assert (await c.recv(is_event("subscribe", "error")))["code"] == "60014"
    await asyncio.sleep(0.35)
    c.send(sub)
    assert (await c.recv(is_event("subscribe", "error")))["event"] == "subscribe"


async def test_three_new_connections_per_second_per_ip(make_sim):
    _, vs, base = await make_sim(conn_limit=3)
    url = base + "/ws/v5/public"
    ok = [await connect(url, ip="10.0.0.1") for _ in range(3)]
    with pytest.raises(picows.WSHandshakeError) as ei:
        await connect(url, ip="10.0.0.1")
    assert ei.value.response.status == 429
    await connect(url, ip="10.0.0.2")  # another IP has its own budget
    await asyncio.sleep(1.05)
    await connect(url, ip="10.0.0.1")
    assert vs.stats.connections_refused == 1 and len(ok) == 3


# ------------------------------------------------------------------------------------------------
# order books
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel,inst,depth", [
    ("books", "BTC-USDT", 400), ("books", "BTC-USDT-SWAP", 400), ("books-l2-tbt", "ETH-USDT-SWAP", 400),
    ("books50-l2-tbt", "BTC-USDT", 50), ("books", "BTC-USD-261225-100000-C", 400),
])
async def test_book_snapshot_chain_and_rebuild(make_sim, channel, inst, depth):
    _, vs, base = await make_sim(book_interval_ms=20, speed=2)
    c = await connect(base + "/ws/v5/public")
    if channel in ("books-l2-tbt", "books50-l2-tbt"):
        await login(c)
    c.send({"op": "subscribe", "args": [{"channel": channel, "instId": inst}]})
    ack = await c.recv()
    assert ack["event"] == "subscribe"
    snap = await c.recv()  # the snapshot follows the ack
    assert snap["arg"] == {"channel": channel, "instId": inst} and snap["action"] == "snapshot"
    d = snap["data"][0]
    assert list(d) == ["asks", "bids", "ts", "checksum", "prevSeqId", "seqId"]
    assert d["prevSeqId"] == -1 and d["checksum"] == 0 and isinstance(d["seqId"], int) and d["seqId"] >= 0
    if "OPTION" not in inst and "-C" not in inst:
        assert len(d["asks"]) == depth and len(d["bids"]) == depth
    book = LocalBook(depth)
    book.apply(snap)
    steps = []
    async with asyncio.timeout(6):
        while len(steps) < 30:
            m = await c.recv(channel_is(channel, inst))
            dd = m["data"][0]
            assert dd["checksum"] == 0
            book.apply(m)
            steps.append(dd["seqId"] - dd["prevSeqId"])
    assert all(s > 0 for s in steps) and len(set(steps)) > 3  # random positive gaps, not +1
    await catch_up(c, vs, book, inst, channel)


async def test_one_seqid_space_shared_by_connections_and_channels(make_sim):
    _, vs, base = await make_sim(speed=2)
    a = await connect(base + "/ws/v5/public")
    b = await connect(base + "/ws/v5/public")
    await login(b)
    a.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
    b.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"},
                                        {"channel": "books5", "instId": "BTC-USDT"}]})
    c = await connect(base + "/ws/v5/public")
    await login(c)
    c.send({"op": "subscribe", "args": [{"channel": "books-l2-tbt", "instId": "BTC-USDT"}]})
    ra, rb, rc = await asyncio.gather(a.collect(1.0), b.collect(1.0), c.collect(1.0))
    fa = [json.loads(x) for x in ra if b'"data"' in x]
    fb = [json.loads(x) for x in rb if b'"data"' in x]
    fc = [json.loads(x) for x in rc if b'"data"' in x]
    # the same books stream: identical updates by seqId on both connections
    ua = {m["data"][0]["seqId"]: m["data"][0] for m in fa if m.get("action") == "update"}
    ub = {m["data"][0]["seqId"]: m["data"][0] for m in fb if m["arg"]["channel"] == "books" and m.get("action") == "update"}
    common = set(ua) & set(ub)
    assert len(common) >= 5
    for s in common:
        assert {k: v for k, v in ua[s].items() if k != "ts"} == {k: v for k, v in ub[s].items() if k != "ts"}
    # books and books-l2-tbt of the instrument share one seqId space: the books rebuilt at a seqId
    # both channels published are equal
    ba, bc = LocalBook(), LocalBook()
    states_a: dict[int, Any] = {}
    for m in fa:
        ba.apply(m)
        states_a[ba.seq] = ba.sorted()
    shared = 0
    for m in fc:
        bc.apply(m)
        if bc.seq in states_a:
            assert bc.sorted() == states_a[bc.seq]
            shared += 1
    assert shared >= 3
    # books5: full 5-level snapshots without action/prevSeqId, seqIds from the same space
    b5 = [m for m in fb if m["arg"]["channel"] == "books5"]
    assert b5 and all("action" not in m for m in b5)
    d5 = b5[-1]["data"][0]
    assert list(d5) == ["asks", "bids", "instId", "ts", "seqId"]
    assert len(d5["asks"]) == 5 and len(d5["bids"]) == 5 and d5["instId"] == "BTC-USDT"
    all_seq = sorted(set(ua) | set(states_a))
    assert all_seq[0] - 10**7 < d5["seqId"] < all_seq[-1] + 10**7


async def test_legacy_checksum_and_no_seq(make_sim):
    for fixed in (False, True):
        _, vs, base = await make_sim(checksum="legacy", fixed_decimals=fixed, book_interval_ms=20)
        c = await connect(base + "/ws/v5/public")
        c.send({"op": "subscribe", "args": [{"channel": "books", "instId": "ETH-USDT"}]})
        await c.recv(is_event("subscribe"))
        book = LocalBook()
        checked = 0
        async with asyncio.timeout(5):
            while checked < 25:
                m = await c.recv(channel_is("books"))
                book.apply(m)
                cs = m["data"][0]["checksum"]
                assert cs != 0 and -2**31 <= cs < 2**31
                assert cs == book.crc()
                checked += 1
        if fixed:  # every decimal of the lot, e.g. "0.500000"
            assert any(s.endswith("0") and "." in s for s in book.b.values())
        else:
            assert not any(s.endswith("0") and "." in s for s in list(book.b.values()) + list(book.b))
    # the bad-checksum fault breaks exactly one delta
    vs.inject("bad-checksum")
    bad = 0
    async with asyncio.timeout(5):
        for _ in range(15):
            m = await c.recv(channel_is("books"))
            book.apply(m)
            bad += m["data"][0]["checksum"] != book.crc()
    assert bad == 1
    # 2022 mode: no seqId/prevSeqId anywhere
    _, vs, base = await make_sim(no_seq=True, checksum="legacy", book_interval_ms=20)
    c = await connect(base + "/ws/v5/public")
    c.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"},
                                        {"channel": "books5", "instId": "BTC-USDT"}]})
    frames = [json.loads(x) for x in await c.collect(0.5)]
    books = [m for m in frames if "data" in m and m["arg"]["channel"] == "books"]
    b5 = [m for m in frames if "data" in m and m["arg"]["channel"] == "books5"]
    assert books and b5
    assert all(list(m["data"][0]) == ["asks", "bids", "ts", "checksum"] for m in books)
    assert all("seqId" not in m["data"][0] for m in b5)
    book = LocalBook()
    for m in books:
        book.apply(m)
        assert m["data"][0]["checksum"] == book.crc()


async def test_keepalive_and_snapshot_resend_when_nothing_changes(make_sim):
    _, vs, base = await make_sim(market_steps_per_s=0, keepalive_s=0.15)
    c = await connect(base + "/ws/v5/public")
    c.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"},
                                        {"channel": "bbo-tbt", "instId": "BTC-USDT"}]})
    frames = [json.loads(x) for x in await c.collect(0.7)]
    books = [m for m in frames if "data" in m and m["arg"]["channel"] == "books"]
    bbo = [m for m in frames if "data" in m and m["arg"]["channel"] == "bbo-tbt"]
    snap = books[0]["data"][0]
    assert books[0]["action"] == "snapshot"
    keep = [m["data"][0] for m in books[1:]]
    assert len(keep) >= 3
    for d in keep:
        assert d["asks"] == [] and d["bids"] == [] and d["seqId"] == d["prevSeqId"] == snap["seqId"]
    book = LocalBook()
    for m in books:
        book.apply(m)
    assert book.keepalives == len(keep)
    assert len(bbo) >= 3 and len({m["data"][0]["seqId"] for m in bbo}) == 1
    assert list(bbo[0]["data"][0]) == ["asks", "bids", "ts", "seqId"]
    assert len(bbo[0]["data"][0]["asks"]) == 1 and bbo[0]["data"][0]["seqId"] == snap["seqId"]


async def test_reset_and_skip_faults(make_sim):
    _, vs, base = await make_sim(book_interval_ms=20)
    c = await connect(base + "/ws/v5/public")
    c.send({"op": "subscribe", "args": [{"channel": "books", "instId": "SOL-USDT"},
                                        {"channel": "books5", "instId": "SOL-USDT"}]})
    await c.recv(is_event("subscribe"))
    book = LocalBook()
    book.apply(await c.recv(channel_is("books")))
    for _ in range(3):
        book.apply(await c.recv(channel_is("books")))
    before = book.seq
    vs.inject("reset-seq")
    b5_after: list[int] = []

    async def next_books() -> dict:
        while True:
            m = await c.recv(lambda x: "data" in x)
            if m["arg"]["channel"] == "books":
                return m
            b5_after.append(m["data"][0]["seqId"])

    m = await next_books()
    d = m["data"][0]
    assert d["prevSeqId"] == before and d["seqId"] < d["prevSeqId"]  # accepted: not a gap
    book.apply(m)
    for _ in range(3):
        book.apply(await next_books())  # the chain continues from the small seqId
    assert book.resets == 1 and book.seq < before
    while not b5_after or b5_after[-1] > before:
        book.apply(await next_books())
    assert b5_after[-1] < before  # books5 carries the same (reset) seqId space
    await catch_up(c, vs, book, "SOL-USDT")
    # skip-seq: the next delta's prevSeqId names a seqId that was never sent
    vs.inject("skip-seq")
    m = await c.recv(channel_is("books"))
    assert m["data"][0]["prevSeqId"] != book.seq
    # recovery as documented: unsubscribe and subscribe again, a new snapshot follows
    c.send({"op": "unsubscribe", "args": [{"channel": "books", "instId": "SOL-USDT"}]})
    await c.recv(is_event("unsubscribe"))
    c.send({"op": "subscribe", "args": [{"channel": "books", "instId": "SOL-USDT"}]})
    await c.recv(is_event("subscribe"))
    snap = await c.recv(lambda x: channel_is("books")(x) and x["action"] == "snapshot")
    book = LocalBook()
    book.apply(snap)
    await catch_up(c, vs, book, "SOL-USDT")
    # skip-seq-every=N
    vs.inject("skip-seq-every=5")
    gaps = 0
    seq = book.seq
    for _ in range(14):  # (only the chain is followed: across a withheld delta the book is not exact,
        m = await c.recv(channel_is("books"))  # and may hold a level that delta deleted)
        gaps += m["data"][0]["prevSeqId"] != seq
        seq = m["data"][0]["seqId"]
    assert gaps >= 2
    vs.inject("clear")


async def test_no_initial_snapshot_with_rest_recipe(make_sim):
    _, vs, base = await make_sim(no_initial_snapshot=True, book_interval_ms=30)
    c = await connect(base + "/ws/v5/public")
    c.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
    await c.recv(is_event("subscribe"))
    buf = [await c.recv(channel_is("books")) for _ in range(4)]
    assert all(m["action"] == "update" for m in buf)
    status, headers, rest = await http_get(vs.port, "/api/v5/market/books?instId=BTC-USDT&sz=400&source=0")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert rest["code"] == "0" and rest["msg"] == ""
    snap = rest["data"][0]
    assert list(snap) == ["asks", "bids", "ts", "seqId"]
    assert len(snap["asks"]) == 400 and len(snap["bids"]) == 400
    s = snap["seqId"]
    assert s >= buf[0]["data"][0]["prevSeqId"]
    # keep buffering until an event passes the snapshot
    while buf[-1]["data"][0]["seqId"] <= s:
        buf.append(await c.recv(channel_is("books")))
    kept = [m for m in buf if m["data"][0]["seqId"] > s]
    first = kept[0]["data"][0]
    assert first["prevSeqId"] <= s < first["seqId"]
    book = LocalBook()
    book.apply({"action": "snapshot", "data": [{"asks": snap["asks"], "bids": snap["bids"], "prevSeqId": -1,
                                                "seqId": s}]})
    book.apply(kept[0], check_chain=False)
    for m in kept[1:]:
        book.apply(m)
    await catch_up(c, vs, book, "BTC-USDT")
    # REST details
    status, _, r = await http_get(vs.port, "/api/v5/market/books?instId=BTC-USDT")
    assert status == 200 and len(r["data"][0]["asks"]) == 1  # sz defaults to 1
    _, _, r = await http_get(vs.port, "/api/v5/market/books?instId=NOPE-USDT&sz=5")
    assert r["code"] == "51001" and r["data"] == []
    _, _, r = await http_get(vs.port, "/api/v5/market/books?instId=BTC-USDT&sz=401")
    assert r["code"] == "51000"
    _, _, r = await http_get(vs.port, "/api/v5/public/time")
    assert abs(int(r["data"][0]["ts"]) - time.time() * 1000) < 5000
    status, _, r = await http_get(vs.port, "/api/v5/nope")
    assert status == 404
    assert vs.rest_url == f"http://127.0.0.1:{vs.port}"
    assert vs.stats.connections_refused == 0


# ------------------------------------------------------------------------------------------------
# the 30 s rule, notices
# ------------------------------------------------------------------------------------------------


async def test_idle_close_4004(make_sim):
    _, vs, base = await make_sim(idle_close_s=0.3, idle_check_s=0.05, funding_interval_ms=60_000)
    never = await connect(base + "/ws/v5/public")
    pinger = await connect(base + "/ws/v5/public")
    quiet = await connect(base + "/ws/v5/public")
    alive = await connect(base + "/ws/v5/public")
    busy = await connect(base + "/ws/v5/public")
    quiet.send({"op": "subscribe", "args": [{"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}]})
    alive.send({"op": "subscribe", "args": [{"channel": "funding-rate", "instId": "ETH-USDT-SWAP"}]})
    busy.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
    t0 = time.monotonic()
    for _ in range(8):
        pinger.send(b"ping")  # pings do not count as a subscription
        alive.send(b"ping")  # ...but the pongs keep a subscribed connection alive
        await asyncio.sleep(0.1)
    for c in (never, pinger, quiet):
        await asyncio.wait_for(c.closed.wait(), 1)
        assert c.close_code == 4004 and c.close_reason == "No data received in 30s."
    assert time.monotonic() - t0 < 1.5
    assert not alive.closed.is_set() and not busy.closed.is_set()
    assert vs.stats.idle_closes == 3
    vs.inject("close-4004")
    for c in (alive, busy):
        await asyncio.wait_for(c.closed.wait(), 1)
        assert c.close_code == 4004


async def test_notice_then_close(make_sim):
    _, vs, base = await make_sim(notice_lead_s=0.2)
    a = await connect(base + "/ws/v5/public")
    b = await connect(base + "/ws/v5/private")
    t0 = time.monotonic()
    vs.inject("notice")
    for c in (a, b):
        m = await c.recv()
        assert m == {"event": "notice", "code": "64008",
                     "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                     "connId": m["connId"]}
        await asyncio.wait_for(c.closed.wait(), 1)
        assert c.close_code == 1001
    assert 0.18 < time.monotonic() - t0 < 1.0
    # scheduled notices
    _, vs, base = await make_sim(notice_every_s=0.2, notice_lead_s=0.1, notice_close_code=0)
    c = await connect(base + "/ws/v5/public")
    m = await c.recv(timeout=1)
    assert m["event"] == "notice"
    await asyncio.wait_for(c.closed.wait(), 1)
    assert c.close_code is None  # dropped without a close frame (notice_close_code=0)


# ------------------------------------------------------------------------------------------------
# private channels and the connections-per-channel rule
# ------------------------------------------------------------------------------------------------


async def test_channel_conn_count_and_rejection(make_sim):
    _, vs, base = await make_sim(max_conn_per_channel=3, order_events_per_s=40)
    conns = []
    for i in range(1, 4):
        c = await connect(base + "/ws/v5/private")
        await login(c)
        c.send({"id": f"s{i}", "op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
        ack = await c.recv()
        assert ack["event"] == "subscribe" and ack["id"] == f"s{i}"
        cnt = await c.recv()
        assert cnt == {"event": "channel-conn-count", "channel": "orders", "connCount": str(i),
                       "connId": ack["connId"]}
        conns.append(c)
    # a second orders arg on a counted connection counts once: no new event
    conns[0].send({"op": "subscribe", "args": [{"channel": "orders", "instType": "SWAP"}]})
    assert (await conns[0].recv(is_event("subscribe", "channel-conn-count")))["event"] == "subscribe"
    # the newest connection over the limit: normal ack, then the error; its subscription is dead
    c4 = await connect(base + "/ws/v5/private")
    await login(c4)
    c4.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
    ack = await c4.recv()
    assert ack["event"] == "subscribe"
    err = await c4.recv()
    assert err == {"event": "channel-conn-count-error", "channel": "orders", "connCount": "3",
                   "connId": ack["connId"]}
    assert "arg" not in err
    assert vs.channel_conn_count(KEY, "orders") == 3
    # the others receive orders (pushes carry arg.uid); the rejected one gets nothing
    m = await conns[1].recv(channel_is("orders"), timeout=3)
    assert m["arg"]["instType"] == "ANY" and re.fullmatch(r"\d{15}", m["arg"]["uid"])
    o = m["data"][0]
    assert o["state"] in ("live", "partially_filled", "filled", "canceled") and o["ordId"].isdigit()
    assert [json.loads(x) for x in c4.drain() + await c4.collect(0.3) if b'"data"' in x] == []
    # other counted channels are counted separately
    c4.send({"op": "subscribe", "args": [{"channel": "account"}]})
    await c4.recv(is_event("subscribe"))
    assert (await c4.recv(is_event("channel-conn-count")))["connCount"] == "1"
    # a counted connection leaving frees a slot
    conns[0].close()
    await asyncio.sleep(0.1)
    assert vs.channel_conn_count(KEY, "orders") == 2
    c4.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
    await c4.recv(is_event("subscribe"))
    assert (await c4.recv(is_event("channel-conn-count", "channel-conn-count-error")))["event"] == "channel-conn-count"


async def test_conn_count_every_sub_option(make_sim):
    _, vs, base = await make_sim(conn_count_every_sub=True)
    c = await connect(base + "/ws/v5/private")
    await login(c)
    c.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "SPOT"},
                                        {"channel": "orders", "instType": "SWAP"}]})
    evs = [await c.recv(is_event("subscribe", "channel-conn-count")) for _ in range(4)]
    assert [(e["event"], e.get("connCount")) for e in evs] == [
        ("subscribe", None), ("channel-conn-count", "1"), ("subscribe", None), ("channel-conn-count", "1")]


async def test_private_snapshots_and_updates(make_sim):
    _, vs, base = await make_sim(order_events_per_s=50, account_snapshot_s=0.3)
    c = await connect(base + "/ws/v5/private")
    await login(c)
    c.send({"op": "subscribe", "args": [
        {"channel": "account", "ccy": "USDT"}, {"channel": "positions", "instType": "ANY"},
        {"channel": "balance_and_position"}, {"channel": "orders", "instType": "SPOT", "instId": "BTC-USDT"}]})
    acc = await c.recv(channel_is("account"))
    assert acc["arg"]["channel"] == "account" and acc["arg"]["ccy"] == "USDT" and "uid" in acc["arg"]
    assert acc["eventType"] == "snapshot" and acc["curPage"] == 1 and acc["lastPage"] is True
    assert [d["ccy"] for d in acc["data"][0]["details"]] == ["USDT"]
    pos = await c.recv(channel_is("positions"))
    assert pos["eventType"] == "snapshot" and isinstance(pos["data"], list)
    bp = await c.recv(channel_is("balance_and_position"))
    assert bp["data"][0]["eventType"] == "snapshot" and "balData" in bp["data"][0]
    o = await c.recv(channel_is("orders"), timeout=3)
    assert all(x["instId"] == "BTC-USDT" for x in o["data"])
    filled = await c.recv(lambda m: channel_is("balance_and_position")(m) and m["data"][0]["eventType"] == "filled",
                          timeout=3)
    assert filled["data"][0]["trades"][0]["tradeId"]
    upd = await c.recv(lambda m: channel_is("account")(m) and m.get("eventType") == "event_update", timeout=3)
    assert "curPage" not in upd


# ------------------------------------------------------------------------------------------------
# other public channels
# ------------------------------------------------------------------------------------------------


async def test_tickers_trades_and_fanout(make_sim):
    _, vs, base = await make_sim(speed=3)
    a = await connect(base + "/ws/v5/public")
    b = await connect(base + "/ws/v5/public")
    for c in (a, b):
        c.send({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT-SWAP"},
                                            {"channel": "trades", "instId": "BTC-USDT-SWAP"}]})
    t = await a.recv(channel_is("tickers"))
    d = t["data"][0]
    assert list(d) == ["instType", "instId", "last", "lastSz", "askPx", "askSz", "bidPx", "bidSz", "open24h",
                       "high24h", "low24h", "sodUtc0", "sodUtc8", "volCcy24h", "vol24h", "ts"]
    assert d["instType"] == "SWAP" and all(isinstance(v, str) for v in d.values())
    assert Decimal(d["bidPx"]) < Decimal(d["askPx"])
    trades = []
    async with asyncio.timeout(4):
        while len(trades) < 12:
            trades.append((await a.recv(channel_is("trades")))["data"][0])
    assert list(trades[0]) == ["instId", "tradeId", "px", "sz", "side", "ts", "count", "source", "seqId"]
    ids = [int(x["tradeId"]) for x in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(x["side"] in ("buy", "sell") and int(x["count"]) >= 1 and x["source"] == "0" for x in trades)
    assert all(isinstance(x["seqId"], int) for x in trades)
    # shared streams: both connections receive the same bytes
    ra, rb = await asyncio.gather(a.collect(0.5), b.collect(0.5))
    assert len(set(ra) & set(rb)) >= 3


async def test_business_candles_and_trades_all(make_sim):
    _, vs, base = await make_sim(speed=3, candle_period_s=0.3, candle_interval_ms=50)
    c = await connect(base + "/ws/v5/business")
    c.send({"op": "subscribe", "args": [{"channel": "candle1m", "instId": "BTC-USDT"},
                                        {"channel": "trades-all", "instId": "BTC-USDT"}]})
    k = await c.recv(channel_is("candle1m"))
    row = k["data"][0]
    assert isinstance(row, list) and len(row) == 9 and all(isinstance(x, str) for x in row)
    assert row[8] == "0"
    assert "." in row[1]  # candles keep the tick's decimals ("63913.0")
    closed = await c.recv(lambda m: channel_is("candle1m")(m) and m["data"][0][8] == "1", timeout=3)
    nxt = await c.recv(channel_is("candle1m"))
    assert int(nxt["data"][0][0]) > int(closed["data"][0][0]) and nxt["data"][0][1] == closed["data"][0][4]
    ta = await c.recv(channel_is("trades-all"), timeout=3)
    assert list(ta["data"][0]) == ["instId", "tradeId", "px", "sz", "side", "source", "ts"]


async def test_funding_mark_oi_index_liquidations_instruments(make_sim):
    _, vs, base = await make_sim(funding_interval_ms=100, oi_interval_ms=100, liquidation_interval_ms=50,
                                 liquidation_prob=1.0, speed=2)
    c = await connect(base + "/ws/v5/public")
    c.send({"op": "subscribe", "args": [
        {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}, {"channel": "mark-price", "instId": "BTC-USDT-SWAP"},
        {"channel": "open-interest", "instId": "BTC-USD-SWAP"}, {"channel": "index-tickers", "instId": "BTC-USDT"},
        {"channel": "liquidation-orders", "instType": "SWAP"}, {"channel": "instruments", "instType": "OPTION"}]})
    first: dict[str, dict] = {}
    async with asyncio.timeout(4):
        while len(first) < 6:
            m = await c.recv(lambda x: "data" in x)
            first.setdefault(m["arg"]["channel"], m)
    f = first["funding-rate"]["data"][0]
    assert {"fundingRate", "fundingTime", "nextFundingTime", "method", "formulaType", "premium", "settState"} <= set(f)
    assert int(f["nextFundingTime"]) - int(f["fundingTime"]) == 28_800_000
    mk = first["mark-price"]["data"][0]
    assert list(mk) == ["instId", "instType", "markPx", "ts"]
    oi = first["open-interest"]["data"][0]
    assert {"oi", "oiCcy", "oiUsd", "instType"} <= set(oi) and oi["instType"] == "SWAP"
    ix = first["index-tickers"]["data"][0]
    assert list(ix) == ["instId", "idxPx", "open24h", "high24h", "low24h", "sodUtc0", "sodUtc8", "ts"]
    liq = first["liquidation-orders"]
    assert liq["arg"] == {"channel": "liquidation-orders", "instType": "SWAP"}
    assert liq["data"][0]["instType"] == "SWAP" and liq["data"][0]["details"][0]["side"] in ("buy", "sell")
    ins = first["instruments"]
    assert {i["instId"] for i in ins["data"]} == {"BTC-USD-261225-100000-C", "BTC-USD-261225-60000-P"}
    assert c.send({"op": "subscribe", "args": [{"channel": "index-tickers", "instId": "NOPE-USDT"}]}) is None
    assert (await c.recv(is_event("error")))["code"] == "60018"


async def test_same_seed_same_market(make_sim):
    snaps = []
    for seed in (7, 7, 8):
        _, vs, base = await make_sim(seed=seed, market_steps_per_s=0)
        c = await connect(base + "/ws/v5/public")
        c.send({"op": "subscribe", "args": [{"channel": "books", "instId": "ETH-USDT-SWAP"}]})
        await c.recv(is_event("subscribe"))
        snaps.append((await c.recv())["data"][0])
        c.close()
    assert snaps[0]["seqId"] == snaps[1]["seqId"] and snaps[0]["asks"] == snaps[1]["asks"]
    assert snaps[0]["seqId"] != snaps[2]["seqId"]


async def test_generic_faults_drop_and_malformed(make_sim):
    _, vs, base = await make_sim()
    c = await connect(base + "/ws/v5/public")
    c.send({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]})
    await c.recv(is_event("subscribe"))
    vs.inject("malformed")
    with pytest.raises(json.JSONDecodeError):
        while True:
            json.loads(await c.recv_raw())
    vs.inject("drop")
    await asyncio.wait_for(c.closed.wait(), 1)
    assert c.close_code is None
    vs.inject("reject-connect")
    with pytest.raises(picows.WSHandshakeError) as ei:
        await connect(base + "/ws/v5/public")
    assert ei.value.response.status == 429
