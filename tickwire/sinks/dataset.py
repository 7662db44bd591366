"""The dataset on disk: file names and sources, atomic publishing and partition swaps, Parquet
encodings, duplicate rules, and ``compact``.

Layout (``docs/recording.md``)::

    DIR/<kind>/venue=<v>/date=<yyyy-mm-dd>/part-<yyyymmddThhmmssZ>-<source>-[f]<n>.parquet

``<source>`` is the id of the recorder that wrote the file (16 hex digits) or, for the output
of :func:`compact`, ``c`` + 16 hex digits. ``f<n>`` marks a part published at a flush (a few
seconds of data), ``<n>`` a merged one. One source never writes two rows with the same
identity, so a partition whose files all come from one source needs no deduplication at query
time; any other partition is deduplicated by the query views and by :func:`compact`.

Publishing is atomic for readers that list the folder (DuckDB, polars, pandas, pyarrow):

* a new file is written elsewhere, fsynced, and renamed into its partition directory;
* replacing files by their merge (the recorder's roll, :func:`compact`) builds the new
  partition directory next to the old one (hard links to every file that stays, plus the
  merged files) and exchanges the two directories in one ``renameat2(RENAME_EXCHANGE)``: a
  reader lists either every old file or every new one. The old directory is kept under
  ``DIR/_trash`` for a grace period (a reader that listed it may still be reading it), then
  removed. Where the exchange is not supported (not Linux, some file systems), the merged file
  is renamed in and the inputs are unlinked right after (a reader listing in between sees both;
  the query views remove the duplicates).

Writers serialise with one lock file, ``DIR/_tickwire.lock``: a rename into a partition takes
it shared, a directory exchange exclusive (a few milliseconds).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tickwire.sinks.schema import I64, JSON, KINDS, STR, STRS, Kind

LOCK_FILE = "_tickwire.lock"
COMPACT_LOCK = "_compact.lock"
TRASH_DIR = "_trash"
WAL_DIR = "_wal"
TRASH_GRACE_S = 0.25   # a reader that opened an old partition directory has finished listing it
COMPACTION_PREFIX = "c"

_NAME = re.compile(r"^part-(\d{8}T\d{6}Z)-([0-9a-zA-Z]+)-(f?)(\d+)\.parquet$")


# --------------------------------------------------------------------------- names and sources

def ns_stamp(ns: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ns / 1e9))


def day_str(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


def part_name(first_ns: int, source: str, n: int, flush: bool = False) -> str:
    return f"part-{ns_stamp(first_ns)}-{source}-{'f' if flush else ''}{n:04d}.parquet"


@dataclass(frozen=True)
class FileInfo:
    path: Path
    source: str          # writer id, "c…" (a compaction), or the file name (not written by tickwire)
    flush: bool          # a part published at a flush (not merged yet)
    stamp: str = ""
    n: int = 0

    @property
    def name(self) -> str:
        return self.path.name


def file_info(path: Path) -> FileInfo:
    m = _NAME.match(path.name)
    if m is None:
        return FileInfo(path, path.name, False)
    return FileInfo(path, m.group(2), bool(m.group(3)), m.group(1), int(m.group(4)))


@dataclass
class Partition:
    kind: str
    venue: str
    date: str
    path: Path
    files: list[FileInfo] = field(default_factory=list)

    @property
    def sources(self) -> set[str]:
        return {f.source for f in self.files}

    @property
    def clean(self) -> bool:
        """True when no two rows can share an identity (one source wrote every file)."""
        return len(self.sources) <= 1


def _is_data(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def partitions(root: str | os.PathLike, kind: str) -> list[Partition]:
    """Every ``<kind>/venue=V/date=D`` directory under ``root`` that holds Parquet files."""
    base = Path(root) / kind
    out: list[Partition] = []
    try:
        venues = sorted(os.scandir(base), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return out
    for v in venues:
        if not v.is_dir() or not v.name.startswith("venue="):
            continue
        try:
            dates = sorted(os.scandir(v.path), key=lambda e: e.name)
        except OSError:
            continue
        for d in dates:
            if not d.is_dir() or not d.name.startswith("date="):
                continue
            try:
                names = sorted(n for n in os.listdir(d.path) if _is_data(n))
            except OSError:
                continue
            if names:
                p = Path(d.path)
                out.append(Partition(kind, v.name[6:], d.name[5:], p, [file_info(p / n) for n in names]))
    return out


# --------------------------------------------------------------------------- locks

class DatasetLock:
    """``DIR/_tickwire.lock``: renames into partitions take it shared, directory swaps exclusive."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.path = Path(root) / LOCK_FILE
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._mutex = threading.Lock()  # one holder per handle (flock is per open file)

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._mutex:
            _flock(self.fd, exclusive=False)
            try:
                yield
            finally:
                _unflock(self.fd)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._mutex:
            _flock(self.fd, exclusive=True)
            try:
                yield
            finally:
                _unflock(self.fd)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def _flock(fd: int, exclusive: bool) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)


def _unflock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def writer_alive(root: str | os.PathLike, writer: str) -> bool:
    """True while the recorder ``writer`` runs (it holds ``DIR/_wal/<writer>/LOCK``)."""
    lock = Path(root) / WAL_DIR / writer / "LOCK"
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def live_writers(root: str | os.PathLike) -> set[str]:
    w = Path(root) / WAL_DIR
    if not w.is_dir():
        return set()
    return {d.name for d in w.iterdir() if d.is_dir() and writer_alive(root, d.name)}


# --------------------------------------------------------------------------- files

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


def publish(lock: DatasetLock, tmp: Path, final: Path) -> None:
    """Rename a complete (fsynced) file into the dataset."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with lock.shared():
        os.replace(tmp, final)
    fsync_dir(final.parent)


_RENAME_EXCHANGE = 2
_exchange_ok: bool | None = None


def _renameat2() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        f = libc.renameat2
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    f.restype = ctypes.c_int
    return f


_r2: Any = None


def exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    global _exchange_ok, _r2
    if _exchange_ok is False:
        return False
    if _r2 is None:
        _r2 = _renameat2()
        if _r2 is None:
            _exchange_ok = False
            return False
    AT_FDCWD = -100
    r = _r2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if r == 0:
        _exchange_ok = True
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM, errno.EXDEV):
        _exchange_ok = False
        return False
    raise OSError(err, os.strerror(err), str(b))


def new_stage(root: str | os.PathLike) -> Path:
    """An empty directory under ``DIR/_trash`` to build a partition's next version in."""
    p = Path(root) / TRASH_DIR / f"stage-{uuid.uuid4().hex}"
    p.mkdir(parents=True)
    return p


class SwapConflict(RuntimeError):
    """An input of a merge disappeared meanwhile (another compaction took it): nothing changed."""


def swap(root: str | os.PathLike, lock: DatasetLock, pdir: Path, stage: Path, inputs: Iterable[str],
         fsync: bool = True) -> None:
    """Replace the files ``inputs`` of partition directory ``pdir`` by the files in ``stage``,
    atomically for readers (see the module docstring). ``stage`` is consumed."""
    drop = set(inputs)
    new = [p.name for p in stage.iterdir()]
    if fsync:
        for n in new:
            fsync_file(stage / n)
    with lock.exclusive():
        names = os.listdir(pdir)
        missing = drop - set(names)
        if missing:
            raise SwapConflict(f"{pdir}: {len(missing)} input files gone (another compaction?)")
        clash = set(new) & (set(names) - drop)
        if clash:
            raise SwapConflict(f"{pdir}: {sorted(clash)[0]} exists")
        for n in names:
            if n not in drop:
                os.link(pdir / n, stage / n)
        if fsync:
            fsync_dir(stage)
        if exchange(stage, pdir):
            # stage now holds the old directory: readers that listed it may still open its files,
            # so it stays (renamed old-*) for the grace period of purge_trash()
            old = stage.with_name("old-" + uuid.uuid4().hex)
            os.rename(stage, old)
            os.utime(old)
            fsync_dir(pdir.parent)
            return
        for n in new:
            os.replace(stage / n, pdir / n)
        for n in drop:
            try:
                os.unlink(pdir / n)
            except FileNotFoundError:
                pass
    fsync_dir(pdir)
    shutil.rmtree(stage, ignore_errors=True)


def purge_trash(root: str | os.PathLike, grace_s: float = TRASH_GRACE_S) -> float:
    """Remove old partition versions older than ``grace_s``; returns the seconds until the
    youngest remaining one may go (0 when none is left)."""
    t = Path(root) / TRASH_DIR
    if not t.is_dir():
        return 0.0
    now = time.time()
    wait = 0.0
    for d in t.iterdir():
        if d.name.startswith("stage-") or d.name.startswith("old-"):
            try:
                age = now - d.stat().st_mtime
            except OSError:
                continue
            if d.name.startswith("stage-") and age < 3600:
                continue  # being built right now (an abandoned one goes after an hour)
            if age >= grace_s:
                shutil.rmtree(d, ignore_errors=True)
            else:
                wait = max(wait, grace_s - age)
    try:
        t.rmdir()
    except OSError:
        pass
    return wait


# --------------------------------------------------------------------------- Parquet encodings

_NO_DICT = {"trade_id", "tx_hash", "raw", "data", "detail", "message", "order_id", "client_order_id", "url"}


def write_kwargs(kind: Kind, compression: str, level: int | None, part: bool = False) -> dict[str, Any]:
    """Parquet writer options of a table: ints delta-encoded (times and sequences shrink to a
    byte or two), low-cardinality and repeated strings dictionary-encoded, ids and JSON plain,
    statistics where they prune (times, sequences, market/symbol/stream).

    ``part=True``: the options of the parts published at each flush, written once and read
    once more at the roll: no compression, dictionaries only where the batches already have
    them (no hashing), no statistics."""
    ints = [c.name for c in kind.columns if c.type == I64]
    kw: dict[str, Any] = {"compression": compression, "column_encoding": {c: "DELTA_BINARY_PACKED" for c in ints}}
    if part and kind.name != "book_snapshots":
        from tickwire.sinks.columns import is_dict_column

        kw["use_dictionary"] = [c.name for c in kind.columns if is_dict_column(kind, c.name)]
        kw["write_statistics"] = False
        kw["store_schema"] = False
        return kw
    if kind.name == "book_snapshots":
        kw["use_dictionary"] = [c.name for c in kind.columns if c.type == STR]
        kw["write_statistics"] = ints + ["market", "symbol", "stream"]
    else:
        kw["use_dictionary"] = [c.name for c in kind.columns if c.type == STR and c.name not in _NO_DICT]
        kw["write_statistics"] = ints + ["market", "symbol", "stream"]
        kw["store_schema"] = False  # dictionary-built columns read back as plain strings
    if level is not None and compression in ("zstd", "gzip", "brotli"):
        kw["compression_level"] = level
    return kw


def kind_metadata(kind: Kind) -> dict[str, str]:
    from tickwire.sinks.schema import SCHEMA_VERSION

    return {"tickwire.kind": kind.name, "tickwire.schema_version": SCHEMA_VERSION}


class PartWriter:
    """One Parquet file of a table being written (row groups appended), then closed."""

    def __init__(self, path: Path, kind: Kind, schema: Any, compression: str, level: int | None,
                 row_group_rows: int, part: bool = False) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.kind = kind
        self.rows = 0
        self.row_group_rows = row_group_rows
        kw = write_kwargs(kind, compression, level, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        if kw.get("store_schema") is False:
            self.w = pq.ParquetWriter(str(path), schema, **kw)
            self.w.add_key_value_metadata(kind_metadata(kind))
        else:
            self.w = pq.ParquetWriter(str(path), schema, **kw)

    def write(self, table: Any) -> None:
        if table.num_rows:
            self.w.write_table(table, row_group_size=self.row_group_rows)
            self.rows += table.num_rows

    def close(self) -> None:
        self.w.close()

    def abort(self) -> None:
        try:
            self.w.close()
        except Exception:
            pass
        try:
            self.path.unlink()
        except OSError:
            pass


def dict_columns(kind: Kind) -> list[str]:
    from tickwire.sinks.columns import is_dict_column

    return [c.name for c in kind.columns if is_dict_column(kind, c.name)]


def read_part(path: Path, kind: Kind) -> Any:
    """A part written by a recorder, as the batches were (dictionary columns kept)."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(str(path), read_dictionary=dict_columns(kind) or None)
    try:
        return f.read(use_threads=False)
    finally:
        f.close()


def merge_parts(kind: Kind, paths: list[Path], out: Path, compression: str, level: int | None,
                row_group_rows: int) -> int:
    """Concatenate parts of one writer (already in order, no duplicates) into ``out``; rows."""
    from tickwire.sinks.columns import batch_schema

    schema = batch_schema(kind) if kind.name != "book_snapshots" else None
    w: PartWriter | None = None
    acc: list = []
    n = 0
    try:
        for p in paths:
            t = read_part(p, kind)
            if schema is not None:
                t = _conform(t, schema)
            elif w is None:
                schema = t.schema
            acc.append(t)
            n += t.num_rows
            if n >= row_group_rows:
                w = w or PartWriter(out, kind, schema, compression, level, row_group_rows)
                w.write(_combine(acc))
                acc, n = [], 0
        if acc:
            w = w or PartWriter(out, kind, schema, compression, level, row_group_rows)
            w.write(_combine(acc))
        if w is None:
            return 0
        w.close()
        return w.rows
    except BaseException:
        if w is not None:
            w.abort()
        raise


def _combine(tables: list) -> Any:
    import pyarrow as pa

    t = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return t.unify_dictionaries().combine_chunks()


def _conform(t: Any, schema: Any) -> Any:
    """A part read back -> the batch schema (dictionary columns; missing columns null)."""
    import pyarrow as pa

    if t.schema.equals(schema, check_metadata=False):
        return t
    cols = []
    for f in schema:
        i = t.schema.get_field_index(f.name)
        if i < 0:
            cols.append(pa.nulls(t.num_rows, f.type))
        else:
            c = t.column(i)
            cols.append(c if c.type == f.type else c.cast(f.type))
    return pa.table(cols, schema=schema)


# --------------------------------------------------------------------------- duplicates

def identity_sql(kind: str) -> str:
    """The PARTITION BY list (after venue and date) that identifies one row of ``kind``:
    two rows with the same values are the same venue data, however often recorded."""
    if kind == "trades":
        return ("market, symbol, trade_id, CASE WHEN coalesce(trade_id, '') = '' THEN "
                "struct_pack(recv_ns, exch_ns, stream, price, size, side, seq) END")
    if kind == "fills":
        return ("market, symbol, order_id, trade_id, CASE WHEN coalesce(trade_id, '') = '' THEN "
                "struct_pack(recv_ns, exch_ns, stream, price, size, side) END")
    # (market and symbol follow from the stream: in the key, a filter on them is applied before the window)
    if kind == "book_changes":
        return "market, symbol, stream, seq, snapshot, exch_ns, side, price, size, CASE WHEN seq = 0 THEN recv_ns END"
    if kind == "book_snapshots":
        return "market, symbol, stream, recv_ns, seq"
    k = KINDS[kind]
    cols = [c.name for c in k.columns if c.name != "recv_ns"]
    if kind == "status":
        cols = ["recv_ns"] + cols
    return ", ".join(cols)


def dedup_clause(kind: str, hive: bool = True) -> str:
    """``QUALIFY`` keeping the first received row of each identity."""
    part = ("venue, date, " if hive else "") + identity_sql(kind)
    return f"QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY recv_ns) = 1"


IDENTITY_DOC: dict[str, str] = {
    "trades": "venue, market, symbol, trade_id (no trade id: the whole row, receipt time included)",
    "fills": "venue, market, symbol, order_id, trade_id",
    "book_changes": "venue, stream, seq, snapshot, exch_ns and the level (side, price, size); seq 0: the whole "
                    "row, receipt time included",
    "book_snapshots": "venue, stream, recv_ns, seq",
    "status": "the whole row",
}


# --------------------------------------------------------------------------- compaction

@dataclass
class CompactReport:
    partitions: int = 0          # partitions rewritten
    files_in: int = 0
    files_out: int = 0
    rows_in: int = 0
    rows_out: int = 0            # rows_in - rows_out duplicates removed
    skipped_live: int = 0        # files left to running recorders
    conflicts: int = 0           # partitions changed by someone else meanwhile (left as they were)
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    details: list = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return self.rows_in - self.rows_out


class CompactError(RuntimeError):
    pass


def compact_plan(root: str | os.PathLike, before: str | None = None, kinds: Iterable[str] | None = None,
                 min_files: int = 2) -> tuple[list[tuple[Partition, list[FileInfo]]], int]:
    """Partitions to rewrite and their input files; and how many files running recorders keep."""
    live = live_writers(root)
    plan = []
    skipped = 0
    for kind in (list(kinds) if kinds else list(KINDS)):
        for p in partitions(root, kind):
            if before is not None and p.date >= before:
                continue
            inputs = [f for f in p.files if f.source not in live]
            skipped += len(p.files) - len(inputs)
            if len(inputs) >= min_files or (inputs and len({f.source for f in inputs}) > 1):
                plan.append((p, inputs))
    return plan, skipped


def compact(root: str | os.PathLike, before: str | None = None, kinds: Iterable[str] | None = None,
            progress: Callable[[int, int, str, int], None] | None = None, compression: str = "zstd",
            compression_level: int | None = 3, row_group_rows: int = 128 * 1024,
            max_rows_per_file: int = 64 * 1024 * 1024) -> CompactReport:
    """Merge each partition's files into one (or a few, ``max_rows_per_file``), duplicates
    removed, rows ordered by receipt time; atomically for readers.

    ``before`` (``YYYY-MM-DD``): only partitions of earlier dates. Files of running recorders
    are left alone (they merge their own at their roll). ``progress(done, total, label, rows)``
    is called per partition. Raises :class:`CompactError` when another compaction is running.
    """
    import duckdb

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no dataset at {root}")
    t0 = time.monotonic()
    cl = os.open(root / COMPACT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(cl, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover
            pass
        except OSError:
            raise CompactError(f"another compaction of {root} is running") from None
        rep = CompactReport()
        purge_trash(root)
        plan, rep.skipped_live = compact_plan(root, before, kinds)
        lock = DatasetLock(root)
        tmpdir = root / TRASH_DIR / f"duckdb-{uuid.uuid4().hex}"
        con = duckdb.connect()
        try:
            con.execute(f"SET temp_directory = '{tmpdir}'")
            con.execute("SET preserve_insertion_order = false")
            total = len(plan)
            if progress is not None:
                progress(0, total, "", 0)
            for i, (p, inputs) in enumerate(plan):
                label = f"{p.kind}/venue={p.venue}/date={p.date}"
                size_in = sum(_size(f.path) for f in inputs)
                try:
                    rin, rout, nout, bout = _compact_partition(con, root, lock, p, inputs, compression,
                                                               compression_level, row_group_rows, max_rows_per_file)
                except SwapConflict:
                    rep.conflicts += 1
                    rin = 0
                else:
                    rep.partitions += 1
                    rep.files_in += len(inputs)
                    rep.files_out += nout
                    rep.rows_in += rin
                    rep.rows_out += rout
                    rep.bytes_in += size_in
                    rep.bytes_out += bout
                    rep.details.append({"partition": label, "files_in": len(inputs), "files_out": nout,
                                        "rows_in": rin, "rows_out": rout})
                if progress is not None:
                    progress(i + 1, total, label, rin)
        finally:
            con.close()
            lock.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
        wait = purge_trash(root)
        if wait:
            time.sleep(wait)
            purge_trash(root)
        rep.seconds = time.monotonic() - t0
        return rep
    finally:
        os.close(cl)


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _compact_partition(con: Any, root: Path, lock: DatasetLock, p: Partition, inputs: list[FileInfo],
                       compression: str, level: int | None, row_group_rows: int,
                       max_rows_per_file: int) -> tuple[int, int, int, int]:
    import pyarrow as pa

    from tickwire.sinks.schema import arrow_schema

    kind = KINDS[p.kind]
    schema = arrow_schema(kind)
    files = "[" + ", ".join(_sql_str(str(f.path)) for f in inputs) + "]"
    src = f"read_parquet({files}, union_by_name = true, filename = true, file_row_number = true)"
    rows_in = con.execute(f"SELECT count(*) FROM read_parquet({files}, union_by_name = true)").fetchone()[0]
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({files}, union_by_name = true)").fetchall()}
    sel = ", ".join(c.name if c.name in have else f"CAST(NULL AS {_duck(c.type)}) AS {c.name}" for c in kind.columns)
    sql = (f"SELECT {sel} FROM (SELECT * FROM {src} {dedup_clause(p.kind, hive=False)}) "
           f"ORDER BY recv_ns, filename, file_row_number")
    stage = new_stage(root)
    try:
        first_ns = None
        reader = _arrow_reader(con.sql(sql), row_group_rows)
        run = COMPACTION_PREFIX + uuid.uuid4().hex[:16]
        w: PartWriter | None = None
        nfile = 0
        rows_out = 0
        for batch in reader:
            if not batch.num_rows:
                continue
            t = pa.Table.from_batches([batch]).cast(schema)
            if w is not None and w.rows + t.num_rows > max_rows_per_file:
                w.close()
                w = None
            if w is None:
                ns = int(t.column(0)[0].as_py())
                first_ns = ns if first_ns is None else first_ns
                nfile += 1
                w = PartWriter(stage / part_name(ns, run, nfile), kind, schema, compression, level, row_group_rows)
            w.write(t)
            rows_out += t.num_rows
        if w is not None:
            w.close()
        bytes_out = sum(_size(f) for f in stage.iterdir())
        swap(root, lock, p.path, stage, [f.name for f in inputs])
        return rows_in, rows_out, nfile, bytes_out
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # not swapped (a swapped stage was renamed old-*)
        raise


def _arrow_reader(rel: Any, rows: int) -> Any:
    """A record batch reader over a DuckDB relation (the method's name differs between versions)."""
    for name in ("to_arrow_reader", "fetch_arrow_reader", "fetch_record_batch", "record_batch"):
        f = getattr(rel, name, None)
        if f is not None:
            return f(rows)
    raise RuntimeError("this DuckDB has no Arrow batch reader")


def _duck(t: str) -> str:
    from tickwire.sinks.schema import duckdb_type

    return duckdb_type(t)


__all__ = ["partitions", "Partition", "FileInfo", "compact", "CompactReport", "CompactError", "DatasetLock",
           "swap", "purge_trash", "dedup_clause", "identity_sql", "part_name", "live_writers", "writer_alive",
           "STRS", "JSON"]
