"""``tickwire derive``: computed streams (book snapshots, quotes, trade bars) from a recording."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from tickwire.cli.common import EXIT_SPEC, fail


def derive(
    specs: List[str] = typer.Argument(..., help="SPEC@VIEW, e.g. okx:books:BTC-USDT@snapshot10_1s, "
                                                "'okx:books:*@quotes', okx:trades:BTC-USDT@bars1m"),
    data: str = typer.Option("./data", "--data", "-d", help="Dataset directory (a tickwire record --out)"),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Where the tables go (default: DATA/derived)"),
) -> None:
    """Compute book snapshots at an interval and depth, quotes and trade bars from a recorded
    dataset, the same events the live SPEC@VIEW streams give, as Parquet tables
    (OUT/<view>/venue=<v>/date=<d>/<stream>.parquet; exact strings and float64 columns).

    Views: snapshot{N}_{interval} (snapshot10_1s, snapshot25_100ms), snapshot{N} (on every
    change), quotes, bars{k}{ms|s|m|h|d}, bars{k}ticks, bars{x}vol, bars{x}value. A base may use
    * and ? to match recorded streams."""
    from tickwire.derive.offline import derive as run
    from tickwire.subscription import SpecError

    if not Path(data).is_dir():
        fail(f"no dataset at {data} (record one with `tickwire record ... --out {data}`)", EXIT_SPEC)
    try:
        st = run(data, specs, out)
    except SpecError as e:
        fail(e, EXIT_SPEC)
    target = Path(out) if out is not None else Path(data) / "derived"
    by_table: dict[str, int] = {}
    for spec, n in st.events.items():
        table = spec.rpartition("@")[2]
        by_table[table] = by_table.get(table, 0) + n
    for table, n in sorted(by_table.items()):
        typer.echo(f"{target / table}: {n:,} rows")
    rate = st.rows_in / st.seconds if st.seconds else 0.0
    typer.echo(f"derived {sum(st.events.values()):,} rows from {st.rows_in:,} recorded rows in {st.seconds:.2f} s "
               f"({rate:,.0f} rows/s); {st.files} files, {st.bytes / 1e6:.1f} MB")
