"""Lines: several hosts per venue, measured, the fastest one used, switched when it degrades.

A venue serves the same data from several hosts (OKX ``ws.okx.com`` and ``wsaws.okx.com``;
Bybit ``stream.bybit.com`` and ``stream.bytick.com``). Each host is a *line*. When a feed has
more than one line for a venue (``endpoints={"okx": [url1, url2]}``, or ``lines=True`` for the
venue's documented list), this module:

* **measures** every line: the round trip of the venue's own heartbeat (``ping``/``pong``) on
  each connection using it and on short probe connections to the others, and the
  exchange-to-receipt lag of the data it delivers; p50/p90 over a sliding window
  (:meth:`HostStats.summary`, ``feed.line_stats()``, ``feed.stats()``, metrics, dashboard);
* **chooses**: before a venue's first connection, every line is probed briefly (a connection
  that subscribes nothing and sends ``probe_pings`` heartbeats) and connections start on the
  fastest;
* **switches**: when the line in use is slower than another by more than the margin for
  ``degrade_for_s`` (its heartbeat round trip, or its data lag against its own recent past),
  the connection moves with the make-before-break join of upgrade notices (no gap, no
  duplicate) and a :class:`~tickwire.model.LineSwitch` event says why; when it drops, the
  reconnect goes to the best other line. ``hold_s`` between switches of a connection and
  ``max_switches_per_hour`` keep it from flapping;
* keeps **hot standbys** (``redundancy=2``): see :class:`tickwire.net.failover.Redundant`.

Nothing here runs per frame on a single-line feed. On a line-managed connection the reader's
push goes through one sampling wrapper (a lag sample every 8 frames).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from picows import WSListener, WSMsgType, WSTransport, ws_connect

from tickwire.model import Event
from tickwire.venues.base import CONTROL, Send, Venue

if TYPE_CHECKING:
    from tickwire.net.connection import ManagedConnection
    from tickwire.net.feed import Feed

log = logging.getLogger("tickwire.net")

LAG_EVERY = 8          # a line-managed socket looks at one frame in this many for a lag sample ...
LAG_MIN_NS = 20_000_000  # ... and a host keeps at most one sample per 20 ms (50/s, whatever the traffic)
MAX_SAMPLES = 16_384   # per host and series (a minute of heartbeats from ~270 connections)
VIEW_NS = 250_000_000  # what switching decisions read of a host is recomputed this often at most


@dataclass
class LinePolicy:
    """How lines are measured, chosen and switched (``line_policy={...}`` / ``--line-policy K=V``)."""

    probe_pings: int = 5              # heartbeats per probe of a host
    probe_timeout_s: float = 3.0      # a probe that got nothing back this long: the host is down for now
    ping_s: float = 1.0               # line-managed connections send the venue's ping this often (RTT samples)
    window_s: float = 60.0            # p50/p90 in stats are over this sliding window
    margin: float = 0.25              # another host must be better by this share ...
    margin_ms: float = 2.0            # ... and by this many milliseconds ...
    degrade_for_s: float = 5.0        # ... for this long before a connection switches to it
    hold_s: float = 30.0              # a connection stays at least this long on a host it switched to
    max_switches_per_hour: int = 6    # per connection (drops that force a move are not capped)
    reprobe_s: float = 60.0           # hosts not in use are probed again this often
    join_timeout_s: float = 10.0      # a make-before-break switch waits this long for every stream to join


def host_name(base: str) -> str:
    """``wss://ws.okx.com:8443`` -> ``ws.okx.com:8443`` (what events and stats show)."""
    return urlsplit(base).netloc or base


def _pct(values: list[int], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))] / 1e6


class HostStats:
    """One line (host) of a venue: its measurements and state."""

    __slots__ = ("venue", "base", "name", "index", "rtt", "lag", "connect_ms", "probes", "probe_failures",
                 "last_probe_ns", "up", "failures", "in_use", "switches_to", "probing", "last_lag_ns", "_view",
                 "_view_ns")

    def __init__(self, venue: str, base: str, index: int) -> None:
        self.venue = venue
        self.base = base                           # scheme://host[:port], as listed
        self.name = host_name(base)
        self.index = index                         # position in the venue's list (ties go to the first)
        self.rtt: deque[tuple[int, int]] = deque(maxlen=MAX_SAMPLES)  # (time ns, round trip ns)
        self.lag: deque[tuple[int, int]] = deque(maxlen=MAX_SAMPLES)  # (time ns, receipt - exchange time ns)
        self.connect_ms: float | None = None       # handshake time of the last probe
        self.probes = 0
        self.probe_failures = 0
        self.last_probe_ns = 0
        self.up = True                             # False after a failed probe or a refused connect
        self.failures = 0                          # connects that failed in a row
        self.in_use = 0                            # connections streaming from it now
        self.switches_to = 0
        self.probing: asyncio.Task | None = None
        self.last_lag_ns = 0
        self._view: dict[str, float | None] = {}
        self._view_ns = 0

    def add_rtt(self, now_ns: int, rtt_ns: int) -> None:
        self.rtt.append((now_ns, rtt_ns))

    def add_lag(self, now_ns: int, lag_ns: int) -> None:
        self.lag.append((now_ns, lag_ns))

    @staticmethod
    def _since(series: deque, since_ns: int) -> list[int]:
        out = []
        for t, v in reversed(series):
            if t < since_ns:
                break
            out.append(v)
        return out

    def recent_rtt_ms(self, now_ns: int, span_s: float, at_least: int = 3) -> float | None:
        """Median round trip over the last ``span_s`` (or the last ``at_least`` samples)."""
        vals = self._since(self.rtt, now_ns - int(span_s * 1e9))
        if len(vals) < at_least:
            vals = [v for _, v in list(self.rtt)[-at_least:]]
        return _pct(vals, 0.5)

    def latest_rtt_ms(self, k: int) -> float | None:
        """Median of the last ``k`` round trips (a probe's worth)."""
        return _pct([v for _, v in list(self.rtt)[-k:]], 0.5)

    def view(self, now_ns: int, policy: "LinePolicy") -> dict[str, float | None]:
        """What a switching decision reads (ms), recomputed at most every 250 ms per host however
        many connections ask: ``rtt`` (median over the last ``degrade_for_s``), ``rtt_base``
        (median over the window), ``lag`` (median over the last ``degrade_for_s``) and
        ``lag_before`` (median over the window before that; None with fewer than 5 samples)."""
        if now_ns - self._view_ns < VIEW_NS and self._view:
            return self._view
        span = int(policy.degrade_for_s * 1e9)
        win = int(policy.window_s * 1e9)
        recent = self._since(self.lag, now_ns - span)
        before = [v for t, v in self.lag if now_ns - win <= t < now_ns - span]
        self._view = {"rtt": self.recent_rtt_ms(now_ns, policy.degrade_for_s),
                      "rtt_base": self.recent_rtt_ms(now_ns, policy.window_s),
                      "lag": _pct(recent, 0.5) if len(recent) >= 5 else None,
                      "lag_before": _pct(before, 0.5) if len(before) >= 5 else None}
        self._view_ns = now_ns
        return self._view

    def newest_ns(self) -> int:
        return max(self.rtt[-1][0] if self.rtt else 0, self.last_probe_ns)

    def summary(self, now_ns: int, window_s: float) -> dict[str, Any]:
        since = now_ns - int(window_s * 1e9)
        rtt = self._since(self.rtt, since)
        lag = self._since(self.lag, since)
        return {"venue": self.venue, "host": self.name, "base": self.base, "up": self.up,
                "in_use": self.in_use, "rtt_p50_ms": _pct(rtt, 0.5), "rtt_p90_ms": _pct(rtt, 0.9),
                "rtt_samples": len(rtt), "lag_p50_ms": _pct(lag, 0.5), "lag_p90_ms": _pct(lag, 0.9),
                "lag_samples": len(lag), "connect_ms": self.connect_ms, "probes": self.probes,
                "probe_failures": self.probe_failures, "switches_to": self.switches_to}


class VenueLines:
    """The lines of one venue in one feed: measurements, the start-up probe, choices."""

    def __init__(self, feed: "Feed", venue: Venue, bases: list[str], custom: bool, policy: LinePolicy) -> None:
        self.feed = feed
        self.venue = venue
        self.hosts = [HostStats(venue.name, b, i) for i, b in enumerate(bases)]
        self.custom = custom            # the user listed them (REST follows the line) vs the venue's defaults
        self.policy = policy
        self._probed: asyncio.Task | None = None
        self._probe_endpoint = ""
        self.switches: dict[str, int] = {}   # reason category -> count (metrics)

    # -- probing ----------------------------------------------------------------------------
    async def ready(self, endpoint: str) -> None:
        """Probe every host once (the first caller starts it, the others wait for it)."""
        if len(self.hosts) < 2:
            return
        if self._probed is None:
            self._probe_endpoint = endpoint
            self._probed = asyncio.get_running_loop().create_task(self._probe_all(endpoint),
                                                                  name=f"tickwire:lines:{self.venue.name}")
        await asyncio.shield(self._probed)

    async def _probe_all(self, endpoint: str) -> None:
        await asyncio.gather(*(self.probe(h, endpoint) for h in self.hosts), return_exceptions=True)
        shown = ", ".join(f"{h.name} {_ms(h.latest_rtt_ms(self.policy.probe_pings) or h.connect_ms)}"
                          + ("" if h.up else " (down)") for h in self.hosts)
        log.info("%s lines probed: %s", self.venue.name, shown,
                 extra={"venue": self.venue.name, "event": "lines_probed"})

    def probe_later(self, host: HostStats) -> None:
        """Probe ``host`` in the background (once at a time)."""
        if host.probing is not None and not host.probing.done():
            return
        host.probing = asyncio.get_running_loop().create_task(
            self.probe(host, self._probe_endpoint or self.venue.default_market),
            name=f"tickwire:probe:{host.name}")

    async def probe(self, host: HostStats, endpoint: str) -> None:
        """A connection to ``host`` that subscribes nothing: its handshake time and
        ``probe_pings`` heartbeat round trips; a host that answers nothing is down for now."""
        feed, pol = self.feed, self.policy
        session = self.venue.new_session(endpoint, f"{self.venue.name}/probe", feed.session_options(self.venue))
        url = self.venue.connect_url(endpoint, host.base, feed.network_of(self.venue.name),
                                     feed.options.venue_options.get(self.venue.name, {}))
        opts = feed.options
        transport: WSTransport | None = None
        got = 0
        try:
            async with asyncio.timeout(pol.probe_timeout_s + pol.probe_pings * 0.5):
                await feed.connect_limiter(self.venue, url).acquire()
                t0 = time.monotonic_ns()
                transport, lst = await ws_connect(
                    lambda: _ProbeListener(session), url, ssl_context=feed.ssl_context(url), proxy=opts.proxy,
                    websocket_handshake_timeout=min(opts.handshake_timeout_s, pol.probe_timeout_s),
                    enable_auto_ping=False, max_frame_size=opts.max_frame_size, extra_headers=opts.headers or None)
                host.connect_ms = (time.monotonic_ns() - t0) / 1e6
                if session.client_pings:
                    for _ in range(max(1, pol.probe_pings)):
                        rtt = await lst.ping(transport, pol.probe_timeout_s)  # type: ignore[attr-defined]
                        if rtt is None:
                            break
                        got += 1
                        host.add_rtt(time.time_ns(), rtt)
                else:
                    got = 1  # a venue that pings us (BGE): the handshake time is the measure
        except Exception as e:  # refused, timed out, TLS...: the host is down for now
            log.debug("probe of %s failed: %s", host.name, e)
        finally:
            if transport is not None and not transport.is_disconnected:
                try:
                    transport.send_close()
                except Exception:
                    pass
                transport.disconnect()
        host.probes += 1
        host.last_probe_ns = time.time_ns()
        if got:
            host.up = True
        else:
            host.up = False
            host.probe_failures += 1

    # -- choosing ---------------------------------------------------------------------------
    def score(self, host: HostStats) -> float:
        """Lower is better: the median of its latest round trips (a probe's worth), else its
        handshake time, else unknown (infinity)."""
        s = host.latest_rtt_ms(self.policy.probe_pings)
        if s is None:
            s = host.connect_ms
        return math.inf if s is None else s

    def ranked(self, exclude: tuple[HostStats, ...] = ()) -> list[HostStats]:
        """Hosts best first: up before down, then by score, then in listed order."""
        return sorted((h for h in self.hosts if h not in exclude),
                      key=lambda h: (not h.up, self.score(h), h.index))

    def pick(self, avoid: tuple[HostStats, ...] = ()) -> HostStats:
        """The best host, preferring one not in ``avoid`` (another member of a redundant group,
        or the host that just dropped) unless every other host is down."""
        others = [h for h in self.ranked(avoid) if h.up]
        if others:
            return others[0]
        return self.ranked()[0]

    def stats(self, now_ns: int) -> list[dict[str, Any]]:
        return [h.summary(now_ns, self.policy.window_s) for h in self.hosts]

    def stop(self) -> None:
        for t in [self._probed] + [h.probing for h in self.hosts]:
            if t is not None and not t.done():
                t.cancel()


class _ProbeListener(WSListener):
    """A probe socket: frames go through the venue's session (which recognises its pongs and
    queues the answers to a server's pings); nothing is subscribed."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.waiter: asyncio.Future | None = None

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        mt = frame.msg_type
        if mt is WSMsgType.TEXT or mt is WSMsgType.BINARY:
            s = self.session
            try:
                s.on_frame(frame.get_payload_as_bytes(), mt is WSMsgType.BINARY, time.time_ns())
            except Exception:
                pass
            for it in s.drain():
                if type(it) is Send and it.priority == CONTROL:
                    transport.send(WSMsgType.TEXT, it.payload)
            w = self.waiter
            if w is not None and not w.done() and not s.pong_pending and s.rtt_ns is not None:
                w.set_result(s.rtt_ns)
        elif mt is WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def ping(self, transport: WSTransport, timeout_s: float) -> int | None:
        """One heartbeat: its round trip in ns, or None (no answer in time, or closed)."""
        s = self.session
        s.rtt_ns = None
        s.ping_sent_ns = time.time_ns()
        s.pong_pending = True
        self.waiter = asyncio.get_running_loop().create_future()
        p = s.ping_payload()
        transport.send(WSMsgType.TEXT, p if isinstance(p, bytes) else str(p).encode())
        try:
            return await asyncio.wait_for(self.waiter, timeout_s)
        except asyncio.TimeoutError:
            return None


def _ms(v: float | None) -> str:
    return "-" if v is None or v == math.inf else f"{v:.1f} ms"


class LineSampler:
    """The push of a line-managed socket: every ``LAG_EVERY`` frames one exchange-to-receipt
    lag sample for the host, then the events go on unchanged."""

    __slots__ = ("host", "inner", "n")

    def __init__(self, host: HostStats, inner: Callable[[list[Event]], None]) -> None:
        self.host = host
        self.inner = inner
        self.n = 0

    def __call__(self, events: list[Event]) -> None:
        n = self.n = self.n + 1
        if not n & (LAG_EVERY - 1):
            ev = events[-1]
            x = ev.exch_ns
            if x and not ev.is_status:
                r = ev.recv_ns
                h = self.host
                if r - h.last_lag_ns >= LAG_MIN_NS:
                    h.last_lag_ns = r
                    h.lag.append((r, r - x))
        self.inner(events)
