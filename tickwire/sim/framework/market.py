"""A deterministic synthetic market of one instrument.

:class:`SymbolSpec` (tick/lot sizes and exact decimal formatting), :class:`BookSide` (one side of
an L2 book), :func:`diff_window` (the changes of a published top-N window), :class:`Trade` (one
print) and :class:`Market` (a seeded random walk: an L2 book with trades and 24h statistics).
Prices and sizes are integers ("units"); venues format them with :meth:`SymbolSpec.fp` /
:meth:`SymbolSpec.fq`.
"""

from __future__ import annotations

import random
import re
import time
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["BookSide", "Market", "SymbolSpec", "Trade", "diff_window", "format_units", "now_ms"]


def now_ms() -> int:
    """Wall-clock time in integer milliseconds (the unit venues put in ``ts`` fields)."""
    return time.time_ns() // 1_000_000


def _decimals(text: str) -> tuple[int, int]:
    """``"0.10"`` -> (scale 2, units 10): the value as an integer at its own number of decimals."""
    text = text.strip()
    if text.startswith("-") or not re.fullmatch(r"\d+(\.\d+)?", text):
        raise ValueError(f"not a positive decimal: {text!r}")
    whole, _, frac = text.partition(".")
    return len(frac), int(whole + frac)


def format_units(units: int, scale: int) -> str:
    if scale == 0:
        return str(units)
    if units < 0:
        return "-" + format_units(-units, scale)
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
            s = self._pcache[units] = format_units(units, self.price_scale)
        return s

    def fq(self, units: int) -> str:
        """Format a size given in quantity units (``0`` -> ``"0"``, a deletion)."""
        if units == 0:
            return "0"
        return format_units(units, self.qty_scale)

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
