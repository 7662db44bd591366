"""Shared test helpers: recorded frames location, simulator fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

RECORDED = Path(os.environ.get("TICKWIRE_RECORDED_DIR", Path(__file__).resolve().parents[2] / "shared" / "recorded"))


def recorded(name: str) -> Path:
    """Path of a shared recorded-frames file; skips the test when the folder is absent."""
    p = RECORDED / name
    if not p.exists():
        pytest.skip(f"recorded frames not available: {p} (set TICKWIRE_RECORDED_DIR)")
    return p
