"""Change notification for directories: the kernel's inotify, read a whole queue at a time.

One watch per directory covers every file in it, including a renamed-away generation that
stays in the directory, so 1,000 files in one volume cost one watch. The app still sweeps
with ``stat`` now and then, because inotify says nothing for network file systems and
drops events when its queue overflows.

No library (issue 12): asyncinotify builds an Event, a Path and enum flags per event and
re-registers its descriptor with epoll for every one: a process running only its watcher
took 185-205 ms of CPU per second for a writer of 2,000 lines/s, about 100 us per event.
Here one ``os.read`` takes every queued event and ``struct`` parses them, about 1.2 us per
event, and the kernel API needed is three calls, stable since Linux 2.6.27. Reaching them
through ctypes costs about 2 ms of start-up and 0.3 MiB (asyncinotify imported ctypes and
pathlib: 9 ms and 1 MiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import struct
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from logtail import logs

# inotify(7) event bits, as in <sys/inotify.h>.
IN_ACCESS = 0x00000001
IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_OPEN = 0x00000020
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_MASK_ADD = 0x20000000
IN_ISDIR = 0x40000000
IN_ONESHOT = 0x80000000

# What is asked for per directory. Deliberately not IN_EXCL_UNLINK: a file deleted while a
# writer still has it open (delete-and-recreate rotation) is read to its end, and the events
# for writes into it are what wake its reader at once instead of at the next sweep.
# Not IN_CLOSE_WRITE either: every write already gives IN_MODIFY, and for a writer that opens
# the file for every line (``echo >>``) the two would alternate, so the kernel could merge
# neither (26 against 16 ms of CPU per second at 2,000 lines/s, watcher alone).
WATCHED = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
# After these the kernel has dropped the watch (IN_IGNORED, after a delete or an unmount), or
# it follows the directory to wherever it was moved (IN_MOVE_SELF) and is removed here: either
# way the path is no longer watched, and watch() can add it again once it is back.
_GONE = IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT
# What ends a pause at once: everything but writes. A second inotify instance watches the same
# directories for these only, and stays readable-registered while the first is left unread, so
# a file created, renamed or deleted during a pause is looked at now, not at the pause's end: a
# logger that deletes and recreates its file every 250 ms, read every 200 ms, had whole files
# deleted before logtail ever opened them (a quarter of their lines lost, --batch-interval 0.2).
STRUCTURE = WATCHED & ~IN_MODIFY

# Pause between batches while a writer is busy, in seconds (--batch-interval; Config's default
# must be this). While nothing reads the queue the kernel merges an event into the last queued
# one when they are identical, so a writer's hundreds of IN_MODIFY become one, and every batch
# wakes the followers once, not per line. What a wake-up costs is mostly the interpreter coming
# back to a cold CPU, whatever it does then (a bare asyncio loop that reads the queue, one pread
# and one write costs about 130 us a wake-up here, GNU tail 50 us), so the number of wake-ups is
# what counts. Measured on 2 shared cores, logtail following one file (2026-12-03, with the
# read of an append from the event callback), a writer appending one line per write(2), CPU of
# the logtail process per second:
#   pause    100 lines/s   1,000 lines/s   10,000 lines/s   delay p99 at 2,000 lines/s
#   10 ms    31 ms/s       33 ms/s         67 ms/s          10.5 ms
#   20 ms    20 ms/s       19 ms/s         42 ms/s          21 ms
#   25 ms    14 ms/s       13 ms/s         27 ms/s          26.4 ms
# (GNU tail -F: 5-8, 22-32, 150-175 ms/s.) 20 ms keeps the p99 under load 9 ms inside its 30 ms
# target on a busy node; 25 ms would leave under 4. An isolated line is not delayed at all: the
# pause starts only once batches come closer together than the pause (one line every 250 ms:
# p50 0.4 ms).
COALESCE = 0.02

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name
# One read takes the whole queue unless it holds more than this; a read that left less room
# than one event of the longest name (header + NAME_MAX + NUL) may have left some behind.
_BUFFER = 65536
_LONGEST_EVENT = _HEADER.size + 256


class Event(NamedTuple):
    """One inotify event, with its watch resolved to the directory's path."""

    directory: str | None  # None: the queue overflowed (IN_Q_OVERFLOW): every path must be looked at
    name: str | None  # None: the event is about the directory itself (IN_DELETE_SELF, IN_IGNORED, ...)
    mask: int  # raw inotify mask bits
    cookie: int  # pairs IN_MOVED_FROM with IN_MOVED_TO (0 otherwise)


def parse(buffer: bytes, directories: Mapping[int, str]) -> list[Event]:
    """The events in ``buffer`` (what a read of an inotify descriptor returned), in order.

    Events of a watch not in ``directories`` (one removed while its events were queued) are
    left out; an overflow has no watch and is always kept.
    """
    events = []
    unpack = _HEADER.unpack_from
    header = _HEADER.size
    offset, end = 0, len(buffer)
    while offset + header <= end:
        wd, mask, cookie, length = unpack(buffer, offset)
        offset += header
        if mask & IN_Q_OVERFLOW:
            events.append(Event(None, None, mask, cookie))
        elif (directory := directories.get(wd)) is not None:
            name = None
            if length:
                # The name is padded with NULs to an aligned length; a name never contains one.
                stop = buffer.find(b"\0", offset, offset + length)
                name = os.fsdecode(buffer[offset : stop if stop >= 0 else offset + length])
            events.append(Event(directory, name, mask, cookie))
        offset += length
    return events


class _Libc:
    """The three inotify calls, from the C library the interpreter already has loaded."""

    def __init__(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self.init1 = libc.inotify_init1
            self.add_watch = libc.inotify_add_watch
            self.rm_watch = libc.inotify_rm_watch
        except (OSError, AttributeError) as exc:
            raise OSError(f"inotify is not available: {exc}") from None
        self.init1.argtypes = [ctypes.c_int]
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]


def _check(result: int, what: str) -> int:
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")
    return result


class DirectoryWatcher:
    """Delivers the events of watched directories to a callback, in batches, from inside the event loop.

    An event after a quiet spell is delivered as soon as the kernel reports it. When a batch
    follows the previous one within ``coalesce`` seconds (a writer is busy), the descriptor
    is left unread for ``coalesce`` seconds after it, and again after every pause that ends
    with something queued: meanwhile the kernel merges identical events, so a writer of any
    speed costs at most ``1 / coalesce`` batches a second. A batch keeps the kernel's order
    (a rename's IN_MOVED_FROM comes before its IN_MOVED_TO) and may name a file many times.
    """

    def __init__(self, on_events: Callable[[list[Event]], None], coalesce: float = COALESCE) -> None:
        self._libc = _Libc()
        # Raises OSError where inotify is unavailable or the per-user instance limit is reached.
        self._fd = _check(self._libc.init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")
        # Its events are never parsed: it only says "something other than a write happened";
        # the first instance has every event, in order, and is read then.
        # Optional: the per-user limit on inotify instances (fs.inotify.max_user_instances, 128 by
        # default) is shared by every sidecar of one uid on a node; without it pauses end on
        # their timer only.
        self._structure = self._libc.init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self._on_events = on_events
        self._coalesce = coalesce
        self._directories: dict[int, str] = {}  # watch descriptor -> the path it was added as
        self._watches: dict[str, int] = {}  # every watched path -> its watch descriptor
        self._structure_watches: dict[int, int] = {}  # watch descriptor -> the same in _structure
        # Paths that are the same directory as an earlier watched one (a symlink, a bind mount):
        # the kernel gives them the same watch descriptor, so their events are copied to them.
        self._aliases: dict[str, list[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listening = False
        self._pause: asyncio.TimerHandle | None = None
        self._delivered = -1e9  # loop time of the last batch
        self._failed: asyncio.Future[None] | None = None
        self._overflows = 0
        self._overflow_reported = -3600.0

    def watch(self, directory: str) -> bool:
        """Start watching ``directory`` if it exists and is not watched yet; say whether that happened."""
        if directory in self._watches or self._fd < 0:
            return False
        wd = self._libc.add_watch(self._fd, os.fsencode(directory), WATCHED)
        if wd < 0:
            return False  # not there yet, or no watches left: the sweep covers it until it is
        self._watches[directory] = wd
        # If this one fails (no watches left) pauses just end on their timer, as they would anyway.
        if (
            self._structure >= 0
            and (other := self._libc.add_watch(self._structure, os.fsencode(directory), STRUCTURE)) >= 0
        ):
            self._structure_watches[wd] = other
        first = self._directories.setdefault(wd, directory)
        if first != directory:
            self._aliases.setdefault(first, []).append(directory)
        return True

    def watching(self, directory: str) -> bool:
        return directory in self._watches

    async def run(self) -> None:
        """Deliver batches until cancelled; raise if reading the queue or the callback fails."""
        self._loop = asyncio.get_running_loop()
        self._failed = self._loop.create_future()
        self._listen()
        if self._structure >= 0:
            self._loop.add_reader(self._structure, self._on_structure)
        try:
            await self._failed
        finally:
            self._stop_reading()

    def close(self) -> None:
        self._stop_reading()
        if self._fd >= 0:
            os.close(self._fd)
            if self._structure >= 0:
                os.close(self._structure)
            self._fd = self._structure = -1
        self._directories.clear()
        self._watches.clear()
        self._structure_watches.clear()
        self._aliases.clear()

    # -- reading ----------------------------------------------------------------------

    def _listen(self) -> None:
        if not self._listening and self._loop is not None and self._fd >= 0:
            self._loop.add_reader(self._fd, self._on_readable)
            self._listening = True

    def _stop_reading(self) -> None:
        if self._pause is not None:
            self._pause.cancel()
            self._pause = None
        if self._loop is not None and self._structure >= 0:
            self._loop.remove_reader(self._structure)
        if self._listening and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._listening = False

    def _on_readable(self) -> None:
        self._deliver(paused=False)

    def _on_structure(self) -> None:
        """Something other than a write happened in a watched directory: a pause ends now."""
        with contextlib.suppress(BlockingIOError):
            while len(os.read(self._structure, _BUFFER)) > _BUFFER - _LONGEST_EVENT:
                pass
        if self._pause is not None:
            self._pause.cancel()
            self._end_pause()

    def _end_pause(self) -> None:
        self._pause = None
        self._deliver(paused=True)

    def _deliver(self, paused: bool) -> None:
        """Read what is queued and hand it over; pause if events come faster than the pause."""
        assert self._loop is not None
        try:
            events = self._read()
            if not events:
                self._listen()
                return
            now = self._loop.time()
            # An isolated event costs one wake-up: the pause starts only at the second batch
            # within a pause's length (an event in a busy spell), and lasts while every pause
            # ends with something queued. Its end reads the queue directly, so no epoll
            # registration is made or undone per batch under load.
            if paused or now - self._delivered < self._coalesce:
                if self._listening:
                    self._loop.remove_reader(self._fd)
                    self._listening = False
                self._pause = self._loop.call_later(self._coalesce, self._end_pause)
            self._delivered = now
            self._forget_gone(events)
            if self._aliases:
                events = self._with_aliases(events)
            self._on_events(events)
        except Exception as exc:
            self._stop_reading()
            if self._failed is not None and not self._failed.done():
                self._failed.set_exception(exc)

    def _read(self) -> list[Event]:
        events: list[Event] = []
        while True:
            try:
                data = os.read(self._fd, _BUFFER)
            except BlockingIOError:
                return events
            events += parse(data, self._directories)
            if len(data) <= _BUFFER - _LONGEST_EVENT:
                # Everything queued fitted; what came since makes the descriptor readable again.
                return events

    def _forget_gone(self, events: list[Event]) -> None:
        for event in events:
            if event.mask & IN_Q_OVERFLOW:
                self._report_overflow()
            elif event.mask & _GONE and event.name is None and event.directory is not None:
                self._forget(event.directory, remove=bool(event.mask & IN_MOVE_SELF))

    def _forget(self, directory: str, remove: bool) -> None:
        wd = self._watches.get(directory)
        if wd is None or self._directories.get(wd) != directory:
            return
        if remove:
            # A moved directory's watch would go on reporting under the old path.
            self._libc.rm_watch(self._fd, wd)  # its IN_IGNORED then names no known watch
        if (other := self._structure_watches.pop(wd, None)) is not None and remove:
            self._libc.rm_watch(self._structure, other)
        del self._directories[wd]
        for path in (directory, *self._aliases.pop(directory, ())):
            del self._watches[path]

    def _with_aliases(self, events: list[Event]) -> list[Event]:
        copied = []
        for event in events:
            copied.append(event)
            for alias in self._aliases.get(event.directory or "", ()):
                copied.append(event._replace(directory=alias))
        return copied

    def _report_overflow(self) -> None:
        # Harmless (everything is looked at again) but a sign of a very busy directory, so
        # said once a minute at most.
        self._overflows += 1
        now = time.monotonic()
        if now - self._overflow_reported > 60:
            logs.get().info("inotify queue overflowed; rescanning all files", times=self._overflows)
            self._overflow_reported, self._overflows = now, 0
