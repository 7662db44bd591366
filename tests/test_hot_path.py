"""The compiled hot path and its pure-Python reference behave the same.

``tickwire/net/_hot.pyx`` (built at install) and ``queue.py`` / ``connection._PyReader``
are twins; the rest of the suite runs whichever is in use (compiled when built), these
tests run both.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tickwire.model import BookUpdate, Gap, Overflow, Trade
from tickwire.net import hot, queue

QUEUES = [pytest.param(queue.EventQueue, id="pure")]
if hot.compiled is not None:
    QUEUES.append(pytest.param(hot.compiled.EventQueue, id="compiled"))


def test_the_compiled_path_is_in_use_when_it_was_built():
    built = list(Path(hot.__file__).parent.glob("_hot.*.so"))
    if not built or os.environ.get("TICKWIRE_PURE_PYTHON"):
        pytest.skip("extension not built here")
    assert hot.compiled is not None and hot.compiled.__file__ == str(built[0])


def _trade(i: int) -> Trade:
    return Trade(venue="bybit", stream="s", recv_ns=i, price="1", size="1", side="buy", trade_id=str(i))


@pytest.mark.parametrize("cls", QUEUES)
async def test_queue_delivers_in_order_and_wakes_a_waiting_consumer(cls):
    q = cls(1000, 0, lambda: None, lambda forced: None)
    got: list = []

    async def consume():
        async for ev in q:
            got.append(ev.trade_id)
            if len(got) == 5:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)  # the consumer waits on an empty queue
    q.push([_trade(0), _trade(1)])
    await asyncio.sleep(0.01)
    q.push([_trade(2)])
    q.push([_trade(3), _trade(4)])
    await asyncio.wait_for(task, 2)
    assert got == ["0", "1", "2", "3", "4"] and len(q) == 0


@pytest.mark.parametrize("cls", QUEUES)
async def test_queue_pauses_at_read_ahead_and_resumes_at_a_quarter(cls):
    calls: list = []
    q = cls(100_000, 8, lambda: calls.append("pause"), lambda forced: calls.append(("resume", forced)))

    def pause():
        q.paused = True
        calls.append("pause")

    def resume(forced):
        q.paused = False
        calls.append(("resume", forced))

    q.on_pause, q.on_resume = pause, resume
    q.push([_trade(i) for i in range(5)])
    assert calls == []
    q.push([_trade(i) for i in range(5, 9)])  # 9 > 8 waiting
    assert calls == ["pause"]
    q.push([_trade(9)])  # already paused: no second pause
    taken = [q.take() for _ in range(8)]  # 2 left <= 8 // 4
    assert calls == ["pause", ("resume", False)] and [t.trade_id for t in taken] == [str(i) for i in range(8)]


@pytest.mark.parametrize("cls", QUEUES)
async def test_queue_overflow_drops_market_data_counts_it_and_keeps_status(cls):
    q = cls(1030, 0, lambda: None, lambda forced: None)  # room before the exact check: 6
    q.push([_trade(i) for i in range(1030)])
    gap = Gap(venue="bybit", stream="s", recv_ns=1, expected=1, received=3)
    q.push([_trade(2000), gap, _trade(2001)])
    assert len(q) == 1030 + 2  # the Overflow marker and the Gap
    assert q.dropped == 2
    evs = [q.take() for _ in range(len(q))]
    ov = [e for e in evs if isinstance(e, Overflow)]
    # the consumer hears of the loss next, ahead of the 1,030 events waiting (not after them)
    assert len(ov) == 1 and ov[0].dropped == 2 and evs[0] is ov[0] and evs[-1] is gap
    assert q.taken == 1032
    q.push([_trade(3000)])  # after the marker was taken, a new overflow gets a new marker
    assert q.take().trade_id == "3000"


@pytest.mark.parametrize("cls", QUEUES)
async def test_queue_error_and_close_end_the_iteration(cls):
    q = cls(1000, 0, lambda: None, lambda forced: None)
    q.push([_trade(0)])
    q.error = RuntimeError("login refused")
    it = q.__aiter__()
    assert (await it.__anext__()).trade_id == "0"  # what was received is delivered first
    with pytest.raises(RuntimeError, match="login refused"):
        await it.__anext__()
    q.error = None
    q.closed = True
    with pytest.raises(StopAsyncIteration):
        await it.__anext__()


@pytest.mark.parametrize("pure", [True, False], ids=["pure", "compiled-if-built"])
def test_live_books_over_both_paths(pure):
    env = dict(os.environ)
    env.pop("TICKWIRE_PURE_PYTHON", None)
    if pure:
        env["TICKWIRE_PURE_PYTHON"] = "1"
    r = subprocess.run([sys.executable, "-m", "tickwire.cli", "tail", "--sim", "okx:books:BTC-USDT",
                        "bybit.linear:orderbook.50:BTCUSDT", "--limit", "400"], capture_output=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    evs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    books = [e for e in evs if e["type"] == "BookUpdate"]
    assert len(evs) == 400 and len(books) > 300
    assert not [e for e in evs if e["type"] in ("Gap", "VenueError")]
    for venue in ("okx", "bybit"):  # every delta continues the previous sequence number
        seqs = [(e["prev_seq"], e["seq"], e["snapshot"]) for e in books if e["venue"] == venue]
        assert seqs and all(b[2] or b[0] == a[1] for a, b in zip(seqs, seqs[1:]))


def test_a_compiled_path_built_for_another_picows_is_not_used(monkeypatch, caplog):
    if hot.compiled is None:
        pytest.skip("extension not built here")
    monkeypatch.setattr(hot.compiled, "PICOWS_BUILT_WITH", "0.0.1")
    with caplog.at_level("WARNING", logger="tickwire.net"):
        assert hot._load() is None
    assert "built for picows 0.0.1" in caplog.text and "pure-Python" in caplog.text
    monkeypatch.undo()
    assert hot._load() is hot.compiled  # and with the right version it is used
