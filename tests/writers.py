"""Real writers and real rotations for the subprocess tests.

Two kinds of writers:

- ``LineWriter``: in the test process, one ``write(2)`` per call, told exactly when to reopen,
  for step-by-step scenarios.
- ``NumberedWriter``: a separate process (this file run as a script) that writes numbered lines
  (``f"{seq:08d} " + padding``) at a given rate through a plain file, Python's
  ``RotatingFileHandler`` or ``WatchedFileHandler``; a plain writer reopens its file on SIGHUP,
  like an application whose logrotate ``postrotate`` script signals it. On SIGTERM it finishes
  the current line and reports how many lines it wrote.

And rotation drivers that run the real tools: ``logrotate`` (``create`` and ``copytruncate``),
``mv``, ``rm``, ``truncate``.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

NUMBERED = re.compile(rb"^(\d{8}) (\S*)\n?$")


def numbered_line(seq: int, padding: str = "x" * 60) -> str:
    """The text of line ``seq`` (without its newline), as every numbered writer writes it."""
    return f"{seq:08d} {padding}"


# -- in-process writer ---------------------------------------------------------------------------


class LineWriter:
    """A file written by the test itself, one ``write(2)`` per call, reopened only when told."""

    def __init__(self, path: Path, *, append: bool = True) -> None:
        self.path = Path(path)
        self.append = append
        self.fd = self._open()

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if self.append else 0)
        return os.open(self.path, flags, 0o644)

    def write(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        written = os.write(self.fd, raw)
        assert written == len(raw)

    def lines(self, seqs: Iterable[int], padding: str = "x" * 60) -> list[str]:
        """Write numbered lines, one ``write(2)`` each; return them (without newlines)."""
        texts = [numbered_line(seq, padding) for seq in seqs]
        for text in texts:
            self.write(text + "\n")
        return texts

    def reopen(self) -> None:
        """Close and reopen by name, creating the file if it is gone, like an application told to."""
        os.close(self.fd)
        self.fd = self._open()

    def close(self) -> None:
        os.close(self.fd)


# -- writer process ------------------------------------------------------------------------------


@dataclass
class NumberedWriter:
    """A writer process producing numbered lines at ``rate`` lines/s into ``path``."""

    path: Path
    rate: float = 2500.0
    padding: int = 60
    handler: str = "plain"  # plain | rotating | watched
    append: bool = True
    max_bytes: int = 0
    backup_count: int = 100
    proc: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        argv = [
            sys.executable,
            __file__,
            str(self.path),
            "--rate",
            str(self.rate),
            "--padding",
            str(self.padding),
            "--handler",
            self.handler,
            "--max-bytes",
            str(self.max_bytes),
            "--backup-count",
            str(self.backup_count),
        ]
        if not self.append:
            argv.append("--no-append")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self.path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"writer did not create {self.path}: {self.proc.communicate()}")
            time.sleep(0.005)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def line_bytes(self) -> int:
        return 8 + 1 + self.padding + 1

    def reopen(self) -> None:
        """Tell the writer to reopen its file by name (creating it if it is gone)."""
        os.kill(self.pid, signal.SIGHUP)

    def stop(self) -> int:
        """Stop writing after the current line; return how many lines were written (0 .. n-1)."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, f"writer failed ({self.proc.returncode}): {err.decode()}"
        return int(out.decode().split()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _writer_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write numbered lines at a given rate.")
    parser.add_argument("path")
    parser.add_argument("--rate", type=float, default=2500.0)
    parser.add_argument("--padding", type=int, default=60)
    parser.add_argument("--handler", choices=["plain", "rotating", "watched"], default="plain")
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--max-bytes", type=int, default=0)
    parser.add_argument("--backup-count", type=int, default=100)
    args = parser.parse_args(argv)

    stop = False
    reopen = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    def on_hup(signum: int, frame: object) -> None:
        nonlocal reopen
        reopen = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    padding = "x" * args.padding

    if args.handler == "plain":
        flags = os.O_WRONLY | os.O_CREAT | (0 if args.no_append else os.O_APPEND)
        fd = os.open(args.path, flags, 0o644)

        def emit(text: str) -> None:
            nonlocal fd, reopen
            if reopen:
                reopen = False
                os.close(fd)
                fd = os.open(args.path, flags, 0o644)
            os.write(fd, (text + "\n").encode())

    else:
        handler: logging.Handler
        if args.handler == "rotating":
            handler = logging.handlers.RotatingFileHandler(
                args.path, maxBytes=args.max_bytes, backupCount=args.backup_count
            )
        else:
            handler = logging.handlers.WatchedFileHandler(args.path)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("numbered")
        logger.propagate = False
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

        def emit(text: str) -> None:
            logger.info(text)

    seq = 0
    start = time.monotonic()
    while not stop:
        due = int((time.monotonic() - start) * args.rate) + 1
        while seq < due and not stop:
            emit(numbered_line(seq, padding))
            seq += 1
        time.sleep(0.001)
    print(seq, flush=True)
    return 0


# -- rotation drivers ----------------------------------------------------------------------------


def run_tool(*argv: str | os.PathLike[str]) -> None:
    """Run a real tool; fail loudly if it fails."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, timeout=30)
    assert result.returncode == 0, f"{argv} failed ({result.returncode}): {result.stderr.decode()}"


def mv(src: Path, dst: Path) -> None:
    run_tool("mv", src, dst)


def rm(path: Path) -> None:
    run_tool("rm", path)


def truncate(path: Path) -> None:
    """Truncate in place (same inode), as ``truncate -s 0`` and a shell's ``>`` do."""
    run_tool("truncate", "-s", "0", path)


class Logrotate:
    """The real ``logrotate`` with its own config and state file in ``workdir``, forced each time."""

    def __init__(
        self, path: Path, workdir: Path, mode: str, *, postrotate: str = "", rotate: int = 1000
    ) -> None:
        assert mode in ("create", "copytruncate")
        self.path = Path(path)
        self.state = workdir / "logrotate.state"
        self.conf = workdir / f"logrotate-{mode}.conf"
        script = f"    postrotate\n        {postrotate}\n    endscript\n" if postrotate else ""
        self.conf.write_text(
            f"{self.path} {{\n"
            f"    {mode}\n"
            f"    rotate {rotate}\n"
            "    missingok\n"
            "    ifempty\n"
            "    nocompress\n"
            f"{script}"
            "}\n"
        )
        self.conf.chmod(0o644)

    def rotate(self) -> None:
        run_tool("logrotate", "-f", "-s", self.state, self.conf)


def logrotate_create(
    path: Path, workdir: Path, *, signal_pid: int | None = None, delay: float = 0.1
) -> Logrotate:
    """logrotate in ``create`` mode; if ``signal_pid`` is given its postrotate script sends it SIGHUP
    ``delay`` seconds after the rename, as a real postrotate ``kill -HUP`` arrives late."""
    postrotate = f"sleep {delay}; kill -HUP {signal_pid}" if signal_pid is not None else ""
    return Logrotate(path, workdir, "create", postrotate=postrotate)


def logrotate_copytruncate(path: Path, workdir: Path) -> Logrotate:
    return Logrotate(path, workdir, "copytruncate")


# -- reading numbered output ---------------------------------------------------------------------


def parse_numbered(raw_lines: Sequence[bytes], padding: int) -> tuple[list[int], list[bytes]]:
    """Sequence numbers of well-formed numbered lines, and every line that is not one."""
    seqs: list[int] = []
    bad: list[bytes] = []
    for raw in raw_lines:
        match = NUMBERED.match(raw)
        if match and match.group(2) == b"x" * padding and raw.endswith(b"\n"):
            seqs.append(int(match.group(1)))
        else:
            bad.append(raw)
    return seqs, bad


def ranges(numbers: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``, to keep failure messages short."""
    out: list[str] = []
    items = sorted(set(numbers))
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(f"{items[i]}" if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    text = ", ".join(out)
    return text if len(text) < 600 else text[:600] + "..."


def last_complete_seq(path: Path) -> int | None:
    """The number of the last complete numbered line in a file, or None."""
    data = path.read_bytes()
    end = data.rfind(b"\n")
    if end < 0:
        return None
    start = data.rfind(b"\n", 0, end) + 1
    match = NUMBERED.match(data[start : end + 1])
    return int(match.group(1)) if match else None


def first_seq(path: Path) -> int | None:
    """The number of the first complete numbered line in a file, or None."""
    data = path.read_bytes()
    end = data.find(b"\n")
    if end < 0:
        return None
    match = NUMBERED.match(data[: end + 1])
    return int(match.group(1)) if match else None


if __name__ == "__main__":
    sys.exit(_writer_main())
