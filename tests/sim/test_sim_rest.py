"""Each venue simulator's public REST endpoints (instrument lists, server time) on its WebSocket port."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

from tickwire.sim import Simulator


def get(url: str) -> tuple[int, dict | list, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


async def test_rest_instruments_and_time_match_the_simulated_market():
    async with Simulator(venues=["bybit", "okx", "bge"]) as sim:
        by, okx, bge = (sim.venue(v).rest_url for v in ("bybit", "okx", "bge"))
        now = time.time() * 1000
        # Bybit
        st, r, h = await asyncio.to_thread(get, by + "/v5/market/time")
        assert st == 200 and r["retCode"] == 0 and abs(int(r["result"]["timeSecond"]) * 1000 - now) < 5000
        assert h["Connection"] == "close" and h["Content-Type"] == "application/json"
        st, r, _ = await asyncio.to_thread(get, by + "/v5/market/instruments-info?category=linear&symbol=BTCUSDT")
        (it,) = r["result"]["list"]
        spec = sim.venue("bybit").market("linear", "BTCUSDT").spec
        assert it["priceFilter"]["tickSize"] == spec.tick == "0.10" and it["lotSizeFilter"]["qtyStep"] == spec.lot
        assert it["contractType"] == "LinearPerpetual" and it["settleCoin"] == "USDT"
        _, r, _ = await asyncio.to_thread(get, by + "/v5/market/instruments-info?category=spot")
        assert {i["symbol"] for i in r["result"]["list"]} >= {"BTCUSDT", "ETHUSDT"}
        btc = next(i for i in r["result"]["list"] if i["symbol"] == "BTCUSDT")
        assert btc["lotSizeFilter"]["basePrecision"] == sim.venue("bybit").market("spot", "BTCUSDT").spec.lot
        _, r, _ = await asyncio.to_thread(get, by + "/v5/market/instruments-info?category=inverse")
        assert r["result"]["list"][0]["contractType"] == "InversePerpetual"
        _, r, _ = await asyncio.to_thread(get, by + "/v5/market/instruments-info?category=option&baseCoin=ETH")
        assert r["result"]["list"] and all(i["baseCoin"] == "ETH" for i in r["result"]["list"])
        _, r, _ = await asyncio.to_thread(get, by + "/v5/market/instruments-info?category=nope")
        assert r["retCode"] == 10001
        st, _, _ = await asyncio.to_thread(get, by + "/v5/nope")
        assert st == 404
        # OKX
        _, r, _ = await asyncio.to_thread(get, okx + "/api/v5/public/instruments?instType=SWAP")
        swaps = {i["instId"]: i for i in r["data"]}
        assert swaps["BTC-USDT-SWAP"]["ctVal"] == "0.01" and swaps["BTC-USDT-SWAP"]["tickSz"] == "0.1"
        assert swaps["BTC-USD-SWAP"]["ctType"] == "inverse" and swaps["BTC-USD-SWAP"]["settleCcy"] == "BTC"
        _, r, _ = await asyncio.to_thread(get, okx + "/api/v5/public/instruments?instType=OPTION")
        assert r["code"] == "50014"
        _, r, _ = await asyncio.to_thread(get, okx + "/api/v5/public/instruments?instType=OPTION&uly=BTC-USD")
        assert {i["optType"] for i in r["data"]} == {"C", "P"}
        _, r, _ = await asyncio.to_thread(get, okx + "/api/v5/public/time")
        assert abs(int(r["data"][0]["ts"]) - now) < 5000
        # BG Exchange
        _, r, _ = await asyncio.to_thread(get, bge + "/openapi/exchange/public/time")
        assert abs(r["timestamp"] - now) < 5000 and r["iso"].endswith("Z")
        _, r, _ = await asyncio.to_thread(get, bge + "/v1/products/BTC_USDT")
        spec = sim.venue("bge").spec_for("BTC_USDT")
        assert r[0]["trade_precision"] == str(spec.price_scale) and r[0]["amount_precision"] == str(spec.qty_scale)
        _, r, _ = await asyncio.to_thread(get, bge + "/hk/v1/products")
        assert len(r) == len(sim.venue("bge").products)
        st, r, _ = await asyncio.to_thread(get, bge + "/v1/products/NOPE_USDT")
        assert st == 400 and r == {"code": 1087, "message": "No data found"}
        assert sim.venue("bybit").stats.rest_requests >= 7


async def test_bybit_private_reads_check_the_api_key():
    async with Simulator(venues=["bybit"]) as sim:
        base = sim.venue("bybit").rest_url

        def get_with(path: str, key: str | None) -> dict:
            req = urllib.request.Request(base + path, headers={"X-BAPI-API-KEY": key} if key else {})
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())

        assert (await asyncio.to_thread(get_with, "/v5/account/info", None))["retCode"] == 10003
        r = await asyncio.to_thread(get_with, "/v5/account/info", "sim-key")
        assert r["retCode"] == 0 and r["result"]["unifiedMarginStatus"] == 6
        r = await asyncio.to_thread(get_with, "/v5/position/list?category=linear&settleCoin=USDT", "sim-key")
        assert r["retCode"] == 0 and r["result"]["category"] == "linear"
        r = await asyncio.to_thread(get_with, "/v5/account/wallet-balance?accountType=UNIFIED", "sim-key")
        assert r["result"]["list"][0]["accountType"] == "UNIFIED"
