"""tickwire benchmark harness.

    python -m bench                        # every suite (= all, ~8 min), writes bench/RESULTS.md
    python -m bench throughput             # one suite; rewrites only its section of RESULTS.md
    python -m bench latency|scale|record
    python -m bench all --quick            # short smoke run of every suite, prints only
    python -m bench chaos                  # faults against the simulator's ground truth (~10 min; not in all)
    python -m bench fuzz                   # 1M+ mutated frames through every venue's decoder (not in all)

Suites (details in bench/README.md):

  throughput  client CPU per message, pre-generated streams played as fast as the client drains;
              floor, tickwire and the peer libraries (bench/throughput.py)
  latency     200 books x 50 updates/s: added latency p50/p99/p99.9 and CPU %, tickwire and the
              floor (bench/latency.py)
  scale       1,000 subscriptions across venues on tickwire.sim; memory per 1,000 deep books;
              CPU per message with 1 vs 1,000 books at the same rate (bench/scale.py)
  record      the throughput streams with and without a Recorder: cost per message, rows, bytes
              (bench/record.py)
  chaos       every venue under every applicable fault, checked against the simulator's ground
              truth: detected, resynced, exact books, trades lost/duplicated, bans, silence
              (bench/chaos.py; not part of all)
  fuzz        structure-aware mutations of recorded and simulated frames through every venue's
              session: nothing raised, nothing hung, no corrupt book delivered as valid; inputs/s
              (bench/fuzz.py; not part of all)

Servers run pinned to one core, every client in a fresh process pinned to the other (chaos and
fuzz are not pinned: chaos pins its own loaded simulator).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import chaos, fuzz, latency, record, results, scale, throughput
from .common import BENCH_DIR, REPO, Background, pin_harness

SUITES = {"throughput": throughput.run, "latency": latency.run, "scale": scale.run, "record": record.run}
EXTRA = {"chaos": chaos.run, "fuzz": fuzz.run}  # run by name only, unpinned


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", nargs="?", default="all", choices=["all", *SUITES, *EXTRA])
    ap.add_argument("--quick", action="store_true", help="short runs (10k messages per stream, 4 s paced "
                                                          "runs, 1 repeat); prints only unless --out")
    ap.add_argument("--out", help="markdown output (default bench/RESULTS.md; quick: none)")
    throughput.add_arguments(ap)
    latency.add_arguments(ap)
    chaos.add_arguments(ap)
    fuzz.add_arguments(ap)
    args = ap.parse_args(argv)

    out = Path(args.out) if args.out else (None if args.quick else BENCH_DIR / "RESULTS.md")
    exe = Path(sys.executable)
    try:
        py = str(exe.relative_to(REPO)) if not exe.is_absolute() or REPO in exe.parents else "python"
    except ValueError:
        py = "python"
    argv_ = argv if argv is not None else sys.argv[1:]
    names = list(SUITES) if args.suite == "all" else [args.suite]
    if args.suite in EXTRA:
        server_cpu, client_cpu, pinning = None, None, "none (chaos and fuzz run unpinned)"
    else:
        server_cpu, client_cpu, pinning = pin_harness()
    t_all = time.perf_counter()
    for name in names:
        # the command that regenerates this section (suite named explicitly, options kept)
        opts = [a for a in argv_ if a not in ("all", *SUITES, *EXTRA)]
        command = f"{py} -m bench {name} " + " ".join(shlex.quote(a) for a in opts)
        ctx = {"server_cpu": server_cpu, "client_cpu": client_cpu, "pinning": pinning,
               "command": command.strip(), "background": Background()}
        t = time.perf_counter()
        print(f"== {name} ==", file=sys.stderr, flush=True)
        body, summary = {**SUITES, **EXTRA}[name](args, ctx)
        print(f"\n{summary}\n\n[{name}] {time.perf_counter() - t:.0f} s; {pinning}\n", flush=True)
        if out is not None:
            results.update(out, name, body)
            print(f"wrote the {name} section of {out}", flush=True)
    if len(names) > 1:
        print(f"all suites: {time.perf_counter() - t_all:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
