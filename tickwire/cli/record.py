"""``tickwire record``: streams into a Parquet dataset (+ raw frame archive); ``tickwire recover``: publish
what a killed recorder left."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Optional

import typer

from tickwire.cli.common import (EXIT_DISK, EXIT_FEED, EXIT_SPEC, check_run_limits, check_sim_only,
                                 close_feed_when_done,
                                 expand_streams, fail, load_config, load_credentials, network_help,
                                 parse_endpoints, parse_line_policy, parse_list, parse_network, parse_size,
                                 parse_timers, parse_venue_options,
                                 print_error, run_async, stop_on_signals, ProgressLine, human_rate)

_RECORD_KEYS = {"flush_interval", "roll_interval", "roll_size", "max_pending", "raw", "kinds", "fsync",
                "book_snapshot_interval", "book_snapshot_depth", "compression_level"}
_TOP_KEYS = {"out", "streams", "specs", "sim", "seed", "faults", "duration", "network", "proxy", "endpoints",
             "timers", "record", "sim_options", "credentials", "venue_options", "max_retries", "give_up_after",
             "metrics_port", "lines", "redundancy", "line_policy"}


def record(
    specs: Optional[list[str]] = typer.Argument(None, help="VENUE[.MARKET]:CHANNEL:SYMBOL ... (or --config)"),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Dataset directory [default: ./data]"),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="TOML or JSON file: streams and options"),
    sim: Optional[bool] = typer.Option(None, "--sim/--no-sim", help="Record from a local simulator."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds."),
    endpoint: list[str] = typer.Option([], "--endpoint", help="VENUE=BASE_URL, e.g. bybit=ws://127.0.0.1:8765; "
                                                              "several lines (hosts): VENUE=URL1,URL2"),
    lines: Optional[bool] = typer.Option(None, "--lines", help="Use every documented host of the venues "
                                                               "(docs/lines.md) [default: off]"),
    redundancy: Optional[int] = typer.Option(None, "--redundancy", help="2: a hot standby connection per shard "
                                                                        "on another line [default: 1]"),
    line_policy: list[str] = typer.Option([], "--line-policy", help="NAME=VALUE, e.g. margin=0.3 (docs/lines.md)"),
    network: Optional[str] = typer.Option(None, "--network", help=network_help()),
    proxy: Optional[str] = typer.Option(None, "--proxy", help="HTTP or SOCKS proxy URL"),
    timer: list[str] = typer.Option([], "--timer", help="VENUE.TIMER=SECONDS"),
    credentials: Optional[str] = typer.Option(None, "--credentials",
                                              help="TOML/JSON file of API credentials per venue (else TICKWIRE_<VENUE>_* env)"),
    venue_option: list[str] = typer.Option([], "--venue-option", help="VENUE.NAME=VALUE, e.g. okx.port=8443"),
    max_retries: Optional[int] = typer.Option(None, "--max-retries",
                                              help="Give up a connection after this many failed attempts in a row "
                                                   "(exit 3) [default: retry forever]"),
    give_up_after: Optional[float] = typer.Option(None, "--give-up-after",
                                                  help="Give up a connection after this many seconds without "
                                                       "serving (with --bus: the bus unreachable that long) (exit 3) "
                                                       "[default: never]"),
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
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port",
                                               help="Serve Prometheus /metrics on this port (127.0.0.1; "
                                                    "--metrics-host to change)"),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address /metrics listens on"),
    dashboard: bool = typer.Option(False, "--dashboard/--no-dashboard",
                                   help="Live table of every stream on stderr (a terminal); otherwise a progress "
                                        "line on stderr when it is a terminal [default: no-dashboard]"),
    bus: Optional[str] = typer.Option(None, "--bus", help="Record a NATS JetStream bus instead (URL), through "
                                                          "--durable; exactly once across restarts (docs/scale-out.md)"),
    durable: Optional[str] = typer.Option(None, "--durable", help="With --bus: the durable consumer's name"),
) -> None:
    """Record streams to a Parquet dataset (+ raw frame archive) under --out."""
    if bus:  # scale-out: a bus recorder (tickwire.cli.bus)
        from tickwire.cli.bus import record_bus

        if not durable:
            fail("--bus needs --durable NAME (the consumer that resumes where a stopped recorder left off)", EXIT_SPEC)
        # what reads venues (the collectors do that) or shapes the local recorder does not apply: say so
        given = {"--config": config, "--sim": sim, "--endpoint": endpoint, "--lines": lines, "--redundancy": redundancy,
                 "--line-policy": line_policy, "--network": network, "--proxy": proxy, "--timer": timer,
                 "--credentials": credentials, "--venue-option": venue_option, "--max-retries": max_retries,
                 "--fault": fault, "--option": option, "--seed": seed, "--kinds": kinds,
                 "--flush-interval": flush_interval, "--roll-size": roll_size, "--max-pending": max_pending,
                 "--snapshot-interval": snapshot_interval, "--snapshot-depth": snapshot_depth,
                 "--dashboard": dashboard or None}
        stray = [k for k, v in given.items() if v not in (None, [])]
        if stray:
            fail(f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply with --bus (the collectors read "
                 "the venues); it takes SUBJECTS, --out, --durable, --raw, --roll-interval, --duration, --fsync, "
                 "--give-up-after, --metrics-port (tickwire bus record --help)", EXIT_SPEC)
        raise typer.Exit(record_bus(bus, durable, out or "./data", subjects=",".join(specs or []) or None,
                                    raw=raw if raw is not None else True, duration=duration,
                                    roll_interval=roll_interval if roll_interval is not None else 300.0,
                                    fsync=bool(fsync), give_up_after=give_up_after, metrics_port=metrics_port,
                                    metrics_host=metrics_host))
    cfg = load_config(config) if config else {}
    from tickwire.options import did_you_mean

    rcfg = cfg.get("record", {}) or {}
    for key in sorted(set(cfg) - _TOP_KEYS):
        raise typer.BadParameter(f"config {config}: unknown key {key!r}{did_you_mean(key, _TOP_KEYS)}; "
                                 f"valid: {', '.join(sorted(_TOP_KEYS))}")
    for key in sorted(set(rcfg) - _RECORD_KEYS):
        raise typer.BadParameter(f"config {config}: unknown key record.{key}{did_you_mean(key, _RECORD_KEYS)}; "
                                 f"valid in [record]: {', '.join(sorted(_RECORD_KEYS))}")

    def pick(cli_value: Any, key: str, default: Any, section: dict | None = None) -> Any:
        """The command line, else the config (top level or ``section``), else ``default``."""
        if cli_value is not None:
            return cli_value
        src = cfg if section is None else section
        return src.get(key, default)

    all_specs = list(specs or []) + expand_streams(cfg.get("streams")) + expand_streams(cfg.get("specs"))
    if not all_specs:
        fail("no streams: give SPEC arguments or --config with `streams`", EXIT_SPEC)
    kinds_v = pick(kinds, "kinds", None, rcfg)
    if isinstance(kinds_v, str):
        kinds_v = parse_list(kinds_v)
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
    check_sim_only(bool(pick(sim, "sim", False)), **{"--fault": fault, "--option": option, "--seed": seed,
                                                       f"faults (in {config})": cfg.get("faults")})
    if pick(sim, "sim", False):
        sim_opts = {"faults": list(fault) or list(cfg.get("faults", [])), "seed": pick(seed, "seed", 0)}
        so = {**(cfg.get("sim_options") or {}), **parse_venue_options(option)}
        if so:
            sim_opts["options"] = so
    net = pick(network, "network", "mainnet")
    run_s = pick(duration, "duration", None)
    check_run_limits(duration=run_s)
    feed_opts = dict(endpoints={**(cfg.get("endpoints") or {}), **parse_endpoints(endpoint)},
                     lines=bool(pick(lines, "lines", False)), redundancy=int(pick(redundancy, "redundancy", 1)),
                     line_policy={**(cfg.get("line_policy") or {}), **parse_line_policy(line_policy)},
                     network=parse_network(net) if isinstance(net, str) else net, proxy=pick(proxy, "proxy", None),
                     timers=_merge(cfg.get("timers"), parse_timers(timer)),
                     venue_options=_merge(cfg.get("venue_options"), parse_venue_options(venue_option)),
                     credentials=load_credentials(pick(credentials, "credentials", None)),
                     max_retries=pick(max_retries, "max_retries", None),
                     give_up_after_s=pick(give_up_after, "give_up_after", None),
                     metrics_port=pick(metrics_port, "metrics_port", None), metrics_host=metrics_host)
    code = run_async(_record(all_specs, pick(out, "out", "./data"), ropts, sim_opts, feed_opts, run_s, dashboard))
    raise typer.Exit(code)


@asynccontextmanager
async def _watch(feed: Any, specs: list[str], out_dir: str, rec: Any, dashboard: bool,
                 duration: float | None) -> AsyncIterator[Any]:
    """What a person sees while recording: the live table (--dashboard, stderr a terminal) or a
    progress line (stderr a terminal); nothing when stderr is piped."""
    from rich.console import Console

    from tickwire.sinks.dashboard import Dashboard, LiveView

    board = Dashboard(feed, specs, title=f"tickwire record -> {out_dir}")
    con = Console(stderr=True)
    until = f"{duration:g} s" if duration else "Ctrl-C"
    t0 = time.monotonic()

    def caption() -> str:
        s = rec.writer.stats
        return (f"{time.monotonic() - t0:5.1f} s of {until}  |  {sum(s.rows.values()):,} rows written, "
                f"{sum(s.files.values())} files  |  Ctrl-C stops")

    if dashboard and con.is_terminal and not con.is_dumb_terminal:
        async with LiveView(board, con, caption, live=True):
            yield board
    else:
        async with ProgressLine(lambda: f"record: {board.events:,} events "
                                        f"({human_rate(board.events, time.monotonic() - t0)}), " + caption()):
            yield board


def _merge(cfg: dict | None, cli: dict[str, dict]) -> dict[str, dict]:
    """Per-venue tables: the command line's keys override the config's, key by key."""
    out = {v: dict(t) for v, t in (cfg or {}).items()}
    for v, t in cli.items():
        out.setdefault(v, {}).update(t)
    return out


async def _record(specs: list[str], out_dir: str, ropts: dict, sim_opts: Any, feed_opts: dict,
                  duration: float | None, dashboard: bool = False) -> int:
    from tickwire import FeedError, SpecError, parse, stream
    from tickwire.sinks.recorder import Recorder
    from tickwire.sinks.writer import RecorderError

    from tickwire.net.feed import FeedOptions, validate

    try:  # everything checked before the dataset directory is created
        subs = [parse(spec) for spec in specs]
        # SPEC@VIEW: the recorder has no table for computed events; it records the base stream
        # (the exact truth) and the views are derived from the recording when the run ends
        views = [s.spec for s in subs if s.kind == "derived"]
        if views:
            plain = [s for s in subs if s.kind != "derived"]
            for b in (s.base for s in subs if s.kind == "derived"):
                if all(b.spec != p.spec for p in plain):
                    plain.append(b)
            subs, specs = plain, [s.spec for s in plain]
            for v in views:
                logging.getLogger("tickwire.cli").info(
                    "%s: recording its base stream %s; the view is derived into %s/derived when the run ends",
                    v, v.rpartition("@")[0], out_dir)
        opts = FeedOptions(**feed_opts)
        if sim_opts:  # the simulator's endpoints are set when it starts
            opts.endpoints = {**{s.venue: "ws://127.0.0.1" for s in subs}, **opts.endpoints}
        validate(opts, subs)
    except SpecError as e:
        print_error(e)
        return EXIT_SPEC
    try:
        rec = Recorder(out_dir, **ropts)
    except RecorderError as e:
        print_error(e)
        return EXIT_DISK
    if rec.recovered:
        r = rec.recovered
        typer.echo(f"recovered an interrupted recording: {r.parts} parquet parts ({r.rows:,} rows), "
                   f"{r.raw_files} raw files", err=True)
    stop = asyncio.Event()
    code = 0
    err: str | None = None
    t0 = time.monotonic()
    try:
        with stop_on_signals(stop):
            async with stream(*specs, sim=sim_opts, **feed_opts) as feed:
                rec.attach(feed)
                if feed.metrics is not None:
                    feed.metrics.add_recorder(rec)
                    logging.getLogger("tickwire.cli").info("metrics on %s", feed.metrics.url)
                wd = asyncio.create_task(close_feed_when_done(feed, stop, t0 + duration if duration else None,
                                                              lambda: rec.error is not None))
                try:
                    async with _watch(feed, specs, out_dir, rec, dashboard, duration) as board:
                        async for ev in feed:
                            rec.add(ev)
                            board.add(ev)
                finally:
                    wd.cancel()
    except RecorderError as e:
        err, code = str(e), EXIT_DISK
    except SpecError as e:
        err, code = str(e), EXIT_SPEC
    except FeedError as e:
        err, code = str(e), EXIT_FEED
    try:
        rec.close()  # the feed is closed: blocking the loop while the last files publish is fine
    except RecorderError as e:
        if err is None:
            err, code = str(e), EXIT_DISK
    typer.echo(rec.summary_line() + f" ({time.monotonic() - t0:.1f} s)", err=True)
    if views and code in (0, EXIT_FEED):
        code = _derive_views(out_dir, views) or code
    if err:
        print_error(err)
    return code


def _derive_views(out_dir: str, views: list[str]) -> int:
    """``tickwire derive`` of the views a ``record`` was given, from what it recorded."""
    from tickwire.derive.offline import derive

    try:
        st = derive(out_dir, views)
    except Exception as e:  # the recording itself is intact: say so and how to retry
        print_error(f"the views could not be derived ({e}); the recording is intact: "
                    f"tickwire derive --data {out_dir} {' '.join(views)}")
        return EXIT_DISK
    parts = ", ".join(f"{spec} {n:,}" for spec, n in st.events.items())
    typer.echo(f"derived {parts} rows into {Path(out_dir) / 'derived'} ({st.seconds:.2f} s)", err=True)
    return 0


def recover(data: str = typer.Argument("./data", help="Dataset directory")) -> None:
    """Publish what a killed recorder left unpublished under DATA/_wal (every complete batch)."""
    from tickwire.sinks.writer import recover as publish_wal

    try:
        rep = publish_wal(data)
    except OSError as e:
        fail(e, EXIT_DISK)
    typer.echo(f"recovered {rep.parts} parquet parts ({rep.rows:,} rows) and {rep.raw_files} raw files; "
               f"{rep.discarded} empty files removed; {rep.skipped_live} running recorders left alone")
