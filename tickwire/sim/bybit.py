"""Bybit v5 WebSocket simulator (public spot/linear/inverse/option streams and /v5/private).

Written from ``protocols/bybit.md`` only (no client code shared). Paths::

    /v5/public/spot  /v5/public/linear  /v5/public/inverse  /v5/public/option  /v5/private

(``/v5/trade`` is not simulated; an unknown path is refused with 404 at the handshake.)

What it does, per the notes:

* JSON ``{"op":"ping"}`` answered with the pong shape of each endpoint family; RFC 6455 pings
  get protocol pongs (they do not count as activity).
* subscribe/unsubscribe acks per category (one per request; option ``COMMAND_RESP``);
  ``success:false`` frames for an unknown topic (the whole batch fails on the first bad one),
  a duplicate, more than 10 args in a spot request, more than 21,000 characters of args on one
  connection, more than 2,000 option args, an unknown op, non-JSON text.
* HMAC auth on ``/v5/private`` (``GET/realtime{expires}``), ``max_active_time`` query parameter.
* per-IP connection budget (500 per 5 min) and concurrent connections (1,000 per category)
  refused with HTTP 429 at the handshake.
* topics ``orderbook.{depth}.{sym}``, ``publicTrade.{sym}`` (options by base coin),
  ``tickers.{sym}``, ``kline.{interval}.{sym}``, ``allLiquidation.{sym}`` over a deterministic
  synthetic market shared by every connection.
* idle rules: an unsubscribed silent public socket is dropped after ``public_idle_close_s``;
  the option endpoint drops sockets that do not JSON-ping within ``option_ping_timeout_s``;
  private sockets honour ``max_active_time``.

Values the notes mark UNVERIFIED are options (see :class:`BybitOptions`). Error texts that the
notes do not give are marked "invented" below.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar, Mapping, Sequence

from urllib.parse import parse_qs

import msgspec

from ._bybit_private import DEFAULT_PRIVATE_SYMBOLS, BybitAccount
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
    Trade,
    VenueSim,
    diff_window,
    fixed_period_bounds,
    format_units,
    json_object,
    market_fold,
    now_ms,
    parse_duration,
    register_venue,
)

__all__ = ["BYBIT_FAULTS", "BybitOptions", "BybitReplayDialect", "BybitSim", "DEFAULT_SPECS", "DEMO_STREAMS"]

_enc = msgspec.json.Encoder()
_encode = _enc.encode
_decode = msgspec.json.decode

PUBLIC = ("spot", "linear", "inverse", "option")
PATHS = {
    "/v5/public/spot": "spot",
    "/v5/public/linear": "linear",
    "/v5/public/inverse": "inverse",
    "/v5/public/option": "option",
    "/v5/private": "private",
}

KLINE_INTERVALS: dict[str, int] = {
    "1": 60, "3": 180, "5": 300, "15": 900, "30": 1800, "60": 3600, "120": 7200,
    "240": 14400, "360": 21600, "720": 43200, "D": 86400, "W": 604800, "M": 0,
}

PRIVATE_CATEGORIES = ("spot", "linear", "inverse", "option")
_PRIVATE_ALL_IN_ONE = ("order", "execution", "execution.fast", "position", "wallet", "greeks", "dcp")
_PRIVATE_BY_CATEGORY = (
    [f"order.{c}" for c in PRIVATE_CATEGORIES]
    + [f"execution.{c}" for c in PRIVATE_CATEGORIES]
    + [f"execution.fast.{c}" for c in PRIVATE_CATEGORIES]
    + [f"position.{c}" for c in ("linear", "inverse", "option")]
)
PRIVATE_TOPICS = frozenset(_PRIVATE_ALL_IN_ONE) | frozenset(_PRIVATE_BY_CATEGORY)
_PRIVATE_CATEGORISED = frozenset(_PRIVATE_BY_CATEGORY)

BYBIT_FAULTS: dict[str, FaultSpec] = dict(GENERIC_FAULTS)
BYBIT_FAULTS.update(
    {
        s.name: s
        for s in (
            FaultSpec("skip-u", "none", "the next delta of each order book skips one u (u jumps by 2)", needs_subscribers=True),
            FaultSpec("skip-u-every", "count_or_duration",
                      "skip one u every N deltas of each book (skip-u-every=50) or periodically (=2s)"),
            FaultSpec("restart-snapshot", "none",
                      "send a u=1 snapshot on each book topic, then continue deltas from u=1", needs_subscribers=True),
            FaultSpec("restart-snapshot-every", "duration", "restart-snapshot periodically"),
        )
    }
)

# (tick, lot, start price, mean size in lots) per category and symbol
_LINEAR = {
    "BTCUSDT": ("0.10", "0.001", "65000", 60), "ETHUSDT": ("0.01", "0.01", "3200", 60),
    "SOLUSDT": ("0.010", "0.1", "150", 60), "XRPUSDT": ("0.0001", "1", "0.6000", 3000),
    "DOGEUSDT": ("0.00001", "1", "0.15", 20000), "BNBUSDT": ("0.10", "0.01", "600", 40),
    "ADAUSDT": ("0.0001", "1", "0.4500", 3000), "LTCUSDT": ("0.01", "0.1", "80", 40),
    "AVAXUSDT": ("0.001", "0.1", "30", 80), "LINKUSDT": ("0.001", "0.1", "15", 120),
}
_SPOT = {
    "BTCUSDT": ("0.1", "0.000001", "65000", 20000), "ETHUSDT": ("0.01", "0.00001", "3200", 30000),
    "SOLUSDT": ("0.01", "0.001", "150", 3000), "XRPUSDT": ("0.0001", "0.01", "0.6000", 100000),
    "DOGEUSDT": ("0.00001", "0.1", "0.15", 100000), "BNBUSDT": ("0.1", "0.001", "600", 500),
    "ADAUSDT": ("0.0001", "0.01", "0.4500", 100000), "LTCUSDT": ("0.01", "0.001", "80", 2000),
    "AVAXUSDT": ("0.01", "0.001", "30", 5000), "LINKUSDT": ("0.01", "0.001", "15", 5000),
}
_INVERSE = {"BTCUSD": ("0.50", "1", "65000", 3000), "ETHUSD": ("0.05", "1", "3200", 2000)}
_OPTION = {
    "BTC-27DEC26-100000-C": ("5", "0.01", "4200", 30), "BTC-27DEC26-100000-P": ("5", "0.01", "36000", 30),
    "BTC-27DEC26-80000-C": ("5", "0.01", "9500", 30), "BTC-27DEC26-120000-C": ("5", "0.01", "1800", 30),
    "ETH-27DEC26-4000-C": ("0.1", "0.1", "310", 30), "ETH-27DEC26-4000-P": ("0.1", "0.1", "1050", 30),
}
DEFAULT_SPECS: dict[str, dict[str, tuple[str, str, str, int]]] = {
    "linear": _LINEAR, "spot": _SPOT, "inverse": _INVERSE, "option": _OPTION,
}
_UNDERLYING = {"BTC": 65000.0, "ETH": 3200.0, "SOL": 150.0}


def _default_symbols() -> dict[str, list[str]]:
    return {c: list(v) for c, v in DEFAULT_SPECS.items()}


def _default_depths() -> dict[str, list[int]]:
    return {"linear": [1, 50, 200, 1000], "inverse": [1, 50, 200, 1000], "spot": [1, 50, 200, 1000],
            "option": [25, 100]}


@dataclass
class BybitOptions(SimOptions):
    """Bybit simulator options. Defaults follow the real venue (protocols/bybit.md)."""

    symbols: dict[str, list[str]] = field(default_factory=_default_symbols)
    """Symbol universe per category (option symbols are ``BASE-DDMMMYY-STRIKE-C|P``)."""
    symbol_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra or overriding instrument specs: ``{"PEPEUSDT": {"tick": "0.0000001", "lot": "100",
    "price": "0.00001"}}``; a key may be ``"linear:PEPEUSDT"`` to target one category."""
    depths: dict[str, list[int]] = field(default_factory=_default_depths)
    allow_depth_500: bool = False
    """Accept the retired ``orderbook.500`` on linear/inverse (refused since 2025-09-30)."""
    book_intervals_ms: dict[int, float] = field(
        default_factory=lambda: {1: 10.0, 25: 20.0, 50: 20.0, 100: 100.0, 200: 100.0, 500: 100.0, 1000: 200.0}
    )
    book_interval_ms: float | None = None
    """If set, the push interval of every order-book depth (before ``speed``)."""
    l1_repeat_s: float = 3.0
    """Level-1 snapshot re-sent with the same ``u`` after this long without change (÷ ``speed``)."""
    ticker_interval_ms: float = 100.0
    spot_ticker_interval_ms: float = 50.0
    trade_interval_ms: float = 20.0
    """How often accumulated trades are pushed (the venue pushes them "real-time")."""
    kline_interval_ms: float = 1000.0
    kline_period_s: float | None = None
    """If set, every candle lasts this long (tests: see ``confirm`` flip quickly)."""
    liquidation_interval_ms: float = 500.0
    liquidation_prob: float = 0.3
    max_trades_per_frame: int = 1024
    public_idle_close_s: float = 61.0
    """An unsubscribed public socket that sent nothing for this long is dropped (observed ~61 s)."""
    public_inactive_close_s: float = 600.0
    """A public socket with no JSON ping and no data pushed for this long is dropped (10 min)."""
    option_ping_timeout_s: float = 30.0
    """The option endpoint drops sockets that sent no JSON ping for this long (UNVERIFIED value)."""
    max_active_time_s: float = 600.0
    """Private default for ``max_active_time`` (no ping and no data for this long -> close)."""
    max_active_time_min_s: float = 30.0
    max_active_time_max_s: float = 600.0
    private_sweep_s: float = 30.0
    """How often the private idle sweeper runs (the venue's is about every 30 s)."""
    max_args_chars: int = 21_000
    spot_max_args_per_request: int = 10
    option_max_args: int = 2000
    spot_invalid_symbol_error: bool = True
    """Spot answers an unknown symbol with ``Invalid symbol :[topic]`` instead of ``handler not found``."""
    api_keys: dict[str, str] = field(default_factory=lambda: {"sim-key": "sim-secret"})
    """API key -> secret accepted by ``op:auth`` on /v5/private."""
    private_symbols: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in
                                                                           DEFAULT_PRIVATE_SYMBOLS.items()})
    """Instruments the simulated account trades, per category (see :mod:`tickwire.sim._bybit_private`)."""
    private_interval_ms: float = 50.0
    """How often the account pushes what happened (orders, fills from the public prints, positions, wallet)."""
    private_orders_per_s: float = 2.0
    """Order events (a new order, or a cancel) per second and account (multiplied by ``speed``)."""
    private_cancel_prob: float = 0.25
    """Share of order events that cancel an open order."""
    private_fill_prob: float = 0.7
    """Chance that a public print at an acceptable price fills one of the account's orders."""
    private_race_prob: float = 0.1
    """Chance that a cancel races an order's final fill: a second ``Filled`` update follows
    (``cancelType=CancelByUser``, ``rejectReason=EC_OrigClOrdIDDoesNotExist``)."""


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

_XID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _strip_num(text: str) -> str:
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _fmt_float(x: float, decimals: int) -> str:
    s = f"{x:.{decimals}f}"
    return "0" if s.lstrip("-").strip("0.") == "" else s


def _period_bounds(interval: str, t_ms: int, override_s: float | None) -> tuple[int, int]:
    """Candle [start, end] (end inclusive, ms) containing ``t_ms``."""
    if override_s:
        return fixed_period_bounds(t_ms, override_s)
    if interval == "M":
        d = datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc)
        start = calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000
        y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return start, calendar.timegm((y, m, 1, 0, 0, 0)) * 1000 - 1
    p = KLINE_INTERVALS[interval] * 1000
    offset = 4 * 86_400_000 if interval == "W" else 0  # weeks start on Monday 00:00 UTC
    start = t_ms - (t_ms - offset) % p
    return start, start + p - 1


def _option_expiry_ms(text: str) -> int:
    """``27DEC26`` -> 08:00 UTC that day, in ms."""
    try:
        d = datetime.strptime(text, "%d%b%y").replace(hour=8, tzinfo=timezone.utc)
    except ValueError:
        return 0
    return int(d.timestamp() * 1000)


def public_trade_id(category: str, t: Trade) -> str:
    """The ``i`` of a print on ``publicTrade`` (numeric on spot, a UUID elsewhere); the
    simulated account's executions carry the same id as ``execId``."""
    if category == "spot":
        return str(2290000001190000000 + t.no)
    return str(uuid.UUID(int=t.rid, version=5))


def response(category: str, conn_id: str, op: str, success: bool, ret_msg: str, req_id: Any) -> dict[str, Any]:
    """The success/failure envelope of ``op`` on an endpoint family (``category``: ``spot``,
    ``linear``, ``inverse``, ``option`` or ``private``); the replay server answers with it too."""
    if category == "private":
        d: dict[str, Any] = {}
        if req_id is not None:
            d["req_id"] = req_id
        d.update(success=success, ret_msg=ret_msg, op=op, conn_id=conn_id)
        return d
    if category == "spot":
        d = {"success": success, "ret_msg": ret_msg, "conn_id": conn_id}
        if req_id is not None:
            d["req_id"] = req_id
        d["op"] = op
        return d
    return {"success": success, "ret_msg": ret_msg, "conn_id": conn_id,
            "req_id": "" if req_id is None else req_id, "op": op}


def pong(category: str, conn_id: str, req_id: Any) -> dict[str, Any]:
    """The answer to ``{"op":"ping"}`` on an endpoint family."""
    if category == "option":
        return {"args": [str(now_ms())], "op": "pong"}
    if category == "private":
        d: dict[str, Any] = {}
        if req_id is not None:
            d["req_id"] = req_id
        d.update(op="pong", args=[str(now_ms())], conn_id=conn_id)
        return d
    return response(category, conn_id, "ping", True, "pong", req_id)


class BybitConnection(SimConnection):
    def __init__(self, sim: VenueSim, cid: int, path: str, query: dict[str, str], ip: str, group: str):
        super().__init__(sim, cid, path, query, ip, group)
        self.category = group
        self.conn_id = ""
        self.authed = False
        self.api_key: str | None = None
        self.max_active_s = 0.0
        self.args_chars = 0

    def info(self) -> dict[str, Any]:
        d = super().info()
        d.update(category=self.category, conn_id=self.conn_id, authed=self.authed, args_chars=self.args_chars)
        return d


# ---------------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------------


class BookStream(Stream):
    """``orderbook.{depth}.{symbol}`` for depth > 1: snapshot to each newcomer, shared deltas."""

    def __init__(self, sim: "BybitSim", topic: str, cadence: Cadence, category: str, market: Market, depth: int):
        super().__init__(sim, topic, cadence)
        self.bsim = sim
        self.category = category
        self.market = market
        self.spec = market.spec
        self.symbol = market.spec.symbol
        self.depth = depth
        self.ts_first = category == "spot" or depth == 1  # field order noted in §6
        self.u = random.Random(f"{sim.seed}|u|{category}|{topic}").randint(1_000_000, 90_000_000)
        self.vb: dict[int, int] = {}
        self.va: dict[int, int] = {}
        self.seq = market.seq
        self.cts = market.last_step_ms
        self.seen_version = -1
        self.deltas = 0
        self.skip_pending: tuple[str, int | None] | None = None  # (fault kind, its injection) when due
        self.tname = f"{category}:{topic}"  # the stream's name in sim.truth
        self.started = False
        self._snap: bytes | None = None

    def _sync(self) -> None:
        self.market.sync(None, self.bsim.opts.speed)

    def resync(self) -> None:
        m, d = self.market, self.depth
        self.vb = dict(m.bids.items_top(d))
        self.va = dict(m.asks.items_top(d))
        self.seen_version = m.version
        self.seq = m.seq
        self.cts = m.last_step_ms
        self._snap = None

    def activate(self) -> None:
        self._sync()
        self.resync()
        if self.started:
            self.u += 1  # the venue's u kept moving while nobody here listened
        self.started = True
        self._truth_snapshot()

    def _truth_snapshot(self) -> None:
        truth = self.bsim.truth
        if truth.enabled:
            fp, fq = self.spec.fp, self.spec.fq
            truth.book_snapshot(self.tname, self.u, [(fp(p), fq(q)) for p, q in self.vb.items()],
                                [(fp(p), fq(q)) for p, q in self.va.items()])

    def snapshot_bytes(self) -> bytes:
        if self._snap is None:
            fp, fq = self.spec.fp, self.spec.fq
            data = {
                "s": self.symbol,
                "b": [[fp(p), fq(s)] for p, s in sorted(self.vb.items(), reverse=True)],
                "a": [[fp(p), fq(s)] for p, s in sorted(self.va.items())],
                "u": self.u,
                "seq": self.seq,
            }
            self._snap = self._frame("snapshot", data)
        return self._snap

    def _frame(self, typ: str, data: dict[str, Any]) -> bytes:
        ts = now_ms()
        if self.ts_first:
            return _encode({"topic": self.topic, "ts": ts, "type": typ, "data": data, "cts": self.cts})
        return _encode({"topic": self.topic, "type": typ, "ts": ts, "data": data, "cts": self.cts})

    def on_subscribe(self, conn: SimConnection) -> None:
        if conn.send(self.snapshot_bytes()):
            self.bsim.stats.frames_sent += 1

    def restart(self, kind: str = "restart-snapshot") -> None:
        """Fault ``restart-snapshot``: a ``u=1`` snapshot, then deltas continue from 1."""
        self._sync()
        self.resync()
        old, self.u = self.u, 1
        self.bsim.truth.fault(kind, stream=self.tname, seqs=(old, 1), detail=f"u {old} -> 1 (a new snapshot)")
        self._truth_snapshot()
        self.publish(self.snapshot_bytes())

    def tick(self) -> None:
        m = self.market
        m.sync(None, self.bsim.opts.speed)
        if m.version == self.seen_version:
            return
        self.seen_version = m.version
        cb, self.vb, _ = diff_window(self.vb, m.bids, self.depth)
        ca, self.va, _ = diff_window(self.va, m.asks, self.depth)
        if not cb and not ca:
            return
        self.deltas += 1
        every = self.bsim._skip_every
        pending = self.skip_pending
        skip = pending is not None or (every > 0 and self.deltas % every == 0)
        self.skip_pending = None
        self.u += 2 if skip else 1
        self.seq = m.seq
        self.cts = m.last_step_ms
        self._snap = None
        fp, fq = self.spec.fp, self.spec.fq
        data = {
            "s": self.symbol,
            "b": [[fp(p), fq(s)] for p, s in cb],
            "a": [[fp(p), fq(s)] for p, s in ca],
            "u": self.u,
            "seq": self.seq,
        }
        truth = self.bsim.truth
        if skip:
            kind, cause = pending if pending is not None else ("skip-u-every", self.bsim._skip_every_cause)
            truth.fault(kind, stream=self.tname, seqs=(self.u - 1,), detail=f"u {self.u - 2} -> {self.u}",
                        cause=cause)
        truth.book_delta(self.tname, self.u, data["b"], data["a"])
        self.publish(self._frame("delta", data))


class L1BookStream(BookStream):
    """``orderbook.1.{symbol}``: snapshot-only; unchanged for ``l1_repeat_s`` -> same-``u`` repeat."""

    def __init__(self, *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        self.last_sent = 0.0

    def _top(self) -> tuple:
        m = self.market
        b, a = m.bids.best(), m.asks.best()
        return (b, m.bids.sizes.get(b), a, m.asks.sizes.get(a))  # type: ignore[arg-type]

    def resync(self) -> None:
        super().resync()
        self.last_sent = time.monotonic()

    def tick(self) -> None:
        m = self.market
        m.sync(None, self.bsim.opts.speed)
        now = time.monotonic()
        if m.version != self.seen_version:
            self.seen_version = m.version
            b, bs, a, as_ = self._top()
            if self.vb.get(b) != bs or self.va.get(a) != as_ or len(self.vb) != 1 or len(self.va) != 1:  # type: ignore[arg-type]
                self.vb = {b: bs}  # type: ignore[dict-item]
                self.va = {a: as_}  # type: ignore[dict-item]
                self.u += 1
                self.seq = m.seq
                self.cts = m.last_step_ms
                self._snap = None
                self.last_sent = now
                self._truth_snapshot()
                self.publish(self.snapshot_bytes())
                return
        if now - self.last_sent >= self.bsim.opts.l1_repeat_s / self.bsim.opts.speed:
            self.last_sent = now
            self._snap = None  # fresh ts, same u
            self.publish(self.snapshot_bytes())


class TradeStream(Stream):
    """``publicTrade.{symbol}`` (options: ``publicTrade.{baseCoin}`` over all its options)."""

    def __init__(self, sim: "BybitSim", topic: str, cadence: Cadence, category: str, markets: list[Market]):
        super().__init__(sim, topic, cadence)
        self.bsim = sim
        self.category = category
        self.markets = markets
        self.n = 0
        self.tname = f"{category}:{topic}"  # the stream's name in sim.truth

    def activate(self) -> None:
        for m in self.markets:
            m.sync(None, self.bsim.opts.speed)
            m.pending_trades = []

    def deactivate(self) -> None:
        for m in self.markets:
            m.pending_trades = None

    def _item(self, m: Market, t: Trade) -> dict[str, Any]:
        spec = m.spec
        cat = self.category
        if cat == "spot":
            return {"i": public_trade_id(cat, t), "T": t.ts_ms, "p": spec.fp(t.price), "v": spec.fq(t.size),
                    "S": t.side, "seq": t.seq, "s": spec.symbol, "BT": False, "RPI": False}
        tid = public_trade_id(cat, t)
        if cat == "option":
            under = self.bsim.underlying(spec)
            mark = spec.price_float(m.mid_units())
            return {"T": t.ts_ms, "s": spec.symbol, "S": t.side, "v": spec.fq(t.size), "p": spec.fp(t.price),
                    "i": tid, "BT": False, "RPI": False, "seq": t.seq,
                    "mP": _fmt_float(mark, 2), "iP": _fmt_float(under, 2),
                    "mIv": _fmt_float(0.45 + (t.rid % 1000) / 20000, 4), "iv": _fmt_float(0.45 + (t.rid % 997) / 20000, 4)}
        return {"T": t.ts_ms, "s": spec.symbol, "S": t.side, "v": spec.fq(t.size), "p": spec.fp(t.price),
                "L": t.tick_dir, "i": tid, "BT": False, "RPI": False, "seq": t.seq}

    def tick(self) -> None:
        speed = self.bsim.opts.speed
        items: list[tuple[int, int, dict[str, Any]]] = []
        for m in self.markets:
            m.sync(None, speed)
            pend = m.pending_trades
            if pend:
                items.extend((t.ts_ms, t.seq, self._item(m, t)) for t in pend)
                pend.clear()
        if not items:
            return
        if len(self.markets) > 1:
            items.sort(key=lambda x: (x[0], x[1]))
        cap = max(1, self.bsim.opts.max_trades_per_frame)
        for i in range(0, len(items), cap):
            chunk = [x[2] for x in items[i : i + cap]]
            ts = now_ms()
            if self.category == "spot":
                frame = {"topic": self.topic, "ts": ts, "type": "snapshot", "data": chunk}
            elif self.category == "option":
                self.n += 1
                frame = {"id": f"{self.topic}-{self.n}-{ts}", "topic": self.topic, "ts": ts, "data": chunk,
                         "type": "snapshot"}
            else:
                frame = {"topic": self.topic, "type": "snapshot", "ts": ts, "data": chunk}
            n = self.publish(_encode(frame))
            self.bsim.truth.trades_sent(self.tname, [(x["i"], x["p"], x["v"], x["S"]) for x in chunk], n - self.garbled)


class TickerStream(Stream):
    """``tickers.{symbol}``: linear/inverse snapshot then deltas of changed fields; spot and
    option snapshot-only."""

    def __init__(self, sim: "BybitSim", topic: str, cadence: Cadence, category: str, market: Market):
        super().__init__(sim, topic, cadence)
        self.bsim = sim
        self.category = category
        self.market = market
        self.spec = market.spec
        self.rng = random.Random(f"{sim.seed}|ticker|{category}|{topic}")
        spec = self.spec
        self.oi = spec.lot_units * self.rng.randint(50_000, 5_000_000)
        self.funding = self.rng.randint(-300, 1200)  # in 1e-7
        self.index_off = 0.0
        self.under = self.bsim.underlying(spec)
        self.fields: dict[str, str] | None = None
        self.cs = market.seq
        self.n = 0

    def activate(self) -> None:
        self.market.sync(None, self.bsim.opts.speed)
        self.fields = self._compute()
        self.cs = self.market.seq

    def _compute(self) -> dict[str, str]:
        m, spec, rng, cat = self.market, self.spec, self.rng, self.category
        fp, fq = spec.fp, spec.fq
        mid = m.mid_units()
        tk = spec.tick_units
        if rng.random() < 0.3:
            self.index_off = max(-3.0, min(3.0, self.index_off + rng.choice((-1, 1)) * 0.5))
        last = m.last_price
        prev = m.prev_price_24h
        pcnt = (last - prev) / prev if prev else 0.0
        if cat == "spot":
            return {
                "symbol": spec.symbol, "lastPrice": fp(last), "highPrice24h": fp(m.high_24h),
                "lowPrice24h": fp(m.low_24h), "prevPrice24h": fp(prev), "volume24h": fq(m.volume_24h),
                "turnover24h": _fmt_float(m.turnover_24h, 8), "price24hPcnt": _fmt_float(pcnt, 4),
                "usdIndexPrice": _fmt_float(spec.price_float(mid + self.index_off * tk), 6),
            }
        b, a = m.bids.best(), m.asks.best()
        if cat == "option":
            self.under *= 1.0 + rng.uniform(-0.0002, 0.0002)
            mark = spec.price_float(mid)
            strike = float(spec.extra.get("strike", 0) or 0)
            is_call = spec.symbol.endswith("-C")
            mny = (self.under / strike) if strike else 1.0
            d = 1 / (1 + math.exp(-8 * math.log(mny))) if strike else 0.5
            delta = d if is_call else d - 1
            return {
                "symbol": spec.symbol, "bidPrice": fp(b) if b else "0", "bidSize": fq(m.bids.sizes[b]) if b else "0",
                "bidIv": _fmt_float(0.44 + rng.random() * 0.01, 4),
                "askPrice": fp(a) if a else "0", "askSize": fq(m.asks.sizes[a]) if a else "0",
                "askIv": _fmt_float(0.46 + rng.random() * 0.01, 4),
                "lastPrice": fp(last), "highPrice24h": fp(m.high_24h), "lowPrice24h": fp(m.low_24h),
                "markPrice": _fmt_float(mark, 8), "indexPrice": _fmt_float(self.under, 2),
                "markPriceIv": _fmt_float(0.45 + rng.random() * 0.005, 4),
                "underlyingPrice": _fmt_float(self.under * 1.001, 2),
                "openInterest": fq(self.oi), "turnover24h": _fmt_float(m.turnover_24h * self.under / max(mark, 1e-9), 4),
                "volume24h": fq(m.volume_24h), "totalVolume": str(int(spec.qty_float(m.volume_24h) * 3)),
                "totalTurnover": str(int(m.turnover_24h * 3)),
                "delta": _fmt_float(delta, 6), "gamma": _fmt_float(0.00002 * (1 - abs(delta)), 8),
                "vega": _fmt_float(50 * (1 - abs(delta)) + 1, 8), "theta": _fmt_float(-20 * (1 - abs(delta)) - 1, 8),
                "predictedDeliveryPrice": "0", "change24h": _fmt_float(pcnt, 8),
            }
        # linear / inverse
        if rng.random() < 0.2:
            self.oi = max(spec.lot_units, self.oi + spec.lot_units * rng.randint(-200, 200))
        if rng.random() < 0.02:
            self.funding += rng.randint(-20, 20)
        mark_u = round(mid)
        mark = spec.price_float(mark_u)
        index = spec.price_float(mid + self.index_off * tk)
        inverse = cat == "inverse"
        oi_val = spec.qty_float(self.oi) / mark if inverse else spec.qty_float(self.oi) * mark
        half_oi = self.oi // 2
        now = now_ms()
        nft = now - now % 28_800_000 + 28_800_000
        funding = _strip_num(f"{self.funding / 1e7:.7f}")
        mark_s = format_units(mark_u, spec.price_scale)
        d = {
            "symbol": spec.symbol, "tickDirection": m.tick_dir, "price24hPcnt": _fmt_float(pcnt, 6),
            "lastPrice": fp(last), "prevPrice24h": fp(prev), "highPrice24h": fp(m.high_24h),
            "lowPrice24h": fp(m.low_24h), "prevPrice1h": fp(m.prev_price_1h), "markPrice": mark_s,
            "indexPrice": _fmt_float(index, spec.price_scale), "openInterest": fq(self.oi),
            "openInterestValue": _fmt_float(oi_val, 2),
            "turnover24h": _fmt_float(m.turnover_24h / spec.price_float(mid) if inverse else m.turnover_24h, 4),
            "volume24h": fq(m.volume_24h),
        }
        if not inverse:
            d.update({"fundingIntervalHour": "8", "fundingCap": "0.005", "singleOpenInterest": fq(half_oi),
                      "singleOpenInterestValue": _fmt_float(spec.qty_float(half_oi) * mark, 2)})
        d.update({
            "nextFundingTime": str(nft), "fundingRate": funding,
            "bid1Price": fp(b) if b else "", "bid1Size": fq(m.bids.sizes[b]) if b else "",
            "ask1Price": fp(a) if a else "", "ask1Size": fq(m.asks.sizes[a]) if a else "",
        })
        if not inverse:
            d.update({"preOpenPrice": "", "preQty": "", "curPreListingPhase": ""})
        return d

    def _frame(self, typ: str, data: dict[str, str]) -> bytes:
        ts = now_ms()
        cat = self.category
        if cat == "spot":
            return _encode({"topic": self.topic, "ts": ts, "type": "snapshot", "cs": self.cs, "data": data})
        if cat == "option":
            self.n += 1
            return _encode({"id": f"{self.topic}-{self.n}-{ts}", "topic": self.topic, "ts": ts, "data": data,
                            "type": "snapshot"})
        return _encode({"topic": self.topic, "type": typ, "data": data, "cs": self.cs, "ts": ts})

    def on_subscribe(self, conn: SimConnection) -> None:
        assert self.fields is not None
        if conn.send(self._frame("snapshot", self.fields)):
            self.bsim.stats.frames_sent += 1

    def tick(self) -> None:
        m = self.market
        m.sync(None, self.bsim.opts.speed)
        new = self._compute()
        old = self.fields or {}
        if new == old:
            return
        self.fields = new
        self.cs = m.seq
        if self.category in ("linear", "inverse"):
            delta = {"symbol": new["symbol"]}
            delta.update((k, v) for k, v in new.items() if old.get(k) != v and k != "symbol")
            self.publish(self._frame("delta", delta))
        else:
            self.publish(self._frame("snapshot", new))


class KlineStream(Stream):
    """``kline.{interval}.{symbol}``: the current candle every push; ``confirm:true`` on close."""

    def __init__(self, sim: "BybitSim", topic: str, cadence: Cadence, category: str, market: Market, interval: str):
        super().__init__(sim, topic, cadence)
        self.bsim = sim
        self.market = market
        self.spec = market.spec
        self.interval = interval
        self.candles = CandleBuilder(self._bounds, market_fold(market.spec))

    def _bounds(self, t: int) -> tuple[int, int]:
        return _period_bounds(self.interval, t, self.bsim.opts.kline_period_s)

    def activate(self) -> None:
        m = self.market
        m.sync(None, self.bsim.opts.speed)
        self.candles.start(m.trade_listeners, m.last_price)

    def deactivate(self) -> None:
        self.candles.stop()

    def _item(self, c: Candle) -> dict[str, Any]:
        fp, fq = self.spec.fp, self.spec.fq
        return {"start": c.start, "end": c.end, "interval": self.interval, "open": fp(c.open), "close": fp(c.close),
                "high": fp(c.high), "low": fp(c.low), "volume": fq(c.volume), "turnover": _fmt_float(c.turnover, 4),
                "confirm": c.closed, "timestamp": c.last_ts}

    def tick(self) -> None:
        self.market.sync(None, self.bsim.opts.speed)
        closed = self.candles.due(now_ms())
        ts = now_ms()
        for c in closed:
            self.publish(_encode({"topic": self.topic, "data": [self._item(c)], "ts": ts, "type": "snapshot"}))
        c = self.candles.current
        if c is not None:
            self.publish(_encode({"topic": self.topic, "data": [self._item(c)], "ts": ts, "type": "snapshot"}))


class LiquidationStream(Stream):
    """``allLiquidation.{symbol}`` (linear/inverse): random liquidations every 500 ms."""

    def __init__(self, sim: "BybitSim", topic: str, cadence: Cadence, market: Market):
        super().__init__(sim, topic, cadence)
        self.bsim = sim
        self.market = market
        self.rng = random.Random(f"{sim.seed}|liq|{topic}")

    def tick(self) -> None:
        rng, m, spec = self.rng, self.market, self.market.spec
        if rng.random() >= self.bsim.opts.liquidation_prob:
            return
        m.sync(None, self.bsim.opts.speed)
        now = now_ms()
        items = []
        for _ in range(rng.randint(1, 3)):
            side = rng.choice(("Buy", "Sell"))
            # a liquidated long (Buy) is bankrupt below the market, a short above
            off = rng.uniform(0.001, 0.01) * (-1 if side == "Buy" else 1)
            p = int(m.mid_units() * (1 + off))
            p -= p % spec.tick_units
            items.append({"T": now - rng.randint(0, 400), "s": spec.symbol, "S": side,
                          "v": spec.fq(spec.lot_units * rng.randint(1, 500)), "p": spec.fp(max(p, spec.tick_units))})
        items.sort(key=lambda x: x["T"])
        self.publish(_encode({"topic": self.topic, "type": "snapshot", "ts": now, "data": items}))


# ---------------------------------------------------------------------------------------------
# Replay and demo
# ---------------------------------------------------------------------------------------------


class BybitReplayDialect(ReplayDialect):
    """``tickwire replay``: the acks and pongs of each endpoint family (the path's last segment)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.category = path.rstrip("/").rsplit("/", 1)[-1]

    def _resp(self, conn: ReplayClient, op: str, ret_msg: str, req_id: Any) -> dict:
        return response(self.category, conn.conn_id, op, True, ret_msg, req_id)

    def on_request(self, conn: ReplayClient, payload: bytes) -> list[str] | None:
        msg = json_object(payload)
        if msg is None:
            return None
        op, req_id = msg.get("op"), msg.get("req_id")
        args = msg.get("args") if isinstance(msg.get("args"), list) else []
        if op == "ping":
            conn.send_obj(pong(self.category, conn.conn_id, req_id))
            return None
        if op in ("subscribe", "unsubscribe"):
            topics = [a for a in args if isinstance(a, str)]
            if self.category == "option":
                conn.send_obj({"success": True, "conn_id": conn.conn_id, "type": "COMMAND_RESP",
                               "data": {"failTopics": [], "successTopics": topics}})
            else:
                conn.send_obj(self._resp(conn, op, op if self.category == "spot" else "", req_id))
            return topics if op == "subscribe" else None
        if op == "auth":
            conn.send_obj(self._resp(conn, "auth", "", req_id))
            return None
        return None

    def is_answer(self, payload: bytes, binary: bool) -> bool:
        if binary or payload[:9] == b'{"topic":' or b'"op"' not in payload:
            return False
        msg = json_object(payload)
        if msg is None or "topic" in msg:
            return False
        op = msg.get("op")
        if op in ("pong", "ping") or msg.get("ret_msg") == "pong":
            return True
        if op in ("subscribe", "unsubscribe", "auth") or msg.get("type") == "COMMAND_RESP":
            return msg.get("success") is not False  # a recorded refusal is what the venue said
        return False


#: What ``tickwire demo`` records from this simulator: a few books, trades, tickers and candles.
DEMO_STREAMS = (
    "bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:BTCUSDT", "bybit.linear:tickers:BTCUSDT",
    "bybit.linear:kline.1:BTCUSDT", "bybit.linear:orderbook.50:ETHUSDT", "bybit.linear:publicTrade:ETHUSDT",
    "bybit.spot:orderbook.50:BTCUSDT", "bybit.spot:publicTrade:BTCUSDT",
)


# ---------------------------------------------------------------------------------------------
# The venue simulator
# ---------------------------------------------------------------------------------------------


@register_venue("bybit")
class BybitSim(VenueSim):
    """Bybit v5 simulator. See the module docstring and :class:`BybitOptions`."""

    paths = list(PATHS)
    Options = BybitOptions
    FAULTS = BYBIT_FAULTS
    connection_class = BybitConnection
    replay_dialect = BybitReplayDialect
    demo_streams = DEMO_STREAMS
    opts: BybitOptions
    PRIVATE_PUSHES: ClassVar[bool] = True
    """The simulated account pushes ``order``/``execution``/``execution.fast``/``position``/``wallet``/
    ``greeks`` data on /v5/private (:meth:`account` is the ground truth)."""
    REST: ClassVar[bool] = True
    """``/v5/market/instruments-info``, ``/v5/market/time`` (and what ccxt's ``load_markets`` reads) are
    answered on the same port (``rest_url``)."""
    encode = staticmethod(_encode)

    def __init__(self, *, seed: int = 0, options: Mapping[str, Any] | None = None, faults: Sequence[str] = ()):
        super().__init__(seed=seed, options=options, faults=faults)
        self._markets: dict[tuple[str, str], Market] = {}
        self._streams: dict[tuple[str, str], Stream] = {}
        self.accounts: dict[str, BybitAccount] = {}
        self._skip_every = 0
        self._skip_every_cause: int | None = None
        self._symbols: dict[str, frozenset[str]] = {c: frozenset(self.opts.symbols.get(c, ())) for c in PUBLIC}
        self._option_bases = frozenset(s.split("-")[0] for s in self._symbols["option"])
        self._depths: dict[str, frozenset[int]] = {}
        for c in PUBLIC:
            ds = set(int(d) for d in self.opts.depths.get(c, ()))
            if self.opts.allow_depth_500 and c in ("linear", "inverse"):
                ds.add(500)
            self._depths[c] = frozenset(ds)

    # -- instruments --------------------------------------------------------------------------

    def spec_for(self, category: str, symbol: str) -> SymbolSpec:
        o = self.opts.symbol_specs.get(f"{category}:{symbol}") or self.opts.symbol_specs.get(symbol)
        base = DEFAULT_SPECS.get(category, {}).get(symbol)
        extra: dict[str, Any] = {}
        if category == "option":
            parts = symbol.split("-")
            extra["strike"] = parts[2] if len(parts) >= 4 else "0"
            extra["base"] = parts[0]
        if base is None:
            if category == "option":
                strike = float(extra["strike"] or 0) or 1000.0
                base = ("0.1", "0.01", str(round(max(strike * 0.05, 1.0), 1)), 30)
            else:
                base = ("0.0001", "1", "1.0000", 1000)
        tick, lot, price, mean = base
        if o:
            tick, lot, price = str(o.get("tick", tick)), str(o.get("lot", lot)), str(o.get("price", price))
            mean = int(o.get("size_mean_lots", mean))
        return SymbolSpec(symbol, tick, lot, price, size_mean_lots=mean, extra=extra)

    def underlying(self, spec: SymbolSpec) -> float:
        base = spec.extra.get("base") or spec.symbol.split("-")[0]
        return _UNDERLYING.get(base, 100.0)

    def market(self, category: str, symbol: str) -> Market:
        """The synthetic market of one instrument (shared by every topic and connection)."""
        key = (category, symbol)
        m = self._markets.get(key)
        if m is None:
            depths = self._depths.get(category) or frozenset({50})
            levels = min(self.opts.book_levels, max(depths) + max(20, max(depths) // 10))
            m = Market(self.spec_for(category, symbol), f"{self.seed}|bybit|{category}",
                       levels=levels, steps_per_s=self.opts.market_steps_per_s,
                       trade_prob=0.05 if category == "option" else 0.12)
            self._markets[key] = m
        return m

    # -- handshake ----------------------------------------------------------------------------

    def route(self, path: str, query: dict[str, str]) -> str | None:
        return PATHS.get(path)

    def on_open(self, conn: SimConnection) -> None:
        assert isinstance(conn, BybitConnection)
        conn.conn_id = self._new_conn_id(conn.category)
        if conn.category == "private":
            conn.max_active_s = self._max_active(conn.query.get("max_active_time"))

    def _new_conn_id(self, category: str) -> str:
        r = self.rng
        if category == "option":
            return "-".join(
                f"{r.getrandbits(n * 4):0{n}x}" for n in (16, 8, 8, 16, 8)
            )
        head = "".join(r.choice(_XID_ALPHABET) for _ in range(20))
        tail = "".join(r.choice(_B36) for _ in range(r.choice((1, 2, 4, 5))))
        return f"{head}-{tail}"

    def _max_active(self, raw: str | None) -> float:
        o = self.opts
        if not raw:
            return o.max_active_time_s
        try:
            v = parse_duration(raw)
        except ValueError:
            return o.max_active_time_s  # UNVERIFIED: the venue's answer to a malformed value
        return min(max(v, o.max_active_time_min_s), o.max_active_time_max_s)

    async def on_start(self) -> None:
        self.every(self.opts.private_sweep_s, self._sweep_private)

    # -- REST (same port) ---------------------------------------------------------------------

    def http_get(self, path: str, qs: str, headers: Any = None) -> tuple[int, bytes] | None:
        """``GET /v5/market/time`` and ``GET /v5/market/instruments-info?category=…[&symbol=…]``
        with the venue's envelope, consistent with the simulated market (tick, lot)."""
        q = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        now = now_ms()
        if path == "/v5/market/time":
            return 200, _encode({"retCode": 0, "retMsg": "OK",
                                 "result": {"timeSecond": str(now // 1000), "timeNano": str(time.time_ns())},
                                 "retExtInfo": {}, "time": now})
        if path == "/v5/market/instruments-info":
            cat = q.get("category", "")
            if cat not in PUBLIC:
                return 200, _encode({"retCode": 10001, "retMsg": "params error: Category is invalid",
                                     "result": {}, "retExtInfo": {}, "time": now})
            sym = q.get("symbol", "")
            base = q.get("baseCoin", "")
            status = q.get("status", "")
            items = [self.instrument_item(cat, s) for s in sorted(self._symbols[cat])
                     if (not sym or s == sym) and (not base or s.startswith(base + ("-" if cat == "option" else "")))
                     and status in ("", "Trading")]
            return 200, _encode({"retCode": 0, "retMsg": "OK",
                                 "result": {"category": cat, "list": items, "nextPageCursor": ""},
                                 "retExtInfo": {}, "time": now})
        if path.startswith(("/v5/user/", "/v5/account/", "/v5/position/")):
            key = (headers or {}).get("X-BAPI-API-KEY", "") if headers is not None else ""
            if key not in self.opts.api_keys:
                return 200, _encode({"retCode": 10003, "retMsg": "API key is invalid.", "result": {},
                                     "retExtInfo": {}, "time": now})
            return self._private_rest(path, q, key, now)
        if path == "/v5/asset/coin/query-info":
            # what ccxt's load_markets reads when it has keys (fetchCurrencies); the request's
            # signature headers are not checked (UNVERIFIED shape details beyond the fields below)
            coins = sorted({c for cat in PUBLIC for sym in self._symbols[cat] for c in self._coins_of(cat, sym)})
            want = q.get("coin", "")
            rows = [{"name": c, "coin": c, "remainAmount": "1000000",
                     "chains": [{"chainType": c, "confirmation": "12", "withdrawFee": "0", "depositMin": "0",
                                 "withdrawMin": "0", "chain": c, "chainDeposit": "1", "chainWithdraw": "1",
                                 "minAccuracy": "8", "withdrawPercentageFee": "0", "contractAddress": ""}]}
                    for c in coins if not want or c == want]
            return 200, _encode({"retCode": 0, "retMsg": "", "result": {"rows": rows}, "retExtInfo": {}, "time": now})
        return None

    def _private_rest(self, path: str, q: dict[str, str], key: str, now: int) -> tuple[int, bytes] | None:
        """The private reads an SDK makes before it watches private topics (ccxt: account mode and
        a positions snapshot). The API key header is checked; the signature is not."""
        acct = self.account(key)

        def ok(result: Any) -> tuple[int, bytes]:
            return 200, _encode({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now})

        if path == "/v5/user/query-api":
            return ok({"id": str(acct.uid % 10**8), "note": "tickwire sim", "apiKey": key, "readOnly": 0,
                       "secret": "", "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"],
                                                     "Wallet": ["AccountTransfer"], "Options": ["OptionsTrade"],
                                                     "Derivatives": ["DerivativesTrade"], "Exchange": [],
                                                     "NFT": [], "CopyTrading": [], "BlockTrade": []},
                       "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": "2025-01-01T00:00:00Z",
                       "unified": 0, "uta": 1, "userID": acct.uid, "inviterID": 0, "vipLevel": "No VIP",
                       "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "", "isMaster": True})
        if path == "/v5/account/info":
            return ok({"unifiedMarginStatus": 6, "marginMode": "REGULAR_MARGIN", "isMasterTrader": False,
                       "spotHedgingStatus": "OFF", "updatedTime": str(now), "dcpStatus": "OFF", "timeWindow": 10,
                       "smpGroup": 0})
        if path == "/v5/account/wallet-balance":
            return ok({"list": [acct.wallet_dict()]})
        if path == "/v5/position/list":
            cat = q.get("category", "")
            if cat not in ("linear", "inverse", "option"):
                return 200, _encode({"retCode": 10001, "retMsg": "params error: Category is invalid",
                                     "result": {}, "retExtInfo": {}, "time": now})
            sym, settle = q.get("symbol", ""), q.get("settleCoin", "")
            items = [acct.position_dict(c, s) for (c, s) in sorted(acct.positions)
                     if c == cat and (not sym or s == sym) and (not settle or acct._settle(c, s) == settle)]
            return ok({"list": items, "nextPageCursor": "", "category": cat})
        return None

    @staticmethod
    def _coins_of(category: str, symbol: str) -> tuple[str, ...]:
        if category == "option":
            return (symbol.split("-")[0], "USDC")
        if category == "inverse":
            return (symbol[:-3],)
        return BybitAccount._base_quote(symbol)

    def instrument_item(self, category: str, symbol: str) -> dict[str, Any]:
        """One ``instruments-info`` entry: the tick and lot of the simulated market."""
        spec = self.spec_for(category, symbol)
        tick, lot = spec.tick, spec.lot
        if category == "spot":
            base, quote = BybitAccount._base_quote(symbol)
            return {"symbol": symbol, "baseCoin": base, "quoteCoin": quote, "innovation": "0", "status": "Trading",
                    "marginTrading": "utaOnly", "stTag": "0",
                    "lotSizeFilter": {"basePrecision": lot, "quotePrecision": "0.00000001", "minOrderQty": lot,
                                      "maxOrderQty": "10000", "minOrderAmt": "1", "maxOrderAmt": "2000000"},
                    "priceFilter": {"tickSize": tick},
                    "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"}, "symbolType": ""}
        if category == "option":
            parts = symbol.split("-")
            return {"symbol": symbol, "optionsType": "Call" if parts[-1] == "C" else "Put", "status": "Trading",
                    "baseCoin": parts[0], "quoteCoin": "USD", "settleCoin": "USDC", "launchTime": "1735000000000",
                    "deliveryTime": str(_option_expiry_ms(parts[1])), "deliveryFeeRate": "0.00015",
                    "priceFilter": {"minPrice": tick, "maxPrice": "10000000", "tickSize": tick},
                    "lotSizeFilter": {"maxOrderQty": "10000", "minOrderQty": lot, "qtyStep": lot},
                    "displayName": ""}
        inverse = category == "inverse"
        base, quote = (symbol[:-3], "USD") if inverse else BybitAccount._base_quote(symbol)
        return {"symbol": symbol, "contractType": "InversePerpetual" if inverse else "LinearPerpetual",
                "status": "Trading", "baseCoin": base, "quoteCoin": quote, "launchTime": "1585526400000",
                "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": str(spec.price_scale),
                "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                "priceFilter": {"minPrice": tick, "maxPrice": "9999999", "tickSize": tick},
                "lotSizeFilter": {"maxOrderQty": "100000", "minOrderQty": lot, "qtyStep": lot,
                                  "postOnlyMaxOrderQty": "100000", "maxMktOrderQty": "10000",
                                  "minNotionalValue": "5" if not inverse else "0"},
                "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": base if inverse else quote,
                "copyTrading": "both", "upperFundingRate": "0.005", "lowerFundingRate": "-0.005",
                "isPreListing": False, "preListingInfo": None,
                "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
                "displayName": "", "symbolType": ""}

    # -- idle rules ---------------------------------------------------------------------------

    def sweep(self) -> None:
        o = self.opts
        now = time.monotonic()
        for c in list(self.connections):
            assert isinstance(c, BybitConnection)
            cat = c.category
            if cat == "private":
                continue
            if not c.topics and now - c.last_rx >= o.public_idle_close_s:
                self._idle_drop(c, f"no subscription and silent for {o.public_idle_close_s:g}s")
            elif cat == "option" and now - c.last_ping >= o.option_ping_timeout_s:
                self._idle_drop(c, f"option: no JSON ping for {o.option_ping_timeout_s:g}s")
            else:
                last = c.last_ping
                for s in c.topics.values():
                    if s is not None and s.last_push > last:
                        last = s.last_push
                if now - max(last, c.opened_at) >= o.public_inactive_close_s:
                    self._idle_drop(c, f"no ping and no data for {o.public_inactive_close_s:g}s")

    def _sweep_private(self) -> None:
        """``max_active_time``: no ping and no data pushed for that long closes the connection."""
        now = time.monotonic()
        for c in list(self.connections):
            if isinstance(c, BybitConnection) and c.category == "private":
                last = c.last_ping
                for s in c.topics.values():
                    if s is not None and s.last_push > last:
                        last = s.last_push
                if now - last >= c.max_active_s:
                    self._idle_drop(c, f"max_active_time {c.max_active_s:g}s")

    def _idle_drop(self, c: SimConnection, why: str = "") -> None:
        self.stats.idle_closes += 1
        self.truth.limit("idle", c.id, why)
        c.drop()

    # -- frames -------------------------------------------------------------------------------

    def _send(self, conn: SimConnection, obj: dict[str, Any], error: bool = False) -> None:
        if error:
            self.stats.errors_sent += 1
        if conn.send(_encode(obj)):
            self.stats.frames_sent += 1

    def _resp(self, conn: BybitConnection, op: str, success: bool, ret_msg: str, req_id: Any) -> dict[str, Any]:
        """The success/failure envelope of ``op`` on this connection's endpoint family."""
        return response(conn.category, conn.conn_id, op, success, ret_msg, req_id)

    def _error(self, conn: BybitConnection, op: str, ret_msg: str, req_id: Any) -> None:
        self._send(conn, self._resp(conn, op, False, ret_msg, req_id), error=True)

    def on_text(self, conn: SimConnection, payload: bytes) -> None:
        assert isinstance(conn, BybitConnection)
        try:
            msg = _decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            self._decode_error(conn, payload, str(exc))
            return
        if not isinstance(msg, dict):
            self._decode_error(conn, payload, None)
            return
        conn.requests += 1
        op = msg.get("op")
        req_id = msg.get("req_id")
        if op == "ping":
            self._ping(conn, req_id)
        elif op == "subscribe" or op == "unsubscribe":
            self._subscribe(conn, op, msg.get("args"), req_id)
        elif op == "auth" and conn.category == "private":
            self._auth(conn, msg.get("args"), req_id)
        else:
            self._log(conn, str(op), 0, False)
            self._error(conn, op if isinstance(op, str) else "", "error:invalid op", req_id)

    def _decode_error(self, conn: BybitConnection, payload: bytes, detail: str | None) -> None:
        text = payload.decode("utf-8", "replace")
        head = text.lstrip()[:1] or "EOF"
        if head in "{n" and detail:
            reason = detail
        else:
            # the wording of the Go JSON decoder (jsoniter) the venue runs, as observed
            reason = (f"readObjectStart: expect {{ or n, but found {head}, error found in #1 byte of "
                      f"...|{text[:10]}|..., bigger context ...|{text[:50]}|...")
        self._error(conn, "", f"Failed to decode incoming data:{reason}", None)

    def _log(self, conn: BybitConnection, op: str, nargs: int, ok: bool) -> None:
        self.stats.request_log.append((time.monotonic(), conn.id, conn.path, op, nargs, ok))

    def _ping(self, conn: BybitConnection, req_id: Any) -> None:
        self.stats.pings += 1
        conn.last_ping = time.monotonic()
        self._send(conn, pong(conn.category, conn.conn_id, req_id))
        self._log(conn, "ping", 0, True)

    def _auth(self, conn: BybitConnection, args: Any, req_id: Any) -> None:
        ok = False
        if isinstance(args, list) and len(args) == 3:
            key, expires, sig = args
            exp: int | None = None
            if isinstance(expires, int) and not isinstance(expires, bool):
                exp = expires
            elif isinstance(expires, str) and expires.isdigit():
                exp = int(expires)
            elif isinstance(expires, float) and expires.is_integer():
                exp = int(expires)
            secret = self.opts.api_keys.get(key) if isinstance(key, str) else None
            if exp is not None and secret is not None and isinstance(sig, str) and exp > now_ms():
                want = hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(want, sig)
        self._log(conn, "auth", len(args) if isinstance(args, list) else 0, ok)
        if ok:
            conn.authed = True
            conn.api_key = args[0]
            self.stats.auth_ok += 1
            self._send(conn, self._resp(conn, "auth", True, "", req_id))
        else:
            self.stats.auth_failed += 1
            self._error(conn, "auth", "Params Error", req_id)

    # -- subscriptions ------------------------------------------------------------------------

    def _check_topic(self, cat: str, topic: str) -> str | None:
        """None if the topic exists on this endpoint, else the venue's error text."""
        nf = f"error:handler not found,topic:{topic}"
        if cat == "private":
            return None if topic in PRIVATE_TOPICS else nf
        parts = topic.split(".")
        kind = parts[0]
        syms = self._symbols[cat]
        sym: str | None = None
        if kind == "orderbook" and len(parts) == 3:
            d = parts[1]
            if not d.isdigit() or str(int(d)) != d or int(d) not in self._depths[cat]:
                return nf
            sym = parts[2]
        elif kind == "publicTrade" and len(parts) == 2:
            if cat == "option":
                return None if parts[1] in self._option_bases else nf
            sym = parts[1]
        elif kind == "tickers" and len(parts) == 2:
            sym = parts[1]
        elif kind == "kline" and len(parts) == 3 and cat != "option":
            if parts[1] not in KLINE_INTERVALS:
                return nf
            sym = parts[2]
        elif kind == "allLiquidation" and len(parts) == 2 and cat in ("linear", "inverse"):
            sym = parts[1]
        else:
            return nf
        if sym in syms:
            return None
        if cat == "spot" and self.opts.spot_invalid_symbol_error:
            return f"Invalid symbol :[{topic}]"
        return nf

    def _subscribe(self, conn: BybitConnection, op: str, args: Any, req_id: Any) -> None:
        sub = op == "subscribe"
        st = self.stats
        if sub:
            st.subscribe_requests += 1
            conn.subscribe_requests += 1
        else:
            st.unsubscribe_requests += 1
            conn.unsubscribe_requests += 1
        cat = conn.category
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            self._log(conn, op, len(args) if isinstance(args, list) else 0, False)
            # invented text: the notes give none for a missing/empty/non-string args list
            self._fail_sub(conn, op, args if isinstance(args, list) else [], "error:args invalid", req_id)
            return
        n = len(args)
        if n > conn.max_args:
            conn.max_args = n
        if n > st.max_args_per_request:
            st.max_args_per_request = n
        if cat == "spot" and n > self.opts.spot_max_args_per_request:
            self._log(conn, op, n, False)
            self._error(conn, op, f"args size >{self.opts.spot_max_args_per_request}", req_id)
            return
        if cat == "private" and not conn.authed:
            self._log(conn, op, n, False)
            self._error(conn, op, "Request not authorized", req_id)
            return
        if cat == "option":
            self._subscribe_option(conn, op, args, req_id)
            return
        for t in args:
            err = self._check_topic(cat, t)
            if err is not None:
                self._log(conn, op, n, False)
                self._error(conn, op, err, req_id)
                return
        if cat == "private" and any(t in _PRIVATE_CATEGORISED for t in args) and any(
            t not in _PRIVATE_CATEGORISED for t in args
        ):
            self._log(conn, op, n, False)
            # invented text: the notes only say the two forms must not be mixed in one request
            self._error(conn, op, "error:all-in-one and categorised topics cannot be mixed", req_id)
            return
        if sub:
            seen: set[str] = set()
            for t in args:
                if t in conn.topics or t in seen:
                    self._log(conn, op, n, False)
                    self._error(conn, op, f"error:already subscribed,topic:{t}", req_id)
                    return
                seen.add(t)
            if cat != "private":
                chars = conn.args_chars + sum(len(t) for t in args)
                if chars > self.opts.max_args_chars:
                    self._log(conn, op, n, False)
                    # invented text (the 21,000-character rule is documented, its error is not)
                    self._error(conn, op, f"args length >{self.opts.max_args_chars}", req_id)
                    return
            self._log(conn, op, n, True)
            self._send(conn, self._resp(conn, op, True, "subscribe" if cat == "spot" else "", req_id))
            for t in args:
                self._attach(conn, t)
        else:
            self._log(conn, op, n, True)
            self._send(conn, self._resp(conn, op, True, "unsubscribe" if cat == "spot" else "", req_id))
            for t in args:
                self._detach(conn, t)

    def _fail_sub(self, conn: BybitConnection, op: str, args: list, ret_msg: str, req_id: Any) -> None:
        if conn.category == "option":
            self._send(conn, {"success": False, "ret_msg": ret_msg, "conn_id": conn.conn_id,
                              "data": {"failTopics": [a for a in args if isinstance(a, str)], "successTopics": []},
                              "type": "COMMAND_RESP"}, error=True)
        else:
            self._error(conn, op, ret_msg, req_id)

    def _subscribe_option(self, conn: BybitConnection, op: str, args: list[str], req_id: Any) -> None:
        """Option answers per topic: ``COMMAND_RESP`` with successTopics and failTopics."""
        sub = op == "subscribe"
        ok: list[str] = []
        fail: list[str] = []
        msg = ""
        room = self.opts.option_max_args - len(conn.topics)
        chars = conn.args_chars
        for t in args:
            err = self._check_topic("option", t)
            if err is None and sub:
                if t in conn.topics or t in ok:
                    err = f"error:already subscribed,topic:{t}"
                elif len(ok) >= room:
                    err = f"args size >{self.opts.option_max_args}"  # invented text
                elif chars + len(t) > self.opts.max_args_chars:
                    err = f"args length >{self.opts.max_args_chars}"  # invented text
            if err is None:
                ok.append(t)
                if sub:
                    chars += len(t)
            else:
                fail.append(t)
                msg = msg or err
        self._log(conn, op, len(args), not fail)
        obj: dict[str, Any] = {"success": not fail}
        if fail:
            obj["ret_msg"] = msg
        obj["conn_id"] = conn.conn_id
        obj["data"] = {"failTopics": fail, "successTopics": ok}
        obj["type"] = "COMMAND_RESP"
        self._send(conn, obj, error=bool(fail))
        for t in ok:
            if sub:
                self._attach(conn, t)
            else:
                self._detach(conn, t)

    def _attach(self, conn: BybitConnection, topic: str) -> None:
        conn.args_chars += len(topic)
        if conn.category == "private":
            assert conn.api_key is not None
            self.account(conn.api_key).topic(topic).subscribe(conn)
            return
        self.stream(conn.category, topic).subscribe(conn)

    def account(self, api_key: str = "sim-key") -> BybitAccount:
        """The simulated account of an API key (created on first use): its orders, executions,
        positions and wallet as pushed (``.orders``, ``.executions``, ``.positions_log``,
        ``.wallet_log``, ``.greeks_log``) — the ground truth of the private topics."""
        a = self.accounts.get(api_key)
        if a is None:
            a = self.accounts[api_key] = BybitAccount(self, api_key)
        return a

    def _detach(self, conn: BybitConnection, topic: str) -> None:
        if topic not in conn.topics:
            return  # unsubscribing a topic not subscribed is acked (UNVERIFIED)
        conn.args_chars -= len(topic)
        s = conn.topics.get(topic)
        if s is None:
            conn.topics.pop(topic, None)
        else:
            s.unsubscribe(conn)

    def stream(self, category: str, topic: str) -> Stream:
        """The shared stream of a (valid) public topic, created on first use."""
        key = (category, topic)
        s = self._streams.get(key)
        if s is not None:
            return s
        o = self.opts
        parts = topic.split(".")
        kind = parts[0]
        if kind == "orderbook":
            depth = int(parts[1])
            ms = o.book_interval_ms if o.book_interval_ms is not None else o.book_intervals_ms.get(depth, 100.0)
            cad = self.cadence(o.push_interval(ms), ("book", category, depth))
            cls = L1BookStream if depth == 1 else BookStream
            s = cls(self, topic, cad, category, self.market(category, parts[2]), depth)
        elif kind == "publicTrade":
            if category == "option":
                markets = [self.market("option", sym) for sym in sorted(self._symbols["option"])
                           if sym.split("-")[0] == parts[1]]
            else:
                markets = [self.market(category, parts[1])]
            s = TradeStream(self, topic, self.cadence(o.push_interval(o.trade_interval_ms), ("trade", category)),
                            category, markets)
        elif kind == "tickers":
            ms = o.spot_ticker_interval_ms if category == "spot" else o.ticker_interval_ms
            s = TickerStream(self, topic, self.cadence(o.push_interval(ms), ("ticker", category)),
                             category, self.market(category, parts[1]))
        elif kind == "kline":
            s = KlineStream(self, topic, self.cadence(o.push_interval(o.kline_interval_ms), ("kline", category)),
                            category, self.market(category, parts[2]), parts[1])
        elif kind == "allLiquidation":
            s = LiquidationStream(self, topic,
                                  self.cadence(o.push_interval(o.liquidation_interval_ms), ("liq", category)),
                                  self.market(category, parts[1]))
        else:  # pragma: no cover - _check_topic guards this
            raise ValueError(f"no stream for {topic}")
        self._streams[key] = s
        return s

    def book_streams(self) -> list[BookStream]:
        return [s for s in self._streams.values() if isinstance(s, BookStream)]

    def book(self, category: str, topic: str) -> tuple[list[list[str]], list[list[str]], int] | None:
        """What the sim last published on a book topic: ``(bids, asks, u)`` as strings, best first.

        A client book rebuilt from the frames must equal this once it has seen the latest ``u``.
        """
        s = self._streams.get((category, topic))
        if not isinstance(s, BookStream):
            return None
        fp, fq = s.spec.fp, s.spec.fq
        return ([[fp(p), fq(q)] for p, q in sorted(s.vb.items(), reverse=True)],
                [[fp(p), fq(q)] for p, q in sorted(s.va.items())], s.u)

    # -- faults -------------------------------------------------------------------------------

    def apply_venue_fault(self, f: Fault) -> bool:
        name, value = f.name, f.value
        if name == "skip-u":
            self._mark_skip()
        elif name == "skip-u-every":
            if isinstance(value, int):
                self._skip_every = value
                self._skip_every_cause = self.truth.cause
            else:
                self.every(float(value), lambda: self._mark_skip("skip-u-every"), fault=True)  # type: ignore[arg-type]
        elif name == "restart-snapshot":
            self._restart_books()
        elif name == "restart-snapshot-every":
            self.every(float(value), lambda: self._restart_books("restart-snapshot-every"), fault=True)  # type: ignore[arg-type]
        else:
            return False
        return True

    def clear_faults(self) -> None:
        super().clear_faults()
        self._skip_every = 0
        for s in self.book_streams():
            s.skip_pending = None

    def _mark_skip(self, kind: str = "skip-u") -> None:
        for s in self.book_streams():
            if s.depth > 1 and s.subs:
                s.skip_pending = (kind, self.truth.cause)

    def _restart_books(self, kind: str = "restart-snapshot") -> None:
        for s in self.book_streams():
            if s.subs:
                s.restart(kind)
