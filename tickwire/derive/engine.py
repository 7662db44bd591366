"""The computations behind computed streams, written once for live feeds and recordings.

A :class:`BookDeriver` follows one book stream and a :class:`TradeDeriver` one trade stream;
each is fed plain values (a book message's levels, a trade's fields, the stream's Gap and
Resynced), from live events by :mod:`tickwire.derive.live` and from a recorded dataset by
:mod:`tickwire.derive.offline`, and appends the computed events to a list. Same inputs, same
outputs: that is what makes a live computed stream equal to the one computed from its recording.

Rules (documented in docs/derive.md):

* A book deriver keeps its **own** book from the messages' levels (the feed's ``BookUpdate.book``
  is ahead of a consumer that has events waiting, so it cannot give the book at an event's time).
  It is valid from a snapshot message until a Gap of its stream (or an Overflow / a recorder drop
  on its venue), and again from the next snapshot (or Resynced). Deltas while invalid are skipped.
* Clocks: book snapshots use ``recv_ns`` (what a local observer knew: no look-ahead); a boundary
  ``T`` of the grid gets the book after every message received before ``T``, emitted when the
  first message (or status event) of the stream at or after ``T`` arrives; one snapshot per
  boundary while valid, none while invalid. Time bars use the trades' venue time (``exch_ns``;
  ``recv_ns`` when the venue sent none); a bar is emitted when a trade of a later bar arrives;
  no bar for an interval without trades; a late trade goes into the open bar.
* Duplicates the venue sends again (a book message with the same ``(seq, snapshot, exch_ns)`` as
  the previous one, a trade id already seen on the instrument) are skipped, as the recorder skips
  them, so a recording computes what the live stream did.
"""

from __future__ import annotations

from collections import deque
from decimal import Context, Decimal
from typing import Any

from tickwire.book import BadLevel, Book
from tickwire.derive.spec import View
from tickwire.model import BookSnapshot, Quote, TradeBar

TRADE_IDS = 200_000  # trade ids remembered per instrument (as the recorder does)


class _Grid:
    __slots__ = ("spec", "depth", "interval", "next_t")

    def __init__(self, spec: str, view: View) -> None:
        self.spec = spec
        self.depth = view.depth
        self.interval = view.interval_ns
        self.next_t = 0


class _OnChange:
    __slots__ = ("spec", "depth", "last")

    def __init__(self, spec: str, view: View) -> None:
        self.spec = spec
        self.depth = view.depth
        self.last: Any = None


class _Quotes:
    __slots__ = ("spec", "last")

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.last: Any = None


class BookDeriver:
    """One book stream's computed views (snapshots on a grid or on change, quotes)."""

    def __init__(self, venue: str, market: str, symbol: str) -> None:
        self.venue = venue
        self.market = market
        self.symbol = symbol
        self.book = Book(venue, symbol)
        self.valid = False
        self.had_snapshot = False
        self.seq = 0
        self.exch_ns = 0
        self._last_key: Any = None
        self.grids: list[_Grid] = []
        self.on_change: list[_OnChange] = []
        self.quotes: list[_Quotes] = []

    def add_view(self, spec: str, view: View) -> None:
        if view.kind == "quotes":
            self.quotes.append(_Quotes(spec))
        elif view.interval_ns:
            self.grids.append(_Grid(spec, view))
        else:
            self.on_change.append(_OnChange(spec, view))

    @property
    def specs(self) -> list[str]:
        return [v.spec for v in (*self.grids, *self.on_change, *self.quotes)]

    # -- time -------------------------------------------------------------------------------
    def advance(self, recv_ns: int, out: list) -> None:
        """Emit the grid snapshots of every boundary at or before ``recv_ns`` (before anything
        received at ``recv_ns`` is applied)."""
        for g in self.grids:
            t = g.next_t
            if recv_ns >= t:
                iv = g.interval
                if self.valid and t:
                    bids, asks = self.book.top(g.depth)
                    venue, market, symbol, spec, depth = self.venue, self.market, self.symbol, g.spec, g.depth
                    exch_ns, seq = self.exch_ns, self.seq
                    while t <= recv_ns:
                        out.append(BookSnapshot(venue=venue, market=market, symbol=symbol, stream=spec,
                                                exch_ns=exch_ns, recv_ns=t, depth=depth, interval_ns=iv,
                                                bids=bids, asks=asks, seq=seq))
                        t += iv
                g.next_t = (recv_ns // iv + 1) * iv

    # -- inputs -----------------------------------------------------------------------------
    def message(self, recv_ns: int, exch_ns: int, seq: int, snapshot: bool, bids: list, asks: list,
                out: list) -> None:
        """One book message (a BookUpdate's levels, or the book_changes rows of one message)."""
        if self.grids:
            self.advance(recv_ns, out)
        key = (seq, snapshot, exch_ns)
        if seq and key == self._last_key:
            return  # the venue sent it again
        self._last_key = key
        book = self.book
        if snapshot:
            try:
                book.apply_snapshot(bids, asks, seq)
            except BadLevel:
                self._invalidate()
                return
            if not self.valid:
                self._validate()
            self.had_snapshot = True
        elif self.valid:
            try:
                book.apply_delta(bids, asks, seq)
            except BadLevel:
                self._invalidate()
                return
        else:
            return
        self.seq = seq
        self.exch_ns = exch_ns
        for c in self.on_change:
            top = book.top(c.depth)
            if top != c.last:
                c.last = top
                out.append(BookSnapshot(venue=self.venue, market=self.market, symbol=self.symbol, stream=c.spec,
                                        exch_ns=exch_ns, recv_ns=recv_ns, depth=c.depth, interval_ns=0,
                                        bids=top[0], asks=top[1], seq=seq))
        if self.quotes:
            bb, ba = book.best_bid(), book.best_ask()
            q = (bb, ba)
            for qv in self.quotes:
                if q != qv.last:
                    qv.last = q
                    out.append(Quote(venue=self.venue, market=self.market, symbol=self.symbol, stream=qv.spec,
                                     exch_ns=exch_ns, recv_ns=recv_ns, bid=bb[0] if bb else None,
                                     bid_size=bb[1] if bb else None, ask=ba[0] if ba else None,
                                     ask_size=ba[1] if ba else None, seq=seq))

    def gap(self, recv_ns: int, out: list) -> None:
        """Integrity lost (Gap of the stream, an Overflow, a recorder drop): invalid until a snapshot."""
        if self.grids:
            self.advance(recv_ns, out)
        self._invalidate()

    def resynced(self, recv_ns: int, out: list) -> None:
        if self.grids:
            self.advance(recv_ns, out)
        if self.had_snapshot and not self.valid:
            self._validate()

    def seed(self, book: Book, recv_ns: int, exch_ns: int, seq: int) -> None:
        """Start from a copy of a maintained book (live only: a view added to a running stream,
        or after an Overflow), taken when it is exactly the book at the current event."""
        bids, asks = book.top(len(book))
        self.book.apply_snapshot(bids, asks, seq)
        self.seq, self.exch_ns = seq, exch_ns
        self.had_snapshot = True
        self._last_key = None
        if not self.valid:
            self._validate()

    def _invalidate(self) -> None:
        self.valid = False
        for c in self.on_change:
            c.last = None
        for q in self.quotes:
            q.last = None

    def _validate(self) -> None:
        self.valid = True


class _Bar:
    __slots__ = ("spec", "text", "unit", "n", "x", "start", "end", "open", "high", "low", "close", "hi", "lo",
                 "volume", "value", "buy", "sell", "trades", "exch_ns")

    def __init__(self, spec: str, view: View) -> None:
        self.spec = spec
        self.text = view.text[4:]
        self.unit = view.unit
        self.n = int(view.size) if view.unit in ("time", "ticks") else 0
        self.x = Decimal(view.size) if view.unit in ("vol", "value") else Decimal(0)
        self.trades = 0


_ZERO = Decimal(0)
# Sums and products of exact strings stay exact (the default context rounds at 28 digits).
_CTX = Context(prec=100)
_add = _CTX.add
_mul = _CTX.multiply


class TradeDeriver:
    """One trade stream's bars (time, ticks, volume, value)."""

    def __init__(self, venue: str, market: str, symbol: str) -> None:
        self.venue = venue
        self.market = market
        self.symbol = symbol
        self.bars: list[_Bar] = []
        self._ids: dict[tuple[str, str], tuple[set, deque]] = {}

    def add_view(self, spec: str, view: View) -> None:
        self.bars.append(_Bar(spec, view))

    @property
    def specs(self) -> list[str]:
        return [b.spec for b in self.bars]

    def gap(self, recv_ns: int, out: list) -> None:
        """Trades are not chained: nothing to invalidate (a bar over a gap holds what arrived)."""

    def resynced(self, recv_ns: int, out: list) -> None:
        pass

    def trade(self, recv_ns: int, exch_ns: int, market: str, symbol: str, price: str, size: str, side: str,
              trade_id: str, out: list) -> None:
        if trade_id:
            key = (market, symbol)
            st = self._ids.get(key)
            if st is None:
                st = self._ids[key] = (set(), deque())
            seen, order = st
            if trade_id in seen:
                return  # the venue sent it again
            seen.add(trade_id)
            order.append(trade_id)
            if len(order) > TRADE_IDS:
                seen.discard(order.popleft())
        t = exch_ns or recv_ns
        p = Decimal(price)
        s = Decimal(size)
        v = _mul(p, s)
        for b in self.bars:
            unit = b.unit
            if unit == "time":
                bucket = t - t % b.n
                if b.trades and bucket >= b.end:
                    self._emit(b, recv_ns, market, symbol, out)
                if not b.trades:
                    b.start, b.end = bucket, bucket + b.n
            elif not b.trades:
                b.start = t
            if b.trades:
                if p > b.hi:
                    b.hi, b.high = p, price
                if p < b.lo:
                    b.lo, b.low = p, price
                b.volume = _add(b.volume, s)
                b.value = _add(b.value, v)
            else:
                b.open = b.high = b.low = price
                b.hi = b.lo = p
                b.volume, b.value, b.buy, b.sell = s, v, _ZERO, _ZERO
            if side == "buy":
                b.buy = _add(b.buy, s)
            elif side == "sell":
                b.sell = _add(b.sell, s)
            b.close = price
            b.trades += 1
            b.exch_ns = exch_ns
            if unit != "time":
                b.end = t
                if (unit == "ticks" and b.trades >= b.n) or (unit == "vol" and b.volume >= b.x) or \
                        (unit == "value" and b.value >= b.x):
                    self._emit(b, recv_ns, market, symbol, out)

    def _emit(self, b: _Bar, recv_ns: int, market: str, symbol: str, out: list) -> None:
        vol = b.volume
        out.append(TradeBar(venue=self.venue, market=market, symbol=symbol, stream=b.spec, exch_ns=b.exch_ns,
                            recv_ns=recv_ns, bar=b.text, start_ns=b.start, end_ns=b.end, open=b.open, high=b.high,
                            low=b.low, close=b.close, volume=_fmt(vol), value=_fmt(b.value), buy_volume=_fmt(b.buy),
                            sell_volume=_fmt(b.sell), trades=b.trades,
                            vwap=float(b.value / vol) if vol else float(b.hi)))
        b.trades = 0


def _fmt(d: Decimal) -> str:
    return format(d, "f")


def make_deriver(kind: str, venue: str, market: str, symbol: str) -> BookDeriver | TradeDeriver:
    return BookDeriver(venue, market, symbol) if kind == "book" else TradeDeriver(venue, market, symbol)
