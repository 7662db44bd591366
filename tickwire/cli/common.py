"""What the commands share: exit codes, option parsing, config files, error output, the event loop."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import typer

EXIT_SPEC = 2          # bad arguments, streams or config; unreadable input
EXIT_FEED = 3          # the feed failed (connection, login, protocol)
EXIT_DISK = 4          # the recorder could not write
EXIT_INTERRUPTED = 130  # Ctrl-C outside the commands' own signal handling


def run_async(coro: Any) -> Any:
    """Run on uvloop where available (faster sockets and timers)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - Windows (no uvloop)
        return asyncio.run(coro)


def print_error(message: object) -> None:
    typer.echo(f"error: {message}", err=True)


def reader_gone() -> int:
    """stdout's reader went away (``| head``): like any Unix tool, end quietly with 0. stdout
    is pointed at /dev/null so that the exit's own flush of what is buffered cannot fail."""
    import os
    import sys

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def fail(message: object, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


@contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (instead of raising) inside the block; call from a running loop."""
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread / Windows
            pass
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def close_feed_when_done(feed: Any, stop: asyncio.Event, deadline: float | None,
                               failed: Callable[[], bool]) -> None:
    """Close ``feed`` (which ends its ``async for``) on ``stop``, at ``deadline`` (monotonic) or once ``failed()``."""
    while not stop.is_set() and not failed():
        left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if left <= 0:
            break
        try:
            await asyncio.wait_for(stop.wait(), left)
        except asyncio.TimeoutError:
            pass
    await feed.close()


class ProgressLine:
    """One self-overwriting status line on stderr while a long command runs, only when stderr
    is a terminal (quiet when piped or in CI). ``text()`` gives the line; call :meth:`tick`
    from a loop (sync) or use ``async with`` (refreshes every ``every_s``)."""

    def __init__(self, text: Callable[[], str], every_s: float = 0.5, stream: Any = None) -> None:
        import sys

        self.text = text
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self._next = 0.0
        self._task: Any = None
        self._shown = False

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def tick(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now >= self._next:
            self._next = now + self.every_s
            self.stream.write("\r\x1b[2K" + self.text())
            self.stream.flush()
            self._shown = True

    def done(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

    async def _loop(self) -> None:
        while True:
            self.tick(force=True)
            await asyncio.sleep(self.every_s)

    async def __aenter__(self) -> "ProgressLine":
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
        self.done()


def human_rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s" if seconds > 0 else "-"


def parse_list(text: str | None) -> list[str]:
    """``"a, b,"`` -> ``["a", "b"]``; None -> []."""
    return [v.strip() for v in text.split(",") if v.strip()] if text else []


def parse_kv(items: list[str], what: str) -> dict[str, str]:
    """``["bybit=ws://..."]`` -> {"bybit": "ws://..."}; ``what`` names the option in errors."""
    out: dict[str, str] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k or not v:
            raise typer.BadParameter(f"{what} must look like NAME=VALUE, got {it!r}")
        out[k.strip()] = v.strip()
    return out


def parse_endpoints(items: list[str]) -> dict[str, Any]:
    """``--endpoint``: ``okx=URL`` -> {"okx": URL}; several lines of a venue, ``okx=URL1,URL2`` (or
    the venue given twice) -> {"okx": [URL1, URL2]} (tickwire.net.lines)."""
    out: dict[str, Any] = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k.strip() or not v.strip():
            raise typer.BadParameter(f"--endpoint must look like VENUE=URL or VENUE=URL1,URL2, got {it!r}")
        urls = parse_list(v)
        have = out.get(k.strip())
        if have is not None:
            urls = (have if isinstance(have, list) else [have]) + urls
        out[k.strip()] = urls if len(urls) > 1 else urls[0]
    return out


def parse_line_policy(items: list[str]) -> dict[str, Any]:
    """``--line-policy margin=0.3`` -> {"margin": "0.3"} (the feed validates names and values)."""
    return dict(parse_kv(items, "--line-policy"))


def parse_venue_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """``bybit.book_interval_ms=5`` -> {"bybit": {"book_interval_ms": 5}} (JSON values accepted).

    Used for simulator options and for venue (dialect) options alike."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in parse_kv(items, "--option").items():
        venue, dot, name = k.partition(".")
        if not dot:
            raise typer.BadParameter(f"--option must look like VENUE.NAME=VALUE, got {k}={v}")
        try:
            val: Any = json.loads(v)
        except ValueError:
            val = v
        out.setdefault(venue, {})[name] = val
    return out


def parse_timers(items: list[str]) -> dict[str, dict[str, Any]]:
    """``bybit.ping_interval_s=5`` -> {"bybit": {"ping_interval_s": "5"}} (the feed validates names and values)."""
    out: dict[str, dict[str, Any]] = {}
    for k, v in parse_kv(items, "--timer").items():
        venue, dot, name = k.partition(".")
        if not dot:
            raise typer.BadParameter(f"--timer must look like VENUE.NAME=SECONDS, got {k}={v}")
        out.setdefault(venue, {})[name] = v
    return out


def parse_network(text: str | None) -> str | dict[str, str]:
    """``testnet`` (every venue) or ``bybit=testnet,okx=demo`` (per venue; others on mainnet)."""
    if not text:
        return "mainnet"
    if "=" not in text:
        return text.strip()
    out: dict[str, str] = {}
    for item in parse_list(text):
        venue, sep, name = item.partition("=")
        if not sep or not venue.strip() or not name.strip():
            raise typer.BadParameter(f"--network must be NAME or VENUE=NAME,VENUE=NAME..., got {text!r}")
        out[venue.strip()] = name.strip()
    return out


def network_help() -> str:
    """Every network of every venue, for --help."""
    from tickwire.venues import get_venue, venue_names

    per = "; ".join(f"{v}: {', '.join(get_venue(v).networks)}" for v in venue_names())
    return f"NAME for every venue, or VENUE=NAME,... per venue (others on mainnet). Networks: {per}"


# The options of the commands that read venues (tail, collect): declared once. (record's differ:
# None defaults, so that its --config can fill what the command line leaves out.)
SIM_OPT = typer.Option(False, "--sim", help="Start a local simulator of the venues and read from it.")
SEED_OPT = typer.Option(0, "--seed", help="With --sim: market seed")
SIM_OPTION_OPT = typer.Option([], "--sim-option", help="With --sim: VENUE.NAME=VALUE simulator option")
FAULT_OPT = typer.Option([], "--fault", help="With --sim: inject faults, e.g. drop-every=5s")
ENDPOINT_OPT = typer.Option([], "--endpoint", help="VENUE=BASE_URL, e.g. bybit=ws://127.0.0.1:8765; "
                                                   "several lines (hosts): VENUE=URL1,URL2")
LINES_OPT = typer.Option(False, "--lines", help="Use every documented host of the venues (docs/lines.md): "
                                                "probe, stream from the fastest, switch when it degrades")
REDUNDANCY_OPT = typer.Option(1, "--redundancy", help="2: a hot standby connection per shard on another line; "
                                                      "each message once, from the first to arrive")
LINE_POLICY_OPT = typer.Option([], "--line-policy", help="NAME=VALUE, e.g. margin=0.3 (docs/lines.md)")
NETWORK_OPT = typer.Option("mainnet", "--network", help=network_help())
PROXY_OPT = typer.Option(None, "--proxy", help="HTTP or SOCKS proxy URL")
TIMER_OPT = typer.Option([], "--timer", help="VENUE.TIMER=SECONDS, e.g. bybit.ping_interval_s=5")
CREDENTIALS_OPT = typer.Option(None, "--credentials",
                               help="TOML/JSON file of API credentials per venue (else TICKWIRE_<VENUE>_* env)")
VENUE_OPTION_OPT = typer.Option([], "--venue-option", help="VENUE.NAME=VALUE, e.g. okx.port=8443")
MAX_RETRIES_OPT = typer.Option(None, "--max-retries", help="Give up a connection after this many failed attempts "
                                                           "in a row (exit 3) [default: retry forever]")
METRICS_PORT_OPT = typer.Option(None, "--metrics-port", help="Serve Prometheus /metrics on this port (127.0.0.1; "
                                                             "--metrics-host to change)")
METRICS_HOST_OPT = typer.Option("127.0.0.1", "--metrics-host", help="Address /metrics listens on")


def feed_options(*, endpoint: list[str], lines: bool, redundancy: int, line_policy: list[str], network: str,
                 proxy: str | None, timer: list[str], credentials: str | None, venue_option: list[str],
                 max_retries: int | None, give_up_after: float | None, metrics_port: int | None,
                 metrics_host: str) -> dict[str, Any]:
    """Those options, parsed, as keyword arguments of :func:`tickwire.stream` (a bad one: exit 2)."""
    return {"endpoints": parse_endpoints(endpoint), "network": parse_network(network), "lines": lines,
            "redundancy": redundancy, "line_policy": parse_line_policy(line_policy), "proxy": proxy,
            "timers": parse_timers(timer), "credentials": load_credentials(credentials),
            "venue_options": parse_venue_options(venue_option), "max_retries": max_retries,
            "give_up_after_s": give_up_after, "metrics_port": metrics_port, "metrics_host": metrics_host}


def check_run_limits(limit: int | None = None, duration: float | None = None,
                     give_up_after: float | None = None) -> None:
    if limit is not None and limit < 1:
        raise typer.BadParameter(f"--limit must be at least 1, got {limit}")
    if duration is not None and duration <= 0:
        raise typer.BadParameter(f"--duration must be more than 0 seconds, got {duration:g}")
    if give_up_after is not None and give_up_after <= 0:
        raise typer.BadParameter(f"--give-up-after must be more than 0 seconds, got {give_up_after:g}")


def check_sim_only(sim: bool, **given: Any) -> None:
    """``--fault`` / ``--sim-option`` / ``--seed`` act on the local simulator: without ``--sim`` they
    would be ignored without a word (``given``: option name -> value; None or [] = not given)."""
    if sim:
        return
    stray = [k for k, v in given.items() if v not in (None, [], {}, ())]
    if stray:
        one = len(stray) == 1
        raise typer.BadParameter(f"{', '.join(stray)} {'needs' if one else 'need'} --sim: "
                                 f"{'it acts' if one else 'they act'} on the local simulator (a real venue or an "
                                 f"--endpoint has nothing to apply {'it' if one else 'them'} to)")


def load_credentials(path: str | None) -> dict[str, Any]:
    """``--credentials FILE`` -> credentials per venue (a bad file is a one-line error, exit 2)."""
    if not path:
        return {}
    from tickwire.credentials import load_file

    return load_file(path)


_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024**2, "MB": 1024**2, "MIB": 1024**2,
               "G": 1024**3, "GB": 1024**3, "GIB": 1024**3}


def parse_size(text: Any) -> int:
    """``"128MB"`` / ``"64k"`` / ``1048576`` -> bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    s = str(text).strip().upper().replace(" ", "")
    num = s.rstrip("KMGIB")
    unit = s[len(num):]
    try:
        if not num or unit not in _SIZE_UNITS:
            raise ValueError
        return int(float(num) * _SIZE_UNITS[unit])
    except ValueError:
        raise typer.BadParameter(f"bad size {text!r}; use e.g. 128MB, 512KB, 1GB") from None


def expand_streams(value: Any) -> list[str]:
    """Config ``streams``: a list of specs, or {"venue.market": {"channel": ["SYM", ...]}}."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        out: list[str] = []
        for v in value:
            out.extend(expand_streams(v))
        return out
    if isinstance(value, dict):
        out = []
        for venue, channels in value.items():
            if not isinstance(channels, dict):
                raise typer.BadParameter(f"streams.{venue} must map channel names to symbol lists")
            for channel, symbols in channels.items():
                syms = [symbols] if isinstance(symbols, str) else list(symbols)
                out.extend(f"{venue}:{channel}:{s}" for s in syms)
        return out
    raise typer.BadParameter(f"streams must be a list of specs or a table, not {type(value).__name__}")


def load_config(path: str) -> dict[str, Any]:
    """A TOML or JSON file whose top level is a table (an unknown suffix tries TOML, then JSON)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise typer.BadParameter(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".json":
            cfg = json.loads(data)
        else:
            import tomllib

            try:
                cfg = tomllib.loads(data.decode())
            except tomllib.TOMLDecodeError:
                if p.suffix.lower() == ".toml":
                    raise
                cfg = json.loads(data)
    except Exception as e:
        raise typer.BadParameter(f"config {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise typer.BadParameter(f"config {path}: expected a table / object at the top")
    return cfg
