"""The ``tickwire`` command line: one module per command, shared parsing in :mod:`tickwire.cli.common`.

Importing it loads typer and the command signatures only; each command imports what it runs.
"""

from __future__ import annotations

import typer

from tickwire.cli import decode, demo, query, record, replay, sim, tail

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Reliable, normalized crypto exchange market data (OKX, OKX DEX, Bybit, BG Exchange).")

# In the order of `tickwire --help`.
for _command in (tail.tail, sim.sim, record.record, query.query, decode.decode, replay.replay, demo.demo,
                 record.recover):
    app.command()(_command)
del _command


def main() -> None:
    app()
