"""Commands of the recording feature: ``record``, ``query``, ``decode`` (archives too), ``recover``.

Registered on the main typer app by ``tickwire.cli``; heavy imports happen inside commands.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

EXIT_SPEC = 2
EXIT_FEED = 3
EXIT_DISK = 4

_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
               "G": 1024**3, "GB": 1024**3, "GIB": 1024**3}


def parse_size(text: Any) -> int:
    """``"128MB"`` / ``"64k"`` / ``1048576`` -> bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    s = str(text).strip().upper().replace(" ", "")
    num = s.rstrip("KMGIB")
    unit = s[len(num):]
    try:
        if not num or unit not in _SIZE_UNITS:
            raise ValueError
        return int(float(num) * _SIZE_UNITS[unit])
    except ValueError:
        raise typer.BadParameter(f"bad size {text!r}; use e.g. 128MB, 512KB, 1GB") from None


def expand_streams(value: Any) -> list[str]:
    """Config ``streams``: a list of specs, or {"venue.market": {"channel": ["SYM", ...]}}."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for v in value:
            out.extend(expand_streams(v))
        return out
    if isinstance(value, dict):
        out = []
        for venue, channels in value.items():
            if not isinstance(channels, dict):
                raise typer.BadParameter(f"streams.{venue} must map channel names to symbol lists")
            for channel, symbols in channels.items():
                syms = [symbols] if isinstance(symbols, str) else list(symbols)
                out.extend(f"{venue}:{channel}:{s}" for s in syms)
        return out
    raise typer.BadParameter(f"streams must be a list of specs or a table, not {type(value).__name__}")


def load_config(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise typer.BadParameter(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".json":
            cfg = json.loads(data)
        else:
            import tomllib

            try:
                cfg = tomllib.loads(data.decode())
            except tomllib.TOMLDecodeError:
                if p.suffix.lower() == ".toml":
                    raise
                cfg = json.loads(data)
    except Exception as e:
        raise typer.BadParameter(f"config {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise typer.BadParameter(f"config {path}: expected a table / object at the top")
    return cfg


_RECORD_KEYS = {"flush_interval", "roll_interval", "roll_size", "max_pending", "raw", "kinds", "fsync",
                "book_snapshot_interval", "book_snapshot_depth", "compression_level"}
_TOP_KEYS = {"out", "streams", "specs", "sim", "seed", "faults", "duration", "network", "proxy", "endpoints",
             "timers", "record", "sim_options"}


def register(app: typer.Typer) -> None:
    @app.command()
    def record(
        specs: Optional[list[str]] = typer.Argument(None, help="VENUE[.MARKET]:CHANNEL:SYMBOL ... (or --config)"),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Dataset directory [default: ./data]"),
        config: Optional[str] = typer.Option(None, "--config", "-c", help="TOML or JSON file: streams and options"),
        sim: Optional[bool] = typer.Option(None, "--sim/--no-sim", help="Record from a local simulator."),
        duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds."),
        endpoint: list[str] = typer.Option([], "--endpoint", help="VENUE=BASE_URL, e.g. bybit=ws://127.0.0.1:8765"),
        network: Optional[str] = typer.Option(None, "--network", help="mainnet, testnet or demo"),
        proxy: Optional[str] = typer.Option(None, "--proxy", help="HTTP or SOCKS proxy URL"),
        timer: list[str] = typer.Option([], "--timer", help="VENUE.TIMER=SECONDS"),
        fault: list[str] = typer.Option([], "--fault", help="With --sim: inject faults, e.g. drop-every=5s"),
        option: list[str] = typer.Option([], "--option", help="With --sim: VENUE.NAME=VALUE, e.g. bybit.speed=10"),
        seed: Optional[int] = typer.Option(None, "--seed", help="With --sim: market seed"),
        raw: Optional[bool] = typer.Option(None, "--raw/--no-raw", help="Also keep the raw frame archive [default: on]"),
        kinds: Optional[str] = typer.Option(None, "--kinds", help="Only these tables, comma-separated (e.g. trades,book_changes)"),
        flush_interval: Optional[float] = typer.Option(None, "--flush-interval", help="Seconds between flushes to disk; at most this much is lost on kill -9 [default: 2]"),
        roll_interval: Optional[float] = typer.Option(None, "--roll-interval", help="Seconds before a file is published [default: 300]"),
        roll_size: Optional[str] = typer.Option(None, "--roll-size", help="Publish a file at this size [default: 128MB]"),
        max_pending: Optional[str] = typer.Option(None, "--max-pending", help="Memory for data waiting for the disk; beyond it new batches are dropped and counted [default: 256MB]"),
        snapshot_interval: Optional[float] = typer.Option(None, "--snapshot-interval", help="Seconds between top-N book snapshots per book; 0 = none [default: 1]"),
        snapshot_depth: Optional[int] = typer.Option(None, "--snapshot-depth", help="Levels per side in book snapshots [default: 20]"),
        fsync: Optional[bool] = typer.Option(None, "--fsync/--no-fsync", help="fsync every flush (survives power loss; slower) [default: off]"),
    ) -> None:
        """Record streams to a Parquet dataset (+ raw frame archive) under --out."""
        from tickwire.cli import _kv, _sim_options, _timers, run_async

        cfg = load_config(config) if config else {}
        unknown = set(cfg) - _TOP_KEYS
        rcfg = cfg.get("record", {}) or {}
        unknown |= {f"record.{k}" for k in set(rcfg) - _RECORD_KEYS}
        if unknown:
            raise typer.BadParameter(f"config {config}: unknown keys {', '.join(sorted(unknown))}")

        def pick(cli_value: Any, key: str, default: Any, section: dict | None = None) -> Any:
            if cli_value is not None:
                return cli_value
            src = cfg if section is None else section
            return src.get(key, default)

        all_specs = list(specs or []) + expand_streams(cfg.get("streams")) + expand_streams(cfg.get("specs"))
        if not all_specs:
            typer.echo("error: no streams: give SPEC arguments or --config with `streams`", err=True)
            raise typer.Exit(EXIT_SPEC)
        out_dir = pick(out, "out", "./data")
        use_sim = bool(pick(sim, "sim", False))
        dur = pick(duration, "duration", None)
        endpoints = {**(cfg.get("endpoints") or {}), **_kv(endpoint, "--endpoint")}
        timers = {**(cfg.get("timers") or {}), **_timers(timer)}
        kinds_v = pick(kinds, "kinds", None, rcfg)
        if isinstance(kinds_v, str):
            kinds_v = [k.strip() for k in kinds_v.split(",") if k.strip()]
        ropts: dict[str, Any] = dict(
            raw=bool(pick(raw, "raw", True, rcfg)),
            kinds=kinds_v,
            flush_interval=float(pick(flush_interval, "flush_interval", 2.0, rcfg)),
            roll_interval=float(pick(roll_interval, "roll_interval", 300.0, rcfg)),
            roll_size=parse_size(pick(roll_size, "roll_size", "128MB", rcfg)),
            max_pending_bytes=parse_size(pick(max_pending, "max_pending", "256MB", rcfg)),
            book_snapshot_interval=float(pick(snapshot_interval, "book_snapshot_interval", 1.0, rcfg)),
            book_snapshot_depth=int(pick(snapshot_depth, "book_snapshot_depth", 20, rcfg)),
            fsync=bool(pick(fsync, "fsync", False, rcfg)),
        )
        if "compression_level" in rcfg:
            ropts["compression_level"] = rcfg["compression_level"]
        sim_opts: Any = False
        if use_sim:
            sim_opts = {"faults": list(fault) or list(cfg.get("faults", [])), "seed": pick(seed, "seed", 0)}
            so = {**(cfg.get("sim_options") or {}), **_sim_options(option)}
            if so:
                sim_opts["options"] = so
        feed_opts = dict(endpoints=endpoints, network=pick(network, "network", "mainnet"),
                         proxy=pick(proxy, "proxy", None), timers=timers)
        code = run_async(_record(all_specs, out_dir, ropts, sim_opts, feed_opts, dur))
        raise typer.Exit(code)

    @app.command()
    def query(
        sql: str = typer.Argument(..., help="SQL; tables: trades, book_changes, book_snapshots, tickers, candles, ..."),
        data: str = typer.Option("./data", "--data", "-d", help="Dataset directory"),
        fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json (JSON lines)"),
        max_rows: int = typer.Option(100, "--max-rows", help="table format: rows shown"),
    ) -> None:
        """Run SQL over a recorded dataset with DuckDB (one view per table)."""
        import duckdb

        from tickwire.sinks.query import connect
        from tickwire.sinks.writer import pending_wal

        try:
            con = connect(data)
        except FileNotFoundError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_SPEC)
        try:
            rel = con.sql(sql)
            df = rel.df() if rel is not None else None
        except duckdb.Error as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_SPEC)
        finally:
            n = pending_wal(data)
        out = sys.stdout
        if df is not None:
            if fmt == "csv":
                df.to_csv(out, index=False)
            elif fmt == "json":
                text = df.to_json(orient="records", lines=True, date_format="iso", date_unit="ns")
                out.write(text if text.endswith("\n") or not text else text + "\n")
            elif fmt == "table":
                import pandas as pd

                with pd.option_context("display.max_columns", None, "display.width", 200):
                    out.write(df.to_string(max_rows=max_rows, index=False) + "\n")
            else:
                typer.echo(f"error: unknown format {fmt!r}; use table, csv or json", err=True)
                raise typer.Exit(EXIT_SPEC)
        if n:
            typer.echo(f"note: {n} files not yet published under {Path(data) / '_wal'} (a recorder is running, "
                       f"or one was killed: `tickwire recover {data}`)", err=True)

    @app.command()
    def decode(
        source: Optional[str] = typer.Argument(None, help="Raw archive (file or directory), or a file of frames one per line (default: stdin)."),
        venue: Optional[str] = typer.Option(None, "--venue", help="VENUE[.MARKET] of frame-per-line input, e.g. bybit.linear (archives name their venues)"),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="Write a Parquet dataset here instead of JSON lines"),
        status: bool = typer.Option(True, "--status/--no-status", help="Also output Connected/Gap/... events."),
    ) -> None:
        """Decode raw frames offline through the venue dialects: JSON lines, or a dataset with --out."""
        from tickwire.decode import decode_lines
        from tickwire.model import to_json
        from tickwire.sinks import archive

        if source and archive.is_archive(source):
            events: Any = archive.decode_archive(source, status=status)
        else:
            if source and not Path(source).exists():
                typer.echo(f"error: no such file: {source}", err=True)
                raise typer.Exit(EXIT_SPEC)
            if not venue:
                typer.echo("error: --venue is required for frame-per-line input (raw archives name their venues)",
                           err=True)
                raise typer.Exit(EXIT_SPEC)
            f = open(source, "rb") if source else sys.stdin.buffer
            events = decode_lines(venue, f)
            if not status:
                events = (e for e in events if not e.is_status)
        try:
            if out:
                from tickwire.sinks.recorder import Recorder
                from tickwire.sinks.writer import RecorderError

                try:
                    rec = Recorder(out, raw=False, backlog="block", roll_interval=1e9)
                    rec.add_many(events)
                    rec.close()
                except RecorderError as e:
                    typer.echo(f"error: {e}", err=True)
                    raise typer.Exit(EXIT_DISK)
                typer.echo(rec.summary_line(), err=True)
                return
            w = sys.stdout.buffer
            for ev in events:
                w.write(to_json(ev) + b"\n")
            w.flush()
        except KeyError as e:
            typer.echo(f"error: unknown venue {e}", err=True)
            raise typer.Exit(EXIT_SPEC)
        except archive.ArchiveError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_SPEC)
        except BrokenPipeError:
            pass

    @app.command()
    def replay(
        archive_paths: list[str] = typer.Argument(..., metavar="ARCHIVE...",
                                                  help="Raw archive files, a dataset directory or its raw/ directory."),
        speed: float = typer.Option(1.0, "--speed", help="1 = recorded pace, 10 = ten times faster, "
                                                        "0 = as fast as the client reads."),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(0, "--port", help="0 = a free port per venue; N = venue i on N+i."),
        venues: Optional[str] = typer.Option(None, "--venues", help="Only these venues of the archive (comma-separated)."),
        close_at_end: bool = typer.Option(False, "--close-at-end",
                                          help="Close each connection after its last recorded frame, and exit once "
                                               "every recorded connection was served (default: keep serving)."),
        fault: list[str] = typer.Option([], "--fault", help="Simulator faults, e.g. drop-every=5s"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the ready line."),
    ) -> None:
        """Serve a recording over the venues' own protocols; prints its endpoints as one JSON line.

        Point any client at it: `tickwire tail --endpoint bybit=ws://127.0.0.1:PORT SPEC...`
        or `tickwire.stream(..., endpoints=...)`.
        """
        from tickwire.cli import run_async
        from tickwire.sim.replay import ReplayError, ReplayServer
        from tickwire.sinks.archive import ArchiveError

        try:
            server = ReplayServer(archive_paths, speed=speed, host=host, port=port, close_at_end=close_at_end,
                                  venues=[v.strip() for v in venues.split(",") if v.strip()] if venues else None,
                                  faults=list(fault))
        except (ReplayError, ArchiveError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_SPEC)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, stop.set)
                except (NotImplementedError, RuntimeError):  # pragma: no cover
                    pass
            await server.start()
            sys.stdout.write(server.ready_line() + "\n")
            sys.stdout.flush()
            if not quiet:
                for line in server.describe():
                    typer.echo(line, err=True)
            t0 = time.monotonic()
            waits = [loop.create_task(stop.wait())]
            if close_at_end:
                waits.append(loop.create_task(server.wait_done()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if not stop.is_set():
                    await asyncio.sleep(0.2)  # let the last close frames go out
            finally:
                for w in waits:
                    w.cancel()
                await server.stop()
                if not quiet:
                    typer.echo(f"replayed {server.frames_replayed:,} frames in {time.monotonic() - t0:.1f} s",
                               err=True)

        try:
            run_async(main())
        except KeyboardInterrupt:
            pass

    @app.command()
    def demo(
        duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds "
                                                                          "[default: until Ctrl-C]."),
        out: str = typer.Option("./data", "--out", "-o", help="Dataset directory."),
        venues: Optional[str] = typer.Option(None, "--venues",
                                             help="Comma-separated venues [default: every simulated venue]."),
        dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard",
                                       help="Live table in a terminal (a plain summary line every few seconds "
                                            "otherwise, or when stdout is not a terminal)."),
        seed: int = typer.Option(0, "--seed", help="Simulator market seed."),
    ) -> None:
        """Record every simulated venue into --out with a live dashboard, then query what was written."""
        from tickwire.cli import run_async
        from tickwire.sinks.demo import DemoError, run_demo

        vlist = [v.strip() for v in venues.split(",") if v.strip()] if venues else None
        try:
            code = run_async(run_demo(duration=duration, out=out, venues=vlist, dashboard=dashboard, seed=seed))
        except DemoError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_SPEC)
        except KeyboardInterrupt:
            code = 130
        raise typer.Exit(code)

    @app.command()
    def recover(data: str = typer.Argument("./data", help="Dataset directory")) -> None:
        """Publish what a killed recorder left unpublished under DATA/_wal (every complete batch)."""
        from tickwire.sinks.writer import recover as do_recover

        try:
            rep = do_recover(data)
        except OSError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_DISK)
        typer.echo(f"recovered {rep.parts} parquet parts ({rep.rows:,} rows) and {rep.raw_files} raw files; "
                   f"{rep.discarded} empty files removed; {rep.skipped_live} running recorders left alone")


async def _record(specs: list[str], out_dir: str, ropts: dict, sim_opts: Any, feed_opts: dict,
                  duration: float | None) -> int:
    from tickwire.net.feed import FeedError, stream
    from tickwire.sinks.recorder import Recorder
    from tickwire.sinks.writer import RecorderError
    from tickwire.subscription import SpecError, parse_many

    try:
        parse_many(specs)
    except SpecError as e:
        typer.echo(f"error: {e}", err=True)
        return EXIT_SPEC
    try:
        rec = Recorder(out_dir, **ropts)
    except RecorderError as e:
        typer.echo(f"error: {e}", err=True)
        return EXIT_DISK
    if rec.recovered:
        r = rec.recovered
        typer.echo(f"recovered an interrupted recording: {r.parts} parquet parts ({r.rows:,} rows), "
                   f"{r.raw_files} raw files", err=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover
            pass
    code = 0
    err: str | None = None
    t0 = time.monotonic()
    try:
        async with stream(*specs, sim=sim_opts, **feed_opts) as feed:
            rec.attach(feed)

            async def watchdog() -> None:
                deadline = t0 + duration if duration else None
                while not stop.is_set():
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    if rec.error is not None:
                        break
                    try:
                        await asyncio.wait_for(stop.wait(), 0.2)
                    except asyncio.TimeoutError:
                        pass
                await feed.close()

            wd = loop.create_task(watchdog())
            try:
                async for ev in feed:
                    rec.add(ev)
            finally:
                wd.cancel()
    except RecorderError as e:
        err, code = str(e), EXIT_DISK
    except SpecError as e:
        err, code = str(e), EXIT_SPEC
    except FeedError as e:
        err, code = str(e), EXIT_FEED
    except ImportError as e:
        if sim_opts:
            err, code = f"--sim needs the simulator (tickwire.sim): {e}", EXIT_SPEC
        else:
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
    try:
        rec.close()  # the feed is closed: blocking the loop while the last files publish is fine
    except RecorderError as e:
        if err is None:
            err, code = str(e), EXIT_DISK
    typer.echo(rec.summary_line() + f" ({time.monotonic() - t0:.1f} s)", err=True)
    if err:
        typer.echo(f"error: {err}", err=True)
    return code
