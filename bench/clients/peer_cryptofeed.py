"""cryptofeed (FeedHandler, L2_BOOK / TRADES callbacks), run with bench/.venv-peers.

Pointing it at the loopback server:

* address: cryptofeed's documented per-feed hook ``Feed._address()`` is overridden in a subclass
  to return the loopback URL;
* ``WSAsyncConn.__init__`` refuses any address that does not start with ``wss://`` and has no
  option to allow ``ws://``; the runner wraps it to build the connection with the ``wss://``
  spelling and then put the ``ws://`` address back (a monkeypatch of that one check);
* symbols: cryptofeed loads instrument lists over REST at feed construction; the runner feeds
  its own parser (``_parse_symbol_data``) the generated fixture (``_fixtures.py``) and stores
  the result with ``Symbols.set`` first, so no REST call is made;
* cryptofeed 2.4.1 subscribes Bybit L2_BOOK as ``orderbook.200.<sym>`` (hard-coded); the server
  accepts any subscribe and streams ``orderbook.50.BTCUSDT`` frames, which cryptofeed handles
  from the topic in each frame.

Runs on uvloop, cryptofeed's default (``FeedHandler`` config ``uvloop: True``). The timed window
counts data frames by wrapping the feed's ``message_handler`` (one ``str.startswith`` per frame).
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import NotSupported
from . import _fixtures as fx
from ._meter import Meter


def _allow_plain_ws() -> None:
    import cryptofeed.connection as conn

    if getattr(conn.WSAsyncConn, "_bench_patched", False):
        return
    orig = conn.WSAsyncConn.__init__

    def __init__(self: Any, address: str, *a: Any, **k: Any) -> None:
        if address.startswith("ws://"):
            orig(self, "wss://" + address[len("ws://"):], *a, **k)
            self.address = address
        else:
            orig(self, address, *a, **k)

    conn.WSAsyncConn.__init__ = __init__  # type: ignore[method-assign]
    conn.WSAsyncConn._bench_patched = True  # type: ignore[attr-defined]


def run(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
    if venue not in ("bybit", "okx", "bybit-trades"):
        raise NotSupported(venue)
    from cryptofeed import FeedHandler
    from cryptofeed.defines import L2_BOOK, TRADES
    from cryptofeed.exchanges import OKX, Bybit
    from cryptofeed.symbols import Symbols

    _allow_plain_ws()
    if venue == "okx":
        base: Any = OKX
        raw = [fx.okx_instruments(t) for t in ("SPOT", "SWAP", "FUTURES")]
        symbol = "BTC-USDT"
        marker = '{"arg"'
    else:
        base = Bybit
        raw = [fx.bybit_instruments_info("linear"), fx.bybit_instruments_info("spot")]
        symbol = "BTC-USDT-PERP"
        marker = '{"topic"'
    syms, info = base._parse_symbol_data(raw)
    Symbols.set(base.id, syms, info)

    meter = Meter(expected_msgs)
    state: dict[str, Any] = {"trades": 0, "last_trade_id": ""}
    loop_holder: dict[str, Any] = {}

    class Local(base):  # type: ignore[misc, valid-type]
        def _address(self) -> str:
            return url

        async def message_handler(self, msg: str, conn: Any, timestamp: float) -> None:
            await super().message_handler(msg, conn, timestamp)
            if msg.startswith(marker) and meter.tick():
                loop_holder["done"].set()

    async def on_book(book: Any, receipt_ts: float) -> None:
        pass

    async def on_trade(trade: Any, receipt_ts: float) -> None:
        state["trades"] += 1
        state["last_trade_id"] = trade.id

    fh = FeedHandler(config={"uvloop": True, "log": {"disabled": True}})
    if venue == "bybit-trades":
        feed = Local(symbols=[symbol], channels=[TRADES], callbacks={TRADES: on_trade})
    else:
        feed = Local(symbols=[symbol], channels=[L2_BOOK], callbacks={L2_BOOK: on_book})
    fh.add_feed(feed)

    loop = asyncio.new_event_loop()  # uvloop: FeedHandler installed its policy
    asyncio.set_event_loop(loop)
    loop_holder["done"] = asyncio.Event()
    fh.run(start_loop=False, install_signal_handlers=False)
    try:
        loop.run_until_complete(asyncio.wait_for(loop_holder["done"].wait(),
                                                 timeout=max(120.0, expected_msgs * 5e-4)))
    finally:
        try:
            loop.run_until_complete(asyncio.wait_for(fh.stop_async(loop=loop), timeout=10))
        except Exception:
            pass
    extra: dict[str, Any] = {"loop": type(loop).__module__.split(".")[0]}
    if venue == "bybit-trades":
        extra.update(state)
    res = meter.result(**extra)
    if venue != "bybit-trades":
        book = feed._l2_book[symbol].book
        res["final_bids"] = {str(p): str(s) for p, s in book.bids.to_dict().items()}
        res["final_asks"] = {str(p): str(s) for p, s in book.asks.to_dict().items()}
    return res
