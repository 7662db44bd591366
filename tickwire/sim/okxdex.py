"""OKX DEX market WebSocket simulator (``/ws/v6/dex``, also the older ``/ws/v5/dex``).

Written from ``protocols/okx.md`` §5 and the DEX WebSocket introduction (seeds/000, zh) only.
It reuses the OKX gateway machinery of :mod:`tickwire.sim.okx_gateway` (login, acks, limits, the 30 s
rule, notices, conn counting) with the DEX rules of seed 000:

* 3 connection requests per second per IP (HTTP 429 at the handshake) and, because the notes
  call the dimension ambiguous, 3 new logged-in connections per second per API key (``60014``);
* 480 subscribe/unsubscribe/login requests per hour per connection (``60014`` beyond);
* the 30 s rule: nothing subscribed 30 s after connecting, or nothing pushed for 30 s, closes
  with ``4004 No data received in 30s.``; text ``ping`` -> ``pong``;
* login before any subscribe (``60011``);
* at most 30 connections per channel per API key for the price, candle and trade channels
  (several args of one channel on one connection count once; the three channels are counted
  separately; every candle bar belongs to the one candle channel): ``channel-conn-count`` when a
  new connection subscribes, and over the limit the normal ack followed by
  ``channel-conn-count-error`` for the newest connection, whose subscription is terminated.
  Where the documents disagree the simulator plays both variants: seed 000's example of these
  events names the channel ``prices`` while the channel is ``price``; by default the events
  carry the subscribed name (``price``), and ``--option okxdex.conn_count_labels='{"price":
  "prices"}'`` plays the example's spelling (a client must accept both). The same holds for
  ``trade_token_key`` (``changedTokenInfo`` / ``amountExchanged``), ``signal_percent_suffix``
  (``Percent`` / ``Percentage``) and ``accept_bare_candle`` (``candle{bar}`` as well as
  ``dex-token-candle{bar}``) below;
* ``notice`` 64008 sent 30 s before a (scheduled or injected) service upgrade, then a close.

Channels: ``price``, ``dex-token-candle{bar}`` (and the bare ``candle{bar}`` spelling of some
doc pages, option ``accept_bare_candle``), ``price-info``, ``trades`` (``changedTokenInfo``, or
``amountExchanged`` with ``trade_token_key``), ``dex-market-new-signal-openapi``,
``kol_smartmoney-tracker-activity``, ``address-tracker-activity``,
``dex-market-memepump-new-token-openapi`` and ``dex-market-memepump-update-metrics-openapi``,
over a deterministic synthetic on-chain market per (``chainIndex``, ``tokenContractAddress``).

Values of the signal/memepump payloads are synthetic and plausible, not calibrated; sub-objects
the notes elide (``tags``, ``social``) hold invented fields.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from .framework import Cadence, Candle, CandleBuilder, SimConnection, Stream, now_ms, register_venue
from .okx_gateway import (
    CANDLE_BARS,
    GATEWAY_FAULTS,
    OkxConnection,
    OkxGatewayOptions,
    OkxGatewaySim,
    OkxStream,
    Sub,
    SubError,
    bar_bounds,
)

__all__ = ["DEMO_STREAMS", "DexToken", "OkxDexOptions", "OkxDexSim"]

PATHS = {"/ws/v6/dex": "dex", "/ws/v5/dex": "dex"}
SOLANA = "501"
_EVM_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_RE = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_BAR_SET = frozenset(CANDLE_BARS)

TOKEN_CHANNELS = frozenset({"price", "price-info", "trades"})
CHAIN_CHANNELS = frozenset({"dex-market-new-signal-openapi", "dex-market-memepump-new-token-openapi",
                            "dex-market-memepump-update-metrics-openapi"})
KOL_CHANNEL = "kol_smartmoney-tracker-activity"
ADDRESS_CHANNEL = "address-tracker-activity"

_CHAINS = {"1": "Ethereum", "56": "BNB Chain", SOLANA: "Solana", "8453": "Base"}
_EXPLORERS = {"1": "https://etherscan.io/tx/", "56": "https://bscscan.com/tx/", SOLANA: "https://solscan.io/tx/",
              "8453": "https://basescan.org/tx/"}
_DEXES = {"1": ["Uniswap V3", "Uniswap V2", "Curve"], "56": ["PancakeSwap V3", "PancakeSwap V2"],
          SOLANA: ["Raydium", "Orca", "Meteora DLMM", "Pump.fun"], "8453": ["Aerodrome", "Uniswap V3"]}

# "chainIndex:address" -> symbol, name, start price (USD), circulating supply
_TOKENS: dict[str, tuple[str, str, str, float]] = {
    "1:0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2": ("WETH", "Wrapped Ether", "3200", 2.9e6),
    "1:0xdac17f958d2ee523a2206206994597c13d831ec7": ("USDT", "Tether USD", "1.0", 6.0e10),
    "1:0x6982508145454ce325ddbf47a25b4ec3d2311933": ("PEPE", "Pepe", "0.0000105", 4.2e14),
    "1:0x382bb369d343125bfb2117af9c149795c6c65c50": ("DOCX", "Doc example token", "26.458143090226812", 5.0e7),
    "56:0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c": ("WBNB", "Wrapped BNB", "600", 1.3e6),
    "56:0x0e09fabb73bd3ade0a17ecc321fd13a19e81ce82": ("Cake", "PancakeSwap Token", "2.3", 3.0e8),
    "501:So11111111111111111111111111111111111111112": ("wSOL", "Wrapped SOL", "150", 4.0e8),
    "501:DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263": ("Bonk", "Bonk", "0.000022", 8.8e13),
    "501:EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v": ("USDC", "USD Coin", "1.0", 8.0e9),
    "8453:0x4200000000000000000000000000000000000006": ("WETH", "Wrapped Ether", "3200", 2.0e5),
    "8453:0x833589fcd6edb6e08f4c7c32d4f71b54bda02913": ("USDC", "USD Coin", "1.0", 4.0e9),
}
# the token each chain's trades are quoted against
_QUOTE = {"1": "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", "56": "0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c",
          SOLANA: "So11111111111111111111111111111111111111112", "8453": "0x4200000000000000000000000000000000000006"}


def _dec(x: float, sig: int = 17) -> str:
    """A float as a plain decimal string (no exponent) with at most ``sig`` significant digits."""
    if x == 0:
        return "0"
    s = format(Decimal(f"{x:.{sig}g}"), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def _pct(x: float) -> str:
    return f"{x:.2f}"


def _default_counted() -> list[str]:
    return ["price", "candle", "trades"]


def _default_chains() -> dict[str, str]:
    return dict(_CHAINS)


@dataclass
class OkxDexOptions(OkxGatewayOptions):
    """OKX DEX simulator options (defaults: the rules of the DEX WebSocket introduction)."""

    counted_channels: list[str] = field(default_factory=_default_counted)
    """Channel families under the 30-connections-per-channel-per-API-key rule (``price``,
    ``candle`` for every candle bar, ``trades``). The ``channel`` written in their
    ``channel-conn-count(-error)`` events is the subscribed name, or ``conn_count_labels[family]``:
    ``{"price": "prices"}`` plays seed 000's example, which disagrees with the channel name."""
    notice_lead_s: float = 30.0
    key_conn_limit: int = 3
    key_conn_window_s: float = 1.0
    chains: dict[str, str] = field(default_factory=_default_chains)
    """Supported ``chainIndex`` values (1 Ethereum, 56 BNB Chain, 501 Solana, 8453 Base)."""
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra tokens ``{"1:0xabc…": {"symbol": "ABC", "name": "…", "price": "1.5", "supply": 1e9}}``."""
    accept_unknown_tokens: bool = True
    """A well-formed address not in the universe gets a synthetic token (else ``60018``)."""
    require_lowercase_evm: bool = True
    """EVM addresses must be lower-case (a mixed-case address is answered with ``60018``)."""
    accept_bare_candle: bool = True
    """Accept ``candle{bar}`` as well as ``dex-token-candle{bar}``."""
    trade_token_key: str = "changedTokenInfo"
    """``changedTokenInfo`` (onchainos reference) or ``amountExchanged`` (v5 field tables)."""
    signal_percent_suffix: str = "Percent"
    """``Percent`` (docs: ``top10HolderPercent``) or ``Percentage`` (skill reference)."""
    trades_per_s: float = 4.0
    """Synthetic swaps per second and token (multiplied by ``speed``)."""
    filtered_prob: float = 0.05
    """Share of trades flagged ``isFiltered:"1"`` (they move neither price nor candles)."""
    price_interval_ms: float = 100.0
    trades_interval_ms: float = 100.0
    candle_interval_ms: float = 1000.0
    candle_period_s: float | None = None
    price_info_interval_ms: float = 1000.0
    signal_interval_ms: float = 2000.0
    signal_prob: float = 0.6
    tracker_interval_ms: float = 1500.0
    memepump_interval_ms: float = 3000.0
    max_wallet_args: int = 200
    """``address-tracker-activity`` args per connection."""


class DexTrade:
    __slots__ = ("no", "ts", "buy", "price", "amount", "usd", "filtered", "rid")

    def __init__(self, no: int, ts: int, buy: bool, price: float, amount: float, usd: float, filtered: bool, rid: int):
        self.no, self.ts, self.buy, self.price, self.amount, self.usd = no, ts, buy, price, amount, usd
        self.filtered, self.rid = filtered, rid


class DexToken:
    """A token's synthetic on-chain market: swaps at random, a price moved by each swap."""

    MAX_CATCH_UP = 200

    def __init__(self, sim: "OkxDexSim", chain: str, address: str, symbol: str, name: str, price: float,
                 supply: float):
        self.sim = sim
        self.chain = chain
        self.address = address
        self.symbol = symbol
        self.name = name
        self.supply = supply
        self.rng = random.Random(f"{sim.seed}|okxdex|{chain}|{address}")
        rng = self.rng
        self.p0 = price
        self.price = price
        self.stable = abs(price - 1.0) < 1e-9
        self.liquidity = max(5e4, price * supply * rng.uniform(0.002, 0.02))
        self.holders = int(rng.uniform(2e3, 2e6))
        self.trade_no = rng.randint(10**9, 9 * 10**9)
        self.steps = 0
        self._t0_mono = time.monotonic()
        self._t0_ms = now_ms()
        self.last_ts = self._t0_ms
        self.listeners: list[Callable[[DexTrade], None]] = []
        self.last_clean: DexTrade | None = None
        # rolling statistics, seeded so the first price-info looks plausible
        self.win_open = {w: price * (1 + rng.uniform(-0.02, 0.02) * k) for w, k in
                         (("5M", 0.2), ("1H", 0.5), ("4H", 1.0), ("24H", 2.0))}
        base_vol = self.liquidity * rng.uniform(0.2, 3.0)
        self.win_vol = {"5M": base_vol / 288, "1H": base_vol / 24, "4H": base_vol / 6, "24H": base_vol}
        base_tx = int(rng.uniform(500, 50_000))
        self.win_txs = {"5M": base_tx // 288, "1H": base_tx // 24, "4H": base_tx // 6, "24H": base_tx}
        self.max_price = price * (1 + rng.uniform(0.01, 0.05))
        self.min_price = price * (1 - rng.uniform(0.01, 0.05))

    def sync(self) -> None:
        o = self.sim.opts
        rate = o.trades_per_s * o.speed
        if rate <= 0:
            return
        due = int((time.monotonic() - self._t0_mono) * rate)
        n = due - self.steps
        if n <= 0:
            return
        if n > self.MAX_CATCH_UP:
            self.steps = due - self.MAX_CATCH_UP
            n = self.MAX_CATCH_UP
        for _ in range(n):
            self.steps += 1
            self._swap(self._t0_ms + int(self.steps * 1000 / rate))

    def _swap(self, ts: int) -> None:
        rng = self.rng
        dev = (self.price - self.p0) / self.p0
        buy = rng.random() < 0.5 - max(-0.3, min(0.3, dev * 5))
        usd = min(self.liquidity * 0.05, rng.lognormvariate(5.5, 1.4))
        filtered = rng.random() < self.sim.opts.filtered_prob
        price = self.price
        if not filtered:
            if self.stable:
                price = 1.0 + rng.uniform(-0.0008, 0.0008)
            else:
                impact = usd / self.liquidity * (1 if buy else -1)
                price = max(price * (1 + impact + rng.gauss(0, 0.0004)), 1e-12)
            self.price = price
            self.max_price = max(self.max_price, price)
            self.min_price = min(self.min_price, price)
            for w in self.win_vol:
                self.win_vol[w] += usd
                self.win_txs[w] += 1
        self.trade_no += rng.randint(1, 40)
        t = DexTrade(self.trade_no, ts, buy, price, usd / price, usd, filtered, rng.getrandbits(64))
        self.last_ts = ts
        if not filtered:
            self.last_clean = t
        for fn in self.listeners:
            fn(t)


class DexStream(OkxStream):
    def __init__(self, sim: "OkxDexSim", topic: str, cadence: Cadence | None, arg: dict[str, Any]):
        super().__init__(sim, topic, cadence, arg)  # type: ignore[arg-type]
        self.dsim = sim


class PriceStream(DexStream):
    """``price``: the latest price after trades that pass the candle filter."""

    def __init__(self, sim: "OkxDexSim", topic: str, cadence: Cadence, arg: dict[str, Any], token: DexToken):
        super().__init__(sim, topic, cadence, arg)
        self.token = token
        self.seen = -1

    def activate(self) -> None:
        self.token.sync()
        t = self.token.last_clean
        self.seen = t.no if t is not None else -1

    def tick(self) -> None:
        tok = self.token
        tok.sync()
        t = tok.last_clean
        if t is None or t.no == self.seen:
            return
        self.seen = t.no
        self.publish(self.frame([{"time": str(t.ts), "price": _dec(t.price)}]))


class _Bar(Candle):
    """A DEX candle (prices and amounts as floats; ``turnover`` is the USD volume); ``dirty``
    until pushed."""

    __slots__ = ("dirty",)

    def __init__(self, start: int, end: int, price: float):
        super().__init__(start, end, price)  # type: ignore[arg-type]
        self.volume = 0.0  # type: ignore[assignment]
        self.dirty = True


def _candle_ts(t: DexTrade) -> int | None:
    """A swap's time for the candles; ``None`` for a filtered swap (candles ignore them)."""
    return None if t.filtered else t.ts


class DexCandleStream(DexStream):
    """``dex-token-candle{bar}``: an object ``{ts,o,h,l,c,vol,volUsd,confirm}``, at most once a second."""

    def __init__(self, sim: "OkxDexSim", topic: str, cadence: Cadence, arg: dict[str, Any], token: DexToken,
                 bar: str):
        super().__init__(sim, topic, cadence, arg)
        self.token = token
        self.bar = bar
        self.candles = CandleBuilder(self._bounds, self._fold, make=_Bar, ts=_candle_ts)

    def _bounds(self, t: int) -> tuple[int, int]:
        return bar_bounds(self.bar, t, self.dsim.opts.candle_period_s)

    def activate(self) -> None:
        self.token.sync()
        self.candles.start(self.token.listeners, self.token.price)

    def deactivate(self) -> None:
        self.candles.stop()

    @staticmethod
    def _fold(c: _Bar, t: DexTrade) -> None:
        c.add(t.price, t.amount, t.usd, t.ts)  # type: ignore[arg-type]
        c.dirty = True

    def _item(self, c: _Bar) -> dict[str, str]:
        return {"ts": str(c.start), "o": _dec(c.open), "h": _dec(c.high), "l": _dec(c.low), "c": _dec(c.close),
                "vol": _dec(c.volume, 15), "volUsd": _dec(c.turnover, 15), "confirm": "1" if c.closed else "0"}

    def on_subscribe(self, conn: SimConnection) -> None:
        if self.candles.current is not None:
            self.send_to(conn, self.frame([self._item(self.candles.current)]))

    def tick(self) -> None:
        self.token.sync()
        for c in self.candles.due(now_ms()):
            self.publish(self.frame([self._item(c)]))
        c = self.candles.current
        if c is not None and c.dirty:
            c.dirty = False
            self.publish(self.frame([self._item(c)]))


class PriceInfoStream(DexStream):
    """``price-info``: price, market cap, changes, volumes and counts (at most once a second)."""

    def __init__(self, sim: "OkxDexSim", topic: str, cadence: Cadence, arg: dict[str, Any], token: DexToken):
        super().__init__(sim, topic, cadence, arg)
        self.token = token
        self.key: Any = None
        self._frame: bytes | None = None

    def _build(self) -> tuple[Any, bytes]:
        tok = self.token
        tok.sync()
        p = tok.price
        d: dict[str, str] = {"time": str(tok.last_ts), "price": _dec(p), "marketCap": _dec(p * tok.supply, 15)}
        for w in ("5M", "1H", "4H", "24H"):
            d[f"priceChange{w}"] = _pct((p / tok.win_open[w] - 1) * 100)
        for w in ("5M", "1H", "4H", "24H"):
            d[f"volume{w}"] = _dec(tok.win_vol[w], 15)
        for w in ("5M", "1H", "4H", "24H"):
            d[f"txs{w}"] = str(tok.win_txs[w])
        d.update(maxPrice=_dec(tok.max_price), minPrice=_dec(tok.min_price), liquidity=_dec(tok.liquidity, 15),
                 circSupply=_dec(tok.supply, 15), holders=str(tok.holders), tradeNum=_dec(tok.win_vol["24H"] / p, 15))
        return (tok.last_ts, tok.trade_no), self.frame([d])

    def activate(self) -> None:
        self.key, self._frame = self._build()

    def on_subscribe(self, conn: SimConnection) -> None:
        if self._frame is not None:
            self.send_to(conn, self._frame)

    def tick(self) -> None:
        key, frame = self._build()
        if key != self.key:
            self.key, self._frame = key, frame
            self.publish(frame)


class DexTradesStream(DexStream):
    """``trades``: every swap of the token (``isFiltered`` marks those the candles ignore)."""

    def __init__(self, sim: "OkxDexSim", topic: str, cadence: Cadence, arg: dict[str, Any], token: DexToken):
        super().__init__(sim, topic, cadence, arg)
        self.token = token
        self.buf: list[DexTrade] = []

    def activate(self) -> None:
        self.token.sync()
        self.buf = []
        self.token.listeners.append(self._on_trade)

    def deactivate(self) -> None:
        try:
            self.token.listeners.remove(self._on_trade)
        except ValueError:
            pass
        self.buf = []

    def _on_trade(self, t: DexTrade) -> None:
        self.buf.append(t)
        if len(self.buf) > 20_000:
            del self.buf[:10_000]

    def tick(self) -> None:
        self.token.sync()
        if not self.buf:
            return
        buf, self.buf = self.buf, []
        items = [self.dsim.trade_item(self.token, t) for t in buf]
        n = self.publish(self.frame(items)) - self.garbled
        self.dsim.truth.trades_sent(self.topic, [(x["id"], x["price"], x["volume"], x["type"]) for x in items], n)


class EventStream(DexStream):
    """A signal/tracker channel: with probability ``prob`` per tick, ``make()`` returns items."""

    def __init__(self, sim: "OkxDexSim", topic: str, cadence: Cadence, arg: dict[str, Any],
                 make: Callable[[random.Random], list[dict[str, Any]]], prob: float):
        super().__init__(sim, topic, cadence, arg)
        self.make = make
        self.prob = prob
        self.rng = random.Random(f"{sim.seed}|okxdex|{topic}")

    def tick(self) -> None:
        if self.rng.random() >= self.prob:
            return
        items = self.make(self.rng)
        if items:
            self.publish(self.frame(items))


#: What ``tickwire demo`` records from this simulator: prices, candles and trades of two tokens.
DEMO_STREAMS = (
    "okxdex:price:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",              # WETH
    "okxdex:dex-token-candle1m:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
    "okxdex:trades:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
    "okxdex:price:501/So11111111111111111111111111111111111111112",          # wSOL
)


@register_venue("okxdex")
class OkxDexSim(OkxGatewaySim):
    """OKX DEX market WebSocket simulator. See the module docstring and :class:`OkxDexOptions`."""

    paths = list(PATHS)
    Options = OkxDexOptions
    FAULTS = GATEWAY_FAULTS  # the gateway's own: the DEX channels carry no sequence numbers to fault
    demo_streams = DEMO_STREAMS
    opts: OkxDexOptions
    LOGIN_REQUIRED = True

    def __init__(self, *, seed: int = 0, options: Mapping[str, Any] | None = None, faults: Sequence[str] = ()):
        super().__init__(seed=seed, options=options, faults=faults)
        o = self.opts
        if o.trade_token_key not in ("changedTokenInfo", "amountExchanged"):
            raise ValueError("trade_token_key must be 'changedTokenInfo' or 'amountExchanged'")
        if o.signal_percent_suffix not in ("Percent", "Percentage"):
            raise ValueError("signal_percent_suffix must be 'Percent' or 'Percentage'")
        self.universe: dict[str, tuple[str, str, str, float]] = dict(_TOKENS)
        for k, v in o.tokens.items():
            chain, _, addr = k.partition(":")
            if not addr:
                raise ValueError(f"token key {k!r} must be 'chainIndex:address'")
            self.universe[k] = (str(v.get("symbol", "TKN")), str(v.get("name", v.get("symbol", "Token"))),
                                str(v.get("price", "1")), float(v.get("supply", 1e9)))
        self.tokens: dict[str, DexToken] = {}

    def route(self, path: str, query: dict[str, str]) -> str | None:
        return PATHS.get(path)

    # -- tokens -------------------------------------------------------------------------------

    def valid_address(self, chain: str, addr: str) -> bool:
        if chain == SOLANA:
            return bool(_B58_RE.match(addr))
        if not _EVM_RE.match(addr):
            return False
        return not (self.opts.require_lowercase_evm and addr != addr.lower())

    def token(self, chain: str, addr: str) -> DexToken | None:
        key = f"{chain}:{addr}"
        t = self.tokens.get(key)
        if t is not None:
            return t
        spec = self.universe.get(key)
        if spec is None:
            if not self.opts.accept_unknown_tokens:
                return None
            h = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
            r = random.Random(h)
            tail = addr[-4:].upper()
            spec = (f"T{tail}", f"Token {tail}", _dec(10 ** r.uniform(-6, 2), 8), 10 ** r.uniform(7, 12))
        symbol, name, price, supply = spec
        t = self.tokens[key] = DexToken(self, chain, addr, symbol, name, float(price), supply)
        return t

    def quote_token(self, chain: str, tok: DexToken) -> DexToken:
        addr = _QUOTE.get(chain)
        q = self.token(chain, addr) if addr else None
        if q is None or q is tok:
            for k in self.universe:  # any other token of the chain
                c, _, a = k.partition(":")
                if c == chain and a != tok.address:
                    q = self.token(c, a)
                    break
        return q or tok

    def _addr(self, chain: str, rng: random.Random) -> str:
        if chain == SOLANA:
            return "".join(rng.choice(_B58) for _ in range(44))
        return f"0x{rng.getrandbits(160):040x}"

    def _txhash(self, chain: str, rng: random.Random) -> str:
        if chain == SOLANA:
            return "".join(rng.choice(_B58) for _ in range(88))
        return f"0x{rng.getrandbits(256):064x}"

    def trade_item(self, tok: DexToken, t: DexTrade) -> dict[str, Any]:
        chain = tok.chain
        rng = random.Random(t.rid)
        q = self.quote_token(chain, tok)
        qpx = q.price if q is not tok else 1.0
        dex = rng.choice(_DEXES.get(chain, ["Uniswap V3"]))
        slug = dex.lower().replace(" ", "").replace(".", "")
        info = [{"amount": _dec(t.amount, 15), "tokenSymbol": tok.symbol, "tokenContractAddress": tok.address},
                {"amount": _dec(t.usd / qpx, 15), "tokenSymbol": q.symbol, "tokenContractAddress": q.address}]
        if t.buy:  # the trader gave the quote token
            info.reverse()
        return {"id": str(t.no), "txHashUrl": _EXPLORERS.get(chain, "https://www.oklink.com/tx/") + self._txhash(chain, rng),
                "userAddress": self._addr(chain, rng), "dexName": dex,
                "poolLogoUrl": f"https://static.okx.com/cdn/wallet/logo/{slug}.png", "type": "buy" if t.buy else "sell",
                self.opts.trade_token_key: info, "price": _dec(t.price), "volume": _dec(t.usd, 15),
                "time": str(t.ts), "isFiltered": "1" if t.filtered else "0"}

    # -- channels -----------------------------------------------------------------------------

    def _family(self, ch: str) -> str | None:
        fam = "candle" if (ch.startswith("dex-token-candle") or ch.startswith("candle")) else ch
        return fam if fam in self.opts.counted_channels else None

    def _candle_bar(self, ch: str) -> str | None:
        if ch.startswith("dex-token-candle"):
            bar = ch[len("dex-token-candle"):]
        elif ch.startswith("candle") and self.opts.accept_bare_candle:
            bar = ch[len("candle"):]
        else:
            return None
        return bar if bar in _BAR_SET else None

    def _chain(self, arg: dict[str, Any]) -> str:
        chain = arg.get("chainIndex")
        if chain is None or chain == "":
            raise SubError("60013")
        if not isinstance(chain, str):
            raise SubError("60013")
        if chain not in self.opts.chains:
            raise SubError("60018", f"Wrong URL or channel:{arg.get('channel')},chainIndex:{chain} doesn't exist")
        return chain

    def resolve(self, conn: OkxConnection, op: str, arg: dict[str, Any]) -> Sub:
        o = self.opts
        ch: str = arg["channel"]
        bar = self._candle_bar(ch)
        if ch in TOKEN_CHANNELS or bar is not None:
            chain = self._chain(arg)
            addr = arg.get("tokenContractAddress")
            if not isinstance(addr, str) or not addr:
                raise SubError("60013")
            tok = self.token(chain, addr) if self.valid_address(chain, addr) else None
            if tok is None:
                raise SubError("60018", f"Wrong URL or channel:{ch},chainIndex:{chain},"
                                        f"tokenContractAddress:{addr} doesn't exist")
            key = f"{ch}|{chain}|{addr}"
            push_arg = {"channel": ch, "chainIndex": chain, "tokenContractAddress": addr}
            if ch == "price":
                cad = self.cadence(o.push_interval(o.price_interval_ms), "price")
                make: Callable[[], Stream] = lambda: PriceStream(self, key, cad, push_arg, tok)  # noqa: E731
            elif ch == "price-info":
                cad = self.cadence(o.push_interval(o.price_info_interval_ms), "price-info")
                make = lambda: PriceInfoStream(self, key, cad, push_arg, tok)  # noqa: E731
            elif ch == "trades":
                cad = self.cadence(o.push_interval(o.trades_interval_ms), "trades")
                make = lambda: DexTradesStream(self, key, cad, push_arg, tok)  # noqa: E731
            else:
                assert bar is not None
                cad = self.cadence(o.push_interval(o.candle_interval_ms), "candle")
                make = lambda: DexCandleStream(self, key, cad, push_arg, tok, bar)  # noqa: E731
            return Sub(key, lambda: self.stream(key, make), ch, self._family(ch))
        if ch in CHAIN_CHANNELS:
            chain = self._chain(arg)
            key = f"{ch}|{chain}"
            push_arg = {"channel": ch, "chainIndex": chain}
            if ch == "dex-market-new-signal-openapi":
                ms, gen = o.signal_interval_ms, lambda r: self._signal(chain, r)
            elif ch == "dex-market-memepump-new-token-openapi":
                ms, gen = o.memepump_interval_ms, lambda r: [self._meme(chain, r, False)]
            else:
                ms, gen = o.memepump_interval_ms, lambda r: [self._meme(chain, r, True) for _ in range(r.randint(2, 6))]
            cad = self.cadence(o.push_interval(ms), ch)
            return Sub(key, lambda: self.stream(key, lambda: EventStream(self, key, cad, push_arg, gen, o.signal_prob)),
                       ch, self._family(ch))
        if ch == KOL_CHANNEL:
            key = ch
            cad = self.cadence(o.push_interval(o.tracker_interval_ms), ch)
            return Sub(key, lambda: self.stream(key, lambda: EventStream(
                self, key, cad, {"channel": ch}, lambda r: [self._activity(r, None)], o.signal_prob)), ch, self._family(ch))
        if ch == ADDRESS_CHANNEL:
            wallet = arg.get("walletAddress")
            if not isinstance(wallet, str) or not wallet:
                raise SubError("60013")
            if not (_B58_RE.match(wallet) or (_EVM_RE.match(wallet) and (not o.require_lowercase_evm
                                                                          or wallet == wallet.lower()))):
                raise SubError("60018", f"Wrong URL or channel:{ch},walletAddress:{wallet} doesn't exist")
            key = f"{ch}|{wallet}"
            if op == "subscribe" and key not in conn.topics:
                n = sum(1 for k in conn.topics if k.startswith(ADDRESS_CHANNEL + "|"))
                if n >= o.max_wallet_args:
                    # invented text: the notes give the limit (200 per connection), not the error
                    raise SubError("60013", f"Invalid args: at most {o.max_wallet_args} walletAddress per connection")
            cad = self.cadence(o.push_interval(o.tracker_interval_ms * 2), ADDRESS_CHANNEL)
            return Sub(key, lambda: self.stream(key, lambda: EventStream(
                self, key, cad, {"channel": ch, "walletAddress": wallet}, lambda r: [self._activity(r, wallet)],
                o.signal_prob / 2)), ch, self._family(ch))
        raise SubError("60018", f"Wrong URL or channel:{ch} doesn't exist")

    # -- synthetic signal payloads ------------------------------------------------------------

    def _some_token(self, chain: str | None, r: random.Random) -> DexToken:
        keys = [k for k in self.universe if chain is None or k.partition(":")[0] == chain]
        if not keys and chain is not None and self.opts.accept_unknown_tokens:
            addr = self._addr(chain, r)
            t = self.token(chain, addr)
            if t is not None:
                t.sync()
                return t
        c, _, a = r.choice(sorted(keys or self.universe)).partition(":")
        t = self.token(c, a)
        assert t is not None
        t.sync()
        return t

    def _signal(self, chain: str, r: random.Random) -> list[dict[str, Any]]:
        tok = self._some_token(chain, r)
        sfx = self.opts.signal_percent_suffix
        n = r.randint(1, 5)
        wallets = [self._addr(chain, r) for _ in range(n)]
        return [{
            "timestamp": str(now_ms()), "chainIndex": chain,
            "token": {"tokenAddress": tok.address, "symbol": tok.symbol, "name": tok.name,
                      "logo": f"https://static.okx.com/cdn/wallet/logo/{tok.symbol.lower()}.png",
                      "marketCapUsd": _dec(tok.price * tok.supply, 15), "holders": str(tok.holders),
                      f"top10Holder{sfx}": _pct(r.uniform(5, 60))},
            "price": _dec(tok.price), "walletType": ",".join(sorted(r.sample(["1", "2", "3"], r.randint(1, 3)))),
            "triggerWalletCount": str(n), "triggerWalletAddress": ",".join(wallets),
            "amountUsd": _dec(r.lognormvariate(8, 1.2), 12), f"soldRatio{sfx}": _pct(r.uniform(0, 100)),
        }]

    def _activity(self, r: random.Random, wallet: str | None) -> dict[str, Any]:
        tok = self._some_token(None, r)
        chain = tok.chain
        q = self.quote_token(chain, tok)
        usd = r.lognormvariate(7, 1.5)
        return {
            "txHash": self._txhash(chain, r), "walletAddress": wallet or self._addr(chain, r),
            "quoteTokenSymbol": q.symbol, "quoteTokenAmount": _dec(usd / max(q.price, 1e-12), 12),
            "tokenSymbol": tok.symbol, "tokenContractAddress": tok.address, "chainIndex": chain,
            "tokenPrice": _dec(tok.price), "marketCap": _dec(tok.price * tok.supply, 15),
            "realizedPnlUsd": _dec(r.gauss(0, usd * 0.3), 10), "tradeType": r.choice(("1", "2")),
            "tradeTime": str(now_ms()), "trackerType": sorted(r.sample([1, 2], r.randint(1, 2))),
        }

    def _meme(self, chain: str, r: random.Random, update: bool) -> dict[str, Any]:
        addr = self._addr(chain, r)
        if chain != SOLANA:
            addr = addr.lower()
        else:
            addr = addr[:40] + "pump"
        sym = "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(r.randint(3, 6)))
        mcap = r.lognormvariate(9, 1.3)
        txs = r.randint(5, 3000)
        buys = r.randint(0, txs)
        quote = _QUOTE.get(chain, "")
        d: dict[str, Any] = {
            "chainIndex": chain, "protocolId": "1" if chain == SOLANA else "2", "quoteTokenAddress": quote,
            "tokenContractAddress": addr, "symbol": sym, "name": sym.title() + " Coin",
            "logoUrl": f"https://static.okx.com/cdn/web3/meme/{sym.lower()}.png",
            "createdTimestamp": str(now_ms() - (r.randint(60_000, 3_600_000) if update else r.randint(0, 5_000))),
            "market": {"marketCapUsd": _dec(mcap, 12), "volumeUsd1h": _dec(mcap * r.uniform(0.05, 2), 12),
                       "txCount1h": str(txs), "buyTxCount1h": str(buys), "sellTxCount1h": str(txs - buys)},
            "bondingPercent": _pct(r.uniform(0, 100)),
            # invented sub-fields: the notes elide the contents of tags and social
            "tags": {"top10HoldingsPercent": _pct(r.uniform(10, 80)), "devHoldingsPercent": _pct(r.uniform(0, 20)),
                     "snipersPercent": _pct(r.uniform(0, 30)), "insidersPercent": _pct(r.uniform(0, 30))},
            "social": {"x": "", "telegram": "", "website": ""},
            "bagsFeeClaimed": r.choice((True, False)),
        }
        if update:
            d["mayhemModeTimeRemaining"] = str(r.randint(0, 3600))
        return d
