"""Which hot path runs: the compiled twin (``_hot.pyx``) when built, else the reference.

The compiled module cimports picows, so it is used only with the picows version it was
built against. ``TICKWIRE_PURE_PYTHON=1`` forces the pure-Python reference (the test suite
runs a live stream both ways).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

log = logging.getLogger("tickwire.net")


def _load() -> ModuleType | None:
    if os.environ.get("TICKWIRE_PURE_PYTHON"):
        return None
    try:
        from tickwire.net import _hot
    except ImportError:
        return None
    import picows

    if _hot.PICOWS_BUILT_WITH != picows.__version__:
        log.warning("tickwire's compiled hot path was built for picows %s but %s is installed; using the "
                    "pure-Python path (reinstall tickwire to rebuild it)", _hot.PICOWS_BUILT_WITH, picows.__version__)
        return None
    return _hot


compiled = _load()
"""The compiled module, or None when the pure-Python reference is in use."""
