"""End-to-end tests of issue 2's behaviours: logtail runs as a subprocess against real files,
real writers and real rotation tools, and is fed and read while it runs."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import support
from support import Logtail, append, assert_no_traceback, observe, run, unprivileged_prefix, wait_until
from writers import LineWriter, logrotate_copytruncate, logrotate_create, mv, numbered_line, rm, truncate

pytestmark = pytest.mark.e2e

PAD = "x" * 60


# -- helpers -------------------------------------------------------------------------------------


def stderr_records(stderr: str) -> list[tuple[str, dict[str, Any] | None]]:
    """Each non-empty stderr line, with its JSON object when it is one (LOGTAIL_LOG_FORMAT=json)."""
    out: list[tuple[str, dict[str, Any] | None]] = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        out.append((line, record if isinstance(record, dict) else None))
    return out


def warnings_about(stderr: str, path: Path) -> list[str]:
    """The warning lines on stderr that name ``path``."""
    found = []
    for line, record in stderr_records(stderr):
        level = str(record.get("level", record.get("log_level", ""))) if record else line
        if "warn" in level.lower() and (str(path) in line or path.name in line):
            found.append(line)
    return found


def assert_usage_error(result: subprocess.CompletedProcess[bytes], *needles: tuple[str, ...]) -> None:
    """Exit 2, nothing on stdout, no traceback, and one stderr line that holds, for each group of
    ``needles``, at least one of its words (case-insensitive)."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 2, f"exit {result.returncode}; stderr: {stderr}"
    assert result.stdout == b"", result.stdout
    assert_no_traceback(stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no message on stderr"
    matching = [
        line
        for line in lines
        if all(any(word.lower() in line.lower() for word in group) for group in needles)
    ]
    assert matching, f"no single stderr line mentions all of {needles}: {stderr}"


def numbered(seqs: range | list[int]) -> list[str]:
    return [numbered_line(seq, PAD) for seq in seqs]


@pytest.fixture
def unprivileged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run logtail (via support.Logtail and support.run) without the power to read mode-000 files."""
    monkeypatch.setattr(support, "LOGTAIL", [*unprivileged_prefix(), *support.LOGTAIL])


@pytest.fixture
def ten_lines(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "a.log"
    lines = [f"line {i}" for i in range(1, 11)]
    path.write_text("".join(line + "\n" for line in lines))
    return path, lines


# -- 1. follow by name with retry ----------------------------------------------------------------


def test_appended_line_is_forwarded_promptly_through_a_pipe(tmp_path: Path, logtail: Any) -> None:
    """A line appended to a followed file reaches logtail's stdout (a pipe) promptly, not block-buffered."""
    path = tmp_path / "app.log"
    path.write_text("first\n")
    proc: Logtail = logtail(path)
    assert proc.wait_for_lines(1) == ["first"]
    append(path, "second\n")
    started = time.monotonic()
    assert proc.wait_for_lines(2, timeout=5) == ["first", "second"]
    assert time.monotonic() - started < 2.0


def test_missing_file_is_waited_for_with_one_warning(tmp_path: Path, logtail: Any) -> None:
    """A file that does not exist yet is waited for: one warning on stderr, no crash, then read from its
    first byte."""
    path = tmp_path / "later.log"
    proc: Logtail = logtail("--poll-interval", "0.1", path)
    proc.wait_for_stderr("later.log")
    observe(1.0)  # ten poll intervals: the warning must not repeat, the process must stay up
    assert proc.proc.poll() is None, proc.stderr
    assert len(warnings_about(proc.stderr, path)) == 1, proc.stderr
    path.write_text("one\ntwo\n")
    assert proc.wait_for_lines(2) == ["one", "two"]
    assert len(warnings_about(proc.stderr, path)) == 1, proc.stderr
    assert_no_traceback(proc.stderr)


def test_glob_picks_up_a_new_file_within_about_a_second(tmp_path: Path, logtail: Any) -> None:
    """A quoted glob picks up a file that appears later within about a second, read from its first byte."""
    (tmp_path / "a.log").write_text("a1\n")
    proc: Logtail = logtail(str(tmp_path / "*.log"))
    assert proc.wait_for_lines(1) == ["a1"]
    created = time.monotonic()
    (tmp_path / "b.log").write_text("b1\nb2\n")
    proc.wait_for_lines(3, timeout=5)
    elapsed = time.monotonic() - created
    assert proc.lines == ["a1", "b1", "b2"]
    assert elapsed < 2.0, f"new file picked up only after {elapsed:.2f}s"


def test_glob_ignores_files_that_do_not_match(tmp_path: Path, logtail: Any) -> None:
    """Files next to the glob's matches that do not match it are not followed."""
    (tmp_path / "a.log").write_text("a1\n")
    proc: Logtail = logtail(str(tmp_path / "*.log"))
    assert proc.wait_for_lines(1) == ["a1"]
    (tmp_path / "other.txt").write_text("nope\n")
    (tmp_path / "b.log").write_text("b1\n")
    assert proc.wait_for_lines(2, timeout=5) == ["a1", "b1"]
    append(tmp_path / "a.log", "a2\n")
    assert proc.wait_for_lines(3) == ["a1", "b1", "a2"]


# -- 2. rename rotation --------------------------------------------------------------------------


def test_mv_rotation_reads_late_lines_of_the_old_file_then_the_new_one(tmp_path: Path, logtail: Any) -> None:
    """After `mv`, lines the writer still puts into the old file before it reopens are printed, then the new
    file from its first byte."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    expected = writer.lines(range(10))
    proc: Logtail = logtail(path)
    proc.wait_for_lines(10)
    mv(path, tmp_path / "app.log.1")
    for seq in range(10, 15):  # the application has not reopened yet: these go to the renamed file
        expected += writer.lines([seq])
        time.sleep(0.02)
    writer.reopen()
    expected += writer.lines(range(15, 20))
    assert proc.wait_for_lines(20) == expected
    writer.close()


def test_logrotate_create_reads_lines_written_after_the_rename(tmp_path: Path, logtail: Any) -> None:
    """With logrotate `create`, lines written into the renamed file before the application reopens are not
    lost, and nothing repeats."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    expected = writer.lines(range(10))
    proc: Logtail = logtail(path)
    proc.wait_for_lines(10)
    logrotate_create(path, tmp_path).rotate()
    assert (tmp_path / "app.log.1").exists()
    assert path.stat().st_size == 0  # the empty file logrotate created
    for seq in range(10, 20):  # ~100 ms until the postrotate signal arrives
        expected += writer.lines([seq])
        time.sleep(0.01)
    writer.reopen()
    expected += writer.lines(range(20, 30))
    assert proc.wait_for_lines(30) == expected
    writer.close()


def test_rotating_file_handler_rotation_loses_and_repeats_nothing(tmp_path: Path, logtail: Any) -> None:
    """Python's RotatingFileHandler renaming its file mid-stream: every line printed once, in order."""
    path = tmp_path / "app.log"
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=25 * 70, backupCount=50)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"rotating-{id(path)}")
    logger.propagate = False
    logger.addHandler(handler)
    proc: Logtail = logtail(path)
    expected: list[str] = []
    for batch in range(8):  # each batch of 10 lines crosses a rotation every ~2.5 batches
        for seq in range(batch * 10, batch * 10 + 10):
            expected.append(numbered_line(seq, PAD))
            logger.warning(expected[-1])
        assert proc.wait_for_lines(len(expected)) == expected
    handler.close()
    assert len(list(tmp_path.glob("app.log.*"))) >= 2


def test_watched_file_handler_rotation_loses_and_repeats_nothing(tmp_path: Path, logtail: Any) -> None:
    """Python's WatchedFileHandler reopening after its file was moved away: every line printed once, in
    order."""
    path = tmp_path / "app.log"
    handler = logging.handlers.WatchedFileHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"watched-{id(path)}")
    logger.propagate = False
    logger.addHandler(handler)
    expected: list[str] = []

    def log(seqs: range) -> None:
        for seq in seqs:
            expected.append(numbered_line(seq, PAD))
            logger.warning(expected[-1])

    log(range(10))
    proc: Logtail = logtail(path)
    proc.wait_for_lines(10)
    for generation in range(1, 4):
        mv(path, tmp_path / f"app.log.{generation}")
        log(range(generation * 10, generation * 10 + 10))
    assert proc.wait_for_lines(40) == expected
    handler.close()


# -- 3. delete and recreate ----------------------------------------------------------------------


def test_delete_and_recreate_reads_the_deleted_file_to_its_end(tmp_path: Path, logtail: Any) -> None:
    """After `rm`, lines written through the still-open descriptor of the deleted file are printed, then the
    recreated file from its first byte."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    expected = writer.lines(range(10))
    proc: Logtail = logtail(path)
    proc.wait_for_lines(10)
    rm(path)
    for seq in range(10, 20):
        expected += writer.lines([seq])
        time.sleep(0.01)
    writer.reopen()  # creates the new file
    expected += writer.lines(range(20, 30))
    assert proc.wait_for_lines(30) == expected
    writer.close()


# -- 4. truncation and copytruncate --------------------------------------------------------------


def test_truncation_in_place_restarts_at_offset_zero(tmp_path: Path, logtail: Any) -> None:
    """`truncate -s 0` (same inode) is detected and reading restarts at offset 0."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    first = writer.lines(range(20))
    proc: Logtail = logtail(path)
    proc.wait_for_lines(20)
    inode = path.stat().st_ino
    truncate(path)
    assert path.stat().st_ino == inode
    second = writer.lines(range(20, 25))
    assert proc.wait_for_lines(25) == first + second
    truncate(path)
    third = writer.lines(range(25, 27))
    assert proc.wait_for_lines(27) == first + second + third
    writer.close()


@pytest.mark.parametrize("method", ["truncate", "logrotate-copytruncate"])
def test_nul_run_left_by_writer_without_o_append_is_skipped(
    tmp_path: Path, logtail: Any, method: str
) -> None:
    """A writer without O_APPEND keeps its offset after a truncation, leaving a run of NULs: they are
    skipped, not printed."""
    path = tmp_path / "app.log"
    writer = LineWriter(path, append=False)
    first = writer.lines(range(20))
    proc: Logtail = logtail(path)
    proc.wait_for_lines(20)
    if method == "truncate":
        truncate(path)
    else:
        logrotate_copytruncate(path, tmp_path).rotate()
    second = writer.lines(range(20, 23))
    assert path.read_bytes().startswith(b"\0" * 100), "the writer did not leave a hole of NULs"
    lines = proc.wait_for_lines(23)
    assert all(b"\0" not in raw for raw in proc.raw_lines), [
        raw[:40] for raw in proc.raw_lines if b"\0" in raw
    ]
    assert lines == first + second
    writer.close()


def test_logrotate_copytruncate_restarts_at_offset_zero(tmp_path: Path, logtail: Any) -> None:
    """logrotate `copytruncate` is detected; the copy is not printed again and the truncated file is read
    from 0."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    expected = writer.lines(range(20))
    proc: Logtail = logtail(path)
    proc.wait_for_lines(20)
    rotator = logrotate_copytruncate(path, tmp_path)
    for generation in range(3):
        rotator.rotate()
        expected += writer.lines(range(20 + generation * 5, 25 + generation * 5))
        assert proc.wait_for_lines(len(expected)) == expected
    writer.close()


def test_copytruncate_unread_rest_is_read_from_the_copy(tmp_path: Path, logtail: Any) -> None:
    """(issue 3) When logtail is behind at a copytruncate, the lines it had not read yet come from the
    rotated copy, once each."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    expected = writer.lines(range(10))
    proc: Logtail = logtail("--poll", "--poll-interval", "1.5", path)
    proc.wait_for_lines(10)
    expected += writer.lines(range(10, 40))  # logtail polls slowly: it has not read these yet...
    logrotate_copytruncate(path, tmp_path).rotate()  # ...when they are copied away and truncated
    expected += writer.lines(range(40, 45))
    assert proc.wait_for_lines(45) == expected


# -- 5. whole lines only -------------------------------------------------------------------------


def test_partial_line_is_printed_only_once_its_newline_arrives(tmp_path: Path, logtail: Any) -> None:
    """A line goes out only once its newline has arrived, and then whole, once."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    proc: Logtail = logtail(path)
    writer.write("complete\npart")  # one write: once "complete" is out, "part" has been read too
    assert proc.wait_for_lines(1) == ["complete"]
    observe(0.5)
    assert proc.raw_lines == [b"complete\n"]
    writer.write("ial")
    observe(0.3)
    assert proc.raw_lines == [b"complete\n"]
    writer.write(" line\nnext\n")
    proc.wait_for_lines(3)
    assert proc.raw_lines == [b"complete\n", b"partial line\n", b"next\n"]
    writer.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_unterminated_last_line_is_printed_at_shutdown(tmp_path: Path, logtail: Any, signum: int) -> None:
    """At shutdown an unterminated last line is printed, with a newline added."""
    path = tmp_path / "app.log"
    path.write_bytes(b"done\nno newline yet")
    proc: Logtail = logtail(path)
    proc.wait_for_lines(1)
    assert proc.stop(signum) == 0, proc.stderr
    assert proc.raw_lines == [b"done\n", b"no newline yet\n"]


def test_unterminated_last_line_is_printed_at_no_follow_end(tmp_path: Path) -> None:
    """With --no-follow, an unterminated last line is printed with a newline added."""
    path = tmp_path / "app.log"
    path.write_bytes(b"done\nno newline")
    result = run(["--no-follow", path])
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"done\nno newline\n"


@pytest.mark.parametrize("how", ["mv", "rm"])
def test_unterminated_last_line_is_printed_when_rotated_away(tmp_path: Path, logtail: Any, how: str) -> None:
    """An unterminated last line is printed, with a newline, when its file is rotated away, before the new
    file's lines."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    writer.write("done\nhalf a line")
    proc: Logtail = logtail(path)
    proc.wait_for_lines(1)
    if how == "mv":
        mv(path, tmp_path / "app.log.1")
    else:
        rm(path)
    writer.reopen()
    writer.write("new file\n")
    proc.wait_for_lines(3, timeout=15)
    assert proc.raw_lines == [b"done\n", b"half a line\n", b"new file\n"]
    writer.close()


def test_lines_of_two_files_never_interleave(tmp_path: Path, logtail: Any) -> None:
    """Long lines from two fast writers: each output line is one intact line of one file, each file's lines
    in order."""
    rng = random.Random(20240611)  # noqa: S311 - reproducible line lengths, not secrets
    plan = {
        name: [f"{seq:08d} " + name * rng.randint(1, 300_000) for seq in range(40)] for name in ("A", "B")
    }
    proc: Logtail = logtail("--prefix", "{name}|", f"A={tmp_path / 'a.log'}", f"B={tmp_path / 'b.log'}")

    def write(name: str) -> None:
        writer = LineWriter(tmp_path / f"{name.lower()}.log")
        for line in plan[name]:
            writer.write(line + "\n")
        writer.close()

    threads = [threading.Thread(target=write, args=(name,)) for name in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    proc.wait_for_lines(80, timeout=60)
    got: dict[str, list[str]] = {"A": [], "B": []}
    for line in proc.lines:
        name, sep, text = line.partition("|")
        assert sep, f"mangled line start: {line[:60]!r}"
        assert name in got, f"mangled line start: {line[:60]!r}"
        got[name].append(text)
    for name in plan:
        # compare cheaply first, then say which line broke
        if got[name] != plan[name]:
            for i, (have, want) in enumerate(zip(got[name], plan[name], strict=False)):
                assert have == want, (
                    f"{name} line {i}: got {have[:20]!r}...{len(have)} bytes, want {len(want)}"
                )
            assert len(got[name]) == len(plan[name])


# -- 6. stdout is data, stderr is diagnostics ----------------------------------------------------


def test_stdout_carries_only_the_files_bytes(tmp_path: Path, logtail: Any) -> None:
    """stdout holds exactly the forwarded bytes; logtail's own messages (here: a missing file) go to stderr
    as structured log lines."""
    path = tmp_path / "app.log"
    content = b"alpha\nbeta \xce\xb2\n\tgamma  \n\n"
    path.write_bytes(content)
    proc: Logtail = logtail(path, tmp_path / "missing.log")
    proc.wait_for_lines(4)
    proc.wait_for_stderr("missing.log")
    assert proc.stop() == 0
    assert b"".join(proc.raw_lines) == content
    records = stderr_records(proc.stderr)
    assert records
    not_json = [line for line, record in records if record is None]
    assert not not_json, f"stderr lines that are not structured (LOGTAIL_LOG_FORMAT=json): {not_json}"


def test_closed_stdout_ends_logtail_without_traceback(tmp_path: Path, logtail: Any) -> None:
    """When stdout is closed (`logtail FILE | head -1`), logtail ends on EPIPE without a traceback."""
    path = tmp_path / "app.log"
    path.write_text("first\n")
    read_end, write_end = os.pipe()
    proc: Logtail = logtail(path, stdout=write_end)
    head = subprocess.Popen(["head", "-1"], stdin=read_end, stdout=subprocess.PIPE)
    os.close(read_end)
    os.close(write_end)
    assert head.communicate(timeout=10)[0] == b"first\n"
    deadline = time.monotonic() + 15
    seq = 0
    while proc.proc.poll() is None:  # keep feeding it until it notices nobody reads
        assert time.monotonic() < deadline, "logtail still running 15s after its stdout closed"
        append(path, f"more {seq}\n" * 100)
        seq += 1
        time.sleep(0.02)
    assert_no_traceback(proc.stderr)


def test_closed_stdout_is_noticed_while_no_line_is_written(tmp_path: Path, logtail: Any) -> None:
    """A reader that goes away ends logtail even when the files are idle (as GNU tail notices), exit 1."""
    path = tmp_path / "app.log"
    path.write_text("only line\n")
    read_end, write_end = os.pipe()
    proc: Logtail = logtail(path, stdout=write_end)
    os.close(write_end)
    assert os.read(read_end, 100) == b"only line\n"
    os.close(read_end)  # nothing more is written to the file: only the closed pipe can end logtail
    assert proc.finish(timeout=10) == 1
    assert "stdout was closed" in proc.stderr
    assert_no_traceback(proc.stderr)


# -- 7. signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_every_file_then_exits_zero(tmp_path: Path, logtail: Any, signum: int) -> None:
    """On SIGTERM or SIGINT, logtail prints every followed file to its current end, then exits 0."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("a start\n")
    b.write_text("b start\n")
    proc: Logtail = logtail(a, b)
    proc.wait_for_lines(2)
    append(a, "".join(f"a {i} {PAD}\n" for i in range(20_000)))
    append(b, "".join(f"b {i} {PAD}\n" for i in range(20_000)))
    assert proc.stop(signum) == 0, proc.stderr
    lines = proc.lines
    assert len(lines) == 40_002
    assert [line for line in lines if line.startswith("a ")] == ["a start"] + [
        f"a {i} {PAD}" for i in range(20_000)
    ]
    assert [line for line in lines if line.startswith("b ")] == ["b start"] + [
        f"b {i} {PAD}" for i in range(20_000)
    ]
    assert_no_traceback(proc.stderr)


def pid_namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


def test_sigterm_as_pid_1_drains_then_exits_zero(
    tmp_path: Path, logtail: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As PID 1 of a PID namespace (as in a container), SIGTERM still drains and exits 0."""
    if not pid_namespaces_work():
        pytest.skip("cannot create a PID namespace here (unshare --pid)")
    monkeypatch.setattr(support, "LOGTAIL", ["unshare", "--pid", "--fork", *support.LOGTAIL])
    path = tmp_path / "app.log"
    path.write_text("start\n")
    proc: Logtail = logtail(path)
    proc.wait_for_lines(1)
    children = psutil.Process(proc.proc.pid).children()
    assert len(children) == 1
    status = Path(f"/proc/{children[0].pid}/status").read_text()
    assert next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1] == "1"
    append(path, "".join(f"{i} {PAD}\n" for i in range(20_000)))
    os.kill(children[0].pid, signal.SIGTERM)
    assert proc.finish() == 0, proc.stderr
    assert proc.lines == ["start"] + [f"{i} {PAD}" for i in range(20_000)]


# -- -n / --lines --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "expected"),
    [("+1", slice(0, 10)), ("3", slice(7, 10)), ("+3", slice(2, 10)), ("0", slice(0, 0)),
     ("100", slice(0, 10)), ("+100", slice(0, 0)), ("1", slice(9, 10))],
)  # fmt: skip
def test_lines_option_selects_where_reading_starts(
    ten_lines: tuple[Path, list[str]], option: str, expected: slice
) -> None:
    """-n +1 starts at the first line, -n N prints the last N lines, -n 0 nothing old, -n +K from line K."""
    path, lines = ten_lines
    result = run(["--no-follow", "-n", option, path])
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == lines[expected]
    result = run(["--no-follow", "--lines", option, path])
    assert result.stdout.decode().splitlines() == lines[expected]


def test_lines_default_is_from_the_first_line(ten_lines: tuple[Path, list[str]]) -> None:
    """Without -n, a file present at start is printed from its first line."""
    path, lines = ten_lines
    result = run(["--no-follow", path])
    assert result.stdout.decode().splitlines() == lines


def test_lines_zero_prints_only_new_lines_but_later_files_from_their_first_byte(
    tmp_path: Path, logtail: Any
) -> None:
    """With -n 0, files present at start give only new lines, while a file that appears later is read from
    its first byte."""
    a = tmp_path / "a.log"
    a.write_text("".join(f"old {i}\n" for i in range(10)))
    proc: Logtail = logtail("-n", "0", str(tmp_path / "*.log"))
    beat = 0
    deadline = time.monotonic() + 10
    while not proc.raw_lines:  # the heartbeats tell when logtail sits at a.log's end
        assert time.monotonic() < deadline, proc.stderr
        append(a, f"beat {beat}\n")
        beat += 1
        time.sleep(0.1)
    (tmp_path / "b.log").write_text("b old 1\nb old 2\n")
    wait_until(lambda: "b old 2" in proc.lines, what="b.log's lines")
    lines = proc.lines
    assert not [line for line in lines if line.startswith("old")], lines
    beats = [line for line in lines if line.startswith("beat")]
    first = int(beats[0].split()[1])
    assert beats == [f"beat {i}" for i in range(first, beat)]
    assert [line for line in lines if line.startswith("b ")] == ["b old 1", "b old 2"]


def test_lines_n_prints_the_last_lines_then_follows(ten_lines: tuple[Path, list[str]], logtail: Any) -> None:
    """With -n 2, the last two lines come first, then new lines, and a file appearing later from its first
    byte."""
    path, lines = ten_lines
    proc: Logtail = logtail("-n", "2", str(path.parent / "*.log"))
    assert proc.wait_for_lines(2) == lines[-2:]
    append(path, "line 11\n")
    assert proc.wait_for_lines(3) == [*lines[-2:], "line 11"]
    (path.parent / "b.log").write_text("b1\nb2\nb3\n")
    assert proc.wait_for_lines(6) == [*lines[-2:], "line 11", "b1", "b2", "b3"]


# -- --no-follow, --prefix, --format, --max-line-bytes, NAME=, env --------------------------------


def test_no_follow_prints_everything_and_exits_zero(tmp_path: Path) -> None:
    """--no-follow prints what the files hold and exits 0, each file's lines in order."""
    (tmp_path / "a.log").write_text("a1\na2\na3\n")
    (tmp_path / "b.log").write_text("b1\nb2\n")
    (tmp_path / "c.txt").write_text("c1\n")
    result = run(["--no-follow", str(tmp_path / "*.log"), tmp_path / "c.txt"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert sorted(lines) == ["a1", "a2", "a3", "b1", "b2", "c1"]
    assert [line for line in lines if line.startswith("a")] == ["a1", "a2", "a3"]
    assert [line for line in lines if line.startswith("b")] == ["b1", "b2"]


def test_prefix_fills_in_name_and_path(tmp_path: Path) -> None:
    """--prefix puts the template, with {name} and {path} filled in, before every line."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("one\ntwo\n")
    b.write_text("three\n")
    result = run(["--no-follow", "--prefix", "[{name}] {path}: ", f"web={a}", b])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert sorted(lines) == sorted([f"[web] {a}: one", f"[web] {a}: two", f"[b.log] {b}: three"])


def test_without_prefix_output_is_byte_identical(tmp_path: Path) -> None:
    """Without --prefix, stdout is byte-identical to the file."""
    path = tmp_path / "a.log"
    content = b"".join(f"{i} \t {'y' * (i * 37 % 500)} \r\n".encode() for i in range(2000))
    path.write_bytes(content)
    result = run(["--no-follow", path])
    assert result.stdout == content


def test_format_json_has_message_name_and_file(tmp_path: Path, logtail: Any) -> None:
    """--format json prints one compact JSON object per line with the keys message, name and file."""
    path = tmp_path / "a.log"
    path.write_text('plain\nwith "quotes" and \\ and \t tab\n')
    proc: Logtail = logtail("--format", "json", f"app={path}")
    proc.wait_for_lines(2)
    append(path, "héllo 🌍\n")
    proc.wait_for_lines(3)
    objects = [json.loads(line) for line in proc.lines]
    assert [set(obj) for obj in objects] == [{"message", "name", "file"}] * 3
    assert [obj["message"] for obj in objects] == ["plain", 'with "quotes" and \\ and \t tab', "héllo 🌍"]
    assert {obj["name"] for obj in objects} == {"app"}
    assert {obj["file"] for obj in objects} == {str(path)}
    for line, obj in zip(proc.lines, objects, strict=True):
        compact = [json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii) for ascii in (True, False)]
        assert line in compact, f"not compact JSON: {line}"


def test_format_json_replaces_invalid_utf8(tmp_path: Path) -> None:
    """In --format json, invalid UTF-8 is replaced with U+FFFD and the rest of the line is kept."""
    path = tmp_path / "a.log"
    path.write_bytes(b"bad \xff\xfe end\ntrunc \xe2\x82\nok\n")
    result = run(["--no-follow", "--format", "json", path])
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line)["message"] for line in result.stdout.decode("utf-8").splitlines()]
    assert len(messages) == 3
    assert messages[0].startswith("bad \ufffd"), messages[0]
    assert messages[0].endswith("\ufffd end"), messages[0]
    assert messages[1].startswith("trunc \ufffd"), messages[1]
    assert messages[2] == "ok"
    for message in messages:
        message.encode("utf-8")  # no lone surrogates


def test_raw_mode_passes_invalid_bytes_untouched(tmp_path: Path, logtail: Any) -> None:
    """In raw mode (the default) bytes that are not UTF-8 pass through untouched."""
    path = tmp_path / "a.log"
    content = b"bad \xff\xfe end\nlatin \xe9\xe8\ntrunc \xe2\x82\ncr\r\n\x1b[31mred\x1b[0m\n"
    path.write_bytes(content)
    proc: Logtail = logtail(path)
    proc.wait_for_lines(5)
    append(path, b"more \x80\x81\n")
    proc.wait_for_lines(6)
    assert b"".join(proc.raw_lines) == content + b"more \x80\x81\n"
    result = run(["--no-follow", "--format", "raw", path])
    assert result.stdout == content + b"more \x80\x81\n"


def assert_split(raw_lines: list[bytes], before: bytes, long: bytes, after: bytes, limit: int) -> None:
    assert raw_lines[0] == before + b"\n"
    assert raw_lines[-1] == after + b"\n"
    pieces = [raw.removesuffix(b"\n") for raw in raw_lines[1:-1]]
    assert len(pieces) >= 2
    assert all(len(piece) <= limit for piece in pieces), [len(piece) for piece in pieces]
    assert b"".join(pieces) == long


def test_max_line_bytes_splits_long_lines_without_dropping(tmp_path: Path) -> None:
    """A line longer than --max-line-bytes is printed as pieces of at most N bytes; nothing is dropped."""
    path = tmp_path / "a.log"
    long = bytes(range(33, 127)) * 3  # 282 bytes
    path.write_bytes(b"short\n" + long + b"\nafter\n")
    result = run(["--no-follow", "--max-line-bytes", "50", path])
    assert result.returncode == 0, result.stderr
    assert_split(result.stdout.splitlines(keepends=True), b"short", long, b"after", 50)


def test_default_max_line_bytes_is_one_mebibyte(tmp_path: Path) -> None:
    """By default a line over 1 MiB is split into pieces of at most 1 MiB; a shorter one is not."""
    path = tmp_path / "a.log"
    big = b"z" * (1024 * 1024 - 1)
    long = (b"0123456789" * 300_000)[:2_500_000]
    path.write_bytes(big + b"\n" + long + b"\nafter\n")
    result = run(["--no-follow", path])
    lines = result.stdout.splitlines(keepends=True)
    assert lines[0] == big + b"\n"
    assert_split(lines, big, long, b"after", 1024 * 1024)


def test_max_line_bytes_emits_pieces_before_the_newline_arrives(tmp_path: Path, logtail: Any) -> None:
    """A long line still being written is printed piece by piece (memory stays bounded), and nothing is
    dropped."""
    path = tmp_path / "a.log"
    writer = LineWriter(path)
    writer.write("short\n")
    proc: Logtail = logtail("--max-line-bytes", "10", path)
    proc.wait_for_lines(1)
    long = b""
    for i in range(10):
        chunk = f"<{i}:abcdef>".encode()
        long += chunk
        writer.write(chunk)
    proc.wait_for_lines(3)  # pieces come out although the line has no newline yet
    writer.write(b"\nafter\n")
    proc.wait_for_lines(2 + len(long) // 10)
    wait_until(lambda: proc.raw_lines[-1] == b"after\n", what="the line after the long one")
    assert_split(proc.raw_lines, b"short", long, b"after", 10)
    writer.close()


def test_name_equals_path_names_the_stream(tmp_path: Path) -> None:
    """NAME=PATH names the stream; without NAME= the name is the file's base name."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("one\n")
    b.write_text("two\n")
    result = run(["--no-follow", "--format", "json", f"frontend={a}", b])
    objects = sorted(
        (json.loads(line) for line in result.stdout.splitlines()), key=lambda obj: obj["message"]
    )
    assert objects == [
        {"message": "one", "name": "frontend", "file": str(a)},
        {"message": "two", "name": "b.log", "file": str(b)},
    ]


def test_options_and_paths_from_environment(tmp_path: Path, logtail: Any) -> None:
    """LOGTAIL_PREFIX sets --prefix and LOGTAIL_FILES (space-separated) gives the paths, as Pod specs set
    env."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("one\n")
    b.write_text("two\n")
    proc: Logtail = logtail(env={"LOGTAIL_PREFIX": "<{name}> ", "LOGTAIL_FILES": f"{a} web={b}"})
    proc.wait_for_lines(2)
    assert sorted(proc.lines) == ["<a.log> one", "<web> two"]


def test_environment_option_other_than_prefix(tmp_path: Path) -> None:
    """Any option can come from LOGTAIL_<OPTION>, for example LOGTAIL_LINES and LOGTAIL_FORMAT."""
    path = tmp_path / "a.log"
    path.write_text("one\ntwo\nthree\n")
    result = run(["--no-follow", path], env={"LOGTAIL_LINES": "1", "LOGTAIL_FORMAT": "json"})
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["message"] for line in result.stdout.splitlines()] == ["three"]


# -- 8. bad input --------------------------------------------------------------------------------


def test_directory_as_path_is_a_usage_error(tmp_path: Path) -> None:
    """A directory given as PATH: a one-line message naming it and saying it is a directory, exit 2, no
    traceback."""
    result = run([tmp_path])
    assert_usage_error(result, (str(tmp_path),), ("directory",))


def test_unreadable_file_is_a_usage_error(tmp_path: Path, unprivileged: None) -> None:
    """A file without read permission: a one-line message naming it and the reason, exit 2, no traceback."""
    path = tmp_path / "secret.log"
    path.write_text("secret\n")
    path.chmod(0)
    result = run([path])
    assert_usage_error(result, (str(path),), ("permission", "denied", "readable"))


def test_file_becoming_unreadable_warns_and_others_keep_flowing(
    tmp_path: Path, logtail: Any, unprivileged: None
) -> None:
    """A followed file replaced by an unreadable one: a warning naming it, the old file's rest printed, the
    other files still followed."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    writer = LineWriter(a)
    writer.write("a1\n")
    b.write_text("b1\n")
    proc: Logtail = logtail("--poll-interval", "0.2", a, b)
    proc.wait_for_lines(2)
    mv(a, tmp_path / "a.log.1")
    writer.write("a2 late\n")
    # Created unreadable in one step: a file that is readable for a moment may rightly be opened.
    fd = os.open(a, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0)
    os.write(fd, b"a3 secret\n")
    os.close(fd)
    wait_until(lambda: warnings_about(proc.stderr, a), what=f"a warning about {a}: {proc.stderr}")
    append(b, "b2\n")
    wait_until(lambda: "b2" in proc.lines, what="b2")
    assert proc.proc.poll() is None, proc.stderr
    assert "a2 late" in proc.lines
    assert "a3 secret" not in proc.lines
    assert_no_traceback(proc.stderr)
    writer.close()


def test_file_readable_again_is_followed_again(tmp_path: Path, logtail: Any, unprivileged: None) -> None:
    """Like `tail -F`, a followed file that became unreadable is read again, from its first byte, once it is
    readable."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("a1\n")
    b.write_text("b1\n")
    proc: Logtail = logtail("--poll-interval", "0.2", a, b)
    proc.wait_for_lines(2)
    mv(a, tmp_path / "a.log.1")
    fd = os.open(a, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0)  # unreadable from its first moment
    os.write(fd, b"a2\n")
    os.close(fd)
    wait_until(lambda: warnings_about(proc.stderr, a), what=f"a warning about {a}: {proc.stderr}")
    a.chmod(0o644)
    append(a, "a3\n")
    wait_until(lambda: "a3" in proc.lines, what="a3 after the file became readable", timeout=10)
    assert [line for line in proc.lines if line.startswith("a")] == ["a1", "a2", "a3"]


# -- 9. idle costs next to nothing; large reads ---------------------------------------------------


@pytest.mark.parametrize("mode", [[], ["--poll", "--poll-interval", "0.1"]], ids=["default", "poll"])
def test_idle_logtail_uses_almost_no_cpu(tmp_path: Path, logtail: Any, mode: list[str]) -> None:
    """Following idle files (present, missing, and a glob) is not a busy loop: CPU use stays tiny."""
    (tmp_path / "a.log").write_text("a\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "b.log").write_text("b\n")
    proc: Logtail = logtail(
        *mode, tmp_path / "a.log", tmp_path / "missing.log", str(tmp_path / "logs" / "*.log")
    )
    proc.wait_for_lines(2)
    process = psutil.Process(proc.proc.pid)
    before, started = process.cpu_times(), time.monotonic()
    observe(2.0)  # the measurement window
    after, elapsed = process.cpu_times(), time.monotonic() - started
    used = (after.user - before.user) + (after.system - before.system)
    assert used / elapsed < 0.05, f"idle logtail used {used:.3f}s CPU in {elapsed:.2f}s"


def test_data_is_read_in_large_chunks(tmp_path: Path, logtail: Any) -> None:
    """100,000 short lines are read with far fewer read calls than lines."""
    path = tmp_path / "a.log"
    path.write_text("ready\n")
    proc: Logtail = logtail(path)
    proc.wait_for_lines(1)
    process = psutil.Process(proc.proc.pid)
    reads_before = process.io_counters().read_count
    append(path, "".join(f"{i:08d} {'r' * 40}\n" for i in range(100_000)))
    proc.wait_for_lines(100_001, timeout=60)
    reads = process.io_counters().read_count - reads_before
    assert reads < 2_000, f"{reads} read calls for 100,000 lines"


def test_write_error_on_stdout_ends_the_run_with_one_line(tmp_path: Path) -> None:
    """stdout on a full device (ENOSPC): exit 1 with one warning naming stdout and the reason, not a
    read error and not a hang."""
    path = tmp_path / "a.log"
    path.write_text("one\ntwo\n")
    with open("/dev/full", "wb") as full:
        result = run(["--no-follow", path], stdout=full, timeout=20)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert_no_traceback(stderr)
    assert "cannot write to stdout (No space left on device)" in stderr
    assert "cannot read file" not in stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("interval", "batched"), [("0.4", True), ("0", False)])
def test_batch_interval_holds_lines_of_a_busy_file_back_at_most_that_long(
    tmp_path: Path, logtail: Any, interval: str, batched: bool
) -> None:
    """--batch-interval: lines that follow each other closely are read at the end of a pause of that
    length (the writer is busy), a line after a quiet spell at once; 0 reads every write at once."""
    path = tmp_path / "app.log"
    path.write_bytes(b"line 0\n")
    proc = logtail(path, "--batch-interval", interval)
    proc.wait_for_lines(1)

    def delay(n: int) -> float:
        written = time.monotonic()
        append(path, f"line {n}\n")
        proc.wait_for_lines(n + 1)
        return time.monotonic() - written

    time.sleep(1.0)  # quiet
    delays = [delay(n) for n in range(1, 7)]  # each line right after the one before arrived
    assert delays[0] < 0.3, delays  # after a quiet spell: at once
    if batched:
        assert max(delays[2:]) >= 0.3, delays  # in a busy spell: at the end of the pause
        assert max(delays) < 0.4 + 1.0, delays  # ... which is never much longer than asked for
    else:
        assert max(delays) < 0.3, delays
    assert proc.lines == [f"line {n}" for n in range(7)]


@pytest.mark.timeout(30)
def test_a_pipe_on_stdout_is_widened_for_catching_up(tmp_path: Path, logtail: Any) -> None:
    """stdout as a pipe (a container runtime's) is asked to hold 1 MiB, so a backlog is not written 64 KiB
    at a time; a file on stdout is left as it is and gets every line."""
    import fcntl

    if int(Path("/proc/sys/fs/pipe-max-size").read_text()) < 1 << 20:
        pytest.skip("this kernel allows less than 1 MiB per pipe")
    path = tmp_path / "app.log"
    path.write_text("one\n")
    proc = logtail(path)
    proc.wait_for_lines(1)
    assert proc.proc.stdout is not None
    assert fcntl.fcntl(proc.proc.stdout.fileno(), fcntl.F_GETPIPE_SZ) >= 1 << 20
    out = tmp_path / "out.txt"
    with out.open("wb") as f:
        done = run(["--no-follow", path], stdout=f)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == "one\n"
