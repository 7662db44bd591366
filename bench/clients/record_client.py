"""Client of the record suite: the throughput stream through tickwire, with or without recording.

With ``record=True`` it does what ``tickwire record`` does (``tickwire/cli/record.py``): a
:class:`tickwire.sinks.Recorder` with the command's defaults (Parquet tables + raw frame archive,
flush every 2 s, top-20 book snapshots every 1 s, zstd), ``rec.attach(feed)`` for the raw frames
(``Feed.raw_hook``) and ``rec.add(ev)`` for every event in the ``async for`` body.

CPU (user+sys, all threads: the recorder's writer thread is included) is measured from just
after the snapshot to the last delta (``cpu_s``, as in the throughput suite) and, with
recording, also up to the end of ``rec.close()`` (``cpu_close_s``: the writer's remaining work,
encoding and publishing the last files), so the full cost of recording is counted.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.clients._meter import Meter, cpu_seconds
from bench.clients.tickwire_client import SPECS


def _dir_bytes(root: Path) -> dict[str, int]:
    out = {"parquet": 0, "raw": 0, "other": 0}
    for p in root.rglob("*"):
        if p.is_file():
            n = p.stat().st_size
            if p.suffix == ".parquet":
                out["parquet"] += n
            elif "raw" in p.parts or p.name.endswith((".zst", ".gz", ".jsonl")):
                out["raw"] += n
            else:
                out["other"] += n
    return out


async def _main(url: str, venue: str, expected: int, record: bool, out_dir: str) -> dict[str, Any]:
    import tickwire
    from tickwire.model import BookUpdate

    name, path, spec = SPECS[venue]
    base = url.split(path)[0]
    meter = Meter(expected)
    rec = None
    if record:
        # one-time import cost (~0.3 s of CPU) before the window: a long recording amortises it
        import pyarrow  # noqa: F401
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        from tickwire.sinks.recorder import Recorder

        rec = Recorder(out_dir)  # tickwire record's defaults (raw archive on)
    book = None
    async with tickwire.stream(spec, endpoints={name: base}) as feed:
        if rec is not None:
            rec.attach(feed)
            add = rec.add
            async for ev in feed:
                add(ev)
                if type(ev) is BookUpdate:
                    book = ev.book
                    if meter.tick():
                        break
        else:
            async for ev in feed:
                if type(ev) is BookUpdate:
                    book = ev.book
                    if meter.tick():
                        break
    out = meter.result(loop="uvloop")
    if rec is not None:
        t = time.perf_counter()
        rec.close()
        out["close_s"] = time.perf_counter() - t
        out["cpu_close_s"] = cpu_seconds() - meter.c0
        summ = rec.summary()
        out["rows"] = summ["rows"]
        out["dropped"] = summ["dropped"]
        out["raw_frames"] = summ["raw_frames"]
        out["dropped_frames"] = summ["dropped_frames"]
        out["recorded_bytes"] = summ["bytes"]
        out["files"] = summ["files"]
        out["disk_bytes"] = _dir_bytes(Path(out_dir))
        out["writer_busy_s"] = summ["writer_busy_s"]
        out["peak_pending_bytes"] = summ["peak_pending_bytes"]
    if book is not None:
        out["final_bids"] = dict(book.bids)
        out["final_asks"] = dict(book.asks)
    return out


def run(url: str, venue: str, expected_msgs: int, record: bool = False) -> dict[str, Any]:
    import uvloop

    tmp = tempfile.mkdtemp(prefix="bench-record-")
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(_main(url, venue, expected_msgs, record, str(Path(tmp) / "data")))
    finally:
        loop.close()
        shutil.rmtree(tmp, ignore_errors=True)
