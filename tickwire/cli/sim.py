"""``tickwire sim``: a local server that speaks the venues' protocols."""

from __future__ import annotations

import sys

import typer

from tickwire.cli.common import parse_list, parse_venue_options, run_async


def sim(
    venues: str = typer.Option("bybit", "--venues", help="Comma-separated venues to simulate."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(0, "--port", help="0 = a free port per venue; N = venue i on N+i."),
    seed: int = typer.Option(0, "--seed", help="Deterministic market for a given seed."),
    fault: list[str] = typer.Option([], "--fault", help="e.g. drop-every=5s, stall-for=10s, skip-u-every=100"),
    option: list[str] = typer.Option([], "--option", help="VENUE.NAME=VALUE simulator option, e.g. bybit.speed=10"),
) -> None:
    """Run a local server that speaks the venues' protocols; prints its endpoints as one JSON line."""
    from tickwire.sim import Simulator

    async def main() -> None:
        server = Simulator(venues=parse_list(venues), host=host, port=port, seed=seed, faults=list(fault),
                           options=parse_venue_options(option))
        await server.start()
        sys.stdout.write(server.ready_line() + "\n")
        sys.stdout.flush()
        try:
            await server.serve_forever()
        finally:
            await server.stop()

    try:
        run_async(main())
    except KeyboardInterrupt:
        pass
