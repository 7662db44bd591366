"""OKX DEX market WebSocket (sans-I/O): logged-in on-chain prices, candles, trades and signals.

The gateway speaks the OKX v5 envelope (:mod:`tickwire.venues.okx_gateway`: login, text
ping/pong, one ack per arg, notices, channel-conn-count). What is the DEX's own lives in this
package: here the endpoint, the channels, the ``chainIndex/token`` args, and the rule of at most
30 connections per channel per API key; ``wire`` the push shapes; ``session`` the login-first
connection; ``mappers`` the events. Reference: shared/protocols/okx.md §5 and shared/seeds/000
(the DEX WebSocket page).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from tickwire.subscription import SpecError, Subscription
from tickwire.venues.base import SessionOptions
from tickwire.venues.okx_gateway import BARS, GatewayVenue, arg_key

if TYPE_CHECKING:
    from tickwire.venues.okxdex.session import DexSession

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
CANDLE_PREFIX = "dex-token-candle"

# Seed 000: "at most 30 connections per channel per API key; several args of one channel on
# one connection count once". We pack everything onto as few connections as the per-connection
# rules allow, so 30 is never approached (the 31st is never opened: see plan()).
MAX_CONN_PER_CHANNEL = 30
MAX_ARGS_PER_CONN = 200   # address-tracker-activity documents <= 200 per connection; used for all


class OKXDex(GatewayVenue):
    name = "okxdex"
    markets = ("",)
    networks = NETWORKS
    max_conns_per_channel = MAX_CONN_PER_CHANNEL  # per API key, every host counted (hot standbys too)
    ws_version = "v6"  # venue_options={"okxdex": {"path": "v5"}} selects the older /ws/v5/dex

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        if market:
            raise self.bad(spec, "okxdex takes no market: okxdex:price:1/0xdac17f958d2ee523a2206206994597c13d831ec7")
        native = ALIASES.get(channel, channel)
        if native.startswith("candles."):
            native = CANDLE_PREFIX + native.split(".", 1)[1]
        elif native.startswith("candle"):
            # Some doc versions spell the channel bare ("candle1m"); the current name is
            # dex-token-candle{bar}. We accept both and send the current name.
            native = "dex-token-" + native
        if native.startswith(CANDLE_PREFIX):
            bar = native[len(CANDLE_PREFIX):]
            bar = {"1h": "1H", "4h": "4H", "1d": "1D", "1w": "1W"}.get(bar, bar)
            if bar not in BARS:
                raise self.bad(spec, f"candle bar {bar!r} not served; bars: {' '.join(BARS)}")
            native = f"{CANDLE_PREFIX}{bar}"
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

    def decode_endpoint(self, market: str) -> str:
        return "dex"

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

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> DexSession:
        # Loaded with the first connection: parsing specs needs none of the protocol machinery.
        from tickwire.venues.okxdex.session import DexSession

        return DexSession(self, endpoint, conn, options)
