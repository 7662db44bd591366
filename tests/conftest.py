"""Shared test helpers: recorded frames location, collecting a feed's events."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

RECORDED = Path(os.environ.get("TICKWIRE_RECORDED_DIR", Path(__file__).resolve().parents[2] / "shared" / "recorded"))


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true", default=False,
                     help="rewrite tests/golden/*.events.jsonl from the recorded captures (review the diff); "
                          "TICKWIRE_REGEN_GOLDEN=1 does the same")


@pytest.fixture
def regen_golden(request) -> bool:
    """True when golden files are to be rewritten: --regen-golden or TICKWIRE_REGEN_GOLDEN=1."""
    env = os.environ.get("TICKWIRE_REGEN_GOLDEN", "").strip().lower()
    return bool(request.config.getoption("--regen-golden")) or env in ("1", "true", "yes", "on")


def recorded(name: str) -> Path:
    """Path of a shared recorded-frames file; skips the test when the folder is absent."""
    p = RECORDED / name
    if not p.exists():
        pytest.skip(f"recorded frames not available: {p} (set TICKWIRE_RECORDED_DIR)")
    return p


async def collect(feed, until, timeout=15.0, limit=None):
    """Events of ``feed`` until ``until(events)`` is true (bounded in time, and in count when
    ``limit`` is given); ``TimeoutError`` after ``timeout`` seconds."""
    out = []
    async with asyncio.timeout(timeout):
        async for ev in feed:
            out.append(ev)
            if until(out) or (limit is not None and len(out) >= limit):
                return out
    return out


async def drain_books_after_a_stall(feed, expected_msgs, timeout=60.0):
    """Consume ``expected_msgs`` BookUpdates, stalling 0.1 s after the first (less than
    ``max_pause_s``, so the socket fills behind a fast sender); returns the last book and the
    number of events waiting, sampled every 100 updates. A Disconnected fails the test."""
    from tickwire.model import BookUpdate, Disconnected

    n, book, pending = 0, None, []
    async with asyncio.timeout(timeout):
        async for ev in feed:
            if isinstance(ev, BookUpdate):
                n += 1
                book = ev.book
                if n == 1:
                    await asyncio.sleep(0.1)
                if n % 100 == 0:
                    pending.append(feed.pending())
                if n == expected_msgs:
                    return book, pending
            elif isinstance(ev, Disconnected):
                pytest.fail(ev.reason)
    return book, pending
