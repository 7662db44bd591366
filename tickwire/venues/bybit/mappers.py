"""Bybit v5 messages -> tickwire events: pure functions of the decoded message and the stream."""

from __future__ import annotations

from typing import Any

from tickwire.model import (
    Balance, Candle, Event, Fill, Greeks, Liquidation, Order, Position, Ticker, Trade, VenueError,
)
from tickwire.subscription import Subscription
from tickwire import book as _book
from tickwire.venues.base import bad_field, bad_print
from tickwire.venues.bybit import INTERVAL_NAMES
from tickwire.venues.bybit.wire import Kline, Liq
from tickwire.venues.bybit.wire import Trade as WireTrade

SIDES = {"Buy": "buy", "Sell": "sell"}


def trades(sub: Subscription, data: list[WireTrade], recv_ns: int) -> list[Event]:
    market, spec, sides = sub.market, sub.spec, SIDES
    # Trade's own fields positionally (price, size, side, trade_id, seq): once per trade. A
    # loop, not a comprehension: for the 1-4 trades of a message it is ~80 ns cheaper (3.11).
    out: list[Event] = []
    kind = _book._kind  # the level rule of books (venues.base.good_print), inlined: once per trade
    for t in data:
        if kind(t.p) < 0 or kind(t.v) <= 0:
            out.append(bad_print("bybit", market, t.s, spec, t.i, t.p, t.v, recv_ns))
            continue
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


# ------------------------------------------------------------------------- private (bybit.md §8)

# orderStatus -> Order.status: snake case, with the spellings OKX and BG Exchange use where the
# meaning is the same (filled, canceled, partially_filled); Bybit's own word otherwise.
ORDER_STATUS = {"Created": "created", "New": "new", "PartiallyFilled": "partially_filled", "Filled": "filled",
                "Cancelled": "canceled", "PartiallyFilledCanceled": "partially_filled_canceled",
                "Rejected": "rejected", "Untriggered": "untriggered", "Triggered": "triggered",
                "Deactivated": "deactivated", "Active": "active"}
POSITION_SIDES = {"Buy": "long", "Sell": "short"}
# Executions that are not trades of an order: funding settlements (price = mark price, size =
# the position) would read as volume. They are left out; the wallet stream shows their effect.
NOT_FILLS = {"Funding"}


def ms(v: Any) -> int:
    """A millisecond timestamp (string or number) in ns; 0 when it is not one."""
    try:
        return int(v) * 1_000_000
    except (TypeError, ValueError):
        return 0


def _not_text(d: dict, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` whose value is there but is not a string (the mappers call string
    methods on them; a garbled item must cost only itself, never raise)."""
    for k in keys:
        v = d.get(k)
        if v and type(v) is not str:
            return k
    return None


def _bad(sub: Subscription, d: dict, what: str, field: str, value: Any, expected: str, recv_ns: int) -> VenueError:
    """The VenueError that replaces one unusable item of a private push (the others are delivered)."""
    symbol = d.get("symbol")
    return VenueError(venue="bybit", market=sub.market, symbol=symbol if type(symbol) is str else "", stream=sub.spec,
                      recv_ns=recv_ns, code="decode", msg=bad_field(what, field, value, expected))


def _opt(v: Any) -> str | None:
    """A venue number that may be absent: "" (and "0" for prices) is no value."""
    return v if v not in (None, "", "0") else None


def orders(sub: Subscription, items: list[dict], creation_ms: int, recv_ns: int) -> list[Event]:
    """``order`` pushes: one Order per item, the whole item in ``raw``.

    A cancel racing a fill can produce two ``Filled`` updates of one order (bybit.md §8): the
    second carries ``cancelType`` ``CancelByUser`` and ``rejectReason``
    ``EC_OrigClOrdIDDoesNotExist`` (in ``raw``). Both are passed on: Order events are states,
    not transitions, so a consumer applying them twice ends in the same state (filled, the same
    ``filled_size``); the fills themselves come once each on the execution stream."""
    out: list[Event] = []
    fallback = creation_ms * 1_000_000
    for d in items:
        bad = _not_text(d, ("side", "orderType", "orderStatus"))
        if bad is not None:
            out.append(_bad(sub, d, "order item", bad, d[bad], "a string", recv_ns))
            continue
        g = d.get
        status = g("orderStatus") or ""
        out.append(Order(venue="bybit", market=g("category") or sub.market, symbol=g("symbol") or "",
                         stream=sub.spec, exch_ns=ms(g("updatedTime")) or fallback, recv_ns=recv_ns,
                         order_id=g("orderId") or "", client_order_id=g("orderLinkId") or "",
                         side=SIDES.get(g("side") or "", (g("side") or "").lower()),
                         order_type=(g("orderType") or "").lower(), status=ORDER_STATUS.get(status, status.lower()),
                         price=_opt(g("price")), size=g("qty") or None, filled_size=g("cumExecQty") or None,
                         avg_price=_opt(g("avgPrice")), raw=d))
    return out


def fills(sub: Subscription, items: list[dict], creation_ms: int, recv_ns: int) -> list[Event]:
    """``execution`` / ``execution.fast`` pushes (already deduplicated by ``execId``): one Fill
    per trade execution; funding settlements are not fills (NOT_FILLS). ``execution.fast`` has
    no fee."""
    out: list[Event] = []
    fallback = creation_ms * 1_000_000
    for d in items:
        bad = _not_text(d, ("side", "execType"))
        if bad is not None:
            out.append(_bad(sub, d, "execution item", bad, d[bad], "a string", recv_ns))
            continue
        g = d.get
        if g("execType") in NOT_FILLS:
            continue
        maker = g("isMaker")
        out.append(Fill(venue="bybit", market=g("category") or sub.market, symbol=g("symbol") or "",
                        stream=sub.spec, exch_ns=ms(g("execTime")) or fallback, recv_ns=recv_ns,
                        order_id=g("orderId") or "", trade_id=g("execId") or "",
                        side=SIDES.get(g("side") or "", (g("side") or "").lower()), price=g("execPrice") or "",
                        size=g("execQty") or "", fee=g("execFee") or None, fee_ccy=g("feeCurrency") or None,
                        liquidity="maker" if maker is True else "taker" if maker is False else "", raw=d))
    return out


def positions(sub: Subscription, items: list[dict], creation_ms: int, recv_ns: int) -> list[Event]:
    """``position`` pushes: side ``long``/``short`` (Bybit's Buy/Sell; "" when flat), the whole
    item in ``raw``. Bybit pushes on every order create/amend/cancel, even with no change."""
    fallback = creation_ms * 1_000_000
    out: list[Event] = []
    for d in items:
        bad = _not_text(d, ("side",))
        if bad is not None:
            out.append(_bad(sub, d, "position item", bad, d[bad], "a string", recv_ns))
            continue
        g = d.get
        side = g("side") or ""
        out.append(Position(venue="bybit", market=g("category") or sub.market, symbol=g("symbol") or "",
                            stream=sub.spec, exch_ns=ms(g("updatedTime")) or fallback, recv_ns=recv_ns,
                            side=POSITION_SIDES.get(side, side.lower() if side != "None" else ""),
                            size=g("size") or "0", avg_price=_opt(g("entryPrice")) or _opt(g("avgPrice")),
                            unrealized_pnl=g("unrealisedPnl") or None, raw=d))
    return out


def balances(sub: Subscription, items: list[dict], creation_ms: int, recv_ns: int) -> list[Event]:
    """``wallet`` pushes: one Balance per coin of each account (``symbol`` = the coin):
    ``total`` the coin's equity (wallet balance + unrealised PnL, as OKX's ``eq``),
    ``available`` its ``availableToWithdraw`` (empty on unified accounts: None), ``frozen`` its
    ``locked`` (spot orders). No snapshot on subscribe: the first push comes with a change."""
    exch_ns = creation_ms * 1_000_000
    out: list[Event] = []
    for acct in items:
        coins = acct.get("coin") or []
        if type(coins) is not list:
            out.append(_bad(sub, acct, "wallet coins", "coin", coins, "a list of objects", recv_ns))
            continue
        for i, c in enumerate(coins):
            if type(c) is not dict:
                out.append(_bad(sub, acct, "wallet coin", f"coin[{i}]", c, "an object", recv_ns))
                continue
            g = c.get
            coin = g("coin") or ""
            out.append(Balance(venue="bybit", market="", symbol=coin, stream=sub.spec, exch_ns=exch_ns,
                               recv_ns=recv_ns, currency=coin, total=g("equity") or g("walletBalance") or None,
                               available=g("availableToWithdraw") or None, frozen=g("locked") or None, raw=c))
    return out


def greeks(sub: Subscription, items: list[dict], creation_ms: int, recv_ns: int) -> list[Event]:
    """``greeks`` pushes: the account's option greeks per base coin."""
    exch_ns = creation_ms * 1_000_000
    return [Greeks(venue="bybit", market="option", symbol=d.get("baseCoin") or "", stream=sub.spec,
                   exch_ns=exch_ns, recv_ns=recv_ns, base_coin=d.get("baseCoin") or "",
                   delta=d.get("totalDelta"), gamma=d.get("totalGamma"), vega=d.get("totalVega"),
                   theta=d.get("totalTheta"), raw=d)
            for d in items]


PRIVATE = {"orders": orders, "fills": fills, "positions": positions, "balances": balances, "greeks": greeks}
