"""OKX v5 (sans-I/O): public, business and private endpoints.

Everything tickwire knows about OKX lives in this package: here the endpoints, the channel
table and spec parsing, and how streams are spread over connections; ``wire`` the push
shapes; ``session`` the books (seqId chain, checksum, REST snapshot) on top of the v5 gateway
that OKX DEX speaks too (:mod:`tickwire.venues.okx_gateway`: login, ping, requests, replies);
``mappers`` the events of each channel. Reference: shared/protocols/okx.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from tickwire.subscription import Subscription
from tickwire.venues.base import SessionOptions
from tickwire.venues.okx_gateway import BARS, GatewayOptions, GatewayVenue, arg_key

if TYPE_CHECKING:
    from tickwire.venues.okx.session import OkxSession

# Port 8443 was retired for WebSocket on 2026-10-31 (okx.md §1.1, UNVERIFIED date): the
# default is the plain host (443); ``venue_options={"okx": {"port": 8443}}`` selects 8443.
NETWORKS = {
    "mainnet": "wss://ws.okx.com",
    "demo": "wss://wspap.okx.com",
    "aws": "wss://wsaws.okx.com",
    "eea": "wss://wseea.okx.com",
    "eea-demo": "wss://wseeapap.okx.com",
    "us": "wss://wsus.okx.com",
    "us-demo": "wss://wsuspap.okx.com",
}
# Lines (tickwire.net.lines, ``lines=True`` / ``--lines``): hosts that serve the same data, per network.
# ws.okx.com [DOC]; wsaws.okx.com (AWS) [DOC: older OKX help article; CODE: python-okx examples, OKX's
# Java/Go SDK constants, ccxt comment] — documented, not probed from here (okx.md §1.1). Other networks
# have one documented host each.
HOSTS = {"mainnet": ("wss://ws.okx.com", "wss://wsaws.okx.com")}
REST = {"mainnet": "https://www.okx.com", "demo": "https://www.okx.com", "aws": "https://aws.okx.com",
        "eea": "https://eea.okx.com", "us": "https://us.okx.com"}

_BAR_ALIASES = {"1h": "1H", "2h": "2H", "4h": "4H", "6h": "6H", "12h": "12H", "1d": "1D", "1w": "1W"}

# channel -> (endpoint, kind, arg key for the symbol, needs login)
CHANNELS: dict[str, tuple[str, str, str, bool]] = {
    "tickers": ("public", "ticker", "instId", False),
    "trades": ("public", "trades", "instId", False),
    "trades-all": ("business", "trades", "instId", False),
    "books": ("public", "book", "instId", False),
    "books5": ("public", "book", "instId", False),
    "bbo-tbt": ("public", "book", "instId", False),
    "books-l2-tbt": ("public", "book", "instId", True),
    "books50-l2-tbt": ("public", "book", "instId", True),
    "books-elp": ("public", "book", "instId", False),
    "funding-rate": ("public", "funding", "instId", False),
    "mark-price": ("public", "mark", "instId", False),
    "open-interest": ("public", "open_interest", "instId", False),
    "index-tickers": ("public", "index", "instId", False),
    "liquidation-orders": ("public", "liquidations", "instType", False),
    "orders": ("private", "orders", "instType", True),
    "account": ("private", "account", "ccy", True),
    "positions": ("private", "positions", "instType", True),
    "balance_and_position": ("private", "balance_and_position", "", True),
}
ALIASES = {"book": "books", "orderbook": "books", "trade": "trades", "ticker": "tickers", "funding": "funding-rate",
           "mark": "mark-price", "oi": "open-interest", "open_interest": "open-interest", "index": "index-tickers",
           "liquidations": "liquidation-orders"}
SNAPSHOT_ONLY = ("books5", "bbo-tbt")     # every push is a full book
MAX_BOOKS_PER_CONN = 30                   # OKX advice for many 50/400-level books: < 30 per connection
MAX_ARGS_PER_CONN = 240


def market_of(inst_id: str) -> str:
    """spot / swap / futures / option / index, from the shape of an OKX instId."""
    parts = inst_id.split("-")
    if len(parts) == 2:
        return "spot"
    if parts[-1] == "SWAP":
        return "swap"
    if len(parts) == 5 and parts[-1] in ("C", "P"):
        return "option"
    if len(parts) == 3 and parts[-1].isdigit():
        return "futures"
    return ""


@dataclass
class OKXOptions(GatewayOptions):
    verify_checksum: bool = True   # check each book against OKX's CRC32 (a mismatch resyncs)
    snapshot_wait_s: float = 2.0   # how long a books stream waits for its snapshot before REST


class OKX(GatewayVenue):
    name = "okx"
    venue_options = OKXOptions
    markets = ("", "spot", "swap", "futures", "option", "margin")
    default_market = ""
    networks = NETWORKS
    hosts = HOSTS
    max_conns_per_channel = 30  # private channels: connections per channel per sub-account (okx.md §1.3)

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        if market not in self.markets:
            raise self.bad(spec, f"unknown market {market!r}; OKX specs need none: okx:books:BTC-USDT")
        native = ALIASES.get(channel, channel)
        if native.startswith("candles.") or native.startswith("candle"):
            bar = native.split(".", 1)[1] if native.startswith("candles.") else native[6:]
            bar = _BAR_ALIASES.get(bar, bar)
            if bar not in BARS:
                raise self.bad(spec, f"candle bar {bar!r} not served; bars: {' '.join(BARS)}")
            native = f"candle{bar}"
            endpoint, kind, key, auth = "business", "candles", "instId", False
        elif native in CHANNELS:
            endpoint, kind, key, auth = CHANNELS[native]
        else:
            raise self.bad(spec, "unknown channel; native: " + ", ".join(CHANNELS) +
                           ", candle1m...; aliases: " + ", ".join(sorted(ALIASES)) + ", candles.1m")
        if key == "instId" and (not symbol or symbol != symbol.upper() or " " in symbol):
            raise self.bad(spec, f"instId {symbol!r} must be an upper-case OKX instrument like BTC-USDT")
        arg: dict[str, str] = {"channel": native}
        if key == "instType":
            itype = symbol.upper()
            if itype in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION", "ANY", "EVENTS"):
                arg["instType"] = itype
            else:  # an instrument filter on an instType channel
                arg["instType"] = "ANY" if native != "liquidation-orders" else (market_of(symbol).upper() or "SWAP")
                arg["instId"] = symbol
        elif key == "ccy":
            if symbol not in ("*", "ALL", "all"):
                arg["ccy"] = symbol
        elif key:
            arg[key] = symbol
        mk = market or market_of(symbol)
        return Subscription(spec=f"okx:{native}:{symbol}", venue="okx", market=mk, channel=native,
                            symbol=symbol, kind=kind, endpoint=endpoint, topic=arg_key(arg),
                            needs_auth=auth, params=arg)

    def rest_base(self, ws_base: str | None, network: str) -> str:
        """REST host for snapshots: the override's host (ws->http), else the venue's."""
        if ws_base:
            return ws_base.replace("wss://", "https://").replace("ws://", "http://").rstrip("/")
        return REST.get(network, REST["mainnet"])

    def decode_endpoint(self, market: str) -> str:
        return "public"

    def plan(self, subs: Sequence[Subscription]) -> list[list[Subscription]]:
        """Spread books over connections (< 30 each), others up to 240 args per connection."""
        return self.pack(subs, lambda s: (1, s.kind == "book" and s.channel not in SNAPSHOT_ONLY),
                         (MAX_ARGS_PER_CONN, MAX_BOOKS_PER_CONN))

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> OkxSession:
        # Loaded with the first connection: parsing specs needs none of the protocol machinery.
        from tickwire.venues.okx.session import OkxSession

        return OkxSession(self, endpoint, conn, options)
