"""End-to-end tests of issue 7: logtail runs as a subprocess against a directory prepared the way a
compromised application would prepare the shared volume, and must not leak, hang, flood or overwrite."""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import support
from hypothesis import given, settings
from hypothesis import strategies as st
from support import ROOT, Logtail, append, observe, records, wait_until

from logtail.framing import LineFramer

pytestmark = pytest.mark.e2e

SECRET = "SECRET-TOKEN-eyJhbGciOiJSUzI1NiJ9"  # noqa: S105 - a fake token to look for on stdout
SHADOW = "root:$6$SHADOW-HASH$abcdef:19000:0:99999:7:::"


# -- helpers -------------------------------------------------------------------------------------


def warnings_naming(stderr: str, path: Path) -> list[dict[str, Any]]:
    """The warning events whose ``path`` is ``path``."""
    return [r for r in records(stderr) if r.get("level") == "warning" and r.get("path") == str(path)]


def open_fds(pid: int) -> list[str]:
    """What each of the process's descriptors points to."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed while we looked
    return found


def blocked_in(proc: Logtail) -> str:
    """Where the process's main thread waits, for the failure message of a hang."""
    pid = proc.proc.pid
    with open(f"/proc/{pid}/wchan") as wchan, open(f"/proc/{pid}/syscall") as syscall:
        number = syscall.read().split()[0]
        return f"main thread in {wchan.read()!r}, syscall {number} (2 = open, 257 = openat)"


def assert_healthy(proc: Logtail) -> None:
    assert proc.proc.poll() is None, f"logtail exited {proc.proc.returncode}: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.fixture
def outside(tmp_path: Path) -> dict[str, Path]:
    """Files outside the followed directory, standing in for a service-account token and /etc/shadow."""
    secrets = tmp_path / "run" / "secrets" / "kubernetes.io" / "serviceaccount"
    secrets.mkdir(parents=True)
    token = secrets / "token"
    token.write_text(SECRET + "\n")
    etc = tmp_path / "etc"
    etc.mkdir()
    shadow = etc / "shadow"
    shadow.write_text(SHADOW + "\n")
    return {"token": token, "shadow": shadow}


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """The shared volume logtail follows, with one honest log file in it."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("app 1\n")
    return logs


# -- symlinks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["glob", "paths"])
def test_symlinks_to_outside_the_directory_are_not_read(
    volume: Path, outside: dict[str, Path], logtail: Any, how: str
) -> None:
    """A followed path or glob match that links outside its directory is not read; one warning names the
    link and its target; the honest file keeps being followed."""
    token_link, shadow_link = volume / "token.log", volume / "shadow.log"
    token_link.symlink_to(outside["token"])  # absolute target
    shadow_link.symlink_to(os.path.relpath(outside["shadow"], volume))  # relative ../ target
    args = [volume / "*.log"] if how == "glob" else [volume / "app.log", token_link, shadow_link]
    proc: Logtail = logtail("--poll-interval", "0.2", *args)
    proc.wait_for_lines(1)
    for link in (token_link, shadow_link):
        wait_until(lambda link=link: warnings_naming(proc.stderr, link), what=f"a warning about {link}")
    append(volume / "app.log", "app 2\n")
    append(outside["token"], SECRET + " rotated\n")  # a change to the target must not wake it up either
    proc.wait_for_lines(2)
    observe(1.0)  # five sweeps: no second warning, no late read
    assert_healthy(proc)
    assert proc.lines == ["app 1", "app 2"]
    for link, target in [(token_link, outside["token"]), (shadow_link, outside["shadow"])]:
        warned = warnings_naming(proc.stderr, link)
        assert len(warned) == 1, warned
        assert str(target) in json.dumps(warned[0]), warned[0]
    assert SECRET not in proc.stderr
    assert "SHADOW-HASH" not in proc.stderr


def test_no_follow_fails_for_a_named_file_it_refused(volume: Path, outside: dict[str, Path]) -> None:
    """--no-follow exits 1 when a named path is refused (a CI job that printed nothing of it must not
    pass), after printing the files it may read; a refused glob match does not fail the run."""
    (volume / "token.log").symlink_to(outside["token"])
    named = support.run(["--no-follow", volume / "app.log", volume / "token.log"])
    assert named.returncode == 1, named.stderr
    assert named.stdout == b"app 1\n"
    assert b"outside" in named.stderr, named.stderr
    assert b"Traceback" not in named.stderr, named.stderr
    globbed = support.run(["--no-follow", volume / "*.log"])
    assert globbed.returncode == 0, globbed.stderr
    assert globbed.stdout == b"app 1\n"
    assert SECRET.encode() not in named.stdout + named.stderr + globbed.stdout + globbed.stderr


def test_follow_symlinks_anywhere_allows_them(volume: Path, outside: dict[str, Path], logtail: Any) -> None:
    """With --follow-symlinks-anywhere a link to outside the directory is followed like a file."""
    (volume / "token.log").symlink_to(outside["token"])
    proc: Logtail = logtail("--follow-symlinks-anywhere", volume / "*.log")
    proc.wait_for_lines(2)
    assert sorted(proc.lines) == sorted(["app 1", SECRET])


def test_symlink_inside_the_directory_is_followed(volume: Path, logtail: Any) -> None:
    """A symlink whose target stays in the directory (or below it) is followed without a warning."""
    sub = volume / "2024"
    sub.mkdir()
    (sub / "real.log").write_text("real 1\n")
    (volume / "current.log").symlink_to("2024/real.log")
    proc: Logtail = logtail(volume / "current.log")
    proc.wait_for_lines(1)
    append(sub / "real.log", "real 2\n")
    proc.wait_for_lines(2)
    assert proc.lines == ["real 1", "real 2"]
    assert not warnings_naming(proc.stderr, volume / "current.log"), proc.stderr


def test_retargeted_symlink_is_followed_like_a_rotation(volume: Path, logtail: Any) -> None:
    """`current.log -> app-1.log` retargeted to app-2.log: lines of both, in order, none twice, including
    a line written to app-1.log after the switch."""
    current, one, two = volume / "current.log", volume / "app-1.log", volume / "app-2.log"
    one.write_text("one 1\none 2\n")
    current.symlink_to("app-1.log")
    proc: Logtail = logtail("--poll-interval", "0.2", "--rotate-wait", "0.5", current)
    proc.wait_for_lines(2)
    two.write_text("")
    (volume / "current.tmp").symlink_to("app-2.log")
    (volume / "current.tmp").rename(current)  # atomic retarget, as `ln -sfn` + mv does
    append(one, "one 3 late\n")
    append(two, "two 1\n")
    proc.wait_for_lines(4)
    append(two, "two 2\n")
    proc.wait_for_lines(5)
    observe(0.6)  # past --rotate-wait: nothing is printed a second time
    assert proc.lines == ["one 1", "one 2", "one 3 late", "two 1", "two 2"]
    assert not [r for r in records(proc.stderr) if r.get("level") == "warning"], proc.stderr


def test_followed_file_replaced_by_a_symlink_to_outside_is_not_read(
    volume: Path, outside: dict[str, Path], logtail: Any
) -> None:
    """A followed file swapped for a link to outside the directory (a rename "rotation" by the attacker):
    the old file's lines are printed, the secret is not, and one warning names the link."""
    app = volume / "app.log"
    proc: Logtail = logtail("--poll-interval", "0.2", "--rotate-wait", "0.2", app)
    proc.wait_for_lines(1)
    append(app, "app 2\n")
    (volume / "swap.tmp").symlink_to(outside["token"])
    (volume / "swap.tmp").rename(app)
    wait_until(lambda: warnings_naming(proc.stderr, app), what=f"a warning about {app}: {proc.stderr}")
    observe(1.0)
    assert_healthy(proc)
    assert proc.lines == ["app 1", "app 2"]
    assert len(warnings_naming(proc.stderr, app)) == 1, proc.stderr


def test_glob_through_a_symlinked_directory_to_outside_is_not_read(
    volume: Path, outside: dict[str, Path], logtail: Any
) -> None:
    """A glob with a directory wildcard (logs/*/*) matching a file through a directory symlink that leads
    outside the followed directory: the file is not read, and a warning names it."""
    (volume / "pod-a").mkdir()
    (volume / "pod-a" / "app.log").write_text("pod-a 1\n")
    evil = volume / "pod-evil"
    evil.symlink_to(outside["token"].parent)  # .../serviceaccount, holding `token`
    proc: Logtail = logtail("--poll-interval", "0.2", volume / "*" / "*")
    proc.wait_for_lines(1)
    observe(1.0)
    assert_healthy(proc)
    assert SECRET not in proc.lines, f"the secret leaked to stdout: {proc.lines}"
    assert proc.lines == ["pod-a 1"]
    assert warnings_naming(proc.stderr, evil / "token"), proc.stderr


# -- special files -------------------------------------------------------------------------------


def make_special_files(volume: Path) -> tuple[list[Path], socket.socket]:
    """A FIFO, a bound socket, a link to /dev/zero and (where allowed) a character device node."""
    fifo = volume / "fifo.log"
    os.mkfifo(fifo)
    sock_path = volume / "sock.log"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.getcwd()
    try:
        os.chdir(volume)  # a relative name keeps under the 108-byte limit of sun_path
        sock.bind(sock_path.name)
    finally:
        os.chdir(cwd)
    zero = volume / "zero.log"
    zero.symlink_to("/dev/zero")
    specials = [fifo, sock_path, zero]
    device = volume / "dev.log"
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
        specials.append(device)
    except PermissionError:
        pass  # no CAP_MKNOD here: the link to /dev/zero stands in for it
    return specials, sock


@pytest.mark.parametrize("how", ["glob", "paths"])
def test_fifos_sockets_and_devices_are_not_opened(volume: Path, logtail: Any, how: str) -> None:
    """FIFOs, sockets and device files are not opened: no hang, no flood, one warning each, and the other
    files keep being followed."""
    specials, sock = make_special_files(volume)
    try:
        args = [volume / "*.log"] if how == "glob" else [volume / "app.log", *specials]
        proc: Logtail = logtail("--poll-interval", "0.2", *args)
        proc.wait_for_lines(1)
        for special in specials:
            wait_until(
                lambda special=special: warnings_naming(proc.stderr, special),
                what=f"a warning about {special}: {proc.stderr}",
            )
        append(volume / "app.log", "app 2\n")
        proc.wait_for_lines(2)
        observe(1.0)
        assert_healthy(proc)
        assert proc.lines == ["app 1", "app 2"]
        for special in specials:
            assert len(warnings_naming(proc.stderr, special)) == 1, proc.stderr
        fds = open_fds(proc.proc.pid)
        assert "/dev/zero" not in fds, fds
        assert not [fd for fd in fds if fd.startswith(f"{volume}/") and not fd.endswith("/app.log")], fds
        # Nobody has the FIFO open for reading: a writer that does not wait is turned away.
        with pytest.raises(OSError, match="No such device or address") as refused:
            os.open(volume / "fifo.log", os.O_WRONLY | os.O_NONBLOCK)
        assert refused.value.errno == errno.ENXIO
    finally:
        sock.close()


# -- --max-files ---------------------------------------------------------------------------------


def test_max_files_follows_that_many_and_reports_the_rest(volume: Path, logtail: Any) -> None:
    """A glob matching more files than --max-files: that many are followed, each of the rest is reported
    once on stderr."""
    (volume / "app.log").unlink()
    paths = [volume / f"f{i:02}.log" for i in range(10)]
    for path in paths:
        path.write_text(f"{path.name}\n")
    proc: Logtail = logtail("--poll-interval", "0.2", "--max-files", "3", volume / "*.log")
    proc.wait_for_lines(3)
    for path in paths[3:]:
        wait_until(lambda path=path: warnings_naming(proc.stderr, path), what=f"a report of {path}")
    observe(1.0)
    assert_healthy(proc)
    assert sorted(proc.lines) == [p.name for p in paths[:3]]
    for path in paths[3:]:
        (report,) = warnings_naming(proc.stderr, path)
        assert "max-files" in json.dumps(report), report


def test_files_created_in_a_loop_cannot_exhaust_descriptors(volume: Path, logtail: Any) -> None:
    """An application creating files in a loop cannot make logtail open more than --max-files of them."""
    limit = 5
    proc: Logtail = logtail("--poll-interval", "0.1", "--max-files", limit, volume / "*.log")
    proc.wait_for_lines(1)
    baseline = len(open_fds(proc.proc.pid))
    stop = threading.Event()

    def flood() -> None:
        for i in itertools.count():
            if stop.is_set() or i >= 400:
                return
            (volume / f"spam-{i:04}.log").write_text(f"spam {i}\n")
            time.sleep(0.005)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    peak_in_volume = peak_total = 0
    try:
        while flooder.is_alive():
            fds = open_fds(proc.proc.pid)
            peak_total = max(peak_total, len(fds))
            # Files in the volume only: the directory itself is open while glob scans it.
            in_volume = [fd for fd in fds if fd.startswith(f"{volume}/")]
            peak_in_volume = max(peak_in_volume, len(in_volume))
            time.sleep(0.01)
    finally:
        stop.set()
        flooder.join(10)
    wait_until(
        lambda: warnings_naming(proc.stderr, volume / "spam-0399.log"), what="a report of the last file"
    )
    assert_healthy(proc)
    assert peak_in_volume <= limit, peak_in_volume
    assert peak_total <= baseline + limit + 4, (baseline, peak_total)
    assert len(proc.lines) <= limit, proc.lines
    reported = {r["path"] for r in records(proc.stderr) if "max-files" in json.dumps(r)}
    assert len(reported) >= 400 + 1 - limit, len(reported)


def test_max_files_counts_files_at_once_not_files_ever_seen(volume: Path, logtail: Any) -> None:
    """--max-files caps the files followed at once: special files that matched and were removed again do
    not keep their places, so a later log file is still followed."""
    proc: Logtail = logtail(
        "--poll-interval", "0.2", "--rotate-wait", "0.2", "--max-files", "3", volume / "*.log"
    )
    proc.wait_for_lines(1)
    fifos = [volume / f"fifo-{i}.log" for i in range(3)]
    for fifo in fifos:
        os.mkfifo(fifo)
    for fifo in fifos[:2]:
        wait_until(lambda fifo=fifo: warnings_naming(proc.stderr, fifo), what=f"a warning about {fifo}")
    for fifo in fifos:
        fifo.unlink()
    observe(1.0)  # the FIFOs are gone: nothing is followed but app.log
    (volume / "new.log").write_text("new 1\n")
    wait_until(
        lambda: "new 1" in proc.lines or warnings_naming(proc.stderr, volume / "new.log"),
        what="new.log followed or reported",
    )
    assert_healthy(proc)
    assert "new 1" in proc.lines, f"new.log not followed with only app.log open: {proc.stderr}"


def test_fifo_reusing_a_retired_files_inode_does_not_block(volume: Path, logtail: Any) -> None:
    """A FIFO created where a deleted, already closed glob member was, on the same inode number (ext4 and
    others reuse them at once), is not opened: logtail keeps printing and still drains on SIGTERM."""
    victim = volume / "victim.log"
    victim.write_text("victim 1\n")
    proc: Logtail = logtail("--poll-interval", "0.2", "--rotate-wait", "0.2", volume / "*.log")
    proc.wait_for_lines(2)
    old_inode = victim.stat().st_ino
    victim.unlink()
    wait_until(
        lambda: not [fd for fd in open_fds(proc.proc.pid) if "victim.log" in fd],
        what="logtail closing the deleted file",
    )
    trap = volume / "trap.log"
    os.mkfifo(trap)
    if trap.stat().st_ino != old_inode:
        pytest.skip("this file system did not reuse the inode number")
    append(volume / "app.log", "app 2\n")
    try:
        proc.wait_for_lines(3, timeout=5)
    except AssertionError:
        where = blocked_in(proc)
        proc.signal(signal.SIGTERM)
        try:
            after = f"exited {proc.proc.wait(3)} on SIGTERM"
        except subprocess.TimeoutExpired:
            after = "still running 3 s after SIGTERM"
        pytest.fail(f"logtail stopped printing after a FIFO took a retired file's inode; {where}; {after}")
    wait_until(lambda: warnings_naming(proc.stderr, trap), what=f"a warning about {trap}")
    assert proc.stop(timeout=10) == 0, proc.stderr


# -- the checkpoint ------------------------------------------------------------------------------


def test_symlink_planted_at_the_checkpoint_path_does_not_overwrite_its_target(
    volume: Path, outside: dict[str, Path], logtail: Any
) -> None:
    """A symlink planted where the checkpoint goes is neither read nor written through: the victim keeps
    its bytes, and the checkpoint becomes a regular file of mode 0600."""
    victim = outside["shadow"]
    before = victim.read_bytes()
    checkpoint = volume / ".logtail-checkpoint"
    checkpoint.symlink_to(victim)
    proc: Logtail = logtail("--checkpoint", checkpoint, "--checkpoint-interval", "0.2", volume / "app.log")
    proc.wait_for_lines(1)
    wait_until(lambda: not checkpoint.is_symlink() and checkpoint.exists(), what="a checkpoint file")
    assert proc.stop() == 0, proc.stderr
    assert victim.read_bytes() == before
    assert not checkpoint.is_symlink()
    assert stat.S_IMODE(checkpoint.lstat().st_mode) == 0o600
    assert json.loads(checkpoint.read_bytes())["files"], checkpoint.read_text()
    assert "SHADOW-HASH" not in proc.stderr
    assert proc.lines == ["app 1"]


def test_checkpoint_is_mode_0600_whatever_the_umask_or_the_file_there_before(
    volume: Path, logtail: Any
) -> None:
    """The checkpoint ends up mode 0600 under umask 000, even replacing a world-writable file put there."""
    checkpoint = volume / "checkpoint.json"
    checkpoint.write_text("{}")
    checkpoint.chmod(0o666)
    old = os.umask(0)
    try:
        proc: Logtail = logtail("--checkpoint", checkpoint, volume / "app.log")
    finally:
        os.umask(old)
    proc.wait_for_lines(1)
    assert proc.stop() == 0, proc.stderr
    assert stat.S_IMODE(checkpoint.lstat().st_mode) == 0o600
    assert json.loads(checkpoint.read_bytes())["files"], checkpoint.read_text()


# Runs logtail with the checkpoint's random temporary names made predictable: every other name is
# "planted", so each save first meets the attacker's link, then gets a fresh name.
PREDICTABLE_TEMPORARY_NAMES = """
import itertools, os, sys
from logtail import checkpoint
from logtail.cli import main
calls = itertools.count()
def token_hex():
    n = next(calls)
    name = "planted" if n % 2 == 0 else f"fresh{n}"
    with open(os.environ["NAMES_TRIED"], "a") as log:
        log.write(name + "\\n")
    return name
checkpoint.temporary_suffix = token_hex
main(sys.argv[1:])
"""


def test_symlink_at_a_temporary_checkpoint_name_is_never_written_through(
    volume: Path, outside: dict[str, Path], logtail: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A symlink planted at the name the checkpoint's temporary file would get is skipped, never written
    through, at every save."""
    victim = outside["shadow"]
    before = victim.read_bytes()
    checkpoint = volume / "checkpoint.json"
    planted = volume / "checkpoint.json.planted.tmp"
    planted.symlink_to(victim)
    tried = tmp_path / "names-tried"
    monkeypatch.setattr(support, "LOGTAIL", [sys.executable, "-c", PREDICTABLE_TEMPORARY_NAMES])
    proc: Logtail = logtail(
        "--checkpoint",
        checkpoint,
        "--checkpoint-interval",
        "0.1",
        volume / "app.log",
        env={"NAMES_TRIED": str(tried)},
    )
    proc.wait_for_lines(1)
    append(volume / "app.log", "app 2\n")
    proc.wait_for_lines(2)
    wait_until(lambda: checkpoint.exists(), what="a checkpoint")
    assert proc.stop() == 0, proc.stderr
    assert tried.read_text().count("planted") >= 2, tried.read_text()  # the start-up check and a save
    assert victim.read_bytes() == before
    assert planted.is_symlink()
    assert os.readlink(planted) == str(victim)
    assert json.loads(checkpoint.read_bytes())["files"]


# -- no network ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra", [[], ["--checkpoint", "{volume}/checkpoint.json"], ["--exec", "--", "sleep", "30"]]
)
def test_no_network_listener(volume: Path, logtail: Any, extra: list[str]) -> None:
    """While logtail runs it has no listening socket, no internet socket and no named unix socket."""
    args = [arg.format(volume=volume) for arg in extra]
    before_exec = args[: args.index("--exec")] if "--exec" in args else args
    after_exec = args[len(before_exec) :]
    proc: Logtail = logtail(*before_exec, volume / "*.log", *after_exec)
    proc.wait_for_lines(1)
    append(volume / "app.log", "app 2\n")
    proc.wait_for_lines(2)
    connections = psutil.Process(proc.proc.pid).net_connections(kind="all")
    assert not [c for c in connections if c.status == psutil.CONN_LISTEN], connections
    assert not [c for c in connections if c.family != socket.AF_UNIX], connections
    assert not [c for c in connections if c.laddr], connections  # unix sockets only unnamed (socketpairs)
    assert_healthy(proc)
    assert proc.stop() in (0, 128 + signal.SIGTERM), proc.stderr  # --exec: the command gets the SIGTERM


# -- fuzzing -------------------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(
    chunks=st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.binary(max_size=64).map(lambda b: b.replace(b"\x01", b"\n").replace(b"\x02", b"\x00")),
        ),
        max_size=40,
    ),
    limit=st.integers(min_value=1, max_value=16),
)
def test_framer_takes_arbitrary_bytes_in_arbitrary_chunks(chunks: list[bytes], limit: int) -> None:
    """Arbitrary bytes in arbitrary chunks never make the framer raise, hold back more than the limit,
    or emit a piece longer than the limit."""
    framer = LineFramer(limit)
    for chunk in chunks:
        out = framer.feed(chunk)
        assert framer.pending <= limit
        assert out == b"" or out.endswith(b"\n")
        assert all(len(piece) <= limit for piece in out.split(b"\n"))
    rest = framer.flush()
    assert framer.pending == 0
    assert len(rest) <= limit + 1


ATHERIS_HARNESS = """
import sys
import atheris

with atheris.instrument_imports():
    from logtail import checkpoint
    from logtail.framing import LineFramer


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    limit = fdp.ConsumeIntInRange(1, 32)
    framer = LineFramer(limit)
    while fdp.remaining_bytes():
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
        out = framer.feed(chunk)
        assert framer.pending <= limit
        assert all(len(piece) <= limit for piece in out.split(b"\\n"))
    framer.flush()
    try:
        checkpoint.parse(data)
    except checkpoint.Unusable:
        pass


atheris.Setup([sys.argv[0], "-runs=30000", "-max_total_time=30", "-max_len=2048"], one_input)
atheris.Fuzz()
"""


def test_atheris_fuzzes_framer_and_checkpoint_parser(tmp_path: Path) -> None:
    """A short coverage-guided run over the framer and the checkpoint parser finds no crash."""
    pytest.importorskip("atheris")
    harness = tmp_path / "fuzz.py"
    harness.write_text(ATHERIS_HARNESS)
    result = subprocess.run(
        [sys.executable, str(harness)],
        cwd=tmp_path,
        capture_output=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    output = result.stderr.decode(errors="replace")
    assert result.returncode == 0, output[-4000:]
    assert "Done" in output, output[-4000:]
