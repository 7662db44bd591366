"""``tickwire compact`` and ``tickwire verify``: keep a recorded dataset small and check it.

Thin commands over :func:`tickwire.sinks.dataset.compact` and :func:`tickwire.sinks.verify.verify`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from tickwire.cli.common import EXIT_DISK, EXIT_SPEC, fail, parse_list


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def compact(
    data: str = typer.Option("./data", "--data", "-d", help="Dataset directory"),
    before: Optional[str] = typer.Option(None, "--before", help="Only partitions of dates before this one "
                                                                "(YYYY-MM-DD), e.g. today's date"),
    tables: Optional[str] = typer.Option(None, "--tables", help="Only these tables, comma-separated"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar when stderr is a terminal"),
) -> None:
    """Merge each partition's files into one, duplicates removed, atomically for readers.

    Files of running recorders are left alone (they merge their own as they go)."""
    from tickwire.sinks.dataset import CompactError
    from tickwire.sinks.dataset import compact as run
    from tickwire.sinks.schema import KINDS

    if before is not None:
        try:
            dt.date.fromisoformat(before)
        except ValueError:
            fail(f"--before must be a date YYYY-MM-DD, got {before!r}", EXIT_SPEC)
    kinds = parse_list(tables) or None
    if kinds:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            fail(f"unknown tables {unknown}; known: {', '.join(KINDS)}", EXIT_SPEC)
    if not Path(data).is_dir():
        fail(f"no dataset at {data}", EXIT_SPEC)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = Console(stderr=True)
    bar: Any = None
    task: Any = None
    if progress and con.is_terminal:
        bar = Progress(TextColumn("compact"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("{task.description}"), console=con, transient=True)

    def step(done: int, total: int, label: str, rows: int) -> None:
        nonlocal task
        if bar is None:
            return
        if task is None:
            task = bar.add_task("", total=total)
        bar.update(task, completed=done, total=total, description=label)

    try:
        if bar is not None:
            with bar:
                rep = run(data, before=before, kinds=kinds, progress=step)
        else:
            rep = run(data, before=before, kinds=kinds, progress=step)
    except CompactError as e:
        fail(e, EXIT_SPEC)
    except OSError as e:
        fail(f"compaction stopped: {e.strerror or e} ({e.filename or data}); the dataset is unchanged where it "
             "was not finished", EXIT_DISK)
    typer.echo(f"compacted {rep.partitions} partitions: {rep.files_in:,} files -> {rep.files_out:,}, "
               f"{rep.rows_in:,} rows -> {rep.rows_out:,} ({rep.duplicates:,} duplicates removed), "
               f"{_human(rep.bytes_in)} -> {_human(rep.bytes_out)} in {rep.seconds:.1f} s"
               + (f"; {rep.skipped_live} files of running recorders left alone" if rep.skipped_live else "")
               + (f"; {rep.conflicts} partitions changed meanwhile, left as they were" if rep.conflicts else ""))


def verify(
    data: str = typer.Option("./data", "--data", "-d", help="Dataset directory"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout (for machines)"),
) -> None:
    """Per stream: rows, time span, duplicates, gaps, recorder drops and disconnected periods.

    Exits 0 even when something is to check (the table says what); 2 when there is no dataset."""
    from tickwire.sinks.verify import render
    from tickwire.sinks.verify import verify as run

    if not Path(data).is_dir():
        fail(f"no dataset at {data}", EXIT_SPEC)
    rep = run(data)
    if as_json:
        sys.stdout.write(json.dumps(rep.to_dict()) + "\n")
        return
    from rich.console import Console

    con = Console(emoji=False, highlight=False)
    if not con.is_terminal:  # a file or a pipe: every column whole (rich would cut them to 80)
        con = Console(emoji=False, highlight=False, width=1000)
    render(rep, con)
