"""Timing window shared by all runners (stdlib only)."""

from __future__ import annotations

import resource
import time
from typing import Any

from . import TS0


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Meter:
    """Window from just after the first data frame to just after the last one.

    Push-style clients call :meth:`tick` once per data frame handled. Pull-style clients call
    :meth:`at_ts` with the exchange ``ts`` (ms) their state reflects (frame index = ts - TS0).
    Both return True once the last frame (index ``expected - 1``) has been handled.
    """

    def __init__(self, expected_msgs: int) -> None:
        self.expected = expected_msgs
        self.n = 0
        self.first_idx = -1
        self.last_idx = -1
        self.t0 = self.t1 = 0.0
        self.c0 = self.c1 = 0.0
        self.done = False

    def _start(self) -> None:
        self.c0 = cpu_seconds()
        self.t0 = time.perf_counter()

    def _stop(self) -> None:
        self.t1 = time.perf_counter()
        self.c1 = cpu_seconds()
        self.done = True

    def tick(self) -> bool:
        n = self.n = self.n + 1
        if n == 1:
            self.first_idx = 0
            self._start()
        if n >= self.expected and not self.done:
            self.last_idx = n - 1
            self._stop()
        return self.done

    def at_ts(self, ts_ms: int | float) -> bool:
        idx = int(round(ts_ms)) - TS0
        if self.first_idx < 0:
            self.first_idx = idx
            self._start()
        self.n += 1
        if idx >= self.expected - 1 and not self.done:
            self.last_idx = idx
            self._stop()
        return self.done

    def result(self, **extra: Any) -> dict[str, Any]:
        if not self.done:
            raise RuntimeError(f"stream not finished: {self.n} frames seen, expected {self.expected}")
        out: dict[str, Any] = {
            "msgs": self.last_idx - self.first_idx,
            "cpu_s": self.c1 - self.c0,
            "wall_s": self.t1 - self.t0,
            "final_bids": {},
            "final_asks": {},
        }
        out.update(extra)
        return out
