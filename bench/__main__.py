"""tickwire benchmark harness.

    python -m bench                        # every suite (= all, ~8 min), writes bench/RESULTS.md
    python -m bench throughput             # one suite; rewrites only its section of RESULTS.md
    python -m bench latency|scale|record
    python -m bench all --quick            # short smoke run of every suite, prints only

Suites (details in bench/README.md):

  throughput  client CPU per message, pre-generated streams played as fast as the client drains;
              floor, tickwire and the peer libraries (bench/throughput.py)
  latency     200 books x 50 updates/s: added latency p50/p99/p99.9 and CPU %, tickwire and the
              floor (bench/latency.py)
  scale       1,000 subscriptions across venues on tickwire.sim; memory per 1,000 deep books;
              CPU per message with 1 vs 1,000 books at the same rate (bench/scale.py)
  record      the throughput streams with and without a Recorder: cost per message, rows, bytes
              (bench/record.py)

Servers run pinned to one core, every client in a fresh process pinned to the other.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import latency, record, results, scale, throughput
from .common import BENCH_DIR, REPO, Background, pin_harness

SUITES = {"throughput": throughput.run, "latency": latency.run, "scale": scale.run, "record": record.run}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", nargs="?", default="all", choices=["all", *SUITES])
    ap.add_argument("--quick", action="store_true", help="short runs (10k messages per stream, 4 s paced "
                                                          "runs, 1 repeat); prints only unless --out")
    ap.add_argument("--out", help="markdown output (default bench/RESULTS.md; quick: none)")
    throughput.add_arguments(ap)
    latency.add_arguments(ap)
    args = ap.parse_args(argv)

    out = Path(args.out) if args.out else (None if args.quick else BENCH_DIR / "RESULTS.md")
    exe = Path(sys.executable)
    try:
        py = str(exe.relative_to(REPO)) if not exe.is_absolute() or REPO in exe.parents else "python"
    except ValueError:
        py = "python"
    argv_ = argv if argv is not None else sys.argv[1:]
    server_cpu, client_cpu, pinning = pin_harness()
    names = list(SUITES) if args.suite == "all" else [args.suite]
    t_all = time.perf_counter()
    for name in names:
        # the command that regenerates this section (suite named explicitly, options kept)
        opts = [a for a in argv_ if a not in ("all", *SUITES)]
        command = f"{py} -m bench {name} " + " ".join(shlex.quote(a) for a in opts)
        ctx = {"server_cpu": server_cpu, "client_cpu": client_cpu, "pinning": pinning,
               "command": command.strip(), "background": Background()}
        t = time.perf_counter()
        print(f"== {name} ==", file=sys.stderr, flush=True)
        body, summary = SUITES[name](args, ctx)
        print(f"\n{summary}\n\n[{name}] {time.perf_counter() - t:.0f} s; {pinning}\n", flush=True)
        if out is not None:
            results.update(out, name, body)
            print(f"wrote the {name} section of {out}", flush=True)
    if len(names) > 1:
        print(f"all suites: {time.perf_counter() - t_all:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
