"""BG Exchange V2 frame shapes (msgspec), their decoders, gzip frames, and stream keys."""

from __future__ import annotations

from typing import Any

import msgspec

from tickwire.venues.base import MAX_INFLATED_BYTES, inflate_bounded

_NO_RAW = msgspec.Raw(b"")


class Envelope(msgspec.Struct, gc=False):
    """Every V2 server frame: pushes (no ``event``), acks/errors/req replies (``event``), ping."""

    ping: msgspec.Raw = _NO_RAW
    pong: msgspec.Raw = _NO_RAW
    event: str = ""
    biz: str = ""
    type: str = ""
    product: str = ""
    interval: str | int | None = None   # orderbook acks echo the gear as a number (§2.4)
    code: int | str | None = None       # documented int, sent as a string in one example (§7.1)
    msg: str = ""
    status: str = ""
    ts: int = 0
    id: str | int | None = None
    seq_id: int | None = None
    data: msgspec.Raw = _NO_RAW
    # deprecated V1 shapes (§9), met in old recordings
    channel: str = ""
    pairCode: str = ""
    seqId: int | None = None
    bids: msgspec.Raw = _NO_RAW
    asks: msgspec.Raw = _NO_RAW


class Ping(msgspec.Struct, gc=False):
    ping: msgspec.Raw


class BookData(msgspec.Struct, gc=False):
    bids: list[tuple[str, str]] | None = None
    asks: list[tuple[str, str]] | None = None
    seq_id: int | None = None


class LenientBookData(msgspec.Struct, gc=False):
    bids: list[list[msgspec.Raw]] | None = None
    asks: list[list[msgspec.Raw]] | None = None
    seq_id: int | None = None


class Fill(msgspec.Struct, gc=False):
    id: int | str
    ts: int
    price: str
    vol: str
    direction: str = ""


class Candle(msgspec.Struct, gc=False):
    id: int
    open: str
    close: str
    high: str
    low: str
    vol: str = ""
    filled_size: str = ""
    count: int = 0
    seq_id: int | None = None


class Asset(msgspec.Struct, gc=False):
    currency: str
    available: str | None = None
    hold: str | None = None


# Decoders are exported as their bound ``decode`` functions: Python 3.11 compiles
# ``imported_name.method(...)`` without its method-call fast path (~40 ns more per call), which
# the sessions' hot paths would pay on every frame.
decode_envelope = msgspec.json.Decoder(Envelope).decode
decode_ping = msgspec.json.Decoder(Ping).decode
decode_book = msgspec.json.Decoder(BookData).decode
decode_lenient_book = msgspec.json.Decoder(LenientBookData).decode
decode_raw_levels = msgspec.json.Decoder(list[list[msgspec.Raw]]).decode
decode_fills = msgspec.json.Decoder(list[Fill]).decode
decode_candle = msgspec.json.Decoder(Candle | list[Candle]).decode  # push: object; req reply: array
decode_assets = msgspec.json.Decoder(list[Asset] | Asset).decode
decode_dicts = msgspec.json.Decoder(list[dict] | dict).decode         # ticker push: [obj]; req reply: obj
decode_any = msgspec.json.Decoder().decode
encode = msgspec.json.encode

PING_PREFIX = b'{"ping":'
GZIP_B64 = b"H4sI"  # base64 of a gzip header: tolerated on text frames (§6, framing UNVERIFIED)


def inflate(payload: bytes | memoryview, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """A ``zip:true`` frame -> JSON bytes: gzip (documented intent), else zlib or raw deflate;
    never more than ``limit`` bytes."""
    data = bytes(payload)
    if data[:1] in (b"{", b"["):
        return data  # a binary frame that is plain JSON
    if data[:2] == b"\x1f\x8b" or data[:1] == b"\x78":
        return inflate_bounded(data, 47, limit)  # 32+15: gzip or zlib header, auto-detected
    return inflate_bounded(data, -15, limit)


def topic_of(typ: str, interval: Any, product: str) -> str:
    """The stream key of a frame: ``orderbook.0:BTC_USDT``, ``fills:BTC_USDT``, ``orders:all``."""
    if typ == "orderBook":  # V1 spelling (§9)
        typ = "orderbook"
    if typ in ("orderbook", "candles") and interval is not None and interval != "":
        return f"{typ}.{interval}:{product}"
    return f"{typ}:{product}"


def request_terms(channel: str) -> tuple[str, str, str]:
    """Native channel -> (biz, type, interval) of the request."""
    typ, _, interval = channel.partition(".")
    return ("exchange" if typ in ("orders", "assets") else "market"), typ, interval


def code_int(code: Any) -> int | None:
    if code is None or code == "":
        return None
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


def raw_text(r: msgspec.Raw) -> str:
    """A JSON scalar's exact text: numbers keep their digits ("3781.85"), strings lose quotes."""
    b = bytes(r)
    return decode_any(b) if b[:1] == b'"' else b.decode()


def levels_exact(rows: list[list[msgspec.Raw]] | None) -> list[tuple[str, str]]:
    return [(raw_text(r[0]), raw_text(r[1])) for r in rows or () if len(r) >= 2]
