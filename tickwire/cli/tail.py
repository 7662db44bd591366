"""``tickwire tail``: normalized events as JSON lines on stdout."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, Optional

import typer

from tickwire.cli.common import (EXIT_FEED, EXIT_INTERRUPTED, EXIT_SPEC, check_run_limits, check_sim_only,
                                 load_credentials, network_help, parse_endpoints, parse_line_policy, parse_network,
                                 parse_timers, parse_venue_options, print_error, reader_gone, run_async)


def tail(
    specs: list[str] = typer.Argument(..., help="VENUE[.MARKET]:CHANNEL:SYMBOL, e.g. bybit.linear:orderbook.50:BTCUSDT"),
    sim: bool = typer.Option(False, "--sim", help="Start a local simulator of the venues and read from it."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Exit after printing this many events."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Exit after this many seconds."),
    endpoint: list[str] = typer.Option([], "--endpoint", help="VENUE=BASE_URL, e.g. bybit=ws://127.0.0.1:8765; "
                                                              "several lines (hosts): VENUE=URL1,URL2"),
    lines: bool = typer.Option(False, "--lines", help="Use every documented host of the venues (docs/lines.md): "
                                                      "probe, stream from the fastest, switch when it degrades"),
    redundancy: int = typer.Option(1, "--redundancy", help="2: a hot standby connection per shard on another "
                                                           "line; each message once, from the first to arrive"),
    line_policy: list[str] = typer.Option([], "--line-policy", help="NAME=VALUE, e.g. margin=0.3 (docs/lines.md)"),
    network: str = typer.Option("mainnet", "--network", help=network_help()),
    proxy: Optional[str] = typer.Option(None, "--proxy", help="HTTP or SOCKS proxy URL"),
    status: bool = typer.Option(True, "--status/--no-status", help="Also print Connected/Gap/... events."),
    fault: list[str] = typer.Option([], "--fault", help="With --sim: inject faults, e.g. drop-every=5s"),
    timer: list[str] = typer.Option([], "--timer", help="VENUE.TIMER=SECONDS, e.g. bybit.ping_interval_s=5"),
    seed: int = typer.Option(0, "--seed", help="With --sim: market seed"),
    credentials: Optional[str] = typer.Option(None, "--credentials",
                                              help="TOML/JSON file of API credentials per venue (else TICKWIRE_<VENUE>_* env)"),
    venue_option: list[str] = typer.Option([], "--venue-option", help="VENUE.NAME=VALUE, e.g. okx.port=8443"),
    sim_option: list[str] = typer.Option([], "--sim-option", help="With --sim: VENUE.NAME=VALUE simulator option"),
    max_retries: Optional[int] = typer.Option(None, "--max-retries",
                                              help="Give up a connection after this many failed attempts in a row "
                                                   "(exit 3) [default: retry forever]"),
    give_up_after: Optional[float] = typer.Option(None, "--give-up-after",
                                                  help="Give up a connection after this many seconds without "
                                                       "serving (with --bus: the bus unreachable that long) (exit 3) "
                                                       "[default: never]"),
    bus: Optional[str] = typer.Option(None, "--bus", help="Read a NATS JetStream bus instead (URL); SPECS are then "
                                                          "subjects, e.g. 'md.okx.>' (docs/scale-out.md)"),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port",
                                               help="Serve Prometheus /metrics on this port (127.0.0.1; "
                                                    "--metrics-host to change)"),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address /metrics listens on"),
) -> None:
    """Print normalized events as JSON lines."""
    if bus:  # scale-out: SPECS are bus subjects (tickwire.cli.bus)
        from tickwire.cli.bus import tail_bus

        raise typer.Exit(tail_bus(bus, specs, limit=limit, duration=duration, status=status,
                                  give_up_after=give_up_after))
    from tickwire import FeedError, SpecError, stream, to_json

    check_run_limits(limit, duration)
    check_sim_only(sim, **{"--fault": fault, "--sim-option": sim_option})
    creds = load_credentials(credentials)
    net = parse_network(network)

    async def main() -> int:
        sim_opts: Any = {"faults": list(fault), "seed": seed, "options": parse_venue_options(sim_option)} if sim else False
        printed = 0
        out = sys.stdout.buffer
        deadline = time.monotonic() + duration if duration else None
        try:
            async with stream(*specs, sim=sim_opts, endpoints=parse_endpoints(endpoint), network=net,
                              lines=lines, redundancy=redundancy, line_policy=parse_line_policy(line_policy),
                              proxy=proxy, timers=parse_timers(timer), credentials=creds,
                              venue_options=parse_venue_options(venue_option), max_retries=max_retries,
                              give_up_after_s=give_up_after, metrics_port=metrics_port,
                              metrics_host=metrics_host) as feed:
                if feed.metrics is not None:
                    logging.getLogger("tickwire.cli").info("metrics on %s", feed.metrics.url)
                it = feed.__aiter__()
                while True:
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        try:
                            ev = await asyncio.wait_for(it.__anext__(), left)
                        except asyncio.TimeoutError:
                            break
                    else:
                        ev = await it.__anext__()
                    if not status and ev.is_status:
                        continue
                    out.write(to_json(ev) + b"\n")
                    printed += 1
                    if feed.pending() == 0:
                        out.flush()
                    if limit is not None and printed >= limit:
                        break
        except SpecError as e:
            print_error(e)
            return EXIT_SPEC
        except FeedError as e:
            out.flush()
            print_error(e)
            return EXIT_FEED
        except StopAsyncIteration:
            pass
        out.flush()
        return 0

    try:
        code = run_async(main())
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = reader_gone()
    raise typer.Exit(code)
