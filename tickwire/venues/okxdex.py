"""OKX DEX market WebSocket dialect (sans-I/O): logged-in on-chain prices, candles, trades.

The gateway speaks the OKX v5 envelope (login, text ping/pong, one ack per arg, notices,
channel-conn-count), so the session reuses :class:`~tickwire.venues.okx.OkxSession`; what
differs is here: the endpoint, the channels, the ``chainIndex/token`` args, and the rule of
at most 30 connections per channel per API key. Reference: shared/protocols/okx.md §5 and
shared/seeds/000 (the DEX WebSocket page).
"""

from __future__ import annotations

from typing import Sequence

import msgspec

from tickwire.model import DexCandle, DexPrice, DexSignal, DexTrade, Event
from tickwire.subscription import SpecError, Subscription
from tickwire.venues.base import Limits, SessionOptions, StreamState, Timers
from tickwire.venues.okx import BARS, OKX, OkxSession, _Msg, _ms, arg_key

NETWORKS = {"mainnet": "wss://wsdex.okx.com", "pre": "wss://wsdexpre.okx.com:8443"}

# channel -> (kind, which args the symbol carries)
CHANNELS: dict[str, tuple[str, str]] = {
    "price": ("dex_price", "token"),
    "price-info": ("dex_signal", "token"),
    "trades": ("dex_trades", "token"),
    "dex-market-new-signal-openapi": ("dex_signal", "chain"),
    "dex-market-memepump-new-token-openapi": ("dex_signal", "chain"),
    "dex-market-memepump-update-metrics-openapi": ("dex_signal", "chain"),
    "kol_smartmoney-tracker-activity": ("dex_signal", "none"),
    "address-tracker-activity": ("dex_signal", "wallet"),
}
ALIASES = {"prices": "price", "trade": "trades", "signals": "dex-market-new-signal-openapi"}

# Seed 000: "at most 30 connections per channel per API key; several args of one channel on
# one connection count once". We pack everything onto as few connections as the per-connection
# rules allow, so 30 is never approached (the 31st is never opened: see plan()).
MAX_CONN_PER_CHANNEL = 30
MAX_ARGS_PER_CONN = 200   # address-tracker-activity documents <= 200 per connection; used for all


class OKXDex(OKX):
    name = "okxdex"
    markets = ("",)
    networks = NETWORKS
    # 3 connection requests per second; 480 subscribe/unsubscribe/login per hour per connection.
    limits = Limits(connect_rates=((3, 1.0),), max_requests=450, requests_window_s=3600.0)

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        if market:
            raise self.bad(spec, "okxdex takes no market: okxdex:price:1/0xdac17f958d2ee523a2206206994597c13d831ec7")
        native = ALIASES.get(channel, channel)
        if native.startswith("candles."):
            native = "dex-token-candle" + native.split(".", 1)[1]
        elif native.startswith("candle"):
            # Some doc versions spell the channel bare ("candle1m"); the current name is
            # dex-token-candle{bar}. We accept both and send the current name.
            native = "dex-token-" + native
        if native.startswith("dex-token-candle"):
            bar = native[len("dex-token-candle"):]
            bar = {"1h": "1H", "4h": "4H", "1d": "1D", "1w": "1W"}.get(bar, bar)
            if bar not in BARS:
                raise self.bad(spec, f"candle bar {bar!r} not served; bars: {' '.join(BARS)}")
            native = f"dex-token-candle{bar}"
            kind, shape = "dex_candles", "token"
        elif native in CHANNELS:
            kind, shape = CHANNELS[native]
        else:
            raise self.bad(spec, "unknown channel; channels: price, dex-token-candle{bar} (or candle{bar}, "
                                 "candles.1m), price-info, trades, " + ", ".join(list(CHANNELS)[3:]))
        arg: dict[str, str] = {"channel": native}
        if shape == "token":
            chain, sep, token = symbol.partition("/")
            if not sep or not chain or not token:
                raise self.bad(spec, "symbol must be CHAIN_INDEX/TOKEN_ADDRESS, e.g. "
                                     "1/0xdac17f958d2ee523a2206206994597c13d831ec7")
            if token.startswith("0x"):
                token = token.lower()  # EVM addresses are sent lower-cased
            arg["chainIndex"] = chain
            arg["tokenContractAddress"] = token
            symbol = f"{chain}/{token}"
            mk = chain
        elif shape == "chain":
            if not symbol.isdigit():
                raise self.bad(spec, f"{native} takes a chain index, e.g. okxdex:{native}:1")
            arg["chainIndex"] = symbol
            mk = symbol
        elif shape == "wallet":
            arg["walletAddress"] = symbol.lower() if symbol.startswith("0x") else symbol
            symbol = arg["walletAddress"]
            mk = ""
        else:
            mk = ""
        return Subscription(spec=f"okxdex:{native}:{symbol}", venue="okxdex", market=mk, channel=native,
                            symbol=symbol, kind=kind, endpoint="dex", topic=arg_key(arg), needs_auth=True,
                            params=arg)

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        root = (base or NETWORKS.get(network) or NETWORKS["mainnet"]).rstrip("/")
        return f"{root}/ws/{self.ws_version}/dex"

    ws_version = "v6"  # venue_options={"okxdex": {"path": "v5"}} selects the older /ws/v5/dex

    def decode_endpoint(self, market: str) -> str:
        return "dex"

    def timers(self) -> Timers:
        # 30-second rule: ping after 20 s without a frame, pong within 8 s (okx.md §5.3).
        return Timers(ping_interval_s=20.0, ping_when_idle=True, pong_timeout_s=8.0, notice_lead_s=30.0,
                      stream_silence_s=120.0)

    def plan(self, subs: Sequence[Subscription]) -> list[list[Subscription]]:
        """As few connections as possible: every connection counts once per channel it carries."""
        groups = self.pack(subs, lambda s: (1,), (MAX_ARGS_PER_CONN,))
        per_channel: dict[str, int] = {}
        for g in groups:
            for ch in {s.channel for s in g}:
                per_channel[ch] = per_channel.get(ch, 0) + 1
        worst = max(per_channel.items(), key=lambda kv: kv[1], default=("", 0))
        # A make-before-break switch briefly holds two connections for the same streams.
        if worst[1] * 2 > MAX_CONN_PER_CHANNEL:
            raise SpecError(f"okxdex: {worst[1]} connections would carry channel {worst[0]!r}; the venue "
                               f"allows {MAX_CONN_PER_CHANNEL} per API key (keep under "
                               f"{MAX_CONN_PER_CHANNEL // 2 * MAX_ARGS_PER_CONN} streams per channel)")
        return groups

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> "DexSession":
        return DexSession(self, endpoint, conn, options)


class _Candle(msgspec.Struct, gc=False):
    ts: str
    o: str
    h: str
    l: str  # noqa: E741
    c: str
    vol: str = ""
    volUsd: str | None = None
    confirm: str | int = "0"


class _Price(msgspec.Struct, gc=False):
    price: str
    time: str = "0"


_prices = msgspec.json.Decoder(list[_Price])
_candles = msgspec.json.Decoder(list[_Candle] | _Candle)
_dicts = msgspec.json.Decoder(list[dict] | dict)


class DexSession(OkxSession):
    """One DEX connection: always logs in first, then subscribes."""

    def needs_login(self) -> bool:
        return True

    def _data(self, st: StreamState, m: _Msg, recv_ns: int) -> list[Event]:
        sub = st.sub
        chain = sub.params.get("chainIndex", "")
        token = sub.params.get("tokenContractAddress", "")
        kind = sub.kind
        if kind == "dex_price":
            return [DexPrice(venue="okxdex", market=chain, symbol=sub.symbol, stream=sub.spec, exch_ns=_ms(p.time),
                             recv_ns=recv_ns, chain=chain, token=token, price=p.price)
                    for p in _prices.decode(m.data)]
        if kind == "dex_candles":
            items = _candles.decode(m.data)
            if not isinstance(items, list):  # documented as an object; tolerate an array of them
                items = [items]
            bar = sub.channel[len("dex-token-candle"):]
            return [DexCandle(venue="okxdex", market=chain, symbol=sub.symbol, stream=sub.spec, exch_ns=_ms(c.ts),
                              recv_ns=recv_ns, chain=chain, token=token, interval=bar, start_ns=_ms(c.ts),
                              open=c.o, high=c.h, low=c.l, close=c.c, volume=c.vol, volume_usd=c.volUsd,
                              closed=str(c.confirm) == "1")
                    for c in items]
        items = _dicts.decode(m.data)
        if not isinstance(items, list):
            items = [items]
        if kind == "dex_trades":
            return [self._trade(sub, chain, token, d, recv_ns) for d in items]
        return [DexSignal(venue="okxdex", market=chain, symbol=sub.symbol, stream=sub.spec,
                          exch_ns=_ms(d.get("time") or d.get("timestamp") or d.get("tradeTime")), recv_ns=recv_ns,
                          channel=sub.channel, data=d)
                for d in items]

    @staticmethod
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
        return DexTrade(venue="okxdex", market=chain, symbol=sub.symbol, stream=sub.spec, exch_ns=_ms(d.get("time")),
                        recv_ns=recv_ns, chain=chain, token=token, price=d.get("price"), size=size,
                        side=str(d.get("type", "")).lower(), volume_usd=d.get("volume"), tx_hash=tx, raw=d)
