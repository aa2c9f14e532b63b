#!/usr/bin/env python3
"""Benchmark logtail side by side with GNU ``tail -n+1 -F`` (issue 5).

One command, public tools only (GNU coreutils ``tail``, ``sed``), stdlib + psutil::

    python bench/run.py              # full run, a few minutes
    python bench/run.py --quick      # shorter run (smaller files, shorter windows)
    python bench/run.py --only delay,startup
    python bench/run.py --logtail 'logtail'          # command used for logtail
    python bench/run.py --logtail gnu                # stand GNU tail in for logtail (checks the harness)

Scenarios (``--only`` takes exact names, or prefixes such as ``idle``, comma separated):

  catchup          pre-written file of 2,000,000 lines x 100 bytes: launch until all lines are out on stdout
                   (newlines counted in 1 MiB reads); median of up to 5 runs per tool, alternating order
  catchup-prefix   the same with a prefix: logtail --prefix '[app] ' vs tail -n+1 -F | sed -u 's/^/[app] /';
                   the sed pipeline (~25 k lines/s) runs once, capped at 20 s: lines/s over what arrived
  delay            one line every 10 ms for 4 s, each carrying its write time (monotonic_ns); write to
                   arrival on stdout, p50/p99; also on-CPU time per line of the tool's processes
  delay-prefix     the same with the prefix (sed pipeline for GNU)
  idle-2           CPU share (scheduler ns from /proc/PID/task/*/schedstat, psutil ticks as fallback) and
                   peak RSS (VmHWM) over 20 s with 2 idle files; both tools run in the same window
  idle-1000        the same with 1,000 idle files (logtail: a glob; GNU tail: 1,000 arguments and -q)
  startup          launch until the first line of an existing file arrives (median of 7, after a warm-up)
  manyfiles        1,000 files written round-robin (50 lines per file per round, 20 rounds) by a thread
                   of this process: lines/s from the first write until all lines arrived; a tool that
                   keeps up with the writer is marked (its number is then the writer's speed)

logtail runs as ``logtail`` if that is on PATH, else ``python -m logtail``, with PYTHONPATH set to this
repository either way; LOGTAIL_* variables are removed from its environment.  ``--quick`` uses 500,000
lines, 2 s of delay, 5 s idle windows, 3 start-ups and 5 rounds: about 40 s.  Numbers move with other
load on the machine: the load average at the start is printed with the results.

The table (markdown) goes to stdout and to bench/results/latest.md.  Every child runs in its own process
group and is killed (SIGKILL to the group) when its measurement ends, on errors, on Ctrl-C/SIGTERM and
when the global time limit (--max-seconds) strikes.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import glob as globmod
import os
import platform
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
PREFIX = "[app] "
LINE_LEN = 100  # bytes per line, newline included
READ_CHUNK = 1 << 20
HAVE_SCHEDSTAT = os.path.exists("/proc/self/schedstat")

# ---------------------------------------------------------------------------------------------------------
# process handling


_LIVE: dict[int, Runner] = {}


def _kill_all() -> None:
    for r in list(_LIVE.values()):
        r.kill()


atexit.register(_kill_all)


class Runner:
    """A command or a pipeline (list of argv) in one new process group; stdout of the last one is a pipe."""

    def __init__(self, argvs: list[list[str]], env: dict[str, str] | None, stderr_path: Path) -> None:
        self.argvs = argvs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "ab")  # noqa: SIM115 - closed in kill()
        self.pgid: int | None = None
        self.t_launch = time.monotonic_ns()
        prev_out = None
        try:
            for i, argv in enumerate(argvs):
                last = i == len(argvs) - 1
                p = subprocess.Popen(
                    argv,
                    stdin=prev_out if prev_out is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=self._stderr,
                    env=env,
                    process_group=0 if self.pgid is None else self.pgid,
                    close_fds=True,
                )
                if self.pgid is None:
                    self.pgid = p.pid
                    _LIVE[self.pgid] = self
                if prev_out is not None:
                    prev_out.close()  # the pipe now belongs to the two children only
                self.procs.append(p)
                prev_out = p.stdout if not last else None
        except BaseException:
            self.kill()
            raise
        out = self.procs[-1].stdout
        assert out is not None
        self.fd = out.fileno()
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)
        self.eof = False

    # -- reading -------------------------------------------------------------------------------------------
    def read(self, timeout_s: float) -> bytes | None:
        """One chunk (up to 1 MiB) if something arrives within timeout_s; None on timeout; b"" on EOF."""
        if self.eof:
            return b""
        ev = self.poller.poll(max(0.0, timeout_s) * 1000.0)
        if not ev:
            return None
        data = os.read(self.fd, READ_CHUNK)
        if not data:
            self.eof = True
        return data

    # -- measuring -----------------------------------------------------------------------------------------
    def _tree(self) -> list[psutil.Process]:
        out: list[psutil.Process] = []
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                pp = psutil.Process(p.pid)
                out.append(pp)
                out.extend(pp.children(recursive=True))
        return out

    def cpu_seconds(self) -> float:
        """user+system of the whole tree (live descendants, and reaped children via children_*)."""
        total = 0.0
        for pp in self._tree():
            with contextlib.suppress(psutil.Error):
                t = pp.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def sched_ns(self) -> int:
        """On-CPU ns from /proc/PID/task/*/schedstat (live threads only; finer than psutil ticks)."""
        total = 0
        for pp in self._tree():
            with contextlib.suppress(OSError):
                for tid in os.listdir(f"/proc/{pp.pid}/task"):
                    with contextlib.suppress(OSError), open(f"/proc/{pp.pid}/task/{tid}/schedstat") as f:
                        total += int(f.read().split()[0])
        return total

    def ctx_switches(self) -> int:
        total = 0
        for pp in self._tree():
            with contextlib.suppress(psutil.Error):
                c = pp.num_ctx_switches()
                total += c.voluntary + c.involuntary
        return total

    def _status_kib(self, key: str) -> int:
        total = 0
        for pp in self._tree():
            with contextlib.suppress(OSError), open(f"/proc/{pp.pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        return total

    def hwm_kib(self) -> int:
        """Peak RSS (VmHWM) summed over the tree."""
        return self._status_kib("VmHWM")

    def rss_kib(self) -> int:
        return self._status_kib("VmRSS")

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def stderr_tail(self, n: int = 600) -> str:
        try:
            data = self.stderr_path.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode(errors="replace").strip()

    def kill(self) -> None:
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
            _LIVE.pop(self.pgid, None)
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
            if p.stdout is not None:
                p.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


# ---------------------------------------------------------------------------------------------------------
# the two tools


@dataclass
class Tool:
    key: str  # "logtail" or "gnu"
    label: str
    build: Callable[[list[str], str | None, bool], list[list[str]]]  # (paths or glob, prefix, is_glob)
    env: dict[str, str] | None


def gnu_build(paths: list[str], prefix: str | None, is_glob: bool) -> list[list[str]]:
    files = sorted(globmod.glob(paths[0])) if is_glob else paths
    argvs = [["tail", "-q", "-n+1", "-F", *files]]
    if prefix is not None:
        # sed's replacement side: only \, & and the delimiter are special ([ is literal but harmless quoted)
        rep = prefix.replace("\\", "\\\\").replace("/", "\\/").replace("&", "\\&")
        argvs.append(["sed", "-u", f"s/^/{rep}/"])
    return argvs


def make_logtail(spec: str | None) -> Tool:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGTAIL_")}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if spec == "gnu":
        return Tool("logtail", "GNU tail standing in for logtail", gnu_build, None)
    if spec:
        base = shlex.split(spec)
    elif shutil.which("logtail"):
        base = ["logtail"]
    else:
        base = [sys.executable, "-m", "logtail"]

    def build(paths: list[str], prefix: str | None, is_glob: bool) -> list[list[str]]:
        argv = list(base)
        if prefix is not None:
            argv += ["--prefix", prefix]
        return [argv + paths]

    return Tool("logtail", " ".join(shlex.quote(a) for a in base), build, env)


GNU = Tool("gnu", "GNU tail -n+1 -F", gnu_build, None)


# ---------------------------------------------------------------------------------------------------------
# helpers


def now_ns() -> int:
    return time.monotonic_ns()


def write_lines_file(path: Path, n: int, tag: bytes = b"") -> None:
    """n lines of exactly LINE_LEN bytes, numbered."""
    with open(path, "wb") as f:
        batch = 10_000
        for start in range(0, n, batch):
            end = min(n, start + batch)
            parts = []
            for i in range(start, end):
                head = b"%s%09d " % (tag, i)
                parts.append(head + b"x" * (LINE_LEN - 1 - len(head)) + b"\n")
            f.write(b"".join(parts))


def wait_lines(r: Runner, n: int, timeout_s: float) -> tuple[int, int | None]:
    """Read until n newlines arrived; returns (lines seen, arrival time ns or None on timeout/EOF)."""
    seen = 0
    deadline = time.monotonic() + timeout_s
    while seen < n:
        left = deadline - time.monotonic()
        if left <= 0:
            return seen, None
        data = r.read(left)
        if data is None:
            continue
        if not data:
            return seen, None
        seen += data.count(b"\n")
    return seen, now_ns()


def drain(r: Runner) -> int:
    """Non-blocking: read what is there, return the number of newlines."""
    n = 0
    while True:
        data = r.read(0)
        if not data:
            return n
        n += data.count(b"\n")


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


class Failure(Exception):
    pass


class BenchTimeout(BaseException):
    """--max-seconds struck: not caught by the per-tool error handling (TimeoutError is an OSError)."""


@contextlib.contextmanager
def guarded(errs: dict[str, str], key: str, res: Results, what: str) -> Iterator[None]:
    """One tool's measurement: a failure is recorded for that tool and the scenario goes on."""
    try:
        yield
    except (Failure, OSError, ValueError) as e:
        errs[key] = f"error: {e}"[:400]
        res.detail(f"ERROR {what} [{key}]: {e}")


def failed(r: Runner, what: str) -> Failure:
    err = r.stderr_tail()
    return Failure(
        f"{what}" + (f"; stderr: {err}" if err else "") + ("" if r.alive() else "; process exited")
    )


# ---------------------------------------------------------------------------------------------------------
# results


@dataclass
class Row:
    metric: str
    unit: str
    higher_better: bool
    lt: float | None = None
    gnu: float | None = None
    gnu_label: str = ""
    target: str = "—"
    check: Callable[[float, float | None], bool] | None = None  # (logtail value, gnu value) -> pass?
    note_lt: str = ""
    note_gnu: str = ""
    err: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def detail(self, s: str) -> None:
        self.details.append(s)
        print("  " + s, flush=True)


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "lines/s":
        if v >= 1e6:
            return f"{v / 1e6:.2f} M"
        if v >= 1e3:
            return f"{v / 1e3:.1f} k"
        return f"{v:.0f}"
    if unit == "%":
        return f"{v:.3f} %"
    if unit == "MiB":
        return f"{v:.1f} MiB"
    if unit == "ms":
        return f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"
    return f"{v:g}"


# ---------------------------------------------------------------------------------------------------------
# scenarios


@dataclass
class Cfg:
    quick: bool
    tmp: Path
    catchup_lines: int
    catchup_repeats: int
    catchup_cap_s: float
    delay_s: float
    delay_interval_s: float
    idle_s: float
    idle_settle_s: float
    startup_runs: int
    many_files: int
    many_rounds: int
    many_lines_per_round: int
    many_cap_s: float
    selected: list[str] = field(default_factory=list)


def run_catchup(cfg: Cfg, res: Results, tools: list[Tool], prefix: bool, big: Path) -> None:
    name = "catch-up" + (f", prefix {PREFIX!r}" if prefix else ", no prefix")
    n = cfg.catchup_lines
    exp_bytes = n * (LINE_LEN + (len(PREFIX) if prefix else 0))
    print(f"\n## {name}: {n:,} lines x {LINE_LEN} B", flush=True)
    rates: dict[str, list[float]] = {t.key: [] for t in tools}
    partial: dict[str, str] = {}
    errs: dict[str, str] = {}
    spent: dict[str, float] = {t.key: 0.0 for t in tools}
    firsts: dict[str, list[float]] = {t.key: [] for t in tools}
    steady: dict[str, list[float]] = {t.key: [] for t in tools}
    for rep in range(cfg.catchup_repeats):
        order = tools if rep % 2 == 0 else list(reversed(tools))
        for t in order:
            # the sed pipeline crawls (~26 k lines/s): measure it once, capped, rate over what arrived
            # (and a tool that already used its time budget gets no more repeats)
            if (
                (t.key == "gnu" and prefix and rep > 0)
                or t.key in partial
                or t.key in errs
                or spent[t.key] > cfg.catchup_cap_s
            ):
                continue
            with guarded(errs, t.key, res, name):
                r = Runner(
                    t.build([str(big)], PREFIX if prefix else None, False),
                    t.env,
                    cfg.tmp / f"stderr-{t.key}.log",
                )
                with r:
                    seen = 0
                    nbytes = 0
                    deadline = time.monotonic() + cfg.catchup_cap_s
                    t_first = None
                    while seen < n:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        data = r.read(left)
                        if data is None:
                            continue
                        if not data:
                            break
                        if t_first is None:
                            t_first = now_ns()
                        seen += data.count(b"\n")
                        nbytes += len(data)
                    t_end = now_ns()
                    dt = (t_end - r.t_launch) / 1e9
                    spent[t.key] += dt
                    cpu = r.cpu_seconds()
                    hwm = r.hwm_kib() / 1024
                    if seen < n:
                        tail = drain(r) if r.alive() else 0
                        seen += tail
                        if seen == 0:
                            raise failed(r, f"{t.key}: no line within {cfg.catchup_cap_s:.0f} s")
                        partial[t.key] = f"partial: {seen:,} of {n:,} lines in {dt:.1f} s (capped)"
                    rate = seen / dt
                    rates[t.key].append(rate)
                    extra = "" if nbytes == exp_bytes or seen < n else f" BYTES {nbytes:,} != {exp_bytes:,}"
                    if seen > n:
                        extra += f" EXTRA LINES {seen - n:,}"
                    after = ""
                    if t_first is not None and t_end > t_first:
                        firsts[t.key].append((t_first - r.t_launch) / 1e6)
                        steady[t.key].append(seen / ((t_end - t_first) / 1e9))
                        after = (
                            f" (first output after {(t_first - r.t_launch) / 1e6:.0f} ms, then "
                            f"{fmt(seen / ((t_end - t_first) / 1e9), 'lines/s')} lines/s)"
                        )
                    res.detail(
                        f"{name} [{t.key}] run {rep + 1}: {fmt(rate, 'lines/s')} lines/s, {dt:.3f} s{after}, "
                        f"cpu {cpu:.2f} s, peak RSS {hwm:.1f} MiB"
                        f"{' (' + partial[t.key] + ')' if t.key in partial else ''}{extra}"
                    )
    lt = statistics.median(rates["logtail"]) if rates.get("logtail") else None
    gn = statistics.median(rates["gnu"]) if rates.get("gnu") else None
    row = Row(
        f"catch-up {'with prefix' if prefix else 'no prefix'} (lines/s, {n / 1e6:g} M lines)",
        "lines/s",
        True,
        lt,
        gn,
        note_lt=errs.get("logtail", partial.get("logtail", "")),
        note_gnu=errs.get("gnu", partial.get("gnu", "")),
    )
    if not row.note_lt and firsts["logtail"]:
        # how much of the time is start-up: the rest of the table times from launch, as specified
        row.note_lt = (
            f"first line after {statistics.median(firsts['logtail']):.0f} ms (median), "
            f"{fmt(statistics.median(steady['logtail']), 'lines/s')} lines/s from then on"
        )
    if prefix:
        row.gnu_label = "tail \\| sed -u"
        row.target = "≥ 0.5x GNU tail plain"
        # issue 5: >= 0.5x GNU tail's (plain) lines/s; filled in main() once the plain row is known
    else:
        row.target = "≥ 0.7x GNU"
        row.check = lambda a, b: b is not None and a >= 0.7 * b
    res.rows.append(row)


class Arrivals:
    """Arrival times of the numbered delay lines ("L <seq> <write ns> ..."), whatever the chunking."""

    def __init__(self, n: int) -> None:
        self.arrived: list[int | None] = [None] * n
        self.got = 0
        self._buf = b""

    def take(self, data: bytes, t_arr: int) -> None:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            i = line.find(b"L ")
            if i < 0:
                continue
            seq = int(line[i + 2 :].split(b" ", 1)[0])
            if 0 <= seq < len(self.arrived) and self.arrived[seq] is None:
                self.arrived[seq] = t_arr
                self.got += 1


def run_delay(cfg: Cfg, res: Results, tools: list[Tool], prefix: bool) -> None:
    name = "follow delay" + (", prefix" if prefix else "")
    n = round(cfg.delay_s / cfg.delay_interval_s)
    print(f"\n## {name}: one line every {cfg.delay_interval_s * 1000:g} ms for {cfg.delay_s:g} s", flush=True)
    out: dict[str, tuple[float, float, float]] = {}
    errs: dict[str, str] = {}
    for t in tools:
        with guarded(errs, t.key, res, name):
            d = Path(tempfile.mkdtemp(prefix=f"delay-{t.key}-", dir=cfg.tmp))
            path = d / "app.log"
            path.write_bytes(b"R" + b"r" * (LINE_LEN - 2) + b"\n")
            r = Runner(
                t.build([str(path)], PREFIX if prefix else None, False),
                t.env,
                cfg.tmp / f"stderr-{t.key}.log",
            )
            with r:
                _, t_ready = wait_lines(r, 1, 30)
                if t_ready is None:
                    raise failed(r, f"{t.key}: ready line did not arrive within 30 s")
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                sent: list[int] = [0] * n
                arr = Arrivals(n)
                try:
                    time.sleep(0.2)
                    drain(r)
                    cpu0 = r.sched_ns() if HAVE_SCHEDSTAT else int(r.cpu_seconds() * 1e9)
                    t0 = now_ns()
                    step = int(cfg.delay_interval_s * 1e9)
                    for i in range(n):
                        due = t0 + i * step
                        while True:
                            left = (due - now_ns()) / 1e9
                            if left <= 0:
                                break
                            data = r.read(left)
                            if data:
                                arr.take(data, now_ns())
                            elif data == b"":
                                raise failed(r, f"{t.key}: stdout closed")
                        ts = now_ns()
                        head = b"L %d %d " % (i, ts)
                        os.write(fd, head + b"x" * (LINE_LEN - 1 - len(head)) + b"\n")
                        sent[i] = ts
                    deadline = time.monotonic() + 3
                    while arr.got < n and time.monotonic() < deadline:
                        data = r.read(deadline - time.monotonic())
                        if data:
                            arr.take(data, now_ns())
                        elif data == b"":
                            break
                finally:
                    os.close(fd)
                cpu_ns = (r.sched_ns() if HAVE_SCHEDSTAT else int(r.cpu_seconds() * 1e9)) - cpu0
                delays = [(a - s) / 1e6 for a, s in zip(arr.arrived, sent, strict=True) if a is not None]
                lost = n - len(delays)
                if not delays:
                    raise failed(r, f"{t.key}: none of {n} lines arrived")
                p50, p99, mx = pct(delays, 50), pct(delays, 99), max(delays)
                out[t.key] = (p50, p99, mx)
                res.detail(
                    f"{name} [{t.key}]: p50 {p50:.3f} ms, p90 {pct(delays, 90):.3f} ms, p99 {p99:.3f} ms, "
                    f"max {mx:.3f} ms, {len(delays)}/{n} lines"
                    + (f", {lost} LOST" if lost else "")
                    + f"; CPU {cpu_ns / 1e3 / n:.0f} us per line (all processes of the tool)"
                )
    gl = "tail \\| sed -u" if prefix else ""
    tag = "with prefix" if prefix else "no prefix"
    res.rows.append(
        Row(
            f"follow delay p50 (ms, {tag})",
            "ms",
            False,
            out.get("logtail", (None,))[0],
            out.get("gnu", (None,))[0],
            gl,
            note_lt=errs.get("logtail", ""),
            note_gnu=errs.get("gnu", ""),
        )
    )
    res.rows.append(
        Row(
            f"follow delay p99 (ms, {tag})",
            "ms",
            False,
            out.get("logtail", (None, None))[1],
            out.get("gnu", (None, None))[1],
            gl,
            target="≤ 2 ms",
            check=lambda a, b: a <= 2.0,
            note_lt=errs.get("logtail", ""),
            note_gnu=errs.get("gnu", ""),
        )
    )


def run_idle(cfg: Cfg, res: Results, tools: list[Tool], nfiles: int) -> None:
    name = f"idle, {nfiles} files"
    lines_each = 10
    print(f"\n## {name}: {cfg.idle_s:g} s window, both tools at once", flush=True)
    d = Path(tempfile.mkdtemp(prefix=f"idle{nfiles}-", dir=cfg.tmp))
    for i in range(nfiles):
        write_lines_file(d / f"f{i:04d}.log", lines_each, b"I%04d " % i)
    os.sync()
    runners: dict[str, Runner] = {}
    errs: dict[str, str] = {}
    results: dict[str, tuple[float, float]] = {}

    def drop(k: str, why: str) -> None:
        r = runners.pop(k)
        e = failed(r, why)
        r.kill()
        errs[k] = f"error: {e}"[:400]
        res.detail(f"ERROR {name} [{k}]: {e}")

    try:
        for t in tools:
            with guarded(errs, t.key, res, name):
                runners[t.key] = Runner(
                    t.build([str(d / "*.log")], None, True), t.env, cfg.tmp / f"stderr-{t.key}.log"
                )
        for k, r in list(runners.items()):
            seen, t_ok = wait_lines(r, nfiles * lines_each, 60)
            if t_ok is None:
                drop(k, f"{k}: only {seen} of {nfiles * lines_each} initial lines within 60 s")
        # settle: let start-up work finish, keep draining
        end = time.monotonic() + cfg.idle_settle_s
        while time.monotonic() < end:
            for r in runners.values():
                drain(r)
            time.sleep(0.1)
        cpu0 = {k: r.cpu_seconds() for k, r in runners.items()}
        cs0 = {k: r.ctx_switches() for k, r in runners.items()}
        ss0 = {k: r.sched_ns() for k, r in runners.items()}
        rss_max = {k: 0 for k in runners}
        stray = {k: 0 for k in runners}
        t0 = time.monotonic()
        end = t0 + cfg.idle_s
        while time.monotonic() < end:
            time.sleep(min(0.25, max(0.0, end - time.monotonic())))
            for k, r in list(runners.items()):
                stray[k] += drain(r)
                rss_max[k] = max(rss_max[k], r.rss_kib())
                if not r.alive():
                    drop(k, f"{k}: exited during the idle window")
        win = time.monotonic() - t0
        for k, r in runners.items():
            cpu = r.cpu_seconds() - cpu0[k]
            ss = (r.sched_ns() - ss0[k]) / 1e9
            # psutil counts in 10 ms ticks (one tick = 0.05 % of a 20 s window); the scheduler's
            # ns count per thread is exact but misses threads that ended in the window, so it is
            # used unless psutil saw clearly more.
            src, used = ("schedstat", ss) if HAVE_SCHEDSTAT and cpu <= ss + 0.02 else ("psutil", cpu)
            share = used / win * 100
            hwm = max(r.hwm_kib(), rss_max[k]) / 1024
            wk = (r.ctx_switches() - cs0[k]) / win
            res.detail(
                f"{name} [{k}]: cpu {used * 1000:.2f} ms in {win:.1f} s = {share:.4f} % of a core "
                f"(from {src}; psutil ticks said {cpu * 1000:.0f} ms, schedstat {ss * 1000:.2f} ms), "
                f"{wk:.1f} context switches/s, peak RSS {hwm:.1f} MiB "
                f"(max sampled RSS {rss_max[k] / 1024:.1f} MiB)"
                + (f", {stray[k]} unexpected lines" if stray[k] else "")
            )
            results[k] = (share, hwm)
    finally:
        for r in runners.values():
            r.kill()
    lt: tuple[float | None, float | None] = results.get("logtail", (None, None))
    gn: tuple[float | None, float | None] = results.get("gnu", (None, None))
    cpu_t = 0.1 if nfiles <= 2 else 1.0
    res.rows.append(
        Row(
            f"idle CPU, {nfiles} files (% of a core)",
            "%",
            False,
            lt[0],
            gn[0],
            target=f"≤ {cpu_t:g} %",
            check=lambda a, b, c=cpu_t: a <= c,
            note_lt=errs.get("logtail", ""),
            note_gnu=errs.get("gnu", ""),
        )
    )
    res.rows.append(
        Row(
            f"peak RSS, {nfiles} idle files (MiB)",
            "MiB",
            False,
            lt[1],
            gn[1],
            target="≤ 35 MiB",
            check=lambda a, b: a <= 35,
            note_lt=errs.get("logtail", ""),
            note_gnu=errs.get("gnu", ""),
        )
    )


def run_startup(cfg: Cfg, res: Results, tools: list[Tool]) -> None:
    print(f"\n## start-up: launch to first line, median of {cfg.startup_runs} (+1 warm-up)", flush=True)
    d = Path(tempfile.mkdtemp(prefix="startup-", dir=cfg.tmp))
    path = d / "app.log"
    write_lines_file(path, 10)
    times: dict[str, list[float]] = {t.key: [] for t in tools}
    errs: dict[str, str] = {}
    name = "start-up"
    for rep in range(cfg.startup_runs + 1):
        order = tools if rep % 2 == 0 else list(reversed(tools))
        for t in order:
            if t.key in errs:
                continue
            with guarded(errs, t.key, res, name):
                r = Runner(t.build([str(path)], None, False), t.env, cfg.tmp / f"stderr-{t.key}.log")
                with r:
                    _, t1 = wait_lines(r, 1, 20)
                    if t1 is None:
                        raise failed(r, f"{t.key}: no first line within 20 s")
                    if rep > 0:
                        times[t.key].append((t1 - r.t_launch) / 1e6)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    for k, v in times.items():
        if not v:
            continue
        res.detail(
            f"start-up [{k}]: median {med[k]:.1f} ms, min {min(v):.1f}, max {max(v):.1f} "
            f"({', '.join(f'{x:.1f}' for x in v)})"
        )
    res.rows.append(
        Row(
            f"start-up to first line (ms, median of {cfg.startup_runs})",
            "ms",
            False,
            med.get("logtail"),
            med.get("gnu"),
            target="≤ 150 ms",
            check=lambda a, b: a <= 150,
            note_lt=errs.get("logtail", ""),
            note_gnu=errs.get("gnu", ""),
        )
    )


def write_rounds(
    fds: list[int], blocks: list[bytes], rounds: int, stop: threading.Event, took: list[float]
) -> None:
    """The many-files writer: each round one block (50 lines) to every file in turn."""
    w0 = time.monotonic()
    for _ in range(rounds):
        for fd, b in zip(fds, blocks, strict=True):
            if stop.is_set():
                return
            os.write(fd, b)
    took[0] = time.monotonic() - w0


def run_many(cfg: Cfg, res: Results, tools: list[Tool]) -> None:
    nf, rounds, per = cfg.many_files, cfg.many_rounds, cfg.many_lines_per_round
    total = nf * rounds * per
    print(
        f"\n## many files: {nf} files, {rounds} rounds x {per} lines per file = {total:,} lines", flush=True
    )
    out: dict[str, float] = {}
    partial: dict[str, str] = {}
    errs: dict[str, str] = {}
    name = "many files"
    for t in tools:
        with guarded(errs, t.key, res, name):
            d = Path(tempfile.mkdtemp(prefix=f"many-{t.key}-", dir=cfg.tmp))
            paths = [d / f"f{i:04d}.log" for i in range(nf)]
            for i, p in enumerate(paths):
                p.write_bytes(b"R%04d " % i + b"r" * (LINE_LEN - 7) + b"\n")
            os.sync()
            r = Runner(t.build([str(d / "*.log")], None, True), t.env, cfg.tmp / f"stderr-{t.key}.log")
            fds: list[int] = []
            stop = threading.Event()
            writer_s = [0.0]
            try:
                seen, ok = wait_lines(r, nf, 60)
                if ok is None:
                    raise failed(r, f"{t.key}: only {seen} of {nf} ready lines within 60 s")
                time.sleep(0.3)
                drain(r)
                fds = [os.open(p, os.O_WRONLY | os.O_APPEND) for p in paths]
                blocks = []
                for i in range(nf):
                    head = b"M%04d " % i
                    line = head + b"m" * (LINE_LEN - 1 - len(head)) + b"\n"
                    blocks.append(line * per)
                th = threading.Thread(
                    target=write_rounds, args=(fds, blocks, rounds, stop, writer_s), daemon=True
                )
                t0 = now_ns()
                th.start()
                seen = 0
                deadline = time.monotonic() + cfg.many_cap_s
                while seen < total:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    data = r.read(left)
                    if data is None:
                        continue
                    if not data:
                        break
                    seen += data.count(b"\n")
                t1 = now_ns()
                stop.set()
                th.join(10)
                cpu = r.cpu_seconds()
                hwm = r.hwm_kib() / 1024
                dt = (t1 - t0) / 1e9
                if seen == 0:
                    raise failed(r, f"{t.key}: no line arrived")
                if seen < total:
                    partial[t.key] = f"partial: {seen:,} of {total:,} in {dt:.1f} s (capped)"
                elif writer_s[0] and dt < 1.15 * writer_s[0]:
                    partial[t.key] = (
                        f"kept up with the writer ({writer_s[0]:.2f} s for {total:,} lines): "
                        "a lower bound of its capacity"
                    )
                out[t.key] = seen / dt
                res.detail(
                    f"many files [{t.key}]: {fmt(seen / dt, 'lines/s')} lines/s, {dt:.3f} s, writer took "
                    f"{writer_s[0]:.3f} s, cpu {cpu:.2f} s, peak RSS {hwm:.1f} MiB"
                    + (f" ({partial[t.key]})" if t.key in partial else "")
                )
            finally:
                stop.set()
                for fd in fds:
                    os.close(fd)
                r.kill()
    res.rows.append(
        Row(
            f"many files: {nf} files round-robin (lines/s, {total / 1e6:g} M lines)",
            "lines/s",
            True,
            out.get("logtail"),
            out.get("gnu"),
            note_lt=errs.get("logtail", partial.get("logtail", "")),
            note_gnu=errs.get("gnu", partial.get("gnu", "")),
        )
    )


# ---------------------------------------------------------------------------------------------------------
# report


def machine_info(lt: Tool) -> list[str]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        tv = subprocess.run(["tail", "--version"], capture_output=True, text=True, timeout=10).stdout
        tv = tv.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        tv = "?"
    ltv = "?"
    if lt.env is not None:
        try:
            argv = lt.build([], None, False)[0] + ["--version"]
            p = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=lt.env)
            lines = (p.stdout.strip() or p.stderr.strip()).splitlines()
            ltv = lines[-1][:120] if lines else "?"
        except (OSError, subprocess.SubprocessError):
            pass
    return [
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
        f"{round(psutil.virtual_memory().total / 2**30)} GiB RAM, Linux {platform.release()}",
        f"- Python {platform.python_version()}, {tv}, sed: {shutil.which('sed')}",
        f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        "(other work on the machine disturbs the numbers)",
        f"- logtail command: `{lt.label}` (version: {ltv})",
    ]


def render(res: Results, header: list[str], cfg: Cfg, elapsed: float) -> str:
    out = [
        "# logtail benchmark vs GNU tail",
        "",
        *header,
        f"- mode: {'quick' if cfg.quick else 'full'}"
        + ("" if len(cfg.selected) == len(SCENARIOS) else f" (only {', '.join(cfg.selected)})")
        + f"; bench runtime {elapsed:.0f} s",
        "",
        "ratio = logtail ÷ GNU tail. lines/s: higher is better; ms, %, MiB: lower is better. "
        "Idle CPU: on-CPU time of the process tree over the window (scheduler ns, else psutil ticks); "
        "peak RSS: VmHWM.",
        "",
        "| metric | logtail | GNU tail | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for row in res.rows:
        g = fmt(row.gnu, row.unit) + (f" ({row.gnu_label})" if row.gnu_label and row.gnu is not None else "")
        ratio = "n/a"
        if row.lt is not None and row.gnu:
            q = row.lt / row.gnu
            ratio = f"{q:.2f}x" if q < 100 else f"{q:.0f}x"
        verdict = ""
        if row.err or (row.lt is None and row.note_lt.startswith("error")):
            verdict = "error"
        elif row.check is not None and row.lt is not None:
            verdict = "pass" if row.check(row.lt, row.gnu) else "**miss**"
        lt = fmt(row.lt, row.unit) + (" *" if row.note_lt else "")
        g += " *" if row.note_gnu else ""
        out.append(f"| {row.metric} | {lt} | {g} | {ratio} | {row.target} | {verdict} |")
    notes = []
    for r in res.rows:
        notes += [f"- \\* {r.metric}: logtail {r.note_lt}"] if r.note_lt else []
        notes += [f"- \\* {r.metric}: GNU tail {r.note_gnu}"] if r.note_gnu else []
        notes += [f"- error in {r.metric}: {r.err}"] if r.err else []
    if notes:
        out += ["", *notes]
    out += [
        "",
        "<details><summary>per-run details</summary>",
        "",
        "```",
        *res.details,
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(out)


SCENARIOS = [
    "catchup",
    "catchup-prefix",
    "delay",
    "delay-prefix",
    "idle-2",
    "idle-1000",
    "startup",
    "manyfiles",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller files, shorter windows (about 1 minute)")
    ap.add_argument(
        "--only", default="", help="comma-separated scenario names or prefixes: " + ", ".join(SCENARIOS)
    )
    ap.add_argument(
        "--logtail",
        default=None,
        help="command for logtail (default: `logtail` if on PATH else `python -m logtail`, with "
        f"PYTHONPATH={REPO}); 'gnu' stands GNU tail in for logtail",
    )
    ap.add_argument(
        "--out", default=str(REPO / "bench" / "results" / "latest.md"), help="markdown output file"
    )
    ap.add_argument("--tmpdir", default=None, help="where the test files go (default: system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--max-seconds", type=float, default=900, help="hard limit for the whole run")
    args = ap.parse_args()

    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    # an exact name selects that scenario; anything else is a prefix ("idle" = idle-2 and idle-1000)
    selected = [
        sc
        for sc in SCENARIOS
        if not wanted or any(sc == w or (w not in SCENARIOS and sc.startswith(w)) for w in wanted)
    ]
    if not selected:
        ap.error(f"--only matches none of {', '.join(SCENARIOS)}")
    for tool in ("tail", "sed"):
        if not shutil.which(tool):
            ap.error(f"{tool} not found on PATH")

    # An installed wheel (and the image) ships compiled bytecode; a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile every module at every start. Measure the former.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "logtail")], check=False)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    def on_alarm(*_: object) -> None:
        raise BenchTimeout(f"benchmark exceeded --max-seconds={args.max_seconds:g}")

    def on_term(*_: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started with SIGINT ignored
    signal.alarm(int(args.max_seconds))

    tmp = Path(tempfile.mkdtemp(prefix="logtail-bench-", dir=args.tmpdir))
    q = args.quick
    cfg = Cfg(
        quick=q,
        tmp=tmp,
        catchup_lines=500_000 if q else 2_000_000,
        catchup_repeats=1 if q else 5,
        catchup_cap_s=8 if q else 20,
        delay_s=2 if q else 4,
        delay_interval_s=0.010,
        idle_s=5 if q else 20,
        idle_settle_s=1 if q else 2,
        startup_runs=3 if q else 7,
        many_files=1000,
        many_rounds=5 if q else 20,
        many_lines_per_round=50,
        many_cap_s=15 if q else 40,
        selected=selected,
    )
    lt = make_logtail(args.logtail)
    tools = [lt, GNU]
    header = machine_info(lt)
    print("\n".join(header), flush=True)
    res = Results()
    t_start = time.monotonic()
    try:
        big = tmp / "big.log"
        if "catchup" in selected or "catchup-prefix" in selected:
            t = time.monotonic()
            write_lines_file(big, cfg.catchup_lines)
            os.sync()  # no write-back of the test files in the middle of a measurement
            print(f"(wrote {big} in {time.monotonic() - t:.1f} s)", flush=True)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("catchup", lambda: run_catchup(cfg, res, tools, False, big)),
            ("catchup-prefix", lambda: run_catchup(cfg, res, tools, True, big)),
            ("delay", lambda: run_delay(cfg, res, tools, False)),
            ("delay-prefix", lambda: run_delay(cfg, res, tools, True)),
            ("idle-2", lambda: run_idle(cfg, res, tools, 2)),
            ("idle-1000", lambda: run_idle(cfg, res, tools, 1000)),
            ("startup", lambda: run_startup(cfg, res, tools)),
            ("manyfiles", lambda: run_many(cfg, res, tools)),
        ]
        for key, fn in steps:
            if key not in selected:
                continue
            n_rows = len(res.rows)
            os.sync()
            try:
                fn()
            except (Failure, OSError, ValueError) as e:
                print(f"  ERROR in {key}: {e}", flush=True)
                res.details.append(f"ERROR in {key}: {e}")
                if len(res.rows) == n_rows:
                    res.rows.append(Row(key, "", True, err=str(e)[:300]))
            except BenchTimeout as e:
                print(f"  STOPPED in {key}: {e}", flush=True)
                res.rows.append(Row(key, "", True, err=f"not finished: {e}"))
                break
            finally:
                _kill_all()
        # the prefix target is relative to GNU tail's plain catch-up rate
        plain = next((r for r in res.rows if r.metric.startswith("catch-up no prefix")), None)
        for r in res.rows:
            if r.metric.startswith("catch-up with prefix") and plain is not None and plain.gnu:
                g = plain.gnu
                r.target = f"≥ 0.5x GNU tail plain (≥ {fmt(0.5 * g, 'lines/s')})"
                r.check = lambda a, b, g=g: a >= 0.5 * g
    finally:
        _kill_all()
        signal.alarm(0)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"(kept {tmp})")
    text = render(res, header, cfg, time.monotonic() - t_start)
    print("\n" + text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"(written to {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
