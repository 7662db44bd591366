"""Bybit v5 public and private wire types (msgspec) and their decoders (bybit.md §3, §7)."""

from __future__ import annotations

import msgspec


class Envelope(msgspec.Struct, gc=False):
    """Every frame: a push (``topic``) or a control reply (pong, ack, error)."""

    topic: str = ""
    type: str = ""
    ts: int = 0
    data: msgspec.Raw = msgspec.Raw(b"null")
    cts: int = 0
    # control frames
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    req_id: str = ""
    conn_id: str = ""
    args: list | None = None


class BookData(msgspec.Struct, gc=False):
    s: str = ""
    b: list[tuple[str, str]] = []
    a: list[tuple[str, str]] = []
    u: int = 0
    seq: int = 0


class BookMsg(msgspec.Struct, gc=False):
    topic: str
    type: str
    ts: int
    data: BookData
    cts: int = 0


class Trade(msgspec.Struct, gc=False):
    T: int
    s: str
    S: str
    v: str
    p: str
    i: str = ""
    seq: int = 0


class TradesMsg(msgspec.Struct, gc=False):
    topic: str
    data: list[Trade]
    type: str = ""
    ts: int = 0


class Kline(msgspec.Struct, gc=False):
    start: int
    end: int
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    turnover: str = ""
    confirm: bool = False
    timestamp: int = 0


class Liq(msgspec.Struct, gc=False):
    T: int
    s: str
    S: str
    v: str
    p: str


class OptionResp(msgspec.Struct, gc=False):
    """The option category's ``COMMAND_RESP`` ack: per-topic lists, no ``req_id``."""

    failTopics: list[str] = []
    successTopics: list[str] = []


class PrivateEnvelope(msgspec.Struct, gc=False):
    """Every ``/v5/private`` frame (bybit.md §3, §4.2, §8): a push (``topic``, ``creationTime``,
    ``data`` a list of items; no ``type``) or a control reply (auth, acks, pong). The trade
    endpoint's ``retCode``/``retMsg`` reply style is read too (a tolerant reading)."""

    topic: str = ""
    id: str = ""
    creationTime: int = 0
    data: msgspec.Raw = msgspec.Raw(b"null")
    op: str = ""
    success: bool | None = None
    ret_msg: str = ""
    req_id: str | int = ""
    conn_id: str = ""
    retCode: int | None = None
    retMsg: str = ""


# Decoders are exported as their bound ``decode`` functions: Python 3.11 compiles
# ``imported_name.method(...)`` without its method-call fast path (~40 ns more per call), which
# the sessions' hot paths would pay on every frame.
decode_envelope = msgspec.json.Decoder(Envelope).decode
decode_book = msgspec.json.Decoder(BookMsg).decode
decode_book_data = msgspec.json.Decoder(BookData).decode
decode_trades = msgspec.json.Decoder(list[Trade]).decode
decode_trades_msg = msgspec.json.Decoder(TradesMsg).decode
decode_klines = msgspec.json.Decoder(list[Kline]).decode
decode_liqs = msgspec.json.Decoder(list[Liq] | Liq).decode
decode_dict = msgspec.json.Decoder(dict).decode
decode_option_resp = msgspec.json.Decoder(OptionResp).decode
decode_private = msgspec.json.Decoder(PrivateEnvelope).decode
decode_items = msgspec.json.Decoder(list[dict] | dict).decode  # private data: documented as a list
encode = msgspec.json.encode

# The hot path recognizes book and trade pushes by their first bytes.
BOOK_PREFIX = b'{"topic":"orderbook.'
TRADES_PREFIX = b'{"topic":"publicTrade.'
