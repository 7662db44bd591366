"""Bybit v5 messages -> tickwire events: pure functions of the decoded message and the stream."""

from __future__ import annotations

from tickwire.model import Candle, Event, Liquidation, Ticker, Trade
from tickwire.subscription import Subscription
from tickwire.venues.bybit import INTERVAL_NAMES
from tickwire.venues.bybit.wire import Kline, Liq
from tickwire.venues.bybit.wire import Trade as WireTrade

SIDES = {"Buy": "buy", "Sell": "sell"}


def trades(sub: Subscription, data: list[WireTrade], recv_ns: int) -> list[Event]:
    market, spec, sides = sub.market, sub.spec, SIDES
    # Trade's own fields positionally (price, size, side, trade_id, seq): once per trade. A
    # loop, not a comprehension: for the 1-4 trades of a message it is ~80 ns cheaper (3.11).
    out: list[Event] = []
    for t in data:
        out.append(Trade(t.p, t.v, sides.get(t.S) or t.S.lower(), t.i, t.seq, venue="bybit", market=market,
                         symbol=t.s, stream=spec, exch_ns=t.T * 1_000_000, recv_ns=recv_ns))
    return out


def candles(sub: Subscription, klines: list[Kline], ts: int, recv_ns: int) -> list[Event]:
    return [Candle(venue="bybit", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                   exch_ns=ts * 1_000_000, recv_ns=recv_ns,
                   interval=INTERVAL_NAMES.get(k.interval, k.interval), start_ns=k.start * 1_000_000,
                   open=k.open, high=k.high, low=k.low, close=k.close, volume=k.volume,
                   turnover=k.turnover or None, closed=k.confirm)
            for k in klines]


def liquidations(sub: Subscription, liqs: list[Liq] | Liq, recv_ns: int) -> list[Event]:
    if not isinstance(liqs, list):  # documented as an object, sent as an array
        liqs = [liqs]
    return [Liquidation(venue="bybit", market=sub.market, symbol=q.s, stream=sub.spec,
                        exch_ns=q.T * 1_000_000, recv_ns=recv_ns, side=SIDES.get(q.S, q.S.lower()),
                        price=q.p, size=q.v)
            for q in liqs]


def ticker(sub: Subscription, merged: dict, ts: int, recv_ns: int) -> Ticker:
    """A ticker from every field known so far (the session merges linear/inverse deltas)."""
    g = merged.get
    nft = g("nextFundingTime")
    return Ticker(venue="bybit", market=sub.market, symbol=sub.symbol, stream=sub.spec,
                  exch_ns=ts * 1_000_000, recv_ns=recv_ns, last=g("lastPrice"),
                  bid=g("bid1Price") or g("bidPrice"), bid_size=g("bid1Size") or g("bidSize"),
                  ask=g("ask1Price") or g("askPrice"), ask_size=g("ask1Size") or g("askSize"),
                  open_24h=g("prevPrice24h"), high_24h=g("highPrice24h"), low_24h=g("lowPrice24h"),
                  volume_24h=g("volume24h"), turnover_24h=g("turnover24h"), mark_price=g("markPrice"),
                  index_price=g("indexPrice") or g("usdIndexPrice"), open_interest=g("openInterest"),
                  funding_rate=g("fundingRate"),
                  next_funding_ns=int(nft) * 1_000_000 if nft not in (None, "", "0") else None,
                  raw=dict(merged))
