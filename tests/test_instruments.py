"""Instrument metadata: the venues' REST mappers on doc-shaped payloads, unified symbols, and the
loader (paging, caching, refresh, lazy/eager, failures, proxy, never blocking) against a small
REST server on 127.0.0.1 written here."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest

import tickwire
from tickwire import instruments as inst_mod
from tickwire.instruments import Instrument, derive_usymbol
from tickwire.model import Trade, VenueError
from tickwire.venues import parse
from tickwire.venues.bge import instruments as bge
from tickwire.venues.bybit import instruments as bybit
from tickwire.venues.okx import instruments as okx

from .test_http_rest import HttpProxy

# -- doc-shaped payloads ------------------------------------------------------------------------

# Bybit docs, "Get Instruments Info" response examples (linear BTCUSDT, spot BTCUSDT, option).
BYBIT_LINEAR_ITEM = {
    "symbol": "BTCUSDT", "symbolId": 5, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": "BTC",
    "quoteCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": "2",
    "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                      "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000", "minNotionalValue": "5"},
    "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT", "copyTrading": "both",
    "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False, "preListingInfo": None,
    "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"}, "symbolType": ""}
# The same shape for an inverse future (its delivery day is not in its name).
BYBIT_INVERSE_FUTURE = {
    **BYBIT_LINEAR_ITEM, "symbol": "BTCUSDH26", "contractType": "InverseFutures", "quoteCoin": "USD",
    "settleCoin": "BTC", "deliveryTime": "1774598400000",
    "priceFilter": {"minPrice": "0.50", "maxPrice": "999999.00", "tickSize": "0.50"},
    "lotSizeFilter": {"maxOrderQty": "1000000", "minOrderQty": "1", "qtyStep": "1"}}
BYBIT_SPOT = {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": [{
    "symbolId": 9, "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "innovation": "0", "status": "Trading",
    "marginTrading": "utaOnly", "stTag": "0",
    "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.0000001", "minOrderQty": "0.000011",
                      "maxOrderQty": "83", "minOrderAmt": "5", "maxOrderAmt": "8000000", "maxLimitOrderQty": "83",
                      "maxMarketOrderQty": "41.5", "postOnlyMaxLimitOrderSize": "60000"},
    "priceFilter": {"tickSize": "0.1"}, "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
    "symbolType": ""}]}, "retExtInfo": {}, "time": 1760027412300}
BYBIT_OPTION = {"retCode": 0, "retMsg": "OK", "result": {"category": "option", "nextPageCursor": "", "list": [{
    "symbol": "BTC-27MAR26-70000-P-USDT", "status": "Trading", "baseCoin": "BTC", "quoteCoin": "USDT",
    "settleCoin": "USDT", "optionsType": "Put", "launchTime": "1743669649256", "deliveryTime": "1774598400000",
    "deliveryFeeRate": "0.00015", "priceFilter": {"minPrice": "5", "maxPrice": "1110000", "tickSize": "5"},
    "lotSizeFilter": {"maxOrderQty": "500", "minOrderQty": "0.01", "qtyStep": "0.01"},
    "displayName": "BTCUSDT-27MAR26-70000-P"}]}, "retExtInfo": {}, "time": 1672712537130}


def bybit_page(category, items, cursor=""):
    return {"retCode": 0, "retMsg": "OK", "result": {"category": category, "list": items, "nextPageCursor": cursor},
            "retExtInfo": {}, "time": 1735809771618}


# OKX GET /api/v5/public/instruments (the schema okx.md lists for the instruments channel).
def okx_item(**kw):
    base = {"instType": "", "instId": "", "uly": "", "instFamily": "", "baseCcy": "", "quoteCcy": "", "settleCcy": "",
            "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "", "stk": "", "listTime": "1606468572000",
            "expTime": "", "lever": "", "tickSz": "", "lotSz": "", "minSz": "", "ctType": "", "state": "live",
            "ruleType": "normal", "maxLmtSz": "10000"}
    return {**base, **kw}


OKX_ITEMS = [
    okx_item(instType="SPOT", instId="BTC-USDT", baseCcy="BTC", quoteCcy="USDT", tickSz="0.1", lotSz="0.00000001",
             minSz="0.00001"),
    okx_item(instType="SWAP", instId="BTC-USDT-SWAP", uly="BTC-USDT", instFamily="BTC-USDT", settleCcy="USDT",
             ctVal="0.01", ctMult="1", ctValCcy="BTC", tickSz="0.1", lotSz="0.01", minSz="0.01", ctType="linear"),
    okx_item(instType="SWAP", instId="BTC-USD-SWAP", uly="BTC-USD", instFamily="BTC-USD", settleCcy="BTC",
             ctVal="100", ctMult="1", ctValCcy="USD", tickSz="0.1", lotSz="1", minSz="1", ctType="inverse"),
    okx_item(instType="FUTURES", instId="BTC-USD-261225", uly="BTC-USD", instFamily="BTC-USD", settleCcy="BTC",
             ctVal="100", ctMult="1", ctValCcy="USD", expTime="1798185600000", tickSz="0.1", lotSz="1", minSz="1",
             ctType="inverse"),
    okx_item(instType="OPTION", instId="BTC-USD-261225-100000-C", uly="BTC-USD", instFamily="BTC-USD",
             settleCcy="BTC", ctVal="0.01", ctMult="1", ctValCcy="BTC", optType="C", stk="100000",
             expTime="1798185600000", tickSz="0.0005", lotSz="1", minSz="1"),
]

# BGE docs, "Obtaining All Known Trading Products" (GET /v1/products).
BGE_PRODUCTS = [{"product": "ETH_USD", "base_currency": "ETH", "quote_currency": "USD", "display_name": "ETH_USD",
                 "status": "on", "maker_fees_rate": "0.01", "taker_fees_rate": "0.02", "quote_precision": "5",
                 "trade_precision": "8", "amount_precision": "6", "max_buy_price_rate": "1.000000",
                 "max_sell_price_rate": "1.000000", "max_trade_usd_per_order": "", "min_trade_usd_per_order": "",
                 "max_market_taker_trade_rate": "1.000000", "min_market_taker_trade_rate": "1.000000",
                 "max_market_trade_usd_per_order": "", "min_market_trade_usd_per_order": ""}]


# -- mappers ----------------------------------------------------------------------------------

def _map(mod, body, path):
    items, nxt, ctx = mod.unpack(body, path)
    return [mod.to_instrument(x, ctx) for x in items], nxt


def test_bybit_mapper_on_the_docs_shapes():
    (lin,), nxt = _map(bybit, bybit_page("linear", [BYBIT_LINEAR_ITEM], "c1"), bybit.category_path("linear"))
    assert nxt == "/v5/market/instruments-info?category=linear&limit=1000&cursor=c1"
    assert (lin.usymbol, lin.type, lin.base, lin.quote, lin.settle, lin.linear) == (
        "BTC/USDT:USDT", "swap", "BTC", "USDT", "USDT", True)
    assert (lin.tick_size, lin.lot_size, lin.min_size, lin.contract_value, lin.contract_currency, lin.multiplier,
            lin.expiry_ns, lin.status) == ("0.10", "0.001", "0.001", "1", "BTC", "1", None, "Trading")
    assert lin.raw == BYBIT_LINEAR_ITEM
    (fut,), nxt = _map(bybit, bybit_page("inverse", [BYBIT_INVERSE_FUTURE]), bybit.category_path("inverse"))
    assert nxt is None and (fut.market, fut.usymbol, fut.type, fut.settle, fut.linear, fut.contract_currency) == (
        "inverse", "BTC/USD:BTC-260327", "future", "BTC", False, "USD")
    assert fut.expiry_ns == 1774598400000 * 10**6
    (spot,), nxt = _map(bybit, BYBIT_SPOT, bybit.category_path("spot"))
    assert nxt is None and (spot.usymbol, spot.type, spot.tick_size, spot.lot_size, spot.min_size, spot.settle) == (
        "BTC/USDT", "spot", "0.1", "0.000001", "0.000011", "")
    (opt,), _ = _map(bybit, BYBIT_OPTION, bybit.category_path("option", "BTC"))
    assert (opt.usymbol, opt.type, opt.strike, opt.option_type, opt.tick_size, opt.lot_size) == (
        "BTC/USDT:USDT-260327-70000-P", "option", "70000", "put", "5", "0.01")
    with pytest.raises(ValueError, match="10001"):
        bybit.unpack({"retCode": 10001, "retMsg": "params error", "result": {}}, bybit.category_path("linear"))


def test_okx_mapper_on_the_docs_shapes():
    got, nxt = _map(okx, {"code": "0", "msg": "", "data": OKX_ITEMS}, "/api/v5/public/instruments?instType=SWAP")
    assert nxt is None
    spot, lin, inv, fut, opt = got
    assert (spot.market, spot.usymbol, spot.type, spot.tick_size, spot.lot_size, spot.min_size) == (
        "spot", "BTC/USDT", "spot", "0.1", "0.00000001", "0.00001")
    assert (lin.market, lin.usymbol, lin.linear, lin.contract_value, lin.contract_currency, lin.multiplier) == (
        "swap", "BTC/USDT:USDT", True, "0.01", "BTC", "1")
    assert (inv.usymbol, inv.linear, inv.contract_value, inv.contract_currency, inv.settle) == (
        "BTC/USD:BTC", False, "100", "USD", "BTC")
    assert (fut.usymbol, fut.type, fut.expiry_ns) == ("BTC/USD:BTC-261225", "future", 1798185600000 * 10**6)
    assert (opt.usymbol, opt.strike, opt.option_type) == ("BTC/USD:BTC-261225-100000-C", "100000", "call")
    with pytest.raises(ValueError, match="51001"):
        okx.unpack({"code": "51001", "msg": "Instrument ID does not exist", "data": []}, "/x")


def test_bge_mapper_on_the_docs_shape():
    (eth,), _ = _map(bge, BGE_PRODUCTS, bge.PATH)
    assert (eth.venue, eth.market, eth.symbol, eth.usymbol, eth.tick_size, eth.lot_size, eth.status) == (
        "bge", "spot", "ETH_USD", "ETH/USD", "0.00000001", "0.000001", "on")
    (again,), _ = _map(bge, {"code": 200, "data": BGE_PRODUCTS, "message": "OK"}, bge.PATH)
    assert again == eth
    assert bge.rest_root(None, "mainnet") == "https://api.bg.exchange/hk"
    assert bge.rest_root("ws://127.0.0.1:7/v2/ws", "mainnet") == "http://127.0.0.1:7/hk"


@pytest.mark.parametrize("venue,market,symbol,usym", [
    ("bybit", "spot", "BTCUSDT", "BTC/USDT"),
    ("bybit", "spot", "ETHBTC", "ETH/BTC"),
    ("bybit", "spot", "XYZABC", ""),                       # unknown quote: from the list only
    ("bybit", "linear", "BTCUSDT", "BTC/USDT:USDT"),
    ("bybit", "linear", "BTCPERP", "BTC/USDC:USDC"),
    ("bybit", "linear", "BTC-26DEC25", "BTC/USDC:USDC-251226"),
    ("bybit", "linear", "BTCUSDT-26DEC25", "BTC/USDT:USDT-251226"),
    ("bybit", "inverse", "BTCUSD", "BTC/USD:BTC"),
    ("bybit", "inverse", "BTCUSDH26", ""),                 # the delivery day is not in the name
    ("bybit", "option", "BTC-27MAR26-70000-P-USDT", "BTC/USDT:USDT-260327-70000-P"),
    ("bybit", "option", "ETH-3JAN23-1250-P", "ETH/USDC:USDC-230103-1250-P"),
    ("bybit", "", "ANY", ""),
    ("okx", "spot", "BTC-USDT", "BTC/USDT"),
    ("okx", "swap", "BTC-USDT-SWAP", "BTC/USDT:USDT"),
    ("okx", "swap", "BTC-USD-SWAP", "BTC/USD:BTC"),
    ("okx", "futures", "BTC-USD-261225", "BTC/USD:BTC-261225"),
    ("okx", "", "BTC-USD-261225-100000-C", "BTC/USD:BTC-261225-100000-C"),
    ("okx", "", "ANY", ""),
    ("bge", "spot", "BTC_USDT", "BTC/USDT"),
    ("bge", "spot", "all", ""),
    ("okxdex", "", "1/0xdac17f958d2ee523a2206206994597c13d831ec7", ""),
])
def test_unified_symbols_from_the_venues_naming(venue, market, symbol, usym):
    assert derive_usymbol(venue, market, symbol) == usym


def test_every_event_has_its_unified_symbol_beside_the_native_one():
    t = Trade("1", "2", "buy", venue="bybit", market="linear", symbol="ETHUSDT")
    assert t.symbol == "ETHUSDT" and t.usymbol == "ETH/USDT:USDT"
    assert b"usymbol" not in tickwire.to_json(t)  # the encoded event is unchanged
    assert tickwire.Connected(venue="bybit").usymbol == ""


def test_paths_ask_only_for_the_lists_the_streams_need():
    subs = [parse(s) for s in ("bybit.linear:book:BTCUSDT", "bybit.spot:trades:BTCUSDT",
                               "bybit.option:orderbook.25:ETH-27MAR26-3000-C", "bybit.option:trades:BTC")]
    assert bybit.paths(subs) == [
        "/v5/market/instruments-info?category=spot",
        "/v5/market/instruments-info?category=linear&limit=1000",
        "/v5/market/instruments-info?category=option&limit=1000&baseCoin=BTC",
        "/v5/market/instruments-info?category=option&limit=1000&baseCoin=ETH",
    ]
    assert bybit.paths([parse("bybit:order:ANY")]) == [
        "/v5/market/instruments-info?category=spot", "/v5/market/instruments-info?category=linear&limit=1000",
        "/v5/market/instruments-info?category=inverse&limit=1000"]
    assert bybit.paths([parse("bybit:wallet:ANY")]) == bybit.paths([parse("bybit:order:ANY")])
    assert okx.paths([parse("okx:books:BTC-USDT-SWAP"), parse("okx:trades:BTC-USD-261225-100000-C"),
                      parse("okx:tickers:BTC-USDT")]) == [
        "/api/v5/public/instruments?instType=SPOT", "/api/v5/public/instruments?instType=SWAP",
        "/api/v5/public/instruments?instType=OPTION&instFamily=BTC-USD"]
    assert okx.paths([parse("okx:orders:ANY")]) == [
        "/api/v5/public/instruments?instType=SPOT", "/api/v5/public/instruments?instType=SWAP",
        "/api/v5/public/instruments?instType=FUTURES"]
    assert bge.paths([parse("bge:fills:BTC_USDT")]) == ["/v1/products"]


# -- the loader against a REST server on 127.0.0.1 ------------------------------------------------


class RestServer:
    """HTTP/1.1 on 127.0.0.1: ``route(path, query) -> (status, body object)``. ``requests`` keeps
    each target asked for. A WebSocket upgrade is refused (404), as a REST-only host would."""

    def __init__(self, route) -> None:
        self.route = route
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None
        self.base = ""

    async def __aenter__(self) -> "RestServer":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.base = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    def asked(self, path: str) -> list[str]:
        return [r for r in self.requests if urlsplit(r).path == path]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].decode().split(" ")[1]
            if b"upgrade: websocket" in head.lower():
                status, body = 404, {"msg": "no websocket here"}
            else:
                self.requests.append(target)
                u = urlsplit(target)
                q = {k: v[-1] for k, v in parse_qs(u.query).items()}
                status, body = self.route(u.path, q)
            data = json.dumps(body).encode()
            writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (status, len(data), data))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


ETH_LINEAR = {**BYBIT_LINEAR_ITEM, "symbol": "ETHUSDT", "baseCoin": "ETH",
              "priceFilter": {"minPrice": "0.01", "maxPrice": "199999.98", "tickSize": "0.01"}}


def bybit_routes(linear_pages=None, fail_first=0):
    """Bybit: linear in pages (cursor p2, p3...), spot and inverse in one; the first ``fail_first``
    requests get 500."""
    linear_pages = linear_pages or [[BYBIT_LINEAR_ITEM], [ETH_LINEAR]]
    state = {"n": 0}

    def route(path, q):
        state["n"] += 1
        if state["n"] <= fail_first:
            return 500, {"retCode": 10016, "retMsg": "Internal error"}
        if path != "/v5/market/instruments-info":
            return 404, {"retCode": 404, "retMsg": "not found"}
        if q.get("category") == "spot":
            return 200, BYBIT_SPOT
        if q.get("category") == "inverse":
            return 200, bybit_page("inverse", [BYBIT_INVERSE_FUTURE])
        page = int((q.get("cursor") or "p1")[1:]) - 1
        nxt = f"p{page + 2}" if page + 1 < len(linear_pages) else ""
        return 200, bybit_page("linear", linear_pages[page], nxt)
    return route


@pytest.fixture(autouse=True)
def fresh_cache():
    inst_mod._CACHE.clear()
    yield
    inst_mod._CACHE.clear()


def feed_opts(server, **kw):
    return dict(endpoints={"bybit": f"ws://{server.base}"}, backoff_base_s=5.0, **kw)


async def test_lists_load_page_by_page_and_answer_feed_instrument():
    async with RestServer(bybit_routes()) as srv:
        async with tickwire.stream("bybit.linear:book:BTCUSDT", "bybit.spot:trades:BTCUSDT",
                                   "bybit.inverse:trades:BTCUSD", **feed_opts(srv, instruments=True)) as feed:
            assert await feed.load_instruments(10)
            inst = feed.instrument("bybit.linear:orderbook.50:BTCUSDT")
            assert isinstance(inst, Instrument) and inst.tick_size == "0.10" and inst.lot_size == "0.001"
            assert feed.instrument("bybit.linear:trades:ETHUSDT").tick_size == "0.01"  # from page 2
            assert feed.instrument("bybit.spot:publicTrade:BTCUSDT").usymbol == "BTC/USDT"
            assert feed.instrument(parse("bybit.inverse:trades:BTCUSDH26")).expiry_ns == 1774598400000 * 10**6
            ev = Trade("1", "1", "buy", venue="bybit", market="inverse", symbol="BTCUSDH26")
            assert feed.instrument(ev).symbol == "BTCUSDH26"
            assert ev.usymbol == "BTC/USD:BTC-260327"  # from the list: the name alone cannot say
            assert feed.instrument("bybit.linear:book:NOPEUSDT") is None
    asked = srv.asked("/v5/market/instruments-info")
    assert sorted(asked) == sorted(["/v5/market/instruments-info?category=spot",
                                    "/v5/market/instruments-info?category=linear&limit=1000",
                                    "/v5/market/instruments-info?category=linear&limit=1000&cursor=p2",
                                    "/v5/market/instruments-info?category=inverse&limit=1000"])


async def test_private_any_streams_have_no_instrument_but_their_events_do():
    async with RestServer(bybit_routes()) as srv:
        async with tickwire.stream("bybit:order:ANY", credentials={"bybit": {"api_key": "k", "secret": "s"}},
                                   **feed_opts(srv, instruments=True)) as feed:
            assert await feed.load_instruments(10)
            assert feed.instrument("bybit:order:ANY") is None
            assert feed.instrument(Trade("1", "1", "buy", venue="bybit", market="linear", symbol="BTCUSDT")).settle \
                == "USDT"


async def test_an_overridden_endpoint_loads_only_on_first_use():
    async with RestServer(bybit_routes()) as srv:
        async with tickwire.stream("bybit.linear:book:BTCUSDT", **feed_opts(srv)) as feed:
            await asyncio.sleep(0.5)
            assert srv.requests == []  # a simulator or relay that serves no REST is not asked
            assert feed.instrument("bybit.linear:book:BTCUSDT") is None  # first use: loading starts
            assert await feed.load_instruments(10)
            assert feed.instrument("bybit.linear:book:BTCUSDT").min_size == "0.001"
        async with tickwire.stream("bybit.linear:book:BTCUSDT", **feed_opts(srv, instruments=False)) as feed:
            assert await feed.load_instruments(1)
            assert feed.instrument("bybit.linear:book:BTCUSDT") is None


async def test_the_venues_own_hosts_are_loaded_at_start(monkeypatch):
    calls = []

    async def fake_get_json(url, **kw):
        calls.append((url, kw))
        return bybit_page("linear", [BYBIT_LINEAR_ITEM])

    monkeypatch.setattr("tickwire.net.http.get_json", fake_get_json)
    feed = tickwire.Feed(["bybit.linear:book:BTCUSDT"], tickwire.FeedOptions(network="testnet",
                                                                             proxy="http://127.0.0.1:9"))
    loader = inst_mod.InstrumentLoader(feed)
    loader.start()
    assert await loader.wait(5)
    loader.stop()
    ((url, kw),) = calls
    assert url == "https://api-testnet.bybit.com/v5/market/instruments-info?category=linear&limit=1000"
    assert kw["proxy"] == "http://127.0.0.1:9" and kw["ssl_context"] is not None  # the feed's settings
    assert loader.get("bybit", "linear", "BTCUSDT").usymbol == "BTC/USDT:USDT"


async def test_a_failure_is_a_log_line_never_an_event_and_is_retried(monkeypatch, caplog):
    caplog.set_level(logging.INFO, "tickwire.instruments")
    monkeypatch.setattr(inst_mod, "RETRY_FIRST_S", 0.2)
    async with RestServer(bybit_routes(fail_first=1)) as srv:
        async with tickwire.stream("bybit.linear:book:BTCUSDT", **feed_opts(srv, instruments=True)) as feed:
            seen = []
            deadline = time.monotonic() + 10
            while feed.instrument("bybit.linear:book:BTCUSDT") is None and time.monotonic() < deadline:
                try:
                    async with asyncio.timeout(0.1):
                        seen.append(await feed.__anext__())
                except TimeoutError:
                    pass
            assert feed.instrument("bybit.linear:book:BTCUSDT") is not None
            assert not [e for e in seen if isinstance(e, VenueError)]
    assert "not loaded" in caplog.text and "HTTP 500" in caplog.text and "loaded (" in caplog.text


async def test_lists_are_refreshed_on_a_timer():
    async with RestServer(bybit_routes([[BYBIT_LINEAR_ITEM]])) as srv:
        async with tickwire.stream("bybit.linear:book:BTCUSDT",
                                   **feed_opts(srv, instruments=True, instruments_refresh_s=0.3)):
            await asyncio.sleep(1.5)
    assert len(srv.asked("/v5/market/instruments-info")) >= 3


async def test_a_list_is_shared_by_the_feeds_of_a_process():
    async with RestServer(bybit_routes([[BYBIT_LINEAR_ITEM]])) as srv:
        for _ in range(3):
            async with tickwire.stream("bybit.linear:book:BTCUSDT", **feed_opts(srv, instruments=True)) as feed:
                assert await feed.load_instruments(10) and feed.instrument("bybit.linear:book:BTCUSDT")
    assert len(srv.asked("/v5/market/instruments-info")) == 1


async def test_requests_go_through_the_feeds_proxy():
    async with RestServer(bybit_routes([[BYBIT_LINEAR_ITEM]])) as srv, HttpProxy() as proxy:
        async with tickwire.stream("bybit.linear:book:BTCUSDT",
                                   **feed_opts(srv, instruments=True, proxy=f"http://127.0.0.1:{proxy.port}")) as feed:
            assert await feed.load_instruments(10) and feed.instrument("bybit.linear:book:BTCUSDT")
    assert f"GET http://{srv.base}/v5/market/instruments-info?category=linear&limit=1000" in proxy.seen


async def test_loading_a_long_list_never_blocks_the_event_loop():
    # 30 pages of 1000 instruments: mapped a slice at a time, the loop is handed back in between.
    items = []
    for i in range(30_000):
        d = copy.deepcopy(BYBIT_LINEAR_ITEM)
        d["symbol"], d["baseCoin"] = f"C{i:05d}USDT", f"C{i:05d}"
        items.append(d)
    pages = [items[i:i + 1000] for i in range(0, len(items), 1000)]
    lags = []

    async def probe():
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.002)
            lags.append(time.perf_counter() - t - 0.002)

    async with RestServer(bybit_routes(pages)) as srv:
        async with tickwire.stream("bybit.linear:book:C00001USDT", **feed_opts(srv, instruments=True)) as feed:
            task = asyncio.get_running_loop().create_task(probe())
            assert await feed.load_instruments(60)
            task.cancel()
            assert feed.instrument("bybit.linear:book:C29999USDT").usymbol == "C29999/USDT:USDT"
    assert lags and max(lags) < 0.15, f"the loop stalled {max(lags) * 1000:.0f} ms"


# -- against the simulators' REST endpoints (written separately from these mappers) ------------------

SIM_SPECS = ["bybit.linear:publicTrade:BTCUSDT", "bybit.spot:publicTrade:BTCUSDT", "bybit.inverse:publicTrade:BTCUSD",
             "okx:trades:BTC-USDT-SWAP", "okx:trades:BTC-USDT", "bge:fills:BTC_USDT"]


def _sims_serve_rest() -> bool:
    """Each simulator answers REST on its WebSocket port (``VenueSim.http_get`` overridden)."""
    from tickwire.sim import VENUE_SIMS, VenueSim

    base = getattr(VenueSim, "http_get", None)
    return base is not None and all(getattr(VENUE_SIMS[v], "http_get", base) is not base
                                    for v in ("bybit", "okx", "bge"))


@pytest.mark.skipif(not _sims_serve_rest(), reason="the simulators do not serve the instrument REST endpoints yet "
                                                   "(VenueSim.http_get not overridden)")
async def test_the_simulators_lists_agree_with_their_markets():
    from decimal import Decimal

    from .conftest import collect

    async with tickwire.stream(*SIM_SPECS, sim=True, instruments=True) as feed:
        assert await feed.load_instruments(20) and not feed._instruments.errors
        insts = {s: feed.instrument(s) for s in SIM_SPECS}
        assert all(insts.values()), insts
        trades = [e for e in await collect(feed, lambda evs: {e.stream for e in evs if isinstance(e, Trade)} ==
                                           {parse(s).spec for s in SIM_SPECS}, timeout=20) if isinstance(e, Trade)]
    by_stream = {parse(s).spec: i for s, i in insts.items()}
    assert by_stream["okx:trades:BTC-USDT-SWAP"].contract_value and by_stream["bybit.inverse:publicTrade:BTCUSD"].linear \
        is False
    for t in trades:
        inst = by_stream[t.stream]
        assert (t.symbol, t.usymbol) == (inst.symbol, inst.usymbol)
        assert Decimal(t.price) % Decimal(inst.tick_size) == 0, (t, inst.tick_size)
        assert Decimal(t.size) % Decimal(inst.lot_size) == 0, (t, inst.lot_size)
