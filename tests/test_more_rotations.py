"""More rotations, each run with real tools and real timings: logrotate options (dateext, olddir,
compress + delaycompress, rotate 0, copy, notifempty), TimedRotatingFileHandler, two writers on one
file, a retargeted symlink, rotation at start-up and with ``-n``, truncation with a partial line
pending, a writer without O_APPEND behind a slow poll, a slow writer of partial lines, and ``--poll``
mode under the torture schedule. Every line written must be printed exactly once and in order,
except lines the method itself destroys (logrotate's copy-to-truncate window), which are bounded.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import Logtail, read_position, wait_until
from test_torture import METHODS, Rotation, account, last_printed
from writers import (
    LineWriter,
    NumberedWriter,
    first_seq,
    last_complete_seq,
    mv,
    numbered_line,
    parse_numbered,
    ranges,
    run_tool,
    truncate,
)

pytestmark = pytest.mark.e2e

PADDING = 60
RATE = 2000.0
LATE = 0.1  # the application reopens this long after the rename (a postrotate `kill -HUP`)


# -- helpers -------------------------------------------------------------------------------------


def start_following(logtail: Any, path: Path, *args: str | Path) -> Logtail:
    """Start logtail on ``path`` (which exists) and wait until it has the file open."""
    proc: Logtail = logtail(*args, path)
    process = psutil.Process(proc.proc.pid)
    wait_until(
        lambda: str(path.resolve()) in [f.path for f in process.open_files()] or proc.proc.poll() is not None,
        15,
        f"logtail to open {path}",
    )
    assert proc.proc.poll() is None, proc.stderr
    return proc


def wait_read_to_end(proc: Logtail, path: Path) -> None:
    """Wait until logtail has read the file at ``path`` up to its current size."""
    size = path.stat().st_size
    wait_until(
        lambda: read_position(proc.proc.pid, path) == size, 10, f"logtail to read {path} to byte {size}"
    )


def logrotate(path: Path, workdir: Path, options: Sequence[str], postrotate: str = "") -> Callable[[], None]:
    """A forced run of the real ``logrotate`` with the given directives; returns the function that runs it."""
    state = workdir / "logrotate.state"
    conf = workdir / "logrotate.conf"
    script = f"    postrotate\n        {postrotate}\n    endscript\n" if postrotate else ""
    conf.write_text(f"{path} {{\n" + "".join(f"    {o}\n" for o in options) + script + "}\n")
    conf.chmod(0o644)

    def rotate() -> None:
        run_tool("logrotate", "-f", "-s", state, conf)

    return rotate


def finish(proc: Logtail, count: int, tolerated: set[int] | None = None, what: str = "") -> None:
    """Wait for the last line, stop logtail, and assert every line 0..count-1 printed once, in order."""
    caught_up = True
    try:
        wait_until(lambda: last_printed(proc) >= count - 1, 20, f"line {count - 1}")
    except AssertionError:
        caught_up = False
    status = proc.stop()
    problems = account(proc.raw_lines, count, tolerated or set(), set())
    assert not problems, f"{what}: " + "; ".join(problems) + f"\nstderr tail: {proc.stderr[-3000:]}"
    assert caught_up, f"{what}: logtail never printed the last line {count - 1}: {proc.stderr[-2000:]}"
    assert status == 0, proc.stderr


def steady_with_rotations(
    tmp_path: Path,
    logtail: Any,
    rotate: Callable[[NumberedWriter], set[int] | None],
    *,
    rotations: int,
    period: float = 0.25,
    logtail_args: Sequence[str] = (),
    writer_args: dict[str, Any] | None = None,
    wait_new_file: bool = True,
) -> tuple[Logtail, int, set[int]]:
    """A writer at RATE lines/s into app.log, rotated ``rotations`` times every ``period`` seconds;
    returns logtail, how many lines were written, and the lines the rotations destroyed."""
    path = tmp_path / "app.log"
    path.touch()
    proc = start_following(logtail, path, *logtail_args)
    writer = NumberedWriter(path, rate=RATE, padding=PADDING, **(writer_args or {}))
    tolerated: set[int] = set()
    try:
        wait_until(lambda: last_printed(proc) >= 0, 15, f"logtail's first line: {proc.stderr}")
        started = time.monotonic()
        for tick in range(1, rotations + 1):
            time.sleep(max(0.0, started + tick * period - time.monotonic()))  # the rotation schedule
            tolerated |= rotate(writer) or set()
            if wait_new_file:
                wait_until(
                    lambda: path.exists() and first_seq(path) is not None,
                    5,
                    "the writer's first line in the new file",
                )
        count = writer.stop()
    finally:
        writer.kill()
    return proc, count, tolerated


def hup_later(pid: int) -> str:
    return f"sleep {LATE}; kill -HUP {pid}"


# -- logrotate options ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_logrotate_dateext_create(tmp_path: Path, logtail: Any) -> None:
    """logrotate `create` + `dateext` (app.log-YYYYMMDD-HHMMSS), writer reopening 100 ms late: every line
    printed once, in order."""
    path = tmp_path / "app.log"
    seconds: list[int] = []
    rotate_fn: Callable[[], None] | None = None

    def rotate(writer: NumberedWriter) -> None:
        nonlocal rotate_fn
        if rotate_fn is None:
            rotate_fn = logrotate(
                path,
                tmp_path,
                ["create", "dateext", "dateformat -%Y%m%d-%H%M%S", "rotate 100", "missingok", "ifempty"],
                hup_later(writer.pid),
            )
        # dated names are unique only per second: rotate once in each new second
        wait_until(
            lambda: (not seconds or int(time.time()) > seconds[-1]) and 0.05 < time.time() % 1 < 0.5,
            3,
            "the start of the next second",
        )
        seconds.append(int(time.time()))
        rotate_fn()

    proc, count, _ = steady_with_rotations(tmp_path, logtail, rotate, rotations=3, period=0.3)
    dated = sorted(p.name for p in tmp_path.glob("app.log-*"))
    assert len(dated) == 3, dated
    finish(proc, count, what="dateext")


@pytest.mark.timeout(60)
def test_logrotate_olddir_writer_keeps_writing_to_moved_file(tmp_path: Path, logtail: Any) -> None:
    """logrotate `olddir` moves the file into another directory of the same file system while the writer
    keeps writing to it for 100 ms: every line printed once, in order."""
    path = tmp_path / "app.log"
    old = tmp_path / "old"
    old.mkdir()
    fns: list[Callable[[], None]] = []

    def rotate(writer: NumberedWriter) -> None:
        if not fns:
            fns.append(
                logrotate(
                    path,
                    tmp_path,
                    ["create", f"olddir {old}", "rotate 100", "missingok", "ifempty", "nocompress"],
                    hup_later(writer.pid),
                )
            )
        fns[0]()

    proc, count, _ = steady_with_rotations(tmp_path, logtail, rotate, rotations=10)
    assert len(list(old.glob("app.log.*"))) == 10
    finish(proc, count, what="olddir")


@pytest.mark.timeout(60)
def test_logrotate_compress_delaycompress(tmp_path: Path, logtail: Any) -> None:
    """logrotate `create` + `compress` + `delaycompress` (app.log.1 gzipped at the next rotation): every line
    printed once, in order."""
    path = tmp_path / "app.log"
    fns: list[Callable[[], None]] = []

    def rotate(writer: NumberedWriter) -> None:
        if not fns:
            fns.append(
                logrotate(
                    path,
                    tmp_path,
                    ["create", "compress", "delaycompress", "rotate 100", "missingok", "ifempty"],
                    hup_later(writer.pid),
                )
            )
        fns[0]()

    proc, count, _ = steady_with_rotations(tmp_path, logtail, rotate, rotations=10)
    assert list(tmp_path.glob("app.log.*.gz")), sorted(p.name for p in tmp_path.iterdir())
    finish(proc, count, what="compress+delaycompress")


@pytest.mark.timeout(60)
def test_logrotate_rotate_0_deletes_old_file_while_writer_still_writes(tmp_path: Path, logtail: Any) -> None:
    """logrotate `create` + `rotate 0` removes the old file right away while the writer still writes into
    it for 100 ms: those lines are read through the open descriptor, none lost or repeated."""
    path = tmp_path / "app.log"
    fns: list[Callable[[], None]] = []

    def rotate(writer: NumberedWriter) -> None:
        if not fns:
            fns.append(
                logrotate(
                    path, tmp_path, ["create", "rotate 0", "missingok", "ifempty"], hup_later(writer.pid)
                )
            )
        fns[0]()

    proc, count, _ = steady_with_rotations(tmp_path, logtail, rotate, rotations=10)
    assert not list(tmp_path.glob("app.log.*"))
    finish(proc, count, what="rotate 0")


@pytest.mark.timeout(60)
def test_logrotate_copy_without_truncate_repeats_nothing(tmp_path: Path, logtail: Any) -> None:
    """logrotate `copy` (copy made, original left as is) must not make logtail print anything twice."""
    path = tmp_path / "app.log"
    fns: list[Callable[[], None]] = []

    def rotate(writer: NumberedWriter) -> None:
        if not fns:
            fns.append(logrotate(path, tmp_path, ["copy", "rotate 100", "missingok", "ifempty"]))
        fns[0]()

    proc, count, _ = steady_with_rotations(tmp_path, logtail, rotate, rotations=10)
    assert len(list(tmp_path.glob("app.log.*"))) == 10
    finish(proc, count, what="copy")


def test_logrotate_notifempty_skips_empty_file_then_rotates(tmp_path: Path, logtail: Any) -> None:
    """logrotate `create` + `missingok` + `notifempty`: a run on the empty file does nothing, a run after
    lines came rotates, a run on a missing file does nothing; every line once, in order."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    rotate = logrotate(path, tmp_path, ["create", "rotate 5", "missingok", "notifempty"])
    proc = start_following(logtail, path)
    rotate()  # empty: notifempty leaves it alone
    assert not list(tmp_path.glob("app.log.*"))
    expected = writer.lines(range(5))
    proc.wait_for_lines(5)
    rotate()
    assert (tmp_path / "app.log.1").exists()
    expected += writer.lines(range(5, 10))  # still into the renamed file
    writer.reopen()
    expected += writer.lines(range(10, 15))
    (tmp_path / "app.log").unlink()
    rotate()  # missing: missingok does nothing
    writer.reopen()
    expected += writer.lines(range(15, 20))
    assert proc.wait_for_lines(20) == expected
    observe_no_more(proc, 20)
    writer.close()


@pytest.mark.timeout(60)
def test_logrotate_create_twice_before_the_writer_reopens(tmp_path: Path, logtail: Any) -> None:
    """logrotate `create` (default `ifempty`) run twice within the writer's 100 ms reopen delay leaves an
    empty middle generation that is never written: lines must keep flowing, all once, in order."""
    path = tmp_path / "app.log"
    fns: list[Callable[[], None]] = []

    def rotate(writer: NumberedWriter) -> None:
        if not fns:
            fns.append(logrotate(path, tmp_path, ["create", "rotate 100", "missingok", "ifempty"]))
        fns[0]()
        fns[0]()  # again, before the application reopened: the fresh empty file is rotated too
        time.sleep(LATE)  # the scenario: the application is told to reopen late
        writer.reopen()

    proc, count, _ = steady_with_rotations(tmp_path, logtail, rotate, rotations=3, period=0.5)
    finish(proc, count, what="create twice")


def observe_no_more(proc: Logtail, count: int) -> None:
    """A negative check needs a window: nothing beyond ``count`` lines appears within half a second."""
    time.sleep(0.5)
    assert len(proc.raw_lines) == count, proc.lines[count:]


# -- Python handlers and several writers ---------------------------------------------------------

TIMED_WRITER = textwrap.dedent(
    """
    import logging, logging.handlers, signal, sys, time
    path, rate = sys.argv[1], float(sys.argv[2])
    stop = False
    def on_term(signum, frame):
        global stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    handler = logging.handlers.TimedRotatingFileHandler(path, when="S", interval=1, backupCount=0)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("timed")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    seq, start, pad = 0, time.monotonic(), "x" * 60
    while not stop:
        due = int((time.monotonic() - start) * rate) + 1
        while seq < due and not stop:
            log.info(f"{seq:08d} {pad}")
            seq += 1
        time.sleep(0.001)
    print(seq, flush=True)
    """
)


@pytest.mark.timeout(60)
def test_timed_rotating_file_handler_every_second(tmp_path: Path, logtail: Any) -> None:
    """Python's TimedRotatingFileHandler (when='S', interval=1) with a steady writer for ~4 s: every line
    printed once, in order."""
    path = tmp_path / "app.log"
    script = tmp_path / "timed_writer.py"
    script.write_text(TIMED_WRITER)
    path.touch()
    proc = start_following(logtail, path)
    writer = subprocess.Popen(
        [sys.executable, str(script), str(path), str(RATE)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_until(lambda: len(list(tmp_path.glob("app.log.*"))) >= 4, 10, "four timed rotations")
        writer.send_signal(signal.SIGTERM)
        out, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err.decode()
        count = int(out.decode().split()[-1])
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    finish(proc, count, what="TimedRotatingFileHandler")


@pytest.mark.timeout(60)
def test_two_watched_handler_writers_on_one_file_rotated_by_mv(tmp_path: Path, logtail: Any) -> None:
    """Two processes append to one file through WatchedFileHandler (each reopens on its own) while it is
    rotated by mv every 250 ms: every line of both printed once, each writer's lines in order."""
    path = tmp_path / "app.log"
    path.touch()
    proc = start_following(logtail, path)
    pads = (60, 62)  # the padding tells the writers' lines apart
    writers = [NumberedWriter(path, rate=1000, padding=pad, handler="watched") for pad in pads]
    try:
        wait_until(lambda: len(proc.raw_lines) >= 10, 15, "first lines")
        started = time.monotonic()
        for tick in range(1, 13):
            time.sleep(max(0.0, started + tick * 0.25 - time.monotonic()))
            mv(path, tmp_path / f"app.log.{tick}")
            wait_until(lambda: path.exists(), 5, "a writer to re-create app.log")
        counts = [w.stop() for w in writers]
    finally:
        for w in writers:
            w.kill()
    want = {pad: count for pad, count in zip(pads, counts, strict=True)}
    last = {pad: numbered_line(count - 1, "x" * pad) for pad, count in want.items()}
    wait_until(lambda: all(text in proc.lines for text in last.values()), 20, f"last lines {last}")
    assert proc.stop() == 0, proc.stderr
    problems = []
    known = 0
    for pad, count in want.items():
        seqs, _ = parse_numbered(proc.raw_lines, pad)
        known += len(seqs)
        dup = [s for s, n in Counter(seqs).items() if n > 1]
        lost = set(range(count)) - set(seqs)
        back = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
        if dup or lost or back:
            problems.append(f"writer {pad}: dup {ranges(dup)} lost {ranges(lost)} backwards {back[:5]}")
    if known != len(proc.raw_lines):
        problems.append(f"{len(proc.raw_lines) - known} malformed lines")
    assert not problems, "; ".join(problems) + f"\nstderr: {proc.stderr[-3000:]}"


@pytest.mark.timeout(60)
def test_symlink_retargeted_every_200ms(tmp_path: Path, logtail: Any) -> None:
    """current.log -> app-N.log retargeted every ~200 ms (the writer reopens 100 ms later): logtail following
    current.log prints every line once, in order."""
    link = tmp_path / "current.log"
    (tmp_path / "app-0.log").touch()
    link.symlink_to("app-0.log")
    proc = start_following(logtail, link)
    writer = NumberedWriter(link, rate=RATE, padding=PADDING)
    try:
        wait_until(lambda: last_printed(proc) >= 0, 15, "first line")
        started = time.monotonic()
        for n in range(1, 13):
            time.sleep(max(0.0, started + n * 0.2 - time.monotonic()))
            target = tmp_path / f"app-{n}.log"
            target.touch()
            tmp_link = tmp_path / "current.log.tmp"
            tmp_link.symlink_to(target.name)
            os.replace(tmp_link, link)  # atomic retarget, as `ln -sfn` + `mv -T` do
            time.sleep(LATE)  # the scenario: the application is told to reopen late
            writer.reopen()
            wait_until(lambda t=target: first_seq(t) is not None, 5, f"the writer's first line in {target}")
        count = writer.stop()
    finally:
        writer.kill()
    finish(proc, count, what="symlink")


# -- start-up ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lines_arg", "shown"), [("0", 0), ("5", 5)])
def test_rotation_after_start_with_n(tmp_path: Path, logtail: Any, lines_arg: str, shown: int) -> None:
    """Started with `-n 0` / `-n 5` on a file of 20 lines, then mv-rotated with late writes: the last N
    lines, the late lines and the new file from its first byte, once each, in order."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    initial = writer.lines(range(20))
    proc = start_following(logtail, path, "-n", lines_arg)
    wait_read_to_end(proc, path)
    expected = initial[len(initial) - shown :]
    mv(path, tmp_path / "app.log.1")
    expected += writer.lines(range(20, 25))
    writer.reopen()
    expected += writer.lines(range(25, 30))
    assert proc.wait_for_lines(len(expected)) == expected
    observe_no_more(proc, len(expected))
    writer.close()


def test_rotation_of_an_empty_file(tmp_path: Path, logtail: Any) -> None:
    """An empty followed file renamed away, then written through its old descriptor and re-created: all
    lines once, in order."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    proc = start_following(logtail, path)
    mv(path, tmp_path / "app.log.1")
    path.touch()  # logrotate create: a new empty file at once
    expected = writer.lines(range(3))  # into the renamed file
    writer.reopen()
    expected += writer.lines(range(3, 6))
    assert proc.wait_for_lines(6) == expected
    observe_no_more(proc, 6)
    writer.close()


def test_rotation_right_at_start_up(tmp_path: Path, logtail: Any) -> None:
    """The file is renamed and re-created between logtail's launch and its first read: the old lines come
    out whole or not at all (logtail may never have seen that file), the new ones all, once, in order."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    old = writer.lines(range(50))
    proc: Logtail = logtail(path)
    mv(path, tmp_path / "app.log.1")
    late = writer.lines(range(50, 55))
    writer.reopen()
    new = writer.lines(range(55, 60))
    lines = proc.wait_for_lines(len(new))
    wait_until(lambda: proc.lines[-1:] == new[-1:], 10, "the last line")
    observe_no_more(proc, len(proc.lines))
    lines = proc.lines
    assert lines in (old + late + new, new), lines
    writer.close()


@pytest.mark.parametrize("lines_arg", ["0", "5"])
def test_file_missing_at_start_with_n_is_read_from_first_byte(
    tmp_path: Path, logtail: Any, lines_arg: str
) -> None:
    """With `-n 0`/`-n 5`, a file that does not exist at start (rotated away by rm just before) and appears
    later is read from its first byte, as the README says for files that appear later."""
    path = tmp_path / "app.log"
    proc: Logtail = logtail("-n", lines_arg, path)
    proc.wait_for_stderr("waiting for file to appear")
    writer = LineWriter(path)
    expected = writer.lines(range(20))
    assert proc.wait_for_lines(20, timeout=5) == expected
    writer.close()


# -- truncation ----------------------------------------------------------------------------------


def test_truncate_while_partial_line_pending(tmp_path: Path, logtail: Any) -> None:
    """`truncate -s 0` while an unterminated line is pending: the rest of that line is destroyed, so the
    part read is not printed as a line (issue 11: it is counted as lost), and the next lines come out
    whole, not glued to it."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    proc = start_following(logtail, path)
    writer.write("full 1\npart")
    proc.wait_for_lines(1)
    wait_read_to_end(proc, path)
    truncate(path)
    writer.write("after 1\nafter 2\n")
    assert proc.wait_for_lines(3) == ["full 1", "after 1", "after 2"]
    observe_no_more(proc, 3)
    writer.close()


def test_truncate_with_partial_pending_then_refilled_past_offset_under_slow_poll(
    tmp_path: Path, logtail: Any
) -> None:
    """With `--poll --poll-interval 1`, a file with a pending partial line is truncated and refilled past
    logtail's offset before it looks: the partial line is destroyed and not printed as a line (issue 11),
    then every new line once, in order."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    proc = start_following(logtail, path, "--poll", "--poll-interval", "1")
    first = writer.lines(range(3))
    writer.write("partial")
    proc.wait_for_lines(3)
    wait_read_to_end(proc, path)
    truncate(path)
    after = writer.lines(range(100, 120))  # far more bytes than logtail had read
    assert path.stat().st_size > len("".join(x + "\n" for x in first)) + len("partial")
    assert proc.wait_for_lines(23) == [*first, *after]
    observe_no_more(proc, 23)
    writer.close()


@pytest.mark.timeout(60)
def test_copytruncate_with_writer_without_o_append_while_behind(tmp_path: Path, logtail: Any) -> None:
    """A writer without O_APPEND leaves a NUL hole after each logrotate `copytruncate` while logtail polls
    once a second (behind): no NUL line, none repeated, none lost except those written between
    logrotate's copy and its truncate (no tailer can see them; bounded per rotation)."""
    path = tmp_path / "app.log"
    fns: list[Callable[[], None]] = []

    def first_after_hole() -> int | None:
        data = path.read_bytes().lstrip(b"\x00")
        return int(data[:8]) if data.find(b"\n") > 0 else None

    def rotate(writer: NumberedWriter) -> set[int]:
        if not fns:
            fns.append(logrotate(path, tmp_path, ["copytruncate", "rotate 100", "missingok", "ifempty"]))
        fns[0]()
        last_copied = last_complete_seq(tmp_path / "app.log.1")
        assert last_copied is not None
        wait_until(lambda: first_after_hole() is not None, 5, "first line after the truncate")
        first_after = first_after_hole()
        assert first_after is not None
        return set(range(last_copied + 1, first_after))

    proc, count, tolerated = steady_with_rotations(
        tmp_path,
        logtail,
        rotate,
        rotations=4,
        period=1.3,  # one copytruncate per poll, so only one copy lies between two looks
        logtail_args=["--poll", "--poll-interval", "1"],
        writer_args={"append": False},
        wait_new_file=False,
    )
    assert len(tolerated) <= 4 * 20, f"copy-to-truncate windows unexpectedly large: {ranges(tolerated)}"
    finish(proc, count, tolerated, what="copytruncate no O_APPEND")


@pytest.mark.timeout(60)
def test_several_copytruncates_between_two_polls(tmp_path: Path, logtail: Any) -> None:
    """logrotate `copytruncate` every 250 ms while logtail polls every 1.5 s: the copies made in between are
    all still there (app.log.1..N), so, as the README's known limits promise for rotation faster than
    logtail looks, they are read in order: only the copy-to-truncate windows may be missing."""
    path = tmp_path / "app.log"
    fns: list[Callable[[], None]] = []

    def rotate(writer: NumberedWriter) -> set[int]:
        if not fns:
            fns.append(logrotate(path, tmp_path, ["copytruncate", "rotate 100", "missingok", "ifempty"]))
        fns[0]()
        last_copied = last_complete_seq(tmp_path / "app.log.1")
        assert last_copied is not None
        wait_until(lambda: first_seq(path) is not None, 5, "first line after the truncate")
        first_after = first_seq(path)
        assert first_after is not None
        return set(range(last_copied + 1, first_after))

    proc, count, tolerated = steady_with_rotations(
        tmp_path,
        logtail,
        rotate,
        rotations=8,
        logtail_args=["--poll", "--poll-interval", "1.5"],
        wait_new_file=False,
    )
    assert len(tolerated) <= 8 * 20, ranges(tolerated)
    finish(proc, count, tolerated, what="copytruncate x several per poll")


@pytest.mark.timeout(60)
def test_several_renames_between_two_polls(tmp_path: Path, logtail: Any) -> None:
    """mv rotation every 250 ms (writer reopening 100 ms late) while logtail polls every 1.5 s: generations
    that came and went between two looks are found among app.log.* and read in order; nothing lost."""
    path = tmp_path / "app.log"
    counter = itertools.count(1)

    def rotate(writer: NumberedWriter) -> None:
        mv(path, tmp_path / f"app.log.{next(counter)}")
        time.sleep(LATE)
        writer.reopen()

    proc, count, _ = steady_with_rotations(
        tmp_path, logtail, rotate, rotations=8, logtail_args=["--poll", "--poll-interval", "1.5"]
    )
    finish(proc, count, what="mv x several per poll")


# -- slow partial writer -------------------------------------------------------------------------


def test_slow_partial_line_writer_across_rename(tmp_path: Path, logtail: Any) -> None:
    """A line written in 3 pieces 300 ms apart, with the file renamed between the pieces (the writer reopens
    after the line is done): each line comes out once, whole, in order."""
    path = tmp_path / "app.log"
    writer = LineWriter(path)
    proc = start_following(logtail, path)
    expected = writer.lines(range(3))
    for n in range(3):
        line = numbered_line(100 + n, "y" * 30)
        pieces = [line[:10], line[10:25], line[25:] + "\n"]
        writer.write(pieces[0])
        mv(path, tmp_path / f"app.log.{n + 1}")
        path.touch()  # logrotate create: the new file exists at once, empty
        for piece in pieces[1:]:
            time.sleep(0.3)  # the scenario: a slow writer
            writer.write(piece)
        expected.append(line)
        writer.reopen()
        expected += writer.lines([200 + n])
    assert proc.wait_for_lines(len(expected)) == expected
    observe_no_more(proc, len(expected))
    writer.close()


# -- --poll mode under the torture schedule ------------------------------------------------------

POLL_METHODS = METHODS  # every method of the torture test, here under --poll


@pytest.mark.timeout(90)
@pytest.mark.parametrize("method", POLL_METHODS)
def test_poll_mode_every_method(tmp_path: Path, logtail: Any, method: str) -> None:
    """`--poll --poll-interval 0.1` (no inotify), 2,000 lines/s, rotation every 250 ms for 3 s: every line
    once and in order (copytruncate: only its copy-to-truncate window may be missing)."""
    path = tmp_path / "app.log"
    handler = {"rotating-file-handler": "rotating", "watched-file-handler": "watched"}.get(method, "plain")
    path.touch()
    proc = start_following(logtail, path, "--poll", "--poll-interval", "0.1")
    writer = NumberedWriter(
        path,
        rate=RATE,
        padding=PADDING,
        handler=handler,
        max_bytes=int(RATE * 0.25 * (PADDING + 10)),
        backup_count=1000,
    )
    tolerated: set[int] = set()
    try:
        wait_until(lambda: last_printed(proc) >= 0, 15, f"logtail's first line: {proc.stderr}")
        rotate = Rotation(method, path, tmp_path, writer, proc)
        started = time.monotonic()
        for tick in range(1, 13):
            time.sleep(max(0.0, started + tick * 0.25 - time.monotonic()))
            tolerated |= rotate()
        count = writer.stop()
    finally:
        writer.kill()
    finish(proc, count, tolerated, what=f"--poll {method}")
