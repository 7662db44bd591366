"""Simulator features every venue shares: TLS, latency and jitter, fault timing, REST on the WS port."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request

import pytest

from tickwire.sim import Simulator, parse_fault
from tickwire.sim.framework import Fault

from ._client import RawClient


def http_get(url: str, ctx: ssl.SSLContext | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


async def test_tls_wss_and_https_with_generated_ca():
    async with Simulator(venues=["bybit", "okx"], tls=True) as sim:
        ready = json.loads(sim.ready_line())
        ca = ready["tls"]["ca_file"]
        assert os.path.exists(ca) and ca == sim.ca_file
        for v in ("bybit", "okx"):
            assert ready["venues"][v]["url"].startswith("wss://127.0.0.1:")
            assert ready["venues"][v]["rest"].startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=ca)  # what SSL_CERT_FILE=<ca> gives a client
        c = await RawClient.connect(sim.endpoints["bybit"] + "/v5/public/linear", ssl_context=ctx)
        c.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
        assert (await c.recv())["success"] is True
        assert (await c.recv())["type"] == "snapshot"
        status, body = await asyncio.to_thread(http_get, sim.venue("okx").rest_url + "/api/v5/public/time", ctx)
        assert status == 200 and body["code"] == "0"
        with pytest.raises(Exception):  # a client without the CA refuses the certificate
            await RawClient.connect(sim.endpoints["okx"] + "/ws/v5/public", ssl_context=ssl.create_default_context())
        c.close()
    assert not os.path.exists(ca)  # the throw-away CA is removed at stop


async def test_plain_ws_stays_the_default():
    async with Simulator(venues=["bybit"]) as sim:
        assert sim.endpoints["bybit"].startswith("ws://") and sim.ca_file is None
        assert "tls" not in json.loads(sim.ready_line())


async def test_latency_and_jitter_delay_every_frame_in_order():
    async with Simulator(venues=["bybit"], options={"bybit": {"latency_ms": 80, "jitter_ms": 40}}) as sim:
        c = await RawClient.connect(sim.endpoints["bybit"] + "/v5/public/linear")
        for i in range(20):
            c.send({"op": "ping", "req_id": str(i)})
        t0 = time.monotonic()
        first = await c.recv()
        assert time.monotonic() - t0 >= 0.075
        ids = [first["req_id"]] + [(await c.recv())["req_id"] for _ in range(19)]
        assert ids == [str(i) for i in range(20)]  # jitter never reorders a connection's frames
        c.close()
    with pytest.raises(ValueError):
        Simulator(venues=["okx"], options={"okx": {"latency_ms": -1}})


def test_fault_timing_grammar():
    assert parse_fault("notice@5s") == Fault("notice", None, 5.0)
    assert parse_fault("skip-u@sub") == Fault("skip-u", None, "sub")
    assert parse_fault("stall-for=2s@500ms") == Fault("stall-for", 2.0, 0.5)
    assert str(parse_fault("notice@5s")) == "notice@5s"
    with pytest.raises(ValueError, match="'@' takes a delay"):
        parse_fault("notice@later")
    with pytest.raises(ValueError, match="bybit: unknown fault 'notice'; known faults: .*skip-u"):
        Simulator(venues=["bybit"], faults=["bybit:notice"])
    with pytest.raises(ValueError, match="not supported by bybit; their faults: .*restart-snapshot"):
        Simulator(venues=["bybit"], faults=["notice"])


async def test_one_shot_fault_given_at_start_waits_for_the_first_subscription():
    async with Simulator(venues=["bybit"], faults=["drop"]) as sim:
        vs = sim.venue("bybit")
        assert [f.name for f in vs.pending_faults()] == ["drop"]
        c = await RawClient.connect(sim.endpoints["bybit"] + "/v5/public/linear")
        await asyncio.sleep(0.2)
        assert not c.closed.is_set()  # connected but not subscribed: nothing yet
        c.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
        assert (await c.recv())["success"] is True
        assert (await c.recv())["type"] == "snapshot"  # ack and snapshot first, then the fault
        await asyncio.wait_for(c.closed.wait(), 2)
        assert vs.pending_faults() == [] and vs.stats.faults_injected == 1
        d = await RawClient.connect(sim.endpoints["bybit"] + "/v5/public/linear")
        d.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
        await d.recv()
        await asyncio.sleep(0.2)
        assert not d.closed.is_set()  # one-shot


async def test_delayed_fault_applies_after_its_delay():
    async with Simulator(venues=["okx"], faults=["notice@0.4s"], options={"okx": {"notice_lead_s": 30}}) as sim:
        c = await RawClient.connect(sim.endpoints["okx"] + "/ws/v5/public")
        c.send({"op": "subscribe", "args": [{"channel": "tickers", "instId": "BTC-USDT"}]})
        t0 = time.monotonic()
        m = await c.recv(lambda m: m.get("event") == "notice", timeout=3)
        assert m["code"] == "64008" and time.monotonic() - t0 >= 0.2
        c.close()
    async with Simulator(venues=["bybit"]) as sim:  # inject() takes the same grammar
        vs = sim.venue("bybit")
        c = await RawClient.connect(sim.endpoints["bybit"] + "/v5/public/linear")
        vs.inject("drop@0.3s")
        await asyncio.sleep(0.1)
        assert not c.closed.is_set()
        await asyncio.wait_for(c.closed.wait(), 2)
        vs.inject("drop@5s")
        vs.inject("clear")  # cancels what is waiting
        assert vs._timed_faults == []


def test_cli_unknown_fault_and_venue_are_one_line_errors():
    exe = [os.path.join(os.path.dirname(sys.executable), "tickwire")]
    for args, want in ((["--fault", "nope"], "unknown fault 'nope'; known faults:"),
                       (["--venues", "nope"], "unknown venue(s) ['nope']; known: bge, bybit, okx, okxdex"),
                       (["--fault", "notice"], "their faults:")):
        p = subprocess.run(exe + ["sim", *args], capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and want in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    h = subprocess.run(exe + ["sim", "--help"], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert "first subscription" in h.stdout and "--tls" in h.stdout
