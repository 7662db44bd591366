"""Parquet tables: one per kind of event, their columns, and how rows become Arrow batches.

Every table starts with the same five columns::

    recv_ns  int64   local receipt time of the frame, ns since the epoch (UTC), never null
    exch_ns  int64   the venue's event time, ns since the epoch; null when the venue sent none
    market   string  venue market ("linear", "spot", "SWAP"...; "" when the venue has one)
    symbol   string  the venue's own instrument name (BTCUSDT, BTC-USDT, BTC_USDT)
    stream   string  the subscription spec the event belongs to

``venue`` and ``date`` (UTC date of ``recv_ns``) are hive partition columns: they are in the
path (``<kind>/venue=<v>/date=<yyyy-mm-dd>/part-*.parquet``), not in the files.

Prices, sizes and every other decimal are stored as the venue's exact strings.

This module is import-light on purpose (no pyarrow at import): the event-loop side of the
recorder only needs :data:`KINDS` and the row getters; the writer thread calls
:func:`arrow_schema` and :func:`to_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Callable

from tickwire import model as m

SCHEMA_VERSION = "1"

COMMON = ("recv_ns", "exch_ns", "market", "symbol", "stream")

# column type names (mapped to Arrow in arrow_type, to DuckDB in duckdb_type)
I64 = "int64"
STR = "string"
BOOL = "bool"
STRS = "list<string>"
JSON = "json"  # stored as a string column holding JSON text


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str
    nullable: bool = True
    zero_is_null: bool = False  # ints: the model's 0 means "not sent" -> null


@dataclass(frozen=True)
class Kind:
    """One table. ``fields`` are the event attributes read (after the common ones)."""

    name: str
    events: tuple[type, ...]
    columns: tuple[Column, ...]
    doc: str
    fields: tuple[str, ...] = ()          # event attributes feeding columns[5:] (generic kinds)
    not_stored: tuple[str, ...] = ()      # model fields deliberately not stored (documented)
    row_bytes: int = 300                  # rough in-memory cost of one pending row (for limits)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _common() -> tuple[Column, ...]:
    return (
        Column("recv_ns", I64, "local receipt time of the frame, ns since the epoch (UTC)", nullable=False),
        Column("exch_ns", I64, "venue event time, ns since the epoch; null when the venue sent none",
               zero_is_null=True),
        Column("market", STR, "venue market (e.g. linear, spot); empty when the venue has one"),
        Column("symbol", STR, "the venue's instrument name, as the venue spells it"),
        Column("stream", STR, "subscription spec, e.g. bybit.linear:orderbook.50:BTCUSDT"),
    )


def _generic(name: str, event: type, cols: list[tuple[str, str, str]], doc: str,
             not_stored: tuple[str, ...] = (), row_bytes: int = 300,
             zero_null: tuple[str, ...] = ()) -> Kind:
    columns = _common() + tuple(Column(n, t, d, zero_is_null=n in zero_null) for n, t, d in cols)
    return Kind(name, (event,), columns, doc, fields=tuple(n for n, _, _ in cols), not_stored=not_stored,
                row_bytes=row_bytes)


_D = "exact decimal string"

# Columns holding a venue's decimal strings (prices, sizes, amounts, rates): the query views
# (:mod:`tickwire.sinks.query`) give each a DOUBLE twin ``<name>_f`` computed at read time, so
# floats need no cast and the files stay exact (no bytes added on disk).
DECIMAL_NAMES = frozenset({
    "price", "size", "last", "bid", "bid_size", "ask", "ask_size", "bid_price", "ask_price",
    "open_24h", "high_24h", "low_24h", "volume_24h", "turnover_24h", "mark_price", "index_price",
    "open_interest", "open_interest_ccy", "open_interest_usd", "funding_rate", "rate", "next_rate",
    "open", "high", "low", "close", "volume", "turnover", "volume_usd", "filled_size", "avg_price",
    "fee", "total", "available", "frozen", "unrealized_pnl", "delta", "gamma", "vega", "theta",
})


def decimal_columns(kind: "Kind") -> list[Column]:
    """The columns of ``kind`` that hold decimal strings (lists of them for book snapshots)."""
    return [c for c in kind.columns if c.name in DECIMAL_NAMES and c.type in (STR, STRS)]

KIND_LIST: list[Kind] = [
    _generic("trades", m.Trade, [
        ("price", STR, f"trade price ({_D})"),
        ("size", STR, f"trade size ({_D})"),
        ("side", STR, "taker side: buy / sell"),
        ("trade_id", STR, "venue trade id"),
        ("seq", I64, "venue sequence number of the trade (0 when none)"),
    ], "one row per trade", row_bytes=480),
    Kind("book_changes", (m.BookUpdate,), _common() + (
        Column("seq", I64, "venue sequence number of the message (Bybit u, OKX seqId...)"),
        Column("prev_seq", I64, "sequence number of the previous message of this stream (0 at start)"),
        Column("snapshot", BOOL, "true: the message is a snapshot: the book is reset to its levels"),
        Column("side", STR, "bid / ask; null on the one marker row of a message that changed no level"),
        Column("price", STR, f"level price ({_D})"),
        Column("size", STR, f"new size at that price ({_D}); \"0\" deletes the level"),
    ), "one row per level changed by a book message; the rows of one message share recv_ns, stream "
       "and seq and keep the venue's order (bids first, then asks)",
         not_stored=("book", "bids", "asks", "venue_levels"), row_bytes=260),
    Kind("book_snapshots", (), _common() + (
        Column("seq", I64, "sequence number of the last update applied to the book"),
        Column("bid_price", STRS, f"best bids first ({_D}s)"),
        Column("bid_size", STRS, f"sizes of bid_price ({_D}s)"),
        Column("ask_price", STRS, f"best asks first ({_D}s)"),
        Column("ask_size", STRS, f"sizes of ask_price ({_D}s)"),
    ), "periodic top-N of each maintained book (only while the book is valid)", row_bytes=8000),
    _generic("tickers", m.Ticker, [
        ("last", STR, "last trade price"), ("bid", STR, "best bid"), ("bid_size", STR, "best bid size"),
        ("ask", STR, "best ask"), ("ask_size", STR, "best ask size"), ("open_24h", STR, "price 24 h ago"),
        ("high_24h", STR, "24 h high"), ("low_24h", STR, "24 h low"), ("volume_24h", STR, "24 h volume"),
        ("turnover_24h", STR, "24 h turnover"), ("mark_price", STR, "mark price"),
        ("index_price", STR, "index price"), ("open_interest", STR, "open interest"),
        ("funding_rate", STR, "current funding rate"),
        ("next_funding_ns", I64, "next funding time, ns since the epoch"),
    ], "one row per ticker message, with the venue's fields merged (null: never sent)",
        not_stored=("raw",), row_bytes=700),
    _generic("candles", m.Candle, [
        ("interval", STR, "candle interval, e.g. 1m, 1h, 1d"), ("start_ns", I64, "candle start, ns since the epoch"),
        ("open", STR, "open"), ("high", STR, "high"), ("low", STR, "low"), ("close", STR, "close"),
        ("volume", STR, "volume"), ("turnover", STR, "turnover (quote volume)"),
        ("closed", BOOL, "true once the venue confirmed the candle final"),
    ], "one row per candle update (a candle is updated many times until closed)", row_bytes=600),
    _generic("funding", m.Funding, [
        ("rate", STR, "funding rate"), ("next_rate", STR, "predicted next rate"),
        ("funding_time_ns", I64, "funding time this rate applies to"),
        ("next_funding_ns", I64, "next funding time"),
    ], "funding rate updates", row_bytes=350),
    _generic("mark_prices", m.MarkPrice, [("price", STR, "mark price")], "mark price updates", row_bytes=300),
    _generic("index_prices", m.IndexPrice, [("price", STR, "index price")], "index price updates", row_bytes=300),
    _generic("open_interest", m.OpenInterest, [
        ("open_interest", STR, "open interest (contracts or base units, venue meaning)"),
        ("open_interest_ccy", STR, "open interest in currency"),
        ("open_interest_usd", STR, "open interest in USD"),
    ], "open interest updates", row_bytes=350),
    _generic("liquidations", m.Liquidation, [
        ("side", STR, "side of the liquidated position: buy = a long was liquidated"),
        ("price", STR, "price"), ("size", STR, "size"),
    ], "liquidation orders", row_bytes=380),
    _generic("dex_prices", m.DexPrice, [
        ("chain", STR, "chain id / name"), ("token", STR, "token address"), ("price", STR, "price"),
    ], "on-chain token prices", row_bytes=380),
    _generic("dex_candles", m.DexCandle, [
        ("chain", STR, "chain"), ("token", STR, "token address"), ("interval", STR, "interval"),
        ("start_ns", I64, "candle start, ns since the epoch"), ("open", STR, "open"), ("high", STR, "high"),
        ("low", STR, "low"), ("close", STR, "close"), ("volume", STR, "volume"),
        ("volume_usd", STR, "volume in USD"), ("closed", BOOL, "candle final"),
    ], "on-chain token candles", row_bytes=700),
    _generic("dex_trades", m.DexTrade, [
        ("chain", STR, "chain"), ("token", STR, "token address"), ("price", STR, "price"), ("size", STR, "size"),
        ("side", STR, "buy / sell"), ("volume_usd", STR, "volume in USD"), ("tx_hash", STR, "transaction hash"),
        ("raw", JSON, "the venue's trade object (JSON text)"),
    ], "on-chain trades", row_bytes=900),
    _generic("dex_signals", m.DexSignal, [
        ("channel", STR, "venue channel"), ("data", JSON, "the venue's payload (JSON text)"),
    ], "signal / tracker channels", row_bytes=1000),
    _generic("orders", m.Order, [
        ("order_id", STR, "order id"), ("client_order_id", STR, "client order id"), ("side", STR, "side"),
        ("order_type", STR, "order type"), ("status", STR, "status"), ("price", STR, "price"),
        ("size", STR, "size"), ("filled_size", STR, "filled size"), ("avg_price", STR, "average fill price"),
        ("raw", JSON, "the venue's order object (JSON text)"),
    ], "private: order updates", row_bytes=900),
    _generic("fills", m.Fill, [
        ("order_id", STR, "order id"), ("trade_id", STR, "trade id"), ("side", STR, "side"), ("price", STR, "price"),
        ("size", STR, "size"), ("fee", STR, "fee"), ("fee_ccy", STR, "fee currency"),
        ("liquidity", STR, "maker / taker"), ("raw", JSON, "the venue's fill object (JSON text)"),
    ], "private: own fills", row_bytes=600),
    _generic("balances", m.Balance, [
        ("currency", STR, "currency"), ("total", STR, "total"), ("available", STR, "available"),
        ("frozen", STR, "frozen"), ("raw", JSON, "the venue's object for this currency (JSON text)"),
    ], "private: balance updates", row_bytes=400),
    _generic("positions", m.Position, [
        ("side", STR, "side"), ("size", STR, "size"), ("avg_price", STR, "average price"),
        ("unrealized_pnl", STR, "unrealized PnL"), ("raw", JSON, "the venue's position object (JSON text)"),
    ], "private: position updates", row_bytes=700),
    _generic("greeks", m.Greeks, [
        ("base_coin", STR, "base coin"), ("delta", STR, "total delta"), ("gamma", STR, "total gamma"),
        ("vega", STR, "total vega"), ("theta", STR, "total theta"),
        ("raw", JSON, "the venue's greeks object (JSON text)"),
    ], "private: Bybit option greeks per base coin", row_bytes=600),
    Kind("status", (m.Connected, m.Disconnected, m.Gap, m.Resynced, m.Notice, m.ConnCount, m.VenueError,
                    m.Overflow, m.LineSwitch), _common() + (
        Column("type", STR, "Connected, Disconnected, Gap, Resynced, Notice, ConnCount, VenueError, "
                            "Overflow, LineSwitch, or RecorderDrop (rows the recorder itself dropped)"),
        Column("conn", STR, "connection name"),
        Column("code", STR, "venue or close code, or the kind of the dropped rows (RecorderDrop)"),
        Column("message", STR, "reason / message / URL"),
        Column("detail", JSON, "the whole event (JSON text)"),
    ), "connection and integrity events: when a table has a hole, this says why", row_bytes=600),
]

KINDS: dict[str, Kind] = {k.name: k for k in KIND_LIST}

EVENT_KIND: dict[type, Kind] = {}
for _k in KIND_LIST:
    for _e in _k.events:
        EVENT_KIND[_e] = _k


def row_getter(kind: Kind) -> Callable[[Any], tuple]:
    """The loop-side extractor of a generic kind: event -> row tuple (C speed)."""
    return attrgetter(*(COMMON + kind.fields))


def status_row(ev: Any) -> tuple:
    t = type(ev).__name__
    code = ""
    msg = ""
    if t == "Connected":
        msg = ev.url
    elif t == "Disconnected":
        code = "" if ev.code is None else str(ev.code)
        msg = ev.reason
    elif t == "Gap":
        msg = ev.reason
    elif t in ("Notice", "VenueError"):
        code, msg = ev.code, ev.msg
    elif t == "Overflow":
        msg = f"feed dropped {ev.dropped} events (consumer too slow)"
    elif t == "ConnCount":
        msg = f"{ev.channel}: {ev.count}"
    elif t == "LineSwitch":
        code, msg = ev.reason, f"{ev.from_host} -> {ev.to_host}"
    return (ev.recv_ns, ev.exch_ns, ev.market, ev.symbol, ev.stream, t, ev.conn, code, msg, ev)


# --------------------------------------------------------------------------- Arrow side (writer thread)

def arrow_type(t: str) -> Any:
    import pyarrow as pa

    return {I64: pa.int64(), STR: pa.string(), BOOL: pa.bool_(), STRS: pa.list_(pa.string()),
            JSON: pa.string()}[t]


def duckdb_type(t: str) -> str:
    return {I64: "BIGINT", STR: "VARCHAR", BOOL: "BOOLEAN", STRS: "VARCHAR[]", JSON: "VARCHAR"}[t]


_schemas: dict[str, Any] = {}


def arrow_schema(kind: Kind) -> Any:
    s = _schemas.get(kind.name)
    if s is None:
        import pyarrow as pa

        meta = {b"tickwire.kind": kind.name.encode(), b"tickwire.schema_version": SCHEMA_VERSION.encode()}
        s = _schemas[kind.name] = pa.schema(
            [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in kind.columns], metadata=meta)
    return s


def _json_text(values: Any) -> list:
    from tickwire.model import to_json
    import msgspec

    enc = msgspec.json.Encoder(enc_hook=_enc_fallback)
    out = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, m.Event):
            out.append(to_json(v).decode())
        else:
            out.append(enc.encode(v).decode())
    return out


def _enc_fallback(obj: Any) -> Any:
    return repr(obj)


def _int_col(values: Any, zero_is_null: bool) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    a = pa.array(values, pa.int64())
    if zero_is_null:
        a = pc.if_else(pc.equal(a, 0), pa.scalar(None, pa.int64()), a)
    return a


def to_batch(kind: Kind, rows: list) -> Any:
    """Rows collected on the loop (tuples) -> one Arrow RecordBatch of the kind's schema."""
    import pyarrow as pa

    schema = arrow_schema(kind)
    if kind.name == "book_changes":
        return _book_changes_batch(schema, rows)
    if kind.name == "book_snapshots":
        return _book_snapshots_batch(schema, rows)
    cols = list(zip(*rows))
    arrays = []
    for c, values in zip(kind.columns, cols):
        if c.type == I64:
            arrays.append(_int_col(values, c.zero_is_null))
        elif c.type == JSON:
            arrays.append(pa.array(_json_text(values), pa.string()))
        else:
            arrays.append(pa.array(values, arrow_type(c.type)))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_LEVELS = None


def _levels_type() -> Any:
    global _LEVELS
    if _LEVELS is None:
        import pyarrow as pa

        _LEVELS = pa.list_(pa.list_(pa.string()))
    return _LEVELS


def _book_changes_batch(schema: Any, rows: list) -> Any:
    """rows: (recv_ns, exch_ns, market, symbol, stream, seq, prev_seq, snapshot, bids, asks).

    Exploded to one row per level: message i gives its bids, then its asks, or one marker row
    (side/price/size null) when it changed nothing, so every message is visible in the table.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    recv, exch, market, symbol, stream, seq, prev, snap, bids, asks = zip(*rows)
    lt = _levels_type()
    b = pa.array(bids, lt)
    a = pa.array(asks, lt)
    nb = np.diff(np.asarray(b.offsets)).astype(np.int64)
    na = np.diff(np.asarray(a.offsets)).astype(np.int64)
    nm = ((nb + na) == 0).astype(np.int64)          # marker row for an empty message
    cnt = nb + na + nm
    total = int(cnt.sum())
    msg = np.repeat(np.arange(len(rows), dtype=np.int64), cnt)
    start = np.cumsum(cnt) - cnt
    k = np.arange(total, dtype=np.int64) - np.repeat(start, cnt)  # position within the message
    nb_r = np.repeat(nb, cnt)
    na_r = np.repeat(na, cnt)
    is_bid = k < nb_r
    is_ask = (~is_bid) & (k < nb_r + na_r)
    b_lv = b.flatten()
    a_lv = a.flatten()
    n_bid_levels = len(b_lv)
    b_off = np.repeat(np.asarray(b.offsets)[:-1].astype(np.int64), cnt)
    a_off = np.repeat(np.asarray(a.offsets)[:-1].astype(np.int64), cnt)
    # index into concat(bid levels, ask levels); markers point anywhere and are masked to null
    idx = np.where(is_bid, b_off + k, n_bid_levels + a_off + (k - nb_r))
    is_marker = ~(is_bid | is_ask)
    idx = np.where(is_marker, 0, idx)
    levels = pa.concat_arrays([b_lv, a_lv]) if n_bid_levels or len(a_lv) else None
    if levels is not None and len(levels):
        lv = levels.take(pa.array(idx))
        price = pc.list_element(lv, 0)
        size = pc.list_element(lv, 1)
        mask = pa.array(is_marker)
        price = pc.if_else(mask, pa.scalar(None, pa.string()), price)
        size = pc.if_else(mask, pa.scalar(None, pa.string()), size)
    else:
        price = pa.nulls(total, pa.string())
        size = pa.nulls(total, pa.string())
    side_idx = np.where(is_bid, 0, np.where(is_ask, 1, 2))
    side = pa.array(["bid", "ask", None], pa.string()).take(pa.array(side_idx))
    take = pa.array(msg)
    recv_a = pa.array(recv, pa.int64()).take(take)
    exch_a = _int_col(exch, True).take(take)
    cols = [recv_a, exch_a,
            pa.array(market, pa.string()).take(take), pa.array(symbol, pa.string()).take(take),
            pa.array(stream, pa.string()).take(take), pa.array(seq, pa.int64()).take(take),
            pa.array(prev, pa.int64()).take(take), pa.array(snap, pa.bool_()).take(take),
            side, price, size]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _book_snapshots_batch(schema: Any, rows: list) -> Any:
    """rows: (recv_ns, exch_ns, market, symbol, stream, seq, bids, asks) with top-N level lists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    recv, exch, market, symbol, stream, seq, bids, asks = zip(*rows)
    lt = _levels_type()

    def split(levels: Any) -> tuple[Any, Any]:
        outer = pa.array(levels, lt)
        inner = outer.flatten()
        offsets = outer.offsets
        px = pa.ListArray.from_arrays(offsets, pc.list_element(inner, 0) if len(inner) else pa.array([], pa.string()))
        sz = pa.ListArray.from_arrays(offsets, pc.list_element(inner, 1) if len(inner) else pa.array([], pa.string()))
        return px, sz

    bp, bs = split(bids)
    ap, as_ = split(asks)
    cols = [pa.array(recv, pa.int64()), _int_col(exch, True), pa.array(market, pa.string()),
            pa.array(symbol, pa.string()), pa.array(stream, pa.string()), pa.array(seq, pa.int64()),
            bp, bs, ap, as_]
    return pa.RecordBatch.from_arrays(cols, schema=schema)
