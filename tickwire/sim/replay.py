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
credentials are not checked. When the client has subscribed every stream of a recorded
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
connection. At the end of the recording the socket stays open (heartbeats still answered, BG
Exchange still pinged), and a later client is served the recording again; with
``close_at_end`` the socket is closed instead, and a session served to its end is not served
again (a reconnecting client gets its acks and no data).

The archive is indexed once (one pass, frames are not kept in memory); each served session
reads and decompresses only the blocks that hold its lines.
"""

from __future__ import annotations

import asyncio
import base64
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

from tickwire.sim import bybit as bybit_sim
from tickwire.sim.framework import GENERIC_FAULTS, ServerGroup, SimConnection, VenueSim, now_ms

log = logging.getLogger("tickwire.replay")

__all__ = ["ReplayServer", "RecordedSession", "ArchiveIndex", "index_archive", "ReplayError"]

_json = msgspec.json.Decoder()
_enc = msgspec.json.Encoder()


class ReplayError(ValueError):
    """The source holds no archive, or nothing that can be replayed."""


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
        """True when the recorded connection was lost/closed here (not at the end of recording)."""
        return self.end_reason is not None and self.end_reason != "recording ended"

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


def _iter_chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(offset, lines) per block of an archive file; a plain ``.twraw`` file is one chunk (-1)."""
    from tickwire.sinks import archive

    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head == b"#tic":
            yield -1, f.read()
            return
        if not head:
            return
        if len(head) < 4 or int.from_bytes(head, "little") != archive.MAGIC:
            raise ReplayError(f"{path}: not a tickwire raw archive")
        start = 0
        for end, lines in archive.iter_blocks(f, strict=False):
            yield start, lines
            start = end


def _read_chunk(path: Path, offset: int) -> bytes:
    from tickwire.sinks import archive

    with open(path, "rb") as f:
        if offset < 0:
            return f.read()
        f.seek(offset)
        for _, lines in archive.iter_blocks(f, strict=False):
            return lines
    return b""


def _session_path(venue: str, endpoint: str, url: str) -> str:
    if url:
        p = urlsplit(url).path
        if p:
            return p
    try:
        from tickwire.venues import get_venue

        return urlsplit(get_venue(venue).url(endpoint, "ws://replay")).path
    except Exception:
        return "/"


def _keys_of(venue: str, specs: Sequence[str]) -> frozenset[str]:
    """The wire identities of recorded specs, in the form :func:`_request_keys` gives requests."""
    from tickwire.subscription import parse

    out = set()
    for spec in specs:
        try:
            sub = parse(spec)
        except Exception:
            continue
        if sub.params:
            out.add(_dict_key(sub.params))
        else:
            out.add(sub.topic)
    return frozenset(out)


def _dict_key(d: dict) -> str:
    return "|".join(f"{k}={d[k]}" for k in sorted(d) if d[k] not in (None, ""))


def index_archive(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> ArchiveIndex:
    """Index the recorded sessions of archive files / dataset or ``raw/`` directories."""
    from tickwire.sinks import archive

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    files: list[Path] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise ReplayError(f"no such file or directory: {p}")
        found = archive.archive_files(p)
        if not found:
            raise ReplayError(f"no raw archive under {p} (record with `tickwire record`, raw archive on)")
        files.extend(f for f in found if f not in files)
    sessions: list[RecordedSession] = []
    open_: dict[tuple[str, str], RecordedSession] = {}
    counts: dict[tuple[str, str], int] = {}
    for fi, path in enumerate(files):
        writer = ""
        for off, buf in _iter_chunks(path):
            c_in_block: dict[str, int] = {}
            touched: set[RecordedSession] = set()
            for line in buf.split(b"\n"):
                if not line:
                    continue
                k = line[:1]
                if k == b"#":
                    parts = line.split(b" ", 2)
                    if len(parts) > 2:
                        try:
                            writer = str(_json.decode(parts[2]).get("writer", ""))
                        except msgspec.DecodeError:
                            pass
                    continue
                if k in b"TXB":
                    a = line.find(b" ", 2)
                    b = line.find(b" ", a + 1)
                    if a < 0 or b < 0:
                        continue
                    s = open_.get((writer, line[a + 1:b].decode()))
                    if s is None:
                        continue
                    ns = int(line[2:a])
                    if not s.frames:
                        s.first_ns = ns
                    s.frames += 1
                    s.last_ns = ns
                    if s not in touched:
                        touched.add(s)
                        s.add_block(fi, off)
                    continue
                parts = line.split(b" ", 3)
                if len(parts) != 4 or k not in (b"C", b"D"):
                    continue  # L lines (recorder drops) carry no frames
                conn = parts[2].decode()
                ns = int(parts[1])
                key = (writer, conn)
                try:
                    info = _json.decode(parts[3])
                except msgspec.DecodeError:
                    info = {}
                if k == b"D":
                    s = open_.pop(key, None)
                    if s is not None:
                        s.end_reason = str(info.get("reason", ""))
                        s.add_block(fi, off)
                    continue
                ordinal = c_in_block.get(conn, 0)
                c_in_block[conn] = ordinal + 1
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
                                    keys=_keys_of(venue, subs), writer=writer, conn=conn, number=n,
                                    start_ns=int(info.get("connected_ns", ns)) if info.get("continued") else ns,
                                    blocks=[(fi, off)], c_ord=ordinal)
                open_[key] = s
                sessions.append(s)
    if not sessions:
        raise ReplayError("the archive holds no recorded connection")
    return ArchiveIndex(files=files, sessions=sessions)


def iter_session_frames(index: ArchiveIndex, s: RecordedSession) -> Iterator[tuple[int, bool, bytes]]:
    """``(recv_ns, binary, payload)`` of every frame of one recorded session, in order."""
    pat = re.compile(rb"^([TXBCD]) (\d+) " + re.escape(s.conn.encode()) + rb" (.*)$", re.M)
    first = True
    for fi, off in s.blocks:
        buf = _read_chunk(index.files[fi], off)
        # a block of a plain file may hold several writers' headers only when concatenated by
        # hand; each file has one writer, so the connection name is enough here
        active = not first
        c_seen = 0
        for m in pat.finditer(buf):
            k = m.group(1)
            if k == b"C":
                if not active:
                    c_seen += 1
                    if c_seen == s.c_ord + 1:
                        active = True
                    continue
                if b'"continued":true' in m.group(3).replace(b" ", b""):
                    continue
                return  # a fresh session of this connection starts: ours ended
            if not active:
                continue
            if k == b"D":
                return
            if k == b"T":
                yield int(m.group(2)), False, m.group(3)
            elif k == b"X":
                yield int(m.group(2)), False, base64.b64decode(m.group(3))
            else:
                yield int(m.group(2)), True, base64.b64decode(m.group(3))
        first = False


# ---------------------------------------------------------------------------------------------
# Venue dialects of the replay server: requests answered, recorded answers recognized
# ---------------------------------------------------------------------------------------------


def _json_object(payload: bytes) -> dict | None:
    """The JSON object a frame holds; ``None`` when it holds anything else."""
    try:
        msg = _json.decode(payload)
    except msgspec.DecodeError:
        return None
    return msg if isinstance(msg, dict) else None


class _Dialect:
    """What differs per venue: answering requests, and which recorded frames were answers."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_request(self, conn: "_ReplayConn", payload: bytes) -> list[str] | None:
        """Answer one client message; the subscribed keys (``None``: not a subscribe)."""
        return None

    def is_answer(self, payload: bytes, binary: bool) -> bool:
        """A recorded frame that answered one of the recording client's requests."""
        return False

    def keepalive(self, conn: "_ReplayConn") -> None:
        """Called every ``keepalive_s`` after the recording ended on a connection kept open."""

    keepalive_s = 0.0


class _Bybit(_Dialect):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.category = path.rstrip("/").rsplit("/", 1)[-1]

    def _resp(self, conn: "_ReplayConn", op: str, ret_msg: str, req_id: Any) -> dict:
        return bybit_sim.response(self.category, conn.conn_id, op, True, ret_msg, req_id)

    def on_request(self, conn: "_ReplayConn", payload: bytes) -> list[str] | None:
        msg = _json_object(payload)
        if msg is None:
            return None
        op, req_id = msg.get("op"), msg.get("req_id")
        args = msg.get("args") if isinstance(msg.get("args"), list) else []
        if op == "ping":
            conn.send_obj(bybit_sim.pong(self.category, conn.conn_id, req_id))
            return None
        if op in ("subscribe", "unsubscribe"):
            topics = [a for a in args if isinstance(a, str)]
            if self.category == "option":
                conn.send_obj({"success": True, "conn_id": conn.conn_id, "type": "COMMAND_RESP",
                               "data": {"failTopics": [], "successTopics": topics}})
            else:
                conn.send_obj(self._resp(conn, op, op if self.category == "spot" else "", req_id))
            return topics if op == "subscribe" else None
        if op == "auth":
            conn.send_obj(self._resp(conn, "auth", "", req_id))
            return None
        return None

    def is_answer(self, payload: bytes, binary: bool) -> bool:
        if binary or payload[:9] == b'{"topic":' or b'"op"' not in payload:
            return False
        msg = _json_object(payload)
        if msg is None or "topic" in msg:
            return False
        op = msg.get("op")
        if op in ("pong", "ping") or msg.get("ret_msg") == "pong":
            return True
        if op in ("subscribe", "unsubscribe", "auth") or msg.get("type") == "COMMAND_RESP":
            return msg.get("success") is not False  # a recorded refusal is what the venue said
        return False


class _Okx(_Dialect):
    """OKX v5 and the OKX DEX gateway (same envelope)."""

    def on_request(self, conn: "_ReplayConn", payload: bytes) -> list[str] | None:
        if payload == b"ping":
            conn.send(b"pong")
            return None
        msg = _json_object(payload)
        if msg is None:
            return None
        op, req_id = msg.get("op"), msg.get("id")
        base: dict[str, Any] = {} if req_id is None else {"id": req_id}
        if op == "login":
            conn.send_obj({**base, "event": "login", "code": "0", "msg": "", "connId": conn.conn_id})
            return None
        if op in ("subscribe", "unsubscribe"):
            keys = []
            for arg in msg.get("args") or []:
                if isinstance(arg, dict):
                    conn.send_obj({**base, "event": op, "arg": arg, "connId": conn.conn_id})
                    keys.append(_dict_key(arg))
            return keys if op == "subscribe" else None
        return None

    def is_answer(self, payload: bytes, binary: bool) -> bool:
        if binary:
            return False
        if payload == b"pong":
            return True
        if payload[:7] == b'{"arg":' or b'"event"' not in payload:
            return False
        msg = _json_object(payload)
        if msg is None:
            return False
        ev = msg.get("event")
        if ev in ("subscribe", "unsubscribe"):
            return True
        return ev == "login" and str(msg.get("code", "0")) in ("0", "")


class _Bge(_Dialect):
    keepalive_s = 15.0

    def on_request(self, conn: "_ReplayConn", payload: bytes) -> list[str] | None:
        msg = _json_object(payload)
        if msg is None or "pong" in msg:
            return None  # pongs to (recorded) server pings: nothing to check in a replay
        ev = msg.get("event")
        if ev == "login":
            conn.send_obj({"ts": now_ms(), "code": 200, "status": "OK", "event": "login"})
            return None
        if ev in ("sub", "unsub"):
            typ, prod, iv = msg.get("type"), msg.get("product"), msg.get("interval")
            ack: dict[str, Any] = {"biz": msg.get("biz"), "type": typ, "product": prod, "ts": now_ms(),
                                   "code": 200, "status": "OK", "event": ev}
            if iv not in (None, ""):
                ack["interval"] = int(iv) if typ == "orderbook" and str(iv).isdigit() else iv
            conn.send_obj(ack)
            if ev == "sub" and isinstance(typ, str) and isinstance(prod, str):
                return [f"{typ}.{iv}:{prod}" if iv not in (None, "") else f"{typ}:{prod}"]
        return None

    def is_answer(self, payload: bytes, binary: bool) -> bool:
        if binary or b'"event"' not in payload or b'"data"' in payload:
            return False
        msg = _json_object(payload)
        if msg is None:
            return False
        if msg.get("event") not in ("sub", "unsub", "login"):
            return False
        code = msg.get("code")
        return (code is None or str(code) == "200") and str(msg.get("status", "OK")).upper() == "OK"

    def keepalive(self, conn: "_ReplayConn") -> None:
        conn.send_obj({"ping": now_ms()})


_DIALECTS: dict[str, type[_Dialect]] = {"bybit": _Bybit, "okx": _Okx, "okxdex": _Okx, "bge": _Bge}


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
        self.dialect: _Dialect | None = None

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
        self._dialect_cls = _DIALECTS.get(venue, _Dialect)
        # Replays take whatever connection rate the client needs; stalls are the client's business.
        super().__init__(seed=0, options={"conn_limit": 100_000, "conn_window_s": 1.0,
                                          "slow_client_timeout_s": 3600.0}, faults=faults)
        self.frames_replayed = 0
        self.served = 0

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
                self.frames_replayed += 1
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
                self.served += 1
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
        unknown = [v for v in by_venue if v not in _DIALECTS]
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
        if self._done is not None and all(s.served for s in self.sessions):
            self._done.set()

    async def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until every recorded session was served to its end; False on timeout."""
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

