"""The Feed: many subscriptions, many connections, one push-based event stream.

``async for event in feed`` yields every event in arrival order. Events are pushed by
the socket readers into a bounded buffer; iteration never polls and nothing is lost
between iterations.

Slow-consumer policy (documented in the README): when ``read_ahead`` events wait, the
feed pauses reading its sockets until the consumer is down to a quarter of that, but never
for longer than ``max_pause_s`` at a time, so heartbeats keep flowing and no venue drops us
for being slow. A consumer slower than the feed for longer fills the buffer; beyond
``max_buffer`` events new *market data* events are dropped and counted in one
:class:`~tickwire.model.Overflow` event placed in the buffer; status events (Gap,
Disconnected, VenueError, ...) are always kept. Books stay exact through an overflow,
because they are maintained by the reader, not by the consumer.

Observers (recorder, dashboard, publishers) attach with :meth:`Feed.add_tap` (see
:mod:`tickwire.net.tap`); :meth:`Feed.stats` and :meth:`Feed.books` are the read side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterable

from tickwire.book import Book
from tickwire.model import Event
from tickwire.net import hot, queue
from tickwire.net.connection import ManagedConnection, default_ssl_context
from tickwire.net.ratelimit import Pacer
from tickwire.net.meter import Meter
from tickwire.net.tap import Tap, Taps
from tickwire.subscription import SpecError, Subscription
from tickwire.venues import get_venue, parse_many
from tickwire.venues.base import SessionOptions, Venue


_EventQueue = hot.compiled.EventQueue if hot.compiled else queue.EventQueue


class FeedError(RuntimeError):
    """The feed cannot go on (e.g. every connection was refused login for good)."""


def _fatal_text(err: Any) -> str:
    """A connection's fatal VenueError as the feed's one-line reason (the venue's code when it
    has one: "refused" is tickwire's own word for every stream refused, already explained)."""
    return err.msg if err.code in (None, "", "refused") else f"{err.msg} (venue code {err.code})"


@dataclass
class FeedOptions:
    endpoints: dict[str, Any] = field(default_factory=dict)  # venue -> base URL override, or a list: several lines
    network: str | dict[str, str] = "mainnet"                 # mainnet / testnet / demo, or per venue
    proxy: str | None = None                                  # http://, socks5:// ...
    verify_tls: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    handshake_timeout_s: float = 10.0
    max_frame_size: int = 32 * 1024 * 1024
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    stable_after_s: float = 30.0     # a connection that lived this long resets the backoff
    max_retries: int | None = None   # consecutive failed attempts before a connection gives up (None: never)
    give_up_after_s: float | None = None  # ... or this long without serving (None: never)
    metrics_port: int | None = None  # serve Prometheus /metrics here (0: a free port; needs tickwire[metrics])
    metrics_host: str = "127.0.0.1"
    tick_s: float = 0.1              # timer resolution for heartbeats and pacing
    max_buffer: int = 200_000        # events waiting for the consumer before dropping
    tune_gc: bool = True             # gc.freeze() + a larger young generation at start (see Feed.start)
    read_ahead: int = 2_000          # pause socket reads while this many events wait (0: never)
    max_pause_s: float = 0.25        # ... but never for longer than this at a time (heartbeats)
    max_read_bytes: int = 65_536     # bytes per socket read handed to picows (0: unbounded; see _BoundedReads)
    timers: dict[str, dict[str, float]] = field(default_factory=dict)  # venue -> Timers overrides
    credentials: dict[str, Any] = field(default_factory=dict)          # venue -> credentials
    venue_options: dict[str, dict] = field(default_factory=dict)       # venue -> dialect extras
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)    # venue -> Limits overrides (tests)
    lines: bool = False              # use each venue's documented host list (see tickwire.net.lines)
    redundancy: int = 1              # 2: a hot standby connection per shard on another line
    line_policy: dict[str, Any] = field(default_factory=dict)          # LinePolicy overrides

    def __repr__(self) -> str:
        """Every option but the credentials' values (a dict form would show secrets in clear)."""
        shown = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "credentials":
                v = {venue: "<credentials>" for venue in v}
            elif f.name == "proxy" and v and "@" in v:
                v = "<proxy with credentials>"
            shown.append(f"{f.name}={v!r}")
        return f"FeedOptions({', '.join(shown)})"
    instruments: bool | None = None  # load instrument lists (REST): True at start, False never, None see tickwire.instruments
    instruments_refresh_s: float = 3600.0  # ... and load them again this often


class Feed:
    """A running set of subscriptions. Create with :func:`tickwire.stream`."""

    def __init__(self, specs: Iterable[str | Subscription], options: FeedOptions | None = None) -> None:
        self.options = options or FeedOptions()
        self.subscriptions: list[Subscription] = parse_many(list(specs))
        validate(self.options, self.subscriptions)
        self.connections: list[ManagedConnection] = []
        self.taps = Taps()
        """Observers of every socket (see :mod:`tickwire.net.tap`): :meth:`add_tap`."""
        self.meter: Meter | None = None
        """Counters for metrics (:meth:`enable_metrics`); None: nothing counted."""
        self.metrics: Any = None
        """The /metrics server when ``metrics_port`` is set (``.url``, ``.add_recorder(rec)``)."""
        self._queue = _EventQueue(self.options.max_buffer, self.options.read_ahead, self._pause, self._resume)
        self.push: Callable[[list[Event]], None] = self._queue.push
        """Called by connection readers: append events, never block (see :mod:`tickwire.net.queue`)."""
        self._closed = False
        self._limiters: dict[str, Pacer] = {}
        self._lines: dict[str, Any] = {}          # venue -> VenueLines (venues with several lines or redundancy)
        self._redundant: Any = None               # tickwire.net.failover.Redundant (redundancy >= 2)
        self._ticker: asyncio.Task | None = None
        self._conn_seq = 0
        self._ssl: ssl.SSLContext | None = None
        self._pause_timer: asyncio.TimerHandle | None = None
        from tickwire.instruments import InstrumentLoader

        self._instruments = InstrumentLoader(self)

    # -- configuration used by connections ----------------------------------------------
    def endpoint_base(self, venue: str) -> str | None:
        """The venue's base URL override (the first line when several are listed)."""
        ep = self.options.endpoints.get(venue)
        if isinstance(ep, (list, tuple)):
            return ep[0] if ep else None
        return ep

    def hosts_of(self, venue: Venue) -> tuple[list[str], bool]:
        """The venue's lines: the listed base URLs (True: the user's), else with ``lines`` on the
        venue's documented hosts for the network (``Venue.hosts``), else ``[]`` (the venue's
        own single endpoint, as always)."""
        ep = self.options.endpoints.get(venue.name)
        if isinstance(ep, (list, tuple)):
            return [str(x).rstrip("/") for x in ep], True
        if ep:
            return [ep], True
        if self.options.lines:
            hosts = list(getattr(venue, "hosts", {}).get(self.network_of(venue.name), ()))
            if len(hosts) > 1:
                return hosts, False
        return [], False

    def venue_lines(self, venue: Venue) -> Any:
        """The :class:`~tickwire.net.lines.VenueLines` of a venue with several lines (or with
        redundancy), else None: single-line connections run exactly as they always did."""
        if venue.name in self._lines:
            return self._lines[venue.name]
        from tickwire.net.lines import LinePolicy, VenueLines

        hosts, custom = self.hosts_of(venue)
        vl = None
        if len(hosts) > 1 or self.options.redundancy > 1:
            policy = LinePolicy(**self.options.line_policy)
            vl = VenueLines(self, venue, hosts or [""], custom, policy)
            if not hosts:  # the venue's own endpoint (base None): name it after the network's host
                from tickwire.net.lines import host_name

                vl.hosts[0].name = host_name(venue.networks.get(self.network_of(venue.name), "")) or venue.name
        self._lines[venue.name] = vl
        return vl

    def network_of(self, venue: str) -> str:
        net = self.options.network
        return net.get(venue, "mainnet") if isinstance(net, dict) else net

    def session_options(self, venue: Venue) -> SessionOptions:
        timers = venue.timers()
        over = self.options.timers.get(venue.name)
        if over:
            timers = dataclasses.replace(timers, **over)
        from tickwire.credentials import resolve

        return SessionOptions(timers=timers, credentials=resolve(venue.name, self.options.credentials),
                              extra=self.options.venue_options.get(venue.name, {}))

    def ssl_context(self, url: str) -> ssl.SSLContext | None:
        """The TLS context for a wss:// or https:// URL (unverified only with verify_tls=False)."""
        if not url.startswith(("wss:", "https:")):
            return None
        if self._ssl is None:
            ctx = default_ssl_context()
            if not self.options.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    def connect_limiter(self, venue: Venue, url: str) -> Pacer:
        """New connections of a venue, paced under its rules: counted across every host (line)
        of the venue, probes and hot standbys included (a venue counts its users, not its hosts)."""
        key = venue.name
        lim = self._limiters.get(key)
        if lim is None:
            over = self.options.limits.get(venue.name, {})
            rates = over.get("connect_rates", venue.limits.connect_rates)
            lim = self._limiters[key] = Pacer(request_windows=list(rates),
                                              margin=over.get("margin", venue.limits.margin))
        return lim

    def enable_metrics(self) -> Meter:
        """Count events per stream, status events, lags (about 40 ns per event; see
        :mod:`tickwire.net.meter`). :mod:`tickwire.metrics` reads the counters at scrape time."""
        if self.meter is None:
            self.meter = self._queue.meter = Meter()
            for c in self.connections:
                for lst in (c.listener, c.standby):
                    if lst is not None:
                        lst.meter = self.meter
        return self.meter

    def dropped(self) -> int:
        """Market-data events dropped since the start because the consumer was too slow."""
        return self._queue.dropped

    def add_tap(self, tap: Tap) -> None:
        """Observe every socket of this feed from now on (recorder, dashboard, publisher...)."""
        self.taps.add(tap)
        self._retap()

    def remove_tap(self, tap: Tap) -> None:
        self.taps.remove(tap)
        self._retap()

    def _retap(self) -> None:
        for c in self.connections:
            for lst in (c.listener, c.standby):
                if lst is not None:
                    lst.raw = self.taps.frame

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> "Feed":
        if self.options.tune_gc:
            # A feed makes millions of short-lived containers and almost no reference cycles.
            # Everything alive now (imported modules, their tables) is long-lived: freezing it
            # keeps full collections from re-scanning it, and a larger young generation makes
            # collections rarer. Measured on bench/ streams: about -20% and -10% CPU per
            # message. Process-wide; opt out with tune_gc=False.
            gc.freeze()
            g0, g1, g2 = gc.get_threshold()
            if g0 and g0 < 50_000:
                gc.set_threshold(50_000, g1, g2)
        by_endpoint: dict[tuple[str, str], list[Subscription]] = {}
        for s in self.subscriptions:
            by_endpoint.setdefault((s.venue, s.endpoint), []).append(s)
        for (vname, endpoint), subs in by_endpoint.items():
            venue = get_venue(vname)
            for group in venue.plan(subs):
                self._add_connection(venue, endpoint, group)
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="tickwire:timers")
        self._instruments.start()
        if self.options.metrics_port is not None:
            from tickwire.metrics import serve_metrics

            self.metrics = await serve_metrics(self, self.options.metrics_port, self.options.metrics_host)
        return self

    def _add_connection(self, venue: Venue, endpoint: str, subs: list[Subscription]) -> ManagedConnection:
        """One shard: a connection, and with ``redundancy`` N its N - 1 hot standbys (same
        streams, other lines; every message reaches the user once: :class:`Redundant`)."""
        self._conn_seq += 1
        name = f"{venue.name}/{endpoint}#{self._conn_seq}"
        lines = self.venue_lines(venue)
        n = self.options.redundancy
        if n <= 1:
            conn = ManagedConnection(self, venue, endpoint, subs, name, lines=lines)
            self.connections.append(conn)
            conn.start()
            return conn
        if self._redundant is None:
            from tickwire.net.failover import Redundant

            self._redundant = Redundant(self.push)
        group: list[ManagedConnection] = []
        for i in range(n):
            c = ManagedConnection(self, venue, endpoint, list(subs), name if i == 0 else f"{name}~{i}",
                                  lines=lines, group=group)
            c.push = self._redundant.port(c)
            c.role = "primary" if i == 0 else "standby"
            group.append(c)
            self.connections.append(c)
        for c in group:
            c.start()
        return group[0]

    def split_off(self, conn: ManagedConnection, subs: list[Subscription]) -> None:
        """Serve ``subs`` on a new connection of the same venue endpoint (with hot standbys: a new
        group, and the other members of the old one let go of those streams too)."""
        for other in conn.group or ():
            other.split_at = time.monotonic()   # one split per group (its members close together)
            if other is not conn:
                mine = [s for s in subs if s.topic in other.subs]
                if mine:
                    other.remove(mine)
        self._add_connection(conn.venue, conn.endpoint, subs)

    async def _tick_loop(self) -> None:
        tick = self.options.tick_s
        while True:
            await asyncio.sleep(tick)
            now = time.time_ns()
            for c in self.connections:
                c.tick(now)
            if self._redundant is not None:
                self._redundant.tick(now)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = self._queue.closed = True
        if self._ticker is not None:
            self._ticker.cancel()
        self._instruments.stop()
        for vl in self._lines.values():
            if vl is not None:
                vl.stop()
        await asyncio.gather(*(c.stop() for c in self.connections), return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.stop()
        self._wake()

    async def __aenter__(self) -> "Feed":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- dynamic subscriptions ------------------------------------------------------------
    async def subscribe(self, *specs: str) -> list[Subscription]:
        """Add streams to a running feed (on existing connections where limits allow)."""
        new = [s for s in parse_many(list(specs)) if s.spec not in {x.spec for x in self.subscriptions}]
        self.subscriptions.extend(new)
        self._instruments.want(new)
        by_endpoint: dict[tuple[str, str], list[Subscription]] = {}
        for s in new:
            by_endpoint.setdefault((s.venue, s.endpoint), []).append(s)
        for (vname, endpoint), subs in by_endpoint.items():
            venue = get_venue(vname)
            existing = [c for c in self.connections if c.venue is venue and c.endpoint == endpoint
                        and c.fatal is None and (c.group is None or c.group[0] is c)]
            if existing:
                conn = existing[-1]
                merged = venue.plan(list(conn.subs.values()) + subs)
                if len(merged) == 1:
                    for member in conn.group or [conn]:  # hot standbys carry the same streams
                        member.add(subs)
                    continue
            for group in venue.plan(subs):
                self._add_connection(venue, endpoint, group)
        return new

    async def unsubscribe(self, *specs: str) -> None:
        gone = {s.spec for s in parse_many(list(specs))}
        self.subscriptions = [s for s in self.subscriptions if s.spec not in gone]
        for c in self.connections:
            subs = [s for s in c.subs.values() if s.spec in gone]
            if subs:
                c.remove(subs)

    # -- the event stream -------------------------------------------------------------------
    def connection_failed(self, conn: ManagedConnection) -> None:
        """A connection stopped for good (fatal venue error, or its replayed recording ended).
        When all did, the feed ends: with a FeedError if any failed, else normally."""
        if all(c.ended for c in self.connections):
            self._queue.closed = True
            self._wake()
        elif conn.ends_feed and conn.fatal is not None:
            self._queue.error = FeedError(_fatal_text(conn.fatal))
            self._wake()
        elif all(c.fatal is not None or c.ended for c in self.connections):
            why = list(dict.fromkeys(_fatal_text(c.fatal) for c in self.connections if c.fatal is not None))
            more = f"; and {len(why) - 3} more" if len(why) > 3 else ""
            text = why[0] if len(why) == 1 else "every connection stopped: " + "; ".join(why[:3]) + more
            self._queue.error = FeedError(text)
            self._wake()

    def _wake(self) -> None:
        self._queue.wake()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._queue  # the queue iterates itself: no extra call layer per event

    async def __anext__(self) -> Event:
        return await self._queue.__anext__()

    # -- read-ahead control ------------------------------------------------------------------
    def _transports(self) -> list[Any]:
        out = []
        for c in self.connections:
            for lst in (c.listener, c.standby):
                if lst is not None and lst.transport is not None and not lst.transport.is_disconnected:
                    out.append(lst.transport.underlying_transport)
        return out

    def _pause(self) -> None:
        """The consumer is behind: stop reading sockets until it catches up (bounded in time)."""
        self._queue.paused = True
        for t in self._transports():
            try:
                t.pause_reading()
            except Exception:
                pass
        self._pause_timer = asyncio.get_running_loop().call_later(self.options.max_pause_s, self._resume, True)

    def _resume(self, forced: bool) -> None:
        q = self._queue
        q.paused = False
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        if forced:
            # The consumer is slower than the feed for longer than we may stop reading: keep
            # reading (heartbeats must flow) and let the buffer, then the drop policy, absorb it.
            q.high = 0
            q.rearm = True
        for t in self._transports():
            try:
                t.resume_reading()
            except Exception:
                pass

    def pending(self) -> int:
        """Events buffered and not yet consumed."""
        return len(self._queue)

    # -- inspection -------------------------------------------------------------------------
    def instrument(self, what: Any) -> Any:
        """The :class:`~tickwire.instruments.Instrument` of a spec (``"bybit.linear:book:BTCUSDT"``),
        a Subscription or an event: tick size, lot size, contract value, settle currency, expiry,
        unified symbol... None until the venue's list is loaded (in the background, never
        delaying market data; see :mod:`tickwire.instruments`), or when there is none."""
        from tickwire.instruments import key_of

        return self._instruments.get(*key_of(what))

    async def load_instruments(self, timeout_s: float | None = None) -> bool:
        """Wait until the instrument lists the feed's streams need were loaded once (or failed:
        see the log); False on timeout."""
        return await self._instruments.wait(timeout_s)

    def books(self) -> dict[str, Book]:
        """Every maintained book, by stream spec (with hot standbys: a valid one, the most
        advanced)."""
        out: dict[str, Book] = {}
        for c in self.connections:
            if c.session is not None:
                if c.group is None:
                    out.update(c.session.books())
                    continue
                for spec, b in c.session.books().items():
                    have = out.get(spec)
                    if have is None or (b.valid and (not have.valid or b.seq > have.seq)):
                        out[spec] = b
        return out

    def stats(self) -> list[dict[str, Any]]:
        """The feed's read side, one dict per connection: ``conn`` (the name events carry),
        ``venue``, ``endpoint``, ``socket`` (the id taps see), ``url``, ``streams`` (specs),
        ``reconnects`` and ``reconnect_reasons`` (category -> count), ``failovers``, ``rtt_ms``
        (venue heartbeat round trip), ``frames`` and ``bytes`` received, ``connected``,
        ``fatal``, ``stuck`` (streams whose book is broken and not yet resynced). Feed-wide:
        :meth:`pending`, :meth:`dropped`.

        Lines (:mod:`tickwire.net.lines`): ``host`` (the line in use, None on a single-line
        venue), ``role`` ("primary", or "standby" for a hot standby), ``line_switches``, and the
        line's ``rtt_p50_ms``/``rtt_p90_ms`` and ``lag_p50_ms``/``lag_p90_ms`` (exchange time to
        receipt) over the line policy's window. Every line of every venue: :meth:`line_stats`."""
        out = []
        now = time.time_ns()
        for c in self.connections:
            lst = c.listener
            frames, nbytes = c.traffic()
            stuck = c.session.broken() if c.session is not None else []
            row = {"conn": c.name, "venue": c.venue.name, "endpoint": c.endpoint,
                   "socket": lst.name if lst is not None else None, "url": c.url,
                   "streams": [s.spec for s in c.subs.values()], "reconnects": c.reconnects,
                   "reconnect_reasons": dict(c.reconnect_reasons), "failovers": c.failovers,
                   "rtt_ms": c.rtt_ms, "frames": frames, "bytes": nbytes,
                   "connected": c.transport is not None and not c.transport.is_disconnected,
                   "fatal": c.fatal.msg if c.fatal else None, "stuck": stuck,
                   "host": None, "role": c.role, "line_switches": c.line_switches,
                   "rtt_p50_ms": None, "rtt_p90_ms": None, "lag_p50_ms": None, "lag_p90_ms": None}
            if c.host is not None and c.lines is not None:
                h = c.host.summary(now, c.lines.policy.window_s)
                row["host"] = h["host"]
                for k in ("rtt_p50_ms", "rtt_p90_ms", "lag_p50_ms", "lag_p90_ms"):
                    row[k] = h[k]
            out.append(row)
        return out

    def line_stats(self) -> list[dict[str, Any]]:
        """Every line (host) of every venue that has several (or redundancy): ``venue``,
        ``host``, ``base``, ``up``, ``in_use`` (connections streaming from it now), ``active``
        (a primary streams from it), round trip ``rtt_p50_ms``/``rtt_p90_ms`` (venue heartbeat,
        live and probes) and data lag ``lag_p50_ms``/``lag_p90_ms`` over the window,
        ``connect_ms`` (last probe's handshake), ``probes``, ``probe_failures``,
        ``switches_to``. Empty for single-line feeds."""
        now = time.time_ns()
        out = []
        for vl in self._lines.values():
            if vl is None:
                continue
            for h, row in zip(vl.hosts, vl.stats(now)):
                live = [c for c in self.connections if c.host is h and c.transport is not None
                        and not c.transport.is_disconnected]
                row["in_use"] = len(live)
                row["active"] = any(c.role == "primary" for c in live)
                out.append(row)
        return out

    def line_switch_counts(self) -> dict[tuple[str, str], int]:
        """(venue, why) -> line switches so far; why is "degraded" (a better line) or "dropped"."""
        out: dict[tuple[str, str], int] = {}
        for vl in self._lines.values():
            if vl is not None:
                for reason, n in vl.switches.items():
                    out[(vl.venue.name, reason)] = n
        return out

    def redundancy_stats(self) -> dict[str, int] | None:
        """With hot standbys: ``delivered`` events, ``duplicates`` dropped, status events of one
        line ``covered`` by another (its Gaps and Resynced), ``rebased`` streams; else None."""
        r = self._redundant
        return None if r is None else r.stats()


def validate(opts: FeedOptions, subs: list[Subscription]) -> None:
    """Every option checked before anything connects (a typo used to mean a feed that never
    connected and said nothing): one-line :class:`~tickwire.options.OptionError` naming the key
    and the valid ones. Converts values in place (``"5"`` -> ``5.0``)."""
    from tickwire.options import OptionError, check_fields, check_positive, check_proxy, unknown
    from tickwire.venues import venue_names
    from tickwire.venues.base import Limits, Timers

    known = venue_names()
    plain = {f.name: getattr(opts, f.name) for f in dataclasses.fields(FeedOptions)
             if f.name not in ("timers", "limits", "venue_options", "credentials", "endpoints", "network", "headers",
                               "line_policy")}
    conv = check_fields("option", FeedOptions, plain)
    check_positive("option", conv)
    for k, v in conv.items():
        setattr(opts, k, v)
    for what, table in (("timers", opts.timers), ("limits", opts.limits), ("venue_options", opts.venue_options),
                        ("credentials", opts.credentials), ("endpoints", opts.endpoints)):
        if not isinstance(table, dict):
            raise OptionError(f"bad {what}: expected a dict of venue -> ..., got {type(table).__name__}")
        for venue in table:
            if venue not in known:
                raise unknown(f"venue in {what}", venue, known)
    for venue, vopts in opts.venue_options.items():
        # each venue checks the names and values it takes (Venue.venue_options; Bybit's max_active_time...)
        if not isinstance(vopts, dict):
            raise OptionError(f"bad venue_options for {venue}: expected a dict of option -> value")
        opts.venue_options[venue] = get_venue(venue).check_options(vopts)
    for venue, over in opts.timers.items():
        opts.timers[venue] = check_fields("timer", Timers, over, f" for {venue}")
        check_positive(f"timer for {venue}", opts.timers[venue])
    for venue, over in opts.limits.items():
        opts.limits[venue] = check_fields("limit", Limits, over, f" for {venue}")
        if not 0 <= opts.limits[venue].get("margin", 0) < 1:
            raise OptionError(f"bad limit for {venue} margin={opts.limits[venue]['margin']!r}: must be in [0, 1)")
    check_proxy(opts.proxy)
    _check_lines(opts, subs)
    if opts.metrics_port is not None:
        if not 0 <= opts.metrics_port < 65536:
            raise OptionError(f"bad option metrics_port={opts.metrics_port!r}: a TCP port (0: any free one)")
        try:
            import prometheus_client  # noqa: F401
        except ImportError:
            raise OptionError("metrics need prometheus_client: pip install 'tickwire[metrics]'") from None
    if opts.max_retries is not None and opts.max_retries < 1:
        raise OptionError(f"bad option max_retries={opts.max_retries!r}: at least 1 (or None: retry forever)")
    net = opts.network
    if isinstance(net, dict):
        for venue in net:
            if venue not in known:
                raise unknown("venue in network", venue, known)
    elif not isinstance(net, str):
        raise OptionError(f"bad network {net!r}: a name (mainnet, testnet, demo...) or a dict venue -> name")
    for vname in sorted({s.venue for s in subs}):
        venue = get_venue(vname)
        name = net.get(vname, "mainnet") if isinstance(net, dict) else net
        # a venue with its own endpoint may ignore a network meant for all venues ("testnet" when
        # OKX has none), never one named for it ({"okx": "moon"} is a typo wherever it connects)
        named = isinstance(net, dict) and vname in net
        if name not in venue.networks and (named or vname not in opts.endpoints):
            hint = ("" if vname in opts.endpoints else
                    f" (or point it elsewhere with endpoints={{'{vname}': URL}} / --endpoint)")
            raise OptionError(f"{vname} has no {name!r} network; it has: {', '.join(venue.networks)}{hint}")


def _check_lines(opts: FeedOptions, subs: list[Subscription]) -> None:
    """Several lines (``endpoints={"okx": [url1, url2]}``), ``lines``, ``redundancy`` and
    ``line_policy``, checked up front; hot standbys must fit the venue's per-key connection
    counts (each also needs room for a make-before-break switch)."""
    from tickwire.net.lines import LinePolicy
    from tickwire.options import OptionError, check_fields, check_positive

    for venue, ep in opts.endpoints.items():
        urls = list(ep) if isinstance(ep, (list, tuple)) else [ep]
        if not urls or not all(isinstance(u, str) and u.startswith(("ws://", "wss://")) for u in urls):
            raise OptionError(f"bad endpoints for {venue}: {ep!r}; a ws:// or wss:// base URL, or a list of them "
                              f"(several lines: endpoints={{'{venue}': [URL1, URL2]}} / --endpoint {venue}=URL1,URL2)")
        if len(set(urls)) != len(urls):
            raise OptionError(f"bad endpoints for {venue}: {ep!r} lists a URL twice")
    if not isinstance(opts.line_policy, dict):
        raise OptionError(f"bad line_policy: expected a dict of name -> value, got {type(opts.line_policy).__name__}")
    opts.line_policy = check_fields("line policy", LinePolicy, opts.line_policy)
    check_positive("line policy", opts.line_policy)
    if opts.line_policy.get("probe_pings", 1) < 1:
        raise OptionError("bad line policy probe_pings=0: at least 1")
    if not 1 <= opts.redundancy <= 4:
        raise OptionError(f"bad option redundancy={opts.redundancy!r}: 1 (none) to 4 connections per shard")
    if opts.redundancy > 1:
        by_venue: dict[str, list[Subscription]] = {}
        for s in subs:
            by_venue.setdefault(s.venue, []).append(s)
        for vname, vsubs in by_venue.items():
            venue = get_venue(vname)
            limit = getattr(venue, "max_conns_per_channel", None)
            if not limit:
                continue
            per_channel: dict[str, int] = {}
            by_ep: dict[str, list[Subscription]] = {}
            for s in vsubs:
                by_ep.setdefault(s.endpoint, []).append(s)
            for group_subs in by_ep.values():
                for group in venue.plan(group_subs):
                    for ch in {s.channel for s in group if s.needs_auth and s.endpoint != "public"}:
                        per_channel[ch] = per_channel.get(ch, 0) + 1
            for ch, n in per_channel.items():
                if n * opts.redundancy * 2 > limit:
                    raise OptionError(f"redundancy={opts.redundancy}: {n * opts.redundancy} connections would carry "
                                      f"{vname} channel {ch!r} ({n * opts.redundancy * 2} during a switch); the venue "
                                      f"allows {limit} per API key")


class stream:
    """``async with tickwire.stream(*specs, **options) as feed: async for event in feed: ...``

    ``sim=True`` starts a local simulator of the venues involved and points the feed at it.
    Other keyword arguments are :class:`FeedOptions` fields (e.g. ``endpoints={"bybit":
    "ws://127.0.0.1:8765"}``, ``timers={"bybit": {"ping_interval_s": 5}}``).
    """

    def __init__(self, *specs: str, sim: bool | dict = False, **options: Any) -> None:
        self.specs = specs
        self.sim_opts = sim
        self.options = FeedOptions(**options)
        self.simulator: Any = None
        self.feed: Feed | None = None

    async def __aenter__(self) -> Feed:
        feed = Feed(self.specs, self.options)
        if self.sim_opts:
            from tickwire.sim import Simulator

            kw = self.sim_opts if isinstance(self.sim_opts, dict) else {}
            venues = sorted({s.venue for s in feed.subscriptions})
            self.simulator = Simulator(venues=venues, **kw)
            await self.simulator.start()
            for v, url in self.simulator.endpoints.items():
                feed.options.endpoints.setdefault(v, url)
            # Logged-in venues use the simulator's test key unless credentials were given
            # (explicitly or in the environment), so `tail --sim okxdex:...` just works.
            from tickwire.credentials import SIM_TEST_KEY, resolve

            for v in venues:
                if resolve(v, feed.options.credentials) is None:
                    feed.options.credentials[v] = SIM_TEST_KEY
        self.feed = feed
        try:
            await feed.start()
        except BaseException:
            await feed.close()
            if self.simulator is not None:
                await self.simulator.stop()
            raise
        return feed

    async def __aexit__(self, *exc: Any) -> None:
        if self.feed is not None:
            await self.feed.close()
        if self.simulator is not None:
            await self.simulator.stop()
