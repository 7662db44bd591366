"""``tickwire replay``: serve a recording over the venues' own protocols."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Optional

import typer

from tickwire.cli.common import EXIT_SPEC, ProgressLine, fail, human_rate, parse_list, run_async, stop_on_signals


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
    from tickwire.sim.replay import ReplayError, ReplayServer
    from tickwire.sinks.archive import ArchiveError

    try:
        server = ReplayServer(archive_paths, speed=speed, host=host, port=port, close_at_end=close_at_end,
                              venues=parse_list(venues) if venues else None, faults=list(fault))
    except (ReplayError, ArchiveError, ValueError) as e:
        fail(e, EXIT_SPEC)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        with stop_on_signals(stop):
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
            bar = ProgressLine(lambda: f"replay: {server.frames_replayed:,} frames "
                                       f"({human_rate(server.frames_replayed, time.monotonic() - t0)}), "
                                       f"{time.monotonic() - t0:.0f} s")
            try:
                async with bar:
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
