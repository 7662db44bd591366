"""L2 order book with exact string levels and an integrity flag.

Levels are kept as the venue's strings (exact); ordering uses ``float(price)``, which is
monotonic for the decimal strings venues send. Each side is a dict price -> size plus a
sorted list of prices, so a size change (the common delta) is one dict store, and an
insert/delete is a bisect + list memmove (tiny for 50..400 levels). ``top(n)`` is a slice.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Iterable, Sequence


# Spellings of zero a venue may use for "delete this level" (a set lookup is the fast path;
# anything else that is numerically zero is caught by _is_zero).
_ZEROS = frozenset(["0", "0.0"] + ["0." + "0" * n for n in range(2, 19)])


def _is_zero(size: str) -> bool:
    return size in _ZEROS or float(size) == 0.0


class _Side:
    __slots__ = ("levels", "prices", "keys", "descending")

    def __init__(self, descending: bool) -> None:
        self.levels: dict[str, str] = {}
        self.prices: list[str] = []  # best first
        self.keys: list[float] = []  # sort keys of ``prices``, ascending (bids negated)
        self.descending = descending

    def clear(self) -> None:
        self.levels.clear()
        self.prices.clear()
        self.keys.clear()

    def load(self, levels: Iterable[Sequence[str]]) -> None:
        self.clear()
        lv = self.levels
        for level in levels:
            size = level[1]
            if not _is_zero(size):
                lv[level[0]] = size
        neg = self.descending
        items = sorted(((-float(p) if neg else float(p)), p) for p in lv)
        self.keys = [k for k, _ in items]
        self.prices = [p for _, p in items]

    def apply(self, levels: Iterable[Sequence[str]]) -> None:
        lv = self.levels
        zeros = _ZEROS
        for level in levels:
            price = level[0]
            size = level[1]
            if size in zeros:
                if lv.pop(price, None) is not None:
                    key = -float(price) if self.descending else float(price)
                    i = bisect_left(self.keys, key)
                    # equal floats from different strings ("1.5" vs "1.50") cannot both be
                    # present: venues use one spelling per price; still, match on the string.
                    while self.prices[i] != price:
                        i += 1
                    del self.keys[i]
                    del self.prices[i]
                # deleting an unknown level is harmless (OKX documents it; Bybit window exits)
            elif price in lv:
                lv[price] = size
            else:
                lv[price] = size
                key = -float(price) if self.descending else float(price)
                i = bisect_left(self.keys, key)
                self.keys.insert(i, key)
                self.prices.insert(i, price)

    def top(self, n: int) -> list[tuple[str, str]]:
        lv = self.levels
        return [(p, lv[p]) for p in self.prices[:n]]

    def truncate(self, depth: int) -> None:
        """Drop levels beyond ``depth`` (venues that send no deletes for window exits)."""
        if len(self.prices) > depth:
            for p in self.prices[depth:]:
                del self.levels[p]
            del self.prices[depth:]
            del self.keys[depth:]


class Book:
    """One instrument's L2 book. ``valid`` is False from a Gap until the next snapshot."""

    __slots__ = ("venue", "symbol", "bids_side", "asks_side", "valid", "seq", "exch_ns", "depth")

    def __init__(self, venue: str = "", symbol: str = "", depth: int | None = None) -> None:
        self.venue = venue
        self.symbol = symbol
        self.bids_side = _Side(descending=True)
        self.asks_side = _Side(descending=False)
        self.valid = False
        self.seq = 0
        self.exch_ns = 0
        self.depth = depth

    # -- updates ---------------------------------------------------------------------
    def apply_snapshot(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]], seq: int = 0) -> None:
        """Reset to this snapshot: no level of the previous state survives."""
        self.bids_side.load(bids)
        self.asks_side.load(asks)
        self.seq = seq
        self.valid = True

    def apply_delta(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]], seq: int = 0) -> None:
        self.bids_side.apply(bids)
        self.asks_side.apply(asks)
        self.seq = seq

    def invalidate(self) -> None:
        self.valid = False

    # -- reads -----------------------------------------------------------------------
    @property
    def bids(self) -> dict[str, str]:
        return self.bids_side.levels

    @property
    def asks(self) -> dict[str, str]:
        return self.asks_side.levels

    def best_bid(self) -> tuple[str, str] | None:
        s = self.bids_side
        return (s.prices[0], s.levels[s.prices[0]]) if s.prices else None

    def best_ask(self) -> tuple[str, str] | None:
        s = self.asks_side
        return (s.prices[0], s.levels[s.prices[0]]) if s.prices else None

    def top(self, n: int = 10) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Best ``n`` levels per side, best first, as exact (price, size) strings."""
        return self.bids_side.top(n), self.asks_side.top(n)

    def __len__(self) -> int:
        return len(self.bids_side.prices) + len(self.asks_side.prices)

    def __repr__(self) -> str:
        return (f"Book({self.venue}:{self.symbol} bid={self.best_bid()} ask={self.best_ask()} "
                f"levels={len(self.bids_side.prices)}/{len(self.asks_side.prices)} valid={self.valid} seq={self.seq})")
