"""``tickwire plot``: the example notebook's charts of a recorded dataset, as PNG files."""

from __future__ import annotations

from typing import Optional

import typer

from tickwire.cli.common import EXIT_SPEC, fail


def plot(
    data: str = typer.Option("./data", "--data", "-d", help="Dataset directory (a tickwire record --out)"),
    stream: Optional[str] = typer.Option(None, "--stream", "-s", help="Book stream to chart (default: the first "
                                                                       "recorded one), e.g. okx:books:BTC-USDT"),
    depth: int = typer.Option(10, "--depth", help="Book levels in the depth chart"),
    interval: str = typer.Option("1s", "--interval", help="Snapshot interval (100ms, 1s, 1m...)"),
    out: str = typer.Option("./charts", "--out", "-o", help="Directory for the PNG files"),
) -> None:
    """Chart one instrument of a recorded dataset: mid price and spread, depth at N levels over
    time, and trades sized by volume (mid_spread.png, depth.png, trades.png in --out). The book
    is sampled with the computed stream STREAM@snapshot{depth}_{interval}."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        fail("charts need matplotlib: pip install 'tickwire[plot]'", EXIT_SPEC)
    from tickwire.derive.plot import save_all
    from tickwire.subscription import SpecError

    try:
        paths = save_all(data, out, stream, depth, interval)
    except (SpecError, ValueError, FileNotFoundError) as e:
        fail(e, EXIT_SPEC)
    for p in paths:
        typer.echo(str(p))
