"""One file that is or was at a followed path, open, with what has been read and printed of it.

A path can be backed by several files at once: after a rename or a delete the old file
is still written until the application reopens, while a new file already sits at the
path. Each is a ``Generation``; the follower reads them strictly in order.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from logtail import files, locate
from logtail.framing import LineFramer
from logtail.identity import FileId
from logtail.multiline import Grouper

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
    # Where ``head`` starts: past a leading hole of NUL bytes, which a writer without O_APPEND
    # leaves after a truncation and every later content of the file starts with as well.
    head_at: int = 0
    is_copy: bool = False  # the rest of a copytruncated file, in the copy logrotate made
    from_path: bool = False  # opened at the followed path (not found under another name)
    seen_size: int = 0  # the file's size when last looked at: bytes up to it were known to exist
    queued_ns: int = 0  # its modification time when it was queued (nothing read yet)
    started: bool = False  # reading it has begun (checks made when a queued file comes up are done)
    cut_short: bool = False  # a read found it truncated under the read offset: the follower must see to it
    rank: int | None = None  # its place in the order of renames away from the path, once known
    grouper: Grouper | None = None  # --multiline: lines framed, not yet given out as a record
    last_data: float = 0.0  # monotonic time of the last read that returned bytes

    @classmethod
    def open_at(cls, fd: int, file_id: FileId, offset: int, max_line_bytes: int) -> Generation:
        """A generation of the open file ``fd`` whose bytes before ``offset`` count as printed."""
        os.lseek(fd, offset, os.SEEK_SET)
        gen = cls(fd, file_id, offset, LineFramer(max_line_bytes), printed=offset)
        if offset:
            gen.window = locate.window_before(fd, offset)
        else:
            gen.head_at, gen.head = locate.first_content(fd)
        st = os.fstat(fd)
        gen.seen_size, gen.queued_ns = st.st_size, st.st_mtime_ns
        return gen

    async def read(self, size: int) -> bytes:
        """The next bytes, or b"" at the end, or when the file was cut short under the read offset.

        Truncation is looked for at every read, not only when the path is looked at: a file
        truncated and refilled past the offset in the middle of a large catch-up would
        otherwise go on at the old offset in new content. A large read is checked before and
        after (the bytes before the offset still in place), so a truncation between the two
        never lets a chunk of new content through as if it followed the old.
        """
        size_now = self.size()
        if size_now < self.offset or (not self.offset and size_now < self.head_at + len(self.head)):
            # Shorter than what was read, or, nothing read yet, than the first bytes it had
            # when it was queued: emptied before we got to it (copytruncated), not just quiet.
            self.cut_short = True
            return b""
        self.seen_size = max(self.seen_size, size_now)
        unread = size_now - self.offset
        if unread <= INLINE_READ:
            # A few lines just written are in the page cache: reading them here takes
            # microseconds, a hop to a worker thread would add latency to every line.
            if not unread:
                return b""
            # The whole window is read again, not just its last bytes: log lines end alike
            # (padding, a closing brace), and a file truncated and refilled past the offset
            # with lines of the same length shows only in their first bytes.
            data = self._read_inline(min(size, unread), self.window if self.offset else b"")
            if data is None:
                self.cut_short = True
                return b""
            return data
        if not self.intact():
            self.cut_short = True
            return b""
        data = await asyncio.to_thread(os.pread, self.fd, size, self.offset)
        if not self.intact():
            self.cut_short = True  # truncated while the chunk was read: it may be new content, not ours
            return b""
        return data

    def read_appended(self, limit: int) -> bytes | None:
        """What was appended since the last read, if it is at most ``limit`` bytes and the file
        was not cut short; None (nothing read) otherwise, for the follower to see to.

        Only for a file read from already: the bytes before the offset are read again even
        when nothing is new, so a truncation refilled up to the offset exactly shows too.
        """
        size_now = self.size()
        unread = size_now - self.offset
        if unread < 0 or unread > limit or not self.offset:
            return None
        self.seen_size = max(self.seen_size, size_now)
        # The whole window, as a look at the path compares it (intact()): this read stands in
        # for that look, and a file truncated and refilled to the same size with lines that
        # differ only in their first bytes has the same last 32 bytes.
        return self._read_inline(unread, self.window)

    def _read_inline(self, size: int, known: bytes) -> bytes | None:
        """The next ``size`` bytes, from the page cache, or None if the file was cut short.

        The read starts ``len(known)`` bytes early, so the same call tells whether the bytes
        before the offset are still ``known``. It asks for no more than is there: a buffer of
        the full chunk size would be allocated (and mapped) for every line.
        """
        data = os.pread(self.fd, size + len(known), self.offset - len(known))
        if not data.startswith(known):
            return None
        data = data[len(known) :]
        if self.offset <= self.head_at and not agrees(data, self.head, self.head_at - self.offset):
            return None  # nothing read past the NULs yet: the bytes past them say whose content it is
        return data

    def note_read(self, data: bytes) -> None:
        self.offset += len(data)
        # Reads are positioned (pread); the descriptor's own offset is kept in step anyway, so
        # /proc/PID/fdinfo shows how far logtail has read each file.
        os.lseek(self.fd, self.offset, os.SEEK_SET)
        if len(data) >= locate.WINDOW:
            self.window = data[-locate.WINDOW :]
        else:
            self.window = (self.window + data)[-locate.WINDOW :]

    def rewind(self, max_line_bytes: int) -> None:
        """Start again from the first byte (the file was truncated)."""
        self.framer = LineFramer(max_line_bytes)
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.offset = self.printed = self.seen_size = 0
        self.window = b""
        self.cut_short = False
        # Copies made before this are not its own. Taken before the first bytes, never after: a
        # copy made in between, of content written before them, is not older than this then.
        self.queued_ns = os.fstat(self.fd).st_mtime_ns
        self.head_at, self.head = locate.first_content(self.fd)

    def intact(self) -> bool:
        """Whether the bytes that identify what was (or will be) read here are still in place."""
        try:
            if self.offset > self.head_at or (self.offset and not self.head):
                return not self.window or locate.window_before(self.fd, self.offset).endswith(self.window)
            # Nothing read past a leading hole (if any): a window of NULs says nothing, the head does.
            return not self.head or os.pread(self.fd, len(self.head), self.head_at) == self.head
        except OSError:
            return True

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def birth_ns(self) -> int | None:
        """When the file was created (``files.birth_ns``): an inode number can be given to another file."""
        return files.birth_ns(f"/proc/self/fd/{self.fd}", self.id.ino)

    def first_content(self) -> tuple[int, bytes]:
        """Where its content starts now (past a leading hole of NULs) and its first bytes there."""
        return locate.first_content(self.fd)

    def unprinted(self) -> int:
        """Bytes on disk not printed yet."""
        return max(0, self.size() - self.printed)

    def snapshot(self) -> Snapshot:
        """Where printing stopped in this file, as a checkpoint records it, and where the file is now."""
        head_at, head = (0, b"") if self.printed else self._head_now()
        return Snapshot(
            self.id,
            self.printed,
            locate.window_before(self.fd, self.printed),
            os.fstat(self.fd).st_mtime_ns,
            self.name(),
            head=head,
            head_at=head_at,
        )

    def _head_now(self) -> tuple[int, bytes]:
        """Nothing printed yet: the first bytes it has now, if they are still those it had when
        queued (an empty file queued then written has them only now), else those it had then."""
        at, now = locate.first_content(self.fd)
        if not self.head or (at == self.head_at and now.startswith(self.head)):
            return at, now
        return self.head_at, self.head

    def name(self) -> str:
        """The file's path now, wherever it was renamed to ("" when deleted or unknown)."""
        try:
            name = os.readlink(f"/proc/self/fd/{self.fd}")
        except OSError:
            return ""
        return "" if name.endswith(" (deleted)") or not name.startswith("/") else name

    def close(self) -> None:
        files.close_quietly(self.fd)


@dataclass(frozen=True)
class Snapshot:
    """A position that a checkpoint can record: everything before ``offset`` of file ``id`` is printed."""

    id: FileId
    offset: int
    window: bytes  # the bytes just before ``offset``
    mtime_ns: int
    name: str = ""  # where the file was when the snapshot was taken
    done: bool = False  # read to its end and closed: known, never to be read again
    head: bytes = b""  # at offset 0: the first bytes, which say which content it is
    head_at: int = 0  # where they are: past a leading hole of NULs (``locate.first_content``)


def agrees(data: bytes, head: bytes, at: int = 0) -> bool:
    """Whether ``data``, a file's bytes from some offset, agree with the ``head`` it had ``at`` bytes
    further on when it was queued: NULs up to there (a writer's hole), then ``head`` as far as both go."""
    if data[:at].strip(b"\x00"):
        return False
    rest = data[at:]
    return rest[: len(head)] == head[: len(rest)]
