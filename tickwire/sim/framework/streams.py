"""Topics shared by their subscribers (:class:`Stream`) and the timers that drive them (:class:`Cadence`).

A stream's frame is encoded once and the same bytes fan out to every subscribed connection; a
cadence is one timer per push interval that ticks every active stream with that interval.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .server import SimConnection

if TYPE_CHECKING:
    from .venue import VenueSim

__all__ = ["Cadence", "Stream"]


class Stream:
    """One data topic shared by every connection subscribed to it.

    Subclasses implement :meth:`tick` (called by the stream's :class:`Cadence` while it has
    subscribers) and usually :meth:`on_subscribe` (e.g. to send a snapshot to the newcomer).
    :meth:`publish` sends the same encoded bytes to every subscriber.
    """

    def __init__(self, sim: "VenueSim", topic: str, cadence: "Cadence | None" = None):
        self.sim = sim
        self.topic = topic
        self.cadence = cadence
        self.subs: dict[SimConnection, None] = {}
        self.last_push = 0.0  # monotonic time of the last publish
        self.garbled = 0  # of the last publish, the connections that got it corrupted (fault `garble`)

    def subscribe(self, conn: SimConnection) -> None:
        first = not self.subs
        self.subs[conn] = None
        conn.topics[self.topic] = self
        if first:
            self.activate()
            if self.cadence is not None:
                self.cadence.add(self)
        self.on_subscribe(conn)
        self.sim.subscribed(conn)

    def unsubscribe(self, conn: SimConnection) -> None:
        conn.topics.pop(self.topic, None)
        if self.subs.pop(conn, 0) is None and not self.subs:
            if self.cadence is not None:
                self.cadence.discard(self)
            self.deactivate()

    def activate(self) -> None:
        """First subscriber arrived."""

    def deactivate(self) -> None:
        """Last subscriber left."""

    def on_subscribe(self, conn: SimConnection) -> None:
        """A connection just subscribed (the ack has already been sent)."""

    def tick(self) -> None:
        """Periodic push (see :class:`Cadence`)."""

    def publish(self, data: bytes) -> int:
        """Send ``data`` to every subscriber; returns to how many it was written (of which
        :attr:`garbled` got it corrupted by the ``garble`` fault)."""
        self.last_push = time.monotonic()
        sim = self.sim
        sim.publishing, g0 = self, sim.garbled
        n = 0
        for c in self.subs:
            if c.send(data):
                n += 1
        sim.publishing = None
        self.garbled = sim.garbled - g0
        sim.stats.frames_sent += n
        return n


class Cadence:
    """One timer per push interval, driving every active member's ``tick()``.

    The timer is a ``loop.call_at`` chain (no task, no per-subscription timers); it runs only
    while it has members and skips missed beats instead of bursting after a pause.
    """

    def __init__(self, sim: "VenueSim", interval: float, name: str = ""):
        self.sim = sim
        self.interval = max(interval, 0.0005)
        self.name = name
        self.members: dict[Any, None] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._next = 0.0

    def add(self, member: Any) -> None:
        self.members[member] = None
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._next = loop.time() + self.interval
            self._handle = loop.call_at(self._next, self._fire)

    def discard(self, member: Any) -> None:
        self.members.pop(member, None)
        if not self.members:
            self.cancel()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        members = self.members
        for m in list(members):
            if m not in members:
                continue  # left during this round
            try:
                m.tick()
            except Exception as exc:
                self.sim._internal_error(exc)
        if not self.members:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next += self.interval
        if self._next <= now:
            self._next = now + self.interval
        self._handle = loop.call_at(self._next, self._fire)
