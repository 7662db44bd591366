"""Sans-I/O dialect base: what every venue package implements, and what the engine calls.

A :class:`Venue` is venue-wide knowledge (endpoints, spec validation, limits, how to
spread subscriptions over connections). A :class:`Session` is the protocol state of one
connection. Its contract with the engine, in the spirit of the sans-I/O core of
``websockets`` (``receive_data`` then ``data_to_send()`` / ``events_received()``):

inputs (time always comes in as an argument; nothing under ``venues/`` reads a clock)
    ``start(now_ns)``, ``on_frame(payload, binary, recv_ns) -> events`` (the hot path),
    ``on_traffic(recv_ns)`` (a WebSocket-level ping/pong/close frame), ``on_timer(now_ns)``,
    ``on_rest_snapshot(topic, body, recv_ns, error) -> events``, ``on_close(now_ns) -> events``,
    ``add(subs)``, ``remove(subs)``, ``inherit(previous)``;
output
    ``drain() -> list`` of :class:`Send` (frames), events raised outside ``on_frame`` (timers)
    and actions: :class:`Close` (dead: reconnect), :class:`Fatal` (never reconnect),
    :class:`FailOver` (the venue announced a close: make-before-break), :class:`FetchSnapshot`
    (a book needs a REST snapshot). ``has_output`` is true while anything waits; the engine
    checks it after every call and drains;
queries (read-only)
    ``books()``, ``book_seqs()``, ``broken()``, ``refused``, ``rtt_ns``, ``conn``.

Sessions never touch sockets or the event loop, so the same code decodes live frames,
recorded files and replayed archives.
"""

from __future__ import annotations

import reprlib
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import msgspec

from tickwire import book as _book
from tickwire.book import Book
from tickwire.model import BookUpdate, Event, Gap, Resynced, VenueError
from tickwire.subscription import SpecError, Subscription
from tickwire.venues.ledger import FINAL, Ledger

MAX_INFLATED_BYTES = 64 * 1024 * 1024
MAX_ERROR_MSG = 500  # characters of a VenueError's message (a venue's refusal text can be any size)
"""A compressed frame may not inflate to more than this (real frames are far below 1 MB; a
398 KB frame could otherwise become 400 MB in memory). Per venue: ``venue_options={"okx":
{"max_inflated_bytes": N}}`` / ``--venue-option okx.max_inflated_bytes=N``."""


def inflate_bounded(data: bytes, wbits: int, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """zlib/gzip/raw deflate (``wbits`` as for :func:`zlib.decompress`), refusing to produce more
    than ``limit`` bytes: raises :class:`zlib.error` naming the limit."""
    d = zlib.decompressobj(wbits)
    out = d.decompress(data, limit)
    if d.unconsumed_tail or (not d.eof and len(out) >= limit):
        raise zlib.error(f"frame inflates to more than {limit:,} bytes (max_inflated_bytes); dropped")
    return out


def good_print(price: Any, size: Any) -> bool:
    """A trade a user can trust: its price a finite non-negative decimal string and its size a
    positive one (the rule of book levels, :mod:`tickwire.book`; compiled when the hot path is)."""
    kind = _book._kind
    return kind(price) >= 0 and kind(size) > 0


def bad_print(venue: str, market: str, symbol: str, stream: str, trade_id: Any, price: Any, size: Any,
              recv_ns: int) -> VenueError:
    """The VenueError that replaces a trade whose price or size is not a number (never delivered
    as a Trade: found by the chaos run's garbled frames)."""
    return VenueError(venue=venue, market=market, symbol=symbol, stream=stream, recv_ns=recv_ns, code="bad-trade",
                      msg=f"trade {trade_id!r} dropped: price {price!r} / size {size!r} is not a non-negative "
                          "decimal (size > 0)")


UNDECODABLE = (msgspec.DecodeError, RecursionError)
"""What a msgspec decoder raises for bytes it cannot take (ValidationError is a DecodeError): past
Python's recursion limit (JSON nested hundreds deep) it raises RecursionError, which is no bug."""

_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict = 2, 40, 40, 4, 4


def shown(value: Any, limit: int = 80) -> str:
    """A venue's value in a one-line message: its repr, at most ``limit`` characters (a string's
    head; a container's first items, two levels deep)."""
    try:
        r = repr(value[:limit + 1]) if isinstance(value, (str, bytes)) else _SHOW.repr(value)
    except ValueError:  # an integer of more than 4,300 digits
        r = f"<{type(value).__name__} too long to show>"
    return r if len(r) <= limit else r[:limit] + "..."


def bad_field(what: str, field: str, value: Any, expected: str) -> str:
    """The message for a field of the wrong type, in one line: what is dropped, the field, its
    value (cut short) and what was expected."""
    return f"{what} dropped: {field} {shown(value)} is not {expected}"


def undecodable(e: BaseException) -> str:
    """Why a frame did not decode, in one line: the decoder's message, or plain words for absurd nesting."""
    if isinstance(e, RecursionError):
        return "JSON nested deeper than the decoder's recursion limit; venue frames nest a few levels"
    return str(e)


# Send priorities. The engine sends CONTROL frames (heartbeats) at once, ahead of any
# queued REQUEST (subscribe/unsubscribe/login), and paces REQUESTs under the venue's limits.
CONTROL = 0
REQUEST = 1


class Send(NamedTuple):
    """A frame to send: ``priority`` CONTROL (at once) or REQUEST (paced), ``what`` for logs."""

    priority: int
    payload: bytes
    what: str


class Close(NamedTuple):
    """The connection is dead (no pong, no login reply...): close it and reconnect."""

    reason: str


class Fatal(NamedTuple):
    """The connection can never succeed (login refused, no credentials): close, never retry."""

    error: VenueError


class FailOver(NamedTuple):
    """The venue announced it will close this connection (OKX 64008): replace it first."""

    notice_ns: int


class FetchSnapshot(NamedTuple):
    """A book needs a REST snapshot: GET ``path`` on the venue's REST host, answer with
    :meth:`Session.on_rest_snapshot` (``topic``, the decoded body or None and the error)."""

    topic: str
    path: str


Action = Close | Fatal | FailOver | FetchSnapshot


@dataclass
class Limits:
    """Venue rules the engine enforces on our side (the venue's documented numbers; the
    engine keeps ``margin`` of every short window free and spreads sends evenly, see
    :class:`tickwire.net.ratelimit.Pacer`). Override per feed: ``limits={"bge": {"margin": 0.4}}``."""

    connect_rates: tuple[tuple[int, float], ...] = ((500, 300.0),)  # new connections per window, per host
    max_msgs_per_s: float | None = None  # all outbound frames per connection (BGE: 50)
    max_requests: int | None = None    # subscribe/unsubscribe/login requests per ...
    requests_window_s: float = 3600.0  # ... window per connection (OKX: 480/h)
    margin: float = 0.2                # share of each short window (<= 10 s) kept free for jitter


@dataclass
class Timers:
    """Heartbeat and liveness timers, all overridable so tests can compress time."""

    ping_interval_s: float = 20.0      # send the venue's ping this often (or after this much idle)
    ping_when_idle: bool = False       # True: ping only after ping_interval_s without a frame (OKX)
    pong_timeout_s: float = 10.0       # no pong (or any frame) this long after a ping: dead
    stale_s: float | None = None       # no frame at all for this long: dead (None: derived)
    login_timeout_s: float = 10.0      # no login reply this long after the login request: dead
    resync_min_interval_s: float = 1.0  # resyncs and retries of one topic: this often at most, doubling up to 30 s
    notice_lead_s: float = 30.0        # OKX-style upgrade notices: how long until the close
    stream_silence_s: float = 10.0     # a regularly pushed book silent this long is resubscribed
    resync_timeout_s: float = 10.0     # a resync that brought no snapshot this long is sent again (backoff)
    request_timeout_s: float = 30.0    # a subscribe with no answer and no data this long is sent again


@dataclass
class SessionOptions:
    timers: Timers = field(default_factory=Timers)
    credentials: Any = None            # venue-specific credentials object (never logged)
    extra: dict = field(default_factory=dict)
    accept_any: bool = False           # offline decoding: build stream state on first sight


@dataclass
class VenueOptions:
    """The venue options every venue takes (``venue_options={"okx": {...}}``, ``--venue-option
    okx.NAME=VALUE``); a venue with more declares a subclass as its ``Venue.venue_options``."""

    max_inflated_bytes: int = MAX_INFLATED_BYTES  # largest a compressed frame may inflate to


class Venue:
    """Venue-wide, connection-independent knowledge. Subclasses fill in the details."""

    name: str = ""
    markets: tuple[str, ...] = ()
    default_market: str = ""
    networks: dict[str, str] = {}   # network name -> base URL
    limits: Limits = Limits()
    venue_options: type = VenueOptions  # the venue options it takes (a dataclass: names, types, defaults)

    def check_options(self, options: dict) -> dict:
        """The user's venue options, checked before anything connects: a name the venue does not
        take, or a value of the wrong type, is an OptionError naming it and what is valid."""
        from tickwire.options import check_fields, check_positive

        out = check_fields(f"venue option for {self.name}", self.venue_options, options)
        check_positive(f"venue option for {self.name}", out)
        return out

    def parse(self, market: str, channel: str, symbol: str, spec: str) -> Subscription:
        raise NotImplementedError

    def url(self, endpoint: str, base: str | None = None, network: str = "mainnet") -> str:
        """Full URL of ``endpoint``; ``base`` (scheme://host[:port]) overrides the host."""
        raise NotImplementedError

    def rest_base(self, ws_base: str | None, network: str) -> str:
        """REST host of the venue (for book snapshots), following a WebSocket host override."""
        raise NotImplementedError

    def connect_url(self, endpoint: str, base: str | None, network: str, options: dict) -> str:
        """The URL to dial, with the user's venue options applied (e.g. OKX's port)."""
        return self.url(endpoint, base, network)

    def timers(self) -> Timers:
        return Timers()

    def plan(self, subs: Sequence[Subscription]) -> list[list[Subscription]]:
        """Group one endpoint's subscriptions into connections within the venue's limits."""
        return [list(subs)] if subs else []

    @staticmethod
    def pack(subs: Sequence[Subscription], cost: Callable[[Subscription], tuple[int, ...]],
             budget: tuple[int, ...]) -> list[list[Subscription]]:
        """Greedy packing: fill a connection until the next stream would exceed any budget."""
        groups: list[list[Subscription]] = []
        cur: list[Subscription] = []
        used = [0] * len(budget)
        for s in subs:
            c = cost(s)
            if cur and any(u + x > b for u, x, b in zip(used, c, budget)):
                groups.append(cur)
                cur, used = [], [0] * len(budget)
            cur.append(s)
            used = [u + x for u, x in zip(used, c)]
        if cur:
            groups.append(cur)
        return groups

    def new_session(self, endpoint: str, conn: str, options: SessionOptions) -> "Session":
        raise NotImplementedError

    def close_is_fatal(self, code: int | None) -> str | None:
        """Why a venue close code means "do not reconnect" (None: reconnect with backoff)."""
        return None

    def close_means_slow_down(self, code: int | None, reason: str) -> bool:
        """The venue closed us for sending too fast: come back at a slower pace."""
        return False

    def close_means_split(self, code: int | None) -> bool:
        """The venue closed us for carrying too much: spread the streams over more connections."""
        return False

    def decode_endpoint(self, market: str) -> str:
        """Which endpoint's dialect decodes recorded frames of ``market``."""
        return market or self.default_market

    def decoder(self, endpoint: str, conn: str = "decode") -> "Session":
        """A session for offline decoding (``tickwire decode``, archives): every topic accepted."""
        return self.new_session(endpoint, conn, SessionOptions(accept_any=True))

    # helpers for subclasses -----------------------------------------------------------
    def bad(self, spec: str, why: str) -> SpecError:
        return SpecError(f"bad subscription {spec!r} for {self.name}: {why}")


class StreamState:
    """Per-subscription state a session keeps: the book and its sequence chain."""

    __slots__ = ("sub", "book", "last_seq", "synced", "gap_reported", "resync_due_ns",
                 "resync_backoff_s", "resyncs", "last_resync_ns", "last_rx_ns", "extra", "max_silence_ns",
                 "seen_seq", "seen_rx_ns", "seen_ns")

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.book: Book | None = Book(sub.venue, sub.symbol) if sub.kind == "book" else None
        self.last_seq = 0
        self.synced = False          # a snapshot has been applied since (re)subscribe
        self.gap_reported = False
        self.resync_due_ns = 0
        self.resync_backoff_s = 0.0
        self.resyncs = 0
        self.last_resync_ns = 0
        self.last_rx_ns = 0
        self.extra: Any = None       # venue-specific (e.g. merged ticker)
        self.max_silence_ns = 0      # the venue promises an update at least this often (0: no promise)
        self.seen_seq = 0
        self.seen_rx_ns = 0
        self.seen_ns = 0


class Session:
    """Protocol state of one connection. Subclasses implement the venue dialect.

    The engine calls :meth:`start` once connected, :meth:`on_frame` for each frame,
    :meth:`on_timer` about every 100 ms, and :meth:`on_close` when the socket ends; after
    each call it takes what :meth:`drain` returns (see the module docstring).

    The subscription lifecycle (requests, acks, refusals, retries, resyncs) is the
    :class:`~tickwire.venues.ledger.Ledger`'s (``self.ledger``); a subclass declares what its
    venue does differently: :attr:`args_per_request`, :meth:`request_frame`, :meth:`refusal`,
    and, where the venue wants a login first, :meth:`needs_login` and :meth:`login`.
    """

    venue: Venue
    args_per_request = 1                               # topics per subscribe/unsubscribe request

    def __init__(self, venue: Venue, endpoint: str, conn: str, options: SessionOptions) -> None:
        self.venue = venue
        self.endpoint = endpoint
        self.conn = conn
        self.options = options
        self.timers = options.timers
        # Everything waiting for the engine (Send, events, actions), in order; see drain().
        # Named for the hot path: the reader tests it after every frame.
        self.outbox: list[Any] = []
        self.streams: dict[str, StreamState] = {}     # topic -> state
        self.accept_any = options.accept_any
        self.max_inflated = int(options.extra.get("max_inflated_bytes", MAX_INFLATED_BYTES))
        if not _book._bound:  # the compiled level check for trades too (good_print), not only books
            _book._bind()
        self.ledger = Ledger(self)
        self.last_rx_ns = 0
        self.ping_sent_ns = 0
        self.pong_pending = False
        self.client_pings = True                       # False where the server pings us (BGE)
        self.started_ns = 0
        self.login_sent_ns = 0                         # when the login request went out (0: none)
        self.logged_in = False
        self.rtt_ns: int | None = None
        self.closing = False                           # Close or Fatal was asked for
        self.failed: VenueError | None = None          # the Fatal error, once asked for
        self.refused: set[str] = set()                 # topics the venue refused for good
        self.refused_why: dict[str, str] = {}          # ... and the venue's code and message for each

    # -- output (the contract's one way out) -----------------------------------------------
    @property
    def has_output(self) -> bool:
        return bool(self.outbox)

    def drain(self) -> list[Any]:
        """Everything queued since the last call: :class:`Send`, events, actions, in order."""
        out = self.outbox
        if not out:
            return out
        self.outbox = []
        return out

    def send(self, payload: bytes | str, what: str) -> None:
        """Queue a request frame (paced by the engine under the venue's limits)."""
        self.outbox.append(Send(REQUEST, payload.encode() if isinstance(payload, str) else payload, what))

    def send_control(self, payload: bytes | str, what: str) -> None:
        """Queue a heartbeat frame (sent at once, ahead of queued requests)."""
        self.outbox.append(Send(CONTROL, payload.encode() if isinstance(payload, str) else payload, what))

    def emit(self, events: Iterable[Event]) -> None:
        """Hand events raised outside on_frame (timers, REST) to the engine."""
        self.outbox.extend(events)

    def close(self, reason: str) -> None:
        """Ask the engine to close this connection and reconnect (once)."""
        if not self.closing:
            self.closing = True
            self.outbox.append(Close(reason))

    def fail(self, error: VenueError) -> None:
        """Ask the engine to close this connection and never reconnect it (once)."""
        if self.failed is None:
            self.failed = error
            self.closing = True
            self.outbox.append(Fatal(error))

    # -- queries ---------------------------------------------------------------------------
    def books(self) -> dict[str, Book]:
        """Every book this connection maintains, by stream spec."""
        return {st.sub.spec: st.book for st in self.streams.values() if st.book is not None}

    def broken(self) -> list[str]:
        """Streams whose integrity broke (a Gap was reported) and that are not resynced yet."""
        return [st.sub.spec for st in self.streams.values() if st.gap_reported]

    def book_seqs(self) -> dict[str, int]:
        """Last sequence applied to each intact book, by stream spec (failover joins on it)."""
        return {st.sub.spec: st.last_seq for st in self.streams.values() if st.book is not None and st.synced}

    # -- what a venue declares -------------------------------------------------------------
    def request_frame(self, op: str, subs: Sequence[Subscription], req_id: str) -> bytes:
        """The frame asking the venue to ``op`` (ledger.SUBSCRIBE or UNSUBSCRIBE) these streams;
        ``req_id`` is the ledger's id of the request (sent where the venue echoes one)."""
        raise NotImplementedError

    def refusal(self, code: Any, msg: str) -> str:
        """What a refusal with this code and text means: ledger.FINAL (the default), TRANSIENT,
        HARMLESS or REPORT (see :mod:`tickwire.venues.ledger`)."""
        return FINAL

    def needs_login(self) -> bool:
        """Whether this connection logs in before it subscribes."""
        return False

    def login(self, now_ns: int) -> None:
        """Queue the login request (or fail); on the venue's yes, set ``logged_in`` and open the ledger."""
        raise NotImplementedError

    # -- inputs ----------------------------------------------------------------------------
    def frame_failed(self, e: BaseException, payload: Any, recv_ns: int) -> list[Event]:
        """``on_frame`` raised (a bad level in a book, a dialect bug, absurd nesting): the
        frame becomes a VenueError and, for a book, a Gap and a resync of that stream; nothing
        escapes a session. The engine calls this; offline decoders use :meth:`decode_safely`."""
        from tickwire.book import BadLevel

        if isinstance(e, BadLevel):
            out: list[Event] = []
            for st in self.streams.values():
                if st.book is e.book:
                    out.append(self.error("bad-level", str(e), recv_ns=recv_ns, sub=st.sub))
                    self.break_book(st, recv_ns, f"bad level {e.level!r}", None, None, out)
                    return out
            return [self.error("bad-level", str(e), recv_ns=recv_ns)]
        head = bytes(payload[:120]) if isinstance(payload, (bytes, bytearray, memoryview)) else b""
        return [self.error("internal", f"frame not understood ({type(e).__name__}: {str(e)[:200]}): {head!r}",
                           recv_ns=recv_ns)]

    def decode_safely(self, payload: Any, binary: bool, recv_ns: int) -> list[Event]:
        """:meth:`on_frame` for offline decoding: never raises."""
        try:
            return self.on_frame(payload, binary, recv_ns)
        except Exception as e:
            return self.frame_failed(e, payload, recv_ns)

    def on_traffic(self, recv_ns: int) -> None:
        """A WebSocket-level frame (ping, pong, close) arrived: the connection is alive."""
        self.last_rx_ns = recv_ns

    def start(self, now_ns: int) -> None:
        """Queue the first frames: the login, or the subscriptions."""
        self.started_ns = now_ns
        if self.needs_login():
            self.login(now_ns)
        else:
            self.ledger.open()

    def add(self, subs: Iterable[Subscription]) -> None:
        """Subscribe more streams on this connection (once it is open for requests)."""
        new = self.track(subs)
        if new:
            self.ledger.subscribe([st.sub for st in new])

    def remove(self, subs: Iterable[Subscription]) -> None:
        """Unsubscribe streams on this connection; their late data is ignored."""
        gone = [st.sub for st in (self.streams.pop(s.topic, None) for s in subs) if st is not None]
        if gone:
            self.ledger.unsubscribe(gone)

    def track(self, subs: Iterable[Subscription]) -> list[StreamState]:
        """Create the state of streams not yet on this connection; returns the new ones."""
        new = []
        for s in subs:
            if s.topic not in self.streams:
                st = self.streams[s.topic] = StreamState(s)
                if self.pushes_regularly(s):
                    st.max_silence_ns = int(self.timers.stream_silence_s * 1e9)
                new.append(st)
        return new

    def pushes_regularly(self, sub: Subscription) -> bool:
        """Whether the venue promises updates on this stream even when nothing changes."""
        return False

    def on_frame(self, payload: bytes | memoryview, binary: bool, recv_ns: int) -> list[Event]:
        raise NotImplementedError

    def inherit(self, previous: "Session") -> None:
        """Carry integrity state over a reconnect: a Gap reported on the old connection is
        answered by Resynced when the new connection delivers the fresh snapshot."""
        for topic, st in previous.streams.items():
            mine = self.streams.get(topic)
            if mine is not None and st.gap_reported:
                mine.gap_reported = True

    def on_timer(self, now_ns: int) -> None:
        """Login deadline, heartbeats, liveness, silent streams and due resyncs."""
        t = self.timers
        if self.login_sent_ns and not self.logged_in and now_ns - self.login_sent_ns > t.login_timeout_s * 1e9:
            self.close(f"no login reply within {t.login_timeout_s:g}s")
        self.check_heartbeat(now_ns)
        self.check_silence(now_ns)
        self.check_resyncs(now_ns)
        self.ledger.check_unanswered(now_ns)
        self.ledger.run_due(now_ns)

    def check_resyncs(self, now_ns: int) -> None:
        """A resync whose snapshot never came (lost, undecodable, or the subscribe answered with a
        non-fatal error): send it again, with the stream's backoff, and say so each time; a broken
        book is never left silently dead (``feed.stats()`` lists it under ``stuck`` meanwhile)."""
        limit = int(self.timers.resync_timeout_s * 1e9)
        for st in self.streams.values():
            # Since the last resync, or (a Gap carried over a reconnect) since this connection
            # started: its first subscribe may bring no snapshot either.
            since = st.last_resync_ns or self.started_ns
            if (st.book is not None and not st.synced and st.gap_reported and since
                    and not st.resync_due_ns and now_ns - since > limit):
                wait = self.ledger.retry_later(st, now_ns)
                self.outbox.append(self.gap(st, now_ns, f"still broken: resync #{st.resyncs} brought no snapshot "
                                                        f"within {limit / 1e9:g}s; again in {wait:g}s"))

    def check_silence(self, now_ns: int) -> None:
        """A book whose venue promises regular pushes (Bybit level 1 every 3 s, OKX keepalives,
        BGE full books) and went silent while the connection lives: resync that stream only."""
        for st in self.streams.values():
            lim = st.max_silence_ns
            if not lim or not st.synced:
                continue
            if st.last_seq != st.seen_seq or st.last_rx_ns != st.seen_rx_ns or not st.seen_ns:
                st.seen_seq, st.seen_rx_ns, st.seen_ns = st.last_seq, st.last_rx_ns, now_ns
            elif now_ns - st.seen_ns > lim:
                st.seen_ns = now_ns
                self.break_book(st, now_ns, f"no update for {lim / 1e9:g}s on a stream the venue pushes "
                                            "regularly; resubscribing", None, None, self.outbox)

    def on_close(self, recv_ns: int) -> list[Event]:
        """The connection ended: every book on it loses continuity until resubscribed."""
        out: list[Event] = []
        for st in self.streams.values():
            if st.book is not None and st.synced:
                st.book.invalidate()
                st.synced = False
                st.gap_reported = True
                out.append(self.gap(st, recv_ns, "connection closed; resubscribing"))
        return out

    # -- heartbeat helpers ----------------------------------------------------------------
    def ping_payload(self) -> Any:
        raise NotImplementedError

    def check_heartbeat(self, now_ns: int) -> None:
        t = self.timers
        if self.pong_pending and now_ns - self.ping_sent_ns > t.pong_timeout_s * 1e9:
            self.close(f"no pong within {t.pong_timeout_s:g}s of our ping")
            return
        if t.stale_s is not None and now_ns - max(self.last_rx_ns, self.started_ns) > t.stale_s * 1e9:
            self.close(f"no frame for {t.stale_s:g}s")
            return
        if self.client_pings and not self.pong_pending:
            ref = self.last_rx_ns if t.ping_when_idle else self.ping_sent_ns
            if now_ns - max(ref, self.started_ns) >= t.ping_interval_s * 1e9:
                self.ping_sent_ns = now_ns
                self.pong_pending = True
                self.send_control(self.ping_payload(), "ping")

    def pong_received(self, recv_ns: int) -> None:
        if self.pong_pending:
            self.rtt_ns = recv_ns - self.ping_sent_ns
            self.pong_pending = False

    # -- integrity helpers ------------------------------------------------------------------
    def gap(self, st: StreamState, recv_ns: int, reason: str, expected: int | None = None,
            received: int | None = None) -> Gap:
        sub = st.sub
        return Gap(venue=sub.venue, market=sub.market, symbol=sub.symbol, stream=sub.spec,
                   recv_ns=recv_ns, conn=self.conn, reason=reason, expected=expected, received=received)

    def resynced(self, st: StreamState, recv_ns: int) -> Resynced:
        sub = st.sub
        st.gap_reported = False
        return Resynced(venue=sub.venue, market=sub.market, symbol=sub.symbol, stream=sub.spec,
                        recv_ns=recv_ns, conn=self.conn, seq=st.last_seq)

    def break_book(self, st: StreamState, recv_ns: int, reason: str, expected: int | None,
                   received: int | None, out: list[Event]) -> None:
        """Mark the book invalid, report the Gap once, and have the ledger resync the stream."""
        if st.book is not None:
            st.book.invalidate()
        st.synced = False
        if not st.gap_reported:
            st.gap_reported = True
            out.append(self.gap(st, recv_ns, reason, expected, received))
        self.ledger.resync_later(st, recv_ns)

    def chains_deltas(self, sub: Subscription) -> bool:
        """Whether each push of this stream builds on the previous one (book deltas), so that a
        lost push corrupts it."""
        return sub.kind == "book"

    def push_lost(self, st: StreamState, recv_ns: int, why: str, out: list[Event]) -> None:
        """A push of this stream could not be decoded: an intact book that chains deltas lost one,
        so it is broken at once (Gap + resync, as for a bad level), not at the next sequence check."""
        if st.book is not None and st.synced and self.chains_deltas(st.sub):
            self.break_book(st, recv_ns, f"undecodable push: {why}", None, None, out)

    def on_rest_snapshot(self, topic: str, body: Any, recv_ns: int, error: str = "") -> list[Event]:
        """The decoded REST reply (or None and the error) to a :class:`FetchSnapshot`."""
        return []

    def book_event(self, st: StreamState, bids: list, asks: list, snapshot: bool, seq: int,
                   prev_seq: int, exch_ns: int, recv_ns: int) -> BookUpdate:
        sub = st.sub
        return BookUpdate(venue=sub.venue, market=sub.market, symbol=sub.symbol, stream=sub.spec,
                          exch_ns=exch_ns, recv_ns=recv_ns, bids=bids, asks=asks, snapshot=snapshot,
                          seq=seq, prev_seq=prev_seq, book=st.book)

    def error(self, code: Any, msg: str, request: str = "", stream: str = "", recv_ns: int = 0,
              fatal: bool = False, sub: Subscription | None = None) -> VenueError:
        """A VenueError of this connection; ``recv_ns`` defaults to the last frame's time. The
        message is cut at MAX_ERROR_MSG characters: it may carry a venue's text, of any size."""
        if len(msg) > MAX_ERROR_MSG:
            msg = f"{msg[:MAX_ERROR_MSG]}... ({len(msg):,} characters)"
        return VenueError(venue=self.venue.name, market=sub.market if sub else "",
                          symbol=sub.symbol if sub else "", stream=stream or (sub.spec if sub else ""),
                          recv_ns=recv_ns or self.last_rx_ns or self.started_ns, conn=self.conn, code=str(code),
                          msg=msg, request=request, fatal=fatal)
