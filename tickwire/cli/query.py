"""``tickwire query``: SQL over a recorded dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tickwire.cli.common import EXIT_SPEC, fail, reader_gone


def query(
    sql: str = typer.Argument(..., help="SQL; tables: trades, book_changes, book_snapshots, tickers, candles, ..."),
    data: str = typer.Option("./data", "--data", "-d", help="Dataset directory"),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json (JSON lines)"),
    max_rows: int = typer.Option(100, "--max-rows", help="table format: rows shown"),
) -> None:
    """Run SQL over a recorded dataset with DuckDB (one view per table)."""
    if fmt not in ("table", "csv", "json"):
        fail(f"unknown format {fmt!r}; use table, csv or json", EXIT_SPEC)
    import duckdb

    from tickwire.sinks.query import run
    from tickwire.sinks.writer import pending_wal

    try:
        df = run(sql, data, lambda rel: rel.df() if rel is not None else None)
    except FileNotFoundError as e:
        fail(e, EXIT_SPEC)
    except duckdb.Error as e:
        fail(e, EXIT_SPEC)
    finally:
        n = pending_wal(data, stopped_only=True) if Path(data).is_dir() else 0
    out = sys.stdout
    if df is not None:
        try:
            if fmt == "csv":
                df.to_csv(out, index=False)
            elif fmt == "json":
                text = df.to_json(orient="records", lines=True, date_format="iso", date_unit="ns")
                out.write(text if text.endswith("\n") or not text else text + "\n")
            else:
                import pandas as pd

                with pd.option_context("display.max_columns", None, "display.width", 200):
                    out.write(df.to_string(max_rows=max_rows, index=False) + "\n")
            out.flush()
        except BrokenPipeError:  # `| head`
            raise typer.Exit(reader_gone())
    if n:
        typer.echo(f"note: {n} files of a recorder that stopped before publishing them wait under "
                   f"{Path(data) / '_wal'} (not in this result): `tickwire recover {data}` publishes them", err=True)
