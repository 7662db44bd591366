"""OKX v5 push shapes (msgspec) and their decoders; the envelope is the gateway's
(:mod:`tickwire.venues.okx_gateway`)."""

from __future__ import annotations

import msgspec

from tickwire.venues.okx_gateway import Arg


class Level(msgspec.Struct, array_like=True, gc=False):
    """One OKX book level as the venue sends it: ``[price, size, liquidated orders, order count]``
    (the third is deprecated, always "0"). Events carry ``(price, size)`` pairs in ``bids``/
    ``asks`` and these in ``BookUpdate.venue_levels``; JSON-encoded they are the venue's arrays."""

    price: str
    size: str
    liquidated: str = "0"
    orders: str = "0"


class BookData(msgspec.Struct, gc=False):
    # Levels as untracked structs (gc=False): the cyclic GC never looks at them (lists of
    # strings it tracks for ever; measured: 6.5 -> 4.3 us/msg with tuples instead of lists when
    # thousands of events wait for the consumer).
    asks: list[Level] = []
    bids: list[Level] = []
    ts: str = "0"
    checksum: int = 0
    seqId: int | None = None
    prevSeqId: int | None = None


class BookDataFast(BookData):
    """The hot path's view: ``ts`` parsed to int by the decoder (lax mode), ~0.1 us less per
    message than ``int()`` afterwards. A frame it cannot take (e.g. an empty ts) goes the
    generic way, where ts stays a string and a bad one means exch_ns 0 (tolerant)."""

    ts: int = 0  # type: ignore[assignment]


class BookMsg(msgspec.Struct, gc=False):
    arg: Arg
    data: list[BookDataFast]
    action: str = ""


class Trade(msgspec.Struct, gc=False):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str
    seqId: int = 0


# Decoders are exported as their bound ``decode`` functions: Python 3.11 compiles
# ``imported_name.method(...)`` without its method-call fast path (~40 ns more per call), which
# the sessions' hot paths would pay on every frame.
decode_book = msgspec.json.Decoder(BookMsg, strict=False).decode
decode_books_data = msgspec.json.Decoder(list[BookData]).decode
decode_trades = msgspec.json.Decoder(list[Trade]).decode
decode_dicts = msgspec.json.Decoder(list[dict]).decode
decode_lists = msgspec.json.Decoder(list[list[str]]).decode

# The hot path recognizes book pushes (books, books5, books-l2-tbt...) by their first bytes.
BOOK_PREFIX = b'{"arg":{"channel":"books'
