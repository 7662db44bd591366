"""``tickwire bus up|tail|record``: a local NATS JetStream bus, and consumers of a bus.

``tickwire tail --bus URL SUBJECT`` and ``tickwire record --bus URL --durable NAME`` are the same
as ``bus tail`` / ``bus record``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, Optional

import typer

from tickwire.cli.common import EXIT_DISK, EXIT_FEED, EXIT_INTERRUPTED, EXIT_SPEC, print_error, reader_gone, run_async

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Scale-out on NATS JetStream: a local bus, and consumers of a bus (docs/scale-out.md).")

BUS_HELP = "NATS URL(s), comma-separated, e.g. nats://127.0.0.1:4222"


@app.command("up")
def up(
    cluster: int = typer.Option(1, "--cluster", help="Number of nodes (3 = a cluster; streams get 3 replicas)."),
    dir: Optional[str] = typer.Option(None, "--dir", help="Store directories and logs here [default: a temporary "
                                                          "directory, removed at exit]"),
    port: int = typer.Option(4222, "--port", help="Client port of the first node (node i: PORT+i); 0 = free ports."),
) -> None:
    """Start local nats-server processes with JetStream (foreground; Ctrl-C stops them)."""
    import signal

    from tickwire.bus.server import BusServerError, LocalBus

    try:
        bus = LocalBus(cluster, dir=dir, port=port)
        bus.start()
    except (BusServerError, ValueError) as e:
        print_error(e)
        raise typer.Exit(EXIT_SPEC)
    stopping: list[int] = []
    try:  # from here on a Ctrl-C (even one right after the URL is printed) stops the nodes, exit 0
        for sig in (signal.SIGINT, signal.SIGTERM):  # (SIGINT too: a script's `bus up &` starts with it ignored)
            signal.signal(sig, lambda *a: stopping.append(1))
        typer.echo(bus.url)
        typer.echo(f"{bus.describe()}; pids {', '.join(str(n.pid) for n in bus.nodes)}; Ctrl-C stops", err=True)
        sys.stdout.flush()
        while not stopping:
            for nd in bus.nodes:
                if not nd.running():
                    print_error(f"nats-server {nd.name} exited (code {nd.proc.returncode if nd.proc else '?'}); "
                                f"log: {nd.log_file}")
                    stopping.append(1)
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        bus.stop()
    raise typer.Exit(0)


@app.command("tail")
def tail(
    subjects: list[str] = typer.Argument(..., help="Subjects, e.g. 'md.okx.>' or 'md.*.*.trades.>'"),
    bus: str = typer.Option(..., "--bus", help=BUS_HELP),
    start: str = typer.Option("now", "--start", help="now (books from their last snapshot), first, or a sequence"),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Exit after printing this many events."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Exit after this many seconds."),
    status: bool = typer.Option(True, "--status/--no-status", help="Also print Gap/Resynced/... events."),
    give_up_after: Optional[float] = typer.Option(None, "--give-up-after",
                                                  help="Exit 3 once the bus has been unreachable this many seconds "
                                                       "(at start or later) [default: wait for it forever]"),
) -> None:
    """Print the bus's events as JSON lines (the same events as `tickwire tail`)."""
    raise typer.Exit(tail_bus(bus, subjects, start=start, limit=limit, duration=duration, status=status,
                              give_up_after=give_up_after))


def tail_bus(url: str, subjects: list[str], *, start: str = "now", limit: int | None = None,
             duration: float | None = None, status: bool = True, give_up_after: float | None = None) -> int:
    from tickwire import to_json
    from tickwire.bus.consumer import subscribe
    from tickwire.cli.common import check_run_limits

    check_run_limits(limit, duration, give_up_after)

    async def main() -> int:
        out = sys.stdout.buffer
        printed = 0
        st: Any = start if start in ("now", "first") else int(start)

        unflushed = 0

        async def loop() -> None:
            nonlocal printed, unflushed
            async for ev in subscribe(url, subjects, start=st, give_up_after_s=give_up_after):
                if not status and ev.is_status:
                    continue
                out.write(to_json(ev) + b"\n")
                printed += 1
                unflushed += 1
                if limit is not None and printed >= limit:
                    return
                if unflushed >= 64:
                    out.flush()
                    unflushed = 0

        async def flusher() -> None:
            """A quiet subject's lines go out within 50 ms, not 64 at a time."""
            nonlocal unflushed
            while True:
                await asyncio.sleep(0.05)
                if unflushed:
                    unflushed = 0
                    out.flush()

        main_task = asyncio.ensure_future(loop())
        flush_task = asyncio.ensure_future(flusher())
        try:
            done, _ = await asyncio.wait({main_task, flush_task}, timeout=duration,
                                         return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # a broken pipe (the reader went away) or a bus error
        except BrokenPipeError:
            raise
        except Exception as e:
            print_error(f"bus: {e}")
            return EXIT_FEED
        finally:
            for t in (main_task, flush_task):
                t.cancel()
            await asyncio.gather(main_task, flush_task, return_exceptions=True)
        out.flush()
        return 0

    try:
        return run_async(main())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return reader_gone()


@app.command("record")
def record(
    bus: str = typer.Option(..., "--bus", help=BUS_HELP),
    durable: str = typer.Option(..., "--durable", help="Durable consumer name: a restart resumes where it stopped."),
    out: str = typer.Option("./data", "--out", "-o", help="Dataset directory"),
    subjects: Optional[str] = typer.Option(None, "--subjects", help="Comma-separated md subjects [default: md.>]"),
    raw: bool = typer.Option(True, "--raw/--no-raw", help="Also write the raw frame archive (collectors' raw.>)"),
    commit_interval: float = typer.Option(2.0, "--commit-interval", help="Seconds between durable commits (acks)"),
    roll_interval: float = typer.Option(300.0, "--roll-interval", help="Seconds before files are published"),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds."),
    fsync: bool = typer.Option(False, "--fsync/--no-fsync", help="fsync every commit (survives power loss)"),
    give_up_after: Optional[float] = typer.Option(None, "--give-up-after",
                                                  help="Exit 3 once the bus has been unreachable this many seconds "
                                                       "(at start or later) [default: wait for it forever]"),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port",
                                               help="Serve Prometheus /metrics on this port (127.0.0.1; "
                                                    "--metrics-host to change)"),
    metrics_host: str = typer.Option("127.0.0.1", "--metrics-host", help="Address /metrics listens on"),
) -> None:
    """Record the bus into the Parquet dataset + raw archive of `tickwire record`, exactly once."""
    raise typer.Exit(record_bus(bus, durable, out, subjects=subjects, raw=raw, commit_interval=commit_interval,
                                roll_interval=roll_interval, duration=duration, fsync=fsync,
                                give_up_after=give_up_after, metrics_port=metrics_port, metrics_host=metrics_host))


def record_bus(url: str, durable: str, out: str, *, subjects: str | None = None, raw: bool = True,
               commit_interval: float = 2.0, roll_interval: float = 300.0, duration: float | None = None,
               fsync: bool = False, give_up_after: float | None = None, metrics_port: int | None = None,
               metrics_host: str = "127.0.0.1") -> int:
    from tickwire.bus.record import BusRecorder
    from tickwire.cli.common import check_run_limits, parse_list, stop_on_signals
    from tickwire.sinks.writer import RecorderError

    check_run_limits(None, duration, give_up_after)

    async def main() -> int:
        stop = asyncio.Event()
        try:
            rec = BusRecorder(url, out, durable, subjects=parse_list(subjects) or ["md.>"], raw=raw,
                              commit_interval_s=commit_interval, roll_interval_s=roll_interval, fsync=fsync)
        except RecorderError as e:
            print_error(e)
            return EXIT_DISK
        t0 = time.monotonic()
        metrics = None
        if metrics_port is not None:
            try:
                from tickwire.metrics import BusRecorderMetrics, MetricsServer
            except ImportError:
                print_error("metrics need prometheus_client: pip install 'tickwire[metrics]'")
                return EXIT_SPEC
            metrics = MetricsServer(None, metrics_port, metrics_host)
            metrics.add_collector(BusRecorderMetrics(rec))
            try:
                await metrics.start()
            except OSError as e:
                print_error(f"--metrics-port {metrics_port}: {e.strerror or e}")
                return EXIT_SPEC
            logging.getLogger("tickwire.cli").info("metrics on %s", metrics.url)
        if rec.cp.commits:
            typer.echo(f"resuming durable {durable} after md sequence {rec.cp.md_seq:,} (raw {rec.cp.raw_seq:,}); "
                       f"{rec.undone_bytes:,} bytes written after that checkpoint removed", err=True)
        with stop_on_signals(stop):
            code = 0
            try:
                await rec.run(duration=duration, stop=stop, give_up_after_s=give_up_after)
            except RecorderError as e:
                print_error(e)
                return EXIT_DISK
            except Exception as e:
                print_error(f"bus: {e}")
                code = EXIT_FEED  # what was written is committed and published: say so below
            finally:
                if metrics is not None:
                    await metrics.stop()
        typer.echo(rec.summary_line() + f" ({time.monotonic() - t0:.1f} s)", err=True)
        return code

    try:
        return run_async(main())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
