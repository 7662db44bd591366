"""``tickwire`` command line: tail | sim here; decode | record | query | replay | demo | recover
live with the recording feature in :mod:`tickwire.sinks.cli`."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, Optional

import typer

from tickwire.model import to_json

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Reliable, normalized crypto exchange market data (OKX, OKX DEX, Bybit, BG Exchange).")


def run_async(coro: Any) -> Any:
    """Run on uvloop where available (faster sockets and timers)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - non-Linux
        return asyncio.run(coro)


def _kv(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k or not v:
            raise typer.BadParameter(f"{what} must look like NAME=VALUE, got {it!r}")
        out[k.strip()] = v.strip()
    return out


def _sim_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """``bybit.book_interval_ms=5`` -> {"bybit": {"book_interval_ms": 5}} (JSON values accepted).

    Used for simulator options and for venue (dialect) options alike."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in _kv(items, "--option").items():
        venue, dot, name = k.partition(".")
        if not dot:
            raise typer.BadParameter(f"--option must look like VENUE.NAME=VALUE, got {k}={v}")
        try:
            val: Any = json.loads(v)
        except ValueError:
            val = v
        out.setdefault(venue, {})[name] = val
    return out


def _timers(items: list[str]) -> dict[str, dict[str, float]]:
    """``bybit.ping_interval_s=5`` -> {"bybit": {"ping_interval_s": 5.0}}."""
    out: dict[str, dict[str, float]] = {}
    for k, v in _kv(items, "--timer").items():
        venue, dot, name = k.partition(".")
        if not dot:
            raise typer.BadParameter(f"--timer must look like VENUE.NAME=SECONDS, got {k}={v}")
        out.setdefault(venue, {})[name] = float(v)
    return out


@app.command()
def tail(
    specs: list[str] = typer.Argument(..., help="VENUE[.MARKET]:CHANNEL:SYMBOL, e.g. bybit.linear:orderbook.50:BTCUSDT"),
    sim: bool = typer.Option(False, "--sim", help="Start a local simulator of the venues and read from it."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Exit after printing this many events."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Exit after this many seconds."),
    endpoint: list[str] = typer.Option([], "--endpoint", help="VENUE=BASE_URL, e.g. bybit=ws://127.0.0.1:8765"),
    network: str = typer.Option("mainnet", "--network", help="mainnet, testnet or demo"),
    proxy: Optional[str] = typer.Option(None, "--proxy", help="HTTP or SOCKS proxy URL"),
    status: bool = typer.Option(True, "--status/--no-status", help="Also print Connected/Gap/... events."),
    fault: list[str] = typer.Option([], "--fault", help="With --sim: inject faults, e.g. drop-every=5s"),
    timer: list[str] = typer.Option([], "--timer", help="VENUE.TIMER=SECONDS, e.g. bybit.ping_interval_s=5"),
    seed: int = typer.Option(0, "--seed", help="With --sim: market seed"),
    credentials: Optional[str] = typer.Option(None, "--credentials",
                                              help="TOML/JSON file of API credentials per venue (else TICKWIRE_<VENUE>_* env)"),
    venue_option: list[str] = typer.Option([], "--venue-option", help="VENUE.NAME=VALUE, e.g. okx.port=8443"),
    sim_option: list[str] = typer.Option([], "--sim-option", help="With --sim: VENUE.NAME=VALUE simulator option"),
) -> None:
    """Print normalized events as JSON lines."""
    from tickwire.net.feed import FeedError, stream
    from tickwire.subscription import SpecError

    async def main() -> int:
        sim_opts: Any = {"faults": list(fault), "seed": seed, "options": _sim_options(sim_option)} if sim else False
        creds: dict[str, Any] = {}
        if credentials:
            from tickwire.credentials import load_file

            creds = load_file(credentials)
        printed = 0
        out = sys.stdout.buffer
        deadline = time.monotonic() + duration if duration else None
        try:
            async with stream(*specs, sim=sim_opts, endpoints=_kv(endpoint, "--endpoint"), network=network,
                              proxy=proxy, timers=_timers(timer), credentials=creds,
                              venue_options=_sim_options(venue_option)) as feed:
                it = feed.__aiter__()
                while True:
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        try:
                            ev = await asyncio.wait_for(it.__anext__(), left)
                        except asyncio.TimeoutError:
                            break
                    else:
                        ev = await it.__anext__()
                    if not status and ev.is_status:
                        continue
                    out.write(to_json(ev) + b"\n")
                    printed += 1
                    if feed.pending() == 0:
                        out.flush()
                    if limit is not None and printed >= limit:
                        break
        except SpecError as e:
            typer.echo(f"error: {e}", err=True)
            return 2
        except FeedError as e:
            out.flush()
            typer.echo(f"error: {e}", err=True)
            return 3
        except StopAsyncIteration:
            pass
        out.flush()
        return 0

    try:
        code = run_async(main())
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    raise typer.Exit(code)


@app.command("sim")
def sim_cmd(
    venues: str = typer.Option("bybit", "--venues", help="Comma-separated venues to simulate."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(0, "--port", help="0 = a free port per venue; N = venue i on N+i."),
    seed: int = typer.Option(0, "--seed", help="Deterministic market for a given seed."),
    fault: list[str] = typer.Option([], "--fault", help="e.g. drop-every=5s, stall-for=10s, skip-u-every=100"),
    option: list[str] = typer.Option([], "--option", help="VENUE.NAME=VALUE simulator option, e.g. bybit.speed=10"),
) -> None:
    """Run a local server that speaks the venues' protocols; prints its endpoints as one JSON line."""
    from tickwire.sim import Simulator

    async def main() -> None:
        sim = Simulator(venues=[v.strip() for v in venues.split(",") if v.strip()], host=host, port=port,
                        seed=seed, faults=list(fault), options=_sim_options(option))
        await sim.start()
        sys.stdout.write(sim.ready_line() + "\n")
        sys.stdout.flush()
        try:
            await sim.serve_forever()
        finally:
            await sim.stop()

    try:
        run_async(main())
    except KeyboardInterrupt:
        pass


def _register_extensions() -> None:
    """Commands that live with their feature (record/query/replay/demo in tickwire.sinks.cli)."""
    import importlib

    for mod in ("tickwire.sinks.cli",):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if not e.name or not mod.startswith(e.name):
                raise
            continue
        m.register(app)


_register_extensions()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
