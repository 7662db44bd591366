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

from functools import partial
from typing import Any, Callable, Iterable

import msgspec

from tickwire.model import BookUpdate, Disconnected, Event, Fill, Gap, Order, Resynced, Trade

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


# --------------------------------------------------------------------------- hot standby

HELD_MAX = 20_000        # events of one line held for one stream while the chains cannot join
IDS_MAX = 16_384         # trade/order identities remembered per stream
RECENT_MAX = 256         # state events remembered per stream at the newest exchange time


class _Line:
    __slots__ = ("conn", "index", "topics")

    def __init__(self, conn: Any, index: int) -> None:
        self.conn = conn
        self.index = index
        self.topics: dict[str, str] = {}   # spec -> topic (that line's session keys)

    def alive(self) -> bool:
        lst = self.conn.listener
        return lst is not None and not lst.closed.is_set() and not self.conn.stopping

    def synced(self, spec: str) -> bool:
        """This line's session holds ``spec`` intact now (a book synced; other streams: subscribed)."""
        if not self.alive():
            return False
        topic = self.topics.get(spec)
        if topic is None:
            for s in self.conn.subs.values():
                self.topics[s.spec] = s.topic
            topic = self.topics.get(spec)
        session = self.conn.session
        st = session.streams.get(topic) if session is not None and topic is not None else None
        return st is not None and (st.book is None or st.synced)


class _RStream:
    __slots__ = ("last_seq", "last_ns", "snap_only", "broken", "held", "held_since", "behind", "last_of",
                 "ids", "joined", "last_exch", "recent", "owner", "proto")

    def __init__(self) -> None:
        self.last_seq: int | None = None      # books: the last sequence the user got
        self.last_ns = 0                      # ... and when
        self.snap_only: bool | None = None    # every event is a full snapshot (BGE)? None: not known yet
        self.broken = False                   # a Gap went to the user: the next snapshot re-bases
        self.held: dict[int, list[Event]] = {}     # line -> its events ahead of the user's chain
        self.held_since: dict[int, int] = {}
        self.behind: dict[int, int] = {}      # line -> since when its snapshot is behind the chain
        self.last_of: dict[int, Event] = {}   # line -> its latest book event (its live book)
        self.ids: dict[Any, None] = {}        # trades, fills, orders delivered (newest IDS_MAX)
        self.joined: dict[int, None] = {}     # ... lines in step with what the user got
        self.last_exch = 0                    # state streams: newest exchange time delivered
        self.recent: list[tuple] = []         # ... and what was delivered at that time
        self.owner: int | None = None         # streams without exchange time: the line they come from
        self.proto: Event | None = None


_RECV_AT: dict[type, int] = {}


def _fingerprint(ev: Event) -> tuple:
    """The event without its receipt time (the same venue message from two lines is equal)."""
    t = type(ev)
    i = _RECV_AT.get(t)
    if i is None:
        i = _RECV_AT[t] = [f for f in msgspec.structs.fields(t)].index(
            next(f for f in msgspec.structs.fields(t) if f.name == "recv_ns"))
    v = msgspec.structs.astuple(ev)
    return v[:i] + v[i + 1:]


class Redundant:
    """Hot standby (``redundancy=2``): several live connections carry the same streams, on
    different lines; each message reaches the user once, from whichever line delivers it
    first, so a line that drops loses nothing and the delay is the better of the two.

    Identity, per stream (keyed by the subscription spec, so it holds for any number of lines):

    * books: the venue's sequence chain. An update whose ``prev_seq`` is the last sequence
      the user got continues the chain (from any line); one at or below it is a copy; one
      ahead of it (a line that reconnected and got a newer snapshot) is held until the chain
      reaches it. Snapshot-only streams (BG Exchange, ordered by ``seq_id``; Bybit level 1)
      take any snapshot newer than the last;
    * trades and fills by trade id, orders by (order id, time, state, filled size): the
      identities of :class:`Merger`;
    * other streams (tickers, candles, prices...): by exchange time and content, never older
      than what was delivered; without an exchange time, from one line at a time.

    Status events: a line's Gap is the user's only when no other line holds that stream
    intact (then the next snapshot of any line re-bases the stream and a Resynced follows);
    lines' own Resynced are left out. Everything else goes through. A chain that cannot be
    joined within ``hold_s`` (every line that could fill the hole dropped, or the venue reset
    its sequence) is re-based on the line that has data: a Gap, a snapshot, a Resynced.
    """

    def __init__(self, push: Callable[[list[Event]], None], hold_s: float = 1.0) -> None:
        self.push = push
        self.hold_ns = int(hold_s * 1e9)
        self.lines: list[_Line] = []
        self.streams: dict[str, _RStream] = {}
        self.delivered = 0
        self.duplicates = 0
        self.covered = 0
        self.rebased = 0

    def port(self, conn: Any) -> Callable[[list[Event]], None]:
        """The push of one more line (a connection of a redundant group)."""
        line = _Line(conn, len(self.lines))
        self.lines.append(line)
        return partial(self.take, line.index)

    def stats(self) -> dict[str, int]:
        return {"delivered": self.delivered, "duplicates": self.duplicates, "covered": self.covered,
                "rebased": self.rebased}

    # -- events of one line ------------------------------------------------------------------
    def take(self, i: int, events: list[Event]) -> None:
        out: list[Event] = []
        streams = self.streams
        for ev in events:
            if ev.is_status:
                self._status(i, ev, out)
                continue
            spec = ev.stream
            st = streams.get(spec)
            if st is None:
                st = streams[spec] = _RStream()
            t = type(ev)
            if t is BookUpdate:
                self._book(st, i, ev, out)  # type: ignore[arg-type]
                continue
            key = _identity(ev)
            if key is not None:
                if i in st.joined and not st.held:
                    ids = st.ids
                    if key in ids:
                        self.duplicates += 1
                        continue
                    ids[key] = None
                    if len(ids) > IDS_MAX:
                        del ids[next(iter(ids))]
                    out.append(ev)
                else:
                    self._ident(st, i, ev, key, out)
            else:
                self._state(st, i, ev, out)
        if out:
            self.delivered += len(out)
            self.push(out)

    def _add_id(self, st: _RStream, key: Any) -> None:
        ids = st.ids
        ids[key] = None
        if len(ids) > IDS_MAX:
            del ids[next(iter(ids))]

    def _ident(self, st: _RStream, i: int, ev: Event, key: Any, out: list[Event]) -> None:
        """Trades, fills, orders of a line not joined yet (it connected while another delivered):
        held until one of them is among what the user got (from there on the two lines are in
        step, so first arrival keeps the venue's order), or delivered at once when no joined
        line is alive to deliver them."""
        ids = st.ids
        if not ids or not any(j != i and self.lines[j].alive() for j in st.joined):
            self._flush_ident(st, i, out)
            self._deliver_new(st, (ev,), out)
            return
        if i in st.joined:  # joined, but another line's held trades wait: first arrival still wins
            if key in ids:  # (the hot case: the key is known, not computed again)
                self.duplicates += 1
            else:
                self._add_id(st, key)
                out.append(ev)
            return
        held = st.held.setdefault(i, [])
        held.append(ev)
        st.held_since.setdefault(i, ev.recv_ns)
        for n in range(len(held) - 1, -1, -1):
            if _identity(held[n]) in ids:    # overlap: this line is in step with the user's stream
                st.joined[i] = None
                self._deliver_new(st, held[n + 1:], out)
                self.duplicates += n + 1
                del st.held[i]
                st.held_since.pop(i, None)
                return
        if len(held) > HELD_MAX:
            self._flush_ident(st, i, out)

    def _flush_ident(self, st: _RStream, i: int, out: list[Event]) -> None:
        """A line's held trades never met the user's stream (the other line fell silent): deliver them."""
        held = st.held.pop(i, [])
        st.held_since.pop(i, None)
        st.joined[i] = None
        self._deliver_new(st, held, out)

    def _deliver_new(self, st: _RStream, events: Iterable[Event], out: list[Event]) -> None:
        """The first arrival of each event wins; a copy already delivered is counted and dropped."""
        ids = st.ids
        for e in events:
            k = _identity(e)
            if k in ids:
                self.duplicates += 1
            else:
                self._add_id(st, k)
                out.append(e)

    def _state(self, st: _RStream, i: int, ev: Event, out: list[Event]) -> None:
        x = ev.exch_ns
        if not x:
            if st.owner is None or not self.lines[st.owner].alive():
                st.owner = i
            if st.owner == i:
                out.append(ev)
            else:
                self.duplicates += 1
            return
        if x < st.last_exch:
            self.duplicates += 1
            return
        fp = _fingerprint(ev)
        if x == st.last_exch:
            if fp in st.recent:
                self.duplicates += 1
                return
            st.recent.append(fp)
            if len(st.recent) > RECENT_MAX:
                del st.recent[0]
        else:
            st.last_exch = x
            st.recent = [fp]
        out.append(ev)

    # -- books ---------------------------------------------------------------------------------
    def _deliver(self, st: _RStream, ev: BookUpdate, out: list[Event]) -> None:
        out.append(ev)
        st.last_seq = ev.seq
        st.last_ns = ev.recv_ns
        st.proto = ev

    def _book(self, st: _RStream, i: int, ev: BookUpdate, out: list[Event]) -> None:
        snap = ev.snapshot
        before = st.last_of.get(i)
        st.last_of[i] = ev
        if not snap:
            st.snap_only = False          # a delta stream, for good
        elif st.snap_only is None and before is not None and before.snapshot \
                and ev.seq > before.seq:  # type: ignore[attr-defined]
            st.snap_only = True           # snapshot after snapshot on one line: every push is a full book
            if st.held and st.last_seq is not None:
                self._release(st, out)
        last = st.last_seq
        if last is None or st.broken:
            if snap:
                self._deliver(st, ev, out)
                if st.broken:
                    st.broken = False
                    out.append(self._resynced(st, ev))
                st.held.clear()
                st.held_since.clear()
                st.behind.clear()
            return  # a delta before any snapshot: its line sends the snapshot first
        held = st.held.get(i)
        if held:
            held.append(ev)
            if len(held) > HELD_MAX:
                self._rebase(st, i, out, "a line ran too far ahead", ev.recv_ns)
            return
        seq = ev.seq
        if snap:
            if seq == last:
                st.behind.pop(i, None)
            elif seq < last:
                st.behind.setdefault(i, ev.recv_ns)   # lagging (or the venue reset its sequence)
            elif st.snap_only:
                self._deliver(st, ev, out)
                st.behind.pop(i, None)
                self._release(st, out)
                return
            else:
                st.held[i] = [ev]
                st.held_since[i] = ev.recv_ns
                return
            self.duplicates += 1
            return
        if ev.prev_seq == last and seq != last:
            self._deliver(st, ev, out)
            st.behind.pop(i, None)
            if st.held:
                self._release(st, out)
            return
        if seq <= last:
            if seq == last:
                st.behind.pop(i, None)
            self.duplicates += 1
            return
        st.held[i] = [ev]
        st.held_since[i] = ev.recv_ns

    def _release(self, st: _RStream, out: list[Event]) -> None:
        """The chain moved on: deliver what lines held that now continues it; drop what it passed."""
        progress = True
        while progress and st.held:
            progress = False
            for j in list(st.held):
                h = st.held[j]
                k = 0
                while k < len(h):
                    e = h[k]
                    last = st.last_seq
                    assert last is not None
                    if e.snapshot:  # type: ignore[attr-defined]
                        if e.seq <= last:  # type: ignore[attr-defined]
                            k += 1
                            self.duplicates += 1
                            continue
                        if st.snap_only:
                            self._deliver(st, e, out)  # type: ignore[arg-type]
                            k += 1
                            progress = True
                            continue
                        break
                    if e.prev_seq == last and e.seq != last:  # type: ignore[attr-defined]
                        self._deliver(st, e, out)  # type: ignore[arg-type]
                        k += 1
                        progress = True
                        continue
                    if e.seq <= last:  # type: ignore[attr-defined]
                        k += 1
                        self.duplicates += 1
                        continue
                    break
                if k:
                    del h[:k]
                if not h:
                    del st.held[j]
                    st.held_since.pop(j, None)

    def _rebase(self, st: _RStream, j: int, out: list[Event], why: str, now_ns: int) -> None:
        """The user's chain cannot be continued: a Gap, then line ``j``'s data as a new start."""
        held = st.held.pop(j, [])
        st.held_since.pop(j, None)
        st.behind.pop(j, None)
        src = held[-1] if held else st.last_of.get(j)
        if src is None:
            return
        self.rebased += 1
        host = getattr(self.lines[j].conn.host, "name", "") or self.lines[j].conn.url
        out.append(Gap(venue=src.venue, market=src.market, symbol=src.symbol, stream=src.stream, recv_ns=now_ns,
                       conn=self.lines[j].conn.name, reason=f"hot standby: {why}; re-based on {host}"))
        if held and held[0].snapshot:  # type: ignore[attr-defined]
            self._deliver(st, held[0], out)  # type: ignore[arg-type]
            st.held[j] = held[1:]
            if st.held[j]:
                st.held_since[j] = now_ns
                self._release(st, out)
            else:
                del st.held[j]
        else:
            book = src.book  # type: ignore[attr-defined]
            if book is None or not book.valid:
                st.broken = True
                return
            bids, asks = book.top(10**6)
            snap = msgspec.structs.replace(src, bids=bids, asks=asks, snapshot=True, seq=book.seq, prev_seq=-1,
                                           recv_ns=now_ns)
            self._deliver(st, snap, out)
        st.broken = False
        out.append(self._resynced(st, src))

    def _resynced(self, st: _RStream, src: Event) -> Resynced:
        return Resynced(venue=src.venue, market=src.market, symbol=src.symbol, stream=src.stream,
                        recv_ns=src.recv_ns, conn=getattr(src, "conn", ""), seq=st.last_seq or 0)

    def tick(self, now_ns: int) -> None:
        """Chains that could not be joined in time are re-based (see the class docstring)."""
        out: list[Event] = []
        hold = self.hold_ns
        for st in self.streams.values():
            if st.held_since:
                for j, since in list(st.held_since.items()):
                    if now_ns - since > hold:
                        if st.ids or st.last_seq is None:   # trades, fills, orders
                            self._flush_ident(st, j, out)
                        else:
                            self._rebase(st, j, out, "the lines' sequences did not join", now_ns)
            if st.behind:
                for j, since in list(st.behind.items()):
                    if (now_ns - since > hold and now_ns - st.last_ns > hold and self.lines[j].alive()
                            and j in st.last_of and st.last_of[j].recv_ns > since):
                        self._rebase(st, j, out, "the venue's sequence went back on every line", now_ns)
        if out:
            self.push(out)

    # -- status events -------------------------------------------------------------------------
    def _status(self, i: int, ev: Event, out: list[Event]) -> None:
        t = type(ev)
        if t is Gap and ev.stream:
            st = self.streams.get(ev.stream)
            if st is not None:
                st.held.pop(i, None)
                st.held_since.pop(i, None)
                st.behind.pop(i, None)
            if any(ln.index != i and ln.synced(ev.stream) for ln in self.lines):
                self.covered += 1          # another line holds this stream intact
                return
            if st is not None:
                if st.broken:
                    return
                st.broken = True
            out.append(ev)
            return
        if t is Resynced:
            self.covered += 1              # the user's stream says Resynced when it re-bases
            return
        if t is Disconnected:   # its next connection starts afresh: it joins the user's streams again
            for st in self.streams.values():
                if st.owner == i:
                    st.owner = None
                st.held.pop(i, None)
                st.held_since.pop(i, None)
                st.joined.pop(i, None)
        out.append(ev)
