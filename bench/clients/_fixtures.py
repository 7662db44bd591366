"""Instrument metadata the peers would otherwise fetch over REST, generated here (stdlib only).

The shapes follow the venues' public REST answers (Bybit ``GET /v5/market/instruments-info``,
OKX ``GET /api/v5/public/instruments``); the values describe the two instruments the benchmark
streams (Bybit linear BTCUSDT perpetual, tick 0.10 / step 0.001; OKX spot BTC-USDT, tick 0.1 /
lot 1e-8). Peers get them through their own parsers, so no REST call leaves the process.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

SERVER_TIME_MS = 1_760_000_000_000


def bybit_instrument_linear_btcusdt() -> dict[str, Any]:
    return {
        "symbol": "BTCUSDT",
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": "BTC",
        "quoteCoin": "USDT",
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": "2",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
        "lotSizeFilter": {
            "maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
            "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000", "minNotionalValue": "5",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": "USDT",
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
    }


def bybit_instruments_info(category: str) -> dict[str, Any]:
    """Response of ``/v5/market/instruments-info?category=...`` (BTCUSDT only in linear)."""
    lst = [bybit_instrument_linear_btcusdt()] if category == "linear" else []
    return {"retCode": 0, "retMsg": "OK", "result": {"category": category, "list": lst},
            "retExtInfo": {}, "time": SERVER_TIME_MS}


def okx_instrument_spot_btcusdt() -> dict[str, Any]:
    return {
        "instType": "SPOT", "instId": "BTC-USDT", "uly": "", "instFamily": "",
        "baseCcy": "BTC", "quoteCcy": "USDT", "settleCcy": "", "ctVal": "", "ctMult": "",
        "ctValCcy": "", "optType": "", "stk": "", "listTime": "1548133413000", "expTime": "",
        "lever": "10", "tickSz": "0.1", "lotSz": "0.00000001", "minSz": "0.00001", "ctType": "",
        "alias": "", "state": "live", "ruleType": "normal", "maxLmtSz": "9999999999",
        "maxMktSz": "1000000", "maxLmtAmt": "20000000", "maxMktAmt": "1000000",
        "maxTwapSz": "9999999999", "maxIcebergSz": "9999999999", "maxTriggerSz": "9999999999",
        "maxStopSz": "1000000",
    }


def okx_instruments(inst_type: str) -> dict[str, Any]:
    """Response of ``/api/v5/public/instruments?instType=...`` (BTC-USDT only in SPOT)."""
    data = [okx_instrument_spot_btcusdt()] if inst_type == "SPOT" else []
    return {"code": "0", "msg": "", "data": data}


def rest_answer(url: str) -> Any:
    """Answer a REST GET the way the venue would, for the few metadata routes peers call.

    Raises for anything else, so an unexpected REST call is visible rather than silently faked.
    """
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if parts.path == "/v5/market/instruments-info":
        if q.get("cursor"):
            return bybit_instruments_info("none")
        return bybit_instruments_info(q.get("category", ""))
    if parts.path == "/api/v5/public/instruments":
        return okx_instruments(q.get("instType", ""))
    if parts.path in ("/v5/market/time",):
        return {"retCode": 0, "retMsg": "OK", "result": {"timeSecond": str(SERVER_TIME_MS // 1000),
                "timeNano": str(SERVER_TIME_MS * 1_000_000)}, "time": SERVER_TIME_MS}
    if parts.path in ("/api/v5/public/time",):
        return {"code": "0", "msg": "", "data": [{"ts": str(SERVER_TIME_MS)}]}
    raise RuntimeError(f"bench fixture: unexpected REST call {url}")
