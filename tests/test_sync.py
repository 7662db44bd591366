"""The synchronous API: tickwire.iterate / tickwire.run, with the feed's guarantees."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tickwire
from tickwire.model import BookSnapshot, BookUpdate, Overflow, Trade
from tickwire.subscription import SpecError


def _feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tickwire-feed"]


def test_iterate_in_a_plain_for_loop_and_break_closes_it():
    n = 0
    kinds = set()
    for ev in tickwire.iterate("okx:books:BTC-USDT", "okx:books:BTC-USDT@snapshot5_100ms", sim=True):
        kinds.add(type(ev))
        n += 1
        if BookSnapshot in kinds and n > 50:
            break
    assert BookUpdate in kinds and BookSnapshot in kinds
    deadline = time.monotonic() + 5
    while _feed_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _feed_threads()


def test_a_slow_consumer_loses_nothing_between_iterations():
    """A consumer much slower than the feed, behind a tiny handoff: the book chain has no hole,
    no Overflow, and the loop thread was never blocked (the feed kept its connection)."""
    last: dict[str, int] = {}
    holes = 0
    n = 0
    with tickwire.iterate("bybit.linear:orderbook.50:BTCUSDT", sim={"options": {"bybit": {"speed": 4}}},
                          handoff=20, duration=3.0) as it:
        for ev in it:
            assert not isinstance(ev, Overflow)
            if isinstance(ev, BookUpdate):
                if not ev.snapshot and ev.stream in last and ev.prev_seq != last[ev.stream]:
                    holes += 1
                last[ev.stream] = ev.seq
                n += 1
                if n % 10 == 0:
                    time.sleep(0.1)  # slow: 100 book events/s at most
        waits = it._bridge.full_waits
    assert n > 50 and holes == 0
    assert waits > 0  # the handoff did fill: the feed held the rest
    assert not _feed_threads()


def test_run_calls_back_until_the_duration():
    trades = []
    n = tickwire.run(["okx:trades:BTC-USDT"], on_event=lambda ev: trades.append(ev) if isinstance(ev, Trade) else None,
                     sim=True, duration=1.5)
    assert n >= len(trades) > 0
    assert not _feed_threads()


def test_an_exception_in_the_callback_closes_the_feed_and_propagates():
    def boom(ev):
        if isinstance(ev, BookUpdate):
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        tickwire.run("okx:books:BTC-USDT", on_event=boom, sim=True, duration=10)
    assert not _feed_threads()


def test_errors_are_raised_in_the_callers_thread():
    with pytest.raises(SpecError):
        tickwire.iterate("okx:books:BTC-USDT@nonsense", sim=True)
    assert not _feed_threads()


def test_subscribe_and_call_on_a_running_feed():
    with tickwire.iterate("okx:trades:BTC-USDT", sim=True, duration=5) as it:
        seen = set()
        subscribed = False
        for ev in it:
            seen.add(ev.stream)
            if not subscribed and "okx:trades:BTC-USDT" in seen:
                subscribed = True
                it.subscribe("okx:books:BTC-USDT@quotes")
            if "okx:books:BTC-USDT@quotes" in seen:
                break
        assert "okx:books:BTC-USDT@quotes" in seen
        stats = it.call(lambda f: f.stats())
        assert isinstance(stats, list) and stats


@pytest.mark.parametrize("api", ["iterate", "run"])
def test_ctrl_c_shuts_down_cleanly(tmp_path, api):
    script = tmp_path / "s.py"
    body = {
        "iterate": """
            try:
                for ev in tickwire.iterate("okx:books:BTC-USDT", "okx:trades:BTC-USDT", sim=True):
                    if not ready:
                        print("ready", flush=True)
                        ready.append(1)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
        """,
        "run": """
            def on(ev):
                if not ready:
                    print("ready", flush=True)
                    ready.append(1)
            n = tickwire.run(["okx:books:BTC-USDT"], on_event=on, sim=True)
            print("returned", n > 0, flush=True)
        """,
    }[api]
    script.write_text("import threading, tickwire\nready = []\n" + textwrap.dedent(body) + textwrap.dedent("""
        alive = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
        print("threads", [t.name for t in threading.enumerate() if t.name == "tickwire-feed"], alive, flush=True)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    assert ("interrupted" if api == "iterate" else "returned True") in out
    assert "threads [] []" in out, out
    assert "Traceback" not in err, err
