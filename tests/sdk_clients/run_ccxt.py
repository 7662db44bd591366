"""ccxt (pro, for WebSockets), unchanged: only its URL table points at `tickwire sim --tls`.

Every URL in ``exchange.urls["api"]`` is replaced by the simulator's (REST and WebSocket); ccxt
reads neither SSL_CERT_FILE nor REQUESTS_CA_BUNDLE, so the CA is its own ``cafile`` option.
Scenarios: ``public-bybit``/``public-okx`` (load_markets over REST, watch_order_book,
watch_trades), ``private-bybit``/``private-okx`` (watch_orders, watch_my_trades / watch_balance).
"""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.pro as ccxtpro

from _common import args, report

ready, scenario, seconds = args()
kind, _, venue = scenario.partition("-")
v = ready["venues"][venue]
ca = ready["tls"]["ca_file"]


def point(urls: Any, rest: str, ws: str) -> Any:
    """The URL table with every https:// URL -> the sim's REST base, wss:// -> its WebSocket base (paths kept)."""
    if isinstance(urls, dict):
        return {k: point(x, rest, ws) for k, x in urls.items()}
    if isinstance(urls, str) and urls.startswith("wss://"):
        path = "/" + urls.split("://", 1)[1].split("/", 1)[1] if "/" in urls.split("://", 1)[1] else ""
        return ws + path
    if isinstance(urls, str) and urls.startswith("https://"):
        return rest
    return urls


def make() -> Any:
    cfg: dict[str, Any] = {"cafile": ca, "enableRateLimit": False}
    if kind == "private":
        cfg.update(apiKey="sim-key", secret="sim-secret")
        if venue == "okx":
            cfg["password"] = "sim-passphrase"
    ex = getattr(ccxtpro, venue)(cfg)
    ex.urls["api"] = point(ex.urls["api"], v["rest"], v["url"])
    return ex


async def take(coro_fn: Any, want: int, out: list[Any]) -> None:
    while len(out) < want:
        r = await coro_fn()
        out.append(r)


async def main() -> None:
    ex = make()
    got: dict[str, list[Any]] = {}
    try:
        await ex.load_markets()
        if kind == "public":
            sym = "BTC/USDT:USDT"
            jobs = {"book": (lambda: ex.watch_order_book(sym), 10), "trades": (lambda: ex.watch_trades(sym), 3)}
        elif venue == "bybit":
            jobs = {"orders": (lambda: ex.watch_orders(), 2), "my_trades": (lambda: ex.watch_my_trades(), 1),
                    "positions": (lambda: ex.watch_positions(), 1), "balance": (lambda: ex.watch_balance(), 1)}
        else:
            jobs = {"orders": (lambda: ex.watch_orders(), 2), "balance": (lambda: ex.watch_balance(), 1)}
        tasks = []
        for name, (fn, want) in jobs.items():
            got[name] = []
            tasks.append(asyncio.create_task(take(fn, want, got[name])))
        done, pending = await asyncio.wait(tasks, timeout=seconds)
        for t in pending:
            t.cancel()
        errors = [repr(t.exception()) for t in done if t.exception() is not None]
        ok = not pending and not errors
        details: dict[str, Any] = {"markets": len(ex.markets), "counts": {k: len(x) for k, x in got.items()},
                                   "errors": errors}
        if kind == "public":
            m = ex.market("BTC/USDT:USDT")
            details.update(tick=m["precision"]["price"], lot=m["precision"]["amount"], contract_size=m["contractSize"])
            if got["book"]:
                b = got["book"][-1]
                details["book_levels"] = [len(b["bids"]), len(b["asks"])]
        else:
            details["order_status"] = sorted({o["status"] for batch in got.get("orders", []) for o in batch})
        report(ok, **details)
    finally:
        await ex.close()


asyncio.run(main())
