"""The ``tickwire`` command line: one module per command, shared parsing in :mod:`tickwire.cli.common`.

Importing it loads typer and the command signatures only; each command imports what it runs.
Every command takes the global options (anywhere on the line): ``--log-level``, ``--log-format``,
``--debug`` (tracebacks instead of one-line errors) and ``tickwire --version``. A user error is
one or two lines on stderr and an exit code (2: bad input, 3: the feed failed, 4: disk), never a
traceback unless ``--debug``.
"""

from __future__ import annotations

import sys
import traceback
from typing import NoReturn

import typer
from typer.exceptions import TyperException

from tickwire.cli import bus, collect, data, decode, demo, derive, plot, query, record, replay, sim, tail
from tickwire.cli.common import EXIT_INTERRUPTED, EXIT_SPEC, print_error

__all__ = ["app", "main"]

_GLOBALS = """Every command also takes:
--log-level debug|info|warning|error (default info: one line on stderr per connection state change),
--log-format text|json (structured logs for a log shipper), --debug (tracebacks), and tickwire --version."""

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Reliable, normalized crypto exchange market data (OKX, OKX DEX, Bybit, BG Exchange).\n\n"
                       + _GLOBALS)

# In the order of `tickwire --help`.
for _command in (tail.tail, sim.sim, record.record, query.query, decode.decode, replay.replay, demo.demo,
                 record.recover, data.compact, data.verify, derive.derive, plot.plot):
    app.command()(_command)
del _command
app.command()(collect.collect)
app.add_typer(bus.app, name="bus")


def _global_options(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Take the global options out of ``argv`` wherever they stand (before or after the command)."""
    opts: dict[str, str] = {"log_level": "info", "log_format": "text"}
    rest: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--":
            rest.append(a)
            rest.extend(it)
            break
        name, eq, val = a.partition("=")
        if name in ("--log-level", "--log-format"):
            if not eq:
                val = next(it, "")
            opts[name[2:].replace("-", "_")] = val.lower()
        elif a == "--debug":
            opts["debug"] = "1"
        elif a == "--version" and not rest:
            opts["version"] = "1"
        else:
            rest.append(a)
    return opts, rest


def main(argv: list[str] | None = None) -> NoReturn:
    from tickwire import logs

    opts, args = _global_options(list(sys.argv[1:] if argv is None else argv))
    if opts.get("version"):
        from tickwire import __version__

        typer.echo(f"tickwire {__version__}")
        raise SystemExit(0)
    debug = bool(opts.get("debug"))
    try:
        logs.setup("debug" if debug and opts["log_level"] == "info" else opts["log_level"], opts["log_format"])
    except ValueError as e:
        print_error(e)
        raise SystemExit(EXIT_SPEC)
    try:
        code = app(args=args, prog_name="tickwire", standalone_mode=False)
    except typer.Exit as e:
        code = e.exit_code
    except TyperException as e:  # usage errors: bad option, missing argument, bad value
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        ctx = getattr(e, "ctx", None)
        hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        print_error((msg.splitlines()[0] if msg else type(e).__name__) + hint)
        code = getattr(e, "exit_code", EXIT_SPEC)
    except typer.Abort:
        code = EXIT_INTERRUPTED
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except Exception as e:
        if debug:
            traceback.print_exc()
        from tickwire.options import OptionError
        from tickwire.subscription import SpecError

        if isinstance(e, (SpecError, OptionError, ValueError, OSError)):
            print_error(logs.scrub(str(e)) or type(e).__name__)
            code = EXIT_SPEC
        else:
            print_error(f"internal error: {logs.scrub(repr(e))} (run with --debug for the traceback)")
            code = 1
    raise SystemExit(code if isinstance(code, int) else 0)
