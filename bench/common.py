"""Helpers shared by the latency, scale and record suites (harness side and client side)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


# ------------------------------------------------------------------------------ harness side


def pin_harness() -> tuple[int | None, int | None, str]:
    """(server_cpu, client_cpu, description). The harness waits on the server's core."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) >= 2:
        server_cpu, client_cpu = cpus[0], cpus[1]
        os.sched_setaffinity(0, {server_cpu})
        return server_cpu, client_cpu, (f"server and harness on CPU {server_cpu}, "
                                        f"each client process on CPU {client_cpu}")
    return None, None, "none (fewer than 2 CPUs available); server and client share the machine"


def run_child(argv: list[str], cpu: int | None, timeout: float, python: str | None = None) -> dict[str, Any]:
    """Run ``python -m <argv> --out FILE [--cpu N]`` in a fresh process; its JSON result, or an error row."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [python or sys.executable, "-m", *argv, "--out", str(out)]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "error", "reason": f"timed out after {timeout:.0f} s"}
        if not out.exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
            return {"status": "error", "reason": f"process exited {proc.returncode}: {' | '.join(tail)}"}
        return json.loads(out.read_text())


def run_func(target: str, kwargs: dict[str, Any], cpu: int | None, timeout: float) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh project-venv process (``bench.suite_runner``)."""
    res = run_child(["bench.suite_runner", target, "--kwargs", json.dumps(kwargs)], cpu, timeout)
    if res.get("status") != "ok" and res.get("traceback"):
        print(res["traceback"], file=sys.stderr)
    return res


def write_result(res: dict[str, Any], path: str) -> None:
    """A child's last act: write its result and leave at once (clients may leave threads behind)."""
    res["python"] = sys.version.split()[0]
    with open(path, "w") as f:
        json.dump(res, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ------------------------------------------------------------------------------- client side


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_bytes() -> int:
    """Current resident set size of this process (``VmRSS``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (``VmHWM``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def percentiles(values: Sequence[int], qs: Sequence[float] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """Nearest-rank percentiles of ``values`` plus ``max`` and ``n`` (values unsorted)."""
    v = sorted(values)
    n = len(v)
    out: dict[str, float] = {"n": n}
    if not n:
        return out
    for q in qs:
        k = min(n - 1, max(0, int(-(-q * n // 100)) - 1))  # ceil(q/100*n) - 1
        out[f"p{q:g}"] = v[k]
    out["max"] = v[-1]
    out["mean"] = sum(v) / n
    return out


def new_loop() -> Any:
    import asyncio

    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()


class Background:
    """CPU used by processes other than this harness and its children while a suite runs.

    Machine-wide busy time (``/proc/stat``) minus this process's and its reaped children's CPU
    (``getrusage``: the servers and client processes). Shown in RESULTS.md: a busy machine
    makes latency tails and CPU numbers worse, so a reader can tell a noisy run.
    """

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.b0 = self._busy()
        self.o0 = self._ours()

    @staticmethod
    def _busy() -> float:
        try:
            with open("/proc/stat") as f:
                parts = f.readline().split()
        except OSError:
            return float("nan")
        v = [int(x) for x in parts[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def others_pct(self) -> float:
        """Average CPU of other processes, in % of one core."""
        wall = time.monotonic() - self.t0
        if wall <= 0:
            return 0.0
        return max(0.0, 100.0 * ((self._busy() - self.b0) - (self._ours() - self.o0)) / wall)
