"""One file that is or was at a followed path, open, with what has been read and printed of it.

A path can be backed by several files at once: after a rename or a delete the old file
is still written until the application reopens, while a new file already sits at the
path. Each is a ``Generation``; the follower reads them strictly in order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import aiofiles

from logtail import files, locate
from logtail.framing import LineFramer
from logtail.identity import FileId

# Up to this much unread data is read on the event loop: a few lines just written are in
# the page cache, and a hop to a worker thread would add latency to every line.
INLINE_READ = 64 * 1024


@dataclass(eq=False, slots=True)
class Generation:
    """One open file of a followed path, with what has been read of it."""

    fd: int
    id: FileId
    offset: int  # next byte to read; everything before it went through the framer
    framer: LineFramer
    printed: int = 0  # everything before this offset is on stdout (what a checkpoint may record)
    window: bytes = b""  # the last bytes before ``offset``, to notice a rewrite in place
    # While nothing is read yet: the first bytes as they were when this file was queued, so a
    # truncation before we get to it (copytruncate again, while older copies are read) shows.
    head: bytes = b""
    is_copy: bool = False  # the rest of a copytruncated file, in the copy logrotate made
    _async: Any = None  # aiofiles' wrapper, made on the first large read

    @classmethod
    def open_at(cls, fd: int, file_id: FileId, offset: int, max_line_bytes: int) -> Generation:
        """A generation of the open file ``fd`` whose bytes before ``offset`` count as printed."""
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        gen = cls(fd, file_id, offset, LineFramer(max_line_bytes), printed=offset)
        if offset:
            gen.window = locate.window_before(fd, offset)
        else:
            gen.head = os.pread(fd, locate.WINDOW, 0)
        return gen

    async def read(self, size: int) -> bytes:
        if self.size() - self.offset <= INLINE_READ:
            return os.read(self.fd, size)
        if self._async is None:
            self._async = await aiofiles.open(self.fd, "rb", buffering=0, closefd=False)
        data: bytes = await self._async.read(size)
        return data

    def note_read(self, data: bytes) -> None:
        self.offset += len(data)
        if len(data) >= locate.WINDOW:
            self.window = data[-locate.WINDOW :]
        else:
            self.window = (self.window + data)[-locate.WINDOW :]

    def rewind(self, max_line_bytes: int) -> None:
        """Start again from the first byte (the file was truncated)."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.framer = LineFramer(max_line_bytes)
        self.offset = self.printed = 0
        self.window = b""
        self.head = os.pread(self.fd, locate.WINDOW, 0)

    def intact(self) -> bool:
        """Whether the bytes that identify what was (or will be) read here are still in place."""
        try:
            if self.offset:
                return not self.window or locate.window_before(self.fd, self.offset).endswith(self.window)
            return not self.head or os.pread(self.fd, len(self.head), 0) == self.head
        except OSError:
            return True

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def first_bytes(self) -> bytes:
        return os.pread(self.fd, locate.WINDOW, 0)

    def unprinted(self) -> int:
        """Bytes on disk not printed yet."""
        return max(0, self.size() - self.printed)

    def snapshot(self) -> Snapshot:
        """Where printing stopped in this file, as a checkpoint records it."""
        return Snapshot(
            self.id, self.printed, locate.window_before(self.fd, self.printed), os.fstat(self.fd).st_mtime_ns
        )

    def close(self) -> None:
        files.close_quietly(self.fd)


@dataclass(frozen=True)
class Snapshot:
    """A position that a checkpoint can record: everything before ``offset`` of file ``id`` is printed."""

    id: FileId
    offset: int
    window: bytes  # the bytes just before ``offset``
    mtime_ns: int
