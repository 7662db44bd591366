"""A simulated day of recording: file counts and query times, as the recorder leaves the dataset
and after ``tickwire compact``.

    python -m bench.dataset_day [--hours 24] [--books 10] [--book-rate 20] [--trade-rate 5] [--out DIR]

Events with synthetic receipt times go through the real :class:`~tickwire.sinks.Recorder` (raw
archive off: it is not queried). Simulated time drives the recorder's flushes (every 2 s) and
rolls (every 300 s): the writer's clock is replaced by the simulation's, so the dataset has the
parts and merged files a real day leaves. Then a few typical queries run through
``tickwire.query`` (duplicates removed) and plain DuckDB, before and after ``compact``; the time
of each is the median of 5 runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SEC = 1_000_000_000
T0 = 1_732_060_800 * SEC  # 2024-11-20 00:00:00 UTC


class _Clock:
    """The writer's time.monotonic, driven by the simulation."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def simulate(out: Path, hours: float, books: int, book_rate: float, trade_rate: float) -> dict[str, Any]:
    import numpy as np

    import tickwire.sinks.writer as writer_mod
    from tickwire import model as m
    from tickwire.book import Book
    from tickwire.sinks.recorder import Recorder

    clock = _Clock()
    real = writer_mod.time

    class _T:  # the writer module's `time`, with the simulated monotonic clock
        def __getattr__(self, name: str) -> Any:
            return clock.monotonic if name == "monotonic" else getattr(real, name)

    writer_mod.time = _T()  # type: ignore[assignment]
    rng = np.random.default_rng(7)
    rec = Recorder(out, raw=False, flush_interval=2.0, roll_interval=300.0)
    syms = [f"SYM{i:02d}USDT" for i in range(books)]
    bk = {s: Book("bybit", s) for s in syms}
    for s in syms:
        bk[s].apply_snapshot([(f"{1000 - k}.0", "1") for k in range(50)], [(f"{1001 + k}.0", "1") for k in range(50)], 1)
    seq = {s: 1 for s in syms}
    tid = 0
    n_book = n_trade = 0
    total_s = int(hours * 3600)
    t_wall = time.perf_counter()
    try:
        for sec in range(total_s):
            base = T0 + sec * SEC
            nb = rng.poisson(book_rate * books)
            nt = rng.poisson(trade_rate * books)
            ts = np.sort(rng.integers(0, SEC, nb + nt))
            which = rng.permutation(np.r_[np.zeros(nb, np.int8), np.ones(nt, np.int8)])
            sym_i = rng.integers(0, books, nb + nt)
            for j in range(nb + nt):
                s = syms[sym_i[j]]
                ns = base + int(ts[j])
                if which[j] == 0:
                    seq[s] += 1
                    q = seq[s]
                    lv = [(f"{1000 - q % 30}.0", str(q % 7))]
                    ev = m.BookUpdate(venue="bybit", market="linear", symbol=s, stream=f"bybit.linear:orderbook.50:{s}",
                                      recv_ns=ns, exch_ns=ns - 3_000_000, bids=lv, asks=[(f"{1001 + q % 30}.0", "2")],
                                      seq=q, prev_seq=q - 1, book=bk[s])
                    n_book += 1
                else:
                    tid += 1
                    ev = m.Trade(venue="bybit", market="linear", symbol=s, stream=f"bybit.linear:publicTrade:{s}",
                                 recv_ns=ns, exch_ns=ns - 2_000_000, price=f"{1000 + tid % 9}.5", size="0.01",
                                 side="buy" if tid % 2 else "sell", trade_id=f"{tid:012d}", seq=tid)
                    n_trade += 1
                rec.add(ev)
            clock.now = float(sec + 1)
            if (sec + 1) % 2 == 0:
                rec.flush(wait=True)  # the writer keeps up with simulated time: it rolls when a real one would
        rec.close()
    finally:
        writer_mod.time = real  # type: ignore[assignment]
    return {"hours": hours, "book_msgs": n_book, "trades": n_trade, "write_s": round(time.perf_counter() - t_wall, 1)}


def files(out: Path) -> dict[str, int]:
    from tickwire.sinks.dataset import partitions
    from tickwire.sinks.schema import KINDS

    return {k: sum(len(p.files) for p in partitions(out, k)) for k in KINDS if partitions(out, k)}


QUERIES = {
    "count book_changes": "SELECT count(*) FROM book_changes",
    "trades per symbol": "SELECT symbol, count(*), sum(CAST(size AS DOUBLE)) FROM trades GROUP BY symbol",
    "one symbol, one hour of book changes": (
        "SELECT count(*) FROM book_changes WHERE symbol = 'SYM03USDT' "
        "AND recv_ns BETWEEN 1732104000000000000 AND 1732107600000000000"),
    "1-minute VWAP of one symbol": (
        "SELECT time_bucket(INTERVAL 1 MINUTE, recv_time) AS m, sum(price::DOUBLE * size::DOUBLE) / sum(size::DOUBLE) "
        "FROM trades WHERE symbol = 'SYM01USDT' GROUP BY m ORDER BY m"),
}


def timings(out: Path) -> dict[str, dict[str, float]]:
    import duckdb

    from tickwire.sinks.query import connect

    res: dict[str, dict[str, float]] = {}
    con = connect(out)
    plain = duckdb.connect()
    for name, sql in QUERIES.items():
        t = []
        for _ in range(5):
            c = time.perf_counter()
            con.sql(sql).fetchall()
            t.append(time.perf_counter() - c)
        p = []
        psql = sql
        for kind in ("book_changes", "trades"):
            psql = psql.replace(f"FROM {kind}", f"FROM read_parquet('{out}/{kind}/**/*.parquet', "
                                                f"hive_partitioning = true)")
        psql = psql.replace("recv_time", "make_timestamp_ns(recv_ns)")
        for _ in range(5):
            c = time.perf_counter()
            plain.sql(psql).fetchall()
            p.append(time.perf_counter() - c)
        res[name] = {"tickwire.query_s": round(statistics.median(t), 4), "plain_duckdb_s": round(statistics.median(p), 4)}
    c = time.perf_counter()
    connect(out).close()
    res["connect (plans the views)"] = {"tickwire.query_s": round(time.perf_counter() - c, 4)}
    con.close()
    plain.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--books", type=int, default=10)
    ap.add_argument("--book-rate", type=float, default=20, help="messages per second per book")
    ap.add_argument("--trade-rate", type=float, default=5, help="trades per second per symbol")
    ap.add_argument("--out", default=None, help="dataset dir (default: a temporary dir, removed)")
    ap.add_argument("--timings-only", action="store_true", help="time the queries of an existing --out dataset")
    a = ap.parse_args()
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="tw-day-")) / "data"
    if a.timings_only:
        print(json.dumps({"files": files(out), "queries": timings(out)}, indent=2))
        return
    if out.exists():
        shutil.rmtree(out)
    from tickwire.sinks.dataset import compact

    res: dict[str, Any] = {"simulated": simulate(out, a.hours, a.books, a.book_rate, a.trade_rate)}
    res["as_recorded"] = {"files": files(out), "queries": timings(out)}
    if a.out:
        shutil.copytree(out, out.with_name(out.name + "-as-recorded"), dirs_exist_ok=True)
    c = time.perf_counter()
    rep = compact(out)
    res["compact"] = {"seconds": round(time.perf_counter() - c, 1), "files_in": rep.files_in, "files_out": rep.files_out,
                      "rows": rep.rows_in, "MB_in": round(rep.bytes_in / 2**20, 1), "MB_out": round(rep.bytes_out / 2**20, 1)}
    res["compacted"] = {"files": files(out), "queries": timings(out)}
    print(json.dumps(res, indent=2))
    if not a.out:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
