"""The recorder's writer thread: Arrow conversion, Parquet parts, merging, raw archive, recovery.

Everything that touches the disk runs here (or on the merge thread), never on the event loop.

Life of the rows of one table, venue and UTC date (a *partition*), default ``publish="flush"``::

    each item handed over by the loop (one stream's events)  -> an Arrow batch (columns.py),
        duplicates the venue re-sent dropped (columns.Dedup)
    each flush (2 s)         -> the batches since the last flush, ordered by recv_ns, as one small
        Parquet part: written under DIR/_wal/<writer>/, fsynced, renamed into
        DIR/<kind>/venue=V/date=D/part-T-<writer>-f<n>.parquet   (queryable from here on)
    each roll (300 s, 128 MB of parts, the end of the UTC day, close)  -> the merge thread
        concatenates the segment's parts into part-T-<writer>-<n>.parquet (zstd, large row
        groups) and swaps it for them atomically (dataset.swap)

``publish="roll"`` keeps the older write-ahead scheme (for checkpointing consumers such as the
bus recorder): batches are appended to an Arrow IPC file under ``_wal`` at each flush, and the
Parquet file appears only at the roll.

Raw archive files are appended block by block under ``_wal`` and renamed into
``DIR/raw/venue=V/date=D/`` when rolled. :func:`recover` publishes what a killed recorder left
under ``_wal`` and merges its flush parts.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickwire.sinks import archive
from tickwire.sinks.dataset import (
    TRASH_GRACE_S, WAL_DIR, DatasetLock, PartWriter, day_str, fsync_dir, fsync_file, merge_parts, new_stage,
    ns_stamp, part_name, partitions, publish, purge_trash, swap, writer_alive,
)
from tickwire.sinks.schema import KINDS, Kind, arrow_schema

log = logging.getLogger("tickwire.record")

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


# --------------------------------------------------------------------------- options

@dataclass
class ParquetOptions:
    compression: str = "zstd"            # merged (rolled) files
    compression_level: int | None = 1
    row_group_rows: int = 128 * 1024
    part_compression: str = "none"       # the parts published at each flush (rewritten at the roll)


def wal_to_parquet(wal: Path, tmp: Path, final: Path, popts: ParquetOptions, strict: bool = True,
                   lock: DatasetLock | None = None) -> tuple[int, int]:
    """Rewrite an Arrow IPC stream WAL (``publish="roll"``) as a Parquet file and publish it.

    Returns (rows, bytes of the published file); (0, 0) and nothing published when the WAL
    holds no complete batch. ``strict=False`` keeps the complete batches of a torn WAL.
    """
    import pyarrow as pa
    import pyarrow.ipc as ipc

    rows = 0
    writer: PartWriter | None = None
    kind: Kind | None = None
    try:
        with pa.OSFile(str(wal), "r") as src:
            try:
                reader = ipc.open_stream(src)
            except (pa.ArrowInvalid, OSError, EOFError):
                if strict:
                    raise
                return 0, 0
            meta = reader.schema.metadata or {}
            kind = KINDS.get(meta.get(b"tickwire.kind", b"").decode())
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
                    writer = writer or _wal_writer(tmp, kind, reader.schema, popts)
                    writer.write(pa.Table.from_batches(acc))
                    rows += n
                    acc, n = [], 0
            if acc:
                writer = writer or _wal_writer(tmp, kind, reader.schema, popts)
                writer.write(pa.Table.from_batches(acc))
                rows += n
        if writer is None:
            return 0, 0
        writer.close()
        writer = None
        fsync_file(tmp)
        if lock is not None:
            publish(lock, tmp, final)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        return rows, final.stat().st_size
    except BaseException:
        if writer is not None:
            writer.abort()
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _wal_writer(tmp: Path, kind: Kind | None, schema: Any, popts: ParquetOptions) -> PartWriter:
    if kind is None:  # a WAL without its kind (never written by this version): plain options
        kind = _kind_of_schema(schema)
    return PartWriter(tmp, kind, schema, popts.compression, popts.compression_level, popts.row_group_rows)


def _kind_of_schema(schema: Any) -> Kind:
    names = schema.names
    for k in KINDS.values():
        if k.column_names == names:
            return k
    raise ValueError(f"write-ahead file of an unknown table ({names[:8]})")


# --------------------------------------------------------------------------- work items

@dataclass
class RowsItem:
    kind: Kind
    venue: str
    day: int
    rows: list          # events (one stream's), or row tuples (status, book_snapshots)
    nbytes: int
    tuples: bool = False
    stream: str = ""


@dataclass
class RawItem:
    venue: str
    day: int
    data: bytes | list      # the lines (a list: joined by the writer thread)
    frames: int
    first_ns: int
    conns: dict  # conn name -> C line JSON (open connections of this venue at chunk start)
    nbytes: int


@dataclass
class Barrier:
    done: threading.Event = field(default_factory=threading.Event)
    fsync: bool = False


class FlushMark:
    """Publish what was handed over so far (``publish="flush"``)."""

    nbytes = 0


class _Stop:
    pass


@dataclass
class WriterStats:
    rows: dict = field(default_factory=dict)          # kind -> rows written (published, or in the WAL)
    files: dict = field(default_factory=dict)         # kind -> files of this recorder in the dataset
    bytes: dict = field(default_factory=dict)         # kind -> bytes of those files
    raw_frames: int = 0
    busy_s: float = 0.0                               # time spent writing
    parts: int = 0                                    # small parts published at flushes
    merges: int = 0                                   # segments merged at rolls
    duplicates: dict = field(default_factory=dict)    # kind -> rows the venue re-sent, not written
    cpu_s: float = 0.0                                # CPU of the writer and merge threads
    phases: dict = field(default_factory=dict)        # phase -> CPU seconds (convert, parts, merge, raw)


class _Seg:
    """One partition's current segment: its pending batches and published parts (``flush``), or
    its write-ahead file (``roll``)."""

    __slots__ = ("kind", "venue", "day", "rel", "pending", "pending_rows", "files", "bytes", "rows", "opened",
                 "first_ns", "wal", "tmp", "final", "sink", "ipc")

    def __init__(self, kind: Kind, venue: str, day: int, first_ns: int) -> None:
        self.kind = kind
        self.venue = venue
        self.day = day
        self.rel = Path(kind.name) / f"venue={venue}" / f"date={day_str(day)}"
        self.pending: list = []
        self.pending_rows = 0
        self.files: list[tuple[Path, int, int]] = []   # (path, rows, bytes)
        self.bytes = 0
        self.rows = 0
        self.opened = time.monotonic()
        self.first_ns = first_ns
        self.wal: Path | None = None
        self.tmp: Path | None = None
        self.final: Path | None = None
        self.sink: Any = None
        self.ipc: Any = None

    def size(self) -> int:
        if self.sink is not None:
            return self.sink.tell()
        return self.bytes

    def close_wal(self) -> None:
        if self.ipc is not None:
            try:
                self.ipc.close()
            finally:
                self.ipc = None
                self.sink.close()
                self.sink = None


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
                 wal_compression: str | None = "lz4", tick_s: float = 0.5, publish: str = "flush") -> None:
        super().__init__(name=f"tickwire-writer-{writer_id}", daemon=True)
        from tickwire.sinks.columns import Dedup

        if publish not in ("flush", "roll"):
            raise ValueError("publish must be 'flush' or 'roll'")
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
        self.live = publish == "flush"
        self.cond = threading.Condition()
        self.queue: deque = deque()
        self.pending_bytes = 0
        self.peak_pending_bytes = 0
        self.error: RecorderError | None = None
        self.stats = WriterStats()
        self.segs: dict[tuple[str, str, int], _Seg] = {}
        self.raws: dict[tuple[str, int], _RawFile] = {}
        self.dedup = Dedup()
        self.lock = DatasetLock(root)
        self._seq = 0
        self._stopping = False
        self._path: Any = None  # what is being written (for error messages)
        self._merges: queue.Queue = queue.Queue()
        self._merger: threading.Thread | None = None
        self._merging = 0
        self._last_swap = 0.0
        self._cpu_lock = threading.Lock()

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
        """Wait until everything submitted before is written (published, with ``publish="flush"``)."""
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
        c0 = time.thread_time()
        try:
            self._run()
        finally:
            self._add_cpu(time.thread_time() - c0)

    def _add_cpu(self, s: float) -> None:
        with self._cpu_lock:
            self.stats.cpu_s += s

    def _run(self) -> None:
        last_tick = time.monotonic()
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
                c0 = time.thread_time()
                try:
                    self._process(it)
                except Exception as e:  # disk full, unwritable, or a bug: stop cleanly
                    self._fail(e)
                finally:
                    self.stats.busy_s += time.perf_counter() - t0
                    ph = self.stats.phases
                    name = _PHASE.get(type(it), "other")
                    ph[name] = ph.get(name, 0.0) + time.thread_time() - c0
                    self._release(it)
            if self.error is None and items and self.fsync:
                self._guard(self._fsync_open)
            now = time.monotonic()
            if self.error is None and now - last_tick >= self.tick_s:
                last_tick = now
                self._guard(self._roll_due, now)
            if stop:
                if self.error is None:
                    self._guard(self._publish_all)
                self._finish_merges()
                self._close_fds()
                self.lock.close()
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
        if self.error is not None:
            return
        if not isinstance(e, OSError):
            log.error("recorder writer failed", exc_info=e)
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
        for p in self.segs.values():
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
        elif isinstance(it, FlushMark):
            if self.live:
                self._write_parts()
        elif isinstance(it, Barrier):
            if self.live:
                self._write_parts()
            if it.fsync:
                self._fsync_open()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _seg(self, kind: Kind, venue: str, day: int, first_ns: int) -> _Seg:
        key = (kind.name, venue, day)
        seg = self.segs.get(key)
        if seg is None:
            seg = self.segs[key] = _Seg(kind, venue, day, first_ns)
            if not self.live:
                name = part_name(first_ns, self.writer_id, self._next_seq())
                seg.wal = self.wal_root / seg.rel / (name + ".wal")
                seg.tmp = self.wal_root / seg.rel / (name + ".tmp")
                seg.final = self.root / seg.rel / name
                self._path = seg.wal
                seg.wal.parent.mkdir(parents=True, exist_ok=True)
                self._open_wal(seg)
        return seg

    def _open_wal(self, seg: _Seg) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        seg.sink = pa.OSFile(str(seg.wal), "w")
        opts = ipc.IpcWriteOptions(compression=self.wal_compression)
        seg.ipc = ipc.new_stream(seg.sink, arrow_schema(seg.kind), options=opts)

    def _rows(self, it: RowsItem) -> None:
        from tickwire.sinks.columns import events_batch, plain, tuples_batch

        kind = it.kind
        if it.tuples:
            batch = tuples_batch(kind, it.rows)
        else:
            batch = events_batch(kind, it.rows, self.dedup)
            self._sync_dups()
        if batch is None or not batch.num_rows:
            return
        r0 = it.rows[0]
        first_ns = r0[0] if isinstance(r0, tuple) else r0.recv_ns
        seg = self._seg(kind, it.venue, it.day, first_ns)
        if self.live:
            seg.pending.append(batch)
            seg.pending_rows += batch.num_rows
            return
        import pyarrow as pa

        self._path = seg.wal
        for b in plain(pa.Table.from_batches([batch]), kind).to_batches():
            seg.ipc.write_batch(b)
        seg.rows += batch.num_rows
        s = self.stats.rows
        s[kind.name] = s.get(kind.name, 0) + batch.num_rows
        if seg.size() >= self.roll_bytes:
            self._publish_wal((kind.name, it.venue, it.day))

    def _sync_dups(self) -> None:
        d = self.dedup.dropped
        if d:
            self.stats.duplicates = dict(d)

    def _write_parts(self) -> None:
        for key, seg in list(self.segs.items()):
            if seg.pending:
                self._write_part(seg)
                if seg.bytes >= self.roll_bytes:
                    self._roll_seg(key)

    def _write_part(self, seg: _Seg) -> None:
        from tickwire.sinks.columns import batch_schema, concat_sorted

        kind = seg.kind
        table = concat_sorted(kind, seg.pending)
        seg.pending = []
        seg.pending_rows = 0
        first_ns = int(table.column(0)[0].as_py())
        # A part of at least a row group is written as a final file at once (zstd, statistics) and
        # never rewritten: merging exists to avoid many small files; rewriting big ones would double
        # the cost of the busiest partitions for nothing. Smaller parts are written cheaply
        # (uncompressed) and merged at the roll.
        big = table.num_rows >= self.popts.row_group_rows
        name = part_name(first_ns, self.writer_id, self._next_seq(), flush=not big)
        tmp = self.wal_root / seg.rel / (name + ".tmp")
        final = self.root / seg.rel / name
        self._path = tmp
        schema = table.schema if kind.name == "book_snapshots" else batch_schema(kind)
        if big:
            w = PartWriter(tmp, kind, schema, self.popts.compression, self.popts.compression_level,
                           self.popts.row_group_rows)
        else:
            w = PartWriter(tmp, kind, schema, self.popts.part_compression, None, self.popts.row_group_rows,
                           part=True)
        try:
            w.write(table)
            w.close()
        except BaseException:
            w.abort()
            raise
        fsync_file(tmp)
        self._path = final
        publish(self.lock, tmp, final)
        size = final.stat().st_size
        if not big:
            if not seg.files:
                seg.opened = time.monotonic()
                seg.first_ns = first_ns
            seg.files.append((final, table.num_rows, size))
            seg.bytes += size
            seg.rows += table.num_rows
        st = self.stats
        k = kind.name
        st.rows[k] = st.rows.get(k, 0) + table.num_rows
        st.files[k] = st.files.get(k, 0) + 1
        st.bytes[k] = st.bytes.get(k, 0) + size
        st.parts += 1

    def _raw(self, it: RawItem) -> None:
        key = (it.venue, it.day)
        rf = self.raws.get(key)
        data = it.data if isinstance(it.data, bytes) else b"".join(it.data)
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
        for p in self.segs.values():
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
        for key in [k for k, p in self.segs.items() if now - p.opened >= limit]:
            if self.live:
                self._roll_seg(key)
            else:
                self._publish_wal(key)
        for key in [k for k, r in self.raws.items() if now - r.opened >= limit]:
            self._publish_raw(key)
        self._maybe_purge()

    def _maybe_purge(self) -> None:
        if self._last_swap and time.monotonic() - self._last_swap >= TRASH_GRACE_S and not self._merging:
            self._last_swap = 0.0
            purge_trash(self.root)

    def _publish_all(self) -> None:
        if self.live:
            self._write_parts()
            for key in list(self.segs):
                self._roll_seg(key)
        else:
            for key in list(self.segs):
                self._publish_wal(key)
        for key in list(self.raws):
            self._publish_raw(key)

    # -- rolling: merge a segment's parts (publish="flush") --------------------------------------
    def _roll_seg(self, key: tuple[str, str, int]) -> None:
        seg = self.segs.pop(key)
        if seg.pending:
            self._write_part(seg)
        if not seg.files:
            return  # (a lone part is rewritten too: parts are written uncompressed)
        name = part_name(seg.first_ns, self.writer_id, self._next_seq())
        self._start_merger()
        with self._cpu_lock:
            self._merging += 1
        self._merges.put((seg.kind, seg.rel, [f for f, _, _ in seg.files], sum(r for _, r, _ in seg.files),
                          sum(b for _, _, b in seg.files), name))

    def _start_merger(self) -> None:
        if self._merger is None:
            self._merger = threading.Thread(target=self._merge_loop, name=f"tickwire-merge-{self.writer_id}",
                                            daemon=True)
            self._merger.start()

    def _merge_loop(self) -> None:
        c0 = time.thread_time()
        try:
            while True:
                job = self._merges.get()
                if job is None:
                    return
                try:
                    if self.error is None:
                        self._merge_job(*job)
                except Exception as e:
                    self._fail(e)
                finally:
                    with self._cpu_lock:
                        self._merging -= 1
        finally:
            self._add_cpu(time.thread_time() - c0)

    def _merge_job(self, kind: Kind, rel: Path, files: list[Path], rows: int, nbytes: int, name: str) -> None:
        c0 = time.thread_time()
        try:
            self._merge_job1(kind, rel, files, rows, nbytes, name)
        finally:
            with self._cpu_lock:
                ph = self.stats.phases
                ph["merge"] = ph.get("merge", 0.0) + time.thread_time() - c0

    def _merge_job1(self, kind: Kind, rel: Path, files: list[Path], rows: int, nbytes: int, name: str) -> None:
        stage = new_stage(self.root)
        try:
            n = merge_parts(kind, files, stage / name, self.popts.compression, self.popts.compression_level,
                            self.popts.row_group_rows)
            if n != rows:
                raise RuntimeError(f"merge of {rel}: {n} rows read back, {rows} written")
            size = (stage / name).stat().st_size
            swap(self.root, self.lock, self.root / rel, stage, [f.name for f in files])
        except BaseException:
            import shutil

            shutil.rmtree(stage, ignore_errors=True)
            raise
        self._last_swap = time.monotonic()
        with self._cpu_lock:
            st = self.stats
            k = kind.name
            st.files[k] = st.files.get(k, 0) - len(files) + 1
            st.bytes[k] = st.bytes.get(k, 0) - nbytes + size
            st.merges += 1

    def _finish_merges(self) -> None:
        if self._merger is not None:
            self._merges.put(None)
            self._merger.join()
            self._merger = None
        if self._last_swap:
            wait = TRASH_GRACE_S - (time.monotonic() - self._last_swap)
            if wait > 0:
                time.sleep(wait)  # a reader that listed an old partition version may still read it
            self._last_swap = 0.0
        try:
            purge_trash(self.root)
        except OSError:
            pass

    # -- rolling: write-ahead files (publish="roll") ---------------------------------------------
    def _publish_wal(self, key: tuple[str, str, int]) -> None:
        seg = self.segs.pop(key)
        self._path = seg.wal
        seg.close_wal()
        assert seg.wal is not None and seg.tmp is not None and seg.final is not None
        self._path = seg.final
        rows, size = wal_to_parquet(seg.wal, seg.tmp, seg.final, self.popts, lock=self.lock)
        seg.wal.unlink()
        if rows:
            k = seg.kind.name
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
        publish(self.lock, rf.wal, rf.final)
        self.stats.files["raw"] = self.stats.files.get("raw", 0) + 1
        self.stats.bytes["raw"] = self.stats.bytes.get("raw", 0) + rf.size


_PHASE = {RowsItem: "convert", RawItem: "raw", FlushMark: "parts", Barrier: "parts"}

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
            key = (it.kind.name, it.venue, it.day, it.stream, it.tuples)
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
                if isinstance(it.data, list):
                    parts[id(m)].extend(it.data)
                else:
                    parts[id(m)].append(it.data)
                m.frames += it.frames
                m.nbytes += it.nbytes
                continue
            raw_at[key] = it
            parts[id(it)] = list(it.data) if isinstance(it.data, list) else [it.data]
        elif isinstance(it, (Barrier, _Stop, FlushMark)):
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
    parts: int = 0            # Parquet files published (write-ahead files) or merged (flush parts)
    rows: int = 0
    raw_files: int = 0
    discarded: int = 0        # files with no complete data (nothing lost: nothing complete in them)
    skipped_live: int = 0     # writer dirs still owned by a running recorder

    def __bool__(self) -> bool:
        return bool(self.parts or self.raw_files or self.discarded)


def recover(root: str | os.PathLike, popts: ParquetOptions | None = None, exclude: str = "") -> RecoveryReport:
    """Finish what killed recorders left: publish their write-ahead files under ``root/_wal``
    (every complete batch/block) and merge the parts they published at flushes.

    Directories of recorders that are still running (their lock is held) are left alone.
    """
    root = Path(root)
    popts = popts or ParquetOptions()
    rep = RecoveryReport()
    wal_root = root / WAL_DIR
    if not wal_root.is_dir():
        return rep
    lock: DatasetLock | None = None
    try:
        for wdir in sorted(wal_root.iterdir()):
            if not wdir.is_dir() or wdir.name == exclude:
                continue
            fd = _try_lock(wdir)
            if fd is None:
                rep.skipped_live += 1
                continue
            lock = lock or DatasetLock(root)
            try:
                for f in sorted(wdir.rglob("*")):
                    if not f.is_file() or f.name == LOCK_NAME:
                        continue
                    rel = f.relative_to(wdir)
                    if f.name.endswith(".parquet.wal"):
                        final = root / rel.parent / f.name[: -len(".wal")]
                        if not final.exists():
                            tmp = f.with_name(f.name[: -len(".wal")] + ".tmp")
                            rows, _ = wal_to_parquet(f, tmp, final, popts, strict=False, lock=lock)
                            if rows:
                                rep.parts += 1
                                rep.rows += rows
                            else:
                                rep.discarded += 1
                        f.unlink()
                    elif f.name.endswith(".tmp"):
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
                        publish(lock, f, final)
                        rep.raw_files += 1
                _merge_flush_parts(root, lock, wdir.name, popts, rep)
                _remove_tree(wdir)
            finally:
                unlock_dir(fd)
    finally:
        if lock is not None:
            lock.close()
    wait = purge_trash(root)
    if wait:
        time.sleep(wait)
        purge_trash(root)
    return rep


def _merge_flush_parts(root: Path, lock: DatasetLock, writer: str, popts: ParquetOptions,
                       rep: RecoveryReport) -> None:
    """Merge the flush parts a dead recorder published (its unfinished segments), per partition."""
    import shutil

    from tickwire.sinks.dataset import SwapConflict

    for kind in KINDS.values():
        for p in partitions(root, kind.name):
            files = [f for f in p.files if f.source == writer and f.flush]
            if not files:
                continue
            stage = new_stage(root)
            n = max((f.n for f in p.files if f.source == writer), default=0) + 1
            name = f"part-{files[0].stamp}-{writer}-{n:04d}.parquet"
            try:
                rows = merge_parts(kind, [f.path for f in files], stage / name, popts.compression,
                                   popts.compression_level, popts.row_group_rows)
                swap(root, lock, p.path, stage, [f.name for f in files])
            except SwapConflict:
                shutil.rmtree(stage, ignore_errors=True)
                continue
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)
                raise
            rep.parts += 1
            rep.rows += rows


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


def pending_wal(root: str | os.PathLike, stopped_only: bool = False) -> int:
    """How many unpublished files wait under ``root/_wal``: of running or stopped recorders, or
    (``stopped_only``) only of recorders that are not running (killed: ``recover`` publishes
    them). Running recorders add and remove files meanwhile: what vanishes is not counted."""
    w = Path(root) / WAL_DIR
    try:
        entries = list(os.scandir(w))
    except OSError:
        return 0
    n = 0
    for e in entries:
        if not e.is_dir():
            n += e.name != LOCK_NAME and not e.name.endswith(".tmp")
            continue
        if stopped_only and writer_alive(root, e.name):
            continue
        for _, _, files in os.walk(e.path):  # (os.walk skips directories that vanish)
            n += sum(1 for f in files if f != LOCK_NAME and not f.endswith(".tmp"))
    return n


__all__ = ["KINDS", "RecorderError", "Writer", "recover", "wal_to_parquet", "ParquetOptions", "RecoveryReport",
           "WAL_DIR", "LOCK_NAME", "ns_stamp", "day_str", "fsync_dir", "fsync_file"]
