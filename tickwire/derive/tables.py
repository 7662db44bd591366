"""Computed events -> Parquet tables (``tickwire derive``).

Every table starts with the dataset's five columns (``recv_ns``, ``exch_ns`` (null when the
venue sent none), ``market``, ``symbol``, ``stream``: here the computed spec), and has ``venue``
and ``date`` as hive partitions. Prices and sizes are the exact strings, with float64 twins
(``*_f``) beside them for analysis:

``snapshot{N}[_{interval}]``
    ``seq``, ``bid_price``, ``bid_size``, ``ask_price``, ``ask_size`` (list<string>, best first),
    ``bid_price_f``, ``bid_size_f``, ``ask_price_f``, ``ask_size_f`` (list<double>), ``mid``,
    ``spread``, ``microprice`` (double; null when a side is empty)
``quotes``
    ``seq``, ``bid``, ``bid_size``, ``ask``, ``ask_size`` (string), ``bid_f``, ``bid_size_f``,
    ``ask_f``, ``ask_size_f``, ``mid``, ``spread`` (double)
``bars…``
    ``bar``, ``start_ns``, ``end_ns``, ``open``, ``high``, ``low``, ``close``, ``volume``, ``value``,
    ``buy_volume``, ``sell_volume`` (string), ``trades`` (int64), ``vwap``, ``open_f``, ``high_f``,
    ``low_f``, ``close_f``, ``volume_f``, ``value_f`` (double)
"""

from __future__ import annotations

import os
import time
import uuid
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

DAY_NS = 86_400_000_000_000


def _common(events: list) -> dict[str, Any]:
    import pyarrow as pa

    recv = np.fromiter((e.recv_ns for e in events), np.int64, len(events))
    exch = np.fromiter((e.exch_ns for e in events), np.int64, len(events))
    e0 = events[0]
    n = len(events)
    return {
        "recv_ns": pa.array(recv, pa.int64()),
        "exch_ns": pa.array(exch, pa.int64(), mask=exch == 0),
        "market": pa.array([e0.market] * n, pa.string()),
        "symbol": pa.array([e0.symbol] * n, pa.string()),
        "stream": pa.array([e0.stream] * n, pa.string()),
    }


def _f64(values: Any) -> Any:
    """Strings (None allowed) -> float64 Arrow array (null for None)."""
    import pyarrow as pa

    return pa.array(values, pa.string()).cast(pa.float64())


def _lists(levels: list) -> tuple[Any, Any, Any, Any]:
    """[[(p, s), ...] per row] -> (prices, sizes) as list<string> and list<double>."""
    import pyarrow as pa

    lens = np.fromiter((len(x) for x in levels), np.int32, len(levels))
    offsets = np.zeros(len(levels) + 1, np.int32)
    np.cumsum(lens, out=offsets[1:])
    flat = list(chain.from_iterable(chain.from_iterable(levels)))  # p0, s0, p1, s1... (C loops)
    px = pa.array(flat[0::2], pa.string())
    sz = pa.array(flat[1::2], pa.string())
    off = pa.array(offsets)
    return (pa.ListArray.from_arrays(off, px), pa.ListArray.from_arrays(off, sz),
            pa.ListArray.from_arrays(off, px.cast(pa.float64())), pa.ListArray.from_arrays(off, sz.cast(pa.float64())))


def snapshot_table(events: list) -> Any:
    import pyarrow as pa

    cols = _common(events)
    cols["seq"] = pa.array([e.seq for e in events], pa.int64())
    bp, bs, bpf, bsf = _lists([e.bids for e in events])
    ap, as_, apf, asf = _lists([e.asks for e in events])
    cols.update(bid_price=bp, bid_size=bs, ask_price=ap, ask_size=as_, bid_price_f=bpf, bid_size_f=bsf,
                ask_price_f=apf, ask_size_f=asf)
    b0 = _f64([e.bids[0][0] if e.bids else None for e in events]).to_numpy(zero_copy_only=False)
    bq = _f64([e.bids[0][1] if e.bids else None for e in events]).to_numpy(zero_copy_only=False)
    a0 = _f64([e.asks[0][0] if e.asks else None for e in events]).to_numpy(zero_copy_only=False)
    aq = _f64([e.asks[0][1] if e.asks else None for e in events]).to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        mid = (b0 + a0) / 2
        tot = bq + aq
        micro = np.where(tot > 0, (b0 * aq + a0 * bq) / np.where(tot > 0, tot, 1), mid)
    cols["mid"] = pa.array(mid, pa.float64(), from_pandas=True)
    cols["spread"] = pa.array(a0 - b0, pa.float64(), from_pandas=True)
    cols["microprice"] = pa.array(micro, pa.float64(), from_pandas=True)
    return pa.table(cols)


def quotes_table(events: list) -> Any:
    import pyarrow as pa

    cols = _common(events)
    cols["seq"] = pa.array([e.seq for e in events], pa.int64())
    for name in ("bid", "bid_size", "ask", "ask_size"):
        cols[name] = pa.array([getattr(e, name) for e in events], pa.string())
    for name in ("bid", "bid_size", "ask", "ask_size"):
        cols[f"{name}_f"] = cols[name].cast(pa.float64())
    b = cols["bid_f"].to_numpy(zero_copy_only=False)
    a = cols["ask_f"].to_numpy(zero_copy_only=False)
    cols["mid"] = pa.array((b + a) / 2, pa.float64(), from_pandas=True)
    cols["spread"] = pa.array(a - b, pa.float64(), from_pandas=True)
    return pa.table(cols)


_BAR_STR = ("open", "high", "low", "close", "volume", "value", "buy_volume", "sell_volume")


def bars_table(events: list) -> Any:
    import pyarrow as pa

    cols = _common(events)
    cols["bar"] = pa.array([e.bar for e in events], pa.string())
    cols["start_ns"] = pa.array([e.start_ns for e in events], pa.int64())
    cols["end_ns"] = pa.array([e.end_ns for e in events], pa.int64())
    for name in _BAR_STR:
        cols[name] = pa.array([getattr(e, name) for e in events], pa.string())
    cols["trades"] = pa.array([e.trades for e in events], pa.int64())
    cols["vwap"] = pa.array([e.vwap for e in events], pa.float64())
    for name in ("open", "high", "low", "close", "volume", "value"):
        cols[f"{name}_f"] = cols[name].cast(pa.float64())
    return pa.table(cols)


def table_of(view_kind: str, events: list) -> Any:
    return {"snapshot": snapshot_table, "quotes": quotes_table, "bars": bars_table}[view_kind](events)


def stream_file_name(spec: str) -> str:
    return quote(spec, safe="") + ".parquet"


def write_events(out: str | os.PathLike, sub: Any, events: list) -> tuple[int, int]:
    """Write one computed stream's events: one file per UTC date, replacing what an earlier run
    wrote for the same stream and date (written aside, then renamed). Returns (files, bytes)."""
    import pyarrow.parquet as pq

    if not events:
        return 0, 0
    view = sub.view
    root = Path(out) / view.table / f"venue={sub.venue}"
    days = np.fromiter((e.recv_ns // DAY_NS for e in events), np.int64, len(events))
    files = nbytes = 0
    cuts = np.flatnonzero(np.diff(days)) + 1
    for chunk_start, chunk_end in zip(np.r_[0, cuts], np.r_[cuts, len(events)]):
        chunk = events[int(chunk_start):int(chunk_end)]
        day = int(days[int(chunk_start)])
        date = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
        d = root / f"date={date}"
        d.mkdir(parents=True, exist_ok=True)
        table = table_of(view.kind, chunk)
        table = table.replace_schema_metadata({b"tickwire.kind": b"derived", b"tickwire.view": view.text.encode()})
        path = d / stream_file_name(sub.spec)
        tmp = d / f".{uuid.uuid4().hex}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        files += 1
        nbytes += path.stat().st_size
    return files, nbytes
