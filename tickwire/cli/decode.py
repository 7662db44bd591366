"""``tickwire decode``: raw frames (an archive, a file or stdin) through the venue dialects, offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from tickwire.cli.common import EXIT_DISK, EXIT_SPEC, ProgressLine, fail, human_rate, reader_gone


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
            fail(f"no such file: {source}", EXIT_SPEC)
        if not venue:
            fail("--venue is required for frame-per-line input (raw archives name their venues)", EXIT_SPEC)
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
                n = 0
                bar = ProgressLine(lambda: f"decode: {n:,} events ({human_rate(n, bar.elapsed())}), "
                                           f"{bar.elapsed():.0f} s")
                for ev in events:
                    rec.add(ev)
                    n += 1
                    if not n & 4095:
                        bar.tick()
                bar.done()
                rec.close()
            except RecorderError as e:
                fail(e, EXIT_DISK)
            typer.echo(rec.summary_line(), err=True)
            return
        w = sys.stdout.buffer
        for ev in events:
            w.write(to_json(ev) + b"\n")
        w.flush()
    except KeyError as e:
        fail(f"unknown venue {e}", EXIT_SPEC)
    except archive.ArchiveError as e:
        fail(e, EXIT_SPEC)
    except BrokenPipeError:
        reader_gone()
