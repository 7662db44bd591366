"""Taps: how anything observes a feed's sockets (recorder, dashboard, metrics, a bus publisher).

A tap is called on the event loop, in order, for every socket the feed opens:
``opened`` before its first frame, ``frame`` for every received data frame (before it is
decoded), ``rest`` for every REST snapshot reply the feed fetched for that socket's
session, ``switched`` when a make-before-break failover hands a socket's streams to its
replacement, and ``closed`` once. Every socket has its own id, also a standby opened during
a failover (its :attr:`SocketInfo.replaces` names the socket it takes over from), so an
observer never has to guess which connection a frame came from.

Taps must be quick and must not raise (an exception is logged and the tap keeps its
place); ``frame`` runs on the hot path. Subclass :class:`Tap` and override what you need.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import msgspec

log = logging.getLogger("tickwire.net")


class SocketInfo(msgspec.Struct, frozen=True):
    """One WebSocket of a feed, as a tap sees it."""

    id: str                      # unique within the feed: "<conn>.<n>", the connection's n-th socket
    conn: str                    # the logical connection it serves ("okx/public#1"; events carry this)
    venue: str
    endpoint: str                # the venue endpoint ("public/linear", "business", ...)
    url: str
    streams: tuple[str, ...]     # specs this socket subscribes at open
    opened_ns: int
    replaces: str = ""           # failover standby: the id of the socket it takes over from


class Tap:
    """Base class: every callback does nothing."""

    def opened(self, sock: SocketInfo) -> None:
        """The socket is connected; no frame of it was seen yet."""

    def frame(self, sock_id: str, recv_ns: int, payload: bytes, binary: bool) -> None:
        """One received text or binary frame, exactly as it arrived (before decoding)."""

    def rest(self, sock_id: str, recv_ns: int, topic: str, body: bytes | None, error: str) -> None:
        """A REST snapshot reply for stream ``topic`` of that socket's session (raw JSON body)."""

    def switched(self, sock_id: str, old_id: str, ns: int) -> None:
        """Failover done: ``sock_id`` now serves everything ``old_id`` served; ``old_id`` is
        dropped (frames of it that still arrive until it closes reach no user)."""

    def closed(self, sock_id: str, ns: int, reason: str) -> None:
        """The socket ended (no more frames of it)."""


def _guarded(name: str, fn: Callable[..., None]) -> Callable[..., None]:
    def call(*a: Any) -> None:
        try:
            fn(*a)
        except Exception:
            log.exception("tap %s failed", name)
    return call


class Taps:
    """The feed's list of taps, with one bound callable per callback for the engine."""

    def __init__(self) -> None:
        self.taps: list[Tap] = []
        self.frame: Callable[[str, int, bytes, bool], None] | None = None  # None: nobody listens
        self._rebuild()

    def add(self, tap: Tap) -> None:
        if tap not in self.taps:
            self.taps.append(tap)
            self._rebuild()

    def remove(self, tap: Tap) -> None:
        if tap in self.taps:
            self.taps.remove(tap)
            self._rebuild()

    def _rebuild(self) -> None:
        taps = list(self.taps)
        frames = [t.frame for t in taps if type(t).frame is not Tap.frame]
        if not frames:
            self.frame = None
        elif len(frames) == 1:
            self.frame = frames[0]  # the hot path: one direct call, no loop
        else:
            def fan_out(sock_id: str, recv_ns: int, payload: bytes, binary: bool) -> None:
                for f in frames:
                    f(sock_id, recv_ns, payload, binary)
            self.frame = fan_out
        self._taps = taps

    def opened(self, sock: SocketInfo) -> None:
        for t in self._taps:
            _guarded("opened", t.opened)(sock)

    def rest(self, sock_id: str, recv_ns: int, topic: str, body: bytes | None, error: str) -> None:
        for t in self._taps:
            _guarded("rest", t.rest)(sock_id, recv_ns, topic, body, error)

    def switched(self, sock_id: str, old_id: str, ns: int) -> None:
        for t in self._taps:
            _guarded("switched", t.switched)(sock_id, old_id, ns)

    def closed(self, sock_id: str, ns: int, reason: str) -> None:
        for t in self._taps:
            _guarded("closed", t.closed)(sock_id, ns, reason)
