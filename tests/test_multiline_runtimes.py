"""Multi-line presets against real traces: real runtimes print into a log file between log lines.

Each program under tests/runtimes/ prints log lines and real stack traces (and dies of an
uncaught exception). The test writes log lines of its own before and after, then groups the
file as logtail would (LineFramer, then Grouper), fed in many chunk sizes, and has logtail
itself (a subprocess, ``--format json``) print it: each trace must be one record, every
other line a record of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import run

from logtail.framing import LineFramer
from logtail.multiline import Grouper, messages, parse_mode

RUNTIMES = Path(__file__).parent / "runtimes"
BEFORE = b"2026-12-02 08:59:59 INFO written by the test before the program\n"
AFTER = b"2026-12-02 09:59:59 INFO written by the test after the program\n"


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not on PATH (Debian: apt-get install -y {package})")
    return path


def log_of(tmp_path: Path, argv: list[str], env: dict[str, str] | None = None) -> Path:
    """Run ``argv`` with stdout and stderr appended to a log file between two lines of ours."""
    log = tmp_path / "app.log"
    log.write_bytes(BEFORE)
    with log.open("ab") as out:
        subprocess.run(
            argv, stdout=out, stderr=out, env={**os.environ, **(env or {})}, timeout=90, check=False
        )
    with log.open("ab") as out:
        out.write(AFTER)
    return log


def records_of(mode: str, content: bytes, chunk: int) -> list[bytes]:
    """The records of ``content`` read ``chunk`` bytes at a time, as JSON messages."""
    framer = LineFramer(1 << 20)
    grouper = Grouper(parse_mode(mode), 1000, 1 << 20)
    out: list[bytes] = []
    for at in range(0, len(content), chunk):
        out += messages(grouper.feed(framer.feed(content[at : at + chunk])))
    out += messages(grouper.feed(framer.flush()))
    out += messages(grouper.flush())
    return out


def check(mode: str, log: Path, traces: list[tuple[str, str]]) -> list[bytes]:
    """Each trace is one record from the first to the last line given; all else single lines."""
    content = log.read_bytes()
    whole = records_of(mode, content, len(content))
    for chunk in (1, 7, 64, 4096):
        assert records_of(mode, content, chunk) == whole, f"fed {chunk} bytes at a time"
    assert b"".join(record + b"\n" for record in whole) == content
    multi = [record for record in whole if b"\n" in record]
    shown = "\n----\n".join(record.decode(errors="replace") for record in whole)
    assert len(multi) == len(traces), shown
    for record, (first, last) in zip(multi, traces, strict=True):
        lines = record.decode().split("\n")
        assert re.search(first, lines[0]), (first, record)
        assert re.search(last, lines[-1]), (last, record)
    assert whole[0] + b"\n" == BEFORE
    assert whole[-1] + b"\n" == AFTER
    printed = run(["--no-follow", "--multiline", mode, "--format", "json", str(log)])
    assert printed.returncode == 0, printed.stderr
    messages = [json.loads(line)["message"] for line in printed.stdout.splitlines()]
    assert messages == [record.decode("utf-8", "replace") for record in whole], "logtail's own records"
    return multi


def test_python_logging_exception_and_uncaught_traceback(tmp_path: Path) -> None:
    """Chained tracebacks from logging.exception, an exception group, and the interpreter's own report."""
    log = log_of(tmp_path, [sys.executable, str(RUNTIMES / "python_traces.py")])
    multi = check(
        "python",
        log,
        [
            (r"ERROR app: chained with 'from'$", r"^RuntimeError: could not load the value$"),
            (r"ERROR app: during handling$", r"^OSError: disk gone$"),
            (r"ERROR app: an exception group$", r"^    \+-+$"),
            # The interpreter's report continues the log line before it, as the preset says.
            (r"WARNING app: after the logged traces$", r"^LookupError: no such key$"),
        ],
    )
    assert b"\nThe above exception was the direct cause of the following exception:\n" in multi[0]
    assert b"\nDuring handling of the above exception, another exception occurred:\n" in multi[1]


def test_java_nested_causes_suppressed_and_uncaught(tmp_path: Path) -> None:
    """printStackTrace after a log line, and the JVM's report of an uncaught exception."""
    java = need("java", "default-jdk-headless")
    log = log_of(tmp_path, [java, str(RUNTIMES / "Traces.java")])
    multi = check(
        "java",
        log,
        [
            (r"ERROR request failed$", r"^\t\.\.\. \d+ more$"),
            (r'^Exception in thread "main" java\.lang\.IllegalStateException', r"^\t\.\.\. \d+ more$"),
        ],
    )
    for record in multi:
        assert record.count(b"Caused by: ") == 3
        assert b"\n\tSuppressed: java.io.UncheckedIOException: close failed\n" in record


def test_node_error_stacks_and_uncaught_exception(tmp_path: Path) -> None:
    """console.error(err.stack), console.error(err) with a cause, and an uncaught exception."""
    node = need("node", "nodejs")
    log = log_of(tmp_path, [node, str(RUNTIMES / "traces.js")])
    multi = check(
        "node",
        log,
        [
            (r"^Error: could not load \{\}$", r"^    at "),
            (r"^Error: could not load not json$", r"^\}$"),
            (r"traces\.js:\d+$", r"^Node\.js v\d+"),
        ],
    )
    assert b"\n    ^\n\nError: could not load [1]\n" in multi[2]


@pytest.fixture(scope="module")
def go_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("go")
    return {"GOCACHE": str(base / "cache"), "GOPATH": str(base / "path"), "HOME": str(base)}


def go_build(tmp_path: Path, source: str, env: dict[str, str]) -> str:
    go = need("go", "golang")
    binary = tmp_path / source.removesuffix(".go")
    subprocess.run(
        [go, "build", "-o", str(binary), str(RUNTIMES / source)],
        env={**os.environ, **env},
        check=True,
        timeout=100,
    )
    return str(binary)


def test_go_panic_with_several_goroutines(tmp_path: Path, go_env: dict[str, str]) -> None:
    """A real panic with GOTRACEBACK=all: the panic line and every goroutine's dump are one record."""
    binary = go_build(tmp_path, "traces.go", go_env)
    log = log_of(tmp_path, [binary], {"GOTRACEBACK": "all"})
    (record,) = check("go", log, [(r"^panic: runtime error: integer divide by zero$", r"^\t.+\.go:\d+")])
    assert len(re.findall(rb"\ngoroutine \d+ \[", record)) >= 4


def test_go_fatal_error(tmp_path: Path, go_env: dict[str, str]) -> None:
    """The runtime's "fatal error:" (a deadlock) with its goroutine dumps is one record."""
    binary = go_build(tmp_path, "deadlock.go", go_env)
    log = log_of(tmp_path, [binary])
    (record,) = check(
        "go", log, [(r"^fatal error: all goroutines are asleep - deadlock!$", r"^\t.+\.go:\d+")]
    )
    assert len(re.findall(rb"\ngoroutine \d+ \[", record)) >= 2
