"""The Bybit simulator's private side: a simulated account that trades on the public prints.

Raw picows client only (no tickwire client code); expectations from protocols/bybit.md §8.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from tickwire.sim.bybit import BybitSim

from ._client import RawClient

D = Decimal


def sign(secret: str, expires: Any) -> str:
    return hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def make_sim(sim_factory):
    return sim_factory(BybitSim)


async def authed(base: str, key: str = "sim-key", secret: str = "sim-secret", query: str = "") -> RawClient:
    c = await RawClient.connect(base + "/v5/private" + query)
    exp = int(time.time() * 1000) + 10_000
    c.send({"op": "auth", "args": [key, exp, sign(secret, exp)]})
    m = await c.recv()
    assert m["success"] is True, m
    return c


def by_topic(frames: list[bytes]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for f in frames:
        m = json.loads(f)
        if "topic" in m:
            out[m["topic"]].append(m)
    return out


def test_capability_flags():
    assert BybitSim.PRIVATE_PUSHES is True and BybitSim.REST is True


async def test_account_pushes_consistent_orders_fills_positions_wallet(make_sim):
    sim, vs, base = await make_sim(speed=4, private_orders_per_s=3, private_race_prob=0.5)
    pub = await RawClient.connect(base + "/v5/public/linear")
    pub.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT", "publicTrade.ETHUSDT"]})
    spot = await RawClient.connect(base + "/v5/public/spot")
    spot.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"]})
    c = await authed(base)
    c.send({"op": "subscribe", "req_id": "all", "args": ["order", "execution", "execution.fast", "position",
                                                          "wallet", "greeks"]})
    ack = await c.recv()
    assert ack["success"] is True and ack["req_id"] == "all"
    cat = await authed(base)
    cat.send({"op": "subscribe", "args": ["order.spot", "execution.linear", "execution.fast.linear",
                                          "position.linear"]})
    assert (await cat.recv())["success"] is True
    acct = vs.account("sim-key")
    frames: list[bytes] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the account went through every state (load-proof)
        frames += await c.collect(1.0)
        seen = {o["orderStatus"] for o in acct.orders}
        if len(acct.executions) >= 8 and {"New", "PartiallyFilled", "Filled"} <= seen:
            break
    frames += await c.collect(0.3)
    got = by_topic(frames)
    # envelope
    for topic in ("order", "execution", "position", "wallet"):
        assert got[topic], f"no {topic} push"
        for m in got[topic]:
            assert set(m) == {"id", "topic", "creationTime", "data"} and isinstance(m["creationTime"], int)
    assert all(set(m) == {"topic", "creationTime", "data"} for m in got["execution.fast"])
    orders = [it for m in got["order"] for it in m["data"]]
    execs = [it for m in got["execution"] for it in m["data"]]
    fast = [it for m in got["execution.fast"] for it in m["data"]]
    # what was pushed is the ground truth, in order
    assert orders == acct.orders[: len(orders)] and len(orders) >= 5
    assert execs == acct.executions[: len(execs)] and len(execs) >= 5
    n = min(len(fast), len(execs))  # the last frames may still be in flight
    assert [e["execId"] for e in fast[:n]] == [e["execId"] for e in execs[:n]] and n >= len(execs) - 5
    assert set(fast[0]) == {"category", "symbol", "execId", "execPrice", "execQty", "orderId", "isMaker",
                            "orderLinkId", "side", "execTime", "seq"}
    # execId unique; every fill is a public print of the same symbol (same id, price, time, seq)
    assert len({e["execId"] for e in execs}) == len(execs)
    prints = {}
    for f in pub.drain() + spot.drain():
        m = json.loads(f)
        if m.get("topic", "").startswith("publicTrade."):
            for t in m["data"]:
                prints[t["i"]] = t
    checked = 0
    for e in execs:
        if e["category"] not in ("linear", "spot") or e["symbol"] not in ("BTCUSDT", "ETHUSDT"):
            continue
        if e["category"] == "spot" and e["symbol"] != "BTCUSDT":
            continue
        t = prints.get(e["execId"])
        if t is None:
            continue  # pushed before the public client subscribed
        checked += 1
        assert (t["s"], t["p"], t["T"], t["seq"]) == (e["symbol"], e["execPrice"], int(e["execTime"]), e["seq"])
        assert D(e["execQty"]) <= D(t["v"])
        assert e["isMaker"] == (t["S"] != e["side"])
    assert checked >= 3
    # order lifecycle: New first, cumExecQty == sum of its fills, Filled when all filled
    per_order: dict[str, list[dict]] = defaultdict(list)
    for o in orders:
        per_order[o["orderId"]].append(o)
    fills: dict[str, D] = defaultdict(D)
    for e in execs:
        fills[e["orderId"]] += D(e["execQty"])
    statuses = set()
    for oid, ups in per_order.items():
        if ups[0]["orderStatus"] == "New":
            last = ups[-1]
            statuses.update(u["orderStatus"] for u in ups)
            if last["orderStatus"] in ("Filled", "PartiallyFilled"):
                assert D(last["cumExecQty"]) == fills[oid]
            if last["orderStatus"] == "Filled":
                assert D(last["cumExecQty"]) == D(last["qty"]) and last["leavesQty"] == "0"
    assert {"New", "PartiallyFilled", "Filled"} <= statuses
    races = [oid for oid, ups in per_order.items() if [u["orderStatus"] for u in ups[-2:]] == ["Filled", "Filled"]]
    for oid in races:
        second = per_order[oid][-1]
        assert second["cancelType"] == "CancelByUser" and second["rejectReason"] == "EC_OrigClOrdIDDoesNotExist"
    # a fill moves the position: the last position push per symbol = the signed sum of all fills
    net: dict[tuple[str, str], D] = defaultdict(D)
    for e in acct.executions:
        if e["category"] != "spot":
            net[(e["category"], e["symbol"])] += D(e["execQty"]) * (1 if e["side"] == "Buy" else -1)
    last_pos = {}
    for p in acct.positions_log:
        last_pos[(p["category"], p["symbol"])] = p
    for key, n in net.items():
        p = last_pos[key]
        signed = D(p["size"]) * (1 if p["side"] == "Buy" else -1 if p["side"] == "Sell" else 0)
        assert signed == n, key
    assert not any(p["category"] == "spot" for p in acct.positions_log)  # no position.spot
    # ...and the wallet: BTC = start + spot buys - spot sells - spot fees paid in BTC
    # + the inverse BTCUSD contract's realised PnL - its fees (it settles in BTC)
    btc, n = D(2), 0
    for e in acct.executions:
        if e["category"] == "spot" and e["symbol"] == "BTCUSDT":
            q = D(e["execQty"])
            btc += q if e["side"] == "Buy" else -q
            if e["feeCurrency"] == "BTC":
                btc -= D(e["execFee"])
            n += 1
        elif e["category"] == "inverse" and e["symbol"] == "BTCUSD":
            btc += D(e["execPnl"]) - D(e["execFee"])
            n += 1
    coin = {x["coin"]: x for x in acct.wallet_log[-1]["coin"]}
    assert abs(D(coin["BTC"]["walletBalance"]) - btc) <= D("0.00000001") * (n + 1)
    # categorised topics carry only their category, under their own topic name
    got2 = by_topic(cat.drain())
    assert set(got2) <= {"order.spot", "execution.linear", "execution.fast.linear", "position.linear"}
    assert got2["execution.linear"] and all(it["category"] == "linear" for m in got2["execution.linear"]
                                            for it in m["data"])
    assert all(it["category"] == "spot" for m in got2.get("order.spot", []) for it in m["data"])


async def test_no_push_without_subscription_and_unsubscribe_stops(make_sim):
    _, vs, base = await make_sim(speed=4, private_orders_per_s=4)
    c = await authed(base)
    await c.collect(0.5)
    assert vs.account("sim-key").orders == []  # nobody subscribed: the account is idle
    c.send({"op": "subscribe", "args": ["order"]})
    assert (await c.recv())["success"] is True
    first = await c.recv(lambda m: m.get("topic") == "order", timeout=3)
    assert first["data"][0]["orderStatus"] == "New"
    c.send({"op": "unsubscribe", "args": ["order"]})
    await c.recv(lambda m: m.get("op") == "unsubscribe", timeout=3)
    n = len(vs.account("sim-key").orders)
    await c.collect(0.5)
    assert len(vs.account("sim-key").orders) == n and vs.account("sim-key").subscribers() == {}


async def test_private_refusals_and_pong(make_sim):
    _, vs, base = await make_sim()
    c = await RawClient.connect(base + "/v5/private")
    exp = int(time.time() * 1000) + 5000
    c.send({"op": "auth", "args": ["sim-key", exp, sign("wrong-secret", exp)]})
    m = await c.recv()
    assert m["success"] is False and m["ret_msg"] == "Params Error" and m["op"] == "auth"
    past = int(time.time() * 1000) - 10
    c.send({"op": "auth", "args": ["sim-key", past, sign("sim-secret", past)]})
    assert (await c.recv())["ret_msg"] == "Params Error"
    c.send({"op": "subscribe", "args": ["position.spot"]})  # before auth
    assert (await c.recv())["ret_msg"] == "Request not authorized"
    c.send({"req_id": "p1", "op": "ping"})
    m = await c.recv()
    assert m["op"] == "pong" and m["req_id"] == "p1" and isinstance(m["args"][0], str) and m["args"][0].isdigit()
    d = await authed(base)
    d.send({"op": "subscribe", "args": ["position.spot"]})
    assert (await d.recv())["ret_msg"] == "error:handler not found,topic:position.spot"
    d.send({"op": "subscribe", "args": ["order", "order.linear"]})
    assert (await d.recv())["success"] is False  # all-in-one and categorised never in one request


async def test_max_active_time_counts_pushes(make_sim):
    _, vs, base = await make_sim(private_sweep_s=0.05, max_active_time_min_s=0.2, speed=4, private_orders_per_s=20)
    quiet = await authed(base, query="?max_active_time=0.3s")
    busy = await authed(base, query="?max_active_time=0.3s")
    busy.send({"op": "subscribe", "args": ["order"]})
    await quiet.closed.wait()
    assert not busy.closed.is_set()
