"""pybit ``unified_trading.WebSocket`` (orderbook_stream / trade_stream), run with bench/.venv-peers.

Pointing it at the loopback server: pybit builds its URL inside the constructor from the module
constant ``pybit.unified_trading.PUBLIC_WSS`` (``wss://{SUBDOMAIN}.{DOMAIN}.com/v5/public/
{CHANNEL_TYPE}``) and has no URL option, so the runner sets that constant to
``ws://127.0.0.1:PORT/v5/public/{CHANNEL_TYPE}`` before constructing ``WebSocket``.

pybit runs websocket-client in a thread and calls the callback in that thread with the whole
book (it deep-copies its local book for every delta); the process CPU (all threads) is measured.
"""

from __future__ import annotations

import threading
from typing import Any

from . import NotSupported
from ._meter import Meter


def run(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
    if venue not in ("bybit", "bybit-trades"):
        raise NotSupported("pybit is Bybit-only")
    import pybit.unified_trading as ut

    prefix, channel = url.rsplit("/", 1)
    ut.PUBLIC_WSS = prefix + "/{CHANNEL_TYPE}"

    meter = Meter(expected_msgs)
    done = threading.Event()
    state: dict[str, Any] = {"trades": 0, "last_trade_id": ""}

    def on_book(message: dict[str, Any]) -> None:
        if meter.tick():
            done.set()

    def on_trade(message: dict[str, Any]) -> None:
        data = message["data"]
        state["trades"] += len(data)
        state["last_trade_id"] = data[-1]["i"]
        if meter.tick():
            done.set()

    ws = ut.WebSocket(testnet=False, channel_type=channel, retries=3)
    try:
        if venue == "bybit":
            ws.orderbook_stream(50, "BTCUSDT", on_book)
        else:
            ws.trade_stream("BTCUSDT", on_trade)
        if not done.wait(timeout=max(300.0, expected_msgs * 2e-3)):
            raise TimeoutError(f"pybit: {meter.n} of {expected_msgs} frames")
        extra: dict[str, Any] = {"loop": "thread (websocket-client)"}
        if venue == "bybit-trades":
            extra.update(state)
        res = meter.result(**extra)
        if venue == "bybit":
            book = ws.data["orderbook.50.BTCUSDT"]
            res["final_bids"] = {p: s for p, s in book["b"]}
            res["final_asks"] = {p: s for p, s in book["a"]}
        return res
    finally:
        try:
            ws.exit()
        except Exception:
            pass
