"""The scale-out recipe, command by command, as a user types it (each command its own process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tickwire.bus.server import BusServerError, find_server_binary

pytest.importorskip("nats")
try:
    find_server_binary()
except BusServerError as e:  # pragma: no cover
    pytest.skip(str(e), allow_module_level=True)

TW = [sys.executable, "-m", "tickwire.cli"]


def test_bus_up_two_collectors_tail_record_query(tmp_path):
    procs = []

    def start(*args, out=subprocess.DEVNULL):
        p = subprocess.Popen([*TW, *args], stdout=out, stderr=open(tmp_path / f"{args[0]}{len(procs)}.log", "w"),
                             stdin=subprocess.DEVNULL, text=True)
        procs.append(p)
        return p

    try:
        up = start("bus", "up", "--port", "0", "--dir", str(tmp_path / "bus"), out=subprocess.PIPE)
        url = up.stdout.readline().strip()
        sim = start("sim", "--venues", "okx", out=subprocess.PIPE)
        ws = json.loads(sim.stdout.readline())["venues"]["okx"]["url"]
        specs = ["okx:books:BTC-USDT", "okx:trades:BTC-USDT"]
        a = start("collect", "--bus", url, "--endpoint", f"okx={ws}", "--name", "a", "--raw", *specs)
        b = start("collect", "--bus", url, "--endpoint", f"okx={ws}", "--name", "b", "--raw", *specs)
        t = subprocess.run([*TW, "tail", "--bus", url, "md.okx.>", "--limit", "30", "--duration", "20"],
                           capture_output=True, text=True, timeout=60)
        assert t.returncode == 0, t.stderr
        events = [json.loads(line) for line in t.stdout.splitlines()]
        assert len(events) == 30 and {"BookUpdate", "Trade"} <= {e["type"] for e in events}
        assert events[0]["type"] == "BookUpdate" and events[0]["snapshot"]  # a late joiner starts from a book
        r = subprocess.run([*TW, "record", "--bus", url, "--durable", "rec", "--out", str(tmp_path / "data"),
                            "--duration", "2"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        for p in (a, b):
            p.send_signal(signal.SIGTERM)
            assert p.wait(20) == 0
        q = subprocess.run([*TW, "query", "select count(*) n, count(distinct trade_id) d from trades", "--data",
                            str(tmp_path / "data"), "--format", "json"], capture_output=True, text=True, timeout=60)
        assert q.returncode == 0, q.stderr
        row = json.loads(q.stdout.splitlines()[0])
        assert row["n"] == row["d"] > 0  # two collectors, each trade once
        up.send_signal(signal.SIGINT)
        assert up.wait(20) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # `bus up` stops its nats-server nodes (a SIGKILL would orphan them)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
