"""Computed streams from a recorded dataset: the same derivers as live, fed from the tables.

    >>> from tickwire.derive.offline import derive_events, derive
    >>> derive_events("data", ["okx:books:BTC-USDT@snapshot10_1s"])   # {spec: [BookSnapshot, ...]}
    >>> derive("data", ["okx:books:*@snapshot10_1s", "okx:trades:*@bars1m"], out="data/derived")

A book stream is rebuilt from ``book_changes`` (the rows of one message share ``recv_ns``,
``seq``, ``prev_seq`` and ``snapshot``; bids come first), its ``Gap`` and ``Resynced`` rows in
``status``, and the ``Overflow`` / ``RecorderDrop`` rows of its venue (integrity lost: invalid
until the next snapshot). Rows are read in file order and stably sorted by ``recv_ns``; at one
``recv_ns`` book rows come before status rows. A trade stream is read from ``trades``.

Tables (``derive``): ``<out>/<view>/venue=<venue>/date=<yyyy-mm-dd>/<stream, escaped>.parquet``,
one file per computed stream and UTC date, rewritten by each run; ``<view>`` is the view's
canonical spelling (``snapshot10_1s``, ``quotes``, ``bars1m``). Columns: :mod:`tickwire.derive.tables`.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from tickwire.derive.engine import BookDeriver, TradeDeriver, make_deriver
from tickwire.derive.spec import DerivedSubscription, split
from tickwire.model import Event
from tickwire.subscription import SpecError
from tickwire.venues import parse

BOOK_COLUMNS = ["recv_ns", "exch_ns", "market", "symbol", "seq", "prev_seq", "snapshot", "side", "price", "size"]
TRADE_COLUMNS = ["recv_ns", "exch_ns", "market", "symbol", "price", "size", "side", "trade_id"]


_SOURCE = re.compile(r"^part-\d{8}T\d{6}Z-([0-9a-zA-Z]+)-")


def parquet_files(data: str | os.PathLike, table: str) -> list[Path]:
    """A table's published files in order (partition, then name: the time of the first row)."""
    root = Path(data) / table
    if not root.is_dir():
        return []
    files = sorted(p for p in root.glob("venue=*/date=*/*.parquet") if not p.name.startswith((".", "_")))
    sources: dict[Path, set[str]] = {}
    for f in files:
        m = _SOURCE.match(f.name)
        sources.setdefault(f.parent, set()).add(m.group(1) if m else f.name)
    mixed = [d for d, src in sources.items() if len(src) > 1]
    if mixed and table in ("book_changes", "trades"):
        warnings.warn(f"{len(mixed)} partition(s) of {root} were written by several recorders "
                      f"({mixed[0].relative_to(root)}...): rows they both recorded are read twice; "
                      "compact the dataset first (tickwire compact)", stacklevel=3)
    return files


def _read(data: str | os.PathLike, table: str, columns: list[str], filt: Any = None) -> Any:
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = parquet_files(data, table)
    if not files:
        return None
    dset = ds.dataset([str(f) for f in files], format="parquet", partitioning="hive",
                      partition_base_dir=str(Path(data) / table))
    names = set(dset.schema.names)
    cols = [c for c in columns if c in names]
    t = dset.to_table(columns=cols, filter=filt, use_threads=True)
    if t.num_rows:
        # stable sort by receipt time: file order (= arrival order) kept among equal times
        order = np.argsort(t.column("recv_ns").to_numpy(), kind="stable")
        if not (order[1:] > order[:-1]).all():
            t = t.take(pa.array(order))
    return t


def recorded_streams(data: str | os.PathLike, table: str) -> list[str]:
    """The distinct ``stream`` values of a table."""
    import pyarrow.compute as pc

    t = _read(data, table, ["recv_ns", "stream"])
    if t is None:
        return []
    col = t.column("stream")
    if hasattr(col.type, "value_type"):
        col = col.cast(col.type.value_type)
    return sorted(x for x in pc.unique(col).to_pylist() if x)


def resolve(data: str | os.PathLike, specs: Iterable[str]) -> list[DerivedSubscription]:
    """``SPEC@VIEW`` specs (a base may use ``*`` / ``?`` against the recorded streams) -> the
    computed streams, each base a stream of the dataset (SpecError otherwise)."""
    out: list[DerivedSubscription] = []
    cache: dict[str, list[str]] = {}
    for spec in specs:
        base, view = split(spec)
        if view is None:
            raise SpecError(f"{spec!r} has no view: expected SPEC@VIEW, e.g. okx:books:BTC-USDT@snapshot10_1s, "
                            "okx:trades:BTC-USDT@bars1m")
        if any(c in base for c in "*?["):
            tables = ("book_changes", "trades")
            found = []
            for tb in tables:
                if tb not in cache:
                    cache[tb] = recorded_streams(data, tb)
                found += [s for s in cache[tb] if fnmatch.fnmatchcase(s, base)]
            subs = []
            for s in found:
                try:
                    subs.append(parse(f"{s}@{view}"))
                except SpecError:
                    continue  # e.g. a book pattern that also matched a trade stream
            if not subs:
                raise SpecError(f"{spec}: no recorded stream of {data} matches {base!r} (with a view {view} "
                                "applies to)")
            out += subs  # type: ignore[arg-type]
        else:
            sub = parse(spec)
            assert isinstance(sub, DerivedSubscription)
            table = "book_changes" if sub.base.kind == "book" else "trades"
            if table not in cache:
                cache[table] = recorded_streams(data, table)
            if sub.base.spec not in cache[table]:
                known = ", ".join(cache[table][:10]) or "none"
                raise SpecError(f"{spec}: {sub.base.spec} is not recorded in {data}/{table} (recorded: {known})")
            out.append(sub)
    return list({s.spec: s for s in out}.values())


@dataclass
class _Status:
    recv: Any = field(default_factory=lambda: np.empty(0, np.int64))
    action: list = field(default_factory=list)  # "gap" / "resynced"


def _status(data: str | os.PathLike, stream: str, venue: str) -> _Status:
    """The stream's Gap/Resynced rows and its venue's integrity losses, by recv_ns."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    f = ds.field("stream") == stream
    f = f | (ds.field("type") == "Overflow") | ((ds.field("type") == "RecorderDrop") & (ds.field("code") == "book_changes"))
    t = _read(data, "status", ["recv_ns", "stream", "type", "code", "venue"], f)
    st = _Status()
    if t is None or not t.num_rows:
        return st
    if "venue" in t.column_names:
        t = t.filter(pc.equal(t.column("venue").cast("string"), venue))
    types = t.column("type").to_pylist()
    keep = [i for i, x in enumerate(types) if x in ("Gap", "Resynced", "Overflow", "RecorderDrop")]
    st.recv = t.column("recv_ns").to_numpy()[keep]
    st.action = ["resynced" if types[i] == "Resynced" else "gap" for i in keep]
    return st


def _strings(col: Any) -> list:
    if hasattr(col.type, "value_type"):  # dictionary-encoded
        col = col.cast(col.type.value_type)
    return col.to_pylist()


def _book_stream(data: str | os.PathLike, base: Any, der: BookDeriver, out: list) -> int:
    """Feed one recorded book stream to its deriver; returns the book_changes rows read."""
    import pyarrow.dataset as ds

    t = _read(data, "book_changes", BOOK_COLUMNS, ds.field("stream") == base.spec)
    st = _status(data, base.spec, base.venue)
    if t is None or not t.num_rows:
        for r, a in zip(st.recv.tolist(), st.action):
            (der.gap if a == "gap" else der.resynced)(r, out)
        return 0
    n = t.num_rows
    recv = t.column("recv_ns").to_numpy()
    exch = t.column("exch_ns").fill_null(0).to_numpy()
    seq = t.column("seq").fill_null(0).to_numpy()
    prev = t.column("prev_seq").fill_null(0).to_numpy()
    snap = t.column("snapshot").fill_null(False).to_numpy(zero_copy_only=False)
    side = _strings(t.column("side"))
    price = _strings(t.column("price"))
    size = _strings(t.column("size"))
    if n:
        mk = _strings(t.column("market"))
        sy = _strings(t.column("symbol"))
        der.market, der.symbol = mk[0] or der.market, sy[0] or der.symbol
    # message boundaries: a change of (recv_ns, seq, prev_seq, snapshot)
    new = np.ones(n, bool)
    new[1:] = (recv[1:] != recv[:-1]) | (seq[1:] != seq[:-1]) | (prev[1:] != prev[:-1]) | (snap[1:] != snap[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    is_bid = np.fromiter((s == "bid" for s in side), bool, n)
    is_lv = np.fromiter((s is not None for s in side), bool, n)
    cb = np.concatenate(([0], np.cumsum(is_bid)))
    cl = np.concatenate(([0], np.cumsum(is_lv)))
    nbid = (cb[ends] - cb[starts]).tolist()
    nlev = (cl[ends] - cl[starts]).tolist()
    s_recv = st.recv.tolist()
    s_act = st.action
    k = 0
    ns = len(s_recv)
    message = der.message
    recv_l = recv[starts].tolist()
    exch_l = exch[starts].tolist()
    seq_l = seq[starts].tolist()
    snap_l = snap[starts].tolist()
    for a, r, e, q, sn, nb, nl in zip(starts.tolist(), recv_l, exch_l, seq_l, snap_l, nbid, nlev):
        while k < ns and s_recv[k] < r:  # status rows strictly before this message
            (der.gap if s_act[k] == "gap" else der.resynced)(s_recv[k], out)
            k += 1
        b = a + nb
        e2 = a + nl
        message(r, e, q, sn, list(zip(price[a:b], size[a:b])), list(zip(price[b:e2], size[b:e2])), out)
    while k < ns:
        (der.gap if s_act[k] == "gap" else der.resynced)(s_recv[k], out)
        k += 1
    return n


def _trade_stream(data: str | os.PathLike, base: Any, der: TradeDeriver, out: list) -> int:
    import pyarrow.dataset as ds

    t = _read(data, "trades", TRADE_COLUMNS, ds.field("stream") == base.spec)
    if t is None or not t.num_rows:
        return 0
    cols = [t.column("recv_ns").to_pylist(), t.column("exch_ns").fill_null(0).to_pylist()] + \
        [_strings(t.column(c)) for c in ("market", "symbol", "price", "size", "side", "trade_id")]
    trade = der.trade
    for r, e, mk, sy, p, s, sd, tid in zip(*cols):
        trade(r, e, mk or "", sy or "", p, s, sd or "", tid or "", out)
    return t.num_rows


@dataclass
class DeriveStats:
    """What a derivation read and made."""

    rows_in: int = 0
    events: dict[str, int] = field(default_factory=dict)   # computed spec -> events
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0


def derive_events(data: str | os.PathLike, specs: Iterable[str], stats: DeriveStats | None = None
                  ) -> dict[str, list[Event]]:
    """The computed events of ``specs`` from the dataset at ``data``, per computed spec, in order."""
    if not Path(data).is_dir():
        raise FileNotFoundError(f"no dataset at {data} (record one with `tickwire record ... --out {data}`)")
    subs = resolve(data, specs)
    by_base: dict[str, tuple[Any, list[DerivedSubscription]]] = {}
    for s in subs:
        by_base.setdefault(s.base.spec, (s.base, []))[1].append(s)
    result: dict[str, list[Event]] = {s.spec: [] for s in subs}
    st = stats or DeriveStats()
    for base, views in by_base.values():
        der = make_deriver(base.kind, base.venue, base.market, base.symbol)
        for v in views:
            der.add_view(v.spec, v.view)
        out: list[Event] = []
        if isinstance(der, BookDeriver):
            st.rows_in += _book_stream(data, base, der, out)
        else:
            st.rows_in += _trade_stream(data, base, der, out)
        for ev in out:
            result[ev.stream].append(ev)
    for k, v in result.items():
        st.events[k] = len(v)
    return result


def derive(data: str | os.PathLike, specs: Iterable[str], out: str | os.PathLike | None = None) -> DeriveStats:
    """Compute ``specs`` from the dataset at ``data`` and write them as Parquet tables under
    ``out`` (default ``<data>/derived``)."""
    from tickwire.derive.tables import write_events

    t0 = time.perf_counter()
    st = DeriveStats()
    evs = derive_events(data, specs, st)
    target = Path(out) if out is not None else Path(data) / "derived"
    for spec, events in evs.items():
        sub = parse(spec)
        files, nbytes = write_events(target, sub, events)
        st.files += files
        st.bytes += nbytes
    st.seconds = time.perf_counter() - t0
    return st
