"""Which follower to wake: inotify events and stat sweeps, two sources of changes behind one interface.

Fluent Bit's in_tail splits change detection the same way (``tail_fs_inotify.c``,
``tail_fs_stat.c``). Inotify says at once that something changed in a directory; the
sweep looks at every path now and then, for lost events, network file systems
(``--poll``), symlinked paths and rotated-away files that may have left the directory.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from logtail import logs

if TYPE_CHECKING:
    from logtail.watch import DirectoryWatcher, Event

# With inotify, how often every file is also looked at with stat, in case events were lost.
FULL_SWEEP = 30.0
# inotify masks (linux/inotify.h).
_MODIFY, _MOVED_FROM, _MOVED_TO, _CREATE, _DELETE = 0x2, 0x40, 0x80, 0x100, 0x200
_APPEARED = _CREATE | _MOVED_TO  # a name appeared in a directory
_LINK_STEPS = _MOVED_TO | _CREATE | _DELETE  # the events links_of looks at
# Renames whose other half has not arrived yet (their cookie), at most this many.
_PENDING_RENAMES = 1024


class Followed(Protocol):
    """What change detection needs of a follower."""

    @property
    def path(self) -> str: ...
    @property
    def directory(self) -> str: ...
    @property
    def has_rotated(self) -> bool: ...
    @property
    def via_symlink(self) -> bool: ...
    def wake(self) -> None: ...
    def appended(self) -> bool: ...
    def signature(self) -> tuple[Any, ...]: ...
    def moved(self, to: str) -> None: ...
    def linked(self, name: str, links: list[str]) -> None: ...


def pair_renames(events: Iterable[Event], pending: dict[int, str]) -> list[tuple[str, str]]:
    """Renames as (old path, new path), from IN_MOVED_FROM and IN_MOVED_TO events with one cookie.

    ``pending`` holds old paths whose new name has not been seen yet; it is updated, and kept
    small (a file moved out of every watched directory never gets its second half).
    """
    pairs = []
    for event in events:
        if event.directory is None or event.name is None or not event.cookie:
            continue
        path = os.path.join(event.directory, event.name)
        if event.mask & _MOVED_FROM:
            pending[event.cookie] = path
            while len(pending) > _PENDING_RENAMES:
                del pending[next(iter(pending))]
        elif event.mask & _MOVED_TO and (old := pending.pop(event.cookie, None)) is not None:
            pairs.append((old, path))
    return pairs


def wakes_for(
    events: Iterable[Event], followers: Mapping[str, Followed]
) -> tuple[list[Followed], list[Followed], bool]:
    """The followers a batch of inotify events must wake, and whether to look for new glob matches.

    Returned apart, first, are the followers whose name the batch names only in writes
    (IN_MODIFY): their file is still the one at the name (a rename, a delete or a new file
    there would be an event of its own, in this batch or an earlier one), so reading on
    from where they stopped is all there may be to do. The second list must look.
    """
    written: dict[str, Followed] = {}
    woken: dict[str, Followed] = {}
    discover = False
    for event in events:
        if event.directory is None:  # events were lost: everything may have changed
            return [], list(followers.values()), True
        if event.name is not None and (named := followers.get(os.path.join(event.directory, event.name))):
            if event.mask == _MODIFY and named.path not in woken:
                written[named.path] = named
            else:
                woken[named.path] = named
                written.pop(named.path, None)
            continue
        # Not a followed name: a rotated generation was written, or a new file appeared.
        for follower in followers.values():
            if follower.has_rotated and follower.directory == event.directory:
                woken[follower.path] = follower
                written.pop(follower.path, None)
        if event.name is None or event.mask & _APPEARED:
            discover = True
    return list(written.values()), list(woken.values()), discover


def to_look(
    followers: Iterable[Followed], *, full: bool, watching: Callable[[str], bool] | None
) -> list[Followed]:
    """The followers whose files a sweep must stat (``watching``: whether inotify watches a
    directory; None under --poll).

    Where inotify watches a follower's directory its events already cover the file, so it
    is looked at only in a full sweep. Rotated-away generations, which may have moved to
    another directory, and symlinked paths, whose own directory does not see the writes to
    their target, are looked at every time. With 1,000 idle files this runs every poll
    interval, so it is one comprehension, not a call per follower.
    """
    if full or watching is None:
        return list(followers)
    return [f for f in followers if f.has_rotated or f.via_symlink or not watching(f.directory)]


def links_of(events: Sequence[Event], targets: Collection[str]) -> list[tuple[str, list[str]]]:
    """For rename targets that are unlinked within the batch, the names created in their directory
    between the rename and the unlink: where a link-then-unlink moved the file.

    daemontools-style loggers (s6-log, multilog) rotate by rename(current, previous),
    link(previous, @<timestamp>.s), unlink(previous): by the time the batch is handled the
    file is only at a name no rename event gave, and inotify reports a link as a creation.
    """
    found: list[tuple[str, list[str]]] = []  # in order: a name can be a target again and again
    open_: dict[str, list[str]] = {}
    for event in events:
        if event.directory is None or event.name is None or not event.mask & _LINK_STEPS:
            continue  # most events are writes (IN_MODIFY): no path is built for them
        path = os.path.join(event.directory, event.name)
        if event.mask & _MOVED_TO and path in targets:
            open_[path] = []
        elif event.mask & _CREATE:
            for target, names in open_.items():
                if os.path.dirname(target) == event.directory:
                    names.append(path)
        elif event.mask & _DELETE and path in open_:
            found.append((path, open_.pop(path)))
    return found


class Changes:
    """Wakes followers when their files change, by inotify where it works and by stat sweeps always."""

    def __init__(
        self,
        followers: Mapping[str, Followed],
        discover: Callable[[], None],
        directories: Callable[[], set[str]],
        glob_bases: set[str],
        poll_interval: float,
        batch_interval: float,
    ) -> None:
        self._followers = followers
        self._discover = discover
        self._directories = directories
        self._glob_bases = glob_bases
        self._poll_interval = poll_interval
        self._batch_interval = batch_interval
        self._watcher: DirectoryWatcher | None = None
        self._renames: dict[int, str] = {}

    def start_inotify(self) -> bool:
        """Watch the directories that matter now; False (logged) where inotify is unavailable."""
        try:
            from logtail.watch import DirectoryWatcher  # not imported at all with --poll

            self._watcher = DirectoryWatcher(self._on_events, self._batch_interval)
        except (OSError, ImportError) as exc:  # no inotify, or no ctypes in a trimmed runtime
            logs.get().warning("inotify unavailable; polling instead", reason=str(exc))
            return False
        for directory in self._directories():
            self._watcher.watch(directory)
        return True

    def watch(self, directory: str) -> None:
        """Watch a follower's directory before its first read, so no change slips in between."""
        if self._watcher is not None:
            self._watcher.watch(directory)

    async def inotify_forever(self) -> None:
        assert self._watcher is not None
        await self._watcher.run()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()

    def _on_events(self, events: list[Event]) -> None:
        # Renames first: a follower woken by this batch must know where its file went.
        moved_by: dict[str, Followed] = {}
        for old, new in pair_renames(events, self._renames):
            if (follower := self._followers.get(old)) is not None:
                follower.moved(new)
                moved_by[new] = follower
        if moved_by:  # links_of finds links only for the targets of these renames
            for target, names in links_of(events, moved_by):
                moved_by[target].linked(target, names)
        written, woken, discover = wakes_for(events, self._followers)
        for follower in written:
            if not follower.appended():
                follower.wake()
        for follower in woken:
            follower.wake()
        if discover:
            self._discover()

    async def sweep_forever(self) -> None:
        """The safety net (and, with --poll, the only mechanism): look at files now and then."""
        signatures: dict[str, tuple[Any, ...]] = {}
        last_full = time.monotonic()
        while True:
            await asyncio.sleep(self._poll_interval)
            watcher = self._watcher
            if watcher is not None:
                for directory in self._directories():
                    if watcher.watch(directory):
                        self._wake_directory(directory)  # it may have changed before it was watched
            full = watcher is None or time.monotonic() - last_full >= FULL_SWEEP
            if full:
                last_full = time.monotonic()
            if full or (watcher is not None and not all(map(watcher.watching, self._glob_bases))):
                self._discover()  # with inotify, new matches in watched directories arrive as events
            watching = watcher.watching if watcher is not None else None
            for follower in to_look(self._followers.values(), full=full, watching=watching):
                signature = follower.signature()
                if signatures.get(follower.path) != signature:
                    signatures[follower.path] = signature
                    follower.wake()
            if full:
                for path in [p for p in signatures if p not in self._followers]:
                    del signatures[path]

    def _wake_directory(self, directory: str) -> None:
        for follower in self._followers.values():
            if follower.directory == directory:
                follower.wake()
