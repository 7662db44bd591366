"""BG Exchange (BGE) WebSocket V2 simulator (venue name ``bge``).

Written from ``protocols/bge.md`` and the docs examples only (no client code shared). One path
serves public and private channels, as the docs give one URL for both::

    /v2/ws   (also /v2/ws/, the first draft's spelling)

What it does, per the notes:

* server pings ``{"ping": ms}`` every ``ping_interval_s``; a connection that does not echo
  ``{"pong": <same ms>}`` within ``pong_timeout_s`` is closed;
* more than ``rate_limit_msgs`` client messages within any ``rate_window_s`` (sliding) closes
  the connection on the offending message (pongs count; WebSocket-level PING frames do not);
* no successful ``sub`` within ``subscribe_timeout_s`` of connecting -> close; subscribed but
  nothing pushed for ``no_data_timeout_s`` -> close (server pings count as data by default);
* flat ``sub`` / ``unsub`` / ``req`` requests (``event biz type product interval zip``, plus
  ``from``/``to`` for candle history), the docs' ack shapes (``code:200,"status":"OK"``, the
  orderbook ack echoing ``interval`` as a number), the generic error frame
  ``{"event","code","msg"}`` (``code`` the string ``"400"`` for a malformed request, as the
  docs example shows, with the request re-serialised and ``product`` renamed ``pairCode``);
* public ``market`` types ``candles`` (9 intervals), ``fills``, ``orderbook`` (gears 0..11:
  precision and 150/20 levels, a full snapshot every 500 ms), ``percent10`` (+-10 % of mid, 200
  levels a side, every 500 ms) and ``ticker``; ``req`` for candle history and the ticker;
* ``login`` with ``access_sign = Base64(HMAC-SHA256(secret, str(access_timestamp)))``, the
  400xx codes, 401 for private requests before login; private ``assets`` and ``orders``
  (``product:"all"`` for orders) with synthetic order activity after login; ``req`` for both;
* ``zip:true`` -> that subscription's pushes (and, by default, the ack) as binary gzip frames;
* one global ``seq_id`` counter: every push that carries ``seq_id`` takes the next value, so it
  rises strictly across all channels, and a push fanned out to several connections carries the
  same value (the same bytes) on each;
* a deterministic synthetic market over a configurable product universe (320 by default);
* faults: the generic ones plus ``skip-seq``, ``skip-seq-every``, ``dup-seq``, ``reorder-seq``,
  ``no-ping``, ``ignore-pong``, ``sub-fail``, ``rate-close``.

Behaviour the notes mark UNVERIFIED is an option of :class:`BgeOptions`; message texts the
docs do not give are marked "invented" below.
"""

from __future__ import annotations

import base64
import calendar
import gzip
import hashlib
import hmac
import math
import random
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import msgspec
from picows import WSCloseCode, WSMsgType

from .framework import (
    GENERIC_FAULTS,
    Cadence,
    Candle,
    CandleBuilder,
    Fault,
    FaultSpec,
    Market,
    ReplayClient,
    ReplayDialect,
    SimConnection,
    SimOptions,
    Stream,
    SymbolSpec,
    VenueSim,
    format_units,
    json_object,
    market_fold,
    now_ms,
    register_venue,
)

__all__ = [
    "BGE_FAULTS",
    "BgeOptions",
    "BgeReplayDialect",
    "BgeSim",
    "CANDLE_INTERVALS",
    "default_products",
    "DEMO_STREAMS",
    "GEARS",
    "sign",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode
_BINARY = WSMsgType.BINARY

PATHS = ("/v2/ws", "/v2/ws/")

#: K-line interval -> seconds (``1mon`` is a calendar month: 0 here)
CANDLE_INTERVALS: dict[str, int] = {
    "1min": 60, "5min": 300, "15min": 900, "30min": 1800, "60min": 3600,
    "4hour": 14_400, "1day": 86_400, "1week": 604_800, "1mon": 0,
}
#: orderbook gear -> (price decimals or None for full precision, max levels per side)
GEARS: dict[str, tuple[int | None, int]] = {
    "0": (None, 150), "1": (5, 150), "2": (4, 150), "3": (3, 150), "4": (2, 150), "5": (1, 150),
    "6": (None, 20), "7": (5, 20), "8": (4, 20), "9": (3, 20), "10": (2, 20), "11": (1, 20),
}
PUBLIC_TYPES = ("candles", "fills", "orderbook", "percent10", "ticker")
PRIVATE_TYPES = ("assets", "orders")
REQ_TYPES = frozenset({"candles", "ticker", "assets", "orders"})
_REQUEST_KEYS = frozenset({"event", "biz", "type", "product", "interval", "zip", "from", "to"})
_LOGIN_KEYS = frozenset({"event", "params", "zip"})

#: 400xx login codes (ERR2 table): English text, Chinese text. Only 40001's two texts appear in
#: the docs verbatim; the others are the table's meanings, worded here.
AUTH_ERRORS: dict[int, tuple[str, str]] = {
    40001: ("ACCESS_KEY cannot be empty", "ACCESS_KEY不能为空"),
    40002: ("ACCESS_SIGN cannot be empty", "ACCESS_SIGN不能为空"),
    40003: ("ACCESS_TIMESTAMP cannot be empty", "ACCESS_TIMESTAMP不能为空"),
    40005: ("Invalid ACCESS_TIMESTAMP", "无效的ACCESS_TIMESTAMP"),
    40006: ("Invalid ACCESS_KEY", "无效的ACCESS_KEY"),
    40008: ("Request timestamp expired", "请求时间戳过期"),
    40010: ("API verification failed", "API 校验失败"),
    40012: ("Invalid API user", "无效的API用户"),
    40013: ("User has been banned", "用户已禁止"),
    40014: ("User is frozen", "用户已冻结"),
    40015: ("Invalid IP request", "无效的IP请求"),
    40016: ("API_KEY has expired", "API_KEY已过期"),
}
_NOT_LOGGED_IN = ("not logged in", "未登录")  # invented wording of WSERR 401

BGE_FAULTS: dict[str, FaultSpec] = dict(GENERIC_FAULTS)
BGE_FAULTS.update(
    {
        s.name: s
        for s in (
            FaultSpec("skip-seq", "none",
                      "withhold the next push of every active seq_id channel (its seq_id is used, never sent)", needs_subscribers=True),
            FaultSpec("skip-seq-every", "count_or_duration",
                      "withhold every Nth push of each seq_id channel (skip-seq-every=50) or periodically (=2s)"),
            FaultSpec("dup-seq", "none", "send the next push of every seq_id channel twice (same bytes, same seq_id)", needs_subscribers=True),
            FaultSpec("reorder-seq", "none",
                      "deliver the next two pushes of every seq_id channel in reverse order (seq_id goes back)", needs_subscribers=True),
            FaultSpec("no-ping", "none", "stop sending {\"ping\": ts} on every connection until 'clear'"),
            FaultSpec("ignore-pong", "none",
                      "ignore client pongs until 'clear' (connections hit the pong deadline and are closed)"),
            FaultSpec("sub-fail", "count",
                      "answer the next N sub requests with the docs' code 500 status FAIL ack (default 1)", 1),
            FaultSpec("rate-close", "none", "close every connection now as the message-rate rule does "
                                            "(rate_close_code, 'too many messages')", needs_subscribers=True),
        )
    }
)

# (tick, lot, start price, mean order size in lots) of the named products
_MAJORS: dict[str, tuple[str, str, str, int]] = {
    "BTC_USDT": ("0.01", "0.0001", "65000", 50),
    "ETH_USDT": ("0.01", "0.0001", "3200", 200),
    "SOL_USDT": ("0.001", "0.001", "150", 300),
    "XRP_USDT": ("0.0001", "0.01", "0.6000", 20000),
    "DOGE_USDT": ("0.00001", "1", "0.15000", 1000),
    "BNB_USDT": ("0.01", "0.001", "600", 200),
    "ADA_USDT": ("0.0001", "0.01", "0.4500", 20000),
    "LTC_USDT": ("0.01", "0.001", "80", 300),
    "TRX_USDT": ("0.00001", "0.1", "0.12000", 10000),
    "LINK_USDT": ("0.001", "0.01", "15", 500),
    "ETH_BTC": ("0.000001", "0.0001", "0.049000", 200),
}


def default_products(count: int = 320) -> list[str]:
    """The named products, then ``X001_USDT``, ``X002_USDT``… up to ``count`` products."""
    out = list(_MAJORS)
    i = 0
    while len(out) < count:
        i += 1
        out.append(f"X{i:03d}_USDT")
    return out[:count] if count < len(out) else out


def sign(secret: str, timestamp: Any) -> str:
    """The WS login signature: ``Base64(HMAC-SHA256(secret, str(timestamp)))`` (bge.md §5.2)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class BgeOptions(SimOptions):
    """BGE simulator options. Defaults follow protocols/bge.md; UNVERIFIED values are marked."""

    market_steps_per_s: float = 20.0
    """Synthetic market events per second and product (lower than the base default: BGE is a
    small venue and the default universe has 320 products)."""
    book_levels: int = 400
    products: list[str] = field(default_factory=default_products)
    """The product universe (``BASE_QUOTE``). Default: 11 named pairs plus ``X001_USDT``…, 320 in all."""
    product_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Overrides: ``{"BTC_USDT": {"tick": "0.1", "lot": "0.001", "price": "70000"}}``."""
    product_case_insensitive: bool = False
    """Accept ``btc_usdt`` for ``BTC_USDT`` (UNVERIFIED; the docs only say ``all`` is case-insensitive)."""

    # -- heartbeat, idle and rate rules (not scaled by ``speed``) ------------------------------
    ping_interval_s: float = 15.0
    """Server ping period (UNVERIFIED: not documented). 0 disables pings."""
    pong_timeout_s: float = 30.0
    """A ping not answered by a matching pong within this long closes the connection. 0: off."""
    pong_must_match: bool = True
    """A pong must echo the timestamp of an outstanding ping to count (the docs ask for it)."""
    subscribe_timeout_s: float = 30.0
    """No successful ``sub`` within this long after connecting -> close. 0: off."""
    no_data_timeout_s: float = 30.0
    """Subscribed, but nothing pushed to the client for this long -> close. 0: off."""
    ping_counts_as_data: bool = True
    """Server pings count as "data" for ``no_data_timeout_s`` (UNVERIFIED; without it a quiet
    private subscription would be closed every 30 s)."""
    rate_limit_msgs: int = 50
    """Client messages allowed per ``rate_window_s``; the next one closes the connection."""
    rate_window_s: float = 1.0
    rate_count_pongs: bool = True
    """Pongs count toward the rate limit (UNVERIFIED; counting them is the safe assumption)."""
    rate_close_code: int = 1008
    """Close code of the rate-limit close (UNVERIFIED; 1000..4999). 0: drop the TCP connection,
    no close frame."""
    idle_close_code: int = 1000
    """Close code for the pong, no-subscription and no-data closes (UNVERIFIED). 0: TCP drop."""

    # -- push cadences (ms, divided by ``speed``) ---------------------------------------------
    book_interval_ms: float = 500.0
    percent10_interval_ms: float = 500.0
    ticker_interval_ms: float = 1000.0
    """UNVERIFIED (not documented)."""
    candle_interval_ms: float = 1000.0
    """How often the current candle is pushed (UNVERIFIED; the docs example pushes idle candles)."""
    fills_interval_ms: float = 100.0
    """How often accumulated trades are pushed (the docs: "whenever trades happen")."""
    max_fills_per_push: int = 100
    percent10_levels: int = 200
    percent10_range: float = 0.10

    # -- candles ------------------------------------------------------------------------------
    candle_period_s: float | None = None
    """If set, every candle lasts this many whole seconds (tests: see candles roll quickly)."""
    candle_tz_offset_s: int = 0
    """Candle boundaries in UTC plus this offset (UNVERIFIED; 28800 would be UTC+8)."""
    max_req_candles: int = 1000
    """Most candles one history ``req`` returns, the latest of the range (UNVERIFIED page size)."""

    # -- request shapes -----------------------------------------------------------------------
    zip_format: str = "gzip"
    """``zip:true`` framing (UNVERIFIED): ``gzip`` | ``zlib`` | ``deflate`` (raw) binary frames,
    or ``off`` (ignore the flag, send text)."""
    zip_acks: bool = True
    """The ack / req response of a ``zip:true`` request is compressed too (UNVERIFIED)."""
    zip_pings: bool = False
    """Pings are compressed on a connection holding any ``zip:true`` subscription (UNVERIFIED)."""
    require_zip: bool = True
    """``zip`` is required in sub/unsub/req (the docs' table says so); missing -> 400."""
    strict_keys: bool = True
    """Unknown request keys (``para``, the V1 nested ``params``…) -> 400 "Invalid request"."""
    ack_interval_as_number: bool = True
    """Orderbook sub/unsub acks echo ``interval`` as a number (the docs example does)."""
    seq_start: int | None = None
    """First global ``seq_id`` (default: drawn from the seed, around 1e8)."""

    # -- login and private channels -----------------------------------------------------------
    api_keys: dict[str, str] = field(default_factory=lambda: {"sim-key": "sim-secret"})
    """API key -> secret accepted by ``login``."""
    api_key_errors: dict[str, int] = field(default_factory=dict)
    """API key -> a code among 40012/40013/40014/40015/40016 returned after a valid signature."""
    login_window_s: float = 30.0
    """``|now - access_timestamp|`` allowed before 40008 (UNVERIFIED: not documented)."""
    lang: str = "en"
    """Language of the 400xx/401 texts: ``en`` or ``zh``."""
    private_interval_ms: float = 1000.0
    """Synthetic private activity: one order event per logged-in account per interval."""
    private_products: list[str] = field(default_factory=lambda: ["BTC_USDT", "ETH_USDT"])
    """Products of the synthetic orders of an ``orders``/``all`` subscription."""
    initial_balance: str = "1000000"
    """Starting ``available`` of every currency of a simulated account."""


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _strip(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _fmt(x: float, decimals: int = 8) -> str:
    return _strip(f"{x:.{decimals}f}")


def _f8(units: int) -> str:
    """1e-8 units -> a fixed 8-decimal string (the private order fields)."""
    return format_units(units, 8)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _rename_product(obj: Any) -> Any:
    """The server's re-serialisation quirk: ``product`` shows up as ``pairCode`` (bge.md §7.1)."""
    if isinstance(obj, dict):
        return {("pairCode" if k == "product" else k): _rename_product(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rename_product(v) for v in obj]
    return obj


def candle_bounds(interval: str, t_s: int, tz: int = 0, period_s: float | None = None) -> tuple[int, int]:
    """``[start, next_start)`` in unix seconds of the candle holding ``t_s``."""
    if period_s:
        p = max(1, int(period_s))
        s = t_s - t_s % p
        return s, s + p
    if interval == "1mon":
        d = datetime.fromtimestamp(t_s + tz, tz=timezone.utc)
        s = calendar.timegm((d.year, d.month, 1, 0, 0, 0)) - tz
        y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return s, calendar.timegm((y, m, 1, 0, 0, 0)) - tz
    p = CANDLE_INTERVALS[interval]
    monday = 4 * 86_400 if interval == "1week" else 0  # 1970-01-05 was a Monday
    s = t_s - (t_s + tz - monday) % p
    return s, s + p


class BgeCandle(Candle):
    """A candle that also counts its prints."""

    __slots__ = ("count",)

    def __init__(self, start: int, end: int, price: int):
        super().__init__(start, end, price)
        self.count = 0

    def add(self, price: int, size: int, notional: float, ts: int) -> None:
        super().add(price, size, notional, ts)
        self.count += 1


class BgeConnection(SimConnection):
    def __init__(self, sim: VenueSim, cid: int, path: str, query: dict[str, str], ip: str, group: str):
        super().__init__(sim, cid, path, query, ip, group)
        self.zip: dict[str, bool] = {}
        self.api_key: str | None = None
        self.account: "Account | None" = None
        self.pending_pings: deque[tuple[int, float]] = deque()
        self.rx_times: deque[float] = deque()
        self.closing = False
        self.close_reason = ""
        self.first_sub_at: float | None = None
        self.last_data = self.opened_at
        self.pongs = 0

    @property
    def logged_in(self) -> bool:
        return self.account is not None

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update(logged_in=self.logged_in, pending_pings=len(self.pending_pings), pongs=self.pongs,
                 zip_topics=[t for t, z in self.zip.items() if z])
        return d


# ---------------------------------------------------------------------------------------------
# Public streams
# ---------------------------------------------------------------------------------------------


class BgeStream(Stream):
    """A topic shared by its subscribers; each push is encoded once (and compressed at most once)."""

    seq_faults = True

    def __init__(self, sim: "BgeSim", topic: str, cadence: Cadence | None, product: str):
        super().__init__(sim, topic, cadence)
        self.bsim = sim
        self.product = product
        self.pushes = 0
        # faults due on the next push: (fault kind, the injection that asked for it)
        self.skip_pending: tuple[str, int | None] | None = None
        self.dup_pending: tuple[str, int | None] | None = None
        self.reorder_pending: tuple[str, int | None] | None = None
        self.held: bytes | None = None

    def publish(self, data: bytes) -> int:
        sim = self.bsim
        now = time.monotonic()
        self.last_push = now
        packed: bytes | None = None
        topic = self.topic
        sim.publishing, g0 = self, sim.garbled
        n = 0
        for c in self.subs:
            if c.zip.get(topic) and sim.zip_on:  # type: ignore[attr-defined]
                if packed is None:
                    packed = sim.compress(data)
                ok = c.send_raw(_BINARY, packed)
            else:
                ok = c.send(data)
            if ok:
                n += 1
                c.last_data = now  # type: ignore[attr-defined]
        sim.publishing = None
        self.garbled = sim.garbled - g0
        sim.stats.frames_sent += n
        return n

    def emit(self, data: bytes, seq: int | None = None) -> int:
        """Publish one push (``seq``: its seq_id), applying the seq faults; returns to how many
        connections it was written."""
        self.pushes += 1
        if not self.seq_faults:
            return self.publish(data)
        sim = self.bsim
        truth = sim.truth
        every = sim._skip_every
        pending, self.skip_pending = self.skip_pending, None
        if pending is not None or (every > 0 and self.pushes % every == 0):
            kind, cause = pending if pending is not None else ("skip-seq-every", sim._skip_every_cause)
            sim.counters["seq_skipped"] += 1
            truth.fault(kind, stream=self.topic, seqs=() if seq is None else (seq,), detail="push withheld",
                        cause=cause)
            return 0
        if self.reorder_pending is not None:
            kind, cause = self.reorder_pending
            self.reorder_pending = None
            self.held = data
            truth.fault(kind, stream=self.topic, seqs=() if seq is None else (seq,),
                        detail="push held back, sent after the next one", cause=cause)
            return 0
        n = self.publish(data)
        if self.held is not None:
            held, self.held = self.held, None
            sim.counters["seq_reordered"] += 1
            self.publish(held)
        if self.dup_pending is not None:
            kind, cause = self.dup_pending
            self.dup_pending = None
            sim.counters["seq_duplicated"] += 1
            truth.fault(kind, stream=self.topic, seqs=() if seq is None else (seq,), detail="push sent twice",
                        cause=cause)
            self.publish(data)
        return n

    def deactivate(self) -> None:
        self.held = None
        self.skip_pending = self.dup_pending = self.reorder_pending = None


class CandleStream(BgeStream):
    """``candles``: the current candle (``data`` an object) every ``candle_interval_ms``."""

    def __init__(self, sim: "BgeSim", topic: str, cadence: Cadence, product: str, interval: str):
        super().__init__(sim, topic, cadence, product)
        self.market = sim.market(product)
        self.spec = self.market.spec
        self.interval = interval
        self.candles = CandleBuilder(self._bounds, market_fold(self.spec), make=BgeCandle)

    def _bounds(self, t_ms: int) -> tuple[int, int]:
        o = self.bsim.opts
        s, e = candle_bounds(self.interval, t_ms // 1000, o.candle_tz_offset_s, o.candle_period_s)
        return s * 1000, e * 1000 - 1

    def activate(self) -> None:
        m = self.market
        m.sync(None, self.bsim.opts.speed)
        self.candles.start(m.trade_listeners, m.last_price)

    def deactivate(self) -> None:
        super().deactivate()
        self.candles.stop()

    def _frame(self, c: BgeCandle) -> bytes:
        fp, fq = self.spec.fp, self.spec.fq
        sid = c.start // 1000
        data = {"id": sid, "open": fp(c.open), "close": fp(c.close), "high": fp(c.high), "low": fp(c.low),
                "filled_size": _fmt(c.turnover), "vol": fq(c.volume), "count": c.count,
                "seq_id": self.bsim.next_seq()}
        return _encode({"id": str(sid), "biz": "market", "type": "candles", "data": data,
                        "product": self.product, "interval": self.interval})

    def tick(self) -> None:
        self.market.sync(None, self.bsim.opts.speed)
        for c in self.candles.due(now_ms()):
            self.emit(self._frame(c))
        if self.candles.current is not None:
            self.emit(self._frame(self.candles.current))


class FillsStream(BgeStream):
    """``fills``: the trades since the last push (``data`` an array; no ``seq_id``)."""

    seq_faults = False

    def __init__(self, sim: "BgeSim", topic: str, cadence: Cadence, product: str):
        super().__init__(sim, topic, cadence, product)
        self.market = sim.market(product)
        self.id_base = sim.trade_id_base(product)

    def activate(self) -> None:
        self.market.sync(None, self.bsim.opts.speed)
        self.market.pending_trades = []

    def deactivate(self) -> None:
        super().deactivate()
        self.market.pending_trades = None

    def tick(self) -> None:
        m = self.market
        m.sync(None, self.bsim.opts.speed)
        pend = m.pending_trades
        if not pend:
            return
        trades = list(pend)
        pend.clear()
        fp, fq = m.spec.fp, m.spec.fq
        cap = max(1, self.bsim.opts.max_fills_per_push)
        base = self.id_base
        truth = self.bsim.truth
        for i in range(0, len(trades), cap):
            chunk = trades[i : i + cap]
            items = [{"vol": fq(t.size), "ts": t.ts_ms, "price": fp(t.price), "direction": t.side.lower(),
                      "id": (base + t.no) * 1000} for t in chunk]
            n = self.emit(_encode({"id": str(base + chunk[0].no), "biz": "market", "type": "fills", "data": items,
                                   "product": self.product}))
            truth.trades_sent(self.topic, [(str(x["id"]), x["price"], x["vol"], x["direction"]) for x in items],
                              n - self.garbled)


def _levels(side: Any, n: int, spec: SymbolSpec, decimals: int | None) -> list[list[str]]:
    """Top ``n`` levels of a book side, aggregated to ``decimals`` (bids floor, asks ceil)."""
    scale = spec.price_scale
    fq = spec.fq
    if decimals is None or decimals >= scale:
        fp = spec.fp
        return [[fp(p), fq(s)] for p, s in side.items_top(n)]
    f = 10 ** (scale - decimals)
    out: list[list[str]] = []
    cur: int | None = None
    acc = 0
    is_bid = side.is_bid
    sizes = side.sizes
    for i in range(len(side)):
        p = side.at(i)
        b = p // f if is_bid else -(-p // f)
        if b != cur:
            if cur is not None:
                out.append([format_units(cur, decimals), fq(acc)])
                if len(out) >= n:
                    return out
            cur, acc = b, 0
        acc += sizes[p]
    if cur is not None and len(out) < n:
        out.append([format_units(cur, decimals), fq(acc)])
    return out


class BookStream(BgeStream):
    """``orderbook`` at one gear: the full top-N book every ``book_interval_ms``, changed or not."""

    def __init__(self, sim: "BgeSim", topic: str, cadence: Cadence, product: str, gear: str):
        super().__init__(sim, topic, cadence, product)
        self.market = sim.market(product)
        self.gear = gear
        self.decimals, self.depth = GEARS[gear]
        self._cache: tuple[int, list, list] | None = None

    def book(self) -> tuple[list[list[str]], list[list[str]]]:
        m = self.market
        m.sync(None, self.bsim.opts.speed)
        c = self._cache
        if c is None or c[0] != m.version:
            c = self._cache = (m.version, _levels(m.bids, self.depth, m.spec, self.decimals),
                               _levels(m.asks, self.depth, m.spec, self.decimals))
        return c[1], c[2]

    def tick(self) -> None:
        bids, asks = self.book()
        seq = self.bsim.next_seq()
        self.bsim.truth.book_snapshot(self.topic, seq, bids, asks)  # the venue's book at seq, sent or not
        self.emit(_encode({"id": str(now_ms() // 1000), "biz": "market", "type": "orderbook",
                           "data": {"seq_id": seq, "bids": bids, "asks": asks},
                           "product": self.product, "interval": self.gear}), seq)


class Percent10Stream(BgeStream):
    """``percent10``: up to 200 levels a side within +-10 % of the mid, every 500 ms."""

    def __init__(self, sim: "BgeSim", topic: str, cadence: Cadence, product: str):
        super().__init__(sim, topic, cadence, product)
        self.market = sim.market(product)

    def book(self) -> tuple[list[list[str]], list[list[str]]]:
        m = self.market
        m.sync(None, self.bsim.opts.speed)
        o = self.bsim.opts
        mid = m.mid_units()
        lo, hi = mid * (1 - o.percent10_range), mid * (1 + o.percent10_range)
        fp, fq = m.spec.fp, m.spec.fq
        n = o.percent10_levels
        bids = [[fp(p), fq(s)] for p, s in m.bids.items_top(n) if p >= lo]
        asks = [[fp(p), fq(s)] for p, s in m.asks.items_top(n) if p <= hi]
        return bids, asks

    def tick(self) -> None:
        bids, asks = self.book()
        seq = self.bsim.next_seq()
        self.bsim.truth.book_snapshot(self.topic, seq, bids, asks)
        self.emit(_encode({"id": str(now_ms() // 1000), "biz": "market", "seq_id": seq, "type": "percent10",
                           "data": {"bids": bids, "asks": asks, "seq_id": seq}, "product": self.product}), seq)


class TickerStream(BgeStream):
    """``ticker``: 24 h statistics, ``data`` an array of one object."""

    def __init__(self, sim: "BgeSim", topic: str, cadence: Cadence, product: str):
        super().__init__(sim, topic, cadence, product)

    def tick(self) -> None:
        data = self.bsim.ticker_data(self.product, self.bsim.next_seq())
        self.emit(_encode({"id": str(data["id"]), "biz": "market", "type": "ticker", "product": self.product,
                           "data": [data]}))


# ---------------------------------------------------------------------------------------------
# Private channels
# ---------------------------------------------------------------------------------------------


class PrivateStream(BgeStream):
    """``assets`` / ``orders`` of one account and product (or ``all``); no ``id``, no ``seq_id``."""

    seq_faults = False

    def __init__(self, sim: "BgeSim", topic: str, account: "Account", typ: str, product: str):
        super().__init__(sim, topic, None, product)
        self.account = account
        self.typ = typ

    def activate(self) -> None:
        self.account.stream_on()

    def deactivate(self) -> None:
        super().deactivate()
        self.account.stream_off()

    def push(self, data: list[dict[str, Any]]) -> None:
        self.emit(_encode({"biz": "exchange", "type": self.typ, "product": self.product, "data": data}))


class Account:
    """One API key's simulated account: balances, open orders, and synthetic order activity."""

    def __init__(self, sim: "BgeSim", key: str):
        self.sim = sim
        self.key = key
        self.rng = random.Random(f"{sim.seed}|bge|account|{key}")
        self.balances: dict[str, list[int]] = {}  # currency -> [available, hold] in 1e-8
        self.orders: dict[str, dict[str, Any]] = {}  # open orders by id
        self.streams: dict[tuple[str, str], PrivateStream] = {}
        self.next_oid = self.rng.randint(170_000_000_000_000_000, 180_000_000_000_000_000)
        self.active = 0
        self.initial = int(round(float(sim.opts.initial_balance) * 1e8))

    def stream(self, typ: str, product: str) -> PrivateStream:
        s = self.streams.get((typ, product))
        if s is None:
            s = self.streams[(typ, product)] = PrivateStream(self.sim, f"exchange.{typ}.{product}", self, typ, product)
        return s

    def stream_on(self) -> None:
        self.active += 1
        if self.active == 1:
            self.sim.private_cadence().add(self)

    def stream_off(self) -> None:
        self.active = max(0, self.active - 1)
        if self.active == 0:
            self.sim.private_cadence().discard(self)

    def bal(self, cur: str) -> list[int]:
        b = self.balances.get(cur)
        if b is None:
            b = self.balances[cur] = [self.initial, 0]
        return b

    def assets(self, product: str, currencies: Sequence[str] | None = None) -> list[dict[str, str]]:
        base, quote = self.sim.currencies(product)
        out = []
        for cur in currencies or (quote, base):
            a, h = self.bal(cur)
            out.append({"currency": cur, "available": _strip(_f8(a)), "hold": _strip(_f8(h))})
        return out

    def open_orders(self, product: str) -> list[dict[str, str]]:
        return [self._view(o) for o in self.orders.values() if o["product"] == product]

    @staticmethod
    def _view(o: dict[str, Any]) -> dict[str, str]:
        return {"order_id": o["order_id"], "product": o["product"], "side": o["side"], "price": _f8(o["price"]),
                "size": _f8(o["size"]), "filled_amount": _f8(o["filled"]),
                "funds": _f8(o["price"] * o["size"] // 10**8), "filled_size": _f8(o["filled_value"]),
                "type": "limit", "status": o["status"], "client_oid": ""}

    def _candidates(self) -> list[str]:
        subs = {p for (t, p), s in self.streams.items() if s.subs and p != "all"}
        if ("orders", "all") in self.streams and self.streams[("orders", "all")].subs:
            subs.update(p for p in self.sim.opts.private_products if p in self.sim.product_set)
        return sorted(subs)

    def tick(self) -> None:
        cands = self._candidates()
        if not cands:
            return
        rng = self.rng
        p = rng.choice(cands)
        mine = [o for o in self.orders.values() if o["product"] == p]
        r = rng.random()
        if not mine or r < 0.45 or len(mine) < 2 and r < 0.6:
            self._new(p)
        elif r < 0.85:
            self._fill(rng.choice(mine))
        else:
            self._cancel(rng.choice(mine))

    def _new(self, product: str) -> None:
        rng, sim = self.rng, self.sim
        m = sim.market(product)
        m.sync(None, sim.opts.speed)
        spec = m.spec
        buy = rng.random() < 0.5
        ref = (m.bids.best() if buy else m.asks.best()) or spec.price_units
        k = rng.randint(0, 20) * spec.tick_units
        price_u = max(spec.tick_units, ref - k if buy else ref + k)
        price = price_u * 10 ** (8 - spec.price_scale) if spec.price_scale <= 8 else price_u // 10 ** (spec.price_scale - 8)
        lots = 1 + int(rng.expovariate(1.0 / max(1, spec.size_mean_lots)))
        size_u = lots * spec.lot_units
        size = size_u * 10 ** (8 - spec.qty_scale) if spec.qty_scale <= 8 else size_u // 10 ** (spec.qty_scale - 8)
        self.next_oid += rng.randint(1, 5000)
        o = {"order_id": str(self.next_oid), "product": product, "side": "buy" if buy else "sell",
             "price": price, "size": size, "filled": 0, "filled_value": 0, "status": "1"}
        self.orders[o["order_id"]] = o
        base, quote = sim.currencies(product)
        if buy:
            funds = price * size // 10**8
            b = self.bal(quote)
            b[0] -= funds
            b[1] += funds
            changed = [quote]
        else:
            b = self.bal(base)
            b[0] -= size
            b[1] += size
            changed = [base]
        self._publish(o, [dict(self._view(o))], changed)

    def _fill(self, o: dict[str, Any]) -> None:
        rng = self.rng
        left = o["size"] - o["filled"]
        qty = left if rng.random() < 0.5 else max(1, left // rng.randint(2, 4))
        value = o["price"] * qty // 10**8
        o["filled"] += qty
        o["filled_value"] += value
        o["status"] = "3" if o["filled"] >= o["size"] else "2"
        base, quote = self.sim.currencies(o["product"])
        if o["side"] == "buy":
            q = self.bal(quote)
            q[1] -= value
            self.bal(base)[0] += qty
        else:
            b = self.bal(base)
            b[1] -= qty
            self.bal(quote)[0] += value
        view = self._view(o)
        if o["status"] == "3":
            self._release(o)
            del self.orders[o["order_id"]]
        self._publish(o, [view], [quote, base])

    def _release(self, o: dict[str, Any]) -> str:
        """Give back what the order still holds; return the currency."""
        base, quote = self.sim.currencies(o["product"])
        if o["side"] == "buy":
            rest = o["price"] * o["size"] // 10**8 - o["filled_value"]
            cur = quote
        else:
            rest = o["size"] - o["filled"]
            cur = base
        b = self.bal(cur)
        rest = max(0, min(rest, b[1]))
        b[1] -= rest
        b[0] += rest
        return cur

    def _cancel(self, o: dict[str, Any]) -> None:
        o["status"] = "4"
        first = self._view(o)
        cur = self._release(o)
        o["status"] = "5"
        del self.orders[o["order_id"]]
        self._publish(o, [first], [])
        self._publish(o, [self._view(o)], [cur])

    def _publish(self, o: dict[str, Any], data: list[dict[str, str]], changed: list[str]) -> None:
        p = o["product"]
        for key in (("orders", p), ("orders", "all")):
            s = self.streams.get(key)
            if s is not None and s.subs:
                s.push(data)
        s = self.streams.get(("assets", p))
        if changed and s is not None and s.subs:
            s.push(self.assets(p, changed))


# ---------------------------------------------------------------------------------------------
# Replay and demo
# ---------------------------------------------------------------------------------------------


class BgeReplayDialect(ReplayDialect):
    """``tickwire replay``: the docs' acks; the server pings go on after the recording ends."""

    keepalive_s = 15.0

    def on_request(self, conn: ReplayClient, payload: bytes) -> list[str] | None:
        msg = json_object(payload)
        if msg is None or "pong" in msg:
            return None  # pongs to (recorded) server pings: nothing to check in a replay
        ev = msg.get("event")
        if ev == "login":
            conn.send_obj({"ts": now_ms(), "code": 200, "status": "OK", "event": "login"})
            return None
        if ev in ("sub", "unsub"):
            typ, prod, iv = msg.get("type"), msg.get("product"), msg.get("interval")
            ack: dict[str, Any] = {"biz": msg.get("biz"), "type": typ, "product": prod, "ts": now_ms(),
                                   "code": 200, "status": "OK", "event": ev}
            if iv not in (None, ""):
                ack["interval"] = int(iv) if typ == "orderbook" and str(iv).isdigit() else iv
            conn.send_obj(ack)
            if ev == "sub" and isinstance(typ, str) and isinstance(prod, str):
                return [f"{typ}.{iv}:{prod}" if iv not in (None, "") else f"{typ}:{prod}"]
        return None

    def is_answer(self, payload: bytes, binary: bool) -> bool:
        if binary or b'"event"' not in payload or b'"data"' in payload:
            return False
        msg = json_object(payload)
        if msg is None:
            return False
        if msg.get("event") not in ("sub", "unsub", "login"):
            return False
        code = msg.get("code")
        return (code is None or str(code) == "200") and str(msg.get("status", "OK")).upper() == "OK"

    def keepalive(self, conn: ReplayClient) -> None:
        conn.send_obj({"ping": now_ms()})


#: What ``tickwire demo`` records from this simulator: a few books, trades, tickers and candles.
DEMO_STREAMS = (
    "bge:orderbook.0:BTC_USDT", "bge:fills:BTC_USDT", "bge:ticker:BTC_USDT", "bge:candles.1min:BTC_USDT",
    "bge:orderbook.0:ETH_USDT", "bge:fills:ETH_USDT",
)


# ---------------------------------------------------------------------------------------------
# The venue simulator
# ---------------------------------------------------------------------------------------------


class _Reject(Exception):
    """A request that gets an error frame: ``code`` (int, or the string ``"400"``) and ``msg``."""

    def __init__(self, code: int | str, msg: str):
        super().__init__(msg)
        self.code = code
        self.msg = msg


@register_venue("bge")
class BgeSim(VenueSim):
    """BG Exchange V2 simulator. See the module docstring and :class:`BgeOptions`."""

    paths = list(PATHS)
    Options = BgeOptions
    FAULTS = BGE_FAULTS
    connection_class = BgeConnection
    replay_dialect = BgeReplayDialect
    demo_streams = DEMO_STREAMS
    opts: BgeOptions

    def __init__(self, *, seed: int = 0, options: Mapping[str, Any] | None = None, faults: Sequence[str] = ()):
        super().__init__(seed=seed, options=options, faults=faults)
        o = self.opts
        if o.zip_format not in ("gzip", "zlib", "deflate", "off"):
            raise ValueError(f"zip_format must be gzip, zlib, deflate or off, got {o.zip_format!r}")
        if o.lang not in ("en", "zh"):
            raise ValueError(f"lang must be 'en' or 'zh', got {o.lang!r}")
        for name in ("rate_close_code", "idle_close_code"):
            code = getattr(o, name)
            if code and not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
                raise ValueError(f"{name}={code} is not a close code that can be sent (0 = TCP drop)")
        for key, code in o.api_key_errors.items():
            if code not in AUTH_ERRORS:
                raise ValueError(f"api_key_errors[{key!r}]={code} is not a 400xx login code")
        if o.rate_limit_msgs < 1:
            raise ValueError("rate_limit_msgs must be >= 1")
        self.products: list[str] = list(dict.fromkeys(o.products))
        self.product_set = frozenset(self.products)
        self._upper = {p.upper(): p for p in self.products}
        self.zip_on = o.zip_format != "off"
        self._markets: dict[str, Market] = {}
        self._streams: dict[str, BgeStream] = {}
        self._accounts: dict[str, Account] = {}
        self._trade_base: dict[str, int] = {}
        self._ticker_count: dict[str, int] = {}
        self._seq = o.seq_start if o.seq_start is not None else self.rng.randint(100_000_000, 200_000_000)
        self._skip_every = 0
        self._skip_every_cause: int | None = None
        self._no_ping = False
        self._ignore_pong = False
        self._ignore_pong_cause: int | None = None
        self._sub_fail = 0
        self._sub_fail_cause: int | None = None
        self.counters: Counter[str] = Counter()
        """BGE counters: pings_sent, pongs, pongs_unmatched, rate_closes, pong_timeouts,
        nosub_closes, nodata_closes, seq_skipped, seq_duplicated, seq_reordered, sub_failed."""

    # -- instruments --------------------------------------------------------------------------

    def spec_for(self, product: str) -> SymbolSpec:
        base = _MAJORS.get(product)
        if base is None:
            r = random.Random(f"bge-spec|{product}")  # the catalog does not depend on the seed
            price = 10 ** r.uniform(-3, 3)
            scale = min(8, max(0, 4 - math.floor(math.log10(price))))
            tick = format_units(1, scale) if scale else "1"
            lot = "1" if price < 1 else "0.01"
            mean = max(1, int(100 / price / float(lot)))
            base = (tick, lot, f"{price:.{scale}f}", mean)
        tick, lot, price, mean = base
        o = self.opts.product_specs.get(product)
        if o:
            tick, lot, price = str(o.get("tick", tick)), str(o.get("lot", lot)), str(o.get("price", price))
            mean = int(o.get("size_mean_lots", mean))
        b, _, q = product.partition("_")
        return SymbolSpec(product, tick, lot, price, size_mean_lots=mean, base=b, quote=q or "USDT")

    def currencies(self, product: str) -> tuple[str, str]:
        b, _, q = product.partition("_")
        return b, q or "USDT"

    def market(self, product: str) -> Market:
        """The synthetic market of one product (shared by every channel and connection)."""
        m = self._markets.get(product)
        if m is None:
            m = Market(self.spec_for(product), f"{self.seed}|bge", levels=self.opts.book_levels,
                       steps_per_s=self.opts.market_steps_per_s)
            self._markets[product] = m
            self._ticker_count[product] = m.rng.randint(1_000, 200_000)
        return m

    def trade_id_base(self, product: str) -> int:
        b = self._trade_base.get(product)
        if b is None:
            b = self._trade_base[product] = random.Random(f"{self.seed}|bge|tid|{product}").randint(100_000, 9_000_000)
        return b

    def next_seq(self) -> int:
        """The next value of the global ``seq_id`` (one per push that carries it)."""
        self._seq += 1
        return self._seq

    @property
    def seq(self) -> int:
        """The last ``seq_id`` handed out."""
        return self._seq

    def ticker_data(self, product: str, seq: int) -> dict[str, Any]:
        m = self.market(product)
        m.sync(None, self.opts.speed)
        spec = m.spec
        fp, fq = spec.fp, spec.fq
        op, last = m.prev_price_24h, m.last_price
        change = last - op
        pct = change / op if op else 0.0
        return {"id": now_ms() // 1000, "seq_id": seq, "open": fp(op), "close": fp(last), "high": fp(m.high_24h),
                "low": fp(m.low_24h), "filled_size": _fmt(m.turnover_24h), "vol": fq(m.volume_24h),
                "count": self._ticker_count[product] + m.trade_no,
                "change": format_units(change, spec.price_scale) if change else "0",
                "change_percent": _fmt(pct, 4)}

    def history(self, product: str, interval: str, frm: int, to: int) -> list[dict[str, Any]]:
        """Candles starting within ``[frm, to]`` (seconds), at most ``max_req_candles``, the latest
        of the range, oldest first. Synthetic, deterministic, and continuous (open = previous close)."""
        o = self.opts
        spec = self.spec_for(product)
        tz, per = o.candle_tz_offset_s, o.candle_period_s
        end = min(to, now_ms() // 1000)
        out: list[dict[str, Any]] = []
        if end < frm:
            return out
        s, e = candle_bounds(interval, end, tz, per)
        while s >= frm and len(out) < max(0, o.max_req_candles):
            out.append(self._hist_candle(spec, interval, s, e))
            e = s
            s = candle_bounds(interval, s - 1, tz, per)[0]
        out.reverse()
        return out

    def _path(self, spec: SymbolSpec, t: int) -> float:
        """A deterministic price (in price units) at unix second ``t``."""
        k = t // 60
        noise = random.Random(f"{self.seed}|bge|hist|{spec.symbol}|{k}").uniform(-1, 1)
        x = t / 86_400.0
        return spec.price_units * (1 + 0.04 * math.sin(2 * math.pi * x / 7 + 1.3)
                                   + 0.015 * math.sin(2 * math.pi * x + 0.4) + 0.003 * noise)

    def _hist_candle(self, spec: SymbolSpec, interval: str, s: int, e: int) -> dict[str, Any]:
        tk = spec.tick_units

        def units(x: float) -> int:
            return max(tk, int(round(x / tk)) * tk)

        r = random.Random(f"{self.seed}|bge|hist|{spec.symbol}|{interval}|{s}")
        op, cl = units(self._path(spec, s)), units(self._path(spec, e))
        hi = units(max(op, cl) * (1 + r.uniform(0, 0.002)))
        lo = units(min(op, cl) * (1 - r.uniform(0, 0.002)))
        count = r.randint(1, 60)
        vol = sum(1 + int(r.expovariate(1.0 / max(1, spec.size_mean_lots))) for _ in range(count)) * spec.lot_units
        turnover = spec.qty_float(vol) * spec.price_float((op + cl) / 2)
        return {"id": s, "open": spec.fp(op), "close": spec.fp(cl), "high": spec.fp(hi), "low": spec.fp(lo),
                "filled_size": _fmt(turnover), "vol": spec.fq(vol), "count": count}

    def private_cadence(self) -> Cadence:
        return self.cadence(self.opts.push_interval(self.opts.private_interval_ms), "private")

    def account(self, key: str) -> Account:
        a = self._accounts.get(key)
        if a is None:
            a = self._accounts[key] = Account(self, key)
        return a

    def stream(self, typ: str, product: str, interval: str | None) -> BgeStream:
        """The shared stream of a (valid) public channel, created on first use."""
        topic = f"market.{typ}.{product}" + (f".{interval}" if interval is not None else "")
        s = self._streams.get(topic)
        if s is not None:
            return s
        o = self.opts
        if typ == "candles":
            s = CandleStream(self, topic, self.cadence(o.push_interval(o.candle_interval_ms), "candles"),
                             product, interval)  # type: ignore[arg-type]
        elif typ == "fills":
            s = FillsStream(self, topic, self.cadence(o.push_interval(o.fills_interval_ms), "fills"), product)
        elif typ == "orderbook":
            s = BookStream(self, topic, self.cadence(o.push_interval(o.book_interval_ms), "orderbook"),
                           product, interval)  # type: ignore[arg-type]
        elif typ == "percent10":
            s = Percent10Stream(self, topic, self.cadence(o.push_interval(o.percent10_interval_ms), "percent10"),
                                product)
        elif typ == "ticker":
            s = TickerStream(self, topic, self.cadence(o.push_interval(o.ticker_interval_ms), "ticker"), product)
        else:  # pragma: no cover - validated before
            raise ValueError(typ)
        self._streams[topic] = s
        return s

    def seq_streams(self) -> list[BgeStream]:
        return [s for s in self._streams.values() if s.seq_faults and s.subs]

    # -- frames -------------------------------------------------------------------------------

    def compress(self, data: bytes) -> bytes:
        fmt = self.opts.zip_format
        if fmt == "gzip":
            return gzip.compress(data, compresslevel=6, mtime=0)
        if fmt == "zlib":
            return zlib.compress(data)
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush()

    def _send(self, conn: BgeConnection, obj: dict[str, Any], zip_: bool = False, error: bool = False) -> None:
        data = _encode(obj)
        if error:
            self.stats.errors_sent += 1
        if zip_ and self.zip_on:
            ok = conn.send_raw(_BINARY, self.compress(data))
        else:
            ok = conn.send(data)
        if ok:
            self.stats.frames_sent += 1

    def _error(self, conn: BgeConnection, event: str, code: int | str, msg: str) -> None:
        self._send(conn, {"event": event, "code": code, "msg": msg}, error=True)

    def _text(self, pair: tuple[str, str]) -> str:
        return pair[1] if self.opts.lang == "zh" else pair[0]

    # -- handshake and connection rules -------------------------------------------------------

    def route(self, path: str, query: dict[str, str]) -> str | None:
        return "v2" if path in PATHS else None

    # -- REST (same port; the docs' REST host is https://api.bg.exchange/hk, so /hk/... too) -----

    def http_get(self, path: str, qs: str, headers: Any = None) -> tuple[int, bytes] | None:
        """``GET /v1/products``, ``/v1/products/{product}`` (the docs' product list; precisions
        from the simulated market's tick and lot) and ``/openapi/exchange/public/time``."""
        if path.startswith("/hk/"):
            path = path[3:]
        if path == "/openapi/exchange/public/time":
            now = now_ms()
            iso = datetime.fromtimestamp(now / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now % 1000:03d}Z"
            return 200, _encode({"epoch": f"{now / 1000:.3f}", "iso": iso, "timestamp": now})
        if path == "/v1/products":
            return 200, _encode([self.product_item(p) for p in self.products])
        if path.startswith("/v1/products/"):
            name = self._upper.get(path.rsplit("/", 1)[-1].upper())
            if name is None:
                return 400, _encode({"code": 1087, "message": "No data found"})
            return 200, _encode([self.product_item(name)])
        return None

    def product_item(self, product: str) -> dict[str, Any]:
        """One ``/v1/products`` entry. ``trade_precision`` is the price's decimals (the tick),
        ``amount_precision`` the size's (the lot)."""
        spec = self.spec_for(product)
        base, _, quote = product.partition("_")
        return {"product": product, "base_currency": base, "quote_currency": quote, "display_name": product,
                "status": "on", "maker_fees_rate": "0.001", "taker_fees_rate": "0.002",
                "quote_precision": str(spec.price_scale), "trade_precision": str(spec.price_scale),
                "amount_precision": str(spec.qty_scale), "max_buy_price_rate": "1.000000",
                "max_sell_price_rate": "1.000000", "max_trade_usd_per_order": "", "min_trade_usd_per_order": "",
                "max_market_taker_trade_rate": "1.000000", "min_market_taker_trade_rate": "1.000000",
                "max_market_trade_usd_per_order": "", "min_market_trade_usd_per_order": ""}

    def on_open(self, conn: SimConnection) -> None:
        assert isinstance(conn, BgeConnection)
        iv = self.opts.ping_interval_s
        if iv > 0:
            conn.every(iv, lambda: self._ping(conn))

    def _ping(self, conn: BgeConnection) -> None:
        if self._no_ping or conn.closing:
            return
        ts = now_ms()
        if conn.pending_pings and conn.pending_pings[-1][0] >= ts:
            ts = conn.pending_pings[-1][0] + 1  # keep outstanding timestamps distinct
        data = _encode({"ping": ts})
        if self.opts.zip_pings and self.zip_on and any(conn.zip.values()):
            ok = conn.send_raw(_BINARY, self.compress(data))
        else:
            ok = conn.send(data)
        if not ok:
            return
        now = time.monotonic()
        conn.pending_pings.append((ts, now))
        if self.opts.ping_counts_as_data:
            conn.last_data = now
        self.stats.pings += 1
        self.stats.frames_sent += 1
        self.counters["pings_sent"] += 1

    def _close(self, conn: BgeConnection, code: int, reason: str, counter: str, idle: bool = True,
               fault: str = "") -> None:
        if conn.closing:
            return
        conn.closing = True
        conn.close_reason = reason
        self.counters[counter] += 1
        if idle:
            self.stats.idle_closes += 1
        if fault:
            self.truth.fault(fault, conns=(conn.id,), detail=f"closed: {reason} ({code or 'TCP drop'})",
                             cause={"ignore-pong": self._ignore_pong_cause, "garble": self._garble_cause}.get(fault))
        else:
            self.truth.limit(counter.rstrip("s").replace("_", "-"), conn.id, f"{reason} ({code or 'TCP drop'})")
        if code:
            conn.close(WSCloseCode(code), reason.encode())
        else:
            conn.drop()

    def sweep(self) -> None:
        o = self.opts
        now = time.monotonic()
        for c in list(self.connections):
            assert isinstance(c, BgeConnection)
            if c.closing or c.stalled:
                continue
            if o.pong_timeout_s > 0 and c.pending_pings and now - c.pending_pings[0][1] >= o.pong_timeout_s:
                # (garbled pings cannot be answered: those timeouts are the garble fault's doing)
                self._close(c, o.idle_close_code, "pong timeout", "pong_timeouts",
                            fault="ignore-pong" if self._ignore_pong else "garble" if self.garble_pct else "")
            elif c.first_sub_at is None:
                if o.subscribe_timeout_s > 0 and now - c.opened_at >= o.subscribe_timeout_s:
                    self._close(c, o.idle_close_code, "no subscription", "nosub_closes")
            elif o.no_data_timeout_s > 0 and now - max(c.last_data, c.first_sub_at) >= o.no_data_timeout_s:
                self._close(c, o.idle_close_code, "no data", "nodata_closes")

    def _rate_ok(self, conn: BgeConnection) -> bool:
        o = self.opts
        now = time.monotonic()
        q = conn.rx_times
        edge = now - o.rate_window_s
        while q and q[0] <= edge:
            q.popleft()
        if len(q) >= o.rate_limit_msgs:
            self._close(conn, o.rate_close_code, "too many messages", "rate_closes", idle=False)
            return False
        q.append(now)
        return True

    # -- requests -----------------------------------------------------------------------------

    def on_text(self, conn: SimConnection, payload: bytes) -> None:
        assert isinstance(conn, BgeConnection)
        if conn.closing:
            return
        try:
            msg = _decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            msg = None
        is_pong = isinstance(msg, dict) and "pong" in msg and "event" not in msg
        if (not is_pong or self.opts.rate_count_pongs) and not self._rate_ok(conn):
            return
        conn.requests += 1
        if is_pong:
            self._pong(conn, msg["pong"])  # type: ignore[index]
            return
        if not isinstance(msg, dict):
            # invented: the docs show no answer to non-JSON; the first draft's "event":"error" is used
            text = payload.decode("utf-8", "replace")
            self._error(conn, "error", "400", f"Invalid request: {text}")
            return
        event = msg.get("event")
        ev = event if isinstance(event, str) else "error"
        try:
            if event == "login":
                self._login(conn, msg)
            elif event in ("sub", "unsub", "req"):
                self._request(conn, ev, msg)
            else:
                raise _Reject("400", self._invalid(msg))
        except _Reject as r:
            self._log(conn, ev, False)
            if ev == "login":
                self.stats.auth_failed += 1
            self._error(conn, ev, r.code, r.msg)

    def _invalid(self, msg: Any) -> str:
        return "Invalid request: " + _encode(_rename_product(msg)).decode("utf-8", "replace")

    def _log(self, conn: BgeConnection, event: str, ok: bool) -> None:
        self.stats.request_log.append((time.monotonic(), conn.id, conn.path, event, 1, ok))

    def _pong(self, conn: BgeConnection, value: Any) -> None:
        conn.pongs += 1
        self.counters["pongs"] += 1
        if self._ignore_pong:
            return
        ts: int | None = None
        if _is_int(value):
            ts = value
        elif isinstance(value, str) and value.isdigit():
            ts = int(value)
        q = conn.pending_pings
        if not self.opts.pong_must_match:
            q.clear()
            return
        for i, (pts, _) in enumerate(q):
            if pts == ts:
                for _ in range(i + 1):  # this ping and every older one are answered
                    q.popleft()
                return
        self.counters["pongs_unmatched"] += 1  # ignored (no error frame documented)

    def _product(self, msg: dict[str, Any], typ: str) -> tuple[str, str]:
        """(as sent, canonical) product of a request, or raise."""
        prod = msg.get("product")
        if typ == "orders" and prod.lower() == "all":
            return prod, "all"
        canon = prod
        if prod not in self.product_set:
            canon = self._upper.get(prod.upper()) if self.opts.product_case_insensitive else None
            if canon is None:
                if prod.lower() == "all":
                    raise _Reject(400, f"Invalid request: product 'all' is not supported for {typ}")  # invented
                raise _Reject(400, f"Invalid request: product {prod} does not exist")  # invented
        return prod, canon

    def _request(self, conn: BgeConnection, event: str, msg: dict[str, Any]) -> None:
        o = self.opts
        st = self.stats
        if event == "sub":
            st.subscribe_requests += 1
            conn.subscribe_requests += 1
        elif event == "unsub":
            st.unsubscribe_requests += 1
            conn.unsubscribe_requests += 1
        # structure: the docs' "Invalid request" frame, code as the string "400"
        if o.strict_keys and any(k not in _REQUEST_KEYS for k in msg):
            raise _Reject("400", self._invalid(msg))
        biz, typ, prod = msg.get("biz"), msg.get("type"), msg.get("product")
        zip_ = msg.get("zip")
        if not (isinstance(biz, str) and isinstance(typ, str) and isinstance(prod, str) and prod):
            raise _Reject("400", self._invalid(msg))
        if zip_ is None and o.require_zip or zip_ is not None and not isinstance(zip_, bool):
            raise _Reject("400", self._invalid(msg))
        zip_ = bool(zip_)
        # values: code 400 as a number, invented texts
        if biz == "market":
            if typ not in PUBLIC_TYPES:
                raise _Reject(400, f"Invalid request: unknown type {typ} for biz market")
        elif biz == "exchange":
            if typ not in PRIVATE_TYPES:
                raise _Reject(400, f"Invalid request: unknown type {typ} for biz exchange")
            if conn.account is None:
                raise _Reject(401, self._text(_NOT_LOGGED_IN))
        else:
            raise _Reject(400, f"Invalid request: unknown biz {biz}")
        if event == "req" and typ not in REQ_TYPES:
            raise _Reject(400, f"Invalid request: req is not supported for {typ}")
        sent, canon = self._product(msg, typ)
        interval: str | None = None
        raw_iv = msg.get("interval")
        if typ == "candles":
            if not isinstance(raw_iv, str):
                raise _Reject("400", self._invalid(msg))
            if raw_iv not in CANDLE_INTERVALS:
                raise _Reject(400, f"Invalid request: unknown interval {raw_iv}")
            interval = raw_iv
        elif typ == "orderbook":
            if _is_int(raw_iv):
                raw_iv = str(raw_iv)  # a lenient server coerces 0 to "0" (UNVERIFIED)
            if not isinstance(raw_iv, str):
                raise _Reject("400", self._invalid(msg))
            if raw_iv not in GEARS:
                raise _Reject(400, f"Invalid request: unknown interval {raw_iv}")
            interval = raw_iv
        if event == "req":
            self._req(conn, msg, typ, sent, canon, interval, zip_)
            return
        if event == "sub" and self._sub_fail > 0:
            self._sub_fail -= 1
            self.counters["sub_failed"] += 1
            topic = f"market.{typ}.{canon}" + (f".{interval}" if interval is not None else "")
            self.truth.fault("sub-fail", stream=topic, conns=(conn.id,), detail="sub answered 500 FAIL",
                             cause=self._sub_fail_cause)
            self._log(conn, event, False)
            self._send(conn, {"biz": biz, "type": typ, "product": sent, "ts": now_ms(), "code": 500,
                              "status": "FAIL", "event": "sub"}, error=True)
            return
        if biz == "market":
            stream: BgeStream = self.stream(typ, canon, interval)
        else:
            assert conn.account is not None
            stream = conn.account.stream(typ, canon)
        self._log(conn, event, True)
        self._send(conn, self._ack(event, biz, typ, sent, interval), zip_=zip_ and o.zip_acks)
        if event == "sub":
            conn.zip[stream.topic] = zip_
            if conn not in stream.subs:
                stream.subscribe(conn)
            if conn.first_sub_at is None:
                conn.first_sub_at = time.monotonic()
        elif stream.topic in conn.topics:
            stream.unsubscribe(conn)
            conn.zip.pop(stream.topic, None)

    def _ack(self, event: str, biz: str, typ: str, product: str, interval: str | None) -> dict[str, Any]:
        ts = now_ms()
        if interval is None:
            return {"biz": biz, "type": typ, "product": product, "ts": ts, "code": 200, "status": "OK",
                    "event": event}
        iv: Any = int(interval) if typ == "orderbook" and self.opts.ack_interval_as_number else interval
        return {"biz": biz, "type": typ, "ts": ts, "code": 200, "status": "OK", "event": event,
                "product": product, "interval": iv}

    def _req(self, conn: BgeConnection, msg: dict[str, Any], typ: str, sent: str, canon: str,
             interval: str | None, zip_: bool) -> None:
        ts = now_ms()
        if typ == "candles":
            frm, to = msg.get("from"), msg.get("to")
            if not (_is_int(frm) and _is_int(to)):
                raise _Reject("400", self._invalid(msg))
            if frm >= 10**11 or to >= 10**11:  # type: ignore[operator]
                raise _Reject(400, "Invalid request: from/to must be unix seconds")  # invented
            if frm > to:  # type: ignore[operator]
                raise _Reject(400, "Invalid request: from is after to")  # invented
            data: Any = self.history(canon, interval, frm, to)  # type: ignore[arg-type]
            out = {"biz": "market", "type": "candles", "product": sent, "ts": ts, "code": 200, "status": "OK",
                   "data": data, "event": "req", "interval": interval}
        elif typ == "ticker":
            out = {"biz": "market", "type": "ticker", "ts": ts, "code": 200, "status": "OK",
                   "data": self.ticker_data(canon, self._seq), "event": "req", "product": sent}
        else:
            acct = conn.account
            assert acct is not None
            if canon == "all":
                raise _Reject(400, "Invalid request: req orders needs one product")  # invented
            data = acct.assets(canon) if typ == "assets" else acct.open_orders(canon)
            out = {"biz": "exchange", "type": typ, "product": sent, "ts": ts, "code": 200, "status": "OK",
                   "event": "req", "data": data}
        self._log(conn, "req", True)
        self._send(conn, out, zip_=zip_ and self.opts.zip_acks)

    def _login(self, conn: BgeConnection, msg: dict[str, Any]) -> None:
        o = self.opts
        params = msg.get("params")
        if (o.strict_keys and any(k not in _LOGIN_KEYS for k in msg)) or not isinstance(params, dict):
            raise _Reject("400", self._invalid(msg))
        if params.get("type", "api") != "api":
            raise _Reject(400, f"Invalid request: unsupported login type {params.get('type')}")  # invented
        key, sig, ts = params.get("access_key"), params.get("access_sign"), params.get("access_timestamp")

        def fail(code: int) -> _Reject:
            return _Reject(code, self._text(AUTH_ERRORS[code]))

        if key is None or key == "":
            raise fail(40001)
        if sig is None or sig == "":
            raise fail(40002)
        if ts is None or ts == "":
            raise fail(40003)
        if not isinstance(key, str):
            raise fail(40006)
        if _is_int(ts):
            ts_s = str(ts)
        elif isinstance(ts, str) and ts.isdigit():
            ts_s = ts  # signed exactly as sent
        else:
            raise fail(40005)
        secret = o.api_keys.get(key)
        if secret is None:
            raise fail(40006)
        if abs(now_ms() - int(ts_s)) > o.login_window_s * 1000:
            raise fail(40008)
        if not isinstance(sig, str) or not hmac.compare_digest(sign(secret, ts_s), sig):
            raise fail(40010)
        if key in o.api_key_errors:
            raise fail(o.api_key_errors[key])
        if conn.account is not None and conn.account.key != key:
            for topic, s in list(conn.topics.items()):  # a different account: drop the old private subs
                if isinstance(s, PrivateStream):
                    s.unsubscribe(conn)
                    conn.zip.pop(topic, None)
        conn.account = self.account(key)
        conn.api_key = key
        self.stats.auth_ok += 1
        self._log(conn, "login", True)
        self._send(conn, {"ts": now_ms(), "code": 200, "status": "OK", "event": "login"})

    # -- faults -------------------------------------------------------------------------------

    def apply_venue_fault(self, f: Fault) -> bool:
        name, value = f.name, f.value
        conns = [c.id for c in self.connections]
        if name == "skip-seq":
            self._mark("skip_pending", name)
        elif name == "skip-seq-every":
            if isinstance(value, int):
                self._skip_every = value
                self._skip_every_cause = self.truth.cause
            else:
                self.every(float(value), lambda: self._mark("skip_pending", "skip-seq-every"), fault=True)  # type: ignore[arg-type]
        elif name == "dup-seq":
            self._mark("dup_pending", name)
        elif name == "reorder-seq":
            self._mark("reorder_pending", name)
        elif name == "no-ping":
            self._no_ping = True
            self.truth.fault(name, conns=conns, detail="server pings stopped until 'clear'")
        elif name == "ignore-pong":
            self._ignore_pong = True
            self._ignore_pong_cause = self.truth.cause  # each pong-timeout close it causes is logged
        elif name == "sub-fail":
            self._sub_fail += int(value or 1)
            self._sub_fail_cause = self.truth.cause
        elif name == "rate-close":
            o = self.opts
            for c in list(self.connections):
                assert isinstance(c, BgeConnection)
                self._close(c, o.rate_close_code, "too many messages", "rate_closes", idle=False, fault=name)
        else:
            return False
        return True

    def _mark(self, flag: str, kind: str) -> None:
        for s in self.seq_streams():
            setattr(s, flag, (kind, self.truth.cause))

    def clear_faults(self) -> None:
        super().clear_faults()
        self._skip_every = 0
        self._no_ping = False
        if self._ignore_pong:  # the pings whose pongs were ignored can no longer be answered
            for c in self.connections:
                c.pending_pings.clear()  # type: ignore[attr-defined]
        self._ignore_pong = False
        self._sub_fail = 0
        for s in self._streams.values():
            s.skip_pending = s.dup_pending = s.reorder_pending = None

    def malformed_frame(self) -> bytes:
        return b'{"id":"1689143926","biz":"market","type":"orderbook","data":{"seq_id":'
