"""Raw frame archive: every received frame, exactly, so any recording can be decoded again.

File format (``*.twraw.zst``), documented in ``docs/recording.md``
------------------------------------------------------------------
A file is a sequence of *blocks*; each block is::

    zstd skippable frame   magic 0x184D2A5E (u32 LE), size 16 (u32 LE),
                           b"TWR1", raw_len (u32 LE), comp_len (u32 LE), crc32 of the zstd frame (u32 LE)
    zstd frame             comp_len bytes; decompresses to raw_len bytes of *lines*

so ``zstdcat FILE`` prints the lines, and a reader can walk blocks without decompressing
them. The recorder appends one block per flush; a block is complete or absent (a torn
last block, possible only in a file that was never published, is detected by length and
CRC and dropped by recovery).

Lines (fields separated by one space; the last field runs to the end of the line)::

    #tickwire-raw 1 {"writer": ..., "venue": ..., "created_ns": ...}   first line of a file
    C <recv_ns> <conn> {"venue","endpoint","url","subs",["continued"],["replaces"]}  socket opened
    D <recv_ns> <conn> {"reason": ...}                                   socket ended
    S <recv_ns> <conn> {"replaces": <old conn>}                          failover done: <conn> serves
                                                                         <old conn>'s streams from here
    R <recv_ns> <conn> {"topic": ..., "body": <JSON or null>, "error": ...}  REST snapshot reply
    T <recv_ns> <conn> <text frame, verbatim>                            text frame without a newline
    X <recv_ns> <conn> <base64>                                          text frame containing a newline
    B <recv_ns> <conn> <base64>                                          binary frame
    L <recv_ns> - {"dropped_frames": n, "dropped_bytes": n, ...}         the recorder dropped frames here

``C`` with ``"continued": true`` re-declares, at the top of a new file, a connection that
was already open in the previous file: a reader that has it open keeps its state. ``conn``
is the id of one socket, unique per writer (``writer`` in the header): a feed names its
sockets ``<connection>.<n>`` (format 1 files of older versions reused a connection's name
across reconnects: a ``C`` without ``continued`` always starts a fresh protocol session).
A socket opened to replace another during a make-before-break failover (OKX 64008) says so
with ``"replaces"``; until its ``S`` record both sockets' events go through the same merge
the live feed used (:class:`tickwire.net.failover.Merger`), so decoding an archive gives
exactly the events the live feed delivered: no gap, no duplicate trade.
"""

from __future__ import annotations

import base64
import heapq
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import msgspec

from tickwire.model import Connected, Disconnected, Event, Notice

MAGIC = 0x184D2A5E
BLOCK_TAG = b"TWR1"
_HDR = struct.Struct("<II4sIII")  # magic, size(16), tag, raw_len, comp_len, crc
HEADER_SIZE = _HDR.size  # 24
FORMAT_VERSION = 1
SUFFIX = ".twraw.zst"
PLAIN_SUFFIX = ".twraw"


class ArchiveError(ValueError):
    """A file that is not a tickwire raw archive, or a damaged one."""


_codec: Any = None
#: zstd level of the blocks written. Level 1 is faster than 3 and, on frames (1 MB blocks of
#: JSON lines), as small or smaller (bench: 29 vs 30 bytes per Bybit book frame).
LEVEL = 1


def _zstd() -> Any:
    global _codec
    if _codec is None:
        import pyarrow as pa

        _codec = pa.Codec("zstd", compression_level=LEVEL)
    return _codec


def encode_block(lines: bytes) -> bytes:
    """One block: skippable header + zstd frame of ``lines``."""
    comp = _zstd().compress(lines, asbytes=True)
    return _HDR.pack(MAGIC, 16, BLOCK_TAG, len(lines), len(comp), zlib.crc32(comp)) + comp


def iter_blocks(f: BinaryIO, strict: bool = True) -> Iterator[tuple[int, bytes]]:
    """Yield (end_offset, decompressed lines) per complete block.

    ``strict=False`` stops quietly at a torn or damaged tail (recovery of an unpublished
    file); ``strict=True`` raises :class:`ArchiveError` there.
    """
    pos = 0
    codec = _zstd()
    while True:
        hdr = f.read(HEADER_SIZE)
        if not hdr:
            return
        if len(hdr) < HEADER_SIZE:
            if strict:
                raise ArchiveError(f"truncated block header at offset {pos}")
            return
        magic, size, tag, raw_len, comp_len, crc = _HDR.unpack(hdr)
        if magic != MAGIC or size != 16 or tag != BLOCK_TAG:
            if strict:
                raise ArchiveError(f"not a tickwire raw archive block at offset {pos}")
            return
        comp = f.read(comp_len)
        if len(comp) < comp_len or zlib.crc32(comp) != crc:
            if strict:
                raise ArchiveError(f"damaged or truncated block at offset {pos}")
            return
        pos += HEADER_SIZE + comp_len
        yield pos, codec.decompress(comp, decompressed_size=raw_len, asbytes=True)


def valid_length(path: str | os.PathLike) -> int:
    """Bytes of complete, intact blocks at the start of ``path``."""
    end = 0
    with open(path, "rb") as f:
        for end, _ in iter_blocks(f, strict=False):
            pass
    return end


# --------------------------------------------------------------------------- records

@dataclass(slots=True)
class Record:
    """One archive line. ``kind``: C D T X B L (see the module doc); ``data`` is the frame
    payload for T/X/B (decoded from base64 for X/B) and the JSON info for C/D/L."""

    kind: str
    recv_ns: int
    conn: str
    data: Any
    writer: str = ""

    @property
    def is_frame(self) -> bool:
        return self.kind in ("T", "X", "B")

    @property
    def binary(self) -> bool:
        return self.kind == "B"


def _parse_lines(buf: bytes, writer: str, header: dict | None) -> Iterator[Record | dict]:
    for line in buf.split(b"\n"):
        if not line:
            continue
        k = line[:1]
        if k == b"#":
            parts = line.split(b" ", 2)
            if parts[0] != b"#tickwire-raw":
                raise ArchiveError(f"unknown header line {line[:60]!r}")
            yield msgspec.json.decode(parts[2]) if len(parts) > 2 else {}
            continue
        parts = line.split(b" ", 3)
        if len(parts) != 4:
            raise ArchiveError(f"malformed archive line {line[:80]!r}")
        kind = parts[0].decode()
        ns = int(parts[1])
        conn = parts[2].decode()
        payload = parts[3]
        if kind == "T":
            data: Any = payload
        elif kind in ("X", "B"):
            data = base64.b64decode(payload)
        elif kind in ("C", "D", "L", "S", "R"):
            data = msgspec.json.decode(payload)
        else:
            raise ArchiveError(f"unknown archive record kind {kind!r}")
        yield Record(kind, ns, conn, data, writer)


def read_archive(path: str | os.PathLike, strict: bool = True) -> Iterator[Record]:
    """Every record of one archive file (``.twraw.zst``, or an uncompressed ``.twraw``).

    The header line is not yielded; :attr:`Record.writer` carries the writer id from it.
    """
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head == b"#tic":
            chunks: Iterable[bytes] = [f.read()]
        elif len(head) == 4 and struct.unpack("<I", head)[0] == MAGIC:
            chunks = (lines for _, lines in iter_blocks(f, strict=strict))
        elif not head:
            return
        else:
            raise ArchiveError(f"{p}: not a tickwire raw archive")
        writer = ""
        header: dict | None = None
        for buf in chunks:
            for rec in _parse_lines(buf, writer, header):
                if isinstance(rec, dict):
                    header = rec
                    writer = str(rec.get("writer", ""))
                    continue
                rec.writer = writer
                yield rec


def is_archive(path: str | os.PathLike) -> bool:
    p = Path(path)
    if p.is_dir():
        return any(archive_files(p))
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == b"#tic" or (len(head) == 4 and struct.unpack("<I", head)[0] == MAGIC)


def archive_files(root: str | os.PathLike) -> list[Path]:
    """Archive files under ``root`` (a file, a dataset dir or its ``raw/`` dir), in name order.

    In-progress files (under ``_wal``) are not included: run recovery first.
    """
    p = Path(root)
    if p.is_file():
        return [p]
    return public_files(p, (SUFFIX, PLAIN_SUFFIX))


def public_files(root: str | os.PathLike, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``root`` ending in one of ``suffixes``, in name order, skipping every ``_*`` and
    ``.*`` entry without entering it: a live recorder builds and empties ``_trash/stage-*`` and
    ``_wal`` directories while we walk, and a directory that vanishes under us is simply not there."""
    out: list[Path] = []

    def on_error(e: OSError) -> None:
        if not isinstance(e, (FileNotFoundError, NotADirectoryError)):
            raise e

    for d, dirs, files in os.walk(root, onerror=on_error):
        dirs[:] = [n for n in dirs if not n.startswith(("_", "."))]
        out.extend(Path(d, n) for n in files if n.endswith(suffixes) and not n.startswith(("_", ".")))
    return sorted(out)


# --------------------------------------------------------------------------- decoding

class _ConnState:
    __slots__ = ("session", "venue", "endpoint", "url", "push", "retired", "replaced")

    def __init__(self, session: Any, venue: str, endpoint: str, url: str) -> None:
        self.session = session
        self.venue = venue
        self.endpoint = endpoint
        self.url = url
        self.push: Any = None       # during a failover: the merger's side for this socket
        self.retired = False        # replaced by another socket: its events reach no one
        self.replaced = False       # a replacement opened: its close is not a disconnection


def _new_session(venue_name: str, endpoint: str, conn: str) -> Any:
    from tickwire.venues import get_venue

    return get_venue(venue_name).decoder(endpoint, conn)


def decode_records(records: Iterable[Record], status: bool = True) -> Iterator[Event]:
    """Re-normalize archive records through the venues' dialect code, as live.

    Each socket gets its own protocol session (keyed by writer and socket id); a ``C`` marker
    starts a fresh one, a ``D`` marker closes it (books lose continuity and report a Gap, as
    live). A failover replacement (``C`` with ``replaces``) is merged with the socket it
    replaces exactly as the live feed merged them, until its ``S`` record. ``recv_ns`` of
    every event is the recorded receipt time.
    """
    from tickwire.decode import drained_events
    from tickwire.net.failover import Merger

    conns: dict[tuple[str, str], _ConnState] = {}
    merged: dict[tuple[str, str], tuple[Merger, tuple[str, str]]] = {}  # new socket -> (merger, old socket)
    out: list[Event] = []

    def emit(events: list[Event]) -> None:
        out.extend(events if status else [e for e in events if not e.is_status])

    def deliver(st: _ConnState, events: list[Event]) -> None:
        if not events or st.retired:
            return
        if st.push is not None:
            st.push(events)
        else:
            emit(events)

    for rec in records:
        key = (rec.writer, rec.conn)
        if rec.is_frame:
            st = conns.get(key)
            if st is None:
                continue  # frame of a connection never declared (cannot happen in a valid file)
            s = st.session
            deliver(st, s.decode_safely(rec.data, rec.binary, rec.recv_ns))
            if s.outbox:
                deliver(st, drained_events(s))
        else:
            k = rec.kind
            if k == "C":
                info = rec.data
                st = conns.get(key)
                if info.get("continued") and st is not None:
                    continue  # the same connection, re-declared at the top of the next file
                if st is not None:  # reopened without a D marker: close the old session first
                    deliver(st, st.session.on_close(rec.recv_ns))
                try:
                    session = _new_session(info["venue"], info["endpoint"], rec.conn)
                except KeyError:
                    raise ArchiveError(f"connection {rec.conn}: unknown venue {info.get('venue')!r}") from None
                st = conns[key] = _ConnState(session, info["venue"], info["endpoint"], info.get("url", ""))
                if status and not info.get("continued"):
                    emit([Connected(venue=info["venue"], recv_ns=rec.recv_ns, conn=rec.conn, url=info.get("url", ""))])
                old_key = (rec.writer, str(info.get("replaces") or ""))
                old = conns.get(old_key) if info.get("replaces") else None
                if old is not None and not info.get("continued"):
                    m = Merger(emit, old.session.book_seqs(), set())
                    old.push, st.push = m.from_old, m.from_new
                    old.replaced = True
                    merged[key] = (m, old_key)
            elif k == "S":
                pair = merged.pop(key, None)
                st = conns.get(key)
                if pair is not None and st is not None:
                    m, old_key = pair
                    m.finish(st.session.books())
                    st.push = None
                    old = conns.get(old_key)
                    if old is not None:
                        old.retired = True
            elif k == "R":
                st = conns.get(key)
                if st is not None:
                    info = rec.data
                    deliver(st, st.session.on_rest_snapshot(str(info.get("topic", "")), info.get("body"),
                                                            rec.recv_ns, str(info.get("error") or "")))
            elif k == "D":
                st = conns.pop(key, None)
                if st is None:
                    continue
                if not st.replaced:
                    deliver(st, st.session.on_close(rec.recv_ns))
                    if status:
                        emit([Disconnected(venue=st.venue, recv_ns=rec.recv_ns, conn=rec.conn,
                                           reason=str(rec.data.get("reason", "")))])
            elif k == "L" and status:
                info = rec.data
                emit([Notice(venue=str(info.get("venue", "")), recv_ns=rec.recv_ns, conn="",
                             code="recorder-drop",
                             msg=f"the recorder dropped {info.get('dropped_frames', 0)} frames here "
                                 "(disk slower than the feed)")])
        if out:
            yield from out
            out.clear()


def _file_venue(path: Path) -> str:
    for part in path.parts:
        if part.startswith("venue="):
            return part[6:]
    return ""


def decode_archive(source: str | os.PathLike, status: bool = True) -> Iterator[Event]:
    """Events of one archive file, or of every archive under a directory.

    Files of one venue are decoded in order (so connections continue across files);
    several venues are merged by receipt time.
    """
    files = archive_files(source)
    by_venue: dict[str, list[Path]] = {}
    for f in files:
        by_venue.setdefault(_file_venue(f), []).append(f)

    def records(paths: list[Path]) -> Iterator[Record]:
        for p in paths:
            yield from read_archive(p)

    streams = [decode_records(records(paths), status=status) for _, paths in sorted(by_venue.items())]
    if len(streams) == 1:
        yield from streams[0]
    else:
        yield from heapq.merge(*streams, key=lambda e: e.recv_ns)
