"""One client WebSocket connection of a venue simulator, and the server's counters.

:class:`SimConnection` (a picows listener: frame reassembly, send helpers, stall/drop,
per-connection periodic tasks), :class:`SimStats` (counters for tests) and
:class:`SlidingWindowCounter` (at most N events per window and key, e.g. new connections per IP).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from picows import WSCloseCode, WSListener, WSMsgType, WSTransport

if TYPE_CHECKING:
    from .venue import VenueSim

__all__ = ["SimConnection", "SimStats", "SlidingWindowCounter"]


class SlidingWindowCounter:
    """At most ``limit`` events per ``window_s`` seconds and key (e.g. new connections per IP)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def count(self, key: str, now: float | None = None) -> int:
        now = self._clock() if now is None else now
        q = self._events.get(key)
        if not q:
            return 0
        edge = now - self.window_s
        while q and q[0] <= edge:
            q.popleft()
        return len(q)

    def allow(self, key: str, now: float | None = None) -> bool:
        """Record one event for ``key`` if the budget allows it; return whether it did."""
        now = self._clock() if now is None else now
        if self.count(key, now) >= self.limit:
            return False
        self._events.setdefault(key, deque()).append(now)
        return True


@dataclass
class SimStats:
    """Counters for tests. ``connections()`` lists the open connections."""

    connections_opened: int = 0
    connections_closed: int = 0
    connections_refused: int = 0
    handshakes_not_found: int = 0
    rest_requests: int = 0
    subscribe_requests: int = 0
    unsubscribe_requests: int = 0
    pings: int = 0
    frames_received: int = 0
    frames_sent: int = 0
    errors_sent: int = 0
    auth_ok: int = 0
    auth_failed: int = 0
    faults_injected: int = 0
    idle_closes: int = 0
    internal_errors: int = 0
    max_args_per_request: int = 0
    request_log: deque = field(default_factory=lambda: deque(maxlen=10_000))
    """``(monotonic time, connection id, path, op, number of args, success)`` per request."""
    last_internal_error: str = ""
    _sim: Any = field(default=None, repr=False, compare=False)

    def connections(self) -> list[dict[str, Any]]:
        """One dict per open connection: id, path, ip, topics (in subscribe order), counters."""
        if self._sim is None:
            return []
        return [c.info() for c in self._sim.connections]

    def as_dict(self) -> dict[str, Any]:
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if not f.name.startswith("_") and f.name != "request_log"
        }
        d["open_connections"] = len(self._sim.connections) if self._sim is not None else 0
        return d


_TEXT = WSMsgType.TEXT


class SimConnection(WSListener):
    """One client WebSocket connection of a venue simulator.

    Venue code uses :meth:`send` (dropped silently while the connection is stalled),
    :meth:`drop`, :meth:`close`, :meth:`stall` and :meth:`every` (a periodic task cancelled
    when the connection ends). ``topics`` maps each subscribed topic (in subscribe order) to its
    :class:`Stream` (or ``None`` for topics without data); ``state`` is free for the venue.
    """

    def __init__(self, sim: "VenueSim", cid: int, path: str, query: dict[str, str], ip: str, group: str):
        super().__init__()
        self.sim = sim
        self.id = cid
        self.path = path
        self.query = query
        self.ip = ip
        self.group = group
        self.transport: WSTransport | None = None
        self._ut: Any = None  # the asyncio transport underneath
        self.open = False
        self.stalled = False
        self._stall_handle: asyncio.TimerHandle | None = None
        now = time.monotonic()
        self.opened_at = now
        self.last_rx = now  # any frame from the client
        self.last_ping = now  # application-level (JSON) ping from the client
        self.last_tx = now  # any data frame to the client
        self.topics: dict[str, Any] = {}
        self.requests = 0
        self.subscribe_requests = 0
        self.unsubscribe_requests = 0
        self.max_args = 0
        self.paused_since: float | None = None
        self.state: dict[str, Any] = {}
        self._tasks: list[asyncio.Task] = []
        self._frag: bytearray | None = None
        self._frag_type: WSMsgType | None = None
        # latency/jitter (options latency_ms, jitter_ms): frames wait in a per-connection queue
        o = sim.opts
        self._latency_s = max(0.0, o.latency_ms) / 1000.0
        self._jitter_s = max(0.0, o.jitter_ms) / 1000.0
        self._delayed = self._latency_s > 0 or self._jitter_s > 0
        self._outq: deque[tuple[float, Any, Any, Any]] = deque()
        self._out_handle: asyncio.TimerHandle | None = None
        self._last_due = 0.0
        self._jrng = random.Random(f"{sim.seed}|{sim.name}|jitter|{cid}") if self._jitter_s > 0 else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} #{self.id} {self.path} topics={len(self.topics)}>"

    # -- picows callbacks ---------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._ut = transport.underlying_transport
        self.open = True
        self.sim._conn_opened(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        was_open = self.open
        self.open = False
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        if self._out_handle is not None:
            self._out_handle.cancel()
            self._out_handle = None
        self._outq.clear()
        for t in self._tasks:
            t.cancel()
        self._tasks.clear()
        if was_open:
            self.sim._conn_closed(self)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt is _TEXT or mt is WSMsgType.BINARY:
            if not frame.fin:
                self._frag = bytearray(frame.get_payload_as_bytes())
                self._frag_type = mt
                return
            payload = frame.get_payload_as_bytes()
        elif mt is WSMsgType.CONTINUATION:
            if self._frag is None:
                return
            self._frag += frame.get_payload_as_bytes()
            if not frame.fin:
                return
            payload, mt = bytes(self._frag), self._frag_type
            self._frag = self._frag_type = None
        elif mt is WSMsgType.PING:
            if not self.stalled:
                if self._delayed:
                    self._enqueue(WSMsgType.PONG, frame.get_payload_as_bytes())
                else:
                    transport.send_pong(frame.get_payload_as_bytes())
            return
        elif mt is WSMsgType.CLOSE:
            if not self.stalled:
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            return
        else:
            return
        self.last_rx = time.monotonic()  # data frames only: protocol pings are not activity
        sim = self.sim
        sim.stats.frames_received += 1
        try:
            if sim.lose_requests and sim.loses(self, payload):
                return
            if mt is _TEXT:
                sim.on_text(self, payload)
            else:
                sim.on_binary(self, payload)
        except Exception as exc:  # a simulator bug must not kill the socket silently
            sim._internal_error(exc)

    def pause_writing(self) -> None:
        self.paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self.paused_since = None

    # -- sending ------------------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Send one TEXT frame unless the connection is stalled or gone. Returns whether sent
        (with ``latency_ms``/``jitter_ms``: queued, and sent after the delay)."""
        if self.stalled or not self.open or self._ut.is_closing():
            return False
        if self.sim.garble_pct:
            return self.send_raw(_TEXT, data)
        if self._delayed:
            self._enqueue(_TEXT, data)
        else:
            self.transport.send(_TEXT, data)  # type: ignore[union-attr]
        return True

    def send_raw(self, msg_type: WSMsgType, data: bytes) -> bool:
        if self.stalled or not self.open or self._ut.is_closing():
            return False
        if self.sim.garble_pct:
            bad = self.sim.garble(self, data, msg_type is WSMsgType.BINARY)
            if bad is not None:
                data, msg_type = bad[0], (WSMsgType.BINARY if bad[1] else _TEXT)
        if self._delayed:
            self._enqueue(msg_type, data)
        else:
            self.transport.send(msg_type, data)  # type: ignore[union-attr]
        return True

    def _enqueue(self, kind: Any, data: Any, extra: Any = None) -> None:
        """Queue one outgoing frame for ``latency + U(0, jitter)`` from now, never before the
        frame queued before it (a connection's frames keep their order)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self._latency_s
        if self._jrng is not None:
            due += self._jrng.random() * self._jitter_s
        if due < self._last_due:
            due = self._last_due
        self._last_due = due
        self._outq.append((due, kind, data, extra))
        if self._out_handle is None:
            self._out_handle = loop.call_at(due, self._flush)

    def _flush(self) -> None:
        self._out_handle = None
        q = self._outq
        t = self.transport
        loop = asyncio.get_running_loop()
        now = loop.time()
        while q and q[0][0] <= now + 0.0002:
            _, kind, data, extra = q.popleft()
            if t is None or t.is_disconnected or not self.open:
                q.clear()
                return
            if self.stalled and kind != "close":
                continue
            if kind == "close":
                t.send_close(data, extra)
                t.disconnect()
                q.clear()
                return
            if kind is WSMsgType.PONG:
                t.send_pong(data)
            else:
                t.send(kind, data)
        if q:
            self._out_handle = loop.call_at(q[0][0], self._flush)

    def drop(self) -> None:
        """Abort the TCP connection now, without a close frame (the client sees 1006)."""
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.disconnect(graceful=False)

    def close(self, code: WSCloseCode = WSCloseCode.GOING_AWAY, reason: bytes = b"") -> None:
        """Send a close frame, then close the socket (after the frames still delayed by
        ``latency_ms``, in order)."""
        if self.transport is not None and not self.transport.is_disconnected:
            if self._delayed and self.open:
                self._enqueue("close", code, reason)
                return
            self.transport.send_close(code, reason)
            self.transport.disconnect()

    def stall(self, seconds: float | None = None) -> None:
        """Stop sending anything (pongs included) for ``seconds`` (``None``: until unstalled)."""
        self.stalled = True
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None
        if seconds is not None:
            self._stall_handle = asyncio.get_running_loop().call_later(seconds, self.unstall)

    def unstall(self) -> None:
        self.stalled = False
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None

    def every(self, interval: float, fn: Callable[[], Any], *, first: float | None = None) -> asyncio.Task:
        """Call ``fn()`` every ``interval`` seconds while the connection is open."""

        async def run() -> None:
            await asyncio.sleep(interval if first is None else first)
            while self.open:
                try:
                    fn()
                except Exception as exc:
                    self.sim._internal_error(exc)
                await asyncio.sleep(interval)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.append(task)
        return task

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "ip": self.ip,
            "group": self.group,
            "topics": list(self.topics),
            "requests": self.requests,
            "subscribe_requests": self.subscribe_requests,
            "unsubscribe_requests": self.unsubscribe_requests,
            "max_args_per_request": self.max_args,
            "stalled": self.stalled,
            "age_s": time.monotonic() - self.opened_at,
            **{k: v for k, v in self.state.items() if isinstance(v, (str, int, float, bool))},
        }
