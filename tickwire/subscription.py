"""Subscription specs: ``VENUE[.MARKET]:CHANNEL:SYMBOL``.

The venue's native channel names are accepted as they are (``orderbook.50``,
``publicTrade``, ``books``, ``candle1m``...) and so are normalized aliases (``book``,
``trades``, ``ticker``, ``candles.1m``, ``liquidations``, ``funding``...). The venue
decides what is valid: :func:`tickwire.venues.parse` splits the text here and asks it.
"""

from __future__ import annotations

import msgspec


class SpecError(ValueError):
    """A subscription spec that cannot be served; the message says what is allowed."""


class Subscription(msgspec.Struct, frozen=True, gc=False):
    """One stream of one instrument on one venue, resolved to the venue's wire terms.

    ``spec`` is the canonical spelling (what events carry in ``stream``); ``endpoint``
    names the venue endpoint (connection pool) that serves it; ``topic`` is the venue's
    own identifier of the stream on the wire; ``kind`` is the normalized channel kind.
    """

    spec: str
    venue: str
    market: str
    channel: str
    symbol: str
    kind: str
    endpoint: str
    topic: str
    needs_auth: bool = False
    params: dict = {}


def split_spec(spec: str) -> tuple[str, str, str, str]:
    """``"bybit.linear:orderbook.50:BTCUSDT"`` -> ("bybit", "linear", "orderbook.50", "BTCUSDT")."""
    text = spec.strip()
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise SpecError(
            f"bad subscription {spec!r}: expected VENUE[.MARKET]:CHANNEL:SYMBOL, "
            "e.g. bybit.linear:orderbook.50:BTCUSDT, okx:books:BTC-USDT, bge:fills:BTC_USDT"
        )
    venue_part, channel, symbol = parts
    venue, _, market = venue_part.partition(".")
    return venue.lower(), market.lower(), channel, symbol
