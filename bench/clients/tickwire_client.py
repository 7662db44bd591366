"""tickwire's full pipeline: picows transport, typed decode, exact strings, sequence checks,
maintained book with integrity state, normalized events delivered to an ``async for`` consumer."""

from __future__ import annotations

from typing import Any

from . import NotSupported
from ._meter import Meter

SPECS = {
    "bybit": ("bybit", "/v5/", "bybit.linear:orderbook.50:BTCUSDT"),
    "bybit-trades": ("bybit", "/v5/", "bybit.linear:publicTrade:BTCUSDT"),
    "okx": ("okx", "/ws/v5/", "okx:books:BTC-USDT"),
}


async def _main(url: str, venue: str, expected: int, metrics: bool = False) -> dict[str, Any]:
    import tickwire
    from tickwire.model import BookUpdate, Trade

    name, path, spec = SPECS[venue]
    base = url.split(path)[0]
    meter = Meter(expected)
    trades = 0
    last_trade_id = ""
    book = None
    async with tickwire.stream(spec, endpoints={name: base}, metrics_port=0 if metrics else None) as feed:
        if venue == "bybit-trades":
            last_ts = -1
            async for ev in feed:
                if type(ev) is Trade:
                    trades += 1
                    last_trade_id = ev.trade_id
                    ts = ev.exch_ns  # every frame of this stream has its own time: a new one = a new frame
                    if ts != last_ts:
                        last_ts = ts
                        if meter.tick() and feed.pending() == 0:
                            break
                    elif meter.done and feed.pending() == 0:
                        break
        else:
            async for ev in feed:
                if type(ev) is BookUpdate:
                    book = ev.book
                    if meter.tick():
                        break
    out = meter.result(trades=trades, last_trade_id=last_trade_id, loop="uvloop")
    if book is not None:
        out["final_bids"] = dict(book.bids)
        out["final_asks"] = dict(book.asks)
    return out


def run(url: str, venue: str, expected_msgs: int, metrics: bool = False) -> dict[str, Any]:
    if venue not in SPECS:
        raise NotSupported(venue)
    import uvloop

    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(_main(url, venue, expected_msgs, metrics))
    finally:
        loop.close()


def run_with_metrics(url: str, venue: str, expected_msgs: int) -> dict[str, Any]:
    """The same pipeline with Prometheus metrics on (counters on the hot path, /metrics served)."""
    return run(url, venue, expected_msgs, metrics=True)
