"""Make-before-break: merge an old and a replacement connection without gap or duplicate.

When a venue announces it will close a connection (OKX ``notice`` 64008), the engine opens
a replacement, logs in and subscribes while the old one keeps delivering. Both feed this
merger; per stream it lets exactly one of them through and moves ownership to the new
connection at a point where the two agree:

* books: when the new connection holds an update whose ``prev_seq`` equals the last
  sequence the user got (the chain continues unbroken), or its snapshot equals it;
* trades, fills and order updates: when an event seen from both (same trade id, or same
  order id/time/state) shows the overlap (nothing lost, nothing twice);
* other streams (tickers, candles, mark price...): at the switch, dropping a first event
  identical to the last one delivered.

When every stream has switched (or the old connection closes, or time runs out) the old
connection is closed. A book that could not be joined in time is re-based on the new
connection's book with one snapshot event, so the user is never left with a broken book.
"""

from __future__ import annotations

from typing import Any, Callable

import msgspec

from tickwire.model import BookUpdate, Event, Fill, Order, Trade

_OLD = 0
_NEW = 1


class _Stream:
    __slots__ = ("owner", "is_book", "is_trade", "last_seq", "old_ids", "held", "overlap", "last_event")

    def __init__(self) -> None:
        self.owner = _OLD
        self.is_book = False
        self.is_trade = False
        self.last_seq: int | None = None
        self.old_ids: dict[Any, None] = {}  # identities delivered to the user (newest 5,000), O(1) lookups
        self.held: list[Event] = []   # new-connection events waiting for the join point
        self.overlap = False
        self.last_event: Event | None = None


def _identity(ev: Event) -> Any:
    """What makes an event of an append-only stream unique (None: a state-like stream)."""
    t = type(ev)
    if t is Trade or t is Fill:
        return ev.trade_id or None  # type: ignore[attr-defined]
    if t is Order:
        return (ev.order_id, ev.exch_ns, ev.status, ev.filled_size)  # type: ignore[attr-defined]
    return None


def _same(a: Event | None, b: Event) -> bool:
    """Equal apart from receipt time and connection (the same venue message twice)."""
    if a is None or type(a) is not type(b):
        return False
    fa = msgspec.structs.asdict(a)
    fb = msgspec.structs.asdict(b)
    for k in ("recv_ns", "conn", "book"):
        fa.pop(k, None)
        fb.pop(k, None)
    return fa == fb


class Merger:
    """Routes events of the old and the new connection into ``push``."""

    def __init__(self, push: Callable[[list[Event]], None], old_books: dict[str, int], new_streams: set[str]) -> None:
        self.push = push
        self.streams: dict[str, _Stream] = {}
        self.expected = set(new_streams)       # streams the new connection must take over
        for spec, seq in old_books.items():
            st = self._st(spec)
            st.is_book = True
            st.last_seq = seq
        self.finished = False

    def _st(self, spec: str) -> _Stream:
        st = self.streams.get(spec)
        if st is None:
            st = self.streams[spec] = _Stream()
        return st

    # -- old connection ------------------------------------------------------------------
    def from_old(self, events: list[Event]) -> None:
        out: list[Event] = []
        for ev in events:
            spec = ev.stream
            if ev.is_status or not spec:
                out.append(ev)
                continue
            st = self._st(spec)
            if st.owner == _NEW:
                continue
            out.append(ev)
            self._delivered(st, ev)
            if st.held:
                self._try_join(st, out)
        if out:
            self.push(out)

    # -- new connection ------------------------------------------------------------------
    def from_new(self, events: list[Event]) -> None:
        out: list[Event] = []
        for ev in events:
            spec = ev.stream
            if ev.is_status or not spec:
                out.append(ev)
                continue
            st = self._st(spec)
            if st.owner == _NEW:
                if not (st.last_event is not None and _same(st.last_event, ev)):
                    out.append(ev)
                    self._delivered(st, ev)
                continue
            if isinstance(ev, BookUpdate):
                st.is_book = True
                if ev.snapshot:
                    st.held = [ev]
                else:
                    st.held.append(ev)
                if len(st.held) > 20_000:  # never grows without bound
                    del st.held[1:10_000]
                self._try_join(st, out)
            elif (key := _identity(ev)) is not None:
                st.is_trade = True
                if key in st.old_ids:
                    st.overlap = True        # the old one delivered this: later ones are new
                    st.held.clear()
                elif st.overlap:
                    st.owner = _NEW
                    out.append(ev)
                    self._delivered(st, ev)
                else:
                    st.held.append(ev)
                    if len(st.held) > 20_000:
                        del st.held[:10_000]
            else:
                st.held = [ev]  # state-like streams: the newest one is all that matters
        if out:
            self.push(out)

    # -- joining ---------------------------------------------------------------------------
    def _delivered(self, st: _Stream, ev: Event) -> None:
        st.last_event = ev
        if isinstance(ev, BookUpdate):
            st.is_book = True
            st.last_seq = ev.seq
        elif (key := _identity(ev)) is not None:
            st.is_trade = True
            ids = st.old_ids
            ids[key] = None
            if len(ids) > 5000:
                del ids[next(iter(ids))]

    def _try_join(self, st: _Stream, out: list[Event]) -> None:
        held = st.held
        if st.is_book:
            last = st.last_seq
            if last is None:
                return
            for i, ev in enumerate(held):
                if ev.snapshot and ev.seq == last and ev.seq:    # type: ignore[attr-defined]
                    self._switch(st, held[i + 1:], out)
                    return
                if not ev.snapshot and ev.prev_seq == last:      # type: ignore[attr-defined]
                    self._switch(st, held[i:], out)
                    return
        elif st.is_trade:
            ids = st.old_ids
            for i, ev in enumerate(held):
                if _identity(ev) in ids:
                    st.overlap = True
                    rest = [e for e in held[i + 1:] if _identity(e) not in ids]
                    self._switch(st, rest, out)
                    return

    def _switch(self, st: _Stream, rest: list[Event], out: list[Event]) -> None:
        st.owner = _NEW
        st.held = []
        for ev in rest:
            out.append(ev)
            self._delivered(st, ev)

    def ready(self) -> bool:
        """Every book and trade stream of the new connection has joined."""
        for spec in self.expected:
            st = self.streams.get(spec)
            if st is None:
                continue  # nothing seen yet on a quiet stream: switched at finish
            if st.owner == _OLD and (st.is_book or (st.is_trade and st.held)):
                return False
        return True

    def finish(self, new_books: dict[str, Any]) -> None:
        """Hand every remaining stream to the new connection (old is about to close)."""
        out: list[Event] = []
        for spec, st in self.streams.items():
            if st.owner == _NEW:
                continue
            if st.is_book:
                book = new_books.get(spec)
                st.owner = _NEW
                if book is not None and book.valid and st.held:
                    # Could not join the chains in time: re-base on the new connection's book.
                    src = st.held[-1]
                    bids, asks = book.top(10**6)
                    snap = msgspec.structs.replace(src, bids=bids, asks=asks, snapshot=True, seq=book.seq,
                                                   prev_seq=-1, book=book)
                    out.append(snap)
                    self._delivered(st, snap)
                st.held = []
            elif st.is_trade:
                ids = st.old_ids
                self._switch(st, [e for e in st.held if _identity(e) not in ids], out)
            else:
                held = [e for e in st.held if not _same(st.last_event, e)]
                self._switch(st, held, out)
        self.finished = True
        if out:
            self.push(out)
