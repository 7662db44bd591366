"""Computed-stream tables from a recorded dataset: ``python -m bench.derive [--msgs N] [--keep DIR]``.

The query most users run first is the book at N levels every interval. This measures how fast
``tickwire derive`` produces it: a dataset is recorded from the benchmark's pre-generated book
streams (OKX ``books`` 400 levels and Bybit ``orderbook.50``, 1–6 level changes per message, one
message every 5 ms of receipt time), decoded by the real dialects and recorded with the recorder,
then each view is computed from the dataset (reading Parquet, rebuilding the book message by
message, sampling it, building the table and writing it; best of 3). Printed per view: recorded
``book_changes`` rows read per second, snapshot rows written per second, and the time.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

STEP_NS = 5_000_000  # receipt time between two messages
T0 = 1_780_000_000_000_000_000


def record(data: Path, msgs: int) -> dict[str, int]:
    from bench import streams
    from tickwire.decode import decoder_session
    from tickwire.sinks import Recorder

    rec = Recorder(str(data), backlog="block")
    counts = {}
    for name, spec, gen in (("okx", "okx", streams.okx_books), ("bybit", "bybit.linear", streams.bybit_orderbook)):
        st = gen(msgs)
        s = decoder_session(spec)
        n = 0
        for i, f in enumerate(st.frames):
            for ev in s.on_frame(f, False, T0 + i * STEP_NS):
                rec.add(ev)
                n += 1
        counts[name] = n
    rec.close()
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--msgs", type=int, default=200_000, help="book messages per stream (default 200,000)")
    ap.add_argument("--keep", help="record into this directory and keep it")
    args = ap.parse_args()
    from tickwire.derive.offline import derive

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tw-derive-"))
    data = tmp / "data"
    try:
        t = time.perf_counter()
        if not (data / "book_changes").is_dir():
            counts = record(data, args.msgs)
            print(f"recorded {counts} book messages in {time.perf_counter() - t:.1f} s into {data}")
        import tickwire

        rows = tickwire.query("SELECT stream, count(*) AS n FROM book_changes GROUP BY 1 ORDER BY 1", data=str(data))
        print(rows.to_string(index=False))
        span_s = args.msgs * STEP_NS / 1e9
        print(f"\n{args.msgs:,} messages per stream over {span_s:,.0f} s of receipt time\n")
        print("| stream | view | book_changes rows/s read | snapshot rows/s written | rows | time |")
        print("|---|---|---:|---:|---:|---:|")
        for base in ("okx:books:BTC-USDT", "bybit.linear:orderbook.50:BTCUSDT"):
            for view in ("snapshot10_1s", "snapshot10_100ms", "snapshot25_10ms", "snapshot10"):
                best = None
                for _ in range(3):
                    out = tmp / "out"
                    shutil.rmtree(out, ignore_errors=True)
                    st = derive(data, [f"{base}@{view}"], out)
                    if best is None or st.seconds < best.seconds:
                        best = st
                n = sum(best.events.values())
                print(f"| {base} | {view} | {best.rows_in / best.seconds:,.0f} | {n / best.seconds:,.0f} | {n:,} | "
                      f"{best.seconds:.2f} s |")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
