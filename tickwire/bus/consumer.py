"""Consumers: the bus read back as the events :func:`tickwire.stream` yields.

::

    async for event in tickwire.bus.subscribe("nats://127.0.0.1:4222", "md.okx.>"):
        ...   # Trade, BookUpdate (with .book), Ticker, ..., Gap / Resynced of the bus's own checks

:class:`Keeper` does what a feed's sessions do, on bus messages in bus order: it drops what was
already delivered (a redundant collector's copy stored twice, e.g. after a long bus outage
exceeded the dedup window; trades by trade id, book updates by venue sequence), puts book deltas
back in venue order when two collectors' messages interleaved, maintains each book from its
snapshot and checks the venue sequence chain (``prev_seq`` of a delta = ``seq`` of the book).
A break that does not heal within ``reorder_max`` messages of that stream (or ``hold_s`` of
idle time) is a :class:`~tickwire.model.Gap`: the book is invalid until the next snapshot (a
venue snapshot on the md subject, or a collector's periodic one on the ``snap.`` subject), then
held deltas after it are applied and :class:`~tickwire.model.Resynced` follows. Never a corrupt
book.

A late joiner (``start="now"``, the default) loads the last snapshot of every book it
subscribes to and continues from the md message after the one that snapshot includes. If the
next deltas do not follow the snapshot (a redundant twin that cut its chunks differently was
ahead: the deltas between are stored before the snapshot's position), the md messages of that
book before the snapshot's position are read again (a window that grows 16-fold each time, down
to the start of the bus stream) before anything is called a Gap.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Iterable

from tickwire.book import Book
from tickwire.bus import codec
from tickwire.bus.base import Bus, InMsg, connect_bus, give_up_when_unreachable, until_guard
from tickwire.bus.codec import Snapshot
from tickwire.model import BookUpdate, Event, Gap, Resynced, Trade


class _BookState:
    __slots__ = ("book", "synced", "held", "held_since", "gap_reported", "venue", "market", "symbol", "anchor",
                 "rewinding")

    def __init__(self, ev: Any) -> None:
        self.book = Book(ev.venue, ev.symbol)
        self.synced = False
        self.held: dict[int, BookUpdate] = {}
        self.held_since = 0.0
        self.gap_reported = False
        self.venue, self.market, self.symbol = ev.venue, ev.market, ev.symbol
        self.anchor = 0          # loaded from a collector snapshot at this bus position, no delta applied since
        self.rewinding = False   # the md messages before `anchor` are being read again


class Keeper:
    """Dedup, ordering and books over bus messages (see the module docstring)."""

    def __init__(self, reorder_max: int = 256, hold_s: float = 1.0, held_max: int = 20_000,
                 trade_memory: int = 50_000) -> None:
        self.books: dict[str, _BookState] = {}
        self.trades: dict[str, dict[str, None]] = {}
        self.reorder_max = reorder_max
        self.hold_s = hold_s
        self.held_max = held_max
        self.trade_memory = trade_memory
        self.fresh_from = 0          # md messages of streams without a loaded snapshot: only from here
        self.skip_upto: dict[str, int] = {}
        self.duplicates = 0
        self.gaps = 0
        self.rewinds: dict[str, int] = {}   # streams whose md messages up to this position are to be read again

    def rewound(self, spec: str, complete: bool) -> list[Event]:
        """The owner has read the md messages of ``spec`` up to its anchor again. Healed: done.
        Still broken: read further back (``rewinds`` asks again) or, ``complete`` (read from the
        start of the bus stream), a Gap."""
        st = self.books.get(spec)
        out: list[Event] = []
        if st is None or not st.rewinding:
            return out
        if not (st.synced and st.held):
            st.rewinding = False
        elif complete:
            st.rewinding = False
            self._gap(spec, st, out, f"sequence break after {st.book.seq}, also before the snapshot")
        else:
            self.rewinds[spec] = st.anchor
        return out

    # -- inputs --------------------------------------------------------------------------
    def on_md(self, seq: int, events: list[Event], again: bool = False) -> list[Event]:
        """The events of the md message at bus position ``seq`` that are new (``again``: a
        message read again for a rewind, never skipped by position)."""
        if not events:
            return []
        spec = events[0].stream
        lim = self.skip_upto.get(spec)
        if again:
            pass
        elif lim is None:
            if seq < self.fresh_from and spec not in self.books:
                return []
        elif seq <= lim:
            return []
        out: list[Event] = []
        for ev in events:
            cls = ev.__class__
            if cls is BookUpdate:
                self._book(ev, out)  # type: ignore[arg-type]
            elif cls is Trade and ev.trade_id:  # type: ignore[attr-defined]
                seen = self.trades.get(spec)
                if seen is None:
                    seen = self.trades[spec] = {}
                tid = ev.trade_id  # type: ignore[attr-defined]
                if tid in seen:
                    self.duplicates += 1
                    continue
                seen[tid] = None
                if len(seen) > self.trade_memory:
                    del seen[next(iter(seen))]
                out.append(ev)
            else:
                out.append(ev)
        return out

    def load(self, snap: Snapshot) -> list[Event]:
        """A collector's periodic snapshot: taken when the book is not in sync (late join, after
        a Gap); ignored while the chain is intact."""
        from tickwire.venues import parse

        st = self.books.get(snap.stream)
        if st is not None and st.synced:
            return []
        sub = parse(snap.stream)
        ev = BookUpdate(venue=sub.venue, market=sub.market, symbol=sub.symbol, stream=snap.stream,
                        exch_ns=snap.exch_ns, recv_ns=snap.recv_ns, bids=snap.bids, asks=snap.asks, snapshot=True,
                        seq=snap.seq, prev_seq=0)
        out: list[Event] = []
        self._snapshot(ev, out, collector=True)
        st = self.books.get(snap.stream)
        if st is not None and st.synced and st.book.seq == snap.seq:
            st.anchor = snap.md_seq
        return out

    def idle(self) -> list[Event]:
        """Breaks that did not heal within ``hold_s``: Gaps."""
        out: list[Event] = []
        now = time.monotonic()
        for spec, st in self.books.items():
            if st.synced and st.held and not st.rewinding and now - st.held_since > self.hold_s:
                self._gap(spec, st, out, "sequence break did not heal")
        return out

    # -- books ---------------------------------------------------------------------------
    def _state(self, ev: BookUpdate) -> _BookState:
        st = self.books.get(ev.stream)
        if st is None:
            st = self.books[ev.stream] = _BookState(ev)
        return st

    def _book(self, ev: BookUpdate, out: list[Event]) -> None:
        if ev.snapshot:
            self._snapshot(ev, out)
            return
        st = self._state(ev)
        book = st.book
        if not ev.seq and not ev.prev_seq:  # a venue without sequence numbers: in bus order
            if st.synced:
                book.apply_delta(ev.bids, ev.asks, 0)
                ev.book = book
                out.append(ev)
            return
        if st.synced:
            if ev.seq <= book.seq:
                self.duplicates += 1
                return
            if ev.prev_seq == book.seq:
                book.apply_delta(ev.bids, ev.asks, ev.seq)
                book.exch_ns = ev.exch_ns
                ev.book = book
                out.append(ev)
                st.anchor = 0
                if st.held:
                    self._drain(st, out)
                return
        self._hold(ev.stream, st, ev, out)

    def _hold(self, spec: str, st: _BookState, ev: BookUpdate, out: list[Event]) -> None:
        if not st.held:
            st.held_since = time.monotonic()
        st.held[ev.prev_seq] = ev
        if len(st.held) > self.held_max:
            del st.held[next(iter(st.held))]
        if st.synced and st.anchor and not st.rewinding:
            # Loaded from a collector's snapshot and the next delta does not follow it: the
            # deltas between are in md messages stored before the snapshot's position (a twin
            # that cut its chunks differently was ahead). Read them again, then judge.
            st.rewinding = True
            self.rewinds[spec] = st.anchor
        if st.synced and not st.rewinding and len(st.held) > self.reorder_max:
            self._gap(spec, st, out, f"sequence break after {st.book.seq}")

    def _gap(self, spec: str, st: _BookState, out: list[Event], reason: str) -> None:
        st.synced = False
        st.book.invalidate()
        self.gaps += 1
        if not st.gap_reported:
            st.gap_reported = True
            first = min((e.seq for e in st.held.values()), default=None)
            out.append(Gap(venue=st.venue, market=st.market, symbol=st.symbol, stream=spec, conn="bus",
                           recv_ns=time.time_ns(), reason=reason, expected=st.book.seq, received=first))

    def _drain(self, st: _BookState, out: list[Event]) -> None:
        book = st.book
        held = st.held
        for k in [k for k, e in held.items() if e.seq <= book.seq]:
            del held[k]
        while held:
            ev = held.pop(book.seq, None)
            if ev is None:
                break
            book.apply_delta(ev.bids, ev.asks, ev.seq)
            book.exch_ns = ev.exch_ns
            ev.book = book
            out.append(ev)
            st.anchor = 0
            st.rewinding = False
        if held:
            st.held_since = time.monotonic()

    def _snapshot(self, ev: BookUpdate, out: list[Event], collector: bool = False) -> None:
        st = self._state(ev)
        book = st.book
        if st.synced and ev.seq and ev.seq <= book.seq:
            self.duplicates += 1
            return  # older than (or the same as) the book: a stale copy
        book.apply_snapshot(ev.bids, ev.asks, ev.seq)
        book.exch_ns = ev.exch_ns
        st.synced = True
        st.anchor = 0
        st.rewinding = False
        ev.book = book
        out.append(ev)
        if st.gap_reported:
            st.gap_reported = False
            out.append(Resynced(venue=ev.venue, market=ev.market, symbol=ev.symbol, stream=ev.stream, conn="bus",
                                recv_ns=time.time_ns(), seq=ev.seq))
        if st.held:
            self._drain(st, out)


def _snap_subjects(subjects: Iterable[str]) -> list[str]:
    out = []
    for s in subjects:
        if s.startswith("md."):
            out.append("snap." + s[3:])
        elif s in (">", "md.>"):
            out.append("snap.>")
    return out


async def subscribe(url: str | Bus, subjects: str | Iterable[str] = "md.>", *, start: Any = "now",
                    streams: Any = None, snapshots: bool = True,
                    give_up_after_s: float | None = None) -> AsyncIterator[Event]:
    """``async for event in subscribe(url, "md.okx.>")``: events from the bus.

    ``start``: ``"now"`` (late joiner: books from their last snapshot, other streams from now
    on), ``"first"`` (everything the stream still holds), or a stream sequence number.
    ``snapshots``: also follow the collectors' periodic snapshots (resync after a Gap).
    ``give_up_after_s``: raise :class:`BusError` once the bus has been unreachable that long
    (default: wait for it forever).
    Subjects starting with ``status.`` give the collectors' status events as they are.
    """
    from tickwire.bus.collector import StreamsConfig

    cfg = streams or StreamsConfig()
    subs = [subjects] if isinstance(subjects, str) else list(subjects)
    own = not isinstance(url, Bus)
    bus = connect_bus(url, name="tickwire-subscribe") if own else url
    guard = (asyncio.ensure_future(give_up_when_unreachable(bus, give_up_after_s))
             if give_up_after_s is not None else None)
    if own:
        try:
            await until_guard(bus.connect(), guard)
        except BaseException:
            if guard is not None:
                guard.cancel()
            await bus.close()
            raise
    keeper = Keeper()
    q: asyncio.Queue = asyncio.Queue(maxsize=64)
    tasks: list[asyncio.Task] = [guard] if guard is not None else []
    rewinding: dict[str, asyncio.Task] = {}
    windows: dict[str, int] = {}

    async def pump(kind: str, it: AsyncIterator[list[InMsg]]) -> None:
        async for batch in it:
            await q.put((kind, batch))

    async def reread(spec: str, start: int, upto: int) -> None:
        """The md messages of one book's subject from bus position ``start`` to ``upto``."""
        got: list[InMsg] = []
        it = bus.consume(cfg.md, [codec.md_subject(spec)], start_seq=start)
        try:
            async for batch in it:
                if not batch:
                    break  # nothing more (within the consumer's wait)
                got.extend(m for m in batch if m.seq <= upto)
                if batch[-1].seq >= upto:
                    break
        finally:
            await it.aclose()  # type: ignore[attr-defined]
        await q.put(("again", (spec, start, got)))

    def rewind() -> None:
        for spec, anchor in list(keeper.rewinds.items()):
            del keeper.rewinds[spec]
            if spec in rewinding:
                continue
            w = windows[spec] = windows.get(spec, 256) * 16
            rewinding[spec] = asyncio.create_task(reread(spec, max(1, anchor - w + 1), anchor))

    try:
        await until_guard(wait_stream(bus, cfg.md), guard)  # no collector has created the streams yet: wait
        start_seq = 0
        snap_subjects = _snap_subjects(subs) if snapshots else []
        if start == "now":
            last = await until_guard(bus.last_seq(cfg.md), guard)
            start_seq = last + 1
            keeper.fresh_from = last + 1
            for m in await until_guard(_last_per_subject(bus, cfg.snap, snap_subjects), guard):
                snap = codec.decode_snapshot(m.data)
                for ev in keeper.load(snap):
                    yield ev
                keeper.skip_upto[snap.stream] = snap.md_seq
                start_seq = min(start_seq, snap.md_seq + 1)
        elif start == "first":
            start_seq = 1
        else:
            start_seq = int(start)
        tasks.append(asyncio.create_task(pump("md", bus.consume(cfg.md, subs, start_seq=max(1, start_seq)))))
        if snap_subjects:
            tasks.append(asyncio.create_task(pump("snap", bus.consume(cfg.snap, snap_subjects, new_only=True))))
        while True:
            get = asyncio.ensure_future(q.get())
            done, _ = await asyncio.wait({get, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                continue
            kind, batch = get.result()
            if kind == "again":  # a book's md messages before its snapshot's position, read again
                spec, begin, msgs = batch
                rewinding.pop(spec, None)
                for m in msgs:
                    for ev in keeper.on_md(m.seq, codec.decode_md(m.data)[1], again=True):
                        yield ev
                for ev in keeper.rewound(spec, complete=begin <= 1):
                    yield ev
                rewind()
                continue
            if not batch:
                for ev in keeper.idle():
                    yield ev
                continue
            for m in batch:
                if kind == "snap":
                    for ev in keeper.load(codec.decode_snapshot(m.data)):
                        yield ev
                elif m.subject.startswith("status."):
                    for ev in codec.decode_status(m.data):
                        yield ev
                else:
                    _, events = codec.decode_md(m.data)
                    for ev in keeper.on_md(m.seq, events):
                        yield ev
            if keeper.rewinds:
                rewind()
    finally:
        for t in [*tasks, *rewinding.values()]:
            t.cancel()
        if own:
            await bus.close()


async def wait_stream(bus: Bus, stream: str, poll_s: float = 0.2) -> None:
    """Return once ``stream`` exists (the first collector creates the streams)."""
    while True:
        try:
            await bus.last_seq(stream)
            return
        except Exception:
            await asyncio.sleep(poll_s)


async def _last_per_subject(bus: Bus, stream: str, subjects: list[str]) -> list[InMsg]:
    """The last message of every subject matching ``subjects`` (late joiners' snapshots)."""
    if not subjects:
        return []
    fn = getattr(bus, "last_per_subject", None)
    if fn is not None:
        return await fn(stream, subjects)
    out = []
    for s in subjects:
        m = await bus.last(stream, s)
        if m is not None:
            out.append(m)
    return out
