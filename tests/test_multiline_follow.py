"""End-to-end tests of --multiline while following: a record survives split writes, rotation, SIGKILL
with a restart from the checkpoint, and SIGTERM exactly as a line does (issue 14)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from support import Logtail, append, read_position, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

TRACE = (
    "2026-12-02 10:00:02 ERROR request failed\n"
    "java.lang.IllegalStateException: boom\n"
    "\tat App.handle(App.java:10)\n"
    "\tat App.main(App.java:3)\n"
    "Caused by: java.io.IOException: closed\n"
    "\t... 2 more\n"
)
HALF = TRACE.index("\tat App.main")
ONE = "2026-12-02 10:00:01 INFO one\n"
TWO = "2026-12-02 10:00:03 INFO two\n"


def messages(proc: Logtail) -> list[str]:
    return [json.loads(line)["message"] for line in proc.lines]


def start(logtail: Any, *args: object) -> Logtail:
    proc: Logtail = logtail("--format", "json", "--multiline", "java", *args)
    return proc


def test_a_trace_split_across_two_writes_is_one_record(tmp_path: Path, logtail: Any) -> None:
    """The second half of a trace arrives 50 ms after the first (inside --multiline-timeout): still one
    record; the line after it is a record of its own, printed once the file is quiet."""
    log = tmp_path / "app.log"
    append(log, ONE)
    proc = start(logtail, "--multiline-timeout", "0.5", log)
    proc.wait_for_lines(1)
    append(log, TRACE[:HALF])
    time.sleep(0.05)  # the writer's own pause between its two writes (the scenario, not a wait)
    append(log, TRACE[HALF:] + TWO)
    proc.wait_for_lines(3)
    assert proc.stop() == 0
    assert messages(proc) == [ONE.rstrip("\n"), TRACE.rstrip("\n"), TWO.rstrip("\n")]


def test_quiet_file_ends_the_last_record_after_the_timeout(tmp_path: Path, logtail: Any) -> None:
    """The last record of a burst goes out once its file has been quiet for --multiline-timeout."""
    log = tmp_path / "app.log"
    append(log, ONE + TRACE)
    proc = start(logtail, "--multiline-timeout", "0.3", log)
    proc.wait_for_lines(2, timeout=5)
    assert messages(proc) == [ONE.rstrip("\n"), TRACE.rstrip("\n")]
    assert proc.stop() == 0


def test_the_record_pending_at_a_rotation_goes_out_whole(tmp_path: Path, logtail: Any) -> None:
    """A trace is the last thing written before a rename rotation: it is one record, printed when the
    old file is retired, before the new file's lines."""
    log = tmp_path / "app.log"
    append(log, ONE + TWO)
    proc = start(logtail, "--multiline-timeout", "30", "--rotate-wait", "0.2", log)
    proc.wait_for_lines(1)  # ONE is out: TWO is pending, it may still be continued
    append(log, TRACE)
    os.rename(log, tmp_path / "app.log.1")
    append(log, ONE + TWO)
    proc.wait_for_lines(4)
    assert proc.stop() == 0
    assert messages(proc) == [
        ONE.rstrip("\n"),
        TWO.rstrip("\n"),
        TRACE.rstrip("\n"),
        ONE.rstrip("\n"),
        TWO.rstrip("\n"),
    ]


def test_sigkill_then_restart_prints_the_pending_record_once_and_whole(tmp_path: Path, logtail: Any) -> None:
    """SIGKILL while a trace is pending (half written): the checkpoint holds only printed records, so
    after the restart the trace is read again from its first line and printed whole, once."""
    log, ck = tmp_path / "app.log", tmp_path / "ck.json"
    append(log, ONE + TRACE[:HALF])
    args = ("--multiline-timeout", "30", "--checkpoint", ck, "--checkpoint-interval", "0.1", log)
    first = start(logtail, *args)
    first.wait_for_lines(1)

    def saved_offset() -> int:
        try:
            return int(json.loads(ck.read_bytes())["files"][str(log)]["offset"])
        except (FileNotFoundError, ValueError, KeyError):
            return -1

    wait_until(lambda: saved_offset() == len(ONE), 10, "a checkpoint after the first record")
    first.stop(signal.SIGKILL)
    append(log, TRACE[HALF:] + TWO)
    second = start(logtail, *args)
    second.wait_for_lines(1)
    assert second.stop() == 0  # SIGTERM: the pending TWO goes out before exit
    assert messages(first) + messages(second) == [ONE.rstrip("\n"), TRACE.rstrip("\n"), TWO.rstrip("\n")]


def test_sigterm_writes_the_pending_record_before_exit(tmp_path: Path, logtail: Any) -> None:
    """SIGTERM with a record pending (the timeout far away): it is printed whole, then logtail exits 0."""
    log, ck = tmp_path / "app.log", tmp_path / "ck.json"
    append(log, ONE + TRACE)
    proc = start(logtail, "--multiline-timeout", "30", "--checkpoint", ck, log)
    proc.wait_for_lines(1)
    assert proc.stop() == 0
    assert messages(proc) == [ONE.rstrip("\n"), TRACE.rstrip("\n")]
    restarted = start(logtail, "--multiline-timeout", "30", "--checkpoint", ck, log)
    wait_until(lambda: read_position(restarted.proc.pid, log) is not None, 10, "logtail to open the file")
    assert restarted.stop() == 0
    assert restarted.lines == []  # nothing printed twice


def test_raw_output_keeps_a_records_lines_together_with_their_prefix(tmp_path: Path, logtail: Any) -> None:
    """Raw output: every line of a record carries the prefix, and two files' records never interleave."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    append(a, (ONE + TRACE) * 200)
    append(b, (ONE + TRACE) * 200)
    proc: Logtail = logtail("--multiline", "java", "--prefix", "[{name}] ", "--no-follow", a, b)
    assert proc.finish() == 0
    lines = proc.lines
    assert len(lines) == 2 * 200 * (1 + TRACE.count("\n"))
    for at, line in enumerate(lines):
        if "ERROR request failed" in line:
            name = line.split("]")[0]
            block = lines[at : at + TRACE.count("\n")]
            assert all(piece.startswith(name + "] ") for piece in block), block
