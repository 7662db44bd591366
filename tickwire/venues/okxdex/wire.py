"""OKX DEX push shapes (msgspec) and their decoders; the envelope is the gateway's
(:mod:`tickwire.venues.okx_gateway`)."""

from __future__ import annotations

import msgspec


class Candle(msgspec.Struct, gc=False):
    ts: str
    o: str
    h: str
    l: str  # noqa: E741
    c: str
    vol: str = ""
    volUsd: str | None = None
    confirm: str | int = "0"


class Price(msgspec.Struct, gc=False):
    price: str
    time: str = "0"


# Decoders are exported as their bound ``decode`` functions: Python 3.11 compiles
# ``imported_name.method(...)`` without its method-call fast path (~40 ns more per call), which
# the sessions' hot paths would pay on every frame.
decode_prices = msgspec.json.Decoder(list[Price]).decode
decode_candles = msgspec.json.Decoder(list[Candle] | Candle).decode  # documented as an object; arrays tolerated
decode_dicts = msgspec.json.Decoder(list[dict] | dict).decode
