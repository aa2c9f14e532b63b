#!/usr/bin/env python3
"""Benchmark logtail side by side with GNU ``tail -n+1 -F`` and busybox ``tail -n+1 -F`` (issues 5, 12).

One command, public tools only (GNU coreutils ``tail``, ``sed``, busybox if installed), stdlib + psutil::

    python bench/run.py              # full run, about 8 minutes
    python bench/run.py --quick      # shorter files and windows, about 2 minutes
    python bench/run.py --only delay,steady
    python bench/run.py --logtail 'logtail'          # command used for logtail
    python bench/run.py --logtail gnu                # stand GNU tail in for logtail (checks the harness)

Probes (``--only`` takes exact names, or prefixes such as ``idle``, comma separated):

  catchup            pre-written file of 2,000,000 lines x 100 bytes: launch until all lines are out on
                     stdout; median of up to 5 runs per tool, alternating order
  catchup-prefix     the same with --prefix '[app] ' (GNU: tail -n+1 -F | sed -u, once, capped at 20 s)
  catchup-multiline  --multiline 'start:^\\d{4}-\\d\\d-\\d\\d' on 2,000,000 lines of ISO-dated records
                     with a 10-line trace every 100 lines (GNU tail: plain, for reference); "n/a" when
                     logtail's --help has no --multiline
  stalled            catch-up of the big file into a stdout pipe nobody reads for 5 s: peak RSS
  steady-N           a writer process appends one 80-byte line per write() at N = 100, 1,000, 10,000 lines/s
                     for 10 s: CPU of the tool's processes in % of a core; every line counted
  delay              one line every 250 ms for 25 s (100 lines): write-to-arrival p50/p99
  delay-prefix       the same with the prefix (sed pipeline for GNU)
  delay-load         one line per write() at 2,000 lines/s for 10 s: write-to-arrival p50/p99
  idle-2             CPU share and peak RSS (VmHWM) over 20 s with 2 idle files; every tool in the same window
  idle-1000          the same with 1,000 idle files (logtail: a glob; the tails: 1,000 arguments and -q)
  startup            launch until the first line of an existing file arrives (median of 7, after a warm-up)
  manyfiles          1,000 files written round-robin (50 lines per file per round, 20 rounds) by a thread of
                     this process: lines/s from the first write until all lines arrived

logtail runs as the ``logtail`` console script beside this interpreter (not a pyenv shim: that cost 40-110
ms per start here), else ``logtail`` on PATH, else ``python -m logtail``, with PYTHONPATH set to this
repository either way; LOGTAIL_* variables are removed from its environment.  CPU is on-CPU time from
/proc/PID/task/*/schedstat (psutil's 10 ms ticks when those saw clearly more).  Numbers move with other
load on the machine: the load average at the start is printed with the results.

The table (markdown) goes to stdout and to bench/results/latest.md.  Every child runs in its own process
group and is killed (SIGKILL to the group) when its measurement ends, on errors, on Ctrl-C/SIGTERM and
when the global time limit (--max-seconds) strikes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/run.py`: make `bench` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import tools
from bench.context import Ctx, Settings
from bench.harness import REPO, BenchTimeout, Failure, kill_all
from bench.probes import PROBES
from bench.report import Results, Row, machine_info, render


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller files, shorter windows (about 2 minutes)")
    ap.add_argument(
        "--only", default="", help="comma-separated probe names or prefixes: " + ", ".join(PROBES)
    )
    ap.add_argument(
        "--logtail",
        default=None,
        help="command for logtail (default: the `logtail` script beside this Python, else on PATH, else "
        "`python -m logtail`, with "
        f"PYTHONPATH={REPO}); 'gnu' stands GNU tail in for logtail",
    )
    ap.add_argument(
        "--out", default=str(REPO / "bench" / "results" / "latest.md"), help="markdown output file"
    )
    ap.add_argument("--tmpdir", default=None, help="where the test files go (default: system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--max-seconds", type=float, default=1200, help="hard limit for the whole run")
    args = ap.parse_args()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    # an exact name selects that probe; anything else is a prefix ("idle" = idle-2 and idle-1000)
    selected = [
        name
        for name in PROBES
        if not wanted or any(name == w or (w not in PROBES and name.startswith(w)) for w in wanted)
    ]
    if not selected:
        ap.error(f"--only matches none of {', '.join(PROBES)}")
    for tool in ("tail", "sed"):
        if not shutil.which(tool):
            ap.error(f"{tool} not found on PATH")
    return args, selected


def prepare(max_seconds: float) -> None:
    """Compiled bytecode, enough descriptors for 1,000 files, and signals that stop the run cleanly."""
    # An installed wheel (and the image) ships compiled bytecode; a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile every module at every start. Measure the former.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "logtail")], check=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    def on_alarm(*_: object) -> None:
        raise BenchTimeout(f"benchmark exceeded --max-seconds={max_seconds:g}")

    def on_term(*_: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started with SIGINT ignored
    signal.alarm(int(max_seconds))


def run_probes(ctx: Ctx, selected: list[str]) -> None:
    """Each selected probe in turn; an error costs that probe only, the time limit ends the run."""
    for name in selected:
        n_rows = len(ctx.res.rows)
        os.sync()
        try:
            PROBES[name](ctx)
        except (Failure, OSError, ValueError) as e:
            ctx.res.detail(f"ERROR in {name}: {e}")
            if len(ctx.res.rows) == n_rows:
                ctx.res.rows.append(Row(name, "", err=str(e)[:300]))
        except BenchTimeout as e:
            ctx.res.detail(f"STOPPED in {name}: {e}")
            ctx.res.rows.append(Row(name, "", err=f"not finished: {e}"))
            break
        finally:
            kill_all()


def main() -> int:
    args, selected = parse_args()
    prepare(args.max_seconds)
    settings = Settings.for_mode(args.quick)
    lt, busybox = tools.logtail(args.logtail), tools.busybox_tail()
    header = machine_info(lt, busybox)
    print("\n".join(header), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="logtail-bench-", dir=args.tmpdir))
    ctx = Ctx(settings, lt, tools.gnu_tail(), busybox, tmp, Results())
    t_start = time.monotonic()
    try:
        run_probes(ctx, selected)
    finally:
        kill_all()
        signal.alarm(0)
        if args.keep:
            print(f"(kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    mode = ("quick" if args.quick else "full") + (
        "" if len(selected) == len(PROBES) else f" (only {', '.join(selected)})"
    )
    runtime = f"{mode}; bench runtime {time.monotonic() - t_start:.0f} s"
    text = render(ctx.res, header, runtime, busybox is not None)
    print("\n" + text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
