"""Record suite: what recording costs per message on the throughput streams.

The throughput suite's Bybit ``orderbook.50`` and OKX ``books`` streams (``bench/server.py``, as
fast as the client drains) are consumed by tickwire in a fresh pinned process
(``bench/clients/record_client.py``), alternately without and with a ``Recorder`` attached the
way ``tickwire record`` attaches it (Parquet tables + raw frame archive). Reported: CPU µs/msg
both ways (median of ``--repeat`` runs each), the difference = the cost of recording per
message, split into the event loop's share (the main thread) and the recorder's threads (writer,
merge), rows and bytes written, and anything the recorder dropped.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from . import streams
from .common import run_func
from .results import TITLES, run_line
from .server import ServerProcess
from .throughput import FULL_SIZES, QUICK_SIZES, URL_PATH, check_book

STREAMS = ("bybit", "okx")


def _mib(b: float) -> str:
    return f"{b / 2**20:,.1f}"


def _median(results: list[dict[str, Any]], key: Any) -> dict[str, Any]:
    return sorted(results, key=key)[len(results) // 2]


def _record_client(**kw: Any) -> dict[str, Any]:
    """``bench.clients.record_client.run``, with the CPU of every thread but the main one (the
    event loop's) counted apart: ``threads_cpu_s`` (the recorder's writer and merge threads)."""
    import threading

    from bench.clients import record_client

    other = [0.0]
    lock = threading.Lock()
    orig = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def boot(self: threading.Thread) -> None:
        try:
            orig(self)
        finally:
            with lock:
                other[0] += time.thread_time()  # this thread's whole CPU time

    import gc

    gc_s = [0.0, 0]
    t_gc = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            t_gc[0] = time.thread_time()
        else:
            gc_s[0] += time.thread_time() - t_gc[0]
            gc_s[1] += 1

    phases: dict[str, float] = {}
    from tickwire.sinks.recorder import Recorder

    close = Recorder.close

    def closing(self: Any) -> Any:
        try:
            return close(self)
        finally:
            phases.update(self.summary().get("writer_phases_s", {}))

    threading.Thread._bootstrap_inner = boot  # type: ignore[attr-defined]
    gc.callbacks.append(on_gc)
    Recorder.close = closing  # type: ignore[method-assign]
    try:
        res = record_client.run(**kw)
    finally:
        threading.Thread._bootstrap_inner = orig  # type: ignore[attr-defined]
        gc.callbacks.remove(on_gc)
        Recorder.close = close  # type: ignore[method-assign]
    res["writer_phases_s"] = phases
    res["threads_cpu_s"] = other[0]
    res["gc_s"] = gc_s[0]
    res["gc_runs"] = gc_s[1]
    return res


def run(args: argparse.Namespace, ctx: dict[str, Any]) -> tuple[str, str]:
    sizes = dict(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.bybit_deltas:
        sizes["bybit"] = args.bybit_deltas
    if args.okx_deltas:
        sizes["okx"] = args.okx_deltas
    repeat = args.repeat or (1 if args.quick else 3)
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    titles: dict[str, str] = {}
    for key in STREAMS:
        st = streams.GENERATORS[key](sizes[key])
        titles[key] = st.title
        with ServerProcess(st, cpu=ctx["server_cpu"]) as srv:
            url = srv.url(URL_PATH[key])
            runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            for _ in range(repeat):
                for record in (False, True):
                    res = run_func("bench.record:_record_client",
                                   dict(url=url, venue=key, expected_msgs=st.expected_msgs, record=record),
                                   ctx["client_cpu"], timeout=120 + st.expected_msgs * 1e-3)
                    if res.get("status") != "ok":
                        print(f"[record:{key}] record={record}: ERROR {res.get('reason')}", file=sys.stderr)
                        rows.append({"stream": key, "status": "error", "reason": res.get("reason", "?")})
                        break
                    res["check"] = check_book(res, st)
                    res.pop("final_bids", None)
                    res.pop("final_asks", None)
                    runs[record].append(res)
                    cpu = res.get("cpu_close_s", res["cpu_s"])
                    th = res.get("threads_cpu_s", 0.0)
                    print(f"[record:{key}] record={record!s:<5} {cpu / res['msgs'] * 1e6:.2f} us/msg "
                          f"(main thread {(cpu - th) / res['msgs'] * 1e6:.2f}, other threads "
                          f"{th / res['msgs'] * 1e6:.2f}; gc {res.get('gc_s', 0) / res['msgs'] * 1e6:.2f} in "
                          f"{res.get('gc_runs', 0)} runs) ({res['check']})" + "".join(
                              f" {k} {v / res['msgs'] * 1e6:.2f}" for k, v in sorted(
                                  res.get("writer_phases_s", {}).items())), file=sys.stderr, flush=True)
            if runs[False] and runs[True]:
                base = _median(runs[False], lambda r: r["cpu_s"] / r["msgs"])
                rec = _median(runs[True], lambda r: r["cpu_close_s"] / r["msgs"])
                rows.append({"stream": key, "status": "ok", "base": base, "rec": rec, "repeat": repeat,
                             "base_runs": [r["cpu_s"] / r["msgs"] * 1e6 for r in runs[False]],
                             "rec_runs": [r["cpu_close_s"] / r["msgs"] * 1e6 for r in runs[True]],
                             "loop_runs": [(r["cpu_close_s"] - r.get("threads_cpu_s", 0.0)) / r["msgs"] * 1e6
                                           for r in runs[True]],
                             "base_loop_runs": [(r["cpu_s"] - r.get("threads_cpu_s", 0.0)) / r["msgs"] * 1e6
                                                for r in runs[False]],
                             "frames": len(st.frames),
                             "payload_bytes": sum(map(len, st.frames))})
    elapsed = time.perf_counter() - t_start
    table = _table(rows, titles)
    body = "\n".join([
        f"## {TITLES['record']}",
        "",
        run_line(ctx, elapsed,
                 f"Median of {repeat} fresh client process(es) per cell, runs alternating without/with recording."),
        "",
        table,
        "",
        *_details(rows, titles),
        "",
        "- Streams and server as in the throughput suite (as fast as the client drains); client: tickwire "
        "(`async for` over `tickwire.stream`), pinned to its own core.",
        "- **with recording**: `Recorder(out)` with `tickwire record`'s defaults — Parquet (zstd) tables per "
        "event kind + the raw frame archive, flush every 2 s, top-20 book snapshots per book every 1 s, "
        "`backlog=\"drop\"` — attached with `rec.attach(feed)` (raw frames through `Feed.raw_hook`) and "
        "`rec.add(ev)` for every event, writing to a temporary directory on the local disk (ext4).",
        "- **on the loop** / **in threads**: the cost split between the main thread (the event loop: "
        "`rec.add`, the frame tap) and every other thread (the recorder's writer and merge threads), "
        "from `time.thread_time()` of each thread; medians of the runs.",
        "- **CPU µs/msg**: client process user+sys CPU (all threads: the recorder's writer thread is "
        "included) per delta. Without recording: from the snapshot to the last delta (as the throughput "
        "suite). With recording: from the snapshot to the end of `rec.close()`, so the encoding and "
        "publishing still pending when the stream ends is counted (pyarrow is imported before the window: "
        "a one-time cost a long recording amortises). **cost** = the difference.",
        "- **msgs/s** with recording: over the stream only (the writer may still be busy after it).",
        "",
    ])
    return body, table


def _table(rows: list[dict[str, Any]], titles: dict[str, str]) -> str:
    out = ["| stream | msgs | without: CPU µs/msg | with recording: CPU µs/msg | cost µs/msg | on the loop | "
           "in threads | × | msgs/s without / with | rows written | bytes on disk per msg | dropped | book check |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|"]
    for r in rows:
        title = titles.get(r["stream"], r["stream"])
        if r["status"] != "ok":
            out.append(f"| {title} | – | – | – | – | – | – | – | – | – | – | – | ERROR: {r['reason']} |")
            continue
        b, w = r["base"], r["rec"]
        cb = b["cpu_s"] / b["msgs"] * 1e6
        cw = w["cpu_close_s"] / w["msgs"] * 1e6
        rows_n = sum(w["rows"].values())
        disk = sum(w["disk_bytes"].values())
        dropped = sum(w["dropped"].values()) + w["dropped_frames"]
        checks = "; ".join(sorted({b["check"], w["check"]}))
        loop = _med(r["loop_runs"]) - _med(r["base_loop_runs"])
        threads = (cw - cb) - loop
        out.append(f"| {title} | {w['msgs']:,} | {cb:.2f} | {cw:.2f} | **{cw - cb:.2f}** | {loop:.2f} | "
                   f"{threads:.2f} | {cw / cb:.2f} | "
                   f"{b['msgs'] / b['wall_s']:,.0f} / {w['msgs'] / w['wall_s']:,.0f} | {rows_n:,} | "
                   f"{disk / w['msgs']:.0f} B | {dropped:,} | {checks} |")
    return "\n".join(out)


def _med(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2] if xs else 0.0


def _details(rows: list[dict[str, Any]], titles: dict[str, str]) -> list[str]:
    out = []
    for r in rows:
        if r["status"] != "ok":
            continue
        w = r["rec"]
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(w["rows"].items()))
        sizes = ", ".join(f"{k} {_mib(v)} MiB" for k, v in sorted(w["recorded_bytes"].items()))
        out.append(
            f"- {titles[r['stream']]}: rows {kinds}; {w['raw_frames']:,} raw frames; written {sizes} "
            f"({_mib(sum(w['disk_bytes'].values()))} MiB on disk, from {_mib(r['payload_bytes'])} MiB of frame "
            f"payload); `close()` took {w['close_s']:.2f} s; writer busy {w['writer_busy_s']:.2f} s; peak "
            f"pending {_mib(w['peak_pending_bytes'])} MiB. Per-run CPU µs/msg without: "
            + ", ".join(f"{x:.2f}" for x in r["base_runs"]) + "; with: "
            + ", ".join(f"{x:.2f}" for x in r["rec_runs"]) + "; main thread with: "
            + ", ".join(f"{x:.2f}" for x in r["loop_runs"]) + ", without: "
            + ", ".join(f"{x:.2f}" for x in r["base_loop_runs"]) + ".")
    return out
