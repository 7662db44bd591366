"""The bus interface: what tickwire needs from a message bus, kept small.

NATS JetStream (:mod:`tickwire.bus.nats`) implements it; a Kafka adapter would too (publish
with a dedup key and a per-message confirmation; ordered reads from a position; a durable
cursor acknowledged up to a position; "last message of a subject").

* :meth:`Bus.publish` sends messages without waiting; their fate comes back in bulk through
  the ``on_acks`` callback, one ``(msg, position, duplicate, error)`` per message: stored (with
  the bus position, also for a duplicate: the original's), or an error (the caller retries).
* :meth:`Bus.consume` reads messages of some subjects in bus order from a position, either
  ephemeral (nothing acknowledged) or ``durable`` (resumes where acknowledgements left off).
* :meth:`Bus.ack` acknowledges a durable consumer's messages up to and including one.
"""

from __future__ import annotations

import abc
import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable


@dataclass
class StreamSpec:
    """A persistent stream: which subjects it keeps, for how long, how many copies."""

    name: str
    subjects: list[str]
    max_age_s: float = 24 * 3600.0       # 0: no age limit
    max_bytes: int = -1                  # -1: no size limit
    max_msgs_per_subject: int = -1
    duplicate_window_s: float = 120.0    # dedup of message ids (redundant collectors, retries)
    replicas: int = 1


@dataclass(slots=True)
class OutMsg:
    subject: str
    data: bytes
    msg_id: str = ""
    token: Any = None            # the caller's: called with the bus position once stored (or None)
    tries: int = 0
    sent_at: float = 0.0
    serial: int = 0              # the publisher's order of submission


@dataclass
class InMsg:
    subject: str
    data: bytes
    seq: int                     # position in its stream
    stream: str = ""
    ts_ns: int = 0               # when the bus stored it
    handle: Any = field(default=None, repr=False)


AckCallback = Callable[[list[tuple[OutMsg, int, bool, str]]], None]
"""on_acks([(msg, stream_seq, duplicate, error), ...]): error is "" when stored. Called with
every confirmation that arrived together (one call per read from the bus, not one per message)."""


class BusError(RuntimeError):
    """The bus refused a request (no such stream, not reachable, ...)."""


class Bus(abc.ABC):
    """A connection to a message bus."""

    on_state: Callable[[bool, str], None] | None = None
    """Called with (connected, reason) whenever the link goes down or comes back."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    @abc.abstractmethod
    async def connect(self, wait: bool = True) -> None:
        """Connect; ``wait=False`` returns at once and keeps trying in the background."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ensure_streams(self, specs: list[StreamSpec]) -> None:
        """Create the streams, or update their limits (idempotent)."""

    @abc.abstractmethod
    def publish(self, msgs: list[OutMsg], on_acks: AckCallback) -> None:
        """Send ``msgs`` in order, now; confirmations arrive in bulk through ``on_acks``."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Wait until everything published so far was written to the bus connection."""

    @abc.abstractmethod
    def consume(self, stream: str, subjects: list[str], *, start_seq: int = 0, durable: str | None = None,
                batch: int = 1000, new_only: bool = False, recreate: bool = False) -> AsyncIterator[list[InMsg]]:
        """Messages of ``subjects`` in bus order, in batches, from ``start_seq`` (0: the start,
        or with ``new_only`` only what arrives from now on), or where ``durable`` left off."""

    @abc.abstractmethod
    async def ack(self, msg: InMsg) -> None:
        """Acknowledge a durable consumer's messages up to and including ``msg``."""

    @abc.abstractmethod
    async def last(self, stream: str, subject: str) -> InMsg | None:
        """The last message of ``subject`` (None if there is none)."""

    @abc.abstractmethod
    async def last_seq(self, stream: str) -> int:
        """The stream's last sequence (0 when empty)."""

    @abc.abstractmethod
    async def info(self) -> dict[str, Any]:
        """What the server says about itself (cluster name, peers...)."""


async def give_up_when_unreachable(bus: Bus, after_s: float) -> None:
    """Raise :class:`BusError` once ``bus`` has been unreachable for ``after_s`` seconds on end (at
    start or after losing it); run it as a task beside the work it guards. The default of every
    consumer is to wait forever; scripts that must fail pass a bound."""
    if after_s <= 0:
        raise ValueError(f"give up after {after_s!r} s: must be > 0 seconds")
    down_since: float | None = None
    while True:
        if bus.connected:
            down_since = None
        elif down_since is None:
            down_since = time.monotonic()
        elif time.monotonic() - down_since >= after_s:
            where = ",".join(getattr(bus, "urls", None) or ["the bus"])
            why = getattr(bus, "last_error", None)
            raise BusError(f"{where} not reachable for {after_s:g} s{f' ({why})' if why else ''}: giving up")
        await asyncio.sleep(min(0.2, after_s / 4))


async def until_guard(work: Any, guard: asyncio.Task | None) -> Any:
    """Await ``work``, unless ``guard`` (a :func:`give_up_when_unreachable` task) ends first: then
    cancel ``work`` and raise the guard's error."""
    if guard is None:
        return await work
    task = asyncio.ensure_future(work)
    await asyncio.wait({task, guard}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    guard.result()  # raises its BusError
    raise BusError("the bus watchdog ended")  # pragma: no cover - the guard never returns


def connect_bus(url: str, **kw: Any) -> Bus:
    """A bus for ``url`` (``nats://host:port``, comma-separated for several servers)."""
    if url.startswith(("nats://", "tls://", "nats+tls://")) or "://" not in url:
        from tickwire.bus.nats import NatsBus

        return NatsBus(url, **kw)
    raise BusError(f"unsupported bus URL {url!r}: use nats://HOST:PORT")
