"""Run one measurement function of the latency/scale/record suites in a fresh process.

    python -m bench.suite_runner MODULE:FUNCTION --kwargs JSON --out FILE [--cpu N]

Like ``bench/runner.py`` (which runs the throughput clients): the process pins itself to one
core, installs the loopback guard, calls ``MODULE.FUNCTION(**kwargs)`` and writes its dict
result (plus ``status``) as JSON, then leaves with ``os._exit`` so stray threads cannot hang it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from typing import Any

from .common import write_result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("target", help="module:function, e.g. bench.clients.latency:tickwire_run")
    ap.add_argument("--kwargs", default="{}")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cpu", type=int, default=None)
    a = ap.parse_args(argv)
    from bench.runner import prepare_child

    prepare_child(a.cpu)
    mod_name, _, func_name = a.target.partition(":")
    res: dict[str, Any]
    try:
        func = getattr(importlib.import_module(mod_name), func_name)
        res = func(**json.loads(a.kwargs))
        res["status"] = "ok"
    except Exception as e:  # reported in the table, never hidden
        res = {"status": "error", "reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    write_result(res, a.out)


if __name__ == "__main__":
    sys.exit(main())
