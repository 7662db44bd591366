"""``tickwire collect``: a feed whose events are published to a NATS JetStream bus."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional

import typer

from tickwire.cli.common import (CREDENTIALS_OPT, ENDPOINT_OPT, EXIT_FEED, EXIT_INTERRUPTED, EXIT_SPEC, FAULT_OPT,
                                 LINE_POLICY_OPT, LINES_OPT, MAX_RETRIES_OPT, METRICS_HOST_OPT, METRICS_PORT_OPT,
                                 NETWORK_OPT, PROXY_OPT, REDUNDANCY_OPT, SEED_OPT, SIM_OPT, SIM_OPTION_OPT, TIMER_OPT,
                                 VENUE_OPTION_OPT, check_run_limits, check_sim_only, feed_options, parse_size,
                                 parse_venue_options, print_error, run_async, stop_on_signals)


def collect(
    specs: list[str] = typer.Argument(..., help="VENUE[.MARKET]:CHANNEL:SYMBOL ..."),
    bus: str = typer.Option(..., "--bus", help="NATS URL(s), comma-separated, e.g. nats://127.0.0.1:4222"),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: serve only this collector's share of the specs "
                                                              "(stable split; 1 <= I <= N)"),
    raw: bool = typer.Option(False, "--raw/--no-raw", help="Also publish raw frames (raw.<venue>.<name>) for archives"),
    name: Optional[str] = typer.Option(None, "--name", help="Collector name [default: HOST-PID]"),
    sim: bool = SIM_OPT,
    seed: int = SEED_OPT,
    sim_option: list[str] = SIM_OPTION_OPT,
    endpoint: list[str] = ENDPOINT_OPT,
    lines: bool = LINES_OPT,
    redundancy: int = REDUNDANCY_OPT,
    line_policy: list[str] = LINE_POLICY_OPT,
    network: str = NETWORK_OPT,
    proxy: Optional[str] = PROXY_OPT,
    fault: list[str] = FAULT_OPT,
    timer: list[str] = TIMER_OPT,
    credentials: Optional[str] = CREDENTIALS_OPT,
    venue_option: list[str] = VENUE_OPTION_OPT,
    max_retries: Optional[int] = MAX_RETRIES_OPT,
    give_up_after: Optional[float] = typer.Option(None, "--give-up-after",
                                                  help="Give up a venue connection after this many seconds "
                                                       "without serving (exit 3) [default: never; the bus is "
                                                       "always waited for]"),
    metrics_port: Optional[int] = METRICS_PORT_OPT,
    metrics_host: str = METRICS_HOST_OPT,
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds."),
    snapshot_interval: float = typer.Option(2.0, "--snapshot-interval",
                                            help="Seconds between book snapshots on snap.* (late joiners); 0 = none"),
    max_buffer: str = typer.Option("256MB", "--max-buffer", help="Memory for messages waiting for the bus; beyond "
                                                                 "it new messages are dropped and counted"),
    max_age: float = typer.Option(24.0, "--max-age-hours", help="Retention of md and raw messages (hours)"),
    max_bytes: str = typer.Option("8GB", "--max-bytes", help="Retention of md (and of raw) messages by size"),
    replicas: Optional[int] = typer.Option(None, "--replicas", help="Stream replicas [default: 3 on a cluster, else 1]"),
    dup_window: float = typer.Option(120.0, "--dup-window", help="Seconds over which message ids are deduplicated"),
    batch: int = typer.Option(1, "--batch", help="Up to N book deltas / trades of a stream per message under load "
                                                 "(1: one message per frame, stored once across redundant "
                                                 "collectors; docs/scale-out.md)"),
) -> None:
    """Publish normalized events (and optionally raw frames) to a NATS JetStream bus."""
    from tickwire import SpecError, parse
    from tickwire.bus.collector import Collector, StreamsConfig, parse_shard
    from tickwire.bus.collector import shard as split

    try:
        canon = [parse(s).spec for s in specs]
        if shard:
            i, n = parse_shard(shard)
            canon = split(canon, i, n)
    except (SpecError, ValueError) as e:
        print_error(e)
        raise typer.Exit(EXIT_SPEC)
    if not canon:
        print_error(f"shard {shard} has no streams of the {len(specs)} given")
        raise typer.Exit(EXIT_SPEC)
    check_run_limits(None, duration)
    check_sim_only(sim, **{"--fault": fault, "--sim-option": sim_option})
    sim_opts: Any = ({"faults": list(fault), "seed": seed, "options": parse_venue_options(sim_option)}
                     if sim else False)
    opts = feed_options(endpoint=endpoint, lines=lines, redundancy=redundancy, line_policy=line_policy,
                        network=network, proxy=proxy, timer=timer, credentials=credentials,
                        venue_option=venue_option, max_retries=max_retries, give_up_after=give_up_after,
                        metrics_port=metrics_port, metrics_host=metrics_host)
    streams = StreamsConfig(md_max_age_s=max_age * 3600, raw_max_age_s=max_age * 3600,
                            md_max_bytes=parse_size(max_bytes), raw_max_bytes=parse_size(max_bytes),
                            duplicate_window_s=dup_window, replicas=replicas)

    def on_event(ev: Any) -> None:
        kind = type(ev).__name__  # (bus states are logged by the collector: one line each, json with --log-format)
        if kind in ("Disconnected", "Gap", "VenueError", "Overflow"):
            from tickwire import to_json

            typer.echo(to_json(ev).decode(), err=True)

    async def main() -> int:
        c = Collector(bus, canon, raw=raw, snapshot_interval_s=snapshot_interval, max_buffer_bytes=parse_size(max_buffer),
                      streams=streams, sim=sim_opts, on_event=on_event, batch_events=batch,
                      feed_options=opts,
                      **({"name": name} if name else {}))
        stop = asyncio.Event()
        t0 = time.monotonic()
        code = 0
        with stop_on_signals(stop):
            try:
                await c.start()
                typer.echo(f"collector {c.name}: {len(canon)} streams -> {bus}", err=True)
                await c.run(duration=duration, stop=stop)
            except SpecError as e:
                print_error(e)
                code = EXIT_SPEC
            except Exception as e:
                print_error(e)
                code = EXIT_FEED
            finally:
                stop.clear()  # from here a signal gives up what the bus has not confirmed yet
                await c.close(abort=stop)
        given_up = stop.is_set() and c.publisher is not None and c.publisher.pending()
        if given_up:
            print_error(f"stopped at a second signal: {given_up:,} unconfirmed messages given up")
            code = code or EXIT_INTERRUPTED
        p = c.publisher.stats if c.publisher else None
        if p is not None:
            typer.echo(f"collector {c.name}: {c.stats.events:,} events in {c.stats.messages:,} messages, "
                       f"{p.published:,} confirmed ({p.duplicates:,} already on the bus), {p.retries:,} retries, "
                       f"{p.dropped:,} dropped, {c.publisher.pending():,} unconfirmed at exit "
                       f"({time.monotonic() - t0:.1f} s)", err=True)
        return code

    try:
        code = run_async(main())
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)
