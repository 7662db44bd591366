"""The collector: a feed plus a publisher of its events (and optionally its raw frames) to the bus.

::

    async with Collector("nats://127.0.0.1:4222", ["okx:books:BTC-USDT"], sim=True) as c:
        await c.run(duration=60)

Messages. Book deltas and trades of one stream travel in chunks: a chunk ends after an event
whose venue key — a delta's sequence, a trade's exchange timestamp — is a multiple of a prime
near ``chunk_events`` (64: chunks of ~64 events), or after ``4 * chunk_events`` events, or when
the feed has nothing more waiting (nothing ever waits for later events: no added latency). Other
events (venue snapshots, tickers, candles...) travel one message per venue frame and stream.
A message's ``Nats-Msg-Id`` comes from the venue's content (:mod:`tickwire.bus.codec`), never
from local time. So a redundant collector publishing the same events from another line makes
the same messages, stored once: always when both are idle between frames (one message per
frame each) or both have a backlog (the same cuts); when only one had an idle moment, the
chunks it cut early differ until the next key that ends a chunk, both are stored, and consumers
drop the second copy of each event exactly (by venue sequence / trade id).

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
    """Ordered, confirmed, bounded publishing over a :class:`Bus` (see the module docstring).

    ``submit`` queues; ``kick`` hands what waits to the bus in one call (the owner calls it once
    per loop iteration, confirmations call it once per bulk of confirmations); confirmations
    come back in bulk (:meth:`_on_acks`). At most ``max_inflight`` messages and
    ``max_inflight_bytes`` are unconfirmed at a time."""

    def __init__(self, bus: Bus, *, max_buffer_bytes: int = 256 * 1024 * 1024, max_inflight: int = 20_000,
                 max_inflight_bytes: int = 32 * 1024 * 1024, ack_timeout_s: float = 5.0,
                 report: Callable[[BusState], None] | None = None) -> None:
        self.bus = bus
        self.max_bytes = max_buffer_bytes
        self.max_inflight = max_inflight
        self.max_inflight_bytes = max_inflight_bytes
        self.ack_timeout_s = ack_timeout_s
        self.report = report
        self.queue: deque[OutMsg] = deque()
        self.inflight: dict[int, OutMsg] = {}
        self.inflight_bytes = 0
        self.bytes = 0
        self.stats = PublisherStats()
        self.state = "starting"
        self.ready = False  # set once the streams exist (publishing before would only bounce)
        self._serial = 0
        self._timer: asyncio.TimerHandle | None = None
        self._retry_at = 0.0
        self._retry_handle: asyncio.TimerHandle | None = None
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
        m.serial = self._serial
        q = self.queue
        q.append(m)
        self.bytes += n
        st = self.stats
        if self.bytes > st.peak_pending_bytes:
            st.peak_pending_bytes = self.bytes
        pending = len(q) + len(self.inflight)
        if pending > st.peak_pending:
            st.peak_pending = pending
        if self._idle.is_set():
            self._idle.clear()
        return True

    def pending(self) -> int:
        return len(self.queue) + len(self.inflight)

    def kick(self) -> None:
        """Send what waits, within the in-flight window, in one call to the bus."""
        q = self.queue
        if not q or not self.ready or not self.bus.connected:
            return
        inflight = self.inflight
        room = self.max_inflight - len(inflight)
        room_bytes = self.max_inflight_bytes - self.inflight_bytes
        if room <= 0 or room_bytes <= 0:
            return
        if self._retry_at:
            if time.monotonic() < self._retry_at:
                return
            self._retry_at = 0.0
        now = time.monotonic()
        batch = []
        sent_bytes = 0
        while q and room > 0 and sent_bytes < room_bytes:
            m = q.popleft()
            m.sent_at = now
            m.tries += 1
            inflight[m.serial] = m
            batch.append(m)
            sent_bytes += len(m.data)
            room -= 1
        self.inflight_bytes += sent_bytes
        self.bus.publish(batch, self._on_acks)
        self._arm()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted is confirmed (True) or ``timeout`` passes (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    # -- confirmations -----------------------------------------------------------------------
    def _on_acks(self, results: list[tuple[OutMsg, int, bool, str]]) -> None:
        inflight = self.inflight
        st = self.stats
        freed = 0
        stored = dups = 0
        failed: OutMsg | None = None
        for m, seq, dup, err in results:
            serial = m.serial
            if inflight.get(serial) is not m:
                continue  # a late confirmation of a message already confirmed or sent again
            if err:
                if failed is None or serial < failed.serial:
                    failed = m
                log.debug("publish of %s failed (%s); retrying", m.subject, err)
                continue
            del inflight[serial]
            freed += len(m.data)
            stored += 1
            if dup:
                dups += 1
            cb = m.token
            if cb is not None:
                cb(seq)
        self.bytes -= freed
        self.inflight_bytes -= freed
        st.published += stored
        st.duplicates += dups
        if failed is not None:
            # Keep order: the failed message and everything sent after it go back to the front.
            self._requeue(from_serial=failed.serial)
            st.retries += 1
            self._retry_at = time.monotonic() + 0.1
            if self._retry_handle is None:
                self._retry_handle = asyncio.get_running_loop().call_later(0.11, self._retry)
            return
        if self.state == "dropping" and self.bytes < self.max_bytes // 2:
            self._set_state("up", "buffer has room again")
        if not inflight and not self.queue:
            self._idle.set()
        elif self.queue:
            self.kick()

    def _retry(self) -> None:
        self._retry_handle = None
        self.kick()

    def _requeue(self, from_serial: int = 0) -> None:
        back = [m for s, m in self.inflight.items() if s >= from_serial]
        for m in back:
            del self.inflight[m.serial]
            self.inflight_bytes -= len(m.data)
        back.sort(key=lambda m: m.serial)
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


def chunk_modulus(k: int) -> int:
    """The prime a venue key is taken modulo to end chunks of ``k`` events on average: the
    smallest prime >= ``k`` (a prime, so that sequences that step by 2, 10 or 1000 still end
    chunks regularly)."""
    p = max(2, k)
    while any(p % d == 0 for d in range(2, int(p ** 0.5) + 1)):
        p += 1
    return p


def chunk_key(ev: Any) -> int | None:
    """The venue key whose value modulo :func:`chunk_modulus` ends a chunk (0: a chunk ends
    after this event); None when ``ev`` has no key a consumer deduplicates it by (it is never
    chunked). A function of the venue's content only, the same in every collector: a book
    delta's venue sequence, a trade's exchange timestamp. (The collector's loop inlines this;
    this is the reference.)"""
    cls = ev.__class__
    if cls is BookUpdate:
        return ev.seq if ev.seq and not ev.snapshot else None
    if cls is Trade and ev.trade_id:
        return ev.exch_ns
    return None


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

    Messages (see the module docstring): book deltas and trades of one stream are cut into
    chunks at points given by the venue's content — after an event whose venue key
    (:func:`chunk_key`) is a multiple of :func:`chunk_modulus` (``chunk_events``: 64, chunks of
    ~64 events), or after ``4 * chunk_events`` events — and whenever the feed has nothing more
    waiting (a chunk never waits for later events: no added latency). Redundant collectors that
    see the same events cut them at the same points, so their messages have the same ids and
    the bus stores them once; where their cuts differ (an idle moment in one only), both
    messages are stored and consumers drop the second copy of each event exactly (by venue
    sequence / trade id, see :class:`~tickwire.bus.consumer.Keeper`). Other events (venue
    snapshots, tickers, candles...) travel one message per venue frame. ``chunk_events=1``: one
    message per frame for every event (the earlier behaviour). ``batch_events`` > 1 replaces
    the length bound ``4 * chunk_events`` (``tickwire collect --batch N``).
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
    chunk_events: int = 64
    max_message_bytes: int = 512 * 1024

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

        # the feed first: a bad spec or option fails before anything touches the bus (its events
        # are read only by run(), so none is missed meanwhile)
        cm = tickwire.stream(*self.specs, sim=self.sim, **self.feed_options)
        self.feed = await cm.__aenter__()
        self._stream_cm = cm
        self.bus = connect_bus(self.url, name=f"tickwire-collector-{self.name}")
        self.publisher = Publisher(self.bus, max_buffer_bytes=self.max_buffer_bytes, report=self._report)
        await self.bus.connect(wait=False)
        self._ensure_task = asyncio.get_running_loop().create_task(self._ensure_streams())
        if getattr(self.feed, "metrics", None) is not None:  # metrics_port=: the bus side on the same /metrics
            from tickwire.metrics import CollectorMetrics

            self.feed.metrics.add_collector(CollectorMetrics(self))
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
                    why = getattr(self.bus, "last_error", None)
                    self.publisher._on_state(False, f"bus {self.url} not reachable{f' ({why})' if why else ''}; "
                                                    "buffering")
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

    async def close(self, drain_timeout: float = 10.0, abort: asyncio.Event | None = None) -> None:
        """Stop the feed, then wait up to ``drain_timeout`` for the bus to confirm what is buffered;
        ``abort`` being set (a second Ctrl-C) gives up the wait at once."""
        if self._stream_cm is not None:
            self._flush_raw()
            cm, self._stream_cm = self._stream_cm, None
            await cm.__aexit__(None, None, None)
        if self.publisher is not None:
            self.publisher.kick()
            if self.publisher.pending() and not (self.bus is not None and self.bus.connected):
                log.warning("stopping: waiting up to %g s for the bus to take %d unconfirmed messages%s",
                            drain_timeout, self.publisher.pending(),
                            " (Ctrl-C again to give them up)" if abort is not None else "")
            drain = asyncio.ensure_future(self.publisher.drain(drain_timeout))
            waits = [drain] if abort is None else [drain, asyncio.ensure_future(abort.wait())]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
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

        Book deltas and trades of a stream are cut into chunks at points given by their venue
        keys (:func:`chunk_key`), at most ``4 * chunk_events`` (or ``batch_events``) events
        each; other events make one message per venue frame and stream. Whatever is open is
        sent as soon as the feed has nothing more waiting; everything submitted in one pass is
        handed to the bus in one write."""
        feed = self.feed
        pub = self.publisher
        assert feed is not None and pub is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + duration if duration else None
        it = feed.__aiter__()
        anext = it.__anext__
        pending = feed.pending
        chunks: dict[str, list[Event]] = {}   # open chunks of book deltas / trades, per stream
        frames: dict[str, list[Event]] = {}   # open frame groups of other events, per stream
        stats = self.stats
        name = self.name
        snap_iv = self.snapshot_interval_s
        k = self.chunk_events
        cap = self.batch_events if self.batch_events > 1 else 4 * max(1, k)
        chunking = k > 1 or self.batch_events > 1
        # a chunk ends after an event whose key is a multiple of this prime (chunk_key); with
        # chunk_events <= 1 and --batch N only the length bound N ends a chunk
        mod = chunk_modulus(k) if k > 1 else 1 << 62
        books_seen: dict[str, BookUpdate] = {}
        subjects: dict[str, str] = {}
        encode_md = codec.encode_md
        encode_rows = codec.encode_rows
        codes = codec.CODE_OF
        submit = pub.submit
        BU, TR = BookUpdate, Trade
        rawtap = self._rawtap
        burst_max = 4096
        max_bytes = self.max_message_bytes
        next_snaps = 0.0

        def emit_chunk(spec: str) -> None:
            rows, recv = chunks.pop(spec)
            publish_rows(spec, subjects.get(spec) or subjects.setdefault(spec, codec.md_subject(spec)), rows, recv)

        def publish_rows(spec: str, subject: str, rows: list, recv: list) -> None:
            """One message of these rows; a chunk too big for one (huge book deltas) goes as
            halves, a function of the content too."""
            body, mid = encode_rows(spec, rows, recv, "", name, True)
            if len(body) > max_bytes and len(rows) > 1:
                h = len(rows) // 2
                publish_rows(spec, subject, rows[:h], recv[:h])
                publish_rows(spec, subject, rows[h:], recv[h:])
                return
            submit(OutMsg(subject, body, mid))
            stats.messages += 1

        def emit_frame(spec: str) -> None:
            g = frames.pop(spec)
            body, mid = encode_md(spec, g, "", name)
            subject = subjects.get(spec) or subjects.setdefault(spec, codec.md_subject(spec))
            submit(OutMsg(subject, body, mid))
            stats.messages += 1

        while True:
            timeout = 0.25
            if end is not None:
                timeout = min(timeout, end - loop.time())
                if timeout <= 0:
                    break
            if stop is not None and stop.is_set():
                break
            left = pending()
            try:
                if left:
                    ev = await anext()
                else:
                    async with asyncio.timeout(timeout):  # a timer handle, not a task per wait
                        ev = await anext()
            except TimeoutError:
                ev = None
            except StopAsyncIteration:
                break
            n = 0
            done = False
            if ev is not None:
                left = min(left, burst_max) or 1
                n = left
            while ev is not None:  # this event and every one already waiting (the backlog)
                cls = ev.__class__
                # Book deltas and trades: the row (codec.event_row, inline) joins the stream's
                # chunk, which ends after an event whose venue key is 0 modulo `mod` (chunk_key)
                if cls is BU:
                    if snap_iv:
                        books_seen[ev.stream] = ev
                    seq = ev.seq
                    if seq and chunking and not ev.snapshot:
                        spec = ev.stream
                        if frames and spec in frames:
                            emit_frame(spec)
                        c = chunks.get(spec)
                        if c is None:
                            c = chunks[spec] = ([], [])
                        rows = c[0]
                        vl = ev.venue_levels
                        rows.append((2, ev.exch_ns, ev.bids, ev.asks, False, seq, ev.prev_seq) if vl is None else
                                    (2, ev.exch_ns, ev.bids, ev.asks, False, seq, ev.prev_seq, vl))
                        c[1].append(ev.recv_ns)
                        if not seq % mod or len(rows) >= cap:
                            emit_chunk(spec)
                        cls = None
                elif cls is TR:
                    tid = ev.trade_id
                    if tid and chunking:
                        spec = ev.stream
                        if frames and spec in frames:
                            emit_frame(spec)
                        c = chunks.get(spec)
                        if c is None:
                            c = chunks[spec] = ([], [])
                        rows = c[0]
                        ts = ev.exch_ns
                        rows.append((1, ts, ev.price, ev.size, ev.side, tid, ev.seq))
                        c[1].append(ev.recv_ns)
                        if not ts % mod or len(rows) >= cap:
                            emit_chunk(spec)
                        cls = None
                elif ev.is_status:
                    self._status(ev)
                    cls = None
                elif cls not in codes:
                    stats.unsupported += 1  # an event type the bus encoding has no code for (yet)
                    cls = None
                if cls is not None:  # one message per venue frame and stream
                    spec = ev.stream
                    if chunks and spec in chunks:
                        emit_chunk(spec)
                    g = frames.get(spec)
                    if g is not None and g[-1].recv_ns != ev.recv_ns:
                        emit_frame(spec)
                        g = None
                    if g is None:
                        frames[spec] = [ev]
                    else:
                        g.append(ev)
                left -= 1
                if not left:
                    if n >= burst_max:
                        break
                    left = min(pending(), burst_max)
                    if not left:
                        break
                    n += left
                    if rawtap is not None and rawtap.nbytes > self.raw_max_bytes:
                        self._flush_raw()
                try:
                    ev = await anext()
                except StopAsyncIteration:
                    n -= left
                    done = True
                    break
            stats.events += n
            backlog = n >= burst_max and pending()
            if not backlog:
                for spec in list(chunks):
                    emit_chunk(spec)
                for spec in list(frames):
                    emit_frame(spec)
                if books_seen and loop.time() >= next_snaps:
                    self._maybe_snapshots(books_seen)
                    next_snaps = loop.time() + min(0.25, snap_iv / 4)
                if rawtap is not None and (rawtap.nbytes or ev is None):
                    self._flush_raw()
            elif rawtap is not None and rawtap.nbytes > self.raw_max_bytes:
                self._flush_raw()
            if self._streams_ready:
                pub.kick()
            if done:
                break
            if backlog:
                await asyncio.sleep(0)  # a long backlog: let confirmations and the sockets in
        for spec in list(chunks):
            emit_chunk(spec)
        for spec in list(frames):
            emit_frame(spec)
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
                m.token = self._publish_snapshot_cb(snap, m.token)
                return
        for m in reversed(list(pub.inflight.values())):
            if m.subject == subject:
                m.token = self._publish_snapshot_cb(snap, m.token)
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
        log.log(logging.INFO if st.state == "up" else logging.WARNING, "bus %s: %s; %s messages (%s bytes) waiting, "
                "%s dropped", st.state, st.reason, f"{st.pending:,}", f"{st.pending_bytes:,}", f"{st.dropped:,}",
                extra={"event": "bus", "state": st.state, "reason": st.reason, "pending": st.pending,
                       "dropped": st.dropped})
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
