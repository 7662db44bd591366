"""Shared by the SDK runners (run in tests/.venv-sdk; imports nothing from tickwire)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def args() -> tuple[dict[str, Any], str, float]:
    """``runner.py READY_JSON SCENARIO [SECONDS]``."""
    ready = json.loads(sys.argv[1])
    return ready, sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 20.0


def report(ok: bool, **details: Any) -> None:
    print(json.dumps({"ok": ok, **details}, default=str), flush=True)
    sys.exit(0 if ok else 1)


def wait_until(cond: Any, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
