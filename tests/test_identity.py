"""End-to-end tests of issue 11: files are followed by identity, so no line is lost when rotations,
truncations, restarts and stalls compose. One fixed test for each case that lost lines before.

Each test runs logtail as a subprocess against real files; "stalls" are SIGSTOP/SIGCONT of the
real process (a CPU-throttled sidecar), restarts are SIGTERM or SIGKILL and a new process on
the same checkpoint.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from support import Logtail, append, observe, records, wait_until
from writers import LineWriter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def lines(first: int, last: int) -> list[str]:
    return [f"line {n:07d}" for n in range(first, last + 1)]


def text(first: int, last: int) -> str:
    return "".join(f"{line}\n" for line in lines(first, last))


def start(logtail: Any, *args: object) -> Logtail:
    proc: Logtail = logtail(*args)
    return proc


def test_sigterm_between_rename_and_reopen_keeps_the_renamed_file(tmp_path: Path, logtail: Any) -> None:
    """Case 1: SIGTERM after a rename rotation and before the application reopens (its successor is
    empty). What the application writes into the renamed file afterwards is printed after the restart,
    then the new file; nothing is printed twice."""
    log, ck = tmp_path / "app.log", tmp_path / "ck.json"
    writer = LineWriter(log)
    writer.write(text(1, 10))
    first = start(logtail, "--checkpoint", ck, "--rotate-wait", "5", log)
    first.wait_for_lines(10)
    os.rename(log, tmp_path / "app.log.1")
    log.write_text("")  # logrotate's create: the new file is there, empty
    wait_until(lambda: "rotated" in first.stderr, 10, "logtail to notice the rotation")
    assert first.stop() == 0
    writer.write(text(11, 15))  # the application has not reopened yet
    writer.reopen()
    writer.write(text(16, 20))
    second = start(logtail, "--checkpoint", ck, "--rotate-wait", "0.2", log)
    second.wait_for_lines(10)
    assert second.stop() == 0
    assert first.lines + second.lines == lines(1, 20)


def test_symlink_retargeted_while_down_reads_the_old_targets_rest(tmp_path: Path, logtail: Any) -> None:
    """Case 2: current.log -> app-3.log retargeted to app-4.log while logtail is down: the rest of
    app-3.log (a name no --rotated pattern knows) is found by identity and printed first."""
    link, ck = tmp_path / "current.log", tmp_path / "ck.json"
    old, new = tmp_path / "app-3.log", tmp_path / "app-4.log"
    append(old, text(1, 5))
    link.symlink_to(old.name)
    first = start(logtail, "--checkpoint", ck, link)
    first.wait_for_lines(5)
    assert first.stop() == 0
    append(old, text(6, 8))
    append(new, text(9, 10))
    link.unlink()
    link.symlink_to(new.name)
    second = start(logtail, "--checkpoint", ck, link)
    second.wait_for_lines(5)
    assert second.stop() == 0
    assert first.lines + second.lines == lines(1, 10)
    assert "gone" not in second.stderr


def test_new_file_is_in_the_checkpoint_soon_so_a_sigkill_before_the_interval_loses_nothing(
    tmp_path: Path, logtail: Any
) -> None:
    """A file that comes to a path is saved in the checkpoint at once, not only at the next
    --checkpoint-interval: SIGKILL after a retarget, long before the interval (model seed 6), and the
    old target's late lines are still printed after the restart, before the new target's."""
    link, ck = tmp_path / "current.log", tmp_path / "ck.json"
    old, new = tmp_path / "app-1.log", tmp_path / "app-2.log"
    append(old, text(1, 5))
    link.symlink_to(old.name)
    first = start(logtail, "--checkpoint", ck, "--checkpoint-interval", "60", "--poll-interval", "0.1", link)
    first.wait_for_lines(5)
    new.write_text("")
    tmp = tmp_path / "current.log.tmp"
    tmp.symlink_to(new.name)
    os.rename(tmp, link)  # retargeted; the application still writes app-1.log
    new_ino = str(new.stat().st_ino)
    wait_until(
        lambda: ck.exists() and f'"ino":{new_ino}' in ck.read_text(), 5, "the new target in the checkpoint"
    )
    first.proc.kill()
    first.finish()
    append(old, text(6, 8))  # the application's last lines before it reopens
    append(new, text(9, 10))
    second = start(logtail, "--checkpoint", ck, "--rotate-wait", "0.2", link)
    second.wait_for_lines(5)
    assert second.stop() == 0
    assert second.lines == lines(6, 10), second.stderr


def test_a_file_is_in_the_checkpoint_before_anything_is_printed_from_it(tmp_path: Path, logtail: Any) -> None:
    """SIGKILL a few milliseconds after the first lines of a new symlink target were printed (model
    seeds 24, 27): the checkpoint on disk already names that file, so after the restart its later
    lines are printed (its first lines may be replayed), though the link has moved on again."""
    link, ck = tmp_path / "current.log", tmp_path / "ck.json"
    old, new, newest = tmp_path / "app-1.log", tmp_path / "app-2.log", tmp_path / "app-3.log"
    append(old, text(1, 5))
    link.symlink_to(old.name)
    args = (
        "--checkpoint",
        ck,
        "--checkpoint-interval",
        "60",
        "--rotate-wait",
        "0.2",
        "--poll-interval",
        "0.05",
    )
    first = start(logtail, *args, link)
    first.wait_for_lines(5)
    wait_until(lambda: ck.exists(), 5, "the first checkpoint")
    observe(0.3)  # app-1.log is quiet for longer than --rotate-wait: the switch is at once
    append(new, text(6, 7))
    tmp = tmp_path / "current.log.tmp"
    tmp.symlink_to(new.name)
    os.rename(tmp, link)
    first.wait_for_lines(7)
    first.proc.kill()  # within milliseconds of printing app-2.log's first lines
    first.finish()
    append(new, text(8, 9))
    append(newest, text(10, 10))
    link.unlink()
    link.symlink_to(newest.name)
    second = start(logtail, *args, link)
    wait_until(lambda: lines(10, 10)[0] in second.lines, 10, "the newest target's line")
    assert second.stop() == 0
    assert second.lines in (lines(8, 10), lines(6, 10)), second.stderr


def test_truncated_and_refilled_in_the_middle_of_a_catch_up(tmp_path: Path, logtail: Any) -> None:
    """Case 4: logtail, stopped in the middle of a large catch-up, finds its file truncated and refilled
    past its read offset: it prints no glued line and starts the new content from its first byte."""
    log = tmp_path / "app.log"
    append(log, text(1, 1_000_000))  # 13 MB: many chunks
    proc = start(logtail, log)
    wait_until(lambda: proc.raw_lines, 10, "logtail to start printing")
    proc.signal(signal.SIGSTOP)
    try:
        refill = text(2_000_000, 3_100_000)  # longer than anything it can have read
        with open(log, "r+") as handle:
            handle.truncate(0)
            handle.write(refill)
    finally:
        proc.signal(signal.SIGCONT)
    expected_new = refill.splitlines()
    wait_until(lambda: proc.lines[-1:] == expected_new[-1:], 30, "the refilled file to be printed")
    printed = proc.lines
    bad = [line for line in printed if not (line.startswith("line ") and len(line) == 12)]
    assert not bad, f"glued or cut lines: {bad[:3]}"
    cut = printed.index(expected_new[0])
    assert printed[:cut] == lines(1, cut)  # the old content up to where it was truncated
    assert printed[cut:] == expected_new  # then all of the new content


def test_partial_line_destroyed_by_truncation_is_not_printed_as_a_line(tmp_path: Path, logtail: Any) -> None:
    """Case 7: the rest of a partly read line is destroyed by a truncation: the part read so far is not
    printed as if it were a whole line; one warning says how many bytes were lost."""
    log = tmp_path / "app.log"
    append(log, text(1, 3) + "line 0000004 and the start of a long")
    proc = start(logtail, log)
    proc.wait_for_lines(3)  # the partial line came in the same read as the three lines (one pread)
    os.truncate(log, 0)
    append(log, text(5, 6))
    proc.wait_for_lines(5)
    assert proc.stop() == 0
    assert proc.lines == [*lines(1, 3), *lines(5, 6)]
    lost = [r for r in records(proc.stderr) if "lost" in r.get("event", "")]
    assert lost, proc.stderr
    assert lost[0]["lost_bytes"] == len("line 0000004 and the start of a long")
    summary = next(r for r in records(proc.stderr) if r.get("event") == "summary")
    assert summary["files"][0]["lost_bytes"] == lost[0]["lost_bytes"]


def test_empty_queued_file_copytruncated_before_it_was_read(tmp_path: Path, logtail: Any) -> None:
    """Case 3: after a rename rotation the new file waits, empty, while the old one is drained for
    --rotate-wait; it is then written and copytruncated before logtail looks: its copy is read."""
    log = tmp_path / "app.log"
    writer = LineWriter(log)
    writer.write(text(1, 5))
    proc = start(logtail, "--rotate-wait", "3", log)
    proc.wait_for_lines(5)
    os.rename(log, tmp_path / "app.log.1")
    writer.reopen()  # the new, empty app.log is queued behind app.log.1
    wait_until(lambda: "rotated" in proc.stderr, 10, "logtail to queue the new file")
    proc.signal(signal.SIGSTOP)
    try:
        writer.write(text(6, 10))
        shutil.copyfile(log, tmp_path / "app.log.2")  # copytruncate, named after the .1 that exists
        os.truncate(log, 0)
    finally:
        proc.signal(signal.SIGCONT)
    writer.write(text(11, 12))
    proc.wait_for_lines(12, timeout=15)
    assert proc.stop() == 0
    assert proc.lines == lines(1, 12)


def test_woken_between_copy_and_truncate_after_an_unseen_copytruncate(tmp_path: Path, logtail: Any) -> None:
    """Case 6: a copytruncate logtail did not see, then another one that it sees between its copy and
    its truncate: the fresh copy is a copy of what is still in the file, not a missed generation, so
    its lines are printed once."""
    log = tmp_path / "app.log"
    append(log, text(1, 5))
    proc = start(logtail, log)
    proc.wait_for_lines(5)
    proc.signal(signal.SIGSTOP)
    try:
        append(log, text(6, 8))
        shutil.copyfile(log, tmp_path / "app.log.1")  # copytruncate 1, unseen
        os.truncate(log, 0)
        append(log, text(9, 10))
        os.rename(tmp_path / "app.log.1", tmp_path / "app.log.2")
        shutil.copyfile(log, tmp_path / "app.log.1")  # copytruncate 2: the copy, not yet the truncate
    finally:
        proc.signal(signal.SIGCONT)
    proc.wait_for_lines(10)
    os.truncate(log, 0)
    append(log, text(11, 12))
    proc.wait_for_lines(12)
    assert proc.stop() == 0
    assert proc.lines == lines(1, 12)


def test_logger_renaming_current_every_few_milliseconds(tmp_path: Path, logtail: Any) -> None:
    """Case 5: a daemontools-style logger renames `current` to `@<timestamp>.s` (a name no --rotated
    pattern knows) every few lines, several hundred times a second, and opens a new `current`: every
    rotated file is read, each line once, in order."""
    current = tmp_path / "current"
    writer = LineWriter(current)
    writer.write(text(0, 0))
    proc = start(logtail, "--rotate-wait", "0.2", current)
    proc.wait_for_lines(1)  # following: from here on every line is logtail's to print
    total, per_file = 6000, 20
    for first in range(1, total + 1, per_file):
        writer.write(text(first, first + per_file - 1))
        os.rename(current, tmp_path / f"@{first:012d}.s")
        writer.reopen()
    proc.wait_for_lines(total + 1, timeout=30)
    assert proc.stop() == 0
    assert proc.lines == lines(0, total)
