"""The base class of a venue simulator and the registry of venue simulators.

:class:`VenueSim` is one picows server on its own port: lifecycle, handshake routing and refusal,
the connection registry, the generic faults and the idle sweepers. A venue module subclasses it
and registers the subclass with :func:`register_venue`, which puts it in :data:`VENUE_SIMS`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from typing import Any, Callable, ClassVar, Mapping, Sequence

from picows import (
    WSCloseCode,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from .faults import GENERIC_FAULTS, Fault, FaultSpec, parse_fault, register_faults
from .mutate import Mutator
from .options import SimOptions
from .replay_dialect import ReplayDialect
from .server import SimConnection, SimStats, SlidingWindowCounter
from .streams import Cadence
from .truth import Truth

log = logging.getLogger("tickwire.sim")

__all__ = ["VENUE_SIMS", "VenueSim", "register_venue"]

VENUE_SIMS: dict[str, type["VenueSim"]] = {}


def register_venue(name: str) -> Callable[[type["VenueSim"]], type["VenueSim"]]:
    """Class decorator: ``@register_venue("okx")`` adds the class to ``VENUE_SIMS``."""

    def deco(cls: type["VenueSim"]) -> type["VenueSim"]:
        cls.name = name
        VENUE_SIMS[name] = cls
        register_faults(cls.FAULTS.values())
        return cls

    return deco


_MALFORMED = b'{"topic":"sim.malformed","ts":17'


class VenueSim:
    """Base class of a venue simulator: one picows server on its own port.

    A venue subclass, registered with ``@register_venue("<venue>")`` (which sets ``name``), sets
    ``paths``, ``Options`` (a :class:`SimOptions` subclass), ``FAULTS`` (generic plus its own),
    ``replay_dialect`` (a :class:`ReplayDialect` subclass) and ``demo_streams``, and implements:

    * :meth:`route` — accept or refuse a handshake path (return the connection group name, or
      ``None`` for a 404);
    * :meth:`on_text` — handle one client TEXT message;
    * optionally :meth:`make_connection`, :meth:`on_open`, :meth:`on_close`, :meth:`on_binary`,
      :meth:`sweep` (idle rules, called every ``idle_check_s``), :meth:`apply_venue_fault`,
      :meth:`on_start`, :meth:`on_stop`;
    * optionally :meth:`http_get` — the venue's public REST endpoints, answered on the same port
      (a plain HTTP request, not a WebSocket upgrade).

    With an SSL context (``start(..., ssl_context=...)``) the server speaks TLS: ``wss://`` and
    ``https://`` on the same port.
    """

    name: ClassVar[str] = "venue"
    paths: ClassVar[list[str]] = []
    Options: ClassVar[type[SimOptions]] = SimOptions
    FAULTS: ClassVar[dict[str, FaultSpec]] = GENERIC_FAULTS
    connection_class: ClassVar[type[SimConnection]] = SimConnection
    replay_dialect: ClassVar[type[ReplayDialect]] = ReplayDialect
    """How ``tickwire replay`` answers this venue's requests and recognizes recorded answers."""
    demo_streams: ClassVar[tuple[str, ...]] = ()
    """Subscription specs ``tickwire demo`` records from this simulator (its default instruments)."""

    def __init__(self, *, seed: int = 0, options: Mapping[str, Any] | None = None, faults: Sequence[str] = ()):
        self.seed = seed
        self.opts = self.Options.from_mapping(options)
        self.rng = random.Random(f"{seed}|{self.name}")
        self.stats = SimStats(_sim=self)
        self.truth = Truth(self.name, enabled=self.opts.truth, history=self.opts.truth_history)
        """Ground truth for tests (:mod:`.truth`): books at each sequence, trades sent, faults, limits."""
        self.connections: dict[SimConnection, None] = {}
        self._initial_faults = [self.parse_fault(f) for f in faults]
        self._pending_sub_faults: list[Fault] = []
        self._timed_faults: list[asyncio.TimerHandle] = []
        self._tls = False
        self._server: asyncio.AbstractServer | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._tasks: list[asyncio.Task] = []
        self._fault_tasks: list[asyncio.Task] = []
        self._cadences: dict[Any, Cadence] = {}
        self._next_cid = 0
        self._conn_rate = SlidingWindowCounter(self.opts.conn_limit, self.opts.conn_window_s)
        self._concurrent: dict[tuple[str, str], int] = {}
        self._reject_next = 0
        self.lose_requests = 0            # the 'lose-requests' fault: subscribe requests still to lose
        self._lose_cause: int | None = None
        self._reject_until = 0.0
        self._reject_cause: tuple[str, int | None] = ("reject-connect", None)
        self.garble_pct = 0.0  # the `garble` fault: percent of frames corrupted (SimConnection.send)
        self.garbled = 0  # frames corrupted so far
        self.publishing: Any = None  # the Stream whose frame is being sent (what a garbled frame belonged to)
        self._garble_cause: int | None = None
        self._garble_rng = random.Random(f"{seed}|{self.name}|garble")
        self._mutator = Mutator(random.Random(f"{seed}|{self.name}|mutate"), detectable=self.opts.garble_detectable)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        if self._server is not None:
            raise RuntimeError(f"{self.name} simulator already started")
        self._host = host
        self._tls = ssl_context is not None
        extra: dict[str, Any] = {"ssl": ssl_context} if ssl_context is not None else {}
        self._server = await ws_create_server(
            self._factory,
            host,
            port,
            enable_auto_pong=False,  # pongs are ours so that a stalled connection stays silent
            max_frame_size=self.opts.max_frame_size,
            websocket_handshake_timeout=5,
            logger_name=f"sim.{self.name}",
            **extra,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self.every(self.opts.idle_check_s, self.sweep)
        self.every(1.0, self._check_slow_clients)
        await self.on_start()
        for f in self._initial_faults:
            self._schedule_fault(f, at_start=True)

    async def stop(self) -> None:
        self._cancel_timed_faults()
        for t in self._tasks + self._fault_tasks:
            t.cancel()
        self._tasks.clear()
        self._fault_tasks.clear()
        for c in self._cadences.values():
            c.cancel()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self.connections):
            conn.close(WSCloseCode.GOING_AWAY, b"simulator stopping")
        await self.on_stop()
        # let the transports finish closing
        for _ in range(50):
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.drop()
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except (asyncio.TimeoutError, Exception):
                pass

    async def on_start(self) -> None:
        """Hook: the server is listening."""

    async def on_stop(self) -> None:
        """Hook: the server is stopping."""

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS (``wss://``, ``https://``)."""
        return self._tls

    @property
    def url(self) -> str:
        """Base URL, e.g. ``ws://127.0.0.1:PORT`` (``ws://[::1]:PORT`` for IPv6, ``wss://`` with TLS)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{'wss' if self._tls else 'ws'}://{host}:{self._port}"

    @property
    def rest_url(self) -> str:
        """``http://HOST:PORT`` (``https://`` with TLS): the REST endpoints share the WebSocket port."""
        return "http" + self.url[2:]

    # -- periodic work ------------------------------------------------------------------------

    def every(self, interval: float, fn: Callable[[], Any], *, fault: bool = False) -> asyncio.Task:
        """Call ``fn()`` every ``interval`` seconds until the simulator stops. A periodic fault
        (``fault=True``, cancelled by ``clear``) keeps the injection that started it as the cause
        of what it logs in :attr:`truth`."""
        cause = self.truth.cause if fault else None
        truth = self.truth

        async def run() -> None:
            while True:
                await asyncio.sleep(interval)
                truth.cause = cause
                try:
                    fn()
                except Exception as exc:
                    self._internal_error(exc)
                finally:
                    truth.cause = None

        task = asyncio.get_running_loop().create_task(run())
        (self._fault_tasks if fault else self._tasks).append(task)
        return task

    def cadence(self, interval: float, key: Any = None) -> Cadence:
        """The shared :class:`Cadence` for ``interval`` (one per key/interval pair)."""
        k = (key, round(interval, 6))
        c = self._cadences.get(k)
        if c is None:
            c = self._cadences[k] = Cadence(self, interval, str(key))
        return c

    def _internal_error(self, exc: BaseException) -> None:
        self.stats.internal_errors += 1
        self.stats.last_internal_error = f"{type(exc).__name__}: {exc}"
        log.error("%s simulator internal error", self.name, exc_info=exc)

    def _check_slow_clients(self) -> None:
        limit = self.opts.slow_client_timeout_s
        now = time.monotonic()
        for c in list(self.connections):
            if c.paused_since is not None and now - c.paused_since > limit:
                log.warning("%s sim: dropping slow client #%d", self.name, c.id)
                self.truth.limit("slow-client", c.id, f"write-blocked for {limit:g}s")
                c.drop()

    def sweep(self) -> None:
        """Hook called every ``idle_check_s``: apply the venue's idle rules."""

    # -- handshakes ---------------------------------------------------------------------------

    def client_ip(self, request: WSUpgradeRequest) -> str:
        if self.opts.trust_forwarded_for:
            fwd = request.headers.get("X-Forwarded-For")
            if fwd:
                return fwd.split(",")[0].strip()
        return self._host

    def _refuse(self, status: int, body: bytes) -> WSUpgradeResponseWithListener:
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_error_response(status, body), None)

    def _factory(self, request: WSUpgradeRequest) -> Any:
        try:
            raw = request.path.decode("latin-1")
            path, _, qs = raw.partition("?")
            upgrade = request.headers.get("Upgrade", "")
            if (not upgrade or upgrade.lower() != "websocket") and request.method in (b"GET", b"HEAD", "GET", "HEAD"):
                return self._http(path, qs, request.headers)
            query: dict[str, str] = {}
            for part in qs.split("&"):
                if part:
                    k, _, v = part.partition("=")
                    query[k] = v
            group = self.route(path, query)
            if group is None:
                self.stats.handshakes_not_found += 1
                return None  # picows answers 404
            now = time.monotonic()
            if self._reject_next > 0 or now < self._reject_until:
                kind = "reject-connect" if self._reject_next > 0 else "reject-connect-for"
                if self._reject_next > 0:
                    self._reject_next -= 1
                self.stats.connections_refused += 1
                self.truth.fault(kind, detail=f"handshake {path} refused with 429",
                                 cause=self._reject_cause[1] if self._reject_cause[0] == kind else None)
                return self._refuse(429, b"429 Too Many Requests (fault injection)")
            ip = self.client_ip(request)
            if self._concurrent.get((ip, group), 0) >= self.opts.max_conns_per_ip:
                self.stats.connections_refused += 1
                self.truth.limit("max-conns", None, f"{ip} {group}: {self.opts.max_conns_per_ip} open")
                return self._refuse(429, b"429 Too Many Requests: too many connections")
            if not self._conn_rate.allow(ip, now):
                self.stats.connections_refused += 1
                self.truth.limit("conn-rate", None, f"{ip}: {self.opts.conn_limit} per {self.opts.conn_window_s:g}s")
                return self._refuse(429, b"429 Too Many Requests: connection rate limit")
            self._next_cid += 1
            return self.make_connection(self._next_cid, path, query, ip, group)
        except Exception as exc:
            self._internal_error(exc)
            raise

    def route(self, path: str, query: dict[str, str]) -> str | None:
        """Return the connection group for a handshake path, or ``None`` to answer 404."""
        return None

    def http_get(self, path: str, qs: str, headers: Any = None) -> tuple[int, bytes] | None:
        """Hook: answer a plain HTTP GET on this port (the venue's public REST endpoints):
        ``(status, JSON body)``, or ``None`` for a 404. ``headers``: the request's (a mapping)."""
        return None

    def _http(self, path: str, qs: str, headers: Any = None) -> WSUpgradeResponseWithListener:
        self.stats.rest_requests += 1
        try:
            ans = self.http_get(path, qs, headers)
        except Exception as exc:
            self._internal_error(exc)
            ans = (500, b'{"error":"simulator internal error"}')
        if ans is None:
            ans = (404, b'{"error":"not found"}')
        status, body = ans
        headers = {"Content-Type": "application/json", "Connection": "close"}
        if status < 400:
            resp = WSUpgradeResponse.create_ok_response(body, extra_headers=headers)
            if status != 200:
                from http import HTTPStatus

                resp.status = HTTPStatus(status)
        else:
            resp = WSUpgradeResponse.create_error_response(status, body, extra_headers=headers)
        return WSUpgradeResponseWithListener(resp, None)

    def make_connection(self, cid: int, path: str, query: dict[str, str], ip: str, group: str) -> SimConnection:
        return self.connection_class(self, cid, path, query, ip, group)

    def _conn_opened(self, conn: SimConnection) -> None:
        self.connections[conn] = None
        key = (conn.ip, conn.group)
        self._concurrent[key] = self._concurrent.get(key, 0) + 1
        self.stats.connections_opened += 1
        try:
            self.on_open(conn)
        except Exception as exc:
            self._internal_error(exc)

    def _conn_closed(self, conn: SimConnection) -> None:
        self.connections.pop(conn, None)
        key = (conn.ip, conn.group)
        n = self._concurrent.get(key, 0) - 1
        if n > 0:
            self._concurrent[key] = n
        else:
            self._concurrent.pop(key, None)
        self.stats.connections_closed += 1
        for topic, stream in list(conn.topics.items()):
            if stream is not None:
                stream.unsubscribe(conn)
        conn.topics.clear()
        try:
            self.on_close(conn)
        except Exception as exc:
            self._internal_error(exc)

    def on_open(self, conn: SimConnection) -> None:
        """Hook: a connection completed its handshake."""

    def on_close(self, conn: SimConnection) -> None:
        """Hook: a connection ended (its streams were already unsubscribed)."""

    def on_text(self, conn: SimConnection, payload: bytes) -> None:
        """Hook: one TEXT message from a client."""

    def is_subscribe_request(self, payload: bytes) -> bool:
        """Whether a client message asks to subscribe (the ``lose-requests`` fault loses those):
        ``{"op": "subscribe"}`` (OKX, Bybit) or ``{"event": "sub"}`` (BG Exchange); a venue
        with another form overrides this."""
        if b"sub" not in payload:
            return False
        try:
            msg = json.loads(payload)
        except ValueError:
            return False
        return isinstance(msg, dict) and (msg.get("op") == "subscribe" or msg.get("event") == "sub")

    def loses(self, conn: SimConnection, payload: bytes) -> bool:
        """The ``lose-requests`` fault: this subscribe request is lost (logged in the truth)."""
        if not self.is_subscribe_request(payload):
            return False
        self.lose_requests -= 1
        self.truth.fault("lose-requests", conns=(conn.id,), detail=f"lost {payload[:200]!r}",
                         cause=self._lose_cause)
        return True

    def on_binary(self, conn: SimConnection, payload: bytes) -> None:
        """Hook: one BINARY message from a client (default: treated as text)."""
        self.on_text(conn, payload)

    # -- faults -------------------------------------------------------------------------------

    @classmethod
    def check_fault(cls, fault: str) -> Fault:
        """Parse a fault against this venue's names (``ValueError`` listing them otherwise)."""
        try:
            return parse_fault(fault, cls.FAULTS)
        except ValueError as exc:
            raise ValueError(f"{cls.name}: {exc}") from None

    def parse_fault(self, fault: str | Fault) -> Fault:
        if isinstance(fault, Fault):
            if fault.name not in self.FAULTS:
                raise ValueError(
                    f"fault {fault.name!r} not supported by the {self.name} simulator; "
                    f"known faults: {', '.join(sorted(self.FAULTS))}"
                )
            return fault
        return parse_fault(fault, self.FAULTS)

    def inject(self, fault: str | Fault) -> Fault:
        """Apply a fault (same grammar as the CLI ``--fault``): now, or with ``@5s`` after a delay,
        or with ``@sub`` at the next subscription. Returns the parsed fault."""
        f = self.parse_fault(fault)
        self._schedule_fault(f, at_start=False)
        return f

    def _schedule_fault(self, f: Fault, *, at_start: bool) -> None:
        """Apply ``f`` when it can take effect: its ``@`` time, else (given at start-up, before any
        client is there) at the first subscription for a fault that acts on live connections
        (:attr:`FaultSpec.needs_subscribers`), else now."""
        at = f.at
        if at is None and at_start and self.FAULTS[f.name].needs_subscribers:
            at = "sub"
        if at is None:
            self.apply_fault(f)
        elif at == "sub":
            self._pending_sub_faults.append(f.now())
        else:
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle | None = None

            def fire() -> None:
                if handle in self._timed_faults:
                    self._timed_faults.remove(handle)  # type: ignore[arg-type]
                try:
                    self.apply_fault(f.now())
                except Exception as exc:
                    self._internal_error(exc)

            handle = loop.call_later(float(at), fire)
            self._timed_faults.append(handle)

    def pending_faults(self) -> list[Fault]:
        """Faults waiting for the next subscription (``@sub``, or one-shot faults given at start-up)."""
        return list(self._pending_sub_faults)

    def subscribed(self, conn: SimConnection) -> None:
        """Called by the venue code after a client subscription took effect (ack and snapshot
        sent): applies the faults that were waiting for one."""
        if not self._pending_sub_faults:
            return
        faults, self._pending_sub_faults = self._pending_sub_faults, []

        def fire() -> None:
            for f in faults:
                try:
                    self.apply_fault(f)
                except Exception as exc:
                    self._internal_error(exc)

        asyncio.get_running_loop().call_soon(fire)

    def _cancel_timed_faults(self) -> None:
        for h in self._timed_faults:
            h.cancel()
        self._timed_faults.clear()
        self._pending_sub_faults.clear()

    def apply_fault(self, f: Fault) -> None:
        """Apply ``f`` now. Logged in :attr:`truth`: the injection itself
        (:attr:`~.truth.Truth.injections`), and each occurrence with what it affected
        (:attr:`~.truth.Truth.faults`), the injection as its cause."""
        self.stats.faults_injected += 1
        rec = self.truth.injected(f.name, str(f))
        self.truth.cause = rec.id
        try:
            self._apply_fault(f)
        finally:
            self.truth.cause = None

    def _apply_fault(self, f: Fault) -> None:
        name, value = f.name, f.value
        if name == "drop":
            self.drop_all()
        elif name == "drop-every":
            self.every(float(value), lambda: self.drop_all("drop-every"), fault=True)  # type: ignore[arg-type]
        elif name == "stall":
            self.stall_all(None)
        elif name == "stall-for":
            self.stall_all(float(value), "stall-for")  # type: ignore[arg-type]
        elif name == "malformed":
            self.send_malformed_all()
        elif name == "malformed-every":
            self.every(float(value), lambda: self.send_malformed_all("malformed-every"), fault=True)  # type: ignore[arg-type]
        elif name == "reject-connect":
            self._reject_next += int(value or 1)
            self._reject_cause = ("reject-connect", self.truth.cause)
        elif name == "reject-connect-for":
            self._reject_until = time.monotonic() + float(value)  # type: ignore[arg-type]
            self._reject_cause = ("reject-connect-for", self.truth.cause)
        elif name == "close":
            self.close_all(int(value or 1001), "close")  # type: ignore[arg-type]
        elif name == "garble":
            self.garble_pct = float(min(100, int(value or 10)))  # type: ignore[arg-type]
            self._garble_cause = self.truth.cause
        elif name == "lose-requests":
            self.lose_requests += int(value or 1)
            self._lose_cause = self.truth.cause
        elif name == "clear":
            self.clear_faults()
        elif not self.apply_venue_fault(f):
            raise ValueError(f"fault {name!r} not implemented by the {self.name} simulator")

    def apply_venue_fault(self, f: Fault) -> bool:
        """Hook: apply a venue-specific fault; return False if unknown."""
        return False

    def clear_faults(self) -> None:
        """Cancel periodic, delayed and waiting faults, stalls and pending handshake refusals."""
        self._cancel_timed_faults()
        for t in self._fault_tasks:
            t.cancel()
        self._fault_tasks.clear()
        self._reject_next = 0
        self._reject_until = 0.0
        self.lose_requests = 0
        self.garble_pct = 0.0
        for c in self.connections:
            c.unstall()

    def drop_all(self, kind: str = "drop") -> None:
        conns = list(self.connections)
        self.truth.fault(kind, conns=[c.id for c in conns], detail="TCP connection aborted, no close frame")
        for c in conns:
            c.drop()

    def close_all(self, code: int, kind: str = "close") -> None:
        """Close every connection with ``code`` (fault ``close=CODE``)."""
        if not 1000 <= code <= 4999 or code in (1004, 1005, 1006, 1015):
            raise ValueError(f"close={code}: not a close code that can be sent (1000..4999)")
        conns = list(self.connections)
        self.truth.fault(kind, conns=[c.id for c in conns], detail=f"closed with {code}")
        for c in conns:
            c.close(WSCloseCode(code), b"simulator fault: close")

    def stall_all(self, seconds: float | None, kind: str = "stall") -> None:
        self.truth.fault(kind, conns=[c.id for c in self.connections],
                         detail="silent until cleared" if seconds is None else f"silent for {seconds:g}s")
        for c in self.connections:
            c.stall(seconds)

    def garble(self, conn: SimConnection, data: bytes, binary: bool) -> tuple[bytes, bool] | None:
        """The `garble` fault: this frame corrupted (and logged), or None to send it as it is."""
        if self._garble_rng.random() * 100.0 >= self.garble_pct:
            return None
        out, out_binary, op = self._mutator.mutate(data, binary)
        self.garbled += 1
        s = self.publishing
        self.truth.fault("garble", stream=None if s is None else getattr(s, "tname", s.topic), conns=(conn.id,),
                         detail=f"{op}: {bytes(data[:60])!r}", cause=self._garble_cause)
        return out, out_binary

    def malformed_frame(self) -> bytes:
        """The non-JSON payload sent by the ``malformed`` fault (venues may override)."""
        return _MALFORMED

    def send_malformed_all(self, kind: str = "malformed") -> None:
        data = self.malformed_frame()
        conns = [c for c in list(self.connections) if c.send(data)]
        self.truth.fault(kind, conns=[c.id for c in conns], detail=f"sent {data[:40]!r}")
