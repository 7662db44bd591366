"""BG Exchange (bg.exchange) WebSocket V2 (sans-I/O): public market data and private orders/assets.

Everything tickwire knows about BGE's V2 protocol lives in this package: here the endpoint,
the channel table and spec parsing, and how streams are spread over connections; ``wire``
the frame shapes, gzip (``zip``) frames and stream keys; ``session`` the flat
``sub``/``unsub`` requests, the server-initiated ``{"ping": ts}`` heartbeat, the
``{event, code, msg}`` replies, API-key login and the seq_id rule; ``mappers`` the events of
every channel. Reference: shared/protocols/bge.md (cited as §N).

Spec grammar (``bge[.spot]:CHANNEL:SYMBOL``; BGE has one spot market, canonical specs omit it)::

    native                          aliases                         kind
    orderbook.G  (gear G = 0..11)   book (= orderbook.0),           book
                                    orderbook, book.150 (= .0),
                                    book.20 (= orderbook.6)
    percent10                                                       book
    fills                           trades, trade                   trades
    ticker                          tickers                         ticker
    candles.I (I = 1min 5min 15min  candles.1m/5m/15m/30m/1h/4h/    candles
      30min 60min 4hour 1day          1d/1w/1M
      1week 1mon)
    orders   (private; SYMBOL may   order                           orders
      be ``all``)
    assets   (private)              balances, balance               balances

Symbols are BGE pairs, ``BASE_QUOTE`` in upper case (``BTC_USDT``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from tickwire.subscription import Subscription
from tickwire.venues.base import Limits, SessionOptions, Timers, Venue, VenueOptions

if TYPE_CHECKING:
    from tickwire.venues.bge.session import BGESession

NETWORKS = {"mainnet": "wss://ws.bg.exchange"}  # no testnet is documented (§1)
HOSTS: dict[str, tuple[str, ...]] = {}          # lines: one documented host (list several with endpoints=)
PATH = "/v2/ws"                                  # public and private V2 channels share it (§1)
PUBLIC, PRIVATE = "public", "private"

GEARS = tuple(str(g) for g in range(12))          # orderbook "interval" (§4.3)
CANDLE_INTERVALS = ("1min", "5min", "15min", "30min", "60min", "4hour", "1day", "1week", "1mon")
CANDLE_ALIASES = {"1m": "1min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "60min", "60m": "60min",
                  "1hour": "60min", "4h": "4hour", "1d": "1day", "1D": "1day", "1w": "1week", "1W": "1week",
                  "1M": "1mon"}

# Our own cap (the venue documents none besides 50 msgs/s): 400 subscribe requests go out in 10 s
# at the engine's 40 requests/s (it keeps 20% of the 50/s for pongs), well inside the venue's 30 s
# subscribe window, and a full resubscribe after a reconnect stays as quick.
MAX_STREAMS_PER_CONN = 400

_SYMBOL_HINT_QUOTES = ("USDT", "USDC", "BTC", "ETH", "HKD")
_NATIVE_HELP = ("native: orderbook.G (gear G=0..11), percent10, fills, ticker, candles.INTERVAL "
                f"({' '.join(CANDLE_INTERVALS)}), orders, assets; aliases: book, book.150, book.20, "
                "trades, tickers, candles.1m/5m/15m/30m/1h/4h/1d/1w/1M, balances")


@dataclass
class BGEOptions(VenueOptions):
    zip: bool = False   # ask for gzip frames (bge.md §6 advises against; both are decoded)


class BGE(Venue):
    name = "bge"
    venue_options = BGEOptions
    markets = ("spot",)
    default_market = "spot"
    networks = NETWORKS
    hosts = HOSTS
    # §3: at most 50 messages per second per connection, or the venue closes it; pongs are
    # messages too (unclear in the docs, so we count them: the engine keeps 20% for them).
    # New-connection rates are not documented: the generic default applies.
    limits = Limits(max_msgs_per_s=50)

    def close_means_slow_down(self, code: int | None, reason: str) -> bool:
        # bge.md §3: more than 50 messages a second is a forced close. The close frame's code
        # and text are not documented: 1008 (policy violation) or a reason naming the rate is
        # read as that (tolerant reading; the simulator sends 1008 "too many messages").
        r = reason.lower()
        return code == 1008 or "too many" in r or "rate" in r or "frequen" in r

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        if market not in ("", "spot"):
            raise self.bad(spec, f"unknown market {market!r}; BG Exchange has one spot market: "
                                 "write bge:CHANNEL:SYMBOL (e.g. bge:fills:BTC_USDT)")
        native, kind = self._channel(channel, spec)
        private = kind in ("orders", "balances")
        symbol = self._symbol(symbol, native, spec)
        return Subscription(spec=f"bge:{native}:{symbol}", venue="bge", market="spot", channel=native,
                            symbol=symbol, kind=kind, endpoint=PRIVATE if private else PUBLIC,
                            topic=f"{native}:{symbol}", needs_auth=private)

    def _channel(self, channel: str, spec: str) -> tuple[str, str]:
        c = channel
        if c in ("book", "orderbook", "book.150"):
            return "orderbook.0", "book"
        if c == "book.20":
            return "orderbook.6", "book"
        if c.startswith("orderbook."):
            gear = c.split(".", 1)[1]
            if gear not in GEARS:
                raise self.bad(spec, f"orderbook gear {gear!r} not served; gears 0..11 (0-5: up to 150 "
                                     "levels, 6-11: up to 20; 0 and 6 full precision, then 0.00001 .. 0.1), "
                                     "e.g. orderbook.0")
            return c, "book"
        if c.startswith("book."):
            raise self.bad(spec, "book.N takes a depth of 150 or 20 (orderbook gears 0 and 6); "
                                 "other precisions: orderbook.G with G=0..11")
        if c == "percent10":
            return c, "book"
        if c in ("fills", "trades", "trade"):
            return "fills", "trades"
        if c in ("ticker", "tickers"):
            return "ticker", "ticker"
        if c.startswith("candles.") or c == "candles":
            iv = c.partition(".")[2]
            iv = CANDLE_ALIASES.get(iv, iv)
            if iv not in CANDLE_INTERVALS:
                raise self.bad(spec, f"candle interval {iv or '(none)'!r} not served; use candles.I with I in "
                                     f"{' '.join(CANDLE_INTERVALS)} or candles.1m/5m/15m/30m/1h/4h/1d/1w/1M")
            return f"candles.{iv}", "candles"
        if c in ("orders", "order"):
            return "orders", "orders"
        if c in ("assets", "balances", "balance"):
            return "assets", "balances"
        raise self.bad(spec, f"unknown channel {c!r}; {_NATIVE_HELP}")

    def _symbol(self, symbol: str, native: str, spec: str) -> str:
        if not symbol or any(ch.isspace() for ch in symbol):
            raise self.bad(spec, "empty or malformed symbol; BG Exchange pairs look like BTC_USDT")
        if symbol.lower() == "all":
            if native != "orders":
                raise self.bad(spec, "product 'all' is allowed only for orders (assets and market "
                                     "channels take one pair, e.g. BTC_USDT)")
            return "all"  # case-insensitive on the venue (§2.3); we send it lower case
        if symbol != symbol.upper():
            raise self.bad(spec, f"symbol {symbol!r} must be upper case, e.g. {symbol.upper()}")
        base, sep, quote = symbol.partition("_")
        if not sep or not base or not quote or "_" in quote:
            hint = next((f"{symbol[:-len(q)]}_{q}" for q in _SYMBOL_HINT_QUOTES
                         if symbol.endswith(q) and len(symbol) > len(q)), "BTC_USDT")
            raise self.bad(spec, f"symbol {symbol!r} is not a BG Exchange pair; pairs are BASE_QUOTE, e.g. {hint}")
        return symbol

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        if base is None:
            if network not in NETWORKS:
                raise ValueError(f"bge: unknown network {network!r}; BG Exchange documents only: "
                                 f"{', '.join(NETWORKS)}")
            base = NETWORKS[network]
        root = base.rstrip("/")
        if root.endswith(PATH):  # a full URL was given
            return root
        return root + PATH

    def timers(self) -> Timers:
        # The server pings us (§3); we never ping. It drops a client that leaves its ping
        # unanswered for 30 s, so it must ping more often than that, and a subscribed connection
        # otherwise gets data at least every 30 s (§3). Silence for 40 s (30 s + 10 s of margin for
        # jitter and a slow server tick) therefore means a dead link.
        return Timers(stale_s=40.0, login_timeout_s=10.0)

    def plan(self, subs: Sequence[Subscription]) -> list[list[Subscription]]:
        """One request per stream (``product`` is one string, §2.1), paced by the engine at
        40 requests/s: cap a connection at MAX_STREAMS_PER_CONN streams (10 s of subscribing)."""
        return self.pack(subs, lambda s: (1,), (MAX_STREAMS_PER_CONN,))

    def decode_endpoint(self, market: str) -> str:
        return PUBLIC  # one wire format: the decoder handles private frames too

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> BGESession:
        # Loaded with the first connection: parsing specs needs none of the protocol machinery.
        from tickwire.venues.bge.session import BGESession

        return BGESession(self, endpoint, conn, options)
