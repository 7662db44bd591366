"""OKX v5 pushes -> tickwire events: pure functions of the decoded message and the stream."""

from __future__ import annotations

from typing import Any, Callable

from tickwire.model import (
    Balance, Candle, Event, Fill, Funding, IndexPrice, Liquidation, MarkPrice, OpenInterest, Order, Position,
    Ticker, Trade, VenueError,
)
from tickwire.subscription import Subscription
from tickwire import book as _book
from tickwire.venues.base import bad_field, bad_print
from tickwire.venues.okx import market_of
from tickwire.venues.okx.wire import Trade as WireTrade
from tickwire.venues.okx_gateway import ms


def trades(sub: Subscription, data: list[WireTrade], recv_ns: int) -> list[Event]:
    # A loop, not a comprehension: cheaper for the few trades of a message (3.11).
    out: list[Event] = []
    market, spec = sub.market, sub.spec
    kind = _book._kind  # the level rule of books (venues.base.good_print), inlined: once per trade
    for t in data:
        if kind(t.px) < 0 or kind(t.sz) <= 0:
            out.append(bad_print("okx", market, t.instId, spec, t.tradeId, t.px, t.sz, recv_ns))
            continue
        out.append(Trade(t.px, t.sz, t.side, t.tradeId, t.seqId, venue="okx", market=market,
                         symbol=t.instId, stream=spec, exch_ns=ms(t.ts), recv_ns=recv_ns))
    return out


def candles(sub: Subscription, rows: list[list[str]], recv_ns: int) -> list[Event]:
    bar = sub.channel[6:]
    return [Candle(venue="okx", market=sub.market, symbol=sub.symbol, stream=sub.spec, exch_ns=ms(c[0]),
                   recv_ns=recv_ns, interval=bar, start_ns=ms(c[0]), open=c[1], high=c[2], low=c[3],
                   close=c[4], volume=c[5], turnover=c[7] if len(c) > 7 else None,
                   closed=len(c) > 8 and c[8] == "1")
            for c in rows]


def items(sub: Subscription, data: list[dict], recv_ns: int) -> list[Event]:
    """The pushes whose data are objects: tickers, funding, prices, open interest, liquidations, private."""
    out: list[Event] = []
    kind = sub.kind
    if kind == "liquidations":
        for d in data:
            out.extend(_liquidations(sub, d, recv_ns))
        return out
    build = _BY_KIND.get(kind)
    if build is None:
        return out
    for d in data:
        g = d.get
        base = dict(venue="okx", market=sub.market, symbol=g("instId", sub.symbol), stream=sub.spec,
                    exch_ns=ms(g("ts") or g("uTime")), recv_ns=recv_ns)
        out.extend(build(d, base))
    return out


def _ticker(d: dict, base: dict) -> list[Event]:
    g = d.get
    return [Ticker(**base, last=g("last"), bid=g("bidPx"), bid_size=g("bidSz"), ask=g("askPx"),
                   ask_size=g("askSz"), open_24h=g("open24h"), high_24h=g("high24h"),
                   low_24h=g("low24h"), volume_24h=g("vol24h"), turnover_24h=g("volCcy24h"), raw=d)]


def _funding(d: dict, base: dict) -> list[Event]:
    g = d.get
    return [Funding(**base, rate=g("fundingRate", ""), next_rate=g("nextFundingRate") or None,
                    funding_time_ns=ms(g("fundingTime")) or None, next_funding_ns=ms(g("nextFundingTime")) or None)]


def _mark(d: dict, base: dict) -> list[Event]:
    return [MarkPrice(**base, price=d.get("markPx", ""))]


def _index(d: dict, base: dict) -> list[Event]:
    return [IndexPrice(**base, price=d.get("idxPx", ""))]


def _open_interest(d: dict, base: dict) -> list[Event]:
    g = d.get
    return [OpenInterest(**base, open_interest=g("oi", ""), open_interest_ccy=g("oiCcy"), open_interest_usd=g("oiUsd"))]


def _objects(d: dict, key: str, base: dict, out: list[Event]) -> list[dict]:
    """The objects of the list ``d[key]`` (absent: none). Anything else there becomes a VenueError
    in ``out`` naming it (a garbled entry must not cost the others, nor raise)."""
    v = d.get(key) or []
    if type(v) is not list:
        out.append(VenueError(**base, code="decode", msg=bad_field(f"{base['stream']} entries", key, v,
                                                                   "a list of objects")))
        return []
    good = [x for x in v if type(x) is dict]
    if len(good) < len(v):
        out.extend(VenueError(**base, code="decode", msg=bad_field(f"{base['stream']} entry", f"{key}[{i}]", x,
                                                                   "an object"))
                   for i, x in enumerate(v) if type(x) is not dict)
    return good


def _liquidations(sub: Subscription, d: dict, recv_ns: int) -> list[Event]:
    inst = d.get("instId", "")
    out: list[Event] = []
    base = dict(venue="okx", market=market_of(inst), symbol=inst, stream=sub.spec, exch_ns=0, recv_ns=recv_ns)
    details = _objects(d, "details", base, out)
    out += [Liquidation(venue="okx", market=market_of(inst), symbol=inst, stream=sub.spec, exch_ns=ms(x.get("ts")),
                        recv_ns=recv_ns, side=side_of_liquidated(x.get("side", ""), x.get("posSide", "")),
                        price=x.get("bkPx", ""), size=x.get("sz", ""))
            for x in details]
    return out


def side_of_liquidated(order_side: str, pos_side: str) -> str:
    # The liquidation *order* sells to close a long; report the liquidated position's side.
    if pos_side in ("long", "short"):
        return "buy" if pos_side == "long" else "sell"
    return "buy" if order_side == "sell" else "sell"


def _orders(d: dict, base: dict) -> list[Event]:
    g = d.get
    out: list[Event] = [Order(**base, order_id=g("ordId", ""), client_order_id=g("clOrdId", ""),
                              side=g("side", ""), order_type=g("ordType", ""), status=g("state", ""),
                              price=g("px") or None, size=g("sz") or None, filled_size=g("accFillSz"),
                              avg_price=g("avgPx") or None, raw=d)]
    if g("tradeId") and g("fillSz") not in (None, "", "0"):
        out.append(Fill(**{**base, "exch_ns": ms(g("fillTime")) or base["exch_ns"]},
                        order_id=g("ordId", ""), trade_id=g("tradeId"), side=g("side", ""),
                        price=g("fillPx", ""), size=g("fillSz", ""), fee=g("fillFee"),
                        fee_ccy=g("fillFeeCcy"), liquidity={"M": "maker", "T": "taker"}.get(g("execType"), ""),
                        raw=d))
    return out


def _account(d: dict, base: dict) -> list[Event]:
    out: list[Event] = []
    details = _objects(d, "details", base, out)
    out += [Balance(**{**base, "symbol": x.get("ccy", "")}, currency=x.get("ccy", ""), total=x.get("eq"),
                    available=x.get("availBal") or x.get("availEq"), frozen=x.get("frozenBal"), raw=x)
            for x in details]
    return out


def _positions(d: dict, base: dict) -> list[Event]:
    g = d.get
    return [Position(**{**base, "symbol": g("instId", "")}, side=g("posSide", ""), size=g("pos", ""),
                     avg_price=g("avgPx") or None, unrealized_pnl=g("upl") or None, raw=d)]


def _balance_and_position(d: dict, base: dict) -> list[Event]:
    g = d.get
    out: list[Event] = []
    bal = _objects(d, "balData", base, out)
    pos = _objects(d, "posData", base, out)
    out += [Balance(**{**base, "symbol": b.get("ccy", "")}, currency=b.get("ccy", ""), total=b.get("cashBal"), raw=b)
            for b in bal]
    out += [Position(**{**base, "symbol": p.get("instId", "")}, side=p.get("posSide", ""), size=p.get("pos", ""),
                     avg_price=p.get("avgPx") or None, raw=p) for p in pos]
    return out


_BY_KIND: dict[str, Callable[[dict, dict], list[Any]]] = {
    "ticker": _ticker, "funding": _funding, "mark": _mark, "index": _index, "open_interest": _open_interest,
    "orders": _orders, "account": _account, "positions": _positions, "balance_and_position": _balance_and_position,
}
