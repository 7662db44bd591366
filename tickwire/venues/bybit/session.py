"""Bybit v5 connections: a public one (requests, acks, pongs, and the books' ``u`` chain,
bybit.md §3, §7) and a private one (auth, acks, pushes of orders, executions, positions, wallet
and greeks, bybit.md §4, §8)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
from collections import deque
from typing import Any, Iterable, Sequence

import msgspec

from tickwire.credentials import redact
from tickwire.model import BookUpdate, Event, Fill, VenueError
from tickwire.subscription import SpecError, Subscription
from tickwire.venues.base import UNDECODABLE, Session, SessionOptions, StreamState, Venue, bad_field, undecodable
from tickwire.venues.bybit import ANY_SYMBOL, is_categorised, mappers
from tickwire.venues.bybit.mappers import trades as _trades
from tickwire.venues.bybit.wire import (
    BOOK_PREFIX, TRADES_PREFIX, BookData, Envelope, PrivateEnvelope, decode_book, decode_book_data, decode_dict,
    decode_envelope, decode_items, decode_klines, decode_liqs, decode_option_resp, decode_private, decode_trades,
    decode_trades_msg, encode,
)
from tickwire.venues.ledger import FINAL, HARMLESS, SUBSCRIBE, UNSUBSCRIBE, Ledger

SPOT_MAX_ARGS_PER_REQUEST = 10     # "args size >10" beyond this
ARGS_PER_REQUEST = 100             # our own chunking for linear/inverse/option (no venue limit)

_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError, ValueError)
# The topic a push starts with, found in a frame that does not decode (error path only).
_TOPIC_HEAD = re.compile(rb'\{"topic":"([^"\\]{1,200})"')


class BybitSession(Session):
    """One Bybit public connection. Acks name their request by ``req_id``; a failed batch names
    its bad topic in ``ret_msg``; the option category acks per topic (``COMMAND_RESP``)."""

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        super().__init__(venue, endpoint, conn, options)
        self.market = endpoint.split("/", 1)[1] if "/" in endpoint else endpoint
        self.args_per_request = SPOT_MAX_ARGS_PER_REQUEST if self.market == "spot" else ARGS_PER_REQUEST
        self._ping_ids = itertools.count(1)

    # -- what the ledger asks of Bybit ----------------------------------------------------------
    def request_frame(self, op: str, subs: Sequence[Subscription], req_id: str) -> bytes:
        return encode({"req_id": req_id, "op": op, "args": [s.topic for s in subs]})

    def refusal(self, code: Any, msg: str) -> str:
        # "already subscribed": the first subscription keeps delivering (bybit.md §3.1).
        return HARMLESS if "already subscribed" in msg else FINAL

    def pushes_regularly(self, sub: Subscription) -> bool:
        # Level 1 re-sends its snapshot every 3 s when nothing changes (bybit.md §7.1).
        return sub.channel == "orderbook.1"

    def ping_payload(self) -> bytes:
        return encode({"req_id": f"p{next(self._ping_ids)}", "op": "ping"})

    # -- frames -----------------------------------------------------------------------
    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        self.last_rx_ns = recv_ns
        if payload[:20] == BOOK_PREFIX:
            try:
                msg = decode_book(payload)
            except UNDECODABLE:
                pass  # the generic path says why (and breaks the book if the frame names it)
            else:
                st = self.streams.get(msg.topic)
                if st is not None:
                    d = msg.data
                    u = d.u
                    prev = st.last_seq
                    if u == prev + 1 and st.synced and u != 1 and msg.type == "delta":
                        # The hot path, inline: the next delta of an intact book.
                        book = st.book
                        book.apply_delta(d.b, d.a, u)  # type: ignore[union-attr]
                        exch_ns = msg.ts * 1_000_000
                        book.exch_ns = exch_ns  # type: ignore[union-attr]
                        st.last_seq = u
                        sub = st.sub
                        # BookUpdate's own fields positionally (bids, asks, snapshot, seq, prev_seq,
                        # book): ~30 ns less per event than all by keyword.
                        return [BookUpdate(d.b, d.a, False, u, prev, book, venue="bybit", market=sub.market,
                                           symbol=sub.symbol, stream=sub.spec, exch_ns=exch_ns, recv_ns=recv_ns)]
                    return self._book(st, msg.type, d, msg.ts, recv_ns)
        elif payload[:22] == TRADES_PREFIX:
            try:
                tm = decode_trades_msg(payload)
            except UNDECODABLE:
                pass
            else:
                st = self.streams.get(tm.topic)
                if st is not None:
                    st.last_rx_ns = recv_ns
                    return _trades(st.sub, tm.data, recv_ns)
        try:
            env = decode_envelope(payload)
        except UNDECODABLE as e:
            return self._undecodable(payload, undecodable(e), recv_ns)
        topic = env.topic
        if topic:
            st = self.streams.get(topic)
            if st is None:
                if not self.accept_any:
                    return []  # late data of an unsubscribed topic
                st = self._adopt(topic)
                if st is None:
                    return []
            st.last_rx_ns = recv_ns
            try:
                return self._data(st, env, recv_ns)
            except _DECODE_ERRORS as e:
                out: list[Event] = [self.error("decode", f"bad {topic} frame ({e})", stream=st.sub.spec,
                                               recv_ns=recv_ns, sub=st.sub)]
                self.push_lost(st, recv_ns, str(e), out)
                return out
        return self._control(env, recv_ns)

    def _undecodable(self, payload: bytes | memoryview, why: str, recv_ns: int) -> list[Event]:
        """A frame that does not decode: a VenueError, naming the stream when the frame's head
        names one of ours (a push starts with its ``topic``), whose book then breaks at once."""
        head = bytes(payload[:300])
        found = _TOPIC_HEAD.match(head)
        st = self.streams.get(found.group(1).decode("utf-8", "replace")) if found is not None else None
        out: list[Event] = [self.error("decode", f"undecodable frame ({why}): {head[:200]!r}", recv_ns=recv_ns,
                                       sub=st.sub if st is not None else None)]
        if st is not None:
            self.push_lost(st, recv_ns, why, out)
        return out

    def chains_deltas(self, sub: Subscription) -> bool:
        return sub.kind == "book" and sub.channel != "orderbook.1"  # level 1: snapshots only (bybit.md §7.1)

    def _adopt(self, topic: str) -> StreamState | None:
        """Decode mode: create stream state for a topic seen in a recorded file."""
        channel, _, symbol = topic.rpartition(".")
        try:
            sub = self.venue.parse(self.market, channel, symbol, f"bybit.{self.market}:{channel}:{symbol}")
        except ValueError:
            if channel.startswith("orderbook."):  # e.g. retired orderbook.500 in old recordings
                sub = Subscription(spec=f"bybit.{self.market}:{channel}:{symbol}", venue="bybit",
                                   market=self.market, channel=channel, symbol=symbol, kind="book",
                                   endpoint=self.endpoint, topic=topic)
            else:
                return None
        st = self.streams[topic] = StreamState(sub)
        return st

    # -- control: pongs, acks, errors ---------------------------------------------------
    def _control(self, env: Envelope, recv_ns: int) -> list[Event]:
        op = env.op
        if env.ret_msg == "pong" or op == "pong":
            self.pong_received(recv_ns)
            return []
        ledger = self.ledger
        if env.type == "COMMAND_RESP":  # option: per-topic success/fail lists, no req_id
            try:
                resp = decode_option_resp(env.data)
            except UNDECODABLE as e:
                return [self.error("decode", bad_field("option COMMAND_RESP", "data", bytes(env.data),
                                                       "an object with the lists failTopics and successTopics")
                                   + f" ({undecodable(e)})", recv_ns=recv_ns)]
            req = ledger.match(env.req_id, resp.successTopics + resp.failTopics)
            return ledger.refused(resp.failTopics, op or SUBSCRIBE, env.ret_msg or "subscription failed",
                                  recv_ns, req)
        if op in ("subscribe", "unsubscribe"):
            if env.success is not False:
                ledger.match(env.req_id)
                return []
            # The whole batch failed because of one topic, which the message names (bybit.md §3.1):
            # that one is refused, the rest of the batch is subscribed again.
            msg = env.ret_msg
            req = ledger.match(env.req_id, text=msg)
            blamed = [t for t in req.topics if t in msg] if req is not None else []
            return ledger.failed(req, op, msg, recv_ns, blamed)
        if env.success is False:
            return [self.error(op or "error", env.ret_msg, recv_ns=recv_ns)]
        return []

    # -- market data ------------------------------------------------------------------
    def _data(self, st: StreamState, env: Envelope, recv_ns: int) -> list[Event]:
        kind = st.sub.kind
        if kind == "book":
            return self._book(st, env.type, decode_book_data(env.data), env.ts, recv_ns)
        if kind == "trades":
            return _trades(st.sub, decode_trades(env.data), recv_ns)
        if kind == "ticker":
            return [mappers.ticker(st.sub, self._merge_ticker(st, env), env.ts, recv_ns)]
        if kind == "candles":
            return mappers.candles(st.sub, decode_klines(env.data), env.ts, recv_ns)
        if kind == "liquidations":
            return mappers.liquidations(st.sub, decode_liqs(env.data), recv_ns)
        return []

    @staticmethod
    def _merge_ticker(st: StreamState, env: Envelope) -> dict:
        """Linear/inverse send a snapshot then deltas of changed fields: merge them (missing =
        unchanged; "" is treated as unchanged too, the tolerant reading of an undocumented case)."""
        data = decode_dict(env.data)
        if env.type == "delta" and st.extra is not None:
            merged = st.extra
            for k, v in data.items():
                if v != "":
                    merged[k] = v
            return merged
        st.extra = data
        return data

    def _book(self, st: StreamState, typ: str, d: BookData, ts: int, recv_ns: int) -> list[Event]:
        """Everything but the next delta of an intact book (on_frame handles that inline)."""
        book = st.book
        assert book is not None
        st.last_rx_ns = recv_ns
        u = d.u
        out: list[Event] = []
        if typ == "snapshot" or u == 1:
            # A snapshot, or u == 1 (service restart, bybit.md §7.1 rule 4), resets the book.
            # Level 1 repeats its snapshot with the same u when nothing changed: not a gap.
            book.apply_snapshot(d.b, d.a, u)
            book.exch_ns = ts * 1_000_000
            was_broken = st.gap_reported
            prev = st.last_seq
            st.last_seq = u
            st.synced = True
            st.resync_due_ns = 0
            out.append(self.book_event(st, d.b, d.a, True, u, prev, ts * 1_000_000, recv_ns))
            if was_broken:
                out.append(self.resynced(st, recv_ns))
            return out
        if not st.synced:
            # Delta before any snapshot (or after a gap, before the resync snapshot).
            if not st.gap_reported and not st.resync_due_ns:
                self.break_book(st, recv_ns, "delta before snapshot", None, u, out)
            return out
        if u != st.last_seq + 1:
            if u == st.last_seq:
                return out  # the same update again: already applied
            self.break_book(st, recv_ns, f"u jumped from {st.last_seq} to {u}", st.last_seq + 1, u, out)
            return out
        prev = st.last_seq
        book.apply_delta(d.b, d.a, u)
        book.exch_ns = ts * 1_000_000
        st.last_seq = u
        out.append(self.book_event(st, d.b, d.a, False, u, prev, ts * 1_000_000, recv_ns))
        return out


# --------------------------------------------------------------------------- private (/v5/private)

AUTH_EXPIRES_S = 10.0      # the auth request's `expires` lies this far ahead (ccxt: 10 s; pybit: 1 s)
AUTH_REQ_ID = "auth"
PRIVATE_ARGS_PER_REQUEST = 10  # our own cap (private topics are few; no venue limit is documented)
EXEC_IDS_KEPT = 100_000        # execIds remembered per stream for deduplication


def sign(secret: str, expires: int | str) -> str:
    """The auth signature: lowercase hex HMAC-SHA256(secret, "GET/realtime" + expires) (bybit.md §4.1)."""
    return hmac.new(secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()


class ExecIds:
    """The execIds a stream delivered lately (bounded): an execution pushed twice (Bybit may
    repeat one, e.g. around a reconnect) reaches the user once. ``seq`` cannot serve: it is
    unique only together with the symbol (bybit.md §8)."""

    __slots__ = ("seen", "order", "cap")

    def __init__(self, cap: int = EXEC_IDS_KEPT) -> None:
        self.seen: set[str] = set()
        self.order: deque[str] = deque()
        self.cap = cap

    def first_time(self, exec_id: str) -> bool:
        if not exec_id:
            return True  # nothing to recognise it by
        if exec_id in self.seen:
            return False
        self.seen.add(exec_id)
        self.order.append(exec_id)
        if len(self.order) > self.cap:
            self.seen.discard(self.order.popleft())
        return True


def _by_form(subs: Iterable[Subscription]) -> list[list[Subscription]]:
    """All-in-one topics apart from categorised ones: the two must never share a request."""
    subs = list(subs)
    whole = [s for s in subs if not is_categorised(s.topic)]
    split = [s for s in subs if is_categorised(s.topic)]
    return [part for part in (whole, split) if part]


class PrivateLedger(Ledger):
    """The shared ledger, except that an all-in-one topic (``order``) and a categorised one
    (``order.linear``, ``execution.spot``...) never go out in one subscribe or unsubscribe
    request (bybit.md §8: the venue refuses the mix)."""

    def subscribe(self, subs: Sequence[Subscription]) -> None:
        for part in _by_form(subs):
            super().subscribe(part)

    def unsubscribe(self, subs: Iterable[Subscription]) -> None:
        for part in _by_form(subs):
            super().unsubscribe(part)


class BybitPrivateSession(Session):
    """One ``/v5/private`` connection (bybit.md §4, §8).

    * Auth first: ``{"op":"auth","args":[api_key, expires_ms, hex HMAC-SHA256(secret,
      "GET/realtime"+expires)]}``; nothing is subscribed before the venue's yes. A refusal
      (``success:false``, e.g. ``Params Error`` for an expired or wrong signature, or a
      ``retCode`` other than 0) ends the connection for good with a fatal VenueError naming the
      key (redacted) and the venue's message: no retry loop. No reply within ``login_timeout_s``:
      reconnect. Every reconnect authenticates again and subscribes everything again.
    * Pong: ``{"op":"pong","args":["<ms>"]}`` (the public shapes are accepted too); JSON ping
      every 20 s.
    * Acks may come without ``req_id`` (bybit.md §3.1): they answer the oldest request.
    * Executions are deduplicated by ``execId`` per stream (:class:`ExecIds`); a stream keeps
      its memory across reconnects.
    """

    args_per_request = PRIVATE_ARGS_PER_REQUEST

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        super().__init__(venue, endpoint, conn, options)
        self.ledger = PrivateLedger(self)
        self._ping_ids = itertools.count(1)
        self.expires_s = float(options.extra.get("auth_expires_s") or AUTH_EXPIRES_S)
        self.conn_id = ""

    # -- what the ledger asks of Bybit ----------------------------------------------------------
    def request_frame(self, op: str, subs: Sequence[Subscription], req_id: str) -> bytes:
        return encode({"req_id": req_id, "op": op, "args": [s.topic for s in subs]})

    def refusal(self, code: Any, msg: str) -> str:
        return HARMLESS if "already subscribed" in msg else FINAL

    def ping_payload(self) -> bytes:
        return encode({"req_id": f"p{next(self._ping_ids)}", "op": "ping"})

    # -- auth -------------------------------------------------------------------------------------
    def needs_login(self) -> bool:
        return True

    def login(self, now_ns: int) -> None:
        cred = self.options.credentials
        if cred is None:
            needing = sorted(st.sub.spec for st in self.streams.values()) or ["bybit private streams"]
            err = self.error("credentials", f"bybit: login needed for {', '.join(needing)} but no credentials: "
                             "set TICKWIRE_BYBIT_API_KEY and TICKWIRE_BYBIT_SECRET (or --credentials FILE, "
                             "or credentials={'bybit': {...}} in Python)", request="auth", fatal=True, recv_ns=now_ns)
            self.emit([err])
            self.fail(err)
            return
        expires = now_ns // 1_000_000 + int(self.expires_s * 1000)
        frame = encode({"req_id": AUTH_REQ_ID, "op": "auth", "args": [cred.api_key, expires, sign(cred.secret, expires)]})
        self.login_sent_ns = now_ns or 1
        self.send(frame, "auth")

    def _auth_refused(self, code: str, msg: str, recv_ns: int) -> VenueError:
        cred = self.options.credentials
        key = redact(cred.api_key) if cred is not None else "(none)"
        if cred is not None:  # never echo a credential, whatever the venue's text holds
            for secret in (cred.secret, cred.api_key):
                if secret:
                    msg = msg.replace(secret, "***")
        err = self.error(code, f"bybit refused the login of API key {key}: {msg or 'auth failed'} (a wrong key "
                         f"or secret, or an expired signature: is the local clock off by {self.expires_s:g} s or "
                         "more?)", request="auth (api key, expires and signature redacted)", recv_ns=recv_ns,
                         fatal=True)
        self.fail(err)
        return err

    # -- frames -------------------------------------------------------------------------------
    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        self.last_rx_ns = recv_ns
        try:
            env = decode_private(payload)
        except UNDECODABLE as e:
            return [self.error("decode", f"undecodable frame ({undecodable(e)}): {bytes(payload[:200])!r}",
                               recv_ns=recv_ns)]
        if env.topic:
            return self._push(env, recv_ns)
        return self._control(env, recv_ns)

    def _push(self, env: PrivateEnvelope, recv_ns: int) -> list[Event]:
        topic = env.topic
        st = self.streams.get(topic)
        if st is None:
            if not self.accept_any:
                return []  # late data of a topic we left
            st = self._adopt(topic)
            if st is None:
                return []
        st.last_rx_ns = recv_ns
        if self.ledger.requests:
            self.ledger.serving(topic)
        sub = st.sub
        try:
            items = decode_items(env.data)
            if isinstance(items, dict):
                items = [items]
            out = mappers.PRIVATE[sub.kind](sub, items, env.creationTime, recv_ns)
            if sub.kind == "fills":
                # by the fills made, not the items sent: an item dropped as garbled must not
                # hide the venue's correct copy of it
                ids = st.extra
                if ids is None:
                    ids = st.extra = ExecIds()
                out = [e for e in out if e.__class__ is not Fill or ids.first_time(e.trade_id)]
            return out
        except _DECODE_ERRORS as e:
            return [self.error("decode", f"bad {topic} frame ({e})", recv_ns=recv_ns, sub=sub)]

    def _adopt(self, topic: str) -> StreamState | None:
        """Decode mode: create stream state for a private topic seen in a recorded file."""
        try:
            sub = self.venue.parse("", topic, ANY_SYMBOL, f"bybit:{topic}:{ANY_SYMBOL}")
        except SpecError:
            return None
        if sub.endpoint != self.endpoint:
            return None
        st = self.streams[topic] = StreamState(sub)
        return st

    def _control(self, env: PrivateEnvelope, recv_ns: int) -> list[Event]:
        op = env.op
        if op == "pong" or env.ret_msg == "pong":
            self.pong_received(recv_ns)
            return []
        if env.conn_id:
            self.conn_id = env.conn_id
        ok = env.success if env.success is not None else (env.retCode == 0 if env.retCode is not None else None)
        msg = env.ret_msg or env.retMsg
        code = str(env.retCode) if env.retCode is not None else ""
        req_id = str(env.req_id) if env.req_id != "" else ""
        if op == "auth":
            if ok is False:
                return [self._auth_refused(code or "auth", msg, recv_ns)]
            if not self.logged_in:
                self.logged_in = True
                self.ledger.open()
            return []
        if op in (SUBSCRIBE, UNSUBSCRIBE):
            ledger = self.ledger
            if ok is not False:
                if ledger.match(req_id) is None and not req_id:
                    ledger.oldest(op)  # private acks may carry no req_id: they answer in order
                return []
            # "error:handler not found,topic:order.spot" names its topic (bybit.md §3.2).
            named = msg.rpartition("topic:")[2].strip() if "topic:" in msg else ""
            req = ledger.match(req_id, (named,) if named else (), op=op)
            if req is None and not req_id:
                req = ledger.oldest(op)
            blamed = [named] if req is not None and named in req.topics else []
            return ledger.failed(req, code or op, msg, recv_ns, blamed)
        if ok is False:
            return [self.error(code or op or "error", msg, recv_ns=recv_ns)]
        return []

    def inherit(self, previous: Session) -> None:
        """Also keep each execution stream's execIds over a reconnect (no duplicate after it)."""
        super().inherit(previous)
        for topic, st in previous.streams.items():
            mine = self.streams.get(topic)
            if mine is not None and isinstance(st.extra, ExecIds):
                mine.extra = st.extra
