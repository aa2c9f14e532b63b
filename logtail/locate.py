"""Where reading starts: the offset for ``-n``, resume plans, and a file's other generations found by content.

A generation is one file that was, at some time, at a followed path: after a rename it
lives on under another name (``app.log.1``), after a copytruncate its content lives on in
a copy. Both are found among the path's siblings by identity (device and inode) or by
the bytes just before an offset.
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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


def digest(window: bytes) -> str:
    return hashlib.sha256(window).hexdigest()


def window_before(fd: int, offset: int) -> bytes:
    """The up to WINDOW bytes just before ``offset`` as they are in the file now."""
    start = max(0, offset - WINDOW)
    return os.pread(fd, offset - start, start)


def rotated_siblings(path: str, patterns: Iterable[str]) -> list[str]:
    """Names where rotated generations of ``path`` may live, compressed ones left out."""
    found: set[str] = set()
    for pattern in patterns:
        for candidate in glob.glob(pattern.replace("{path}", glob.escape(path))):
            if candidate != path and not candidate.lower().endswith(COMPRESSED):
                found.add(candidate)
    return sorted(found)


@dataclass(frozen=True)
class Found:
    path: str
    id: FileId
    mtime_ns: int
    size: int


def _stat_regular(path: str) -> Found | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return Found(path, FileId.of(st), st.st_mtime_ns, st.st_size)


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
        found = _stat_regular(candidate)
        if found is None or found.id == exclude or found.size < offset:
            continue
        if holds_window(candidate, offset, sha, len(window)):
            return candidate
    return None


def newer_generations(
    path: str, patterns: Iterable[str], after_mtime_ns: int, exclude: set[FileId]
) -> list[Found]:
    """Rotated generations written after a given modification time, oldest first.

    A single writer writes each generation after its last write to the one before, so
    modification times order them; the file now at ``path`` and ``exclude`` are left out.
    """
    current = _stat_regular(path)
    if current is not None:
        exclude = exclude | {current.id}
    found = [f for f in map(_stat_regular, rotated_siblings(path, patterns)) if f is not None]
    return newer(found, after_mtime_ns, exclude)


def newer(found: Iterable[Found], after_mtime_ns: int, exclude: set[FileId]) -> list[Found]:
    """The files of ``found`` written since ``after_mtime_ns``, ``exclude`` left out, oldest first."""
    # ">=": a generation written within the same clock tick as the last write to the one
    # before it is newer all the same; identities already followed are excluded anyway.
    return sorted(
        (f for f in found if f.mtime_ns >= after_mtime_ns and f.id not in exclude), key=lambda f: f.mtime_ns
    )


@dataclass(frozen=True)
class Step:
    """One file to read, from ``offset``, while resuming; ``id`` guards against a swap before opening."""

    path: str
    id: FileId
    offset: int


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
    saved: FileId,
    offset: int,
    mtime_ns: int,
    holds: Callable[[Found], bool],
) -> tuple[list[Step], bool]:
    """The files to read, in order, to resume a path at a checkpointed position.

    ``current`` is the file at the path now, ``siblings`` its rotated generations, and
    ``holds(f)`` tells whether ``f`` has, just before ``offset``, the bytes that were
    there when the checkpoint was saved. Finds the generation that was being read (same
    identity and bytes; or, after a copytruncate, a copy with those bytes), then every
    rotated generation written after the checkpoint (by modification time), then the file
    at the path from its first byte. Returns the steps and whether the checkpointed
    generation was found.
    """
    candidates = ([current] if current else []) + siblings

    def holding(f: Found) -> bool:
        return offset == 0 or holds(f)

    origin = next((f for f in candidates if f.id == saved and holding(f)), None)
    if origin is None and offset > 0:
        origin = next((f for f in candidates if holding(f)), None)
    if origin is not None and current is not None and origin.id == current.id:
        return [Step(current.path, current.id, offset)], True  # not rotated while logtail was down
    steps = [Step(origin.path, origin.id, offset)] if origin is not None else []
    exclude = {origin.id} if origin is not None else set()
    if current is not None:
        exclude.add(current.id)
    steps.extend(Step(f.path, f.id, 0) for f in newer(siblings, mtime_ns, exclude))
    if current is not None:
        steps.append(Step(current.path, current.id, 0))
    return steps, origin is not None


def resume(
    path: str,
    patterns: Iterable[str],
    saved: FileId,
    offset: int,
    window_sha: str,
    window_len: int,
    mtime_ns: int,
) -> tuple[list[Step], bool]:
    """``plan_resume`` over what is on disk now at ``path`` and its rotated names."""
    current = _stat_regular(path)
    siblings = [f for f in map(_stat_regular, rotated_siblings(path, patterns)) if f is not None]
    return plan_resume(
        current,
        siblings,
        saved,
        offset,
        mtime_ns,
        lambda f: holds_window(f.path, offset, window_sha, window_len),
    )
