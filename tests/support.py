"""Helpers for running logtail the way users do: as a subprocess, fed and read while it runs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from signal import SIGTERM
from typing import Any

import pytest

LOGTAIL = [sys.executable, "-m", "logtail"]
ROOT = Path(__file__).resolve().parent.parent


def records(stderr: str) -> list[dict[str, Any]]:
    """logtail's JSON diagnostics (LOGTAIL_LOG_FORMAT=json), one object per stderr line; others left out."""
    found = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def unprivileged_prefix() -> list[str]:
    """A command prefix under which logtail is refused files with mode 000: tests run as root, and
    root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH gets the same EACCES as any other user
    (Popen(user=65534) cannot even start the interpreter, which lives under /root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test with ``what`` once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


class Logtail:
    """A running logtail process whose stdout is collected line by line in a background thread."""

    def __init__(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdout: int | None = subprocess.PIPE,
        user: int | None = None,
    ) -> None:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), "LOGTAIL_LOG_FORMAT": "json"}
        full_env.update(env or {})
        self.argv = [*LOGTAIL, *map(str, args)]
        # The child appends (O_APPEND) through its own open file description, and we read
        # through another: reading never moves the offset the child writes at.
        fd, self._stderr_path = tempfile.mkstemp(prefix="logtail-stderr-")
        os.close(fd)
        self._stderr_file = open(self._stderr_path, "ab")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=stdout,
            stderr=self._stderr_file,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            user=user,
        )
        self._raw: list[bytes] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        if stdout == subprocess.PIPE:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._lock:
                self._raw.append(raw)

    @property
    def raw_lines(self) -> list[bytes]:
        """Every complete line printed so far, with its newline."""
        with self._lock:
            return list(self._raw)

    @property
    def lines(self) -> list[str]:
        """Every line printed so far, decoded, without its newline."""
        return [raw.decode("utf-8", "replace").rstrip("\n") for raw in self.raw_lines]

    @property
    def stderr(self) -> str:
        with open(self._stderr_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def wait_for_lines(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until at least ``count`` lines have been printed; return them all."""
        wait_until(
            lambda: len(self.raw_lines) >= count or self.proc.poll() is not None,
            timeout,
            f"{count} lines (have {len(self.raw_lines)}: {self.lines[-12:]}; stderr: {self.stderr[-2000:]})",
        )
        if len(self.raw_lines) < count:
            self.finish()  # the process ended: take what is left in the pipe before judging
        assert len(self.raw_lines) >= count, (
            f"logtail exited {self.proc.returncode} after {len(self.raw_lines)} lines; stderr: {self.stderr}"
        )
        return self.lines

    def wait_for_stderr(self, text: str, timeout: float = 10.0) -> str:
        wait_until(lambda: text in self.stderr, timeout, f"{text!r} on stderr (have {self.stderr[-2000:]})")
        return self.stderr

    def signal(self, signum: int = SIGTERM) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit and for its stdout to be read to the end; return its status."""
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def stop(self, signum: int = SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.finish(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        self._stderr_file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._stderr_path)


def run(
    args: Sequence[str | os.PathLike[str]], timeout: float = 30.0, **kwargs: object
) -> subprocess.CompletedProcess[bytes]:
    """Run logtail to completion (for --no-follow and error cases)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOGTAIL_LOG_FORMAT": "json"}
    env.update(kwargs.pop("env", None) or {})  # type: ignore[arg-type]
    kwargs.setdefault("stdout", subprocess.PIPE)  # or where the test wants it (a full device, ...)
    return subprocess.run(
        [*LOGTAIL, *map(str, args)],
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        **kwargs,  # type: ignore[arg-type]
    )


def append(path: os.PathLike[str] | str, data: bytes | str) -> None:
    """Append ``data`` to ``path`` in one write, as a logger that flushes each record does."""
    with open(path, "ab") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def observe(seconds: float) -> None:
    """Let time pass on purpose: a negative assertion ("nothing more comes") needs a window to watch."""
    time.sleep(seconds)


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "Exception ignored" not in stderr, stderr


def read_position(pid: int, path: os.PathLike[str] | str) -> int | None:
    """Where process ``pid`` stands in its open file ``path`` (from /proc/PID/fdinfo), or None."""
    target = os.path.realpath(path)
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") == target:
                for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
                    if line.startswith("pos:"):
                        return int(line.split()[1])
        except OSError:
            continue
    return None
