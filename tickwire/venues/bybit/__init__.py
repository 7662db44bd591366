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
# Lines (tickwire.net.lines, ``lines=True`` / ``--lines``): hosts that serve the same data, per network,
# public and private paths alike. stream.bybit.com [DOC]; stream.bytick.com [SDK: pybit's DOMAIN_ALT,
# bybit.md §1.5] — documented, not probed from here. Regional hosts (stream.bybit.tr, .kz, .id...)
# serve other entities' accounts and are not alternatives. Testnet and demo: one host each.
HOSTS = {"mainnet": ("wss://stream.bybit.com", "wss://stream.bytick.com")}
PRIVATE_NETWORKS = {  # /v5/private (bybit.md §1.2, §1.4)
    "mainnet": "wss://stream.bybit.com",
    "testnet": "wss://stream-testnet.bybit.com",
    "demo": "wss://stream-demo.bybit.com",
}
# REST hosts (instrument lists). Demo's public data is mainnet's, so are its instruments.
REST = {"mainnet": "https://api.bybit.com", "testnet": "https://api-testnet.bybit.com",
        "demo": "https://api.bybit.com"}

PRIVATE = "private"
CATEGORIES = ("spot", "linear", "inverse", "option")
# All-in-one private topic -> (kind, the categories of its per-category variants) (bybit.md §8).
PRIVATE_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "order": ("orders", CATEGORIES),
    "execution": ("fills", CATEGORIES),
    "execution.fast": ("fills", CATEGORIES),
    "position": ("positions", ("linear", "inverse", "option")),  # no spot variant
    "wallet": ("balances", ()),
    "greeks": ("greeks", ()),
}
PRIVATE_ALIASES = {"orders": "order", "executions": "execution", "executions.fast": "execution.fast",
                   "positions": "position", "balances": "wallet", "balance": "wallet"}
# Every private topic -> (kind, category or "" for an all-in-one topic).
PRIVATE_TOPICS: dict[str, tuple[str, str]] = {}
for _family, (_kind, _cats) in PRIVATE_FAMILIES.items():
    PRIVATE_TOPICS[_family] = (_kind, "")
    for _cat in _cats:
        PRIVATE_TOPICS[f"{_family}.{_cat}"] = (_kind, _cat)
ANY_SYMBOL = "ANY"


def is_categorised(topic: str) -> bool:
    """``order.linear`` yes, ``order`` and ``execution.fast`` no (bybit.md §8: the two forms
    must never share one subscribe request)."""
    return PRIVATE_TOPICS.get(topic, ("", ""))[1] != ""


# max_active_time (bybit.md §1.6): how long a silent private connection may stay open.
MAX_ACTIVE_S = (30, 600)
MAX_ACTIVE_M = (1, 10)
MAX_ACTIVE_HELP = "30s … 600s, or 1m … 10m"
VENUE_OPTIONS = {
    "max_active_time": "the private connection's idle cut-off: 30s … 600s or 1m … 10m (bybit.md §1.6)",
    "auth_expires_s": "how far ahead the auth request's `expires` lies, seconds (default 10; 1 … 600)",
    "max_inflated_bytes": "what every venue takes (Bybit sends no compressed frames)",
}


def max_active_time(value: object) -> str:
    """A ``max_active_time`` value in Bybit's notation (``45s``, ``2m``); ValueError naming the
    valid range. A number is seconds."""
    text = str(value).strip()
    if isinstance(value, bool):
        text = ""
    elif isinstance(value, (int, float)):
        text = f"{value:g}s" if float(value).is_integer() else ""
    num, unit = text[:-1], text[-1:]
    if num.isdigit() and unit in ("s", "m"):
        n = int(num)
        lo, hi = MAX_ACTIVE_S if unit == "s" else MAX_ACTIVE_M
        if lo <= n <= hi:
            return f"{n}{unit}"
    raise ValueError(f"bad venue option bybit.max_active_time={value!r}: valid values are {MAX_ACTIVE_HELP} "
                     "(e.g. 45s, 2m; a number is seconds)")


class Bybit(Venue):
    name = "bybit"
    markets = MARKETS
    default_market = "linear"
    networks = NETWORKS
    hosts = HOSTS
    # bybit.md §5: under 500 new connections per 5 minutes per host; we stay a little below.
    limits = Limits(connect_rates=((450, 300.0),))

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        private = PRIVATE_ALIASES.get(channel, channel)
        if private in PRIVATE_TOPICS:
            return self._private(market, private, symbol, spec)
        family, _, cat = private.rpartition(".")
        if family in PRIVATE_FAMILIES and cat in CATEGORIES:
            self._no_variant(family, cat, spec)
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

    def _private(self, market: str, topic: str, symbol: str, spec: str) -> Subscription:
        """A private topic (bybit.md §8): ``bybit:order:ANY``, ``bybit:order.linear:ANY``."""
        kind, cat = PRIVATE_TOPICS[topic]
        if market:
            family = topic[:-len(cat) - 1] if cat else topic
            cats = PRIVATE_FAMILIES[family][1]
            if cat and cat != market:
                raise self.bad(spec, f"market {market!r} contradicts topic {topic}: write bybit:{topic}:ANY")
            if market not in cats:
                self._no_variant(family, market, spec)
            topic, cat = f"{family}.{market}", market
        if symbol.upper() not in (ANY_SYMBOL, "*", "ALL"):
            raise self.bad(spec, f"Bybit private topics take no symbol filter: write bybit:{topic}:ANY "
                                 "(every symbol of the account)")
        return Subscription(spec=f"bybit:{topic}:{ANY_SYMBOL}", venue="bybit", market=cat, channel=topic,
                            symbol=ANY_SYMBOL, kind=kind, endpoint=PRIVATE, topic=topic, needs_auth=True)

    def _no_variant(self, family: str, cat: str, spec: str) -> None:
        cats = PRIVATE_FAMILIES[family][1]
        if not cats:
            raise self.bad(spec, f"{family} has no per-category variant: write bybit:{family}:ANY")
        raise self.bad(spec, f"{family} has no {cat!r} variant; categories: {', '.join(cats)} "
                             f"(bybit:{family}.{cats[0]}:ANY), or bybit:{family}:ANY for all")

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
                             "allLiquidation; aliases: book, trades, ticker, candles.1m, liquidations; "
                             "private (symbol ANY): order, execution, execution.fast, position, wallet, "
                             "greeks, each also per category (order.linear...)")

    def decode_endpoint(self, market: str) -> str:
        if market == PRIVATE:
            return PRIVATE
        return f"public/{market or self.default_market}"

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        hosts = PRIVATE_NETWORKS if endpoint == PRIVATE else NETWORKS
        root = (base or hosts[network]).rstrip("/")
        return f"{root}/v5/{endpoint}"

    def connect_url(self, endpoint: str, base: str | None, network: str, options: dict) -> str:
        url = self.url(endpoint, base, network)
        mat = options.get("max_active_time")
        if endpoint == PRIVATE and mat not in (None, ""):
            url += f"?max_active_time={max_active_time(mat)}"
        return url

    def check_options(self, options: dict) -> dict:
        """The venue options (``venue_options={"bybit": {...}}``, ``--venue-option bybit.K=V``),
        checked before anything connects: OptionError (one line) naming the key and what is valid."""
        from tickwire.options import OptionError, unknown

        out = dict(options)
        for k in out:
            if k not in VENUE_OPTIONS:
                raise unknown("venue option for bybit", k, VENUE_OPTIONS)
        if "max_inflated_bytes" in out:  # the option of every venue: checked as theirs
            out.update(super().check_options({"max_inflated_bytes": out["max_inflated_bytes"]}))
        if out.get("max_active_time") not in (None, ""):
            try:
                out["max_active_time"] = max_active_time(out["max_active_time"])
            except ValueError as e:
                raise OptionError(str(e)) from None
        if "auth_expires_s" in out:
            v = out["auth_expires_s"]
            try:
                f = float(v)
            except (TypeError, ValueError):
                f = -1.0
            if isinstance(v, bool) or not 1 <= f <= 600:
                raise OptionError(f"bad venue option bybit.auth_expires_s={v!r}: seconds from 1 to 600")
            out["auth_expires_s"] = f
        return out

    def rest_base(self, ws_base: str | None, network: str) -> str:
        """REST host (instrument lists): the override's host (ws->http), else the venue's."""
        if ws_base:
            return ws_base.replace("wss://", "https://", 1).replace("ws://", "http://", 1).rstrip("/")
        return REST.get(network, REST["mainnet"])

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
        from tickwire.venues.bybit.session import BybitPrivateSession, BybitSession

        if endpoint == PRIVATE:
            return BybitPrivateSession(self, endpoint, conn, options)
        return BybitSession(self, endpoint, conn, options)
