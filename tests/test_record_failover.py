"""Recording across make-before-break failovers: the archive decodes to exactly what the live
feed delivered (bug: the recorder guessed a frame's connection, and a standby socket shared its
connection's name, so decoding the archive gave Gaps and duplicate trades)."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import tickwire
from tickwire.model import BookUpdate, Gap, Notice, Trade
from tickwire.net.tap import SocketInfo, Tap
from tickwire.sinks import Recorder
from tickwire.sinks.archive import archive_files, decode_archive, read_archive

pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator  # noqa: E402

FAST = {"ping_interval_s": 0.5, "pong_timeout_s": 0.5, "resync_min_interval_s": 0.05, "notice_lead_s": 1.0}


def _comparable(e):
    """What the venue said, without receipt-side identity (the live book object, the socket)."""
    if isinstance(e, BookUpdate):
        e = msgspec.structs.replace(e, book=None)
    return tickwire.to_json(e)


class Sockets(Tap):
    def __init__(self):
        self.opened_ids: list[SocketInfo] = []
        self.switches: list[tuple[str, str]] = []
        self.frames: dict[str, int] = {}

    def opened(self, sock):
        self.opened_ids.append(sock)

    def frame(self, sock_id, recv_ns, payload, binary):
        self.frames[sock_id] = self.frames.get(sock_id, 0) + 1

    def switched(self, sock_id, old_id, ns):
        self.switches.append((sock_id, old_id))


async def test_archive_of_a_run_with_upgrade_notices_decodes_to_the_live_events(tmp_path):
    opts = {"okx": {"notice_every_s": 1.3, "notice_lead_s": 1.0, "trade_interval_ms": 15}}
    live = []
    taps = Sockets()
    async with Simulator(venues=["okx"], seed=11, options=opts) as sim:
        rec = Recorder(tmp_path, flush_interval=0.5)
        async with tickwire.stream("okx:books:BTC-USDT", "okx:trades:BTC-USDT", endpoints=sim.endpoints,
                                   timers={"okx": FAST}) as feed:
            rec.attach(feed)
            feed.add_tap(taps)
            loop = asyncio.get_running_loop()
            end = loop.time() + 6.0
            async for ev in feed:
                live.append(ev)
                rec.add(ev)
                if loop.time() > end:
                    break
        rec.close()
    notices = [e for e in live if isinstance(e, Notice) and e.code == "64008"]
    assert len(notices) >= 3
    assert not [e for e in live if isinstance(e, Gap)]
    # every socket had its own id; each replacement named the socket it replaced, then took over
    ids = [s.id for s in taps.opened_ids]
    assert len(ids) == len(set(ids)) >= 4
    assert len(taps.switches) >= 3
    for new, old in taps.switches:
        assert next(s for s in taps.opened_ids if s.id == new).replaces == old
    # the standby's frames were seen as its own (no frame of the standby under the old id)
    assert all(taps.frames.get(s.id) for s in taps.opened_ids[1:4])

    recs = [r for f in archive_files(tmp_path / "raw") for r in read_archive(f)]
    assert sum(r.kind == "S" for r in recs) == len(taps.switches)
    assert {r.conn for r in recs if r.kind == "C"} == set(ids)

    decoded = [e for e in decode_archive(tmp_path / "raw") if not e.is_status]
    delivered = [e for e in live if not e.is_status]
    # the live run stops mid-read: compare the archive's events up to the last one delivered
    assert len(decoded) >= len(delivered) > 100
    got = [_comparable(e) for e in decoded[:len(delivered)]]
    want = [_comparable(e) for e in delivered]
    first_diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert first_diff is None, f"event {first_diff}: archive {got[first_diff]} != live {want[first_diff]}"
    trades = [e.trade_id for e in decoded if isinstance(e, Trade)]
    assert len(trades) == len(set(trades)) > 50
    # the only Gap is the end of the recording (its sockets closed), none at a failover
    gaps = [e for e in decode_archive(tmp_path / "raw") if isinstance(e, Gap)]
    assert all(g.recv_ns > delivered[-1].recv_ns for g in gaps)
