"""Process handling and measuring shared by the probes: children, CPU/RSS, line counting, test files."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
LINE_LEN = 100  # bytes per line of the pre-written files, newline included
READ_CHUNK = 1 << 20
HAVE_SCHEDSTAT = os.path.exists("/proc/self/schedstat")


class Failure(Exception):
    """One tool's measurement could not be made (no output, early exit...); the probe goes on."""


class BenchTimeout(BaseException):
    """--max-seconds struck: not caught by the per-tool error handling (TimeoutError is an OSError)."""


_LIVE: dict[int, Runner] = {}


def kill_all() -> None:
    """SIGKILL every process group still running (end of a probe, errors, exit)."""
    for r in list(_LIVE.values()):
        r.kill()


atexit.register(kill_all)


def now_ns() -> int:
    return time.monotonic_ns()


@dataclass
class CpuSample:
    psutil_s: float  # user+system in clock ticks (10 ms), includes reaped children
    sched_s: float  # on-CPU ns of live threads from /proc/PID/task/*/schedstat (exact, misses dead threads)

    def since(self, before: CpuSample) -> tuple[float, str]:
        """CPU seconds between two samples and which counter gave them.

        The scheduler's count is used unless psutil's ticks saw clearly more (a thread or a
        child that ended in between).
        """
        ticks = self.psutil_s - before.psutil_s
        sched = self.sched_s - before.sched_s
        if HAVE_SCHEDSTAT and ticks <= sched + 0.02:
            return sched, "schedstat"
        return ticks, "psutil"


class Runner:
    """A command or a pipeline (list of argv) in one new process group; stdout of the last one is a pipe."""

    def __init__(self, argvs: list[list[str]], env: dict[str, str] | None, stderr_path: Path) -> None:
        self.argvs = argvs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "ab")  # noqa: SIM115 - closed in kill()
        self.pgid: int | None = None
        self.t_launch = now_ns()
        try:
            self._spawn(env)
        except BaseException:
            self.kill()
            raise
        out = self.procs[-1].stdout
        assert out is not None
        self.fd = out.fileno()
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)
        self.eof = False

    def _spawn(self, env: dict[str, str] | None) -> None:
        prev_out = None
        for i, argv in enumerate(self.argvs):
            last = i == len(self.argvs) - 1
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

    def read(self, timeout_s: float) -> bytes | None:
        """One chunk (up to 1 MiB) if something arrives within timeout_s; None on timeout; b"" on EOF."""
        if self.eof:
            return b""
        if not self.poller.poll(max(0.0, timeout_s) * 1000.0):
            return None
        data = os.read(self.fd, READ_CHUNK)
        if not data:
            self.eof = True
        return data

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

    def cpu(self) -> CpuSample:
        return CpuSample(self.cpu_seconds(), self.sched_ns() / 1e9 if HAVE_SCHEDSTAT else 0.0)

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


def failed(r: Runner, what: str) -> Failure:
    """A Failure that carries the end of the tool's stderr and whether it is still running."""
    err = r.stderr_tail()
    return Failure(
        f"{what}" + (f"; stderr: {err}" if err else "") + ("" if r.alive() else "; process exited")
    )


# -- reading a tool's stdout ------------------------------------------------------------------------------


def wait_lines(r: Runner, n: int, timeout_s: float) -> tuple[int, int | None]:
    """Read until n newlines arrived; returns (lines seen, arrival time ns or None on timeout/EOF)."""
    got = count_lines(r, n, time.monotonic() + timeout_s)
    return got.lines, (got.t_end if got.lines >= n else None)


def drain(r: Runner) -> int:
    """Non-blocking: read what is there, return the number of newlines."""
    n = 0
    while True:
        data = r.read(0)
        if not data:
            return n
        n += data.count(b"\n")


@dataclass
class Counted:
    lines: int
    nbytes: int
    t_first: int | None  # monotonic ns of the first chunk
    t_end: int  # monotonic ns when counting stopped
    eof: bool


def count_lines(r: Runner, n: int, deadline: float) -> Counted:
    """Read and count newlines until n arrived, EOF, or the monotonic deadline."""
    seen = nbytes = 0
    t_first = None
    eof = False
    while seen < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        data = r.read(left)
        if data is None:
            continue
        if not data:
            eof = True
            break
        if t_first is None:
            t_first = now_ns()
        seen += data.count(b"\n")
        nbytes += len(data)
    return Counted(seen, nbytes, t_first, now_ns(), eof)


def read_until_marker(r: Runner, marker: bytes, deadline: float) -> tuple[Counted, bool]:
    """Read until `marker` appears in the output (whatever the chunking), EOF, or the deadline.

    Returns the counts and whether the marker was seen.
    """
    seen = nbytes = 0
    t_first = None
    tail = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return Counted(seen, nbytes, t_first, now_ns(), False), False
        data = r.read(left)
        if data is None:
            continue
        if not data:
            return Counted(seen, nbytes, t_first, now_ns(), True), False
        if t_first is None:
            t_first = now_ns()
        seen += data.count(b"\n")
        nbytes += len(data)
        if marker in tail + data[: len(marker)] or marker in data:
            return Counted(seen, nbytes, t_first, now_ns(), False), True
        tail = data[-len(marker) :]


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


# -- writing test files -----------------------------------------------------------------------------------


def write_lines_file(path: Path, n: int, tag: bytes = b"") -> None:
    """n lines of exactly LINE_LEN bytes, numbered."""
    with open(path, "wb") as f:
        batch = 10_000
        for start in range(0, n, batch):
            parts = []
            for i in range(start, min(n, start + batch)):
                head = b"%s%09d " % (tag, i)
                parts.append(head + b"x" * (LINE_LEN - 1 - len(head)) + b"\n")
            f.write(b"".join(parts))


def append_fd(path: Path) -> int:
    """A write descriptor of its own with O_APPEND, as an application's log handler has."""
    return os.open(path, os.O_WRONLY | os.O_APPEND)


PACER = Path(__file__).resolve().parent / "pacer.py"


def start_pacer(path: Path, rate: float, seconds: float, stderr_path: Path) -> Runner:
    """bench/pacer.py appending to `path` at `rate` lines/s for `seconds`, in its own process."""
    return Runner([[sys.executable, str(PACER), str(path), f"{rate:g}", f"{seconds:g}"]], None, stderr_path)


def pacer_report(p: Runner, timeout_s: float = 10) -> dict[str, float]:
    """The pacer's closing JSON (lines, first_ns, last_ns, max_lag_ms), once it has exited."""
    out = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = p.read(deadline - time.monotonic())
        if data == b"":
            break
        out += data or b""
    try:
        return dict(json.loads(out))
    except ValueError as e:
        raise failed(p, f"pacer gave no report ({out[:200]!r})") from e
