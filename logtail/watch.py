"""Change notification for directories: inotify where the kernel offers it.

One watch per directory covers every file in it, including a renamed-away generation that
stays in the directory, so 1,000 files in one volume cost one watch. The app still sweeps
with ``stat`` now and then, because inotify says nothing for network file systems and
drops events when its queue overflows.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import NamedTuple

from logtail import logs

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000


class Event(NamedTuple):
    directory: str | None  # None: the queue overflowed: every path must be looked at
    name: str | None  # None: the event is about the directory itself
    mask: int  # raw inotify mask bits
    cookie: int  # pairs IN_MOVED_FROM with IN_MOVED_TO (0 otherwise)


OnEvents = Callable[[list[Event]], None]


class DirectoryWatcher:
    """Delivers changes in watched directories to a callback, from inside the event loop."""

    def __init__(self, on_events: OnEvents, coalesce: float = 0.0) -> None:
        from asyncinotify import Inotify, Mask  # imported here: --poll runs do without it

        self._mask = Mask
        self._events = (
            Mask.MODIFY
            | Mask.CREATE
            | Mask.DELETE
            | Mask.MOVED_FROM
            | Mask.MOVED_TO
            | Mask.ATTRIB
            | Mask.DELETE_SELF
            | Mask.MOVE_SELF
            | Mask.ONLYDIR
        )
        # Raises OSError where inotify is unavailable or exhausted. The default cache takes 10
        # events per read; a burst of appends would then overflow the kernel's queue.
        self._inotify = Inotify(cache_size=256)
        self._on_events = on_events
        self._watched: dict[str, object] = {}
        self._overflows = 0
        self._overflow_reported = -3600.0

    def watch(self, directory: str) -> bool:
        """Start watching ``directory`` if it exists and is not watched yet; say whether that happened."""
        if directory in self._watched:
            return False
        try:
            self._watched[directory] = self._inotify.add_watch(directory, self._events)
        except OSError:
            return False  # not there yet, or no watches left: the sweep covers it until it is
        return True

    def watching(self, directory: str) -> bool:
        return directory in self._watched

    async def run(self) -> None:
        mask = self._mask
        async for event in self._inotify:
            if event.mask & mask.Q_OVERFLOW:
                # Harmless (everything is looked at again) and frequent under a burst of small
                # writes, so said once a minute at most.
                self._overflows += 1
                now = time.monotonic()
                if now - self._overflow_reported > 60:
                    logs.get().info("inotify queue overflowed; rescanning all files", times=self._overflows)
                    self._overflow_reported, self._overflows = now, 0
                self._on_events([Event(None, None, IN_Q_OVERFLOW, 0)])
                continue
            watch = event.watch
            if watch is None:
                continue
            directory = str(watch.path)
            if event.mask & (mask.IGNORED | mask.DELETE_SELF | mask.MOVE_SELF):
                # The directory itself went away or moved: watch it again once it is back.
                if self._watched.pop(directory, None) is not None and event.mask & mask.MOVE_SELF:
                    with contextlib.suppress(OSError):
                        self._inotify.rm_watch(watch)
                self._on_events([Event(directory, None, int(event.mask), 0)])
                continue
            name = os.fsdecode(event.name) if event.name is not None else None
            self._on_events([Event(directory, name, int(event.mask), event.cookie)])

    def close(self) -> None:
        self._inotify.close()
