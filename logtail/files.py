"""File-type and path policy: only regular files, and symlinks only where they stay in their directory.

The volume logtail reads is written by another container; a FIFO would block the reader,
``/dev/zero`` would flood stdout, and a link to a secret would ship it to the log backend.
"""

from __future__ import annotations

import contextlib
import os
import stat


class Refused(Exception):
    """Raised when a path exists but must not (or cannot) be followed; the message says why."""


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


def open_regular(path: str, root: str | None) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only; return the descriptor and its stat. Raise FileNotFoundError or Refused.

    ``root`` is the directory the user named (the parent of a path, the fixed part of a
    glob): the file must resolve to somewhere below it, so neither a symlinked file nor a
    symlinked directory that the application created can lead outside. None allows anything.

    The type is checked before opening (so a device's open has no side effects) and again on
    the descriptor (so a swap between the two checks is caught). ``O_NONBLOCK`` makes a FIFO
    swapped in at the last moment open without blocking; it has no effect on regular files.
    """
    try:
        st = os.stat(path)
    except PermissionError as exc:
        raise Refused(f"cannot be read: {exc.strerror}") from None
    except NotADirectoryError:
        raise FileNotFoundError(path) from None
    reason = refusal(st)
    if reason:
        raise Refused(reason)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except PermissionError as exc:
        raise Refused(f"cannot be read: {exc.strerror}") from None
    except IsADirectoryError:
        raise Refused("is a directory") from None
    try:
        st = os.fstat(fd)
        reason = refusal(st)
        if reason:
            raise Refused(reason)
        if root is not None:
            _check_stays_inside(path, root, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _check_stays_inside(path: str, root: str, fd: int) -> None:
    directory = os.path.realpath(root)
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = os.path.realpath(path)  # no /proc: the best we can do without it
    if not inside(directory, target):
        raise Refused(
            f"is a symlink to {target}, outside {directory} (allow with --follow-symlinks-anywhere)"
        )


def close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
