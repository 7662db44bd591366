"""The feed's event buffer: socket readers push, the ``async for`` consumer takes.

Readers never wait for the consumer (heartbeats must keep flowing). Past ``read_ahead``
waiting events the feed pauses socket reads (``on_pause``), for at most ``max_pause_s``;
past ``max_buffer`` new market-data events are dropped and counted in one
:class:`~tickwire.model.Overflow`; status events are always kept.

This module is the reference implementation. ``_hot.pyx`` is its compiled twin (same
attributes, same behaviour), used when the extension is built; :mod:`tickwire.net.hot`
picks one. The cold paths are shared: :func:`wait_next`, :func:`push_overflowing`, :func:`wake`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Callable

from tickwire.model import Event, Overflow


class EventQueue:
    __slots__ = ("buf", "waiter", "overflow", "max_buffer", "room", "high", "high0", "low", "paused", "rearm",
                 "closed", "error", "on_pause", "on_resume", "meter", "dropped", "taken")

    def __init__(self, max_buffer: int, read_ahead: int, on_pause: Callable[[], None],
                 on_resume: Callable[[bool], None]) -> None:
        self.buf: deque[Event] = deque()
        self.waiter: asyncio.Future | None = None
        self.overflow: Overflow | None = None
        self.max_buffer = max_buffer
        self.room = max_buffer - 1024  # a frame yields at most ~1k events; exact check beyond
        self.high0 = self.high = read_ahead
        self.low = read_ahead // 4
        self.paused = False
        self.rearm = False
        self.closed = False
        self.error: BaseException | None = None
        self.on_pause = on_pause
        self.on_resume = on_resume
        self.meter: Any = None       # tickwire.net.meter.Meter when metrics are on
        self.dropped = 0             # market-data events dropped since the start (overflow)
        self.taken = 0               # events the consumer took

    def push(self, events: list[Event]) -> None:
        """Called by connection readers: append events, never block."""
        buf = self.buf
        if len(buf) < self.room:
            buf.extend(events)
            if len(buf) > self.high and not self.paused and self.high:
                self.on_pause()
        else:
            self.push_overflowing(events)
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    def push_overflowing(self, events: list[Event]) -> None:
        push_overflowing(self, events)

    def wake(self) -> None:
        wake(self)

    def take(self) -> Event:
        """The next event (the buffer is not empty)."""
        ev = self.buf.popleft()
        if ev is self.overflow:
            self.overflow = None
        if self.paused and len(self.buf) <= self.low:
            self.on_resume(False)
        self.taken += 1
        if self.meter is not None and not self.taken & 63:
            self.meter.taken_one(ev, time.time_ns())
        return ev

    def __len__(self) -> int:
        return len(self.buf)

    def __aiter__(self) -> "EventQueue":
        return self

    async def __anext__(self) -> Event:
        buf = self.buf
        if not buf:
            return await wait_next(self)
        ev = buf.popleft()  # take(), inline: this is once per event
        if ev is self.overflow:
            self.overflow = None
        if self.paused and len(buf) <= self.low:
            self.on_resume(False)
        return ev


# The cold paths below are shared by both twins (they take either queue).

def push_overflowing(q: Any, events: list[Event]) -> None:
    """The buffer is (nearly) full: keep status events, drop market data and count it in one
    Overflow marker placed at the FRONT of the buffer when dropping starts, so the consumer
    hears of it next, not after the whole backlog; its ``dropped`` grows until it is taken.
    ``q.dropped`` counts every drop since the start (``feed.stats()``, metrics)."""
    buf = q.buf
    ov = q.overflow
    for ev in events:
        if ev.is_status:
            buf.append(ev)
        elif len(buf) < q.max_buffer:
            buf.append(ev)
        else:
            if ov is None:
                ov = q.overflow = Overflow(venue=ev.venue, recv_ns=ev.recv_ns, dropped=0)
                buf.appendleft(ov)
            ov.dropped += 1
            q.dropped += 1


def wake(q: Any) -> None:
    """Wake a consumer waiting for the next event (the feed ended or failed)."""
    w = q.waiter
    if w is not None and not w.done():
        w.set_result(None)


async def wait_next(q: Any) -> Event:
    """Wait until an event arrives (or the feed ends) and take it."""
    buf = q.buf
    while not buf:
        if q.rearm:  # caught up again after a forced resume: read-ahead control is back
            q.rearm = False
            q.high = q.high0
        if q.error is not None:
            raise q.error
        if q.closed:
            raise StopAsyncIteration
        q.waiter = w = asyncio.get_running_loop().create_future()
        await w
    return q.take()
