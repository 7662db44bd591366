"""One managed WebSocket connection: connect, heartbeat, pace, reconnect forever.

This is the only module that touches sockets. The protocol decisions are the
session's (sans-I/O); this class moves bytes, keeps time and applies the rules:
capped exponential backoff with full jitter, per-host connection pacing, per-connection
request pacing with heartbeats sent ahead of any backlog.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import ssl
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import msgspec
from picows import WSListener, WSMsgType, WSTransport, ws_connect

from tickwire.model import Connected, Disconnected, Event, LineSwitch, VenueError
from tickwire.net import hot
from tickwire.net.ratelimit import Pacer, backoff_delay
from tickwire.net.tap import SocketInfo
from tickwire.subscription import Subscription
from tickwire.venues.base import CONTROL, Close, FailOver, Fatal, FetchSnapshot, Send, Session, Venue

if TYPE_CHECKING:
    from tickwire.net.feed import Feed
    from tickwire.net.lines import HostStats, VenueLines

log = logging.getLogger("tickwire.net")

_time_ns = time.time_ns
END_OF_RECORDING = "end of recording"  # the close reason of `tickwire replay --close-at-end` (code 1000)
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CLOSE = WSMsgType.CLOSE


class _PyReader(WSListener):
    """The socket callback, frame -> venue decoder -> events -> feed (pure-Python reference;
    ``_hot.pyx`` has the compiled twin). Runs on the event loop and never blocks."""

    __slots__ = ()

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt is _TEXT or mt is _BINARY:
            recv_ns = _time_ns()
            payload = frame.get_payload_as_bytes()
            self.frames += 1
            self.nbytes += len(payload)
            if self.raw is not None:
                self.raw(self.name, recv_ns, payload, mt is _BINARY)
            try:
                events = self.decode(payload, mt is _BINARY, recv_ns)
            except Exception as e:  # a dialect bug must not kill the feed
                events = self.decoder_failed(e, recv_ns)
            if events:
                if self.meter is not None:
                    self.meter.count(events, recv_ns, self.frames)
                self.push(events)
            if self.session.outbox:
                self.flush_outbox()
        else:
            self.on_control_frame(transport, frame)


class _Listener(hot.compiled.FrameReader if hot.compiled else _PyReader):  # type: ignore[misc]
    """One socket's picows listener: the hot path comes from the reader base class.

    ``name`` is the socket's id (taps see it); ``raw`` is the feed's frame tap (None when
    nobody listens); ``push`` is where events go (the failover merger while switching).
    """

    __slots__ = ("conn", "sock", "close_code", "close_reason", "closed", "transport", "dead_reason", "fatal") + (
        () if hot.compiled else ("session", "decode", "push", "raw", "name", "frames", "nbytes", "meter"))

    def __init__(self, conn: "ManagedConnection", session: Session, sock: SocketInfo,
                 push: Callable[[list[Event]], None]) -> None:
        self.conn = conn
        self.sock = sock
        self.name = sock.id
        self.session = session
        self.decode = session.on_frame     # bound once: this is the hot path
        self.push = push
        self.raw = conn.feed.taps.frame
        self.meter = conn.feed.meter
        self.frames = 0
        self.nbytes = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = asyncio.Event()
        self.transport: WSTransport | None = None
        self.dead_reason = ""                      # why we closed it (the session asked)
        self.fatal: VenueError | None = None       # the session asked never to reconnect

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        # Before any frame of this socket can be read: taps see "opened" first.
        self.sock = msgspec.structs.replace(self.sock, opened_ns=_time_ns())
        self.conn.feed.taps.opened(self.sock)

    def decoder_failed(self, e: Exception, recv_ns: int) -> list[Event]:
        from tickwire.book import BadLevel

        if not isinstance(e, BadLevel):
            log.warning("%s: frame not understood (%s: %s)", self.name, type(e).__name__, str(e)[:200],
                        exc_info=log.isEnabledFor(logging.DEBUG))
        return self.session.frame_failed(e, b"", recv_ns)

    def flush_outbox(self) -> None:
        self.conn.drain(self)

    def on_control_frame(self, transport: WSTransport, frame: Any) -> None:
        self.session.on_traffic(_time_ns())
        if frame.msg_type is _CLOSE:
            self.close_code = int(frame.get_close_code())
            try:
                self.close_reason = frame.get_close_reason() or ""
            except Exception:
                self.close_reason = ""
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed.set()
        self.conn.frames_done += self.frames
        self.conn.bytes_done += self.nbytes
        reason = self.dead_reason or (f"closed by venue: {self.close_code} {self.close_reason}".strip()
                                      if self.close_code else "connection lost")
        self.conn.feed.taps.closed(self.name, _time_ns(), reason)

    def kill(self, reason: str, fatal: VenueError | None = None) -> None:
        """Close this socket at the session's request (no pong, login refused, ...)."""
        if fatal is not None:
            self.fatal = fatal
        if not self.dead_reason:
            self.dead_reason = reason
        if self.transport is not None and not self.transport.is_disconnected:
            log.info("%s: %s", self.name, reason)
            self.transport.disconnect(graceful=False)


class _BoundedReads(asyncio.BufferedProtocol):
    """Hands picows at most ``max_read`` bytes per socket read.

    picows doubles its read buffer whenever a read fills it, so behind a fast sender one
    read grows to megabytes and turns into tens of thousands of events before the consumer
    runs once (seen: 79k events waiting, 15+ MB of cold objects). Bounded reads keep the
    read-ahead control (pause at ``read_ahead`` events) effective and the working set in
    cache: 3.1 -> 2.4 us per Bybit book delta on bench/. The kernel's receive buffer (the
    TCP window) is untouched, so throughput on long links is not limited; a frame larger
    than the bound still arrives whole (picows accumulates it over several reads). Plain
    connections only: see ManagedConnection._open for TLS.
    """

    def __init__(self, inner: Any, max_read: int) -> None:
        self.inner = inner
        self.max_read = max_read
        self.buffer_updated = inner.buffer_updated  # the rest goes straight to picows
        self.connection_made = inner.connection_made
        self.connection_lost = inner.connection_lost
        self.eof_received = inner.eof_received
        self.pause_writing = inner.pause_writing
        self.resume_writing = inner.resume_writing

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.inner.get_buffer(sizehint)[:self.max_read]


class ManagedConnection:
    """Keeps one set of subscriptions served on one venue endpoint, whatever happens.

    Each attempt opens a new socket (its own id, ``<name>.<n>``) with a new session; the
    session's output (:meth:`Session.drain`) is carried out here: frames sent (heartbeats
    at once, requests paced), events pushed, and its actions (close, never reconnect, fail
    over, fetch a REST snapshot).
    """

    def __init__(self, feed: "Feed", venue: Venue, endpoint: str, subs: list[Subscription], name: str,
                 lines: "VenueLines | None" = None, push: Callable[[list[Event]], None] | None = None,
                 group: list["ManagedConnection"] | None = None) -> None:
        self.feed = feed
        self.venue = venue
        self.endpoint = endpoint
        self.name = name
        self.push = push or feed.push           # where this connection's events go (the queue, or the
                                                # hot-standby deduplication: tickwire.net.failover.Redundant)
        self.lines = lines                      # the venue's hosts when it has several (tickwire.net.lines)
        self.host: "HostStats | None" = None    # the line in use
        self.group = group                      # redundancy: every connection serving the same streams
        self.role = "primary"                   # or "standby" (redundancy)
        self.line_switches = 0
        self.split_at = -1e9                    # when the group last split its streams (OKX 4009)
        self._switch_ns: deque[int] = deque()   # when this connection switched lines (hysteresis, cap)
        self._worse_since = 0
        self._rtt_seen = 0
        self._next_check = 0
        self.subs: dict[str, Subscription] = {s.topic: s for s in subs}
        self.session: Session | None = None
        self.transport: WSTransport | None = None
        self.listener: _Listener | None = None
        self.failovers = 0
        self._failover: asyncio.Task | None = None
        self.standby: _Listener | None = None   # the replacement socket during a failover
        self._next_session: Session | None = None  # its session (from before the socket opens)
        self.connected_once = False
        self.reconnects = 0
        self.reconnect_reasons: dict[str, int] = {}  # low-cardinality category -> count (metrics)
        self.frames_done = 0                          # frames and bytes of sockets that ended
        self.bytes_done = 0
        self.sockets = 0
        self.stopping = False
        self.ended = False                      # a replay served this connection's recording to its end
        self.ends_feed = False                  # its fatal error ends the whole feed (a refused login)
        self.fatal: VenueError | None = None
        self.url = ""
        self._queue: deque[Send] = deque()  # paced REQUEST frames waiting
        lim = venue.limits
        if feed.options.limits.get(venue.name):
            lim = dataclasses.replace(lim, **feed.options.limits[venue.name])
        self.limits = lim
        self._slow = 1.0      # > 1 after the venue closed us for sending too fast (see _rate_closed)
        self._pacer = self._make_pacer()
        self._pace_timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._rand = random.Random()

    def _make_pacer(self) -> Pacer:
        lim = self.limits
        frames = [(lim.max_msgs_per_s / self._slow, 1.0)] if lim.max_msgs_per_s else []
        requests = [(lim.max_requests / self._slow, lim.requests_window_s)] if lim.max_requests else []
        return Pacer(frames, requests, lim.margin)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"tickwire:{self.name}")

    async def stop(self) -> None:
        self.stopping = True
        if self._failover is not None:
            self._failover.cancel()
        if self._pace_timer is not None:
            self._pace_timer.cancel()
        for lst in (self.listener, self.standby):
            if lst is not None and lst.transport is not None and not lst.transport.is_disconnected:
                lst.dead_reason = lst.dead_reason or "feed closed"
                try:
                    lst.transport.send_close()
                except Exception:
                    pass
                lst.transport.disconnect()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    @property
    def rtt_ms(self) -> float | None:
        s = self.session
        return s.rtt_ns / 1e6 if s is not None and s.rtt_ns is not None else None

    def _status(self, cls: type[Event], **kw: Any) -> Event:
        """A connection status event, also logged as one line (the CLI shows them on stderr)."""
        ev = cls(venue=self.venue.name, recv_ns=time.time_ns(), conn=self.name, **kw)
        if self.feed.meter is not None:
            self.feed.meter.status(ev)
        extra = {"venue": self.venue.name, "conn": self.name, "event": cls.__name__.lower()}
        if cls is Connected:
            log.info("%s connected to %s", self.name, kw.get("url", ""), extra={**extra, "url": kw.get("url", "")})
        elif cls is Disconnected:
            again = kw.get("reconnect_in_s")
            tail = f"; next attempt in {again:g} s" if again is not None else ""
            log.info("%s disconnected: %s%s", self.name, kw.get("reason", ""), tail,
                     extra={**extra, "reason": kw.get("reason", ""), "code": kw.get("code"), "reconnect_in_s": again})
        return ev

    async def _open(self, session: Session, push: Callable[[list[Event]], None],
                    replaces: str = "", host: "HostStats | None" = None) -> tuple[WSTransport, _Listener]:
        feed = self.feed
        opts = feed.options
        host = host or self.host
        base = (host.base or None) if host is not None else feed.endpoint_base(self.venue.name)
        self.url = self.venue.connect_url(self.endpoint, base, feed.network_of(self.venue.name),
                                          feed.options.venue_options.get(self.venue.name, {}))
        await feed.connect_limiter(self.venue, self.url).acquire()
        self.sockets += 1
        log.info("%s connecting to %s", self.name, self.url,
                 extra={"venue": self.venue.name, "conn": self.name, "event": "connecting", "url": self.url,
                        "attempt": self.sockets})
        sock = SocketInfo(id=f"{self.name}.{self.sockets}", conn=self.name, venue=self.venue.name,
                          endpoint=self.endpoint, url=self.url, streams=tuple(s.spec for s in self.subs.values()),
                          opened_ns=0, replaces=replaces)
        transport, listener = await ws_connect(
            lambda: _Listener(self, session, sock, push), self.url,
            ssl_context=feed.ssl_context(self.url), proxy=opts.proxy,
            websocket_handshake_timeout=opts.handshake_timeout_s,
            enable_auto_ping=False, max_frame_size=opts.max_frame_size,
            extra_headers=opts.headers or None,
        )
        if opts.max_read_bytes and not transport.is_secure:
            # TLS needs no bound: picows' TLS transport (aiofastnet) reads at most 256 KiB per
            # loop cycle and stops at a pause. Wrapping it would also be wrong: its reader then
            # left decrypted bytes unread after a pause until the socket became readable again
            # (a 20 s stall until our next ping; tests/test_tls.py).
            tr = transport.underlying_transport
            tr.set_protocol(_BoundedReads(tr.get_protocol(), opts.max_read_bytes))
        return transport, listener  # type: ignore[return-value]

    def _new_session(self) -> Session:
        if self.session is not None:  # streams the venue refused for good are not retried
            for topic in self.session.refused:
                self.subs.pop(topic, None)
        session = self.venue.new_session(self.endpoint, self.name, self.feed.session_options(self.venue))
        session.add(self.subs.values())
        if self.session is not None:
            session.inherit(self.session)
        return session

    async def _run(self) -> None:
        feed = self.feed
        opts = feed.options
        attempt = 0
        self._failures = 0                   # attempts in a row that served nothing
        self._served_at = time.monotonic()   # when a socket last delivered data (or the start)
        while not self.stopping:
            session = self._new_session()
            self.session = session
            self._queue.clear()
            if self.lines is not None and self.host is None:
                await self.lines.ready(self.endpoint)   # the venue's hosts probed once, at start
                self.host = self._choose_host()
            started = time.monotonic()
            try:
                transport, listener = await self._open(session, self._sink(self.host))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                why = f"connect to {self.url} failed: {_describe(e)}"
                self._count_reason("connect_failed")
                if self._give_up(why):
                    return
                delay = backoff_delay(attempt, opts.backoff_base_s, opts.backoff_cap_s, self._rand.random())
                attempt += 1
                out = [self._status(Disconnected, reason=why, reconnect_in_s=round(delay, 3))]
                if self.lines is not None and self.host is not None:
                    self.host.up = False
                    self._move_after_drop(why, out)
                self.push(out)
                await asyncio.sleep(delay)
                continue
            self.transport, self.listener = transport, listener
            if self.host is not None:
                self.host.up = True
            if self.connected_once:
                self.reconnects += 1
            self.connected_once = True
            self.push([self._status(Connected, url=self.url)])
            session.start(time.time_ns())
            self.drain(listener)
            while True:  # a failover may replace the listener while we wait
                lst = self.listener
                await lst.closed.wait()
                if self._failover is not None:
                    await asyncio.wait([self._failover])
                if self.listener is lst or self.listener is None or self.listener.closed.is_set():
                    break
            lst = self.listener
            session = lst.session
            if not lst.transport or not lst.transport.is_disconnected:
                transport.disconnect()
            events = session.on_close(time.time_ns())
            reason = lst.dead_reason or (
                f"closed by venue: {lst.close_code} {lst.close_reason}".strip() if lst.close_code
                else "connection lost")
            if lst.close_code == 1000 and lst.close_reason == END_OF_RECORDING:
                # `tickwire replay --close-at-end` served this connection's recording to its end:
                # the data is over, not the connection (reconnecting would replay nothing).
                self.ended = True
                events.append(self._status(Disconnected, reason="end of recording (tickwire replay)", code=1000))
                self.push(events)
                self.transport = None
                feed.connection_failed(self)
                return
            fatal_close = self.venue.close_is_fatal(lst.close_code)
            if fatal_close and lst.fatal is None:
                lst.fatal = session.error(lst.close_code, f"{self.venue.name} closed the connection: "
                                          f"{lst.close_code} {fatal_close}", fatal=True, recv_ns=time.time_ns())
                events.append(lst.fatal)
            if lst.fatal is not None:
                self.fatal = lst.fatal
                events.append(self._status(Disconnected, reason=f"{reason}; not reconnecting: "
                                           f"{lst.fatal.msg}", code=lst.close_code))
                self.push(events)
                self.transport = None
                feed.connection_failed(self)
                return
            recently_split = self.group is not None and time.monotonic() - self.split_at < 10.0
            if self.venue.close_means_split(lst.close_code) and len(self.subs) > 1 and not recently_split:
                # Too many channels on this connection (OKX 4009): carry on with half of them
                # here and move the other half to a new connection, instead of looping.
                moved = list(self.subs.values())[len(self.subs) // 2:]
                for sub in moved:
                    self.subs.pop(sub.topic, None)
                feed.split_off(self, moved)
                events.append(session.error(lst.close_code, f"{self.venue.name} closed the connection for carrying "
                                            f"too many channels ({lst.close_code}); moved {len(moved)} streams "
                                            "to a new connection", recv_ns=time.time_ns()))
            rate_closed = self.venue.close_means_slow_down(lst.close_code, lst.close_reason)
            self._count_reason(_reason_category(lst, rate_closed))
            lived = time.monotonic() - started
            # A socket that delivered data for a while served its purpose: the next attempt starts
            # the backoff afresh (a line dropping every few seconds must not push the delays to
            # the cap; a socket that dies at once keeps backing off, so no storm either).
            served = lst.frames > 0 and lived >= 1.0
            if served:
                self._failures = 0
                self._served_at = time.monotonic()
            else:
                self._failures += 1
            if rate_closed:
                self._rate_closed()
            elif served or lived > opts.stable_after_s:
                attempt = 0
                if self._slow > 1.0 and lived > opts.stable_after_s:  # calm again: back to the normal pace, a step at a time
                    self._slow = max(1.0, self._slow / 2)
                    self._pacer = self._make_pacer()
            if not served and self._give_up(reason, events, counted=True):
                return
            delay = backoff_delay(attempt, opts.backoff_base_s, opts.backoff_cap_s, self._rand.random())
            if rate_closed:
                delay = max(delay, 1.0 + self._rand.random())  # the venue's window must pass first
            attempt += 1
            events.append(self._status(Disconnected, reason=reason, code=lst.close_code,
                                       reconnect_in_s=None if self.stopping else round(delay, 3)))
            if self.lines is not None and not self.stopping and not rate_closed:
                # The line dropped: reconnect on the best other one (or the same if it is the only
                # one up); with a hot standby, the standby is now the primary.
                if self._move_after_drop(reason, events) and served:
                    delay = min(delay, 0.05)   # a line that served dropped: the other one at once
            self.push(events)
            self.transport = None
            if self.stopping:
                return
            await asyncio.sleep(delay)

    def _count_reason(self, category: str) -> None:
        self.reconnect_reasons[category] = self.reconnect_reasons.get(category, 0) + 1

    def traffic(self) -> tuple[int, int]:
        """Frames and bytes received on every socket of this connection so far."""
        frames, nbytes = self.frames_done, self.bytes_done
        for lst in (self.listener, self.standby):
            if lst is not None and not lst.closed.is_set():
                frames += lst.frames
                nbytes += lst.nbytes
        return frames, nbytes

    def _give_up(self, why: str, events: list[Event] | None = None, counted: bool = False) -> bool:
        """With max_retries / give_up_after_s set: stop this connection for good when it has
        failed that often in a row, or served nothing for that long (default: never)."""
        opts = self.feed.options
        if not counted:
            self._failures += 1
        over_count = opts.max_retries is not None and self._failures > opts.max_retries
        idle = time.monotonic() - self._served_at
        over_time = opts.give_up_after_s is not None and idle > opts.give_up_after_s
        if not (over_count or over_time):
            return False
        limit = (f"{self._failures} failed attempts (max_retries={opts.max_retries})" if over_count
                 else f"{idle:.0f} s without serving (give_up_after_s={opts.give_up_after_s:g})")
        self.fatal = VenueError(venue=self.venue.name, recv_ns=time.time_ns(), conn=self.name, code="gave-up",
                                msg=f"{self.venue.name}: gave up after {limit}; last: {why}", fatal=True)
        out = list(events or [])
        out += [self.fatal, self._status(Disconnected, reason=f"{why}; not reconnecting: gave up")]
        self.push(out)
        self.transport = None
        self.feed.connection_failed(self)
        return True

    def _rate_closed(self) -> None:
        """The venue closed us for sending too fast: whatever its clock saw, come back slower
        (half the pace each time, down to a quarter) and never in the same pattern."""
        self._slow = min(4.0, self._slow * 2)
        self._pacer = self._make_pacer()
        log.warning("%s: closed by %s for sending too fast; pacing requests at 1/%g of the limit from now on",
                    self.name, self.venue.name, self._slow)

    # -- make-before-break failover ---------------------------------------------------------
    async def _fail_over(self, notice_ns: int, to: "HostStats | None" = None, why: str = "") -> None:
        """Replace the connection without gap or duplicate: the venue announced a close
        (``notice_ns``), or the line is switched to host ``to`` (``why`` says why)."""
        from tickwire.net.failover import Merger

        feed = self.feed
        old_session, old_lst, old_t = self.session, self.listener, self.transport
        assert old_session is not None and old_lst is not None and old_t is not None
        old_host = self.host
        target = to or old_host
        lead = old_session.timers.notice_lead_s
        new_session = self._next_session = self._new_session()
        merger = Merger(self.push, old_session.book_seqs(), {st.sub.spec for st in new_session.streams.values()})
        old_lst.push = merger.from_old
        try:
            transport, listener = await self._open(new_session, merger.from_new, replaces=old_lst.name, host=target)
        except Exception as e:
            old_lst.push = self._sink(old_host)
            self._next_session = None
            if to is not None:
                to.up = False
                self.push([self._status(Disconnected, reason=f"line switch to {to.name} failed: {_describe(e)}; "
                                        f"staying on {old_host.name if old_host else self.url}")])
            else:
                self.push([self._status(Disconnected, reason=f"replacement connection failed: {_describe(e)}; "
                                        "keeping the old one until the venue closes it")])
            self._failover = None
            return
        self.standby = listener
        self.push([self._status(Connected, url=self.url)])
        new_session.start(time.time_ns())
        self.drain(listener)
        # Wait for every stream to join, but not past the venue's close (notice lead time).
        if to is None:
            deadline = notice_ns / 1e9 + max(0.5, lead * 0.8)
        else:
            deadline = time.time() + (self.lines.policy.join_timeout_s if self.lines is not None else 10.0)
        while not merger.ready() and not old_lst.closed.is_set() and not listener.closed.is_set():
            if time.time() >= deadline:
                break
            await asyncio.sleep(min(0.05, self.feed.options.tick_s))
        # What the old socket still has in flight (sent before the new one subscribed) arrives
        # within its one-way delay: give it one more round trip before the old one is dropped,
        # so a stream joined without an overlap (no trade on the new socket yet) loses nothing
        # even when the old line is much slower than the new one.
        linger = self._old_rtt_s(old_host, old_session) * 1.5 + 0.02
        end = min(deadline, time.time() + min(linger, 2.0))
        while time.time() < end and not old_lst.closed.is_set() and not listener.closed.is_set():
            await asyncio.sleep(min(0.02, end - time.time()) if end > time.time() else 0)
        merger.finish(new_session.books())
        old_lst.push = _drop            # nothing more from the old connection reaches the user
        listener.push = self._sink(target)
        feed.taps.switched(listener.name, old_lst.name, time.time_ns())
        self.session, self.listener, self.transport = new_session, listener, transport
        self.standby = self._next_session = None
        self._queue.clear()
        if not old_t.is_disconnected:
            old_lst.dead_reason = ("replaced (line switch)" if to is not None
                                   else "replaced (make-before-break failover)")
            try:
                old_t.send_close()
            except Exception:
                pass
            old_t.disconnect()
        self.failovers += 1
        if to is not None and to is not old_host:
            self.host = to
            self.push([self._switched(old_host, to, why)])
        self._failover = None

    def _old_rtt_s(self, host: "HostStats | None", session: Session) -> float:
        """The round trip of the socket being replaced (p90 of its line's recent samples, else its
        session's last heartbeat), in seconds; 0 when never measured."""
        if host is not None and host.rtt:
            vals = sorted(v for _, v in list(host.rtt)[-8:])
            return vals[min(len(vals) - 1, int(len(vals) * 0.9))] / 1e9
        return (session.rtt_ns or 0) / 1e9

    # -- lines (tickwire.net.lines) -----------------------------------------------------------
    def _sink(self, host: "HostStats | None") -> Callable[[list[Event]], None]:
        """What a socket on ``host`` pushes into: this connection's push, through a lag sampler
        when the venue has lines (a single-host feed keeps the direct path)."""
        if host is None or self.lines is None:
            return self.push
        from tickwire.net.lines import LineSampler

        return LineSampler(host, self.push)

    def _others(self) -> list["ManagedConnection"]:
        return [c for c in (self.group or ()) if c is not self and not c.stopping and c.fatal is None]

    def _choose_host(self, avoid: tuple["HostStats", ...] = ()) -> "HostStats":
        """The best line for this connection: with a hot standby, not the other members' lines
        (unless no other is up)."""
        assert self.lines is not None
        taken = tuple(c.host for c in self._others() if c.host is not None)
        return self.lines.pick(avoid + taken)

    def _switched(self, old: "HostStats | None", new: "HostStats", why: str, category: str = "",
                  now_ns: int = 0) -> LineSwitch:
        """Record a line switch; the LineSwitch status event that tells the user."""
        now = now_ns or time.time_ns()
        self.line_switches += 1
        new.switches_to += 1
        self._switch_ns.append(now)
        self._worse_since = 0
        cat = category or ("dropped" if why.startswith("dropped") else "degraded")
        if self.lines is not None:
            self.lines.switches[cat] = self.lines.switches.get(cat, 0) + 1
        frm = old.name if old is not None else ""
        log.warning("%s: line switch %s -> %s: %s", self.name, frm, new.name, why,
                    extra={"venue": self.venue.name, "conn": self.name, "event": "lineswitch", "from": frm,
                           "to": new.name, "reason": why})
        ev = LineSwitch(venue=self.venue.name, recv_ns=now, conn=self.name, from_host=frm, to_host=new.name,
                        reason=why)
        if self.feed.meter is not None:
            self.feed.meter.status(ev)
        return ev

    def _move_after_drop(self, reason: str, events: list[Event]) -> bool:
        """The socket on the current line ended (or could not connect): with a hot standby the
        other member becomes the primary (no data lost); the next attempt goes to the best
        other line. A LineSwitch is appended to ``events`` when the streams move. True when
        this connection's next attempt is on another host."""
        assert self.lines is not None
        old = self.host
        if self.role == "primary":
            heir = next((c for c in self._others() if c.listener is not None and not c.listener.closed.is_set()),
                        None)
            if heir is not None:
                self.role, heir.role = "standby", "primary"
                now = time.time_ns()
                self.line_switches += 1
                cat = "dropped"
                self.lines.switches[cat] = self.lines.switches.get(cat, 0) + 1
                frm = old.name if old is not None else ""
                to = heir.host.name if heir.host is not None else heir.url
                why = f"dropped ({reason}); the hot standby on {to} carries the streams"
                log.warning("%s: line %s dropped; hot standby %s on %s is the primary now", self.name, frm,
                            heir.name, to, extra={"venue": self.venue.name, "conn": self.name,
                                                  "event": "lineswitch", "from": frm, "to": to, "reason": why})
                ev = LineSwitch(venue=self.venue.name, recv_ns=now, conn=self.name, from_host=frm, to_host=to,
                                reason=why)
                if self.feed.meter is not None:
                    self.feed.meter.status(ev)
                events.append(ev)
        # A hot standby keeps to lines the others do not use (its old one too, once it is back);
        # a lone connection leaves the line that dropped.
        nxt = self._choose_host(() if self.group else ((old,) if old is not None else ()))
        if nxt is old:
            return False
        self.host = nxt
        if self.role == "primary" and not self.group:
            events.append(self._switched(old, nxt, f"dropped ({reason})", "dropped"))
        return True

    def _line_tick(self, now_ns: int) -> None:
        """Heartbeat round trips of the line in use; every 250 ms: is another line better?"""
        lst = self.listener
        host = self.host
        if lst is None or host is None or lst.closed.is_set() or self.lines is None:
            return
        s = lst.session
        if not s.pong_pending and s.rtt_ns is not None and s.ping_sent_ns != self._rtt_seen:
            self._rtt_seen = s.ping_sent_ns
            host.add_rtt(now_ns, s.rtt_ns)
        pol = self.lines.policy
        if (s.client_pings and s.started_ns and not s.pong_pending and not s.closing and lst.transport is not None
                and now_ns - max(s.ping_sent_ns, s.started_ns) >= pol.ping_s * 1e9):
            s.ping_sent_ns = now_ns
            s.pong_pending = True
            s.send_control(s.ping_payload(), "ping")
            self.drain(lst)
        if now_ns < self._next_check:
            return
        self._next_check = now_ns + 250_000_000
        if self._failover is not None or self.stopping:
            return
        if self.group is None:
            self._consider_switch(now_ns)
        else:
            self._rebalance(now_ns)

    def _rebalance(self, now_ns: int) -> None:
        """Redundancy: a standby that had to share the primary's line (its own was down) moves
        back to a free line once a probe finds it up again."""
        lines, host = self.lines, self.host
        assert lines is not None and host is not None
        pol = lines.policy
        for h in lines.hosts:
            if h is not host and now_ns - h.newest_ns() > pol.reprobe_s * 1e9:
                lines.probe_later(h)
        if self.role != "standby" or not any(c.host is host for c in self._others()):
            return
        taken = tuple(c.host for c in self._others() if c.host is not None)
        free = [h for h in lines.ranked(taken + (host,)) if h.up]
        sw = self._switch_ns
        if free and not (sw and now_ns - sw[-1] < pol.hold_s * 1e9):
            self._switch_ns.append(now_ns)
            self.host = free[0]
            lst = self.listener
            if lst is not None:
                lst.kill(f"moving the hot standby to its own line {free[0].name}")

    def _consider_switch(self, now_ns: int) -> None:
        lines = self.lines
        cur = self.host
        assert lines is not None and cur is not None
        pol = lines.policy
        alts = [h for h in lines.ranked((cur,)) if h.up]
        for h in alts:  # what is not in use is measured by probes, kept fresh
            if now_ns - h.newest_ns() > pol.reprobe_s * 1e9:
                lines.probe_later(h)
        if not alts:
            self._worse_since = 0
            return
        best = alts[0]
        v = cur.view(now_ns, pol)
        mine = v["rtt"]
        other = lines.score(best)
        why = ""
        if mine is not None and other < float("inf") and mine > other * (1 + pol.margin) + pol.margin_ms:
            why = f"round trip {mine:.1f} ms on {cur.name} vs {other:.1f} ms on {best.name}"
        else:
            # The data itself got slower (the venue's side of this line) while the round trip did not.
            lag_now, lag_before = v["lag"], v["lag_before"]
            if lag_now is not None and lag_before is not None:
                not_worse = mine is None or other <= mine * (1 + pol.margin) + pol.margin_ms
                if lag_now > lag_before * (1 + pol.margin) + pol.margin_ms and not_worse:
                    why = f"data lag {lag_now:.1f} ms on {cur.name} vs {lag_before:.1f} ms before"
        if mine is not None and not why:
            base = v["rtt_base"]
            if base is not None and mine > base * (1 + pol.margin) + pol.margin_ms:
                for h in alts:  # looks worse than it was: measure the others now
                    if now_ns - h.newest_ns() > pol.degrade_for_s * 1e9:
                        lines.probe_later(h)
        if not why:
            self._worse_since = 0
            return
        if not self._worse_since:
            self._worse_since = now_ns
            return
        if now_ns - self._worse_since < pol.degrade_for_s * 1e9:
            return
        sw = self._switch_ns
        while sw and now_ns - sw[0] > 3600e9:
            sw.popleft()
        if (sw and now_ns - sw[-1] < pol.hold_s * 1e9) or len(sw) >= pol.max_switches_per_hour:
            return
        self._worse_since = 0
        self._failover = asyncio.get_running_loop().create_task(self._fail_over(now_ns, to=best, why=why))

    # -- timers, session output, sending ------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        """Called by the feed's timer every tick: heartbeats, liveness, due resyncs; lines."""
        if self.lines is not None:
            self._line_tick(now_ns)
        for lst in (self.listener, self.standby):
            if lst is not None and not lst.closed.is_set():
                lst.session.on_timer(now_ns)
                if lst.session.outbox:
                    self.drain(lst)
        lst = self.listener
        if lst is not None and lst.fatal is None and not lst.closed.is_set():
            s = lst.session
            if s.refused and not s.streams:
                # The venue refused every stream of this connection for good: nothing to wait for.
                # the first with the venue's answer (each stream's own is in its VenueError event)
                pairs = sorted((self.subs[t].spec if t in self.subs else t, t) for t in s.refused)
                refused = [spec for spec, _ in pairs]
                why = s.refused_why.get(pairs[0][1])
                refused[0] += f" ({why})" if why else ""
                named = ", ".join(refused[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
                lst.kill("every stream refused", fatal=VenueError(
                    venue=self.venue.name, recv_ns=now_ns, conn=self.name, code="refused", fatal=True,
                    msg=f"nothing left to stream on {self.name}: {self.venue.name} refused {named}"))

    def drain(self, lst: _Listener) -> None:
        """Carry out what the socket's session asked for (the contract's one way out)."""
        items = lst.session.drain()
        if not items:
            return
        events: list[Event] = []
        sends = False
        for it in items:
            t = type(it)
            if t is Send:
                if it.priority == CONTROL:
                    if lst.transport is not None:
                        self._send(lst.transport, it.payload)
                else:
                    if lst is self.listener:
                        self._queue.append(it)
                        sends = True
                    elif lst.transport is not None:  # a standby during failover: no pacing queue of its own
                        self._send(lst.transport, it.payload)
            elif t is Close:
                lst.kill(it.reason)
            elif t is Fatal:
                # The session can never succeed (login refused, no credentials): the run cannot
                # do what was asked, so the whole feed ends (FeedError, exit 3), public streams too.
                self.ends_feed = True
                lst.kill(f"{it.error.msg}", fatal=it.error)
            elif t is FailOver:
                if self._failover is None and not self.stopping and lst is self.listener:
                    self._failover = asyncio.get_running_loop().create_task(self._fail_over(it.notice_ns))
            elif t is FetchSnapshot:
                asyncio.get_running_loop().create_task(self._rest_snapshot(lst, it))
            else:
                events.append(it)
        if events:
            if lst.meter is not None:
                lst.meter.statuses(events)
            lst.push(events)
        if sends:
            self.flush()

    async def _rest_snapshot(self, lst: _Listener, req: FetchSnapshot) -> None:
        """Fetch a book snapshot over REST for a venue that sent none on the socket."""
        from tickwire.net.http import get_json

        feed = self.feed
        base = feed.endpoint_base(self.venue.name)
        if self.host is not None and self.lines is not None:
            base = (self.host.base or None) if self.lines.custom else None  # REST follows a listed line
        url = self.venue.rest_base(base, feed.network_of(self.venue.name)) + req.path
        body: Any = None
        error = ""
        try:
            body = await get_json(url, timeout_s=10.0, proxy=feed.options.proxy, ssl_context=feed.ssl_context(url))
        except Exception as e:
            error = _describe(e)
        if lst.closed.is_set():
            return
        recv_ns = time.time_ns()
        feed.taps.rest(lst.name, recv_ns, req.topic, None if body is None else msgspec.json.encode(body), error)
        events = lst.session.on_rest_snapshot(req.topic, body, recv_ns, error)
        if events:
            lst.push(events)
        if lst.session.outbox:
            self.drain(lst)

    def flush(self) -> None:
        """Send queued requests as the pacer allows; the rest when it allows (a timer)."""
        lst = self.listener
        if lst is None or lst.transport is None or lst.transport.is_disconnected:
            return
        q = self._queue
        pacer = self._pacer
        t = lst.transport
        while q:
            now = time.monotonic_ns()
            wait = pacer.wait_ns(now)
            if wait > 0:
                if self._pace_timer is None:
                    self._pace_timer = asyncio.get_running_loop().call_later(wait / 1e9, self._paced)
                return
            pacer.record(now)
            self._send(t, q.popleft().payload)

    def _paced(self) -> None:
        self._pace_timer = None
        self.flush()

    def _send(self, t: WSTransport, payload: bytes) -> None:
        self._pacer.sent_any(time.monotonic_ns())
        t.send(_TEXT, payload)

    # -- subscriptions --------------------------------------------------------------------
    def _live_sessions(self) -> list[tuple[Session, _Listener | None]]:
        """The session in service and, during a failover, the replacement's (both must change)."""
        out: list[tuple[Session, _Listener | None]] = []
        if self.session is not None:
            out.append((self.session, self.listener))
        if self._next_session is not None and self._next_session is not self.session:
            out.append((self._next_session, self.standby))
        return out

    def add(self, subs: list[Subscription]) -> None:
        for s in subs:
            self.subs[s.topic] = s
        for session, lst in self._live_sessions():
            session.add(subs)
            if lst is not None:
                self.drain(lst)

    def remove(self, subs: list[Subscription]) -> None:
        for s in subs:
            self.subs.pop(s.topic, None)
        for session, lst in self._live_sessions():
            session.remove(subs)
            if lst is not None:
                self.drain(lst)


def _reason_category(lst: _Listener, rate_closed: bool) -> str:
    """Why a socket ended, in a few words that make a low-cardinality metrics label."""
    if rate_closed:
        return "rate_limited"
    r = lst.dead_reason
    if r:
        for prefix, cat in (("no pong", "no_pong"), ("no frame", "silent"), ("no login reply", "login_timeout"),
                            ("login", "login_failed"), ("feed closed", "closed_by_us"), ("replaced", "failover")):
            if r.startswith(prefix):
                return cat
        return "session"
    return "closed_by_venue" if lst.close_code else "connection_lost"


def _drop(events: list[Event]) -> None:
    """Sink for a connection whose streams were handed over."""


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if type(e).__name__ not in text else text


def default_ssl_context() -> ssl.SSLContext:
    """TLS verified by default (system CA store)."""
    return ssl.create_default_context()
