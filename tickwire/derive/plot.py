"""Charts of a recorded dataset (matplotlib; ``pip install tickwire[plot]``), for ``tickwire plot``
and the example notebook: mid price and spread, depth at N levels over time, trades sized by
volume. Each function returns a ``matplotlib.figure.Figure`` (no pyplot state: works headless and
in notebooks).

    >>> from tickwire.derive import plot
    >>> snaps, trades, book, tspec = plot.load("data", depth=10, interval="1s")
    >>> plot.mid_spread(snaps, book).savefig("mid.png")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from tickwire.derive.offline import _read, derive_events, recorded_streams
from tickwire.derive.tables import snapshot_table


def _require_matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("charts need matplotlib: pip install 'tickwire[plot]'") from None
    return Figure


def load(data: str | os.PathLike, book: str | None = None, depth: int = 10, interval: str = "1s") -> tuple:
    """``(snapshots, trades, book_spec, trade_spec)`` of one instrument: the snapshot table of
    ``book@snapshot{depth}_{interval}`` (computed from the recording) and the trades of the same
    venue and symbol (pyarrow Tables; ``trades`` None if none were recorded). ``book`` defaults to
    the first recorded book stream."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    books = recorded_streams(data, "book_changes")
    if book is None:
        if not books:
            raise ValueError(f"no book stream recorded in {data}")
        book = books[0]
    events = derive_events(data, [f"{book}@snapshot{depth}_{interval}"])
    snaps_ev = next(iter(events.values()))
    if not snaps_ev:
        raise ValueError(f"{book}: no valid book in {data} to take snapshots of")
    snaps = snapshot_table(snaps_ev)
    venue = book.split(":", 1)[0].split(".")[0]
    symbol = snaps_ev[0].symbol
    trades = None
    tspec = ""
    for s in recorded_streams(data, "trades"):
        if s.split(":", 1)[0].split(".")[0] == venue and s.rsplit(":", 1)[-1] == symbol:
            tspec = s
            t = _read(data, "trades", ["recv_ns", "exch_ns", "price", "size", "side"], ds.field("stream") == s)
            if t is not None and t.num_rows:
                trades = t.set_column(t.column_names.index("price"), "price",
                                      pc.cast(t.column("price"), "float64")) \
                          .set_column(t.column_names.index("size"), "size", pc.cast(t.column("size"), "float64"))
            break
    return snaps, trades, book, tspec


def _times(ns: Any) -> Any:
    return np.asarray(ns, dtype="int64").astype("datetime64[ns]")


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.set_xlabel("time (UTC, receipt)")


def _col(t: Any, name: str) -> Any:
    """A column of a pyarrow Table or a polars / pandas DataFrame as a numpy array."""
    import pyarrow as pa

    c = t[name]
    if isinstance(c, (pa.Array, pa.ChunkedArray)):
        return c.to_numpy(zero_copy_only=False)
    return c.to_numpy()


def mid_spread(snaps: Any, title: str = "") -> Any:
    """Mid price (top) and spread (bottom) over time, from a snapshot table."""
    Figure = _require_matplotlib()
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    t = _times(_col(snaps, "recv_ns"))
    ax1.plot(t, _col(snaps, "mid"), color="#1f4e79", lw=1.2, label="mid")
    ax1.plot(t, _col(snaps, "microprice"), color="#d08c2b", lw=0.8, alpha=0.8, label="microprice")
    ax1.set_ylabel("price")
    ax1.legend(loc="upper left", frameon=False)
    ax1.set_title(f"Mid price and spread — {title}" if title else "Mid price and spread")
    ax2.step(t, _col(snaps, "spread"), where="post", color="#8a2c2c", lw=1)
    ax2.set_ylabel("spread")
    _time_axis(ax2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return fig


def _levels(snaps: Any, name: str, n: int) -> Any:
    """A list<double> column -> (rows, n) float array, NaN where a book had fewer levels."""
    import pyarrow as pa

    col = snaps[name]
    if not isinstance(col, (pa.Array, pa.ChunkedArray)):
        col = pa.array(col.to_list(), pa.list_(pa.float64()))
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    out = np.full((len(col), n), np.nan)
    offs = np.asarray(col.offsets)
    vals = col.flatten().to_numpy(zero_copy_only=False)
    for i in range(len(col)):
        row = vals[offs[i]:offs[i + 1]][:n]
        out[i, :len(row)] = row
    return out


def depth(snaps: Any, levels: int = 10, title: str = "") -> Any:
    """Cumulative size at levels 1..N over time: asks above zero, bids below (one band per level)."""
    Figure = _require_matplotlib()
    import matplotlib as mpl

    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    t = _times(_col(snaps, "recv_ns"))
    bids = np.nan_to_num(_levels(snaps, "bid_size_f", levels)).cumsum(axis=1)
    asks = np.nan_to_num(_levels(snaps, "ask_size_f", levels)).cumsum(axis=1)
    blues = mpl.colormaps["Blues"]
    reds = mpl.colormaps["Reds"]
    prev_b = np.zeros(len(t))
    prev_a = np.zeros(len(t))
    for k in range(levels):
        shade = 0.85 - 0.6 * k / max(1, levels - 1)
        ax.fill_between(t, -prev_b, -bids[:, k], step="post", color=blues(shade), lw=0,
                        label="bids" if k == 0 else None)
        ax.fill_between(t, prev_a, asks[:, k], step="post", color=reds(shade), lw=0,
                        label="asks" if k == 0 else None)
        prev_b, prev_a = bids[:, k], asks[:, k]
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel(f"cumulative size, levels 1..{levels} (bids negative)")
    _time_axis(ax)
    ax.set_title(f"Depth at {levels} levels — {title}" if title else f"Depth at {levels} levels")
    ax.legend(loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    return fig


def trades(trades: Any, snaps: Any = None, title: str = "") -> Any:
    """Trades over time, marker area by size, colour by taker side; the mid behind them."""
    Figure = _require_matplotlib()
    fig = Figure(figsize=(10, 5), layout="constrained")
    ax = fig.subplots()
    if snaps is not None:
        ax.plot(_times(_col(snaps, "recv_ns")), _col(snaps, "mid"), color="#999999", lw=0.8, label="mid", zorder=1)
    if trades is not None and len(trades):
        t = _times(_col(trades, "recv_ns"))
        px = _col(trades, "price").astype(float)
        sz = _col(trades, "size").astype(float)
        side = np.asarray(_col(trades, "side")).astype(str)
        area = 8 + 400 * sz / (sz.max() if sz.max() > 0 else 1)
        for s, color in (("buy", "#2b8a3e"), ("sell", "#c92a2a")):
            m = side == s
            ax.scatter(t[m], px[m], s=area[m], color=color, alpha=0.45, edgecolors="none",
                       label=f"{s} (taker)", zorder=2)
    ax.set_ylabel("price")
    _time_axis(ax)
    ax.set_title(f"Trades sized by volume — {title}" if title else "Trades sized by volume")
    ax.legend(loc="upper left", frameon=False, markerscale=0.6)
    ax.grid(alpha=0.3)
    return fig


def save_all(data: str | os.PathLike, out: str | os.PathLike, book: str | None = None, depth_levels: int = 10,
             interval: str = "1s", dpi: int = 110) -> list[Path]:
    """The three charts of one instrument as PNG files in ``out``; returns their paths."""
    snaps, tr, spec, tspec = load(data, book, depth_levels, interval)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    figs = {"mid_spread.png": mid_spread(snaps, spec), "depth.png": depth(snaps, depth_levels, spec),
            "trades.png": trades(tr, snaps, tspec or spec)}
    paths = []
    for name, fig in figs.items():
        p = outdir / name
        fig.savefig(p, dpi=dpi)
        paths.append(p)
    return paths
