"""Sliding-window rate limits: how we keep under every venue's connection/request rules."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class SlidingWindow:
    """At most ``count`` events in any ``window_s`` seconds (exact, not a token bucket)."""

    __slots__ = ("count", "window_ns", "times")

    def __init__(self, count: int, window_s: float) -> None:
        self.count = count
        self.window_ns = int(window_s * 1e9)
        self.times: deque[int] = deque()

    def wait_ns(self, now_ns: int, reserve: int = 0) -> int:
        """0 if an event may happen now (keeping ``reserve`` slots free), else ns to wait."""
        t = self.times
        horizon = now_ns - self.window_ns
        while t and t[0] <= horizon:
            t.popleft()
        room = self.count - reserve
        if len(t) < room:
            return 0
        if room <= 0:
            return self.window_ns
        return t[len(t) - room] - horizon + 1

    def record(self, now_ns: int) -> None:
        self.times.append(now_ns)


class MultiWindow:
    """Several sliding windows at once (e.g. OKX: 3/s and the venue's longer limits)."""

    def __init__(self, rates: tuple[tuple[int, float], ...]) -> None:
        self.windows = [SlidingWindow(c, w) for c, w in rates]

    def wait_ns(self, now_ns: int, reserve: int = 0) -> int:
        return max((w.wait_ns(now_ns, reserve) for w in self.windows), default=0)

    def record(self, now_ns: int) -> None:
        for w in self.windows:
            w.record(now_ns)

    async def acquire(self) -> float:
        """Wait until allowed, record, and return the seconds waited."""
        waited = 0.0
        while True:
            now = time.monotonic_ns()
            ns = self.wait_ns(now)
            if ns <= 0:
                self.record(now)
                return waited
            await asyncio.sleep(ns / 1e9)
            waited += ns / 1e9


def backoff_delay(attempt: int, base_s: float, cap_s: float, rand: float) -> float:
    """Capped exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return rand * min(cap_s, base_s * (2 ** min(attempt, 30)))
