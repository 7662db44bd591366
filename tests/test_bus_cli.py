"""The scale-out recipe, command by command, as a user types it (each command its own process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tickwire.bus.server import BusServerError, find_server_binary
from tickwire.bus.testing import nats_single  # noqa: F401

pytest.importorskip("nats")
try:
    find_server_binary()
except BusServerError as e:  # pragma: no cover
    pytest.skip(str(e), allow_module_level=True)

TW = [sys.executable, "-m", "tickwire.cli"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


async def test_bus_tail_prints_each_event_at_once_and_ends_quietly_when_its_reader_goes(nats_single, tmp_path):
    """A quiet subject's events reach the terminal as they come (not 64 at a time), and
    ``tickwire bus tail … | head -1`` ends with exit code 0 and no error once head has gone."""
    import asyncio
    import os
    import select

    from tickwire.bus.collector import Collector
    from tickwire.bus.consumer import subscribe
    from tickwire.sim import Simulator

    async def readline(p, timeout):
        loop = asyncio.get_running_loop()
        r, _, _ = await loop.run_in_executor(None, select.select, [p.stdout], [], [], timeout)
        return p.stdout.readline() if r else ""

    async with Simulator(venues=["okx"], seed=5, options={"okx": {"trade_interval_ms": 500}}) as sim:
        c = Collector(nats_single.url, ["okx:trades:BTC-USDT"], name="q", feed_options={"endpoints": sim.endpoints})
        await c.start()
        try:
            # a few trades only (far fewer than 64), then the subject stays quiet
            await c.run(duration=1.0)
            stored = []

            async def count():
                async for ev in subscribe(nats_single.url, "md.okx.>", start="first"):
                    stored.append(ev)
            try:
                await asyncio.wait_for(count(), 2)
            except asyncio.TimeoutError:
                pass
            assert stored  # a few trades (a few KB: less than a pipe's buffer)
            # as in a user's shell: stdout block-buffered (this sandbox sets PYTHONUNBUFFERED)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
            quiet = subprocess.Popen([*TW, "bus", "tail", "--bus", nats_single.url, "--start", "first", "md.okx.>"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            try:
                line = await readline(quiet, 20)
                assert line and json.loads(line)["type"] == "Trade"
            finally:
                quiet.kill()
                quiet.wait()
            piped = subprocess.Popen([*TW, "bus", "tail", "--bus", nats_single.url, "md.okx.>"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            run = asyncio.ensure_future(c.run(duration=30))
            try:
                assert await readline(piped, 20)
                piped.stdout.close()  # `| head -1` has what it wanted and is gone
                loop = asyncio.get_running_loop()
                rc = await loop.run_in_executor(None, piped.wait, 25)
            finally:
                run.cancel()
                if piped.poll() is None:
                    piped.kill()
            err = piped.stderr.read()
            assert rc == 0, err
            assert "error" not in err.lower() and "Traceback" not in err, err
        finally:
            await c.close()


def test_bus_record_and_tail_say_when_the_bus_is_not_reachable_and_stop_on_signals(tmp_path):
    """Pointed at a bus that is not there, the consumers say so (with the reason) and wait for
    it; SIGTERM (or Ctrl-C) stops them cleanly meanwhile."""
    url = f"nats://127.0.0.1:{free_port()}"  # a port nothing listens on
    procs = {
        "record": subprocess.Popen([*TW, "bus", "record", "--bus", url, "--durable", "d", "--out", str(tmp_path / "d")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "tail": subprocess.Popen([*TW, "bus", "tail", "--bus", url, "md.>"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    try:
        import select
        import time

        for name, p in procs.items():
            line, deadline = "", time.monotonic() + 30
            while "not reachable" not in line:
                ready, _, _ = select.select([p.stderr], [], [], max(0.0, deadline - time.monotonic()))
                assert ready, f"{name} said nothing of the unreachable bus within 30 s"
                line = p.stderr.readline()
                assert line, f"{name} ended without saying the bus is not reachable"
            assert url in line and "refused" in line.lower(), line
        procs["record"].send_signal(signal.SIGTERM)
        procs["tail"].send_signal(signal.SIGINT)
        assert procs["record"].wait(15) == 0
        assert "recorded 0 rows" in procs["record"].stderr.read()
        assert procs["tail"].wait(15) in (0, 130)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def test_collect_with_the_bus_down_stops_at_once_on_a_second_signal(tmp_path):
    """Ctrl-C with the bus down waits (up to 10 s) for the bus to take what is buffered; a second
    Ctrl-C stops at once, says how many messages were given up, and exits 130."""
    import select
    import time

    url = f"nats://127.0.0.1:{free_port()}"  # a port nothing listens on
    p = subprocess.Popen([*TW, "collect", "--bus", url, "--sim", "bybit.linear:publicTrade:BTCUSDT"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err: list[str] = []

    def read_until(text: str, within: float) -> str:
        deadline = time.monotonic() + within
        while True:
            ready, _, _ = select.select([p.stderr], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {text!r} within {within} s: {''.join(err)}"
            line = p.stderr.readline()
            assert line, f"ended before {text!r}: {''.join(err)}"
            err.append(line)
            if text in line:
                return line

    try:
        seen = ""
        while "bus down" not in seen or " connected to " not in seen:   # (its Connected event waits in the buffer)
            seen += read_until("", 30)
        time.sleep(1.0)                                  # the collector's loop has taken the Connected event
        p.send_signal(signal.SIGINT)
        assert "again" in read_until("waiting up to", 15)   # tells the user how to cut it short
        t = time.monotonic()
        p.send_signal(signal.SIGINT)
        rc = p.wait(15)
        took = time.monotonic() - t
        rest = p.stderr.read()
        err.append(rest)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 130, "".join(err)
    assert took < 5, f"the second signal took {took:.1f} s"
    assert "given up" in rest and "unconfirmed at exit" in rest, rest
    assert "Traceback" not in "".join(err)


@pytest.mark.parametrize("when", ["at start", "mid-run"])
def test_bus_tail_and_record_give_up_after_the_bus_is_gone_that_long(tmp_path, when):
    """`--give-up-after S`: a script pointed at a wrong URL, or whose bus went away, fails (exit 3,
    one line naming the URL, how long and why) instead of waiting forever; record keeps what it
    wrote and says so."""
    import time

    from tickwire.bus.server import LocalBus

    node = None
    if when == "at start":
        url = f"nats://127.0.0.1:{free_port()}"
    else:
        node = LocalBus(1, dir=tmp_path / "bus").start()
        url = node.url
    procs = {
        "record": subprocess.Popen([*TW, "bus", "record", "--bus", url, "--durable", "d", "--out", str(tmp_path / "d"),
                                    "--give-up-after", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
        "tail": subprocess.Popen([*TW, "bus", "tail", "--bus", url, "--give-up-after", "2", "md.>"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
    }
    try:
        if node is not None:
            time.sleep(3)                       # both are connected and waiting for data
            assert all(p.poll() is None for p in procs.values()), {k: p.stderr.read() for k, p in procs.items()}
            node.kill(0)
        t = time.monotonic()
        rcs = {k: p.wait(30) for k, p in procs.items()}
        took = time.monotonic() - t
        errs = {k: p.stderr.read() for k, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if node is not None:
            node.stop()
    assert rcs == {"record": 3, "tail": 3}, errs
    for k, err in errs.items():
        assert f"{url} not reachable for 2 s" in err and "giving up" in err, (k, err)
        assert "Traceback" not in err, (k, err)
    assert "recorded 0 rows" in errs["record"], errs["record"]
    assert took < 20, took


async def test_collect_takes_the_feed_options_tail_and_record_take(nats_single, tmp_path):
    """`collect` reads venues as `tail`/`record` do: several hosts per venue (`--endpoint okx=URL1,URL2`),
    `--redundancy 2`, per-venue `--network`, `--timer`, `--venue-option`, `--max-retries`... A bad one
    is the same one-line error (exit 2), before anything touches the bus."""
    import asyncio
    import time

    from tickwire.sim import Simulator
    from tickwire.sim.framework.netem import Line

    def run(*args, timeout=60):
        return asyncio.get_running_loop().run_in_executor(
            None, lambda: subprocess.run([*TW, *args], capture_output=True, text=True, timeout=timeout))

    async with Simulator(venues=["okx"], seed=21, options={"okx": {"trade_interval_ms": 50}}) as sim:
        v = sim.venue("okx")
        async with Line(v.host, v.port, latency_ms=1) as a, Line(v.host, v.port, latency_ms=3) as b:
            r = await run("collect", "--bus", nats_single.url, "--name", "opts", "--duration", "4",
                          "--endpoint", f"okx={a.url},{b.url}", "--redundancy", "2",
                          "--network", "okx=mainnet,bybit=testnet", "--timer", "okx.ping_interval_s=5",
                          "--max-retries", "3", "--give-up-after", "60",
                          "okx:trades:BTC-USDT")
            assert r.returncode == 0, r.stderr
            assert "0 dropped" in r.stderr and " 0 events" not in r.stderr, r.stderr
            t = await run("bus", "tail", "--bus", nats_single.url, "--start", "first", "--duration", "3", "md.okx.>")
            ids = [json.loads(x)["trade_id"] for x in t.stdout.splitlines() if '"Trade"' in x]
            assert len(ids) > 10 and len(ids) == len(set(ids)), ("two lines, each trade once", r.stderr[-3000:])
            for bad, named in ((["--timer", "okx.ping_intervl_s=5"], "ping_intervl_s"),
                               (["--network", "okx=moon"], "moon"), (["--redundancy", "5"], "redundancy"),
                               (["--venue-option", "okx.prot=1"], "prot")):
                t0 = time.monotonic()
                r = await run("collect", "--bus", nats_single.url, "--endpoint", f"okx={a.url}", *bad,
                              "okx:trades:BTC-USDT")
                assert r.returncode == 2 and named in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)
                assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
                assert time.monotonic() - t0 < 20


def scrape_until(port: int, within: float, key, done) -> dict:
    """Scrape http://127.0.0.1:PORT/metrics until ``done(samples)`` or ``within`` seconds; the
    samples as {key(sample): value} (``key`` None: left out)."""
    import time
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    deadline, m = time.monotonic() + within, {}
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            time.sleep(0.2)
            continue
        m = {k: s.value for fam in text_string_to_metric_families(body) for s in fam.samples
             if (k := key(s)) is not None}
        if done(m):
            break
        time.sleep(0.3)
    return m


def interrupt(*procs: subprocess.Popen) -> None:
    """Ctrl-C each process, then kill what has not ended within 20 s."""
    for p in procs:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_collect_serves_the_bus_side_on_metrics(nats_single):
    """`collect --metrics-port`: the feed's metrics and the bus's (reachable, waiting, confirmed,
    dropped) on one /metrics, scraped over HTTP while it runs."""
    port = free_port()
    p = subprocess.Popen([*TW, "collect", "--bus", nats_single.url, "--sim", "--name", "m", "--metrics-port", str(port),
                          "--duration", "20", "bybit.linear:publicTrade:BTCUSDT"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        m = scrape_until(port, 20, lambda s: None if s.labels else s.name,
                         lambda m: m.get("tickwire_bus_confirmed_messages_total", 0) >= 5)
        assert m.get("tickwire_bus_confirmed_messages_total", 0) >= 5, sorted(m)
        assert m["tickwire_bus_connected"] == 1 and m["tickwire_bus_dropped_messages_total"] == 0
        assert m["tickwire_collector_events_total"] > 0 and m["tickwire_collector_md_messages_total"] > 0
        assert "tickwire_bus_pending_messages" in m and "tickwire_queue_depth_events" in m  # the feed's too
    finally:
        interrupt(p)


def test_bus_record_serves_metrics(nats_single, tmp_path):
    """`tickwire bus record … --metrics-port` (and `record --bus`): a 24/7 bus recorder is watched like a feed: the bus
    reachable, rows per table, commits and the age of the last one, the committed position."""
    port = free_port()
    col = subprocess.Popen([*TW, "collect", "--bus", nats_single.url, "--sim", "--name", "rm", "--duration", "30",
                            "bybit.linear:publicTrade:BTCUSDT"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec = subprocess.Popen([*TW, "bus", "record", "--bus", nats_single.url, "--durable", "rm", "--out", str(tmp_path / "d"),
                            "--metrics-port", str(port), "--commit-interval", "0.5"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        m = scrape_until(port, 30, lambda s: (s.name, s.labels.get("table", "")),
                         lambda m: m.get(("tickwire_bus_recorder_commits_total", ""), 0) >= 2
                         and m.get(("tickwire_recorder_rows_total", "trades"), 0) > 0)
        assert m.get(("tickwire_recorder_rows_total", "trades"), 0) > 0, (sorted(m), rec.poll(), col.poll())
        assert m[("tickwire_bus_connected", "")] == 1
        assert m[("tickwire_bus_recorder_commits_total", "")] >= 2
        assert m[("tickwire_bus_recorder_committed_md_seq", "")] > 0
        assert 0 <= m[("tickwire_bus_recorder_last_commit_age_seconds", "")] < 10
    finally:
        interrupt(rec, col)
    assert rec.returncode == 0, rec.stderr.read()


def test_record_with_bus_refuses_options_that_do_not_apply():
    """`record --bus … --sim --kinds trades` ran a bus recorder that ignored both without a word."""
    r = subprocess.run([*TW, "record", "--bus", "nats://127.0.0.1:1", "--durable", "x", "--sim", "--kinds", "trades",
                        "md.>"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "--sim, --kinds do not apply with --bus" in r.stderr and "--roll-interval" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
