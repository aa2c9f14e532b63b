"""Where reading starts: the offset for ``-n``, resume plans, and a file's other generations found by content.

A generation is one file that was, at some time, at a followed path: after a rename it
lives on under another name (``app.log.1``), after a copytruncate its content lives on in
a copy. Both are found among the path's siblings by identity (device and inode) or by
the bytes just before an offset.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from logtail import files
from logtail.config import StartAt
from logtail.identity import FileId

# How many bytes just before an offset identify the content read so far.
WINDOW = 256
_BLOCK = 64 * 1024
# Compressed rotations hold the same lines in another encoding: never read them as text.
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip", ".br", ".lzo")


def start_offset(fd: int, size: int, start: StartAt) -> int:
    """The offset of the first byte to print for ``-n``, as tail computes it."""
    if start.from_start:
        return _offset_of_line(fd, size, start.count)
    return _offset_of_last_lines(fd, size, start.count)


def _offset_of_line(fd: int, size: int, line: int) -> int:
    to_skip = line - 1
    offset = 0
    while to_skip > 0 and offset < size:
        block = os.pread(fd, _BLOCK, offset)
        if not block:
            break
        count = block.count(b"\n")
        if count < to_skip:
            to_skip -= count
            offset += len(block)
            continue
        pos = -1
        for _ in range(to_skip):
            pos = block.index(b"\n", pos + 1)
        return offset + pos + 1
    return offset if to_skip == 0 else size


def _offset_of_last_lines(fd: int, size: int, lines: int) -> int:
    if lines == 0 or size == 0:
        return size
    end = size
    if os.pread(fd, 1, size - 1) == b"\n":
        end -= 1  # the final newline ends the last line; it does not start another
    wanted = lines
    while end > 0:
        start = max(0, end - _BLOCK)
        block = os.pread(fd, end - start, start)
        pos = len(block)
        while wanted:
            pos = block.rfind(b"\n", 0, pos)
            if pos < 0:
                break
            wanted -= 1
        if not wanted:
            return start + pos + 1
        end = start
    return 0


def first_content(fd: int) -> tuple[int, bytes]:
    """Where a file's content starts and up to WINDOW bytes of it: past a leading run of NUL bytes.

    A writer without O_APPEND writes on at its old offset after a truncation, so the file starts
    with a hole of NULs, and so does every later content of that file (and every copy of one).
    NULs tell no content from another: the bytes past them do, at the offset where they are.
    A file of NULs only has no content yet: its size and no bytes.
    """
    block = os.pread(fd, WINDOW, 0)
    if block[:1] != b"\x00":
        return 0, block
    start = 0
    while True:
        skipped = len(block) - len(block.lstrip(b"\x00"))
        if skipped < len(block):
            at = start + skipped
            return at, os.pread(fd, WINDOW, at)
        start += len(block)
        start = _next_data(fd, start)
        block = os.pread(fd, _BLOCK, start)
        if not block:
            return start, b""


def _next_data(fd: int, offset: int) -> int:
    """Where data may start again at or after ``offset``: a sparse hole is skipped, not read."""
    try:
        here = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return offset
    try:
        return os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        # ENXIO: only a hole from there to the end; other errors: no SEEK_DATA here, so read on.
        return os.fstat(fd).st_size if exc.errno == errno.ENXIO else offset
    finally:
        os.lseek(fd, here, os.SEEK_SET)  # reads are positioned: the descriptor's offset stays


def digest(window: bytes) -> str:
    return hashlib.sha256(window).hexdigest()


def window_before(fd: int, offset: int) -> bytes:
    """The up to WINDOW bytes just before ``offset`` as they are in the file now."""
    start = max(0, offset - WINDOW)
    return os.pread(fd, offset - start, start)


def rotated_siblings(path: str, patterns: Iterable[str]) -> list[str]:
    """Names where rotated generations of ``path`` may live, compressed ones left out.

    In a pattern, ``{path}`` is the followed path and ``{dir}`` its directory.
    """
    found: set[str] = set()
    directory = glob.escape(os.path.dirname(path))
    for pattern in patterns:
        for candidate in glob.glob(pattern.replace("{path}", glob.escape(path)).replace("{dir}", directory)):
            if candidate != path and not candidate.lower().endswith(COMPRESSED):
                found.add(candidate)
    return sorted(found)


@dataclass(frozen=True)
class Found:
    path: str
    id: FileId
    mtime_ns: int
    size: int
    ctime_ns: int = 0
    birth_ns: int | None = None  # asked only where an order depends on it (``resume``)


def stat_regular(path: str) -> Found | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Found(path, FileId.of(st), st.st_mtime_ns, st.st_size, st.st_ctime_ns)


def holds_window(path: str, offset: int, window_sha: str, window_len: int) -> bool:
    """Whether the file at ``path`` has, just before ``offset``, the bytes whose digest is given."""
    try:
        fd, st = files.open_regular(path, None)
    except (OSError, files.Refused):
        return False
    try:
        if st.st_size < offset or offset < window_len:
            return False
        return digest(os.pread(fd, window_len, offset - window_len)) == window_sha
    except OSError:
        return False
    finally:
        os.close(fd)


def find_copy(path: str, patterns: Iterable[str], offset: int, window: bytes, exclude: FileId) -> str | None:
    """A rotated copy of the file at ``path`` that still holds what came just before ``offset``.

    After a copytruncate the bytes that logtail had not read yet are only in the copy.
    """
    if offset == 0 or not window:
        return None
    sha = digest(window)
    for candidate in rotated_siblings(path, patterns):
        found = stat_regular(candidate)
        if found is None or found.id == exclude or found.size < offset:
            continue
        if holds_window(candidate, offset, sha, len(window)):
            return candidate
    return None


def newer_generations(
    path: str,
    patterns: Iterable[str],
    after_mtime_ns: int,
    exclude: set[FileId],
    moved_to: Iterable[str] = (),
) -> list[Found]:
    """Rotated generations written after a given modification time, oldest first.

    A single writer writes each generation after its last write to the one before, so
    modification times order them; the file now at ``path`` and ``exclude`` are left out.
    """
    current = stat_regular(path)
    if current is not None:
        exclude = exclude | {current.id}
    names = rotated_siblings(path, patterns)
    names += [name for name in moved_to if name not in names and os.path.abspath(name) != path]
    found = [f for f in map(stat_regular, names) if f is not None]
    unique: dict[FileId, Found] = {}
    for f in found:
        unique.setdefault(f.id, f)  # a file under two names, once
    return newer(unique.values(), after_mtime_ns, exclude)


def by_identity(path: str, places: Iterable[str], file_id: FileId) -> list[Found]:
    """Where the file ``file_id`` is now: at one of ``places``, or anywhere in the path's directory."""
    for name in places:
        found = stat_regular(name)
        if found is not None and found.id == file_id:
            return [found]
    return _by_inode(os.path.dirname(path), file_id)


def newer(found: Iterable[Found], after_mtime_ns: int, exclude: set[FileId]) -> list[Found]:
    """The files of ``found`` written since ``after_mtime_ns``, ``exclude`` left out, oldest first."""
    # ">=": a generation written within the same clock tick as the last write to the one
    # before it is newer all the same; identities already followed are excluded anyway.
    # The sort is stable: within one tick, the order found (rename events' order) stands.
    return sorted(
        (f for f in found if f.mtime_ns >= after_mtime_ns and f.id not in exclude), key=lambda f: f.mtime_ns
    )


class Saved(Protocol):
    """A generation as a checkpoint recorded it (``checkpoint.Position``)."""

    @property
    def id(self) -> FileId: ...
    @property
    def offset(self) -> int: ...
    @property
    def window_sha(self) -> str: ...
    @property
    def window_len(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def done(self) -> bool: ...
    @property
    def head_sha(self) -> str: ...
    @property
    def head_len(self) -> int: ...
    @property
    def head_at(self) -> int: ...


@dataclass(frozen=True)
class Step:
    """One file to read, from ``offset``, while resuming; ``id`` guards against a swap before opening.

    A ``done`` step is a file the checkpoint says was read to its end: it is not read, only
    known again (so a listing never takes it for a newer generation).
    """

    path: str
    id: FileId
    offset: int
    done: bool = False


@dataclass(frozen=True)
class Resume:
    """Start from a checkpoint: these files, in order, each from its offset."""

    steps: tuple[Step, ...]


Start = StartAt | Resume | None  # None: from the first byte (a file that appeared later)


def first_start(*, at_start: bool, resuming: bool, exists: bool, start_at: StartAt) -> StartAt | None:
    """Where to start a path with no saved position: ``-n`` is for files present at start only.

    A file that appears later is read from its first byte; so is one that is missing from a
    checkpoint in use (it appeared while logtail was down).
    """
    return start_at if at_start and not resuming and exists else None


def plan_resume(
    current: Found | None,
    siblings: list[Found],
    saved: Sequence[Saved],
    located: Sequence[Found | None],
    done: Sequence[Found] = (),
) -> tuple[list[Step], bool]:
    """The files to read, in order, to resume a path at its checkpointed generations.

    ``saved`` are the generations the checkpoint recorded, oldest first, and ``located``
    where each is now (found by identity and confirmed by content, or for the first one a
    copytruncate's copy holding its bytes), None where it is gone. ``current`` is the file
    at the path now and ``siblings`` its rotated generations. The plan: every saved
    generation that is still there, from its offset; then every rotated generation written
    since the last of them (by modification time); then the file at the path from its first
    byte. ``done`` are the files the checkpoint says were read to their end, found again: they
    are never newer generations (a copy whose mtime ties with its original's truncation), and
    come first as ``done`` steps. Returns the steps and whether every saved generation was found.
    """
    steps: list[Step] = [Step(f.path, f.id, f.size, done=True) for f in done]
    # A generation saved at offset 0 while it was still empty says nothing of its content: it
    # goes where its modification time puts it among the files written since (a copy made of
    # it before it was written again holds what it had first).
    floating: list[Found] = []
    for position, where in zip(saved, located, strict=True):
        if where is not None and all(step.id != where.id or step.done for step in steps):
            steps = [step for step in steps if step.id != where.id]  # still to read after all
            at_path = current is not None and where.id == current.id  # stays last: the newest
            if position.offset == 0 and not position.head_len and not at_path:
                floating.append(where)
            else:
                steps.append(Step(where.path, where.id, position.offset))
    floating.sort(key=lambda f: f.mtime_ns)
    taken = {step.id for step in steps if not step.done}
    all_found = all(where is not None for where in located)
    since = max((position.mtime_ns for position in saved), default=0)
    exclude = {step.id for step in steps} | ({current.id} if current is not None else set())
    if current is not None and current.id in taken:
        # The file at the path is one we know: no generation came after it. But saved while empty,
        # it may have been written and copytruncated while logtail was down: then only a copy made
        # since holds what it had, and that copy comes before what it holds now.
        at = next(k for k, step in enumerate(steps) if step.id == current.id and not step.done)
        empty_since = [
            position.mtime_ns
            for position, where in zip(saved, located, strict=True)
            if where is not None and where.id == current.id and position.offset == 0 and not position.head_len
        ]
        copies = newer(siblings, empty_since[0], exclude | {f.id for f in floating}) if empty_since else []
        ahead = _tied_copies_first(sorted([*floating, *copies], key=lambda f: f.mtime_ns), floating)
        steps[at:at] = [Step(f.path, f.id, 0) for f in ahead]
        return steps, all_found
    written_since = newer(siblings, since, exclude | {f.id for f in floating})
    later = _tied_copies_first(sorted([*floating, *written_since], key=lambda f: f.mtime_ns), floating)
    steps.extend(Step(f.path, f.id, 0) for f in later)
    if current is not None:
        steps.append(Step(current.path, current.id, 0))
    return steps, all_found


def _tied_copies_first(ordered: list[Found], floating: list[Found]) -> list[Found]:
    """``ordered`` (by modification time), with a file found since that ties with a generation saved
    while empty moved ahead of it when it was born before that generation last changed.

    Timestamps come in clock ticks (a few ms): a copytruncate of the saved file, its writes since and
    its rename away, all while logtail was down, can leave the copy and the file with one mtime (model
    seeds 360, 374, 399: the file's new lines were read before the copy of what it had held). The
    copy was made before the truncation that followed it, which changed the file; a generation
    renamed away after the saved one was created after that rename, which is its last change unless
    its writer wrote into it late, after the new file was created, all within the same tick.
    """
    drifting = {f.id for f in floating}
    out: list[Found] = []
    for f in ordered:
        at = len(out)
        if f.id not in drifting and f.birth_ns is not None:
            while (
                at
                and out[at - 1].id in drifting
                and out[at - 1].mtime_ns == f.mtime_ns
                and f.birth_ns < out[at - 1].ctime_ns
            ):
                at -= 1
        out.insert(at, f)
    return out


def resume(path: str, patterns: Iterable[str], saved: Sequence[Saved]) -> tuple[list[Step], bool]:
    """``plan_resume`` over what is on disk now: each saved generation found wherever it went."""
    current = stat_regular(path)
    siblings = [
        replace(f, birth_ns=files.birth_ns(f.path, f.id.ino))
        for f in map(stat_regular, rotated_siblings(path, patterns))
        if f is not None
    ]
    live = [position for position in saved if not position.done]
    # A copytruncate while down cuts the file at the path: the last saved generation (the one that
    # was at the path), or the first (a file renamed away since may have been copied before that).
    located = [
        _locate(path, current, siblings, position, may_be_copied=i in (0, len(live) - 1))
        for i, position in enumerate(live)
    ]
    # A sibling that holds a saved generation's bytes just before its offset is a copy of what was
    # printed (copytruncate while logtail was down), not a generation written since: read from its
    # first byte it would repeat those lines. Where it stands for the saved file it is a step already.
    siblings = [
        f
        for f in siblings
        if not any(
            position.offset
            and holds_window(f.path, position.offset, position.window_sha, position.window_len)
            for position in live
        )
        or any(where is not None and where.id == f.id for where in located)
    ]
    head = _first_content(current.path) if current is not None else None
    if current is not None and head is not None:
        # A sibling no longer than the file at the path that starts like it does now is a copy of
        # what it still holds (logrotate ``copy``, or a copytruncate caught before its truncate):
        # read as well, its lines would be printed twice. Past a leading hole of NULs, and at the
        # same offset: a copy of older content of a writer without O_APPEND starts with NULs too.
        siblings = [
            f
            for f in siblings
            if not (f.size <= current.size and _starts_as(_first_content(f.path), head))
            or any(where is not None and where.id == f.id for where in located)
        ]
    done = [
        _locate(path, current, siblings, position, may_be_copied=False) for position in saved if position.done
    ]
    return plan_resume(current, siblings, live, located, [f for f in done if f is not None])


def _locate(
    path: str, current: Found | None, siblings: list[Found], saved: Saved, may_be_copied: bool
) -> Found | None:
    """Where the saved generation is now: by identity, confirmed by the bytes before its offset.

    Looked for at its last known name, at the path, among the rotated names, then anywhere
    in the path's directory and in the directory of its last name (a symlink's old target,
    a rename the patterns do not know). A generation saved at offset 0 has no bytes before
    the offset to confirm it, so it is only taken where a generation of this path can be: by
    name, and only while it still starts with the first bytes it had when saved. The first
    one may also have been copied and truncated while logtail was down: a copy that holds its
    bytes (before the offset, or its first bytes at offset 0) stands for it. So may the last one
    (``may_be_copied`` says which): it was at the path when saved, whatever happened to the
    older ones (deleted, their bytes gone), and a copytruncate cuts the file at the path.
    """
    by_name = [f for f in ([stat_regular(saved.name)] if saved.name else []) if f is not None]
    by_name += ([current] if current else []) + siblings

    def holds(f: Found) -> bool:
        if saved.offset:
            return holds_window(f.path, saved.offset, saved.window_sha, saved.window_len)
        # Nothing printed of it yet: it still starts as it did, or it was truncated since and a
        # copy that starts so holds what it had (copytruncate while logtail was down).
        # The first bytes are past a leading hole of NULs, where they were (``first_content``).
        mark = saved.head_at + saved.head_len
        return not saved.head_len or holds_window(f.path, mark, saved.head_sha, saved.head_len)

    for found in by_name:
        if found.id == saved.id and holds(found) and not _reused(found, saved):
            return found
    if saved.offset == 0:
        # A copy starting with its first bytes stands for it, once it no longer starts so itself.
        known = may_be_copied and saved.head_len
        return next((f for f in by_name if f.id != saved.id and holds(f)), None) if known else None
    directories = {os.path.dirname(path)} | ({os.path.dirname(saved.name)} if saved.name else set())
    for directory in sorted(directories):
        for found in _by_inode(directory, saved.id):
            if holds(found):
                return found
    if may_be_copied:
        return next((f for f in by_name if f.id != saved.id and holds(f)), None)
    return None


def _reused(found: Found, saved: Saved) -> bool:
    """Whether ``found``, with the saved generation's identity, is another file with its inode number.

    A generation saved while empty (no offset, no first bytes) has no content to confirm it by:
    gone (deleted, gzipped) while logtail was down, its inode number can be given to a file
    created since, which is then taken for it and put where the saved one was (model seed 161:
    a later generation read before an earlier one whose mtime it ties). A file is never born
    after its own modification time as saved (short of a clock set back or ``touch -d``), so one
    born after it is another file. Files with content to confirm them are not asked.
    """
    if saved.offset or saved.head_len:
        return False
    born = files.birth_ns(found.path, found.id.ino)
    return born is not None and born > saved.mtime_ns


def _first_content(path: str) -> tuple[int, bytes] | None:
    """``first_content`` of the regular file at ``path`` (None if it cannot be read)."""
    try:
        fd, _ = files.open_regular(path, None)
    except (OSError, files.Refused):
        return None
    try:
        return first_content(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def _starts_as(sibling: tuple[int, bytes] | None, current: tuple[int, bytes]) -> bool:
    """Whether a sibling's content (``first_content``) starts where and as the current file's does."""
    return sibling is not None and sibling[0] == current[0] and current[1].startswith(sibling[1])


def _by_inode(directory: str, file_id: FileId) -> list[Found]:
    """Regular files in ``directory`` with identity ``file_id`` (a listing compares inode numbers only)."""
    try:
        with os.scandir(directory) as entries:
            names = [entry.path for entry in entries if entry.inode() == file_id.ino]
    except OSError:
        return []
    return [f for f in map(stat_regular, names) if f is not None and f.id == file_id]
