"""Pure decisions about what happened to a followed file, from stat results alone.

Nothing here opens or reads a file, so every case (rename, delete, truncate, retarget of
a symlink, reuse of an inode) is a row in a table test.
"""

from __future__ import annotations

import os
from enum import Enum

from logtail.identity import FileId


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


def interpret(change: Change, glob_member: bool, read_elsewhere: bool) -> Change:
    """What a look at the path means for its follower, beyond what the stat results say.

    A glob that also matches rotated names (``*.log*``) sees ``app.log.1`` appear: when that
    file is the one another follower reads (or read) as its old generation, it is not this
    follower's to print again, so the path counts as empty.
    """
    if change in (Change.APPEARED, Change.REPLACED) and glob_member and read_elsewhere:
        return Change.MISSING
    return change


def glob_member_ending(missing: bool, open_files: int, idle_for: float, rotate_wait: float) -> float | None:
    """When the follower of a glob match that went away is finished.

    Returns None while it is not (the file is still at its path, or older generations are
    still open), 0 to finish now (closing the one file left, if any), or the seconds to
    wait: a file that went away is closed once it has been quiet for ``rotate_wait``.
    """
    if not missing or open_files > 1:
        return None
    if open_files == 0:
        return 0.0
    return retire_delay(True, idle_for, rotate_wait, False)
