"""Ground truth of a venue simulator: what it published, and what it broke on purpose.

Every :class:`~tickwire.sim.framework.venue.VenueSim` has a :class:`Truth` (``sim.truth``) that a
test or a benchmark reads beside the venue protocol, never through it:

* **books** — :meth:`Truth.book` is the current book of one book stream (:class:`BookTruth`:
  ``seq``, ``bids``/``asks`` as the exact strings sent, best first via :meth:`BookTruth.levels`),
  and :meth:`BookTruth.digest_at` is a digest of the book *as it was at a given venue sequence*
  (the last ``history`` sequences of each stream), so a client book can be compared exactly with
  the venue's while both keep moving. The state follows what the venue *meant*: a delta withheld
  by a ``skip-seq`` fault is part of the truth although it was never sent;
* **trades** — :meth:`Truth.trades` lists the prints a trade stream sent (id, price, size,
  side, time, and to how many connections the frame was written: ``0`` while every subscriber
  was stalled);
* **faults** — :attr:`Truth.faults` logs every fault occurrence (:class:`FaultRecord`: kind,
  stream, time, the sequence numbers and connections affected, and the injection that caused
  it); :attr:`Truth.injections` the faults as given (``inject()``, ``--fault``);
* **limits** — :attr:`Truth.limits` logs every time the simulator refused or closed a client
  for one of the venue's own rules (connection rate, message rate, idle and pong timeouts, request
  budget…) rather than for an injected fault: what a real venue would count against the client.

Stream names are the simulator's own keys (Bybit ``linear:orderbook.50.BTCUSDT``, OKX
``books:BTC-USDT``, BG Exchange ``market.orderbook.BTC_USDT.0``, OKX DEX ``trades:1:0x…``);
:meth:`Truth.streams` lists them. The same data is served as JSON by the control endpoint
(:mod:`.control`), for a simulator running in another process.

The digest (:func:`levels_digest`) is a sum of 64-bit hashes of ``side``, price and size strings:
two books have the same digest when they hold the same levels (exact strings), whatever the
order the levels were applied in; it is cheap to keep up to date level by level.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["BookTruth", "FaultRecord", "LimitRecord", "TradeLog", "Truth", "level_hash", "levels_digest"]

_MASK = (1 << 64) - 1
_SEED2 = 0x9E3779B9


def level_hash(bid: bool, price: str, size: str) -> int:
    """64-bit hash of one level (two CRC-32s with different seeds; stable across processes)."""
    data = f"{'b' if bid else 'a'}{price}:{size}".encode()
    return zlib.crc32(data) | (zlib.crc32(data, _SEED2) << 32)


def levels_digest(bids: Iterable[Sequence[str]] | Mapping[str, str],
                  asks: Iterable[Sequence[str]] | Mapping[str, str]) -> int:
    """Digest of a book: ``bids``/``asks`` as ``(price, size)`` pairs or ``{price: size}`` dicts
    (exact strings; order does not matter). What :meth:`BookTruth.digest_at` returns for the
    simulator's book at a sequence, so a client compares its own book with one call."""
    d = 0
    for side, bid in ((bids, True), (asks, False)):
        items = side.items() if isinstance(side, Mapping) else side
        for lv in items:
            d += level_hash(bid, lv[0], lv[1])
    return d & _MASK


def _is_zero(size: str) -> bool:
    return size == "0" or (size[:1] in "0." and size.strip("0.") == "")


@dataclass(slots=True)
class FaultRecord:
    """One fault occurrence (or, in :attr:`Truth.injections`, one fault as given)."""

    id: int
    kind: str                       # the fault's name: "skip-u", "drop-every", "reject-connect", ...
    t: float                        # time.monotonic() of the occurrence
    wall_ns: int                    # time.time_ns() of the occurrence (events' recv_ns clock)
    stream: str | None = None       # the stream it broke (None: connection-level)
    seqs: tuple = ()                # venue sequence numbers affected (e.g. the u skipped)
    conns: tuple = ()               # ids of the connections affected
    detail: str = ""
    cause: int | None = None        # id of the injection (Truth.injections) it came from

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "t": self.t, "wall_ns": self.wall_ns, "stream": self.stream,
                "seqs": list(self.seqs), "conns": list(self.conns), "detail": self.detail, "cause": self.cause}


@dataclass(slots=True)
class LimitRecord:
    """The simulator refused or closed a client for one of the venue's rules (not a fault)."""

    id: int
    kind: str                       # "conn-rate", "max-conns", "rate-close", "idle", "pong-timeout", ...
    t: float
    wall_ns: int
    conn: int | None = None         # connection id (None: a refused handshake)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "t": self.t, "wall_ns": self.wall_ns, "conn": self.conn,
                "detail": self.detail}


class BookTruth:
    """The venue's book of one stream: exact string levels, its sequence, and the digests of the
    last ``history`` sequences (:meth:`digest_at`)."""

    __slots__ = ("stream", "bids", "asks", "seq", "digest", "history", "updates", "snapshots")

    def __init__(self, stream: str, history: int) -> None:
        self.stream = stream
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.seq: int | None = None
        self.digest = 0
        self.history: deque[tuple[int, int]] = deque(maxlen=max(1, history))
        self.updates = 0
        self.snapshots = 0

    def snapshot(self, seq: int, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        """The stream's book is now exactly these levels (a snapshot, a full-book push)."""
        self.bids = {lv[0]: lv[1] for lv in bids if not _is_zero(lv[1])}
        self.asks = {lv[0]: lv[1] for lv in asks if not _is_zero(lv[1])}
        self.digest = levels_digest(self.bids, self.asks)
        self.snapshots += 1
        self._at(seq)

    def delta(self, seq: int, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        """Apply changed levels (size ``"0"`` deletes; a delete of an absent price is a no-op)."""
        d = self.digest
        for levels, side, bid in ((bids, self.bids, True), (asks, self.asks, False)):
            for lv in levels:
                p, s = lv[0], lv[1]
                old = side.get(p)
                if old is not None:
                    d -= level_hash(bid, p, old)
                if _is_zero(s):
                    if old is not None:
                        del side[p]
                else:
                    side[p] = s
                    d += level_hash(bid, p, s)
        self.digest = d & _MASK
        self._at(seq)

    def _at(self, seq: int) -> None:
        self.seq = seq
        self.updates += 1
        h = self.history
        if h and h[-1][0] == seq:
            h[-1] = (seq, self.digest)
        else:
            h.append((seq, self.digest))

    def digest_at(self, seq: int) -> int | None:
        """Digest of the book as it was at venue sequence ``seq`` (the latest such moment), or None
        when ``seq`` is unknown or older than the history kept."""
        for s, d in reversed(self.history):
            if s == seq:
                return d
        return None

    def oldest_seq(self) -> int | None:
        return self.history[0][0] if self.history else None

    def levels(self, depth: int | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """``(bids, asks)`` best first, as ``(price, size)`` strings."""
        bids = sorted(self.bids.items(), key=lambda x: float(x[0]), reverse=True)
        asks = sorted(self.asks.items(), key=lambda x: float(x[0]))
        if depth is not None:
            bids, asks = bids[:depth], asks[:depth]
        return bids, asks

    def as_dict(self, depth: int | None = None) -> dict[str, Any]:
        bids, asks = self.levels(depth)
        return {"stream": self.stream, "seq": self.seq, "digest": self.digest, "bids": bids, "asks": asks}


class TradeLog:
    """The prints one trade stream sent, oldest first (bounded: the latest ``maxlen``).

    Each entry is ``(trade_id, price, size, side, wall_ns, delivered)``; ``delivered`` is how
    many connections the frame was written to intact (not stalled, not corrupted by ``garble``). Entries have absolute indexes (``since=``) that
    keep counting when old ones are dropped."""

    __slots__ = ("stream", "items", "total")

    def __init__(self, stream: str, maxlen: int) -> None:
        self.stream = stream
        self.items: deque[tuple[str, str, str, str, int, int]] = deque(maxlen=max(1, maxlen))
        self.total = 0

    def add(self, trades: Iterable[tuple[str, str, str, str]], delivered: int) -> None:
        now = time.time_ns()
        new = [(i, p, s, side, now, delivered) for i, p, s, side in trades]
        self.items.extend(new)
        self.total += len(new)

    def since(self, index: int = 0) -> tuple[list[tuple[str, str, str, str, int, int]], int]:
        """Entries with absolute index >= ``index`` still kept, and the next index."""
        first = self.total - len(self.items)
        skip = max(0, index - first)
        return list(self.items)[skip:], self.total


class Truth:
    """Ground truth of one venue simulator (see the module docstring). ``enabled=False`` keeps
    only the fault and limit logs (no per-level work on the publish path)."""

    def __init__(self, venue: str, *, enabled: bool = True, history: int = 4096, trades: int = 100_000,
                 log: int = 100_000) -> None:
        self.venue = venue
        self.enabled = enabled
        self.history = history
        self.trade_maxlen = trades
        self.faults: deque[FaultRecord] = deque(maxlen=log)
        self.injections: deque[FaultRecord] = deque(maxlen=log)
        self.limits: deque[LimitRecord] = deque(maxlen=log)
        self.books: dict[str, BookTruth] = {}
        self.trade_logs: dict[str, TradeLog] = {}
        self._ids = 0
        self.cause: int | None = None  # the injection being applied (set by VenueSim.apply_fault)

    def _next(self) -> int:
        self._ids += 1
        return self._ids

    # -- faults and limits ----------------------------------------------------------------------

    def injected(self, kind: str, detail: str = "") -> FaultRecord:
        rec = FaultRecord(self._next(), kind, time.monotonic(), time.time_ns(), detail=detail)
        self.injections.append(rec)
        return rec

    def fault(self, kind: str, *, stream: str | None = None, seqs: Iterable[int] = (), conns: Iterable[int] = (),
              detail: str = "", cause: int | None = None) -> FaultRecord:
        """Log one occurrence of a fault (what it did, to what, when)."""
        rec = FaultRecord(self._next(), kind, time.monotonic(), time.time_ns(), stream, tuple(seqs), tuple(conns),
                          detail, self.cause if cause is None else cause)
        self.faults.append(rec)
        return rec

    def limit(self, kind: str, conn: int | None = None, detail: str = "") -> LimitRecord:
        """Log a refusal or close the venue's own rules caused (what a real venue holds against us)."""
        rec = LimitRecord(self._next(), kind, time.monotonic(), time.time_ns(), conn, detail)
        self.limits.append(rec)
        return rec

    # -- books and trades -------------------------------------------------------------------------

    def book(self, stream: str) -> BookTruth:
        """The truth of a book stream (created empty on first use)."""
        b = self.books.get(stream)
        if b is None:
            b = self.books[stream] = BookTruth(stream, self.history)
        return b

    def book_snapshot(self, stream: str, seq: int, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        if self.enabled:
            self.book(stream).snapshot(seq, bids, asks)

    def book_delta(self, stream: str, seq: int, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        if self.enabled:
            self.book(stream).delta(seq, bids, asks)

    def trades(self, stream: str) -> TradeLog:
        """The prints a trade stream sent (created empty on first use)."""
        t = self.trade_logs.get(stream)
        if t is None:
            t = self.trade_logs[stream] = TradeLog(stream, self.trade_maxlen)
        return t

    def trades_sent(self, stream: str, trades: Iterable[tuple[str, str, str, str]], delivered: int) -> None:
        if self.enabled:
            self.trades(stream).add(trades, delivered)

    def streams(self) -> dict[str, list[str]]:
        return {"books": sorted(self.books), "trades": sorted(self.trade_logs)}

    def summary(self) -> dict[str, Any]:
        return {
            "venue": self.venue,
            "books": {k: {"seq": b.seq, "bids": len(b.bids), "asks": len(b.asks), "updates": b.updates,
                          "oldest_seq": b.oldest_seq()} for k, b in self.books.items()},
            "trades": {k: t.total for k, t in self.trade_logs.items()},
            "faults": len(self.faults),
            "injections": len(self.injections),
            "limits": len(self.limits),
        }
