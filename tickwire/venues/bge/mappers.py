"""BG Exchange V2 pushes -> tickwire events: pure functions of the decoded message and the stream."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tickwire.model import Balance, Candle, Event, Order, Ticker, Trade
from tickwire.subscription import Subscription
from tickwire.venues.base import bad_print, good_print
from tickwire.venues.bge.wire import Asset, Fill
from tickwire.venues.bge.wire import Candle as WireCandle

# Candle.interval carries the normalized name (as the Bybit dialect does).
INTERVAL_NAMES = {"1min": "1m", "5min": "5m", "15min": "15m", "30min": "30m", "60min": "1h", "4hour": "4h",
                  "1day": "1d", "1week": "1w", "1mon": "1M"}
_INTERVAL_S = {"1min": 60, "5min": 300, "15min": 900, "30min": 1800, "60min": 3600, "4hour": 14400,
               "1day": 86400, "1week": 604800}  # 1mon varies: not listed
ORDER_STATUS = {"0": "received", "1": "submitted", "2": "partially_filled", "3": "filled",
                "4": "cancelling", "5": "canceled", "6": "failed", "7": "reduced"}  # §5.4


def epoch_s_to_ns(v: Any) -> int:
    """Push ``id`` fields look like unix seconds (§2.5, UNVERIFIED): use them only when they do."""
    try:
        n = int(v)
    except (TypeError, ValueError):
        return 0
    return n * 1_000_000_000 if 1_000_000_000 <= n < 10_000_000_000 else 0


def _total(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return None
    try:
        return str(Decimal(a) + Decimal(b))
    except InvalidOperation:
        return None


def fills(sub: Subscription, data: list[Fill], recv_ns: int) -> list[Event]:
    return [Trade(venue="bge", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                  exch_ns=t.ts * 1_000_000, recv_ns=recv_ns, price=t.price, size=t.vol,
                  side=t.direction.lower(), trade_id=str(t.id))
            if good_print(t.price, t.vol) else
            bad_print("bge", sub.market, sub.symbol, sub.spec, t.id, t.price, t.vol, recv_ns)
            for t in data]


def ticker(sub: Subscription, t: dict, env_id: Any, env_ts: int, recv_ns: int) -> Ticker:
    g = t.get
    return Ticker(venue="bge", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                  exch_ns=epoch_s_to_ns(g("id")) or epoch_s_to_ns(env_id) or env_ts * 1_000_000,
                  recv_ns=recv_ns, last=g("close"), open_24h=g("open"), high_24h=g("high"),
                  low_24h=g("low"), volume_24h=g("vol"), turnover_24h=g("filled_size"), raw=t)


def candle(sub: Subscription, k: WireCandle, interval: str, env_ts: int, reply: bool, recv_ns: int) -> Candle:
    """``interval``: the native one (``15min``); ``env_ts``: the frame's time (ms), carried by
    req replies only (pushes carry no time, §2.5)."""
    start_ns = k.id * 1_000_000_000
    dur_ns = _INTERVAL_S.get(interval, 0) * 1_000_000_000
    exch_ns = env_ts * 1_000_000
    # BGE marks no candle as final. A pushed candle is the live one; a history reply's
    # candle is closed when its interval ended before the reply's timestamp.
    closed = bool(reply and dur_ns and exch_ns and start_ns + dur_ns <= exch_ns)
    return Candle(venue="bge", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                  exch_ns=exch_ns, recv_ns=recv_ns, interval=INTERVAL_NAMES.get(interval, interval),
                  start_ns=start_ns, open=k.open, high=k.high, low=k.low, close=k.close, volume=k.vol,
                  turnover=k.filled_size or None, closed=closed)


def assets(sub: Subscription, data: list[Asset] | Asset, product: str, env_ts: int, recv_ns: int) -> list[Event]:
    items = data if isinstance(data, list) else [data]
    exch_ns = env_ts * 1_000_000
    return [Balance(venue="bge", market=sub.market, symbol=product or sub.symbol, stream=sub.spec,
                    exch_ns=exch_ns, recv_ns=recv_ns, currency=a.currency, available=a.available,
                    frozen=a.hold, total=_total(a.available, a.hold))
            for a in items]


def orders(sub: Subscription, data: list[dict] | dict, product: str, env_ts: int, recv_ns: int) -> list[Event]:
    items = data if isinstance(data, list) else [data]
    exch_ns = env_ts * 1_000_000
    out: list[Event] = []
    for o in items:
        g = o.get
        status = str(g("status", ""))
        # §5.4 (Chinese table authoritative): filled_amount = filled base quantity,
        # filled_size = filled quote value; `funds` = quote amount. The field table
        # misspells order_id as orders_id.
        out.append(Order(venue="bge", market=sub.market, symbol=g("product") or product or sub.symbol,
                         stream=sub.spec, exch_ns=exch_ns, recv_ns=recv_ns,
                         order_id=str(g("order_id") or g("orders_id") or ""),
                         client_order_id=str(g("client_oid") or ""), side=str(g("side") or ""),
                         order_type=str(g("type") or ""), status=ORDER_STATUS.get(status, status),
                         price=g("price"), size=g("size"), filled_size=g("filled_amount"), raw=o))
    return out
