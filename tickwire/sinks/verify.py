"""``tickwire verify``: the data-quality report of a recorded dataset, per stream.

For every stream of every table (``book_snapshots`` and ``status`` aside): rows stored, the time
span (receipt times), duplicates (rows stored more than once, removed by the query views and by
``tickwire compact``), gaps, and the periods its connection was down:

* ``gap_events``: ``Gap`` rows of the stream in ``status`` (the feed saw its sequence break,
  or a reconnect broke a book: the book was invalid until the next snapshot);
* ``seq_breaks`` (``book_changes``): book messages whose ``prev_seq`` is not the ``seq`` of the
  stream's message before them (snapshots start a new chain; messages without a venue sequence
  are not checked) - a hole in the recorded chain whatever its cause;
* ``recorder_drops``: rows the recorder itself dropped (a disk slower than the feed), from the
  ``RecorderDrop`` rows of ``status``, per table and venue;
* ``down``: the periods a connection serving the stream was disconnected, from each
  ``Disconnected`` row to the next ``Connected`` row of the same connection; which connection
  served which stream comes from the ``Socket`` rows the recorder writes when a socket opens
  (and from Gap/Resynced rows that name both).

:func:`verify` returns a :class:`VerifyReport`; ``report.to_dict()`` is what ``--json`` prints.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from tickwire.sinks.schema import KINDS

_SKIP = {"status", "book_snapshots"}


@dataclass
class StreamQuality:
    table: str
    venue: str
    stream: str
    rows: int = 0                 # rows stored (duplicates included)
    unique_rows: int = 0          # rows after removing duplicates
    messages: int = 0             # book_changes: messages (rows are levels)
    first_ns: int = 0
    last_ns: int = 0
    duplicates: int = 0
    gap_events: int = 0
    seq_breaks: int = 0
    recorder_drops: int = 0       # rows of this table and venue the recorder dropped (not per stream)
    down_periods: int = 0
    down_s: float = 0.0
    down: list = field(default_factory=list)   # [[from_ns, to_ns, conn], ...]

    @property
    def span_s(self) -> float:
        return (self.last_ns - self.first_ns) / 1e9 if self.rows else 0.0

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.gap_events or self.seq_breaks or self.recorder_drops or self.down_periods)


@dataclass
class VerifyReport:
    data: str
    streams: list[StreamQuality] = field(default_factory=list)
    connections: list[dict] = field(default_factory=list)     # per connection: its down periods
    drops: list[dict] = field(default_factory=list)           # RecorderDrop rows

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.streams)

    def to_dict(self) -> dict[str, Any]:
        out = []
        for s in self.streams:
            d = asdict(s)
            d["span_s"] = round(s.span_s, 3)
            d["down_s"] = round(s.down_s, 3)
            d["ok"] = s.ok
            out.append(d)
        return {"data": self.data, "ok": self.ok, "streams": out, "connections": self.connections,
                "drops": self.drops}


def verify(data: str | os.PathLike) -> VerifyReport:
    """The quality report of the dataset at ``data`` (see the module docstring)."""
    from tickwire.sinks.query import connect

    root = Path(data)
    con = connect(root)
    try:
        return _verify(con, str(root))
    finally:
        con.close()


def _rows(con: Any, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _verify(con: Any, data: str) -> VerifyReport:
    from tickwire.sinks.query import has_files

    rep = VerifyReport(data)
    by_key: dict[tuple[str, str, str], StreamQuality] = {}

    def sq(table: str, venue: str, stream: str) -> StreamQuality:
        k = (table, venue, stream)
        s = by_key.get(k)
        if s is None:
            s = by_key[k] = StreamQuality(table, venue, stream)
        return s

    for kind in KINDS:
        if kind in _SKIP or not has_files(data, kind):
            continue
        for venue, stream, n, first, last in _rows(
                con, f"SELECT venue, stream, count(*), min(recv_ns), max(recv_ns) FROM {kind}_all GROUP BY ALL"):
            s = sq(kind, venue, stream or "")
            s.rows, s.first_ns, s.last_ns = n, first, last
        for venue, stream, n in _rows(con, f"SELECT venue, stream, count(*) FROM {kind} GROUP BY ALL"):
            s = sq(kind, venue, stream or "")
            s.unique_rows = n
            s.duplicates = s.rows - n
        if kind == "book_changes":
            sql = ("WITH m AS (SELECT DISTINCT venue, stream, recv_ns, seq, prev_seq, snapshot FROM book_changes), "
                   "o AS (SELECT *, lag(seq) OVER (PARTITION BY venue, stream ORDER BY recv_ns, seq) AS last FROM m "
                   "WHERE seq <> 0) "
                   "SELECT venue, stream, count(*) FILTER (WHERE NOT snapshot AND last IS NOT NULL AND prev_seq <> last) "
                   "FROM o GROUP BY ALL")
            for venue, stream, breaks in _rows(con, sql):
                sq(kind, venue, stream or "").seq_breaks = breaks
            for venue, stream, n in _rows(
                    con, "SELECT venue, stream, count(*) FROM (SELECT DISTINCT venue, stream, recv_ns, seq, snapshot "
                         "FROM book_changes) GROUP BY ALL"):
                sq(kind, venue, stream or "").messages = n

    if has_files(data, "status"):
        _status(con, rep, by_key, sq)
    rep.streams = sorted(by_key.values(), key=lambda s: (s.table, s.venue, s.stream))
    return rep


def _status(con: Any, rep: VerifyReport, by_key: dict, sq: Any) -> None:
    # Gap events per stream (of any table that has the stream)
    gaps: dict[tuple[str, str], int] = {}
    for venue, stream, n in _rows(con, "SELECT venue, stream, count(*) FROM status WHERE type = 'Gap' GROUP BY ALL"):
        gaps[(venue, stream or "")] = n
    # what the recorder dropped, per table and venue
    drops: dict[tuple[str, str], int] = {}
    for venue, recv_ns, code, detail in _rows(
            con, "SELECT venue, recv_ns, code, detail FROM status WHERE type = 'RecorderDrop' ORDER BY recv_ns"):
        try:
            d = msgspec.json.decode(detail or b"{}")
        except msgspec.DecodeError:
            d = {}
        n = int(d.get("events", 0) or 0)
        drops[(code, venue)] = drops.get((code, venue), 0) + n
        rep.drops.append({"venue": venue, "table": code, "events": n, "from_ns": d.get("from_ns"),
                          "to_ns": d.get("to_ns", recv_ns)})
    # connection -> streams, and each connection's down periods
    conn_streams: dict[tuple[str, str], set[str]] = {}
    for venue, conn, detail in _rows(con, "SELECT venue, conn, detail FROM status WHERE type = 'Socket'"):
        try:
            d = msgspec.json.decode(detail or b"{}")
        except msgspec.DecodeError:
            continue
        conn_streams.setdefault((venue, conn), set()).update(d.get("streams") or ())
    for venue, conn, stream in _rows(con, "SELECT DISTINCT venue, conn, stream FROM status "
                                          "WHERE conn <> '' AND stream <> '' AND type IN ('Gap', 'Resynced')"):
        conn_streams.setdefault((venue, conn), set()).add(stream)
    periods: dict[tuple[str, str], list[list]] = {}
    down_at: dict[tuple[str, str], int] = {}
    for venue, conn, typ, ns in _rows(
            con, "SELECT venue, conn, type, recv_ns FROM status WHERE type IN ('Connected', 'Disconnected') "
                 "AND conn <> '' ORDER BY recv_ns, type DESC"):
        k = (venue, conn)
        if typ == "Disconnected":
            down_at.setdefault(k, ns)
        elif k in down_at:
            periods.setdefault(k, []).append([down_at.pop(k), ns, conn])
    for (venue, conn), ps in sorted(periods.items()):
        rep.connections.append({"venue": venue, "conn": conn, "down_periods": len(ps),
                                "down_s": round(sum(b - a for a, b, _ in ps) / 1e9, 3),
                                "streams": sorted(conn_streams.get((venue, conn), ())), "down": ps})
    for (table, venue, stream), s in by_key.items():
        s.gap_events = gaps.get((venue, stream), 0)
        s.recorder_drops = drops.get((table, venue), 0)
        mine = [p for (v, c), ps in periods.items() if v == venue and stream in conn_streams.get((v, c), ())
                for p in ps]
        mine.sort()
        merged: list[list] = []
        for a, b, c in mine:  # union of overlapping periods (a failover: two sockets)
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b, c])
        s.down = merged
        s.down_periods = len(merged)
        s.down_s = sum(b - a for a, b, _ in merged) / 1e9


def _ts(ns: int) -> str:
    import time

    if not ns:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns / 1e9))


def render(rep: VerifyReport, console: Any = None) -> None:
    """Print the report as tables (rich)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = console or Console()
    t = Table(title=f"tickwire verify {rep.data}", title_justify="left")
    wide = max([len(s.stream) for s in rep.streams] + [6])
    for col, j in (("table", "left"), ("venue", "left"), ("stream", "left"), ("rows", "right"),
                   ("from (UTC)", "left"), ("span", "right"), ("dups", "right"), ("gaps", "right"),
                   ("breaks", "right"), ("dropped", "right"), ("down", "right"), ("", "left")):
        t.add_column(col, justify=j, no_wrap=True,  # type: ignore[arg-type]
                     min_width=wide if col == "stream" else None)
    for s in rep.streams:  # Text: no markup or emoji codes in stream names (":books:")
        t.add_row(*(Text(x) for x in (
            s.table, s.venue, s.stream, f"{s.rows:,}", _ts(s.first_ns), f"{s.span_s:,.1f} s", f"{s.duplicates:,}",
            f"{s.gap_events:,}", f"{s.seq_breaks:,}", f"{s.recorder_drops:,}",
            f"{s.down_periods} ({s.down_s:,.1f} s)" if s.down_periods else "0", "ok" if s.ok else "CHECK")),
            style=None if s.ok else "yellow")
    con.print(t)
    if rep.connections:
        c = Table(title="disconnected periods", title_justify="left")
        for col in ("venue", "connection", "periods", "down", "streams"):
            c.add_column(col)
        for x in rep.connections:
            c.add_row(*(Text(v) for v in (x["venue"], x["conn"], str(x["down_periods"]), f"{x['down_s']:,.1f} s",
                                          ", ".join(x["streams"]) or "-")))
        con.print(c)
    n_bad = sum(not s.ok for s in rep.streams)
    con.print(f"{len(rep.streams)} streams, {n_bad} to check" if n_bad else f"{len(rep.streams)} streams, all ok",
              markup=False, highlight=False)


__all__ = ["verify", "VerifyReport", "StreamQuality", "render"]
