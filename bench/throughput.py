"""Throughput suite: client CPU per message on pre-generated streams, as fast as the client drains.

For each pre-generated stream (Bybit orderbook.50, OKX books, Bybit publicTrade) a loopback server
process (``bench/server.py``, pinned to one core) plays the stream as fast as the client drains
it, and every registered client (``bench/clients/__init__.py``) runs in its own fresh process
pinned to the other core (``bench/runner.py``). Reported per client and stream: msgs/s and client
CPU us per message over the delta window, the ratio to the floor, and the check of the client's
final book (or trade count) against the generator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .common import run_child

from . import streams
from .clients import CLIENT_DESC, CLIENT_ENV, CLIENT_VENUES, CLIENTS, VENUES
from .results import TITLES, run_line
from .server import ServerProcess

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PEERS_PY = BENCH_DIR / ".venv-peers" / "bin" / "python"

FULL_SIZES = {"bybit": 200_000, "okx": 100_000, "bybit-trades": 100_000}
QUICK_SIZES = {"bybit": 10_000, "okx": 10_000, "bybit-trades": 10_000}
URL_PATH = {"bybit": "/v5/public/linear", "okx": "/ws/v5/public", "bybit-trades": "/v5/public/linear"}

# The issue's reference numbers (client CPU us per delta, Bybit-like book, one core).
ISSUE_REFERENCE = {
    "floor": 1.6, "python-okx": 7.6, "cryptofeed": 10.5, "ccxt.pro": 14.5, "pybit": 59.0,
}


@dataclass
class Row:
    client: str
    stream: str
    status: str  # ok | error | skip | n/a
    msgs: int = 0
    msgs_per_s: float = 0.0
    cpu_us: float = 0.0
    runs: list[float] = field(default_factory=list)
    check: str = ""
    reason: str = ""
    loop: str = ""


# ------------------------------------------------------------------------------------ checks


def _num(x: str) -> Decimal | None:
    try:
        return Decimal(str(x)).normalize()
    except (InvalidOperation, ValueError):
        return None


def check_book(res: dict[str, Any], st: streams.Stream) -> str:
    got_b, got_a = res.get("final_bids") or {}, res.get("final_asks") or {}
    if got_b == st.expected_bids and got_a == st.expected_asks:
        return "PASS (exact strings)"
    bad = 0
    for got, exp in ((got_b, st.expected_bids), (got_a, st.expected_asks)):
        g = {_num(p): _num(s) for p, s in got.items()}
        e = {_num(p): _num(s) for p, s in exp.items()}
        bad += len(set(g.items()) ^ set(e.items()))
    if bad == 0:
        return "PASS (numeric)"
    return (f"FAIL: {bad} level differences (got {len(got_b)}/{len(got_a)} levels, "
            f"expected {len(st.expected_bids)}/{len(st.expected_asks)})")


def check_trades(res: dict[str, Any], st: streams.Stream) -> str:
    n, last = res.get("trades"), res.get("last_trade_id")
    if n == st.expected_trades and last == st.last_trade_id:
        return f"PASS ({n} trades, last id)"
    return f"FAIL: {n}/{st.expected_trades} trades delivered, last id {'ok' if last == st.last_trade_id else 'wrong'}"


# ------------------------------------------------------------------------------------ running


def run_client(name: str, url: str, st: streams.Stream, cpu: int | None, timeout: float) -> dict[str, Any]:
    py = str(PEERS_PY) if CLIENT_ENV.get(name, "project") == "peers" else sys.executable
    return run_child(["bench.runner", name, url, st.key, str(st.expected_msgs)], cpu, timeout, python=py)


def measure(name: str, url: str, st: streams.Stream, cpu: int | None, repeat: int) -> Row:
    allowed = CLIENT_VENUES.get(name, VENUES)
    if st.key not in allowed:
        return Row(name, st.key, "n/a", reason=f"{name} does not handle this venue")
    if CLIENT_ENV.get(name, "project") == "peers" and not PEERS_PY.exists():
        return Row(name, st.key, "skip", reason="bench/.venv-peers absent (run: bash bench/setup_peers.sh)")
    timeout = 120 + st.expected_msgs * 1e-3  # generous: pybit needs ~75 us/msg
    results = []
    for _ in range(repeat):
        res = run_client(name, url, st, cpu, timeout)
        if res.get("status") != "ok":
            return Row(name, st.key, res.get("status", "error"), reason=res.get("reason", "?"))
        results.append(res)
    per = [r["cpu_s"] / r["msgs"] * 1e6 if r["msgs"] else float("nan") for r in results]
    med = sorted(range(len(results)), key=lambda i: per[i])[len(results) // 2]
    res = results[med]
    check = check_trades(res, st) if st.kind == "trades" else check_book(res, st)
    checks = [check_trades(r, st) if st.kind == "trades" else check_book(r, st) for r in results]
    if len({c.split(":")[0].split(" ")[0] for c in checks}) > 1:  # PASS in one run, FAIL in another
        check += " (runs disagree: " + "; ".join(checks) + ")"
    return Row(name, st.key, "ok", msgs=res["msgs"],
               msgs_per_s=res["msgs"] / res["wall_s"] if res["wall_s"] else 0.0,
               cpu_us=per[med], runs=per, check=check, loop=res.get("loop", ""),
               reason=res.get("note", ""))


# ------------------------------------------------------------------------------------ reporting


def fmt_table(rows: list[Row], titles: dict[str, str]) -> str:
    floor = {r.stream: r.cpu_us for r in rows if r.client == "floor" and r.status == "ok"}
    out = ["| client | stream | msgs | msgs/s | CPU µs/msg | × floor | book / trades check |",
           "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        title = titles.get(r.stream, r.stream)
        if r.status == "ok":
            ratio = f"{r.cpu_us / floor[r.stream]:.1f}×" if r.stream in floor and floor[r.stream] else "–"
            out.append(f"| {r.client} | {title} | {r.msgs:,} | {r.msgs_per_s:,.0f} | {r.cpu_us:.2f} "
                       f"| {ratio} | {r.check} |")
        else:
            label = {"n/a": "n/a", "skip": "skipped", "error": "ERROR"}.get(r.status, r.status)
            out.append(f"| {r.client} | {title} | – | – | – | – | {label}: {r.reason} |")
    return "\n".join(out)


PEER_NOTES = """\
How each peer is pointed at the loopback server (details in each runner's docstring):

- **cryptofeed** — subclass overriding the documented `Feed._address()` hook to return the
  loopback URL. Monkeypatch: `cryptofeed.connection.WSAsyncConn.__init__` rejects any address not
  starting with `wss://` and has no option for `ws://`; the runner builds the connection with the
  `wss://` spelling and puts the `ws://` address back. Instrument lists (normally REST at feed
  construction) are produced by cryptofeed's own `_parse_symbol_data` from a generated fixture
  (`bench/clients/_fixtures.py`) and stored with `Symbols.set`. cryptofeed 2.4.1 subscribes
  Bybit books as `orderbook.200.<sym>` (hard-coded); the server accepts any subscribe and plays
  the `orderbook.50` stream. Loop: uvloop (cryptofeed's default).
- **ccxt.pro** — `exchange.urls['api']['ws']` overridden (Bybit `['public']['linear']`; OKX the
  `/ws/v5` base). REST: `load_markets` goes through `exchange.fetch`, replaced on the instance by
  a router answering the instruments routes from the generated fixture (ccxt's own market
  parsing runs; no HTTP request is made; anything else raises); markets load before the timed
  window. Consumer: `while True: await watch_order_book(symbol)` / `watch_trades(symbol)`.
  Measurement hook: ccxt's per-frame `handle_message` is wrapped to note which frame the stored
  state reflects (the pull-style consumer may be parked when the last frame lands).
  Books are floats in ccxt, so the check is numeric. Loop: asyncio (ccxt's examples).
  Trades: `watch_trades` returns at most the newest `tradesLimit` (default 1000) trades per call;
  when frames arrive faster than the consumer task is scheduled (here: as fast as the socket
  drains), older trades are never delivered, which the trades check shows as FAIL. The defaults
  are kept on purpose: that is what a ccxt.pro user gets under a burst.
- **pybit** — the URL is built in the constructor from the module constant
  `pybit.unified_trading.PUBLIC_WSS` (no URL option), which the runner sets to
  `ws://127.0.0.1:PORT/v5/public/{CHANNEL_TYPE}` (monkeypatch). websocket-client thread; CPU of
  all threads is counted.
- **python-okx** — `WsPublicAsync(url=...)`. Monkeypatch: its `WebSocketFactory.connect` always
  passes an SSL context, which `websockets` refuses for `ws://`; the runner makes the same call
  without `ssl` for `ws://` URLs. Hand-written dict book over the raw messages (`json.loads`).
  Loop: asyncio.
- All runners also install a guard refusing non-loopback DNS lookups and connects made through
  Python's `socket` module.
"""


def _doc_line(name: str) -> str:
    """First sentence of a project-venv runner module's docstring (peers are not importable here)."""
    mod = getattr(CLIENTS[name], "module", None)
    if not mod or CLIENT_ENV.get(name, "project") == "peers":
        return ""
    try:
        doc = importlib.import_module(mod, "bench.clients").__doc__ or ""
    except Exception:
        return ""
    return " ".join(doc.split()).split(". ")[0].rstrip(".")



def section(rows: list[Row], sts: list[streams.Stream], args: argparse.Namespace, ctx: dict[str, Any],
            elapsed: float, peers_ok: bool) -> str:
    titles = {s.key: s.title for s in sts}
    lines = [
        f"## {TITLES['throughput']}",
        "",
        run_line(ctx, elapsed,
                 f"Each number is the median of {args.repeat} run(s), each run a fresh client process."),
        "",
        fmt_table(rows, titles),
        "",
        "- **msgs**: data frames in the timed window (from just after the snapshot / first message to "
        "the last frame); **msgs/s** is over the window's wall time, with the server streaming as fast "
        "as the client drains; **CPU µs/msg** is the client process's user+sys CPU "
        "(`getrusage(RUSAGE_SELF)`, all threads) over the window divided by msgs; **× floor** is that "
        "CPU divided by the floor's on the same stream.",
        "- **check**: the client's final book against the generator's expected book (price → size per "
        "side; *exact strings* when the client kept the venue's strings, *numeric* when it holds "
        "Decimal/float values that compare equal), or for trades the number of trades delivered to the "
        "consumer and the last trade id. A wrong result is shown, never hidden.",
        "- Per-run CPU µs/msg: " + "; ".join(
            f"{r.client}/{r.stream} " + ", ".join(f"{x:.2f}" for x in r.runs)
            for r in rows if r.status == "ok" and len(r.runs) > 1) if args.repeat > 1 else
        "- Single run per client.",
        "",
        "### Streams",
        "",
    ]
    for s in sts:
        if s.kind == "book":
            lines.append(f"- **{s.title}** (`{s.key}`, seed {s.seed}): 1 snapshot ({s.depth} levels per side) "
                         f"+ {s.n_deltas:,} deltas, 1–6 level changes each; {len(s.frames):,} frames, "
                         f"{sum(map(len, s.frames)) / len(s.frames):.0f} bytes average.")
        else:
            lines.append(f"- **{s.title}** (`{s.key}`, seed {s.seed}): {s.n_deltas:,} messages, "
                         f"{s.expected_trades:,} trades; {sum(map(len, s.frames)) / len(s.frames):.0f} bytes average.")
    lines += [
        "",
        "### Clients",
        "",
    ]
    for name in CLIENTS:
        if not any(r.client == name for r in rows):
            continue
        loops = sorted({r.loop for r in rows if r.client == name and r.loop})
        env = "bench/.venv-peers" if CLIENT_ENV.get(name, "project") == "peers" else "project venv"
        lines.append(f"- **{name}** ({env}{'; loop: ' + ', '.join(loops) if loops else ''}): "
                     f"{CLIENT_DESC.get(name) or _doc_line(name)}")
    lines += ["", PEER_NOTES.rstrip(), ""]
    if not peers_ok:
        lines += ["**Peers skipped**: `bench/.venv-peers` is absent; run `bash bench/setup_peers.sh`.", ""]
    lines += [
        "### Reference (from the issue)",
        "",
        "Client CPU µs per delta measured earlier on this kind of machine (loopback book stream, "
        "one core, 50-level book): " + ", ".join(f"{k} ~{v}" for k, v in ISSUE_REFERENCE.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("throughput")
    g.add_argument("--clients", help="comma-separated subset of: " + ", ".join(CLIENTS))
    g.add_argument("--streams", help="comma-separated subset of: " + ", ".join(VENUES))
    g.add_argument("--bybit-deltas", type=int)
    g.add_argument("--okx-deltas", type=int)
    g.add_argument("--trade-msgs", type=int)
    g.add_argument("--repeat", type=int, help="runs per client and stream (throughput and record); the "
                                              "median is reported (default 3, quick 1)")


def run(args: argparse.Namespace, ctx: dict[str, Any]) -> tuple[str, str]:
    """Run the suite; return (RESULTS.md section, console summary)."""
    sizes = dict(QUICK_SIZES if args.quick else FULL_SIZES)
    for key, val in (("bybit", args.bybit_deltas), ("okx", args.okx_deltas), ("bybit-trades", args.trade_msgs)):
        if val:
            sizes[key] = val
    repeat = args.repeat or (1 if args.quick else 3)
    args.repeat = repeat
    clients = [c.strip() for c in args.clients.split(",")] if args.clients else list(CLIENTS)
    for c in clients:
        if c not in CLIENTS:
            raise SystemExit(f"unknown client {c!r}; known: {', '.join(CLIENTS)}")
    keys = [s.strip() for s in args.streams.split(",")] if args.streams else list(VENUES)
    for k in keys:
        if k not in VENUES:
            raise SystemExit(f"unknown stream {k!r}; known: {', '.join(VENUES)}")
    server_cpu, client_cpu = ctx["server_cpu"], ctx["client_cpu"]
    peers_ok = PEERS_PY.exists()
    if not peers_ok:
        print("note: bench/.venv-peers absent; peers are skipped (run: bash bench/setup_peers.sh)",
              file=sys.stderr)
    t_start = time.perf_counter()
    rows: list[Row] = []
    sts: list[streams.Stream] = []
    for key in keys:
        t = time.perf_counter()
        st = streams.GENERATORS[key](sizes[key])
        sts.append(st)
        print(f"[throughput:{key}] generated {len(st.frames):,} frames in {time.perf_counter() - t:.1f} s",
              file=sys.stderr, flush=True)
        with ServerProcess(st, cpu=server_cpu) as srv:
            url = srv.url(URL_PATH[key])
            for name in clients:
                t = time.perf_counter()
                row = measure(name, url, st, client_cpu, repeat)
                rows.append(row)
                what = (f"{row.cpu_us:.2f} us/msg, {row.msgs_per_s:,.0f} msgs/s, {row.check}"
                        if row.status == "ok" else f"{row.status}: {row.reason}")
                print(f"[throughput:{key}] {name:<12} {what}  ({time.perf_counter() - t:.1f} s)",
                      file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t_start
    titles = {s.key: s.title for s in sts}
    text = fmt_table(rows, titles)
    return section(rows, sts, args, ctx, elapsed, peers_ok), text
