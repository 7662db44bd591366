"""OKX v5 WebSocket simulator (``/ws/v5/public``, ``/ws/v5/business``, ``/ws/v5/private``).

Written from ``protocols/okx.md`` only: no client code (``tickwire/venues``, ``tickwire/net``,
``tickwire/book.py``, ``tickwire/model.py``) is read or shared, so a misunderstanding on one side
is caught by the other.

The gateway machinery (login, acks, limits, the 30 s rule, notices, conn counting) is
:mod:`tickwire.sim.okx_gateway`, shared with the OKX DEX simulator. This module is the exchange:
a deterministic synthetic market per ``instId`` (spot, swaps, futures, options) behind
``books``/``books5``/``bbo-tbt``/``books-l2-tbt``/``books50-l2-tbt``, ``tickers``, ``trades``,
``trades-all`` and ``candle{bar}`` (``/business``), ``funding-rate``, ``mark-price``,
``open-interest``, ``index-tickers``, ``liquidation-orders``, ``instruments`` and the private
``orders``/``account``/``positions``/``balance_and_position`` channels; plus a REST
``GET /api/v5/market/books`` (and ``/api/v5/public/time``) answered on the same port.

Order books
-----------
One :class:`BookEngine` per instrument samples the market's top 400 levels; its ``seqId`` is the
market's own step counter (it grows by random steps) plus a per-instrument offset (moved by a
reset), so every connection and every book channel of one instrument shares one seqId space.
Each delta channel remembers every price the engine saw change since its last push and sends
all of them with their final size (``"0"`` = delete). A delta therefore takes *any* state of the
book between its ``prevSeqId`` and its ``seqId`` to the state at ``seqId``, which is what makes
the REST snapshot recipe of the notes (§2.2, snapshot delisting) exact for ``books`` and
``books-l2-tbt``. Some deletes name prices the client never held (the notes call these normal);
a few more are injected on purpose (``unknown_delete_prob``).
"""

from __future__ import annotations

import heapq
import random
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import parse_qs

import msgspec

from .framework import (
    Cadence,
    Candle,
    CandleBuilder,
    Fault,
    FaultSpec,
    Market,
    SimConnection,
    Stream,
    SymbolSpec,
    Trade,
    diff_window,
    now_ms,
    register_venue,
)
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
    uid_for,
)

__all__ = ["DEMO_STREAMS", "okx_checksum", "OKX_FAULTS", "OkxOptions", "OkxSim"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

OKX_FAULTS: dict[str, FaultSpec] = dict(GATEWAY_FAULTS)
OKX_FAULTS.update(
    {
        s.name: s
        for s in (
            FaultSpec("skip-seq", "none", "each active book delta channel silently drops its next delta "
                                          "(the following delta's prevSeqId names a seqId never sent)", needs_subscribers=True),
            FaultSpec("skip-seq-every", "count_or_duration",
                      "drop one delta every N deltas of each book channel (=50) or periodically (=2s)"),
            FaultSpec("reset-seq", "none", "reset the seqId of every instrument with an active book: the next "
                                           "delta has seqId < prevSeqId", needs_subscribers=True),
            FaultSpec("reset-seq-every", "duration", "reset-seq periodically"),
            FaultSpec("bad-checksum", "none", "the next delta of each book channel carries a wrong, non-zero "
                                              "checksum", needs_subscribers=True),
            FaultSpec("dup-seq", "none", "each active book delta channel sends its next delta twice (same bytes)",
                      needs_subscribers=True),
            FaultSpec("reorder-seq", "none", "each active book delta channel sends its next two deltas in reverse "
                                             "order", needs_subscribers=True),
        )
    }
)


def okx_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """Legacy CRC32 of the best 25 levels a side, bid first in each pair, as a signed 32-bit int."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    c = zlib.crc32(":".join(parts).encode("ascii"))
    return c - (1 << 32) if c >= (1 << 31) else c


# =============================================================================================
# Instruments and the synthetic market
# =============================================================================================

# instId -> (tick, lot, start price, mean size in lots, ctVal)
DEFAULT_INSTRUMENTS: dict[str, tuple[str, str, str, int, str]] = {
    "BTC-USDT": ("0.1", "0.00000001", "65000", 2_000_000, ""),
    "ETH-USDT": ("0.01", "0.000001", "3200", 300_000, ""),
    "SOL-USDT": ("0.01", "0.000001", "150", 3_000_000, ""),
    "BTC-USDT-SWAP": ("0.1", "0.01", "65010", 500, "0.01"),
    "ETH-USDT-SWAP": ("0.01", "0.01", "3201", 500, "0.1"),
    "SOL-USDT-SWAP": ("0.01", "0.01", "150", 500, "1"),
    "BTC-USD-SWAP": ("0.1", "1", "65000", 60, "100"),
    "BTC-USDT-261225": ("0.1", "0.01", "66500", 300, "0.01"),
    "BTC-USD-261225": ("0.1", "1", "66500", 30, "100"),
    "BTC-USD-261225-100000-C": ("0.0005", "1", "0.0650", 20, "0.01"),
    "BTC-USD-261225-60000-P": ("0.0005", "1", "0.0450", 20, "0.01"),
}

BOOK_CHANNELS = {"books": 400, "books-l2-tbt": 400, "books50-l2-tbt": 50}
SNAP_CHANNELS = {"books5": 5, "bbo-tbt": 1}
TBT_CHANNELS = frozenset({"books-l2-tbt", "books50-l2-tbt"})
PUBLIC_CHANNELS = frozenset(
    set(BOOK_CHANNELS) | set(SNAP_CHANNELS)
    | {"tickers", "trades", "funding-rate", "mark-price", "open-interest", "index-tickers",
       "liquidation-orders", "instruments"}
)
PRIVATE_CHANNELS = frozenset({"orders", "account", "positions", "balance_and_position"})
_BAR_SET = frozenset(CANDLE_BARS)
INST_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")
_ORDER_INST_TYPES = frozenset(INST_TYPES + ("EVENTS", "ANY"))


def business_channel(ch: str) -> bool:
    return ch == "trades-all" or (ch.startswith("candle") and ch[6:] in _BAR_SET)


def inst_type_of(inst_id: str) -> str:
    parts = inst_id.split("-")
    if len(parts) == 2:
        return "SPOT"
    if parts[-1] == "SWAP":
        return "SWAP"
    if len(parts) == 5 and parts[-1] in ("C", "P"):
        return "OPTION"
    return "FUTURES"


def _fmt(x: float, decimals: int = 8) -> str:
    """A float as a plain decimal string with at most ``decimals`` decimals (no exponent)."""
    s = f"{x:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s


class Inst:
    """One instrument of the synthetic exchange (lazily creates its market and book engine)."""

    def __init__(self, sim: "OkxSim", inst_id: str, tick: str, lot: str, price: str, mean: int, ct_val: str):
        self.sim = sim
        self.inst_id = inst_id
        self.inst_type = inst_type_of(inst_id)
        parts = inst_id.split("-")
        self.base = parts[0]
        self.quote = parts[1] if len(parts) > 1 else "USDT"
        self.family = f"{self.base}-{self.quote}"
        self.inverse = self.inst_type != "SPOT" and self.quote == "USD"
        self.settle = self.base if self.inverse or self.inst_type == "OPTION" else self.quote
        self.ct_val = ct_val
        self.ct_val_f = float(ct_val) if ct_val else 1.0
        self.spec = SymbolSpec(inst_id, tick, lot, price, size_mean_lots=mean, base=self.base, quote=self.quote)
        self.rng = random.Random(f"{sim.seed}|okx|inst|{inst_id}")
        self.trade_id_base = self.rng.randint(10**8, 3 * 10**9)
        self.seq_offset = 0
        self._market: Market | None = None
        self._engine: BookEngine | None = None
        self.sod0 = 0
        self.sod8 = 0
        self.trim = not sim.opts.fixed_decimals
        self._pc: dict[int, str] = {}
        self._qc: dict[int, str] = {}

    @property
    def market(self) -> Market:
        m = self._market
        if m is None:
            o = self.sim.opts
            m = self._market = Market(self.spec, f"{self.sim.seed}|okx", levels=min(o.book_levels, 440),
                                      steps_per_s=o.market_steps_per_s,
                                      trade_prob=0.06 if self.inst_type == "OPTION" else 0.12)
            tk = self.spec.tick_units
            for attr, f in (("sod0", 1.0 + self.rng.uniform(-0.01, 0.01)), ("sod8", 1.0 + self.rng.uniform(-0.01, 0.01))):
                u = int(m.prev_price_24h * f)
                setattr(self, attr, max(tk, u - u % tk))
        return m

    @property
    def engine(self) -> "BookEngine":
        e = self._engine
        if e is None:
            e = self._engine = BookEngine(self.sim, self)
        return e

    def sync(self) -> Market:
        m = self.market
        m.sync(None, self.sim.opts.speed)
        return m

    def amounts(self, qty: float, price: float) -> tuple[float, float]:
        """(base currency, quote currency) amounts of ``qty`` (base for spot, contracts otherwise)."""
        if self.inst_type == "SPOT":
            return qty, qty * price
        if self.inverse and self.inst_type != "OPTION":
            quote = qty * self.ct_val_f
            return (quote / price if price else 0.0), quote
        base = qty * self.ct_val_f
        return base, base * price

    def fp(self, units: int) -> str:
        """A price as the venue writes it (trailing zeros trimmed unless ``fixed_decimals``)."""
        s = self._pc.get(units)
        return s if s is not None else self._format(self._pc, units, self.spec.fp)

    def fq(self, units: int) -> str:
        """A size as the venue writes it (``0`` -> ``"0"``)."""
        if units == 0:
            return "0"
        s = self._qc.get(units)
        return s if s is not None else self._format(self._qc, units, self.spec.fq)

    def _format(self, cache: dict[int, str], units: int, fmt: Callable[[int], str]) -> str:
        """Format ``units`` (not in ``cache`` yet) as the venue writes it, and cache the text."""
        s = fmt(units)
        if self.trim and "." in s:
            s = s.rstrip("0").rstrip(".")
        if len(cache) > 50_000:
            cache.clear()
        cache[units] = s
        return s

    def seq_of(self, market_seq: int) -> int:
        return market_seq + self.seq_offset

    def norders(self, price: int, size: int) -> str:
        lots = max(1, size // self.spec.lot_units)
        return str(min(lots, 1 + (price * 2654435761 + size * 40503) % 23))

    def level(self, price: int, size: int) -> list[str]:
        if size <= 0:
            return [self.fp(price), "0", "0", "0"]
        return [self.fp(price), self.fq(size), "0", self.norders(price, size)]


class BookEngine:
    """The 400-level published window and the seqId of one instrument (shared by every channel)."""

    DEPTH = 400

    def __init__(self, sim: "OkxSim", inst: Inst):
        self.sim = sim
        self.inst = inst
        self.market = inst.market
        self.vb: dict[int, int] = {}
        self.va: dict[int, int] = {}
        self.version = -1
        self.seq = 0
        self.epoch = 0  # bumped by every reset
        self.force = False
        self.listeners: dict[BookDeltaChannel, None] = {}
        self.resets = 0
        self.sample()

    def sample(self) -> None:
        m = self.market
        m.sync(None, self.sim.opts.speed)
        if m.version == self.version and not self.force:
            return
        self.force = False
        cb, self.vb, _ = diff_window(self.vb, m.bids, self.DEPTH)
        ca, self.va, _ = diff_window(self.va, m.asks, self.DEPTH)
        self.version = m.version
        self.seq = m.seq + self.inst.seq_offset
        if cb or ca:
            for ch in self.listeners:
                ch.touch(cb, ca)

    def reset(self) -> bool:
        """Maintenance reset: the seqId restarts from a small number below the current one."""
        self.sample()
        if self.seq <= 1:
            return False
        new = self.inst.rng.randint(0, min(1000, self.seq - 1))
        self.inst.seq_offset = new - self.market.seq
        self.force = True
        self.epoch += 1
        self.resets += 1
        self.sample()
        return True

    def snapshot(self, sz: int) -> tuple[list[list[str]], list[list[str]], int]:
        """The top ``sz`` levels a side (best first, 4-string levels) and the seqId: REST's answer."""
        self.sample()
        inst = self.inst
        bids = [inst.level(p, self.vb[p]) for p in heapq.nlargest(sz, self.vb)]
        asks = [inst.level(p, self.va[p]) for p in heapq.nsmallest(sz, self.va)]
        return bids, asks, self.seq


# =============================================================================================
# Streams
# =============================================================================================


class BookDeltaChannel(OkxStream):
    """``books`` / ``books-l2-tbt`` / ``books50-l2-tbt``: a snapshot then seqId-chained deltas."""

    def __init__(self, sim: "OkxSim", topic: str, cadence: Cadence, inst: Inst, channel: str, depth: int):
        super().__init__(sim, topic, cadence, {"channel": channel, "instId": inst.inst_id})
        self.inst = inst
        self.channel = channel
        self.depth = depth
        self.rng = random.Random(f"{sim.seed}|okx|{topic}")
        self.vb: dict[int, int] = {}
        self.va: dict[int, int] = {}
        self.tb: set[int] = set()
        self.ta: set[int] = set()
        self.last_seq = 0
        self.epoch = 0
        self.last_pub = 0.0
        self.deltas = 0
        # faults due on the next delta: (fault kind, the injection that asked for it)
        self.skip_pending: tuple[str, int | None] | None = None
        self.bad_checksum_pending: tuple[str, int | None] | None = None
        self.dup_pending: tuple[str, int | None] | None = None
        self.reorder_pending: tuple[str, int | None] | None = None
        self.held: bytes | None = None
        self._snap: bytes | None = None

    def activate(self) -> None:
        eng = self.inst.engine
        eng.sample()
        m = self.inst.market
        if self.depth >= BookEngine.DEPTH:
            self.vb, self.va = dict(eng.vb), dict(eng.va)
        else:
            self.vb, self.va = dict(m.bids.items_top(self.depth)), dict(m.asks.items_top(self.depth))
        self.tb.clear()
        self.ta.clear()
        self.last_seq = eng.seq
        self.epoch = eng.epoch
        self.last_pub = time.monotonic()
        self._snap = None
        self.held = None
        eng.listeners[self] = None
        truth = self.osim.truth
        if truth.enabled:
            fp, fq = self.inst.fp, self.inst.fq
            truth.book_snapshot(self.topic, self.last_seq, [(fp(p), fq(q)) for p, q in self.vb.items()],
                                [(fp(p), fq(q)) for p, q in self.va.items()])

    def deactivate(self) -> None:
        self.inst.engine.listeners.pop(self, None)
        self.held = None

    def touch(self, cb: list[tuple[int, int]], ca: list[tuple[int, int]]) -> None:
        tb, ta = self.tb, self.ta
        for p, _ in cb:
            tb.add(p)
        for p, _ in ca:
            ta.add(p)

    def checksum(self) -> int:
        if self.osim.opts.checksum != "legacy":
            return 0
        fp, fq = self.inst.fp, self.inst.fq
        vb, va = self.vb, self.va
        bids = [(fp(p), fq(vb[p])) for p in heapq.nlargest(25, vb)]
        asks = [(fp(p), fq(va[p])) for p in heapq.nsmallest(25, va)]
        return okx_checksum(bids, asks)

    def _data(self, asks: list[list[str]], bids: list[list[str]], prev: int, seq: int, cs: int) -> dict[str, Any]:
        d: dict[str, Any] = {"asks": asks, "bids": bids, "ts": str(now_ms()), "checksum": cs}
        if not self.osim.opts.no_seq:
            d["prevSeqId"] = prev
            d["seqId"] = seq
        return d

    def snapshot_bytes(self) -> bytes:
        if self._snap is None:
            inst, vb, va = self.inst, self.vb, self.va
            asks = [inst.level(p, va[p]) for p in sorted(va)]
            bids = [inst.level(p, vb[p]) for p in sorted(vb, reverse=True)]
            self._snap = self.frame([self._data(asks, bids, -1, self.last_seq, self.checksum())], action="snapshot")
        return self._snap

    def on_subscribe(self, conn: SimConnection) -> None:
        if not self.osim.opts.no_initial_snapshot:
            self.send_to(conn, self.snapshot_bytes())

    def _changes(self, touched: set[int], old: dict[int, int], new_side: Any, engine_side: dict[int, int],
                 is_bid: bool) -> tuple[list[tuple[int, int]], dict[int, int]]:
        if self.depth >= BookEngine.DEPTH:
            changes = [(p, engine_side.get(p, 0)) for p in touched]
            for p, s in changes:
                if s:
                    old[p] = s
                else:
                    old.pop(p, None)
            changes.sort(reverse=is_bid)
            return changes, old
        new = dict(new_side.items_top(self.depth))
        cand = {p for p in old if old[p] != new.get(p)}
        cand.update(p for p in new if old.get(p) != new[p])
        cand.update(p for p in touched if p in new)
        changes = sorted(((p, new.get(p, 0)) for p in cand), reverse=is_bid)
        return changes, new

    def tick(self) -> None:
        eng = self.inst.engine
        eng.sample()
        now = time.monotonic()
        reset = eng.epoch != self.epoch
        if not reset and (eng.seq == self.last_seq or not (self.tb or self.ta)):
            if now - self.last_pub >= self.osim.opts.keepalive_s:
                self._keepalive(now)
            return
        m = self.inst.market
        cb, self.vb = self._changes(self.tb, self.vb, m.bids, eng.vb, True)
        ca, self.va = self._changes(self.ta, self.va, m.asks, eng.va, False)
        self.tb.clear()
        self.ta.clear()
        if not (cb or ca or reset):
            # only levels below this channel's depth moved: nothing to say at this seqId
            if now - self.last_pub >= self.osim.opts.keepalive_s:
                self._keepalive(now)
            return
        prev, seq = self.last_seq, eng.seq
        self.last_seq = seq
        self.epoch = eng.epoch
        self._snap = None
        self.deltas += 1
        o = self.osim.opts
        if (cb or ca) and o.unknown_delete_prob > 0 and self.rng.random() < o.unknown_delete_prob:
            self._unknown_delete(cb, ca)
        inst = self.inst
        asks = [inst.level(p, s) for p, s in ca]
        bids = [inst.level(p, s) for p, s in cb]
        truth = self.osim.truth
        truth.book_delta(self.topic, seq, bids, asks)  # the venue's book moved, sent or not
        every = self.osim._skip_every
        pending, self.skip_pending = self.skip_pending, None
        if pending is not None or (every > 0 and self.deltas % every == 0):
            kind, cause = pending if pending is not None else ("skip-seq-every", self.osim._skip_every_cause)
            truth.fault(kind, stream=self.topic, seqs=(seq,), detail=f"delta {prev} -> {seq} withheld", cause=cause)
            return
        cs = self.checksum()
        if self.bad_checksum_pending is not None:
            kind, cause = self.bad_checksum_pending
            self.bad_checksum_pending = None
            good, cs = cs, (cs ^ 0x2F3A5C) or 1
            truth.fault(kind, stream=self.topic, seqs=(seq,), detail=f"checksum {cs} instead of {good}", cause=cause)
        self.last_pub = now
        data = self.frame([self._data(asks, bids, prev, seq, cs)], action="update")
        if self.reorder_pending is not None:
            kind, cause = self.reorder_pending
            self.reorder_pending = None
            self.held = data
            truth.fault(kind, stream=self.topic, seqs=(seq,), detail=f"delta {prev} -> {seq} held back", cause=cause)
            return
        self.publish(data)
        if self.held is not None:
            held, self.held = self.held, None
            self.publish(held)
        if self.dup_pending is not None:
            kind, cause = self.dup_pending
            self.dup_pending = None
            truth.fault(kind, stream=self.topic, seqs=(seq,), detail=f"delta {prev} -> {seq} sent twice", cause=cause)
            self.publish(data)

    def _unknown_delete(self, cb: list[tuple[int, int]], ca: list[tuple[int, int]]) -> None:
        """Append a delete of a level beyond the published depth (never held by a client)."""
        tk = self.inst.spec.tick_units
        k = self.rng.randint(1, 5)
        if self.rng.random() < 0.5 and self.vb:
            p = min(self.vb) - k * tk
            if p > 0 and p not in self.vb and all(p != x for x, _ in cb):
                cb.append((p, 0))
                cb.sort(reverse=True)
        elif self.va:
            p = max(self.va) + k * tk
            if p not in self.va and all(p != x for x, _ in ca):
                ca.append((p, 0))
                ca.sort()

    def _keepalive(self, now: float) -> None:
        self.last_pub = now
        self.publish(self.frame([self._data([], [], self.last_seq, self.last_seq, self.checksum())],
                                action="update"))


class BookSnapChannel(OkxStream):
    """``books5`` / ``bbo-tbt``: a full snapshot on change (carrying only ``seqId``)."""

    def __init__(self, sim: "OkxSim", topic: str, cadence: Cadence, inst: Inst, channel: str, depth: int):
        super().__init__(sim, topic, cadence, {"channel": channel, "instId": inst.inst_id})
        self.inst = inst
        self.depth = depth
        self.with_inst_id = channel == "books5"
        self.top: tuple | None = None
        self.seq = 0
        self.last_pub = 0.0
        self._frame: bytes | None = None

    def _build(self) -> bytes:
        inst = self.inst
        assert self.top is not None
        bids, asks = self.top
        d: dict[str, Any] = {"asks": [inst.level(p, s) for p, s in asks], "bids": [inst.level(p, s) for p, s in bids]}
        if self.with_inst_id:
            d["instId"] = inst.inst_id
        d["ts"] = str(now_ms())
        if not self.osim.opts.no_seq:
            d["seqId"] = self.seq
        return self.frame([d])

    def _read(self) -> tuple:
        m = self.inst.market
        return (tuple(m.bids.items_top(self.depth)), tuple(m.asks.items_top(self.depth)))

    def activate(self) -> None:
        eng = self.inst.engine
        eng.sample()
        self.top = self._read()
        self.seq = eng.seq
        self._frame = None
        self.last_pub = time.monotonic()
        self._truth()

    def _truth(self) -> None:
        truth = self.osim.truth
        if truth.enabled and self.top is not None:
            fp, fq = self.inst.fp, self.inst.fq
            bids, asks = self.top
            truth.book_snapshot(self.topic, self.seq, [(fp(p), fq(q)) for p, q in bids],
                                [(fp(p), fq(q)) for p, q in asks])

    def on_subscribe(self, conn: SimConnection) -> None:
        if self._frame is None:
            self._frame = self._build()
        self.send_to(conn, self._frame)

    def tick(self) -> None:
        eng = self.inst.engine
        eng.sample()
        now = time.monotonic()
        top = self._read()
        if top != self.top or eng.seq < self.seq:
            self.top = top
            self.seq = eng.seq
            self._truth()
        elif now - self.last_pub < self.osim.opts.keepalive_s:
            return
        self._frame = self._build()  # a change, or the keepalive re-send (same seqId, fresh ts)
        self.last_pub = now
        self.publish(self._frame)


class TradesChannel(OkxStream):
    """``trades`` (aggregated per taker order and price) and ``trades-all`` (one fill per push)."""

    def __init__(self, sim: "OkxSim", topic: str, cadence: Cadence, inst: Inst, channel: str):
        super().__init__(sim, topic, cadence, {"channel": channel, "instId": inst.inst_id})
        self.inst = inst
        self.all = channel == "trades-all"
        self.buf: list[tuple[Trade, int]] = []

    def activate(self) -> None:
        self.inst.sync()
        self.buf = []
        self.inst.market.trade_listeners.append(self._on_trade)

    def deactivate(self) -> None:
        try:
            self.inst.market.trade_listeners.remove(self._on_trade)
        except ValueError:
            pass
        self.buf = []

    def _on_trade(self, t: Trade) -> None:
        self.buf.append((t, t.seq + self.inst.seq_offset))
        if len(self.buf) > 50_000:
            del self.buf[:25_000]

    def tick(self) -> None:
        self.inst.sync()
        buf = self.buf
        if not buf:
            return
        self.buf = []
        inst = self.inst
        iid = inst.inst_id
        base = inst.trade_id_base
        truth = self.osim.truth
        if self.all:
            for t, _ in buf:
                item = {"instId": iid, "tradeId": str(base + t.no), "px": inst.fp(t.price), "sz": inst.fq(t.size),
                        "side": t.side.lower(), "source": "0", "ts": str(t.ts_ms)}
                n = self.publish(self.frame([item]))
                truth.trades_sent(self.topic, [(item["tradeId"], item["px"], item["sz"], item["side"])], n - self.garbled)
            return
        legacy = self.osim.opts.legacy_trades
        i, n = 0, len(buf)
        while i < n:
            t0, seq = buf[i]
            j = i + 1
            size = t0.size
            while j < n:
                t1 = buf[j][0]
                if t1.seq != t0.seq or t1.price != t0.price or t1.side != t0.side:
                    break
                size += t1.size
                j += 1
            last = buf[j - 1][0]
            item: dict[str, Any] = {"instId": iid, "tradeId": str(base + last.no), "px": inst.fp(t0.price),
                                    "sz": inst.fq(size), "side": t0.side.lower(), "ts": str(t0.ts_ms)}
            if not legacy:
                item["count"] = str(j - i)
                item["source"] = "0"
                item["seqId"] = seq
            sent = self.publish(self.frame([item])) - self.garbled
            truth.trades_sent(self.topic, [(item["tradeId"], item["px"], item["sz"], item["side"])], sent)
            i = j


class TickerChannel(OkxStream):
    """``tickers``: one shared frame per instrument, pushed on a trade or a best-level change."""

    def __init__(self, sim: "OkxSim", topic: str, cadence: Cadence, inst: Inst):
        super().__init__(sim, topic, cadence, {"channel": "tickers", "instId": inst.inst_id})
        self.inst = inst
        self.key: tuple | None = None
        self.last_sz = 0
        self._frame: bytes | None = None

    def activate(self) -> None:
        m = self.inst.sync()
        self.last_sz = self.inst.spec.lot_units
        m.trade_listeners.append(self._on_trade)
        self.key = None
        self._frame = None
        self._refresh()

    def deactivate(self) -> None:
        try:
            self.inst.market.trade_listeners.remove(self._on_trade)
        except ValueError:
            pass

    def _on_trade(self, t: Trade) -> None:
        self.last_sz = t.size

    def _refresh(self) -> bool:
        inst, m = self.inst, self.inst.market
        b, a = m.bids.best(), m.asks.best()
        key = (m.last_price, self.last_sz, b, m.bids.sizes.get(b), a, m.asks.sizes.get(a))  # type: ignore[arg-type]
        if key == self.key:
            return False
        self.key = key
        spec = inst.spec
        fp, fq = inst.fp, inst.fq
        px = spec.price_float(m.mid_units())
        qty24 = spec.qty_float(m.volume_24h)
        if inst.inst_type == "SPOT":
            vol_ccy = m.turnover_24h
        else:
            vol_ccy = inst.amounts(qty24, px)[0]
        d = {
            "instType": inst.inst_type, "instId": inst.inst_id, "last": fp(m.last_price), "lastSz": fq(self.last_sz),
            "askPx": fp(a) if a else "", "askSz": fq(m.asks.sizes[a]) if a else "",
            "bidPx": fp(b) if b else "", "bidSz": fq(m.bids.sizes[b]) if b else "",
            "open24h": fp(m.prev_price_24h), "high24h": fp(m.high_24h), "low24h": fp(m.low_24h),
            "sodUtc0": fp(inst.sod0), "sodUtc8": fp(inst.sod8),
            "volCcy24h": _fmt(vol_ccy, 8), "vol24h": fq(m.volume_24h), "ts": str(now_ms()),
        }
        self._frame = self.frame([d])
        return True

    def on_subscribe(self, conn: SimConnection) -> None:
        if self._frame is not None:
            self.send_to(conn, self._frame)

    def tick(self) -> None:
        self.inst.sync()
        if self._refresh():
            assert self._frame is not None
            self.publish(self._frame)


class _Bar(Candle):
    """An OKX candle: ``turnover`` is the quote-currency volume, ``base`` the base-currency one."""

    __slots__ = ("base",)

    def __init__(self, start: int, end: int, price: int):
        super().__init__(start, end, price)
        self.base = 0.0


class CandleChannel(OkxStream):
    """``candle{bar}`` on ``/business``: the open bar at most once per second, closed bars once."""

    def __init__(self, sim: "OkxSim", topic: str, cadence: Cadence, inst: Inst, bar: str):
        super().__init__(sim, topic, cadence, {"channel": f"candle{bar}", "instId": inst.inst_id})
        self.inst = inst
        self.bar = bar
        self.candles = CandleBuilder(self._bounds, self._fold, make=_Bar)

    def _bounds(self, t: int) -> tuple[int, int]:
        return bar_bounds(self.bar, t, self.osim.opts.candle_period_s)

    def activate(self) -> None:
        m = self.inst.sync()
        self.candles.start(m.trade_listeners, m.last_price)

    def deactivate(self) -> None:
        self.candles.stop()

    def _fold(self, c: _Bar, t: Trade) -> None:
        spec = self.inst.spec
        b, q = self.inst.amounts(spec.qty_float(t.size), spec.price_float(t.price))
        c.add(t.price, t.size, q, t.ts_ms)
        c.base += b

    def _item(self, c: _Bar) -> list[str]:
        fp, fq = self.inst.spec.fp, self.inst.spec.fq
        spot = self.inst.inst_type == "SPOT"
        vol_ccy = c.turnover if spot else c.base
        return [str(c.start), fp(c.open), fp(c.high), fp(c.low), fp(c.close), fq(c.volume), _fmt(vol_ccy, 8),
                _fmt(c.turnover, 8), "1" if c.closed else "0"]

    def on_subscribe(self, conn: SimConnection) -> None:
        if self.candles.current is not None:
            self.send_to(conn, self.frame([self._item(self.candles.current)]))

    def tick(self) -> None:
        self.inst.sync()
        for c in self.candles.due(now_ms()):
            self.publish(self.frame([self._item(c)]))
        if self.candles.current is not None:
            self.publish(self.frame([self._item(self.candles.current)]))


class PeriodicChannel(OkxStream):
    """A channel whose item is recomputed every tick; pushed on change, or after ``idle_s``."""

    def __init__(self, sim: "OkxSim", topic: str, cadence: Cadence, arg: dict[str, Any],
                 compute: Callable[[], tuple[Any, dict[str, Any]]], idle_s: float = 0.0, always: bool = False):
        super().__init__(sim, topic, cadence, arg)
        self.compute = compute
        self.idle_s = idle_s
        self.always = always
        self.key: Any = None
        self.last_pub = 0.0
        self._frame: bytes | None = None

    def activate(self) -> None:
        self.key, item = self.compute()
        self._frame = self.frame([item])
        self.last_pub = time.monotonic()

    def on_subscribe(self, conn: SimConnection) -> None:
        if self._frame is not None:
            self.send_to(conn, self._frame)

    def tick(self) -> None:
        now = time.monotonic()
        key, item = self.compute()
        if self.always or key != self.key or (self.idle_s > 0 and now - self.last_pub >= self.idle_s):
            self.key = key
            self._frame = self.frame([item])
            self.last_pub = now
            self.publish(self._frame)


class LiquidationChannel(OkxStream):
    """``liquidation-orders`` (arg ``instType``): random liquidations of that type's instruments."""

    def __init__(self, sim: "OkxSim", topic: str, cadence: Cadence, inst_type: str, insts: list[Inst]):
        super().__init__(sim, topic, cadence, {"channel": "liquidation-orders", "instType": inst_type})
        self.insts = insts
        self.rng = random.Random(f"{sim.seed}|okx|{topic}")

    def tick(self) -> None:
        rng = self.rng
        if not self.insts or rng.random() >= self.osim.opts.liquidation_prob:
            return
        inst = rng.choice(self.insts)
        m = inst.sync()
        spec = inst.spec
        side = rng.choice(("buy", "sell"))  # a short position is closed by a buy
        off = rng.uniform(0.001, 0.01) * (1 if side == "buy" else -1)
        p = int(m.mid_units() * (1 + off))
        p = max(spec.tick_units, p - p % spec.tick_units)
        now = now_ms()
        d = {"details": [{"bkLoss": "0", "bkPx": inst.fp(p), "ccy": "", "posSide": "short" if side == "buy" else "long",
                          "side": side, "sz": inst.fq(spec.lot_units * rng.randint(1, 300)),
                          "ts": str(now - rng.randint(0, 300))}],
             "instFamily": inst.family, "instId": inst.inst_id, "instType": inst.inst_type, "uly": inst.family}
        self.publish(self.frame([d]))


class InstrumentsChannel(OkxStream):
    """``instruments`` (arg ``instType``): the full list on subscribe (no later changes simulated)."""

    def __init__(self, sim: "OkxSim", topic: str, inst_type: str, insts: list[Inst]):
        super().__init__(sim, topic, None, {"channel": "instruments", "instType": inst_type})
        self.insts = insts

    def _item(self, inst: Inst) -> dict[str, Any]:
        return instrument_item(inst)

    def on_subscribe(self, conn: SimConnection) -> None:
        self.send_to(conn, self.frame([self._item(i) for i in self.insts]))


def instrument_item(inst: Inst) -> dict[str, Any]:
    """One instrument as ``instruments`` (WS) and ``GET /api/v5/public/instruments`` describe it:
    the tick, lot and contract value of the simulated market."""
    spot = inst.inst_type == "SPOT"
    parts = inst.inst_id.split("-")
    option = inst.inst_type == "OPTION"
    return {
        "alias": "" if inst.inst_type != "FUTURES" else "quarter",
        "baseCcy": inst.base if spot else "", "category": "1",
        "ctMult": "" if spot else "1", "ctType": "" if spot or option else ("inverse" if inst.inverse else "linear"),
        "ctVal": inst.ct_val, "ctValCcy": "" if spot else ("USD" if inst.inverse and not option else inst.base),
        "expTime": "" if inst.inst_type in ("SPOT", "SWAP") else "1798185600000",
        "instFamily": "" if spot else inst.family, "instId": inst.inst_id, "instType": inst.inst_type,
        "lever": "10" if spot else "100", "listTime": "1606468572000", "lotSz": inst.spec.lot,
        "maxLmtSz": "10000000", "maxMktSz": "1000000", "minSz": inst.spec.lot,
        "optType": parts[-1] if option else "", "quoteCcy": inst.quote if spot else "",
        "settleCcy": "" if spot else inst.settle, "state": "live", "stk": parts[3] if option else "",
        "tickSz": inst.spec.tick, "uly": "" if spot else inst.family,
    }


# =============================================================================================
# Private channels
# =============================================================================================


class Account:
    """A synthetic trading account of one API key: orders, fills, balances and positions."""

    def __init__(self, sim: "OkxSim", api_key: str):
        self.sim = sim
        self.uid = uid_for(api_key)
        self.rng = random.Random(f"{sim.seed}|okx|acct|{api_key}")
        self.log: list[dict[str, Any]] = []  # order updates
        self.log_base = 0
        self.fills: list[dict[str, Any]] = []  # balance_and_position events
        self.fills_base = 0
        self.open: dict[str, dict[str, Any]] = {}
        self.ord_no = self.rng.randint(6 * 10**17, 7 * 10**17)
        self.trade_no = self.rng.randint(10**8, 10**9)
        self.pos_no = self.rng.randint(10**17, 2 * 10**17)
        self.t_last = time.monotonic()
        self.balances: dict[str, float] = {"USDT": 50_000.0, "BTC": 1.0, "ETH": 10.0, "SOL": 100.0, "USD": 0.0}
        self.positions: dict[str, dict[str, Any]] = {}
        self.u_time = now_ms()

    def advance(self) -> None:
        o = self.sim.opts
        rate = o.order_events_per_s * o.speed
        if rate <= 0:
            return
        now = time.monotonic()
        n = int((now - self.t_last) * rate)
        if n <= 0:
            return
        self.t_last += n / rate
        for _ in range(min(n, 20)):
            self._event()
        if len(self.log) > 4000:
            self.log_base += 2000
            del self.log[:2000]
        if len(self.fills) > 4000:
            self.fills_base += 2000
            del self.fills[:2000]

    def _event(self) -> None:
        rng = self.rng
        if self.open and rng.random() < 0.65:
            od = self.open[rng.choice(sorted(self.open))]
            if rng.random() < 0.2:
                self._update(od, "canceled")
            else:
                self._fill(od)
            return
        insts = [i for i in self.sim.insts.values() if i.inst_type in ("SPOT", "SWAP", "FUTURES")]
        if not insts:
            return
        inst = rng.choice(insts)
        m = inst.sync()
        spec = inst.spec
        side = rng.choice(("buy", "sell"))
        ref = m.bids.best() if side == "buy" else m.asks.best()
        ref = ref or spec.price_units
        px = ref - spec.tick_units * rng.randint(0, 20) if side == "buy" else ref + spec.tick_units * rng.randint(0, 20)
        self.ord_no += rng.randint(1, 5000)
        now = now_ms()
        qty = spec.lot_units * rng.randint(1, 200)
        od = {
            "instType": inst.inst_type, "instId": inst.inst_id, "ordId": str(self.ord_no), "clOrdId": "", "tag": "",
            "px": inst.fp(max(px, spec.tick_units)), "sz": inst.fq(qty),
            "ordType": "limit", "side": side, "posSide": "net" if inst.inst_type != "SPOT" else "",
            "tdMode": "cash" if inst.inst_type == "SPOT" else "cross", "state": "live", "accFillSz": "0", "avgPx": "",
            "fillPx": "", "fillSz": "0", "fillTime": "", "fillFee": "0", "fillFeeCcy": "", "fillPnl": "0",
            "tradeId": "", "execType": "", "fee": "0", "feeCcy": inst.settle if inst.inst_type != "SPOT" else inst.quote,
            "rebate": "0", "rebateCcy": inst.quote, "lever": "" if inst.inst_type == "SPOT" else "10",
            "reduceOnly": "false", "cTime": str(now), "uTime": str(now), "code": "0", "msg": "", "amendResult": "",
            "cancelSource": "", "reqId": "", "attachAlgoOrds": [], "linkedAlgoOrd": {"algoId": ""},
            "_inst": inst, "_sz": qty, "_filled": 0, "_notional": 0.0,
        }
        self.open[od["ordId"]] = od
        self._push(od)

    def _push(self, od: dict[str, Any]) -> None:
        self.log.append({k: v for k, v in od.items() if not k.startswith("_")})

    def _update(self, od: dict[str, Any], state: str) -> None:
        od["state"] = state
        od["uTime"] = str(now_ms())
        od["fillSz"] = "0"
        od["fillPx"] = ""
        if state == "canceled":
            od["cancelSource"] = "1"
            self.open.pop(od["ordId"], None)
        self._push(od)

    def _fill(self, od: dict[str, Any]) -> None:
        rng = self.rng
        inst: Inst = od["_inst"]
        spec = inst.spec
        left = od["_sz"] - od["_filled"]
        lots = max(1, left // spec.lot_units)
        q = left if lots == 1 or rng.random() < 0.5 else spec.lot_units * rng.randint(1, lots)
        od["_filled"] += q
        px = float(od["px"])
        qf = spec.qty_float(q)
        od["_notional"] += qf * px
        filled = spec.qty_float(od["_filled"])
        self.trade_no += rng.randint(1, 50)
        now = now_ms()
        base, quote = inst.amounts(qf, px)
        fee = -(quote if inst.inst_type == "SPOT" or not inst.inverse else base) * 0.0002
        od.update(
            state="filled" if od["_filled"] >= od["_sz"] else "partially_filled", accFillSz=inst.fq(od["_filled"]),
            avgPx=_fmt(od["_notional"] / filled, spec.price_scale + 2), fillPx=od["px"], fillSz=inst.fq(q),
            fillTime=str(now), fillFee=_fmt(fee, 8), fillFeeCcy=od["feeCcy"], tradeId=str(self.trade_no),
            execType="M", fee=_fmt(float(od["fee"]) + fee, 8), uTime=str(now),
        )
        if od["state"] == "filled":
            self.open.pop(od["ordId"], None)
        sign = 1 if od["side"] == "buy" else -1
        changed_ccy: list[str] = []
        if inst.inst_type == "SPOT":
            self.balances[inst.base] = self.balances.get(inst.base, 0.0) + sign * base
            self.balances[inst.quote] = self.balances.get(inst.quote, 0.0) - sign * quote + fee
            changed_ccy = [inst.base, inst.quote]
        else:
            self.balances[inst.settle] = self.balances.get(inst.settle, 0.0) + fee
            changed_ccy = [inst.settle]
            pos = self.positions.get(inst.inst_id)
            if pos is None:
                self.pos_no += rng.randint(1, 1000)
                pos = self.positions[inst.inst_id] = {"posId": str(self.pos_no), "pos": 0, "avg": px,
                                                       "cTime": now, "inst": inst}
            old = pos["pos"]
            new = old + sign * q
            if old == 0 or (old > 0) == (sign > 0):
                tot = abs(old) + q
                pos["avg"] = (pos["avg"] * abs(old) + px * q) / tot if tot else px
            pos["pos"] = new
            pos["uTime"] = now
            pos["tradeId"] = str(self.trade_no)
            if new == 0:
                self.positions.pop(inst.inst_id, None)
        self.u_time = now
        self._push(od)
        self.fills.append({"pTime": str(now), "inst": inst, "ccys": changed_ccy, "tradeId": str(self.trade_no)})

    # -- payloads -----------------------------------------------------------------------------

    def _px(self, ccy: str) -> float:
        if ccy in ("USDT", "USD", "USDC"):
            return 1.0
        inst = self.sim.insts.get(f"{ccy}-USDT")
        if inst is None:
            return 1.0
        m = inst.market
        return inst.spec.price_float(m.mid_units())

    def bal_detail(self, ccy: str) -> dict[str, Any]:
        eq = self.balances.get(ccy, 0.0)
        px = self._px(ccy)
        return {"ccy": ccy, "eq": _fmt(eq, 8), "cashBal": _fmt(eq, 8), "availBal": _fmt(eq, 8), "frozenBal": "0",
                "ordFrozen": "0", "availEq": _fmt(eq, 8), "eqUsd": _fmt(eq * px, 4), "upl": "0", "liab": "0",
                "uTime": str(self.u_time), "disEq": _fmt(eq * px, 4), "isoEq": "0", "mgnRatio": "", "notionalLever": "0"}

    def account_data(self, ccy: str | None) -> dict[str, Any]:
        ccys = [ccy] if ccy else [c for c in sorted(self.balances) if self.balances[c]]
        details = [self.bal_detail(c) for c in ccys]
        total = sum(self.balances.get(c, 0.0) * self._px(c) for c in self.balances)
        return {"uTime": str(self.u_time), "totalEq": _fmt(total, 4), "isoEq": "0", "adjEq": _fmt(total, 4),
                "availEq": _fmt(total, 4), "ordFroz": "0", "imr": "0", "mmr": "0", "mgnRatio": "", "notionalUsd": "0",
                "upl": "0", "details": details}

    def position_item(self, inst_id: str) -> dict[str, Any]:
        pos = self.positions[inst_id]
        inst: Inst = pos["inst"]
        spec = inst.spec
        mark = spec.price_float(inst.market.mid_units())
        q = spec.qty_float(pos["pos"])
        upl = (mark - pos["avg"]) * inst.amounts(q, mark)[0] if not inst.inverse else 0.0
        return {"instType": inst.inst_type, "instId": inst_id, "mgnMode": "cross", "posId": pos["posId"], "posSide": "net",
                "pos": inst.fq(abs(pos["pos"])) if pos["pos"] >= 0 else "-" + inst.fq(-pos["pos"]),
                "availPos": "", "avgPx": _fmt(pos["avg"], spec.price_scale + 2), "upl": _fmt(upl, 6),
                "uplRatio": "0", "lever": "10", "liqPx": "", "markPx": _fmt(mark, spec.price_scale + 1),
                "idxPx": _fmt(mark, spec.price_scale + 1), "last": inst.fp(inst.market.last_price), "margin": "",
                "mgnRatio": "", "imr": "0", "mmr": "0", "notionalUsd": _fmt(abs(inst.amounts(q, mark)[1]), 4),
                "adl": "1", "ccy": inst.settle, "cTime": str(pos["cTime"]), "uTime": str(pos.get("uTime", pos["cTime"])),
                "pTime": str(now_ms()), "tradeId": pos.get("tradeId", ""), "realizedPnl": "0", "pnl": "0", "fee": "0",
                "fundingFee": "0", "closeOrderAlgo": []}


def _matches(filt: dict[str, str], inst: Inst) -> bool:
    t = filt.get("instType")
    if t and t != "ANY" and t != inst.inst_type:
        return False
    if filt.get("instFamily") and filt["instFamily"] != inst.family:
        return False
    if filt.get("instId") and filt["instId"] != inst.inst_id:
        return False
    return True


class PrivateChannel(OkxStream):
    """``orders``, ``account``, ``positions``, ``balance_and_position`` of one account and filter."""

    def __init__(self, sim: "OkxSim", topic: str, cadence: Cadence, acct: Account, channel: str,
                 arg: dict[str, Any], filt: dict[str, str], interval_s: float):
        super().__init__(sim, topic, cadence, arg)
        self.acct = acct
        self.channel = channel
        self.filt = filt
        self.interval_s = interval_s
        self.cursor = 0
        self.fill_cursor = 0
        self.last_snap = 0.0

    def activate(self) -> None:
        a = self.acct
        a.advance()
        self.cursor = a.log_base + len(a.log)
        self.fill_cursor = a.fills_base + len(a.fills)
        self.last_snap = time.monotonic()

    def _positions(self) -> list[dict[str, Any]]:
        a = self.acct
        return [a.position_item(i) for i in sorted(a.positions) if _matches(self.filt, a.positions[i]["inst"])]

    def _snapshot(self) -> bytes | None:
        a = self.acct
        if self.channel == "account":
            return self.frame([a.account_data(self.filt.get("ccy"))], eventType="snapshot", curPage=1, lastPage=True)
        if self.channel == "positions":
            return self.frame(self._positions(), eventType="snapshot", curPage=1, lastPage=True)
        if self.channel == "balance_and_position":
            bal = [{"ccy": c, "cashBal": _fmt(v, 8), "uTime": str(a.u_time)} for c, v in sorted(a.balances.items()) if v]
            pos = [self._bp_pos(i) for i in sorted(a.positions)]
            return self.frame([{"pTime": str(now_ms()), "eventType": "snapshot", "balData": bal, "posData": pos,
                                "trades": []}])
        return None  # orders: no initial snapshot

    def _bp_pos(self, inst_id: str) -> dict[str, Any]:
        a = self.acct
        p = a.positions.get(inst_id)
        inst = self.osim.insts[inst_id]
        spec = inst.spec
        pos = p["pos"] if p else 0
        return {"posId": p["posId"] if p else "", "tradeId": p.get("tradeId", "") if p else "", "instId": inst_id,
                "instType": inst.inst_type, "mgnMode": "cross", "posSide": "net",
                "pos": inst.fq(abs(pos)) if pos >= 0 else "-" + inst.fq(-pos), "ccy": inst.settle, "posCcy": "",
                "avgPx": _fmt(p["avg"], spec.price_scale + 2) if p else "", "uTime": str(a.u_time)}

    def on_subscribe(self, conn: SimConnection) -> None:
        snap = self._snapshot()
        if snap is not None:
            self.send_to(conn, snap)

    def tick(self) -> None:
        a = self.acct
        a.advance()
        if self.channel == "orders":
            start = max(self.cursor, a.log_base) - a.log_base
            new = a.log[start:]
            self.cursor = a.log_base + len(a.log)
            for item in new:
                if _matches(self.filt, self.osim.insts[item["instId"]]):
                    self.publish(self.frame([item]))
            return
        start = max(self.fill_cursor, a.fills_base) - a.fills_base
        fills = a.fills[start:]
        self.fill_cursor = a.fills_base + len(a.fills)
        now = time.monotonic()
        if self.channel == "balance_and_position":
            for f in fills:
                inst: Inst = f["inst"]
                bal = [{"ccy": c, "cashBal": _fmt(a.balances.get(c, 0.0), 8), "uTime": f["pTime"]} for c in f["ccys"]]
                pos = [] if inst.inst_type == "SPOT" else [self._bp_pos(inst.inst_id)]
                self.publish(self.frame([{"pTime": f["pTime"], "eventType": "filled", "balData": bal, "posData": pos,
                                          "trades": [{"instId": inst.inst_id, "tradeId": f["tradeId"]}]}]))
            return
        relevant = [f for f in fills if self.channel == "account" or _matches(self.filt, f["inst"])]
        if relevant:
            if self.channel == "account":
                ccy = self.filt.get("ccy")
                ccys = sorted({c for f in relevant for c in f["ccys"] if not ccy or c == ccy})
                if ccys:
                    data = a.account_data(None)
                    data["details"] = [a.bal_detail(c) for c in ccys]
                    self.publish(self.frame([data], eventType="event_update"))
            else:
                ids = sorted({f["inst"].inst_id for f in relevant if f["inst"].inst_type != "SPOT"})
                items = [a.position_item(i) for i in ids if i in a.positions]
                if items:
                    self.publish(self.frame(items, eventType="event_update"))
        if self.interval_s > 0 and now - self.last_snap >= self.interval_s:
            self.last_snap = now
            snap = self._snapshot()
            if snap is not None:
                self.publish(snap)


# =============================================================================================
# The simulator
# =============================================================================================

PATHS = {"/ws/v5/public": "public", "/ws/v5/business": "business", "/ws/v5/private": "private"}


def _default_instruments() -> list[str]:
    return list(DEFAULT_INSTRUMENTS)


def _default_book_intervals() -> dict[str, float]:
    return {"books": 100.0, "books5": 100.0, "bbo-tbt": 10.0, "books-l2-tbt": 10.0, "books50-l2-tbt": 10.0}


def _default_counted() -> list[str]:
    return ["orders", "account", "positions", "balance_and_position", "liquidation-warning", "account-greeks"]


@dataclass
class OkxOptions(OkxGatewayOptions):
    """OKX v5 simulator options. Defaults follow the current venue (protocols/okx.md)."""

    counted_channels: list[str] = field(default_factory=_default_counted)
    instruments: list[str] = field(default_factory=_default_instruments)
    """The instrument universe (spot ``BTC-USDT``, swaps ``…-SWAP``, futures ``…-YYMMDD``, options)."""
    symbol_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Extra or overriding specs: ``{"PEPE-USDT": {"tick": "0.00000001", "lot": "1", "price": "0.00001",
    "size_mean_lots": 1000000, "ct_val": ""}}``."""
    checksum: str = "zero"
    """``zero`` (the venue since 2026-06-23: always 0) or ``legacy`` (real CRC32 of the top 25)."""
    no_seq: bool = False
    """Legacy (2022) books without ``seqId``/``prevSeqId`` (books5/bbo-tbt without ``seqId``)."""
    no_initial_snapshot: bool = False
    """Book delta channels send no snapshot on subscribe (use REST ``/api/v5/market/books``)."""
    legacy_trades: bool = False
    """``trades`` items without the 2026 fields ``count``, ``source``, ``seqId``."""
    keepalive_s: float = 60.0
    """An unchanged book sends an empty delta (seqId == prevSeqId) / re-sends its snapshot this often."""
    reset_every_s: float = 0.0
    """Reset every active book's seqId this often (0 = never; see also the ``reset-seq`` fault)."""
    unknown_delete_prob: float = 0.02
    """Chance per delta of an extra delete of a level the client never held."""
    book_intervals_ms: dict[str, float] = field(default_factory=_default_book_intervals)
    book_interval_ms: float | None = None
    """If set, the push interval of every book channel (before ``speed``)."""
    ticker_interval_ms: float = 100.0
    trade_interval_ms: float = 20.0
    candle_interval_ms: float = 1000.0
    candle_period_s: float | None = None
    """If set, every candle lasts this long (tests see ``confirm`` flip quickly)."""
    funding_interval_ms: float = 30_000.0
    mark_interval_ms: float = 200.0
    mark_idle_s: float = 10.0
    oi_interval_ms: float = 3000.0
    index_interval_ms: float = 100.0
    index_idle_s: float = 60.0
    liquidation_interval_ms: float = 1000.0
    liquidation_prob: float = 0.3
    private_interval_ms: float = 100.0
    order_events_per_s: float = 1.0
    """Synthetic order events (new, fill, cancel) per second and account."""
    account_snapshot_s: float = 5.0
    """Periodic ``account``/``positions`` snapshot (``extraParams`` ``updateInterval`` "0" turns it off)."""
    tbt_min_vip: int = 4
    default_vip: int = 5
    vip_levels: dict[str, int] = field(default_factory=dict)
    """VIP tier per API key (``books-l2-tbt``/``books50-l2-tbt`` need ``tbt_min_vip``; else 64003)."""
    rest_enabled: bool = True
    fixed_decimals: bool = False
    """Write prices/sizes with every decimal of the tick/lot (``"1.20"``) instead of trimmed like the
    venue (``"1.2"``); candles always keep the tick's decimals (``"63913.0"``), as recorded."""


#: What ``tickwire demo`` records from this simulator: a few books, trades, tickers and candles.
DEMO_STREAMS = (
    "okx:books:BTC-USDT", "okx:trades:BTC-USDT", "okx:tickers:BTC-USDT", "okx:candle1m:BTC-USDT",
    "okx:books:BTC-USDT-SWAP", "okx:trades:BTC-USDT-SWAP", "okx:funding-rate:BTC-USDT-SWAP",
    "okx:mark-price:BTC-USDT-SWAP",
)


@register_venue("okx")
class OkxSim(OkxGatewaySim):
    """OKX v5 exchange simulator. See the module docstring and :class:`OkxOptions`."""

    paths = list(PATHS)
    Options = OkxOptions
    FAULTS = OKX_FAULTS
    demo_streams = DEMO_STREAMS
    opts: OkxOptions

    def __init__(self, *, seed: int = 0, options: Mapping[str, Any] | None = None, faults: Sequence[str] = ()):
        super().__init__(seed=seed, options=options, faults=faults)
        o = self.opts
        if o.checksum not in ("zero", "legacy"):
            raise ValueError(f"checksum must be 'zero' or 'legacy', not {o.checksum!r}")
        self.insts: dict[str, Inst] = {}
        for iid in o.instruments:
            self.insts[iid] = self._make_inst(iid)
        for iid in o.symbol_specs:
            if iid not in self.insts:
                self.insts[iid] = self._make_inst(iid)
        self.indexes: dict[str, Inst] = {}
        for inst in self.insts.values():
            cur = self.indexes.get(inst.family)
            if cur is None or (inst.inst_type == "SPOT" and cur.inst_type != "SPOT") or (
                    inst.inst_type == "SWAP" and cur.inst_type not in ("SPOT", "SWAP")):
                self.indexes[inst.family] = inst
        self.accounts: dict[str, Account] = {}
        self._skip_every = 0
        self._skip_every_cause: int | None = None
        self._aux: dict[str, dict[str, Any]] = {}

    def _make_inst(self, iid: str) -> Inst:
        base = DEFAULT_INSTRUMENTS.get(iid)
        if base is None:
            t = inst_type_of(iid)
            base = ("0.0001", "0.0001" if t == "SPOT" else "1", "1", 1000, "" if t == "SPOT" else "1")
        tick, lot, price, mean, ct = base
        o = self.opts.symbol_specs.get(iid)
        if o:
            tick, lot, price = str(o.get("tick", tick)), str(o.get("lot", lot)), str(o.get("price", price))
            mean, ct = int(o.get("size_mean_lots", mean)), str(o.get("ct_val", ct))
        return Inst(self, iid, tick, lot, price, mean, ct)

    # -- handshake and REST -------------------------------------------------------------------

    def route(self, path: str, query: dict[str, str]) -> str | None:
        return PATHS.get(path)

    def http_get(self, path: str, qs: str, headers: Any = None) -> tuple[int, bytes] | None:
        return self.rest(path, qs)

    def rest(self, path: str, qs: str) -> tuple[int, bytes]:
        """Answer a plain HTTP GET: ``/api/v5/market/books`` and ``/api/v5/public/time``."""
        q = {k: v[-1] for k, v in parse_qs(qs, keep_blank_values=True).items()}
        if not self.opts.rest_enabled:
            return 404, _encode({"code": "404", "msg": "Not Found", "data": []})
        if path == "/api/v5/public/time":
            return 200, _encode({"code": "0", "msg": "", "data": [{"ts": str(now_ms())}]})
        if path == "/api/v5/public/instruments":
            return 200, self._rest_instruments(q)
        if path == "/api/v5/asset/currencies":
            # what ccxt's load_markets reads when it has keys (fetchCurrencies); not signed-checked
            ccys = sorted({c for i in self.insts.values() for c in (i.base, i.quote, i.settle)})
            want = set(q.get("ccy", "").split(",")) - {""}
            data = [{"ccy": c, "chain": f"{c}-{c}", "name": c, "canDep": True, "canWd": True, "canInternal": True,
                     "minWd": "0", "maxWd": "1000000", "minFee": "0", "maxFee": "0", "minDep": "0",
                     "mainNet": True, "wdTickSz": "8", "wdQuota": "10000000", "usedWdQuota": "0",
                     "depQuotaFixed": "", "usedDepQuotaFixed": "", "logoLink": "", "needTag": False,
                     "minDepArrivalConfirm": "1", "minWdUnlockConfirm": "1", "burningFeeRate": "", "ctAddr": ""}
                    for c in ccys if not want or c in want]
            return 200, _encode({"code": "0", "msg": "", "data": data})
        if path != "/api/v5/market/books":
            return 404, _encode({"code": "404", "msg": "Not Found", "data": []})
        iid = q.get("instId", "")
        if not iid:
            return 200, _encode({"code": "50014", "msg": "Parameter instId can not be empty.", "data": []})
        inst = self.insts.get(iid)
        if inst is None:
            return 200, _encode({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        raw_sz = q.get("sz", "1") or "1"
        if not raw_sz.isdigit() or not 1 <= int(raw_sz) <= BookEngine.DEPTH:
            return 200, _encode({"code": "51000", "msg": "Parameter sz error", "data": []})
        bids, asks, seq = inst.engine.snapshot(int(raw_sz))
        return 200, _encode({"code": "0", "msg": "", "data": [{"asks": asks, "bids": bids, "ts": str(now_ms()),
                                                                 "seqId": seq}]})

    def _rest_instruments(self, q: dict[str, str]) -> bytes:
        """``GET /api/v5/public/instruments?instType=…[&instFamily|uly|instId=…]``."""
        t = q.get("instType", "")
        if not t:
            return _encode({"code": "50014", "msg": "Parameter instType can not be empty.", "data": []})
        if t not in INST_TYPES:
            return _encode({"code": "51000", "msg": "Parameter instType error", "data": []})
        fam = q.get("instFamily") or q.get("uly") or ""
        if t == "OPTION" and not fam:
            return _encode({"code": "50014", "msg": "Parameter instFamily can not be empty.", "data": []})
        iid = q.get("instId", "")
        want = "SPOT" if t == "MARGIN" else t
        items = [instrument_item(i) for i in self.insts.values()
                 if i.inst_type == want and (not fam or i.family == fam) and (not iid or i.inst_id == iid)]
        return _encode({"code": "0", "msg": "", "data": items})

    async def on_start(self) -> None:
        await super().on_start()
        if self.opts.reset_every_s > 0:
            self.every(self.opts.reset_every_s, self._reset_books)

    # -- channel resolution -------------------------------------------------------------------

    def resolve(self, conn: OkxConnection, op: str, arg: dict[str, Any]) -> Sub:
        group = conn.group
        ch: str = arg["channel"]
        if "uly" in arg:
            raise SubError("64000")
        if ch in PRIVATE_CHANNELS:
            if group != "private":
                raise SubError("64002" if group == "business" else "60018", None if group == "business" else
                               f"Wrong URL or channel:{ch},instId:{arg.get('instId', '')} doesn't exist")
            return self._resolve_private(conn, ch, arg)
        if business_channel(ch):
            if group == "public":
                raise SubError("64001")
            if group != "business":
                raise SubError("60018", f"Wrong URL or channel:{ch},instId:{arg.get('instId', '')} doesn't exist")
            return self._resolve_business(ch, arg)
        if ch in PUBLIC_CHANNELS:
            if group == "business":
                raise SubError("64002")
            if group != "public":
                raise SubError("60018", f"Wrong URL or channel:{ch},instId:{arg.get('instId', '')} doesn't exist")
            return self._resolve_public(conn, op, ch, arg)
        if "instType" in arg and "instId" not in arg:
            raise SubError("60018", f"Wrong URL or channel:{ch},instType:{arg.get('instType')} doesn't exist")
        raise SubError("60018", f"Wrong URL or channel:{ch},instId:{arg.get('instId', '')} doesn't exist")

    def _need_inst(self, ch: str, arg: dict[str, Any], types: Sequence[str] | None = None) -> Inst:
        iid = arg.get("instId")
        if not isinstance(iid, str) or not iid:
            raise SubError("60013")
        inst = self.insts.get(iid)
        if inst is None or (types is not None and inst.inst_type not in types):
            raise SubError("60018", f"Wrong URL or channel:{ch},instId:{iid} doesn't exist")
        return inst

    def _interval(self, ms: float) -> float:
        return self.opts.push_interval(ms)

    def _resolve_public(self, conn: OkxConnection, op: str, ch: str, arg: dict[str, Any]) -> Sub:
        o = self.opts
        if ch in ("liquidation-orders", "instruments"):
            t = arg.get("instType")
            if not isinstance(t, str) or not t:
                raise SubError("60013")
            if t not in INST_TYPES or (ch == "liquidation-orders" and t == "SPOT"):
                raise SubError("60018", f"Wrong URL or channel:{ch},instType:{t} doesn't exist")
            insts = [i for i in self.insts.values() if i.inst_type == t]
            key = f"{ch}:{t}"
            if ch == "instruments":
                return Sub(key, lambda: self.stream(key, lambda: InstrumentsChannel(self, key, t, insts)), ch)
            cad = self.cadence(self._interval(o.liquidation_interval_ms), "liq")
            return Sub(key, lambda: self.stream(key, lambda: LiquidationChannel(self, key, cad, t, insts)), ch)
        if ch == "index-tickers":
            iid = arg.get("instId")
            if not isinstance(iid, str) or not iid:
                raise SubError("60013")
            if iid not in self.indexes:
                raise SubError("60018", f"Wrong URL or channel:{ch},instId:{iid} doesn't exist")
            key = f"{ch}:{iid}"
            return Sub(key, lambda: self.stream(key, lambda: self._index_stream(key, iid)), ch)
        types: Sequence[str] | None = None
        if ch == "funding-rate":
            types = ("SWAP",)
        elif ch == "open-interest":
            types = ("SWAP", "FUTURES", "OPTION")
        inst = self._need_inst(ch, arg, types)
        iid = inst.inst_id
        key = f"{ch}:{iid}"
        if ch in TBT_CHANNELS:
            if conn.api_key is None:
                raise SubError("60011")
            if o.vip_levels.get(conn.api_key, o.default_vip) < o.tbt_min_vip:
                raise SubError("64003")
        if op == "subscribe":
            if ch == "books-l2-tbt" and (f"books:{iid}" in conn.topics or f"books50-l2-tbt:{iid}" in conn.topics):
                raise SubError("64004")
            if ch in ("books", "books50-l2-tbt") and f"books-l2-tbt:{iid}" in conn.topics:
                raise SubError("64004")
        if ch in BOOK_CHANNELS or ch in SNAP_CHANNELS:
            ms = o.book_interval_ms if o.book_interval_ms is not None else o.book_intervals_ms.get(ch, 100.0)
            cad = self.cadence(self._interval(ms), ("book", ch))
            if ch in BOOK_CHANNELS:
                depth = BOOK_CHANNELS[ch]
                return Sub(key, lambda: self.stream(key, lambda: BookDeltaChannel(self, key, cad, inst, ch, depth)), ch)
            depth = SNAP_CHANNELS[ch]
            return Sub(key, lambda: self.stream(key, lambda: BookSnapChannel(self, key, cad, inst, ch, depth)), ch)
        if ch == "tickers":
            cad = self.cadence(self._interval(o.ticker_interval_ms), "tickers")
            return Sub(key, lambda: self.stream(key, lambda: TickerChannel(self, key, cad, inst)), ch)
        if ch == "trades":
            cad = self.cadence(self._interval(o.trade_interval_ms), "trades")
            return Sub(key, lambda: self.stream(key, lambda: TradesChannel(self, key, cad, inst, ch)), ch)
        if ch == "funding-rate":
            return Sub(key, lambda: self.stream(key, lambda: self._funding_stream(key, inst)), ch)
        if ch == "mark-price":
            return Sub(key, lambda: self.stream(key, lambda: self._mark_stream(key, inst)), ch)
        if ch == "open-interest":
            return Sub(key, lambda: self.stream(key, lambda: self._oi_stream(key, inst)), ch)
        raise SubError("60018", f"Wrong URL or channel:{ch},instId:{iid} doesn't exist")  # pragma: no cover

    def _resolve_business(self, ch: str, arg: dict[str, Any]) -> Sub:
        o = self.opts
        inst = self._need_inst(ch, arg)
        key = f"{ch}:{inst.inst_id}"
        if ch == "trades-all":
            cad = self.cadence(self._interval(o.trade_interval_ms), "trades")
            return Sub(key, lambda: self.stream(key, lambda: TradesChannel(self, key, cad, inst, ch)), ch)
        bar = ch[6:]
        cad = self.cadence(self._interval(o.candle_interval_ms), "candle")
        return Sub(key, lambda: self.stream(key, lambda: CandleChannel(self, key, cad, inst, bar)), ch)

    def _resolve_private(self, conn: OkxConnection, ch: str, arg: dict[str, Any]) -> Sub:
        if conn.api_key is None:
            raise SubError("60011")
        filt: dict[str, str] = {}
        for k in ("instType", "instFamily", "instId", "ccy"):
            v = arg.get(k)
            if v is not None:
                if not isinstance(v, str):
                    raise SubError("60013")
                if v:
                    filt[k] = v
        if ch in ("orders", "positions"):
            t = filt.get("instType")
            if not t:
                raise SubError("60013")
            if t not in _ORDER_INST_TYPES or (ch == "positions" and t == "SPOT"):
                raise SubError("60018", f"Wrong URL or channel:{ch},instType:{t} doesn't exist")
        if "instId" in filt and filt["instId"] not in self.insts:
            raise SubError("60018", f"Wrong URL or channel:{ch},instId:{filt['instId']} doesn't exist")
        interval = self.opts.account_snapshot_s
        extra = arg.get("extraParams")
        if isinstance(extra, str) and extra:
            try:
                ui = _decode(extra).get("updateInterval")
                if ui is not None:
                    interval = float(ui) / 1000.0
            except (msgspec.DecodeError, AttributeError, ValueError, TypeError):
                raise SubError("60013") from None
        key_api = conn.api_key
        acct = self.accounts.get(key_api)
        if acct is None:
            acct = self.accounts[key_api] = Account(self, key_api)
        push_arg: dict[str, Any] = {"channel": ch}
        push_arg.update((k, v) for k, v in arg.items() if k not in ("channel", "extraParams"))
        push_arg["uid"] = acct.uid
        key = f"{ch}|{acct.uid}|{_encode(sorted(filt.items())).decode()}|{interval:g}"
        fam = ch if ch in self.opts.counted_channels else None
        cad = self.cadence(self._interval(self.opts.private_interval_ms), "private")
        return Sub(key, lambda: self.stream(key, lambda: PrivateChannel(self, key, cad, acct, ch, push_arg, filt,
                                                                        interval)), ch, fam)

    # -- auxiliary public streams -------------------------------------------------------------

    def _aux_state(self, key: str, **init: Any) -> dict[str, Any]:
        st = self._aux.get(key)
        if st is None:
            st = self._aux[key] = dict(init)
        return st

    def _funding_stream(self, key: str, inst: Inst) -> Stream:
        rng = random.Random(f"{self.seed}|okx|{key}")
        st = self._aux_state(key, rate=rng.randint(-200, 1500), sett=rng.randint(-200, 1500))

        def compute() -> tuple[Any, dict[str, Any]]:
            m = inst.sync()
            if rng.random() < 0.5:
                st["rate"] += rng.randint(-25, 25)
            now = now_ms()
            ft = now - now % 28_800_000 + 28_800_000
            rate = st["rate"] / 1e8 * 1.0000137
            d = {"formulaType": "noRate", "fundingRate": _fmt(rate, 16), "fundingTime": str(ft), "impactValue": "",
                 "instId": inst.inst_id, "instType": inst.inst_type, "interestRate": "", "method": "current_period",
                 "maxFundingRate": "0.00375", "minFundingRate": "-0.00375", "nextFundingRate": "",
                 "nextFundingTime": str(ft + 28_800_000), "premium": _fmt(rate * 0.66 + m.steps % 7 * 1e-7, 16),
                 "settFundingRate": _fmt(st["sett"] / 1e8, 16), "settState": "settled", "ts": str(now)}
            return now, d

        cad = self.cadence(self._interval(self.opts.funding_interval_ms), "funding")
        return PeriodicChannel(self, key, cad, {"channel": "funding-rate", "instId": inst.inst_id}, compute, always=True)

    def _mark_stream(self, key: str, inst: Inst) -> Stream:
        def compute() -> tuple[Any, dict[str, Any]]:
            m = inst.sync()
            spec = inst.spec
            mark = round(m.mid_units())
            s = inst.fp(mark - mark % spec.tick_units if inst.inst_type != "OPTION" else mark)
            return s, {"instId": inst.inst_id, "instType": inst.inst_type if inst.inst_type != "SPOT" else "MARGIN",
                       "markPx": s, "ts": str(now_ms())}

        cad = self.cadence(self._interval(self.opts.mark_interval_ms), "mark")
        return PeriodicChannel(self, key, cad, {"channel": "mark-price", "instId": inst.inst_id}, compute,
                               idle_s=self.opts.mark_idle_s)

    def _oi_stream(self, key: str, inst: Inst) -> Stream:
        rng = random.Random(f"{self.seed}|okx|{key}")
        st = self._aux_state(key, oi=inst.spec.lot_units * rng.randint(100_000, 5_000_000))

        def compute() -> tuple[Any, dict[str, Any]]:
            m = inst.sync()
            spec = inst.spec
            if rng.random() < 0.8:
                st["oi"] = max(spec.lot_units, st["oi"] + spec.lot_units * rng.randint(-500, 500))
            px = spec.price_float(m.mid_units())
            base, quote = inst.amounts(spec.qty_float(st["oi"]), px)
            usd = quote if inst.inst_type != "OPTION" else base * self._underlying(inst)
            return st["oi"], {"instId": inst.inst_id, "instType": inst.inst_type, "oi": inst.fq(st["oi"]),
                              "oiCcy": _fmt(base, 8), "oiUsd": _fmt(usd, 4), "ts": str(now_ms())}

        cad = self.cadence(self._interval(self.opts.oi_interval_ms), "oi")
        return PeriodicChannel(self, key, cad, {"channel": "open-interest", "instId": inst.inst_id}, compute)

    def _underlying(self, inst: Inst) -> float:
        ref = self.indexes.get(inst.family)
        if ref is None or ref.inst_type == "OPTION":
            return 1.0
        return ref.spec.price_float(ref.market.mid_units())

    def _index_stream(self, key: str, name: str) -> Stream:
        ref = self.indexes[name]
        rng = random.Random(f"{self.seed}|okx|{key}")
        st = self._aux_state(key, off=0.0)
        decimals = ref.spec.price_scale + 1

        def compute() -> tuple[Any, dict[str, Any]]:
            m = ref.sync()
            spec = ref.spec
            if rng.random() < 0.3:
                st["off"] = max(-2.0, min(2.0, st["off"] + rng.choice((-0.5, 0.5))))
            idx = spec.price_float(m.mid_units() + st["off"] * spec.tick_units)
            s = _fmt(idx, decimals)
            return s, {"instId": name, "idxPx": s, "open24h": ref.fp(m.prev_price_24h), "high24h": ref.fp(m.high_24h),
                       "low24h": ref.fp(m.low_24h), "sodUtc0": ref.fp(ref.sod0), "sodUtc8": ref.fp(ref.sod8),
                       "ts": str(now_ms())}

        cad = self.cadence(self._interval(self.opts.index_interval_ms), "index")
        return PeriodicChannel(self, key, cad, {"channel": "index-tickers", "instId": name}, compute,
                               idle_s=self.opts.index_idle_s)

    # -- inspection helpers for tests ---------------------------------------------------------

    def book(self, inst_id: str, channel: str = "books") -> tuple[list[list[str]], list[list[str]], int] | None:
        """What a delta channel last published: ``(bids, asks, seqId)`` as ``[px, sz]`` strings, best first.

        A client book rebuilt from the frames must equal this once it has seen that seqId.
        """
        s = self._streams.get(f"{channel}:{inst_id}")
        if not isinstance(s, BookDeltaChannel):
            return None
        fp, fq = s.inst.fp, s.inst.fq
        return ([[fp(p), fq(s.vb[p])] for p in sorted(s.vb, reverse=True)],
                [[fp(p), fq(s.va[p])] for p in sorted(s.va)], s.last_seq)

    def book_channels(self) -> list[BookDeltaChannel]:
        return [s for s in self._streams.values() if isinstance(s, BookDeltaChannel)]

    # -- faults -------------------------------------------------------------------------------

    def apply_venue_fault(self, f: Fault) -> bool:
        name, value = f.name, f.value
        if name in ("skip-seq", "bad-checksum", "dup-seq", "reorder-seq"):
            self._mark(name)
        elif name == "skip-seq-every":
            if isinstance(value, int):
                self._skip_every = value
                self._skip_every_cause = self.truth.cause
            else:
                self.every(float(value), lambda: self._mark("skip-seq", "skip-seq-every"), fault=True)  # type: ignore[arg-type]
        elif name == "reset-seq":
            self._reset_books()
        elif name == "reset-seq-every":
            self.every(float(value), lambda: self._reset_books("reset-seq-every"), fault=True)  # type: ignore[arg-type]
        else:
            return super().apply_venue_fault(f)
        return True

    def _mark(self, name: str, kind: str | None = None) -> None:
        """Arm a fault on the next delta of every active book delta channel."""
        attr = {"skip-seq": "skip_pending", "bad-checksum": "bad_checksum_pending", "dup-seq": "dup_pending",
                "reorder-seq": "reorder_pending"}[name]
        for s in self.book_channels():
            if s.subs:
                setattr(s, attr, (kind or name, self.truth.cause))

    def clear_faults(self) -> None:
        super().clear_faults()
        self._skip_every = 0
        for s in self.book_channels():
            s.skip_pending = s.bad_checksum_pending = s.dup_pending = s.reorder_pending = None

    def _reset_books(self, kind: str = "reset-seq") -> None:
        done: set[str] = set()
        for s in list(self._streams.values()):
            if isinstance(s, (BookDeltaChannel, BookSnapChannel)) and s.subs and s.inst.inst_id not in done:
                done.add(s.inst.inst_id)
                eng = s.inst.engine
                eng.sample()
                old = eng.seq
                if eng.reset():
                    for c in self._streams.values():
                        if isinstance(c, (BookDeltaChannel, BookSnapChannel)) and c.subs and c.inst is s.inst:
                            self.truth.fault(kind, stream=c.topic, seqs=(old, eng.seq),
                                             detail=f"seqId {old} -> {eng.seq}")
