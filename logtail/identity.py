"""Which file is which: a file's identity, and the registry of files read under any name.

Names are where files happen to be when someone looks; a file keeps its device and inode
across renames. The registry knows, across all followers, which files are open for
reading now and which were read to their end and closed, so a glob that also matches
rotated names never prints a generation a second time.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass

from logtail import files

# How many closed files to remember, so a glob that also matches rotated names does not
# print a rotated generation a second time.
RETIRED_MEMORY = 4096
# How many first bytes of a closed file are kept to recognise it: an inode number can be
# reused by a new file, which then has other bytes.
HEAD = 256


@dataclass(frozen=True, slots=True)
class FileId:
    """A file's identity for as long as it exists: what a rename keeps and a re-creation changes."""

    dev: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileId:
        return cls(st.st_dev, st.st_ino)


class Registry:
    """Files open for reading (by which followed path) and files already read and closed."""

    def __init__(self, memory: int = RETIRED_MEMORY) -> None:
        self._open: dict[FileId, Counter[str]] = {}
        self._retired: OrderedDict[FileId, tuple[int, bytes]] = OrderedDict()
        self._memory = memory
        self.grown = asyncio.Event()  # a file was opened for a path: the checkpoint should know it soon

    def opened(self, file_id: FileId, path: str) -> None:
        """The follower of ``path`` now reads the file ``file_id``."""
        self._open.setdefault(file_id, Counter())[path] += 1
        self.grown.set()

    def closed(self, file_id: FileId, path: str) -> None:
        """The follower of ``path`` no longer reads ``file_id`` (read to its end, or gave it up)."""
        readers = self._open.get(file_id)
        if readers is None:
            return
        readers[path] -= 1
        if readers[path] <= 0:
            del readers[path]
        if not readers:
            del self._open[file_id]

    def retired(self, file_id: FileId, at: int, head: bytes) -> None:
        """``file_id`` was read to its end; ``head`` (its first bytes, ``at`` bytes in: past a leading
        hole of NULs, which a file with another content can start with too) tells a reused inode from it."""
        if not head:
            return
        self._retired[file_id] = at, head
        self._retired.move_to_end(file_id)
        while len(self._retired) > self._memory:
            self._retired.popitem(last=False)

    def was_read(self, file_id: FileId, path: str) -> bool:
        """Whether the file ``file_id`` now at ``path`` was read to its end and closed by any follower."""
        head = self._retired.get(file_id)
        return head is not None and _starts_with(path, *head)

    def read_elsewhere(self, path: str, file_id: FileId) -> bool:
        """Whether the file ``file_id`` now at ``path`` is, or was, read by a follower of another path."""
        readers = self._open.get(file_id)
        if readers and any(reader != path for reader in readers):
            return True
        return self.was_read(file_id, path)


def _starts_with(path: str, at: int, head: bytes) -> bool:
    """Whether the file at ``path`` has ``head`` ``at`` bytes in: a reused inode number has other bytes."""
    try:
        fd, _ = files.open_regular(path, None)  # never a blocking open: it may be a FIFO by now
    except (OSError, files.Refused):
        return False
    try:
        return os.pread(fd, len(head), at) == head
    except OSError:
        return False
    finally:
        os.close(fd)
