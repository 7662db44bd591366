"""``tickwire tail``: normalized events as JSON lines on stdout."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, Optional

import typer

from tickwire.cli.common import (CREDENTIALS_OPT, ENDPOINT_OPT, EXIT_FEED, EXIT_INTERRUPTED, EXIT_SPEC, FAULT_OPT,
                                 LINE_POLICY_OPT, LINES_OPT, MAX_RETRIES_OPT, METRICS_HOST_OPT, METRICS_PORT_OPT,
                                 NETWORK_OPT, PROXY_OPT, REDUNDANCY_OPT, SEED_OPT, SIM_OPT, SIM_OPTION_OPT, TIMER_OPT,
                                 VENUE_OPTION_OPT, check_run_limits, check_sim_only, feed_options,
                                 parse_venue_options, print_error, reader_gone, run_async)


def tail(
    specs: list[str] = typer.Argument(..., help="VENUE[.MARKET]:CHANNEL:SYMBOL, e.g. bybit.linear:orderbook.50:BTCUSDT"),
    sim: bool = SIM_OPT,
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Exit after printing this many events."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Exit after this many seconds."),
    endpoint: list[str] = ENDPOINT_OPT,
    lines: bool = LINES_OPT,
    redundancy: int = REDUNDANCY_OPT,
    line_policy: list[str] = LINE_POLICY_OPT,
    network: str = NETWORK_OPT,
    proxy: Optional[str] = PROXY_OPT,
    status: bool = typer.Option(True, "--status/--no-status", help="Also print Connected/Gap/... events."),
    fault: list[str] = FAULT_OPT,
    timer: list[str] = TIMER_OPT,
    seed: int = SEED_OPT,
    credentials: Optional[str] = CREDENTIALS_OPT,
    venue_option: list[str] = VENUE_OPTION_OPT,
    sim_option: list[str] = SIM_OPTION_OPT,
    max_retries: Optional[int] = MAX_RETRIES_OPT,
    give_up_after: Optional[float] = typer.Option(None, "--give-up-after",
                                                  help="Give up a connection after this many seconds without "
                                                       "serving (with --bus: the bus unreachable that long) (exit 3) "
                                                       "[default: never]"),
    bus: Optional[str] = typer.Option(None, "--bus", help="Read a NATS JetStream bus instead (URL); SPECS are then "
                                                          "subjects, e.g. 'md.okx.>' (docs/scale-out.md)"),
    metrics_port: Optional[int] = METRICS_PORT_OPT,
    metrics_host: str = METRICS_HOST_OPT,
) -> None:
    """Print normalized events as JSON lines."""
    if bus:  # scale-out: SPECS are bus subjects (tickwire.cli.bus)
        from tickwire.cli.bus import tail_bus

        raise typer.Exit(tail_bus(bus, specs, limit=limit, duration=duration, status=status,
                                  give_up_after=give_up_after))
    from tickwire import FeedError, SpecError, stream, to_json

    check_run_limits(limit, duration)
    check_sim_only(sim, **{"--fault": fault, "--sim-option": sim_option})
    opts = feed_options(endpoint=endpoint, lines=lines, redundancy=redundancy, line_policy=line_policy,
                        network=network, proxy=proxy, timer=timer, credentials=credentials,
                        venue_option=venue_option, max_retries=max_retries, give_up_after=give_up_after,
                        metrics_port=metrics_port, metrics_host=metrics_host)

    async def main() -> int:
        sim_opts: Any = {"faults": list(fault), "seed": seed, "options": parse_venue_options(sim_option)} if sim else False
        printed = 0
        out = sys.stdout.buffer
        deadline = time.monotonic() + duration if duration else None
        try:
            async with stream(*specs, sim=sim_opts, **opts) as feed:
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
