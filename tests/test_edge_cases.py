"""Edge cases found in review: globs over rotated names, live siblings, stalled prefixed output,
descriptor exhaustion, and a checkpointed glob file that comes back."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import LOGTAIL, ROOT, Logtail, append, read_position, records, wait_until

pytestmark = pytest.mark.e2e


def test_glob_over_rotated_names_prints_no_generation_twice(tmp_path: Path, logtail: Any) -> None:
    """A glob that also matches rotated names ('dir/*'): a quick logrotate-style shift of names
    (app.log.1 -> app.log.2, app.log -> app.log.1) prints no line twice."""
    log = tmp_path / "app.log"
    (tmp_path / "app.log.1").write_text("old 1\n")
    log.write_text("a 1\na 2\n")
    proc: Logtail = logtail("--rotate-wait", "0.2", f"{tmp_path}/*")
    proc.wait_for_lines(3)
    append(log, "a 3\n")
    proc.wait_for_lines(4)
    # both renames at once, before logtail can look in between
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import os,sys; d=sys.argv[1]; "
            "os.rename(d+'/app.log.1', d+'/app.log.2'); os.rename(d+'/app.log', d+'/app.log.1'); "
            "open(d+'/app.log','w').write('b 1\\n')",
            str(tmp_path),
        ],
        check=True,
    )
    proc.wait_for_lines(5)
    append(tmp_path / "app.log", "b 2\n")
    proc.wait_for_lines(6)
    assert proc.stop() == 0, proc.stderr
    assert sorted(proc.lines) == sorted(["old 1", "a 1", "a 2", "a 3", "b 1", "b 2"]), proc.lines


def test_live_sibling_is_not_taken_for_a_rotated_generation(tmp_path: Path, logtail: Any) -> None:
    """A live app.log.err next to app.log is not printed under app.log when app.log is rotated."""
    log = tmp_path / "app.log"
    log.write_text("one\n")
    proc: Logtail = logtail("--poll", "--poll-interval", "0.3", "--rotate-wait", "0.1", log)
    proc.wait_for_lines(1)
    log.rename(tmp_path / "app.log.1")
    (tmp_path / "app.log.err").write_text("not yours\n")  # written after the rotated file
    log.write_text("two\n")
    proc.wait_for_lines(2)
    append(log, "three\n")
    proc.wait_for_lines(3)
    assert proc.stop() == 0, proc.stderr
    assert proc.lines == ["one", "two", "three"]


@pytest.mark.parametrize(
    ("option", "line"),
    [
        (["--prefix", "p" * 1500], "x" * 3000),  # 3 KB in, 4.5 KB out
        (["--format", "json"], '"' * 2500),  # every quote escaped: 2.5 KB in, 5 KB out
    ],
)
def test_stalled_reader_with_rendered_output_still_obeys_the_drain_deadline(
    tmp_path: Path, option: list[str], line: str
) -> None:
    """A line small enough to write at once but larger once rendered (prefix, JSON), with a reader that
    never reads: SIGTERM still ends logtail at --drain-timeout (exit 3) instead of blocking in a write."""
    log = tmp_path / "app.log"
    log.write_text("")
    read_end, write_end = os.pipe()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOGTAIL_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [*LOGTAIL, *option, "--drain-timeout", "1", str(log)],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(write_end)
    try:
        wait_until(lambda: read_position(proc.pid, log) is not None, 10, "logtail to open the file")
        for _ in range(1000):  # one line at a time, each read alone, until the (1 MiB) pipe is full
            append(log, line + "\n")
            size = log.stat().st_size
            try:
                wait_until(lambda size=size: read_position(proc.pid, log) == size, 2, "the line to be read")
            except AssertionError:
                break  # logtail is blocked: the pipe is full
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(read_end)
    events = records(proc.stderr.read().decode() if proc.stderr else "")
    assert any(e.get("event") == "drain did not finish in time" for e in events), events


def test_running_out_of_descriptors_warns_and_keeps_following_the_rest(tmp_path: Path) -> None:
    """With fewer descriptors than files, the files that cannot be opened get a warning; the run goes on,
    the others are printed, and SIGTERM still drains and exits 0."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(40):
        (logs / f"f{i:02d}.log").write_text(f"line {i}\n")

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOGTAIL_LOG_FORMAT": "json"}
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - read while the process runs, closed with the test
    proc = subprocess.Popen(
        [*LOGTAIL, f"{logs}/*.log"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        preexec_fn=few_descriptors,  # only setrlimit, before exec
    )

    def diagnostics() -> str:
        stderr.seek(0)
        return stderr.read().decode()

    try:
        wait_until(
            lambda: "cannot open file" in diagnostics(), 15, "a warning about the files it cannot open"
        )
        assert proc.poll() is None, "logtail ended when it ran out of descriptors"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, diagnostics()
    printed = out.decode().splitlines()
    assert len(printed) >= 10
    assert len(set(printed)) == len(printed)
    events = records(diagnostics())
    assert any(e.get("event") == "cannot open file" for e in events), events[:5]
    assert not any(e.get("event") == "follower failed" for e in events)


def test_checkpointed_glob_file_that_comes_back_is_not_replayed(tmp_path: Path, logtail: Any) -> None:
    """With --checkpoint and a glob, a file that goes away mid-run and comes back is read as a new file,
    not resumed again from the checkpoint taken at start."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    checkpoint = tmp_path / "ck.json"
    log.write_text("l1\nl2\n")
    first: Logtail = logtail("--checkpoint", checkpoint, f"{logs}/*.log")
    first.wait_for_lines(2)
    wait_until(lambda: checkpoint.exists() and b'"offset":6' in checkpoint.read_bytes(), 10, "checkpoint")
    assert first.stop() == 0
    second: Logtail = logtail("--checkpoint", checkpoint, "--rotate-wait", "0.1", f"{logs}/*.log")
    append(log, "l3\nl4\n")
    second.wait_for_lines(2)
    log.rename(logs / "app.log.1")  # not matched by the glob: its follower ends once it is quiet
    rotated = str(logs / "app.log.1")
    wait_until(
        lambda: rotated not in [f.path for f in psutil.Process(second.proc.pid).open_files()],
        10,
        "logtail to close the file that left the glob",
    )
    log.write_text("l5\n")  # the same name again: a new file
    second.wait_for_lines(3)
    assert second.stop() == 0, second.stderr
    assert second.lines == ["l3", "l4", "l5"]
