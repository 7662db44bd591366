"""The OKX DEX market WebSocket simulator over real loopback sockets with a tiny raw picows client.

Expectations come from protocols/okx.md §5 and the DEX WebSocket introduction (seeds/000).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from decimal import Decimal
from typing import Callable

import picows
import pytest

from tickwire.sim import VENUE_SIMS
from tickwire.sim.okxdex import OkxDexSim

from ._client import RawClient

KEY, SECRET, PASSPHRASE = "sim-key", "sim-secret", "sim-passphrase"
DOC_TOKEN = "0x382bb369d343125bfb2117af9c149795c6c65c50"
BONK = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"
PEPE = "0x6982508145454ce325ddbf47a25b4ec3d2311933"


class Client(RawClient):
    text_pong = b"pong"

    async def collect(self, seconds: float) -> list[dict]:  # type: ignore[override]
        """The JSON messages of ``seconds`` (text pongs left out)."""
        return [json.loads(raw) for raw in await super().collect(seconds) if raw != b"pong"]


connect = Client.connect


def login_frame(key: str = KEY, secret: str = SECRET, passphrase: str = PASSPHRASE, ts: str | None = None,
                bad_sign: bool = False) -> dict:
    ts = ts or str(int(time.time()))
    mac = hmac.new((secret + ("x" if bad_sign else "")).encode(), (ts + "GET/users/self/verify").encode(),
                   hashlib.sha256)
    return {"op": "login", "args": [{"apiKey": key, "passphrase": passphrase, "timestamp": ts,
                                     "sign": base64.b64encode(mac.digest()).decode()}]}


async def login(c: Client) -> None:
    c.send(login_frame())
    m = await c.recv()
    assert m["event"] == "login" and m["code"] == "0", m


def ev(*names: str) -> Callable[[dict], bool]:
    return lambda m: m.get("event") in names


def data_of(ch: str) -> Callable[[dict], bool]:
    return lambda m: "data" in m and m["arg"]["channel"] == ch


def tok(ch: str, addr: str = DOC_TOKEN, chain: str = "1") -> dict:
    return {"channel": ch, "chainIndex": chain, "tokenContractAddress": addr}


@pytest.fixture
def make_sim(sim_factory):
    return sim_factory(OkxDexSim, "/ws/v6/dex", conn_limit=1000, key_conn_limit=1000)


# ------------------------------------------------------------------------------------------------


def test_registry_and_defaults():
    assert VENUE_SIMS["okxdex"] is OkxDexSim
    sim = OkxDexSim()
    o = sim.opts
    assert (o.conn_limit, o.conn_window_s, o.request_limit, o.request_window_s) == (3, 1.0, 480, 3600.0)
    assert o.idle_close_s == 30.0 and o.max_conn_per_channel == 30 and o.notice_lead_s == 30.0
    assert o.counted_channels == ["price", "candle", "trades"]
    with pytest.raises(ValueError):
        OkxDexSim(options={"trade_token_key": "tokens"})
    assert {"close-4004", "notice", "drop", "stall-for"} <= set(OkxDexSim.FAULTS)


async def test_paths_ping_and_login_first(make_sim):
    sim, vs, url = await make_sim()
    base = sim.endpoints["okxdex"]
    for path in ("/ws/v6/dex", "/ws/v5/dex?x=1"):
        c = await connect(base + path)
        c.send(b"ping")
        assert await c.recv_raw() == b"pong"
    with pytest.raises(picows.WSHandshakeError) as ei:
        await connect(base + "/ws/v5/public")
    assert ei.value.response.status == 404
    c = await connect(url)
    c.send({"id": "p1", "op": "subscribe", "args": [tok("price")]})
    m = await c.recv()
    assert m == {"id": "p1", "event": "error", "code": "60011", "msg": "Please log in", "connId": m["connId"]}
    c.send(login_frame(bad_sign=True))
    assert (await c.recv())["code"] == "60007"
    c.send(login_frame(ts=str(int(time.time()) - 40)))
    assert (await c.recv())["code"] == "60006"
    c.send(login_frame(key="other"))
    assert (await c.recv())["code"] == "60005"
    c.send(login_frame(passphrase="x"))
    assert (await c.recv())["code"] == "60024"
    await login(c)
    c.send({"op": "subscribe", "args": [tok("price")]})
    m = await c.recv()
    assert m == {"event": "subscribe", "arg": tok("price"), "connId": m["connId"]}
    assert re.fullmatch(r"[0-9a-f]{8}", m["connId"])


async def test_token_channels_payloads(make_sim):
    _, vs, url = await make_sim(speed=4, candle_interval_ms=100, price_info_interval_ms=100, candle_period_s=0.4)
    c = await connect(url)
    await login(c)
    c.send({"op": "subscribe", "args": [tok("price"), tok("dex-token-candle1m"), tok("price-info"), tok("trades"),
                                        tok("candle1s", BONK, "501")]})
    acks = [await c.recv(ev("subscribe", "channel-conn-count", "error")) for _ in range(8)]
    assert [a["event"] for a in acks].count("subscribe") == 5
    assert not [a for a in acks if a["event"] == "error"]
    first: dict[str, dict] = {}
    async with asyncio.timeout(4):
        while len(first) < 5:
            m = await c.recv(lambda x: "data" in x)
            first.setdefault(m["arg"]["channel"], m)
    p = first["price"]
    assert p["arg"] == tok("price") and list(p["data"][0]) == ["time", "price"]
    assert Decimal(p["data"][0]["price"]) > 0 and "e" not in p["data"][0]["price"].lower()
    k = first["dex-token-candle1m"]["data"][0]
    assert isinstance(k, dict) and list(k) == ["ts", "o", "h", "l", "c", "vol", "volUsd", "confirm"]
    assert k["confirm"] in ("0", "1") and Decimal(k["l"]) <= Decimal(k["c"]) <= Decimal(k["h"])
    bare = first["candle1s"]
    assert bare["arg"] == tok("candle1s", BONK, "501") and "e" not in bare["data"][0]["c"].lower()
    info = first["price-info"]["data"][0]
    for f in ("time", "price", "marketCap", "priceChange5M", "priceChange1H", "priceChange4H", "priceChange24H",
              "volume5M", "volume24H", "txs5M", "txs24H", "maxPrice", "minPrice", "liquidity", "circSupply",
              "holders", "tradeNum"):
        assert isinstance(info[f], str), f
    tr = first["trades"]["data"][0]
    assert list(tr) == ["id", "txHashUrl", "userAddress", "dexName", "poolLogoUrl", "type", "changedTokenInfo",
                        "price", "volume", "time", "isFiltered"]
    assert tr["type"] in ("buy", "sell") and tr["isFiltered"] in ("0", "1")
    assert tr["txHashUrl"].startswith("https://etherscan.io/tx/0x") and re.fullmatch(r"0x[0-9a-f]{40}", tr["userAddress"])
    assert {x["tokenContractAddress"] for x in tr["changedTokenInfo"]} >= {DOC_TOKEN}
    closed = await c.recv(lambda m: data_of("dex-token-candle1m")(m) and m["data"][0]["confirm"] == "1", timeout=3)
    assert int(closed["data"][0]["ts"]) > 0


async def test_amount_exchanged_and_strict_options(make_sim):
    _, vs, url = await make_sim(trade_token_key="amountExchanged", accept_bare_candle=False,
                                accept_unknown_tokens=False, speed=4)
    c = await connect(url)
    await login(c)
    c.send({"op": "subscribe", "args": [tok("trades", BONK, "501")]})
    await c.recv(ev("subscribe"))
    tr = (await c.recv(data_of("trades"), timeout=3))["data"][0]
    assert "amountExchanged" in tr and "changedTokenInfo" not in tr
    assert tr["txHashUrl"].startswith("https://solscan.io/tx/")
    c.send({"op": "subscribe", "args": [tok("candle1m")]})
    assert (await c.recv(ev("error", "subscribe")))["code"] == "60018"
    c.send({"op": "subscribe", "args": [tok("price", "0x" + "ab" * 20)]})
    assert (await c.recv(ev("error", "subscribe")))["code"] == "60018"


async def test_arg_validation(make_sim):
    _, vs, url = await make_sim()
    c = await connect(url)
    await login(c)

    async def code(arg: dict) -> str:
        c.send({"op": "subscribe", "args": [arg]})
        m = await c.recv(ev("error", "subscribe"))
        return m.get("code", "ok")

    assert await code(tok("price", DOC_TOKEN, "7")) == "60018"  # unsupported chain
    assert await code(tok("price", DOC_TOKEN.upper().replace("0X", "0x"))) == "60018"  # EVM must be lower-case
    assert await code(tok("price", "0x1234")) == "60018"
    assert await code({"channel": "price", "chainIndex": "1"}) == "60013"
    assert await code({"channel": "price", "chainIndex": 1, "tokenContractAddress": DOC_TOKEN}) == "60013"
    assert await code(tok("dex-token-candle7m")) == "60018"
    assert await code(tok("nope")) == "60018"
    assert await code(tok("price", BONK, "501")) == "ok"
    assert await code(tok("price", "0x" + "cd" * 20, "8453")) == "ok"  # unknown but well-formed token
    assert await code({"channel": "dex-market-new-signal-openapi"}) == "60013"


async def test_conn_count_limit_per_channel_per_api_key(make_sim):
    _, vs, url = await make_sim(max_conn_per_channel=3, speed=4)
    conns = []
    for i in range(1, 4):
        c = await connect(url)
        await login(c)
        # two args of one channel on one connection count once
        c.send({"op": "subscribe", "args": [tok("price"), tok("price", PEPE)]})
        a1 = await c.recv()
        assert a1["event"] == "subscribe"
        cnt = await c.recv()
        assert cnt == {"event": "channel-conn-count", "channel": "price", "connCount": str(i), "connId": a1["connId"]}
        a2 = await c.recv(ev("subscribe", "channel-conn-count"))
        assert a2["event"] == "subscribe"
        conns.append(c)
    assert vs.channel_conn_count(KEY, "price") == 3
    c4 = await connect(url)
    await login(c4)
    c4.send({"op": "subscribe", "args": [tok("price")]})
    ack = await c4.recv()
    assert ack == {"event": "subscribe", "arg": tok("price"), "connId": ack["connId"]}
    err = await c4.recv()
    assert err == {"event": "channel-conn-count-error", "channel": "price", "connCount": "3", "connId": ack["connId"]}
    # the rejected subscription delivers nothing; the others keep receiving
    assert [m for m in await c4.collect(0.6) if "data" in m] == []
    await conns[2].recv(data_of("price"), timeout=3)
    # price, candle and trades are counted separately; all candle bars are one candle channel
    c4.send({"op": "subscribe", "args": [tok("trades"), tok("dex-token-candle1m"), tok("dex-token-candle5m")]})
    events = [await c4.recv(ev("subscribe", "channel-conn-count", "channel-conn-count-error")) for _ in range(5)]
    counts = [e for e in events if e["event"] == "channel-conn-count"]
    assert [(e["channel"], e["connCount"]) for e in counts] == [("trades", "1"), ("dex-token-candle1m", "1")]
    assert vs.channel_conn_count(KEY, "candle") == 1
    # a connection leaving frees its slot
    conns[0].close()
    await asyncio.sleep(0.1)
    assert vs.channel_conn_count(KEY, "price") == 2
    c4.send({"op": "subscribe", "args": [tok("price")]})
    await c4.recv(ev("subscribe"))
    assert (await c4.recv(ev("channel-conn-count")))["connCount"] == "3"
    # another API key has its own budget
    _, vs2, url2 = await make_sim(max_conn_per_channel=1, api_keys={"k2": ["s2", "p2"]})
    for key, secret, pw in ((KEY, SECRET, PASSPHRASE), ("k2", "s2", "p2")):
        c = await connect(url2)
        c.send(login_frame(key, secret, pw))
        await c.recv(ev("login"))
        c.send({"op": "subscribe", "args": [tok("price")]})
        await c.recv(ev("subscribe"))
        assert (await c.recv())["event"] == "channel-conn-count"


async def test_connection_rate_per_ip_and_per_key(make_sim):
    _, vs, url = await make_sim(conn_limit=3, key_conn_limit=3)
    for _ in range(3):
        await connect(url, ip="10.1.1.1")
    with pytest.raises(picows.WSHandshakeError) as ei:
        await connect(url, ip="10.1.1.1")
    assert ei.value.response.status == 429
    # per API key: the 4th new connection of one key within a second is refused at login
    cs = [await connect(url, ip=f"10.2.2.{i}") for i in range(4)]
    for c in cs[:3]:
        await login(c)
    cs[3].send(login_frame())
    m = await cs[3].recv()
    assert m["event"] == "error" and m["code"] == "60014"
    await asyncio.sleep(1.05)
    await login(cs[3])


async def test_480_requests_per_hour(make_sim):
    _, vs, url = await make_sim(request_limit=3)
    c = await connect(url)
    await login(c)
    c.send({"op": "subscribe", "args": [tok("price")]})
    await c.recv(ev("subscribe"))
    c.send({"op": "unsubscribe", "args": [tok("price")]})
    await c.recv(ev("unsubscribe"))
    c.send(b"ping")
    assert await c.recv_raw() == b"pong"
    c.send({"id": "x9", "op": "subscribe", "args": [tok("price")]})
    m = await c.recv(ev("error", "subscribe"))
    assert m["code"] == "60014" and m["id"] == "x9"


async def test_30_second_rule(make_sim):
    _, vs, url = await make_sim(idle_close_s=0.3, idle_check_s=0.05, trades_per_s=0)
    idle = await connect(url)
    authed = await connect(url)
    await login(authed)  # logged in, never subscribed
    quiet = await connect(url)
    await login(quiet)
    quiet.send({"op": "subscribe", "args": [tok("price")]})  # no trades -> no pushes
    kept = await connect(url)
    await login(kept)
    kept.send({"op": "subscribe", "args": [tok("price")]})
    for _ in range(7):
        kept.send(b"ping")
        await asyncio.sleep(0.1)
    for c in (idle, authed, quiet):
        await asyncio.wait_for(c.closed.wait(), 1)
        assert c.close_code == 4004 and c.close_reason == "No data received in 30s."
    assert not kept.closed.is_set()


async def test_notice_then_close(make_sim):
    _, vs, url = await make_sim(notice_lead_s=0.15)
    c = await connect(url)
    await login(c)
    vs.inject("notice")
    t0 = time.monotonic()
    m = await c.recv()
    assert m == {"event": "notice", "code": "64008",
                 "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                 "connId": m["connId"]}
    await asyncio.wait_for(c.closed.wait(), 1)
    assert c.close_code == 1001 and time.monotonic() - t0 >= 0.12
    _, vs, url = await make_sim(notice_every_s=0.2, notice_lead_s=0.1)
    c = await connect(url)
    assert (await c.recv(timeout=1))["event"] == "notice"
    await asyncio.wait_for(c.closed.wait(), 1)


async def test_signal_and_tracker_channels(make_sim):
    _, vs, url = await make_sim(signal_interval_ms=50, tracker_interval_ms=50, memepump_interval_ms=50,
                                signal_prob=1.0, signal_percent_suffix="Percentage", max_wallet_args=2)
    c = await connect(url)
    await login(c)
    wallet = "0x" + "12" * 20
    c.send({"op": "subscribe", "args": [
        {"channel": "dex-market-new-signal-openapi", "chainIndex": "501"},
        {"channel": "kol_smartmoney-tracker-activity"},
        {"channel": "address-tracker-activity", "walletAddress": wallet},
        {"channel": "dex-market-memepump-new-token-openapi", "chainIndex": "501"},
        {"channel": "dex-market-memepump-update-metrics-openapi", "chainIndex": "56"}]})
    first: dict[str, dict] = {}
    async with asyncio.timeout(4):
        while len(first) < 5:
            m = await c.recv(lambda x: "data" in x)
            first.setdefault(m["arg"]["channel"], m)
    sig = first["dex-market-new-signal-openapi"]["data"][0]
    assert sig["chainIndex"] == "501" and "top10HolderPercentage" in sig["token"] and "soldRatioPercentage" in sig
    assert set(sig["walletType"].split(",")) <= {"1", "2", "3"}
    assert int(sig["triggerWalletCount"]) == len(sig["triggerWalletAddress"].split(","))
    kol = first["kol_smartmoney-tracker-activity"]["data"][0]
    assert kol["tradeType"] in ("1", "2") and set(kol["trackerType"]) <= {1, 2}
    addr = first["address-tracker-activity"]
    assert addr["arg"] == {"channel": "address-tracker-activity", "walletAddress": wallet}
    assert addr["data"][0]["walletAddress"] == wallet
    meme = first["dex-market-memepump-new-token-openapi"]["data"][0]
    assert {"protocolId", "tokenContractAddress", "market", "bondingPercent", "tags", "social"} <= set(meme)
    upd = first["dex-market-memepump-update-metrics-openapi"]["data"]
    assert len(upd) >= 2 and all("mayhemModeTimeRemaining" in x for x in upd)
    # at most max_wallet_args addresses per connection
    c.send({"op": "subscribe", "args": [{"channel": "address-tracker-activity", "walletAddress": "0x" + "34" * 20},
                                        {"channel": "address-tracker-activity", "walletAddress": "0x" + "56" * 20}]})
    evs = [await c.recv(ev("subscribe", "error")) for _ in range(2)]
    assert [e["event"] for e in evs] == ["subscribe", "error"] and evs[1]["code"] == "60013"


async def test_faults(make_sim):
    _, vs, url = await make_sim()
    a = await connect(url)
    b = await connect(url)
    vs.inject("close-4004")
    for c in (a, b):
        await asyncio.wait_for(c.closed.wait(), 1)
        assert c.close_code == 4004
    c = await connect(url)
    vs.inject("drop")
    await asyncio.wait_for(c.closed.wait(), 1)
    vs.inject("reject-connect=2")
    for _ in range(2):
        with pytest.raises(picows.WSHandshakeError):
            await connect(url)
    await connect(url)


async def test_conn_count_label_plays_the_docs_prices_variant(make_sim):
    """Seed 000's example names the channel ``prices``; the channel is ``price``: both are playable."""
    _, vs, url = await make_sim(conn_count_labels={"price": "prices"})
    c = await connect(url)
    await login(c)
    c.send({"op": "subscribe", "args": [tok("price")]})
    assert (await c.recv())["event"] == "subscribe"
    cnt = await c.recv()
    assert cnt["event"] == "channel-conn-count" and cnt["channel"] == "prices" and cnt["connCount"] == "1"
