"""Normalized events: what every venue dialect produces and every sink consumes.

All events are ``msgspec`` Structs (cheap to build, fast to encode). Prices and sizes
are kept as the venue's own decimal strings, so what a user reads back is exactly what
the venue sent (``decimal.Decimal(event.price)`` is exact; ``float()`` when speed
matters more). Every event carries two clocks:

* ``exch_ns`` – the venue's event/generation time in ns since the epoch (0 if the
  venue sent none),
* ``recv_ns`` – local receipt time of the frame in ns since the epoch.

``venue``/``market``/``symbol`` keep their venue meaning (``BTC-USDT``, ``BTCUSDT``,
``BTC_USDT``); ``stream`` is the subscription spec the event belongs to, so events of
the same stream can be grouped without knowing the venue's naming rules. ``event.usymbol``
is the instrument's unified symbol beside the native one (ccxt's convention: ``BTC/USDT``,
``BTC/USDT:USDT``, ``BTC/USD:BTC-261225``; see :mod:`tickwire.instruments`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Union

import msgspec

Level = tuple[str, str]
"""One book level: (price, size), both exact venue strings. Size "0" deletes."""


class Event(msgspec.Struct, kw_only=True, tag_field="type", gc=False):
    """Base of every event. ``stream`` is the subscription spec (e.g. ``bybit.linear:orderbook.50:BTCUSDT``)."""

    venue: str
    market: str = ""
    symbol: str = ""
    stream: str = ""
    exch_ns: int = 0
    recv_ns: int = 0

    is_status: ClassVar[bool] = False

    @property
    def usymbol(self) -> str:
        """The unified symbol of the event's instrument, beside the venue's own ``symbol``.

        ccxt's convention: ``BTC/USDT`` (spot), ``BTC/USDT:USDT`` (linear swap), ``BTC/USD:BTC``
        (inverse swap), ``BTC/USD:BTC-261225`` (future), ``BTC/USD:BTC-261225-100000-C`` (option).
        "" when there is none (status events, DEX tokens, an account-wide stream) or when the
        venue's naming is ambiguous and its instruments are not loaded yet.

        Nothing is computed when an event is made (the hot path is untouched): this looks the
        instrument up in a table filled once per (venue, market, symbol), from the venue's naming
        rules or from its instrument list (:mod:`tickwire.instruments`), the first time anyone
        asks. Not part of the encoded event (``to_json``/``to_dict``)."""
        u = _USYMBOLS.get((self.venue, self.market, self.symbol))
        return u if u is not None else unified_symbol(self.venue, self.market, self.symbol)


# --------------------------------------------------------------------------- market data


class Trade(Event, tag=True):
    # The venues' hot paths pass price, size, side, trade_id, seq positionally: keep their order.
    price: str
    size: str
    side: str  # "buy" / "sell": the taker's side
    trade_id: str = ""
    seq: int = 0


class BookUpdate(Event, tag=True):
    """A snapshot or a delta, as received, plus the book maintained from the stream.

    ``bids``/``asks`` are the levels this message changed (size "0" = delete), on every venue
    as ``(price, size)`` pairs of exact strings: ``for price, size in ev.bids`` works everywhere.
    ``book`` is the live :class:`tickwire.book.Book` after applying this update; it
    keeps changing as later updates arrive, so copy what you need (``book.top(10)``).

    ``venue_levels`` keeps what a venue sends per level beyond price and size: ``(bids, asks)``
    as the venue sent them, in the order of ``bids``/``asks``. OKX: ``[price, size,
    liquidated orders, order count]`` (the third is deprecated and always "0");
    :meth:`order_counts` reads the counts. ``None`` on venues whose levels are (price, size).
    """

    # The venues' hot paths pass these seven positionally: keep their order.

    bids: list = []
    asks: list = []
    snapshot: bool = False
    seq: int = 0
    prev_seq: int = 0
    book: Any = None
    venue_levels: Any = None

    def order_counts(self) -> tuple[list[int], list[int]] | None:
        """Orders at each changed level, ``(bids, asks)`` parallel to ``bids``/``asks``, when the
        venue sends them (OKX); None otherwise."""
        vl = self.venue_levels
        if vl is None:
            return None
        return _orders(vl[0]), _orders(vl[1])


def _orders(levels: Any) -> list[int]:
    out = []
    for x in levels:
        n = getattr(x, "orders", None)
        if n is None:
            n = x[3] if len(x) > 3 else 0
        out.append(int(n))
    return out


class Ticker(Event, tag=True):
    last: str | None = None
    bid: str | None = None
    bid_size: str | None = None
    ask: str | None = None
    ask_size: str | None = None
    open_24h: str | None = None
    high_24h: str | None = None
    low_24h: str | None = None
    volume_24h: str | None = None
    turnover_24h: str | None = None
    mark_price: str | None = None
    index_price: str | None = None
    open_interest: str | None = None
    funding_rate: str | None = None
    next_funding_ns: int | None = None
    raw: dict | None = None  # the full merged venue ticker (venue field names)


class Candle(Event, tag=True):
    interval: str
    start_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    turnover: str | None = None
    closed: bool = False


class Funding(Event, tag=True):
    rate: str
    next_rate: str | None = None
    funding_time_ns: int | None = None
    next_funding_ns: int | None = None


class MarkPrice(Event, tag=True):
    price: str


class IndexPrice(Event, tag=True):
    price: str


class OpenInterest(Event, tag=True):
    open_interest: str
    open_interest_ccy: str | None = None
    open_interest_usd: str | None = None


class Liquidation(Event, tag=True):
    side: str  # side of the liquidated position: "buy" = a long was liquidated
    price: str
    size: str


# --------------------------------------------------------------------------- DEX (on-chain)


class DexPrice(Event, tag=True):
    chain: str
    token: str
    price: str


class DexCandle(Event, tag=True):
    chain: str
    token: str
    interval: str
    start_ns: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    volume_usd: str | None = None
    closed: bool = False


class DexTrade(Event, tag=True):
    chain: str
    token: str
    price: str | None = None
    size: str | None = None
    side: str = ""
    volume_usd: str | None = None
    tx_hash: str = ""
    raw: dict | None = None


class DexSignal(Event, tag=True):
    """Signal/tracker channels: typed envelope around the venue's payload."""

    channel: str
    data: Any = None


# --------------------------------------------------------------------------- private


class Order(Event, tag=True):
    order_id: str
    client_order_id: str = ""
    side: str = ""
    order_type: str = ""
    status: str = ""
    price: str | None = None
    size: str | None = None
    filled_size: str | None = None
    avg_price: str | None = None
    raw: dict | None = None


class Fill(Event, tag=True):
    order_id: str
    trade_id: str
    side: str
    price: str
    size: str
    fee: str | None = None
    fee_ccy: str | None = None
    liquidity: str = ""  # "maker" / "taker"
    raw: dict | None = None  # the venue's fill object (OKX: the order update that carried it)


class Balance(Event, tag=True):
    currency: str
    total: str | None = None
    available: str | None = None
    frozen: str | None = None
    raw: dict | None = None  # the venue's object for this currency


class Position(Event, tag=True):
    side: str
    size: str
    avg_price: str | None = None
    unrealized_pnl: str | None = None
    raw: dict | None = None


class Greeks(Event, tag=True):
    """Bybit's ``greeks`` stream: the account's option greeks per base coin (``symbol`` is the
    base coin). Bybit only; recorded in the ``greeks`` table."""

    base_coin: str
    delta: str | None = None
    gamma: str | None = None
    vega: str | None = None
    theta: str | None = None
    raw: dict | None = None


# --------------------------------------------------------------------------- computed streams
# Made by tickwire.derive from a stream's events (``SPEC@VIEW`` specs, ``tickwire derive``),
# the same live and from a recording. Not part of AnyEvent: the recorder records the streams
# they are computed from, and ``tickwire derive`` computes them again from the recording.


class BookSnapshot(Event, tag=True):
    """The best ``depth`` levels of a book (``SPEC@snapshot{depth}_{interval}``).

    With an interval, one snapshot per boundary of the ``recv_ns`` grid (``recv_ns`` = the
    boundary; the book after every update received before it), while the book is valid. Without
    (``SPEC@snapshot{depth}``), one per update that changes the best ``depth`` levels
    (``recv_ns`` = that update's). ``exch_ns`` and ``seq`` are those of the last update applied.
    ``bids``/``asks`` are exact ``(price, size)`` strings, best first."""

    depth: int
    interval_ns: int = 0
    bids: list = []
    asks: list = []
    seq: int = 0

    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (float(self.bids[0][0]) + float(self.asks[0][0])) / 2

    def spread(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return float(self.asks[0][0]) - float(self.bids[0][0])


class Quote(Event, tag=True):
    """Best bid and ask after an update that changed either (price or size): ``SPEC@quotes``.
    None for an empty side."""

    bid: str | None = None
    bid_size: str | None = None
    ask: str | None = None
    ask_size: str | None = None
    seq: int = 0


class TradeBar(Event, tag=True):
    """Trades aggregated into one bar (``SPEC@bars1m``, ``@bars100ticks``, ``@bars10vol``,
    ``@bars1000000value``). ``bar`` is the view (``1m``, ``100ticks``...). Time bars cover
    ``[start_ns, end_ns)`` of the trades' venue time; other bars span their first to last trade.
    Prices are exact strings; ``volume`` (sum of sizes), ``value`` (sum of price × size),
    ``buy_volume``/``sell_volume`` (by taker side) are exact decimal strings; ``vwap`` is a float.
    ``recv_ns`` is the receipt time of the trade that completed the bar."""

    bar: str
    start_ns: int = 0
    end_ns: int = 0
    open: str = ""
    high: str = ""
    low: str = ""
    close: str = ""
    volume: str = "0"
    value: str = "0"
    buy_volume: str = "0"
    sell_volume: str = "0"
    trades: int = 0
    vwap: float = 0.0


# --------------------------------------------------------------------------- status


class Status(Event):
    """Base for connection/integrity events; ``conn`` names the connection."""

    conn: str = ""
    is_status: ClassVar[bool] = True


class Connected(Status, tag=True):
    url: str = ""


class Disconnected(Status, tag=True):
    reason: str = ""
    code: int | None = None
    reconnect_in_s: float | None = None


class Gap(Status, tag=True):
    """Integrity lost on one stream: its book (if any) is invalid until Resynced."""

    reason: str = ""
    expected: int | None = None
    received: int | None = None


class Resynced(Status, tag=True):
    """The stream is whole again (a fresh snapshot arrived after a Gap)."""

    seq: int = 0


class Notice(Status, tag=True):
    code: str = ""
    msg: str = ""


class ConnCount(Status, tag=True):
    """The venue's report of how many connections serve a channel (OKX channel-conn-count)."""

    channel: str = ""
    count: int = 0


class VenueError(Status, tag=True):
    """The venue refused a request, or sent something we could not use.

    ``request`` is what we sent (secrets redacted); ``code``/``msg`` are the venue's own.
    ``fatal`` means the stream named in ``stream`` was ended and will not be retried.
    """

    code: str = ""
    msg: str = ""
    request: str = ""
    fatal: bool = False


class Overflow(Status, tag=True):
    """The consumer fell behind the bounded buffer; ``dropped`` events were discarded.

    Books are still maintained correctly (the book lives in the reader, not in the
    queue), so ``BookUpdate.book`` of the next event is exact.
    """

    dropped: int = 0


class LineSwitch(Status, tag=True):
    """A connection moved to another host ("line") of its venue: ``from_host`` -> ``to_host``
    (``ws.okx.com`` -> ``wsaws.okx.com``), and why: the line in use got slower than another by
    more than the line policy's margin (round trip or data lag), or it dropped (with a hot
    standby: the standby on ``to_host`` carries the streams; nothing was lost). A switch of a
    live connection is make-before-break: no gap, no duplicate (see :mod:`tickwire.net.lines`).
    Recorded in the ``status`` table."""

    from_host: str = ""
    to_host: str = ""
    reason: str = ""


AnyEvent = Union[
    Trade, BookUpdate, Ticker, Candle, Funding, MarkPrice, IndexPrice, OpenInterest, Liquidation,
    DexPrice, DexCandle, DexTrade, DexSignal, Order, Fill, Balance, Position, Greeks,
    Connected, Disconnected, Gap, Resynced, Notice, ConnCount, VenueError, Overflow, LineSwitch,
]

EVENT_TYPES: dict[str, type[Event]] = {t.__name__: t for t in AnyEvent.__args__}  # type: ignore[attr-defined]


# (venue, market, symbol) -> unified symbol ("" when there is none): filled on first use from
# the venue's naming rules, and by tickwire.instruments when instrument lists load.
_USYMBOLS: dict[tuple[str, str, str], str] = {}


def unified_symbol(venue: str, market: str, symbol: str) -> str:
    """The unified symbol of a venue's instrument (see :attr:`Event.usymbol`); cached."""
    key = (venue, market, symbol)
    u = _USYMBOLS.get(key)
    if u is None:
        if not symbol:
            return ""
        from tickwire.instruments import derive_usymbol

        u = _USYMBOLS[key] = derive_usymbol(venue, market, symbol)
    return u


def set_unified_symbol(venue: str, market: str, symbol: str, usymbol: str) -> None:
    """Record the unified symbol of an instrument (an instrument list knows better than names)."""
    if symbol and usymbol:
        _USYMBOLS[(venue, market, symbol)] = usymbol


def _enc_hook(obj: Any) -> Any:
    # BookUpdate.book is a live object; encode its top levels (what a JSON reader wants).
    top = getattr(obj, "top", None)
    if top is not None:
        bids, asks = top(5)
        return {"bids": bids, "asks": asks, "valid": obj.valid}
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def to_json(event: Event) -> bytes:
    """One event as a JSON object (``type`` names the event class)."""
    return _encoder.encode(event)


def to_dict(event: Event) -> dict[str, Any]:
    """One event as a plain dict (JSON-compatible)."""
    return msgspec.json.decode(_encoder.encode(event))
