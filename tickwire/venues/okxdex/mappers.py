"""OKX DEX pushes -> tickwire events: pure functions of the decoded message and the stream."""

from __future__ import annotations

from tickwire.model import DexCandle, DexPrice, DexSignal, DexTrade, Event
from tickwire.subscription import Subscription
from tickwire.venues.base import bad_print, good_print
from tickwire.venues.okx_gateway import ms
from tickwire.venues.okxdex import CANDLE_PREFIX
from tickwire.venues.okxdex.wire import Candle, Price


def prices(sub: Subscription, data: list[Price], recv_ns: int) -> list[Event]:
    chain = sub.params.get("chainIndex", "")
    token = sub.params.get("tokenContractAddress", "")
    return [DexPrice(venue="okxdex", market=chain, symbol=sub.symbol, stream=sub.spec, exch_ns=ms(p.time),
                     recv_ns=recv_ns, chain=chain, token=token, price=p.price)
            for p in data]


def candles(sub: Subscription, data: list[Candle] | Candle, recv_ns: int) -> list[Event]:
    chain = sub.params.get("chainIndex", "")
    token = sub.params.get("tokenContractAddress", "")
    items = data if isinstance(data, list) else [data]
    bar = sub.channel[len(CANDLE_PREFIX):]
    return [DexCandle(venue="okxdex", market=chain, symbol=sub.symbol, stream=sub.spec, exch_ns=ms(c.ts),
                      recv_ns=recv_ns, chain=chain, token=token, interval=bar, start_ns=ms(c.ts),
                      open=c.o, high=c.h, low=c.l, close=c.c, volume=c.vol, volume_usd=c.volUsd,
                      closed=str(c.confirm) == "1")
            for c in items]


def trades(sub: Subscription, data: list[dict] | dict, recv_ns: int) -> list[Event]:
    chain = sub.params.get("chainIndex", "")
    token = sub.params.get("tokenContractAddress", "")
    out: list[Event] = []
    for d in (data if isinstance(data, list) else [data]):
        t = _trade(sub, chain, token, d, recv_ns)
        # a price or size that is there must be a number (either may be absent: the field tables vary)
        if (t.price is not None and not good_print(t.price, "1")) or (t.size is not None and not good_print("0", t.size)):
            out.append(bad_print("okxdex", chain, sub.symbol, sub.spec, (t.raw or {}).get("id"), t.price, t.size,
                                 recv_ns))
        else:
            out.append(t)
    return out


def _trade(sub: Subscription, chain: str, token: str, d: dict, recv_ns: int) -> DexTrade:
    # The token legs are ``changedTokenInfo`` (current reference) or ``amountExchanged``
    # (older field tables); both are accepted. The size is the leg of the subscribed token.
    legs = d.get("changedTokenInfo") or d.get("amountExchanged") or []
    if isinstance(legs, dict):
        legs = [legs]
    size = None
    for leg in legs if isinstance(legs, list) else []:
        if isinstance(leg, dict) and str(leg.get("tokenContractAddress", "")).lower() == token.lower():
            size = leg.get("amount")
    tx = d.get("txHashUrl") or d.get("txHash") or ""
    return DexTrade(venue="okxdex", market=chain, symbol=sub.symbol, stream=sub.spec, exch_ns=ms(d.get("time")),
                    recv_ns=recv_ns, chain=chain, token=token, price=d.get("price"), size=size,
                    side=str(d.get("type", "")).lower(), volume_usd=d.get("volume"), tx_hash=tx, raw=d)


def signals(sub: Subscription, data: list[dict] | dict, recv_ns: int) -> list[Event]:
    chain = sub.params.get("chainIndex", "")
    return [DexSignal(venue="okxdex", market=chain, symbol=sub.symbol, stream=sub.spec,
                      exch_ns=ms(d.get("time") or d.get("timestamp") or d.get("tradeTime")), recv_ns=recv_ns,
                      channel=sub.channel, data=d)
            for d in (data if isinstance(data, list) else [data])]
