"""Checkpoint I/O and identity matching: atomic saves, hostile files, resume plans."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtail import checkpoint, files, locate
from logtail.checkpoint import Position, Unusable
from logtail.config import StartAt
from logtail.errors import ConfigError
from logtail.identity import FileId

POS = Position(dev=1, ino=2, offset=300, window_sha="ab" * 32, window_len=256, mtime_ns=5, name="/x/a.1")
LATER = Position(dev=1, ino=3, offset=0, window_sha="", window_len=0, mtime_ns=6, name="/x/a")


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    """What is saved is what is loaded, and the file is private to logtail's user."""
    path = tmp_path / "ck.json"
    checkpoint.save(str(path), {"/var/log/app.log": (POS, LATER)})
    assert checkpoint.load(str(path)) == {"/var/log/app.log": (POS, LATER)}
    assert path.stat().st_mode & 0o777 == 0o600


def test_files_read_to_their_end_round_trip(tmp_path: Path) -> None:
    """Files read to their end are saved in a list of their own and come back first, marked done;
    an entry with nothing left to read but such files is not saved."""
    path = tmp_path / "ck.json"
    copy = Position(dev=1, ino=9, offset=120, window_sha="cd" * 32, window_len=120, mtime_ns=4, done=True)
    checkpoint.save(str(path), {"/var/log/app.log": (copy, POS, LATER), "/gone": (copy,)})
    assert checkpoint.load(str(path)) == {"/var/log/app.log": (copy, POS, LATER)}
    assert '"done":[' in path.read_text()


def test_version_1_checkpoint_is_read(tmp_path: Path) -> None:
    """A checkpoint written by logtail 0.1 (one position per path, no name) resumes as before."""
    path = tmp_path / "ck.json"
    path.write_bytes(
        b'{"version":1,"files":{"/a":{"dev":1,"ino":2,"offset":300,"window_sha":"'
        + b"ab" * 32
        + b'","window_len":256,"mtime_ns":5}}}'
    )
    assert checkpoint.load(str(path)) == {"/a": (Position(1, 2, 300, "ab" * 32, 256, 5),)}


def test_missing_checkpoint_is_not_an_error(tmp_path: Path) -> None:
    """No checkpoint yet means a first start."""
    assert checkpoint.load(str(tmp_path / "none.json")) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"version": 99, "files": {}}', "unknown version 99"),
        (b'{"version": 1}', "no 'files' object"),
        (b'{"version": 1, "files": {"/a": 3}}', "is not an object"),
        (b'{"version": 1, "files": {"/a": {"dev": 1}}}', "no valid 'ino'"),
        (
            b'{"version": 1, "files": {"/a": {"dev": -1, "ino": 1, "offset": 0, "window_sha": "", '
            b'"window_len": 0, "mtime_ns": 0}}}',
            "out of range",
        ),
        (
            b'{"version": 1, "files": {"/a": {"dev": true, "ino": 1, "offset": 0, "window_sha": "", '
            b'"window_len": 0, "mtime_ns": 0}}}',
            "no valid 'dev'",
        ),
        (
            b'{"version": 1, "files": {"/a": {"dev": 1, "ino": 1, "offset": 5, "window_sha": "", '
            b'"window_len": 9, "mtime_ns": 0}}}',
            "window longer than its offset",
        ),
        (b"[" * 100000, "not valid JSON"),
    ],
)
def test_corrupt_checkpoints_are_refused_with_a_reason(content: bytes, reason: str) -> None:
    """Anything but a valid checkpoint of this version is refused with a one-line reason."""
    with pytest.raises(Unusable, match=reason):
        checkpoint.parse(content)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_parser(data: bytes) -> None:
    """Any bytes either parse or raise Unusable; nothing else escapes."""
    try:
        checkpoint.parse(data)
    except Unusable as exc:
        reason = str(exc)
    else:
        reason = ""
    assert "\n" not in reason


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=30,
    )
)
def test_arbitrary_json_never_crashes_the_parser(doc: object) -> None:
    """Well-formed JSON of any shape either parses or raises Unusable."""
    for wrapped in (doc, {"version": 1, "files": doc}, {"version": 1, "files": {"/a": doc}}):
        with contextlib.suppress(Unusable):
            checkpoint.parse(json.dumps(wrapped).encode())


def test_symlink_at_checkpoint_path_is_not_followed_on_load(tmp_path: Path) -> None:
    """A link planted where the checkpoint should be is refused, not read through."""
    target = tmp_path / "elsewhere.json"
    checkpoint.save(str(target), {"/a": (POS,)})
    link = tmp_path / "ck.json"
    link.symlink_to(target)
    with pytest.raises(Unusable):
        checkpoint.load(str(link))


def test_save_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    """Saving over a symlink replaces the link; the file it pointed at is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "ck.json"
    link.symlink_to(victim)
    checkpoint.save(str(link), {"/a": (POS,)})
    assert victim.read_text() == "precious\n"
    assert not link.is_symlink()
    assert checkpoint.load(str(link)) == {"/a": (POS,)}


def test_planted_temporary_names_are_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If something already sits at a temporary name, another name is used; nothing is opened through it."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    names = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr(checkpoint, "temporary_suffix", lambda: next(names))
    (tmp_path / "ck.json.aaaaaaaaaaaa.tmp").symlink_to(victim)
    checkpoint.save(str(tmp_path / "ck.json"), {"/a": (POS,)})
    assert victim.read_text() == "precious\n"
    assert checkpoint.load(str(tmp_path / "ck.json")) == {"/a": (POS,)}


CRASH = """
import os, sys
from logtail import checkpoint
from logtail.checkpoint import Position
def crash(src, dst):
    os._exit(9)  # the process dies after the temporary file is written and synced, before the rename
os.rename = crash
checkpoint.save(sys.argv[1], {"/new": (Position(1, 2, 3, "", 0, 4),)})
"""


def test_crash_between_temporary_file_and_rename_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    """Killed after writing the temporary file but before the rename: the old checkpoint stays whole."""
    path = tmp_path / "ck.json"
    checkpoint.save(str(path), {"/old": (POS,)})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, "-c", CRASH, str(path)], env=env, check=False)
    assert result.returncode == 9
    assert checkpoint.load(str(path)) == {"/old": (POS,)}
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # the crash left its temporary file: the next save must still work
    checkpoint.save(str(path), {"/next": (POS,)})
    assert checkpoint.load(str(path)) == {"/next": (POS,)}


def test_unwritable_checkpoint_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A checkpoint that cannot be written is reported at start, naming the option and path."""
    with pytest.raises(ConfigError, match=r"--checkpoint .*does not exist"):
        checkpoint.check_writable(str(tmp_path / "no" / "such" / "ck.json"))


# -- where reading starts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "start", "printed"),
    [
        (b"a\nb\nc\n", "+1", b"a\nb\nc\n"),
        (b"a\nb\nc\n", "+2", b"b\nc\n"),
        (b"a\nb\nc\n", "+9", b""),
        (b"a\nb\nc\n", "2", b"b\nc\n"),
        (b"a\nb\nc\n", "0", b""),
        (b"a\nb\nc\n", "10", b"a\nb\nc\n"),
        (b"a\nb\nc", "2", b"b\nc"),  # an unterminated last line counts as a line, as in tail
        (b"", "5", b""),
        (b"\n\n\n", "2", b"\n\n"),
    ],
)
def test_start_offset_matches_tail(tmp_path: Path, content: bytes, start: str, printed: bytes) -> None:
    """-n N, +N and 0 start where tail starts."""
    path = tmp_path / "f"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = locate.start_offset(fd, len(content), StartAt.parse(start))
    finally:
        os.close(fd)
    assert content[offset:] == printed


def test_start_offset_across_blocks(tmp_path: Path) -> None:
    """Counting lines works across the blocks the file is read in."""
    lines = [f"{i:06d}\n".encode() for i in range(50000)]
    path = tmp_path / "f"
    path.write_bytes(b"".join(lines))
    fd = os.open(path, os.O_RDONLY)
    try:
        size = path.stat().st_size
        assert path.read_bytes()[locate.start_offset(fd, size, StartAt.parse("12345")) :] == b"".join(
            lines[-12345:]
        )
        assert path.read_bytes()[locate.start_offset(fd, size, StartAt.parse("+40000")) :] == b"".join(
            lines[39999:]
        )
    finally:
        os.close(fd)


def _position(path: Path, offset: int) -> checkpoint.Position:
    st = path.stat()
    data = path.read_bytes()
    window = data[max(0, offset - locate.WINDOW) : offset]
    file_id = FileId.of(st)
    return checkpoint.Position(
        file_id.dev, file_id.ino, offset, locate.digest(window), len(window), st.st_mtime_ns, str(path)
    )


def plan(path: Path, *saved: checkpoint.Position) -> tuple[list[tuple[str, int]], bool]:
    steps, found = locate.resume(str(path), ("{path}.*", "{path}-*"), saved)
    return [(os.path.basename(s.path), s.offset) for s in steps], found


def test_resume_without_rotation_continues_in_place(tmp_path: Path) -> None:
    """An untouched file resumes at its offset."""
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    saved = _position(log, 4)
    assert plan(log, saved) == ([("app.log", 4)], True)


def test_resume_after_renames_reads_every_generation_in_order(tmp_path: Path) -> None:
    """Rotated twice while down: the rest of the old file, the middle one, then the new one."""
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    saved = _position(log, 4)
    log.rename(tmp_path / "app.log.2")
    os.utime(tmp_path / "app.log.2", ns=(saved.mtime_ns + 1, saved.mtime_ns + 1))
    (tmp_path / "app.log.1").write_bytes(b"three\n")
    os.utime(tmp_path / "app.log.1", ns=(saved.mtime_ns + 2, saved.mtime_ns + 2))
    (tmp_path / "app.log.3").write_bytes(b"ancient\n")  # rotated before the checkpoint
    os.utime(tmp_path / "app.log.3", ns=(saved.mtime_ns - 10, saved.mtime_ns - 10))
    log.write_bytes(b"four\n")
    assert plan(log, saved) == ([("app.log.2", 4), ("app.log.1", 0), ("app.log", 0)], True)


def test_resume_after_copytruncate_finds_the_copy_by_content(tmp_path: Path) -> None:
    """Truncated in place while down: the rest is read from the copy that holds the same bytes."""
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    saved = _position(log, 4)
    (tmp_path / "app.log.1").write_bytes(b"one\ntwo\nthree\n")
    log.write_bytes(b"four\n")  # same inode, other content
    assert plan(log, saved) == ([("app.log.1", 4), ("app.log", 0)], True)


def test_resume_after_copytruncate_finds_the_copy_of_the_last_saved_generation(tmp_path: Path) -> None:
    """Saved while a deleted file was still read and a new one was at the path; the new one was
    copytruncated while down: its rest is read from the copy, not the copy again from its first
    byte as a newer generation (model seed 192)."""
    old = tmp_path / "old.log"
    old.write_bytes(b"zero\n")
    first = _position(old, 5)
    old.unlink()  # gone: its bytes are nowhere
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    second = _position(log, 8)
    (tmp_path / "app.log.1").write_bytes(b"one\ntwo\nthree\n")
    log.write_bytes(b"")  # truncated in place
    assert plan(log, first, second) == ([("app.log.1", 8), ("app.log", 0)], False)


def test_reused_inode_with_other_content_is_not_mistaken_for_the_old_file(tmp_path: Path) -> None:
    """Same inode but different bytes before the offset: a new file, read from its start."""
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    saved = _position(log, 8)
    log.write_bytes(b"ONE\nTWO\nTHREE\n")
    steps, found = plan(log, saved)
    assert (steps, found) == ([("app.log", 0)], False)


def test_resume_finds_a_symlinks_old_target_by_identity_anywhere_in_the_directory(tmp_path: Path) -> None:
    """current.log -> app-3.log retargeted to app-4.log while down: the rest of app-3.log (a name no
    pattern knows) is found by its inode, then app-4.log from its start."""
    old = tmp_path / "app-3.log"
    old.write_bytes(b"one\ntwo\n")
    link = tmp_path / "current.log"
    link.symlink_to(old.name)
    saved = _position(old, 4)
    saved = checkpoint.Position(**{**saved.__dict__, "name": ""})  # no hint: found by listing
    link.unlink()
    (tmp_path / "app-4.log").write_bytes(b"three\n")
    link.symlink_to("app-4.log")
    assert plan(link, saved) == ([("app-3.log", 4), ("current.log", 0)], True)


def test_resume_reads_every_saved_generation_wherever_it_went(tmp_path: Path) -> None:
    """Saved while a renamed file was still being read and a new one waited: both are found by
    identity (the first at its saved offset, the second from its first byte), in order."""
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    first = _position(log, 4)
    log.rename(tmp_path / "elsewhere.log")
    log.write_bytes(b"")
    second = _position(log, 0)
    log.rename(tmp_path / "app.log.1")  # rotated again while down
    log.write_bytes(b"four\n")
    assert plan(log, first, second) == ([("elsewhere.log", 4), ("app.log.1", 0), ("app.log", 0)], True)


def test_inode_reused_elsewhere_is_not_taken_for_a_generation_saved_at_offset_zero(tmp_path: Path) -> None:
    """A generation saved before anything of it was read has no bytes to confirm it: an unrelated
    file elsewhere in the directory with its inode number is not taken for it."""
    log = tmp_path / "app.log"
    log.write_bytes(b"one\n")
    saved = _position(log, 0)
    log.rename(tmp_path / "other.txt")
    log.write_bytes(b"two\n")
    saved = checkpoint.Position(**{**saved.__dict__, "name": ""})
    assert plan(log, saved) == ([("app.log", 0)], False)


def test_compressed_rotations_are_never_candidates(tmp_path: Path) -> None:
    """A .gz generation holds the same lines in another encoding and is never read."""
    log = tmp_path / "app.log"
    log.write_bytes(b"x\n")
    (tmp_path / "app.log.1.gz").write_bytes(b"\x1f\x8b")
    (tmp_path / "app.log.1").write_bytes(b"y\n")
    assert locate.rotated_siblings(str(log), ("{path}.*",)) == [str(tmp_path / "app.log.1")]


def test_resume_leaves_out_a_copy_of_what_the_file_at_the_path_still_holds(tmp_path: Path) -> None:
    """Saved while empty, written, then copied (logrotate ``copy``, no truncate) while down: the copy
    holds what the file still has, so only the file is read."""
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    saved = _position(log, 0)
    log.write_bytes(b"one\ntwo\n")
    (tmp_path / "app.log.1").write_bytes(b"one\ntwo\n")
    os.utime(tmp_path / "app.log.1", ns=(saved.mtime_ns + 1, saved.mtime_ns + 1))
    assert plan(log, saved) == ([("app.log", 0)], True)


def test_resume_reads_the_copy_of_a_file_saved_while_empty(tmp_path: Path) -> None:
    """Saved while empty, written, then copytruncated and written again while down: the copy first."""
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    saved = _position(log, 0)
    (tmp_path / "app.log.1").write_bytes(b"one\ntwo\n")
    os.utime(tmp_path / "app.log.1", ns=(saved.mtime_ns + 1, saved.mtime_ns + 1))
    log.write_bytes(b"three\n")
    assert plan(log, saved) == ([("app.log.1", 0), ("app.log", 0)], True)


def test_a_file_born_after_a_generation_saved_while_empty_is_not_taken_for_it(tmp_path: Path) -> None:
    """Saved at the path while empty, then renamed away and gzipped while down: its inode number is
    free, and a file created since (renamed away in its turn) can get it. Nothing printed of the
    saved one confirms it by content, but the new file was born after the saved one's mtime, so
    it is not the saved generation (taken for it, it was read before an older generation whose
    mtime it ties: model seed 161, out of order)."""
    log = tmp_path / "app.log"
    log.write_bytes(b"")
    saved = _position(log, 0)
    os.utime(log, ns=(saved.mtime_ns, saved.mtime_ns))
    log.unlink()  # renamed and gzipped while down: the inode number is free
    (tmp_path / "app.log.3").write_bytes(b"one\n")  # the next generation, renamed away
    reused = tmp_path / "app.log.4"
    reused.write_bytes(b"two\n")  # the one after, renamed away too
    if files.birth_ns(str(reused), reused.stat().st_ino) is None:
        pytest.skip("no birth time on this file system")
    tick = saved.mtime_ns + 1_000_000_000  # both last written within one clock tick
    for name in ("app.log.3", "app.log.4"):
        os.utime(tmp_path / name, ns=(tick, tick))
    log.write_bytes(b"")
    # The ext4 inode allocator cannot be made to reuse a number: the saved position says, as the
    # checkpoint of a file with that number would, that it was app.log.4's, modified before it was born.
    st = reused.stat()
    saved = checkpoint.Position(**{**saved.__dict__, "dev": st.st_dev, "ino": st.st_ino})
    assert plan(log, saved) == ([("app.log.3", 0), ("app.log.4", 0), ("app.log", 0)], False)
