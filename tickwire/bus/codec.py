"""What goes on the bus: subjects, the compact binary encoding of events, and message ids.

Subjects (NATS tokens are separated by ``.``; ``*`` and ``>`` are wildcards)::

    md.<venue>.<market>.<kind>.<channel>.<symbol>     normalized events of one stream
    snap.<venue>.<market>.<kind>.<channel>.<symbol>   periodic book snapshots (late joiners)
    status.<collector>.<venue>                        a collector's status events
    raw.<venue>.<collector>                           raw frames of a collector's sockets

``kind`` is the normalized channel kind (``book``, ``trades``, ``ticker``, ``candles``...) so
``md.*.*.trades.>`` selects every trade stream; ``channel`` is the venue's own channel
(``orderbook.50``, ``books``, ``candle1m``) so two streams of the same kind on one symbol
(Bybit ``orderbook.50`` and ``orderbook.200``, candles of two intervals) never share a subject
and their sequence chains never mix. Every token is escaped with :func:`escape`: ``.``, ``*``,
``>``, ``~``, whitespace and control characters become ``~XX`` (two hex digits of the byte), an
empty token is ``_`` (a literal ``_`` token is ``~5F``). ``BTC.USDT`` -> ``BTC~2EUSDT``.

Encoding (msgpack via msgspec; one bus message carries events of one stream: one venue frame,
or a chunk of several frames' book deltas or trades, see :mod:`tickwire.bus.collector`):
``[1, stream, recv_ns, conn, src, events]``, plus ``recv_each`` (every event's receipt time)
when the events span frames, with ``events`` a list of ``[type code, exch_ns, *fields of that
event type]`` (:func:`event_row`), all encoded in one call. ``venue``, ``market``, ``symbol``
and ``stream`` are sent once per message (decoded back from the stream spec),
``BookUpdate.book`` is never sent (consumers maintain books, see :mod:`tickwire.bus.consumer`).
A reader of the one-frame format reads chunks too (a trailing field is ignored).

Message ids (``Nats-Msg-Id``, JetStream's deduplication key) come from the venue's content
only, never from what differs between two connections to the same venue (local receipt times,
the connection name ``conn``, the collector ``src``), so two collectors on different lines give
the same id to the same venue events:

* a message of book deltas and trades only — events consumers deduplicate by a venue key
  (:func:`keyed`) — is named by those keys (:func:`keys_id`): last and first key, number of
  events, exchange times, stream. The bus then deduplicates exactly what consumers would;
* any other message (venue snapshots, tickers, candles...) is named ``<key>[/<n>]:<hash>``:
  ``key`` the venue's position of its last event (``s<seq>`` a venue snapshot, ``e<exch_ns>``
  other kinds), ``n`` the number of events when more than one, ``hash`` 64 bits of SHA-256 over
  the stream spec and the encoded events (receipt times outside): anything the venue said
  differently (each connection's subscribe-time snapshot) gets another id.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any, Iterable

import msgspec

from tickwire.model import EVENT_TYPES, BookUpdate, Event, Status, Trade

FORMAT = 1

_SPECIAL = set(".*>~ \t\r\n")


def escape(token: str) -> str:
    """A string as one NATS subject token (see the module docstring)."""
    if not token:
        return "_"
    if token == "_":
        return "~5F"
    if not any(c in _SPECIAL or ord(c) < 33 or ord(c) == 127 for c in token):
        return token
    out = []
    for c in token:
        if c in _SPECIAL or ord(c) < 33 or ord(c) == 127:
            out.append("".join(f"~{b:02X}" for b in c.encode()))
        else:
            out.append(c)
    return "".join(out)


def unescape(token: str) -> str:
    if token == "_":
        return ""
    if "~" not in token:
        return token
    raw = bytearray()
    i = 0
    while i < len(token):
        c = token[i]
        if c == "~" and i + 2 < len(token) + 0 and _ishex(token[i + 1:i + 3]):
            raw.append(int(token[i + 1:i + 3], 16))
            i += 3
        else:
            raw.extend(c.encode())
            i += 1
    return raw.decode(errors="replace")


def _ishex(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


@lru_cache(maxsize=65536)
def stream_tokens(spec: str) -> str:
    """``venue.market.kind.channel.symbol`` (escaped) of a stream spec."""
    from tickwire.venues import parse

    s = parse(spec)
    return ".".join(escape(t) for t in (s.venue, s.market, s.kind, s.channel, s.symbol))


def md_subject(spec: str) -> str:
    return "md." + stream_tokens(spec)


def snap_subject(spec: str) -> str:
    return "snap." + stream_tokens(spec)


def status_subject(collector: str, venue: str) -> str:
    return f"status.{escape(collector)}.{escape(venue)}"


def raw_subject(venue: str, collector: str) -> str:
    return f"raw.{escape(venue)}.{escape(collector)}"


# --------------------------------------------------------------------------- events

# Stable wire codes (never renumber; add new types at the end).
_CODES = ["Trade", "BookUpdate", "Ticker", "Candle", "Funding", "MarkPrice", "IndexPrice", "OpenInterest",
          "Liquidation", "DexPrice", "DexCandle", "DexTrade", "DexSignal", "Order", "Fill", "Balance", "Position",
          "Greeks"]
CODE_OF: dict[type, int] = {EVENT_TYPES[n]: i + 1 for i, n in enumerate(_CODES)}
TYPE_OF: dict[int, type] = {i + 1: EVENT_TYPES[n] for i, n in enumerate(_CODES)}
_BASE = 6  # venue, market, symbol, stream, exch_ns, recv_ns: the last six fields of every event


def _field_names(cls: type) -> tuple[str, ...]:
    names = tuple(f.name for f in msgspec.structs.fields(cls))
    own = names[:-_BASE]
    assert names[-_BASE:] == ("venue", "market", "symbol", "stream", "exch_ns", "recv_ns"), cls
    return own


_OWN = {cls: _field_names(cls) for cls in CODE_OF}
_astuple = msgspec.structs.astuple
_enc = msgspec.msgpack.Encoder()
_encode = _enc.encode


def event_row(ev: Event) -> tuple:
    """The venue content of one event, without receipt-side fields: ``(type code, exch_ns,
    *fields of its type)``. (The collector's loop builds the rows of book deltas and trades
    inline, the same tuples: ``tests/test_bus_codec.py`` checks they agree.)"""
    cls = ev.__class__
    if cls is BookUpdate:
        vl = ev.venue_levels  # OKX: the venue's own levels (order counts) travel too
        if vl is None:
            return (2, ev.exch_ns, ev.bids, ev.asks, ev.snapshot, ev.seq, ev.prev_seq)
        return (2, ev.exch_ns, ev.bids, ev.asks, ev.snapshot, ev.seq, ev.prev_seq, vl)
    if cls is Trade:
        return (1, ev.exch_ns, ev.price, ev.size, ev.side, ev.trade_id, ev.seq)
    row = (CODE_OF[cls], ev.exch_ns) + _astuple(ev)[:-_BASE]
    # market and symbol travel once per message (from the stream spec), except where an event
    # names its own: private streams (okx:orders:ANY), instType-wide ones (liquidation-orders).
    # Then ``(market, symbol, number of fields)`` follows the fields: a reader that does not
    # know it ignores trailing items, and the count keeps it apart from a field added later.
    _, market, symbol = _stream_ids(ev.stream)
    if ev.market != market or ev.symbol != symbol:
        return row + (ev.market, ev.symbol, len(row) - 2)
    return row


def encode_events(events: list[Event]) -> bytes:
    """The venue content of ``events`` (all of one stream): their rows, encoded in one call."""
    return _encode([event_row(ev) for ev in events])


def row_key(row: tuple) -> str:
    """The venue position of one row: ``b<seq>`` a book delta, ``s<seq>`` a venue snapshot,
    ``t<trade id>`` a trade, ``e<exch_ns>`` anything else."""
    code = row[0]
    if code == 2:
        return ("s%d" if row[4] else "b%d") % row[5]
    if code == 1 and row[5]:
        return "t" + row[5]
    return "e%d" % row[1]


def message_key(events: list[Event]) -> str:
    """The venue position a message covers (the readable half of its id): the key of its last
    event, and ``/<n>`` when it holds ``n`` > 1 events."""
    key = row_key(event_row(events[-1]))
    n = len(events)
    return key if n == 1 else "%s/%d" % (key, n)


@lru_cache(maxsize=65536)
def _hasher(spec: str) -> Any:
    return hashlib.sha256(b"tickwire md\0" + spec.encode() + b"\0")


def message_id(spec: str, body_events: bytes, events: list[Event]) -> str:
    """``<key>:<hash>``: 64 bits of SHA-256 over the stream spec and the encoded venue content."""
    h = _hasher(spec).copy()
    h.update(body_events)
    return f"{message_key(events)}:{h.digest()[:8].hex()}"


@lru_cache(maxsize=65536)
def _stream_tag(spec: str) -> str:
    return hashlib.sha256(b"tickwire stream\0" + spec.encode()).digest()[:6].hex()


def keyed(ev: Event) -> bool:
    """Whether consumers deduplicate ``ev`` by a venue key: a book delta by its venue sequence,
    a trade by its trade id."""
    cls = ev.__class__
    if cls is BookUpdate:
        return not ev.snapshot and bool(ev.seq)
    return cls is Trade and bool(ev.trade_id)


def keys_id(spec: str, rows: list[tuple]) -> str:
    """The id of a message of keyed events (:func:`keyed`) only: its last and first venue keys,
    its number of events, the exchange time of its first event and the span to its last, and
    a tag of the stream — ``b1234567/64:b1234504@18c2f3a1b2c3d4e5+1f4:3fa2b1c4d5e6``. Two
    messages with the same id hold the same events: keys name events (what consumers drop
    copies by), and the exchange times tell a venue that restarted its sequences apart."""
    first, last = rows[0], rows[-1]
    e0 = first[1]
    if len(rows) == 1:
        return "%s@%x:%s" % (row_key(last), e0, _stream_tag(spec))
    return "%s/%d:%s@%x+%x:%s" % (row_key(last), len(rows), row_key(first), e0, last[1] - e0, _stream_tag(spec))


def encode_rows(spec: str, rows: list[tuple], recv: list[int], conn: str, src: str,
                by_keys: bool = False) -> tuple[bytes, str]:
    """(body, message id) of one md message of stream ``spec`` from the rows of its events
    (:func:`event_row`) and their receipt times: the rows encoded in one call, the receipt times
    beside them (one per event when the events span frames, else just the one). ``by_keys``:
    every event is keyed (:func:`keyed`), the id is :func:`keys_id`; else a hash of the
    content (:func:`message_id`)."""
    ev_bytes = _encode(rows)
    r0 = recv[0]
    n = len(rows)
    if n > 1 and (recv[-1] != r0 or any(r != r0 for r in recv)):
        body = _encode((FORMAT, spec, r0, conn, src, msgspec.Raw(ev_bytes), recv))
    else:
        body = _encode((FORMAT, spec, r0, conn, src, msgspec.Raw(ev_bytes)))
    if by_keys:
        return body, keys_id(spec, rows)
    h = _hasher(spec).copy()
    h.update(ev_bytes)
    key = row_key(rows[-1])
    if n > 1:
        return body, "%s/%d:%s" % (key, n, h.digest()[:8].hex())
    return body, "%s:%s" % (key, h.digest()[:8].hex())


def encode_md(spec: str, events: list[Event], conn: str, src: str) -> tuple[bytes, str]:
    """(body, message id) of one md message: events of stream ``spec`` (one venue frame, or a
    chunk of several frames' book deltas / trades, see :mod:`tickwire.bus.collector`)."""
    return encode_rows(spec, [event_row(ev) for ev in events], [ev.recv_ns for ev in events], conn, src,
                       all(map(keyed, events)))


class MdMessage(msgspec.Struct, array_like=True):
    format: int
    stream: str
    recv_ns: int                         # local receipt time (of the first event)
    conn: str
    src: str
    events: list[list[Any]]
    recv_each: list[int] | None = None   # the receipt time of every event, when they span frames


_md_dec = msgspec.msgpack.Decoder(MdMessage)


@lru_cache(maxsize=65536)
def _stream_ids(spec: str) -> tuple[str, str, str]:
    from tickwire.venues import parse

    s = parse(spec)
    return s.venue, s.market, s.symbol


def decode_md(body: bytes) -> tuple[MdMessage, list[Event]]:
    """The events of one md message, as the same tickwire event types ``stream()`` yields."""
    m = _md_dec.decode(body)
    venue, market, symbol = _stream_ids(m.stream)
    out: list[Event] = []
    stream = m.stream
    r0 = m.recv_ns
    each = m.recv_each
    if each is not None and len(each) != len(m.events):
        raise msgspec.ValidationError(f"{len(each)} receipt times for {len(m.events)} events")
    for i, row in enumerate(m.events):
        cls = TYPE_OF.get(row[0])
        if cls is None:
            continue  # a newer collector's event type: skipped, not fatal
        recv = r0 if each is None else each[i]
        if cls is BookUpdate:
            out.append(BookUpdate(venue=venue, market=market, symbol=symbol, stream=stream, exch_ns=row[1],
                                  recv_ns=recv, bids=row[2], asks=row[3], snapshot=row[4], seq=row[5],
                                  prev_seq=row[6], venue_levels=row[7] if len(row) > 7 else None))
        elif cls is Trade and len(row) == 7:
            out.append(Trade(row[2], row[3], row[4], row[5], row[6], venue=venue, market=market, symbol=symbol,
                             stream=stream, exch_ns=row[1], recv_ns=recv))
        else:
            mk, sy, fields = market, symbol, row[2:]
            last = row[-1]
            if type(last) is int and len(row) == last + 5 and last >= 0:  # (market, symbol, n) follows
                mk, sy, fields = row[-3], row[-2], row[2:2 + last]
            out.append(cls(venue=venue, market=mk, symbol=sy, stream=stream, exch_ns=row[1], recv_ns=recv,
                           **dict(zip(_OWN[cls], fields))))
    return m, out


# --------------------------------------------------------------------------- snapshots


class Snapshot(msgspec.Struct, array_like=True):
    """A collector's periodic copy of one book (subject ``snap.…``).

    ``seq`` is the venue sequence of the last update applied; ``md_seq`` the bus (stream)
    sequence where that update is stored: a late joiner loads the snapshot and continues with
    the md messages after ``md_seq``, skipping updates with a venue sequence <= ``seq``.
    """

    format: int
    stream: str
    seq: int
    md_seq: int
    exch_ns: int
    recv_ns: int
    src: str
    bids: list
    asks: list


_snap_dec = msgspec.msgpack.Decoder(Snapshot)


def encode_snapshot(s: Snapshot) -> bytes:
    return _encode(s)


def decode_snapshot(body: bytes) -> Snapshot:
    return _snap_dec.decode(body)


# --------------------------------------------------------------------------- status


class BusState(Status, tag=True):
    """The collector's link to the bus: ``state`` is ``down`` (publishing stopped, buffering),
    ``up`` (publishing again), or ``dropping`` (the buffer bound was reached: new messages are
    dropped and counted). ``pending`` messages wait in the buffer; ``dropped`` is the total."""

    state: str = ""
    pending: int = 0
    pending_bytes: int = 0
    dropped: int = 0
    reason: str = ""


_status_types: tuple = tuple(t for t in EVENT_TYPES.values() if issubclass(t, Status)) + (BusState,)
_status_dec = msgspec.msgpack.Decoder(list[Any])  # decoded by type below


def encode_status(events: Iterable[Event]) -> bytes:
    return _encode([msgspec.structs.asdict(e) | {"type": e.__class__.__name__} for e in events])


_STATUS_BY_NAME = {t.__name__: t for t in _status_types}


def decode_status(body: bytes) -> list[Event]:
    out = []
    for d in msgspec.msgpack.decode(body):
        cls = _STATUS_BY_NAME.get(d.pop("type", ""))
        if cls is not None:
            out.append(msgspec.convert(d, cls))
    return out


# --------------------------------------------------------------------------- raw frames


class RawRecord(msgspec.Struct, array_like=True):
    """One tap callback of a collector's socket: ``kind`` C opened (``info``: SocketInfo as a
    dict), F frame (``payload``, ``binary``), R REST reply (``info``: topic/error, ``payload``
    body), S switched (``info``: replaces), D closed (``info``: reason)."""

    kind: str
    sock: str
    ns: int
    payload: bytes = b""
    binary: bool = False
    info: Any = None


_raw_dec = msgspec.msgpack.Decoder(list[RawRecord])


def encode_raw(records: list[RawRecord]) -> bytes:
    return _encode(records)


def decode_raw(body: bytes) -> list[RawRecord]:
    return _raw_dec.decode(body)
