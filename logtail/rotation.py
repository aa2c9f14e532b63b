"""Pure decisions about what happened to a followed file, from stat results alone.

Nothing here opens or reads a file, so every case (rename, delete, truncate, retarget of
a symlink, reuse of an inode) is a row in a table test.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class FileId:
    """A file's identity for as long as it exists: what a rename keeps and a re-creation changes."""

    dev: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileId:
        return cls(st.st_dev, st.st_ino)


class Change(Enum):
    UNCHANGED = "unchanged"  # the path names the file being read; read on
    APPEARED = "appeared"  # a file is at the path and none was followed
    REPLACED = "replaced"  # rename, delete and re-create, symlink retargeted: another file is at the path
    TRUNCATED = "truncated"  # same file, but what was read is no longer there
    MISSING = "missing"  # nothing at the path (rotated away, not re-created yet)


def classify(
    followed: FileId | None,
    consumed: int,
    at_path: os.stat_result | None,
    window_intact: bool = True,
) -> Change:
    """What happened at a path, given the newest file followed there and how much of it was consumed.

    ``window_intact`` says whether the bytes just before ``consumed`` still read the same;
    a truncation followed by enough new writes keeps the size but not those bytes.
    """
    if at_path is None:
        return Change.MISSING
    if followed is None:
        return Change.APPEARED
    if FileId.of(at_path) != followed:
        return Change.REPLACED
    if at_path.st_size < consumed or not window_intact:
        return Change.TRUNCATED
    return Change.UNCHANGED


def retire_delay(
    next_has_data: bool, old_idle_for: float, rotate_wait: float, draining: bool, is_copy: bool = False
) -> float | None:
    """When a rotated-away file, read to its end, may be closed in favour of the next one.

    Returns None to keep waiting (the next file is still empty, so the writer may not have
    reopened yet and can still append to the old one), 0 to close it now, or the seconds
    to wait before asking again. A single writer appends to the new file only after its
    last write to the old one, so "the next has data" is the signal; ``rotate_wait`` covers
    several processes that reopen at different times. A copy left by copytruncate is
    written by nobody: it is closed as soon as it has been read.
    """
    if draining or is_copy:
        return 0.0
    if not next_has_data:
        return None
    return max(0.0, rotate_wait - old_idle_for)


def refusal(st: os.stat_result) -> str | None:
    """Why a file of this type must not be opened for following, or None for a regular file."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (reading it would block)"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device file"
    return "is not a regular file"


def inside(directory: str, target: str) -> bool:
    """Whether the resolved ``target`` lies inside the resolved ``directory``."""
    return os.path.commonpath([directory, target]) == directory
