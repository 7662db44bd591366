"""Scale suite: 1,000 subscriptions on the simulator, memory of deep books, 1 vs 1,000 books.

(a) ``bench/simload.py``: 1,000 subscriptions across Bybit, OKX, BG Exchange and OKX DEX on
    ``tickwire.sim`` (its own process, pinned to the server core) at the venues' real push
    cadences; one fresh tickwire client process: CPU %, RSS, frames/s and events/s.
(b) ``bench/books_mem.py``: RSS and traced memory of 1,000 Bybit 200-level and 1,000 OKX
    400-level books held by the venues' dialect sessions (floor dicts as the reference).
(c) ``bench/pacer.py`` + ``bench/clients/latency.py``: CPU per message and latency with 1 book
    at 10,000 updates/s vs 1,000 books at 10 updates/s each (same total rate, spread phases).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from . import simload
from .common import run_func
from .latency import Case, latency_table, run_cases
from .results import TITLES, run_line

DEGRADATION_CASES = [Case("1 book × 10,000/s", 1, 10_000, "spread"),
                     Case("1,000 books × 10/s", 1000, 10_000, "spread")]


def _mib(b: float) -> str:
    return f"{b / 2**20:,.1f}"


def run_sim(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    warm_s, meas_s = (2.0, 5.0) if args.quick else (5.0, args.seconds or 30.0)
    specs, options = simload.universe()
    t = time.perf_counter()
    with simload.SimProcess(options, cpu=ctx["server_cpu"]) as sim:
        s0, t0 = sim.stats(), time.perf_counter()
        res = run_func("bench.simload:client_run",
                       dict(endpoints=sim.endpoints, specs=specs, warm_s=warm_s, meas_s=meas_s),
                       ctx["client_cpu"], timeout=warm_s + meas_s + 180)
        s1, t1 = sim.stats(), time.perf_counter()
    res["warm_s"], res["meas_s"] = warm_s, meas_s
    if s0 and s1:
        res["sim_cpu_pct"] = 100 * (s1["cpu_s"] - s0["cpu_s"]) / (t1 - t0)
        res["sim_frames_per_s"] = {v: (s1["frames_sent"][v] - s0["frames_sent"][v]) / (t1 - t0)
                                   for v in s1["frames_sent"]}
        res["sim_internal_errors"] = sum(s1["internal_errors"].values())
    if res.get("status") == "ok":
        print(f"[scale:sim] {res['specs']} subscriptions: {res['frames_per_s']:,.0f} frames/s, "
              f"{res['events_per_s']:,.0f} events/s, CPU {res['cpu_pct']:.1f}%, RSS {_mib(res['rss_bytes'])} MiB "
              f"(sim CPU {res.get('sim_cpu_pct', 0):.0f}%)  ({time.perf_counter() - t:.1f} s)",
              file=sys.stderr, flush=True)
    else:
        print(f"[scale:sim] ERROR: {res.get('reason')}", file=sys.stderr, flush=True)
    return res


def run_mem(args: argparse.Namespace, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    n = 200 if args.quick else 1000
    rows = []
    for venue in ("bybit", "okx"):
        for who in ("tickwire", "floor"):
            t = time.perf_counter()
            res = run_func("bench.books_mem:run", dict(venue=venue, n=n, who=who), ctx["client_cpu"], timeout=300)
            res.setdefault("venue", venue)
            res.setdefault("who", who)
            rows.append(res)
            if res.get("status") == "ok":
                print(f"[scale:memory] {venue} {who}: {_mib(res['rss_delta_bytes'] * 1000 / res['books'])} MiB RSS "
                      f"per 1,000 books  ({time.perf_counter() - t:.1f} s)", file=sys.stderr, flush=True)
            else:
                print(f"[scale:memory] {venue} {who}: ERROR {res.get('reason')}", file=sys.stderr, flush=True)
    return rows


def sim_table(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return f"ERROR: {r.get('reason', '?')}"
    conns = ", ".join(f"{v} {n}" for v, n in r["connections"].items())
    ev = ", ".join(f"{k} {v / r['wall_s']:,.0f}/s" for k, v in sorted(r["events_by_type"].items()))
    sim_fps = r.get("sim_frames_per_s") or {}
    status = ", ".join(f"{k} {v}" for k, v in r["status_events"].items()) or "none"
    out = [
        "| subscriptions | connections | books | frames/s | events/s | CPU % | CPU µs/frame | RSS MiB "
        "(end / peak) | status events in window |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|",
        f"| {r['specs']:,} | {conns} | {r['books']} | {r['frames_per_s']:,.0f} | {r['events_per_s']:,.0f} | "
        f"{r['cpu_pct']:.1f} | {r['cpu_us_per_frame']:.1f} | {_mib(r['rss_bytes'])} / {_mib(r['peak_rss_bytes'])} "
        f"| {status} |",
        "",
        f"- Events by type: {ev} (book updates: at most {simload.NOMINAL_BOOK_FPS:,}/s if every book changed "
        "at every push).",
        f"- Simulator (one process, its own core): {r.get('sim_cpu_pct', 0):.0f}% CPU, frames sent per second: "
        + ", ".join(f"{v} {x:,.0f}" for v, x in sim_fps.items()) + ".",
        f"- Every book had its snapshot {r['sync_s']:.1f} s after the start ({r['books_synced']}/{r['book_specs']} "
        f"books); then {r['warm_s']:g} s warm-up, then the measured {r['meas_s']:g} s. Books invalid at the end: "
        f"{r['invalid_books_at_end']}. RSS after connecting {_mib(r['rss_start_bytes'])} MiB, at the window start "
        f"{_mib(r['rss_window_start_bytes'])} MiB.",
    ]
    return "\n".join(out)


def mem_table(rows: list[dict[str, Any]]) -> str:
    out = ["| books | held by | levels per book | MiB RSS per 1,000 books | MiB traced per 1,000 | "
           "KiB per book (traced) | bytes per level (traced) | snapshot bytes per book |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    label = {"bybit": "Bybit `orderbook.200`", "okx": "OKX `books` (400)"}
    for r in rows:
        who = "tickwire session (`Book` + stream state)" if r["who"] == "tickwire" else "floor: 2 × `dict[str, str]`"
        if r.get("status") != "ok":
            out.append(f"| {label[r['venue']]} | {who} | – | – | – | – | – | ERROR: {r.get('reason', '?')} |")
            continue
        nb = r["books"]
        out.append(f"| {label[r['venue']]} | {who} | {r['levels'] / nb:.0f} | "
                   f"{_mib(r['rss_delta_bytes'] * 1000 / nb)} | {_mib(r['traced_bytes'] * 1000 / nb)} | "
                   f"{r['traced_bytes'] / nb / 1024:.1f} | {r['traced_bytes'] / r['levels']:.0f} | "
                   f"{r['frames_bytes'] / nb / 1024:.1f} KiB |")
    return "\n".join(out)


def degradation_lines(rows: list[dict[str, Any]]) -> list[str]:
    by = {(r["client"], r["n_books"]): r for r in rows if r.get("status") == "ok"}
    out = []
    for client in ("tickwire", "floor"):
        a, b = by.get((client, 1)), by.get((client, 1000))
        if a and b:
            runs = ""
            if len(a.get("cpu_runs", [])) > 1:
                runs = (" Runs (CPU µs/msg): 1 book " + ", ".join(f"{x:.1f}" for x in a["cpu_runs"])
                        + "; 1,000 books " + ", ".join(f"{x:.1f}" for x in b["cpu_runs"]) + ".")
            out.append(f"- **{client}**: CPU µs/msg {a['cpu_us_per_msg']:.2f} with 1 book, {b['cpu_us_per_msg']:.2f} "
                       f"with 1,000 books (**× {b['cpu_us_per_msg'] / a['cpu_us_per_msg']:.2f}**); p99 latency "
                       f"{a['lat_ns']['p99'] / 1e3:.1f} → {b['lat_ns']['p99'] / 1e3:.1f} µs; RSS "
                       f"{_mib(a['rss_bytes'])} → {_mib(b['rss_bytes'])} MiB.{runs}")
    return out


def run(args: argparse.Namespace, ctx: dict[str, Any]) -> tuple[str, str]:
    t0 = time.perf_counter()
    sim = run_sim(args, ctx)
    mem = run_mem(args, ctx)
    warm_s, meas_s = (1.0, 4.0) if args.quick else (2.0, args.seconds or 8.0)
    deg_repeat = 1 if args.quick else 3
    deg = run_cases(DEGRADATION_CASES, ["tickwire", "floor"], ctx, warm_s, meas_s, "scale:books", deg_repeat)
    elapsed = time.perf_counter() - t0
    deg_table = latency_table(deg, "books × rate")
    n_mem = mem[0].get("books", 0) if mem else 0
    body = "\n".join([
        f"## {TITLES['scale']}",
        "",
        run_line(ctx, elapsed),
        "",
        f"### (a) {sim.get('specs', 1000):,} subscriptions across venues on the simulator, real cadences",
        "",
        sim_table(sim),
        "- Subscriptions (`bench/simload.py`): Bybit linear 100 symbols × `orderbook.50`, `publicTrade`, "
        "`tickers` (300); Bybit spot 50 × the same (150); OKX 100 instIds × `books`, `trades`, `tickers` (300); "
        "BG Exchange 100 products × `orderbook.0` (150 levels), `ticker` (200); OKX DEX 50 tokens × `price` (50, "
        "logged in with the simulator's default key). Push intervals are the simulators' defaults, which follow the "
        "venues (Bybit books 20 ms, tickers 100 ms / spot 50 ms; OKX books and tickers 100 ms; BGE books 500 ms, "
        "tickers 1 s; DEX price 100 ms); trades come when the synthetic market trades.",
        "- The simulator is one Python process: when it is near 100% of its core it delivers fewer frames than "
        "the nominal cadences (it skips beats rather than bursting); frames/s above is what the client received "
        "(counted with `Feed.raw_hook`). **CPU µs/frame** includes a socket read and wake-up for most frames, as "
        "in the latency suite.",
        "",
        f"### (b) Memory of deep books ({n_mem:,} books per row, in a fresh process)",
        "",
        mem_table(mem),
        "",
        "- Snapshots generated like the venue's (`bench/streams.py`; distinct prices per book), then fed through "
        "the venue's dialect session (`venue.decoder(...).on_frame`, the live path), which keeps one "
        "`tickwire.book.Book` and its stream state per instrument; events dropped. **RSS** = `VmRSS` growth "
        "(after `gc.collect()`); **traced** = live Python allocations of a second, identical set "
        "(`tracemalloc`), without allocator slack.",
        "",
        "### (c) No degradation with 1,000 books: same total rate, 1 book vs 1,000 books",
        "",
        deg_table,
        "",
        *degradation_lines(deg),
        "- Paced server as in the latency suite (spread phases, one frame per write, Bybit `orderbook.50`, "
        f"10,000 frames/s in all); snapshots and a {warm_s:g} s warm-up excluded, measured {meas_s:g} s. "
        + (f"{deg_repeat} runs per row, alternating 1 book / 1,000 books; the row shows the run with the median "
           "CPU µs/msg (run-to-run spread at this paced rate is about ±15%, mostly wake-up cost). " if deg_repeat > 1
           else "") + "Columns as in the latency table.",
        "",
    ])
    summary = "\n\n".join([sim_table(sim), mem_table(mem), deg_table])
    return body, summary
