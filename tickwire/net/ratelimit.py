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


SHORT_WINDOW_S = 10.0  # windows up to this long are where jitter can squeeze sends together


class Pacer:
    """Pacing a venue accepts although it counts on *its* clock, after network and scheduling jitter.

    ``frame_windows`` count every frame we send (BG Exchange: 50 per second, pongs included),
    ``request_windows`` only what :meth:`record` records (OKX: 480 subscribe/login requests an
    hour), each as the venue documents it: ``(count, window_s)``. For a short window (<= 10 s)
    we keep ``margin`` of it free and spread sends evenly, at least ``window / (count * (1 -
    margin))`` apart: a burst at the start of our window can arrive squeezed into one of the
    venue's, and a pause (a busy event loop) saves up no credit for a burst afterwards. Long
    windows (an hour) are not distorted by milliseconds of jitter: their counts are used as the
    venue module declares them (already below the venue's number).
    """

    def __init__(self, frame_windows: list[tuple[float, float]] = (), request_windows: list[tuple[float, float]] = (),
                 margin: float = 0.2) -> None:
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1): {margin!r}")

        def window(count: float, w: float) -> SlidingWindow:
            keep = count * (1 - margin) if w <= SHORT_WINDOW_S else count
            return SlidingWindow(max(1, int(keep)), w)

        self.frames = [window(c, w) for c, w in frame_windows]
        self.requests = [window(c, w) for c, w in request_windows]
        gaps = [w / (c * (1 - margin)) for c, w in list(frame_windows) + list(request_windows) if w <= SHORT_WINDOW_S]
        self.spacing_ns = int(max(gaps, default=0.0) * 1e9)
        self.last_ns: int | None = None

    def wait_ns(self, now_ns: int) -> int:
        """0 if a request may go now, else how long to wait."""
        wait = 0
        for w in self.frames:
            wait = max(wait, w.wait_ns(now_ns))
        for w in self.requests:
            wait = max(wait, w.wait_ns(now_ns))
        if self.spacing_ns and self.last_ns is not None:
            wait = max(wait, self.last_ns + self.spacing_ns - now_ns)
        return wait

    def record(self, now_ns: int) -> None:
        """A request goes now (counts in the request windows)."""
        for w in self.requests:
            w.record(now_ns)

    def sent_any(self, now_ns: int) -> None:
        """Any frame went now (counts in the frame windows and the spacing)."""
        for w in self.frames:
            w.record(now_ns)
        self.last_ns = now_ns

    async def acquire(self) -> float:
        """Wait until a request is allowed, take it, and return the seconds waited."""
        waited = 0.0
        while True:
            now = time.monotonic_ns()
            ns = self.wait_ns(now)
            if ns <= 0:
                self.record(now)
                self.sent_any(now)
                return waited
            await asyncio.sleep(ns / 1e9)
            waited += ns / 1e9


def backoff_delay(attempt: int, base_s: float, cap_s: float, rand: float) -> float:
    """Capped exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return rand * min(cap_s, base_s * (2 ** min(attempt, 30)))
