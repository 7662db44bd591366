"""ccxt.pro (``ccxt.pro.bybit`` / ``ccxt.pro.okx``), run with bench/.venv-peers.

Pointing it at the loopback server:

* WebSocket: ``exchange.urls['api']['ws']`` overridden (Bybit: ``['public']['linear']``; OKX: the
  ``/ws/v5`` base to which ccxt appends ``/public``);
* REST: ``load_markets`` needs instrument lists. The exchange's ``fetch`` (ccxt's single HTTP
  entry point) is replaced on the instance by a router that answers the instruments routes from
  the generated fixture (``_fixtures.rest_answer``) and raises on anything else, so ccxt's own
  market parsing runs and no HTTP request is made. Markets are loaded before the timed window.

The consumer is the usual ccxt.pro loop ``while True: await watch_order_book(symbol)`` (or
``watch_trades``, counting the trades each call returns) on asyncio's default loop, as in ccxt's
examples. ccxt's API is pull-style: one call returns after one or more frames were applied, and
the consumer may be parked when the last frame lands. So the meter wraps ccxt's per-frame
dispatcher (``handle_message``) and reads, after each data frame, which frame the stored book /
last trade reflects (exchange ts); at the end, the trades the next ``watch_trades`` call would
return (``newUpdates``) are added to the count. Book check: ccxt stores prices and sizes as floats, so
the check is numeric.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import NotSupported
from . import _fixtures as fx
from ._meter import Meter


def _make(venue: str, url: str) -> tuple[Any, str]:
    import ccxt.pro as ccxtpro

    if venue == "okx":
        ex = ccxtpro.okx({"enableRateLimit": False})
        ex.urls["api"]["ws"] = url.rsplit("/public", 1)[0]
        symbol = "BTC/USDT"
        ex.options["fetchMarkets"] = {"types": ["spot"]}
    else:
        ex = ccxtpro.bybit({"enableRateLimit": False})
        ex.urls["api"]["ws"]["public"]["linear"] = url
        symbol = "BTC/USDT:USDT"

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return fx.rest_answer(url)

    ex.fetch = fetch
    return ex, symbol


async def _main(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
    ex, symbol = _make("okx" if venue == "okx" else "bybit", url)
    meter = Meter(expected_msgs)
    done = asyncio.Event()
    trades_mode = venue == "bybit-trades"
    seen = {"count": 0, "last_id": ""}

    # Measurement hook: ccxt.pro's per-frame dispatcher, wrapped before the WebSocket client is
    # created (the client captures the bound method). After each data frame it reads which frame
    # the stored state reflects; a pull-style consumer may be parked when the stream ends.
    orig = ex.handle_message

    def handle_message(client: Any, message: Any) -> Any:
        out = orig(client, message)
        if isinstance(message, dict) and ("topic" in message or "data" in message):
            if trades_mode:
                cache = ex.trades.get(symbol) if isinstance(ex.trades, dict) else None
                ts = cache[-1]["timestamp"] + 1 if cache else None  # trade T = frame ts - 1
            else:
                book = ex.orderbooks.get(symbol)
                ts = book["timestamp"] if book is not None else None
            if ts is not None and meter.at_ts(ts):
                done.set()
        return out

    ex.handle_message = handle_message

    async def consume() -> None:
        if trades_mode:
            while True:
                trades = await ex.watch_trades(symbol)
                seen["count"] += len(trades)
                seen["last_id"] = trades[-1]["id"]
        else:
            while True:
                await ex.watch_order_book(symbol)

    try:
        await ex.load_markets()
        task = asyncio.ensure_future(consume())
        waiter = asyncio.ensure_future(done.wait())
        await asyncio.wait({task, waiter}, timeout=max(120.0, expected_msgs * 5e-4),
                           return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises the consumer's error
        if not done.is_set():
            raise TimeoutError(f"ccxt: stream not finished ({meter.n} frames)")
        task.cancel()
        waiter.cancel()
        if trades_mode:
            cache = ex.trades[symbol]
            if seen["last_id"] != cache[-1]["id"]:
                # what the next watch_trades() call would return (newUpdates mode)
                seen["count"] += min(cache.getLimit(symbol, None) or 0, len(cache))
                seen["last_id"] = cache[-1]["id"]
            return meter.result(trades=seen["count"], last_trade_id=seen["last_id"], loop="asyncio")
        book = ex.orderbooks[symbol]
        res = meter.result(loop="asyncio")
        res["final_bids"] = {repr(p): repr(s) for p, s in book["bids"]}
        res["final_asks"] = {repr(p): repr(s) for p, s in book["asks"]}
        return res
    finally:
        await ex.close()


def run(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
    if venue not in ("bybit", "okx", "bybit-trades"):
        raise NotSupported(venue)
    return asyncio.run(_main(url, venue, expected_msgs))
