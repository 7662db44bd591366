"""Recorder throughput and file sizes: ``python -m bench.recorder_sizes [--frames N] [--out DIR]``.

Synthetic Bybit linear frames (order book deltas on 50 levels, trades, ticker deltas) are
decoded by the real Bybit dialect and recorded with the raw archive on, like ``tickwire
record``. Printed:

* end-to-end rows/s, saturated: frames decoded and recorded as fast as one process can, until
  every file is published (``close()`` returned); the loop and the writer share the GIL;
* ``isolated``: the loop side alone (``add`` + ``raw`` per frame, writer idle) and the writer
  alone (rows/s converted, written to the WAL, compressed and published as Parquet);
* MiB per million rows of each table, and per million raw frames.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

import msgspec


def frames(n: int, seed: int = 1, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> Iterator[bytes]:
    """Plausible Bybit v5 linear frames: 80% book deltas, 12% trades, 8% ticker deltas."""
    rnd = random.Random(seed)
    enc = msgspec.json.encode
    state = {}
    for i, s in enumerate(symbols):
        mid = 650000 if i == 0 else 35000  # in ticks of 0.1
        book_u = 1
        levels_b = {mid - k: rnd.randint(1, 5000) for k in range(1, 51)}
        levels_a = {mid + k: rnd.randint(1, 5000) for k in range(0, 50)}
        state[s] = [mid, book_u, levels_b, levels_a, 1_000_000_000 + i * 1_000_000]
        yield enc({"topic": f"orderbook.50.{s}", "type": "snapshot", "ts": 1_700_000_000_000,
                   "data": {"s": s, "b": [[f"{p / 10:.2f}", f"{q / 1000:.3f}"] for p, q in sorted(levels_b.items(), reverse=True)],
                            "a": [[f"{p / 10:.2f}", f"{q / 1000:.3f}"] for p, q in sorted(levels_a.items())],
                            "u": book_u, "seq": 1}, "cts": 1_700_000_000_000})
    ts = 1_700_000_000_000
    for i in range(n):
        s = symbols[rnd.randrange(len(symbols))]
        st = state[s]
        ts += rnd.randint(0, 3)
        r = rnd.random()
        if r < 0.80:
            st[1] += 1
            b, a = [], []
            for _ in range(rnd.randint(1, 4)):
                side = rnd.random() < 0.5
                off = rnd.randint(0, 30)
                p = st[0] - 1 - off if side else st[0] + off
                q = 0 if rnd.random() < 0.25 else rnd.randint(1, 5000)
                (b if side else a).append([f"{p / 10:.2f}", f"{q / 1000:.3f}"])
            yield enc({"topic": f"orderbook.50.{s}", "type": "delta", "ts": ts,
                       "data": {"s": s, "b": b, "a": a, "u": st[1], "seq": st[1] * 7}, "cts": ts})
        elif r < 0.92:
            st[0] += rnd.randint(-2, 2)
            trades = []
            for _ in range(rnd.randint(1, 3)):
                st[4] += 1
                trades.append({"T": ts, "s": s, "S": "Buy" if rnd.random() < 0.5 else "Sell",
                               "v": f"{rnd.randint(1, 3000) / 1000:.3f}", "p": f"{st[0] / 10:.2f}",
                               "L": "ZeroPlusTick", "i": f"{st[4]:x}-{rnd.getrandbits(64):016x}", "BT": False,
                               "seq": st[4]})
            yield enc({"topic": f"publicTrade.{s}", "type": "snapshot", "ts": ts, "data": trades})
        else:
            yield enc({"topic": f"tickers.{s}", "type": "delta", "ts": ts, "cs": i,
                       "data": {"symbol": s, "bid1Price": f"{(st[0] - 1) / 10:.2f}",
                                "bid1Size": f"{rnd.randint(1, 9000) / 1000:.3f}",
                                "ask1Price": f"{st[0] / 10:.2f}", "ask1Size": f"{rnd.randint(1, 9000) / 1000:.3f}",
                                "lastPrice": f"{st[0] / 10:.2f}", "markPrice": f"{st[0] / 10:.2f}"}})


def _session():
    from tickwire.venues import get_venue

    v = get_venue("bybit")
    s = v.decoder("public/linear")
    s.conn = "bybit/public/linear#1"
    return s


def run(n_frames: int, out: Path, keep: bool = False) -> dict:
    from tickwire.sinks.recorder import Recorder

    data = list(frames(n_frames))
    ns0 = time.time_ns()

    # baseline: decode only
    s = _session()
    t = time.perf_counter()
    n_events = 0
    for i, f in enumerate(data):
        n_events += len(s.on_frame(f, False, ns0 + i * 1000))
    base = time.perf_counter() - t

    if out.exists():
        shutil.rmtree(out)
    s = _session()
    rec = Recorder(out, flush_interval=2.0)
    rec.connection("bybit/public/linear#1", "bybit", "public/linear", "ws://bench")
    t = time.perf_counter()
    raw = rec.frame
    add = rec.add
    for i, f in enumerate(data):
        ns = ns0 + i * 1000
        raw("bybit/public/linear#1", ns, f, False)
        for ev in s.on_frame(f, False, ns):
            add(ev)
    loop_s = time.perf_counter() - t
    rec.close()
    total_s = time.perf_counter() - t
    summ = rec.summary()
    rows = summ["rows"]
    total_rows = sum(rows.values())
    sizes = {}
    for kind, nbytes in summ["bytes"].items():
        if kind == "raw":
            sizes["raw (per 1M frames)"] = round(nbytes / summ["raw_frames"] * 1e6 / 2**20, 1)
        elif rows.get(kind):
            sizes[kind] = round(nbytes / rows[kind] * 1e6 / 2**20, 1)
    res = {
        "frames": len(data), "events": n_events, "rows": rows, "dropped": summ["dropped"],
        "raw_payload_MB": round(sum(map(len, data)) / 2**20, 1),
        "decode_us_per_frame": round(base / len(data) * 1e6, 3),
        # the loop thread's extra time per frame while the writer thread runs (they share the GIL)
        "loop_us_per_frame_contended": round((loop_s - base) / len(data) * 1e6, 3),
        "end_to_end_s": round(total_s, 2),
        "rows_per_s_end_to_end": int(total_rows / total_s),
        "events_per_s_end_to_end": int(n_events / total_s),
        "writer_busy_s": summ["writer_busy_s"],
        "MiB_per_million_rows": sizes,
        "peak_pending_MiB": round(summ["peak_pending_bytes"] / 2**20, 1),
        "files": summ["files"],
    }
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return res


def run_isolated(n_frames: int, out: Path) -> dict:
    """The two halves measured apart: loop side alone (writer idle), then writer alone."""
    from tickwire.sinks.recorder import Recorder

    data = list(frames(n_frames))
    ns0 = time.time_ns()
    s = _session()
    decoded = [(f, s.on_frame(f, False, ns0 + i * 1000)) for i, f in enumerate(data)]
    if out.exists():
        shutil.rmtree(out)
    import gc

    gc.collect()
    gc.freeze()  # the bench's own pre-decoded events are not the recorder's cost
    items: list = []
    loop_s = 0.0
    for keep in (False, True):  # 1: loop alone, batches discarded; 2: keep batches for the writer
        rec = Recorder(out, max_pending_bytes=1 << 40)
        w = rec.writer
        w.submit = ((lambda item, nbytes, droppable, block: items.append(item) or True) if keep  # type: ignore
                    else (lambda item, nbytes, droppable, block: True))
        rec.connection("bybit/public/linear#1", "bybit", "public/linear", "ws://bench")
        n_events = 0
        t = time.perf_counter()
        frame = rec.frame  # the feed calls the tap's frame()
        for i, (f, evs) in enumerate(decoded):
            ns = ns0 + i * 1000
            frame("bybit/public/linear#1", ns, f, False)
            for ev in evs:
                rec.add(ev)
            n_events += len(evs)
        rec.flush()
        if not keep:
            loop_s = time.perf_counter() - t
            w.stop()
    gc.unfreeze()
    w._start_merger = lambda: None  # merges run inline below, in the measured time
    w._process(items[0])  # warm up imports
    t = time.perf_counter()
    for it in items[1:]:
        w._process(it)
    w._publish_all()
    while not w._merges.empty():
        w._merge_job(*w._merges.get())
    writer_s = time.perf_counter() - t
    rows = sum(w.stats.rows.values())
    w.stop()
    shutil.rmtree(out, ignore_errors=True)
    return {"loop_alone_us_per_frame": round(loop_s / len(data) * 1e6, 3),
            "loop_alone_us_per_event": round(loop_s / n_events * 1e6, 3),
            "writer_alone_rows_per_s": int(rows / writer_s),
            "writer_alone_frames_per_s": int(len(data) / writer_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--out", default=None, help="dataset dir (default: a temporary dir, removed)")
    a = ap.parse_args()
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="tw-bench-")) / "data"
    res = run(a.frames, out, keep=bool(a.out))
    res["isolated"] = run_isolated(min(a.frames, 300_000), out)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
