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


# statx(2) (linux/stat.h): the mask bit for the birth time, and where struct statx keeps it.
_STATX_BTIME = 0x800
_AT_FDCWD = -100
_STATX_SIZE = 256
_STATX_INO_AT = 32  # __u64 stx_ino
_STATX_BTIME_AT = 80  # struct statx_timestamp stx_btime: __s64 tv_sec, __u32 tv_nsec


def birth_ns(path: str, ino: int) -> int | None:
    """When the file at ``path`` (inode ``ino``) was created, in ns; None where that is not known.

    An inode number is reused once its file is gone: a file born after a time some file with
    its number was seen is another file. Python's ``os.stat`` has no birth time on Linux, so
    this asks statx(2) through ctypes (imported here: only a resume needs it). None when the
    C library has no statx, the file system keeps no birth time, or the file changed since.
    """
    import ctypes
    import struct

    try:
        statx = ctypes.CDLL(None, use_errno=True).statx
    except (OSError, AttributeError):
        return None
    statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    if statx(_AT_FDCWD, os.fsencode(path), 0, _STATX_BTIME, buf) != 0:
        return None
    (mask,) = struct.unpack_from("=I", buf, 0)
    (found_ino,) = struct.unpack_from("=Q", buf, _STATX_INO_AT)
    if not mask & _STATX_BTIME or found_ino != ino:
        return None
    seconds, nanoseconds = struct.unpack_from("=qI", buf, _STATX_BTIME_AT)
    return int(seconds) * 1_000_000_000 + int(nanoseconds)
