"""The recorder's writer thread: write-ahead files, rolling, atomic publishing, recovery.

Everything that touches the disk runs here, never on the event loop.

Life of a Parquet part (one per kind, venue and UTC date at a time)::

    DIR/_wal/<writer>/<kind>/venue=V/date=D/part-T-<writer>-N.parquet.wal   Arrow IPC stream,
        one record batch appended per flush (so a kill -9 loses at most the last flush)
    DIR/_wal/<writer>/<kind>/venue=V/date=D/part-T-<writer>-N.parquet.tmp   at roll: the WAL
        rewritten as Parquet (zstd), fsynced
    DIR/<kind>/venue=V/date=D/part-T-<writer>-N.parquet                     rename = publish;
        then the WAL is deleted

Raw archive files are appended block by block under ``_wal`` and renamed into
``DIR/raw/venue=V/date=D/`` when rolled. Readers never see a file being written: only
complete files carry the published names. :func:`recover` turns what a killed recorder
left under ``_wal`` into published files (every complete batch / block is kept).
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickwire.sinks import archive
from tickwire.sinks.schema import KINDS, Kind, arrow_schema, to_batch

log = logging.getLogger("tickwire.record")

WAL_DIR = "_wal"
LOCK_NAME = "LOCK"


class RecorderError(RuntimeError):
    """The recorder cannot write (disk full, unwritable path...). It has stopped; files
    already published are complete, and unpublished data stays under ``_wal`` for recovery."""


def describe_os_error(e: BaseException, path: Any = None) -> str:
    if isinstance(e, OSError):
        where = path or e.filename or ""
        what = e.strerror or str(e)
        hint = ""
        if e.errno == errno.ENOSPC:
            hint = " (disk full)"
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = " (not writable)"
        return f"cannot write {where}: {what}{hint}" if where else f"{what}{hint}"
    return f"{type(e).__name__}: {e}"


def ns_stamp(ns: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ns / 1e9))


def day_str(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- WAL -> Parquet

@dataclass
class ParquetOptions:
    compression: str = "zstd"
    compression_level: int | None = 3
    row_group_rows: int = 128 * 1024


def wal_to_parquet(wal: Path, tmp: Path, final: Path, popts: ParquetOptions, strict: bool = True) -> tuple[int, int]:
    """Rewrite an Arrow IPC stream WAL as a Parquet file and publish it atomically.

    Returns (rows, bytes of the published file); (0, 0) and nothing published when the WAL
    holds no complete batch. ``strict=False`` keeps the complete batches of a torn WAL.
    """
    import pyarrow as pa
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    rows = 0
    writer = None
    try:
        with pa.OSFile(str(wal), "r") as src:
            try:
                reader = ipc.open_stream(src)
            except (pa.ArrowInvalid, OSError, EOFError):
                if strict:
                    raise
                return 0, 0
            acc: list = []
            n = 0
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError, EOFError):
                    if strict:
                        raise
                    break  # torn tail of a killed writer: keep what is complete
                if not batch.num_rows:
                    continue
                acc.append(batch)
                n += batch.num_rows
                if n >= popts.row_group_rows:
                    if writer is None:
                        writer = _parquet_writer(tmp, reader.schema, popts)
                    writer.write_table(pa.Table.from_batches(acc), row_group_size=popts.row_group_rows)
                    rows += n
                    acc, n = [], 0
            if acc:
                if writer is None:
                    writer = _parquet_writer(tmp, reader.schema, popts)
                writer.write_table(pa.Table.from_batches(acc), row_group_size=popts.row_group_rows)
                rows += n
        if writer is None:
            return 0, 0
        writer.close()
        writer = None
        fsync_file(tmp)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return rows, final.stat().st_size
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _parquet_writer(tmp: Path, schema: Any, popts: ParquetOptions) -> Any:
    import pyarrow.parquet as pq

    kw: dict[str, Any] = {"compression": popts.compression, "use_dictionary": True, "write_statistics": True}
    if popts.compression_level is not None and popts.compression in ("zstd", "gzip", "brotli"):
        kw["compression_level"] = popts.compression_level
    return pq.ParquetWriter(str(tmp), schema, **kw)


# --------------------------------------------------------------------------- work items

@dataclass
class RowsItem:
    kind: Kind
    venue: str
    day: int
    rows: list
    nbytes: int


@dataclass
class RawItem:
    venue: str
    day: int
    data: bytes
    frames: int
    first_ns: int
    conns: dict  # conn name -> C line JSON (open connections of this venue at chunk start)
    nbytes: int


@dataclass
class Barrier:
    done: threading.Event = field(default_factory=threading.Event)
    fsync: bool = False


class _Stop:
    pass


@dataclass
class WriterStats:
    rows: dict = field(default_factory=dict)          # kind -> rows written (to WAL)
    files: dict = field(default_factory=dict)         # kind -> files published
    bytes: dict = field(default_factory=dict)         # kind -> bytes published
    raw_frames: int = 0
    busy_s: float = 0.0                               # time spent writing


class _Part:
    __slots__ = ("kind", "wal", "tmp", "final", "sink", "ipc", "opened", "rows", "first_ns")

    def __init__(self, kind: Kind, wal: Path, final: Path, first_ns: int) -> None:
        self.kind = kind
        self.wal = wal
        self.tmp = wal.with_name(wal.name[: -len(".wal")] + ".tmp")
        self.final = final
        self.sink: Any = None
        self.ipc: Any = None
        self.opened = time.monotonic()
        self.rows = 0
        self.first_ns = first_ns

    def open(self, wal_compression: str | None) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        self.wal.parent.mkdir(parents=True, exist_ok=True)
        self.sink = pa.OSFile(str(self.wal), "w")
        opts = ipc.IpcWriteOptions(compression=wal_compression)
        self.ipc = ipc.new_stream(self.sink, arrow_schema(self.kind), options=opts)

    def size(self) -> int:
        return self.sink.tell() if self.sink is not None else 0

    def close_wal(self) -> None:
        if self.ipc is not None:
            try:
                self.ipc.close()
            finally:
                self.ipc = None
                self.sink.close()


class _RawFile:
    __slots__ = ("wal", "final", "f", "opened", "size")

    def __init__(self, wal: Path, final: Path) -> None:
        self.wal = wal
        self.final = final
        self.f: Any = None
        self.opened = time.monotonic()
        self.size = 0


# --------------------------------------------------------------------------- the thread

class Writer(threading.Thread):
    def __init__(self, root: Path, writer_id: str, *, roll_interval_s: float, roll_bytes: int,
                 max_pending_bytes: int, fsync: bool, parquet: ParquetOptions,
                 wal_compression: str | None = "lz4", tick_s: float = 0.5) -> None:
        super().__init__(name=f"tickwire-writer-{writer_id}", daemon=True)
        self.root = root
        self.writer_id = writer_id
        self.wal_root = root / WAL_DIR / writer_id
        self.roll_interval_s = roll_interval_s
        self.roll_bytes = roll_bytes
        self.max_pending_bytes = max_pending_bytes
        self.fsync = fsync
        self.popts = parquet
        self.wal_compression = wal_compression
        self.tick_s = tick_s
        self.cond = threading.Condition()
        self.queue: deque = deque()
        self.pending_bytes = 0
        self.peak_pending_bytes = 0
        self.error: RecorderError | None = None
        self.stats = WriterStats()
        self.parts: dict[tuple[str, str, int], _Part] = {}
        self.raws: dict[tuple[str, int], _RawFile] = {}
        self._seq = 0
        self._stopping = False
        self._path: Any = None  # what is being written (for error messages)

    # -- producer side (event loop thread) ---------------------------------------------------
    def submit(self, item: Any, nbytes: int, droppable: bool, block: bool) -> bool:
        """Queue an item. False when it was refused (over the memory bound, or stopped)."""
        with self.cond:
            if self.error is not None or self._stopping:
                return False
            if droppable and self.pending_bytes and self.pending_bytes + nbytes > self.max_pending_bytes:
                if not block:
                    return False
                while (self.pending_bytes and self.pending_bytes + nbytes > self.max_pending_bytes
                       and self.error is None):
                    self.cond.wait(0.5)
                if self.error is not None:
                    return False
            self.queue.append(item)
            self.pending_bytes += nbytes
            if self.pending_bytes > self.peak_pending_bytes:
                self.peak_pending_bytes = self.pending_bytes
            self.cond.notify_all()
            return True

    def barrier(self, fsync: bool = False, timeout: float | None = None) -> bool:
        b = Barrier(fsync=fsync)
        with self.cond:
            if self.error is not None or not self.is_alive():
                return False
            self.queue.append(b)
            self.cond.notify_all()
        return b.done.wait(timeout)

    def stop(self, timeout: float | None = None) -> None:
        with self.cond:
            self._stopping = True
            self.queue.append(_Stop())
            self.cond.notify_all()
        self.join(timeout)

    # -- thread ----------------------------------------------------------------------------
    def run(self) -> None:
        last_roll_check = time.monotonic()
        while True:
            with self.cond:
                if not self.queue:
                    self.cond.wait(self.tick_s)
                items = list(self.queue)
                self.queue.clear()
            if len(items) > 1:
                items = _merge(items)
            stop = False
            for it in items:
                if isinstance(it, _Stop):
                    stop = True
                    continue
                if self.error is not None:
                    self._release(it)
                    continue
                t0 = time.perf_counter()
                try:
                    self._process(it)
                except Exception as e:  # disk full, unwritable, or a bug: stop cleanly
                    self._fail(e)
                finally:
                    self.stats.busy_s += time.perf_counter() - t0
                    self._release(it)
            if self.error is None and items and self.fsync:
                self._guard(self._fsync_open)
            now = time.monotonic()
            if self.error is None and now - last_roll_check >= self.tick_s:
                last_roll_check = now
                self._guard(self._roll_due, now)
            if stop:
                if self.error is None:
                    self._guard(self._publish_all)
                self._close_fds()
                return

    def _guard(self, fn: Any, *a: Any) -> None:
        t0 = time.perf_counter()
        try:
            fn(*a)
        except Exception as e:
            self._fail(e)
        finally:
            self.stats.busy_s += time.perf_counter() - t0

    def _release(self, it: Any) -> None:
        if isinstance(it, Barrier):
            it.done.set()
            return
        n = getattr(it, "nbytes", 0)
        if n:
            with self.cond:
                self.pending_bytes -= n
                self.cond.notify_all()

    def _fail(self, e: BaseException) -> None:
        if not isinstance(e, OSError):
            log.exception("recorder writer failed")
        msg = describe_os_error(e, self._path)
        err = RecorderError(f"recording stopped: {msg}. Files already published are complete; "
                            f"unpublished data is kept under {self.root / WAL_DIR} and recovered by the "
                            f"next recorder started on {self.root} (or `tickwire recover {self.root}`).")
        err.__cause__ = e
        log.debug("%s", err)
        with self.cond:
            self.error = err
            # free the memory of everything queued; producers are told by submit() returning False
            for it in self.queue:
                if isinstance(it, Barrier):
                    it.done.set()
                elif getattr(it, "nbytes", 0):
                    self.pending_bytes -= it.nbytes
            self.queue.clear()
            self.cond.notify_all()
        self._close_fds()

    def _close_fds(self) -> None:
        for p in self.parts.values():
            try:
                p.close_wal()
            except Exception:
                pass
        for r in self.raws.values():
            if r.f is not None:
                try:
                    r.f.close()
                except Exception:
                    pass
                r.f = None

    # -- processing --------------------------------------------------------------------------
    def _process(self, it: Any) -> None:
        if isinstance(it, RowsItem):
            self._rows(it)
        elif isinstance(it, RawItem):
            self._raw(it)
        elif isinstance(it, Barrier):
            if it.fsync:
                self._fsync_open()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _rows(self, it: RowsItem) -> None:
        kind = it.kind
        key = (kind.name, it.venue, it.day)
        part = self.parts.get(key)
        first_ns = it.rows[0][0]
        if part is None:
            rel = Path(kind.name) / f"venue={it.venue}" / f"date={day_str(it.day)}"
            name = f"part-{ns_stamp(first_ns)}-{self.writer_id}-{self._next_seq():04d}.parquet"
            part = _Part(kind, self.wal_root / rel / (name + ".wal"), self.root / rel / name, first_ns)
            self._path = part.wal
            part.open(self.wal_compression)
            self.parts[key] = part
        self._path = part.wal
        batch = to_batch(kind, it.rows)
        part.ipc.write_batch(batch)
        part.rows += batch.num_rows
        s = self.stats.rows
        s[kind.name] = s.get(kind.name, 0) + batch.num_rows
        if part.size() >= self.roll_bytes:
            self._publish(key)

    def _raw(self, it: RawItem) -> None:
        key = (it.venue, it.day)
        rf = self.raws.get(key)
        data = it.data
        if rf is None:
            rel = Path("raw") / f"venue={it.venue}" / f"date={day_str(it.day)}"
            name = f"raw-{ns_stamp(it.first_ns)}-{self.writer_id}-{self._next_seq():04d}{archive.SUFFIX}"
            rf = _RawFile(self.wal_root / rel / name, self.root / rel / name)
            self._path = rf.wal
            rf.wal.parent.mkdir(parents=True, exist_ok=True)
            rf.f = open(rf.wal, "wb", buffering=0)
            self.raws[key] = rf
            import msgspec

            header = msgspec.json.encode({"writer": self.writer_id, "venue": it.venue, "created_ns": time.time_ns(),
                                          "format": archive.FORMAT_VERSION})
            lines = [b"#tickwire-raw %d %s\n" % (archive.FORMAT_VERSION, header)]
            for conn, info in it.conns.items():
                lines.append(b"C %d %s %s\n" % (it.first_ns, conn.encode(), info))
            data = b"".join(lines) + data
        self._path = rf.wal
        block = archive.encode_block(data)
        rf.f.write(block)
        rf.size += len(block)
        self.stats.raw_frames += it.frames
        if rf.size >= self.roll_bytes:
            self._publish_raw(key)

    def _fsync_open(self) -> None:
        for p in self.parts.values():
            if p.sink is not None:
                self._path = p.wal
                p.sink.flush()
                fsync_file(p.wal)
        for r in self.raws.values():
            if r.f is not None:
                self._path = r.wal
                os.fsync(r.f.fileno())

    def _roll_due(self, now: float) -> None:
        limit = self.roll_interval_s
        for key in [k for k, p in self.parts.items() if now - p.opened >= limit]:
            self._publish(key)
        for key in [k for k, r in self.raws.items() if now - r.opened >= limit]:
            self._publish_raw(key)

    def _publish_all(self) -> None:
        for key in list(self.parts):
            self._publish(key)
        for key in list(self.raws):
            self._publish_raw(key)

    def _publish(self, key: tuple[str, str, int]) -> None:
        part = self.parts.pop(key)
        self._path = part.wal
        part.close_wal()
        self._path = part.final
        rows, size = wal_to_parquet(part.wal, part.tmp, part.final, self.popts)
        part.wal.unlink()
        if rows:
            k = part.kind.name
            self.stats.files[k] = self.stats.files.get(k, 0) + 1
            self.stats.bytes[k] = self.stats.bytes.get(k, 0) + size

    def _publish_raw(self, key: tuple[str, int]) -> None:
        rf = self.raws.pop(key)
        self._path = rf.wal
        if rf.f is not None:
            os.fsync(rf.f.fileno())
            rf.f.close()
            rf.f = None
        self._path = rf.final
        rf.final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(rf.wal, rf.final)
        fsync_dir(rf.final.parent)
        self.stats.files["raw"] = self.stats.files.get("raw", 0) + 1
        self.stats.bytes["raw"] = self.stats.bytes.get("raw", 0) + rf.size


MERGE_MAX_ROWS = 512 * 1024
MERGE_MAX_RAW = 8 * 1024 * 1024


def _merge(items: list) -> list:
    """Join queued batches of the same file: when the writer is behind, it converts and
    writes fewer, bigger batches (each pyarrow call costs GIL hand-offs with the loop)."""
    out: list = []
    rows_at: dict = {}
    raw_at: dict = {}
    parts: dict[int, list[bytes]] = {}
    for it in items:
        if isinstance(it, RowsItem):
            key = (it.kind.name, it.venue, it.day)
            m = rows_at.get(key)
            if m is not None and len(m.rows) + len(it.rows) <= MERGE_MAX_ROWS:
                m.rows.extend(it.rows)
                m.nbytes += it.nbytes
                continue
            rows_at[key] = it  # (the loop side keeps no reference to a queued batch)
        elif isinstance(it, RawItem):
            key = (it.venue, it.day)
            m = raw_at.get(key)
            if m is not None and m.nbytes + it.nbytes <= MERGE_MAX_RAW:
                parts[id(m)].append(it.data)
                m.frames += it.frames
                m.nbytes += it.nbytes
                continue
            raw_at[key] = it
            parts[id(it)] = [it.data]
        elif isinstance(it, (Barrier, _Stop)):
            rows_at.clear()   # keep everything queued before a barrier ahead of it
            raw_at.clear()
        out.append(it)
    for it in out:
        p = parts.get(id(it))
        if p is not None and len(p) > 1:
            it.data = b"".join(p)
    return out


# --------------------------------------------------------------------------- locking and recovery

def lock_dir(path: Path) -> Any:
    """Create ``path`` and hold an exclusive lock in it for the life of the returned handle."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover - non-POSIX
        pass
    return fd


def unlock_dir(fd: Any) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _try_lock(path: Path) -> Any:
    """Lock an existing writer dir if its owner is gone; None while it is alive."""
    lock = path / LOCK_NAME
    if not lock.exists():
        # being created right now, or an old crash before the lock existed
        try:
            if time.time() - path.stat().st_mtime < 60:
                return None
        except OSError:
            return None
        return os.open(path, os.O_RDONLY)
    fd = os.open(lock, os.O_RDWR)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover
        pass
    except OSError:
        os.close(fd)
        return None
    return fd


@dataclass
class RecoveryReport:
    parts: int = 0
    rows: int = 0
    raw_files: int = 0
    discarded: int = 0        # files with no complete data (nothing lost: nothing complete in them)
    skipped_live: int = 0     # writer dirs still owned by a running recorder

    def __bool__(self) -> bool:
        return bool(self.parts or self.raw_files or self.discarded)


def recover(root: str | os.PathLike, popts: ParquetOptions | None = None, exclude: str = "") -> RecoveryReport:
    """Publish what killed recorders left under ``root/_wal`` (every complete batch/block).

    Directories of recorders that are still running (their lock is held) are left alone.
    """
    root = Path(root)
    popts = popts or ParquetOptions()
    rep = RecoveryReport()
    wal_root = root / WAL_DIR
    if not wal_root.is_dir():
        return rep
    for wdir in sorted(wal_root.iterdir()):
        if not wdir.is_dir() or wdir.name == exclude:
            continue
        fd = _try_lock(wdir)
        if fd is None:
            rep.skipped_live += 1
            continue
        try:
            for f in sorted(wdir.rglob("*")):
                if not f.is_file() or f.name == LOCK_NAME:
                    continue
                rel = f.relative_to(wdir)
                if f.name.endswith(".parquet.wal"):
                    final = root / rel.parent / f.name[: -len(".wal")]
                    if not final.exists():
                        tmp = f.with_name(f.name[: -len(".wal")] + ".tmp")
                        rows, _ = wal_to_parquet(f, tmp, final, popts, strict=False)
                        if rows:
                            rep.parts += 1
                            rep.rows += rows
                        else:
                            rep.discarded += 1
                    f.unlink()
                elif f.name.endswith(".parquet.tmp"):
                    f.unlink()
                elif f.name.endswith(archive.SUFFIX):
                    final = root / rel
                    n = archive.valid_length(f)
                    if n == 0:
                        f.unlink()
                        rep.discarded += 1
                        continue
                    with open(f, "r+b") as fh:
                        fh.truncate(n)
                        fh.flush()
                        os.fsync(fh.fileno())
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(f, final)
                    fsync_dir(final.parent)
                    rep.raw_files += 1
            _remove_tree(wdir)
        finally:
            unlock_dir(fd)
    return rep


def _remove_tree(path: Path) -> None:
    for p in sorted(path.rglob("*"), key=lambda x: len(x.parts), reverse=True):
        try:
            if p.is_dir():
                p.rmdir()
            else:
                p.unlink()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


def pending_wal(root: str | os.PathLike) -> int:
    """How many unpublished files wait under ``root/_wal`` (of running or killed recorders)."""
    w = Path(root) / WAL_DIR
    if not w.is_dir():
        return 0
    return sum(1 for f in w.rglob("*") if f.is_file() and f.name != LOCK_NAME)


__all__ = ["KINDS", "RecorderError", "Writer", "recover", "wal_to_parquet", "ParquetOptions", "RecoveryReport"]
