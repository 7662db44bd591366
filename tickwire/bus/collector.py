"""The collector: a feed plus a publisher of its events (and optionally its raw frames) to the bus.

::

    async with Collector("nats://127.0.0.1:4222", ["okx:books:BTC-USDT"], sim=True) as c:
        await c.run(duration=60)

One bus message per venue frame and stream (the events of one frame of one stream share
``recv_ns``); its ``Nats-Msg-Id`` comes from the venue's content (:mod:`tickwire.bus.codec`), so
a redundant collector publishing the same frame from another line is stored once.

The bus may be down at start or go away: the feed keeps its venue connections, messages wait in
a buffer bounded by ``max_buffer_bytes`` (state ``down``, reported as a :class:`BusState` event
and a stderr line by the CLI), and are published in order when the bus returns (state ``up``).
Beyond the bound new messages are dropped and counted (state ``dropping``). Messages whose
confirmation does not come are sent again (same id: stored once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import msgspec

from tickwire.bus import codec
from tickwire.bus.base import Bus, OutMsg, StreamSpec, connect_bus
from tickwire.bus.codec import BusState, RawRecord, Snapshot
from tickwire.model import BookUpdate, Event, Trade
from tickwire.net.tap import SocketInfo, Tap

log = logging.getLogger("tickwire.bus")


@dataclass
class StreamsConfig:
    """The JetStream streams tickwire uses (names, retention, replication)."""

    prefix: str = "TW"
    md_max_age_s: float = 24 * 3600.0
    md_max_bytes: int = 8 * 1024**3
    raw_max_age_s: float = 24 * 3600.0
    raw_max_bytes: int = 8 * 1024**3
    duplicate_window_s: float = 120.0
    replicas: int | None = None       # None: 3 on a cluster, 1 on a single node

    @property
    def md(self) -> str:
        return f"{self.prefix}_MD"

    @property
    def snap(self) -> str:
        return f"{self.prefix}_SNAP"

    @property
    def raw(self) -> str:
        return f"{self.prefix}_RAW"

    def specs(self, replicas: int) -> list[StreamSpec]:
        r = self.replicas or replicas
        return [
            StreamSpec(self.md, ["md.>", "status.>"], self.md_max_age_s, self.md_max_bytes, -1,
                       self.duplicate_window_s, r),
            StreamSpec(self.snap, ["snap.>"], self.md_max_age_s, -1, 1, self.duplicate_window_s, r),
            StreamSpec(self.raw, ["raw.>"], self.raw_max_age_s, self.raw_max_bytes, -1, self.duplicate_window_s, r),
        ]


async def auto_replicas(bus: Bus) -> int:
    info = await bus.info()
    return 3 if info.get("cluster") else 1


def shard(specs: Iterable[str], index: int, count: int) -> list[str]:
    """The specs collector ``index`` of ``count`` serves (0-based): a stable hash of each
    canonical spec, so every collector computes the same split whatever the order of the list."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"bad shard {index}/{count}: need 0 <= I < N")
    from tickwire.venues import parse

    return [s for s in specs if zlib.crc32(parse(s).spec.encode()) % count == index]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (1-based I, as on the command line) -> (index, count) 0-based."""
    i, sep, n = text.partition("/")
    try:
        ii, nn = int(i), int(n)
    except ValueError:
        raise ValueError(f"bad --shard {text!r}: expected I/N, e.g. 1/2") from None
    if not sep or nn < 1 or not 1 <= ii <= nn:
        raise ValueError(f"bad --shard {text!r}: expected I/N with 1 <= I <= N")
    return ii - 1, nn


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


# --------------------------------------------------------------------------- publisher


@dataclass
class PublisherStats:
    published: int = 0        # messages confirmed stored
    duplicates: int = 0       # ... of which the bus already had (a twin's, or a retry)
    retries: int = 0
    dropped: int = 0          # beyond the buffer bound
    dropped_bytes: int = 0
    peak_pending: int = 0
    peak_pending_bytes: int = 0


class Publisher:
    """Ordered, confirmed, bounded publishing over a :class:`Bus` (see the module docstring)."""

    def __init__(self, bus: Bus, *, max_buffer_bytes: int = 256 * 1024 * 1024, max_inflight: int = 20_000,
                 ack_timeout_s: float = 5.0, report: Callable[[BusState], None] | None = None) -> None:
        self.bus = bus
        self.max_bytes = max_buffer_bytes
        self.max_inflight = max_inflight
        self.ack_timeout_s = ack_timeout_s
        self.report = report
        self.queue: deque[OutMsg] = deque()
        self.inflight: dict[int, OutMsg] = {}
        self.bytes = 0
        self.stats = PublisherStats()
        self.state = "starting"
        self.ready = False  # set once the streams exist (publishing before would only bounce)
        self._serial = 0
        self._timer: asyncio.TimerHandle | None = None
        self._retry_at = 0.0
        bus.on_state = self._on_state
        self._idle = asyncio.Event()
        self._idle.set()

    # -- the caller's side -----------------------------------------------------------------
    def submit(self, m: OutMsg) -> bool:
        n = len(m.data)
        if self.bytes + n > self.max_bytes:
            st = self.stats
            st.dropped += 1
            st.dropped_bytes += n
            if self.state != "dropping":
                self._set_state("dropping", f"buffer full ({self.bytes:,} bytes waiting for the bus)")
            return False
        self._serial += 1
        m.token = (self._serial, m.token)
        self.queue.append(m)
        self.bytes += n
        if len(self.queue) + len(self.inflight) > self.stats.peak_pending:
            self.stats.peak_pending = len(self.queue) + len(self.inflight)
        if self.bytes > self.stats.peak_pending_bytes:
            self.stats.peak_pending_bytes = self.bytes
        self._idle.clear()
        return True

    def pending(self) -> int:
        return len(self.queue) + len(self.inflight)

    def kick(self) -> None:
        """Send what waits, within the in-flight window (call after submitting a batch)."""
        if not self.ready or not self.queue or not self.bus.connected or len(self.inflight) >= self.max_inflight:
            return
        if self._retry_at and time.monotonic() < self._retry_at:
            return
        room = self.max_inflight - len(self.inflight)
        q = self.queue
        batch = []
        now = time.monotonic()
        while q and room:
            m = q.popleft()
            m.sent_at = now
            m.tries += 1
            self.inflight[m.token[0]] = m
            batch.append(m)
            room -= 1
        self.bus.publish(batch, self._on_ack)
        self._arm()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted is confirmed (True) or ``timeout`` passes (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # -- confirmations -----------------------------------------------------------------------
    def _on_ack(self, m: OutMsg, seq: int, dup: bool, err: str) -> None:
        serial = m.token[0]
        if self.inflight.get(serial) is not m:
            return  # a late confirmation of a message already confirmed or sent again
        if err:
            # Keep order: this message and everything sent after it go back to the front.
            self._requeue(from_serial=serial)
            self.stats.retries += 1
            self._retry_at = time.monotonic() + 0.1
            log.debug("publish of %s failed (%s); retrying", m.subject, err)
            asyncio.get_running_loop().call_later(0.11, self.kick)
            return
        del self.inflight[serial]
        self.bytes -= len(m.data)
        st = self.stats
        st.published += 1
        if dup:
            st.duplicates += 1
        cb = m.token[1]
        if cb is not None:
            cb(seq)
        if self.state == "dropping" and self.bytes < self.max_bytes // 2:
            self._set_state("up", "buffer has room again")
        if not self.inflight and not self.queue:
            self._idle.set()
        elif self.queue:
            self.kick()

    def _requeue(self, from_serial: int = 0) -> None:
        back = [m for s, m in self.inflight.items() if s >= from_serial]
        for m in back:
            del self.inflight[m.token[0]]
        back.sort(key=lambda m: m.token[0])
        self.queue.extendleft(reversed(back))

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.ack_timeout_s / 2, self._check_timeouts)

    def _check_timeouts(self) -> None:
        self._timer = None
        if self.inflight:
            oldest = next(iter(self.inflight.values()))
            if time.monotonic() - oldest.sent_at > self.ack_timeout_s:
                self.stats.retries += len(self.inflight)
                self._requeue()
                self.kick()
            self._arm()

    def _on_state(self, up: bool, reason: str) -> None:
        if up:
            self._requeue()  # confirmations of the old link are lost: send again (same ids)
            if self.state != "up":
                self._set_state("up", reason)
            self.kick()
        elif self.state != "down":
            self._set_state("down", reason)

    def _set_state(self, state: str, reason: str) -> None:
        self.state = state
        if self.report is not None:
            self.report(BusState(venue="", recv_ns=time.time_ns(), state=state, pending=self.pending(),
                                 pending_bytes=self.bytes, dropped=self.stats.dropped, reason=reason))


# --------------------------------------------------------------------------- raw frames


class RawTap(Tap):
    """Collects every socket callback of the feed as :class:`RawRecord` per venue."""

    def __init__(self) -> None:
        self.venue_of: dict[str, str] = {}
        self.records: dict[str, list[RawRecord]] = {}
        self.nbytes = 0

    def _add(self, sock: str, rec: RawRecord) -> None:
        venue = self.venue_of.get(sock) or sock.partition("/")[0]
        lst = self.records.get(venue)
        if lst is None:
            lst = self.records[venue] = []
        lst.append(rec)
        self.nbytes += len(rec.payload) + 40

    def opened(self, sock: SocketInfo) -> None:
        self.venue_of[sock.id] = sock.venue
        self._add(sock.id, RawRecord("C", sock.id, sock.opened_ns, info=msgspec.structs.asdict(sock)))

    def frame(self, sock_id: str, recv_ns: int, payload: bytes, binary: bool) -> None:
        self._add(sock_id, RawRecord("F", sock_id, recv_ns, bytes(payload), binary))

    def rest(self, sock_id: str, recv_ns: int, topic: str, body: bytes | None, error: str) -> None:
        self._add(sock_id, RawRecord("R", sock_id, recv_ns, body or b"", False, {"topic": topic, "error": error,
                                                                                 "null": body is None}))

    def switched(self, sock_id: str, old_id: str, ns: int) -> None:
        self._add(sock_id, RawRecord("S", sock_id, ns, info={"replaces": old_id}))

    def closed(self, sock_id: str, ns: int, reason: str) -> None:
        self._add(sock_id, RawRecord("D", sock_id, ns, info={"reason": reason}))

    def take(self) -> dict[str, list[RawRecord]]:
        out, self.records, self.nbytes = self.records, {}, 0
        return out


# --------------------------------------------------------------------------- collector


def _batchable(ev: Any) -> bool:
    """Events a consumer deduplicates exactly by the venue's own key (book deltas by sequence,
    trades by trade id): only these may share a message across frames (``batch_events``)."""
    cls = ev.__class__
    if cls is BookUpdate:
        return not ev.snapshot and bool(ev.seq)
    return cls is Trade and bool(ev.trade_id)


@dataclass
class CollectorStats:
    events: int = 0
    messages: int = 0
    snapshots: int = 0
    raw_messages: int = 0
    status: int = 0
    unsupported: int = 0      # events of a type the bus encoding has no code for (not published)


@dataclass
class Collector:
    """A feed of ``specs`` whose events are published to the bus at ``url``.

    ``batch_events`` (default 1: one message per frame and stream, which redundant collectors
    publish identically, so the bus stores it once): up to this many book deltas or trades of
    one stream per message while the feed has a backlog — far less CPU per event under load;
    twins' batches then differ and the bus may hold an event twice, which consumers drop
    exactly (by venue sequence / trade id, see :class:`~tickwire.bus.consumer.Keeper`).
    ``sim``/``feed_options`` go to :func:`tickwire.stream`. ``snapshot_interval_s``: how often
    each valid book is published on its ``snap.`` subject (0: never). ``raw``: also publish the
    sockets' raw frames (``raw.`` subjects) for archives. ``on_event``: called with every
    status event of the feed and every :class:`BusState` change.
    """

    url: str
    specs: list[str]
    name: str = field(default_factory=default_name)
    raw: bool = False
    snapshot_interval_s: float = 2.0
    max_buffer_bytes: int = 256 * 1024 * 1024
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    sim: Any = False
    feed_options: dict = field(default_factory=dict)
    on_event: Callable[[Event], None] | None = None
    raw_max_bytes: int = 512 * 1024
    batch_events: int = 1

    def __post_init__(self) -> None:
        self.stats = CollectorStats()
        self.bus: Bus | None = None
        self.publisher: Publisher | None = None
        self.feed: Any = None
        self._stream_cm: Any = None
        self._rawtap: RawTap | None = None
        self._last_snap: dict[str, float] = {}
        self._boot = f"{self.name}.{time.time_ns():x}"
        self._raw_n = 0
        self._streams_ready = False
        self._ensure_task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> "Collector":
        import tickwire

        self.bus = connect_bus(self.url, name=f"tickwire-collector-{self.name}")
        self.publisher = Publisher(self.bus, max_buffer_bytes=self.max_buffer_bytes, report=self._report)
        await self.bus.connect(wait=False)
        self._ensure_task = asyncio.get_running_loop().create_task(self._ensure_streams())
        self._stream_cm = tickwire.stream(*self.specs, sim=self.sim, **self.feed_options)
        self.feed = await self._stream_cm.__aenter__()
        if self.raw:
            self._rawtap = RawTap()
            self.feed.add_tap(self._rawtap)
        return self

    async def _ensure_streams(self) -> None:
        """Create the streams once the bus is reachable (publishing waits for it)."""
        assert self.bus is not None and self.publisher is not None
        t0 = time.monotonic()
        while True:
            while not self.bus.connected:
                if self.publisher.state == "starting" and time.monotonic() - t0 > 1.0:
                    self.publisher._on_state(False, f"bus {self.url} not reachable; buffering")
                await asyncio.sleep(0.05)
            try:
                replicas = await auto_replicas(self.bus)
                await self.bus.ensure_streams(self.streams.specs(replicas))
                self._streams_ready = True
                self.publisher.ready = True
                self.publisher.kick()
                return
            except Exception as e:
                log.warning("cannot create the bus streams yet: %s", e)
                await asyncio.sleep(0.5)

    async def close(self, drain_timeout: float = 10.0) -> None:
        if self._stream_cm is not None:
            self._flush_raw()
            cm, self._stream_cm = self._stream_cm, None
            await cm.__aexit__(None, None, None)
        if self.publisher is not None:
            self.publisher.kick()
            await self.publisher.drain(drain_timeout)
        if self._ensure_task is not None:
            self._ensure_task.cancel()
        if self.bus is not None:
            await self.bus.close()

    async def __aenter__(self) -> "Collector":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- the loop ------------------------------------------------------------------------
    async def run(self, duration: float | None = None, stop: asyncio.Event | None = None) -> None:
        """Consume the feed and publish until ``duration`` passes, ``stop`` is set or the feed ends.

        Events are grouped per stream: the events of one frame make one message; with
        ``batch_events`` > 1, consecutive frames of book deltas (with a venue sequence) or of
        trades (with trade ids) of one stream also share a message while the feed has more
        events waiting (under load), up to ``batch_events``. Every group is sent when the
        feed's queue is empty."""
        feed = self.feed
        pub = self.publisher
        assert feed is not None and pub is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + duration if duration else None
        it = feed.__aiter__()
        groups: dict[str, list[Event]] = {}
        stats = self.stats
        name = self.name
        snap_iv = self.snapshot_interval_s
        batch = self.batch_events
        books_seen: dict[str, BookUpdate] = {}
        md_subject = codec.md_subject
        encode_md = codec.encode_md
        codes = codec.CODE_OF
        submit = pub.submit

        def emit(spec: str) -> None:
            g = groups.pop(spec)
            body, mid = encode_md(spec, g, "", name)
            submit(OutMsg(md_subject(spec), body, mid))
            stats.messages += 1

        while True:
            timeout = 0.25
            if end is not None:
                timeout = min(timeout, end - loop.time())
                if timeout <= 0:
                    break
            if stop is not None and stop.is_set():
                break
            try:
                ev = await asyncio.wait_for(it.__anext__(), timeout) if feed.pending() == 0 else await it.__anext__()
            except asyncio.TimeoutError:
                ev = None
            except StopAsyncIteration:
                break
            if ev is not None:
                stats.events += 1
                if ev.is_status:
                    self._status(ev)
                elif ev.__class__ not in codes:
                    stats.unsupported += 1  # an event type the bus encoding has no code for (yet)
                else:
                    spec = ev.stream
                    g = groups.get(spec)
                    if g is not None and g[-1].recv_ns != ev.recv_ns and (
                            batch <= 1 or len(g) >= batch or not _batchable(ev) or not _batchable(g[-1])):
                        emit(spec)
                        g = None
                    if g is None:
                        g = groups[spec] = []
                    g.append(ev)
                    if ev.__class__ is BookUpdate and snap_iv:
                        books_seen[spec] = ev
            if feed.pending() == 0 or ev is None:
                for spec in list(groups):
                    emit(spec)
                if books_seen:
                    self._maybe_snapshots(books_seen)
                if self._rawtap is not None and (self._rawtap.nbytes or ev is None):
                    self._flush_raw()
                if self._streams_ready:
                    pub.kick()
            elif self._rawtap is not None and self._rawtap.nbytes > self.raw_max_bytes:
                self._flush_raw()
        for spec in list(groups):
            emit(spec)
        self._flush_raw()
        if self._streams_ready:
            pub.kick()

    # -- snapshots ------------------------------------------------------------------------
    def _maybe_snapshots(self, books_seen: dict[str, BookUpdate]) -> None:
        """Every ``snapshot_interval_s``, each valid book whose last consumed update is the book's
        current state (the feed's queue is empty) is published once the md message holding that
        update is confirmed (its bus position goes into the snapshot)."""
        now = time.monotonic()
        iv = self.snapshot_interval_s
        for spec, ev in list(books_seen.items()):
            if now - self._last_snap.get(spec, 0.0) < iv:
                continue
            book = ev.book
            if book is None or not book.valid or book.seq != ev.seq or not ev.seq:
                continue
            del books_seen[spec]
            self._last_snap[spec] = now
            snap = Snapshot(codec.FORMAT, spec, ev.seq, 0, book.exch_ns or ev.exch_ns, ev.recv_ns, self.name,
                            [list(x) for x in book.bids.items()], [list(x) for x in book.asks.items()])
            # the md message of this update is the last one submitted for this stream: attach
            self._attach_snapshot(spec, snap)

    def _attach_snapshot(self, spec: str, snap: Snapshot) -> None:
        pub = self.publisher
        assert pub is not None
        subject = codec.md_subject(spec)
        for m in reversed(pub.queue):
            if m.subject == subject:
                m.token = (m.token[0], self._publish_snapshot_cb(snap, m.token[1]))
                return
        for m in reversed(list(pub.inflight.values())):
            if m.subject == subject:
                m.token = (m.token[0], self._publish_snapshot_cb(snap, m.token[1]))
                return
        # already confirmed: the position is unknown here; the next interval takes another one

    def _publish_snapshot_cb(self, snap: Snapshot, prev: Callable[[int], None] | None) -> Callable[[int], None]:
        def on_stored(seq: int) -> None:
            if prev is not None:
                prev(seq)
            snap.md_seq = seq
            assert self.publisher is not None
            self.publisher.submit(OutMsg(codec.snap_subject(snap.stream), codec.encode_snapshot(snap), ""))
            self.stats.snapshots += 1
        return on_stored

    # -- status and raw -------------------------------------------------------------------
    def _status(self, ev: Event) -> None:
        self.stats.status += 1
        if self.on_event is not None:
            self.on_event(ev)
        assert self.publisher is not None
        body = codec.encode_status([ev])
        self.publisher.submit(OutMsg(codec.status_subject(self.name, ev.venue or "-"), body,
                                     f"{self._boot}.st{self.stats.status}"))

    def _report(self, st: BusState) -> None:
        if self.on_event is not None:
            self.on_event(st)
        log.warning("bus %s: %s (%d messages, %d bytes waiting, %d dropped)", st.state, st.reason, st.pending,
                    st.pending_bytes, st.dropped)
        if st.state == "up" and self.publisher is not None:
            self.publisher.submit(OutMsg(codec.status_subject(self.name, "bus"), codec.encode_status([st]), ""))

    def _flush_raw(self) -> None:
        tap = self._rawtap
        if tap is None or not tap.records or self.publisher is None:
            return
        for venue, recs in tap.take().items():
            # split so that a message stays well under the server's max payload (1 MB default)
            chunk: list[RawRecord] = []
            size = 0
            for r in recs:
                chunk.append(r)
                size += len(r.payload) + 64
                if size >= self.raw_max_bytes:
                    self._submit_raw(venue, chunk)
                    chunk, size = [], 0
            if chunk:
                self._submit_raw(venue, chunk)

    def _submit_raw(self, venue: str, recs: list[RawRecord]) -> None:
        self._raw_n += 1
        self.stats.raw_messages += 1
        assert self.publisher is not None
        self.publisher.submit(OutMsg(codec.raw_subject(venue, self.name), codec.encode_raw(recs),
                                     f"{self._boot}.r{self._raw_n}"))
