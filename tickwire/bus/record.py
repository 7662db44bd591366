"""The bus recorder: the Parquet dataset and raw archive of ``tickwire record``, fed by durable
consumers of the bus, exactly once across kills.

::

    await BusRecorder("nats://127.0.0.1:4222", "data", "rec1").run()

It is the same :class:`~tickwire.sinks.Recorder`, fed from the bus instead of a feed: md messages
become events (duplicates dropped: trades by id, book updates by venue sequence), raw messages
become the archive's connection records (each collector socket ``<socket>@<collector>``).

Exactly once. Every ``commit_interval_s`` the recorder (1) hands everything to its writer and
waits until it is written (fsynced with ``fsync=True``), (2) writes a checkpoint
``DIR/_bus/<durable>.json`` atomically: the last md and raw stream sequences included, the
writer's id and the size of each of its write-ahead files, then (3) acknowledges the bus up to
those sequences. Files are only published (rolled) right after a commit, when the write-ahead
files hold exactly what the checkpoint says. After a kill -9, the restart truncates the
writer's write-ahead files to the checkpointed sizes (dropping what was written after the last
commit), publishes them, and skips redelivered messages up to the checkpointed sequences: what
was committed is kept once, what was not is delivered again and written once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import msgspec

from tickwire.bus import codec
from tickwire.bus.base import Bus, InMsg, connect_bus, give_up_when_unreachable
from tickwire.bus.consumer import Keeper
from tickwire.model import BookUpdate, Trade
from tickwire.net.tap import SocketInfo

log = logging.getLogger("tickwire.bus")

CHECKPOINT_DIR = "_bus"


class Checkpoint(msgspec.Struct):
    md_seq: int = 0
    raw_seq: int = 0
    writer: str = ""
    wal: dict[str, int] = {}
    commits: int = 0


class _Seen:
    """A bounded memory of keys already recorded (per stream)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self.keys: dict[Any, None] = {}

    def add(self, key: Any) -> bool:
        """True if new."""
        k = self.keys
        if key in k:
            return False
        k[key] = None
        if len(k) > self.size:
            del k[next(iter(k))]
        return True


class BusRecorder:
    """Record the bus at ``url`` under ``out`` through durable consumer ``durable`` (see the module
    docstring). ``recorder_options`` go to :class:`~tickwire.sinks.Recorder`."""

    def __init__(self, url: str | Bus, out: str | os.PathLike, durable: str, *, subjects: list[str] | None = None,
                 raw: bool = True, commit_interval_s: float = 2.0, roll_interval_s: float = 300.0,
                 fsync: bool = False, streams: Any = None, batch: int = 2000, **recorder_options: Any) -> None:
        from tickwire.bus.collector import StreamsConfig

        self.url = url
        self.root = Path(out)
        self.durable = durable
        self.subjects = subjects or ["md.>"]
        self.raw = raw
        self.commit_interval_s = commit_interval_s
        self.roll_interval_s = roll_interval_s
        self.fsync = fsync
        self.streams = streams or StreamsConfig()
        self.ropts = recorder_options
        self.batch = batch
        self.cp_path = self.root / CHECKPOINT_DIR / f"{durable}.json"
        self.root.mkdir(parents=True, exist_ok=True)
        self.cp = self._restore()
        self.rec: Any = None
        self._new_recorder()
        self.keeper = Keeper()
        self.seen: dict[str, _Seen] = {}
        self.messages = 0
        self.events = 0
        self.skipped = 0
        self.duplicates = 0
        self.commits = 0
        self.last_commit_wall: float | None = None  # time.time() of the last commit (metrics: a stall)
        self._last_md: InMsg | None = None
        self._last_raw: InMsg | None = None
        self._dirty = False
        self._cycle_start = time.monotonic()
        self.bus: Bus | None = None
        self._totals: dict[str, int] = {}

    # -- checkpoint and recovery -------------------------------------------------------------
    def _read_cp(self) -> Checkpoint:
        try:
            return msgspec.json.decode(self.cp_path.read_bytes(), type=Checkpoint)
        except FileNotFoundError:
            return Checkpoint()

    def _write_cp(self) -> None:
        from tickwire.sinks.dataset import fsync_dir

        self.cp_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cp_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(msgspec.json.encode(self.cp))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.cp_path)
        fsync_dir(self.cp_path.parent)

    def _restore(self) -> Checkpoint:
        """Undo what the last run wrote after its last commit; publish the rest."""
        from tickwire.sinks.writer import WAL_DIR, LOCK_NAME, recover

        cp = self._read_cp()
        self.undone_bytes = 0   # written after the last commit by a killed run: removed
        if cp.writer:
            wdir = self.root / WAL_DIR / cp.writer
            if wdir.is_dir():
                for f in sorted(wdir.rglob("*")):
                    if not f.is_file() or f.name == LOCK_NAME:
                        continue
                    rel = str(f.relative_to(wdir))
                    size = cp.wal.get(rel)
                    if size is None:
                        self.undone_bytes += f.stat().st_size
                        f.unlink()
                    elif f.stat().st_size != size:
                        self.undone_bytes += f.stat().st_size - size
                        with open(f, "r+b") as fh:
                            fh.truncate(size)
                            os.fsync(fh.fileno())
        recover(self.root)
        if cp.commits:
            log.warning("resuming %s after md seq %d, raw seq %d (checkpoint %d); %d bytes written after it removed",
                        self.durable, cp.md_seq, cp.raw_seq, cp.commits, self.undone_bytes)
        return cp

    def _wal_sizes(self) -> dict[str, int]:
        from tickwire.sinks.writer import WAL_DIR, LOCK_NAME

        wdir = self.root / WAL_DIR / self.rec.writer_id
        out = {}
        if wdir.is_dir():
            for f in wdir.rglob("*"):
                if f.is_file() and f.name != LOCK_NAME:
                    out[str(f.relative_to(wdir))] = f.stat().st_size
        return out

    def _new_recorder(self) -> None:
        from tickwire.sinks.recorder import Recorder

        opts = dict(self.ropts)
        opts.setdefault("flush_interval", max(0.5, self.commit_interval_s / 2))
        self.rec = Recorder(self.root, raw=self.raw, roll_interval=1e12, roll_size=1 << 62, fsync=self.fsync,
                            recover_orphans=False, **opts)
        self.cp.writer = self.rec.writer_id
        self.cp.wal = {}
        self._write_cp()

    # -- the loop --------------------------------------------------------------------------
    async def run(self, duration: float | None = None, stop: asyncio.Event | None = None,
                  give_up_after_s: float | None = None) -> None:
        """Record until ``duration`` passes or ``stop`` is set; with ``give_up_after_s``, raise
        :class:`BusError` (after committing and publishing what was written) once the bus has been
        unreachable that long (default: wait for it forever)."""
        own = not isinstance(self.url, Bus)
        bus = connect_bus(self.url, name=f"tickwire-record-{self.durable}") if own else self.url  # type: ignore[arg-type]
        self.bus = bus
        loop = asyncio.get_running_loop()
        end = loop.time() + duration if duration else None
        guard = (asyncio.ensure_future(give_up_when_unreachable(bus, give_up_after_s))
                 if give_up_after_s is not None else None)
        ready = False
        try:
            ready = not own or await self._connect(bus, end, stop, guard)
        finally:
            if not ready:  # stopped, out of time or given up before the bus was reachable
                if guard is not None:
                    guard.cancel()
                await self._close_recorder()
                await bus.close()
        if not ready:
            return
        q: asyncio.Queue = asyncio.Queue(maxsize=8)
        tasks: list[asyncio.Task] = [guard] if guard is not None else []

        async def pump(kind: str, stream: str, subjects: list[str], durable: str, after: int) -> None:
            await self._wait_stream(bus, stream)
            # the checkpoint is the exact position: the durable consumer restarts right after it
            async for batch in bus.consume(stream, subjects, durable=durable, batch=self.batch, start_seq=after + 1,
                                           recreate=True):
                await q.put((kind, batch))

        tasks.append(asyncio.create_task(pump("md", self.streams.md, self.subjects, self.durable, self.cp.md_seq)))
        if self.raw:
            tasks.append(asyncio.create_task(pump("raw", self.streams.raw, ["raw.>"], self.durable + "-raw", self.cp.raw_seq)))
        next_commit = loop.time() + self.commit_interval_s
        try:
            while True:
                now = loop.time()
                if (end is not None and now >= end) or (stop is not None and stop.is_set()):
                    break
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                try:
                    kind, batch = await asyncio.wait_for(q.get(), min(0.25, max(0.01, next_commit - now)))
                except asyncio.TimeoutError:
                    kind, batch = "", []
                if batch:
                    if kind == "md":
                        self._md(batch)
                    else:
                        self._raw(batch)
                if loop.time() >= next_commit:
                    await self.commit()
                    next_commit = loop.time() + self.commit_interval_s
        finally:
            for t in tasks:
                t.cancel()
            try:  # a consumer stuck in the client's fetch must not keep the recorder from ending
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5.0)
            except asyncio.TimeoutError:
                log.warning("bus consumers did not stop within 5 s; closing anyway")
            await self.commit()
            await self._close_recorder()
            if own:
                try:
                    await asyncio.wait_for(bus.close(), 5.0)
                except asyncio.TimeoutError:
                    log.warning("the bus connection did not close within 5 s")

    @staticmethod
    async def _connect(bus: Bus, end: float | None, stop: asyncio.Event | None,
                       guard: asyncio.Task | None = None) -> bool:
        """Connect, unless ``stop`` or the end comes first (an unreachable bus is waited for), or
        ``guard`` gives up (raises)."""
        conn = asyncio.ensure_future(bus.connect())
        waits: set[asyncio.Future] = {conn}
        if stop is not None:
            waits.add(asyncio.ensure_future(stop.wait()))
        if guard is not None:
            waits.add(guard)
        timeout = None if end is None else max(0.0, end - asyncio.get_running_loop().time())
        done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            if t is not guard:
                t.cancel()
        await asyncio.gather(*(t for t in pending if t is not guard), return_exceptions=True)
        if guard is not None and guard in done:
            guard.result()  # raises: the bus stayed unreachable too long
        if conn not in done:
            return False
        conn.result()
        return True

    @staticmethod
    async def _wait_stream(bus: Bus, stream: str) -> None:
        while True:
            try:
                await bus.last_seq(stream)
                return
            except Exception:
                await asyncio.sleep(0.2)

    async def commit(self) -> None:
        """Make everything received durable, checkpoint it, then acknowledge it (see the module
        docstring); publish the files once ``roll_interval_s`` has passed."""
        if not self._dirty:
            return
        rec = self.rec
        rec.flush()
        await asyncio.get_running_loop().run_in_executor(None, rec.writer.barrier, self.fsync, None)
        if rec.error is not None:
            raise rec.error
        if self._last_md is not None:
            self.cp.md_seq = self._last_md.seq
        if self._last_raw is not None:
            self.cp.raw_seq = self._last_raw.seq
        self.cp.wal = self._wal_sizes()
        self.cp.commits += 1
        self._write_cp()
        assert self.bus is not None
        for m in (self._last_md, self._last_raw):
            if m is not None:
                try:
                    await self.bus.ack(m)
                except Exception as e:  # the bus redelivers; the checkpoint skips what is durable
                    log.debug("ack failed: %r", e)
        self._last_md = self._last_raw = None
        self._dirty = False
        self.commits += 1
        self.last_commit_wall = time.time()
        if time.monotonic() - self._cycle_start >= self.roll_interval_s:
            await self._close_recorder()
            self._new_recorder()
            self._cycle_start = time.monotonic()

    async def _close_recorder(self) -> None:
        rec = self.rec
        if rec is None:
            return
        self._totals = self.rows()
        await asyncio.get_running_loop().run_in_executor(None, rec.close)
        self.rec = None

    # -- messages ----------------------------------------------------------------------------
    def _md(self, batch: list[InMsg]) -> None:
        rec = self.rec
        cp_seq = self.cp.md_seq
        keeper = self.keeper
        for m in batch:
            self._last_md = m
            self._dirty = True
            if m.seq <= cp_seq:
                self.skipped += 1
                continue
            self.messages += 1
            if m.subject.startswith("status."):
                for ev in codec.decode_status(m.data):
                    rec.add(ev)
                continue
            _, events = codec.decode_md(m.data)
            keeper.on_md(m.seq, events)  # books for the book_snapshots table (ev.book when applied)
            for ev in events:
                cls = ev.__class__
                if cls is BookUpdate:
                    key: Any = (ev.seq, ev.snapshot) if ev.seq else None  # type: ignore[attr-defined]
                elif cls is Trade and ev.trade_id:  # type: ignore[attr-defined]
                    key = ev.trade_id  # type: ignore[attr-defined]
                else:
                    key = None
                if key is not None:
                    seen = self.seen.get(ev.stream)
                    if seen is None:
                        seen = self.seen[ev.stream] = _Seen()
                    if not seen.add(key):
                        self.duplicates += 1
                        continue
                rec.add(ev)
                self.events += 1

    def _raw(self, batch: list[InMsg]) -> None:
        rec = self.rec
        cp_seq = self.cp.raw_seq
        for m in batch:
            self._last_raw = m
            self._dirty = True
            if m.seq <= cp_seq:
                self.skipped += 1
                continue
            parts = m.subject.split(".")
            collector = codec.unescape(parts[2]) if len(parts) > 2 else "?"
            for r in codec.decode_raw(m.data):
                conn = f"{r.sock}@{collector}"
                k = r.kind
                if k == "F":
                    rec.raw(conn, r.ns, r.payload, r.binary)
                elif k == "C":
                    info = dict(r.info or {})
                    info["id"] = conn
                    if info.get("replaces"):
                        info["replaces"] = f"{info['replaces']}@{collector}"
                    info["streams"] = tuple(info.get("streams") or ())
                    rec.opened(msgspec.convert(info, SocketInfo))
                elif k == "R":
                    info = r.info or {}
                    rec.rest(conn, r.ns, info.get("topic", ""), None if info.get("null") else r.payload,
                             info.get("error", ""))
                elif k == "S":
                    rec.switched(conn, f"{(r.info or {}).get('replaces', '')}@{collector}", r.ns)
                elif k == "D":
                    rec.closed(conn, r.ns, (r.info or {}).get("reason", ""))

    # -- summary -------------------------------------------------------------------------------
    def rows(self) -> dict[str, int]:
        """Rows written per table so far (files published or not), raw frames as ``raw_frames``."""
        out = dict(self._totals)
        if self.rec is not None:
            s = self.rec.summary()
            for k, v in s["rows"].items():
                out[k] = out.get(k, 0) + v
            out["raw_frames"] = out.get("raw_frames", 0) + s["raw_frames"]
        return out

    def summary_line(self) -> str:
        rows = self._totals
        parts = [f"{k} {v:,}" for k, v in sorted(rows.items()) if k != "raw_frames"]
        return (f"recorded {sum(v for k, v in rows.items() if k != 'raw_frames'):,} rows ({', '.join(parts) or 'none'}); "
                f"{rows.get('raw_frames', 0):,} raw frames from {self.messages:,} bus messages; "
                f"{self.duplicates:,} duplicates dropped, {self.skipped:,} redelivered messages already recorded; "
                f"{self.commits} commits; in {self.root}")
