"""The Recorder: normalized events to a Parquet dataset, received frames to a raw archive.

::

    rec = Recorder("data")                 # recovers what a killed recorder left, starts the writer
    async with tickwire.stream(*specs) as feed:
        rec.attach(feed)                   # a tap on every socket (raw frames, markers), flush timer
        async for ev in feed:
            rec.add(ev)                    # cheap: the event appended to a list
    rec.close()                            # publishes everything, raises RecorderError on a disk error

The event-loop side only appends each event object to a list per table and stream, and
frame lines to a list per venue and date, and hands full lists (or, every ``flush_interval``,
whatever is there) to one writer thread, which builds the columns, encodes and writes. What
was flushed is queryable at once (``publish="flush"``, see :mod:`tickwire.sinks.writer`).

Memory policy (``backlog``): the batches waiting for the writer are bounded by
``max_pending_bytes`` (estimated). When the disk is slower than the feed:

* ``"drop"`` (default, for live recording): the new batch is dropped whole, never blocking
  the event loop (blocking it would stall heartbeats and get the connections dropped). Every
  drop is counted (``stats.dropped``, ``stats.dropped_frames``), logged, and written into the
  data itself: a ``RecorderDrop`` row in the ``status`` table (kind, count, time range) and an
  ``L`` line in the raw archive. Status rows are never dropped.
* ``"block"`` (offline conversions, e.g. ``tickwire decode --out``): ``add`` waits for the
  writer; nothing is lost.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import msgspec

from tickwire.model import BookUpdate, Disconnected, Event
from tickwire.net.tap import SocketInfo, Tap
from tickwire.sinks.columns import BookRows
from tickwire.sinks.schema import EVENT_KIND, KINDS, Kind, status_row
from tickwire.sinks.writer import (
    WAL_DIR, FlushMark, ParquetOptions, RawItem, RecorderError, RecoveryReport, RowsItem, Writer,
    describe_os_error, lock_dir, recover, unlock_dir,
)

log = logging.getLogger("tickwire.record")

DAY_NS = 86_400 * 1_000_000_000
_CHECK_EVERY = 255  # add(): look at the clock every 256 events (a timer also runs on a loop)


@dataclass
class RecorderStats:
    events: dict = field(default_factory=dict)       # kind -> events accepted by add()
    dropped: dict = field(default_factory=dict)      # kind -> events dropped (writer behind)
    frames: int = 0                                  # raw frames accepted
    dropped_frames: int = 0
    ignored: int = 0                                 # events of kinds not recorded


class _Conn:
    """One socket in the archive (a feed's socket id, or a name declared by connection())."""

    __slots__ = ("name", "name_b", "venue", "endpoint", "url", "subs", "replaces", "open", "opened_ns", "cont",
                 "rb", "last_ns")

    def __init__(self, name: str, venue: str, endpoint: str, url: str, subs: list[str], replaces: str = "") -> None:
        self.name = name
        self.name_b = name.replace(" ", "_").encode()
        self.venue = venue
        self.endpoint = endpoint
        self.url = url
        self.subs = subs
        self.replaces = replaces
        self.open = False
        self.opened_ns = 0
        self.cont = b""
        self.rb: _RawBuf | None = None  # the raw buffer this connection appends to (cache)
        self.last_ns = 0


class _RawBuf:
    """A venue's archive lines not yet handed to the writer (one UTC date). ``day_end`` is 0
    once handed over, so the frame fast path has one test for both."""

    __slots__ = ("key", "parts", "markers", "check", "first_ns", "conns", "day_end")

    def __init__(self, key: tuple[str, int], first_ns: int, conns: dict, check: int = 256) -> None:
        self.key = key
        self.parts: list[bytes] = []
        self.markers = 0              # lines that are not frames (C, D, S, R)
        self.check = check            # count the bytes when len(parts) reaches this
        self.first_ns = first_ns
        self.conns = conns
        self.day_end = (key[1] + 1) * DAY_NS

    @property
    def frames(self) -> int:
        return len(self.parts) - self.markers


class _EvBuf:
    """The events of one table and stream not yet handed to the writer (one UTC date)."""

    __slots__ = ("kind", "venue", "stream", "day", "day_start", "day_end", "events", "last_snap", "lv", "market",
                 "symbol")

    def __init__(self, kind: Kind, venue: str, stream: str, ns: int, market: str = "", symbol: str = "") -> None:
        self.kind = kind
        self.venue = venue
        self.stream = stream
        self.day = ns // DAY_NS
        self.day_start = self.day * DAY_NS
        self.day_end = self.day_start + DAY_NS
        self.events: list = []       # events; book_changes: (recv_ns, exch_ns, seq, prev_seq, snapshot, nb, na)
        self.lv: list = []           # book_changes: each message's (bids, asks) as JSON (msgspec)
        self.market = market
        self.symbol = symbol
        self.last_snap = 0


# events handed to the writer at most this many at a time per stream (the writer's per-batch
# overhead is negligible from ~2000 on; fewer events held means less memory and cache traffic).
# Book events are not held at all: their numbers and levels are copied (see _book_handler), because
# their level lists, kept alive, age into Python's oldest GC generation, whose full collections
# then cost more than the recording (measured: 0.4-0.8 us/msg)
_EVENT_BATCH = 4096


def _writer_id() -> str:
    return f"{int(time.time()):08x}{os.getpid() & 0xFFFF:04x}{random.getrandbits(16):04x}"


class Recorder(Tap):
    """Record events and raw frames under ``out_dir`` (see ``docs/recording.md``).

    Frames come through the feed's taps (:meth:`attach`): every socket is its own connection
    in the archive, so decoding it gives the events the live feed delivered, failovers
    included. Without a feed, declare names with :meth:`connection` and call :meth:`raw`.

    Raises :class:`RecorderError` at once when ``out_dir`` cannot be written, from
    :meth:`add` once the writer stopped on a disk error, and from :meth:`close`.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        raw: bool = True,
        parquet: bool = True,
        kinds: Iterable[str] | None = None,
        flush_interval: float = 2.0,
        roll_interval: float = 300.0,
        roll_size: int = 128 * 1024 * 1024,
        batch_rows: int = 16_384,
        raw_batch_bytes: int = 1024 * 1024,
        book_snapshot_interval: float = 1.0,
        book_snapshot_depth: int = 20,
        max_pending_bytes: int = 256 * 1024 * 1024,
        backlog: str = "drop",
        fsync: bool = False,
        compression: str = "zstd",
        compression_level: int | None = 1,
        row_group_rows: int = 128 * 1024,
        recover_orphans: bool = True,
        publish: str = "flush",
    ) -> None:
        if backlog not in ("drop", "block"):
            raise ValueError("backlog must be 'drop' or 'block'")
        if publish not in ("flush", "roll"):
            raise ValueError("publish must be 'flush' (queryable at every flush) or 'roll' (write-ahead files, "
                             "published at the roll)")
        if kinds is not None:
            kinds = list(kinds)
            unknown = [k for k in kinds if k not in KINDS]
            if unknown:
                raise ValueError(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
        self.root = Path(out_dir)
        self.raw_enabled = raw
        self.parquet_enabled = parquet
        self.kinds = set(kinds) if kinds is not None else set(KINDS)
        self.flush_interval = flush_interval
        self.batch_rows = batch_rows
        self.raw_batch_bytes = raw_batch_bytes
        self.snap_interval_ns = int(book_snapshot_interval * 1e9) if book_snapshot_interval > 0 else 0
        self.snap_depth = book_snapshot_depth
        self.block = backlog == "block"
        self.fsync = fsync
        self.writer_id = _writer_id()
        self.stats = RecorderStats()
        self.recovered = RecoveryReport()
        self._closed = False
        popts = ParquetOptions(compression=compression, compression_level=compression_level,
                               row_group_rows=row_group_rows)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not self.root.is_dir():
                raise NotADirectoryError(20, "Not a directory", str(self.root))
            if recover_orphans:
                self.recovered = recover(self.root, popts)
            self._lock = lock_dir(self.root / WAL_DIR / self.writer_id)
        except OSError as e:
            raise RecorderError(f"cannot record to {self.root}: {describe_os_error(e)}") from e
        if self.recovered:
            log.info("recovered from an interrupted recording in %s: %d parquet parts (%d rows), "
                        "%d raw files", self.root, self.recovered.parts, self.recovered.rows,
                        self.recovered.raw_files)
        self.publish = publish
        try:
            self.writer = Writer(self.root, self.writer_id, roll_interval_s=roll_interval, roll_bytes=roll_size,
                                 max_pending_bytes=max_pending_bytes, fsync=fsync, parquet=popts,
                                 tick_s=min(0.5, max(0.05, flush_interval / 2)), publish=publish)
        except OSError as e:
            unlock_dir(self._lock)
            raise RecorderError(f"cannot record to {self.root}: {describe_os_error(e)}") from e
        self.writer.start()

        self._bufs: dict[tuple[str, str, int], list] = {}          # tuple rows: status, book_snapshots
        self._ebufs: dict[str, dict[Any, _EvBuf]] = {}            # kind -> stream -> events
        self._raw_bufs: dict[tuple[str, int], _RawBuf] = {}
        self._pending_loss: dict[str, dict] = {}          # venue -> raw frames dropped, not yet noted
        self._holes: dict[tuple[str, str, int], dict] = {}  # rows dropped, not yet noted in `status`
        self._conns: dict[str, _Conn] = {}
        self._feed: Any = None
        self._n = 0
        self._next_flush = time.monotonic() + flush_interval
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_drop_log = 0.0
        self._handlers: dict[type, Any] = {}
        self._start_timer()

    # ------------------------------------------------------------------ public API
    def attach(self, feed: Any) -> "Recorder":
        """Record ``feed``'s sockets (a tap: frames, opens, closes, failovers, REST replies)
        and run the flush timer on its loop. Call right after the feed is entered: a socket
        already open when attached is declared at its next frame, from its id."""
        self._feed = feed
        feed.add_tap(self if self.raw_enabled else self._status_tap())
        self._start_timer()
        return self

    def _status_tap(self) -> Tap:
        """Without the raw archive: a tap without a frame callback (nothing on the hot path)."""
        tap = getattr(self, "_stap", None)
        if tap is None:
            rec = self

            class _SocketsOnly(Tap):
                def opened(self, sock: SocketInfo) -> None:
                    rec._socket_row(sock)

            tap = self._stap = _SocketsOnly()
        return tap

    # -- the tap (called by the feed) ---------------------------------------------------
    def opened(self, sock: SocketInfo) -> None:
        if self._closed:
            return
        self._socket_row(sock)
        if not self.raw_enabled:
            return
        c = self._conns[sock.id] = _Conn(sock.id, sock.venue, sock.endpoint, sock.url, list(sock.streams),
                                         sock.replaces)
        self._open_conn(c, sock.opened_ns)

    def _socket_row(self, sock: SocketInfo) -> None:
        """A ``Socket`` row in ``status``: which streams a connection serves (``tickwire verify``
        attributes a connection's disconnected periods to its streams with it)."""
        if self._closed or not self.parquet_enabled or "status" not in self.kinds:
            return
        detail = {"type": "Socket", "id": sock.id, "conn": sock.conn, "endpoint": sock.endpoint,
                  "streams": list(sock.streams), "opened_ns": sock.opened_ns}
        if sock.replaces:
            detail["replaces"] = sock.replaces
        ns = sock.opened_ns
        self._row("status", sock.venue, ns, (ns, 0, "", "", "", "Socket", sock.conn, sock.id, sock.url, detail))

    def frame(self, sock_id: str, recv_ns: int, payload: bytes, binary: bool) -> None:
        """The hot path: one line appended to the venue's archive buffer."""
        c = self._conns.get(sock_id)
        if c is not None and c.open:
            rb = c.rb
            if rb is not None and recv_ns < rb.day_end and not binary and 10 not in payload:
                parts = rb.parts
                parts.append(b"T %d %s %s\n" % (recv_ns, c.name_b, payload))
                c.last_ns = recv_ns
                if len(parts) >= rb.check:
                    self._raw_full(rb)
                return
        self.raw(sock_id, recv_ns, payload, binary)

    def closed(self, sock_id: str, ns: int, reason: str) -> None:
        self.disconnected(sock_id, ns, reason)

    def switched(self, sock_id: str, old_id: str, ns: int) -> None:
        c = self._conns.get(sock_id)
        if c is not None and c.open and not self._closed:
            self._raw_line(c.venue, ns, b"S %d %s %s\n" % (ns, c.name_b, msgspec.json.encode({"replaces": old_id})))

    def rest(self, sock_id: str, recv_ns: int, topic: str, body: bytes | None, error: str) -> None:
        c = self._conns.get(sock_id)
        if c is not None and c.open and not self._closed:
            info = b'{"topic":%s,"error":%s,"body":%s}' % (msgspec.json.encode(topic), msgspec.json.encode(error),
                                                           body if body is not None else b"null")
            self._raw_line(c.venue, recv_ns, b"R %d %s %s\n" % (recv_ns, c.name_b, info))

    def add(self, ev: Event) -> None:
        """Record one event (any kind; unknown kinds are counted and ignored)."""
        h = self._handlers.get(ev.__class__)
        if h is None:
            h = self._handler(ev.__class__)
        h(ev)
        self._n += 1
        if not self._n & _CHECK_EVERY and time.monotonic() >= self._next_flush:
            self.flush()

    def add_many(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.add(ev)

    def raw(self, conn: str, recv_ns: int, payload: bytes, binary: bool) -> None:
        """Record one received frame (the :attr:`Feed.raw_hook` signature). Never raises."""
        try:
            self._raw(conn, recv_ns, payload, binary)
        except Exception:  # pragma: no cover - must not break the socket reader
            log.exception("raw frame not recorded")

    def connection(self, conn: str, venue: str, endpoint: str, url: str = "", subs: Iterable[str] = ()) -> None:
        """Declare what a connection name serves (only needed without :meth:`attach`, when
        names do not follow the feed's ``venue/endpoint#n`` form). Its first frame opens it."""
        c = self._conns.get(conn)
        if c is None or c.venue != venue or c.endpoint != endpoint:
            self._conns[conn] = _Conn(conn, venue, endpoint, url, list(subs))
        else:
            c.url = url or c.url
            c.subs = list(subs) or c.subs

    def disconnected(self, conn: str, recv_ns: int | None = None, reason: str = "") -> None:
        """Write a connection-ended marker in the raw archive (done for you from Disconnected events)."""
        c = self._conns.get(conn)
        if c is not None and c.open:
            ns = recv_ns or time.time_ns()
            self._raw_line(c.venue, ns, b"D %d %s %s\n" % (ns, c.name_b, msgspec.json.encode({"reason": reason})))
            c.open = False

    def flush(self, wait: bool = False, timeout: float | None = None) -> None:
        """Hand every buffered row and frame to the writer. ``wait=True`` returns once they
        are written to the OS (fsynced too with ``fsync=True``)."""
        self._next_flush = time.monotonic() + self.flush_interval
        self._handoff_all()
        if self.publish == "flush":
            self.writer.submit(FlushMark(), 0, droppable=False, block=False)
        self._check_error()
        if wait:
            self.writer.barrier(fsync=self.fsync, timeout=timeout)
            self._check_error()

    @property
    def error(self) -> RecorderError | None:
        """The disk error that stopped the recorder, if any."""
        return self.writer.error

    def close(self) -> RecorderStats:
        """Publish everything and stop the writer. Raises :class:`RecorderError` if the
        recorder stopped on a disk error (files already published stay complete)."""
        if self._closed:
            self._check_error()
            return self.stats
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._feed is not None:
            self._feed.remove_tap(self if self.raw_enabled else self._status_tap())
        for c in self._conns.values():
            if c.open:  # marked at the last frame recorded: nothing of the connection after it is known
                self.disconnected(c.name, max(c.last_ns, c.opened_ns), "recording ended")
        self.block = True  # closing: the loop is done, nothing more is dropped (the last marks get written)
        try:
            self._handoff_all()
        except RecorderError:
            pass
        self.writer.stop()
        unlock_dir(self._lock)
        if self.writer.error is None:
            wdir = self.root / WAL_DIR / self.writer_id
            for p in (wdir / "LOCK", wdir):
                try:
                    p.unlink() if p.is_file() else _rmtree_empty(p)
                except OSError:
                    pass
            try:
                (self.root / WAL_DIR).rmdir()  # only if empty
            except OSError:
                pass
        self._check_error()
        return self.stats

    def _handoff_all(self) -> None:
        if self._holes:
            self._close_holes()
        for bufs in self._ebufs.values():
            for b in list(bufs.values()):
                if b.events:
                    self._handoff_events(b)
        if self._holes:
            self._close_holes()
        for key in list(self._bufs):
            self._handoff(key)
        for key in list(self._raw_bufs):
            self._handoff_raw(key)

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type: Any, *a: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.close()
            except RecorderError:
                pass

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict[str, Any]:
        w = self.writer.stats
        return {
            "rows": dict(w.rows), "files": dict(w.files), "bytes": dict(w.bytes),
            "events": dict(self.stats.events), "dropped": dict(self.stats.dropped),
            "raw_frames": w.raw_frames, "dropped_frames": self.stats.dropped_frames,
            "peak_pending_bytes": self.writer.peak_pending_bytes, "writer_busy_s": round(w.busy_s, 3),
            "writer_cpu_s": round(w.cpu_s, 3), "duplicates": dict(w.duplicates), "parts": w.parts,
            "merges": w.merges, "writer_phases_s": {k: round(v, 4) for k, v in w.phases.items()},
        }

    def summary_line(self) -> str:
        s = self.summary()
        rows = s["rows"]
        parts = [f"{k} {v:,}" for k, v in sorted(rows.items())]
        nfiles = sum(s["files"].values())
        nbytes = sum(s["bytes"].values())
        text = (f"recorded {sum(rows.values()):,} rows ({', '.join(parts) or 'none'}); "
                f"{s['raw_frames']:,} raw frames; {nfiles} files, {_human(nbytes)} in {self.root}")
        dropped = sum(s["dropped"].values())
        if dropped or s["dropped_frames"]:
            text += f"; DROPPED {dropped:,} events and {s['dropped_frames']:,} frames (disk too slow)"
        return text

    # ------------------------------------------------------------------ internals: events
    def _start_timer(self) -> None:
        if self._timer is not None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._loop = loop
        self._timer = loop.call_later(self.flush_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._closed:
            return
        try:
            if time.monotonic() >= self._next_flush - 0.01:
                self.flush()
        except RecorderError:
            return  # surfaced by add()/close()
        if self._loop is not None:
            delay = max(0.01, self._next_flush - time.monotonic())
            self._timer = self._loop.call_later(delay, self._on_timer)

    def _check_error(self) -> None:
        err = self.writer.error
        if err is not None:
            raise err

    def _handler(self, cls: type) -> Any:
        kind = EVENT_KIND.get(cls)
        if kind is None:
            for base in cls.__mro__[1:]:
                kind = EVENT_KIND.get(base)
                if kind is not None:
                    break
        if kind is None or not self.parquet_enabled:
            h = self._ignore_or_status if cls is Disconnected else self._ignore
        elif kind.name == "book_changes":
            h = self._book_handler()
        elif kind.name == "status":
            h = self._status if "status" in self.kinds else self._ignore_or_status
        elif kind.name not in self.kinds:
            h = self._ignore
        else:
            h = self._generic(kind)
        self._handlers[cls] = h
        return h

    def _ignore(self, ev: Event) -> None:
        self.stats.ignored += 1

    def _ignore_or_status(self, ev: Event) -> None:
        if isinstance(ev, Disconnected):
            self._on_disconnected(ev)
        self.stats.ignored += 1

    def _generic(self, kind: Kind) -> Any:
        name = kind.name
        bufs = self._ebufs.setdefault(name, {})
        batch = min(self.batch_rows, _EVENT_BATCH)

        def handle(ev: Any) -> None:
            b = bufs.get(ev.stream)
            if b is None or ev.recv_ns >= b.day_end or ev.recv_ns < b.day_start or b.venue is not ev.venue:
                b = self._ebuf(kind, bufs, ev)
            evs = b.events
            evs.append(ev)
            if len(evs) >= batch:
                self._handoff_events(b)

        return handle

    def _ebuf(self, kind: Kind, bufs: dict, ev: Any, instrument: bool = False) -> _EvBuf:
        """Slow path of the handlers: the stream's first event, a new UTC date, or an event
        without a stream (or of a stream name another venue uses): keyed by venue too."""
        stream = ev.stream
        key: Any = stream
        b = bufs.get(stream) if stream else None
        if not stream or (b is not None and b.venue != ev.venue):
            key = (ev.venue, stream, ev.market, ev.symbol) if instrument else (ev.venue, stream)
            b = bufs.get(key)
        ns = ev.recv_ns
        if b is not None and b.day_start <= ns < b.day_end:
            if not instrument or (b.symbol == ev.symbol and b.market == ev.market):
                # the same text: keep these objects for the identity tests of the fast path
                b.venue, b.symbol, b.market = ev.venue, ev.symbol, ev.market
                return b
        if b is not None and b.events:
            self._handoff_events(b)
        nb = bufs[key] = _EvBuf(kind, ev.venue, stream, ns, ev.market, ev.symbol)
        if b is not None:
            nb.last_snap = b.last_snap
        return nb

    def _row(self, name: str, venue: str, ns: int, row: tuple) -> None:
        key = (name, venue, ns // DAY_NS)
        buf = self._bufs.get(key)
        if buf is None:
            buf = self._bufs[key] = []
        buf.append(row)

    def _status(self, ev: Any) -> None:
        if ev.__class__ is Disconnected:
            self._on_disconnected(ev)
        key = ("status", ev.venue, ev.recv_ns // DAY_NS)
        buf = self._bufs.get(key)
        if buf is None:
            buf = self._bufs[key] = []
        buf.append(status_row(ev))

    def _book_handler(self) -> Any:
        kind = KINDS["book_changes"]
        changes = "book_changes" in self.kinds
        bufs = self._ebufs.setdefault("book_changes", {})
        batch = min(self.batch_rows, _EVENT_BATCH)
        iv = self.snap_interval_ns if "book_snapshots" in self.kinds else 0

        enc = msgspec.json.encode

        def handle(ev: BookUpdate) -> None:
            ns = ev.recv_ns
            b = bufs.get(ev.stream)
            # (a book stream is one instrument: its spec names it; "" streams are keyed by instrument)
            if b is None or ns >= b.day_end or ns < b.day_start or b.venue is not ev.venue:
                b = self._ebuf(kind, bufs, ev, True)
            if changes:
                # the numbers as one tuple, the levels as JSON: the event and its level lists are
                # not kept (kept, they would age into Python's oldest GC generation)
                rows = b.events
                bids = ev.bids
                asks = ev.asks
                rows.append((ns, ev.exch_ns, ev.seq, ev.prev_seq, ev.snapshot, len(bids), len(asks)))
                b.lv.append(enc((bids, asks)))
                if len(rows) >= batch:
                    self._handoff_events(b)
            if iv and ns - b.last_snap >= iv:
                book = ev.book
                if book is not None and book.valid:
                    b.last_snap = ns
                    bids, asks = book.top(self.snap_depth)
                    self._row("book_snapshots", ev.venue, ns,
                              (ns, book.exch_ns, ev.market, ev.symbol, ev.stream, book.seq, bids, asks))

        return handle

    def _handoff_events(self, b: _EvBuf) -> None:
        evs = b.events
        if not evs:
            return
        b.events = []
        kind = b.kind
        name = kind.name
        n = len(evs)
        c = self.stats.events
        c[name] = c.get(name, 0) + n
        if name == "book_changes":
            lv = b.lv
            b.lv = []
            nbytes = n * 120 + sum(map(len, lv))
            item: Any = BookRows(b.venue, b.market, b.symbol, b.stream, evs, lv)
            first, last = evs[0][0], evs[-1][0]
        else:
            nbytes = n * kind.row_bytes
            item = evs
            first, last = evs[0].recv_ns, evs[-1].recv_ns
        ok = self.writer.submit(RowsItem(kind, b.venue, b.day, item, nbytes, False, b.stream), nbytes,
                                droppable=True, block=self.block)
        key = (name, b.venue, b.day)
        if not ok:
            self._check_error()
            self._dropped(kind, b.venue, b.day, n, first, last)
        elif self._holes and key in self._holes:
            self._close_holes(key)  # the hole ended: its row goes out with the next status batch

    def _handoff(self, key: tuple[str, str, int], counted: bool = False) -> None:
        rows = self._bufs.pop(key, None)
        if not rows:
            return
        name, venue, day = key
        kind = KINDS[name]
        n = len(rows)
        if not counted:
            c = self.stats.events
            c[name] = c.get(name, 0) + n
        nbytes = n * kind.row_bytes
        ok = self.writer.submit(RowsItem(kind, venue, day, rows, nbytes, True), nbytes, droppable=name != "status",
                                block=self.block)
        if not ok:
            self._check_error()
            self._dropped(kind, venue, day, n, rows[0][0], rows[-1][0])
        elif self._holes and key in self._holes:
            self._close_holes(key)  # the hole ended: its row goes out with the next status batch

    def _dropped(self, kind: Kind, venue: str, day: int, n: int, from_ns: int, to_ns: int) -> None:
        d = self.stats.dropped
        d[kind.name] = d.get(kind.name, 0) + n
        key = (kind.name, venue, day)
        hole = self._holes.get(key)
        if hole is None:
            self._holes[key] = {"type": "RecorderDrop", "kind": kind.name, "events": n, "from_ns": from_ns,
                                "to_ns": to_ns}
        else:
            hole["events"] += n
            hole["from_ns"] = min(hole["from_ns"], from_ns)
            hole["to_ns"] = max(hole["to_ns"], to_ns)
        self._log_drop()

    def _close_holes(self, only: tuple[str, str, int] | None = None) -> None:
        """Write one RecorderDrop status row per hole (a run of dropped batches) that ended."""
        for key in [only] if only is not None else list(self._holes):
            hole = self._holes.pop(key, None)
            if hole is None:
                continue
            name, venue, day = key
            row = (hole["to_ns"], 0, "", "", "", "RecorderDrop", "", name,
                   f"recorder dropped {hole['events']} {name} events received from {hole['from_ns']} to "
                   f"{hole['to_ns']} (disk slower than the feed)", hole)
            self._bufs.setdefault(("status", venue, day), []).append(row)

    def _log_drop(self) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0:
            self._last_drop_log = now
            log.warning("recorder behind the feed (more than %s waiting for the disk): dropped %d events "
                        "and %d raw frames so far", _human(self.writer.max_pending_bytes),
                        sum(self.stats.dropped.values()), self.stats.dropped_frames)

    def _on_disconnected(self, ev: Disconnected) -> None:
        c = self._conns.get(ev.conn)
        if c is not None and c.open and ev.recv_ns >= c.opened_ns:
            self.disconnected(ev.conn, ev.recv_ns, ev.reason)

    # ------------------------------------------------------------------ internals: raw frames
    def _raw(self, conn: str, recv_ns: int, payload: bytes, binary: bool) -> None:
        c = self._conns.get(conn)
        if c is None or not c.open:
            c = self._resolve_conn(conn, recv_ns)
            if c is None:
                return
        rb = c.rb
        if rb is None or recv_ns >= rb.day_end:
            rb = c.rb = self._raw_buf(c.venue, recv_ns)
        if binary:
            line = b"B %d %s %s\n" % (recv_ns, c.name_b, base64.b64encode(payload))
        elif 10 in payload:
            line = b"X %d %s %s\n" % (recv_ns, c.name_b, base64.b64encode(payload))
        else:
            line = b"T %d %s %s\n" % (recv_ns, c.name_b, payload)
        rb.parts.append(line)
        c.last_ns = recv_ns
        if len(rb.parts) >= rb.check:
            self._raw_full(rb)

    def _raw_full(self, rb: _RawBuf) -> None:
        """Every few hundred lines: hand the buffer over once it holds ``raw_batch_bytes``."""
        parts = rb.parts
        n = sum(map(len, parts))
        if n >= self.raw_batch_bytes:
            self._handoff_raw(rb.key)
        else:
            rb.check = len(parts) + max(16, int((self.raw_batch_bytes - n) * len(parts) / max(1, n)))

    def _resolve_conn(self, conn: str, recv_ns: int) -> _Conn | None:
        """Slow path of :meth:`_raw`: a name declared by connection() (or seen before and
        ended) opens again; an unknown one is read as ``venue/endpoint#n[.k]``."""
        if self._closed or not self.raw_enabled:
            return None
        c = self._conns.get(conn)
        if c is None:
            head, _, _ = conn.rpartition("#")
            venue, _, endpoint = (head or conn).partition("/")
            c = self._conns[conn] = _Conn(conn, venue, endpoint, "", [])
        self._open_conn(c, recv_ns)
        return c

    def _open_conn(self, c: _Conn, ns: int) -> None:
        info: dict[str, Any] = {"venue": c.venue, "endpoint": c.endpoint, "url": c.url, "subs": c.subs}
        if c.replaces:
            info["replaces"] = c.replaces
        c.open = False  # not in the continued-connections list of a buffer created by this line
        self._raw_line(c.venue, ns, b"C %d %s %s\n" % (ns, c.name_b, msgspec.json.encode(info)))
        c.open = True
        c.opened_ns = ns
        info.pop("replaces", None)  # a continued declaration is the same socket, not a new failover
        c.cont = msgspec.json.encode({**info, "continued": True, "connected_ns": ns})

    def _raw_buf(self, venue: str, ns: int) -> _RawBuf:
        key = (venue, ns // DAY_NS)
        rb = self._raw_bufs.get(key)
        if rb is None:
            rb = self._new_raw_buf(key, ns)
        return rb

    def _new_raw_buf(self, key: tuple[str, int], first_ns: int) -> _RawBuf:
        venue = key[0]
        conns = {c.name: c.cont for c in self._conns.values() if c.open and c.venue == venue}
        rb = self._raw_bufs[key] = _RawBuf(key, first_ns, conns, max(1, min(256, self.raw_batch_bytes // 512)))
        return rb

    def _raw_line(self, venue: str, ns: int, line: bytes) -> None:
        rb = self._raw_buf(venue, ns)
        rb.parts.append(line)
        rb.markers += 1

    def _handoff_raw(self, key: tuple[str, int]) -> None:
        rb = self._raw_bufs.pop(key, None)
        if rb is None:
            return
        rb.day_end = 0  # handed over: the next frame of its connections makes a new one
        if not rb.parts:
            return
        venue, day = key
        frames = rb.frames
        self.stats.frames += frames
        loss = self._pending_loss.get(venue)
        if loss is not None:  # frames dropped before this chunk: say so where they are missing
            rb.parts.insert(0, b"L %d - %s\n" % (loss["from_ns"], msgspec.json.encode(loss)))
        nbytes = sum(map(len, rb.parts))
        item = RawItem(venue, day, rb.parts, frames, rb.first_ns, rb.conns, nbytes)  # joined by the writer
        if self.writer.submit(item, nbytes, droppable=True, block=self.block):
            if loss is not None:
                del self._pending_loss[venue]
            return
        self._check_error()
        self.stats.frames -= frames
        self.stats.dropped_frames += frames
        if loss is None:
            loss = self._pending_loss[venue] = {"venue": venue, "dropped_frames": 0, "dropped_bytes": 0,
                                                "from_ns": rb.first_ns}
            parts = rb.parts
        else:
            parts = rb.parts[1:]
        loss["dropped_frames"] += frames
        loss["dropped_bytes"] += nbytes
        # connection markers in a dropped chunk must survive, or decode would lose track
        markers = [p for p in parts if p[:1] in (b"C", b"D")]
        if markers:
            nb = self._raw_buf(venue, rb.first_ns)
            nb.parts[:0] = markers
            nb.markers += len(markers)
        self._log_drop()


def _rmtree_empty(p: Path) -> None:
    for sub in sorted(p.rglob("*"), key=lambda x: len(x.parts), reverse=True):
        if sub.is_dir():
            sub.rmdir()
    p.rmdir()


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
