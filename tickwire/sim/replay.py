"""Replay a raw frame archive over the venues' own protocols (``tickwire replay``).

::

    async with ReplayServer("data/raw", speed=10) as rp:       # one server (port) per venue
        async with tickwire.stream("bybit.linear:orderbook.50:BTCUSDT", endpoints=rp.endpoints) as feed:
            async for ev in feed: ...

What is served
--------------
Every *recorded session* of the archive (a ``C`` line of a connection, up to its ``D`` line,
the next fresh ``C`` of the same connection, or the end of the archive; see
``docs/recording.md``) can be served on the URL path it was recorded from
(``/v5/public/linear``, ``/ws/v5/business``...), on the server of its venue.

A client connects to that path and subscribes. Each subscribe/login/ping request is answered
at once with the venue's own minimal reply (Bybit ``{"success":true,"op":"subscribe",...}`` and
JSON pongs, OKX/OKX DEX one ``{"event":"subscribe","arg":...}`` per arg, ``{"event":"login",
"code":"0"}`` and text ``pong``, BG Exchange ``{"event":"sub","code":200,"status":"OK",...}``);
credentials are not checked. A recorded subscription (a spec of the ``C`` line) is matched to
requests by its wire identity, as the client's spec parser (:func:`tickwire.venues.parse`)
gives it. When the client has subscribed every stream of a recorded
session on that path (or ``match_wait_s`` after its first subscribe), the best-matching
session (most streams in common; one not served yet first) is sent: its received frames in
order, each after the recorded inter-arrival time divided by ``speed`` (``speed=0``: as fast as
the client reads; the socket's backpressure is always respected).

The recorded answers to *our* requests (subscribe/login acks, pongs) are not sent again: the
client got fresh ones. Everything else is: data, notices, venue errors, conn-count events and
BG Exchange's server pings. A client therefore decodes the very frames ``tickwire decode``
decodes offline, and gets the same market-data events.

At a recorded disconnect the replay disconnects the client too (with the recorded close code
when there was one), so it reconnects and is served the next recorded session of that
connection; a socket the recording client closed itself (its feed closed, or the socket was
replaced by a failover) is not a disconnect. At the end of the recording the socket stays open (heartbeats still answered, BG
Exchange still pinged), and a later client is served the recording again; with
``close_at_end`` the socket is closed instead, and a session served to its end is not served
again (a reconnecting client gets its acks and no data).

The archive is read through :mod:`tickwire.sinks.archive`; it is indexed once (one pass, frames
are not kept in memory), and each served session reads and decompresses only the blocks that hold
its lines. What a venue's requests and answers look like is the venue simulator's business: its
``replay_dialect`` (:class:`~tickwire.sim.framework.ReplayDialect`), found through the registry
of venue simulators.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import msgspec
from picows import WSCloseCode, WSMsgType

from tickwire.sim import VENUE_SIMS
from tickwire.sim.framework import GENERIC_FAULTS, ReplayDialect, ServerGroup, SimConnection, VenueSim, arg_key
from tickwire.sinks.archive import MAGIC, Record, archive_files, iter_blocks

log = logging.getLogger("tickwire.replay")

__all__ = ["ReplayServer", "RecordedSession", "ArchiveIndex", "index_archive", "iter_session_frames", "ReplayError"]

_enc = msgspec.json.Encoder()

#: ``D`` reasons that say the recording client closed the socket itself (the recording or its
#: feed ended, or a failover replaced the socket): not disconnects to replay.
_CLIENT_CLOSES = ("recording ended", "feed closed", "replaced")


class ReplayError(ValueError):
    """The source holds no archive, or nothing that can be replayed."""


# ---------------------------------------------------------------------------------------------
# Reading archive blocks
# ---------------------------------------------------------------------------------------------
# tickwire.sinks.archive reads whole files (read_archive); the replay needs the block each line
# is in, and one block by its offset, so it walks blocks with archive.iter_blocks and parses
# their lines into archive Records itself.


def _blocks(path: Path, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(offset, lines)`` of every block of an archive file from byte ``offset`` on; an
    uncompressed ``.twraw`` file is one block at offset -1."""
    with open(path, "rb") as f:
        head = f.read(4)
        if not head:
            return
        if head == b"#tic":
            f.seek(0)
            yield -1, f.read()
            return
        if len(head) < 4 or int.from_bytes(head, "little") != MAGIC:
            raise ReplayError(f"{path}: not a tickwire raw archive")
        f.seek(offset)
        start = offset
        for end, lines in iter_blocks(f, strict=False):
            yield start, lines
            start = offset + end


def _block(path: Path, offset: int) -> bytes:
    """The lines of the block at ``offset`` (-1: the whole uncompressed file)."""
    for _, lines in _blocks(path, max(offset, 0)):
        return lines
    return b""


def _records(lines: bytes, writer: str, conn: str | None = None, payloads: bool = True) -> Iterator[Record]:
    """The records of a block's lines (only those of connection ``conn`` if given).

    A header line (``#tickwire-raw``) comes out as a record of kind ``"#"`` with its JSON as
    ``data``; it sets the writer of the records after it. ``payloads=False`` leaves X/B frames
    base64-encoded (indexing needs no payload). A line that cannot be parsed is skipped.
    """
    want = None if conn is None else conn.encode()
    for line in lines.split(b"\n"):
        if not line:
            continue
        if line[:1] == b"#":
            parts = line.split(b" ", 2)
            try:
                info = msgspec.json.decode(parts[2]) if len(parts) > 2 else {}
            except msgspec.DecodeError:
                info = {}
            if isinstance(info, dict):
                writer = str(info.get("writer", writer))
                yield Record("#", 0, "", info, writer)
            continue
        parts = line.split(b" ", 3)
        if len(parts) != 4 or (want is not None and parts[2] != want) or not parts[1].isdigit():
            continue
        kind = parts[0].decode("ascii", "replace")
        data: Any = parts[3]
        if kind in ("X", "B"):
            if payloads:
                try:
                    data = base64.b64decode(data)
                except binascii.Error:
                    continue
        elif kind != "T":
            try:
                data = msgspec.json.decode(data)
            except msgspec.DecodeError:
                data = {}
        yield Record(kind, int(parts[1]), parts[2].decode(), data, writer)


# ---------------------------------------------------------------------------------------------
# Index
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class RecordedSession:
    """One recorded protocol session (``C`` ... ``D``) of one connection of one writer."""

    venue: str
    endpoint: str
    url: str
    path: str
    subs: list[str]
    keys: frozenset[str]
    writer: str
    conn: str
    number: int                 # 0 for the first session of this connection, 1 after a reconnect...
    start_ns: int
    first_ns: int = 0           # first frame
    last_ns: int = 0            # last frame
    frames: int = 0
    end_reason: str | None = None   # the D line's reason; None: the archive ended first
    blocks: list[tuple[int, int]] = field(default_factory=list)  # (file index, block offset; -1 = whole file)
    c_ord: int = 0              # C lines of this connection before ours in our first block
    served: int = 0             # times served to the end
    busy: int = 0               # clients being served now

    @property
    def duration_s(self) -> float:
        return max(0, self.last_ns - self.first_ns) / 1e9

    def add_block(self, fi: int, off: int) -> None:
        """Note that block ``off`` of file ``fi`` holds lines of this session (once)."""
        if not self.blocks or self.blocks[-1] != (fi, off):
            self.blocks.append((fi, off))

    @property
    def ends_with_disconnect(self) -> bool:
        """True when the venue side ended the recorded socket here (not the recording client)."""
        return self.end_reason is not None and not self.end_reason.startswith(_CLIENT_CLOSES)

    def __repr__(self) -> str:
        return (f"<RecordedSession {self.venue} {self.conn}[{self.number}] {self.path} frames={self.frames} "
                f"subs={len(self.subs)}>")


@dataclass
class ArchiveIndex:
    files: list[Path]
    sessions: list[RecordedSession]

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.sessions)

    @property
    def duration_s(self) -> float:
        firsts = [s.first_ns for s in self.sessions if s.frames]
        lasts = [s.last_ns for s in self.sessions if s.frames]
        return (max(lasts) - min(firsts)) / 1e9 if firsts else 0.0

    def venues(self) -> dict[str, list[RecordedSession]]:
        out: dict[str, list[RecordedSession]] = {}
        for s in self.sessions:
            out.setdefault(s.venue, []).append(s)
        return out


def _session_path(venue: str, endpoint: str, url: str) -> str:
    """The URL path a session is served on: the recorded URL's; without one, the venue
    simulator's path ending with the endpoint name, else its first path."""
    path = urlsplit(url).path if url else ""
    if path:
        return path
    sim = VENUE_SIMS.get(venue)
    paths = list(sim.paths) if sim is not None else []
    tail = "/" + endpoint.strip("/")
    for p in paths:
        if endpoint and p.rstrip("/").endswith(tail):
            return p
    return paths[0] if paths else "/"


def _keys_of(specs: Sequence[str]) -> frozenset[str]:
    """The wire identities of recorded specs, in the form the dialects give requests (see
    :class:`~tickwire.sim.framework.ReplayDialect`): the client's spec parser knows them."""
    from tickwire.venues import parse

    out = set()
    for spec in specs:
        try:
            sub = parse(spec)
        except Exception:
            continue
        out.add(arg_key(sub.params) if sub.params else sub.topic)
    return frozenset(out)


def index_archive(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> ArchiveIndex:
    """Index the recorded sessions of archive files / dataset or ``raw/`` directories."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files: list[Path] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise ReplayError(f"no such file or directory: {p}")
        found = archive_files(p)
        if not found:
            raise ReplayError(f"no raw archive under {p} (record with `tickwire record`, raw archive on)")
        files.extend(f for f in found if f not in files)
    sessions: list[RecordedSession] = []
    open_: dict[tuple[str, str], RecordedSession] = {}
    counts: dict[tuple[str, str], int] = {}
    for fi, path in enumerate(files):
        writer = ""
        for off, lines in _blocks(path):
            c_in_block: dict[str, int] = {}
            touched: set[RecordedSession] = set()
            for rec in _records(lines, writer, payloads=False):
                k = rec.kind
                if k == "#":
                    writer = rec.writer
                    continue
                key = (writer, rec.conn)
                if rec.is_frame:
                    s = open_.get(key)
                    if s is None:
                        continue
                    if not s.frames:
                        s.first_ns = rec.recv_ns
                    s.frames += 1
                    s.last_ns = rec.recv_ns
                    if s not in touched:
                        touched.add(s)
                        s.add_block(fi, off)
                    continue
                info = rec.data if isinstance(rec.data, dict) else {}
                if k == "D":
                    s = open_.pop(key, None)
                    if s is not None:
                        s.end_reason = str(info.get("reason", ""))
                        s.add_block(fi, off)
                    continue
                if k != "C":
                    continue  # S, R and L lines carry no frames
                ordinal = c_in_block.get(rec.conn, 0)
                c_in_block[rec.conn] = ordinal + 1
                s = open_.get(key)
                if s is not None:
                    if info.get("continued"):
                        s.add_block(fi, off)
                        continue
                    s.end_reason = "reconnected"
                venue = str(info.get("venue", ""))
                endpoint = str(info.get("endpoint", ""))
                url = str(info.get("url", ""))
                subs = [str(x) for x in info.get("subs", []) or []]
                n = counts.get(key, 0)
                counts[key] = n + 1
                s = RecordedSession(venue=venue, endpoint=endpoint, url=url,
                                    path=_session_path(venue, endpoint, url), subs=subs,
                                    keys=_keys_of(subs), writer=writer, conn=rec.conn, number=n,
                                    start_ns=int(info.get("connected_ns", rec.recv_ns)) if info.get("continued")
                                    else rec.recv_ns,
                                    blocks=[(fi, off)], c_ord=ordinal)
                open_[key] = s
                sessions.append(s)
    if not sessions:
        raise ReplayError("the archive holds no recorded connection")
    return ArchiveIndex(files=files, sessions=sessions)


def iter_session_frames(index: ArchiveIndex, s: RecordedSession) -> Iterator[tuple[int, bool, bytes]]:
    """``(recv_ns, binary, payload)`` of every frame of one recorded session, in order."""
    first = True
    for fi, off in s.blocks:
        # each file has one writer, so the connection name is enough to find our lines
        active = not first
        c_seen = 0
        for rec in _records(_block(index.files[fi], off), s.writer, s.conn):
            k = rec.kind
            if k == "C":
                if not active:
                    c_seen += 1
                    active = c_seen == s.c_ord + 1
                    continue
                if isinstance(rec.data, dict) and rec.data.get("continued"):
                    continue
                return  # a fresh session of this connection starts: ours ended
            if not active:
                continue
            if k == "D":
                return
            if rec.is_frame:
                yield rec.recv_ns, rec.binary, rec.data
        first = False


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------


class _ReplayConn(SimConnection):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.writable = asyncio.Event()
        self.writable.set()
        self.conn_id = secrets.token_hex(4)
        self.requested: dict[str, None] = {}
        self.task: asyncio.Task | None = None
        self.start_handle: asyncio.TimerHandle | None = None
        self.session: RecordedSession | None = None
        self.dialect: ReplayDialect | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        self.writable.clear()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.writable.set()

    def send_obj(self, obj: Any) -> None:
        if self.send(_enc.encode(obj)):
            self.sim.stats.frames_sent += 1


class _VenueReplay(VenueSim):
    """The replay server of one venue: serves that venue's recorded sessions on their paths."""

    FAULTS = GENERIC_FAULTS
    connection_class = _ReplayConn

    def __init__(self, server: "ReplayServer", venue: str, sessions: list[RecordedSession],
                 faults: Sequence[str] = ()) -> None:
        self.name = venue  # type: ignore[misc]  # per instance: replay servers are not registered venues
        self.server = server
        self.sessions = sessions
        self.paths = sorted({s.path for s in sessions})  # type: ignore[misc]
        sim = VENUE_SIMS.get(venue)
        self._dialect_cls = sim.replay_dialect if sim is not None else ReplayDialect
        # Replays take whatever connection rate the client needs; stalls are the client's business.
        super().__init__(seed=0, options={"conn_limit": 100_000, "conn_window_s": 1.0,
                                          "slow_client_timeout_s": 3600.0}, faults=faults)

    def route(self, path: str, query: dict[str, str]) -> str | None:
        if path in self.paths:
            return path
        p = path.rstrip("/")
        return p if p in self.paths else None

    def on_open(self, conn: SimConnection) -> None:
        assert isinstance(conn, _ReplayConn)
        conn.dialect = self._dialect_cls(conn.group)

    def on_close(self, conn: SimConnection) -> None:
        assert isinstance(conn, _ReplayConn)
        if conn.start_handle is not None:
            conn.start_handle.cancel()
        if conn.task is not None:
            conn.task.cancel()
        self.server._session_done()

    def on_text(self, conn: SimConnection, payload: bytes) -> None:
        assert isinstance(conn, _ReplayConn) and conn.dialect is not None
        keys = conn.dialect.on_request(conn, payload)
        if not keys:
            return
        self.stats.subscribe_requests += 1
        for k in keys:
            conn.requested[k] = None
        if conn.task is not None or conn.session is not None:
            return
        if self._covered(conn):
            self._start(conn)
        elif conn.start_handle is None:
            conn.start_handle = asyncio.get_running_loop().call_later(self.server.match_wait_s, self._start, conn)

    def _candidates(self, conn: _ReplayConn) -> list[RecordedSession]:
        return [s for s in self.sessions if s.path == conn.group]

    def _covered(self, conn: _ReplayConn) -> bool:
        req = conn.requested
        return any(s.keys and s.keys.issubset(req) for s in self._candidates(conn))

    def _pick(self, conn: _ReplayConn) -> RecordedSession | None:
        req = set(conn.requested)
        best: tuple | None = None
        pick = None
        for s in self._candidates(conn):
            overlap = len(s.keys & req)
            if s.keys and not overlap:
                continue
            if s.served and self.server.close_at_end:
                continue  # served to its end and closed: a reconnecting client gets acks, no rerun
            # the recorded connection with exactly these streams; one not being served, not
            # served yet (the next session after a recorded reconnect), then the earliest
            rank = (s.keys == req, s.busy == 0, s.served == 0, overlap, -s.start_ns)
            if best is None or rank > best:
                best, pick = rank, s
        return pick

    def _start(self, conn: _ReplayConn) -> None:
        conn.start_handle = None
        if not conn.open or conn.task is not None:
            return
        s = self._pick(conn)
        if s is None:
            log.warning("replay %s: no recorded connection on %s serves %s", self.name, conn.group,
                        ", ".join(conn.requested))
            return
        conn.session = s
        s.busy += 1
        conn.task = asyncio.get_running_loop().create_task(self._serve(conn, s))

    async def _serve(self, conn: _ReplayConn, s: RecordedSession) -> None:
        speed = self.server.speed
        loop = asyncio.get_running_loop()
        dialect = conn.dialect
        assert dialect is not None
        t0 = loop.time()
        first_ns = -1
        n = 0
        finished = False
        try:
            for ns, binary, payload in iter_session_frames(self.server.index, s):
                if dialect.is_answer(payload, binary):
                    continue
                if speed > 0:
                    if first_ns < 0:
                        first_ns = ns
                    delay = t0 + (ns - first_ns) / 1e9 / speed - loop.time()
                    if delay > 0.0005:
                        await asyncio.sleep(delay)
                n += 1
                if not n & 63:
                    await asyncio.sleep(0)  # let the readers (maybe in this very process) run
                if not conn.writable.is_set():
                    await conn.writable.wait()
                if not conn.open:
                    return
                if not conn.send_raw(WSMsgType.BINARY if binary else WSMsgType.TEXT, payload):
                    if conn.stalled:
                        continue  # fault injection: the frame is lost, as it would be live
                    return
                self.stats.frames_sent += 1
                self.server.frames_replayed += 1
            finished = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. an archive file removed or damaged since it was indexed
            self._internal_error(exc)
            conn.close(WSCloseCode.INTERNAL_ERROR, b"replay failed")
            return
        finally:
            s.busy -= 1
            if finished:
                s.served += 1
                self.server._session_done()
        if s.ends_with_disconnect:
            await self._recorded_disconnect(conn, s.end_reason or "")
        elif self.server.close_at_end:
            conn.close(WSCloseCode.OK, b"end of recording")
        elif dialect.keepalive_s > 0:
            conn.every(dialect.keepalive_s, lambda: dialect.keepalive(conn), first=dialect.keepalive_s)

    async def _recorded_disconnect(self, conn: _ReplayConn, reason: str) -> None:
        if not conn.writable.is_set():
            try:
                await asyncio.wait_for(conn.writable.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
        m = re.match(r"closed by venue: (\d+)\s*(.*)", reason)
        if m and 1000 <= int(m.group(1)) < 5000 and int(m.group(1)) not in (1005, 1006, 1015):
            try:
                code = WSCloseCode(int(m.group(1)))
            except ValueError:
                code = WSCloseCode.GOING_AWAY
            conn.close(code, m.group(2).encode()[:120])
        else:
            conn.drop()


class ReplayServer(ServerGroup):
    """Serve a raw archive over each recorded venue's protocol, one loopback port per venue.

    ``source``: archive files, a dataset directory or its ``raw/`` directory (or a list).
    ``speed``: 1 = recorded pace, 10 = ten times faster, 0 = as fast as the client reads.
    ``close_at_end``: close each socket after its last frame and serve each session once
    (default: keep sockets open; later clients get the recording again).
    ``venues``: only these venues of the archive. ``faults``: generic simulator faults
    (``drop-every=5s``...). ``match_wait_s``: how long after a client's first subscribe to wait
    for the rest of its subscriptions before picking the recorded connection to serve.
    """

    def __init__(self, source: str | os.PathLike | Iterable[str | os.PathLike], *, speed: float = 1.0,
                 host: str = "127.0.0.1", port: int = 0, close_at_end: bool = False,
                 venues: Sequence[str] | None = None, faults: Sequence[str] = (),
                 match_wait_s: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = as fast as the client reads)")
        self.index = index_archive(source)
        self.speed = float(speed)
        self.host = host
        self.port = port
        self.close_at_end = close_at_end
        self.match_wait_s = match_wait_s
        self.frames_replayed = 0
        by_venue = self.index.venues()
        if venues:
            missing = [v for v in venues if v not in by_venue]
            if missing:
                raise ReplayError(f"venue(s) {missing} not in the archive; it holds {', '.join(sorted(by_venue))}")
            by_venue = {v: by_venue[v] for v in venues}
        unknown = [v for v in by_venue if v not in VENUE_SIMS or VENUE_SIMS[v].replay_dialect is ReplayDialect]
        if unknown:
            log.warning("replay: no request dialect for %s; their subscribes are not acknowledged", unknown)
        self.venues: dict[str, _VenueReplay] = {
            v: _VenueReplay(self, v, ss, faults=faults) for v, ss in sorted(by_venue.items())
        }
        self.sessions = [s for ss in by_venue.values() for s in ss]
        self._done: asyncio.Event | None = None  # created on the loop in start()
        self._started = False

    async def start(self) -> "ReplayServer":
        if not self._started:
            self._done = asyncio.Event()
        return await super().start()

    def _session_done(self) -> None:
        """The data ends when every recorded session was served, or when some were served and
        nothing is being served or connected any more (the clients took what they asked for:
        a recording of four venues replayed to a client of one ends too)."""
        if self._done is None or self._done.is_set():
            return
        if all(s.served for s in self.sessions):
            self._done.set()
        elif any(s.served for s in self.sessions) and not any(s.busy for s in self.sessions) and \
                not any(v.connections for v in self.venues.values()):
            self._done.set()

    async def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until the data ends (see :meth:`_session_done`); False on timeout."""
        assert self._done is not None, "start() first"
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def ready_extra(self) -> dict[str, Any]:
        """What is served, added to the ready line after the endpoints."""
        return {"connections": len(self.sessions), "frames": sum(s.frames for s in self.sessions),
                "recorded_s": round(self.index.duration_s, 3), "speed": self.speed}

    def describe(self) -> list[str]:
        """One human line per recorded session."""
        out = []
        for s in self.sessions:
            subs = ", ".join(s.subs[:4]) + (f" (+{len(s.subs) - 4})" if len(s.subs) > 4 else "")
            out.append(f"{s.venue} {s.path} {s.conn}[{s.number}]: {s.frames:,} frames over "
                       f"{s.duration_s:.1f} s; {subs or 'no subscriptions recorded'}")
        return out

