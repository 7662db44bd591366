"""The bus recorder killed right after writing data it had not committed yet: the restart removes
exactly that data, receives it again, and the dataset holds every message of the bus once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

import tickwire
from tickwire.bus.collector import Collector
from tickwire.bus.consumer import subscribe
from tickwire.bus.testing import nats_single  # noqa: F401
from tickwire.model import BookUpdate, Trade

pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator  # noqa: E402

SPECS = ["okx:books:BTC-USDT", "okx:trades:BTC-USDT"]

# Records, and after its third commit writes what it received next to disk (flush + barrier:
# on disk, not committed) and dies by SIGKILL before committing it.
KILLER = textwrap.dedent("""
    import asyncio, os, signal, sys, time
    from tickwire.bus.record import BusRecorder

    async def main():
        r = BusRecorder(sys.argv[1], sys.argv[2], "rec", commit_interval_s=0.01, batch=10)
        md = r._md
        def _md(batch):
            md(batch)
            time.sleep(0.02)  # slower than the commit interval: a commit between two batches
            if r.commits >= 3 and batch:
                r.rec.flush()
                r.rec.writer.barrier()
                # die only with uncommitted bytes on disk (a batch may hold only messages the
                # checkpoint already covers, e.g. redelivered ones: then wait for the next)
                if r._wal_sizes() != r.cp.wal:
                    print(f"killed after md seqs {batch[0].seq}..{batch[-1].seq}, checkpoint md {r.cp.md_seq}",
                          file=sys.stderr, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
                print(f"md seqs {batch[0].seq}..{batch[-1].seq} wrote nothing new (checkpoint md {r.cp.md_seq})",
                      file=sys.stderr, flush=True)
        r._md = _md
        await r.run(duration=20)

    asyncio.run(main())
""")


async def test_kill_9_after_uncommitted_writes_then_restart_loses_and_duplicates_nothing(nats_single, tmp_path):
    async with Simulator(venues=["okx"], seed=3, options={"okx": {"trade_interval_ms": 10}}) as sim:
        # one message per frame: enough bus messages for several commits of 10 before the kill
        c = Collector(nats_single.url, SPECS, name="r", raw=True, chunk_events=1,
                      feed_options={"endpoints": sim.endpoints})
        await c.start()
        await c.run(duration=3)
        await c.close()
    trades, deltas = [], []
    async def read():
        async for ev in subscribe(nats_single.url, "md.>", start="first", snapshots=False):
            if isinstance(ev, Trade):
                trades.append(ev.trade_id)
            elif isinstance(ev, BookUpdate) and not ev.snapshot:
                deltas.append(ev.seq)
    try:
        await asyncio.wait_for(read(), 3)
    except asyncio.TimeoutError:
        pass
    assert len(trades) > 50 and len(deltas) > 10

    data = tmp_path / "data"
    # small batches so that the killer commits several times before it dies
    p = subprocess.run([sys.executable, "-c", KILLER, nats_single.url, str(data)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == -9, p.stderr[-2000:]
    killed = p.stderr
    p = subprocess.run([sys.executable, "-m", "tickwire.cli", "bus", "record", "--bus", nats_single.url, "--durable",
                        "rec", "--out", str(data), "--duration", "3"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "resuming durable rec after md sequence" in p.stderr
    removed = int(p.stderr.split(" bytes written after that checkpoint removed")[0].rsplit(";", 1)[1].replace(",", ""))
    assert removed > 0, killed + p.stderr  # the killed run had written uncommitted data: it was taken out

    got_trades = tickwire.query("select trade_id from trades", data=str(data))["trade_id"].tolist()
    assert sorted(got_trades) == sorted(trades)
    bc = tickwire.query("select seq, snapshot, side, price, count(*) n from book_changes group by all",
                        data=str(data))
    assert (bc["n"] == 1).all()
    assert sorted(set(bc[~bc["snapshot"]]["seq"].tolist())) == sorted(deltas)
    from tickwire.sinks.archive import archive_files, read_archive

    frames = [(r.conn, r.recv_ns) for f in archive_files(data / "raw") for r in read_archive(f) if r.is_frame]
    assert len(frames) == len(set(frames)) > 50
