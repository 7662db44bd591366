"""Column builders: lists of events (as the loop buffered them) -> Arrow record batches.

Runs on the recorder's writer thread. The event loop only appends each event object to a list
per (table, stream); everything here is done once per batch, column by column:

* numbers: one list comprehension per column, then numpy / Arrow (no per-row tuples);
* ``market``, ``symbol``, ``stream``: dictionary arrays (nearly always one value per stream
  buffer: checked with ``list.count``, a C loop), so the Parquet writer gets its dictionary
  for free;
* book_changes: the loop keeps no event, only a tuple of its numbers and its (bids, asks) as
  JSON (one msgspec call); here the JSON of a whole batch is joined and the price and size
  strings are cut out of it with numpy (the position of each quote), instead of one Python
  operation per level.

:class:`Dedup` drops what a venue sent again within one recorder (a trade id already recorded,
a book message identical to the previous one of its stream, a state row identical to the
previous one of its stream): one recorder's files never hold two rows of the same identity
(see ``docs/recording.md``, "Duplicates").
"""

from __future__ import annotations

from collections import deque
from itertools import chain
from typing import Any, Callable

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tickwire.sinks.schema import BOOL, COMMON, I64, JSON, KINDS, STR, STRS, Kind, _json_text, arrow_schema

_ch = chain.from_iterable
_enc = msgspec.json.encode
STRING = pa.string()
DICT = pa.dictionary(pa.int32(), pa.string())
INT64 = pa.int64()
_NULL_I64 = pa.scalar(None, INT64)


# --------------------------------------------------------------------------- helpers

def dict_col(values: list) -> Any:
    """A dictionary<int32, string> array of ``values`` (one-value fast path)."""
    n = len(values)
    if not n:
        return pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], STRING))
    v0 = values[0]
    if values.count(v0) == n:  # C loop, identity first: the usual case (one stream, one symbol)
        if v0 is None:
            return pa.DictionaryArray.from_arrays(pa.nulls(n, pa.int32()), pa.array([], STRING))
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([v0], STRING))
    return pa.array(values, STRING).dictionary_encode()


def int_col(values: list, zero_is_null: bool) -> Any:
    """int64 array; ``zero_is_null``: the model's 0 ("not sent") becomes null."""
    try:
        a = np.fromiter(values, np.int64, len(values))
    except TypeError:  # None among them (optional fields)
        arr = pa.array(values, INT64)
        if zero_is_null:
            arr = pc.if_else(pc.equal(arr, 0), _NULL_I64, arr)
        return arr
    if zero_is_null:
        zero = a == 0
        if zero.any():
            return pa.array(a, INT64, mask=zero)
    return pa.array(a, INT64)


def _string_col(values: list, dictionary: bool) -> Any:
    arr = pa.array(values, STRING)
    return arr.dictionary_encode() if dictionary else arr


def batch_schema(kind: Kind) -> pa.Schema:
    """The schema of the batches built here: the table's, with dictionary strings where
    :func:`is_dict_column` (cast to :func:`~tickwire.sinks.schema.arrow_schema` for the WAL)."""
    return _batch_schemas[kind.name]


def is_dict_column(kind: Kind, name: str) -> bool:
    return name in _DICT_COLS.get(kind.name, ())


# Low-cardinality string columns built as dictionaries (the Parquet writer keeps them so).
_DICT_COLS: dict[str, tuple[str, ...]] = {}
for _k in KINDS.values():
    if _k.name in ("book_snapshots",):
        continue
    _DICT_COLS[_k.name] = ("market", "symbol", "stream") + tuple(
        c.name for c in _k.columns[5:] if c.type == STR and c.name in ("side", "interval", "chain", "token", "type",
                                                                         "channel", "currency", "fee_ccy",
                                                                         "liquidity", "order_type", "status",
                                                                         "conn", "code"))

_batch_schemas: dict[str, pa.Schema] = {}
for _k in KINDS.values():
    s = arrow_schema(_k)
    cols = _DICT_COLS.get(_k.name, ())
    _batch_schemas[_k.name] = pa.schema([pa.field(f.name, DICT if f.name in cols else f.type, f.nullable)
                                         for f in s], metadata=s.metadata)


# --------------------------------------------------------------------------- generic event kinds

def _extractor(fields: tuple[str, ...]) -> Callable[[list], tuple]:
    """``evs -> ([e.f1 for e in evs], [e.f2 for e in evs], ...)`` compiled once per kind."""
    body = ", ".join(f"[e.{f} for e in evs]" for f in fields)
    ns: dict[str, Any] = {}
    exec(f"def extract(evs):\n    return ({body},)\n", ns)  # noqa: S102 - field names come from schema.py
    return ns["extract"]


_extractors: dict[str, Callable[[list], tuple]] = {}


def generic_batch(kind: Kind, evs: list) -> pa.RecordBatch:
    ex = _extractors.get(kind.name)
    if ex is None:
        ex = _extractors[kind.name] = _extractor(COMMON + kind.fields)
    values = ex(evs)
    dcols = _DICT_COLS.get(kind.name, ())
    arrays = []
    for c, vals in zip(kind.columns, values):
        try:
            arrays.append(_generic_col(c, vals, dcols))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            # a venue sent a number where its documents say string (events do not check their
            # field types): stored as its text, never the end of the recording
            arrays.append(_generic_col(c, [_as_int(v) for v in vals] if c.type == I64
                                       else [None if v is None else bool(v) for v in vals] if c.type == BOOL
                                       else [_as_text(v) for v in vals], dcols))
    return pa.RecordBatch.from_arrays(arrays, schema=batch_schema(kind))


def _as_int(v: Any) -> int | None:
    if v is None or type(v) is int:
        return v
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return None


def _as_text(v: Any) -> str | None:
    if v is None or type(v) is str:
        return v
    if isinstance(v, (dict, list, tuple)):
        try:
            return msgspec.json.encode(v).decode()
        except Exception:
            pass
    return str(v)


def _generic_col(c: Any, vals: list, dcols: tuple) -> Any:
    t = c.type
    if t == I64:
        return int_col(vals, c.zero_is_null)
    if t == STR:
        return dict_col(vals) if c.name in dcols else pa.array(vals, STRING)
    if t == BOOL:
        return pa.array(vals, pa.bool_())
    if t == JSON:
        return pa.array(_json_text(vals), STRING)
    raise AssertionError(f"{c.name}: {t} (no generic kind has list columns)")


def tuples_batch(kind: Kind, rows: list) -> pa.RecordBatch:
    """Rows built as tuples on the loop (``status``, ``book_snapshots``: a few per second)."""
    from tickwire.sinks.schema import to_batch

    batch = to_batch(kind, rows)
    if kind.name == "book_snapshots":
        return batch
    dcols = _DICT_COLS.get(kind.name, ())
    arrays = [c.dictionary_encode() if name in dcols else c for name, c in zip(batch.schema.names, batch.columns)]
    return pa.RecordBatch.from_arrays(arrays, schema=batch_schema(kind))


# --------------------------------------------------------------------------- book_changes

_SIDES = pa.array(["bid", "ask"], STRING)


def _cut(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Any:
    """The byte ranges [starts, ends) of ``buf`` as one Arrow string array (one numpy gather)."""
    lens = (ends - starts).astype(np.int32)
    offsets = np.empty(len(lens) + 1, np.int32)
    offsets[0] = 0
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    idx = np.repeat(starts.astype(np.int32) - offsets[:-1], lens) + np.arange(total, dtype=np.int32)
    data = buf[idx]
    return pa.StringArray.from_buffers(len(lens), pa.py_buffer(offsets), pa.py_buffer(data))


def _levels_fast(sides: list) -> tuple[Any, Any] | None:
    """(prices, sizes) of every level in ``sides`` (a list of level lists), or None when the
    JSON has escapes (a quote or backslash inside a value: use the slow path)."""
    data = _enc(sides)
    if 92 in data:  # a backslash: an escape somewhere
        return None
    buf = np.frombuffer(data, np.uint8)
    q = np.flatnonzero(buf == 34)  # '"'
    starts = q[0::2] + 1
    ends = q[1::2]
    if not len(starts):
        return pa.array([], STRING), pa.array([], STRING)
    # a value is the first of its level (the price) when the byte before its quote is '['
    first = buf[starts - 2] == 91
    k = np.flatnonzero(first)
    if len(k) and k[-1] + 1 >= len(starts):
        return None  # a level with one value: malformed, let the slow path say so
    # the value after a price must belong to the same level (',' before its quote)
    if len(k) and not (buf[starts[k + 1] - 2] == 44).all():
        return None
    return _cut(buf, starts[k], ends[k]), _cut(buf, starts[k + 1], ends[k + 1])


def _levels_slow(sides: list) -> tuple[Any, Any]:
    levels = list(_ch(sides))
    return pa.array([lv[0] for lv in levels], STRING), pa.array([lv[1] for lv in levels], STRING)


def book_changes_batch(evs: list, dedup: "Dedup | None" = None) -> pa.RecordBatch | None:
    """One stream's BookUpdate events -> one row per level changed (bids, then asks, in the
    venue's order), and one marker row (side/price/size null) for a message that changed
    nothing. With ``dedup``, messages repeating the previous one's identity are left out."""
    n = len(evs)
    recv = np.fromiter([e.recv_ns for e in evs], np.int64, n)
    exch = np.fromiter([e.exch_ns for e in evs], np.int64, n)
    seq = np.fromiter([e.seq for e in evs], np.int64, n)
    snap = np.fromiter([e.snapshot for e in evs], np.bool_, n)
    if dedup is not None:
        keep = dedup.book_keep(evs[0].stream, evs[-1], seq, snap, exch)
        if keep is not None:
            evs = [e for e, k in zip(evs, keep.tolist()) if k]
            if not evs:
                return None
            n = len(evs)
            recv, exch, seq, snap = recv[keep], exch[keep], seq[keep], snap[keep]
    prev = np.fromiter([e.prev_seq for e in evs], np.int64, n)
    e0 = evs[0]
    # a buffer holds one stream (the loop keys them so); a book stream is one instrument,
    # checked with list.count (a C loop)
    market = [e.market for e in evs]
    symbol = [e.symbol for e in evs]
    bids = [e.bids for e in evs]
    asks = [e.asks for e in evs]
    nb = np.fromiter(map(len, bids), np.int64, n)
    na = np.fromiter(map(len, asks), np.int64, n)
    sides = list(_ch(zip(bids, asks)))
    lv = _levels_fast(sides)
    if lv is None:
        lv = _levels_slow(sides)
    price, size = lv
    if market.count(e0.market) == n and symbol.count(e0.symbol) == n and e0.stream == evs[-1].stream:
        labels = [pa.array([v], STRING) for v in (e0.market, e0.symbol, e0.stream)]
    else:  # (per message: dictionary columns taken row by row)
        labels = [dict_col(vals) for vals in (market, symbol, [e.stream for e in evs])]
    return _explode(n, recv, exch, seq, prev, snap, nb, na, price, size, *labels)


class BookRows:
    """One stream's book messages as the loop buffered them (see :func:`book_rows_batch`)."""

    __slots__ = ("venue", "market", "symbol", "stream", "rows", "lv")

    def __init__(self, venue: str, market: str, symbol: str, stream: str, rows: list, lv: list) -> None:
        self.venue = venue
        self.market = market
        self.symbol = symbol
        self.stream = stream
        self.rows = rows   # (recv_ns, exch_ns, seq, prev_seq, snapshot, len(bids), len(asks)) per message
        self.lv = lv       # per message: JSON of (bids, asks)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple:
        return self.rows[i]

    def extend(self, other: "BookRows") -> None:
        self.rows.extend(other.rows)
        self.lv.extend(other.lv)


def _levels_of_pieces(lv: list, nlevels: int) -> tuple[Any, Any] | None:
    """(prices, sizes) of every level in the JSON pieces ``lv`` (``[[bids], [asks]]`` each), in
    order; None when a value has an escape, or the levels found are not the ``nlevels`` expected
    (a value that is not a string...): the slow path decodes them."""
    data = b"".join(lv)
    if 92 in data:  # a backslash: an escape somewhere
        return None
    buf = np.frombuffer(data, np.uint8)
    q = np.flatnonzero(buf == 34)  # '"'
    if len(q) % 2:
        return None
    starts = q[0::2] + 1
    ends = q[1::2]
    if not len(starts):
        return (pa.array([], STRING), pa.array([], STRING)) if not nlevels else None
    k = np.flatnonzero(buf[starts - 2] == 91)  # '[' before the quote: a level's first value, its price
    if len(k) != nlevels or k[-1] + 1 >= len(starts) or not (buf[starts[k + 1] - 2] == 44).all():
        return None  # ',' before the next quote: the size of the same level
    return _cut(buf, starts[k], ends[k]), _cut(buf, starts[k + 1], ends[k + 1])


def book_rows_batch(br: BookRows, dedup: "Dedup | None" = None) -> pa.RecordBatch | None:
    """:class:`BookRows` -> one row per level changed (bids, then asks, in the venue's order),
    and one marker row (side/price/size null) for a message that changed nothing. With
    ``dedup``, messages repeating the previous one's identity are left out."""
    n = len(br.rows)
    a = np.fromiter(_ch(br.rows), np.int64, 7 * n).reshape(n, 7)  # (np.array on tuples: 1.6x slower)
    recv = np.ascontiguousarray(a[:, 0])
    exch = np.ascontiguousarray(a[:, 1])
    seq = np.ascontiguousarray(a[:, 2])
    prev = np.ascontiguousarray(a[:, 3])
    snap = a[:, 4] != 0
    nb = np.ascontiguousarray(a[:, 5])
    na = np.ascontiguousarray(a[:, 6])
    lv = br.lv
    if dedup is not None:
        keep = dedup.book_keep(br.stream, br.rows[-1], seq, snap, exch)
        if keep is not None:
            idx = np.flatnonzero(keep)
            if not len(idx):
                return None
            recv, exch, seq, prev, snap, nb, na = (x[idx] for x in (recv, exch, seq, prev, snap, nb, na))
            lv = [lv[i] for i in idx.tolist()]
            n = len(idx)
    got = _levels_of_pieces(lv, int(nb.sum() + na.sum()))
    if got is None:
        price, size = _levels_slow([side for x in lv for side in msgspec.json.decode(x)])
    else:
        price, size = got
    return _explode(n, recv, exch, seq, prev, snap, nb, na, price, size,
                    *[pa.array([v], STRING) for v in (br.market, br.symbol, br.stream)])


def _explode(n: int, recv: np.ndarray, exch: np.ndarray, seq: np.ndarray, prev: np.ndarray, snap: np.ndarray,
             nb: np.ndarray, na: np.ndarray, price: Any, size: Any, market: Any, symbol: Any,
             stream: Any) -> pa.RecordBatch:
    """Per-message columns and the levels of all messages -> the book_changes rows.
    ``market``, ``symbol``, ``stream``: one value each (a 1-value string array: one instrument),
    or one per message (dictionary arrays of length ``n``)."""
    nl = nb + na
    empty = nl == 0
    any_empty = bool(empty.any())
    cnt = np.where(empty, 1, nl) if any_empty else nl
    total_levels = int(nl.sum())
    total = int(cnt.sum())
    msg = np.repeat(np.arange(n, dtype=np.int64), cnt)
    start = np.cumsum(cnt) - cnt
    pos = np.arange(total, dtype=np.int64) - start[msg]
    side_idx = (pos >= nb[msg]).astype(np.int32)
    if not any_empty:  # every message changed something: rows = levels, in order
        side = pa.DictionaryArray.from_arrays(pa.array(side_idx), _SIDES)
    else:
        is_marker = empty[msg]
        side = pa.DictionaryArray.from_arrays(pa.array(side_idx, mask=is_marker), _SIDES)
        take = np.zeros(total, np.int64)
        take[np.flatnonzero(~is_marker)] = np.arange(total_levels, dtype=np.int64)
        mask = pa.array(is_marker)
        tk = pa.array(take)
        if total_levels:
            price = pc.if_else(mask, pa.scalar(None, STRING), price.take(tk))
            size = pc.if_else(mask, pa.scalar(None, STRING), size.take(tk))
        else:
            price = pa.nulls(total, STRING)
            size = pa.nulls(total, STRING)
    exch_r = exch[msg]
    exch_a = pa.array(exch_r, INT64, mask=exch_r == 0) if (exch == 0).any() else pa.array(exch_r, INT64)
    if isinstance(market, pa.DictionaryArray):
        tmsg = pa.array(msg)
        cols3 = [d.take(tmsg) for d in (market, symbol, stream)]
    else:
        zeros = pa.array(np.zeros(total, np.int32))
        cols3 = [pa.DictionaryArray.from_arrays(zeros, d) for d in (market, symbol, stream)]
    arrays = [pa.array(recv[msg], INT64), exch_a, cols3[0], cols3[1], cols3[2], pa.array(seq[msg], INT64),
              pa.array(prev[msg], INT64), pa.array(snap[msg], pa.bool_()), side, price, size]
    return pa.RecordBatch.from_arrays(arrays, schema=batch_schema(KINDS["book_changes"]))


# --------------------------------------------------------------------------- duplicates within one recorder

class Dedup:
    """What one recorder drops because the venue sent it again (kept in memory, bounded).

    * trades / fills: a trade id already recorded for the same (venue, market, symbol);
    * book_changes: a message with the same (seq, snapshot, exch_ns) as the previous message
      of its stream (seq 0: never);
    * state tables (tickers, candles, funding, ...): a row identical to the previous row of its
      stream except for ``recv_ns`` (the venue re-sends its latest state after a reconnect).
    """

    IDS = 200_000  # trade ids remembered per instrument

    def __init__(self) -> None:
        self.ids: dict[tuple, tuple[set, deque]] = {}
        self.book_last: dict[str, tuple[int, bool, int]] = {}
        self.state_last: dict[tuple[str, str], tuple] = {}
        self.dropped: dict[str, int] = {}

    def _count(self, kind: str, n: int) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + n

    def trades(self, kind: str, evs: list) -> list:
        """``evs`` minus the trades whose id was recorded before (or earlier in ``evs``)."""
        e0 = evs[0]
        n = len(evs)
        key = (e0.venue, e0.market, e0.symbol)
        ids = [e.trade_id for e in evs]
        if [e.symbol for e in evs].count(e0.symbol) != n or [e.market for e in evs].count(e0.market) != n:
            return self._trades_slow(kind, evs)  # several instruments in one stream (wildcards)
        st = self.ids.get(key)
        if st is None:
            st = self.ids[key] = (set(), deque())
        seen, order = st
        s = set(ids)
        if len(s) == n and "" not in s and seen.isdisjoint(s):
            seen |= s
            order.append(ids)
            self._trim(seen, order)
            return evs
        return self._trades_slow(kind, evs)

    def _trades_slow(self, kind: str, evs: list) -> list:
        out = []
        for e in evs:
            tid = e.trade_id
            if not tid:
                out.append(e)
                continue
            key = (e.venue, e.market, e.symbol)
            st = self.ids.get(key)
            if st is None:
                st = self.ids[key] = (set(), deque())
            seen, order = st
            if tid in seen:
                continue
            seen.add(tid)
            order.append([tid])
            out.append(e)
            self._trim(seen, order)
        if len(out) != len(evs):
            self._count(kind, len(evs) - len(out))
        return out

    def _trim(self, seen: set, order: deque) -> None:
        while len(seen) > self.IDS and len(order) > 1:
            seen.difference_update(order.popleft())

    def book_keep(self, stream: str, last_ev: Any, seq: np.ndarray, snap: np.ndarray,
                  exch: np.ndarray) -> np.ndarray | None:
        """Which messages of one stream's batch to keep (None: all): not those repeating the
        (seq, snapshot, exch_ns) of the message before them (seq 0: never a repeat).
        ``last_ev``: the batch's last message (an event, or a (recv, exch, seq, prev, snapshot) row)."""
        n = len(seq)
        last = self.book_last.get(stream)
        if isinstance(last_ev, tuple):
            self.book_last[stream] = (last_ev[2], bool(last_ev[4]), last_ev[1])
        else:
            self.book_last[stream] = (last_ev.seq, last_ev.snapshot, last_ev.exch_ns)
        dup = np.zeros(n, np.bool_)
        if n > 1:
            dup[1:] = (seq[1:] == seq[:-1]) & (snap[1:] == snap[:-1]) & (exch[1:] == exch[:-1])
        if last is not None:
            dup[0] = (int(seq[0]), bool(snap[0]), int(exch[0])) == last
        dup &= seq != 0
        if not dup.any():
            return None
        self._count("book_changes", int(dup.sum()))
        return ~dup

    def states(self, kind: Kind, evs: list, rows_of: Callable[[Any], tuple]) -> list:
        """``evs`` minus rows equal to the previous row of their stream (``recv_ns`` aside)."""
        out = []
        last = self.state_last
        name = kind.name
        for e in evs:
            key = (name, e.stream)
            row = rows_of(e)
            if last.get(key) == row:
                continue
            last[key] = row
            out.append(e)
        if len(out) != len(evs):
            self._count(name, len(evs) - len(out))
        return out


_state_getters: dict[str, Callable[[Any], tuple]] = {}

# tables whose rows are states (a venue re-sends its latest one): consecutive repeats dropped
STATE_KINDS = frozenset({"tickers", "candles", "funding", "mark_prices", "index_prices", "open_interest",
                         "dex_prices", "dex_candles", "balances", "positions", "orders"})
TRADE_KINDS = frozenset({"trades", "fills"})


def state_getter(kind: Kind) -> Callable[[Any], tuple]:
    g = _state_getters.get(kind.name)
    if g is None:
        from operator import attrgetter

        fields = ("venue", "exch_ns", "market", "symbol", "stream") + kind.fields
        g = _state_getters[kind.name] = attrgetter(*fields)
    return g


def events_batch(kind: Kind, evs: list, dedup: Dedup | None) -> pa.RecordBatch | None:
    """One stream buffer's events -> a batch (None when nothing is left after dedup)."""
    name = kind.name
    if name == "book_changes":
        if isinstance(evs, BookRows):
            return book_rows_batch(evs, dedup)
        return book_changes_batch(evs, dedup)
    if dedup is not None:
        if name in TRADE_KINDS:
            evs = dedup.trades(name, evs)
        elif name in STATE_KINDS:
            evs = dedup.states(kind, evs, state_getter(kind))
        if not evs:
            return None
    return generic_batch(kind, evs)


def concat_sorted(kind: Kind, batches: list) -> pa.Table:
    """Batches of one partition -> one table ordered by ``recv_ns`` (stable: the rows of one
    message keep their order). Sorting is skipped when the rows already are in order."""
    t = pa.Table.from_batches(batches)
    if len(batches) > 1:
        t = t.unify_dictionaries()
    recv = t.column(0).to_numpy()
    if len(recv) > 1 and (recv[1:] < recv[:-1]).any():
        order = np.argsort(recv, kind="stable")
        t = t.take(pa.array(order))
    return t


def plain(table: pa.Table, kind: Kind) -> pa.Table:
    """Dictionary columns cast back to strings (the table's own schema, e.g. for the WAL)."""
    return table.cast(arrow_schema(kind))


__all__ = ["Dedup", "events_batch", "tuples_batch", "book_changes_batch", "generic_batch", "concat_sorted",
           "batch_schema", "plain", "STRS"]
