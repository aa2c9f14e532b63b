"""A real fast logger: s6-log rotating its ``current`` every few milliseconds while logtail follows it.

s6-log (Debian package ``s6``) reads lines on stdin and appends them to ``DIR/current``; with the
``s4096`` directive (its smallest size limit) it renames ``current`` to ``@<tai64n>.s`` and
creates a new ``current`` whenever the next line would take it past 4096 bytes. Fed 5,000
lines/s of 50 bytes, that is a rotation about every 16 ms, much faster than logtail's default
``--rotate-wait`` and often faster than it looks at the path.

``n1000`` keeps every archive for the whole run (a run makes about 150): a generation deleted by
s6-log before logtail opened it would be lost for any reader, and the test could not then ask
for every line. Each line written must be printed exactly once and in order, with logtail's
defaults (only ``current`` named) and with ``--rotated 'DIR/@*.s' --rotated DIR/previous``
(s6-log's names for a rotated ``current``: it renames it to ``previous``, hard-links that to
``@<tai64n>.s`` and unlinks ``previous``), so that generations that came and went between two
looks can be found.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import Logtail, wait_until
from writers import ranges

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("s6-log") is None, reason="s6-log (Debian package s6) is not installed"),
]

RATE = 5000  # lines/s
DURATION = 1.5  # seconds of writing per run
LINE = re.compile(rb"^(\d{8}) (x{41})\n$")  # 50 bytes with the newline
RUNS = 10  # per configuration: 20 in all (60 of 60 passed with reruns off on 2026-12-04, 20 under load)


def line_bytes(seq: int) -> bytes:
    return f"{seq:08d} {'x' * 41}\n".encode()


class Feeder(threading.Thread):
    """Writes numbered lines into s6-log's stdin at ``RATE`` lines/s, one ``write`` per line."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.count = 0

    def run(self) -> None:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < DURATION:
            due = int(elapsed * RATE) + 1
            while self.count < due:
                self.pipe.write(line_bytes(self.count))
                self.count += 1
            self.pipe.flush()
            time.sleep(0.001)
        self.pipe.close()  # EOF: s6-log writes what it has and exits


@pytest.mark.timeout(60)
@pytest.mark.parametrize("run", range(RUNS))
@pytest.mark.parametrize("rotated", ["default", "s6-names"])
def test_s6_log_rotating_every_few_ms_loses_and_repeats_nothing(
    tmp_path: Path, logtail: Any, rotated: str, run: int
) -> None:
    """With s6-log rotating ``current`` about every 16 ms under 5,000 lines/s, logtail following
    ``DIR/current`` prints every line exactly once and in order."""
    logdir = tmp_path / "log"
    logdir.mkdir()
    current = logdir / "current"
    args: list[Any] = []
    if rotated == "s6-names":
        # s6-log rotates by rename(current, previous), link(previous, @<tai64n>.s), unlink(previous)
        args = ["--rotated", f"{logdir}/@*.s", "--rotated", f"{logdir}/previous"]
    s6 = subprocess.Popen(
        ["s6-log", "-b", "n1000", "s4096", str(logdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(current.exists, 10, "s6-log to create current")
        proc: Logtail = logtail(*args, current)
        reader = psutil.Process(proc.proc.pid)
        wait_until(
            lambda: str(current) in [f.path for f in reader.open_files()], 15, "logtail to open current"
        )
        feeder = Feeder(s6.stdin)
        feeder.start()
        feeder.join(DURATION + 10)
        assert s6.wait(15) == 0, s6.stderr.read().decode() if s6.stderr else ""
    finally:
        if s6.poll() is None:
            s6.kill()
            s6.wait(10)
    count = feeder.count
    archives = len(list(logdir.glob("@*.s")))
    assert archives >= 0.5 * count * 50 / 4096, f"only {archives} rotations for {count} lines"
    last = line_bytes(count - 1)
    with contextlib.suppress(AssertionError):  # judge what did arrive: the accounting says more
        wait_until(lambda: last in proc.raw_lines[-50:], 20, f"line {count - 1}")
    status = proc.stop()
    seqs, bad = [], []
    for raw in proc.raw_lines:
        match = LINE.match(raw)
        if match:
            seqs.append(int(match.group(1)))
        else:
            bad.append(raw)
    counts = Counter(seqs)
    problems = []
    if bad:
        problems.append(f"{len(bad)} malformed lines, e.g. {bad[:3]}")
    repeated = [seq for seq, n in counts.items() if n > 1]
    if repeated:
        problems.append(f"{len(repeated)} lines printed more than once: {ranges(repeated)}")
    backwards = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
    if backwards:
        problems.append(f"{len(backwards)} places out of order, e.g. {backwards[:5]}")
    missing = set(range(count)) - counts.keys()
    if missing:
        problems.append(f"{len(missing)} of {count} lines lost: {ranges(missing)}")
    if missing:
        problems.append("where the lost lines were: " + where(logdir, missing))
    summary = f"{rotated}: {count} lines, {archives} rotations, {len(seqs)} printed"
    print(summary)
    assert not problems, f"{summary}: " + "; ".join(problems) + f"\nstderr tail: {proc.stderr[-3000:]}"
    assert status == 0, proc.stderr


def where(logdir: Path, missing: set[int]) -> str:
    """For each file of ``logdir`` holding lost lines: its name, its lines, and which of them were lost."""
    parts = []
    for path in [*sorted(logdir.glob("@*.s")), logdir / "current"]:
        held = [int(m.group(1)) for m in map(LINE.match, path.read_bytes().splitlines(keepends=True)) if m]
        lost = missing.intersection(held)
        if lost:
            parts.append(f"{path.name} (lines {ranges(held)}): lost {ranges(lost)}")
    return "; ".join(parts[:12])
