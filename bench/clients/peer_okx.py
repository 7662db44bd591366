"""python-okx ``WsPublicAsync(url=...)`` (raw messages) + a hand-written dict book.

Run with bench/.venv-peers on asyncio's default loop, as in python-okx's examples. The URL is the
constructor's ``url`` argument. One patch: python-okx's ``WebSocketFactory.connect`` always
passes an SSL context to ``websockets.connect``, which refuses one for a ``ws://`` URL (the
factory then logs the error and returns None), so the runner replaces that method with the same
call without ``ssl`` for ``ws://`` URLs.

The book is what a python-okx user writes by hand: ``json.loads`` each raw message, then a dict per
side keyed by the price string, ``"0"`` deletes; no seqId check.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from . import NotSupported
from ._meter import Meter


def _patch_factory() -> None:
    import websockets
    from okx.websocket import WebSocketFactory as wsf

    orig = wsf.WebSocketFactory.connect

    async def connect(self: Any) -> Any:
        if not self.url.startswith("ws://"):
            return await orig(self)
        self.websocket = await websockets.connect(self.url)
        return self.websocket

    wsf.WebSocketFactory.connect = connect  # type: ignore[method-assign]


async def _main(url: str, expected_msgs: int) -> dict[str, Any]:
    from okx.websocket.WsPublicAsync import WsPublicAsync

    meter = Meter(expected_msgs)
    done = asyncio.Event()
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}

    def callback(message: str) -> None:
        m = json.loads(message)
        data = m.get("data")
        if data is None:
            return
        if m.get("action") == "snapshot":
            bids.clear()
            asks.clear()
        for d in data:
            for lvl in d["bids"]:
                if lvl[1] == "0":
                    bids.pop(lvl[0], None)
                else:
                    bids[lvl[0]] = lvl[1]
            for lvl in d["asks"]:
                if lvl[1] == "0":
                    asks.pop(lvl[0], None)
                else:
                    asks[lvl[0]] = lvl[1]
        if meter.tick():
            done.set()

    ws = WsPublicAsync(url=url)
    await ws.start()
    if ws.websocket is None:
        raise ConnectionError("python-okx could not connect")
    try:
        await ws.subscribe([{"channel": "books", "instId": "BTC-USDT"}], callback)
        await asyncio.wait_for(done.wait(), timeout=max(120.0, expected_msgs * 5e-4))
    finally:
        await ws.stop()
    res = meter.result(loop="asyncio")
    res["final_bids"], res["final_asks"] = bids, asks
    return res


def run(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
    if venue != "okx":
        raise NotSupported("python-okx is OKX-only")
    _patch_factory()
    return asyncio.run(_main(url, expected_msgs))
