"""``tickwire sim``: a local server that speaks the venues' protocols."""

from __future__ import annotations

import asyncio
import sys

import typer

from tickwire.cli.common import parse_list, parse_venue_options, run_async, stop_on_signals


def sim(
    venues: str = typer.Option("bybit", "--venues", help="Comma-separated venues to simulate."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(0, "--port", help="0 = a free port per venue; N = venue i on N+i."),
    seed: int = typer.Option(0, "--seed", help="Deterministic market for a given seed."),
    fault: list[str] = typer.Option(
        [], "--fault",
        help="NAME[=VALUE][@WHEN], e.g. drop-every=5s, stall-for=10s, skip-u-every=100, notice@5s. "
             "Periodic faults and handshake refusals start at once; one-shot faults that act on live "
             "connections (drop, stall, malformed, notice, skip-u, skip-seq, ...) wait for the first "
             "subscription; @5s applies a fault 5 s after start, @sub at the first subscription. "
             "Prefix VENUE: to target one venue (bybit:skip-u)."),
    option: list[str] = typer.Option(
        [], "--option",
        help="VENUE.NAME=VALUE simulator option, e.g. bybit.speed=10, okx.latency_ms=30, okx.jitter_ms=10"),
    tls: bool = typer.Option(
        False, "--tls",
        help="Serve wss:// and https:// with a certificate made at start; the CA bundle's path is on the "
             "ready line (tls.ca_file): SSL_CERT_FILE=<it> for clients that read it."),
    tls_dir: str = typer.Option(None, "--tls-dir", help="With --tls: write the CA bundle (ca.pem) into this folder."),
    control_port: int = typer.Option(
        None, "--control-port",
        help="Serve the ground truth (books at each sequence, trades sent, faults injected, limits enforced) "
             "and fault injection as JSON over HTTP on this port (0 = a free one); its URL is 'control' on the "
             "ready line."),
) -> None:
    """Run a local server that speaks the venues' protocols; prints its endpoints as one JSON line."""
    from tickwire.sim import Simulator

    async def main() -> None:
        server = Simulator(venues=parse_list(venues), host=host, port=port, seed=seed, faults=list(fault),
                           options=parse_venue_options(option), tls=tls or bool(tls_dir), tls_dir=tls_dir,
                           control_port=control_port)
        await server.start()
        sys.stdout.write(server.ready_line() + "\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        try:
            with stop_on_signals(stop):  # SIGTERM too: the TLS files are removed on the way out
                await stop.wait()
        finally:
            await server.stop()

    try:
        run_async(main())
    except KeyboardInterrupt:
        pass
