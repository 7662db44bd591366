"""``tickwire demo``: the simulator of every venue, recorded into a dataset, with a live dashboard.

Offline by construction: the venues are simulated in-process on loopback (with the
simulators' test API keys for the channels that need a login), the feed is the real client,
the recording is the real :class:`~tickwire.sinks.Recorder`. At the end it prints what was
written and runs one example query over it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import typer

from tickwire.cli.common import (EXIT_DISK, EXIT_FEED, EXIT_INTERRUPTED, EXIT_SPEC, close_feed_when_done, fail,
                                 parse_list, run_async, stop_on_signals)

#: A few books, trades, tickers and candles per venue (the simulators' default instruments).
DEFAULT_STREAMS: dict[str, list[str]] = {
    "bybit": [
        "bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:publicTrade:BTCUSDT", "bybit.linear:tickers:BTCUSDT",
        "bybit.linear:kline.1:BTCUSDT", "bybit.linear:orderbook.50:ETHUSDT", "bybit.linear:publicTrade:ETHUSDT",
        "bybit.spot:orderbook.50:BTCUSDT", "bybit.spot:publicTrade:BTCUSDT",
    ],
    "okx": [
        "okx:books:BTC-USDT", "okx:trades:BTC-USDT", "okx:tickers:BTC-USDT", "okx:candle1m:BTC-USDT",
        "okx:books:BTC-USDT-SWAP", "okx:trades:BTC-USDT-SWAP", "okx:funding-rate:BTC-USDT-SWAP",
        "okx:mark-price:BTC-USDT-SWAP",
    ],
    "okxdex": [
        "okxdex:price:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",              # WETH
        "okxdex:dex-token-candle1m:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
        "okxdex:trades:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
        "okxdex:price:501/So11111111111111111111111111111111111111112",          # wSOL
    ],
    "bge": [
        "bge:orderbook.0:BTC_USDT", "bge:fills:BTC_USDT", "bge:ticker:BTC_USDT", "bge:candles.1min:BTC_USDT",
        "bge:orderbook.0:ETH_USDT", "bge:fills:ETH_USDT",
    ],
}

# Prices are the venues' exact strings: cast to DECIMAL to order and add them exactly
# (arg_min/arg_max return the venue's own string of the lowest/highest price).
EXAMPLE_SQL = (
    "SELECT venue, market, symbol, count(*) AS trades, "
    "arg_min(price, CAST(price AS DECIMAL(38,10))) AS low, "
    "arg_max(price, CAST(price AS DECIMAL(38,10))) AS high, "
    "CAST(sum(CAST(size AS DECIMAL(38,10))) AS VARCHAR) AS volume "
    "FROM trades GROUP BY venue, market, symbol ORDER BY venue, market, symbol"
)


class DemoError(ValueError):
    """Bad demo options (unknown venue...)."""


def demo(
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds "
                                                                      "[default: until Ctrl-C]."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Dataset directory [default: a new folder "
                                                                 "./demo-<UTC date and time>]."),
    venues: Optional[str] = typer.Option(None, "--venues",
                                         help="Comma-separated venues [default: every simulated venue]."),
    dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard",
                                   help="Live table in a terminal (a plain summary line every few seconds "
                                        "otherwise, or when stdout is not a terminal)."),
    seed: int = typer.Option(0, "--seed", help="Simulator market seed."),
) -> None:
    """Record every simulated venue into --out with a live dashboard, then query what was written."""
    try:
        code = run_async(run_demo(duration=duration, out=out, venues=parse_list(venues),
                                  dashboard=dashboard, seed=seed))
    except DemoError as e:
        fail(e, EXIT_SPEC)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)


def sim_credentials(venues: Sequence[str]) -> dict[str, Any]:
    """Credentials matching the simulators' default test keys (``api_keys`` options)."""
    from tickwire.credentials import Credentials

    creds = {
        "okx": Credentials(api_key="sim-key", secret="sim-secret", passphrase="sim-passphrase"),
        "okxdex": Credentials(api_key="sim-key", secret="sim-secret", passphrase="sim-passphrase"),
        "bge": Credentials(api_key="sim-key", secret="sim-secret"),
        "bybit": Credentials(api_key="sim-key", secret="sim-secret"),
    }
    return {v: c for v, c in creds.items() if v in venues}


def available_venues() -> list[str]:
    """Venues that have both a client dialect and a simulator, in the order of DEFAULT_STREAMS."""
    from tickwire.sim import VENUE_SIMS
    from tickwire.venues import venue_names

    have = set(VENUE_SIMS) & set(venue_names())
    return [v for v in DEFAULT_STREAMS if v in have] + sorted(have - set(DEFAULT_STREAMS))


def fresh_folder(base: str = "demo") -> str:
    """A folder name that does not exist yet: ``./demo-20250101-120000`` (``-2``, ``-3``... if taken),
    so that a demo never adds to an earlier recording."""
    stem = f"./{base}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    out, n = stem, 1
    while Path(out).exists():
        n += 1
        out = f"{stem}-{n}"
    return out


async def run_demo(duration: float | None = 20.0, out: str | None = None, venues: Sequence[str] | None = None,
                   dashboard: bool = True, seed: int = 0, console: Any = None, summary_every_s: float = 5.0) -> int:
    """Run the demo; returns the exit code (0 ok, EXIT_FEED the feed failed, EXIT_DISK disk error).
    ``out=None``: a new folder (:func:`fresh_folder`)."""
    from rich.console import Console

    from tickwire import FeedError, stream
    from tickwire.sim import Simulator
    from tickwire.sinks.dashboard import Dashboard, LiveView
    from tickwire.sinks.recorder import Recorder
    from tickwire.sinks.writer import RecorderError

    if out is None:
        out = fresh_folder()
    avail = available_venues()
    vlist = list(venues) if venues else avail
    unknown = [v for v in vlist if v not in avail]
    if unknown:
        raise DemoError(f"unknown venue(s) {unknown}; the demo simulates {', '.join(avail)}")
    if duration is not None and duration <= 0:
        raise DemoError("--duration must be > 0")
    specs = [s for v in vlist for s in DEFAULT_STREAMS.get(v, [])]
    if not specs:
        raise DemoError(f"no default streams for {vlist}")
    con = console or Console()
    live_table = dashboard and con.is_terminal and not con.is_dumb_terminal

    def say(text: str = "") -> None:
        if live_table:
            con.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, flush=True)

    try:
        rec = Recorder(out)
    except RecorderError as e:
        say(f"error: {e}")
        return EXIT_DISK
    stop = asyncio.Event()
    sim = Simulator(venues=vlist, seed=seed)
    code = 0
    err: str | None = None
    t0 = time.monotonic()
    dash: Dashboard | None = None
    until = f"{duration:g} s" if duration else "Ctrl-C"
    try:
        with stop_on_signals(stop):
            await sim.start()
            say(f"tickwire demo: simulating {', '.join(vlist)} on loopback, recording {len(specs)} streams into "
                f"{out} for {until}")
            async with stream(*specs, endpoints=dict(sim.endpoints), credentials=sim_credentials(vlist)) as feed:
                rec.attach(feed)
                dash = board = Dashboard(feed, specs, title=f"tickwire demo -> {out}")

                def caption() -> str:
                    el = time.monotonic() - t0
                    return f"{el:4.1f} s of {until}  |  {board.events:,} events recorded  |  Ctrl-C stops"

                wd = asyncio.create_task(close_feed_when_done(feed, stop, t0 + duration if duration else None,
                                                              lambda: rec.error is not None))
                try:
                    async with LiveView(board, con, caption, live_table, summary_every_s):
                        async for ev in feed:
                            rec.add(ev)
                            board.add(ev)
                finally:
                    wd.cancel()
    except RecorderError as e:
        err, code = str(e), EXIT_DISK
    except FeedError as e:
        err, code = str(e), EXIT_FEED
    finally:
        await sim.stop()
    try:
        rec.close()
    except RecorderError as e:
        if err is None:
            err, code = str(e), EXIT_DISK
    elapsed = time.monotonic() - t0
    if dash is not None and not live_table:
        print(dash.line("stopped"), flush=True)
    say("")
    _report(rec, out, elapsed, say)
    if err:
        say(f"error: {err}")
        return code
    _example_query(out, say)
    return code



def _report(rec: Any, out: str, elapsed: float, say: Any) -> None:
    s = rec.summary()
    rows, files, nbytes = s["rows"], s["files"], s["bytes"]
    total_files = sum(files.values())
    say(f"wrote {sum(rows.values()):,} rows and {s['raw_frames']:,} raw frames in {total_files} files "
        f"({_human(sum(nbytes.values()))}) to {out} in {elapsed:.1f} s:")
    kinds = sorted(set(rows) | set(files))
    width = max([len(k) for k in kinds] + [len("raw archive")])
    for k in kinds:
        if k == "raw":
            continue
        say(f"  {k:<{width}}  {files.get(k, 0):>3} files  {rows.get(k, 0):>10,} rows  {_human(nbytes.get(k, 0)):>9}")
    if files.get("raw"):
        say(f"  {'raw archive':<{width}}  {files['raw']:>3} files  {s['raw_frames']:>10,} frames"
            f"  {_human(nbytes.get('raw', 0)):>9}")
    dropped = sum(s["dropped"].values())
    if dropped or s["dropped_frames"]:
        say(f"  DROPPED {dropped:,} events and {s['dropped_frames']:,} frames (disk slower than the feed)")


def _example_query(out: str, say: Any) -> None:
    from tickwire.sinks.query import query

    say("")
    say("example query (exact decimals: prices are stored as the venues' strings):")
    say(f'  tickwire query --data {out} "{EXAMPLE_SQL}"')
    try:
        df = query(EXAMPLE_SQL, data=out)
    except Exception as e:  # the dataset is written; a query problem must not hide that
        say(f"  query failed: {e}")
        return
    import pandas as pd

    with pd.option_context("display.max_columns", None, "display.width", 200):
        text = df.to_string(index=False) if len(df) else "(no trades recorded)"
    for line in text.splitlines():
        say("  " + line)
    raw = Path(out) / "raw"
    say("")
    say("next: tickwire query --data " + out + ' "SELECT stream, count(*) FROM book_changes GROUP BY stream"')
    if raw.is_dir():
        say(f"      tickwire replay {raw} --speed 10     # serve the recording over the venues' protocols")
        say(f"      tickwire decode {raw} | head           # re-normalize it offline")



def _human(n: float) -> str:
    """Bytes for people: ``"512 B"``, ``"1.5 MB"``."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
