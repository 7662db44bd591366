"""Bybit v5 public market data (sans-I/O).

Everything tickwire knows about Bybit's WebSocket protocol lives in this package: here the
endpoints, topic names and validation, and how streams are spread over connections;
``wire`` the message shapes; ``session`` requests, acks, pongs and the books' ``u`` chain;
``mappers`` the events of each topic. Reference: shared/protocols/bybit.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from tickwire.subscription import Subscription
from tickwire.venues.base import Limits, SessionOptions, Timers, Venue

if TYPE_CHECKING:
    from tickwire.venues.bybit.session import BybitSession

MARKETS = ("linear", "spot", "inverse", "option")

# Current depth sets (2026): 500 was retired on 2025-09-30; a recording that still has it is
# decoded under its own name (session._adopt). Level 1 is snapshot-only on linear/inverse/spot.
DEPTHS = {
    "linear": (1, 50, 200, 1000),
    "inverse": (1, 50, 200, 1000),
    "spot": (1, 50, 200, 1000),
    "option": (25, 100),
}
KLINE_INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
CANDLE_ALIASES = {"1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
                  "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1D": "D", "1w": "W", "1W": "W",
                  "1M": "M"}
INTERVAL_NAMES = {v: k for k, v in CANDLE_ALIASES.items() if k[-1] in "mh" or k in ("1d", "1w", "1M")}

MAX_ARGS_CHARS_PER_CONN = 21_000   # total length of args on one public connection
OPTION_MAX_ARGS_PER_CONN = 2_000

NETWORKS = {
    "mainnet": "wss://stream.bybit.com",
    "testnet": "wss://stream-testnet.bybit.com",
    # Demo trading serves private streams only; its public data is mainnet's (bybit.md §1.4).
    "demo": "wss://stream.bybit.com",
}


class Bybit(Venue):
    name = "bybit"
    markets = MARKETS
    default_market = "linear"
    networks = NETWORKS
    # bybit.md §5: under 500 new connections per 5 minutes per host; we stay a little below.
    limits = Limits(connect_rates=((450, 300.0),))

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        market = market or self.default_market
        if market not in MARKETS:
            raise self.bad(spec, f"unknown market {market!r}; use one of {', '.join(MARKETS)} "
                                 "(e.g. bybit.spot:publicTrade:BTCUSDT)")
        native, kind = self._channel(market, channel, spec)
        if not symbol or any(c.isspace() for c in symbol):
            raise self.bad(spec, "empty or malformed symbol")
        if market != "option" and symbol != symbol.upper():
            # Bybit topics are case-sensitive and symbols are upper case (bybit.md §3).
            raise self.bad(spec, f"symbol {symbol!r} must be upper case, e.g. {symbol.upper()}")
        canon = f"bybit.{market}:{native}:{symbol}"
        return Subscription(spec=canon, venue="bybit", market=market, channel=native, symbol=symbol,
                            kind=kind, endpoint=f"public/{market}", topic=f"{native}.{symbol}")

    def _channel(self, market: str, channel: str, spec: str) -> tuple[str, str]:
        c = channel
        if c in ("book", "orderbook"):
            return ("orderbook.25" if market == "option" else "orderbook.50"), "book"
        if c.startswith("book.") and c[5:].isdigit():
            c = "orderbook." + c[5:]
        if c.startswith("orderbook."):
            depth = c.split(".", 1)[1]
            allowed = DEPTHS[market]
            if not depth.isdigit() or int(depth) not in allowed:
                raise self.bad(spec, f"depth {depth!r} not served on {market}; depths: "
                                     f"{', '.join(map(str, allowed))}")
            return c, "book"
        if c in ("publicTrade", "trades", "trade"):
            return "publicTrade", "trades"
        if c in ("tickers", "ticker"):
            return "tickers", "ticker"
        if c.startswith("candles.") or c.startswith("kline."):
            iv = c.split(".", 1)[1]
            iv = CANDLE_ALIASES.get(iv, iv) if c.startswith("candles.") else iv
            if iv not in KLINE_INTERVALS:
                raise self.bad(spec, f"candle interval {iv!r} not served; use kline.N with N in "
                                     f"{' '.join(KLINE_INTERVALS)} or candles.1m/5m/1h/1d...")
            return f"kline.{iv}", "candles"
        if c in ("allLiquidation", "liquidations", "liquidation"):
            if market not in ("linear", "inverse"):
                raise self.bad(spec, "liquidations are served on linear and inverse only")
            return "allLiquidation", "liquidations"
        raise self.bad(spec, "unknown channel; native: orderbook.N, publicTrade, tickers, kline.N, "
                             "allLiquidation; aliases: book, trades, ticker, candles.1m, liquidations")

    def decode_endpoint(self, market: str) -> str:
        return f"public/{market or self.default_market}"

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        root = (base or NETWORKS[network]).rstrip("/")
        return f"{root}/v5/{endpoint}"

    def timers(self) -> Timers:
        # bybit.md §2: JSON ping every 20 s. A book connection that is silent for 60 s while
        # pongs still arrive is alive but quiet; the pong deadline catches dead sockets.
        return Timers(ping_interval_s=20.0, ping_when_idle=False, pong_timeout_s=10.0)

    def plan(self, subs: Sequence[Subscription]) -> list[list[Subscription]]:
        """Pack subscriptions onto connections: <= 21,000 chars of args; option <= 2,000 args."""
        return self.pack(subs, lambda s: (len(s.topic), s.market == "option"),
                         (MAX_ARGS_CHARS_PER_CONN, OPTION_MAX_ARGS_PER_CONN))

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> BybitSession:
        # Loaded with the first connection: parsing specs needs none of the protocol machinery.
        from tickwire.venues.bybit.session import BybitSession

        return BybitSession(self, endpoint, conn, options)
