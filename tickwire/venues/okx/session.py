"""One OKX v5 connection: the gateway's protocol (:mod:`tickwire.venues.okx_gateway`) plus the
books: the seqId chain, keepalives, the legacy checksum, and a REST snapshot when the venue
sends no WebSocket one (okx.md §2)."""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import msgspec

from tickwire.model import BookUpdate, Event
from tickwire.subscription import Subscription
from tickwire.venues.base import UNDECODABLE, FetchSnapshot, SessionOptions, StreamState, Venue
from tickwire.venues.okx import SNAPSHOT_ONLY, mappers
from tickwire.venues.okx.wire import (
    BOOK_PREFIX, BookData, Level, decode_book, decode_books_data, decode_dicts, decode_lists, decode_trades,
)
from tickwire.venues.okx_gateway import GatewaySession, Msg, arg_key, inflate, ms


def _pairs(levels: Sequence[Level]) -> list[tuple[str, str]]:
    """OKX levels -> (price, size) pairs, the shape of every venue's levels."""
    return [(x.price, x.size) for x in levels]


def _compiled_pairs() -> Any:
    from tickwire.net import hot

    return getattr(hot.compiled, "level_pairs", None) if hot.compiled is not None else None


pairs = _pairs  # the compiled twin (tickwire.net._hot.level_pairs) once the first session is made


def checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """Legacy CRC32 over the top 25 levels, interleaved bid/ask, raw strings, signed 32-bit."""
    parts = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    c = zlib.crc32(":".join(parts).encode())
    return c - (1 << 32) if c >= (1 << 31) else c


class OkxSession(GatewaySession):
    """One OKX connection: login, text ping/pong, per-arg acks, notices, books with seqId."""

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        global pairs
        super().__init__(venue, endpoint, conn, options)
        if pairs is _pairs:
            pairs = _compiled_pairs() or _pairs
        self.verify_checksum = bool(options.extra.get("verify_checksum", True))
        self.snapshot_wait_s = float(options.extra.get("snapshot_wait_s", 2.0))

    def pushes_regularly(self, sub: Subscription) -> bool:
        # Book channels push at least a keepalive (or the same snapshot) about every 60 s
        # without change (okx.md §2.2).
        return sub.kind == "book"

    def chains_deltas(self, sub: Subscription) -> bool:
        return sub.kind == "book" and sub.channel not in SNAPSHOT_ONLY  # books5, bbo-tbt: every push a full book

    def on_timer(self, now_ns: int) -> None:
        super().on_timer(now_ns)
        # books whose WS snapshot never came (OKX may stop sending it): ask for REST
        wait = self.snapshot_wait_s * 1e9
        for st in self.streams.values():
            if st.book is not None and not st.synced and st.extra is not None and st.extra.get("buffer") \
                    and not st.extra.get("rest_pending") and now_ns - st.extra["since"] > wait:
                st.extra["rest_pending"] = True
                self.outbox.append(FetchSnapshot(st.sub.topic, self.rest_snapshot_path(st)))

    # -- frames -------------------------------------------------------------------------------
    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        self.last_rx_ns = recv_ns
        if binary:
            try:
                payload = inflate(payload, self.max_inflated)
            except zlib.error as e:
                return [self.error("inflate", f"binary frame is not raw deflate: {e}", recv_ns=recv_ns)]
        if payload[:24] == BOOK_PREFIX:
            try:
                bm = decode_book(payload)
            except UNDECODABLE:
                pass  # the generic path says why (and breaks the book if the frame names it)
            else:
                a = bm.arg
                st = self.streams.get(f"{a.channel}:{a.instId}" if a.instId and not a.instType else arg_key(a))
                if st is not None:
                    st.last_rx_ns = recv_ns
                    data = bm.data
                    if len(data) == 1:
                        d = data[0]
                        prev = d.prevSeqId
                        seq = d.seqId
                        if prev == st.last_seq and st.synced and bm.action == "update" and seq is not None \
                                and seq != prev and not d.checksum:
                            # The hot path: the next update of an intact book (no legacy checksum).
                            book = st.book
                            # Levels as (price, size) pairs, the venue's [price, size, liquidated,
                            # orders] in venue_levels (loops, not comprehensions: no function object
                            # per side on 3.11).
                            b = d.bids
                            a = d.asks
                            bp = pairs(b)
                            ap = pairs(a)
                            book.apply_delta(bp, ap, seq)  # type: ignore[union-attr]
                            exch_ns = d.ts * 1_000_000
                            book.exch_ns = exch_ns  # type: ignore[union-attr]
                            st.last_seq = seq
                            sub = st.sub
                            # BookUpdate's own fields positionally (bids, asks, snapshot, seq, prev_seq,
                            # book, venue_levels): ~30 ns less per event than all by keyword.
                            return [BookUpdate(bp, ap, False, seq, prev, book, (b, a), venue="okx", market=sub.market,
                                               symbol=sub.symbol, stream=sub.spec, exch_ns=exch_ns, recv_ns=recv_ns)]
                    out: list[Event] = []
                    for d in data:
                        self._book(st, bm.action, d, recv_ns, out)
                    return out
        return self.envelope(payload, recv_ns)

    # -- market data ---------------------------------------------------------------------------
    def data(self, st: StreamState, m: Msg, recv_ns: int) -> list[Event]:
        kind = st.sub.kind
        if kind == "book":
            out: list[Event] = []
            for d in decode_books_data(m.data):
                self._book(st, m.action, d, recv_ns, out)
            return out
        if kind == "trades":
            return mappers.trades(st.sub, decode_trades(m.data), recv_ns)
        if kind == "candles":
            return mappers.candles(st.sub, decode_lists(m.data), recv_ns)
        return mappers.items(st.sub, decode_dicts(m.data), recv_ns)

    # -- books -----------------------------------------------------------------------------------
    def _book(self, st: StreamState, action: str, d: BookData, recv_ns: int, out: list[Event]) -> None:
        book = st.book
        seq = d.seqId
        prev = d.prevSeqId
        assert book is not None
        exch_ns = ms(d.ts)
        bids, asks = pairs(d.bids), pairs(d.asks)
        if st.sub.channel in SNAPSHOT_ONLY or action == "snapshot" or prev == -1:
            book.apply_snapshot(bids, asks, seq or 0)
            book.exch_ns = exch_ns
            last = st.last_seq
            st.last_seq = seq or 0
            was_broken = st.gap_reported
            st.synced = True
            st.resync_due_ns = 0
            st.extra = None
            if d.checksum and self.verify_checksum and not self._checksum_ok(st, d, recv_ns, out):
                return
            out.append(self.okx_book_event(st, bids, asks, d, True, seq or 0, last if prev is None else prev,
                                           exch_ns, recv_ns))
            if was_broken:
                out.append(self.resynced(st, recv_ns))
            return
        if not st.synced:
            self._buffer(st, d, recv_ns)
            return
        if seq is not None and prev is not None:
            if prev != st.last_seq:
                ex = st.extra
                rest_seq = ex.get("rest_seq") if ex is not None else None
                if rest_seq is None or prev > rest_seq or st.last_seq != rest_seq:
                    self.break_book(st, recv_ns, f"prevSeqId {prev} != last seqId {st.last_seq}", st.last_seq,
                                    prev, out)
                    return
                # Right after a REST snapshot (taken at rest_seq, possibly between two pushes): a
                # delta up to it is already in it; the first one past it spans it, and since levels
                # carry absolute sizes, applying it gives the book at its seqId. The documents are
                # silent on aligning REST with WS seqIds: this is the tolerant reading (the usual
                # "prev <= snapshot < seq" rule); the simulator's REST book plays it.
                if seq <= rest_seq:
                    return
                st.extra = None
                prev = st.last_seq  # the user's chain: it continues from the snapshot
            if seq == prev and not d.bids and not d.asks:
                return  # keepalive: no change for a while (not a gap)
            # seqId < prevSeqId is a reset after maintenance: accepted, chain continues from seqId.
        book.apply_delta(bids, asks, seq or 0)
        book.exch_ns = exch_ns
        last = st.last_seq
        st.last_seq = seq if seq is not None else last
        if d.checksum and self.verify_checksum and not self._checksum_ok(st, d, recv_ns, out):
            return
        out.append(self.okx_book_event(st, bids, asks, d, False, st.last_seq, last if prev is None else prev,
                                       exch_ns, recv_ns))

    def okx_book_event(self, st: StreamState, bids: list, asks: list, d: BookData, snapshot: bool, seq: int,
                       prev_seq: int, exch_ns: int, recv_ns: int) -> BookUpdate:
        """A BookUpdate of OKX levels: ``bids``/``asks`` as (price, size) pairs like every venue's,
        the venue's levels (``[price, size, liquidated orders, order count]``) in ``venue_levels``."""
        ev = self.book_event(st, bids, asks, snapshot, seq, prev_seq, exch_ns, recv_ns)
        ev.venue_levels = (d.bids, d.asks)
        return ev

    def _checksum_ok(self, st: StreamState, d: BookData, recv_ns: int, out: list[Event]) -> bool:
        # The legacy CRC32 is checked only when the venue sends a non-zero value; since
        # 2026-06-23 OKX sends 0 and the check is skipped, never failed (okx.md §2.3).
        bids, asks = st.book.top(25)  # type: ignore[union-attr]
        got = checksum(bids, asks)
        if got == d.checksum:
            return True
        self.break_book(st, recv_ns, f"checksum mismatch: computed {got}, venue sent {d.checksum}", d.checksum, got, out)
        return False

    def _buffer(self, st: StreamState, d: BookData, recv_ns: int) -> None:
        """Deltas before any snapshot: buffer them; if no WS snapshot comes, the engine fetches REST."""
        if st.resync_due_ns:
            return  # a resync is about to go out: its subscription's deltas will be buffered
        if st.extra is None or "buffer" not in st.extra:
            st.extra = {"buffer": [], "since": recv_ns}
        buf = st.extra["buffer"]
        if len(buf) < 10_000:
            buf.append(d)

    def rest_snapshot_path(self, st: StreamState) -> str:
        return f"/api/v5/market/books?instId={st.sub.symbol}&sz=400&source=0"

    def on_rest_snapshot(self, topic: str, body: Any, recv_ns: int, error: str = "") -> list[Event]:
        """Align a REST snapshot (``source=0``, with seqId) with the buffered deltas (okx.md §2.2).

        ``body`` is the decoded JSON reply (None if the request failed with ``error``)."""
        st = self.streams.get(topic)
        if st is None or st.book is None:
            return []  # unsubscribed while the request was out
        snap: BookData | None = None
        if isinstance(body, dict):
            data = (body.get("data") or [None])[0]
            if data is None:
                error = f"code {body.get('code')} {body.get('msg')}"
            else:
                try:
                    snap = msgspec.convert(data, type=BookData)
                except (msgspec.ValidationError, TypeError) as e:
                    error = f"bad snapshot: {e}"
        elif body is not None:
            error = "bad body"
        out: list[Event] = []
        ex = st.extra or {}
        ex["rest_pending"] = False
        if snap is None or snap.seqId is None:
            ex["since"] = recv_ns  # try again after snapshot_wait_s
            out.append(self.error("rest", f"REST snapshot for {st.sub.symbol} failed: {error}", recv_ns=recv_ns,
                                  sub=st.sub))
            return out
        buf: list[BookData] = ex.get("buffer", [])
        if buf and buf[0].prevSeqId is not None and snap.seqId < buf[0].prevSeqId:
            ex["since"] = recv_ns  # snapshot older than our first delta: fetch again
            return out
        book = st.book
        assert book is not None
        bids, asks = pairs(snap.bids), pairs(snap.asks)
        book.apply_snapshot(bids, asks, snap.seqId)
        st.last_seq = snap.seqId
        st.synced = True
        st.extra = {"rest_seq": snap.seqId}  # updates up to this one may still be in flight: skip them
        out.append(self.okx_book_event(st, bids, asks, snap, True, snap.seqId, -1, ms(snap.ts), recv_ns))
        if st.gap_reported:  # a resync that got no WS snapshot: the REST one ends the gap
            out.append(self.resynced(st, recv_ns))
        for d in buf:
            if d.seqId is not None and d.seqId <= snap.seqId:
                continue  # already in the snapshot
            self._book(st, "update", d, recv_ns, out)
        return out

