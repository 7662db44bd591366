"""One managed WebSocket connection: connect, heartbeat, pace, reconnect forever.

This is the only module that touches sockets. The protocol decisions are the
session's (sans-I/O); this class moves bytes, keeps time and applies the rules:
capped exponential backoff with full jitter, per-host connection pacing, per-connection
request pacing with heartbeats sent ahead of any backlog.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from picows import WSListener, WSMsgType, WSTransport, ws_connect

from tickwire.model import Connected, Disconnected, Event, VenueError
from tickwire.net.ratelimit import MultiWindow, SlidingWindow, backoff_delay
from tickwire.subscription import Subscription
from tickwire.venues.base import CONTROL, Session, SessionOptions, Venue

if TYPE_CHECKING:
    from tickwire.net.feed import Feed

log = logging.getLogger("tickwire.net")

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CLOSE = WSMsgType.CLOSE


class _Listener(WSListener):
    """picows callbacks -> session; runs on the event loop, never blocks."""

    __slots__ = ("conn", "session", "push", "raw", "close_code", "close_reason")

    def __init__(self, conn: "ManagedConnection", session: Session) -> None:
        self.conn = conn
        self.session = session
        self.push = conn.feed.push
        self.raw = conn.feed.raw_hook
        self.close_code: int | None = None
        self.close_reason = ""

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        recv_ns = time.time_ns()
        mt = frame.msg_type
        if mt is _TEXT or mt is _BINARY:
            payload = frame.get_payload_as_memoryview()
            if self.raw is not None:
                self.raw(self.conn.name, recv_ns, bytes(payload), mt is _BINARY)
            session = self.session
            try:
                events = session.on_frame(payload, mt is _BINARY, recv_ns)
            except Exception as e:  # a dialect bug must not kill the feed
                log.exception("decoder error on %s", self.conn.name)
                events = [session.error("internal", f"decoder error: {e!r}", recv_ns=recv_ns)]
            if events:
                self.push(events)
            if session.outbox:
                self.conn.flush()
        elif mt is _CLOSE:
            self.close_code = int(frame.get_close_code())
            try:
                self.close_reason = frame.get_close_reason() or ""
            except Exception:
                self.close_reason = ""
            self.session.last_rx_ns = recv_ns
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        else:
            self.session.last_rx_ns = recv_ns

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.conn.disconnected.set()


class ManagedConnection:
    """Keeps one set of subscriptions served on one venue endpoint, whatever happens."""

    def __init__(self, feed: "Feed", venue: Venue, endpoint: str, subs: list[Subscription], name: str) -> None:
        self.feed = feed
        self.venue = venue
        self.endpoint = endpoint
        self.name = name
        self.subs: dict[str, Subscription] = {s.topic: s for s in subs}
        self.session: Session | None = None
        self.transport: WSTransport | None = None
        self.listener: _Listener | None = None
        self.disconnected = asyncio.Event()
        self.connected_once = False
        self.reconnects = 0
        self.stopping = False
        self.fatal: VenueError | None = None
        self.url = ""
        self._queue: deque[tuple[int, Any, str]] = deque()  # paced REQUEST frames waiting
        lim = venue.limits
        self._msgs = SlidingWindow(int(lim.max_msgs_per_s), 1.0) if lim.max_msgs_per_s else None
        self._reqs = SlidingWindow(lim.max_requests, lim.requests_window_s) if lim.max_requests else None
        self._task: asyncio.Task | None = None
        self._rand = random.Random()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"tickwire:{self.name}")

    async def stop(self) -> None:
        self.stopping = True
        if self.transport is not None and not self.transport.is_disconnected():
            try:
                self.transport.send_close()
            except Exception:
                pass
            self.transport.disconnect()
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
        return cls(venue=self.venue.name, recv_ns=time.time_ns(), conn=self.name, **kw)

    async def _run(self) -> None:
        feed = self.feed
        opts = feed.options
        attempt = 0
        while not self.stopping:
            base = feed.endpoint_base(self.venue.name)
            self.url = self.venue.url(self.endpoint, base, feed.network)
            await feed.connect_limiter(self.venue, self.url).acquire()
            if self.session is not None:  # streams the venue refused for good are not retried
                for topic in self.session.refused:
                    self.subs.pop(topic, None)
            session = self.venue.new_session(self.endpoint, self.name, feed.session_options(self.venue))
            session.add(self.subs.values())
            self.session = session
            self.disconnected.clear()
            self._queue.clear()
            started = time.monotonic()
            try:
                transport, listener = await ws_connect(
                    lambda: _Listener(self, session), self.url,
                    ssl_context=feed.ssl_context(self.url), proxy=opts.proxy,
                    websocket_handshake_timeout=opts.handshake_timeout_s,
                    enable_auto_ping=False, max_frame_size=opts.max_frame_size,
                    extra_headers=opts.headers or None,
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                delay = backoff_delay(attempt, opts.backoff_base_s, opts.backoff_cap_s, self._rand.random())
                attempt += 1
                feed.push([self._status(Disconnected, reason=f"connect to {self.url} failed: {_describe(e)}",
                                        reconnect_in_s=round(delay, 3))])
                await asyncio.sleep(delay)
                continue
            self.transport, self.listener = transport, listener  # type: ignore[assignment]
            if self.connected_once:
                self.reconnects += 1
            self.connected_once = True
            feed.push([self._status(Connected, url=self.url)])
            session.start(time.time_ns())
            self.flush()
            try:
                await self.disconnected.wait()
            finally:
                if not transport.is_disconnected():
                    transport.disconnect()
            now = time.time_ns()
            events = session.on_close(now)
            lst = self.listener
            reason = session.dead_reason or (
                f"closed by venue: {lst.close_code} {lst.close_reason}".strip() if lst and lst.close_code
                else "connection lost")
            if session.fatal_error is not None:
                self.fatal = session.fatal_error
                events.append(self._status(Disconnected, reason=f"{reason}; not reconnecting: "
                                           f"{session.fatal_error.msg}", code=lst.close_code if lst else None))
                feed.push(events)
                feed.connection_failed(self)
                return
            if time.monotonic() - started > opts.stable_after_s:
                attempt = 0
            delay = backoff_delay(attempt, opts.backoff_base_s, opts.backoff_cap_s, self._rand.random())
            attempt += 1
            events.append(self._status(Disconnected, reason=reason, code=lst.close_code if lst else None,
                                       reconnect_in_s=None if self.stopping else round(delay, 3)))
            feed.push(events)
            self.transport = None
            if self.stopping:
                return
            await asyncio.sleep(delay)

    # -- timers and sending ---------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        """Called by the feed's timer every tick: heartbeats, liveness, paced sends."""
        s = self.session
        t = self.transport
        if s is None or t is None or t.is_disconnected():
            return
        s.on_timer(now_ns)
        if s.dead_reason:
            log.info("%s: %s; reconnecting", self.name, s.dead_reason)
            t.disconnect(graceful=False)
            return
        if s.outbox or self._queue:
            self.flush()

    def flush(self) -> None:
        """Send what the session queued: CONTROL at once, REQUESTs within the limits."""
        s = self.session
        t = self.transport
        if s is None or t is None:
            return
        q = self._queue
        for item in s.outbox:
            if item[0] == CONTROL:
                self._send(t, item[1])
            else:
                q.append(item)
        s.outbox.clear()
        if not q:
            return
        mono = time.monotonic_ns()
        msgs, reqs = self._msgs, self._reqs
        while q:
            # Keep 20% of the per-second budget for heartbeats (BGE counts pongs too).
            if msgs is not None and msgs.wait_ns(mono, reserve=max(1, msgs.count // 5)):
                break
            if reqs is not None and reqs.wait_ns(mono):
                break
            kind, payload, desc = q.popleft()
            if reqs is not None:
                reqs.record(mono)
            self._send(t, payload)

    def _send(self, t: WSTransport, payload: Any) -> None:
        if isinstance(payload, str):
            payload = payload.encode()
        if self._msgs is not None:
            self._msgs.record(time.monotonic_ns())
        t.send(_TEXT, payload)

    # -- subscriptions --------------------------------------------------------------------
    def add(self, subs: list[Subscription]) -> None:
        for s in subs:
            self.subs[s.topic] = s
        if self.session is not None:
            self.session.add(subs)
            self.flush()

    def remove(self, subs: list[Subscription]) -> None:
        for s in subs:
            self.subs.pop(s.topic, None)
        if self.session is not None:
            self.session.remove(subs)
            self.flush()


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}" if type(e).__name__ not in text else text


def default_ssl_context() -> ssl.SSLContext:
    """TLS verified by default (system CA store)."""
    return ssl.create_default_context()
