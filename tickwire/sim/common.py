"""Venue-independent parts of the local exchange simulators.

Everything here is reused by every venue simulator (``tickwire/sim/<venue>.py``):

* :func:`parse_duration`, :class:`Fault`, :func:`parse_fault` and a registry of fault names
  (the grammar of ``tickwire sim --fault`` and of :meth:`VenueSim.inject`);
* :class:`SimOptions`, the base dataclass of timers and limits (a venue subclasses it; every
  timer can be overridden so tests compress time);
* :class:`SlidingWindowCounter`, a per-key sliding-window connection counter;
* a deterministic synthetic market: :class:`SymbolSpec` (tick/lot sizes and exact decimal
  formatting), :class:`BookSide`, :class:`Market` (seeded random walk, an L2 book with trades,
  24h statistics), :class:`Candle` and :class:`CandleBuilder` (candles of one period built
  from a feed of prints: bounds, roll and close, listener registration);
* the server framework: :class:`VenueSim` (picows server lifecycle, handshake routing and
  refusal, connection registry, generic faults, idle sweepers), :class:`SimConnection`
  (one WebSocket connection, send helpers, stall/drop, per-connection periodic tasks),
  :class:`Stream` (one topic shared by all its subscribers: the frame is encoded once and the
  same bytes fan out to every subscribed connection) and :class:`Cadence` (one timer per push
  interval that drives every active stream with that interval);
* :class:`ServerGroup`, several venue servers started and stopped together (the lifecycle of
  :class:`tickwire.sim.Simulator` and of the replay server).

No venue protocol knowledge lives here: envelopes, topic names and error strings belong to the
venue modules.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import re
import time
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Mapping, Self, Sequence

from picows import (
    WSCloseCode,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

log = logging.getLogger("tickwire.sim")

__all__ = [
    "Cadence",
    "Candle",
    "CandleBuilder",
    "Fault",
    "FaultSpec",
    "GENERIC_FAULTS",
    "Market",
    "BookSide",
    "ServerGroup",
    "SimConnection",
    "SimOptions",
    "SimStats",
    "SlidingWindowCounter",
    "Stream",
    "SymbolSpec",
    "Trade",
    "VENUE_SIMS",
    "VenueSim",
    "diff_window",
    "fixed_period_bounds",
    "known_faults",
    "market_fold",
    "now_ms",
    "parse_duration",
    "parse_fault",
    "register_faults",
    "register_venue",
]


def now_ms() -> int:
    """Wall-clock time in integer milliseconds (the unit venues put in ``ts`` fields)."""
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------------------
# Durations and faults
# ---------------------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int) -> float:
    """Parse ``"5s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a bare number (seconds) into seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"negative duration: {text!r}")
        return float(text)
    m = _DURATION_RE.match(str(text))
    if not m:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 5s, 500ms, 2m, 1h)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(frozen=True)
class FaultSpec:
    """How a fault name takes its value.

    ``kind`` is one of ``"none"`` (no value allowed), ``"duration"`` (value required, seconds),
    ``"count"`` (optional positive integer, default ``default``), ``"count_or_duration"``
    (a bare integer is a count, a value with a unit is a duration).
    """

    name: str
    kind: str
    help: str
    default: int | None = None


@dataclass(frozen=True)
class Fault:
    """A parsed fault: ``name`` and ``value`` (``None``, seconds as ``float`` or a count as ``int``)."""

    name: str
    value: float | int | None = None

    def __str__(self) -> str:
        if self.value is None:
            return self.name
        if isinstance(self.value, float):
            return f"{self.name}={self.value:g}s"
        return f"{self.name}={self.value}"


GENERIC_FAULTS: dict[str, FaultSpec] = {
    s.name: s
    for s in (
        FaultSpec("drop", "none", "abruptly close every client connection now (no close frame)"),
        FaultSpec("drop-every", "duration", "drop every connection periodically, e.g. drop-every=5s"),
        FaultSpec("stall", "none", "stop sending anything (pongs included) on every open connection, "
                                   "without closing, until 'clear' or the client leaves"),
        FaultSpec("stall-for", "duration", "stall every open connection for a while, e.g. stall-for=10s"),
        FaultSpec("malformed", "none", "send one frame that is not valid JSON on every connection"),
        FaultSpec("malformed-every", "duration", "send a non-JSON frame periodically, e.g. malformed-every=2s"),
        FaultSpec("reject-connect", "count", "refuse the next N handshakes with HTTP 429 (default 1)", 1),
        FaultSpec("reject-connect-for", "duration", "refuse every handshake with HTTP 429 for a while"),
        FaultSpec("clear", "none", "cancel periodic faults, stalls and pending handshake refusals"),
    )
}

_FAULT_REGISTRY: dict[str, FaultSpec] = dict(GENERIC_FAULTS)


def register_faults(specs: Iterable[FaultSpec]) -> None:
    """Add venue-specific fault names to the grammar known by :func:`parse_fault`."""
    for s in specs:
        old = _FAULT_REGISTRY.get(s.name)
        if old is not None and old.kind != s.kind:
            raise ValueError(f"fault {s.name!r} registered twice with different value kinds")
        _FAULT_REGISTRY[s.name] = s


def known_faults() -> dict[str, FaultSpec]:
    """All fault names known to the grammar (generic ones and those of loaded venues)."""
    return dict(_FAULT_REGISTRY)


def parse_fault(text: str, known: Mapping[str, FaultSpec] | None = None) -> Fault:
    """Parse ``name`` or ``name=value`` (e.g. ``"drop-every=5s"``) into a :class:`Fault`.

    Raises ``ValueError`` for an unknown name (listing the known ones) or a bad value.
    """
    if isinstance(text, Fault):
        return text
    registry = _FAULT_REGISTRY if known is None else known
    name, sep, raw = str(text).strip().partition("=")
    name = name.strip()
    spec = registry.get(name)
    if spec is None:
        raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(sorted(registry))}")
    raw = raw.strip()
    if not sep:
        if spec.kind == "duration":
            raise ValueError(f"fault {name!r} needs a duration, e.g. {name}=5s")
        if spec.kind == "count_or_duration":
            raise ValueError(f"fault {name!r} needs a count or a duration, e.g. {name}=10 or {name}=2s")
        return Fault(name, spec.default if spec.kind == "count" else None)
    if spec.kind == "none":
        raise ValueError(f"fault {name!r} takes no value")
    if spec.kind == "count" or (spec.kind == "count_or_duration" and raw.isdigit()):
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"fault {name!r} needs a positive integer, got {raw!r}")
        return Fault(name, int(raw))
    seconds = parse_duration(raw)
    if seconds <= 0:
        raise ValueError(f"fault {name!r} needs a positive duration, got {raw!r}")
    return Fault(name, seconds)


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass
class SimOptions:
    """Timers and limits shared by every venue simulator. Venues subclass this dataclass.

    Build one from a plain mapping with :meth:`from_mapping` (unknown names raise ``ValueError``;
    a mapping given for a field whose default is a dict is merged into the default).
    """

    speed: float = 1.0
    """Global time factor for push cadences and the synthetic market (2.0 = twice as fast).
    Idle, auth and rate-limit timers are not scaled: they have their own options."""
    conn_limit: int = 500
    """New connections allowed per client IP within ``conn_window_s`` (HTTP 429 beyond)."""
    conn_window_s: float = 300.0
    max_conns_per_ip: int = 1000
    """Concurrent connections per client IP and connection group (HTTP 429 beyond)."""
    idle_check_s: float = 1.0
    """How often the idle sweeper looks at the connections."""
    slow_client_timeout_s: float = 30.0
    """A client whose socket stays write-blocked this long is disconnected."""
    market_steps_per_s: float = 100.0
    """Synthetic market events per second and symbol (multiplied by ``speed``)."""
    book_levels: int = 1100
    """Levels kept per book side by the synthetic market (must exceed the largest depth)."""
    trust_forwarded_for: bool = True
    """Key the per-IP counters on the first X-Forwarded-For address when a client sends one
    (lets tests simulate several IPs over loopback). Otherwise the key is the bound host."""
    max_frame_size: int = 1 << 20

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "SimOptions":
        opts = cls()
        if not mapping:
            return opts
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in mapping.items():
            if key not in names:
                raise ValueError(
                    f"unknown {cls.__name__} option {key!r}; known: {', '.join(sorted(names))}"
                )
            current = getattr(opts, key)
            if isinstance(current, dict) and isinstance(value, Mapping):
                merged = dict(current)
                merged.update(value)
                value = merged
            elif isinstance(current, bool):
                value = bool(value)
            elif isinstance(current, float) and isinstance(value, (int, float, str)):
                value = float(value)
            elif isinstance(current, int) and isinstance(value, (int, str)):
                value = int(value)
            setattr(opts, key, value)
        if opts.speed <= 0:
            raise ValueError("speed must be > 0")
        return opts

    def push_interval(self, ms: float) -> float:
        """A venue push cadence in seconds, compressed by ``speed``."""
        return max(ms, 0.0) / 1000.0 / self.speed

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Per-IP sliding window
# ---------------------------------------------------------------------------------------------


class SlidingWindowCounter:
    """At most ``limit`` events per ``window_s`` seconds and key (e.g. new connections per IP)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def count(self, key: str, now: float | None = None) -> int:
        now = self._clock() if now is None else now
        q = self._events.get(key)
        if not q:
            return 0
        edge = now - self.window_s
        while q and q[0] <= edge:
            q.popleft()
        return len(q)

    def allow(self, key: str, now: float | None = None) -> bool:
        """Record one event for ``key`` if the budget allows it; return whether it did."""
        now = self._clock() if now is None else now
        if self.count(key, now) >= self.limit:
            return False
        self._events.setdefault(key, deque()).append(now)
        return True

    def reset(self) -> None:
        self._events.clear()


# ---------------------------------------------------------------------------------------------
# Synthetic market
# ---------------------------------------------------------------------------------------------


def _decimals(text: str) -> tuple[int, int]:
    """``"0.10"`` -> (scale 2, units 10): the value as an integer at its own number of decimals."""
    text = text.strip()
    if text.startswith("-") or not re.fullmatch(r"\d+(\.\d+)?", text):
        raise ValueError(f"not a positive decimal: {text!r}")
    whole, _, frac = text.partition(".")
    return len(frac), int(whole + frac)


def _format_units(units: int, scale: int) -> str:
    if scale == 0:
        return str(units)
    if units < 0:
        return "-" + _format_units(-units, scale)
    s = str(units)
    if len(s) <= scale:
        s = "0" * (scale + 1 - len(s)) + s
    return f"{s[:-scale]}.{s[-scale:]}"


@dataclass
class SymbolSpec:
    """An instrument of the synthetic market: tick size, lot size and starting price.

    Prices and sizes are integers internally ("units" at the decimals of ``tick`` / ``lot``)
    and are formatted back as exact decimal strings with exactly that many decimals, as venues
    do (a tick of ``"0.10"`` gives ``"71423.80"``).
    """

    symbol: str
    tick: str
    lot: str
    price: str
    size_mean_lots: int = 60
    base: str = ""
    quote: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.price_scale, self.tick_units = _decimals(self.tick)
        self.qty_scale, self.lot_units = _decimals(self.lot)
        if self.tick_units <= 0 or self.lot_units <= 0:
            raise ValueError(f"{self.symbol}: tick and lot must be > 0")
        pscale, punits = _decimals(self.price)
        # price in price units, rounded to a tick multiple
        units = punits * 10 ** max(0, self.price_scale - pscale) // 10 ** max(0, pscale - self.price_scale)
        self.price_units = max(self.tick_units, units - units % self.tick_units)
        self._pcache: dict[int, str] = {}

    def fp(self, units: int) -> str:
        """Format a price given in price units."""
        s = self._pcache.get(units)
        if s is None:
            if len(self._pcache) > 50_000:
                self._pcache.clear()
            s = self._pcache[units] = _format_units(units, self.price_scale)
        return s

    def fq(self, units: int) -> str:
        """Format a size given in quantity units (``0`` -> ``"0"``, a deletion)."""
        if units == 0:
            return "0"
        return _format_units(units, self.qty_scale)

    def price_float(self, units: int | float) -> float:
        return units / 10**self.price_scale

    def qty_float(self, units: int | float) -> float:
        return units / 10**self.qty_scale


class BookSide:
    """One side of an L2 book: a sorted list of prices plus a price -> size dict (units)."""

    __slots__ = ("is_bid", "prices", "sizes")

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.prices: list[int] = []  # ascending for both sides
        self.sizes: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.prices)

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def worst(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[0] if self.is_bid else self.prices[-1]

    def at(self, i: int) -> int:
        """Price of the i-th level from the best (0 = best)."""
        return self.prices[-1 - i] if self.is_bid else self.prices[i]

    def top(self, n: int) -> list[int]:
        """The best ``n`` prices, best first."""
        if self.is_bid:
            return self.prices[-1 : -n - 1 : -1] if n > 0 else []
        return self.prices[:n]

    def set(self, price: int, size: int) -> None:
        if size <= 0:
            self.remove(price)
            return
        if price not in self.sizes:
            insort(self.prices, price)
        self.sizes[price] = size

    def remove(self, price: int) -> None:
        if self.sizes.pop(price, None) is not None:
            i = bisect_left(self.prices, price)
            del self.prices[i]

    def items_top(self, n: int) -> list[tuple[int, int]]:
        sizes = self.sizes
        return [(p, sizes[p]) for p in self.top(n)]


def diff_window(
    old: dict[int, int], side: BookSide, depth: int
) -> tuple[list[tuple[int, int]], dict[int, int], list[int]]:
    """Changes that turn the published window ``old`` into the side's current top ``depth``.

    Returns ``(changes, new_window, new_prices_best_first)``; ``changes`` is ordered best first
    and holds size ``0`` for levels that left the window, so a client applying it never holds
    more than ``depth`` levels.
    """
    prices = side.top(depth)
    sizes = side.sizes
    new = {p: sizes[p] for p in prices}
    changes = [(p, s) for p, s in new.items() if old.get(p) != s]
    removed = [(p, 0) for p in old if p not in new]
    if removed:
        changes.extend(removed)
        changes.sort(reverse=side.is_bid)
    return changes, new, prices


@dataclass(slots=True)
class Trade:
    """One synthetic fill. ``side`` is the taker side (``"Buy"`` lifted an ask)."""

    ts_ms: int
    side: str
    price: int
    size: int
    seq: int
    tick_dir: str
    no: int
    rid: int  # 128 random bits (a venue may format them as a UUID)


class Candle:
    """An OHLCV candle fed by trades (prices and sizes in units, turnover as a float)."""

    __slots__ = ("start", "end", "open", "high", "low", "close", "volume", "turnover", "last_ts", "closed")

    def __init__(self, start: int, end: int, price: int):
        self.start = start
        self.end = end  # inclusive, ms
        self.open = self.high = self.low = self.close = price
        self.volume = 0
        self.turnover = 0.0
        self.last_ts = start
        self.closed = False

    def add(self, price: int, size: int, notional: float, ts: int) -> None:
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        self.turnover += notional
        self.last_ts = ts


def fixed_period_bounds(t_ms: int, period_s: float) -> tuple[int, int]:
    """``[start, end]`` (ms, end inclusive) of the ``period_s`` long candle holding ``t_ms``.

    The candle-period override the venue simulators offer so tests see candles close quickly.
    """
    p = max(1, int(period_s * 1000))
    start = t_ms - t_ms % p
    return start, start + p - 1


def market_fold(spec: SymbolSpec) -> Callable[[Candle, Trade], None]:
    """A :class:`CandleBuilder` fold for a :class:`Market`'s prints: OHLCV in units, turnover
    as quantity x price."""

    def fold(c: Candle, t: Trade) -> None:
        c.add(t.price, t.size, spec.qty_float(t.size) * spec.price_float(t.price), t.ts_ms)

    return fold


def _trade_ts(t: Trade) -> int:
    return t.ts_ms


class CandleBuilder:
    """Candles of one period built from a feed of prints (the venue-neutral part of a candle
    channel; the venue keeps its period rules and its wire format).

    The venue gives ``bounds(t_ms) -> (start, end)`` (ms, end inclusive) of the candle holding a
    time, ``fold(candle, trade)`` to add one print to a candle, ``make(start, end, open)`` to
    create a candle (:class:`Candle` by default) and ``ts(trade)``, the time of a print in ms
    (``None``: the print does not count in candles).

    Between :meth:`start` and :meth:`stop` the builder listens to a trade source. It keeps the
    open candle in :attr:`current`; when a print or the clock (:meth:`due`) passes its end, the
    candle is closed (``closed = True``), queued, and the next one opens at its close price. A
    print older than the open candle is ignored: its candle was closed already.
    """

    def __init__(self, bounds: Callable[[int], tuple[int, int]], fold: Callable[[Any, Any], None], *,
                 make: Callable[[int, int, Any], Any] = Candle, ts: Callable[[Any], int | None] = _trade_ts):
        self.bounds = bounds
        self.fold = fold
        self.make = make
        self.ts = ts
        self.current: Any = None
        self.closed: list[Any] = []
        self._source: list[Callable[[Any], None]] | None = None

    def start(self, source: list[Callable[[Any], None]], price: Any) -> None:
        """Open the candle of now at ``price`` and listen to ``source`` (a list of trade listeners)."""
        s, e = self.bounds(now_ms())
        self.current = self.make(s, e, price)
        self.closed = []
        source.append(self.on_trade)
        self._source = source

    def stop(self) -> None:
        """Stop listening to the trade source."""
        if self._source is not None:
            try:
                self._source.remove(self.on_trade)
            except ValueError:
                pass

    def _roll(self, t_ms: int) -> None:
        c = self.current
        assert c is not None
        c.closed = True
        self.closed.append(c)
        s, e = self.bounds(t_ms)
        self.current = self.make(s, e, c.close)

    def on_trade(self, trade: Any) -> None:
        c = self.current
        ts = self.ts(trade)
        if c is None or ts is None or ts < c.start:
            return
        if ts > c.end:
            self._roll(ts)
            c = self.current
        self.fold(c, trade)

    def due(self, t_ms: int) -> list[Any]:
        """Close the open candle if ``t_ms`` is past its end; take the candles closed since the last call."""
        c = self.current
        if c is not None and t_ms > c.end:
            self._roll(t_ms)
        closed, self.closed = self.closed, []
        return closed


class Market:
    """Deterministic synthetic market of one instrument.

    The market advances in discrete steps at ``steps_per_s`` (in simulated time: wall time
    multiplied by ``speed``); each step is drawn from a ``random.Random`` seeded from the sim seed
    and the instrument, so the sequence of book states and trades is the same for a given seed
    whatever the timing of the publishers that observe it. Steps are taken lazily by
    :meth:`sync`, which every publisher calls before reading.

    A step is one of: an aggressive order that trades against the best levels (trades, and the
    mid moves when a level is consumed), a size change, a new level, a cancel near the top, or a
    change deep in the book. The mid follows a mean-reverting random walk around the start price.
    """

    MAX_CATCH_UP = 400

    def __init__(
        self,
        spec: SymbolSpec,
        seed: Any,
        *,
        levels: int = 1100,
        steps_per_s: float = 100.0,
        trade_prob: float = 0.12,
    ):
        self.spec = spec
        self.rng = random.Random(f"{seed}|{spec.symbol}")
        self.levels = max(5, levels)
        self.steps_per_s = steps_per_s
        self.trade_prob = trade_prob
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        rng = self.rng
        self.seq = rng.randint(10**9, 10**11)
        self.version = 0
        self.steps = 0
        self.trade_no = 0
        self.pending_trades: list[Trade] | None = None  # set to a list to collect trades
        self.trade_listeners: list[Callable[[Trade], None]] = []
        t = now_ms()
        self._t0_ms = t
        self._t0_mono = time.monotonic()
        self.last_step_ms = t
        self._build()
        mid = self.mid_units()
        p0 = int(mid)
        self.last_price = p0 - p0 % spec.tick_units
        self.tick_dir = "ZeroPlusTick"
        # 24h statistics (seeded so they look plausible from the first frame)
        drift = 1.0 + rng.uniform(-0.03, 0.03)
        prev = int(mid / drift)
        self.prev_price_24h = max(spec.tick_units, prev - prev % spec.tick_units)
        self.prev_price_1h = self.last_price
        lo = min(self.prev_price_24h, self.last_price)
        hi = max(self.prev_price_24h, self.last_price)
        span = max(spec.tick_units, int(mid * rng.uniform(0.002, 0.02)))
        self.high_24h = hi + span - span % spec.tick_units
        self.low_24h = max(spec.tick_units, lo - span + span % spec.tick_units)
        self.volume_24h = spec.lot_units * rng.randint(10_000, 5_000_000)
        self.turnover_24h = spec.qty_float(self.volume_24h) * spec.price_float(mid)

    # -- construction -------------------------------------------------------------------------

    def _rand_size(self) -> int:
        lots = 1 + int(self.rng.expovariate(1.0 / self.spec.size_mean_lots))
        return lots * self.spec.lot_units

    def _build(self) -> None:
        spec, rng = self.spec, self.rng
        tk = spec.tick_units
        best_bid = spec.price_units - tk * rng.randint(0, 1)
        best_ask = best_bid + tk * rng.randint(1, 2)
        p = best_bid
        while len(self.bids) < self.levels and p > 0:
            self.bids.set(p, self._rand_size())
            p -= tk * (1 + (rng.random() < 0.3))
        p = best_ask
        while len(self.asks) < self.levels:
            self.asks.set(p, self._rand_size())
            p += tk * (1 + (rng.random() < 0.3))

    # -- reading ------------------------------------------------------------------------------

    def mid_units(self) -> float:
        b, a = self.bids.best(), self.asks.best()
        if b is None and a is None:
            return float(self.spec.price_units)
        if b is None:
            return float(a)  # type: ignore[arg-type]
        if a is None:
            return float(b)
        return (a + b) / 2.0

    def sync(self, mono: float | None = None, speed: float = 1.0) -> int:
        """Take the steps due by now; return how many were taken."""
        mono = time.monotonic() if mono is None else mono
        due = int((mono - self._t0_mono) * self.steps_per_s * speed)
        n = due - self.steps
        if n <= 0:
            return 0
        if n > self.MAX_CATCH_UP:
            # a long pause (nobody watched this market): skip ahead instead of replaying it all
            self.steps = due - self.MAX_CATCH_UP
            n = self.MAX_CATCH_UP
        rate = self.steps_per_s * speed
        for _ in range(n):
            self.steps += 1
            self.step(self._t0_ms + int(self.steps * 1000 / rate))
        return n

    # -- evolution ----------------------------------------------------------------------------

    def step(self, t_ms: int) -> None:
        rng = self.rng
        self.last_step_ms = t_ms
        self.seq += rng.randint(1, 40)
        r = rng.random()
        if r < self.trade_prob:
            self._aggress(t_ms)
        elif r < 0.50:
            self._resize_near()
        elif r < 0.75:
            self._insert_near()
        elif r < 0.88:
            self._cancel_near()
        else:
            self._churn_far()
        self._replenish()
        self.version += 1

    def _side(self) -> BookSide:
        return self.bids if self.rng.random() < 0.5 else self.asks

    def _near_index(self, side: BookSide) -> int:
        return min(int(self.rng.expovariate(1.0 / 8.0)), len(side) - 1)

    def _buy_prob(self) -> float:
        base = self.spec.price_units
        dev = (base - self.mid_units()) / base
        return 0.5 + max(-0.3, min(0.3, dev * 20.0))

    def _aggress(self, t_ms: int) -> None:
        rng, spec = self.rng, self.spec
        buy = rng.random() < self._buy_prob()
        book = self.asks if buy else self.bids
        own = self.bids if buy else self.asks
        if len(book) < 3:
            return
        qty = spec.lot_units * (1 + int(rng.expovariate(1.0 / (spec.size_mean_lots * 0.6))))
        if rng.random() < 0.1:
            qty *= 4  # an occasional sweep through several levels
        consumed = None
        while qty > 0 and len(book) > 2:
            price = book.best()
            assert price is not None
            avail = book.sizes[price]
            fill = min(qty, avail)
            # split a fill into one to three prints sharing T and seq, as venues do
            lots = fill // spec.lot_units
            parts = 1 if lots < 3 else rng.randint(1, 3)
            cuts = sorted(rng.sample(range(1, lots), parts - 1)) if parts > 1 else []
            prev = 0
            for c in cuts + [lots]:
                q = (c - prev) * spec.lot_units
                if c == lots:
                    q = fill - prev * spec.lot_units
                prev = c
                self._trade(t_ms, "Buy" if buy else "Sell", price, q)
            if fill == avail:
                book.remove(price)
                consumed = price
            else:
                book.sizes[price] = avail - fill
            qty -= fill
        if consumed is not None and rng.random() < 0.6:
            # the aggressor's side follows the price: a new best level just inside the spread
            tk = spec.tick_units
            other = book.best()
            p = (other - tk) if buy else (other + tk)  # type: ignore[operator]
            ob = own.best()
            if p > 0 and (ob is None or (p > ob if buy else p < ob)):
                own.set(p, self._rand_size())

    def _trade(self, t_ms: int, side: str, price: int, size: int) -> None:
        last = self.last_price
        if price > last:
            self.tick_dir = "PlusTick"
        elif price < last:
            self.tick_dir = "MinusTick"
        elif self.tick_dir in ("PlusTick", "ZeroPlusTick"):
            self.tick_dir = "ZeroPlusTick"
        else:
            self.tick_dir = "ZeroMinusTick"
        self.last_price = price
        self.trade_no += 1
        tr = Trade(t_ms, side, price, size, self.seq, self.tick_dir, self.trade_no, self.rng.getrandbits(128))
        if price > self.high_24h:
            self.high_24h = price
        if price < self.low_24h:
            self.low_24h = price
        self.volume_24h += size
        self.turnover_24h += self.spec.qty_float(size) * self.spec.price_float(price)
        if self.pending_trades is not None:
            self.pending_trades.append(tr)
            if len(self.pending_trades) > 20_000:
                del self.pending_trades[:10_000]
        for fn in self.trade_listeners:
            fn(tr)

    def _resize_near(self) -> None:
        side = self._side()
        if not len(side):
            return
        side.sizes[side.at(self._near_index(side))] = self._rand_size()

    def _insert_near(self) -> None:
        rng, tk = self.rng, self.spec.tick_units
        side = self._side()
        best = side.best()
        if best is None:
            return
        b, a = self.bids.best(), self.asks.best()
        if b is not None and a is not None and a - b > tk and rng.random() < 0.3:
            # improve the price inside the spread
            p = best + tk if side.is_bid else best - tk
            if b < p < a:
                side.set(p, self._rand_size())
                return
        d = 1 + int(rng.expovariate(1.0 / 12.0))
        p = best - d * tk if side.is_bid else best + d * tk
        if p > 0 and p not in side.sizes:
            side.set(p, self._rand_size())

    def _cancel_near(self) -> None:
        side = self._side()
        if len(side) <= 3:
            return
        side.remove(side.at(self._near_index(side)))

    def _churn_far(self) -> None:
        side = self._side()
        if not len(side):
            return
        i = self.rng.randrange(len(side))
        p = side.at(i)
        if self.rng.random() < 0.3 and len(side) > 3 and i > 0:
            side.remove(p)
        else:
            side.sizes[p] = self._rand_size()

    def _replenish(self) -> None:
        rng, tk = self.rng, self.spec.tick_units
        for side in (self.bids, self.asks):
            while len(side) < self.levels:
                w = side.worst()
                if w is None:
                    break
                p = w - tk * (1 + (rng.random() < 0.3)) if side.is_bid else w + tk * (1 + (rng.random() < 0.3))
                if p <= 0:
                    break
                side.set(p, self._rand_size())
            while len(side) > self.levels + 20:
                w = side.worst()
                assert w is not None
                side.remove(w)


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


@dataclass
class SimStats:
    """Counters for tests. ``connections()`` lists the open connections."""

    connections_opened: int = 0
    connections_closed: int = 0
    connections_refused: int = 0
    handshakes_not_found: int = 0
    subscribe_requests: int = 0
    unsubscribe_requests: int = 0
    pings: int = 0
    frames_received: int = 0
    frames_sent: int = 0
    errors_sent: int = 0
    auth_ok: int = 0
    auth_failed: int = 0
    faults_injected: int = 0
    idle_closes: int = 0
    internal_errors: int = 0
    max_args_per_request: int = 0
    request_log: deque = field(default_factory=lambda: deque(maxlen=10_000))
    """``(monotonic time, connection id, path, op, number of args, success)`` per request."""
    last_internal_error: str = ""
    _sim: Any = field(default=None, repr=False, compare=False)

    def connections(self) -> list[dict[str, Any]]:
        """One dict per open connection: id, path, ip, topics (in subscribe order), counters."""
        if self._sim is None:
            return []
        return [c.info() for c in self._sim.connections]

    def as_dict(self) -> dict[str, Any]:
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not f.name.startswith("_") and f.name != "request_log"
        }
        d["open_connections"] = len(self._sim.connections) if self._sim is not None else 0
        return d


# ---------------------------------------------------------------------------------------------
# Connections, streams, cadences
# ---------------------------------------------------------------------------------------------

_TEXT = WSMsgType.TEXT


class SimConnection(WSListener):
    """One client WebSocket connection of a venue simulator.

    Venue code uses :meth:`send` (dropped silently while the connection is stalled),
    :meth:`drop`, :meth:`close`, :meth:`stall` and :meth:`every` (a periodic task cancelled
    when the connection ends). ``topics`` maps each subscribed topic (in subscribe order) to its
    :class:`Stream` (or ``None`` for topics without data); ``state`` is free for the venue.
    """

    def __init__(self, sim: "VenueSim", cid: int, path: str, query: dict[str, str], ip: str, group: str):
        super().__init__()
        self.sim = sim
        self.id = cid
        self.path = path
        self.query = query
        self.ip = ip
        self.group = group
        self.transport: WSTransport | None = None
        self._ut: Any = None  # the asyncio transport underneath
        self.open = False
        self.stalled = False
        self._stall_handle: asyncio.TimerHandle | None = None
        now = time.monotonic()
        self.opened_at = now
        self.last_rx = now  # any frame from the client
        self.last_ping = now  # application-level (JSON) ping from the client
        self.last_tx = now  # any data frame to the client
        self.topics: dict[str, Any] = {}
        self.requests = 0
        self.subscribe_requests = 0
        self.unsubscribe_requests = 0
        self.max_args = 0
        self.paused_since: float | None = None
        self.state: dict[str, Any] = {}
        self._tasks: list[asyncio.Task] = []
        self._frag: bytearray | None = None
        self._frag_type: WSMsgType | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} #{self.id} {self.path} topics={len(self.topics)}>"

    # -- picows callbacks ---------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._ut = transport.underlying_transport
        self.open = True
        self.sim._conn_opened(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        was_open = self.open
        self.open = False
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        for t in self._tasks:
            t.cancel()
        self._tasks.clear()
        if was_open:
            self.sim._conn_closed(self)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt is _TEXT or mt is WSMsgType.BINARY:
            if not frame.fin:
                self._frag = bytearray(frame.get_payload_as_bytes())
                self._frag_type = mt
                return
            payload = frame.get_payload_as_bytes()
        elif mt is WSMsgType.CONTINUATION:
            if self._frag is None:
                return
            self._frag += frame.get_payload_as_bytes()
            if not frame.fin:
                return
            payload, mt = bytes(self._frag), self._frag_type
            self._frag = self._frag_type = None
        elif mt is WSMsgType.PING:
            if not self.stalled:
                transport.send_pong(frame.get_payload_as_bytes())
            return
        elif mt is WSMsgType.CLOSE:
            if not self.stalled:
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            return
        else:
            return
        self.last_rx = time.monotonic()  # data frames only: protocol pings are not activity
        sim = self.sim
        sim.stats.frames_received += 1
        try:
            if mt is _TEXT:
                sim.on_text(self, payload)
            else:
                sim.on_binary(self, payload)
        except Exception as exc:  # a simulator bug must not kill the socket silently
            sim._internal_error(exc)

    def pause_writing(self) -> None:
        self.paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self.paused_since = None

    # -- sending ------------------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Send one TEXT frame unless the connection is stalled or gone. Returns whether sent."""
        if self.stalled or not self.open or self._ut.is_closing():
            return False
        self.transport.send(_TEXT, data)  # type: ignore[union-attr]
        return True

    def send_raw(self, msg_type: WSMsgType, data: bytes) -> bool:
        if self.stalled or not self.open or self._ut.is_closing():
            return False
        self.transport.send(msg_type, data)  # type: ignore[union-attr]
        return True

    def drop(self) -> None:
        """Abort the TCP connection now, without a close frame (the client sees 1006)."""
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.disconnect(graceful=False)

    def close(self, code: WSCloseCode = WSCloseCode.GOING_AWAY, reason: bytes = b"") -> None:
        """Send a close frame, then close the socket."""
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close(code, reason)
            self.transport.disconnect()

    def stall(self, seconds: float | None = None) -> None:
        """Stop sending anything (pongs included) for ``seconds`` (``None``: until unstalled)."""
        self.stalled = True
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        if seconds is not None:
            self._stall_handle = asyncio.get_running_loop().call_later(seconds, self.unstall)

    def unstall(self) -> None:
        self.stalled = False
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None

    def every(self, interval: float, fn: Callable[[], Any], *, first: float | None = None) -> asyncio.Task:
        """Call ``fn()`` every ``interval`` seconds while the connection is open."""

        async def run() -> None:
            await asyncio.sleep(interval if first is None else first)
            while self.open:
                try:
                    fn()
                except Exception as exc:
                    self.sim._internal_error(exc)
                await asyncio.sleep(interval)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.append(task)
        return task

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "ip": self.ip,
            "group": self.group,
            "topics": list(self.topics),
            "requests": self.requests,
            "subscribe_requests": self.subscribe_requests,
            "unsubscribe_requests": self.unsubscribe_requests,
            "max_args_per_request": self.max_args,
            "stalled": self.stalled,
            "age_s": time.monotonic() - self.opened_at,
            **{k: v for k, v in self.state.items() if isinstance(v, (str, int, float, bool))},
        }


class Stream:
    """One data topic shared by every connection subscribed to it.

    Subclasses implement :meth:`tick` (called by the stream's :class:`Cadence` while it has
    subscribers) and usually :meth:`on_subscribe` (e.g. to send a snapshot to the newcomer).
    :meth:`publish` sends the same encoded bytes to every subscriber.
    """

    def __init__(self, sim: "VenueSim", topic: str, cadence: "Cadence | None" = None):
        self.sim = sim
        self.topic = topic
        self.cadence = cadence
        self.subs: dict[SimConnection, None] = {}
        self.last_push = 0.0  # monotonic time of the last publish

    def subscribe(self, conn: SimConnection) -> None:
        first = not self.subs
        self.subs[conn] = None
        conn.topics[self.topic] = self
        if first:
            self.activate()
            if self.cadence is not None:
                self.cadence.add(self)
        self.on_subscribe(conn)

    def unsubscribe(self, conn: SimConnection) -> None:
        conn.topics.pop(self.topic, None)
        if self.subs.pop(conn, 0) is None and not self.subs:
            if self.cadence is not None:
                self.cadence.discard(self)
            self.deactivate()

    def activate(self) -> None:
        """First subscriber arrived."""

    def deactivate(self) -> None:
        """Last subscriber left."""

    def on_subscribe(self, conn: SimConnection) -> None:
        """A connection just subscribed (the ack has already been sent)."""

    def tick(self) -> None:
        """Periodic push (see :class:`Cadence`)."""

    def publish(self, data: bytes) -> int:
        self.last_push = time.monotonic()
        n = 0
        for c in self.subs:
            if c.send(data):
                n += 1
        self.sim.stats.frames_sent += n
        return n


class Cadence:
    """One timer per push interval, driving every active member's ``tick()``.

    The timer is a ``loop.call_at`` chain (no task, no per-subscription timers); it runs only
    while it has members and skips missed beats instead of bursting after a pause.
    """

    def __init__(self, sim: "VenueSim", interval: float, name: str = ""):
        self.sim = sim
        self.interval = max(interval, 0.0005)
        self.name = name
        self.members: dict[Any, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._next = 0.0

    def add(self, member: Any) -> None:
        self.members[member] = None
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._next = loop.time() + self.interval
            self._handle = loop.call_at(self._next, self._fire)

    def discard(self, member: Any) -> None:
        self.members.pop(member, None)
        if not self.members:
            self.cancel()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        members = self.members
        for m in list(members):
            if m not in members:
                continue  # left during this round
            try:
                m.tick()
            except Exception as exc:
                self.sim._internal_error(exc)
        if not self.members:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next += self.interval
        if self._next <= now:
            self._next = now + self.interval
        self._handle = loop.call_at(self._next, self._fire)


# ---------------------------------------------------------------------------------------------
# Venue simulator base class
# ---------------------------------------------------------------------------------------------

VENUE_SIMS: dict[str, type["VenueSim"]] = {}


def register_venue(name: str) -> Callable[[type["VenueSim"]], type["VenueSim"]]:
    """Class decorator: ``@register_venue("okx")`` adds the class to ``VENUE_SIMS``."""

    def deco(cls: type["VenueSim"]) -> type["VenueSim"]:
        cls.name = name
        VENUE_SIMS[name] = cls
        register_faults(cls.FAULTS.values())
        return cls

    return deco


_MALFORMED = b'{"topic":"sim.malformed","ts":17'


class VenueSim:
    """Base class of a venue simulator: one picows server on its own port.

    A venue subclass sets ``name``, ``paths``, ``Options`` (a :class:`SimOptions` subclass) and
    ``FAULTS`` (generic plus its own), and implements:

    * :meth:`route` — accept or refuse a handshake path (return the connection group name, or
      ``None`` for a 404);
    * :meth:`on_text` — handle one client TEXT message;
    * optionally :meth:`make_connection`, :meth:`on_open`, :meth:`on_close`, :meth:`on_binary`,
      :meth:`sweep` (idle rules, called every ``idle_check_s``), :meth:`apply_venue_fault`,
      :meth:`on_start`, :meth:`on_stop`.
    """

    name: ClassVar[str] = "venue"
    paths: ClassVar[list[str]] = []
    Options: ClassVar[type[SimOptions]] = SimOptions
    FAULTS: ClassVar[dict[str, FaultSpec]] = GENERIC_FAULTS
    connection_class: ClassVar[type[SimConnection]] = SimConnection

    def __init__(self, *, seed: int = 0, options: Mapping[str, Any] | None = None, faults: Sequence[str] = ()):
        self.seed = seed
        self.opts = self.Options.from_mapping(options)
        self.rng = random.Random(f"{seed}|{self.name}")
        self.stats = SimStats(_sim=self)
        self.connections: dict[SimConnection, None] = {}
        self._initial_faults = [self.parse_fault(f) for f in faults]
        self._server: asyncio.AbstractServer | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._tasks: list[asyncio.Task] = []
        self._fault_tasks: list[asyncio.Task] = []
        self._cadences: dict[Any, Cadence] = {}
        self._next_cid = 0
        self._conn_rate = SlidingWindowCounter(self.opts.conn_limit, self.opts.conn_window_s)
        self._concurrent: dict[tuple[str, str], int] = {}
        self._reject_next = 0
        self._reject_until = 0.0
        self._stall_all = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._server is not None:
            raise RuntimeError(f"{self.name} simulator already started")
        self._host = host
        self._server = await ws_create_server(
            self._factory,
            host,
            port,
            enable_auto_pong=False,  # pongs are ours so that a stalled connection stays silent
            max_frame_size=self.opts.max_frame_size,
            websocket_handshake_timeout=5,
            logger_name=f"sim.{self.name}",
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self.every(self.opts.idle_check_s, self.sweep)
        self.every(1.0, self._check_slow_clients)
        await self.on_start()
        for f in self._initial_faults:
            self.apply_fault(f)

    async def stop(self) -> None:
        for t in self._tasks + self._fault_tasks:
            t.cancel()
        self._tasks.clear()
        self._fault_tasks.clear()
        for c in self._cadences.values():
            c.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self.connections):
            conn.close(WSCloseCode.GOING_AWAY, b"simulator stopping")
        await self.on_stop()
        # let the transports finish closing
        for _ in range(50):
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.drop()
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass

    async def on_start(self) -> None:
        """Hook: the server is listening."""

    async def on_stop(self) -> None:
        """Hook: the server is stopping."""

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``ws://127.0.0.1:PORT`` (``ws://[::1]:PORT`` for IPv6)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"ws://{host}:{self._port}"

    # -- periodic work ------------------------------------------------------------------------

    def every(self, interval: float, fn: Callable[[], Any], *, fault: bool = False) -> asyncio.Task:
        """Call ``fn()`` every ``interval`` seconds until the simulator stops."""

        async def run() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    fn()
                except Exception as exc:
                    self._internal_error(exc)

        task = asyncio.get_running_loop().create_task(run())
        (self._fault_tasks if fault else self._tasks).append(task)
        return task

    def cadence(self, interval: float, key: Any = None) -> Cadence:
        """The shared :class:`Cadence` for ``interval`` (one per key/interval pair)."""
        k = (key, round(interval, 6))
        c = self._cadences.get(k)
        if c is None:
            c = self._cadences[k] = Cadence(self, interval, str(key))
        return c

    def _internal_error(self, exc: BaseException) -> None:
        self.stats.internal_errors += 1
        self.stats.last_internal_error = f"{type(exc).__name__}: {exc}"
        log.error("%s simulator internal error", self.name, exc_info=exc)

    def _check_slow_clients(self) -> None:
        limit = self.opts.slow_client_timeout_s
        now = time.monotonic()
        for c in list(self.connections):
            if c.paused_since is not None and now - c.paused_since > limit:
                log.warning("%s sim: dropping slow client #%d", self.name, c.id)
                c.drop()

    def sweep(self) -> None:
        """Hook called every ``idle_check_s``: apply the venue's idle rules."""

    # -- handshakes ---------------------------------------------------------------------------

    def client_ip(self, request: WSUpgradeRequest) -> str:
        if self.opts.trust_forwarded_for:
            fwd = request.headers.get("X-Forwarded-For")
            if fwd:
                return fwd.split(",")[0].strip()
        return self._host

    def _refuse(self, status: int, body: bytes) -> WSUpgradeResponseWithListener:
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_error_response(status, body), None)

    def _factory(self, request: WSUpgradeRequest) -> Any:
        try:
            raw = request.path.decode("latin-1")
            path, _, qs = raw.partition("?")
            query: dict[str, str] = {}
            for part in qs.split("&"):
                if part:
                    k, _, v = part.partition("=")
                    query[k] = v
            group = self.route(path, query)
            if group is None:
                self.stats.handshakes_not_found += 1
                return None  # picows answers 404
            now = time.monotonic()
            if self._reject_next > 0 or now < self._reject_until:
                if self._reject_next > 0:
                    self._reject_next -= 1
                self.stats.connections_refused += 1
                return self._refuse(429, b"429 Too Many Requests (fault injection)")
            ip = self.client_ip(request)
            if self._concurrent.get((ip, group), 0) >= self.opts.max_conns_per_ip:
                self.stats.connections_refused += 1
                return self._refuse(429, b"429 Too Many Requests: too many connections")
            if not self._conn_rate.allow(ip, now):
                self.stats.connections_refused += 1
                return self._refuse(429, b"429 Too Many Requests: connection rate limit")
            self._next_cid += 1
            return self.make_connection(self._next_cid, path, query, ip, group)
        except Exception as exc:
            self._internal_error(exc)
            raise

    def route(self, path: str, query: dict[str, str]) -> str | None:
        """Return the connection group for a handshake path, or ``None`` to answer 404."""
        return None

    def make_connection(self, cid: int, path: str, query: dict[str, str], ip: str, group: str) -> SimConnection:
        return self.connection_class(self, cid, path, query, ip, group)

    def _conn_opened(self, conn: SimConnection) -> None:
        self.connections[conn] = None
        key = (conn.ip, conn.group)
        self._concurrent[key] = self._concurrent.get(key, 0) + 1
        self.stats.connections_opened += 1
        try:
            self.on_open(conn)
        except Exception as exc:
            self._internal_error(exc)

    def _conn_closed(self, conn: SimConnection) -> None:
        self.connections.pop(conn, None)
        key = (conn.ip, conn.group)
        n = self._concurrent.get(key, 0) - 1
        if n > 0:
            self._concurrent[key] = n
        else:
            self._concurrent.pop(key, None)
        self.stats.connections_closed += 1
        for topic, stream in list(conn.topics.items()):
            if stream is not None:
                stream.unsubscribe(conn)
        conn.topics.clear()
        try:
            self.on_close(conn)
        except Exception as exc:
            self._internal_error(exc)

    def on_open(self, conn: SimConnection) -> None:
        """Hook: a connection completed its handshake."""

    def on_close(self, conn: SimConnection) -> None:
        """Hook: a connection ended (its streams were already unsubscribed)."""

    def on_text(self, conn: SimConnection, payload: bytes) -> None:
        """Hook: one TEXT message from a client."""

    def on_binary(self, conn: SimConnection, payload: bytes) -> None:
        """Hook: one BINARY message from a client (default: treated as text)."""
        self.on_text(conn, payload)

    # -- faults -------------------------------------------------------------------------------

    def parse_fault(self, fault: str | Fault) -> Fault:
        if isinstance(fault, Fault):
            if fault.name not in self.FAULTS:
                raise ValueError(
                    f"fault {fault.name!r} not supported by the {self.name} simulator; "
                    f"known faults: {', '.join(sorted(self.FAULTS))}"
                )
            return fault
        return parse_fault(fault, self.FAULTS)

    def inject(self, fault: str | Fault) -> Fault:
        """Apply a fault now (same grammar as the CLI ``--fault``). Returns the parsed fault."""
        f = self.parse_fault(fault)
        self.apply_fault(f)
        return f

    def apply_fault(self, f: Fault) -> None:
        self.stats.faults_injected += 1
        name, value = f.name, f.value
        if name == "drop":
            self.drop_all()
        elif name == "drop-every":
            self.every(float(value), self.drop_all, fault=True)  # type: ignore[arg-type]
        elif name == "stall":
            self.stall_all(None)
        elif name == "stall-for":
            self.stall_all(float(value))  # type: ignore[arg-type]
        elif name == "malformed":
            self.send_malformed_all()
        elif name == "malformed-every":
            self.every(float(value), self.send_malformed_all, fault=True)  # type: ignore[arg-type]
        elif name == "reject-connect":
            self._reject_next += int(value or 1)
        elif name == "reject-connect-for":
            self._reject_until = time.monotonic() + float(value)  # type: ignore[arg-type]
        elif name == "clear":
            self.clear_faults()
        elif not self.apply_venue_fault(f):
            raise ValueError(f"fault {name!r} not implemented by the {self.name} simulator")

    def apply_venue_fault(self, f: Fault) -> bool:
        """Hook: apply a venue-specific fault; return False if unknown."""
        return False

    def clear_faults(self) -> None:
        for t in self._fault_tasks:
            t.cancel()
        self._fault_tasks.clear()
        self._reject_next = 0
        self._reject_until = 0.0
        for c in self.connections:
            c.unstall()

    def drop_all(self) -> None:
        for c in list(self.connections):
            c.drop()

    def stall_all(self, seconds: float | None) -> None:
        for c in self.connections:
            c.stall(seconds)

    def malformed_frame(self) -> bytes:
        """The non-JSON payload sent by the ``malformed`` fault (venues may override)."""
        return _MALFORMED

    def send_malformed_all(self) -> None:
        data = self.malformed_frame()
        for c in list(self.connections):
            c.send(data)


# ---------------------------------------------------------------------------------------------
# Several servers started and stopped together
# ---------------------------------------------------------------------------------------------


class ServerGroup:
    """Several :class:`VenueSim` servers, one per venue, each on its own port, started and
    stopped together; an async context manager.

    A subclass fills :attr:`venues` and sets :attr:`host` and :attr:`port` (with ``port=N``,
    server ``i`` listens on ``N+i``; ``port=0`` picks free ports).
    """

    venues: dict[str, VenueSim]
    host: str
    port: int
    _started: bool = False

    async def start(self) -> Self:
        if self._started:
            return self
        started: list[VenueSim] = []
        try:
            for i, sim in enumerate(self.venues.values()):
                await sim.start(self.host, self.port + i if self.port else 0)
                started.append(sim)
        except BaseException:
            for sim in started:
                await sim.stop()
            raise
        self._started = True
        return self

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for sim in self.venues.values():
            await sim.stop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Start (if needed) and run until cancelled, then stop."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    @property
    def endpoints(self) -> dict[str, str]:
        """Base URL per venue, e.g. ``{"bybit": "ws://127.0.0.1:PORT"}``, as ``tickwire.stream(endpoints=...)``
        and ``--endpoint`` take them."""
        return {name: sim.url for name, sim in self.venues.items()}

    def ready_extra(self) -> dict[str, Any]:
        """More to announce on the ready line, after the endpoints (none by default)."""
        return {}

    def ready_line(self) -> str:
        """One JSON line announcing the endpoints (printed by ``tickwire sim`` and ``tickwire replay``)."""
        return json.dumps(
            {
                "event": "ready",
                "venues": {name: {"url": sim.url, "paths": list(sim.paths)} for name, sim in self.venues.items()},
                **self.ready_extra(),
            },
            separators=(",", ":"),
        )
