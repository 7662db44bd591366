"""Local nats-server processes (single node, 3-node cluster), `tickwire bus up`, the bus interface."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from tickwire.bus.base import OutMsg, StreamSpec
from tickwire.bus.nats import NatsBus
from tickwire.bus.testing import nats_cluster, nats_single  # noqa: F401


async def _publish(bus, msgs, timeout=10.0):
    acks = {}
    done = asyncio.Event()

    def on_acks(results):
        for m, seq, dup, err in results:
            acks[m.msg_id] = (seq, dup, err)
        if len(acks) == len(msgs):
            done.set()

    bus.publish(msgs, on_acks)
    await asyncio.wait_for(done.wait(), timeout)
    return acks


async def test_single_node_stores_each_message_id_once(nats_single):
    bus = NatsBus(nats_single.url)
    await bus.connect()
    try:
        await bus.ensure_streams([StreamSpec("T1", ["t1.>"], replicas=1)])
        acks = await _publish(bus, [OutMsg("t1.a", b"x", "id1"), OutMsg("t1.a", b"y", "id2")])
        again = await _publish(bus, [OutMsg("t1.a", b"x", "id1")])  # a redundant publisher's copy
        assert not acks["id1"][1] and not acks["id2"][1]
        assert again["id1"] == (acks["id1"][0], True, "")  # duplicate: the original's position
        assert await bus.last_seq("T1") == 2
        got = []
        async for batch in bus.consume("T1", ["t1.>"], start_seq=1):
            got.extend(batch)
            if len(got) >= 2:
                break
        assert [m.data for m in got] == [b"x", b"y"]
        last = await bus.last("T1", "t1.a")
        assert last is not None and last.data == b"y"
    finally:
        await bus.close()


async def test_cluster_of_three_replicates_and_survives_a_killed_node(nats_cluster):
    assert len(nats_cluster.nodes) == 3
    bus = NatsBus(nats_cluster.url)
    await bus.connect()
    try:
        await bus.ensure_streams([StreamSpec("T3", ["t3.>"], replicas=3)])
        si = await bus.js.stream_info("T3")
        assert si.config.num_replicas == 3 and len(si.cluster.replicas) == 2
        await _publish(bus, [OutMsg("t3.a", b"%d" % i, f"m{i}") for i in range(100)])
        leader = si.cluster.leader
        idx = next(i for i, n in enumerate(nats_cluster.nodes) if n.name == leader)
        nats_cluster.kill(idx)  # SIGKILL the stream leader
        t0 = time.monotonic()
        acks: dict = {}
        for attempt in range(200):  # publishing resumes once a new leader is elected
            try:
                acks = await _publish(bus, [OutMsg("t3.a", b"after", "after")], timeout=2)
                if not acks["after"][2]:
                    break
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.1)
        assert acks and not acks["after"][2], acks
        assert time.monotonic() - t0 < 15
        assert await bus.last_seq("T3") == 101
    finally:
        await bus.close()


@contextlib.contextmanager
def bus_up(tmp_path, *args, **popen):
    """``tickwire bus up ARGS --dir tmp_path``: yields the process; a SIGINT at the end must stop it
    (exit 0) and every node process it started (found by their store directory)."""
    from tickwire.bus.server import BusServerError, find_server_binary

    try:
        find_server_binary()
    except BusServerError as e:
        pytest.skip(str(e))
    p = subprocess.Popen([sys.executable, "-m", "tickwire.cli", "bus", "up", *args, "--dir", str(tmp_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    try:
        yield p
        p.send_signal(signal.SIGINT)
        assert p.wait(15) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert out.stdout.strip() == "", out.stdout


def test_tickwire_bus_up_prints_urls_and_stops_on_signal(tmp_path):
    with bus_up(tmp_path, "--cluster", "3", "--port", "0") as p:
        line = p.stdout.readline().strip()
        urls = line.split(",")
        assert len(urls) == 3 and all(u.startswith("nats://127.0.0.1:") for u in urls), line

        async def check():
            bus = NatsBus(line)
            await bus.connect()
            info = await bus.info()
            await bus.close()
            return info

        assert asyncio.run(check()).get("cluster") == "tickwire"
    # every node process is gone (stopped by pid)
    for d in ("n1", "n2", "n3"):
        assert (tmp_path / d).is_dir()


def test_bus_up_started_in_the_background_of_a_script_still_stops_on_ctrl_c(tmp_path):
    """``tickwire bus up &`` in a script starts with SIGINT ignored (the shell does that to
    background jobs); a SIGINT must stop it and its nodes all the same."""
    with bus_up(tmp_path, "--port", "0", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) as p:
        assert p.stdout.readline().startswith("nats://127.0.0.1:")
