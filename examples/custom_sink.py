"""A recorder with a custom sink: trades and 1-second book snapshots into SQLite, in batches.

    python examples/custom_sink.py --sim --duration 10 --db ticks.sqlite
    sqlite3 ticks.sqlite "SELECT venue, count(*), min(price), max(price) FROM trades GROUP BY venue"

A sink is anything with ``add(event)`` and ``close()``: the same shape as tickwire's own Parquet
recorder (``tickwire.sinks.Recorder``), which can run beside it on the same feed. Written with
the asyncio API; the sink never blocks the loop for long (one ``executemany`` per batch).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3

import tickwire

SPECS = ["okx:trades:BTC-USDT", "okx:books:BTC-USDT@snapshot5_1s",
         "bybit.linear:publicTrade:BTCUSDT", "bybit.linear:orderbook.50:BTCUSDT@snapshot5_1s"]


class SqliteSink:
    """Trades and book snapshots into two tables, committed every ``batch`` rows (and at close)."""

    def __init__(self, path: str, batch: int = 500) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS trades (recv_ns INTEGER, exch_ns INTEGER, venue TEXT, "
                        "symbol TEXT, price TEXT, size TEXT, side TEXT, trade_id TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS snapshots (recv_ns INTEGER, venue TEXT, symbol TEXT, "
                        "bid TEXT, bid_size TEXT, ask TEXT, ask_size TEXT, mid REAL, spread REAL, levels TEXT)")
        self.batch = batch
        self.trades: list[tuple] = []
        self.snaps: list[tuple] = []
        self.rows = 0

    def add(self, ev: tickwire.Event) -> None:
        if isinstance(ev, tickwire.Trade):
            self.trades.append((ev.recv_ns, ev.exch_ns, ev.venue, ev.symbol, ev.price, ev.size, ev.side, ev.trade_id))
        elif isinstance(ev, tickwire.BookSnapshot) and ev.bids and ev.asks:
            (bp, bs), (ap, as_) = ev.bids[0], ev.asks[0]
            self.snaps.append((ev.recv_ns, ev.venue, ev.symbol, bp, bs, ap, as_, ev.mid(), ev.spread(),
                               tickwire.to_json(ev).decode()))
        if len(self.trades) + len(self.snaps) >= self.batch:
            self.flush()

    def flush(self) -> None:
        with self.db:  # one transaction
            self.db.executemany("INSERT INTO trades VALUES (?,?,?,?,?,?,?,?)", self.trades)
            self.db.executemany("INSERT INTO snapshots VALUES (?,?,?,?,?,?,?,?,?,?)", self.snaps)
        self.rows += len(self.trades) + len(self.snaps)
        self.trades.clear()
        self.snaps.clear()

    def close(self) -> None:
        self.flush()
        self.db.close()


async def main(args: argparse.Namespace) -> None:
    sink = SqliteSink(args.db)
    try:
        async with tickwire.stream(*SPECS, sim=args.sim) as feed:
            loop = asyncio.get_running_loop()
            end = loop.time() + args.duration if args.duration else None
            async for ev in feed:
                sink.add(ev)
                if end is not None and loop.time() >= end:
                    break
    finally:
        sink.close()
    print(f"wrote {sink.rows} rows to {args.db}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", action="store_true", help="run against the built-in simulator")
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--db", default="ticks.sqlite", help="SQLite file")
    try:
        asyncio.run(main(ap.parse_args()))
    except KeyboardInterrupt:
        pass
