"""End-to-end tests of issue 6 (CI mode): each way logtail stops on its own, run as a subprocess against
real files and real child processes, and the examples in examples/ci/."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ROOT, Logtail, append, records, run, wait_until

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples" / "ci"


# -- helpers -------------------------------------------------------------------------------------


def summary(stderr: str) -> dict[str, Any]:
    """The one summary event logtail writes at exit."""
    events = [r for r in records(stderr) if r.get("event") == "summary"]
    assert len(events) == 1, f"expected one summary event, got {len(events)}: {stderr}"
    return events[0]


def stays_running(proc: Logtail, seconds: float) -> bool:
    """Whether logtail is still running after ``seconds``: a negative check needs a window to watch."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            return False
        time.sleep(0.02)
    return proc.proc.poll() is None


def sh(script: str, *args: str | Path) -> list[str]:
    """A `sh -c` command line whose positional parameters are ``args``."""
    return ["sh", "-c", script, "sh", *map(str, args)]


# A writer that writes one line, waits for the test's go-file, then writes one more line and an
# unterminated one, and exits at once: everything it wrote comes right before its exit.
WRITER = """
echo "$1 one" >> "$2"
while [ ! -e "$3" ]; do sleep 0.01; done
printf '%s two\\n%s last' "$1" "$1" >> "$2"
"""


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Child processes started by a test; killed at its end if still running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(10)


# -- --pid ---------------------------------------------------------------------------------------


def test_pid_exits_zero_after_every_listed_process_with_all_their_lines(
    tmp_path: Path, logtail: Any, children: list[subprocess.Popen[bytes]]
) -> None:
    """With --pid twice, logtail follows until both processes are gone, then prints every line they wrote
    (an unterminated last one with a newline added) and exits 0."""
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    go_a, go_b = tmp_path / "go-a", tmp_path / "go-b"
    writer_a = subprocess.Popen(sh(WRITER, "a", a, go_a))
    writer_b = subprocess.Popen(sh(WRITER, "b", b, go_b))
    children += [writer_a, writer_b]
    proc: Logtail = logtail("--pid", writer_a.pid, "--pid", writer_b.pid, a, b)
    wait_until(lambda: {"a one", "b one"} <= set(proc.lines), what=f"the first lines: {proc.lines}")

    go_a.touch()
    assert writer_a.wait(10) == 0
    wait_until(lambda: "a two" in proc.lines, what="a's second line")
    assert stays_running(proc, 0.5), f"exited {proc.proc.returncode} while b still ran: {proc.stderr}"

    go_b.touch()
    assert writer_b.wait(10) == 0
    assert proc.finish(15) == 0, proc.stderr
    assert sorted(proc.lines) == ["a last", "a one", "a two", "b last", "b one", "b two"]
    assert proc.raw_lines[-1].endswith(b"\n")
    assert [line for line in proc.lines if line.startswith("a")] == ["a one", "a two", "a last"]


def test_pid_already_gone_prints_the_files_and_exits_zero(tmp_path: Path) -> None:
    """A --pid process that has already exited: logtail prints what the files hold and exits 0."""
    path = tmp_path / "a.log"
    path.write_text("one\ntwo")
    gone = subprocess.Popen(["true"])
    gone.wait(10)
    result = run(["--pid", str(gone.pid), path], timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"one\ntwo\n"


# -- --until and --timeout -----------------------------------------------------------------------


def test_until_exits_zero_right_after_the_first_matching_line(tmp_path: Path, logtail: Any) -> None:
    """--until: logtail exits 0 once the first matching line is printed; lines after it are not printed."""
    path = tmp_path / "server.log"
    path.write_text("starting\n")
    proc: Logtail = logtail("--until", r"ready on port \d+", path)
    proc.wait_for_lines(1)
    assert stays_running(proc, 0.3), proc.stderr
    append(path, "loading\nready on port 8080\nafter ready\nready on port 8081\n")
    assert proc.finish(10) == 0, proc.stderr
    assert proc.lines == ["starting", "loading", "ready on port 8080"]


def test_until_matching_a_line_already_in_the_file(tmp_path: Path) -> None:
    """--until on a file that already holds a matching line: the lines up to it, exit 0 at once."""
    path = tmp_path / "server.log"
    path.write_text("starting\nready\nafter\n")
    result = run(["--until", "ready", path], timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"starting\nready\n"


def test_until_with_timeout_exits_124_after_printing_what_came(tmp_path: Path, logtail: Any) -> None:
    """--until with --timeout and no matching line: logtail prints every line and exits 124 at the timeout."""
    path = tmp_path / "server.log"
    path.write_text("starting\n")
    started = time.monotonic()
    proc: Logtail = logtail("--until", "ready", "--timeout", "1.5", path)
    proc.wait_for_lines(1)
    append(path, "still loading\n")
    proc.wait_for_lines(2)
    assert proc.finish(15) == 124, proc.stderr
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 10, elapsed
    assert proc.lines == ["starting", "still loading"]


# -- --idle-exit ---------------------------------------------------------------------------------


def test_idle_exit_waits_while_data_keeps_coming_then_exits_zero(tmp_path: Path, logtail: Any) -> None:
    """--idle-exit 1: no exit while a line comes every 0.2 s for 2.4 s; exit 0 about 1 s after the last."""
    path = tmp_path / "a.log"
    path.write_text("first\n")
    proc: Logtail = logtail("--idle-exit", "1", path)
    proc.wait_for_lines(1)
    for i in range(12):
        time.sleep(0.2)  # the writer's pace, not a wait for logtail
        assert proc.proc.poll() is None, f"exited {proc.proc.returncode} after {i} lines: {proc.stderr}"
        append(path, f"line {i}\n")
    last_write = time.monotonic()
    assert proc.finish(10) == 0, proc.stderr
    idle = time.monotonic() - last_write
    assert 0.9 <= idle < 5, idle
    assert proc.lines == ["first", *(f"line {i}" for i in range(12))]


def test_idle_exit_without_any_data(tmp_path: Path) -> None:
    """--idle-exit on an empty file: exit 0 after that long, nothing printed."""
    path = tmp_path / "a.log"
    path.touch()
    started = time.monotonic()
    result = run(["--idle-exit", "0.5", path], timeout=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert time.monotonic() - started >= 0.5


# -- --exec --------------------------------------------------------------------------------------


def test_exec_drains_lines_written_right_before_the_command_exits(tmp_path: Path, logtail: Any) -> None:
    """--exec: logtail prints every line the command wrote, even just before it exited, and exits 0."""
    path = tmp_path / "app.log"
    script = 'for i in 1 2 3 4 5; do echo "line $i" >> "$1"; done; printf "partial" >> "$1"'
    proc: Logtail = logtail(path, "--exec", "--", *sh(script, path))
    assert proc.finish(20) == 0, proc.stderr
    assert proc.lines == [*(f"line {i}" for i in range(1, 6)), "partial"]


def test_exec_follows_while_the_command_runs(tmp_path: Path, logtail: Any) -> None:
    """--exec: lines appear while the command still runs, not only after it exits."""
    path, go = tmp_path / "app.log", tmp_path / "go"
    script = 'echo running >> "$1"; while [ ! -e "$2" ]; do sleep 0.01; done; echo done >> "$1"'
    proc: Logtail = logtail(path, "--exec", "--", *sh(script, path, go))
    proc.wait_for_lines(1)
    assert proc.proc.poll() is None, proc.stderr
    go.touch()
    assert proc.finish(20) == 0, proc.stderr
    assert proc.lines == ["running", "done"]


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("exit 3", 3),
        ("kill -KILL $$", 128 + signal.SIGKILL),
        ("kill -TERM $$", 128 + signal.SIGTERM),
    ],
)
def test_exec_returns_the_commands_status(tmp_path: Path, logtail: Any, ending: str, status: int) -> None:
    """--exec: a failing command's status comes back, and a command killed by signal N gives 128+N."""
    path = tmp_path / "app.log"
    proc: Logtail = logtail(path, "--exec", "--", *sh(f'echo "before the end" >> "$1"; {ending}', path))
    assert proc.finish(20) == status, proc.stderr
    assert proc.lines == ["before the end"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 5), (signal.SIGINT, 6)])
def test_exec_passes_signals_on_to_the_command(
    tmp_path: Path, logtail: Any, signum: signal.Signals, status: int
) -> None:
    """--exec: SIGTERM/SIGINT sent to logtail reach the command; what it writes then is printed, and its
    status comes back."""
    path = tmp_path / "app.log"
    script = (
        'trap \'echo "got TERM" >> "$1"; exit 5\' TERM; trap \'echo "got INT" >> "$1"; exit 6\' INT; '
        'echo started >> "$1"; while :; do sleep 0.05; done'
    )
    proc: Logtail = logtail(path, "--exec", "--", *sh(script, path))
    proc.wait_for_lines(1)
    proc.signal(signum)
    assert proc.finish(20) == status, proc.stderr
    assert proc.lines == ["started", f"got {signum.name.removeprefix('SIG')}"]


def test_exec_command_that_does_not_exist_gives_127_and_one_error(tmp_path: Path) -> None:
    """--exec with a command that cannot be run: exit 127 and one error line naming it."""
    path = tmp_path / "app.log"
    missing = str(tmp_path / "no-such-command")
    result = run([path, "--exec", "--", missing, "arg"], timeout=20)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 127, stderr
    assert "Traceback" not in stderr
    errors = [r for r in records(stderr) if r.get("level") == "error"]
    assert len(errors) == 1, stderr
    assert missing in json.dumps(errors[0])


# -- summary -------------------------------------------------------------------------------------


def test_summary_counts_lines_bytes_rotations_and_truncations(tmp_path: Path, logtail: Any) -> None:
    """The summary event at exit has, per file, the lines and bytes printed and the rotations and
    truncations seen."""
    path, other = tmp_path / "app.log", tmp_path / "other.log"
    path.write_text("a1\na2\na3\n")  # 9 bytes
    other.write_text("o1\n")  # 3 bytes
    proc: Logtail = logtail("--poll-interval", "0.2", "--rotate-wait", "0.2", path, other)
    proc.wait_for_lines(4)

    path.rename(tmp_path / "app.log.1")  # rename rotation
    path.write_text("b1\nb2\n")  # 6 bytes
    wait_until(lambda: "b2" in proc.lines, what=f"the new file's lines: {proc.lines}")

    with open(path, "r+") as handle:  # truncation in place, then a shorter line
        handle.truncate(0)
    append(path, "c\n")  # 2 bytes
    wait_until(lambda: "c" in proc.lines, what=f"the line after the truncation: {proc.lines}")

    assert proc.stop(signal.SIGTERM) == 0, proc.stderr
    assert sorted(proc.lines) == sorted(["a1", "a2", "a3", "o1", "b1", "b2", "c"])
    event = summary(proc.stderr)
    assert event.get("exit_status") == 0
    files = {entry["path"]: entry for entry in event["files"]}
    assert set(files) == {str(path), str(other)}, files
    assert (files[str(path)]["lines"], files[str(path)]["bytes"]) == (6, 17)
    assert (files[str(path)]["rotations"], files[str(path)]["truncations"]) == (1, 1)
    assert files[str(other)] | {"path": "", "name": ""} == {
        "path": "",
        "name": "",
        "lines": 1,
        "bytes": 3,
        "rotations": 0,
        "truncations": 0,
        "lost_bytes": 0,  # issue 11: bytes known to be gone before they could be printed
    }


def test_summary_is_written_for_every_way_to_stop(tmp_path: Path) -> None:
    """--until, --timeout, --idle-exit, --pid and --exec each end with one summary event carrying the
    exit status."""
    path = tmp_path / "a.log"
    path.write_text("x\nready\n")
    gone = subprocess.Popen(["true"])
    gone.wait(10)
    for args, status in [
        (["--until", "ready"], 0),
        (["--until", "never", "--timeout", "0.5"], 124),
        (["--idle-exit", "0.3"], 0),
        (["--pid", str(gone.pid)], 0),
        (["--exec", "--", "sh", "-c", "exit 4"], 4),
    ]:
        result = run([path, *args], timeout=20)
        assert result.returncode == status, (args, result.stderr)
        event = summary(result.stderr.decode())
        assert event["exit_status"] == status, (args, event)


# -- examples/ci ---------------------------------------------------------------------------------

CI_EXAMPLES = ["github-actions.yml", "gitlab-ci.yml"]
SHELL_OPERATORS = {"&&", "||", "|", ";", "&", ">", ">>", "2>&1"}


def yaml_strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from yaml_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from yaml_strings(value)


def logtail_commands(text: str) -> list[list[str]]:
    """The argument lists of every `logtail ...` command line in ``text`` (continuation lines joined)."""
    text = text.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        for match in re.finditer(r"(?:^|[\s;&|(])logtail\s+(.*)", line):
            words = []
            for word in shlex.split(match[1], comments=True):
                if word in SHELL_OPERATORS:
                    break
                words.append(word)
            commands.append(words)
    return commands


def help_options() -> set[str]:
    result = run(["--help"])
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", result.stdout.decode()))


def example(name: str) -> tuple[str, object]:
    yaml = pytest.importorskip("yaml")
    path = EXAMPLES / name
    assert path.is_file(), f"{path} is missing"
    text = path.read_text()
    return text, yaml.safe_load(text)


@pytest.mark.parametrize("name", CI_EXAMPLES)
def test_ci_example_is_yaml_and_installs_the_distribution(name: str) -> None:
    """Each CI example parses as YAML and installs logtail by its distribution name, logtail-sidecar."""
    text, doc = example(name)
    assert isinstance(doc, dict), doc
    assert any("pip install logtail-sidecar" in s for s in yaml_strings(doc)), text


@pytest.mark.parametrize("name", CI_EXAMPLES)
def test_ci_example_commands_use_only_options_logtail_has(name: str) -> None:
    """The logtail command lines in each CI example use options that `logtail --help` lists, parse, and
    include the two uses of issue 6: waiting with --until/--timeout and wrapping tests with --exec."""
    from logtail.cli import command

    _, doc = example(name)
    commands = [c for s in yaml_strings(doc) for c in logtail_commands(s)]
    assert commands, f"no logtail command in {name}"
    known = help_options()
    for args in commands:
        ours = args[: args.index("--")] if "--" in args else args
        options = {word.split("=", 1)[0] for word in ours if word.startswith("-")}
        assert options <= known, f"{args}: unknown {options - known}"
        ctx = command.make_context("logtail", list(args))  # parses without running
        assert ctx.params["paths"], args
    assert any("--until" in c and "--timeout" in c for c in commands), commands
    assert any("--exec" in c and "--" in c for c in commands), commands


@pytest.mark.parametrize("name", CI_EXAMPLES)
def test_ci_example_commands_run(name: str, tmp_path: Path) -> None:
    """The examples' logtail commands do what the examples say: --until returns once the server log says
    ready, and the --exec line prints the application's log and returns make's failing status."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    _, doc = example(name)
    commands = [c for s in yaml_strings(doc) for c in logtail_commands(s)]
    (tmp_path / "Makefile").write_text("test:\n\t@echo 'test passed' >> app.log\n\t@exit 7\n")
    for args in commands:
        for word in args:
            if word.endswith(".log") and not word.startswith("-"):
                (tmp_path / word).write_text("starting\nready\n" if "--until" in args else "")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LOGTAIL_LOG_FORMAT": "json"}
        result = subprocess.run(
            [sys.executable, "-m", "logtail", *args],
            cwd=tmp_path,
            capture_output=True,
            timeout=30,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        out = result.stdout.decode(errors="replace")
        if "--until" in args:
            assert result.returncode == 0, (args, result.stderr)
            assert out.splitlines()[-1].endswith("ready"), out
        elif "--exec" in args:
            assert result.returncode == 2, (args, result.stderr)  # make's status when a recipe fails
            assert "test passed" in out, (args, out, result.stderr)
